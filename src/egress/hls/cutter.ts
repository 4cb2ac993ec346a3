/**
 * The part/segment cutting state machine of the HLS segmenter (the cutting rules are in segmenter.ts's module doc):
 * it takes samples already placed on the output timeline, closes parts at the part target and segments at keyframes
 * (or at a part boundary when the target duration demands it), asks for keyframes, fixes the target duration and
 * PROGRAM-DATE-TIME origin from the first segment, and publishes. Sans-I/O: the window's `now` is the clock, events
 * are collected until the owner drains them.
 */
import { LimitError } from '../../errors.js';
import type { PartRun, FragmentWriter } from './fragment-writer.js';
import type { SegmenterHandover } from './handover.js';
import type { Part, Segment, SegmentWindow } from './segment-window.js';
import { segmentsToPublish, type SegmenterOptions } from './segmenter-options.js';
import { maxSegmentTicks, msToTicks, nominalDuration, partTargetTicks, targetDurationS } from './timing.js';
import { adoptInBandParams, type Sample, type TrackState } from './track-state.js';

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

/** What the cutter works with; it owns none of it but the counters it updates. */
export interface CutterContext {
  options: SegmenterOptions;
  /** the track that drives cutting (video, else audio) */
  driving: TrackState;
  window: SegmentWindow;
  writer: FragmentWriter;
  stats: SegmenterStats;
}

/** Cuts placed samples into parts and segments of `ctx.window`. */
export class SegmentCutter {
  private readonly ctx: CutterContext;
  private activeTracks: TrackState[] = [];
  private events: SegmenterEvent[] = [];
  private isPublished = false;
  private partTicks = 0; // driving ticks, 0 until the first frame interval is known
  private partDuration = 0; // driving ticks in the open part
  private maxSegmentTicks = Infinity;
  /** driving ticks of the open segment at which the next keyframe request is due */
  private keyframeAskAt = 0;
  private originMs = Infinity;
  /** the origin estimate is final (first own segment complete) */
  private pdtFixed = false;
  private partId = 0;
  private gen: number;
  /** PART-TARGET (s) of a predecessor, kept when the frame rate allows it */
  private readonly resumedPartTargetS: number;
  /** EXT-X-TARGETDURATION (s) of a predecessor whose segments are gone: the new target is at least that */
  private readonly minTargetDuration: number;

  /**
   * @param initGen the generation of the last init segment (-1 when none, else the predecessor's last)
   * @param handover from the segmenter this one replaces; its segments are already in `ctx.window`
   */
  constructor(ctx: CutterContext, initGen: number, handover?: SegmenterHandover) {
    this.ctx = ctx;
    this.gen = initGen;
    this.resumedPartTargetS = handover?.partTargetS ?? 0;
    this.minTargetDuration = handover && handover.listed.length === 0 ? handover.targetDurationS : 0;
    if (handover) this.partId = handover.nextPartId;
    if (handover && ctx.window.listed.length > 0) {
      // the playlist continues: its target duration cannot change (6.2.1)
      ctx.window.targetDurationS = handover.targetDurationS;
      this.maxSegmentTicks = maxSegmentTicks(handover.targetDurationS, ctx.driving.rate);
      this.isPublished = true;
    }
  }

  /** The tracks being cut (empty until `begin`). */
  get active(): readonly TrackState[] {
    return this.activeTracks;
  }

  /** True once the playlist can be served. */
  get published(): boolean {
    return this.isPublished;
  }

  /** Part target in driving ticks; 0 until the first frame interval is known. */
  get partTarget(): number {
    return this.partTicks;
  }

  /** PART-TARGET in seconds (a predecessor's until the frame rate is known). */
  get partTargetS(): number {
    return this.partTicks > 0 ? this.partTicks / this.ctx.driving.rate : this.resumedPartTargetS;
  }

  /** Parts a blocking request may still wait for before the open segment reaches its minimum duration. */
  partsToMinimum(): number {
    const rate = this.ctx.driving.rate;
    const remainingTicks = msToTicks(this.ctx.options.segmentMinDurationMs, rate) - this.segmentTicks();
    const partTicks = Math.max(1, this.partTicks || Math.round(this.resumedPartTargetS * rate));
    return Math.max(0, Math.ceil(remainingTicks / partTicks));
  }

