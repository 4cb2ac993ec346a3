/**
 * RTSP 1.0 serializers (RFC 2326): requests, responses and `$`-interleaved frames (§10.12), each into one buffer.
 */
import { DOLLAR, EMPTY, type RtspHeaders, type RtspRequest, type RtspResponse } from './message-types.js';

/** The version we speak and write. */
export const RTSP_VERSION = 'RTSP/1.0';

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
