/**
 * RTCP (RFC 3550 §6, RFC 4585 §6): SR, RR, SDES, BYE, PLI, FIR (RFC 5104 §4.3.1) and generic NACK; compound
 * packets; NTP time; per-source sender/receiver statistics (RFC 3550 §6.4, A.3, A.8) and the report interval
 * (§6.2, A.7). Pure: callers pass the clock in.
 *
 * Packet types this module does not interpret (APP, XR, REMB, TWCC, ...) are kept as `RtcpOther` with a view of
 * their bytes, so a compound packet round-trips.
 */
import { ParseError } from '../../errors.js';
import { readUint16BE, readUint32BE, writeUint16BE, writeUint32BE } from '../bytes.js';
import { RTP_VERSION, SeqUnwrapper, seqDiff } from './packet.js';

const FORMAT = 'rtcp';

/** RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1). */
export const RTCP_SR = 200;
/** Receiver report. */
export const RTCP_RR = 201;
/** Source description. */
export const RTCP_SDES = 202;
/** Goodbye. */
export const RTCP_BYE = 203;
/** Application-defined. */
export const RTCP_APP = 204;
/** Transport-layer feedback (RFC 4585 §6.2): FMT 1 = generic NACK. */
export const RTCP_RTPFB = 205;
/** Payload-specific feedback (RFC 4585 §6.3): FMT 1 = PLI, FMT 4 = FIR (RFC 5104). */
export const RTCP_PSFB = 206;

/** SDES item types (RFC 3550 §6.5). */
export const SDES_CNAME = 1;

/** Size of one report block (RFC 3550 §6.4.1). */
export const RTCP_REPORT_BLOCK_SIZE = 24;
/** RC is 5 bits (RFC 3550 §6.4.1), so one SR/RR carries at most 31 report blocks. */
export const RTCP_MAX_REPORT_BLOCKS = 31;
/** An SDES item's length is one octet (RFC 3550 §6.5). */
export const SDES_MAX_TEXT_BYTES = 255;

/*
 * Common header of every RTCP packet (RFC 3550 §6.4.1):
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |V=2|P|  RC/FMT |      PT       |             length            |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * `length` is the packet size in 32-bit words minus one. SR body:
 *
 * |                         SSRC of sender                        |
 * |              NTP timestamp, most significant word             |
 * |             NTP timestamp, least significant word             |
 * |                         RTP timestamp                         |
 * |                     sender's packet count                     |
 * |                      sender's octet count                     |
 * +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 * |                 SSRC_1 (SSRC of first source)                 |  report block, RC times
 * | fraction lost |       cumulative number of packets lost       |
 * |           extended highest sequence number received           |
 * |                      interarrival jitter                      |
 * |                         last SR (LSR)                         |
 * |                   delay since last SR (DLSR)                  |
 * +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 * |                  profile-specific extensions                  |
 *
 * RR is the same without the five sender-info words. Feedback (RFC 4585 §6.1) is
 * header + SSRC of packet sender + SSRC of media source + FCI.
 */

/** One reception report block (RFC 3550 §6.4.1). */
export interface RtcpReportBlock {
  /** SSRC of the source this block reports on */
  ssrc: number;
  /** lost fraction since the previous report, fixed point /256 */
  fractionLost: number;
  /** cumulative packets lost, signed 24-bit (duplicates can make it negative) */
  cumulativeLost: number;
  /** extended highest sequence number received (cycles << 16 | max seq) */
  highestSequence: number;
  /** interarrival jitter in timestamp units */
  jitter: number;
  /** middle 32 bits of the NTP timestamp of the last SR received, 0 if none */
  lastSr: number;
  /** delay since that SR, in 1/65536 s */
  delaySinceLastSr: number;
}

/** Sender report (RFC 3550 §6.4.1). */
export interface RtcpSenderReport {
  type: 'sr';
  ssrc: number;
  /** NTP timestamp, seconds since 1900 */
  ntpSec: number;
  /** NTP timestamp, fraction of a second in 1/2^32 */
  ntpFrac: number;
  /** the same instant in the RTP timestamp units of this source */
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  reports: RtcpReportBlock[];
  /** profile-specific extension words after the report blocks; a view */
  extension?: Uint8Array;
}

