/**
 * RTSP 1.0 messages (RFC 2326): a push parser for one TCP connection that yields requests, responses and
 * `$`-interleaved binary frames (§10.12), serializers, and the header values RTSP sessions need (CSeq, Session,
 * Transport, RTP-Info).
 *
 * Sans-I/O: bytes in, messages out. Every bound on network input is a named constant below; crossing one throws
 * `LimitError`, malformed input throws `ParseError`. After either, the connection must be closed: the parser does
 * not resynchronize.
 */
import { LimitError, ParseError } from '../../errors.js';

const FORMAT = 'rtsp';

/** The version we speak and write. */
export const RTSP_VERSION = 'RTSP/1.0';

/**
 * Longest header line (request/status line included). Real lines stay far below: Digest `Authorization` ~400 B,
 * RTP-Info for 4 tracks ~400 B, a Transport offer list ~300 B. 8 KiB is nginx's `large_client_header_buffers`
 * line size; a 1 MB line from a broken or hostile client fails here before it is buffered whole.
 */
export const MAX_HEADER_LINE_BYTES = 8 * 1024;
/** Largest head (start line + headers), the default of Node's HTTP parser (`--max-http-header-size`, 16 KiB). */
export const MAX_HEAD_BYTES = 16 * 1024;
/** Most header lines per message; ffmpeg, GStreamer and VLC send 3–8 and cameras answer with ~10. */
export const MAX_HEADER_COUNT = 64;
/** Longest request URL; RTSP URLs are scheme + host + a path of at most a few hundred characters + query. */
export const MAX_URL_LENGTH = 2048;
/**
 * Largest body (Content-Length). Bodies are SDP (0.5–3 KB from cameras, see test/fixtures/sdp) and
 * GET/SET_PARAMETER text; 64 KiB matches the SDP parser's own bound.
 */
export const MAX_BODY_BYTES = 64 * 1024;

/** `LimitError.what` values, so a server can choose the status code (414, 413, 400). */
export const LIMIT_URL = 'RTSP URL length';
/** See LIMIT_URL. */
export const LIMIT_BODY = 'RTSP Content-Length';
/** See LIMIT_URL. */
export const LIMIT_HEADER_LINE = 'RTSP header line bytes';
/** See LIMIT_URL. */
export const LIMIT_HEAD = 'RTSP head bytes';
/** See LIMIT_URL. */
export const LIMIT_HEADER_COUNT = 'RTSP header count';

/** An ordered, case-insensitive header list; repeated names are kept (WWW-Authenticate: Digest + Basic). */
export class RtspHeaders {
  private readonly list: [string, string][] = [];

  /** @param init header name/value pairs, in order */
  constructor(init: Iterable<readonly [string, string]> | Readonly<Record<string, string>> = []) {
    const pairs = Symbol.iterator in init ? (init as Iterable<readonly [string, string]>) : Object.entries(init);
    for (const [k, v] of pairs) this.list.push([k, v]);
  }

  /** First value of `name`, or undefined. */
  get(name: string): string | undefined {
    const n = name.toLowerCase();
    return this.list.find(([k]) => k.toLowerCase() === n)?.[1];
  }

