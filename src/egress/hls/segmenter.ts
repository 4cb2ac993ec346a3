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
 * This file is the orchestrator: track selection, frame intake (timeline placement) and the queries, composing
 * one-job modules: cutter.ts (the part/segment cutting state machine), segmenter-options.ts (options, defaults),
 * track-state.ts (per-track state, codec parameters), timing.ts (timeline and target rules), fragment-writer.ts with
 * fmp4-writer.ts / ts-writer.ts (part bytes per container), segment-window.ts (retention and byte limits),
 * handover.ts (continuity across segmenters), hls-files.ts (served files by name), blocking-reload.ts (6.2.5.2) and
 * playlist-view.ts (the media playlist and variant attributes as pure functions of the window).
 */
import { UnsupportedError } from '../../errors.js';
import { blockingDecision, type BlockingDecision } from './blocking-reload.js';
import { MAX_UNPLACED_FRAMES, SegmentCutter, type SegmenterEvent, type SegmenterStats } from './cutter.js';
import { createFragmentWriter } from './fragment-writer.js';
import { toHandoverSegment, withoutMedia, type HandoverPart, type HandoverSegment, type SegmenterHandover } from './handover.js';
import { lookupFile, type FileLookup, type HlsFile } from './hls-files.js';
import type { MediaPlaylist, PlaylistVariant } from './playlist.js';
import { buildMediaPlaylist, buildVariant, initFileName, partFileName } from './playlist-view.js';
import { SegmentWindow } from './segment-window.js';
import {
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_SEGMENT_BYTES,
  DEFAULT_PART_DURATION_MS,
  DEFAULT_SEGMENTER_OPTIONS,
  DEFAULT_SEGMENT_COUNT,
  DEFAULT_SEGMENT_MIN_DURATION_MS,
  SEGMENTS_TO_PUBLISH,
  type HlsVariant,
  type SegmenterOptions,
} from './segmenter-options.js';
import { TIMESTAMP_JUMP_MS, placeOnTimeline } from './timing.js';
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
  MAX_UNPLACED_FRAMES,
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
  SegmenterEvent,
  SegmenterFrame,
  SegmenterHandover,
  SegmenterOptions,
  SegmenterStats,
  SegmenterTrack,
};

/** A track of the stream the variant cannot carry, and why (the server logs it once per muxer). */
export interface LeftOutTrack {
  codec: SegmenterTrack['codec'];
  reason: string;
}

/**
 * Segmenter of one stream for one variant (see the module doc): picks the tracks, places frames on the output
 * timeline and hands them to the cutting state machine (cutter.ts); answers playlist (playlist-view.ts), file
 * (hls-files.ts) and blocking-reload (blocking-reload.ts) questions from the retained window (segment-window.ts).
 */
