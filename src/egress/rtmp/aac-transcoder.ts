/**
 * Opus → AAC for RTMP readers: FLV has no Opus mapping that players accept, so streams published with WHIP
 * (H.264 + Opus) would reach RTMP players without sound. One ffmpeg child per path, shared by all RTMP readers of
 * the path: fed Ogg/Opus on stdin, it writes ADTS AAC on stdout, which is split into AAC frames here. Each frame's
 * timestamp is mapped back from the Opus packets that went in (`OpusToAacTimeline`), so audio keeps the path's
 * timeline and lip sync holds even when the input has gaps (DTX). The frames carry their own AAC `Track`, so the
 * RTMP sink sends them through its usual sequence-header and tag path. The child, its feeding and its subscribers
 * are `FfmpegTranscoder`'s; the pool is `SharedTranscoders`.
 */
import { ffmpegInstalledOrWarn } from '../ffmpeg.js';
import { FfmpegTranscoder, ffmpegPipeArgs } from '../transcode/ffmpeg-transcoder.js';
import { SampleTimeline } from '../transcode/sample-timeline.js';
import { SharedTranscoders } from '../transcode/shared-transcoders.js';
import { LimitError, ParseError } from '../../errors.js';
import { ADTS_HEADER_LENGTH, parseAdts, serializeAudioSpecificConfig } from '../../media/codecs/aac.js';
import { makeFrame, type Frame } from '../../media/bus/frame.js';
import { Track } from '../../media/bus/track.js';
import { AAC_FRAME_SAMPLES, OPUS_CLOCK_RATE, opusPacketSamples } from '../webrtc/opus-transcoder.js';

/**
 * Opus packets remembered for the timestamp mapping: 1024 packets ≈ 20 s of 20 ms packets, far more than
 * ffmpeg's pipeline delay (~50 ms) while bounding memory when ffmpeg stalls.
 */
export const OPUS_TIMELINE_MAX_PACKETS = 1024;
/**
 * Priming samples ffmpeg's native AAC encoder puts before the first input sample (its `initial_padding`, 1024).
 * ADTS cannot signal them, so output sample 0 is input sample −1024.
 */
export const AAC_ENCODER_DELAY = 1024;
/**
 * A transcoder fed nothing for this long stops: its readers left without closing their sinks (the RTMP server
 * detaches a reader on disconnect without calling `close`), or the publisher went away. 5 s is far beyond any
 * Opus DTX gap (400 ms, RFC 7587 §3.1.3 "DTX ... one frame every 400 ms").
 */
export const TRANSCODER_IDLE_MS = 5000;
/**
 * A subscriber that was handed no Opus frame for this long while output still arrives is no longer attached to
 * the stream (or dropping frames as a slow reader): it unsubscribes, and subscribes again with its next Opus frame.
 */
export const SUBSCRIBER_STALE_MS = 2000;
/** Largest ADTS frame: aac_frame_length is 13 bits (ISO/IEC 14496-3 1.A.2.2). */
export const ADTS_MAX_FRAME = 0x1fff;

/**
 * Maps AAC output sample positions (48 kHz) back to the Opus input timeline.
 *
 * Opus packet `i` fed to ffmpeg covers decoded samples [pos_i, pos_i + n_i) (pre-skip 0, 48 kHz); its dts (ticks
 * of 48 kHz) is remembered. An AAC frame starting at output sample `p` starts at input sample `q = p − delay`,
 * inside packet `k`, so its timestamp is `dts_k + q − pos_k`.
 */
export class OpusToAacTimeline extends SampleTimeline {
  constructor() {
    super(OPUS_TIMELINE_MAX_PACKETS);
  }
}

/** CRC-32 of Ogg pages (RFC 3533 §6: polynomial 0x04c11db7, not reflected, initial value 0). */
const OGG_CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let j = 0; j < 8; j++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    t[i] = r >>> 0;
  }
  return t;
})();

/** Largest packet one Ogg page built here carries: 255 lacing values of 255 (the last must be < 255). */
export const OGG_MAX_PACKET = 255 * 254;

