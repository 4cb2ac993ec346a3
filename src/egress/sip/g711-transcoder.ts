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
import { spawn, type ChildProcess } from 'node:child_process';
import { ParseError } from '../../errors.js';
import { log, RateLimitedLog } from '../../log.js';
import type { Frame } from '../../media/bus/frame.js';
import type { Track } from '../../media/bus/track.js';
import { adtsHeader, parseAudioSpecificConfig, type AudioSpecificConfig } from '../../media/codecs/aac.js';
import {
  AacToOpusTimeline,
  ffmpegAvailable,
  OPUS_CLOCK_RATE,
  OpusTranscoder,
  TRANSCODER_MAX_PENDING_BYTES,
} from '../webrtc/opus-transcoder.js';

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

/** One ffmpeg AAC → G.711 child for one AAC track of one path. */
export class G711Transcoder {
  private child: ChildProcess | undefined;
  private readonly timeline: AacToOpusTimeline;
  private readonly packetizer: G711Packetizer;
  private readonly sinks = new Set<AudioPacketSink>();
  private lastDts = -Infinity;
  private closed = false;
  private readonly warn = new RateLimitedLog(log);
  private asc: AudioSpecificConfig | undefined;
  private ascVersion = -1;
  framesIn = 0;
  packetsOut = 0;
  framesDropped = 0;

  constructor(
    readonly path: string,
    readonly track: Track,
    readonly law: G711Law,
  ) {
    const sr = track.sampleRate ?? track.clockRate;
    this.timeline = new AacToOpusTimeline(sr);
    this.packetizer = new G711Packetizer(this.timeline);
    const [codec, format] = law === 'pcmu' ? ['pcm_mulaw', 'mulaw'] : ['pcm_alaw', 'alaw'];
    const args = [
      '-hide_banner', '-loglevel', 'error', '-nostdin',
      // read frames as they come: no probing delay, no input buffering
      '-fflags', '+nobuffer', '-probesize', '32', '-analyzeduration', '0',
      '-f', 'aac', '-i', 'pipe:0',
      '-vn', '-ac', '1', '-ar', String(G711_SAMPLE_RATE), '-c:a', codec,
      // raw samples, written as soon as each frame is encoded
      '-f', format, '-flush_packets', '1', 'pipe:1',
    ];
    const child = spawn('ffmpeg', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.on('error', (err) => {
      log.warn({ path, law, err: err.message }, 'G.711 transcoder: cannot run ffmpeg; SIP readers get no audio');
      this.stop();
    });
    child.stdin!.on('error', () => undefined); // EPIPE when ffmpeg exits first; 'exit' reports it
    child.stdout!.on('data', (chunk: Buffer) => this.onOutput(chunk));
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 2000) stderr += d.toString();
    });
    child.on('exit', (code, signal) => {
      if (!this.closed) log.warn({ path, law, code, signal, stderr: stderr.trim() || undefined }, 'G.711 transcoder: ffmpeg exited; SIP readers get no audio');
      this.child = undefined;
    });
    log.info({ path, law, pid: child.pid, sampleRate: sr }, 'G.711 transcoder started');
  }

  subscribe(sink: AudioPacketSink): void {
    this.sinks.add(sink);
  }

  unsubscribe(sink: AudioPacketSink): void {
    this.sinks.delete(sink);
  }

  get subscribers(): number {
    return this.sinks.size;
  }

  get running(): boolean {
    return !this.closed && this.child !== undefined;
  }

  /** Feeds one AAC frame (once: frames already fed, by dts, are skipped). */
  feed(frame: Frame): void {
    if (this.closed || frame.track !== this.track || frame.dts <= this.lastDts) return;
    this.lastDts = frame.dts;
    const stdin = this.child?.stdin;
    if (!stdin || stdin.destroyed) return;
    if (stdin.writableLength > TRANSCODER_MAX_PENDING_BYTES) {
      this.framesDropped++;
      this.warn.warn({ path: this.path, law: this.law, pending: stdin.writableLength }, 'G.711 transcoder is behind: dropping AAC frames');
      return;
    }
    const raw = frame.au[0];
    if (!raw) return;
    let header: Uint8Array;
    try {
      header = adtsHeader(this.config(), raw.byteLength);
    } catch (err) {
      log.warn({ path: this.path, err: (err as Error).message }, 'G.711 transcoder: AAC track cannot be sent as ADTS; no audio for SIP readers');
      this.stop();
      return;
    }
    this.timeline.push(frame.dts);
    this.framesIn++;
    stdin.write(header);
    stdin.write(raw);
  }

  private config(): AudioSpecificConfig {
    if (!this.asc || this.ascVersion !== this.track.version) {
      if (!this.track.config) throw new ParseError('aac', 'track has no AudioSpecificConfig');
      this.asc = parseAudioSpecificConfig(this.track.config);
      this.ascVersion = this.track.version;
    }
    return this.asc;
  }

  private onOutput(chunk: Buffer): void {
    for (const p of this.packetizer.push(chunk)) {
      this.packetsOut++;
      for (const s of this.sinks) s(p.data, p.timestamp);
    }
  }

  /** Stops the child. Idempotent. */
  stop(): void {
    if (this.closed) return;
    this.closed = true;
    this.sinks.clear();
    const child = this.child;
    this.child = undefined;
    if (child) {
      child.stdin?.end();
      child.kill('SIGKILL');
      log.info({ path: this.path, law: this.law, framesIn: this.framesIn, packetsOut: this.packetsOut }, 'G.711 transcoder stopped');
    }
  }
}

