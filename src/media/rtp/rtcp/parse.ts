/**
 * Parses compound RTCP packets (RFC 3550 §6, A.2) into `RtcpPacket`s. Pure; results are views into the input.
 */
import { ParseError } from '../../../errors.js';
import { readUint16BE, readUint32BE } from '../../bytes.js';
import { RTP_VERSION } from '../packet.js';
import {
  RTCP_BYE,
  RTCP_PSFB,
  RTCP_REPORT_BLOCK_SIZE,
  RTCP_RR,
  RTCP_RTPFB,
  RTCP_SDES,
  RTCP_SR,
  type RtcpBye,
  type RtcpFir,
  type RtcpNack,
  type RtcpPacket,
  type RtcpReceiverReport,
  type RtcpReportBlock,
  type RtcpSdesChunk,
  type RtcpSenderReport,
} from './types.js';

const FORMAT = 'rtcp';

const utf8Decoder = new TextDecoder('utf-8');

function parseReportBlocks(buf: Uint8Array, offset: number, count: number): RtcpReportBlock[] {
  const reports: RtcpReportBlock[] = [];
  for (let i = 0; i < count; i++, offset += RTCP_REPORT_BLOCK_SIZE) {
    const lost24 = ((buf[offset + 5] as number) << 16) | readUint16BE(buf, offset + 6, FORMAT);
    reports.push({
      ssrc: readUint32BE(buf, offset, FORMAT),
      fractionLost: buf[offset + 4] as number,
      cumulativeLost: lost24 & 0x800000 ? lost24 - 0x1000000 : lost24,
      highestSequence: readUint32BE(buf, offset + 8, FORMAT),
      jitter: readUint32BE(buf, offset + 12, FORMAT),
      lastSr: readUint32BE(buf, offset + 16, FORMAT),
      delaySinceLastSr: readUint32BE(buf, offset + 20, FORMAT),
    });
  }
  return reports;
}

/**
 * Parses one RTCP packet whose header starts at `start` and whose body (padding removed) ends at `end`.
 * `whole` is the packet including header and padding.
 */
