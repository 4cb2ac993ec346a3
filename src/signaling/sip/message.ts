/**
 * SIP 2.0 messages (RFC 3261 §7, §20, §25): a parser for one UDP datagram, a push parser for a TCP byte stream
 * (framed by Content-Length, §18.3), serializers, and the header values a user agent server needs (Via, From/To,
 * CSeq, Contact, SIP URIs).
 *
 * Sans-I/O: bytes in, messages out. Header names are stored in their canonical long form, whatever was on the
 * wire: compact forms (`v`, `f`, `t`, `i`, `m`, `l`, `c`, … §7.3.3) are expanded and folded lines (§7.3.1) are
 * joined with one space. Every bound on network input is a named constant below; crossing one throws
 * `LimitError`, malformed input throws `ParseError`. A stream parser that threw must be dropped with its
 * connection: it does not resynchronize.
 *
 * @see RFC 3261 §7 (message format), §18.3 (framing), §25 (ABNF); RFC 5626 §3.5.1 (CRLF keep-alive)
 */
import { randomBytes } from 'node:crypto';
import { LimitError, ParseError } from '../../errors.js';

const FORMAT = 'sip';

/** The version we speak and write (§7.1). */
export const SIP_VERSION = 'SIP/2.0';

/**
 * Largest message accepted, head and body together. A UDP datagram cannot carry more than 65 507 bytes of
 * payload anyway; a real INVITE with an SDP offer for audio+video is 1–3 KB (test/fixtures/sip), a WebRTC-style
 * offer with ICE candidates ~8 KB. 64 KiB keeps TCP within the same bound as UDP.
 */
export const MAX_SIP_MESSAGE_BYTES = 64 * 1024;
/**
 * Largest head (start line + headers). SIPp, baresip and Linphone INVITEs carry 0.5–1.5 KB of headers; a call
 * through several proxies adds a Via and a Record-Route per hop (~150 B each). 16 KiB is Node's HTTP default
 * (`--max-http-header-size`) and leaves room for 70 hops (Max-Forwards default, §8.1.1.6).
 */
export const MAX_SIP_HEAD_BYTES = 16 * 1024;
/**
 * Most header fields per message (after splitting folded lines, before splitting comma lists). A SIPp INVITE has
 * 10, baresip 14, Linphone 16; 70 proxies each adding Via + Record-Route stay under 160.
 */
export const MAX_SIP_HEADERS = 160;
/**
 * Largest body (Content-Length). The only body we read is SDP, bounded by the SDP parser at 64 KiB
 * (signaling/sdp/description.ts MAX_SDP_BYTES); the message bound above caps it further.
 */
export const MAX_SIP_CONTENT_LENGTH = 64 * 1024;
/** Longest Request-URI: RFC 3261 sets none; 2 KiB is what gortsplib allows for RTSP URLs and far above `sip:live~cam1@host`. */
export const MAX_SIP_URI_LENGTH = 2048;

/** `LimitError.what` values, so a server can choose the status code (513 Message Too Large, 414, 400). */
export const LIMIT_MESSAGE = 'SIP message bytes';
/** See LIMIT_MESSAGE. */
export const LIMIT_HEAD = 'SIP head bytes';
/** See LIMIT_MESSAGE. */
export const LIMIT_HEADERS = 'SIP header count';
/** See LIMIT_MESSAGE. */
export const LIMIT_CONTENT_LENGTH = 'SIP Content-Length';
/** See LIMIT_MESSAGE. */
export const LIMIT_URI = 'SIP Request-URI length';

/** Compact header forms (RFC 3261 §7.3.3 and the RFCs that registered the others) → canonical names. */
const COMPACT: Readonly<Record<string, string>> = {
  v: 'Via',
  f: 'From',
  t: 'To',
  i: 'Call-ID',
  m: 'Contact',
  l: 'Content-Length',
  c: 'Content-Type',
  e: 'Content-Encoding',
  k: 'Supported',
  s: 'Subject',
  o: 'Event', // RFC 6665
  u: 'Allow-Events', // RFC 6665
  r: 'Refer-To', // RFC 3515
  b: 'Referred-By', // RFC 3892
  x: 'Session-Expires', // RFC 4028
  a: 'Accept-Contact', // RFC 3841
  j: 'Reject-Contact', // RFC 3841
  d: 'Request-Disposition', // RFC 3841
  y: 'Identity', // RFC 8224
};

