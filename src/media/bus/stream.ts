import { log } from '../../log.js';
import type { Frame } from './frame.js';
import type { Reader } from './reader.js';
import type { Track } from './track.js';

/**
 * Bounds of the GOP cache. 32 MiB holds a 10 s GOP of a 25 Mbps stream; a longer GOP stops being cached (new
 * readers then wait for the next keyframe) rather than growing memory without bound.
 */
export const GOP_CACHE_MAX_BYTES = 32 * 1024 * 1024;
/** 1200 frames = 20 s at 60 fps, counting audio frames too: bounds the array itself for tiny frames. */
export const GOP_CACHE_MAX_FRAMES = 1200;
/**
 * A timestamp that jumps back by more than this (or forward by more than MAX_FORWARD_JUMP_MS) within one
 * publisher is a timeline reset (encoder restart, 32-bit wrap mishandled by a client): the stream rebases so
 * readers keep a monotonic timeline.
 */
export const MAX_BACKWARD_JUMP_MS = 500;
export const MAX_FORWARD_JUMP_MS = 10_000;
/**
 * Keyframe requests passed up to the publisher at most this often per path. Readers on lossy networks each ask
 * (a WebRTC viewer repeats its PLI about once per RTT until a keyframe comes), and every request passed up costs a
 * full IDR on the encoder: 500 ms keeps many viewers from making a 2-second-GOP stream all keyframes, while one
 * viewer's loss still gets a fresh picture within about one round trip plus one frame.
 */
export const KEYFRAME_REQUEST_INTERVAL_MS = 500;
/** At most one debug line per this long per path about keyframe requests nobody can serve (RTMP publishers). */
const KEYFRAME_UNSERVED_LOG_MS = 10_000;

/** What a publisher does with a keyframe request (see Session `requestKeyframe`). */
export type KeyframeHandler = (reason: string) => void;

/** Keyframe requests of a path's readers, for the API. */
export interface KeyframeRequestCounts {
  /** every request of a reader (WebRTC PLI/FIR, RTSP reader PLI/FIR, ...) */
  requested: number;
  /** requests handed to the publisher (at most one per KEYFRAME_REQUEST_INTERVAL_MS) */
  passedUp: number;
  /** requests made while no publisher that can act on them was attached (RTMP, none, between publishers) */
  unserved: number;
}

/** Gap left between the last frame of one publisher and the first of the next, about one frame at 25 fps. */
const EPOCH_GAP_MS = 40;

/** Options of one stream, from its path's settings. */
export interface StreamOptions {
  gopCache: boolean;
}

/**
 * A live path's media: its tracks, the GOP cache and the readers. The publisher calls `setTracks` then `write`;
 * every frame is fanned out to all readers as the same object (parsed once, shared as views).
 *
 * Timestamps: each publisher "epoch" is shifted so that the path's timeline starts at 0 and continues without
 * going back when a publisher reconnects (within the grace time) or its clock resets.
 */
export class Stream {
  tracks: Track[] = [];
  /** RTMP onMetaData of the current publisher, passed to RTMP readers */
  metadata: Record<string, unknown> | undefined;
  /** tracks known and a publisher attached */
  ready = false;
  hasVideo = false;
  readonly readers = new Set<Reader>();
  framesIn = 0;
  bytesIn = 0;
  /** keyframe requests of the readers since the path appeared (all publishers) */
  readonly keyframeRequests: KeyframeRequestCounts = { requested: 0, passedUp: 0, unserved: 0 };
  private keyframeHandler: KeyframeHandler | undefined;
  private lastKeyframeRequestMs = -Infinity;
  private lastUnservedLogMs = -Infinity;
  private gop: Frame[] = [];
  private gopBytes = 0;
  private offsetMs: number | undefined;
  private offsetTicks: number[] = [];
  private lastDts: number[] = [];
  private timelineEndMs = 0;
  private readyWaiters: (() => void)[] = [];

  constructor(
    readonly path: string,
    readonly options: StreamOptions = { gopCache: true },
  ) {}

