/**
 * RTMP chunk stream (Adobe RTMP spec 1.0 §5.3): what the reader, the writer and the control-message builders
 * share: message type ids, User Control event ids, the limits, the message shapes and a few byte helpers.
 */
import { LimitError, ParseError } from '../../errors.js';

/** Message type ids (spec §5.4, §7.1). */
export const RtmpMessageType = {
  setChunkSize: 1,
  abort: 2,
  acknowledgement: 3,
  userControl: 4,
  windowAckSize: 5,
  setPeerBandwidth: 6,
  audio: 8,
  video: 9,
  dataAmf3: 15,
  sharedObjectAmf3: 16,
  commandAmf3: 17,
  dataAmf0: 18,
  sharedObjectAmf0: 19,
  commandAmf0: 20,
  aggregate: 22,
} as const;

/** User Control event types (spec §7.1.7). */
export const UserControlEvent = {
  streamBegin: 0,
  streamEof: 1,
  streamDry: 2,
  setBufferLength: 3,
  streamIsRecorded: 4,
  pingRequest: 6,
  pingResponse: 7,
} as const;

/** Chunk size every connection starts with, in both directions (spec §5.4.1). */
export const RTMP_DEFAULT_CHUNK_SIZE = 128;
/**
 * Largest chunk size a peer may set: 16 MiB. A chunk larger than the largest message (the 3-byte length
 * field caps messages at 16 MiB - 1) buys nothing, and the spec's 2^31-1 would only let a peer make us wait
 * on a single huge chunk. Zero is invalid.
 */
export const RTMP_MAX_CHUNK_SIZE = 16 * 1024 * 1024;
/**
 * Default largest message we accept: 8 MiB. The largest real messages are keyframes: a 4K x264 IDR at
 * 50 Mbit/s is 1–3 MB. The protocol allows 16 MiB - 1; we stop well before to bound memory per session.
 */
export const RTMP_DEFAULT_MAX_MESSAGE_LENGTH = 8 * 1024 * 1024;
/**
 * Default most chunk streams (csids) one peer may use: 64. ffmpeg, OBS and Flash use csids 2–8 (one per
 * kind of message); relays that put each stream on its own csid use a few dozen.
 */
export const RTMP_DEFAULT_MAX_CHUNK_STREAMS = 64;
/**
 * Default bound on the bytes preallocated for partially received messages across all chunk streams:
 * twice the message limit, so audio can interleave with a maximal video message while a peer that opens
 * messages on many csids cannot make us allocate 64 × 8 MiB.
 */
export const RTMP_DEFAULT_MAX_PENDING_BYTES = 2 * RTMP_DEFAULT_MAX_MESSAGE_LENGTH;

/** The timestamp field value that announces a 4-byte extended timestamp (spec §5.3.1.3). */
export const EXTENDED = 0xffffff;
/** 2^32: the wire timestamp and the acknowledgement sequence wrap here. */
export const TWO32 = 0x1_0000_0000;
/** `ParseError.format` of chunk-stream errors. */
export const FORMAT = 'rtmp chunk';

/** One RTMP message. */
export interface RtmpMessage {
  /** chunk stream id it arrived on (2 = protocol control) */
  csid: number;
  /** message type id, see {@link RtmpMessageType} */
  type: number;
  /** message stream id (0 = the NetConnection) */
  streamId: number;
  /**
   * Milliseconds. The wire carries 32 bits; the reader extends it across rollovers (~49.7 days), so it
   * keeps increasing past 2^32 (exact up to 2^53).
   */
  timestamp: number;
  /**
   * Message body. From the reader: a view into the pushed chunk when the message came in one chunk,
   * otherwise a buffer allocated once for the message. The reader never writes to either after returning it;
   * copy what you keep beyond the current frame so a small view does not pin a large socket chunk.
   */
  payload: Uint8Array;
}

/** A message to serialize; the payload may be given in parts (e.g. an FLV tag header plus NAL unit views). */
export interface RtmpOutMessage {
  csid: number;
  type: number;
  streamId: number;
  /** ms; written modulo 2^32 */
  timestamp: number;
  payload: Uint8Array | readonly Uint8Array[];
}

/** Reads a 4-byte big-endian value from a control message body; @throws ParseError when shorter. */
export function readU32(p: Uint8Array, what: string): number {
  if (p.length < 4) throw new ParseError(FORMAT, `${what} message has ${p.length} bytes, needs 4`, 0);
  return (((p[0] as number) << 24) | ((p[1] as number) << 16) | ((p[2] as number) << 8) | (p[3] as number)) >>> 0;
}

/** Writes `v` as 4 bytes big-endian at `o`. */
export function write32(out: Uint8Array, o: number, v: number): void {
  out[o] = (v >>> 24) & 0xff;
  out[o + 1] = (v >>> 16) & 0xff;
  out[o + 2] = (v >>> 8) & 0xff;
  out[o + 3] = v & 0xff;
}

/** @throws LimitError unless `size` is an integer in 1..RTMP_MAX_CHUNK_SIZE */
export function checkChunkSize(size: number): void {
  if (!Number.isInteger(size) || size < 1 || size > RTMP_MAX_CHUNK_SIZE) {
    throw new LimitError('rtmp chunk size', RTMP_MAX_CHUNK_SIZE, size);
  }
}