  /** Every value of `name`, in order. */
  getAll(name: string): string[] {
    const n = name.toLowerCase();
    return this.list.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Replaces every `name` header by one with `value` (appended at the end when new, else in the first place). */
  set(name: string, value: string): this {
    const n = name.toLowerCase();
    const i = this.list.findIndex(([k]) => k.toLowerCase() === n);
    if (i < 0) {
      this.list.push([name, value]);
      return this;
    }
    this.list[i] = [name, value];
    for (let j = this.list.length - 1; j > i; j--) if ((this.list[j] as [string, string])[0].toLowerCase() === n) this.list.splice(j, 1);
    return this;
  }

  /** Adds a header, keeping existing ones of the same name. */
  append(name: string, value: string): this {
    this.list.push([name, value]);
    return this;
  }

  delete(name: string): this {
    const n = name.toLowerCase();
    for (let j = this.list.length - 1; j >= 0; j--) if ((this.list[j] as [string, string])[0].toLowerCase() === n) this.list.splice(j, 1);
    return this;
  }

  /** The pairs in order. */
  entries(): readonly (readonly [string, string])[] {
    return this.list;
  }

  get size(): number {
    return this.list.length;
  }
}

/** A request. `body` is a view (or one joined copy when it spanned chunks); empty when there is none. */
export interface RtspRequest {
  kind: 'request';
  method: string;
  url: string;
  version: string;
  headers: RtspHeaders;
  body: Uint8Array;
}

/** A response. */
export interface RtspResponse {
  kind: 'response';
  version: string;
  status: number;
  reason: string;
  headers: RtspHeaders;
  body: Uint8Array;
}

/** A `$`-interleaved binary frame (RFC 2326 §10.12): RTP/RTCP over the RTSP connection. */
export interface RtspInterleavedFrame {
  kind: 'interleaved';
  /** 0..255, as negotiated by `Transport: interleaved=` */
  channel: number;
  /** the frame's bytes: a view of the pushed chunk, or one joined copy when it spanned chunks */
  data: Uint8Array;
}

/** What the parser yields. */
export type RtspMessage = RtspRequest | RtspResponse | RtspInterleavedFrame;

const EMPTY = new Uint8Array(0);
const DOLLAR = 0x24;
const CR = 0x0d;
const LF = 0x0a;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

/*
 * RFC 2326 §6 and §7 (after HTTP/1.1):
 *
 *   Request      = Method SP Request-URI SP RTSP-Version CRLF *(header CRLF) CRLF [ message-body ]
 *   Response     = RTSP-Version SP Status-Code SP Reason-Phrase CRLF *(header CRLF) CRLF [ message-body ]
 *   header       = field-name ":" [ field-value ]   ; continuation lines start with SP or HT
 *
 * §10.12, interleaved binary data:
 *
 *   +--------+---------+---------------------+----------------------------+
 *   | '$'    | channel | length (16 bits BE) | data (length bytes)        |
 *   +--------+---------+---------------------+----------------------------+
 *
 * Bare LF line ends are accepted, and CR/LF between messages is skipped (clients send it as keepalive).
 */

/**
 * Push parser for one RTSP connection: `push(chunk)` returns the messages completed by that chunk, the same list
 * whatever the chunk boundaries are.
 *
 * Buffer ownership: returned bodies and frame data are views into the pushed chunks when they lie in one chunk,
 * so pass chunks that are not reused afterwards (Node's socket `data` buffers are fresh per event). The parser
 * never writes into a chunk.
 */
export class RtspParser {
  private chunks: Uint8Array[] = [];
  private first = 0; // index of the chunk holding the read position (consumed chunks before it are dropped lazily)
  private offset = 0; // read position in chunks[first]
  private available = 0;
  private state: 'start' | 'head' | 'body' | 'frame' = 'start';
  // head scanning, relative to the read position
  private scanned = 0;
  private lineStart = 0;
  private lines = 0;
  private scanChunk = 0;
  private scanOffset = 0;
  private pending: RtspRequest | RtspResponse | undefined;
  private need = 0;
  private channel = 0;

  /** Bytes received but not yet part of a returned message. */
  get buffered(): number {
    return this.available;
  }

