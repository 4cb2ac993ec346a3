/**
 * AAC → Opus for WebRTC readers: browsers do not decode AAC (RFC 7874 makes Opus and G.711 the only mandatory
 * WebRTC audio codecs). One ffmpeg child per path, shared by all WebRTC readers of the path: fed ADTS on stdin,
 * it writes Ogg/Opus on stdout, which is split into Opus packets here. Each packet's RTP timestamp is mapped back
 * from the AAC frames that went in (`AacToOpusTimeline`), so audio keeps the path's timeline and lip sync holds
 * even when the input has gaps.
 */
import { ffmpegInstalled } from '../ffmpeg.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { LimitError, ParseError } from '../../errors.js';
import { log, RateLimitedLog } from '../../log.js';
import { adtsHeader, parseAudioSpecificConfig, type AudioSpecificConfig } from '../../media/codecs/aac.js';
import type { Frame } from '../../media/bus/frame.js';
import type { Track } from '../../media/bus/track.js';

/** Opus RTP clock (RFC 7587 §4.1: "the RTP timestamp is incremented with a 48000 Hz clock rate"). */
export const OPUS_CLOCK_RATE = 48000;
/** Samples per AAC-LC frame (ISO/IEC 14496-3 §4.5.1.1: frameLengthFlag 0 → 1024). */
export const AAC_FRAME_SAMPLES = 1024;
/**
 * AAC frames remembered for the timestamp mapping: 1024 frames ≈ 21 s at 48 kHz, far more than ffmpeg's pipeline
 * delay (~50 ms) while bounding memory when ffmpeg stalls.
 */
export const TIMELINE_MAX_FRAMES = 1024;
/** Largest Ogg page body: 255 segments of 255 bytes (RFC 3533 §6). */
export const OGG_MAX_PAGE_BODY = 255 * 255;
/** Bytes written to ffmpeg's stdin and not yet taken before frames are dropped: ~2 s of 128 kbps AAC. */
export const TRANSCODER_MAX_PENDING_BYTES = 64 * 1024;

/**
 * Maps Opus output sample positions back to the AAC input timeline.
 *
 * AAC frame `i` fed to ffmpeg covers input samples [i·1024, (i+1)·1024); its dts (ticks of the AAC sample rate)
 * is remembered. An Opus packet starting at output sample `p` (48 kHz, pre-skip removed) starts at input sample
 * `q = p·sr/48000`, inside frame `k = ⌊q/1024⌋`, so its RTP timestamp is `(dts_k + q − k·1024)·48000/sr`.
 */
export class AacToOpusTimeline {
  private readonly dts: number[] = [];
  /** index of dts[0] among all frames fed */
  private firstIndex = 0;
  private fed = 0;

  constructor(readonly sampleRate: number) {}

  /** Records the next AAC frame written to the encoder. */
  push(dts: number): void {
    this.dts.push(dts);
    this.fed++;
    if (this.dts.length > TIMELINE_MAX_FRAMES) {
      this.dts.shift();
      this.firstIndex++;
    }
  }

  /** Frames fed so far. */
  get count(): number {
    return this.fed;
  }

  /**
   * RTP timestamp (48 kHz, unwrapped) of the output sample at `p` (may be negative: the encoder's pre-roll), or
   * null when the frames it came from are no longer remembered or not yet fed.
   */
  map(p: number): number | null {
    if (this.dts.length === 0) return null;
    const q = (p * this.sampleRate) / OPUS_CLOCK_RATE;
    let k = Math.floor(q / AAC_FRAME_SAMPLES);
    // the pre-roll before the first frame and a packet that runs past the last fed frame extrapolate from the
    // nearest remembered frame
    if (k < this.firstIndex) {
      if (this.firstIndex > 0) return null;
      k = 0;
    }
    const last = this.firstIndex + this.dts.length - 1;
    if (k > last) k = last;
    const dtsK = this.dts[k - this.firstIndex]!;
    const inputTicks = dtsK + (q - k * AAC_FRAME_SAMPLES);
    return Math.round((inputTicks * OPUS_CLOCK_RATE) / this.sampleRate);
  }
}

/**
 * Samples in one Opus packet, from its TOC byte (RFC 6716 §3.1): the configuration gives the frame duration, the
 * code the frame count. Returns 0 for an empty packet.
 */
export function opusPacketSamples(packet: Uint8Array): number {
  if (packet.byteLength === 0) return 0;
  const toc = packet[0]!;
  const config = toc >> 3;
  let frameSamples: number;
  if (config < 12) frameSamples = [480, 960, 1920, 2880][config & 3]!; // SILK 10/20/40/60 ms
  else if (config < 16) frameSamples = (config & 1) === 0 ? 480 : 960; // Hybrid 10/20 ms
  else frameSamples = [120, 240, 480, 960][config & 3]!; // CELT 2.5/5/10/20 ms
  const code = toc & 3;
  let frames = 1;
  if (code === 1 || code === 2) frames = 2;
  else if (code === 3) frames = packet.byteLength > 1 ? packet[1]! & 0x3f : 0;
  return frameSamples * frames;
}