/** Canonical spelling of names whose capitalization is not simply Word-Word. */
const CANONICAL: ReadonlyMap<string, string> = new Map(
  [
    'Call-ID',
    'CSeq',
    'WWW-Authenticate',
    'MIME-Version',
    'RAck',
    'RSeq',
    'Identity-Info',
    'P-Asserted-Identity',
    'P-Preferred-Identity',
    'SIP-ETag',
    'SIP-If-Match',
  ].map((n) => [n.toLowerCase(), n]),
);

/**
 * Headers whose value is a comma-separated list that may also be split over several lines (§7.3.1): reading them
 * with `getList` yields one entry per element. Authorization-style headers are not lists (their params have commas).
 */
const LIST_HEADERS = new Set([
  'via',
  'contact',
  'route',
  'record-route',
  'allow',
  'supported',
  'require',
  'proxy-require',
  'unsupported',
  'accept',
  'accept-encoding',
  'accept-language',
  'allow-events',
  'content-encoding',
  'in-reply-to',
]);

/** The canonical long name of a header name as written (compact forms expanded, known names re-cased). */
export function canonicalHeaderName(name: string): string {
  const lower = name.toLowerCase();
  if (lower.length === 1) {
    const long = COMPACT[lower];
    if (long !== undefined) return long;
  }
  const known = CANONICAL.get(lower);
  if (known !== undefined) return known;
  return lower.replace(/(^|-)([a-z])/g, (_m, sep: string, ch: string) => sep + ch.toUpperCase());
}

/** An ordered, case-insensitive header list with canonical names; repeated names are kept in order. */
export class SipHeaders {
  private readonly list: [string, string][] = [];

  /** @param init name/value pairs in order; names are canonicalized */
  constructor(init: Iterable<readonly [string, string]> = []) {
    for (const [k, v] of init) this.list.push([canonicalHeaderName(k), v]);
  }

  /** First value of `name` (any spelling, compact or long), or undefined. */
  get(name: string): string | undefined {
    const n = canonicalHeaderName(name);
    return this.list.find(([k]) => k === n)?.[1];
  }

  /** Every header line of `name`, in order (a comma list on one line stays one entry: see `getList`). */
  getAll(name: string): string[] {
    const n = canonicalHeaderName(name);
    return this.list.filter(([k]) => k === n).map(([, v]) => v);
  }

