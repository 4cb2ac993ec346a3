/**
 * RTMP chunk stream (Adobe RTMP spec 1.0 §5.3), sans-I/O.
 *
 * {@link ChunkStreamReader} turns TCP bytes into messages; {@link ChunkStreamWriter} and
 * {@link serializeMessage} turn messages into chunks. Protocol control messages (§5.4) and User Control
 * events (§6.2) have builders here; their effect on the reader (chunk size, abort, acknowledgement window)
 * is applied inside the reader because it changes how the very next chunk is parsed.
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
const EXTENDED = 0xffffff;
const TWO32 = 0x1_0000_0000;
const FORMAT = 'rtmp chunk';

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

/** Limits of one {@link ChunkStreamReader}; each defaults to the constant of the same name. */
export interface ChunkStreamReaderOptions {
  maxMessageLength?: number;
  maxChunkStreams?: number;
  maxPendingBytes?: number;
}

/** Per-csid state of the reader: the last header (for fmt 1/2/3) and the message being assembled. */
interface CsState {
  readonly csid: number;
  hasHeader: boolean;
  type: number;
  streamId: number;
  length: number;
  /** last timestamp on this csid, 32-bit wire value, and how many times it wrapped */
  raw: number;
  epoch: number;
  /** value of the last timestamp field (delta for fmt 1/2, absolute for fmt 0), reused by a fmt-3 new message */
  delta: number;
  /** the last header carried an extended timestamp, so fmt-3 chunks may repeat it */
  extended: boolean;
  /** the last extended timestamp value read, to recognize a repeat */
  extValue: number;
  /** message in progress (null when none) */
  buf: Uint8Array | null;
  got: number;
  msgTimestamp: number;
}

function basicHeaderLength(csid: number): number {
  return csid < 64 ? 1 : csid < 320 ? 2 : 3;
}

/**
 * Parses the chunk stream of one peer. `push()` returns the messages completed by the new bytes, in order.
 * Set Chunk Size, Abort and Window Acknowledgement Size from the peer are applied here (and returned too).
 * After a throw the reader is in an undefined state: close the connection.
 */
export class ChunkStreamReader {
  /** Chunk size the peer writes with (changed by its Set Chunk Size). */
  chunkSize = RTMP_DEFAULT_CHUNK_SIZE;
  /** Window the peer asked us to acknowledge after (its Window Acknowledgement Size), 0 = none yet. */
  peerWindowAckSize = 0;
  /** Total bytes pushed. */
  bytesReceived = 0;
  /**
   * Whether the peer repeats the extended timestamp in fmt-3 chunks, as the spec (2012 errata), Flash, ffmpeg
   * and OBS do, or not, as some older encoders do. Detected on the first such chunk (null until then) by
   * comparing the next 4 bytes with the expected value, then trusted.
   */
  peerRepeatsExtendedTimestamp: boolean | null = null;

  private readonly maxMessageLength: number;
  private readonly maxChunkStreams: number;
  private readonly maxPendingBytes: number;
  private readonly streams = new Map<number, CsState>();
  private pendingBytes = 0;
  private lastTimestamp = 0;
  private lastAckAt = 0;
  /** input not yet consumed: only a partial chunk header (< 22 bytes) survives a push */
  private queue: Uint8Array[] = [];
  private qOff = 0;
  private avail = 0;
  private readonly scratch = new Uint8Array(32);
  /** the csid whose chunk payload is being consumed, and bytes of that chunk still to come */
  private cur: CsState | null = null;
  private curLeft = 0;

  constructor(opts: ChunkStreamReaderOptions = {}) {
    this.maxMessageLength = opts.maxMessageLength ?? RTMP_DEFAULT_MAX_MESSAGE_LENGTH;
    this.maxChunkStreams = opts.maxChunkStreams ?? RTMP_DEFAULT_MAX_CHUNK_STREAMS;
    this.maxPendingBytes = opts.maxPendingBytes ?? RTMP_DEFAULT_MAX_PENDING_BYTES;
  }

