/**
 * RTSP 1.0 messages (RFC 2326): a push parser for one TCP connection that yields requests, responses and
 * `$`-interleaved binary frames (§10.12), serializers, and the header values RTSP sessions need (CSeq, Session,
 * Transport, RTP-Info).
 *
 * Sans-I/O: bytes in, messages out. Every bound on network input is a named constant below; crossing one throws
 * `LimitError`, malformed input throws `ParseError`. After either, the connection must be closed: the parser does
 * not resynchronize.
 *
 * The code lives in one-job modules: message-types.ts (message shapes, RtspHeaders), message-parser.ts (the push
 * parser and its limits), message-serialize.ts and header-values.ts; this module re-exports their public API.
 */
export {
  RtspHeaders,
  type RtspRequest,
  type RtspResponse,
  type RtspInterleavedFrame,
  type RtspMessage,
} from './message-types.js';
export {
  MAX_HEADER_LINE_BYTES,
  MAX_HEAD_BYTES,
  MAX_HEADER_COUNT,
  MAX_URL_LENGTH,
  MAX_BODY_BYTES,
  LIMIT_URL,
  LIMIT_BODY,
  LIMIT_HEADER_LINE,
  LIMIT_HEAD,
  LIMIT_HEADER_COUNT,
  RtspParser,
} from './message-parser.js';
export {
  RTSP_VERSION,
  RTSP_STATUS_TEXT,
  serializeRequest,
  serializeResponse,
  MAX_INTERLEAVED_BYTES,
  interleavedHeader,
  serializeInterleaved,
} from './message-serialize.js';
export {
  cseqOf,
  type RtspSessionHeader,
  MAX_SESSION_ID_LENGTH,
  parseSessionHeader,
  serializeSessionHeader,
  type RtspTransport,
  parseTransport,
  parseTransports,
  serializeTransport,
  type RtpInfoEntry,
  parseRtpInfo,
  serializeRtpInfo,
} from './header-values.js';
