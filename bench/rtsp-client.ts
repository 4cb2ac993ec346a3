import dgram from 'node:dgram';
import net from 'node:net';
import { connectInto } from './proc.js';

/**
 * A deliberately cheap RTSP player for load tests: OPTIONS, DESCRIBE, SETUP (every media, TCP interleaved or UDP)
 * and PLAY by hand, then it only counts RTP packets by sequence number and notes the first keyframe. It is
 * written independently of streamgate's RTSP code so the benchmark does not share its bugs; over TCP it reads
 * into one buffer shared by every client of the process and keeps at most 16 bytes of each packet.
 */

/** How a player receives media. */
export type RtspTransportKind = 'tcp' | 'udp';

/** Per SDP media: what arrived. Sequence numbers are extended past 16-bit wraps. */
export interface MediaCount {
  video: boolean;
  /** RTP packets received (duplicates included; the server sends none) */
  received: number;
  /** highest extended sequence number, -1 before the first packet */
  highest: number;
  /** bytes of RTP received */
  bytes: number;
}

/** What a client observed; times are `performance.now()` milliseconds, -1 when it did not happen. */
export interface RtspPlayStats {
  connectAtMs: number;
  playAtMs: number;
  firstPacketAtMs: number;
  /** first video packet of a keyframe (IDR slice, SPS, or an aggregate/fragment starting one) */
  firstKeyAtMs: number;
  media: MediaCount[];
  error: string | null;
  closed: boolean;
}

/** Options of {@link RtspPlayClient}. */
export interface RtspPlayOptions {
  host: string;
  port: number;
  path: string;
  transport: RtspTransportKind;
  /** receive buffer shared by every TCP client of the process (data is parsed synchronously, never kept) */
  readBuffer: Buffer;
}

/** RTSP session timeout is 60 s by default (RFC 2326 §12.37): a UDP player sends GET_PARAMETER well within it. */
const KEEPALIVE_MS = 20_000;
/** Largest RTSP response the client accepts (DESCRIBE answers are ~1 KB). */
const MAX_RESPONSE = 64 * 1024;
/** Bytes of each interleaved packet kept to read its header and first payload byte(s). */
const HEAD = 16;

const enum P {
  /** between messages: '$' starts an interleaved frame, anything else a response */
  Start,
  Channel,
  Len0,
  Len1,
  Body,
  Text,
}

/** A parsed RTSP response. */
interface Response {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** H.264 NAL unit types that start a picture a decoder can begin with (RFC 6184 payload first byte). */
function startsKeyframe(head: Uint8Array, len: number): boolean {
  const cc = (head[0]! & 0x0f) * 4;
  const ext = (head[0]! & 0x10) !== 0;
  let o = 12 + cc;
  if (ext) return true; // our server sends no extensions; do not misread one
  if (o >= Math.min(len, HEAD)) return false;
  const type = head[o]! & 0x1f;
  if (type === 5 || type === 7) return true;
  if (type === 24) {
    // STAP-A: the first aggregated unit's header is after the 2-byte size
    o += 3;
    return o < HEAD && o < len && ((head[o]! & 0x1f) === 7 || (head[o]! & 0x1f) === 5);
  }
  if (type === 28 && o + 1 < HEAD && o + 1 < len) return (head[o + 1]! & 0x80) !== 0 && (head[o + 1]! & 0x1f) === 5;
  return false;
}

/** An RTSP player; see the module comment. */
export class RtspPlayClient {
  readonly stats: RtspPlayStats;
  private readonly socket: net.Socket;
  private readonly url: string;
  private cseq = 0;
  private step: 'OPTIONS' | 'DESCRIBE' | 'SETUP' | 'PLAY' | 'playing' = 'OPTIONS';
  private session = '';
  private controls: { url: string; video: boolean }[] = [];
  private setupIndex = 0;
  private udp: { rtp: dgram.Socket; rtcp: dgram.Socket }[] = [];
  private keepalive: NodeJS.Timeout | undefined;
  // parser state
  private p = P.Start;
  private channel = 0;
  private left = 0;
  private len = 0;
  private readonly head = new Uint8Array(HEAD);
  private headGot = 0;
  private text: Buffer = Buffer.alloc(0);
  private textNeed = -1;