  /**
   * Feeds bytes.
   * @returns complete messages, in order (views into the pushed chunks; see the class doc).
   * @throws ParseError on malformed input, LimitError when a bound is crossed; the connection must close then.
   */
  push(chunk: Uint8Array): RtspMessage[] {
    if (chunk.length > 0) {
      this.chunks.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this.available += chunk.length;
    }
    const out: RtspMessage[] = [];
    for (;;) {
      if (this.state === 'start') {
        while (this.available > 0) {
          const b = this.byteAt(0);
          if (b !== CR && b !== LF) break;
          this.skip(1);
        }
        if (this.available === 0) break;
        if (this.byteAt(0) === DOLLAR) {
          if (this.available < 4) break;
          this.channel = this.byteAt(1);
          this.need = (this.byteAt(2) << 8) | this.byteAt(3);
          this.skip(4);
          this.state = 'frame';
        } else {
          const b = this.byteAt(0);
          // a request method or "RTSP/": anything else is binary garbage, refused at once
          if (!((b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a))) {
            throw new ParseError(FORMAT, `unexpected byte 0x${b.toString(16).padStart(2, '0')} at the start of a message`, 0);
          }
          this.state = 'head';
          this.resetScan();
        }
      }
      if (this.state === 'frame') {
        if (this.available < this.need) break;
        out.push({ kind: 'interleaved', channel: this.channel, data: this.take(this.need) });
        this.state = 'start';
        continue;
      }
      if (this.state === 'head') {
        const end = this.scanHead();
        if (end < 0) break;
        const msg = parseHead(this.take(end));
        const length = contentLength(msg.headers);
        if (length === 0) {
          out.push(msg);
          this.state = 'start';
          continue;
        }
        this.pending = msg;
        this.need = length;
        this.state = 'body';
      }
      if (this.state === 'body') {
        if (this.available < this.need) break;
        const msg = this.pending as RtspRequest | RtspResponse;
        msg.body = this.take(this.need);
        this.pending = undefined;
        out.push(msg);
        this.state = 'start';
      }
    }
    return out;
  }

  private resetScan(): void {
    this.scanned = 0;
    this.lineStart = 0;
    this.lines = 0;
    this.scanChunk = this.first;
    this.scanOffset = this.offset;
  }

  /**
   * Continues scanning the head for its empty line, enforcing the line, head and count limits on the way, so an
   * endless line fails as soon as it crosses MAX_HEADER_LINE_BYTES.
   * @returns the head's length including the final line end, or -1 when more bytes are needed.
   */
  private scanHead(): number {
    while (this.scanChunk < this.chunks.length) {
      const c = this.chunks[this.scanChunk] as Uint8Array;
      while (this.scanOffset < c.length) {
        const b = c[this.scanOffset] as number;
        this.scanOffset++;
        this.scanned++;
        if (b === LF) {
          const len = this.scanned - 1 - this.lineStart; // without LF
          const cr = len > 0 && this.prevByteIsCr();
          if (len - (cr ? 1 : 0) === 0) return this.scanned; // empty line: end of head
          this.lines++;
          if (this.lines > MAX_HEADER_COUNT + 1) throw new LimitError(LIMIT_HEADER_COUNT, MAX_HEADER_COUNT, this.lines - 1);
          this.lineStart = this.scanned;
        } else if (this.scanned - this.lineStart > MAX_HEADER_LINE_BYTES + 1) {
          throw new LimitError(LIMIT_HEADER_LINE, MAX_HEADER_LINE_BYTES, this.scanned - this.lineStart);
        }
        if (this.scanned > MAX_HEAD_BYTES) throw new LimitError(LIMIT_HEAD, MAX_HEAD_BYTES, this.scanned);
      }
      this.scanChunk++;
      this.scanOffset = 0;
    }
    return -1; // the next push continues at chunks[scanChunk]
  }

  private prevByteIsCr(): boolean {
    return this.byteAt(this.scanned - 2) === CR;
  }

  /** Byte `i` after the read position (i < available). */
  private byteAt(i: number): number {
    let k = this.first;
    let pos = this.offset + i;
    for (;;) {
      const c = this.chunks[k] as Uint8Array;
      if (pos < c.length) return c[pos] as number;
      pos -= c.length;
      k++;
    }
  }

  private skip(n: number): void {
    this.available -= n;
    while (n > 0) {
      const c = this.chunks[this.first] as Uint8Array;
      const left = c.length - this.offset;
      if (n < left) {
        this.offset += n;
        break;
      }
      n -= left;
      this.chunks[this.first] = EMPTY; // release the chunk
      this.first++;
      this.offset = 0;
    }
    // drop consumed chunks in batches: no O(n) shift per chunk when data arrives a byte at a time
    if (this.first === this.chunks.length) {
      this.chunks = [];
      this.first = 0;
    } else if (this.first >= 64) {
      this.chunks = this.chunks.slice(this.first);
      this.first = 0;
    }
  }

