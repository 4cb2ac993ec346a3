/**
 * AAC → Opus for WebRTC readers: browsers do not decode AAC (RFC 7874 makes Opus and G.711 the only mandatory
 * WebRTC audio codecs). One ffmpeg child per path, shared by all WebRTC readers of the path: fed ADTS on stdin,
 * it writes Ogg/Opus on stdout, which is split into Opus packets here. Each packet's RTP timestamp is mapped back
 * from the AAC frames that went in (`AacToOpusTimeline`), so audio keeps the path's timeline and lip sync holds
 * even when the input has gaps. The child, its feeding and its subscribers are `FfmpegTranscoder`'s.
 */
import { ffmpegInstalledOrWarn } from '../ffmpeg.js';
import { AdtsInput } from '../transcode/adts-input.js';
import { FfmpegTranscoder, ffmpegPipeArgs } from '../transcode/ffmpeg-transcoder.js';
import { SampleTimeline } from '../transcode/sample-timeline.js';
import { LimitError, ParseError } from '../../errors.js';
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

/**
 * Maps Opus output sample positions back to the AAC input timeline.
 *
 * AAC frame `i` fed to ffmpeg covers input samples [i·1024, (i+1)·1024); its dts (ticks of the AAC sample rate)
 * is remembered. An Opus packet starting at output sample `p` (48 kHz, pre-skip removed) starts at input sample
 * `q = p·sr/48000`, inside frame `k = ⌊q/1024⌋`, so its RTP timestamp is `(dts_k + q − k·1024)·48000/sr`.
 */
export class AacToOpusTimeline {
  private readonly frames = new SampleTimeline(TIMELINE_MAX_FRAMES);

  constructor(readonly sampleRate: number) {}

  /** Records the next AAC frame written to the encoder. */
  push(dts: number): void {
    this.frames.push(dts, AAC_FRAME_SAMPLES);
  }

  /**
   * RTP timestamp (48 kHz, unwrapped) of the output sample at `p` (may be negative: the encoder's pre-roll), or
   * null when the frames it came from are no longer remembered or not yet fed. The pre-roll before the first frame
   * and a packet that runs past the last fed frame extrapolate from the nearest remembered frame.
   */
  map(p: number): number | null {
    const inputTicks = this.frames.map((p * this.sampleRate) / OPUS_CLOCK_RATE);
    return inputTicks === null ? null : Math.round((inputTicks * OPUS_CLOCK_RATE) / this.sampleRate);
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

/** True when an `ffmpeg` binary can be run (checked once per process; logs once what WebRTC readers lose without). */
export function ffmpegAvailable(): boolean {
  return ffmpegInstalledOrWarn('ffmpeg is not installed: WebRTC readers of streams with AAC audio get video only (browsers cannot decode AAC; install ffmpeg to transcode it to Opus)');
}

/** Receives the transcoder's Opus packets. */
export type OpusSink = (payload: Uint8Array, timestamp48k: number) => void;

/** ffmpeg's arguments: ADTS in; 96 kbit/s stereo low-delay Opus in 20 ms packets out, one Ogg page per packet. */
export function opusTranscoderArgs(): string[] {
  return ffmpegPipeArgs(
    'aac',
    ['-vn', '-c:a', 'libopus', '-b:a', '96k', '-ar', '48000', '-ac', '2', '-application', 'lowdelay', '-frame_duration', '20'],
    // one page per packet, flushed at once, so each packet leaves ffmpeg as soon as it is encoded
    'ogg',
    ['-page_duration', '20000'],
  );
}

/**
 * One ffmpeg AAC→Opus child for one AAC track. Frames are fed by every WebRTC reader of the path; each frame is
 * written once (frames are de-duplicated by dts, since all readers receive the same frames in the same order).
 * Output packets go to every subscribed sink.
 */
export class OpusTranscoder extends FfmpegTranscoder<Parameters<OpusSink>> {
  private readonly adts: AdtsInput;
  private readonly depacketizer: OggOpusDepacketizer;

  constructor(
    path: string,
    /** the AAC track transcoded */
    readonly track: Track,
  ) {
    const sampleRate = track.sampleRate ?? track.clockRate;
    super({ path, input: track, name: 'opus transcoder', readers: 'WebRTC readers', inputCodec: 'AAC', args: opusTranscoderArgs(), logFields: { sampleRate } });
    const timeline = new AacToOpusTimeline(sampleRate);
    this.adts = new AdtsInput(track, timeline);
    this.depacketizer = new OggOpusDepacketizer(timeline);
  }

  protected override encode(frame: Frame): Uint8Array[] | null {
    return this.adts.encode(frame);
  }

  protected override decode(chunk: Uint8Array): Parameters<OpusSink>[] {
    return this.depacketizer.push(chunk).map((p) => [p.data, p.timestamp]);
  }
}
