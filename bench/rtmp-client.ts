import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { connectInto } from './proc.js';

/**
 * A deliberately cheap RTMP player for load tests: it does the simple handshake, connect / createStream / play by
 * hand, parses only chunk headers (plus the few bytes it needs: control messages, commands, the first two bytes of
 * each video message) and discards the media. It is written independently of streamgate's own RTMP code so the
 * benchmark does not share its bugs, and it reads into one buffer shared by every client of the process.
 */

/** RTMP message types the client looks at (Adobe RTMP spec §5.4, §7.1). */
const MSG_SET_CHUNK_SIZE = 1;
const MSG_ACK = 3;
const MSG_USER_CONTROL = 4;
const MSG_WINDOW_ACK_SIZE = 5;
const MSG_VIDEO = 9;
const MSG_AMF0_COMMAND = 20;
/** User control events (spec §7.1.7). */
const UC_SET_BUFFER_LENGTH = 3;
const UC_PING_REQUEST = 6;
const UC_PING_RESPONSE = 7;
/** Handshake sizes (spec §5.2): C0/S0 one byte, C1/S1/C2/S2 1536 bytes each. */
const HANDSHAKE_SIZE = 1536;
const S0S1S2_SIZE = 1 + 2 * HANDSHAKE_SIZE;
/** Chunk size every RTMP peer starts with (spec §5.4.1). */
const DEFAULT_CHUNK_SIZE = 128;
/** Control and command messages are kept to be decoded; anything larger is not a message this client needs. */
const MAX_KEPT_MESSAGE = 64 * 1024;
/** Command chunk stream ids, as ffmpeg uses them. */
const CSID_COMMAND = 3;
const CSID_PLAY = 8;
const CSID_CONTROL = 2;

/** One C1 for every client: the simple handshake only echoes it, so its content does not matter. */
const C0C1 = Buffer.concat([Buffer.of(3), Buffer.alloc(8), randomBytes(HANDSHAKE_SIZE - 8)]);

/** What a client observed; times are `performance.now()` milliseconds, -1 when it did not happen. */
export interface PlayStats {
  connectAtMs: number;
  playStartAtMs: number;
  /** first video message carrying a picture (AVC NALU), keyframe or not */
  firstFrameAtMs: number;
  /** first video keyframe: the first picture a player can show */
  firstKeyAtMs: number;
  /** RTMP timestamp of that keyframe */
  firstKeyTs: number;
  /** video pictures received (sequence headers not counted) */
  frames: number;
  /** newest video timestamp received */
  lastVideoTs: number;
  bytes: number;
  error: string | null;
  closed: boolean;
}

/** Options of {@link RtmpPlayClient}. */
export interface PlayClientOptions {
  host: string;
  port: number;
  app: string;
  name: string;
  /** receive buffer shared by every client of the process (data is parsed synchronously, never kept) */
  readBuffer: Buffer;
  /** called for every picture with its timestamp; the caller tracks the live edge */
  onFrame?(client: RtmpPlayClient, ts: number, keyframe: boolean): void;
  /** called once on the first keyframe */
  onFirstKeyframe?(client: RtmpPlayClient, ts: number): void;
}

/** Per chunk stream id: the last header and the message in progress. */
interface ChunkStream {
  ts: number;
  delta: number;
  len: number;
  type: number;
  sid: number;
  /** bytes of the current message still to come; 0 between messages */
  left: number;
  extended: boolean;
  /** body of a kept (control/command) message */
  body: Buffer | null;
  got: number;
  /** first two payload bytes of a video message */
  b0: number;
  b1: number;
}

const enum S {
  Handshake,
  Basic0,
  Basic1,
  Basic2,
  Header,
  ExtTs,
  Body,
}

/** Message header sizes by chunk format (spec §5.3.1.2). */
const HEADER_SIZE = [11, 7, 3, 0];

/** A raw-TCP RTMP player. */
export class RtmpPlayClient {
  readonly stats: PlayStats;
  private readonly socket: net.Socket;
  private state = S.Handshake;
  private readonly hs = Buffer.allocUnsafe(S0S1S2_SIZE);
  private hsGot = 0;
  private inChunkSize = DEFAULT_CHUNK_SIZE;
  private readonly streams = new Map<number, ChunkStream>();
  private fmt = 0;
  private csid = 0;
  private readonly hdr = Buffer.alloc(11);
  private hdrGot = 0;
  private ext = 0;
  private extGot = 0;
  private cs: ChunkStream | undefined;
  private chunkLeft = 0;
  private ackWindow = 0;
  private ackedAt = 0;

