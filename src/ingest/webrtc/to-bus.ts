/**
 * WHIP publish → frame bus: decrypted RTP from a browser or OBS (H.264 packetization-mode 1, Opus) becomes Frames.
 * Sans-I/O: `push(rtp, nowMs)` in, frames written to the stream; `wantsKeyframe()` tells the transport to send a
 * PLI (at start, and after a loss broke a picture).
 *
 * Timing: each track's RTP timestamps have a random base (RFC 3550 §5.1), so both are placed on one timeline by the
 * arrival time of their first packet: `pts(ms) = firstArrivalMs + (ts − firstTs) / clockRate`. Browser encoders
 * do not use B-frames, so dts = pts.
 */
import type { Frame } from '../../media/bus/frame.js';
import { makeFrame } from '../../media/bus/frame.js';
import { Track } from '../../media/bus/track.js';
import { NalUnitType, nalType } from '../../media/codecs/h264.js';
import { parseSps } from '../../media/codecs/h264-sps.js';
import { H264Depacketizer } from '../../media/rtp/h264.js';
import { parseRtp, TimestampUnwrapper } from '../../media/rtp/packet.js';
import { StreamgateError } from '../../errors.js';

/** Where frames go: the publisher's Stream (narrow, for tests). */
export interface FrameTarget {
  setTracks(tracks: Track[]): Track[];
  write(frame: Frame): void;
}

/** Payload types negotiated for the publish session (-1: not sent). */
export interface WhipPayloadTypes {
  video: number;
  audio: number;
}

/** Seconds without a keyframe after which another PLI is sent while the stream is not yet up. */
const PLI_RETRY_MS = 1000;

/** Per-track timing: the first packet's timestamp and arrival. */
class TrackClock {
  private readonly unwrap = new TimestampUnwrapper();
  private firstTs = -1;
  private base = 0;
  constructor(private readonly clockRate: number) {}

  /** Ticks on the shared timeline (whose 0 is the session's first arrival). */
  ticks(ts: number, arrivalMs: number, originMs: number): number {
    const ext = this.unwrap.unwrap(ts);
    if (this.firstTs < 0) {
      this.firstTs = ext;
      this.base = Math.round(((arrivalMs - originMs) * this.clockRate) / 1000);
    }
    return this.base + (ext - this.firstTs);
  }
}

/** One WHIP publisher's RTP → frames. */
export class WebrtcToBus {
  private readonly video = new Track({ codec: 'h264', clockRate: 90000 });
  private readonly audio = new Track({ codec: 'opus', clockRate: 48000, sampleRate: 48000, channels: 2 });
  private tracks: Track[] | undefined;
  private readonly depacketizer = new H264Depacketizer();
  private readonly videoClock = new TrackClock(90000);
  private readonly audioClock = new TrackClock(48000);
  private originMs = -1;
  private lastPliMs = -Infinity;
  private needKeyframe = true;
  framesIn = 0;
  bytesIn = 0;
  packetsBad = 0;

  constructor(
    private readonly target: FrameTarget,
    private readonly pts: WhipPayloadTypes,
  ) {}

  /** Feeds one decrypted RTP packet. Malformed packets are counted and skipped. */
  push(raw: Uint8Array, nowMs: number): void {
    let pkt;
    try {
      pkt = parseRtp(raw);
    } catch {
      this.packetsBad++;
      return;
    }
    this.bytesIn += raw.byteLength;
    if (this.originMs < 0) this.originMs = nowMs;
    if (pkt.payloadType === this.pts.video) {
      let au;
      try {
        au = this.depacketizer.push(pkt);
      } catch (err) {
        if (!(err instanceof StreamgateError)) throw err;
        this.packetsBad++;
        this.needKeyframe = true;
        return;
      }
      if (!au) return;
      const sps = au.nalus.find((n) => nalType(n) === NalUnitType.Sps);
      const pps = au.nalus.find((n) => nalType(n) === NalUnitType.Pps);
      if (sps && pps) {
        try {
          const info = parseSps(sps);
          this.video.setH264Params(sps, pps, { width: info.width, height: info.height });
        } catch {
          this.packetsBad++;
        }
      }
      if (au.keyframe) this.needKeyframe = false;
      const pts = this.videoClock.ticks(pkt.timestamp, nowMs, this.originMs);
      if (!this.start()) return;
      this.emit(makeFrame(this.tracks![0]!, pts, pts, au.keyframe, au.nalus));
    } else if (pkt.payloadType === this.pts.audio) {
      if (pkt.payload.byteLength === 0) return;
      const pts = this.audioClock.ticks(pkt.timestamp, nowMs, this.originMs);
      if (!this.tracks) return; // audio waits for the video's parameter sets so both start together
      const track = this.tracks.find((t) => t.codec === 'opus');
      if (track) this.emit(makeFrame(track, pts, pts, true, [Uint8Array.from(pkt.payload)]));
    } else {
      this.packetsBad++;
    }
  }

  private start(): boolean {
    if (this.tracks) return true;
    if (this.pts.video >= 0 && !this.video.configured) return false;
    const list: Track[] = [];
    if (this.pts.video >= 0) list.push(this.video);
    if (this.pts.audio >= 0) list.push(this.audio);
    this.tracks = this.target.setTracks(list);
    return true;
  }

  private emit(frame: Frame): void {
    this.framesIn++;
    this.target.write(frame);
  }

  /** True when the transport should send a PLI now (no keyframe yet, or a broken picture), at most once a second. */
  wantsKeyframe(nowMs: number): boolean {
    if (this.pts.video < 0) return false;
    const broken = this.depacketizer.stats.accessUnitsDropped > this.droppedSeen;
    this.droppedSeen = this.depacketizer.stats.accessUnitsDropped;
    if (broken) this.needKeyframe = true;
    if (!this.needKeyframe || nowMs - this.lastPliMs < PLI_RETRY_MS) return false;
    this.lastPliMs = nowMs;
    return true;
  }

  private droppedSeen = 0;

  /** Depacketizer counters, for the API. */
  stats(): Record<string, unknown> {
    return { framesIn: this.framesIn, packetsBad: this.packetsBad, ...this.depacketizer.stats };
  }
}
