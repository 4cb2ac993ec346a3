/**
 * HLS segmenter: a sans-I/O state machine that turns bus frames into Low-Latency HLS parts and segments (fMP4) or
 * classic MPEG-TS segments, keeps them for as long as the spec asks, and answers the bookkeeping questions of
 * blocking playlist reloads. It owns no sockets or timers: `push(frame, nowMs)` and `tick(nowMs)` return events,
 * `nextDeadline()` says when to call `tick` again (after gohlslib's muxer segmenter, rfc8216bis).
 *
 * Cutting rules
 * - The driving track is the video track (the audio track for audio-only streams). Output starts at its first
 *   keyframe; audio before that instant is dropped.
 * - A frame's duration is known when the next frame of its track arrives, so each frame is placed one frame late.
 * - Parts: the part target is fixed from the first frame interval `f` and never changes:
 *   `k·f + f/2` with `k = round(partDurationMs / f)` (at least 1). A part closes when the next frame would not fit,
 *   so every part is ≤ the part target (4.4.4.9), and k frames of a steady stream reach ≥ 85 % of it. The half
 *   frame absorbs the ±1 ms jitter of millisecond (RTMP) timestamps.
 * - Segments are cut at a video keyframe once at least `segmentMinDurationMs` are buffered (audio-only: at any
 *   frame), or when the track parameters change (new init segment, EXT-X-DISCONTINUITY).
 * - Keyframe requests: a segment that reached `segmentMinDurationMs` without a keyframe emits 'keyframe-wanted'
 *   (again after each further minimum duration). WebRTC encoders (browsers, OBS over WHIP) send an IDR only when
 *   asked, so without this a WHIP stream's first segment would never end; publishers with a regular GOP shorter
 *   than the minimum never see a request.
 * - Publication: the playlist is served once {@link SEGMENTS_TO_PUBLISH} segments are complete (fMP4 variants: two,
 *   MPEG-TS: one), or at the end of the stream.
 * - Target duration rule: when the first segment completes, EXT-X-TARGETDURATION is fixed to
 *   `max(ceil(segmentMinDuration), ceil(first segment duration))` (6.2.1: it MUST NOT change). A later
 *   GOP that would make a segment round above the target is split at a part boundary instead (a segment that does
 *   not start with a keyframe), because 6.2.1 requires every EXTINF to round to ≤ the target.
 *
 * Timestamps: the output timeline starts at 0 at the first keyframe. A step backwards (or of zero), or forwards by
 * more than {@link TIMESTAMP_JUMP_MS}, is a reset: the track continues right after its previous frame. A forward
 * gap larger than the part target (a stall) keeps the real time: the frame before it gets its nominal duration and
 * the next part starts after the hole (its tfdt says where).
 *
 * Retention (6.2.2): the playlist lists up to `segmentCount` segments but never less than three target durations;
 * EXT-X-PART tags are listed for the last three target durations; a segment stays downloadable until it first
 * appeared + its duration + the longest playlist served, and its parts three target durations after their tags
 * left the playlist. All of it is bounded by `maxBytes`.
 *
 * Continuity across restarts (6.2.1: the Media Sequence Number never decreases; 6.2.2: a removed segment stays
 * available): a segmenter that replaces another one of the same path (a new publisher with other tracks, or a
 * muxer started again after the last one stopped) takes a {@link SegmenterHandover} from it. It continues the media
 * sequence, part ids and init generations (so no URI ever names two different files), keeps the predecessor's
 * segments listed and downloadable when they are handed over with their media, keeps EXT-X-TARGETDURATION and,
 * when the new frame rate allows, PART-TARGET, and starts its first segment with EXT-X-DISCONTINUITY.
 *
 * This file is the cutting state machine and composes one-job modules: segmenter-options.ts (options, defaults),
 * track-state.ts (per-track state, codec parameters), timing.ts (timeline and target rules), fragment-writer.ts with
 * fmp4-writer.ts / ts-writer.ts (part bytes per container), segment-window.ts (retention and byte limits),
 * handover.ts (continuity across segmenters), hls-files.ts (served files by name), blocking-reload.ts (6.2.5.2) and
 * playlist-view.ts (the media playlist and variant attributes as pure functions of the window).
 */