  constructor(private readonly opts: PlayClientOptions) {
    this.stats = {
      connectAtMs: performance.now(),
      playStartAtMs: -1,
      firstFrameAtMs: -1,
      firstKeyAtMs: -1,
      firstKeyTs: -1,
      frames: 0,
      lastVideoTs: -1,
      bytes: 0,
      error: null,
      closed: false,
    };
    this.socket = connectInto(opts.host, opts.port, opts.readBuffer, (buf, n) => this.onData(buf as Buffer, n));
    this.socket.on('connect', () => this.socket.write(C0C1));
    this.socket.on('error', (err) => this.fail(`socket: ${err.message}`));
    this.socket.on('close', () => {
      this.stats.closed = true;
    });
  }

  /** Closes the connection. */
  destroy(): void {
    this.socket.destroy();
  }

  private fail(msg: string): void {
    if (this.stats.error === null) this.stats.error = msg;
    this.socket.destroy();
  }

  private onData(buf: Buffer, n: number): void {
    this.stats.bytes += n;
    let i = 0;
    if (this.state === S.Handshake) {
      const take = Math.min(n, S0S1S2_SIZE - this.hsGot);
      buf.copy(this.hs, this.hsGot, 0, take);
      this.hsGot += take;
      i = take;
      if (this.hsGot < S0S1S2_SIZE) return;
      // C2 echoes S1; then connect right away (servers accept it pipelined after C2)
      this.socket.write(Buffer.concat([this.hs.subarray(1, 1 + HANDSHAKE_SIZE), this.command(CSID_COMMAND, 0, connectCommand(this.opts))]));
      this.state = S.Basic0;
    }
    try {
      this.parse(buf, i, n);
    } catch (err) {
      this.fail(`protocol: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (this.ackWindow > 0 && this.stats.bytes - this.ackedAt >= this.ackWindow) {
      this.ackedAt = this.stats.bytes;
      const body = Buffer.alloc(4);
      body.writeUInt32BE(this.stats.bytes >>> 0);
      this.socket.write(this.message(CSID_CONTROL, MSG_ACK, 0, body));
    }
  }

  /** The chunk stream parser: a byte state machine for headers, bulk skips for bodies. */
  private parse(buf: Buffer, start: number, end: number): void {
    let i = start;
    while (i < end) {
      switch (this.state) {
        case S.Basic0: {
          const b = buf[i++]!;
          this.fmt = b >> 6;
          this.csid = b & 0x3f;
          this.hdrGot = 0;
          if (this.csid === 0) this.state = S.Basic1;
          else if (this.csid === 1) this.state = S.Basic2;
          else this.headerStart();
          break;
        }
        case S.Basic1:
          this.csid = 64 + buf[i++]!;
          this.headerStart();
          break;
        case S.Basic2:
          // two bytes after a csid of 1: second byte + 256 * third byte + 64
          if (this.hdrGot === 0) {
            this.csid = 64 + buf[i++]!;
            this.hdrGot = 1;
          } else {
            this.csid += 256 * buf[i++]!;
            this.hdrGot = 0;
            this.headerStart();
          }
          break;
        case S.Header: {
          const need = HEADER_SIZE[this.fmt]!;
          const take = Math.min(need - this.hdrGot, end - i);
          buf.copy(this.hdr, this.hdrGot, i, i + take);
          this.hdrGot += take;
          i += take;
          if (this.hdrGot === need) this.headerDone();
          break;
        }
        case S.ExtTs:
          this.ext = this.ext * 256 + buf[i++]!;
          if (++this.extGot === 4) this.extDone();
          break;
        case S.Body: {
          const cs = this.cs!;
          const take = Math.min(this.chunkLeft, end - i);
          if (cs.body) buf.copy(cs.body, cs.got, i, i + take);
          else if (cs.type === MSG_VIDEO && cs.got < 2) {
            if (cs.got === 0) cs.b0 = buf[i]!;
            if (cs.got + take >= 2) cs.b1 = buf[i + 1 - cs.got]!;
          }
          i += take;
          cs.got += take;
          cs.left -= take;
          this.chunkLeft -= take;
          if (cs.left === 0) this.messageDone(cs);
          if (this.chunkLeft === 0) this.state = S.Basic0;
          break;
        }
        case S.Handshake:
          return;
      }
    }
  }

  private headerStart(): void {
    let cs = this.streams.get(this.csid);
    if (!cs) {
      if (this.fmt !== 0) throw new Error(`chunk stream ${this.csid} starts with format ${this.fmt}`);
      cs = { ts: 0, delta: 0, len: 0, type: 0, sid: 0, left: 0, extended: false, body: null, got: 0, b0: 0, b1: 0 };
      this.streams.set(this.csid, cs);
    }
    this.cs = cs;
    this.hdrGot = 0;
    if (this.fmt === 3) this.headerDone();
    else this.state = S.Header;
  }

  private headerDone(): void {
    const cs = this.cs!;
    const h = this.hdr;
    if (this.fmt < 3) {
      if (cs.left !== 0) throw new Error(`new header on chunk stream ${this.csid} inside a message`);
      const t = h.readUIntBE(0, 3);
      cs.extended = t === 0xffffff;
      if (this.fmt === 0) {
        cs.ts = t;
        cs.delta = 0;
      } else {
        cs.delta = t;
        cs.ts += t;
      }
      if (this.fmt <= 1) {
        cs.len = h.readUIntBE(3, 3);
        cs.type = h[6]!;
      }
      if (this.fmt === 0) cs.sid = h.readUInt32LE(7);
      this.startMessage(cs);
    } else if (cs.left === 0) {
      cs.ts += cs.delta;
      this.startMessage(cs);
    }
    if (cs.extended) {
      this.ext = 0;
      this.extGot = 0;
      this.state = S.ExtTs;
    } else {
      this.bodyStart(cs);
    }
  }

  private extDone(): void {
    const cs = this.cs!;
    // the extended field replaces the 0xffffff of a format 0-2 header; on format 3 it repeats it (ignored here)
    if (this.fmt === 0) cs.ts = this.ext;
    else if (this.fmt < 3) {
      cs.ts += this.ext - 0xffffff;
      cs.delta = this.ext;
    }
    this.bodyStart(cs);
  }

  private startMessage(cs: ChunkStream): void {
    cs.left = cs.len;
    cs.got = 0;
    const keep = cs.type !== MSG_VIDEO && cs.type !== 8 && cs.type !== 18 && cs.len <= MAX_KEPT_MESSAGE;
    cs.body = keep ? Buffer.allocUnsafe(cs.len) : null;
  }

  private bodyStart(cs: ChunkStream): void {
    this.chunkLeft = Math.min(this.inChunkSize, cs.left);
    if (cs.left === 0) {
      this.messageDone(cs);
      this.state = S.Basic0;
    } else {
      this.state = S.Body;
    }
  }

  private messageDone(cs: ChunkStream): void {
    const body = cs.body;
    cs.body = null;
    switch (cs.type) {
      case MSG_VIDEO:
        this.video(cs);
        return;
      case MSG_SET_CHUNK_SIZE:
        if (body && body.length >= 4) this.inChunkSize = body.readUInt32BE(0) & 0x7fffffff;
        if (this.inChunkSize < 1) throw new Error('chunk size 0');
        return;
      case MSG_WINDOW_ACK_SIZE:
        if (body && body.length >= 4) this.ackWindow = body.readUInt32BE(0);
        return;
      case MSG_USER_CONTROL:
        if (body && body.length >= 6 && body.readUInt16BE(0) === UC_PING_REQUEST) {
          const pong = Buffer.alloc(6);
          pong.writeUInt16BE(UC_PING_RESPONSE, 0);
          body.copy(pong, 2, 2, 6);
          this.socket.write(this.message(CSID_CONTROL, MSG_USER_CONTROL, 0, pong));
        }
        return;
      case MSG_AMF0_COMMAND:
        if (body) this.command0(body);
        return;
    }
  }

  private video(cs: ChunkStream): void {
    const codec = cs.b0 & 0x0f;
    // AVC (codec 7) pictures are packet type 1; type 0 is the sequence header, 2 the end of sequence
    if (cs.got < 2 || codec !== 7 || cs.b1 !== 1) return;
    const keyframe = cs.b0 >> 4 === 1;
    const s = this.stats;
    s.frames++;
    s.lastVideoTs = cs.ts;
    if (s.firstFrameAtMs < 0) s.firstFrameAtMs = performance.now();
    this.opts.onFrame?.(this, cs.ts, keyframe);
    if (keyframe && s.firstKeyAtMs < 0) {
      s.firstKeyAtMs = performance.now();
      s.firstKeyTs = cs.ts;
      this.opts.onFirstKeyframe?.(this, cs.ts);
    }
  }

  private command0(body: Buffer): void {
    const values = decodeAmf0(body);
    const [name, txn] = values;
    if (name === '_result' && txn === 1) {
      this.socket.write(this.command(CSID_COMMAND, 0, encodeAmf0(['createStream', 2, null])));
    } else if (name === '_result' && txn === 2) {
      const id = values[3];
      if (typeof id !== 'number') {
        this.fail('createStream: no stream id');
        return;
      }
      const buffer = Buffer.alloc(10);
      buffer.writeUInt16BE(UC_SET_BUFFER_LENGTH, 0);
      buffer.writeUInt32BE(id, 2);
      buffer.writeUInt32BE(1000, 6);
      this.socket.write(
        Buffer.concat([
          this.message(CSID_CONTROL, MSG_USER_CONTROL, 0, buffer),
          // -2000: "live or recorded", what ffmpeg sends by default
          this.command(CSID_PLAY, id, encodeAmf0(['play', 0, null, this.opts.name, -2000])),
        ]),
      );
    } else if (name === '_error') {
      this.fail(`command refused: ${JSON.stringify(values.slice(3))}`);
    } else if (name === 'onStatus') {
      const info = values[3];
      const code = info && typeof info === 'object' && !Array.isArray(info) ? info.code : undefined;
      if (code === 'NetStream.Play.Start' && this.stats.playStartAtMs < 0) this.stats.playStartAtMs = performance.now();
      else if (typeof code === 'string' && /Failed|NotFound|BadName|Rejected/.test(code)) this.fail(`play refused: ${code}`);
    }
  }

  private command(csid: number, sid: number, body: Buffer): Buffer {
    return this.message(csid, MSG_AMF0_COMMAND, sid, body);
  }

  /** One message, chunked at the default chunk size (this client never changes its outgoing size). */
  private message(csid: number, type: number, sid: number, body: Buffer): Buffer {
    const chunks = Math.max(1, Math.ceil(body.length / DEFAULT_CHUNK_SIZE));
    const out = Buffer.alloc(12 + body.length + (chunks - 1));
    out[0] = csid;
    out.writeUIntBE(body.length, 4, 3);
    out[7] = type;
    out.writeUInt32LE(sid, 8);
    let o = 12;
    for (let c = 0; c < chunks; c++) {
      if (c > 0) out[o++] = 0xc0 | csid;
      const from = c * DEFAULT_CHUNK_SIZE;
      o += body.copy(out, o, from, Math.min(body.length, from + DEFAULT_CHUNK_SIZE));
    }
    return out;
  }
}

function connectCommand(o: PlayClientOptions): Buffer {
  return encodeAmf0([
    'connect',
    1,
    {
      app: o.app,
      flashVer: 'LNX 9,0,124,2',
      tcUrl: `rtmp://${o.host}:${o.port}/${o.app}`,
      fpad: false,
      capabilities: 15,
      audioCodecs: 4071,
      videoCodecs: 252,
      videoFunction: 1,
    },
  ]);
}