  /**
   * Declares the publisher's tracks. When they match the previous publisher's (same codecs and parameters), the
   * old Track objects are kept (updated in place) and readers continue seamlessly; otherwise readers restart.
   * @returns the tracks the publisher must reference in its frames
   */
  setTracks(tracks: Track[]): Track[] {
    const continuing =
      this.tracks.length === tracks.length && tracks.every((t, i) => this.tracks[i]!.compatibleWith(t));
    if (continuing) {
      tracks.forEach((t, i) => {
        const old = this.tracks[i]!;
        if (t.sps && t.pps) old.setH264Params(t.sps, t.pps, dims(t));
        if (t.config && t.sampleRate !== undefined) old.setAudioConfig(t.config, t.sampleRate, t.channels ?? 2);
      });
    } else {
      this.tracks = tracks;
      tracks.forEach((t, i) => (t.id = i));
      this.lastDts = tracks.map(() => -Infinity);
    }
    this.hasVideo = this.tracks.some((t) => t.isVideo);
    this.offsetMs = undefined;
    this.gop = [];
    this.gopBytes = 0;
    this.ready = true;
    for (const r of this.readers) {
      if (continuing) r.resetToKeyframe();
      else r.start(this);
    }
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w();
    return this.tracks;
  }

  /** The publisher left; readers stay attached until the registry decides (grace time). */
  publisherGone(): void {
    this.ready = false;
    this.setKeyframeHandler(undefined);
    this.gop = [];
    this.gopBytes = 0;
  }

  /**
   * Who serves keyframe requests: the current publisher's handler (the registry sets it on addPublisher), or
   * undefined when it cannot act or is gone. A new handler may be used at once (its rate limit starts afresh).
   */
  setKeyframeHandler(handler: KeyframeHandler | undefined): void {
    this.keyframeHandler = handler;
    this.lastKeyframeRequestMs = -Infinity;
  }

  /**
   * A reader needs a keyframe (picture loss, a decoder joining late). Counted; passed up to the publisher at most
   * once per KEYFRAME_REQUEST_INTERVAL_MS (requests in between are covered by the keyframe already asked for);
   * dropped when no publisher can act on it. Never throws.
   * @param reason who asks, for the publisher's logs ('webrtc viewer PLI', 'rtsp reader FIR', ...)
   * @returns true when the request was passed up
   */
  requestKeyframe(reason: string, nowMs: number = performance.now()): boolean {
    const counts = this.keyframeRequests;
    counts.requested++;
    const handler = this.keyframeHandler;
    if (!handler) {
      counts.unserved++;
      if (nowMs - this.lastUnservedLogMs >= KEYFRAME_UNSERVED_LOG_MS) {
        this.lastUnservedLogMs = nowMs;
        log.debug({ path: this.path, reason, unserved: counts.unserved }, 'keyframe request dropped: the publisher cannot act on it');
      }
      return false;
    }
    if (nowMs - this.lastKeyframeRequestMs < KEYFRAME_REQUEST_INTERVAL_MS) return false;
    this.lastKeyframeRequestMs = nowMs;
    counts.passedUp++;
    try {
      handler(reason);
    } catch (err) {
      // a publisher failing to send its request must not break the reader that asked
      log.warn({ path: this.path, err: err instanceof Error ? err.message : String(err) }, 'keyframe request failed');
    }
    return true;
  }

  /** Resolves when tracks are known (immediately if they are). */
  whenReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /**
   * Publishes one frame: normalizes its timestamps, updates the GOP cache and fans it out.
   * The stream takes ownership of `frame` (its dts/pts are rewritten in place).
   */
  write(frame: Frame): void {
    const track = frame.track;
    const i = track.id;
    if (i < 0 || this.tracks[i] !== track) return; // a frame of a track this stream does not know
    if (this.offsetMs === undefined) this.rebase(frame, this.timelineEndMs + (this.framesIn > 0 ? EPOCH_GAP_MS : 0));
    let dts = frame.dts + this.offsetTicks[i]!;
    const last = this.lastDts[i]!;
    if (last !== -Infinity) {
      const deltaMs = ((dts - last) * 1000) / track.clockRate;
      if (deltaMs < -MAX_BACKWARD_JUMP_MS || deltaMs > MAX_FORWARD_JUMP_MS) {
        this.rebase(frame, this.timelineEndMs + EPOCH_GAP_MS);
        dts = frame.dts + this.offsetTicks[i]!;
      }
    }
    const off = this.offsetTicks[i]!;
    frame.dts += off;
    frame.pts += off;
    if (frame.dts > this.lastDts[i]!) this.lastDts[i] = frame.dts;
    const endMs = (frame.dts * 1000) / track.clockRate;
    if (endMs > this.timelineEndMs) this.timelineEndMs = endMs;
    this.framesIn++;
    this.bytesIn += frame.byteLength;

    if (this.options.gopCache) this.cache(frame);
    const now = performance.now();
    for (const r of this.readers) r.deliver(frame, this.hasVideo, now);
  }