export class HlsSegmenter {
  readonly options: SegmenterOptions;
  readonly stats: SegmenterStats = { framesIn: 0, framesDropped: 0, timestampJumps: 0, gaps: 0, forcedCuts: 0, evictedEarly: 0 };
  /** tracks of the stream this variant cannot carry (Opus in MPEG-TS) */
  readonly leftOut: readonly LeftOutTrack[];
  private readonly states = new Map<number, TrackState>();
  private readonly driving: TrackState;
  private started = false;
  private ended = false;
  private readonly window: SegmentWindow;
  private readonly cutter: SegmentCutter;

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
    // continue a predecessor's numbering (see the module doc); the window adopts its segments
    const initGen = handover ? handover.nextInitGen - 1 : -1;
    this.window = new SegmentWindow(this.options, this.driving.rate, this.stats, handover, initGen);
    const writer = createFragmentWriter(this.options.variant);
    this.cutter = new SegmentCutter({ options: this.options, driving: this.driving, window: this.window, writer, stats: this.stats }, initGen, handover);
  }

  /** True once the first segment is complete and playlists can be served. */
  get ready(): boolean {
    return this.cutter.published;
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
    return this.cutter.partTargetS;
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
    this.cutter.drain(); // what a throwing call left behind
    this.setNow(nowMs);
    this.stats.framesIn++;
    const st = this.states.get(frame.track.id);
    if (this.ended || !st || st.track.codec !== frame.track.codec) {
      this.stats.framesDropped++;
      return this.cutter.drain();
    }
    st.track = frame.track;
    if (!this.started) {
      if (st !== this.driving || (st.kind === 'video' && !frame.keyframe) || !this.start(frame)) {
        this.stats.framesDropped++;
        return this.cutter.drain();
      }
    }
    if (!this.cutter.active.includes(st)) {
      this.stats.framesDropped++;
      return this.cutter.drain();
    }
    const placed = placeOnTimeline(st, frame.dts, frame.pts);
    if (!placed) {
      this.stats.framesDropped++; // audio from before the first keyframe
      return this.cutter.drain();
    }
    if (placed.jumped) this.stats.timestampJumps++;
    const { dts, pts } = placed;
    if (st === this.driving) this.cutter.estimateOrigin(nowMs - (dts * 1000) / st.rate);
    const sample: Sample = { dts, pts, duration: 0, keyframe: st.kind === 'audio' || frame.keyframe, units: sampleUnits(st, frame.au) };
    this.cutter.push(st, sample);
    this.window.expire();
    this.window.enforceBytes();
    return this.cutter.drain();
  }

  /** Drops retired segments whose availability ended. Call at `nextDeadline()`. */
  tick(nowMs: number): SegmenterEvent[] {
    this.cutter.drain();
    this.setNow(nowMs);
    this.window.expire();
    return this.cutter.drain();
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
    this.cutter.drain();
    this.setNow(nowMs);
    if (this.ended) return [];
    if (this.started) this.cutter.finish();
    this.ended = true;
    const events = this.cutter.drain();
    events.push({ type: 'ended' });
    return events;
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
    const c = this.cutter;
    const listed = w.listed.map((s) => toHandoverSegment(s, rate, c.pdtOriginMs));
    const retired = w.retired.map((s) => toHandoverSegment(s, rate, c.pdtOriginMs));
    const gens = new Set([...listed, ...retired].map((s) => s.initGen));
    return {
      nextMsn: w.nextMsnForSuccessor(),
      nextPartId: c.nextPartId,
      nextInitGen: c.initGen + 1,
      discontinuitySequence: w.discontinuitySequence,
      targetDurationS: w.targetDurationS,
      partTargetS: this.partTargetS,
      maxPlaylistMs: w.maxPlaylistMs,
      published: c.published,
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
      published: this.cutter.published,
      openMsn: w.current.msn,
      openParts: w.current.parts.length,
      partsOf: (m) => w.segmentsByMsn.get(m)?.parts.length,
      partsToMinimum: () => this.cutter.partsToMinimum(),
      partTargetS: this.partTargetS,
    }, msn, part);
  }

  /** URI (relative) of the part after the last one: the EXT-X-PRELOAD-HINT target. */
  preloadHintName(): string {
    return partFileName(this.cutter.nextPartId, this.options.variant);
  }

  /** Name of the current init segment (fMP4 variants), e.g. `init0.mp4`. */
  initName(gen = this.cutter.initGen): string {
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
      hintedPartId: this.ended ? undefined : this.cutter.nextPartId,
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
      pdtOriginMs: this.cutter.pdtOriginMs,
      partTargetS: this.partTargetS,
      ended: this.ended,
      nextPartId: this.cutter.nextPartId,
    });
  }

  /**
   * The variant's EXT-X-STREAM-INF attributes: RFC 6381 codecs, resolution, frame rate, peak and average bit rate
   * of the listed segments. Call when `ready`.
   */
  variant(): Omit<PlaylistVariant, 'uri'> {
    return buildVariant({ tracks: this.cutter.active, listed: this.window.listed, rate: this.driving.rate, video: this.driving.kind === 'video' });
  }

  // ---- internals: frame intake (the cutting itself is cutter.ts) ----

  private setNow(nowMs: number): void {
    this.window.now = nowMs;
  }

  /** Starts the timeline at the driving track's first usable frame; false when parameters are missing. */
  private start(frame: SegmenterFrame): boolean {
    const active = [...this.states.values()].filter((st) => st === this.driving || configured(st));
    if (this.driving.kind === 'video') adoptInBandParams(this.driving, frame.au);
    if (!configured(this.driving)) return false;
    const originS = frame.dts / this.driving.rate;
    for (const st of active) st.offset = -Math.round(originS * st.rate);
    this.cutter.begin(active);
    this.started = true;
    return true;
  }
}