/**
 * One Ogg page (RFC 3533 §6) holding exactly one whole packet.
 * @throws LimitError when the packet needs more than one page
 */
export function oggPage(packet: Uint8Array, granule: bigint, serial: number, seq: number, headerType: number): Uint8Array {
  if (packet.byteLength > OGG_MAX_PACKET) throw new LimitError('ogg packet bytes', OGG_MAX_PACKET, packet.byteLength);
  const lacing: number[] = [];
  let left = packet.byteLength;
  while (left >= 255) {
    lacing.push(255);
    left -= 255;
  }
  lacing.push(left);
  const page = new Uint8Array(27 + lacing.length + packet.byteLength);
  const v = new DataView(page.buffer);
  page.set([0x4f, 0x67, 0x67, 0x53], 0); // "OggS"
  page[5] = headerType;
  v.setBigInt64(6, granule, true);
  v.setUint32(14, serial, true);
  v.setUint32(18, seq, true);
  page[26] = lacing.length;
  page.set(lacing, 27);
  page.set(packet, 27 + lacing.length);
  let crc = 0;
  for (let i = 0; i < page.byteLength; i++) crc = ((crc << 8) ^ OGG_CRC_TABLE[((crc >>> 24) ^ page[i]!) & 0xff]!) >>> 0;
  v.setUint32(22, crc, true);
  return page;
}

/** OpusHead (RFC 7845 §5.1) for packets without pre-skip, as WebRTC sends them. */
export function opusHead(channels: number): Uint8Array {
  const h = new Uint8Array(19);
  h.set(new TextEncoder().encode('OpusHead'), 0);
  h[8] = 1; // version
  h[9] = channels;
  // pre-skip 0 (bytes 10-11): RTP Opus carries no priming to drop
  new DataView(h.buffer).setUint32(12, OPUS_CLOCK_RATE, true);
  return h; // output gain 0, mapping family 0
}

/** OpusTags (RFC 7845 §5.2) with a vendor string and no comments. */
export function opusTags(): Uint8Array {
  const vendor = new TextEncoder().encode('streamgate');
  const t = new Uint8Array(8 + 4 + vendor.byteLength + 4);
  t.set(new TextEncoder().encode('OpusTags'), 0);
  new DataView(t.buffer).setUint32(8, vendor.byteLength, true);
  t.set(vendor, 12);
  return t;
}

/** Splits ffmpeg's ADTS output into raw AAC frames. Push sans-I/O: bytes in, frames out. */
export class AdtsReader {
  private buf: Uint8Array = new Uint8Array(0);

  /**
   * @returns ADTS frames completed by `chunk` (copies, so stdout chunks are not pinned)
   * @throws ParseError on bytes that are not ADTS
   */
  push(chunk: Uint8Array): ReturnType<typeof parseAdts>[] {
    if (this.buf.byteLength === 0) this.buf = chunk;
    else {
      const b = new Uint8Array(this.buf.byteLength + chunk.byteLength);
      b.set(this.buf, 0);
      b.set(chunk, this.buf.byteLength);
      this.buf = b;
    }
    const out: ReturnType<typeof parseAdts>[] = [];
    let off = 0;
    while (this.buf.byteLength - off >= ADTS_HEADER_LENGTH) {
      const b = this.buf;
      const frameLength = ((b[off + 3]! & 0x03) << 11) | (b[off + 4]! << 3) | (b[off + 5]! >> 5);
      if (b[off] !== 0xff || (b[off + 1]! & 0xf0) !== 0xf0) throw new ParseError('aac-adts', 'no syncword', off);
      if (this.buf.byteLength - off < frameLength) break;
      const f = parseAdts(b.subarray(0, off + frameLength), off);
      out.push({ ...f, payload: f.payload.slice() });
      off += f.frameLength;
    }
    this.buf = off === 0 ? this.buf : this.buf.subarray(off).slice();
    if (this.buf.byteLength > ADTS_MAX_FRAME) throw new LimitError('adts frame bytes', ADTS_MAX_FRAME, this.buf.byteLength);
    return out;
  }
}

