/**
 * Compound RTCP packets as RFC 3550 §6.1 lays them out: checking the layout and building one around a report.
 */
import { SDES_CNAME, type RtcpPacket, type RtcpReceiverReport, type RtcpSdes, type RtcpSenderReport } from './types.js';

/**
 * True when `packets` has the layout RFC 3550 §6.1 requires of a compound packet: SR or RR first, and an SDES
 * with a CNAME item.
 */
export function isRfc3550Compound(packets: readonly RtcpPacket[]): boolean {
  const first = packets[0];
  if (!first || (first.type !== 'sr' && first.type !== 'rr')) return false;
  return packets.some((p) => p.type === 'sdes' && p.chunks.some((c) => c.items.some((i) => i.type === SDES_CNAME)));
}

/**
 * Builds a compound packet as RFC 3550 §6.1 wants it: the report first, then SDES with our CNAME, then any
 * feedback or BYE packets.
 */
export function compoundReport(
  report: RtcpSenderReport | RtcpReceiverReport,
  cname: string,
  extra: readonly RtcpPacket[] = [],
): RtcpPacket[] {
  const sdes: RtcpSdes = { type: 'sdes', chunks: [{ ssrc: report.ssrc, items: [{ type: SDES_CNAME, text: cname }] }] };
  return [report, sdes, ...extra];
}
