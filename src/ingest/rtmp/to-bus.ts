import { UnsupportedError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { isAmf0Object, type Amf0Value } from '../../media/flv/amf0.js';
import { FlvSoundFormat, parseAudioTag, parseVideoTag } from '../../media/flv/tag.js';
import { NalUnitType, isKeyframe, nalType, parseAvcConfig, splitAvcc } from '../../media/codecs/h264.js';
import { h264Dimensions } from '../../media/codecs/h264-profile.js';
import { parseAudioSpecificConfig } from '../../media/codecs/aac.js';
import { makeFrame, type Frame } from '../../media/bus/frame.js';
import { Track } from '../../media/bus/track.js';
import type { Stream } from '../../media/bus/stream.js';

/**
 * Frames held while the tracks are not known yet (sequence headers still to come). 2 s of 60 fps video plus
 * audio; a publisher that sends more media without ever sending a sequence header is broken.
 */
export const MAX_PENDING_FRAMES = 300;
/**
 * Without onMetaData telling which tracks come, the stream starts once this much media time has passed with
 * the tracks seen so far (ffmpeg and OBS send both sequence headers before the first frame, so this only
 * matters for odd clients).
 */
export const TRACK_DISCOVERY_MS = 1000;

const FLV_AVC_CODEC_ID = 7;
const FLV_AAC_SOUND_FORMAT = 10;

/**
 * RTMP publisher → frame bus (FLV tag bodies in, Frames out). Tracks are detected from the AVC/AAC sequence
 * headers (and onMetaData's videocodecid/audiocodecid say which to wait for); parameter sets that change
 * mid-stream — in a new sequence header or in-band SPS/PPS — update the track. Media before the tracks are known
 * is held (bounded) and written once they are, so nothing the publisher sent is lost.
 */
export class RtmpToBus {
  private video: Track | undefined;
  private audio: Track | undefined;
  private videoLengthSize = 4;
  private expectVideo: boolean | undefined;
  private expectAudio: boolean | undefined;
  private pending: Frame[] = [];
  private firstPendingMs = -1;
  private started = false;
  private warnedAudio = false;

  constructor(
    private readonly stream: Stream,
    private readonly log: Logger,
  ) {}

  /** onMetaData (values = ['onMetaData', {…}]): kept for RTMP readers; says which tracks to expect. */
  onData(name: string, values: Amf0Value[]): void {
    if (name !== 'onMetaData') return;
    const meta = values[1];
    if (meta === undefined || meta === null || typeof meta !== 'object' || !isAmf0Object(meta)) return;
    const copy: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(meta)) copy[k] = v;
    this.stream.metadata = copy;
    if (!this.started) {
      this.expectVideo = meta.videocodecid !== undefined && meta.videocodecid !== null && meta.videocodecid !== 0;
      this.expectAudio = meta.audiocodecid !== undefined && meta.audiocodecid !== null && meta.audiocodecid !== 0;
    }
  }

  /** A video message body at `timestampMs`. @throws UnsupportedError for codecs the bus does not carry */
  onVideo(timestampMs: number, body: Uint8Array): void {
    const tag = parseVideoTag(body);
    let config: Uint8Array | undefined;
    let coded: Uint8Array | undefined;
    let cts = 0;
    let keyframeFlag = false;
    if (tag.kind === 'avc') {
      if (tag.packetType === 'sequence') config = tag.data;
      else if (tag.packetType === 'nalu') coded = tag.data;
      cts = tag.cts;
      keyframeFlag = tag.frameType === 1;
    } else if (tag.kind === 'enhanced') {
      if (tag.fourcc !== 'avc1') throw new UnsupportedError(`Enhanced RTMP video codec '${tag.fourcc}' is not supported yet (only H.264)`);
      if (tag.packetType === 'sequenceStart') config = tag.data;
      else if (tag.packetType === 'codedFrames' || tag.packetType === 'codedFramesX') coded = tag.data;
      cts = tag.cts;
      keyframeFlag = tag.frameType === 1;
    } else if (tag.kind === 'other') {
      throw new UnsupportedError(`FLV video codec id ${tag.codecId} is not supported (only H.264, id ${FLV_AVC_CODEC_ID})`);
    } else {
      return; // video command frames carry no media
    }

    if (config) {
      const avc = parseAvcConfig(config);
      const sps = avc.sps[0];
      const pps = avc.pps[0];
      if (!sps || !pps) return;
      this.videoLengthSize = avc.lengthSize;
      this.video ??= new Track({ codec: 'h264', clockRate: 90000 });
      this.video.setH264Params(sps, pps, h264Dimensions(sps));
      return;
    }
    if (!coded || !this.video) return; // frames before the sequence header cannot be decoded
    const nalus = splitAvcc(coded, this.videoLengthSize);
    if (nalus.length === 0) return;
    this.updateInBandParams(this.video, nalus);
    const dts = timestampMs * 90;
    const frame = makeFrame(this.video, dts, dts + cts * 90, keyframeFlag || isKeyframe(nalus), nalus);
    this.emit(frame, timestampMs);
  }

  /** An audio message body at `timestampMs`. Non-AAC audio is dropped with one log line (video goes on). */
  onAudio(timestampMs: number, body: Uint8Array): void {
    const tag = parseAudioTag(body);
    if (tag.soundFormat !== FLV_AAC_SOUND_FORMAT) {
      if (!this.warnedAudio) {
        this.warnedAudio = true;
        const name = Object.entries(FlvSoundFormat).find(([, v]) => v === tag.soundFormat)?.[0] ?? String(tag.soundFormat);
        this.log.warn({ soundFormat: name, fourcc: tag.fourcc }, 'audio codec not supported (only AAC): audio dropped');
      }
      return;
    }
    if (tag.aacPacketType === 'sequence') {
      const asc = parseAudioSpecificConfig(tag.data);
      this.audio ??= new Track({ codec: 'aac', clockRate: asc.sampleRate, sampleRate: asc.sampleRate, channels: asc.channels });
      if (this.audio.clockRate !== asc.sampleRate) {
        throw new UnsupportedError(`AAC sample rate changed mid-stream (${this.audio.clockRate} → ${asc.sampleRate} Hz)`);
      }
      this.audio.setAudioConfig(tag.data, asc.sampleRate, asc.channels || 2);
      return;
    }
    if (!this.audio || tag.data.byteLength === 0) return;
    const dts = Math.round((timestampMs * this.audio.clockRate) / 1000);
    this.emit(makeFrame(this.audio, dts, dts, true, [tag.data]), timestampMs);
  }

  /** Flushes held frames when the publisher stops before its tracks were declared (nothing to flush to). */
  get isStarted(): boolean {
    return this.started;
  }

  private emit(frame: Frame, timestampMs: number): void {
    if (this.started) {
      this.stream.write(frame);
      return;
    }
    this.pending.push(frame);
    if (this.firstPendingMs < 0) this.firstPendingMs = timestampMs;
    if (this.canStart(timestampMs)) this.start();
    else if (this.pending.length > MAX_PENDING_FRAMES) {
      throw new UnsupportedError(`${MAX_PENDING_FRAMES} frames received but the stream's tracks are still unknown (missing sequence header?)`);
    }
  }

  private canStart(timestampMs: number): boolean {
    const videoOk = this.expectVideo === true ? this.video?.configured === true : true;
    const audioOk = this.expectAudio === true ? this.audio?.configured === true : true;
    if (this.expectVideo !== undefined || this.expectAudio !== undefined) {
      if (videoOk && audioOk) return true;
    } else if (this.video && this.audio) {
      return true;
    }
    return timestampMs - this.firstPendingMs >= TRACK_DISCOVERY_MS;
  }

  private start(): void {
    const tracks = [this.video, this.audio].filter((t): t is Track => t !== undefined);
    const canonical = this.stream.setTracks(tracks);
    // a returning publisher continues on the stream's existing Track objects
    for (const t of canonical) {
      if (t.codec === 'h264') this.remap(this.video, t);
      else this.remap(this.audio, t);
    }
    this.video = canonical.find((t) => t.codec === 'h264');
    this.audio = canonical.find((t) => t.codec === 'aac');
    this.started = true;
    this.log.info({ tracks: canonical.map((t) => t.info()) }, 'stream ready');
    const held = this.pending;
    this.pending = [];
    for (const f of held) this.stream.write(f);
  }

  private remap(from: Track | undefined, to: Track): void {
    if (!from || from === to) return;
    for (const f of this.pending) if (f.track === from) f.track = to;
  }

  /** SPS/PPS sent inside an access unit (some encoders repeat them before each IDR) update the track. */
  private updateInBandParams(track: Track, nalus: readonly Uint8Array[]): void {
    let sps: Uint8Array | undefined;
    let pps: Uint8Array | undefined;
    for (const n of nalus) {
      const t = nalType(n);
      if (t === NalUnitType.Sps) sps = n;
      else if (t === NalUnitType.Pps) pps = n;
    }
    if (sps && pps) track.setH264Params(sps, pps, h264Dimensions(sps));
  }
}