  /**
   * Feeds bytes from the peer.
   * @returns the messages completed by these bytes; payloads are views into `chunk` or owned buffers (see
   *   {@link RtmpMessage.payload})
   * @throws ParseError on a malformed chunk, LimitError past a limit (chunk size 0 or > 16 MiB, message
   *   length, chunk streams, pending bytes)
   */
  push(chunk: Uint8Array): RtmpMessage[] {
    this.bytesReceived += chunk.length;
    const out: RtmpMessage[] = [];
    if (chunk.length === 0) return out;
    this.queue.push(chunk);
    this.avail += chunk.length;
    for (;;) {
      if (this.cur !== null) {
        if (!this.copyPayload(out)) break;
        continue;
      }
      if (!this.readChunkHeader(out)) break;
    }
    return out;
  }

  /**
   * The sequence number to acknowledge when at least the peer's window of bytes arrived since the last
   * acknowledgement (spec §5.4.3), else null. Call after push(); send {@link acknowledgementMessage}.
   */
  takeAcknowledgement(): number | null {
    if (this.peerWindowAckSize <= 0 || this.bytesReceived - this.lastAckAt < this.peerWindowAckSize) return null;
    this.lastAckAt = this.bytesReceived;
    return this.bytesReceived % TWO32;
  }

  /** A contiguous view of the next n input bytes (scratch when they span pushes; read it at once), or null. */
  private peek(n: number): Uint8Array | null {
    if (this.avail < n) return null;
    const h = this.queue[0] as Uint8Array;
    if (h.length - this.qOff >= n) return h.subarray(this.qOff, this.qOff + n);
    let filled = 0;
    let off = this.qOff;
    for (let i = 0; filled < n; i++) {
      const b = this.queue[i] as Uint8Array;
      const take = Math.min(b.length - off, n - filled);
      this.scratch.set(b.subarray(off, off + take), filled);
      filled += take;
      off = 0;
    }
    return this.scratch.subarray(0, n);
  }

  private consume(n: number): void {
    this.avail -= n;
    while (n > 0) {
      const h = this.queue[0] as Uint8Array;
      const left = h.length - this.qOff;
      if (n < left) {
        this.qOff += n;
        return;
      }
      n -= left;
      this.queue.shift();
      this.qOff = 0;
    }
  }

  private state(csid: number): CsState {
    let cs = this.streams.get(csid);
    if (cs === undefined) {
      if (this.streams.size >= this.maxChunkStreams) {
        throw new LimitError('rtmp chunk streams', this.maxChunkStreams, this.streams.size + 1);
      }
      cs = {
        csid,
        hasHeader: false, type: 0, streamId: 0, length: 0, raw: 0, epoch: 0, delta: 0,
        extended: false, extValue: 0, buf: null, got: 0, msgTimestamp: 0,
      };
      this.streams.set(csid, cs);
    }
    return cs;
  }

