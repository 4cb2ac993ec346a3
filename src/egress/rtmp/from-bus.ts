import { amf0EcmaArray, encodeAmf0, type Amf0Value } from '../../media/flv/amf0.js';
import { AVC_TAG_HEADER_LENGTH, aacSequenceHeaderTag, avcSequenceHeaderTag, AAC_TAG_BYTE0 } from '../../media/flv/tag.js';
import { serializeAvcConfig } from '../../media/codecs/h264.js';
import type { Frame } from '../../media/bus/frame.js';
import type { FrameSink } from '../../media/bus/reader.js';
import type { Stream } from '../../media/bus/stream.js';
import type { Track } from '../../media/bus/track.js';
import { RtmpAudioTranscoding } from './aac-transcoder.js';

/** RTMP message type ids used for media (Adobe RTMP spec §7.1). */
const MSG_AUDIO = 8;
const MSG_VIDEO = 9;
const MSG_DATA_AMF0 = 18;
/** Chunk stream ids for media, as nginx-rtmp assigns them (players are used to these). */
const CSID_DATA = 4; // not 5: the session writes its status messages on 5 with compressed headers
const CSID_AUDIO = 6;
const CSID_VIDEO = 7;

/** A message to send to a player; the connection owns chunking (see {@link RtmpPlayConnection.serialize}). */
export interface RtmpPlayMessage {
  csid: number;
  type: number;
  streamId: number;
  timestamp: number;
  payload: readonly Uint8Array[];
}

/** What the play sink needs from an RTMP connection (the server implements it). */
export interface RtmpPlayConnection {
  /** message stream id the player plays on */
  readonly streamId: number;
  /** chunks a message with the connection's outgoing chunk size (the same for every player) */
  serialize(msg: RtmpPlayMessage): Uint8Array;
  /** writes bytes to the socket */
  send(bytes: Uint8Array): void;
  /** writes several buffers with one syscall (corked) */
  sendMany(parts: readonly Uint8Array[]): void;
  /** bytes queued in the socket */
  bufferedBytes(): number;
  /** ends the playback (and the connection) with a reason */
  end(reason: string): void;
}

/**
 * Serialized frames, shared by every player on message stream 1 (what players get from createStream): a frame
 * is chunked ONCE and the same bytes are written to every socket. Keyed by the Frame object, so it is freed
 * with the frame. Buffers, not Uint8Arrays: net.Socket wraps a Uint8Array in a new Buffer on every write.
 */
const shared = new WeakMap<Frame, Buffer>();
const SHARED_STREAM_ID = 1;
/**
 * Bytes of a shared video message that a re-timed copy must patch: 1-byte basic header (csid 7) + 11-byte fmt-0
 * message header (timestamp in its first 3 bytes) + the 5-byte FLV video tag header (composition time in its
 * last 3 bytes).
 */
const VIDEO_PATCH_BYTES = 1 + 11 + AVC_TAG_HEADER_LENGTH;
/** Timestamps from here on use the 4-byte extended field, which continuation chunks repeat: no patching then. */
const EXTENDED_TIMESTAMP = 0xffffff;
/**
 * Audio frames held for the next video frame so both go out in one write (one syscall instead of ~2.4 per
 * video frame at 30 fps + 44.1 kHz AAC). 8 AAC frames ≈ 190 ms at 44.1 kHz: a stream whose video stalls still
 * gets its audio.
 */
const MAX_HELD_AUDIO = 8;

/** ms on the RTMP timeline for a tick count. */
function toMs(ticks: number, clockRate: number): number {
  return Math.round((ticks * 1000) / clockRate);
}

/**
 * Builds the FLV tag body of a frame as parts (header + views of the NAL units), so chunking copies the media
 * bytes exactly once. @returns parts referencing `frame.au`
 */
