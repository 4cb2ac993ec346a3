/**
 * A frame's RTP packets framed for RTSP interleaved TCP (RFC 2326 §10.12), once per frame and channel for every
 * TCP reader.
 */
import type { Frame } from '../../media/bus/frame.js';

/** `$`, the first byte of an interleaved frame (RFC 2326 §10.12). */
const INTERLEAVED_MAGIC = 0x24;
/** Per frame: its packets framed for interleaved channel `channel`, for the TCP readers that use that channel. */
const framedCache = new WeakMap<Frame, { channel: number; bytes: Buffer }[]>();
/** The last framed frame (see lastFrame in packet-cache.ts). */
let lastFramed: { frame: Frame | undefined; channel: number; bytes: Buffer | undefined } = { frame: undefined, channel: -1, bytes: undefined };

/**
 * A frame's RTP packets as consecutive interleaved frames (`$`, channel, 16-bit length, packet) in one Buffer,
 * made once per frame and channel (nearly every client asks for channels 0-1 and 2-3, so in practice once per
 * frame) and written whole to every TCP reader: one socket write per frame instead of two per packet. A Buffer,
 * so the socket takes it as is.
 */
export function interleavedFramesOf(frame: Frame, packets: readonly Uint8Array[], channel: number): Buffer {
  // the same one-entry memo as framePackets: consecutive readers of a frame usually share the channel
  if (frame === lastFramed.frame && channel === lastFramed.channel && lastFramed.bytes) return lastFramed.bytes;
  let list = framedCache.get(frame);
  if (list) {
    for (const f of list) {
      if (f.channel !== channel) continue;
      lastFramed = { frame, channel, bytes: f.bytes };
      return f.bytes;
    }
  }
  let size = 0;
  for (const p of packets) size += 4 + p.length;
  const bytes = Buffer.allocUnsafe(size);
  let o = 0;
  for (const p of packets) {
    // packets never exceed RTP_MAX_MTU / PASSTHROUGH_MAX_PACKET, far below the 16-bit length
    bytes[o] = INTERLEAVED_MAGIC;
    bytes[o + 1] = channel;
    bytes[o + 2] = p.length >>> 8;
    bytes[o + 3] = p.length & 0xff;
    bytes.set(p, o + 4);
    o += 4 + p.length;
  }
  if (!list) {
    list = [];
    framedCache.set(frame, list);
  }
  list.push({ channel, bytes });
  lastFramed = { frame, channel, bytes };
  return bytes;
}
