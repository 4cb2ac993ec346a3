/**
 * AAC → G.711 (PCMU/PCMA, 8 kHz mono) for SIP readers, and the pool that shares transcoders between them.
 *
 * Phones decode G.711 everywhere and Opus sometimes, AAC never. One ffmpeg child per path and output codec is
 * shared by every SIP reader of the path that chose that codec: it is started with the first such reader and
 * stopped after the last. It is fed ADTS on stdin (each AAC frame once, de-duplicated by dts since every reader
 * delivers the same frames) and writes raw G.711 on stdout, one byte per sample, which is cut into 20 ms
 * payloads here. Each payload's RTP timestamp is mapped back from the AAC frames that went in, so audio keeps
 * the path's timeline (and lip sync with the video) across gaps in the input.
 *
 * AAC → Opus uses the WebRTC transcoder (egress/webrtc/opus-transcoder.ts) through the same pool.
 */
import { ffmpegInstalledOrWarn } from '../ffmpeg.js';
import { AdtsInput } from '../transcode/adts-input.js';
import { FfmpegTranscoder, ffmpegPipeArgs } from '../transcode/ffmpeg-transcoder.js';
import { SharedTranscoders } from '../transcode/shared-transcoders.js';
import type { Frame } from '../../media/bus/frame.js';
import type { Track } from '../../media/bus/track.js';
import { AacToOpusTimeline, ffmpegAvailable, OPUS_CLOCK_RATE, OpusTranscoder } from '../webrtc/opus-transcoder.js';

/** G.711 sample rate (ITU-T G.711; RFC 3551 §4.5.14). */
export const G711_SAMPLE_RATE = 8000;
/** Samples (= bytes) per payload: 20 ms, the RFC 3551 §4.5 default packetization of sample-based codecs. */
export const G711_SAMPLES_PER_PACKET = 160;
/** Output samples (8 kHz) to the 48 kHz positions `AacToOpusTimeline` maps from: 48000 / 8000. */
const TO_48K = OPUS_CLOCK_RATE / G711_SAMPLE_RATE;

/** G.711 flavours. */
export type G711Law = 'pcmu' | 'pcma';

/** Receives encoded audio payloads with their RTP timestamps (ticks of the codec's clock, unwrapped). */
export type AudioPacketSink = (payload: Uint8Array, timestamp: number) => void;

/**
 * Most a payload's timestamp may differ from the input timeline before the packetizer follows the timeline
 * instead of counting samples: one packet (20 ms). Below it, the difference is the jitter of the input's own
 * timestamps (RTMP carries milliseconds, so AAC frames at 44.1 kHz arrive ±1 ms off their sample count) and
 * contiguous timestamps are what a phone's jitter buffer expects; above it, the input really had a gap.
 */
export const G711_RESYNC_TICKS = G711_SAMPLES_PER_PACKET;

/**
 * Cuts a raw G.711 byte stream into 20 ms payloads. Timestamps advance by exactly 160 per payload while they stay
 * within G711_RESYNC_TICKS of the AAC timeline they map to, and jump to the timeline when the input had a gap.
 * Sans-I/O: `push(chunk)` returns the payloads it completed.
 */
export class G711Packetizer {
  private pending: Uint8Array = new Uint8Array(0);
  /** output samples emitted so far */
  private position = 0;
  private lastTimestamp: number | undefined;

  constructor(private readonly timeline: AacToOpusTimeline) {}

  /** @returns complete payloads (new buffers of G711_SAMPLES_PER_PACKET bytes) with their timestamps (8 kHz) */
  push(chunk: Uint8Array): { data: Uint8Array; timestamp: number }[] {
    const out: { data: Uint8Array; timestamp: number }[] = [];
    let buf = chunk;
    if (this.pending.length > 0) {
      buf = new Uint8Array(this.pending.length + chunk.length);
      buf.set(this.pending, 0);
      buf.set(chunk, this.pending.length);
    }
    let off = 0;
    while (buf.length - off >= G711_SAMPLES_PER_PACKET) {
      // a copy: the payload outlives the stdout chunk in every reader's send queue
      const data = buf.slice(off, off + G711_SAMPLES_PER_PACKET);
      const ts48 = this.timeline.map(this.position * TO_48K);
      this.position += G711_SAMPLES_PER_PACKET;
      off += G711_SAMPLES_PER_PACKET;
      if (ts48 === null) continue;
      const mapped = ts48 / TO_48K;
      const next = this.lastTimestamp === undefined ? undefined : this.lastTimestamp + G711_SAMPLES_PER_PACKET;
      const timestamp = next !== undefined && Math.abs(mapped - next) <= G711_RESYNC_TICKS ? next : Math.round(mapped);
      this.lastTimestamp = timestamp;
      out.push({ data, timestamp });
    }
    this.pending = buf.slice(off);
    return out;
  }
}