  /**
   * Every element of a list header (Via, Contact, Route, Record-Route, Allow, Supported, Require, …), splitting
   * comma lists at commas outside quotes and `<…>`; other headers are returned whole, one entry per line.
   */
  getList(name: string): string[] {
    const n = canonicalHeaderName(name);
    const values = this.getAll(n);
    if (!LIST_HEADERS.has(n.toLowerCase())) return values;
    return values.flatMap(splitList);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Appends one header line. */
  add(name: string, value: string): this {
    this.list.push([canonicalHeaderName(name), value]);
    return this;
  }

  /** Replaces every `name` line by one with `value` (in the place of the first, or appended). */
  set(name: string, value: string): this {
    const n = canonicalHeaderName(name);
    const i = this.list.findIndex(([k]) => k === n);
    if (i < 0) {
      this.list.push([n, value]);
      return this;
    }
    this.list[i] = [n, value];
    for (let j = this.list.length - 1; j > i; j--) if (this.list[j]![0] === n) this.list.splice(j, 1);
    return this;
  }

  /** Removes every `name` line. */
  delete(name: string): this {
    const n = canonicalHeaderName(name);
    for (let j = this.list.length - 1; j >= 0; j--) if (this.list[j]![0] === n) this.list.splice(j, 1);
    return this;
  }

  /** Name/value pairs in order. */
  entries(): [string, string][] {
    return this.list.map(([k, v]) => [k, v]);
  }

  get size(): number {
    return this.list.length;
  }
}

/** Splits `a, "b,c" <d,e>;x=1, f` at top-level commas, trimming each element; empty elements are dropped. */
function splitList(value: string): string[] {
  const out: string[] = [];
  let depthAngle = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === '<') depthAngle++;
    else if (ch === '>') depthAngle = Math.max(0, depthAngle - 1);
    else if (ch === ',' && depthAngle === 0) {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(value.slice(start).trim());
  return out.filter((s) => s !== '');
}

/** A request (§7.1). `body` is a view into the bytes it was parsed from (valid as long as they are). */
export interface SipRequest {
  kind: 'request';
  /** as written: methods are case-sensitive (§7.1) */
  method: string;
  uri: string;
  headers: SipHeaders;
  body: Uint8Array;
}

/** A response (§7.2). */
export interface SipResponse {
  kind: 'response';
  status: number;
  reason: string;
  headers: SipHeaders;
  body: Uint8Array;
}

/** Either kind of message. */
export type SipMessage = SipRequest | SipResponse;

const METHOD = /^[A-Za-z0-9.!%*_+`'~-]+$/;
const HEADER_NAME = /^[A-Za-z0-9.!%*_+`'~-]+$/;
const utf8 = new TextDecoder('utf-8');
const EMPTY = new Uint8Array(0);

/**
 * Parses the head (start line and header lines, without the blank line). LF-only line ends are accepted
 * (Linphone and some SIP ALGs send them).
 */
function parseHead(head: string, offset: number): { start: Omit<SipRequest, 'headers' | 'body'> | Omit<SipResponse, 'headers' | 'body'>; headers: SipHeaders } {
  const lines = head.split(/\r?\n/);
  const first = lines[0] ?? '';
  let start: Omit<SipRequest, 'headers' | 'body'> | Omit<SipResponse, 'headers' | 'body'>;
  if (first.toUpperCase().startsWith('SIP/')) {
    const m = /^(SIP\/\d+\.\d+) (\d{3})(?: (.*))?$/i.exec(first);
    if (!m) throw new ParseError(FORMAT, `malformed status line '${first.slice(0, 80)}'`, offset);
    if (m[1]!.toUpperCase() !== SIP_VERSION) throw new ParseError(FORMAT, `unsupported version ${m[1]}`, offset);
    const status = Number(m[2]);
    if (status < 100 || status > 699) throw new ParseError(FORMAT, `status code ${status} out of range`, offset);
    start = { kind: 'response', status, reason: m[3] ?? '' };
  } else {
    const parts = first.split(' ');
    if (parts.length !== 3) throw new ParseError(FORMAT, `malformed request line '${first.slice(0, 80)}'`, offset);
    const [method, uri, version] = parts as [string, string, string];
    if (!METHOD.test(method)) throw new ParseError(FORMAT, `bad method '${method.slice(0, 40)}'`, offset);
    if (uri.length > MAX_SIP_URI_LENGTH) throw new LimitError(LIMIT_URI, MAX_SIP_URI_LENGTH, uri.length);
    if (!/^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(uri)) throw new ParseError(FORMAT, `bad Request-URI '${uri.slice(0, 80)}'`, offset);
    if (version.toUpperCase() !== SIP_VERSION) throw new ParseError(FORMAT, `unsupported version ${version.slice(0, 20)}`, offset);
    start = { kind: 'request', method, uri };
  }
  const headers = new SipHeaders();
  const pending: [string, string][] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') throw new ParseError(FORMAT, 'empty line inside the head', offset);
    if (line[0] === ' ' || line[0] === '\t') {
      // §7.3.1: a line starting with whitespace continues the previous header value
      const last = pending[pending.length - 1];
      if (!last) throw new ParseError(FORMAT, 'continuation line before any header', offset);
      last[1] = `${last[1]} ${line.trim()}`.trim();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new ParseError(FORMAT, `header line without a name and colon '${line.slice(0, 80)}'`, offset);
    const name = line.slice(0, colon).trimEnd();
    if (!HEADER_NAME.test(name)) throw new ParseError(FORMAT, `bad header name '${name.slice(0, 40)}'`, offset);
    if (pending.length >= MAX_SIP_HEADERS) throw new LimitError(LIMIT_HEADERS, MAX_SIP_HEADERS, pending.length + 1);
    pending.push([name, line.slice(colon + 1).trim()]);
  }
  for (const [k, v] of pending) headers.add(k, v);
  return { start, headers };
}

/**
 * The Content-Length a head declares: undefined when absent, the number otherwise.
 * @throws ParseError when not a number or when two lines disagree; LimitError over MAX_SIP_CONTENT_LENGTH
 */
function contentLengthOf(headers: SipHeaders, offset: number): number | undefined {
  const values = headers.getAll('Content-Length');
  if (values.length === 0) return undefined;
  let n: number | undefined;
  for (const v of values) {
    if (!/^\d{1,10}$/.test(v)) throw new ParseError(FORMAT, `bad Content-Length '${v.slice(0, 20)}'`, offset);
    const x = Number(v);
    if (n !== undefined && n !== x) throw new ParseError(FORMAT, 'conflicting Content-Length headers', offset);
    n = x;
  }
  if (n! > MAX_SIP_CONTENT_LENGTH) throw new LimitError(LIMIT_CONTENT_LENGTH, MAX_SIP_CONTENT_LENGTH, n!);
  return n;
}

/**
 * End of the head: the index just past the blank line, and where the head text ends, searching from `from`.
 * Returns null when the blank line has not arrived yet.
 */
function findHeadEnd(buf: Uint8Array, from: number): { headEnd: number; bodyStart: number } | null {
  for (let i = Math.max(from, 0); i < buf.length; i++) {
    if (buf[i] !== 0x0a) continue;
    // LF followed by LF, or by CR LF, ends the head
    if (buf[i + 1] === 0x0a) return { headEnd: buf[i - 1] === 0x0d ? i - 1 : i, bodyStart: i + 2 };
    if (buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) return { headEnd: buf[i - 1] === 0x0d ? i - 1 : i, bodyStart: i + 3 };
  }
  return null;
}

function build(
  start: Omit<SipRequest, 'headers' | 'body'> | Omit<SipResponse, 'headers' | 'body'>,
  headers: SipHeaders,
  body: Uint8Array,
): SipMessage {
  return start.kind === 'request' ? { ...start, headers, body } : { ...start, headers, body };
}

/**
 * Parses one UDP datagram (§18.3): one message; a Content-Length shorter than the rest cuts the body, a longer
 * one is an error ("MUST be discarded"), none means the body is the rest of the datagram.
 * Leading CRLFs (keep-alives glued in front, RFC 5626 §3.5.1) are skipped.
 * @returns the message; `body` is a view into `datagram`
 * @throws ParseError, LimitError
 */
export function parseSipDatagram(datagram: Uint8Array): SipMessage {
  if (datagram.length > MAX_SIP_MESSAGE_BYTES) throw new LimitError(LIMIT_MESSAGE, MAX_SIP_MESSAGE_BYTES, datagram.length);
  let s = 0;
  while (s < datagram.length && (datagram[s] === 0x0d || datagram[s] === 0x0a)) s++;
  const end = findHeadEnd(datagram, s);
  if (end === null) throw new ParseError(FORMAT, 'no blank line after the headers', datagram.length);
  if (end.headEnd - s > MAX_SIP_HEAD_BYTES) throw new LimitError(LIMIT_HEAD, MAX_SIP_HEAD_BYTES, end.headEnd - s);
  const { start, headers } = parseHead(utf8.decode(datagram.subarray(s, end.headEnd)), s);
  const rest = datagram.length - end.bodyStart;
  const declared = contentLengthOf(headers, s);
  if (declared !== undefined && declared > rest) {
    throw new ParseError(FORMAT, `Content-Length ${declared} is more than the ${rest} bytes that follow`, end.bodyStart);
  }
  const bodyLength = declared ?? rest;
  return build(start, headers, bodyLength === 0 ? EMPTY : datagram.subarray(end.bodyStart, end.bodyStart + bodyLength));
}

/** What the stream parser yields: a message, or a CRLFCRLF keep-alive ping to answer with CRLF (RFC 5626 §3.5.1). */
export type SipStreamItem = { kind: 'message'; message: SipMessage } | { kind: 'ping' };

/**
 * Push parser for a stream transport (TCP, §18.3): messages are framed by Content-Length (absent counts as 0).
 * Between messages, CRLFs are skipped; a double CRLF is a keep-alive ping.
 */
export class SipStreamParser {
  private buf: Uint8Array = EMPTY;
  /** where to resume looking for the end of the head */
  private scanFrom = 0;
  /** CRLF pairs skipped since the last message, to tell a CRLFCRLF ping */
  private crlfs = 0;

  /**
   * Feeds bytes; returns every item they complete, in order.
   * @returns messages whose `body` are views into the fed chunks (or a joined copy of them); they stay valid
   * @throws ParseError, LimitError (the connection must be closed: the parser does not resynchronize)
   */
  push(chunk: Uint8Array): SipStreamItem[] {
    if (chunk.length === 0) return [];
    this.buf = this.buf.length === 0 ? chunk : join(this.buf, chunk);
    const out: SipStreamItem[] = [];
    let off = 0;
    for (;;) {
      // keep-alives and stray line ends between messages
      while (off < this.buf.length && (this.buf[off] === 0x0d || this.buf[off] === 0x0a)) {
        if (this.buf[off] === 0x0d) {
          if (off + 1 >= this.buf.length) break; // a CR whose LF has not arrived
          if (this.buf[off + 1] === 0x0a) {
            off += 2;
            if (++this.crlfs === 2) {
              out.push({ kind: 'ping' });
              this.crlfs = 0;
            }
            continue;
          }
          throw new ParseError(FORMAT, 'CR without LF between messages', off);
        }
        off++;
        this.crlfs = 0;
      }
      if (off >= this.buf.length || this.buf[off] === 0x0d) break;
      this.crlfs = 0;
      const end = findHeadEnd(this.buf, Math.max(off, this.scanFrom - 2));
      if (end === null) {
        this.scanFrom = this.buf.length;
        if (this.buf.length - off > MAX_SIP_HEAD_BYTES) throw new LimitError(LIMIT_HEAD, MAX_SIP_HEAD_BYTES, this.buf.length - off);
        break;
      }
      if (end.headEnd - off > MAX_SIP_HEAD_BYTES) throw new LimitError(LIMIT_HEAD, MAX_SIP_HEAD_BYTES, end.headEnd - off);
      const { start, headers } = parseHead(utf8.decode(this.buf.subarray(off, end.headEnd)), off);
      const length = contentLengthOf(headers, off) ?? 0;
      if (end.bodyStart - off + length > MAX_SIP_MESSAGE_BYTES) {
        throw new LimitError(LIMIT_MESSAGE, MAX_SIP_MESSAGE_BYTES, end.bodyStart - off + length);
      }
      if (this.buf.length < end.bodyStart + length) {
        // the head is parsed again when the body is complete: heads are small and this keeps no half state
        this.scanFrom = off;
        break;
      }
      out.push({ kind: 'message', message: build(start, headers, length === 0 ? EMPTY : this.buf.subarray(end.bodyStart, end.bodyStart + length)) });
      off = end.bodyStart + length;
      this.scanFrom = 0;
    }
    // keep the unparsed tail as a copy, so a large socket chunk is not pinned by a few bytes
    if (off >= this.buf.length) this.buf = EMPTY;
    else if (off > 0) this.buf = this.buf.slice(off);
    if (this.scanFrom > 0) this.scanFrom = Math.max(0, this.scanFrom - off);
    return out;
  }

  /** Bytes received and not yet part of a complete message. */
  get pendingBytes(): number {
    return this.buf.length;
  }
}

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * Writes a message: start line, headers in order, a Content-Length computed from the body (replacing any given),
 * blank line, body. The size is computed first and the bytes allocated once.
 */
export function serializeSipMessage(msg: SipMessage): Uint8Array {
  const lines: string[] = [msg.kind === 'request' ? `${msg.method} ${msg.uri} ${SIP_VERSION}` : `${SIP_VERSION} ${msg.status} ${msg.reason}`];
  for (const [k, v] of msg.headers.entries()) if (k !== 'Content-Length') lines.push(`${k}: ${v}`);
  lines.push(`Content-Length: ${msg.body.length}`, '', '');
  const head = lines.join('\r\n');
  const headBytes = Buffer.byteLength(head, 'utf8');
  const out = Buffer.allocUnsafe(headBytes + msg.body.length);
  out.write(head, 0, 'utf8');
  out.set(msg.body, headBytes);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Header values

/** Reason phrases of the status codes we send (§21). */
export const REASON_PHRASES: Readonly<Record<number, string>> = {
  100: 'Trying',
  180: 'Ringing',
  183: 'Session Progress',
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Request Entity Too Large',
  414: 'Request-URI Too Long',
  415: 'Unsupported Media Type',
  416: 'Unsupported URI Scheme',
  420: 'Bad Extension',
  480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected',
  483: 'Too Many Hops',
  486: 'Busy Here',
  487: 'Request Terminated',
  488: 'Not Acceptable Here',
  491: 'Request Pending',
  500: 'Server Internal Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  505: 'Version Not Supported',
  513: 'Message Too Large',
};

/** The RFC 3261 magic cookie that starts every branch this RFC's clients create (§8.1.1.7). */
export const BRANCH_MAGIC_COOKIE = 'z9hG4bK';

/** A Via header value (§20.42): `SIP/2.0/UDP host:port;branch=…;rport`. */
export interface SipVia {
  /** `UDP`, `TCP`, `TLS`, `WS`, … upper-cased */
  transport: string;
  host: string;
  port?: number;
  /** parameter names lower-cased; flags (`rport`) have '' */
  params: Record<string, string>;
}

/**
 * Parses one Via element (split the header with `getList('Via')` first).
 * @throws ParseError when malformed
 */
export function parseVia(value: string): SipVia {
  const m = /^\s*SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z0-9-]+)\s+(\[[0-9A-Fa-f:.]+\]|[^\s;:]+)(?:\s*:\s*(\d{1,5}))?\s*(;.*)?$/i.exec(value);
  if (!m) throw new ParseError(FORMAT, `malformed Via '${value.slice(0, 80)}'`);
  const via: SipVia = { transport: m[1]!.toUpperCase(), host: m[2]!, params: parseParams(m[4] ?? '') };
  if (m[3] !== undefined) {
    const port = Number(m[3]);
    if (port < 1 || port > 65535) throw new ParseError(FORMAT, `Via port ${port} out of range`);
    via.port = port;
  }
  return via;
}

/** Writes a Via value. */
export function serializeVia(v: SipVia): string {
  return `${SIP_VERSION}/${v.transport} ${v.host}${v.port !== undefined ? `:${v.port}` : ''}${serializeParams(v.params)}`;
}

/** `;a=b;c` → { a: 'b', c: '' } with lower-case names; quoted values are unquoted. */
export function parseParams(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of splitOutsideQuotes(s, ';')) {
    const p = part.trim();
    if (p === '') continue;
    const eq = p.indexOf('=');
    const name = (eq < 0 ? p : p.slice(0, eq)).trim().toLowerCase();
    let value = eq < 0 ? '' : p.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1).replace(/\\(.)/g, '$1');
    out[name] = value;
  }
  return out;
}