/** One packet out of an Ogg stream. */
export interface OggPacket {
  data: Uint8Array;
  /** granule position of the page the packet ended on (−1: not the last packet of its page) */
  granule: number;
}

/**
 * Splits an Ogg bitstream (RFC 3533) into packets. Push sans-I/O: bytes in, packets out, no CRC check (the input
 * comes from our own ffmpeg child over a pipe, never from the network).
 */
export class OggReader {
  private buf: Uint8Array = new Uint8Array(0);
  private partial: Uint8Array[] = [];

  /**
   * @returns packets completed by `chunk`; `data` are copies (pages are small; keeping views would pin stdout chunks)
   * @throws ParseError on a page without the "OggS" capture pattern
   */
  push(chunk: Uint8Array): OggPacket[] {
    this.buf = this.buf.byteLength === 0 ? chunk : concat2(this.buf, chunk);
    const out: OggPacket[] = [];
    let off = 0;
    for (;;) {
      if (this.buf.byteLength - off < 27) break;
      const b = this.buf;
      if (b[off] !== 0x4f || b[off + 1] !== 0x67 || b[off + 2] !== 0x67 || b[off + 3] !== 0x53) {
        throw new ParseError('ogg', 'missing OggS capture pattern', off);
      }
      const nseg = b[off + 26]!;
      if (this.buf.byteLength - off < 27 + nseg) break;
      let bodyLen = 0;
      for (let i = 0; i < nseg; i++) bodyLen += b[off + 27 + i]!;
      const pageLen = 27 + nseg + bodyLen;
      if (this.buf.byteLength - off < pageLen) break;
      const view = new DataView(b.buffer, b.byteOffset + off + 6, 8);
      const granule = Number(view.getBigInt64(0, true));
      let p = off + 27 + nseg;
      const completed: Uint8Array[] = [];
      for (let i = 0; i < nseg; i++) {
        const len = b[off + 27 + i]!;
        this.partial.push(b.subarray(p, p + len));
        p += len;
        if (len < 255) {
          completed.push(joinAll(this.partial));
          this.partial = [];
        }
      }
      completed.forEach((data, i) => out.push({ data, granule: i === completed.length - 1 ? granule : -1 }));
      off += pageLen;
    }
    // keep the unparsed tail as a copy so the chunk it came from can be freed
    this.buf = off === 0 ? this.buf : this.buf.subarray(off).slice();
    if (this.buf.byteLength > 27 + 255 + OGG_MAX_PAGE_BODY) throw new LimitError('ogg page bytes', OGG_MAX_PAGE_BODY, this.buf.byteLength);
    return out;
  }
}

function concat2(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}