function tagParts(frame: Frame): Uint8Array[] {
  const track = frame.track;
  if (track.codec === 'h264') {
    const n = frame.au.length;
    const head = new Uint8Array(AVC_TAG_HEADER_LENGTH + 4 * n);
    const cts = toMs(frame.pts - frame.dts, track.clockRate);
    head[0] = (frame.keyframe ? 0x10 : 0x20) | 7;
    head[1] = 1; // AVC NALU
    head[2] = (cts >> 16) & 0xff;
    head[3] = (cts >> 8) & 0xff;
    head[4] = cts & 0xff;
    const parts: Uint8Array[] = [head.subarray(0, AVC_TAG_HEADER_LENGTH)];
    for (let i = 0; i < n; i++) {
      const nal = frame.au[i]!;
      const o = AVC_TAG_HEADER_LENGTH + 4 * i;
      const len = nal.byteLength;
      head[o] = len >>> 24;
      head[o + 1] = (len >>> 16) & 0xff;
      head[o + 2] = (len >>> 8) & 0xff;
      head[o + 3] = len & 0xff;
      parts.push(head.subarray(o, o + 4), nal);
    }
    return parts;
  }
  return [AAC_RAW_HEADER, frame.au[0]!];
}

const AAC_RAW_HEADER = Uint8Array.of(AAC_TAG_BYTE0, 1);

function frameMessage(frame: Frame, streamId: number): RtmpPlayMessage {
  const video = frame.track.codec === 'h264';
  return {
    csid: video ? CSID_VIDEO : CSID_AUDIO,
    type: video ? MSG_VIDEO : MSG_AUDIO,
    streamId,
    timestamp: toMs(frame.dts, frame.track.clockRate),
    payload: tagParts(frame),
  };
}

/** onMetaData for players: the publisher's own, or one built from the tracks. */
function metadataOf(stream: Stream, transcodedAudio: Track | undefined): Record<string, Amf0Value> {
  const meta: Record<string, Amf0Value> = {};
  if (stream.metadata) {
    for (const [k, v] of Object.entries(stream.metadata)) meta[k] = v as Amf0Value;
  }
  for (const t of transcodedAudio ? [...stream.tracks, transcodedAudio] : stream.tracks) {
    if (t.codec === 'h264') {
      if (t.width !== undefined) meta.width = t.width;
      if (t.height !== undefined) meta.height = t.height;
      meta.videocodecid = 7;
    } else if (t.codec === 'aac') {
      meta.audiocodecid = 10;
      if (t.sampleRate !== undefined) meta.audiosamplerate = t.sampleRate;
      meta.stereo = (t.channels ?? 2) > 1;
    }
  }
  meta.server = 'streamgate';
  return meta;
}

/**
 * Frame bus → one RTMP player. A player receives onMetaData, then the sequence headers, then the GOP cache (or
 * its catch-up burst), then live frames; sequence headers are sent again whenever a track's parameters change.
 * Opus tracks have no FLV mapping players accept: they go through the path's shared Opus→AAC transcoder
 * (`aac-transcoder.ts`), whose frames come back here as an AAC track; without ffmpeg they are skipped.
 */