/** Receiver report (RFC 3550 §6.4.2). */
export interface RtcpReceiverReport {
  type: 'rr';
  ssrc: number;
  reports: RtcpReportBlock[];
  extension?: Uint8Array;
}

/** One SDES item; `text` is UTF-8 on the wire (RFC 3550 §6.5). */
export interface RtcpSdesItem {
  type: number;
  text: string;
}

/** SDES chunk: items of one source. */
export interface RtcpSdesChunk {
  ssrc: number;
  items: RtcpSdesItem[];
}

/** Source description (RFC 3550 §6.5). */
export interface RtcpSdes {
  type: 'sdes';
  chunks: RtcpSdesChunk[];
}

/** Goodbye (RFC 3550 §6.6). */
export interface RtcpBye {
  type: 'bye';
  ssrcs: number[];
  reason?: string;
}

/** Picture loss indication (RFC 4585 §6.3.1): PSFB FMT 1, no FCI. */
export interface RtcpPli {
  type: 'pli';
  senderSsrc: number;
  mediaSsrc: number;
}

/** Full intra request (RFC 5104 §4.3.1): PSFB FMT 4; media SSRC is 0, the FCI names the sources. */
export interface RtcpFir {
  type: 'fir';
  senderSsrc: number;
  mediaSsrc: number;
  entries: { ssrc: number; seqNr: number }[];
}

/** Generic NACK (RFC 4585 §6.2.1): RTPFB FMT 1; each pair names `pid` and a bitmask of the 16 following seqs. */
export interface RtcpNack {
  type: 'nack';
  senderSsrc: number;
  mediaSsrc: number;
  pairs: { pid: number; blp: number }[];
}

/** Any other packet (APP, XR, REMB, TWCC, ...), skipped but kept for round trips. */
export interface RtcpOther {
  type: 'other';
  packetType: number;
  /** the 5-bit RC/FMT/subtype field */
  count: number;
  /** the whole packet, header included; a view */
  raw: Uint8Array;
}

/** One packet of a compound RTCP packet. */
export type RtcpPacket = RtcpSenderReport | RtcpReceiverReport | RtcpSdes | RtcpBye | RtcpPli | RtcpFir | RtcpNack | RtcpOther;

const utf8Decoder = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

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

function sdesChunkSize(chunk: RtcpSdesChunk): number {
  let n = 4;
  for (const item of chunk.items) n += 2 + utf8Encoder.encode(item.text).length;
  return n + (4 - (n % 4)); // at least one null octet, then aligned
}

/** Serialized size in bytes of one RTCP packet. */
export function rtcpPacketSize(p: RtcpPacket): number {
  switch (p.type) {
    case 'sr':
      return 28 + p.reports.length * RTCP_REPORT_BLOCK_SIZE + (p.extension?.length ?? 0);
    case 'rr':
      return 8 + p.reports.length * RTCP_REPORT_BLOCK_SIZE + (p.extension?.length ?? 0);
    case 'sdes': {
      let n = 4;
      for (const c of p.chunks) n += sdesChunkSize(c);
      return n;
    }
    case 'bye': {
      let n = 4 + p.ssrcs.length * 4;
      if (p.reason !== undefined) n += Math.ceil((1 + utf8Encoder.encode(p.reason).length) / 4) * 4;
      return n;
    }
    case 'pli':
      return 12;
    case 'fir':
      return 12 + p.entries.length * 8;
    case 'nack':
      return 12 + p.pairs.length * 4;
    case 'other':
      return p.raw.length;
  }
}

function writeHeader(out: Uint8Array, o: number, count: number, pt: number, size: number): void {
  if (count > 31) throw new RangeError(`RTCP count ${count} does not fit 5 bits`);
  if (size % 4 !== 0) throw new RangeError(`RTCP packet size ${size} is not a multiple of 4`);
  out[o] = (RTP_VERSION << 6) | count;
  out[o + 1] = pt;
  writeUint16BE(out, o + 2, size / 4 - 1);
}