  /**
   * Attaches a reader. If the stream is ready, the reader starts at once with the GOP cache (the latest keyframe
   * and everything after it), so a player shows a picture without waiting for the next keyframe.
   */
  addReader(reader: Reader): void {
    this.readers.add(reader);
    if (!this.ready) return;
    reader.start(this);
    // nothing cached to start from (a GOP longer than the cache, or an encoder that sends keyframes only on
    // request, like a browser publishing with WHIP): ask for one rather than keep the reader waiting
    if (this.hasVideo && this.gop.length === 0) this.requestKeyframe('a new reader waits for a keyframe');
    const now = performance.now();
    const burst = reader.catchUp ? catchUpBurst(this.gop) : this.gop;
    for (const f of burst) reader.deliver(f, this.hasVideo, now);
  }

  removeReader(reader: Reader): void {
    this.readers.delete(reader);
  }

  /** Frames a new reader would get first; for tests and the first-frame-age figure. */
  cachedFrames(): readonly Frame[] {
    return this.gop;
  }

  /** Newest dts on the path's timeline, in milliseconds. */
  get liveEdgeMs(): number {
    return this.timelineEndMs;
  }

  private rebase(frame: Frame, targetMs: number): void {
    const frameMs = (frame.dts * 1000) / frame.track.clockRate;
    this.offsetMs = targetMs - frameMs;
    const offMs = this.offsetMs;
    this.offsetTicks = this.tracks.map((t) => Math.round((offMs * t.clockRate) / 1000));
  }

  private cache(frame: Frame): void {
    if (this.hasVideo) {
      if (frame.track.isVideo && frame.keyframe) {
        this.gop = [frame];
        this.gopBytes = frame.byteLength;
        return;
      }
      if (this.gop.length === 0) return;
      if (this.gop.length >= GOP_CACHE_MAX_FRAMES || this.gopBytes + frame.byteLength > GOP_CACHE_MAX_BYTES) {
        this.gop = []; // GOP too long to cache: new readers wait for the next keyframe
        this.gopBytes = 0;
        return;
      }
      this.gop.push(frame);
      this.gopBytes += frame.byteLength;
    }
    // audio-only streams start on any frame: nothing to cache
  }
}

function dims(t: Track): { width: number; height: number; profile?: string } | undefined {
  if (t.width === undefined || t.height === undefined) return undefined;
  return t.profile === undefined ? { width: t.width, height: t.height } : { width: t.width, height: t.height, profile: t.profile };
}

/**
 * Share of its real duration a cached GOP takes when replayed to a catching-up reader: a 2 s GOP then spans
 * ~67 ms of media time, so the player shows the keyframe at once and is at the live edge a few frames later.
 */
export const CATCH_UP_TIME_FACTOR = 1 / 30;

/**
 * The GOP cache re-timed for a reader that should start at the live edge: video timestamps are compressed toward
 * the newest cached frame (a monotonic map, so decode and display order are kept, B-frames included) and cached
 * audio is left out (it would play sped up). Frames are shallow copies sharing the same `au` views: no media bytes
 * are copied. The first live frame then follows the last burst frame on the real timeline.
 */
export function catchUpBurst(gop: readonly Frame[]): Frame[] {
  const video = gop.filter((f) => f.track.isVideo);
  if (video.length === 0) return [];
  const last = video[video.length - 1]!;
  const end = Math.max(last.dts, last.pts);
  // keep re-timed frames ≥ 1.5 ms apart so millisecond timestamps (RTMP, FLV) stay strictly increasing
  let minDelta = Infinity;
  for (let i = 1; i < video.length; i++) minDelta = Math.min(minDelta, video[i]!.dts - video[i - 1]!.dts);
  const minTicks = (1.5 * last.track.clockRate) / 1000;
  const factor = minDelta > 0 && minDelta !== Infinity ? Math.min(1, Math.max(CATCH_UP_TIME_FACTOR, minTicks / minDelta)) : 1;
  return video.map((f) => ({
    ...f,
    dts: end - Math.round((end - f.dts) * factor),
    pts: end - Math.round((end - f.pts) * factor),
    origin: f.origin ?? f,
  }));
}
