/**
 * RTSP 1.0 push parser (RFC 2326) for one TCP connection: yields requests, responses and `$`-interleaved binary
 * frames (§10.12).
 *
 * Sans-I/O: bytes in, messages out. Every bound on network input is a named constant below; crossing one throws
 * `LimitError`, malformed input throws `ParseError`. After either, the connection must be closed: the parser does
 * not resynchronize.
 */
import { LimitError, ParseError } from '../../errors.js';
import { DOLLAR, EMPTY, FORMAT, RtspHeaders, type RtspMessage, type RtspRequest, type RtspResponse } from './message-types.js';

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