function writeReportBlocks(out: Uint8Array, o: number, reports: readonly RtcpReportBlock[]): number {
  for (const r of reports) {
    writeUint32BE(out, o, r.ssrc);
    out[o + 4] = r.fractionLost & 0xff;
    const lost = Math.max(-0x800000, Math.min(0x7fffff, r.cumulativeLost)) & 0xffffff;
    out[o + 5] = lost >>> 16;
    writeUint16BE(out, o + 6, lost & 0xffff);
    writeUint32BE(out, o + 8, r.highestSequence);
    writeUint32BE(out, o + 12, r.jitter);
    writeUint32BE(out, o + 16, r.lastSr);
    writeUint32BE(out, o + 20, r.delaySinceLastSr);
    o += RTCP_REPORT_BLOCK_SIZE;
  }
  return o;
}

/** Writes `p` at `o` in `out` (which has room for `rtcpPacketSize(p)` bytes); returns the end offset. */
function writePacket(p: RtcpPacket, out: Uint8Array, o: number): number {
  const size = rtcpPacketSize(p);
  switch (p.type) {
    case 'sr':
      writeHeader(out, o, p.reports.length, RTCP_SR, size);
      writeUint32BE(out, o + 4, p.ssrc);
      writeUint32BE(out, o + 8, p.ntpSec);
      writeUint32BE(out, o + 12, p.ntpFrac);
      writeUint32BE(out, o + 16, p.rtpTimestamp);
      writeUint32BE(out, o + 20, p.packetCount);
      writeUint32BE(out, o + 24, p.octetCount);
      if (p.extension) out.set(p.extension, writeReportBlocks(out, o + 28, p.reports));
      else writeReportBlocks(out, o + 28, p.reports);
      break;
    case 'rr':
      writeHeader(out, o, p.reports.length, RTCP_RR, size);
      writeUint32BE(out, o + 4, p.ssrc);
      if (p.extension) out.set(p.extension, writeReportBlocks(out, o + 8, p.reports));
      else writeReportBlocks(out, o + 8, p.reports);
      break;
    case 'sdes': {
      writeHeader(out, o, p.chunks.length, RTCP_SDES, size);
      let w = o + 4;
      for (const c of p.chunks) {
        const chunkEnd = w + sdesChunkSize(c);
        writeUint32BE(out, w, c.ssrc);
        w += 4;
        for (const item of c.items) {
          const text = utf8Encoder.encode(item.text);
          if (text.length > SDES_MAX_TEXT_BYTES) throw new RangeError(`SDES text of ${text.length} bytes`);
          out[w] = item.type;
          out[w + 1] = text.length;
          out.set(text, w + 2);
          w += 2 + text.length;
        }
        out.fill(0, w, chunkEnd);
        w = chunkEnd;
      }
      break;
    }
    case 'bye': {
      writeHeader(out, o, p.ssrcs.length, RTCP_BYE, size);
      let w = o + 4;
      for (const s of p.ssrcs) {
        writeUint32BE(out, w, s);
        w += 4;
      }
      if (p.reason !== undefined) {
        const text = utf8Encoder.encode(p.reason);
        if (text.length > 255) throw new RangeError(`BYE reason of ${text.length} bytes`);
        out[w] = text.length;
        out.set(text, w + 1);
        out.fill(0, w + 1 + text.length, o + size);
      }
      break;
    }
    case 'pli':
    case 'fir':
    case 'nack': {
      const isNack = p.type === 'nack';
      writeHeader(out, o, p.type === 'fir' ? 4 : 1, isNack ? RTCP_RTPFB : RTCP_PSFB, size);
      writeUint32BE(out, o + 4, p.senderSsrc);
      writeUint32BE(out, o + 8, p.mediaSsrc);
      let w = o + 12;
      if (p.type === 'fir') {
        for (const e of p.entries) {
          writeUint32BE(out, w, e.ssrc);
          out[w + 4] = e.seqNr & 0xff;
          out.fill(0, w + 5, w + 8);
          w += 8;
        }
      } else if (p.type === 'nack') {
        for (const pair of p.pairs) {
          writeUint16BE(out, w, pair.pid);
          writeUint16BE(out, w + 2, pair.blp);
          w += 4;
        }
      }
      break;
    }
    case 'other':
      out.set(p.raw, o);
      break;
  }
  return o + size;
}