function joinAll(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** Turns the Ogg/Opus output of the encoder into timestamped Opus packets (OpusHead/OpusTags skipped). */
export class OggOpusDepacketizer {
  private readonly ogg = new OggReader();
  private headersSeen = 0;
  private preSkip = 0;
  /** output samples (48 kHz) emitted before the next packet, pre-skip included */
  private position = 0;

  constructor(private readonly timeline: AacToOpusTimeline) {}

  /** @returns Opus packets with their RTP timestamps (48 kHz, unwrapped) */
  push(chunk: Uint8Array): { data: Uint8Array; timestamp: number }[] {
    const out: { data: Uint8Array; timestamp: number }[] = [];
    for (const pkt of this.ogg.push(chunk)) {
      if (this.headersSeen < 2) {
        // RFC 7845 §5.1: OpusHead, then §5.2 OpusTags
        if (this.headersSeen === 0) {
          if (pkt.data.byteLength < 19) throw new ParseError('ogg-opus', 'OpusHead too short');
          this.preSkip = pkt.data[10]! | (pkt.data[11]! << 8);
        }
        this.headersSeen++;
        continue;
      }
      const start = this.position - this.preSkip;
      this.position += opusPacketSamples(pkt.data);
      const ts = this.timeline.map(start);
      if (ts !== null) out.push({ data: pkt.data, timestamp: ts });
    }
    return out;
  }
}

let warnedMissing = false;

/** True when an `ffmpeg` binary can be run (checked once per process). */
export function ffmpegAvailable(): boolean {
  const ok = ffmpegInstalled();
  if (!ok && !warnedMissing) {
    warnedMissing = true;
    log.warn('ffmpeg is not installed: WebRTC readers of streams with AAC audio get video only (browsers cannot decode AAC; install ffmpeg to transcode it to Opus)');
  }
  return ok;
}

/** Receives the transcoder's Opus packets. */
export type OpusSink = (payload: Uint8Array, timestamp48k: number) => void;

/**
 * One ffmpeg AAC→Opus child for one AAC track. Frames are fed by every WebRTC reader of the path; each frame is
 * written once (frames are de-duplicated by dts, since all readers receive the same frames in the same order).
 * Output packets go to every subscribed sink.
 */
export class OpusTranscoder {
  private child: ChildProcess | undefined;
  private readonly timeline: AacToOpusTimeline;
  private readonly depacketizer: OggOpusDepacketizer;
  private readonly sinks = new Set<OpusSink>();
  private lastDts = -Infinity;
  private closed = false;
  private readonly warn = new RateLimitedLog(log);
  framesIn = 0;
  packetsOut = 0;
  framesDropped = 0;

  constructor(
    readonly path: string,
    readonly track: Track,
  ) {
    const sr = track.sampleRate ?? track.clockRate;
    this.timeline = new AacToOpusTimeline(sr);
    this.depacketizer = new OggOpusDepacketizer(this.timeline);
    const args = [
      '-hide_banner', '-loglevel', 'error', '-nostdin',
      // read frames as they come: no probing delay, no input buffering
      '-fflags', '+nobuffer', '-probesize', '32', '-analyzeduration', '0',
      '-f', 'aac', '-i', 'pipe:0',
      '-vn', '-c:a', 'libopus', '-b:a', '96k', '-ar', '48000', '-ac', '2',
      '-application', 'lowdelay', '-frame_duration', '20',
      // one page per packet, flushed at once, so each packet leaves ffmpeg as soon as it is encoded
      '-f', 'ogg', '-page_duration', '20000', '-flush_packets', '1', 'pipe:1',
    ];
    const child = spawn('ffmpeg', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.on('error', (err) => {
      log.warn({ path, err: err.message }, 'opus transcoder: cannot run ffmpeg; WebRTC readers get no audio');
      this.stop();
    });
    child.stdin!.on('error', () => undefined); // EPIPE when ffmpeg exits first; 'exit' reports it
    child.stdout!.on('data', (chunk: Buffer) => this.onOutput(chunk));
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 2000) stderr += d.toString();
    });
    child.on('exit', (code, signal) => {
      if (!this.closed) log.warn({ path, code, signal, stderr: stderr.trim() || undefined }, 'opus transcoder: ffmpeg exited; WebRTC readers get no audio');
      this.child = undefined;
    });
    log.info({ path, pid: child.pid, sampleRate: sr }, 'opus transcoder started');
  }

  /** Adds a receiver of Opus packets. */
  subscribe(sink: OpusSink): void {
    this.sinks.add(sink);
  }

  unsubscribe(sink: OpusSink): void {
    this.sinks.delete(sink);
  }

  get subscribers(): number {
    return this.sinks.size;
  }

  /** Feeds one AAC frame (once: frames already fed, by dts, are skipped). */
  feed(frame: Frame): void {
    if (this.closed || frame.track !== this.track || frame.dts <= this.lastDts) return;
    this.lastDts = frame.dts;
    const stdin = this.child?.stdin;
    if (!stdin || stdin.destroyed) return;
    if (stdin.writableLength > TRANSCODER_MAX_PENDING_BYTES) {
      this.framesDropped++;
      this.warn.warn({ path: this.path, pending: stdin.writableLength }, 'opus transcoder is behind: dropping AAC frames');
      return;
    }
    const raw = frame.au[0];
    if (!raw) return;
    let header: Uint8Array;
    try {
      header = adtsHeader(this.config(), raw.byteLength);
    } catch (err) {
      log.warn({ path: this.path, err: (err as Error).message }, 'opus transcoder: AAC track cannot be sent as ADTS; no audio for WebRTC readers');
      this.stop();
      return;
    }
    this.timeline.push(frame.dts);
    this.framesIn++;
    stdin.write(header);
    stdin.write(raw);
  }

  private asc: AudioSpecificConfig | undefined;
  private ascVersion = -1;

  /** The track's AudioSpecificConfig, parsed once per version. */
  private config(): AudioSpecificConfig {
    if (!this.asc || this.ascVersion !== this.track.version) {
      if (!this.track.config) throw new ParseError('aac', 'track has no AudioSpecificConfig');
      this.asc = parseAudioSpecificConfig(this.track.config);
      this.ascVersion = this.track.version;
    }
    return this.asc;
  }

  private onOutput(chunk: Buffer): void {
    let packets: { data: Uint8Array; timestamp: number }[];
    try {
      packets = this.depacketizer.push(chunk);
    } catch (err) {
      log.warn({ path: this.path, err: (err as Error).message }, 'opus transcoder: bad output from ffmpeg; stopping it');
      this.stop();
      return;
    }
    for (const p of packets) {
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
      log.info({ path: this.path, framesIn: this.framesIn, packetsOut: this.packetsOut }, 'opus transcoder stopped');
    }
  }

  get running(): boolean {
    return !this.closed && this.child !== undefined;
  }
}