import { LimitError, UnsupportedError } from '../../errors.js';
import { blockingDecision, type BlockingDecision } from './blocking-reload.js';
import { createFragmentWriter, type FragmentWriter, type PartRun } from './fragment-writer.js';
import { toHandoverSegment, withoutMedia, type HandoverPart, type HandoverSegment, type SegmenterHandover } from './handover.js';
import { lookupFile, type FileLookup, type HlsFile } from './hls-files.js';
import type { MediaPlaylist, PlaylistVariant } from './playlist.js';
import { buildMediaPlaylist, buildVariant, initFileName, partFileName } from './playlist-view.js';
import { SegmentWindow, type Part, type Segment } from './segment-window.js';
import {
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_SEGMENT_BYTES,
  DEFAULT_PART_DURATION_MS,
  DEFAULT_SEGMENTER_OPTIONS,
  DEFAULT_SEGMENT_COUNT,
  DEFAULT_SEGMENT_MIN_DURATION_MS,
  SEGMENTS_TO_PUBLISH,
  segmentsToPublish,
  type HlsVariant,
  type SegmenterOptions,
} from './segmenter-options.js';
import {
  TIMESTAMP_JUMP_MS,
  maxSegmentTicks,
  msToTicks,
  nominalDuration,
  partTargetTicks,
  placeOnTimeline,
  targetDurationS,
} from './timing.js';
import {
  adoptInBandParams,
  configured,
  newTrackState,
  sampleUnits,
  type Sample,
  type SegmenterFrame,
  type SegmenterTrack,
  type TrackState,
} from './track-state.js';

// The segmenter's API as other modules import it (server.ts, tests): the pieces live in the modules above.
export {
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_SEGMENT_BYTES,
  DEFAULT_PART_DURATION_MS,
  DEFAULT_SEGMENT_COUNT,
  DEFAULT_SEGMENT_MIN_DURATION_MS,
  SEGMENTS_TO_PUBLISH,
  TIMESTAMP_JUMP_MS,
  withoutMedia,
};
export type {
  BlockingDecision,
  FileLookup,
  HandoverPart,
  HandoverSegment,
  HlsFile,
  HlsVariant,
  SegmenterFrame,
  SegmenterHandover,
  SegmenterOptions,
  SegmenterTrack,
};

/**
 * Frames of a non-driving track waiting for a part (video stalled while audio flows). 512 AAC frames are ~11 s
 * at 48 kHz; older ones are dropped rather than kept without bound.
 */
export const MAX_UNPLACED_FRAMES = 512;

/** What happened during a `push`/`tick`/`finish`; the server wakes blocked requests on these. */
export type SegmenterEvent =
  | { type: 'ready' }
  | { type: 'part'; id: number; msn: number; index: number }
  | { type: 'segment'; msn: number }
  | { type: 'ended' }
  /** the open segment is due and needs a video keyframe to end: ask the publisher for one (playlists unchanged) */
  | { type: 'keyframe-wanted' };

/** A track of the stream the variant cannot carry, and why (the server logs it once per muxer). */
export interface LeftOutTrack {
  codec: SegmenterTrack['codec'];
  reason: string;
}

/** Counters for logs and metrics. */
export interface SegmenterStats {
  framesIn: number;
  framesDropped: number;
  timestampJumps: number;
  gaps: number;
  /** segments split at a non-keyframe to respect the target duration */
  forcedCuts: number;
  /** retired segments dropped before their availability ended, to respect maxBytes */
  evictedEarly: number;
}

/**
 * Segmenter of one stream for one variant: the part/segment cutting state machine (see the module doc), composing
 * the timeline rules (timing.ts), the container writers (fragment-writer.ts), the retained window
 * (segment-window.ts), file lookups (hls-files.ts), blocking reloads (blocking-reload.ts) and playlist views
 * (playlist-view.ts).
 */