/** Serialized size of a compound packet. */
export function rtcpSize(packets: readonly RtcpPacket[]): number {
  let n = 0;
  for (const p of packets) n += rtcpPacketSize(p);
  return n;
}

/**
 * Serializes packets back to back into one newly allocated buffer (a compound packet when there are several).
 * No padding is written; SDES chunks get the minimal null terminator and alignment.
 * @throws RangeError for values that cannot be encoded (more than 31 blocks, text over 255 bytes).
 */
export function serializeRtcp(packets: readonly RtcpPacket[]): Uint8Array {
  const out = new Uint8Array(rtcpSize(packets));
  let o = 0;
  for (const p of packets) o = writePacket(p, out, o);
  return out;
}

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

/** The sequence numbers a generic NACK asks for, in FCI order (RFC 4585 §6.2.1). */
export function nackSequenceNumbers(nack: Pick<RtcpNack, 'pairs'>): number[] {
  const out: number[] = [];
  for (const { pid, blp } of nack.pairs) {
    out.push(pid);
    for (let bit = 0; bit < 16; bit++) if (blp & (1 << bit)) out.push((pid + bit + 1) & 0xffff);
  }
  return out;
}

/** Packs sequence numbers (any order, wrap-aware when sorted by the caller) into NACK FCI pairs. */
export function nackPairs(seqs: readonly number[]): RtcpNack['pairs'] {
  const pairs: RtcpNack['pairs'] = [];
  let cur: { pid: number; blp: number } | undefined;
  for (const seq of seqs) {
    const d = cur ? seqDiff(seq, cur.pid) : -1;
    if (cur && d >= 1 && d <= 16) {
      cur.blp |= 1 << (d - 1);
    } else if (!cur || d !== 0) {
      cur = { pid: seq & 0xffff, blp: 0 };
      pairs.push(cur);
    }
  }
  return pairs;
}

// ---------------------------------------------------------------------------------------------------------------
// NTP time (RFC 3550 §4: seconds since 1900-01-01 as 32.32 fixed point)

/** Seconds from the NTP epoch (1900) to the Unix epoch (1970): 70 years with 17 leap days. */
export const NTP_UNIX_OFFSET_SEC = 2_208_988_800;

/** Converts Unix milliseconds to an NTP timestamp. */
export function ntpFromUnixMs(unixMs: number): { ntpSec: number; ntpFrac: number } {
  const totalSec = Math.floor(unixMs / 1000);
  const fracMs = unixMs - totalSec * 1000;
  let ntpFrac = Math.round((fracMs / 1000) * 0x1_0000_0000);
  let ntpSec = totalSec + NTP_UNIX_OFFSET_SEC;
  if (ntpFrac >= 0x1_0000_0000) {
    ntpFrac -= 0x1_0000_0000;
    ntpSec++;
  }
  return { ntpSec: ntpSec >>> 0, ntpFrac };
}

/** Converts an NTP timestamp to Unix milliseconds (era 0, i.e. until 2036). */
export function ntpToUnixMs(ntpSec: number, ntpFrac: number): number {
  return (ntpSec - NTP_UNIX_OFFSET_SEC) * 1000 + (ntpFrac / 0x1_0000_0000) * 1000;
}

