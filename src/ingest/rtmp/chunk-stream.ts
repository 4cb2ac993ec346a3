/**
 * RTMP chunk stream (Adobe RTMP spec 1.0 §5.3), sans-I/O.
 *
 * {@link ChunkStreamReader} turns TCP bytes into messages; {@link ChunkStreamWriter} and
 * {@link serializeMessage} turn messages into chunks. Protocol control messages (§5.4) and User Control
 * events (§6.2) have builders here; their effect on the reader (chunk size, abort, acknowledgement window)
 * is applied inside the reader because it changes how the very next chunk is parsed.
 *
 * The code lives in one-job modules: chunk-common.ts (ids, limits, message shapes), chunk-reader.ts,
 * chunk-writer.ts and control-messages.ts; this module re-exports their public API.
 */
export {
  RtmpMessageType,
  UserControlEvent,
  RTMP_DEFAULT_CHUNK_SIZE,
  RTMP_MAX_CHUNK_SIZE,
  RTMP_DEFAULT_MAX_MESSAGE_LENGTH,
  RTMP_DEFAULT_MAX_CHUNK_STREAMS,
  RTMP_DEFAULT_MAX_PENDING_BYTES,
  type RtmpMessage,
  type RtmpOutMessage,
} from './chunk-common.js';
export { ChunkStreamReader, type ChunkStreamReaderOptions } from './chunk-reader.js';
export { serializeMessage, ChunkStreamWriter, type ChunkStreamWriterOptions } from './chunk-writer.js';
export {
  setChunkSizeMessage,
  abortMessage,
  acknowledgementMessage,
  windowAckSizeMessage,
  setPeerBandwidthMessage,
  userControlMessage,
  streamBeginMessage,
  streamEofMessage,
  pingRequestMessage,
  pingResponseMessage,
  type UserControl,
  parseUserControl,
  parseControlU32,
} from './control-messages.js';