export class HlsSegmenter {
  readonly options: SegmenterOptions;
  readonly stats: SegmenterStats = { framesIn: 0, framesDropped: 0, timestampJumps: 0, gaps: 0, forcedCuts: 0, evictedEarly: 0 };
  /** tracks of the stream this variant cannot carry (Opus in MPEG-TS) */
  readonly leftOut: readonly LeftOutTrack[];
  private readonly states = new Map<number, TrackState>();
  private readonly driving: TrackState;
  /** driving ticks of the open segment at which the next keyframe request is due */
  private keyframeAskAt = 0;
  private active: TrackState[] = [];
  private started = false;
  private published = false;
  private ended = false;
  private now = 0;
  private events: SegmenterEvent[] = [];

  private partTarget = 0; // driving ticks, 0 until the first frame interval is known
  private partDuration = 0; // driving ticks in the open part
  private maxSegmentTicks = Infinity;
  private pdtOriginMs = Infinity;
  /** the origin estimate is final (first own segment complete) */
  private pdtFixed = false;
  /** PART-TARGET (s) of a predecessor, kept when the frame rate allows it */
  private readonly resumedPartTargetS: number;
  /** EXT-X-TARGETDURATION (s) of a predecessor whose segments are gone: the new target is at least that */
  private readonly minTargetDuration: number;

  private nextPartId = 0;
  private initGen = -1;
  private readonly window: SegmentWindow;
  private readonly writer: FragmentWriter;

  /**
   * @param tracks the stream's tracks; the first H.264 track and the first audio track are used, others ignored.
   * @param handover from the segmenter this one replaces on the same path (see the module doc)
   * @throws UnsupportedError when there is no track this variant can carry.
   */
  constructor(tracks: readonly SegmenterTrack[], options: Partial<SegmenterOptions> = {}, handover?: SegmenterHandover) {
    this.options = { ...DEFAULT_SEGMENTER_OPTIONS, ...options };
    const video = tracks.find((t) => t.codec === 'h264');
    const ts = this.options.variant === 'mpegts';
    const audio = tracks.find((t) => t.codec === 'aac' || (t.codec === 'opus' && !ts));
    // Opus in MPEG-TS exists (a DVB draft, ffmpeg writes it) but no HLS player plays it: hls.js demuxes only AAC,
    // MP3 and AC-3 from TS, and Apple's HLS authoring spec names no Opus in TS. The video is served alone.
    this.leftOut = ts && !audio ? tracks.filter((t) => t.codec === 'opus').slice(0, 1).map((t) => ({
      codec: t.codec,
      reason: 'HLS players cannot play Opus in MPEG-TS; the fmp4 and lowLatency variants carry it (Opus in fMP4)',
    })) : [];
    if (!video && !audio) {
      throw new UnsupportedError(ts && this.leftOut.length > 0
        ? 'the stream\'s only audio is Opus, which the MPEG-TS variant cannot carry (HLS players cannot play Opus in TS), and it has no H.264 video'
        : 'HLS needs an H.264, AAC or Opus track');
    }
    let fmp4Id = 1;
    for (const t of [video, audio]) {
      if (!t) continue;
      this.states.set(t.id, newTrackState(t, fmp4Id++));
    }
    this.driving = this.states.get((video ?? audio)!.id)!;
    this.writer = createFragmentWriter(this.options.variant);
    this.resumedPartTargetS = handover?.partTargetS ?? 0;
    this.minTargetDuration = handover && handover.listed.length === 0 ? handover.targetDurationS : 0;
    const rate = this.driving.rate;
    if (handover) {
      // continue a predecessor's numbering (see the module doc); the window adopts its segments
      this.nextPartId = handover.nextPartId;
      this.initGen = handover.nextInitGen - 1;
    }
    this.window = new SegmentWindow(this.options, rate, this.stats, handover, this.initGen);
    if (handover && this.window.listed.length > 0) {
      // the playlist continues: its target duration cannot change (6.2.1)
      this.window.targetDurationS = handover.targetDurationS;
      this.maxSegmentTicks = maxSegmentTicks(handover.targetDurationS, rate);
      this.published = true;
    }
  }