/** The middle 32 bits of an NTP timestamp (16.16 seconds), as LSR and RTT use them (RFC 3550 §6.4.1). */
export function ntpMiddle32(ntpSec: number, ntpFrac: number): number {
  return (((ntpSec & 0xffff) << 16) | (ntpFrac >>> 16)) >>> 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Statistics

/** RFC 3550 A.1: a jump of more than this many sequence numbers ahead is treated as a restart candidate. */
export const RTP_MAX_DROPOUT = 3000;
/** RFC 3550 A.1: a packet this far behind the highest is a late one, further back a restart candidate. */
export const RTP_MAX_MISORDER = 100;

/** What a receiver knows about one incoming source, for the API and for sync. */
export interface ReceptionSummary {
  packetsReceived: number;
  /** cumulative lost (expected - received); negative with duplicates */
  packetsLost: number;
  /** interarrival jitter in milliseconds */
  jitterMs: number;
  /** latest SR's NTP time in Unix ms and its RTP timestamp, for audio/video alignment */
  lastSr?: { unixMs: number; rtpTimestamp: number; receivedAtMs: number };
}

/**
 * Reception statistics for one incoming RTP source (RFC 3550 §6.4.1, A.1, A.3, A.8): feed every RTP packet and
 * every SR of that source; ask for a report block when an RR/SR is due.
 *
 * Differences from A.1: no probation (the source is known from SDP/SETUP, so its first packet counts).
 * Times are milliseconds of one clock the caller chooses (e.g. `Date.now()`); the clock must not jump.
 */
export class RtcpReceiverStats {
  private readonly seqs = new SeqUnwrapper();
  private baseSeq = -1;
  private maxExt = -1;
  private badSeq = -1;
  private received = 0;
  private expectedPrior = 0;
  private receivedPrior = 0;
  private lastTransit = Number.NaN;
  private jitterTicks = 0;
  private lastSrMiddle = 0;
  private lastSrAtMs = 0;
  private sr: ReceptionSummary['lastSr'];

  /**
   * @param ssrc the source's SSRC, written into report blocks
   * @param clockRate RTP clock of the source's payload format (for jitter)
   */
  constructor(
    readonly ssrc: number,
    readonly clockRate: number,
  ) {}

  /**
   * Records one RTP packet of this source.
   * @returns false when the packet was not counted (a big jump ahead waiting for confirmation, RFC 3550 A.1).
   */
  onRtp(sequenceNumber: number, rtpTimestamp: number, arrivalMs: number): boolean {
    if (this.baseSeq < 0) {
      this.restart(sequenceNumber);
    } else {
      const highest = this.maxExt & 0xffff;
      const udelta = (sequenceNumber - highest) & 0xffff;
      if (udelta >= RTP_MAX_DROPOUT && udelta <= 0x10000 - RTP_MAX_MISORDER) {
        // a big jump: the sender restarted, or a stray packet; restart only if the next one follows it (A.1)
        if (sequenceNumber !== this.badSeq) {
          this.badSeq = (sequenceNumber + 1) & 0xffff;
          return false;
        }
        this.restart(sequenceNumber);
      } else {
        const ext = this.seqs.unwrap(sequenceNumber);
        if (ext > this.maxExt) this.maxExt = ext;
      }
    }
    this.received++;

    // A.8: transit time difference in timestamp units, smoothed with gain 1/16
    const arrival = (arrivalMs * this.clockRate) / 1000;
    const transit = arrival - rtpTimestamp;
    if (!Number.isNaN(this.lastTransit)) {
      let d = transit - this.lastTransit;
      // timestamps wrap at 2^32: take the shortest distance
      if (d > 0x8000_0000) d -= 0x1_0000_0000;
      else if (d < -0x8000_0000) d += 0x1_0000_0000;
      this.jitterTicks += (Math.abs(d) - this.jitterTicks) / 16;
    }
    this.lastTransit = transit;
    return true;
  }

  private restart(seq: number): void {
    this.seqs.reset(seq);
    this.baseSeq = seq;
    this.maxExt = seq;
    this.badSeq = -1;
    this.received = 0;
    this.expectedPrior = 0;
    this.receivedPrior = 0;
  }

  /** Records an SR of this source (for LSR/DLSR and for NTP↔RTP alignment). */
  onSenderReport(sr: Pick<RtcpSenderReport, 'ntpSec' | 'ntpFrac' | 'rtpTimestamp'>, arrivalMs: number): void {
    this.lastSrMiddle = ntpMiddle32(sr.ntpSec, sr.ntpFrac);
    this.lastSrAtMs = arrivalMs;
    this.sr = { unixMs: ntpToUnixMs(sr.ntpSec, sr.ntpFrac), rtpTimestamp: sr.rtpTimestamp, receivedAtMs: arrivalMs };
  }

  private expected(): number {
    return this.maxExt - this.baseSeq + 1;
  }

  /**
   * A report block for this source, and the start of a new reporting interval (fraction lost is measured
   * between two calls, RFC 3550 A.3).
   * @returns null before the first RTP packet.
   */
  reportBlock(nowMs: number): RtcpReportBlock | null {
    if (this.baseSeq < 0) return null;
    const expected = this.expected();
    const expectedInterval = expected - this.expectedPrior;
    const receivedInterval = this.received - this.receivedPrior;
    const lostInterval = expectedInterval - receivedInterval;
    this.expectedPrior = expected;
    this.receivedPrior = this.received;
    const fractionLost = expectedInterval <= 0 || lostInterval <= 0 ? 0 : Math.min(255, Math.floor((lostInterval * 256) / expectedInterval));
    return {
      ssrc: this.ssrc,
      fractionLost,
      cumulativeLost: Math.max(-0x800000, Math.min(0x7fffff, expected - this.received)),
      highestSequence: this.maxExt >>> 0,
      jitter: Math.floor(this.jitterTicks) >>> 0,
      lastSr: this.lastSrMiddle,
      delaySinceLastSr: this.lastSrMiddle === 0 ? 0 : Math.max(0, Math.round(((nowMs - this.lastSrAtMs) * 65536) / 1000)) >>> 0,
    };
  }

  /** Current totals, for the API. */
  summary(): ReceptionSummary {
    const s: ReceptionSummary = {
      packetsReceived: this.received,
      packetsLost: this.baseSeq < 0 ? 0 : this.expected() - this.received,
      jitterMs: (this.jitterTicks * 1000) / this.clockRate,
    };
    if (this.sr) s.lastSr = this.sr;
    return s;
  }
}

/** What a sender learns from the receiver reports about its stream, for the API. */
export interface RemoteReception {
  /** fraction lost in the last interval, 0..1 */
  fractionLost: number;
  packetsLost: number;
  jitterMs: number;
  /** round trip from LSR/DLSR (RFC 3550 §6.4.1), undefined until a report echoes one of our SRs */
  rttMs?: number;
  highestSequence: number;
}

/**
 * Sender side of one outgoing RTP source: counts packets/octets, produces SRs whose RTP timestamp is the
 * current NTP instant mapped onto the stream's RTP clock (extrapolated from the last packet sent), and digests
 * the RRs readers send about it.
 *
 * `nowMs` arguments are Unix milliseconds (they become the NTP timestamp); pass `Date.now()` or a fake clock.
 */
export class RtcpSenderStats {
  private packets = 0;
  private octets = 0;
  private lastRtpTimestamp = 0;
  private lastSentAtMs = Number.NaN;
  private remote: RemoteReception | undefined;

  /**
   * @param ssrc our SSRC
   * @param clockRate RTP clock of the payload format
   */
  constructor(
    readonly ssrc: number,
    readonly clockRate: number,
  ) {}

  /**
   * Records RTP packets sent: their (last) timestamp and payload size (octet count excludes headers, §6.4.1).
   * @param count packets of one frame sent together (same timestamp), 1 by default
   */
  onRtpSent(rtpTimestamp: number, payloadBytes: number, nowMs: number, count = 1): void {
    this.packets = (this.packets + count) >>> 0;
    this.octets = (this.octets + payloadBytes) >>> 0;
    this.lastRtpTimestamp = rtpTimestamp >>> 0;
    this.lastSentAtMs = nowMs;
  }

  /** Packets sent so far (wraps at 2^32 like the SR field). */
  get packetCount(): number {
    return this.packets;
  }

  /**
   * A sender report for `nowMs`, or null before the first packet (RFC 3550 §6.4: a participant that has not
   * sent sends RR instead).
   */
  senderReport(nowMs: number, reports: RtcpReportBlock[] = []): RtcpSenderReport | null {
    if (Number.isNaN(this.lastSentAtMs)) return null;
    const { ntpSec, ntpFrac } = ntpFromUnixMs(nowMs);
    const elapsedTicks = Math.round(((nowMs - this.lastSentAtMs) * this.clockRate) / 1000);
    return {
      type: 'sr',
      ssrc: this.ssrc,
      ntpSec,
      ntpFrac,
      rtpTimestamp: (this.lastRtpTimestamp + elapsedTicks) >>> 0,
      packetCount: this.packets,
      octetCount: this.octets,
      reports,
    };
  }

  /** Digests a report block about our SSRC that arrived at `nowMs`; computes the round trip when possible. */
  onReportBlock(block: RtcpReportBlock, nowMs: number): RemoteReception {
    const r: RemoteReception = {
      fractionLost: block.fractionLost / 256,
      packetsLost: block.cumulativeLost,
      jitterMs: (block.jitter * 1000) / this.clockRate,
      highestSequence: block.highestSequence,
    };
    if (block.lastSr !== 0) {
      const { ntpSec, ntpFrac } = ntpFromUnixMs(nowMs);
      // RFC 3550 §6.4.1: RTT = A - LSR - DLSR, all in 1/65536 s, modulo 2^32
      const rtt = (ntpMiddle32(ntpSec, ntpFrac) - block.lastSr - block.delaySinceLastSr) >>> 0;
      // a value over half the range means clocks or the echo are off: leave RTT unknown
      if (rtt < 0x8000_0000) r.rttMs = (rtt * 1000) / 65536;
    } else if (this.remote?.rttMs !== undefined) {
      r.rttMs = this.remote.rttMs;
    }
    this.remote = r;
    return r;
  }

  /** The latest digest of the readers' reports, if any came. */
  get remoteReception(): RemoteReception | undefined {
    return this.remote;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report interval

/** RFC 3550 §6.2: "the RECOMMENDED value for a fixed minimum interval is 5 seconds". */
export const RTCP_MIN_INTERVAL_MS = 5000;
/** RFC 3550 A.7: the randomization in [0.5, 1.5] biases the mean; dividing by e - 3/2 compensates. */
const RTCP_COMPENSATION = Math.E - 1.5;

/** Inputs of the RTCP interval computation (RFC 3550 A.7 `rtcp_interval`). */
export interface RtcpIntervalInput {
  /** session members, ourselves included */
  members: number;
  /** members that sent RTP recently, ourselves included if we did */
  senders: number;
  /** RTCP bandwidth in octets per second (RFC 3550 §6.2: 5% of the session bandwidth) */
  rtcpBandwidth: number;
  /** whether we sent RTP since the last two reports */
  weSent: boolean;
  /** average compound RTCP packet size in octets, including UDP/IP overhead */
  avgRtcpSize: number;
  /** true before our first report: the minimum is halved */
  initial: boolean;
  /** uniform random in [0, 1); injected so tests are deterministic */
  random: () => number;
}

/**
 * Milliseconds until the next RTCP report (RFC 3550 §6.2, A.7): bandwidth share for senders (25%) and receivers
 * (75%), a 5 s minimum (2.5 s before the first report), randomized by [0.5, 1.5] and compensated by e - 3/2.
 */
export function rtcpIntervalMs(i: RtcpIntervalInput): number {
  const minMs = i.initial ? RTCP_MIN_INTERVAL_MS / 2 : RTCP_MIN_INTERVAL_MS;
  let n = i.members;
  let bw = i.rtcpBandwidth;
  if (i.senders <= i.members * 0.25) {
    if (i.weSent) {
      bw *= 0.25;
      n = i.senders;
    } else {
      bw *= 0.75;
      n -= i.senders;
    }
  }
  let t = bw > 0 ? ((i.avgRtcpSize * n) / bw) * 1000 : minMs;
  if (t < minMs) t = minMs;
  return (t * (i.random() + 0.5)) / RTCP_COMPENSATION;
}