  /** The next `n` bytes: a view when they lie in one chunk, else one copy joining them. */
  private take(n: number): Uint8Array {
    if (n === 0) return EMPTY;
    const first = this.chunks[this.first] as Uint8Array;
    let out: Uint8Array;
    if (first.length - this.offset >= n) {
      out = first.subarray(this.offset, this.offset + n);
    } else {
      out = new Uint8Array(n);
      let o = 0;
      let k = this.first;
      let from = this.offset;
      while (o < n) {
        const c = this.chunks[k] as Uint8Array;
        const part = c.subarray(from, Math.min(c.length, from + (n - o)));
        out.set(part, o);
        o += part.length;
        k++;
        from = 0;
      }
    }
    this.skip(n);
    return out;
  }
}

function parseHead(head: Uint8Array): RtspRequest | RtspResponse {
  // header values are ASCII by spec; URLs may carry UTF-8 (decoded separately below)
  const text = latin1.decode(head);
  const rawLines = text.split(/\r?\n/);
  while (rawLines.length > 0 && rawLines[rawLines.length - 1] === '') rawLines.pop();
  const start = rawLines[0] ?? '';
  const headers = new RtspHeaders();
  let offset = Buffer.byteLength(start, 'latin1') + 1;
  for (let i = 1; i < rawLines.length; i++) {
    const line = rawLines[i] as string;
    if (line.startsWith(' ') || line.startsWith('\t')) {
      const entries = headers.entries();
      const last = entries[entries.length - 1];
      if (!last) throw new ParseError(FORMAT, 'continuation line before any header', offset);
      (last as [string, string])[1] = `${last[1]} ${line.trim()}`;
    } else {
      const colon = line.indexOf(':');
      const name = colon < 0 ? '' : line.slice(0, colon).trim();
      if (!TOKEN.test(name)) throw new ParseError(FORMAT, `malformed header line '${line.slice(0, 40)}'`, offset);
      headers.append(name, line.slice(colon + 1).trim());
    }
    offset += line.length + 1;
  }

  if (start.startsWith('RTSP/')) {
    const m = /^(RTSP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(start);
    if (!m) throw new ParseError(FORMAT, `malformed status line '${start.slice(0, 60)}'`, 0);
    return { kind: 'response', version: m[1] as string, status: Number(m[2]), reason: m[3] ?? '', headers, body: EMPTY };
  }
  const parts = start.split(' ');
  if (parts.length !== 3) throw new ParseError(FORMAT, `malformed request line '${start.slice(0, 60)}'`, 0);
  const [method, rawUrl, version] = parts as [string, string, string];
  if (!TOKEN.test(method)) throw new ParseError(FORMAT, `malformed method '${method.slice(0, 20)}'`, 0);
  if (!/^RTSP\/\d\.\d$/.test(version)) throw new ParseError(FORMAT, `not an RTSP request (version '${version.slice(0, 20)}')`, 0);
  if (rawUrl.length > MAX_URL_LENGTH) throw new LimitError(LIMIT_URL, MAX_URL_LENGTH, rawUrl.length);
  if (rawUrl.length === 0) throw new ParseError(FORMAT, 'empty request URL', 0);
  const url = utf8.decode(Buffer.from(rawUrl, 'latin1'));
  return { kind: 'request', method, url, version, headers, body: EMPTY };
}

function contentLength(headers: RtspHeaders): number {
  const values = headers.getAll('content-length');
  if (values.length === 0) return 0;
  const v = values[0] as string;
  if (!/^\d{1,10}$/.test(v) || values.some((x) => x !== v)) throw new ParseError(FORMAT, `invalid Content-Length '${values.join(', ')}'`);
  const n = Number(v);
  if (n > MAX_BODY_BYTES) throw new LimitError(LIMIT_BODY, MAX_BODY_BYTES, n);
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// Serialization

/** Reason phrases of RFC 2326 §7.1.1 (and 401/403 from HTTP). */
export const RTSP_STATUS_TEXT: Readonly<Record<number, string>> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  413: 'Request Entity Too Large',
  414: 'Request-URI Too Large',
  415: 'Unsupported Media Type',
  451: 'Parameter Not Understood',
  453: 'Not Enough Bandwidth',
  454: 'Session Not Found',
  455: 'Method Not Valid in This State',
  456: 'Header Field Not Valid for Resource',
  457: 'Invalid Range',
  459: 'Aggregate Operation Not Allowed',
  460: 'Only Aggregate Operation Allowed',
  461: 'Unsupported Transport',
  462: 'Destination Unreachable',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  505: 'RTSP Version Not Supported',
  551: 'Option Not Supported',
};

const encoder = new TextEncoder();

function serializeWith(startLine: string, headers: RtspHeaders, body: Uint8Array): Uint8Array {
  let head = `${startLine}\r\n`;
  let hasLength = false;
  for (const [k, v] of headers.entries()) {
    if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) throw new RangeError(`header ${k} contains a line break`);
    if (k.toLowerCase() === 'content-length') {
      hasLength = true;
      head += `${k}: ${body.length}\r\n`;
    } else {
      head += `${k}: ${v}\r\n`;
    }
  }
  if (!hasLength && body.length > 0) head += `Content-Length: ${body.length}\r\n`;
  head += '\r\n';
  const headSize = Buffer.byteLength(head, 'utf8');
  const out = new Uint8Array(headSize + body.length);
  encoder.encodeInto(head, out);
  out.set(body, headSize);
  return out;
}

/**
 * Serializes a request into one buffer; Content-Length is written from the body (replacing any given value).
 * @throws RangeError when a header contains a line break (a programming error: values must be sanitized).
 */
export function serializeRequest(req: Pick<RtspRequest, 'method' | 'url' | 'headers'> & { body?: Uint8Array; version?: string }): Uint8Array {
  return serializeWith(`${req.method} ${req.url} ${req.version ?? RTSP_VERSION}`, req.headers, req.body ?? EMPTY);
}

/** Serializes a response into one buffer; the reason defaults to the RFC 2326 phrase. */
export function serializeResponse(res: Pick<RtspResponse, 'status' | 'headers'> & { reason?: string; body?: Uint8Array; version?: string }): Uint8Array {
  const reason = res.reason ?? RTSP_STATUS_TEXT[res.status] ?? 'Unknown';
  return serializeWith(`${res.version ?? RTSP_VERSION} ${res.status} ${reason}`, res.headers, res.body ?? EMPTY);
}

/** Largest interleaved frame: the length field is 16 bits (RFC 2326 §10.12). */
export const MAX_INTERLEAVED_BYTES = 0xffff;

/** The 4-byte `$` header of an interleaved frame, for writing it in front of a packet without copying the packet. */
export function interleavedHeader(channel: number, length: number): Uint8Array {
  if (channel < 0 || channel > 255 || length < 0 || length > MAX_INTERLEAVED_BYTES) {
    throw new RangeError(`interleaved frame channel ${channel} length ${length}`);
  }
  return Uint8Array.of(DOLLAR, channel, length >>> 8, length & 0xff);
}

/** One interleaved frame (header + data) in one buffer. */
export function serializeInterleaved(channel: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + data.length);
  out.set(interleavedHeader(channel, data.length), 0);
  out.set(data, 4);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Header values

/** CSeq (RFC 2326 §12.17) as a non-negative integer, or undefined when missing or malformed. */
export function cseqOf(headers: RtspHeaders): number | undefined {
  const v = headers.get('cseq');
  if (v === undefined || !/^\d{1,10}$/.test(v.trim())) return undefined;
  const n = Number(v.trim());
  return n <= 0xffffffff ? n : undefined;
}

/** Session header (RFC 2326 §12.37). */
export interface RtspSessionHeader {
  id: string;
  /** seconds; the server's keepalive deadline (default 60 when absent) */
  timeoutSec?: number;
}

/** Longest session id we accept: RFC 2326 §3.4 allows 8+ chars; gst uses 16, cameras up to ~40. */
export const MAX_SESSION_ID_LENGTH = 256;

/**
 * Parses `Session: id[;timeout=n]`.
 * @throws ParseError for an empty or over-long id or a non-numeric timeout.
 */
export function parseSessionHeader(value: string): RtspSessionHeader {
  const [idPart, ...params] = value.split(';');
  const id = (idPart ?? '').trim();
  if (id === '' || id.length > MAX_SESSION_ID_LENGTH || /\s/.test(id)) throw new ParseError(FORMAT, `invalid session id '${id.slice(0, 40)}'`);
  const out: RtspSessionHeader = { id };
  for (const p of params) {
    const [k, v] = p.split('=').map((s) => s.trim());
    if (k?.toLowerCase() === 'timeout') {
      if (!v || !/^\d{1,6}$/.test(v)) throw new ParseError(FORMAT, `invalid session timeout '${v ?? ''}'`);
      out.timeoutSec = Number(v);
    }
  }
  return out;
}

/** Writes a Session header value. */
export function serializeSessionHeader(s: RtspSessionHeader): string {
  return s.timeoutSec === undefined ? s.id : `${s.id};timeout=${s.timeoutSec}`;
}

/** One transport specification of a Transport header (RFC 2326 §12.39). */
export interface RtspTransport {
  /** transport protocol and profile, e.g. 'RTP/AVP' */
  protocol: string;
  lowerTransport: 'UDP' | 'TCP';
  delivery?: 'unicast' | 'multicast';
  destination?: string;
  source?: string;
  /** RTP and RTCP channels of TCP interleaving */
  interleaved?: [number, number];
  clientPort?: [number, number];
  serverPort?: [number, number];
  /** multicast ports */
  port?: [number, number];
  ttl?: number;
  ssrc?: number;
  /** 'play' (default) or 'record' (or 'receive', an RFC 2326 draft spelling of record), lower case, unquoted */
  mode?: string;
  /** parameters not listed above, in order */
  extra?: [string, string | undefined][];
}

function range(key: string, v: string | undefined, max: number): [number, number] {
  const m = v ? /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(v) : null;
  if (!m) throw new ParseError(FORMAT, `invalid ${key}=${v ?? ''}`);
  const a = Number(m[1]);
  const b = m[2] === undefined ? a + 1 : Number(m[2]);
  if (a > max || b > max) throw new ParseError(FORMAT, `${key}=${v ?? ''} out of range`);
  return [a, b];
}

/**
 * Parses one transport specification, e.g. `RTP/AVP/TCP;unicast;interleaved=0-1;mode=record`.
 * @throws ParseError for a malformed protocol, port or channel range.
 */
export function parseTransport(spec: string): RtspTransport {
  const [proto, ...params] = spec.split(';').map((s) => s.trim());
  const parts = (proto ?? '').split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[A-Za-z0-9.-]+$/.test(p))) {
    throw new ParseError(FORMAT, `invalid transport protocol '${(proto ?? '').slice(0, 40)}'`);
  }
  const lower = (parts[2] ?? 'UDP').toUpperCase();
  if (lower !== 'UDP' && lower !== 'TCP') throw new ParseError(FORMAT, `invalid lower transport '${lower}'`);
  const t: RtspTransport = { protocol: `${(parts[0] as string).toUpperCase()}/${(parts[1] as string).toUpperCase()}`, lowerTransport: lower };
  for (const p of params) {
    if (p === '') continue;
    const eq = p.indexOf('=');
    const key = (eq < 0 ? p : p.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? undefined : p.slice(eq + 1).trim();
    switch (key) {
      case 'unicast':
      case 'multicast':
        t.delivery = key;
        break;
      case 'destination':
        if (value !== undefined) t.destination = value;
        break;
      case 'source':
        if (value !== undefined) t.source = value;
        break;
      case 'interleaved':
        t.interleaved = range(key, value, 255);
        break;
      case 'client_port':
        t.clientPort = range(key, value, 65535);
        break;
      case 'server_port':
        t.serverPort = range(key, value, 65535);
        break;
      case 'port':
        t.port = range(key, value, 65535);
        break;
      case 'ttl':
        if (!value || !/^\d{1,3}$/.test(value)) throw new ParseError(FORMAT, `invalid ttl=${value ?? ''}`);
        t.ttl = Number(value);
        break;
      case 'ssrc':
        if (!value || !/^[0-9A-Fa-f]{1,8}$/.test(value)) throw new ParseError(FORMAT, `invalid ssrc=${value ?? ''}`);
        t.ssrc = parseInt(value, 16);
        break;
      case 'mode':
        t.mode = (value ?? '').replace(/^"|"$/g, '').toLowerCase();
        break;
      default:
        (t.extra ??= []).push([key, value]);
    }
  }
  return t;
}