function parseOne(buf: Uint8Array, start: number, end: number, whole: Uint8Array): RtcpPacket {
  const b0 = buf[start] as number;
  const count = b0 & 0x1f;
  const pt = buf[start + 1] as number;
  const body = start + 4;
  const need = (n: number, what: string): void => {
    if (n > end) throw new ParseError(FORMAT, `${what} overruns the packet (type ${pt})`, start);
  };
  switch (pt) {
    case RTCP_SR: {
      need(body + 24 + count * RTCP_REPORT_BLOCK_SIZE, `${count} report blocks`);
      const blocksEnd = body + 24 + count * RTCP_REPORT_BLOCK_SIZE;
      const sr: RtcpSenderReport = {
        type: 'sr',
        ssrc: readUint32BE(buf, body, FORMAT),
        ntpSec: readUint32BE(buf, body + 4, FORMAT),
        ntpFrac: readUint32BE(buf, body + 8, FORMAT),
        rtpTimestamp: readUint32BE(buf, body + 12, FORMAT),
        packetCount: readUint32BE(buf, body + 16, FORMAT),
        octetCount: readUint32BE(buf, body + 20, FORMAT),
        reports: parseReportBlocks(buf, body + 24, count),
      };
      if (blocksEnd < end) sr.extension = buf.subarray(blocksEnd, end);
      return sr;
    }
    case RTCP_RR: {
      need(body + 4 + count * RTCP_REPORT_BLOCK_SIZE, `${count} report blocks`);
      const blocksEnd = body + 4 + count * RTCP_REPORT_BLOCK_SIZE;
      const rr: RtcpReceiverReport = {
        type: 'rr',
        ssrc: readUint32BE(buf, body, FORMAT),
        reports: parseReportBlocks(buf, body + 4, count),
      };
      if (blocksEnd < end) rr.extension = buf.subarray(blocksEnd, end);
      return rr;
    }
    case RTCP_SDES: {
      const chunks: RtcpSdesChunk[] = [];
      let o = body;
      for (let c = 0; c < count; c++) {
        need(o + 4, 'SDES chunk');
        const chunk: RtcpSdesChunk = { ssrc: readUint32BE(buf, o, FORMAT), items: [] };
        o += 4;
        // items until a null octet, then padding to the next 32-bit boundary (RFC 3550 §6.5)
        for (;;) {
          need(o + 1, 'SDES item list');
          const type = buf[o] as number;
          if (type === 0) break;
          need(o + 2, 'SDES item');
          const len = buf[o + 1] as number;
          need(o + 2 + len, 'SDES item text');
          chunk.items.push({ type, text: utf8Decoder.decode(buf.subarray(o + 2, o + 2 + len)) });
          o += 2 + len;
        }
        o = body + (((o - body) >> 2) + 1) * 4; // skip the null and pad; chunks start 32-bit aligned
        if (o > end) throw new ParseError(FORMAT, 'SDES chunk padding overruns the packet', start);
        chunks.push(chunk);
      }
      return { type: 'sdes', chunks };
    }
    case RTCP_BYE: {
      need(body + count * 4, `${count} BYE sources`);
      const ssrcs: number[] = [];
      for (let i = 0; i < count; i++) ssrcs.push(readUint32BE(buf, body + i * 4, FORMAT));
      const bye: RtcpBye = { type: 'bye', ssrcs };
      const r = body + count * 4;
      if (r < end) {
        const len = buf[r] as number;
        need(r + 1 + len, 'BYE reason');
        bye.reason = utf8Decoder.decode(buf.subarray(r + 1, r + 1 + len));
      }
      return bye;
    }
    case RTCP_PSFB:
    case RTCP_RTPFB: {
      need(body + 8, 'feedback SSRCs');
      const senderSsrc = readUint32BE(buf, body, FORMAT);
      const mediaSsrc = readUint32BE(buf, body + 4, FORMAT);
      const fci = body + 8;
      if (pt === RTCP_PSFB && count === 1) return { type: 'pli', senderSsrc, mediaSsrc };
      if (pt === RTCP_PSFB && count === 4) {
        if ((end - fci) % 8 !== 0) throw new ParseError(FORMAT, 'FIR FCI is not a multiple of 8 bytes', fci);
        const entries: RtcpFir['entries'] = [];
        for (let o = fci; o < end; o += 8) entries.push({ ssrc: readUint32BE(buf, o, FORMAT), seqNr: buf[o + 4] as number });
        return { type: 'fir', senderSsrc, mediaSsrc, entries };
      }
      if (pt === RTCP_RTPFB && count === 1) {
        if ((end - fci) % 4 !== 0) throw new ParseError(FORMAT, 'NACK FCI is not a multiple of 4 bytes', fci);
        const pairs: RtcpNack['pairs'] = [];
        for (let o = fci; o < end; o += 4) pairs.push({ pid: readUint16BE(buf, o, FORMAT), blp: readUint16BE(buf, o + 2, FORMAT) });
        return { type: 'nack', senderSsrc, mediaSsrc, pairs };
      }
      return { type: 'other', packetType: pt, count, raw: whole };
    }
    default:
      return { type: 'other', packetType: pt, count, raw: whole };
  }
}

/**
 * Parses a compound RTCP packet (one UDP datagram or interleaved frame) into its packets. It does not demand
 * the RFC 3550 §6.1 layout (see `isRfc3550Compound`): ffmpeg sends a bare SR and RFC 5506 allows bare feedback.
 * @returns packets whose views (`extension`, `raw`) point into `buf`.
 * @throws ParseError on an empty buffer, a version other than 2, a length that overruns the buffer, or a body
 *   shorter than its counts require.
 * @see RFC 3550 §6.4, A.2
 */
export function parseRtcp(buf: Uint8Array): RtcpPacket[] {
  if (buf.length < 4) throw new ParseError(FORMAT, `${buf.length} bytes is shorter than an RTCP header`, 0);
  const packets: RtcpPacket[] = [];
  let offset = 0;
  while (offset < buf.length) {
    if (offset + 4 > buf.length) throw new ParseError(FORMAT, 'trailing bytes shorter than an RTCP header', offset);
    const b0 = buf[offset] as number;
    if (b0 >>> 6 !== RTP_VERSION) throw new ParseError(FORMAT, `version ${b0 >>> 6}, want 2`, offset);
    const size = (readUint16BE(buf, offset + 2, FORMAT) + 1) * 4;
    const next = offset + size;
    if (next > buf.length) throw new ParseError(FORMAT, `packet of ${size} bytes overruns the buffer`, offset);
    let end = next;
    if (b0 & 0x20) {
      const pad = buf[next - 1] as number;
      if (pad === 0 || pad > size - 4) throw new ParseError(FORMAT, `padding of ${pad} bytes does not fit`, next - 1);
      end -= pad;
    }
    packets.push(parseOne(buf, offset, end, buf.subarray(offset, next)));
    offset = next;
  }
  return packets;
}