  /** Id of the next part (the preload hint). */
  get nextPartId(): number {
    return this.partId;
  }

  /** Generation of the current init segment. */
  get initGen(): number {
    return this.gen;
  }

  /** Wall clock (ms) of output time 0; Infinity until estimated. */
  get pdtOriginMs(): number {
    return this.originMs;
  }

  /** Takes an estimate of the wall clock at output time 0; the earliest wins until the first segment completes. */
  estimateOrigin(originMs: number): void {
    // frames are never early, only late (GOP cache bursts, network): the earliest origin estimate is the best
    if (!this.pdtFixed) this.originMs = Math.min(this.originMs, originMs);
  }

  /** Starts cutting `active` (the driving track first configured): builds the first init segment. */
  begin(active: TrackState[]): void {
    this.activeTracks = active;
    this.rebuildInit();
    this.ctx.window.current.initGen = this.gen;
  }

  /** Takes one placed sample of `st` (an active track). */
  push(st: TrackState, s: Sample): void {
    if (st === this.ctx.driving) this.onDriving(st, s);
    else this.onOther(st, s);
  }

  /** The stream ended: pending samples become the last part and segment; publishes what there is. */
  finish(): void {
    const d = this.ctx.driving;
    for (const st of this.activeTracks) {
      const p = st.pending;
      if (!p) continue;
      st.pending = undefined;
      p.duration = st.lastDuration || nominalDuration(st);
      if (st === d) {
        if (this.partTicks === 0) this.decidePartTarget(p.duration);
        if (st.queue.length > 0 && this.partDuration + p.duration > this.partTicks) this.closePart(false);
        this.partDuration += p.duration;
        st.queue.push(p);
      } else {
        st.queue.push(p);
      }
    }
    this.closePart(true);
    this.closeSegment();
    // a stream that ended early is served with what it has
    if (!this.isPublished && this.ctx.window.listed.length > 0) this.publish();
  }

  /** The events since the last call. */
  drain(): SegmenterEvent[] {
    const e = this.events;
    this.events = [];
    return e;
  }

  private segmentTicks(): number {
    return this.ctx.window.current.duration + this.partDuration;
  }

  /** Builds the init segment (fMP4) or TS muxer for the current track parameters. */
  private rebuildInit(): void {
    this.gen++;
    for (const st of this.activeTracks) st.initVersion = st.track.version;
    const init = this.ctx.writer.configure(this.activeTracks);
    if (init) this.ctx.window.addInit(this.gen, init);
  }