function serializeParams(params: Readonly<Record<string, string>>): string {
  let s = '';
  for (const [k, v] of Object.entries(params)) s += v === '' ? `;${k}` : `;${k}=${v}`;
  return s;
}

function splitOutsideQuotes(s: string, sep: string): string[] {
  const out: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === sep) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out;
}

/** From, To, Contact, Route (§20.10, §20.20, §20.39): `"Name" <uri>;tag=x` or `uri;tag=x`. */
export interface SipNameAddr {
  display?: string;
  uri: string;
  /** header parameters (tag, expires, …), names lower-cased */
  params: Record<string, string>;
}

/**
 * Parses a name-addr or addr-spec with header parameters. In the addr-spec form, everything after the first `;`
 * is a header parameter (§20.10: "URI parameters ... must be enclosed in angle brackets").
 * @throws ParseError when malformed
 */
export function parseNameAddr(value: string): SipNameAddr {
  const v = value.trim();
  const lt = indexOutsideQuotes(v, '<');
  if (lt >= 0) {
    const gt = v.indexOf('>', lt);
    if (gt < 0) throw new ParseError(FORMAT, `unclosed < in '${v.slice(0, 80)}'`);
    let display = v.slice(0, lt).trim();
    if (display.startsWith('"') && display.endsWith('"') && display.length >= 2) display = display.slice(1, -1).replace(/\\(.)/g, '$1');
    const uri = v.slice(lt + 1, gt).trim();
    if (uri === '') throw new ParseError(FORMAT, `empty URI in '${v.slice(0, 80)}'`);
    const rest = v.slice(gt + 1).trim();
    if (rest !== '' && !rest.startsWith(';')) throw new ParseError(FORMAT, `junk after > in '${v.slice(0, 80)}'`);
    const out: SipNameAddr = { uri, params: parseParams(rest) };
    if (display !== '') out.display = display;
    return out;
  }
  const semi = v.indexOf(';');
  const uri = (semi < 0 ? v : v.slice(0, semi)).trim();
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(uri) && uri !== '*') throw new ParseError(FORMAT, `malformed address '${v.slice(0, 80)}'`);
  return { uri, params: parseParams(semi < 0 ? '' : v.slice(semi)) };
}

