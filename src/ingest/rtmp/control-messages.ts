/**
 * RTMP protocol control messages (Adobe RTMP spec 1.0 §5.4) and User Control events (§6.2, §7.1.7): builders
 * of outgoing messages and parsers of incoming bodies.
 */
import { ParseError } from '../../errors.js';
import { checkChunkSize, readU32, RtmpMessageType, UserControlEvent, write32, type RtmpOutMessage } from './chunk-common.js';

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