  private paramsChanged(): boolean {
    for (const st of this.activeTracks) if (st.track.version !== st.initVersion) return true;
    return false;
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
        this.ctx.stats.framesDropped++;
      }
    }
    st.pending = s;
  }

  private onDriving(st: TrackState, s: Sample): void {
    const p = st.pending;
    if (p) {
      let dur = s.dts - p.dts;
      if (this.partTicks === 0) this.decidePartTarget(dur);
      let gap = false;
      if (dur > this.partTicks) {
        dur = st.lastDuration || Math.min(nominalDuration(st), this.partTicks);
        gap = true;
        this.ctx.stats.gaps++;
      }
      if (st.queue.length > 0 && this.partDuration + dur > this.partTicks) this.closePart(false);
      p.duration = dur;
      st.lastDuration = dur;
      st.queue.push(p);
      this.partDuration += dur;
      if (gap) this.closePart(false);
    }
    if (s.keyframe) {
      const changed = this.paramsChanged();
      const minTicks = msToTicks(this.ctx.options.segmentMinDurationMs, st.rate);
      if (changed || this.segmentTicks() >= minTicks) {
        this.closePart(true);
        this.closeSegment();
        if (changed) {
          if (st.kind === 'video') adoptInBandParams(st, s.units);
          this.rebuildInit();
          this.ctx.window.current.initGen = this.gen;
          this.ctx.window.current.discontinuity = true;
        }
      }
    }
    if (!s.keyframe && st.kind === 'video') {
      const ticks = this.segmentTicks();
      const minTicks = msToTicks(this.ctx.options.segmentMinDurationMs, st.rate);
      if (ticks >= minTicks && ticks >= this.keyframeAskAt) {
        this.events.push({ type: 'keyframe-wanted' });
        this.keyframeAskAt = ticks + minTicks;
      }
    }
    // close the part now if the next frame (assumed as long as the last) would not fit: saves one frame of latency
    const next = st.lastDuration || nominalDuration(st);
    if (st.queue.length > 0 && this.partTicks > 0 && this.partDuration + next > this.partTicks) this.closePart(false);
    st.pending = s;
  }

  /** Fixes the part target from the first frame interval (see timing.ts); never changes afterwards. */
  private decidePartTarget(frameTicks: number): void {
    this.partTicks = partTargetTicks(frameTicks, this.ctx.options.partDurationMs, this.ctx.driving.rate, this.resumedPartTargetS);
  }

  /**
   * Builds the open part from the queued samples (driving track: all; others: those that start before the part
   * ends) with the variant's writer. `segmentEnd` skips the forced-cut check (the caller closes the segment anyway).
   */
  private closePart(segmentEnd: boolean): void {
    const d = this.ctx.driving;
    if (d.queue.length === 0) return;
    const driving = d.queue;
    d.queue = [];
    const duration = this.partDuration;
    this.partDuration = 0;
    const first = driving[0] as Sample;
    const endS = (first.dts + duration) / d.rate;
    const runs: PartRun[] = [{ st: d, samples: driving }];
    for (const st of this.activeTracks) {
      if (st === d || st.queue.length === 0) continue;
      let n = 0;
      while (n < st.queue.length && (st.queue[n] as Sample).dts / st.rate < endS) n++;
      if (n > 0) runs.push({ st, samples: st.queue.splice(0, n) });
    }
    const seg = this.ctx.window.current;
    const id = this.partId++;
    const data = this.ctx.writer.write(runs, id + 1, seg.parts.length === 0);
    if (seg.parts.length === 0) seg.startDts = first.dts;
    const part: Part = { id, msn: seg.msn, index: seg.parts.length, data, duration, independent: first.keyframe };
    this.ctx.window.addPart(part, driving.length);
    this.events.push({ type: 'part', id, msn: seg.msn, index: part.index });
    if (seg.bytes > this.ctx.options.maxSegmentBytes) {
      throw new LimitError('HLS segment bytes', this.ctx.options.maxSegmentBytes, seg.bytes);
    }
    this.updatePartWindow();
    if (!segmentEnd && seg.duration + this.partTicks >= this.maxSegmentTicks) {
      this.ctx.stats.forcedCuts++;
      this.closeSegment();
    }
  }

  private closeSegment(): void {
    const w = this.ctx.window;
    if (w.current.parts.length === 0) return;
    const seg = w.listCurrent();
    if (!this.pdtFixed) {
      if (!Number.isFinite(this.originMs)) this.originMs = w.now;
      this.pdtFixed = true;
    }
    if (w.targetDurationS === 0) this.fixTarget(seg);
    if (!this.isPublished && w.listed.length >= segmentsToPublish(this.ctx.options.variant)) this.publish();
    this.events.push({ type: 'segment', msn: seg.msn });
    w.openNext(this.gen);
    this.keyframeAskAt = 0;
    w.trim(this.segmentTicks());
    this.updatePartWindow();
  }

  /** Fixes EXT-X-TARGETDURATION from the first segment (see the module doc); later segments obey it. */
  private fixTarget(first: Segment): void {
    const rate = this.ctx.driving.rate;
    const target = targetDurationS(this.ctx.options.segmentMinDurationMs, first.duration, rate, this.minTargetDuration);
    this.ctx.window.targetDurationS = target;
    this.maxSegmentTicks = maxSegmentTicks(target, rate);
  }

  /** Makes the playlist servable ('ready'). */
  private publish(): void {
    this.isPublished = true;
    this.events.push({ type: 'ready' });
    this.updatePartWindow();
  }

  /** The EXT-X-PART window moves only once a playlist is served. */
  private updatePartWindow(): void {
    if (this.isPublished) this.ctx.window.updatePartWindow();
  }
}