export class RtmpPlaySink implements FrameSink {
  private sentVersion: number[] = [];
  private timestampMs = 0;
  private closed = false;
  /** hold audio for the next video frame (streams with video) */
  private holdAudio = false;
  private held: Uint8Array[] = [];
  private heldAudio = 0;
  private burstFlushQueued = false;
  /** the path's Opus→AAC transcoder, used while the stream has Opus and no AAC */
  private readonly transcoding = new RtmpAudioTranscoding((frame) => {
    if (this.closed) return;
    try {
      this.writeFrame(frame);
    } catch (err) {
      this.close(`reader failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  });

  constructor(private readonly conn: RtmpPlayConnection) {}

  start(stream: Stream): void {
    this.dropHeld();
    this.holdAudio = stream.hasVideo;
    const transcodedAudio = this.transcoding.start(stream);
    const data = encodeAmf0('onMetaData', amf0EcmaArray(metadataOf(stream, transcodedAudio)));
    this.conn.send(this.conn.serialize({ csid: CSID_DATA, type: MSG_DATA_AMF0, streamId: this.conn.streamId, timestamp: 0, payload: [data] }));
    this.sentVersion = [];
    for (const t of stream.tracks) this.sendSequenceHeader(t, this.timestampMs);
  }

  writeFrame(frame: Frame): void {
    const track = frame.track;
    if (track.codec === 'opus') {
      this.transcoding.feed(frame);
      return;
    }
    const ts = toMs(frame.dts, track.clockRate);
    if (this.sentVersion[track.id] !== track.version) this.sendSequenceHeader(track, ts);
    this.timestampMs = ts;
    const id = this.conn.streamId;
    if (id !== SHARED_STREAM_ID) {
      this.conn.send(this.conn.serialize(frameMessage(frame, id)));
      return;
    }
    const origin = frame.origin;
    if (origin && track.codec === 'h264' && ts < EXTENDED_TIMESTAMP && toMs(origin.dts, track.clockRate) < EXTENDED_TIMESTAMP) {
      // a re-timed copy of a cached frame: reuse the original's chunks, patch timestamp and composition time
      const base = this.sharedBytes(origin);
      const head = Buffer.from(base.subarray(0, VIDEO_PATCH_BYTES));
      head.writeUIntBE(ts, 1, 3);
      head.writeIntBE(toMs(frame.pts - frame.dts, track.clockRate), 12 + 2, 3);
      this.queue(head);
      this.queue(base.subarray(VIDEO_PATCH_BYTES));
      // the whole burst arrives in one synchronous loop: send it as one write, not one per frame
      if (!this.burstFlushQueued) {
        this.burstFlushQueued = true;
        queueMicrotask(() => {
          this.burstFlushQueued = false;
          if (!this.closed) this.flush();
        });
      }
      return;
    } else {
      this.queue(this.sharedBytes(frame));
    }
    if (track.codec === 'aac' && this.holdAudio && ++this.heldAudio < MAX_HELD_AUDIO) return;
    this.flush();
  }

  bufferedBytes(): number {
    // held bytes are left out: a few audio frames, or the catch-up burst, which is shared buffers that go out
    // in the same tick and must not count against the reader as a backlog
    return this.conn.bufferedBytes();
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.transcoding.stop();
    this.dropHeld();
    this.conn.end(reason);
  }

  private sharedBytes(frame: Frame): Buffer {
    let b = shared.get(frame);
    if (!b) {
      const u = this.conn.serialize(frameMessage(frame, SHARED_STREAM_ID));
      b = Buffer.from(u.buffer, u.byteOffset, u.byteLength);
      shared.set(frame, b);
    }
    return b;
  }

  private queue(bytes: Uint8Array): void {
    this.held.push(bytes);
  }

  private flush(): void {
    const parts = this.held;
    if (parts.length === 0) return;
    this.dropHeld();
    if (parts.length === 1) this.conn.send(parts[0]!);
    else this.conn.sendMany(parts);
  }

  private dropHeld(): void {
    this.held = [];
    this.heldAudio = 0;
  }

  private sendSequenceHeader(track: Track, timestampMs: number): void {
    this.flush();
    let body: Uint8Array | undefined;
    if (track.codec === 'h264' && track.sps && track.pps) body = avcSequenceHeaderTag(serializeAvcConfig([track.sps], [track.pps]));
    else if (track.codec === 'aac' && track.config) body = aacSequenceHeaderTag(track.config);
    this.sentVersion[track.id] = track.version;
    if (!body) return;
    const video = track.codec === 'h264';
    this.conn.send(
      this.conn.serialize({
        csid: video ? CSID_VIDEO : CSID_AUDIO,
        type: video ? MSG_VIDEO : MSG_AUDIO,
        streamId: this.conn.streamId,
        timestamp: timestampMs,
        payload: [body],
      }),
    );
  }
}