  constructor(private readonly opts: RtspPlayOptions) {
    this.url = `rtsp://${opts.host}:${opts.port}/${opts.path}`;
    this.stats = { connectAtMs: performance.now(), playAtMs: -1, firstPacketAtMs: -1, firstKeyAtMs: -1, media: [], error: null, closed: false };
    this.socket = connectInto(opts.host, opts.port, opts.readBuffer, (buf, n) => {
      try {
        this.onData(buf, n);
      } catch (err) {
        this.fail(`protocol: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
    this.socket.on('connect', () => this.request('OPTIONS', this.url));
    this.socket.on('error', (err) => this.fail(`socket: ${err.message}`));
    this.socket.on('close', () => {
      this.stats.closed = true;
      this.stopUdp();
    });
  }

  /** Closes the connection and the UDP sockets. */
  destroy(): void {
    this.socket.destroy();
    this.stopUdp();
  }

  private stopUdp(): void {
    if (this.keepalive) clearInterval(this.keepalive);
    for (const u of this.udp.splice(0)) {
      u.rtp.close();
      u.rtcp.close();
    }
  }

  private fail(msg: string): void {
    if (this.stats.error === null) this.stats.error = msg;
    this.destroy();
  }

  private request(method: string, url: string, headers: string[] = []): void {
    const lines = [`${method} ${url} RTSP/1.0`, `CSeq: ${++this.cseq}`, 'User-Agent: streamgate-bench', ...headers];
    if (this.session) lines.push(`Session: ${this.session}`);
    this.socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  }

  private onData(buf: Uint8Array, n: number): void {
    let i = 0;
    while (i < n) {
      switch (this.p) {
        case P.Start:
          if (buf[i] === 0x24) {
            this.p = P.Channel;
            i++;
          } else {
            this.p = P.Text;
            this.textNeed = -1;
          }
          break;
        case P.Channel:
          this.channel = buf[i++]!;
          this.p = P.Len0;
          break;
        case P.Len0:
          this.len = buf[i++]! << 8;
          this.p = P.Len1;
          break;
        case P.Len1:
          this.len |= buf[i++]!;
          this.left = this.len;
          this.headGot = 0;
          this.p = this.len > 0 ? P.Body : P.Start;
          break;
        case P.Body: {
          const take = Math.min(this.left, n - i);
          if (this.headGot < HEAD) {
            const h = Math.min(HEAD - this.headGot, take);
            this.head.set(buf.subarray(i, i + h), this.headGot);
            this.headGot += h;
          }
          i += take;
          this.left -= take;
          if (this.left === 0) {
            this.p = P.Start;
            if (this.channel % 2 === 0) this.onRtp(this.channel / 2, this.head, this.len);
          }
          break;
        }
        case P.Text:
          i = this.onText(buf, i, n);
          break;
      }
    }
  }

  /** Gathers one response (headers and Content-Length body); returns where it stopped reading. */
  private onText(buf: Uint8Array, i: number, n: number): number {
    // responses are rare (set-up and keepalives): copying them out of the shared buffer costs nothing
    const before = this.text.length;
    this.text = Buffer.concat([this.text, Buffer.from(buf.subarray(i, n))]);
    if (this.textNeed < 0) {
      const end = this.text.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.text.length > MAX_RESPONSE) throw new Error('response header too long');
        return n;
      }
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(this.text.subarray(0, end).toString('latin1'));
      this.textNeed = end + 4 + (cl ? Number(cl[1]) : 0);
      if (this.textNeed > MAX_RESPONSE) throw new Error('response too long');
    }
    if (this.text.length < this.textNeed) return n;
    const msg = this.text.subarray(0, this.textNeed).toString('latin1');
    const used = this.textNeed - before; // bytes of this read that belong to the response
    this.text = Buffer.alloc(0);
    this.textNeed = -1;
    this.p = P.Start;
    this.onResponse(parseResponse(msg));
    return i + used;
  }

  private onResponse(r: Response): void {
    if (this.step === 'playing') return; // keepalive answers
    if (r.status !== 200) throw new Error(`${this.step} answered ${r.status}`);
    const session = r.headers.get('session');
    if (session && !this.session) this.session = session.split(';')[0]!.trim();
    switch (this.step) {
      case 'OPTIONS':
        this.step = 'DESCRIBE';
        this.request('DESCRIBE', this.url, ['Accept: application/sdp']);
        break;
      case 'DESCRIBE': {
        const base = r.headers.get('content-base') ?? `${this.url}/`;
        this.controls = mediaControls(r.body, base);
        if (this.controls.length === 0) throw new Error('DESCRIBE: no media');
        this.stats.media = this.controls.map((c) => ({ video: c.video, received: 0, highest: -1, bytes: 0 }));
        this.step = 'SETUP';
        void this.setupNext();
        break;
      }
      case 'SETUP':
        if (this.setupIndex < this.controls.length) {
          void this.setupNext();
        } else {
          this.step = 'PLAY';
          this.request('PLAY', this.url, ['Range: npt=0.000-']);
        }
        break;
      case 'PLAY':
        this.step = 'playing';
        this.stats.playAtMs = performance.now();
        if (this.opts.transport === 'udp') {
          this.keepalive = setInterval(() => this.request('GET_PARAMETER', this.url), KEEPALIVE_MS);
          this.keepalive.unref();
        }
        break;
    }
  }

  private async setupNext(): Promise<void> {
    const k = this.setupIndex++;
    const c = this.controls[k]!;
    let transport: string;
    if (this.opts.transport === 'tcp') {
      transport = `RTP/AVP/TCP;unicast;interleaved=${2 * k}-${2 * k + 1}`;
    } else {
      const pair = await this.bindPair(k);
      if (!pair) return;
      transport = `RTP/AVP;unicast;client_port=${pair[0]}-${pair[1]}`;
    }
    this.request('SETUP', c.url, [`Transport: ${transport}`]);
  }

  /** Two UDP sockets for media k; packets counted as they come. */
  private async bindPair(k: number): Promise<[number, number] | null> {
    const bind = (): Promise<dgram.Socket> =>
      new Promise((resolve, reject) => {
        const s = dgram.createSocket('udp4');
        s.once('error', reject);
        s.bind(0, this.opts.host, () => {
          s.off('error', reject);
          resolve(s);
        });
      });
    try {
      const rtp = await bind();
      const rtcp = await bind();
      if (this.stats.closed) {
        rtp.close();
        rtcp.close();
        return null;
      }
      rtp.on('message', (m: Buffer) => this.onRtp(k, m, m.length));
      rtcp.on('message', () => {});
      this.udp.push({ rtp, rtcp });
      return [rtp.address().port, rtcp.address().port];
    } catch (err) {
      this.fail(`udp: ${err instanceof Error ? err.message : String(err)}`);
      return null;
    }
  }

  /** One RTP packet of media `k`: `head` holds at least its first min(len, 16) bytes. */
  private onRtp(k: number, head: Uint8Array, len: number): void {
    const m = this.stats.media[k];
    if (!m || len < 12) return;
    const now = performance.now();
    if (this.stats.firstPacketAtMs < 0) this.stats.firstPacketAtMs = now;
    if (m.video && this.stats.firstKeyAtMs < 0 && startsKeyframe(head, len)) this.stats.firstKeyAtMs = now;
    const seq = (head[2]! << 8) | head[3]!;
    m.received++;
    m.bytes += len;
    if (m.highest < 0) m.highest = seq;
    else {
      const d = (((seq - (m.highest & 0xffff)) & 0xffff) << 16) >> 16; // signed 16-bit distance
      if (d > 0) m.highest += d;
    }
  }
}

function parseResponse(text: string): Response {
  const end = text.indexOf('\r\n\r\n');
  const lines = text.slice(0, end).split('\r\n');
  const m = /^RTSP\/1\.0 (\d{3})/.exec(lines[0] ?? '');
  if (!m) throw new Error(`not an RTSP response: ${JSON.stringify((lines[0] ?? '').slice(0, 60))}`);
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':');
    if (c > 0) headers.set(l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim());
  }
  return { status: Number(m[1]), headers, body: text.slice(end + 4) };
}

/** Control URLs of the SDP's media sections, in order (RFC 2326 C.1.1: relative to Content-Base). */
function mediaControls(sdp: string, base: string): { url: string; video: boolean }[] {
  const out: { url: string; video: boolean }[] = [];
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) out.push({ url: base, video: line.startsWith('m=video') });
    else if (line.startsWith('a=control:') && out.length > 0) {
      const c = line.slice('a=control:'.length).trim();
      out[out.length - 1]!.url = /^rtsp:\/\//i.test(c) ? c : c === '*' ? base : `${base.replace(/\/?$/, '/')}${c}`;
    }
  }
  return out;
}