  /** True once the first segment is complete and playlists can be served. */
  get ready(): boolean {
    return this.published;
  }

  /** True after `finish()`: the playlist carries EXT-X-ENDLIST. */
  get isEnded(): boolean {
    return this.ended;
  }

  /** EXT-X-TARGETDURATION in seconds (0 until the first segment is complete). */
  get targetDurationS(): number {
    return this.window.targetDurationS;
  }

  /** PART-TARGET in seconds (0 until known; a predecessor's until the frame rate is known). */
  get partTargetS(): number {
    return this.partTarget > 0 ? this.partTarget / this.driving.rate : this.resumedPartTargetS;
  }

  /** Bytes held in parts, segments and init segments. */
  get bufferedBytes(): number {
    return this.window.bytes;
  }

  /** How long a blocking request may wait before a 503 (6.2.5.2: three target durations). */
  blockingTimeoutMs(): number {
    return 3 * Math.max(1, this.window.targetDurationS) * 1000;
  }

  /**
   * Feeds one frame. `nowMs` is the wall clock (ms since the epoch): it dates the media (PROGRAM-DATE-TIME) and
   * ages retired segments. Frames of unknown tracks are ignored.
   * @throws LimitError when one segment exceeds `maxSegmentBytes`, or the window alone exceeds `maxBytes`.
   */
  push(frame: SegmenterFrame, nowMs: number): SegmenterEvent[] {
    this.events = [];
    this.setNow(nowMs);
    this.stats.framesIn++;
    const st = this.states.get(frame.track.id);
    if (this.ended || !st || st.track.codec !== frame.track.codec) {
      this.stats.framesDropped++;
      return this.flushEvents();
    }
    st.track = frame.track;
    if (!this.started) {
      if (st !== this.driving || (st.kind === 'video' && !frame.keyframe) || !this.start(frame)) {
        this.stats.framesDropped++;
        return this.flushEvents();
      }
    }
    if (!this.active.includes(st)) {
      this.stats.framesDropped++;
      return this.flushEvents();
    }
    const placed = placeOnTimeline(st, frame.dts, frame.pts);
    if (!placed) {
      this.stats.framesDropped++; // audio from before the first keyframe
      return this.flushEvents();
    }
    if (placed.jumped) this.stats.timestampJumps++;
    const { dts, pts } = placed;
    if (!this.pdtFixed && st === this.driving) {
      // frames are never early, only late (GOP cache bursts, network): the earliest origin estimate is the best
      this.pdtOriginMs = Math.min(this.pdtOriginMs, nowMs - (dts * 1000) / st.rate);
    }
    const sample: Sample = { dts, pts, duration: 0, keyframe: st.kind === 'audio' || frame.keyframe, units: sampleUnits(st, frame.au) };
    if (st === this.driving) this.onDriving(st, sample);
    else this.onOther(st, sample);
    this.window.expire();
    this.window.enforceBytes();
    return this.flushEvents();
  }

  /** Drops retired segments whose availability ended. Call at `nextDeadline()`. */
  tick(nowMs: number): SegmenterEvent[] {
    this.events = [];
    this.setNow(nowMs);
    this.window.expire();
    return this.flushEvents();
  }

  /** When `tick` should run next (ms, same clock as `nowMs`), or undefined when nothing is scheduled. */
  nextDeadline(): number | undefined {
    return this.window.nextDeadline();
  }

  /**
   * The stream ended: the pending frames become the last part and segment, the playlist gets EXT-X-ENDLIST.
   * Files stay served until the caller drops the segmenter.
   */
  finish(nowMs: number): SegmenterEvent[] {
    this.events = [];
    this.setNow(nowMs);
    if (this.ended) return [];
    if (this.started) {
      for (const st of this.active) {
        const p = st.pending;
        if (!p) continue;
        st.pending = undefined;
        p.duration = st.lastDuration || nominalDuration(st);
        if (st === this.driving) {
          if (this.partTarget === 0) this.decidePartTarget(p.duration);
          if (st.queue.length > 0 && this.partDuration + p.duration > this.partTarget) this.closePart(false);
          this.partDuration += p.duration;
          st.queue.push(p);
        } else {
          st.queue.push(p);
        }
      }
      this.closePart(true);
      this.closeSegment();
      // a stream that ended early is served with what it has
      if (!this.published && this.window.listed.length > 0) this.publish();
    }
    this.ended = true;
    this.events.push({ type: 'ended' });
    return this.flushEvents();
  }