  /** Parses one chunk header if complete; @returns false when more bytes are needed. */
  private readChunkHeader(out: RtmpMessage[]): boolean {
    const b0 = this.peek(1);
    if (b0 === null) return false;
    const first = b0[0] as number;
    const fmt = first >> 6;
    const low = first & 0x3f;
    const bl = low === 0 ? 2 : low === 1 ? 3 : 1;
    const ml = fmt === 0 ? 11 : fmt === 1 ? 7 : fmt === 2 ? 3 : 0;
    const h = this.peek(bl + ml);
    if (h === null) return false;
    const csid = low === 0 ? 64 + (h[1] as number) : low === 1 ? 64 + (h[1] as number) + (h[2] as number) * 256 : low;
    let tsField = 0;
    let length = 0;
    let type = 0;
    let streamId = 0;
    if (fmt <= 2) tsField = ((h[bl] as number) << 16) | ((h[bl + 1] as number) << 8) | (h[bl + 2] as number);
    if (fmt <= 1) {
      length = ((h[bl + 3] as number) << 16) | ((h[bl + 4] as number) << 8) | (h[bl + 5] as number);
      type = h[bl + 6] as number;
    }
    if (fmt === 0) {
      streamId = ((h[bl + 7] as number) | ((h[bl + 8] as number) << 8) | ((h[bl + 9] as number) << 16) | ((h[bl + 10] as number) << 24)) >>> 0;
    }
    const cs = this.state(csid);
    if (fmt !== 0 && !cs.hasHeader) {
      throw new ParseError(FORMAT, `fmt ${fmt} chunk on csid ${csid} with no previous header`, 0);
    }
    // extended timestamp: announced by the field for fmt 0-2, inherited from the last header for fmt 3
    let hl = bl + ml;
    let ext = -1;
    if (fmt <= 2 ? tsField === EXTENDED : cs.extended) {
      const e = this.peek(hl + 4);
      if (e === null) return false;
      const v = (((e[hl] as number) << 24) | ((e[hl + 1] as number) << 16) | ((e[hl + 2] as number) << 8) | (e[hl + 3] as number)) >>> 0;
      if (fmt <= 2) {
        ext = v;
        hl += 4;
      } else {
        this.peerRepeatsExtendedTimestamp ??= v === cs.extValue;
        if (this.peerRepeatsExtendedTimestamp) hl += 4;
      }
    }
    this.consume(hl);

    const continuing = fmt === 3 && cs.buf !== null;
    if (!continuing) {
      if (cs.buf !== null) this.drop(cs); // a new header cuts off an unfinished message: the peer gave up on it
      if (fmt <= 2) {
        cs.extended = ext >= 0;
        if (ext >= 0) cs.extValue = ext;
      }
      const field = ext >= 0 ? ext : tsField;
      if (fmt === 0) {
        this.absolute(cs, field);
        cs.delta = field;
        cs.streamId = streamId;
      } else {
        if (fmt !== 3) cs.delta = field;
        this.advance(cs, cs.delta);
      }
      if (fmt <= 1) {
        cs.length = length;
        cs.type = type;
      }
      cs.hasHeader = true;
      if (cs.length > this.maxMessageLength) {
        throw new LimitError('rtmp message length', this.maxMessageLength, cs.length);
      }
      cs.msgTimestamp = cs.epoch * TWO32 + cs.raw;
      this.lastTimestamp = cs.msgTimestamp;
      if (cs.length === 0) {
        this.emit(out, cs, new Uint8Array(0));
        return true;
      }
      const n = Math.min(cs.length, this.chunkSize);
      // fast path: the whole message is this one chunk and its bytes are contiguous in the input: a view
      if (n === cs.length && this.queue.length > 0) {
        const head = this.queue[0] as Uint8Array;
        if (head.length - this.qOff >= n) {
          const view = head.subarray(this.qOff, this.qOff + n);
          this.consume(n);
          this.emit(out, cs, view);
          return true;
        }
      }
      if (this.pendingBytes + cs.length > this.maxPendingBytes) {
        throw new LimitError('rtmp pending message bytes', this.maxPendingBytes, this.pendingBytes + cs.length);
      }
      this.pendingBytes += cs.length;
      cs.buf = new Uint8Array(cs.length);
      cs.got = 0;
      this.cur = cs;
      this.curLeft = n;
      return true;
    }
    this.cur = cs;
    this.curLeft = Math.min(cs.length - cs.got, this.chunkSize);
    return true;
  }