/**
 * Parses a Transport header: the client's comma-separated alternatives in order of preference.
 * @throws ParseError when any alternative is malformed or the header is empty.
 */
export function parseTransports(value: string): RtspTransport[] {
  const specs = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (specs.length === 0) throw new ParseError(FORMAT, 'empty Transport header');
  return specs.map(parseTransport);
}

/** Writes a transport specification in a canonical order (UDP is implied, as RFC 2326 §12.39 allows). */
export function serializeTransport(t: RtspTransport): string {
  const parts = [t.lowerTransport === 'TCP' ? `${t.protocol}/TCP` : t.protocol];
  if (t.delivery) parts.push(t.delivery);
  if (t.destination !== undefined) parts.push(`destination=${t.destination}`);
  if (t.source !== undefined) parts.push(`source=${t.source}`);
  if (t.interleaved) parts.push(`interleaved=${t.interleaved[0]}-${t.interleaved[1]}`);
  if (t.clientPort) parts.push(`client_port=${t.clientPort[0]}-${t.clientPort[1]}`);
  if (t.serverPort) parts.push(`server_port=${t.serverPort[0]}-${t.serverPort[1]}`);
  if (t.port) parts.push(`port=${t.port[0]}-${t.port[1]}`);
  if (t.ttl !== undefined) parts.push(`ttl=${t.ttl}`);
  if (t.ssrc !== undefined) parts.push(`ssrc=${(t.ssrc >>> 0).toString(16).toUpperCase().padStart(8, '0')}`);
  if (t.mode !== undefined) parts.push(`mode=${t.mode}`);
  for (const [k, v] of t.extra ?? []) parts.push(v === undefined ? k : `${k}=${v}`);
  return parts.join(';');
}