  /**
   * Ends this segmenter (as `finish`) and describes what its successor on the same path needs to continue the
   * playlist: counters, target durations and the segments still listed or downloadable, media included (views of
   * this segmenter's buffers, which it no longer uses).
   */
  handover(nowMs: number): SegmenterHandover {
    try {
      this.finish(nowMs);
    } catch {
      // a segment over its byte limit: it is lost, the numbering still continues past it
      this.ended = true;
    }
    const rate = this.driving.rate;
    const w = this.window;
    const listed = w.listed.map((s) => toHandoverSegment(s, rate, this.pdtOriginMs));
    const retired = w.retired.map((s) => toHandoverSegment(s, rate, this.pdtOriginMs));
    const gens = new Set([...listed, ...retired].map((s) => s.initGen));
    return {
      nextMsn: w.nextMsnForSuccessor(),
      nextPartId: this.nextPartId,
      nextInitGen: this.initGen + 1,
      discontinuitySequence: w.discontinuitySequence,
      targetDurationS: w.targetDurationS,
      partTargetS: this.partTargetS,
      maxPlaylistMs: w.maxPlaylistMs,
      published: this.published,
      listed,
      retired,
      inits: [...w.inits].filter(([gen]) => gens.has(gen)),
    };
  }

  /**
   * Blocking playlist reload bookkeeping (rfc8216bis 6.2.5.2) for `_HLS_msn=msn` and optional `_HLS_part=part`:
   * 'ready' when the current playlist satisfies it, 'wait' when it is near (the server holds the request and asks
   * again on each event), 'bad-request' when `msn` is beyond the last segment + 2 or `part` exceeds the last part
   * by more than the Advance Part Limit (3 / PART-TARGET for targets under 1 s, else 3 parts).
   */
  blockingState(msn: number, part?: number): BlockingDecision {
    const w = this.window;
    const rate = this.driving.rate;
    return blockingDecision({
      ended: this.ended,
      published: this.published,
      openMsn: w.current.msn,
      openParts: w.current.parts.length,
      partsOf: (m) => w.segmentsByMsn.get(m)?.parts.length,
      partsToMinimum: () => {
        const remainingTicks = msToTicks(this.options.segmentMinDurationMs, rate) - this.segmentTicks();
        const partTicks = Math.max(1, this.partTarget || Math.round(this.resumedPartTargetS * rate));
        return Math.max(0, Math.ceil(remainingTicks / partTicks));
      },
      partTargetS: this.partTargetS,
    }, msn, part);
  }

  /** URI (relative) of the part after the last one: the EXT-X-PRELOAD-HINT target. */
  preloadHintName(): string {
    return partFileName(this.nextPartId, this.options.variant);
  }

  /** Name of the current init segment (fMP4 variants), e.g. `init0.mp4`. */
  initName(gen = this.initGen): string {
    return initFileName(gen);
  }

  /**
   * Looks up a file by name (`init<n>.mp4`, `seg<msn>.mp4|ts`, `part<id>.mp4`). The part named by the preload hint
   * is 'pending' until complete (6.2.6: a hinted resource is available for request when hinted).
   */
  file(name: string): FileLookup {
    return lookupFile(this.window, name, {
      variant: this.options.variant,
      video: this.driving.kind === 'video',
      hintedPartId: this.ended ? undefined : this.nextPartId,
    });
  }