  /** Sets the wire timestamp of a fmt-0 header, counting a wrap when it jumps back by more than half the range. */
  private absolute(cs: CsState, raw: number): void {
    if (!cs.hasHeader) {
      // first message on this csid: take the epoch that puts it nearest to the last timestamp of any csid
      cs.epoch = Math.max(0, Math.round((this.lastTimestamp - raw) / TWO32));
    } else if (raw - cs.raw < -TWO32 / 2) {
      cs.epoch++;
    } else if (raw - cs.raw > TWO32 / 2 && cs.epoch > 0) {
      cs.epoch--; // a late message from before the wrap
    }
    cs.raw = raw;
  }

  private advance(cs: CsState, delta: number): void {
    const sum = cs.raw + delta;
    if (sum >= TWO32) {
      cs.epoch++;
      cs.raw = sum - TWO32;
    } else {
      cs.raw = sum;
    }
  }

  /** Copies available payload of the current chunk; @returns false when input ran out. */
  private copyPayload(out: RtmpMessage[]): boolean {
    const cs = this.cur as CsState;
    const buf = cs.buf as Uint8Array;
    while (this.curLeft > 0) {
      if (this.avail === 0) return false;
      const head = this.queue[0] as Uint8Array;
      const n = Math.min(this.curLeft, head.length - this.qOff);
      buf.set(head.subarray(this.qOff, this.qOff + n), cs.got);
      cs.got += n;
      this.curLeft -= n;
      this.consume(n);
    }
    this.cur = null;
    if (cs.got === cs.length) {
      cs.buf = null;
      this.pendingBytes -= cs.length;
      this.emit(out, cs, buf);
    }
    return true;
  }

  private drop(cs: CsState): void {
    if (cs.buf === null) return;
    this.pendingBytes -= cs.buf.length;
    cs.buf = null;
    cs.got = 0;
  }

  private emit(out: RtmpMessage[], cs: CsState, payload: Uint8Array): void {
    const msg: RtmpMessage = { csid: cs.csid, type: cs.type, streamId: cs.streamId, timestamp: cs.msgTimestamp, payload };
    this.control(msg);
    out.push(msg);
  }

  /** Applies protocol control messages that change how the next chunks are read. */
  private control(msg: RtmpMessage): void {
    switch (msg.type) {
      case RtmpMessageType.setChunkSize: {
        // bit 31 must be 0 (spec §5.4.1); read as unsigned so a set bit shows up as over the limit
        const size = readU32(msg.payload, 'set chunk size');
        if (size === 0 || size > RTMP_MAX_CHUNK_SIZE) throw new LimitError('rtmp chunk size', RTMP_MAX_CHUNK_SIZE, size);
        this.chunkSize = size;
        break;
      }
      case RtmpMessageType.abort: {
        const cs = this.streams.get(readU32(msg.payload, 'abort'));
        if (cs !== undefined && cs !== this.cur) this.drop(cs);
        break;
      }
      case RtmpMessageType.windowAckSize:
        this.peerWindowAckSize = readU32(msg.payload, 'window acknowledgement size');
        break;
      default:
        break;
    }
  }
}

