/**
 * RTMP message bodies above the chunk stream that both ends of a connection read and write the same way: AMF0
 * command and data messages (Adobe RTMP spec 1.0 §7.1.1, §7.1.2), and the media of a message stream carried by
 * audio, video, data and aggregate messages (§7.1.4, §7.1.5, §7.1.6). The server session (session.ts) and the
 * pull client (client-session.ts) share them.
 */
import { ParseError, StreamgateError } from '../../errors.js';
import { decodeAmf0, decodeAmf0All, encodeAmf0, type Amf0Value } from '../../media/flv/amf0.js';
import { RtmpMessageType, type RtmpMessage, type RtmpOutMessage } from './chunk-stream.js';

/** Bytes of an FLV tag header inside an aggregate message: type, 3-byte size, 4-byte timestamp, 3-byte stream id. */
const TAG_HEADER_BYTES = 11;
/** The 4-byte back pointer (previous tag size) after each tag of an aggregate message. */
const BACK_POINTER_BYTES = 4;

/** A command message (type 20) of AMF0 `values` on chunk stream `csid` of message stream `streamId`, timestamp 0. */
export function commandMessage(csid: number, streamId: number, ...values: Amf0Value[]): RtmpOutMessage {
  return { csid, type: RtmpMessageType.commandAmf0, streamId, timestamp: 0, payload: encodeAmf0(...values) };
}

/** A data message (type 18) of AMF0 `values` on chunk stream `csid` of message stream `streamId`, timestamp 0. */
export function dataMessage(csid: number, streamId: number, ...values: Amf0Value[]): RtmpOutMessage {
  return { csid, type: RtmpMessageType.dataAmf0, streamId, timestamp: 0, payload: encodeAmf0(...values) };
}

/** A decoded command: `values` is every value (`[name, transaction id, command object, ...arguments]`). */
export interface RtmpCommand {
  name: string;
  /** transaction id, 0 when absent or not a number */
  tx: number;
  values: Amf0Value[];
}

/**
 * Decodes a command message, AMF0 (type 20) or AMF3 (type 17: a format byte, then AMF0 values).
 * @throws ParseError when the AMF0 does not decode or the first value is not a string
 */
export function parseCommand(msg: RtmpMessage): RtmpCommand {
  const values = decodeAmf0All(msg.type === RtmpMessageType.commandAmf3 ? msg.payload.subarray(1) : msg.payload);
  const name = values[0];
  if (typeof name !== 'string') throw new ParseError('rtmp command', 'command name is not a string', 0);
  return { name, tx: typeof values[1] === 'number' ? values[1] : 0, values };
}

/** Audio, video or data of a message stream, as either end of a connection hands it on. */
export type RtmpMediaAction =
  /** an FLV audio or video tag body (a view; copy what you keep) */
  | { type: 'media'; kind: 'audio' | 'video'; streamId: number; timestamp: number; body: Uint8Array }
  /**
   * a data message, `@setDataFrame` stripped: `body` is AMF0 starting at the name (e.g. `onMetaData`), `values` is
   * it decoded (`[name, ...args]`; `values[1]` is the metadata object)
   */
  | { type: 'media'; kind: 'data'; streamId: number; timestamp: number; body: Uint8Array; name: string; values: Amf0Value[] };

/** Where media actions go: the action list of either end. */
type MediaOut = { push(action: RtmpMediaAction): unknown };

/** Options of an {@link RtmpMediaDemuxer}. */
export interface RtmpMediaDemuxerOptions {
  /**
   * Drop `@clearDataFrame` data messages without a word (a publisher clearing its metadata: the bus keeps none to
   * clear). Default false: they are handed on like any other data message.
   */
  dropClearDataFrame?: boolean;
}

/**
 * Turns the audio, video, data (AMF0 and AMF3) and aggregate messages of one connection into media actions, for the
 * message streams `accepts` lets through. Media of other streams (or before a publish/play was accepted) is
 * counted in `droppedMessages`; data whose AMF0 does not decode is counted in `badDataMessages`, since bad
 * metadata must not end a stream whose audio and video are fine. Both are routine and never throw.
 */
