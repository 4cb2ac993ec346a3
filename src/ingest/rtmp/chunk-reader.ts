/**
 * RTMP chunk stream reader (Adobe RTMP spec 1.0 §5.3), sans-I/O: TCP bytes in, messages out. Set Chunk Size,
 * Abort and Window Acknowledgement Size (§5.4) are applied inside the reader because they change how the very
 * next chunk is parsed.
 */
import { LimitError, ParseError } from '../../errors.js';
import {
  EXTENDED,
  FORMAT,
  readU32,
  RTMP_DEFAULT_CHUNK_SIZE,
  RTMP_DEFAULT_MAX_CHUNK_STREAMS,
  RTMP_DEFAULT_MAX_MESSAGE_LENGTH,
  RTMP_DEFAULT_MAX_PENDING_BYTES,
  RTMP_MAX_CHUNK_SIZE,
  RtmpMessageType,
  TWO32,
  type RtmpMessage,
} from './chunk-common.js';

/**
 * First buffer of a message that spans chunks: 64 KiB holds a typical video frame of a 2–4 Mbit/s stream; larger
 * messages double it as their chunks arrive.
 */
const MESSAGE_BUFFER_START = 64 * 1024;

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
      // memory follows the bytes that arrive, not the length announced: a peer announcing 8 MiB and sending nothing
      // costs 64 KiB (the limits above still count the announced length)
      cs.buf = new Uint8Array(Math.min(cs.length, MESSAGE_BUFFER_START));
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
    let buf = cs.buf as Uint8Array;
    while (this.curLeft > 0) {
      if (this.avail === 0) return false;
      const head = this.queue[0] as Uint8Array;
      const n = Math.min(this.curLeft, head.length - this.qOff);
      if (cs.got + n > buf.length) {
        // double (copying what arrived) up to the announced length: at most ~2× the message in copies
        const grown = new Uint8Array(Math.min(cs.length, Math.max(buf.length * 2, cs.got + n)));
        grown.set(buf.subarray(0, cs.got));
        cs.buf = buf = grown;
      }
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
    this.pendingBytes -= cs.length;
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