  /** The media playlist as it stands (call only when `ready`); write it with `writeMediaPlaylist`. */
  mediaPlaylist(): MediaPlaylist {
    const w = this.window;
    return buildMediaPlaylist({
      variant: this.options.variant,
      rate: this.driving.rate,
      listed: w.listed,
      current: w.current,
      targetDurationS: w.targetDurationS,
      discontinuitySequence: w.discontinuitySequence,
      pdtOriginMs: this.pdtOriginMs,
      partTargetS: this.partTargetS,
      ended: this.ended,
      nextPartId: this.nextPartId,
    });
  }

  /**
   * The variant's EXT-X-STREAM-INF attributes: RFC 6381 codecs, resolution, frame rate, peak and average bit rate
   * of the listed segments. Call when `ready`.
   */
  variant(): Omit<PlaylistVariant, 'uri'> {
    return buildVariant({ tracks: this.active, listed: this.window.listed, rate: this.driving.rate, video: this.driving.kind === 'video' });
  }

  // ---- internals: the part/segment cutting state machine ----

  private setNow(nowMs: number): void {
    this.now = nowMs;
    this.window.now = nowMs;
  }

  private flushEvents(): SegmenterEvent[] {
    const e = this.events;
    this.events = [];
    return e;
  }

  /** Starts the timeline at the driving track's first usable frame; false when parameters are missing. */
  private start(frame: SegmenterFrame): boolean {
    const active = [...this.states.values()].filter((st) => st === this.driving || configured(st));
    if (this.driving.kind === 'video') adoptInBandParams(this.driving, frame.au);
    if (!configured(this.driving)) return false;
    this.active = active;
    const originS = frame.dts / this.driving.rate;
    for (const st of active) st.offset = -Math.round(originS * st.rate);
    this.rebuildInit();
    this.window.current.initGen = this.initGen;
    this.started = true;
    return true;
  }

  /** Builds the init segment (fMP4) or TS muxer for the current track parameters. */
  private rebuildInit(): void {
    this.initGen++;
    for (const st of this.active) st.initVersion = st.track.version;
    const init = this.writer.configure(this.active);
    if (init) this.window.addInit(this.initGen, init);
  }

  private paramsChanged(): boolean {
    for (const st of this.active) if (st.track.version !== st.initVersion) return true;
    return false;
  }

  private segmentTicks(): number {
    return this.window.current.duration + this.partDuration;
  }

  private onOther(st: TrackState, s: Sample): void {
    const p = st.pending;
    if (p) {
      // a hole in audio stays in the sample's duration (the trun cannot skip time): decoders play the frame,
      // then silence until the next one, so the timeline stays true
      const dur = s.dts - p.dts;
      p.duration = dur;
      st.lastDuration = dur;
      st.queue.push(p);
      if (st.queue.length > MAX_UNPLACED_FRAMES) {
        st.queue.shift();
        this.stats.framesDropped++;
      }
    }
    st.pending = s;
  }

  private onDriving(st: TrackState, s: Sample): void {
    const p = st.pending;
    if (p) {
      let dur = s.dts - p.dts;
      if (this.partTarget === 0) this.decidePartTarget(dur);
      let gap = false;
      if (dur > this.partTarget) {
        dur = st.lastDuration || Math.min(nominalDuration(st), this.partTarget);
        gap = true;
        this.stats.gaps++;
      }
      if (st.queue.length > 0 && this.partDuration + dur > this.partTarget) this.closePart(false);
      p.duration = dur;
      st.lastDuration = dur;
      st.queue.push(p);
      this.partDuration += dur;
      if (gap) this.closePart(false);
    }
    if (s.keyframe) {
      const changed = this.paramsChanged();
      const minTicks = msToTicks(this.options.segmentMinDurationMs, st.rate);
      if (changed || this.segmentTicks() >= minTicks) {
        this.closePart(true);
        this.closeSegment();
        if (changed) {
          if (st.kind === 'video') adoptInBandParams(st, s.units);
          this.rebuildInit();
          this.window.current.initGen = this.initGen;
          this.window.current.discontinuity = true;
        }
      }
    }
    if (!s.keyframe && st.kind === 'video') {
      const ticks = this.segmentTicks();
      const minTicks = msToTicks(this.options.segmentMinDurationMs, st.rate);
      if (ticks >= minTicks && ticks >= this.keyframeAskAt) {
        this.events.push({ type: 'keyframe-wanted' });
        this.keyframeAskAt = ticks + minTicks;
      }
    }
    // close the part now if the next frame (assumed as long as the last) would not fit: saves one frame of latency
    const next = st.lastDuration || nominalDuration(st);
    if (st.queue.length > 0 && this.partTarget > 0 && this.partDuration + next > this.partTarget) this.closePart(false);
    st.pending = s;
  }