/** What the pool needs of a transcoder (G711Transcoder and the WebRTC OpusTranscoder both fit). */
interface PooledTranscoder {
  readonly track: Track;
  readonly running: boolean;
  readonly subscribers: number;
  subscribe(sink: AudioPacketSink): void;
  unsubscribe(sink: AudioPacketSink): void;
  feed(frame: Frame): void;
  stop(): void;
}

/** Output codecs the pool can run transcoders for. */
export type TranscodeTarget = G711Law | 'opus';

let ffmpegWarned = false;

/**
 * Transcoders shared by the SIP readers of each path: one per (path, target codec), started by the first
 * `acquire` and stopped by the last `release`. `feed` passes every AAC frame to all of the path's transcoders.
 */
export class SipTranscoderPool {
  private readonly byKey = new Map<string, PooledTranscoder>();

  /**
   * True when ffmpeg can run. The first time it cannot, one log line says what SIP readers lose.
   * Checked once per process (the result is cached by `ffmpegAvailable`).
   */
  static available(): boolean {
    const ok = ffmpegAvailable();
    if (!ok && !ffmpegWarned) {
      ffmpegWarned = true;
      log.warn('ffmpeg is not installed: SIP readers of paths with AAC audio get video only, or 488 when they offer audio only (install ffmpeg to transcode AAC to G.711/Opus)');
    }
    return ok;
  }

  /** Subscribes `sink` to the path's transcoder for `target`, starting it on first use. */
  acquire(path: string, track: Track, target: TranscodeTarget, sink: AudioPacketSink): void {
    const key = `${target}|${path}`;
    let t = this.byKey.get(key);
    if (t && (!t.running || t.track !== track)) {
      t.stop();
      t = undefined;
    }
    if (!t) {
      t = target === 'opus' ? new OpusTranscoder(path, track) : new G711Transcoder(path, track, target);
      this.byKey.set(key, t);
    }
    t.subscribe(sink);
  }

  /** Unsubscribes; the transcoder stops with its last subscriber. */
  release(path: string, target: TranscodeTarget, sink: AudioPacketSink): void {
    const key = `${target}|${path}`;
    const t = this.byKey.get(key);
    if (!t) return;
    t.unsubscribe(sink);
    if (t.subscribers === 0) {
      t.stop();
      this.byKey.delete(key);
    }
  }

  /** Feeds an AAC frame to every transcoder of the path (each writes it once, whichever reader delivers first). */
  feed(path: string, frame: Frame): void {
    for (const target of ['pcmu', 'pcma', 'opus'] as const) this.byKey.get(`${target}|${path}`)?.feed(frame);
  }

  /** Running transcoders. */
  get size(): number {
    return this.byKey.size;
  }

  closeAll(): void {
    for (const t of this.byKey.values()) t.stop();
    this.byKey.clear();
  }
}