function indexOutsideQuotes(s: string, ch: string): number {
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ch) return i;
  }
  return -1;
}

/** Writes a name-addr, always with angle brackets (safe whatever the URI holds). */
export function serializeNameAddr(a: SipNameAddr): string {
  const display = a.display !== undefined ? `"${a.display.replace(/(["\\])/g, '\\$1')}" ` : '';
  return `${display}<${a.uri}>${serializeParams(a.params)}`;
}

/** CSeq (§20.16). */
export interface SipCSeq {
  seq: number;
  method: string;
}

/** Largest CSeq number: "MUST be expressible as a 32-bit unsigned integer" and "less than 2**31" (§8.1.1.5). */
export const MAX_CSEQ = 2 ** 31 - 1;

/** @throws ParseError when malformed or out of range */
export function parseCSeq(value: string): SipCSeq {
  const m = /^\s*(\d{1,10})\s+([A-Za-z0-9.!%*_+`'~-]+)\s*$/.exec(value);
  if (!m) throw new ParseError(FORMAT, `malformed CSeq '${value.slice(0, 40)}'`);
  const seq = Number(m[1]);
  if (seq > 2 ** 32 - 1) throw new ParseError(FORMAT, `CSeq ${seq} over 2^32-1`);
  return { seq, method: m[2]! };
}

/** A SIP or SIPS URI (§19.1.1). */
export interface SipUri {
  scheme: 'sip' | 'sips';
  /** user part, %-escapes decoded */
  user?: string;
  host: string;
  port?: number;
  /** URI parameters (`;transport=tcp`), names lower-cased */
  params: Record<string, string>;
}

/**
 * Parses `sip:user:password@host:port;params?headers`. Returns null for another scheme (tel:, urn:, …) so the
 * caller can answer 416; throws for a malformed sip: URI.
 * @throws ParseError
 */
export function parseSipUri(uri: string): SipUri | null {
  const m = /^(sips?):(.*)$/i.exec(uri.trim());
  if (!m) return null;
  const scheme = m[1]!.toLowerCase() as 'sip' | 'sips';
  let rest = m[2]!;
  const q = rest.indexOf('?');
  if (q >= 0) rest = rest.slice(0, q);
  let user: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userinfo.indexOf(':');
    const raw = colon < 0 ? userinfo : userinfo.slice(0, colon);
    try {
      user = decodeURIComponent(raw);
    } catch {
      throw new ParseError(FORMAT, `bad %-escape in the user part of '${uri.slice(0, 80)}'`);
    }
  }
  const semi = rest.indexOf(';');
  const hostport = semi < 0 ? rest : rest.slice(0, semi);
  const hm = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(hostport);
  if (!hm) throw new ParseError(FORMAT, `bad host in '${uri.slice(0, 80)}'`);
  const out: SipUri = { scheme, host: hm[1]!, params: parseParams(semi < 0 ? '' : rest.slice(semi)) };
  if (user !== undefined) out.user = user;
  if (hm[2] !== undefined) {
    const port = Number(hm[2]);
    if (port < 1 || port > 65535) throw new ParseError(FORMAT, `port ${port} out of range in '${uri.slice(0, 80)}'`);
    out.port = port;
  }
  return out;
}

/** A random tag for From/To (§19.3: "at least 32 bits of randomness"); 64 bits here. */
export function newTag(): string {
  return randomBytes(8).toString('hex');
}

/** A new branch with the magic cookie (§8.1.1.7); 96 random bits keep it unique across space and time. */
export function newBranch(): string {
  return BRANCH_MAGIC_COOKIE + randomBytes(12).toString('hex');
}

/** Options of `createResponse`. */
export interface ResponseOptions {
  /** reason phrase; default from REASON_PHRASES */
  reason?: string;
  /** our To tag, added when the request's To has none (not on 100 Trying, §8.2.6.1) */
  toTag?: string;
  /** extra headers, appended in order */
  headers?: readonly (readonly [string, string])[];
  body?: Uint8Array;
}

/**
 * A response to `req` (§8.2.6): Via lines, From, To, Call-ID and CSeq copied in order, plus the To tag and the
 * extra headers.
 */
export function createResponse(req: SipRequest, status: number, opts: ResponseOptions = {}): SipResponse {
  const headers = new SipHeaders();
  for (const v of req.headers.getAll('Via')) headers.add('Via', v);
  const from = req.headers.get('From');
  if (from !== undefined) headers.add('From', from);
  const to = req.headers.get('To');
  if (to !== undefined) {
    let value = to;
    if (opts.toTag !== undefined && status !== 100) {
      try {
        if (parseNameAddr(to).params.tag === undefined) value = `${to};tag=${opts.toTag}`;
      } catch {
        // a To we cannot read is echoed as it came
      }
    }
    headers.add('To', value);
  }
  const callId = req.headers.get('Call-ID');
  if (callId !== undefined) headers.add('Call-ID', callId);
  const cseq = req.headers.get('CSeq');
  if (cseq !== undefined) headers.add('CSeq', cseq);
  for (const [k, v] of opts.headers ?? []) headers.add(k, v);
  return { kind: 'response', status, reason: opts.reason ?? REASON_PHRASES[status] ?? 'Unknown', headers, body: opts.body ?? EMPTY };
}

/** The fields every request must carry (§8.1.1), read and checked once. */
export interface SipRequestIds {
  callId: string;
  cseq: SipCSeq;
  from: SipNameAddr;
  to: SipNameAddr;
  /** top Via */
  via: SipVia;
}

/**
 * Reads Call-ID, CSeq, From, To and the top Via of a request.
 * @throws ParseError naming what is missing or malformed (answer 400 when a Via is there to answer to)
 */
export function requestIds(req: SipRequest): SipRequestIds {
  const callId = req.headers.get('Call-ID');
  const cseq = req.headers.get('CSeq');
  const from = req.headers.get('From');
  const to = req.headers.get('To');
  const via = req.headers.getList('Via')[0];
  if (via === undefined) throw new ParseError(FORMAT, 'missing Via');
  if (callId === undefined || callId === '') throw new ParseError(FORMAT, 'missing Call-ID');
  if (cseq === undefined) throw new ParseError(FORMAT, 'missing CSeq');
  if (from === undefined) throw new ParseError(FORMAT, 'missing From');
  if (to === undefined) throw new ParseError(FORMAT, 'missing To');
  const ids: SipRequestIds = { callId, cseq: parseCSeq(cseq), from: parseNameAddr(from), to: parseNameAddr(to), via: parseVia(via) };
  if (ids.cseq.method !== req.method) throw new ParseError(FORMAT, `CSeq method ${ids.cseq.method} differs from ${req.method}`);
  return ids;
}