  /** Fixes the part target from the first frame interval (see timing.ts); never changes afterwards. */
  private decidePartTarget(frameTicks: number): void {
    this.partTarget = partTargetTicks(frameTicks, this.options.partDurationMs, this.driving.rate, this.resumedPartTargetS);
  }

  /**
   * Builds the open part from the queued samples (driving track: all; others: those that start before the part
   * ends) with the variant's writer. `segmentEnd` skips the forced-cut check (the caller closes the segment anyway).
   */
  private closePart(segmentEnd: boolean): void {
    const d = this.driving;
    if (d.queue.length === 0) return;
    const driving = d.queue;
    d.queue = [];
    const duration = this.partDuration;
    this.partDuration = 0;
    const first = driving[0] as Sample;
    const endS = (first.dts + duration) / d.rate;
    const runs: PartRun[] = [{ st: d, samples: driving }];
    for (const st of this.active) {
      if (st === d || st.queue.length === 0) continue;
      let n = 0;
      while (n < st.queue.length && (st.queue[n] as Sample).dts / st.rate < endS) n++;
      if (n > 0) runs.push({ st, samples: st.queue.splice(0, n) });
    }
    const seg = this.window.current;
    const id = this.nextPartId++;
    const data = this.writer.write(runs, id + 1, seg.parts.length === 0);
    if (seg.parts.length === 0) seg.startDts = first.dts;
    const part: Part = { id, msn: seg.msn, index: seg.parts.length, data, duration, independent: first.keyframe };
    this.window.addPart(part, driving.length);
    this.events.push({ type: 'part', id, msn: seg.msn, index: part.index });
    if (seg.bytes > this.options.maxSegmentBytes) {
      throw new LimitError('HLS segment bytes', this.options.maxSegmentBytes, seg.bytes);
    }
    this.updatePartWindow();
    if (!segmentEnd && seg.duration + this.partTarget >= this.maxSegmentTicks) {
      this.stats.forcedCuts++;
      this.closeSegment();
    }
  }

  private closeSegment(): void {
    const w = this.window;
    if (w.current.parts.length === 0) return;
    const seg = w.listCurrent();
    if (!this.pdtFixed) {
      if (!Number.isFinite(this.pdtOriginMs)) this.pdtOriginMs = this.now;
      this.pdtFixed = true;
    }
    if (w.targetDurationS === 0) this.fixTarget(seg);
    if (!this.published && w.listed.length >= segmentsToPublish(this.options.variant)) this.publish();
    this.events.push({ type: 'segment', msn: seg.msn });
    w.openNext(this.initGen);
    this.keyframeAskAt = 0;
    w.trim(this.segmentTicks());
    this.updatePartWindow();
  }

  /** Fixes EXT-X-TARGETDURATION from the first segment (see the module doc); later segments obey it. */
  private fixTarget(first: Segment): void {
    const rate = this.driving.rate;
    const target = targetDurationS(this.options.segmentMinDurationMs, first.duration, rate, this.minTargetDuration);
    this.window.targetDurationS = target;
    this.maxSegmentTicks = maxSegmentTicks(target, rate);
  }

  /** Makes the playlist servable ('ready'). */
  private publish(): void {
    this.published = true;
    this.events.push({ type: 'ready' });
    this.updatePartWindow();
  }

  /** The EXT-X-PART window moves only once a playlist is served. */
  private updatePartWindow(): void {
    if (this.published) this.window.updatePartWindow();
  }
}