/** The AMF0 values this client sends and reads. */
export type Amf = number | string | boolean | null | undefined | Amf[] | { [k: string]: Amf };

/** Encodes AMF0 values (number, boolean, string, null, object) back to back. */
export function encodeAmf0(values: Amf[]): Buffer {
  const parts: Buffer[] = [];
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const h = Buffer.alloc(2);
    h.writeUInt16BE(b.length);
    parts.push(h, b);
  };
  const value = (v: Amf): void => {
    if (typeof v === 'number') {
      const b = Buffer.alloc(9);
      b.writeDoubleBE(v, 1);
      parts.push(b);
    } else if (typeof v === 'boolean') parts.push(Buffer.of(1, v ? 1 : 0));
    else if (typeof v === 'string') {
      parts.push(Buffer.of(2));
      str(v);
    } else if (v === null || v === undefined || Array.isArray(v)) parts.push(Buffer.of(5));
    else {
      parts.push(Buffer.of(3));
      for (const [k, x] of Object.entries(v)) {
        str(k);
        value(x);
      }
      parts.push(Buffer.of(0, 0, 9));
    }
  };
  for (const v of values) value(v);
  return Buffer.concat(parts);
}

/** Decodes back-to-back AMF0 values; stops at the first type it does not know (AMF3 switch, references). */
export function decodeAmf0(b: Buffer): Amf[] {
  let o = 0;
  const str = (long: boolean): string => {
    const n = long ? b.readUInt32BE(o) : b.readUInt16BE(o);
    o += long ? 4 : 2;
    const s = b.toString('utf8', o, o + n);
    o += n;
    return s;
  };
  const props = (): { [k: string]: Amf } => {
    const obj: { [k: string]: Amf } = {};
    for (;;) {
      const k = str(false);
      if (b[o] === 9) {
        o++;
        return obj;
      }
      obj[k] = value();
    }
  };
  const value = (): Amf => {
    const t = b[o++];
    switch (t) {
      case 0:
        o += 8;
        return b.readDoubleBE(o - 8);
      case 1:
        return b[o++] !== 0;
      case 2:
        return str(false);
      case 3:
        return props();
      case 5:
      case 6:
        return null;
      case 8:
        o += 4;
        return props();
      case 10: {
        const n = b.readUInt32BE(o);
        o += 4;
        const a: Amf[] = [];
        for (let k = 0; k < n; k++) a.push(value());
        return a;
      }
      case 11:
        o += 10;
        return b.readDoubleBE(o - 10);
      case 12:
        return str(true);
      default:
        throw new Error(`AMF0 type ${String(t)}`);
    }
  };
  const out: Amf[] = [];
  try {
    while (o < b.length) out.push(value());
  } catch {
    // a value this client cannot read ends the list; commands it acts on come before such values
  }
  return out;
}