/** One entry of an RTP-Info header (RFC 2326 §12.33). */
export interface RtpInfoEntry {
  url: string;
  seq?: number;
  rtptime?: number;
}

/**
 * Parses RTP-Info. Entries are split on commas that start a new `url=`, since URLs may contain commas.
 * @throws ParseError for an entry without url or with non-numeric seq/rtptime.
 */
export function parseRtpInfo(value: string): RtpInfoEntry[] {
  const entries: RtpInfoEntry[] = [];
  for (const raw of value.split(/,\s*(?=url=)/i)) {
    const e: Partial<RtpInfoEntry> = {};
    for (const p of raw.split(';')) {
      const eq = p.indexOf('=');
      if (eq < 0) continue;
      const k = p.slice(0, eq).trim().toLowerCase();
      const v = p.slice(eq + 1).trim();
      if (k === 'url') e.url = v.replace(/^"|"$/g, '');
      else if (k === 'seq' || k === 'rtptime') {
        if (!/^\d{1,10}$/.test(v) || Number(v) > 0xffffffff) throw new ParseError(FORMAT, `invalid RTP-Info ${k}=${v}`);
        e[k] = Number(v);
      }
    }
    if (e.url === undefined) throw new ParseError(FORMAT, 'RTP-Info entry without url');
    entries.push(e as RtpInfoEntry);
  }
  return entries;
}

/** Writes an RTP-Info header value. */
export function serializeRtpInfo(entries: readonly RtpInfoEntry[]): string {
  return entries
    .map((e) => {
      let s = `url=${e.url}`;
      if (e.seq !== undefined) s += `;seq=${e.seq}`;
      if (e.rtptime !== undefined) s += `;rtptime=${e.rtptime}`;
      return s;
    })
    .join(',');
}
