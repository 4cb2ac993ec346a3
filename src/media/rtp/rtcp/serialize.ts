/**
 * Serializes `RtcpPacket`s back to wire bytes (RFC 3550 §6, RFC 4585 §6.1), one packet or a compound packet.
 */
import { writeUint16BE, writeUint32BE } from '../../bytes.js';
import { RTP_VERSION } from '../packet.js';
import {
  RTCP_BYE,
  RTCP_PSFB,
  RTCP_REPORT_BLOCK_SIZE,
  RTCP_RR,
  RTCP_RTPFB,
  RTCP_SDES,
  RTCP_SR,
  SDES_MAX_TEXT_BYTES,
  type RtcpPacket,
  type RtcpReportBlock,
  type RtcpSdesChunk,
} from './types.js';

const utf8Encoder = new TextEncoder();

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