/** True when an `ffmpeg` binary can be run (checked once per process; logs once what RTMP readers lose without). */
export function ffmpegForRtmpAudio(): boolean {
  return ffmpegInstalledOrWarn('ffmpeg is not installed: RTMP readers of streams with Opus audio (WHIP) get video only (install ffmpeg to transcode it to AAC)');
}

/** Receives the transcoder's AAC frames (the same Frame object for every subscriber). */
export type AacSink = (frame: Frame) => void;

/** AAC bitrate for transcoded audio: transparent for speech and music in stereo at 48 kHz. */
const AAC_BITRATE = '128k';

/** ffmpeg's arguments: Ogg/Opus in, 48 kHz AAC-LC with `channels` channels out as ADTS. */
export function aacTranscoderArgs(channels: number): string[] {
  return ffmpegPipeArgs('ogg', ['-vn', '-c:a', 'aac', '-b:a', AAC_BITRATE, '-ar', String(OPUS_CLOCK_RATE), '-ac', String(channels)], 'adts');
}

/**
 * One ffmpeg Opus→AAC child for one Opus track. Frames are fed by every RTMP reader of the path; each is written
 * once (de-duplicated by dts: all readers receive the same frames in the same order). Output frames, on
 * {@link AacTranscoder.track}, go to every subscriber. It stops by itself after {@link TRANSCODER_IDLE_MS}
 * without input.
 */
export class AacTranscoder extends FfmpegTranscoder<Parameters<AacSink>> {
  /** the AAC track of the output frames; its config is set from the first ADTS header */
  readonly track: Track;
  private readonly timeline = new OpusToAacTimeline();
  private readonly adts = new AdtsReader();
  private headerWritten = false;
  private pageSeq = 0;
  private outSamples = 0;
  private lastOutDts = -Infinity;
  private readonly channels: number;

  constructor(
    path: string,
    input: Track,
    /** id the output track gets: one no track of the stream uses, so readers keep per-track state apart */
    trackId: number,
  ) {
    const channels = Math.min(Math.max(input.channels ?? 2, 1), 2);
    super({ path, input, name: 'aac transcoder', readers: 'RTMP readers', inputCodec: 'Opus', args: aacTranscoderArgs(channels), idleMs: TRANSCODER_IDLE_MS });
    this.channels = channels;
    this.track = new Track({ codec: 'aac', clockRate: OPUS_CLOCK_RATE, sampleRate: OPUS_CLOCK_RATE, channels });
    this.track.id = trackId;
  }

  /** Wraps one Opus packet in an Ogg page (after OpusHead and OpusTags, before the first). */
  protected override encode(frame: Frame): Uint8Array[] | null {
    const packet = frame.au[0];
    if (!packet || packet.byteLength === 0 || packet.byteLength > OGG_MAX_PACKET) return null;
    const samples = opusPacketSamples(packet);
    if (samples === 0) return null;
    const serial = 0x5347; // any constant: one logical stream
    const pages: Uint8Array[] = [];
    if (!this.headerWritten) {
      this.headerWritten = true;
      pages.push(oggPage(opusHead(this.channels), 0n, serial, this.pageSeq++, 0x02), oggPage(opusTags(), 0n, serial, this.pageSeq++, 0));
    }
    // a gap in the input (DTX, loss) is not filled: the decoder's output stays contiguous and the timeline
    // mapping puts each AAC frame back at the dts of the packet it came from
    this.timeline.push(frame.dts, samples);
    pages.push(oggPage(packet, BigInt(this.timeline.samples), serial, this.pageSeq++, 0));
    return pages;
  }