function readU32(p: Uint8Array, what: string): number {
  if (p.length < 4) throw new ParseError(FORMAT, `${what} message has ${p.length} bytes, needs 4`, 0);
  return (((p[0] as number) << 24) | ((p[1] as number) << 16) | ((p[2] as number) << 8) | (p[3] as number)) >>> 0;
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

function write32(out: Uint8Array, o: number, v: number): void {
  out[o] = (v >>> 24) & 0xff;
  out[o + 1] = (v >>> 16) & 0xff;
  out[o + 2] = (v >>> 8) & 0xff;
  out[o + 3] = v & 0xff;
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

function checkChunkSize(size: number): void {
  if (!Number.isInteger(size) || size < 1 || size > RTMP_MAX_CHUNK_SIZE) {
    throw new LimitError('rtmp chunk size', RTMP_MAX_CHUNK_SIZE, size);
  }
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

const CONTROL_CSID = 2;

function control(type: number, payload: Uint8Array): RtmpOutMessage {
  return { csid: CONTROL_CSID, type, streamId: 0, timestamp: 0, payload };
}

function u32Payload(v: number): Uint8Array {
  const p = new Uint8Array(4);
  write32(p, 0, v >>> 0);
  return p;
}

/** Set Chunk Size (type 1). */
export function setChunkSizeMessage(size: number): RtmpOutMessage {
  checkChunkSize(size);
  return control(RtmpMessageType.setChunkSize, u32Payload(size));
}

/** Abort Message (type 2): the peer drops the partial message on `csid`. */
export function abortMessage(csid: number): RtmpOutMessage {
  return control(RtmpMessageType.abort, u32Payload(csid));
}

/** Acknowledgement (type 3) of `sequence` bytes received. */
export function acknowledgementMessage(sequence: number): RtmpOutMessage {
  return control(RtmpMessageType.acknowledgement, u32Payload(sequence));
}

/** Window Acknowledgement Size (type 5): the peer should acknowledge every `size` bytes. */
export function windowAckSizeMessage(size: number): RtmpOutMessage {
  return control(RtmpMessageType.windowAckSize, u32Payload(size));
}

/** Set Peer Bandwidth (type 6); limit type 0 hard, 1 soft, 2 dynamic. */
export function setPeerBandwidthMessage(size: number, limitType: 0 | 1 | 2): RtmpOutMessage {
  const p = new Uint8Array(5);
  write32(p, 0, size >>> 0);
  p[4] = limitType;
  return control(RtmpMessageType.setPeerBandwidth, p);
}

/** User Control message (type 4): 2-byte event type, then 4-byte values. */
export function userControlMessage(event: number, ...values: number[]): RtmpOutMessage {
  const p = new Uint8Array(2 + 4 * values.length);
  p[0] = event >> 8;
  p[1] = event & 0xff;
  values.forEach((v, i) => write32(p, 2 + 4 * i, v >>> 0));
  return control(RtmpMessageType.userControl, p);
}

/** User Control Stream Begin: the stream is ready for media. */
export function streamBeginMessage(streamId: number): RtmpOutMessage {
  return userControlMessage(UserControlEvent.streamBegin, streamId);
}

/** User Control Stream EOF: playback of the stream ended. */
export function streamEofMessage(streamId: number): RtmpOutMessage {
  return userControlMessage(UserControlEvent.streamEof, streamId);
}

/** User Control Ping Request carrying our clock. */
export function pingRequestMessage(timestamp: number): RtmpOutMessage {
  return userControlMessage(UserControlEvent.pingRequest, timestamp);
}

/** User Control Ping Response echoing the peer's ping timestamp. */
export function pingResponseMessage(timestamp: number): RtmpOutMessage {
  return userControlMessage(UserControlEvent.pingResponse, timestamp);
}

/** A parsed User Control event: `value` is the stream id or ping timestamp, `bufferMs` for Set Buffer Length. */
export interface UserControl {
  event: number;
  value: number;
  bufferMs?: number;
}

/** Parses a User Control message body. @throws ParseError when shorter than 6 bytes (10 for Set Buffer Length) */
export function parseUserControl(p: Uint8Array): UserControl {
  if (p.length < 6) throw new ParseError('rtmp user control', `${p.length} bytes, needs 6`, 0);
  const event = ((p[0] as number) << 8) | (p[1] as number);
  const value = readU32(p.subarray(2), 'user control');
  if (event !== UserControlEvent.setBufferLength) return { event, value };
  if (p.length < 10) throw new ParseError('rtmp user control', `set buffer length has ${p.length} bytes, needs 10`, 0);
  return { event, value, bufferMs: readU32(p.subarray(6), 'user control') };
}

/** Reads the 4-byte big-endian value of Set Chunk Size, Abort, Acknowledgement or Window Ack Size. */
export function parseControlU32(p: Uint8Array): number {
  return readU32(p, 'protocol control');
}