/** ffmpeg's arguments: ADTS in, raw 8 kHz mono G.711 out (one byte per sample, written as each frame is encoded). */
export function g711TranscoderArgs(law: G711Law): string[] {
  const [codec, format] = law === 'pcmu' ? ['pcm_mulaw', 'mulaw'] : ['pcm_alaw', 'alaw'];
  return ffmpegPipeArgs('aac', ['-vn', '-ac', '1', '-ar', String(G711_SAMPLE_RATE), '-c:a', codec], format);
}

/** One ffmpeg AAC → G.711 child for one AAC track of one path. */
export class G711Transcoder extends FfmpegTranscoder<Parameters<AudioPacketSink>> {
  private readonly adts: AdtsInput;
  private readonly packetizer: G711Packetizer;

  constructor(
    path: string,
    /** the AAC track transcoded */
    readonly track: Track,
    readonly law: G711Law,
  ) {
    const sampleRate = track.sampleRate ?? track.clockRate;
    super({ path, input: track, name: 'G.711 transcoder', readers: 'SIP readers', inputCodec: 'AAC', args: g711TranscoderArgs(law), logFields: { law, sampleRate } });
    const timeline = new AacToOpusTimeline(sampleRate);
    this.adts = new AdtsInput(track, timeline);
    this.packetizer = new G711Packetizer(timeline);
  }

  protected override encode(frame: Frame): Uint8Array[] | null {
    return this.adts.encode(frame);
  }

  protected override decode(chunk: Uint8Array): Parameters<AudioPacketSink>[] {
    return this.packetizer.push(chunk).map((p) => [p.data, p.timestamp]);
  }
}

/** Output codecs the pool can run transcoders for. */
export type TranscodeTarget = G711Law | 'opus';

const TARGETS: readonly TranscodeTarget[] = ['pcmu', 'pcma', 'opus'];

/**
 * Transcoders shared by the SIP readers of each path: one per (path, target codec), started by the first
 * `acquire` and stopped by the last `release`. `feed` passes every AAC frame to all of the path's transcoders.
 * AAC → Opus is the WebRTC transcoder.
 */
export class SipTranscoderPool extends SharedTranscoders<Parameters<AudioPacketSink>> {
  /**
   * True when ffmpeg can run. The first time it cannot, one log line says what SIP readers lose (and one what
   * WebRTC readers lose: AAC → Opus is their transcoder). Checked once per process.
   */
  static available(): boolean {
    return ffmpegAvailable() || ffmpegInstalledOrWarn('ffmpeg is not installed: SIP readers of paths with AAC audio get video only, or 488 when they offer audio only (install ffmpeg to transcode AAC to G.711/Opus)');
  }

  /** Subscribes `sink` to the path's transcoder for `target`, starting it on first use. */
  acquire(path: string, track: Track, target: TranscodeTarget, sink: AudioPacketSink): void {
    this.subscribe(`${target}|${path}`, track, sink, () => (target === 'opus' ? new OpusTranscoder(path, track) : new G711Transcoder(path, track, target)));
  }

  /** Unsubscribes; the transcoder stops with its last subscriber. */
  release(path: string, target: TranscodeTarget, sink: AudioPacketSink): void {
    this.unsubscribe(`${target}|${path}`, sink);
  }

  /** Feeds an AAC frame to every transcoder of the path (each writes it once, whichever reader delivers first). */
  feed(path: string, frame: Frame): void {
    for (const target of TARGETS) this.get(`${target}|${path}`)?.feed(frame);
  }
}