  /** ADTS frames → frames on {@link AacTranscoder.track} at the dts they map back to. */
  protected override decode(chunk: Uint8Array): Parameters<AacSink>[] {
    const out: Parameters<AacSink>[] = [];
    for (const f of this.adts.push(chunk)) {
      const start = this.outSamples - AAC_ENCODER_DELAY;
      this.outSamples += AAC_FRAME_SAMPLES;
      // (re)set the config until a frame went out (the first ADTS header gives it)
      if (this.lastOutDts === -Infinity || this.track.config === undefined) {
        const asc = serializeAudioSpecificConfig({ objectType: f.objectType, sampleRateIndex: f.sampleRateIndex, channelConfig: f.channelConfig });
        this.track.setAudioConfig(asc, f.sampleRate, f.channels);
      }
      const dts = this.timeline.map(start);
      // the priming frame maps before the first input; players need timestamps that never go back
      if (dts === null || dts < 0 || dts <= this.lastOutDts) continue;
      this.lastOutDts = dts;
      out.push([makeFrame(this.track, dts, dts, true, [f.payload])]);
    }
    return out;
  }
}

/** Reference-counted AAC transcoders, one per path. */
export class AacTranscoderPool extends SharedTranscoders<Parameters<AacSink>, AacTranscoder> {
  /** Subscribes `sink` to the path's transcoder for `input`, starting it on first use. */
  acquire(path: string, input: Track, trackId: number, sink: AacSink): AacTranscoder {
    return this.subscribe(path, input, sink, () => new AacTranscoder(path, input, trackId));
  }

  /** Unsubscribes; the transcoder stops with its last subscriber. */
  release(path: string, sink: AacSink): void {
    this.unsubscribe(path, sink);
  }
}

/** The process-wide pool the RTMP play sinks share. */
export const rtmpAacTranscoders = new AacTranscoderPool();

/**
 * One RTMP player's use of its path's transcoder: subscribes when the stream has Opus and no AAC, feeds it the
 * player's Opus frames, hands the AAC frames to `onFrame`. Detects a player the bus detached without closing it
 * (no Opus handed over for {@link SUBSCRIBER_STALE_MS}) and unsubscribes it; resubscribes on the next Opus frame.
 */
export class RtmpAudioTranscoding {
  private stream: { path: string; input: Track; trackId: number } | undefined;
  private transcoder: AacTranscoder | undefined;
  private lastInputMs = 0;
  private readonly sink: AacSink = (frame) => {
    if (performance.now() - this.lastInputMs > SUBSCRIBER_STALE_MS) this.release();
    else this.onFrame(frame);
  };

  constructor(
    private readonly onFrame: AacSink,
    private readonly pool: AacTranscoderPool = rtmpAacTranscoders,
  ) {}

  /**
   * (Re)starts for a stream's tracks. @returns the AAC track the player will get (for onMetaData), or undefined
   * when there is nothing to transcode or no ffmpeg.
   */
  start(stream: { path: string; tracks: readonly Track[] }): Track | undefined {
    this.stop();
    const opus = stream.tracks.find((t) => t.codec === 'opus');
    if (!opus || stream.tracks.some((t) => t.codec === 'aac') || !ffmpegForRtmpAudio()) return undefined;
    // the output track's id is one no stream track uses, so the player's per-track state stays apart
    this.stream = { path: stream.path, input: opus, trackId: stream.tracks.length };
    this.lastInputMs = performance.now();
    return this.acquire().track;
  }

  /** Feeds one Opus frame of the player. */
  feed(frame: Frame): void {
    if (!this.stream) return;
    this.lastInputMs = performance.now();
    const t = this.transcoder && this.transcoder.running ? this.transcoder : this.acquire();
    t.feed(frame);
  }

  /** Unsubscribes for good (the player closed). */
  stop(): void {
    this.release();
    this.stream = undefined;
  }

  private acquire(): AacTranscoder {
    const s = this.stream!;
    this.release();
    this.transcoder = this.pool.acquire(s.path, s.input, s.trackId, this.sink);
    return this.transcoder;
  }

  private release(): void {
    if (this.transcoder && this.stream) this.pool.release(this.stream.path, this.sink);
    this.transcoder = undefined;
  }
}