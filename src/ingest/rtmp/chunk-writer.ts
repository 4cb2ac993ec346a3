/**
 * RTMP chunk stream writer (Adobe RTMP spec 1.0 §5.3): messages in, chunks out, with a fixed fmt-0 form
 * ({@link serializeMessage}) and a header-compressing per-peer form ({@link ChunkStreamWriter}).
 */
import { LimitError, ParseError } from '../../errors.js';
import { checkChunkSize, EXTENDED, FORMAT, RTMP_DEFAULT_CHUNK_SIZE, TWO32, write32, type RtmpOutMessage } from './chunk-common.js';
import { setChunkSizeMessage } from './control-messages.js';

function basicHeaderLength(csid: number): number {
  return csid < 64 ? 1 : csid < 320 ? 2 : 3;
}

function payloadLength(p: Uint8Array | readonly Uint8Array[]): number {
  if (p instanceof Uint8Array) return p.length;
  let n = 0;
  for (const part of p) n += part.length;
  return n;
}

function checkCsid(csid: number): void {
  if (!Number.isInteger(csid) || csid < 2 || csid > 65599) throw new ParseError(FORMAT, `csid ${csid} out of 2..65599`);
}

/** Writes the basic header; @returns the offset after it. */
function writeBasic(out: Uint8Array, o: number, fmt: number, csid: number): number {
  if (csid < 64) {
    out[o] = (fmt << 6) | csid;
    return o + 1;
  }
  if (csid < 320) {
    out[o] = fmt << 6;
    out[o + 1] = csid - 64;
    return o + 2;
  }
  out[o] = (fmt << 6) | 1;
  out[o + 1] = (csid - 64) & 0xff;
  out[o + 2] = (csid - 64) >> 8;
  return o + 3;
}

function write24(out: Uint8Array, o: number, v: number): void {
  out[o] = (v >>> 16) & 0xff;
  out[o + 1] = (v >>> 8) & 0xff;
  out[o + 2] = v & 0xff;
}

/**
 * Serializes one message into chunks: the first chunk with header `fmt` (0–3), the rest fmt 3 (repeating the
 * extended timestamp when there is one, as the spec's errata and ffmpeg do). Sizes first, allocates once.
 */
function serialize(msg: RtmpOutMessage, chunkSize: number, fmt: number, tsField: number): Uint8Array {
  checkCsid(msg.csid);
  const len = payloadLength(msg.payload);
  if (len > 0xffffff) throw new LimitError('rtmp message length', 0xffffff, len);
  const bl = basicHeaderLength(msg.csid);
  const ml = fmt === 0 ? 11 : fmt === 1 ? 7 : fmt === 2 ? 3 : 0;
  const ext = tsField >= EXTENDED ? 4 : 0;
  const chunks = Math.max(1, Math.ceil(len / chunkSize));
  const out = new Uint8Array(bl + ml + ext + len + (chunks - 1) * (bl + ext));
  let o = writeBasic(out, 0, fmt, msg.csid);
  if (fmt <= 2) write24(out, o, ext > 0 ? EXTENDED : tsField);
  if (fmt <= 1) {
    write24(out, o + 3, len);
    out[o + 6] = msg.type;
  }
  if (fmt === 0) {
    const s = msg.streamId >>> 0;
    out[o + 7] = s & 0xff;
    out[o + 8] = (s >>> 8) & 0xff;
    out[o + 9] = (s >>> 16) & 0xff;
    out[o + 10] = s >>> 24;
  }
  o += ml;
  if (ext > 0) {
    write32(out, o, tsField);
    o += 4;
  }
  // copy the payload, inserting a fmt-3 header every chunkSize bytes
  let inChunk = 0;
  const parts = msg.payload instanceof Uint8Array ? [msg.payload] : msg.payload;
  for (const part of parts) {
    let p = 0;
    while (p < part.length) {
      if (inChunk === chunkSize) {
        o = writeBasic(out, o, 3, msg.csid);
        if (ext > 0) {
          write32(out, o, tsField);
          o += 4;
        }
        inChunk = 0;
      }
      const n = Math.min(part.length - p, chunkSize - inChunk);
      out.set(part.subarray(p, p + n), o);
      o += n;
      p += n;
      inChunk += n;
    }
  }
  return out;
}

/**
 * Serializes a message with a fmt-0 first chunk (absolute timestamp) and fmt-3 continuations. The bytes
 * depend only on the message and the chunk size, never on what was sent before, so one serialization can be
 * written to every reader that uses the same outgoing chunk size.
 */
export function serializeMessage(msg: RtmpOutMessage, chunkSize: number): Uint8Array {
  checkChunkSize(chunkSize);
  return serialize(msg, chunkSize, 0, Math.floor(msg.timestamp) % TWO32);
}

/** Options of a {@link ChunkStreamWriter}. */
export interface ChunkStreamWriterOptions {
  /** outgoing chunk size (default 128; change with {@link ChunkStreamWriter.setChunkSize}) */
  chunkSize?: number;
  /** always write fmt-0 headers with absolute timestamps (default false: compress with fmt 1/2/3) */
  absolute?: boolean;
}

/** Last header written on a csid, for header compression. */
interface WriterCs {
  streamId: number;
  type: number;
  length: number;
  timestamp: number;
  /** delta the last header defined, or -1 when it was fmt 0 (a fmt-3 new message would be ambiguous) */
  delta: number;
}

/**
 * Serializes messages for one peer. In compressing mode headers shrink to fmt 1/2/3 when stream id,
 * length, type or delta repeat; fmt 3 starts a new message only after a fmt-1/2 header with the same delta,
 * since readers disagree on what a fmt 3 after a fmt 0 means.
 */
export class ChunkStreamWriter {
  private size: number;
  private readonly absolute: boolean;
  private readonly last = new Map<number, WriterCs>();

  constructor(opts: ChunkStreamWriterOptions = {}) {
    this.size = opts.chunkSize ?? RTMP_DEFAULT_CHUNK_SIZE;
    checkChunkSize(this.size);
    this.absolute = opts.absolute ?? false;
  }

  /** The outgoing chunk size. */
  get chunkSize(): number {
    return this.size;
  }

  /** Serializes `msg` (one allocation). */
  write(msg: RtmpOutMessage): Uint8Array {
    if (this.absolute) return serializeMessage(msg, this.size);
    const ts = Math.floor(msg.timestamp);
    const len = payloadLength(msg.payload);
    const prev = this.last.get(msg.csid);
    const delta = prev === undefined ? -1 : ts - prev.timestamp;
    let fmt: number;
    let field: number;
    if (prev === undefined || prev.streamId !== msg.streamId || delta < 0 || delta >= TWO32) {
      fmt = 0;
      field = ts % TWO32;
    } else if (prev.length !== len || prev.type !== msg.type) {
      fmt = 1;
      field = delta;
    } else if (prev.delta !== delta || delta >= EXTENDED) {
      fmt = 2;
      field = delta;
    } else {
      fmt = 3;
      field = delta;
    }
    this.last.set(msg.csid, { streamId: msg.streamId, type: msg.type, length: len, timestamp: ts, delta: fmt === 0 ? -1 : delta });
    return serialize(msg, this.size, fmt, field);
  }

  /**
   * Builds the Set Chunk Size message (sent with the current size, which it fits in) and switches to `size`
   * for everything written after it.
   */
  setChunkSize(size: number): Uint8Array {
    checkChunkSize(size);
    const bytes = this.write(setChunkSizeMessage(size));
    this.size = size;
    return bytes;
  }
}