export class RtmpMediaDemuxer {
  /** audio/video/data messages of streams that were not accepted (routine, counted) */
  droppedMessages = 0;
  /** data messages whose AMF0 did not decode or did not start with a name (dropped, counted) */
  badDataMessages = 0;
  private readonly dropClearDataFrame: boolean;

  constructor(
    private readonly accepts: (streamId: number) => boolean,
    opts: RtmpMediaDemuxerOptions = {},
  ) {
    this.dropClearDataFrame = opts.dropClearDataFrame ?? false;
  }

  /**
   * Pushes the media of `msg` onto `out` when it is an audio, video, data or aggregate message.
   * @returns false for every other message type (commands, user control, protocol control): the caller handles it
   * @throws ParseError for an aggregate message whose tag runs past its end (after the tags before it were pushed)
   */
  push(msg: RtmpMessage, out: MediaOut): boolean {
    switch (msg.type) {
      case RtmpMessageType.audio:
      case RtmpMessageType.video:
        this.media(msg.type === RtmpMessageType.audio ? 'audio' : 'video', msg.streamId, msg.timestamp, msg.payload, out);
        return true;
      case RtmpMessageType.dataAmf0:
        this.data(msg.streamId, msg.timestamp, msg.payload, out);
        return true;
      case RtmpMessageType.dataAmf3:
        // AMF3 data messages start with a format byte (0), then AMF0 values (with AMF3 switches)
        this.data(msg.streamId, msg.timestamp, msg.payload.subarray(1), out);
        return true;
      case RtmpMessageType.aggregate:
        this.aggregate(msg, out);
        return true;
      default:
        return false;
    }
  }

  private media(kind: 'audio' | 'video', streamId: number, timestamp: number, body: Uint8Array, out: MediaOut): void {
    if (!this.accepts(streamId)) {
      this.droppedMessages++;
      return;
    }
    out.push({ type: 'media', kind, streamId, timestamp, body });
  }

  private data(streamId: number, timestamp: number, payload: Uint8Array, out: MediaOut): void {
    if (!this.accepts(streamId)) {
      this.droppedMessages++;
      return;
    }
    let body = payload;
    let values: Amf0Value[];
    try {
      const first = decodeAmf0(payload);
      if (first.value === '@setDataFrame') body = payload.subarray(first.offset);
      else if (first.value === '@clearDataFrame' && this.dropClearDataFrame) return;
      values = decodeAmf0All(body);
    } catch (e) {
      if (!(e instanceof StreamgateError)) throw e;
      this.badDataMessages++;
      return;
    }
    const name = values[0];
    if (typeof name !== 'string') {
      this.badDataMessages++;
      return;
    }
    out.push({ type: 'media', kind: 'data', streamId, timestamp, body, name, values });
  }

  /** Aggregate messages (type 22): FLV tags back to back, timestamps relative to the first (FMS, Wowza relays). */
  private aggregate(msg: RtmpMessage, out: MediaOut): void {
    const p = msg.payload;
    let o = 0;
    let first: number | null = null;
    while (o + TAG_HEADER_BYTES <= p.length) {
      const type = p[o] as number;
      const size = ((p[o + 1] as number) << 16) | ((p[o + 2] as number) << 8) | (p[o + 3] as number);
      // FLV timestamp: 24 bits, then the extension byte holding bits 31..24
      const ts = (((p[o + 7] as number) << 24) | ((p[o + 4] as number) << 16) | ((p[o + 5] as number) << 8) | (p[o + 6] as number)) >>> 0;
      const end = o + TAG_HEADER_BYTES + size;
      if (end > p.length) throw new ParseError('rtmp aggregate', `tag of ${size} bytes past the end`, o);
      first ??= ts;
      const body = p.subarray(o + TAG_HEADER_BYTES, end);
      const timestamp = msg.timestamp + (ts - first);
      if (type === RtmpMessageType.audio || type === RtmpMessageType.video) {
        this.media(type === RtmpMessageType.audio ? 'audio' : 'video', msg.streamId, timestamp, body, out);
      } else if (type === RtmpMessageType.dataAmf0) {
        this.data(msg.streamId, timestamp, body, out);
      }
      o = end + BACK_POINTER_BYTES;
    }
  }
}
