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
 */
import { LimitError, UnsupportedError } from '../../errors.js';
import { aacCodecString, parseAudioSpecificConfig } from '../../media/codecs/aac.js';
import { parseSps } from '../../media/codecs/h264-sps.js';
import { NalUnitType, h264CodecString, nalType } from '../../media/codecs/h264.js';
import {
  SAMPLE_FLAGS_NON_SYNC,
  SAMPLE_FLAGS_SYNC,
  fragment,
  initSegment,
  type Fmp4FragmentTrack,
  type Fmp4Track,
} from '../../media/mux/fmp4.js';
import { TsMuxer, type TsFrame } from '../../media/mux/mpegts.js';
import type { MediaPlaylist, PlaylistSegment, PlaylistVariant } from './playlist.js';

/** Container and latency flavour of a muxer (config `hls.variant`). */
export type HlsVariant = 'lowLatency' | 'fmp4' | 'mpegts';

/** The track fields the segmenter reads; the bus `Track` satisfies it. */
export interface SegmenterTrack {
  /** stable id within the stream */
  id: number;
  codec: 'h264' | 'aac' | 'opus';
  /** ticks per second of dts/pts */
  clockRate: number;
  sps?: Uint8Array | undefined;
  pps?: Uint8Array | undefined;
  width?: number | undefined;
  height?: number | undefined;
  /** AAC AudioSpecificConfig */
  config?: Uint8Array | undefined;
  sampleRate?: number | undefined;
  channels?: number | undefined;
  /** increments when parameter sets change */
  version: number;
}

/** The frame fields the segmenter reads; the bus `Frame` satisfies it. */
export interface SegmenterFrame {
  track: SegmenterTrack;
  dts: number;
  pts: number;
  keyframe: boolean;
  /** H.264: NAL units without start codes; audio: one raw frame. Views kept until the part is built. */
  au: readonly Uint8Array[];
  byteLength: number;
}

/** Options of a segmenter. */
export interface SegmenterOptions {
  variant: HlsVariant;
  /** shortest segment; segments are cut at the first keyframe after it. Default 1000 */
  segmentMinDurationMs: number;
  /** wanted part duration; the exact part target is derived from the frame rate (see module doc). Default 200 */
  partDurationMs: number;
  /** segments listed in the playlist. Default 7 */
  segmentCount: number;
  /** bytes kept (listed, retired and in-progress parts) before the oldest are dropped. Default 128 MiB */
  maxBytes: number;
  /** bytes of one segment before the muxer gives up. Default 50 MiB */
  maxSegmentBytes: number;
}

/**
 * Complete segments before an fMP4 (LL-HLS) playlist is served. With a single segment, hls.js 1.7 starts inside
 * it, stalls at its end and raises its target latency by a second for the rest of the session (measured with
 * bench/hls.ts: 1.7 s instead of ~1.1 s glass to glass); gohlslib waits for two segments for the same reason
 * (`hasContent`). MPEG-TS playlists are served after one, as players of those keep 3 target durations anyway.
 */
export const SEGMENTS_TO_PUBLISH = { fmp4: 2, mpegts: 1 } as const;

/** Default shortest segment: the "min 1 s". */
export const DEFAULT_SEGMENT_MIN_DURATION_MS = 1000;
/** Default part duration: ~200 ms keeps hls.js latency near 1 s while parts stay ≥ 3× a LAN/metro RTT (Apple 14.2b). */
export const DEFAULT_PART_DURATION_MS = 200;
/** Segments in the playlist: "Their number doesn't influence latency. It defaults to 7." (gohlslib muxer.go). */
export const DEFAULT_SEGMENT_COUNT = 7;
/**
 * Bytes one muxer keeps. The window (7 × ~2 s) plus the retired segments still downloadable is ~30 s of media:
 * 128 MiB covers ~30 Mbit/s, beyond any HLS ladder rung we serve.
 */
export const DEFAULT_MAX_BYTES = 128 * 1024 * 1024;
/** Largest segment: gohlslib's `SegmentMaxSize` default (50 MB), "This prevents RAM exhaustion". */
export const DEFAULT_MAX_SEGMENT_BYTES = 50 * 1024 * 1024;
/**
 * A forward timestamp step beyond this is a reset, not a stall: the bus (MAX_FORWARD_JUMP_MS) rebases larger jumps
 * itself, so anything over it reaching us is a clock reset to absorb.
 */
export const TIMESTAMP_JUMP_MS = 10_000;
/**
 * Frames of a non-driving track waiting for a part (video stalled while audio flows). 512 AAC frames are ~11 s
 * at 48 kHz; older ones are dropped rather than kept without bound.
 */
export const MAX_UNPLACED_FRAMES = 512;

const DEFAULTS: SegmenterOptions = {
  variant: 'lowLatency',
  segmentMinDurationMs: DEFAULT_SEGMENT_MIN_DURATION_MS,
  partDurationMs: DEFAULT_PART_DURATION_MS,
  segmentCount: DEFAULT_SEGMENT_COUNT,
  maxBytes: DEFAULT_MAX_BYTES,
  maxSegmentBytes: DEFAULT_MAX_SEGMENT_BYTES,
};

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

/** Answer to a blocking playlist request (6.2.5.2). */
export type BlockingDecision =
  /** the playlist already satisfies the request: answer now */
  | 'ready'
  /** hold the request until an event makes it 'ready' (or 3 target durations pass: 503) */
  | 'wait'
  /** further ahead than the spec allows to wait for: 400 */
  | 'bad-request';

/** A served file: its bytes as chunks to write in order (a segment is its parts). */
export interface HlsFile {
  kind: 'init' | 'part' | 'segment';
  contentType: string;
  chunks: readonly Uint8Array[];
  byteLength: number;
}

/** Result of a file lookup. */
export type FileLookup =
  | { status: 'ok'; file: HlsFile }
  /** the preload-hinted part, not complete yet: hold the request until a 'part' event */
  | { status: 'pending' }
  | { status: 'not-found' };

/** One part of a {@link HandoverSegment}. */
export interface HandoverPart {
  id: number;
  /** the complete fMP4 fragment or TS packets */
  data: Uint8Array;
  durationS: number;
  independent: boolean;
}

/** A complete segment handed to a successor, with absolute times so it does not depend on either timeline. */
export interface HandoverSegment {
  msn: number;
  parts: HandoverPart[];
  durationS: number;
  /** driving-track samples (video frame rate in the multivariant playlist) */
  frames: number;
  /** EXT-X-PROGRAM-DATE-TIME, ms since the epoch */
  programDateTimeMs: number;
  bytes: number;
  discontinuity: boolean;
  initGen: number;
  completedAtMs: number;
  partsHiddenAtMs: number | undefined;
  /** Infinity while listed */
  expiresAtMs: number;
}

/**
 * What a segmenter hands to the next one of the same path so the playlist a player holds continues (see the module
 * doc). {@link withoutMedia} keeps only the counters, for a muxer that stopped and whose media is gone.
 */
export interface SegmenterHandover {
  /** Media Sequence Number of the successor's first segment */
  nextMsn: number;
  nextPartId: number;
  nextInitGen: number;
  /** EXT-X-DISCONTINUITY-SEQUENCE of `listed[0]`, or of the playlist that starts with the successor's segments */
  discontinuitySequence: number;
  /** EXT-X-TARGETDURATION in seconds; 0 when nothing was published */
  targetDurationS: number;
  /** PART-TARGET in seconds; 0 when unknown */
  partTargetS: number;
  /** longest playlist served (ms): the availability of the retired segments depends on it (6.2.2) */
  maxPlaylistMs: number;
  /** a playlist was served: the successor's first segment gets EXT-X-DISCONTINUITY */
  published: boolean;
  /** segments still listed, oldest first */
  listed: HandoverSegment[];
  /** segments removed from the playlist but still downloadable */
  retired: HandoverSegment[];
  /** init segments (fMP4) the handed-over segments refer to, by generation */
  inits: [number, Uint8Array][];
}

/**
 * The counters of a handover without its media: the successor starts a new playlist whose numbering continues the
 * old one. The discontinuity sequence counts the EXT-X-DISCONTINUITY tags of the segments that are dropped (6.2.2).
 */
export function withoutMedia(h: SegmenterHandover): SegmenterHandover {
  let dsn = h.discontinuitySequence;
  for (const s of h.listed) if (s.discontinuity) dsn++;
  return { ...h, discontinuitySequence: dsn, listed: [], retired: [], inits: [] };
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

interface Sample {
  dts: number;
  pts: number;
  duration: number;
  keyframe: boolean;
  units: readonly Uint8Array[];
}

interface TrackState {
  track: SegmenterTrack;
  kind: 'video' | 'audio';
  rate: number;
  /** track_ID in the fMP4 */
  fmp4Id: number;
  /** ticks added to input timestamps */
  offset: number;
  /** last accepted output dts */
  lastDts: number | undefined;
  /** duration of the last placed sample; 0 until known */
  lastDuration: number;
  /** the latest frame, waiting for the next one to know its duration */
  pending: Sample | undefined;
  /** samples with known durations not yet in a part */
  queue: Sample[];
  /** track.version when the current init segment was built */
  initVersion: number;
  /** SPS/PPS found in-band when the track has none; the shared Track is never mutated */
  inbandSps: Uint8Array | undefined;
  inbandPps: Uint8Array | undefined;
}

interface Part {
  id: number;
  msn: number;
  index: number;
  data: Uint8Array;
  /** driving-track ticks */
  duration: number;
  independent: boolean;
}

interface Segment {
  msn: number;
  parts: Part[];
  /** driving-track ticks: sum of the parts */
  duration: number;
  /** driving-track samples, for the frame rate */
  frames: number;
  /** output dts of the first driving sample */
  startDts: number;
  bytes: number;
  discontinuity: boolean;
  initGen: number;
  completedAtMs: number;
  partsHiddenAtMs: number | undefined;
  expiresAtMs: number;
  /** EXT-X-PROGRAM-DATE-TIME of a handed-over segment (own segments are dated from the timeline origin) */
  pdtMs?: number;
}

const PART_RE = /^part(\d{1,15})\.(mp4|ts)$/;
const SEGMENT_RE = /^seg(\d{1,15})\.(mp4|ts)$/;
const INIT_RE = /^init(\d{1,9})\.mp4$/;

/** Segmenter of one stream for one variant. See the module doc for the rules it follows. */
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
  private targetDuration = 0; // seconds, 0 until published
  private maxSegmentTicks = Infinity;
  private pdtOriginMs = Infinity;
  /** the origin estimate is final (first own segment complete) */
  private pdtFixed = false;
  /** PART-TARGET (s) of a predecessor, kept when the frame rate allows it */
  private readonly resumedPartTargetS: number;
  /** EXT-X-TARGETDURATION (s) of a predecessor whose segments are gone: the new target is at least that */
  private readonly minTargetDuration: number;

  private nextPartId = 0;
  private nextMsn = 0;
  private current: Segment;
  private listed: Segment[] = [];
  private retired: Segment[] = [];
  private readonly parts = new Map<number, Part>();
  private readonly segmentsByMsn = new Map<number, Segment>();
  private discontinuitySequence = 0;
  private maxPlaylistMs = 0;
  private bytes = 0;

  private initGen = -1;
  private readonly inits = new Map<number, Uint8Array>();
  private ts: TsMuxer | undefined;

  /**
   * @param tracks the stream's tracks; the first H.264 track and the first audio track are used, others ignored.
   * @param handover from the segmenter this one replaces on the same path (see the module doc)
   * @throws UnsupportedError when there is no track this variant can carry.
   */
  constructor(tracks: readonly SegmenterTrack[], options: Partial<SegmenterOptions> = {}, handover?: SegmenterHandover) {
    this.options = { ...DEFAULTS, ...options };
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
      this.states.set(t.id, {
        track: t,
        kind: t.codec === 'h264' ? 'video' : 'audio',
        rate: t.clockRate,
        fmp4Id: fmp4Id++,
        offset: 0,
        lastDts: undefined,
        lastDuration: 0,
        pending: undefined,
        queue: [],
        initVersion: t.version,
        inbandSps: undefined,
        inbandPps: undefined,
      });
    }
    this.driving = this.states.get((video ?? audio)!.id)!;
    this.resumedPartTargetS = handover?.partTargetS ?? 0;
    this.minTargetDuration = handover && handover.listed.length === 0 ? handover.targetDurationS : 0;
    if (handover) this.takeOver(handover);
    this.current = this.newSegment(handover?.published ?? false);
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
    return this.targetDuration;
  }

  /** PART-TARGET in seconds (0 until known; a predecessor's until the frame rate is known). */
  get partTargetS(): number {
    return this.partTarget > 0 ? this.partTarget / this.driving.rate : this.resumedPartTargetS;
  }

  /** Bytes held in parts, segments and init segments. */
  get bufferedBytes(): number {
    return this.bytes;
  }

  /** How long a blocking request may wait before a 503 (6.2.5.2: three target durations). */
  blockingTimeoutMs(): number {
    return 3 * Math.max(1, this.targetDuration) * 1000;
  }

  /**
   * Feeds one frame. `nowMs` is the wall clock (ms since the epoch): it dates the media (PROGRAM-DATE-TIME) and
   * ages retired segments. Frames of unknown tracks are ignored.
   * @throws LimitError when one segment exceeds `maxSegmentBytes`, or the window alone exceeds `maxBytes`.
   */
  push(frame: SegmenterFrame, nowMs: number): SegmenterEvent[] {
    this.events = [];
    this.now = nowMs;
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
    let dts = frame.dts + st.offset;
    let pts = frame.pts + st.offset;
    if (st.lastDts === undefined) {
      if (dts < 0) {
        this.stats.framesDropped++; // audio from before the first keyframe
        return this.flushEvents();
      }
    } else {
      const step = dts - st.lastDts;
      if (step <= 0 || step > (TIMESTAMP_JUMP_MS * st.rate) / 1000) {
        const target = st.lastDts + (st.lastDuration || nominalDuration(st));
        st.offset += target - dts;
        pts += target - dts;
        dts = target;
        this.stats.timestampJumps++;
      }
    }
    st.lastDts = dts;
    if (!this.pdtFixed && st === this.driving) {
      // frames are never early, only late (GOP cache bursts, network): the earliest origin estimate is the best
      this.pdtOriginMs = Math.min(this.pdtOriginMs, nowMs - (dts * 1000) / st.rate);
    }
    const sample: Sample = { dts, pts, duration: 0, keyframe: st.kind === 'audio' || frame.keyframe, units: sampleUnits(st, frame.au) };
    if (st === this.driving) this.onDriving(st, sample);
    else this.onOther(st, sample);
    this.expire();
    this.enforceBytes();
    return this.flushEvents();
  }

  /** Drops retired segments whose availability ended. Call at `nextDeadline()`. */
  tick(nowMs: number): SegmenterEvent[] {
    this.events = [];
    this.now = nowMs;
    this.expire();
    return this.flushEvents();
  }

  /** When `tick` should run next (ms, same clock as `nowMs`), or undefined when nothing is scheduled. */
  nextDeadline(): number | undefined {
    let min: number | undefined;
    for (const s of this.retired) if (min === undefined || s.expiresAtMs < min) min = s.expiresAtMs;
    return min;
  }

  /**
   * The stream ended: the pending frames become the last part and segment, the playlist gets EXT-X-ENDLIST.
   * Files stay served until the caller drops the segmenter.
   */
  finish(nowMs: number): SegmenterEvent[] {
    this.events = [];
    this.now = nowMs;
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
      if (!this.published && this.listed.length > 0) this.publish();
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
    const describe = (s: Segment): HandoverSegment => ({
      msn: s.msn,
      parts: s.parts.map((p) => ({ id: p.id, data: p.data, durationS: p.duration / rate, independent: p.independent })),
      durationS: s.duration / rate,
      frames: s.frames,
      programDateTimeMs: s.pdtMs ?? Math.round(this.pdtOriginMs + (s.startDts * 1000) / rate),
      bytes: s.bytes,
      discontinuity: s.discontinuity,
      initGen: s.initGen,
      completedAtMs: s.completedAtMs,
      partsHiddenAtMs: s.partsHiddenAtMs,
      expiresAtMs: s.expiresAtMs,
    });
    const listed = this.listed.map(describe);
    const retired = this.retired.map(describe);
    const gens = new Set([...listed, ...retired].map((s) => s.initGen));
    return {
      nextMsn: this.current.parts.length > 0 ? this.current.msn + 1 : this.current.msn,
      nextPartId: this.nextPartId,
      nextInitGen: this.initGen + 1,
      discontinuitySequence: this.discontinuitySequence,
      targetDurationS: this.targetDuration,
      partTargetS: this.partTargetS,
      maxPlaylistMs: this.maxPlaylistMs,
      published: this.published,
      listed,
      retired,
      inits: [...this.inits].filter(([gen]) => gens.has(gen)),
    };
  }

  /**
   * Blocking playlist reload bookkeeping (rfc8216bis 6.2.5.2) for `_HLS_msn=msn` and optional `_HLS_part=part`:
   * 'ready' when the current playlist satisfies it, 'wait' when it is near (the server holds the request and asks
   * again on each event), 'bad-request' when `msn` is beyond the last segment + 2 or `part` exceeds the last part
   * by more than the Advance Part Limit (3 / PART-TARGET for targets under 1 s, else 3 parts).
   */
  blockingState(msn: number, part?: number): BlockingDecision {
    if (this.ended) return 'ready'; // 6.2.5.2: ignored once the playlist has EXT-X-ENDLIST
    if (!this.published) return 'wait';
    const lastComplete = this.current.msn - 1;
    if (msn > lastComplete + 2) return 'bad-request';
    if (part === undefined) return msn <= lastComplete ? 'ready' : 'wait';
    // 6.2.5.2: a Part Index past the parent's final part means part 0 of the next segment
    let m = msn;
    let p = part;
    while (m <= lastComplete) {
      const seg = this.segmentsByMsn.get(m);
      if (!seg || p < seg.parts.length) return 'ready';
      m++;
      p = 0;
    }
    const built = this.current.parts.length;
    if (m === this.current.msn && p < built) return 'ready';
    // distance in parts from the last part of the playlist; for the segment after the current one, the current
    // segment still needs at least enough parts to reach the minimum duration
    let distance: number;
    if (m === this.current.msn) {
      distance = p - (built - 1);
    } else {
      const remainingTicks = (this.options.segmentMinDurationMs * this.driving.rate) / 1000 - this.segmentTicks();
      const partTicks = Math.max(1, this.partTarget || Math.round(this.resumedPartTargetS * this.driving.rate));
      const remaining = Math.max(0, Math.ceil(remainingTicks / partTicks));
      distance = remaining + p + 1;
    }
    const targetS = this.partTargetS;
    const limit = targetS < 1 ? 3 / targetS : 3;
    return distance > limit ? 'bad-request' : 'wait';
  }

  /** URI (relative) of the part after the last one: the EXT-X-PRELOAD-HINT target. */
  preloadHintName(): string {
    return `part${this.nextPartId}.${this.ext()}`;
  }

  /** Name of the current init segment (fMP4 variants), e.g. `init0.mp4`. */
  initName(gen = this.initGen): string {
    return `init${gen}.mp4`;
  }

  /**
   * Looks up a file by name (`init<n>.mp4`, `seg<msn>.mp4|ts`, `part<id>.mp4`). The part named by the preload hint
   * is 'pending' until complete (6.2.6: a hinted resource is available for request when hinted).
   */
  file(name: string): FileLookup {
    const ext = this.ext();
    let m = PART_RE.exec(name);
    if (m && m[2] === ext && this.options.variant === 'lowLatency') {
      const id = Number(m[1]);
      const part = this.parts.get(id);
      if (part) return { status: 'ok', file: this.makeFile('part', [part.data]) };
      if (id === this.nextPartId && !this.ended) return { status: 'pending' };
      return { status: 'not-found' };
    }
    m = SEGMENT_RE.exec(name);
    if (m && m[2] === ext) {
      const seg = this.segmentsByMsn.get(Number(m[1]));
      if (!seg) return { status: 'not-found' };
      return { status: 'ok', file: this.makeFile('segment', seg.parts.map((p) => p.data)) };
    }
    m = INIT_RE.exec(name);
    if (m && ext === 'mp4') {
      const init = this.inits.get(Number(m[1]));
      if (init) return { status: 'ok', file: this.makeFile('init', [init]) };
    }
    return { status: 'not-found' };
  }

  /** The media playlist as it stands (call only when `ready`); write it with `writeMediaPlaylist`. */
  mediaPlaylist(): MediaPlaylist {
    const ll = this.options.variant === 'lowLatency';
    const rate = this.driving.rate;
    const segments: PlaylistSegment[] = [];
    const withParts = (s: Segment): boolean => ll && s.partsHiddenAtMs === undefined;
    const describe = (s: Segment, complete: boolean): PlaylistSegment => {
      const out: PlaylistSegment = {
        duration: s.duration / rate,
        programDateTimeMs: s.pdtMs ?? Math.round(this.pdtOriginMs + (s.startDts * 1000) / rate),
      };
      if (complete) out.uri = `seg${s.msn}.${this.ext()}`;
      if (this.options.variant !== 'mpegts') out.mapUri = this.initName(s.initGen);
      if (s.discontinuity) out.discontinuity = true;
      if (withParts(s)) {
        out.parts = s.parts.map((p) => ({ uri: `part${p.id}.${this.ext()}`, duration: p.duration / rate, independent: p.independent }));
      }
      return out;
    };
    for (const s of this.listed) segments.push(describe(s, true));
    if (ll && this.current.parts.length > 0 && !this.ended) segments.push(describe(this.current, false));
    const first = this.listed[0];
    const playlist: MediaPlaylist = {
      targetDuration: this.targetDuration,
      mediaSequence: first ? first.msn : this.current.msn,
      segments,
    };
    if (this.discontinuitySequence > 0) playlist.discontinuitySequence = this.discontinuitySequence;
    if (this.ended) playlist.endList = true;
    if (ll) {
      playlist.canBlockReload = true;
      playlist.canSkipUntil = 6 * this.targetDuration;
      playlist.lowLatency = { partTarget: this.partTargetS };
      if (!this.ended) playlist.lowLatency.preloadHintUri = this.preloadHintName();
    }
    // no EXT-X-INDEPENDENT-SEGMENTS: a later forced cut would have to remove it, and 6.2.1 forbids such edits
    return playlist;
  }

  /**
   * The variant's EXT-X-STREAM-INF attributes: RFC 6381 codecs, resolution, frame rate, peak and average bit rate
   * of the listed segments. Call when `ready`.
   */
  variant(): Omit<PlaylistVariant, 'uri'> {
    const codecs: string[] = [];
    let resolution: { width: number; height: number } | undefined;
    for (const st of this.active) {
      const t = st.track;
      const params = t.codec === 'h264' ? h264Params(st) : undefined;
      if (params) {
        codecs.push(h264CodecString(params.sps));
        resolution = videoSize(t, params.sps);
      } else if (t.codec === 'aac' && t.config) {
        codecs.push(aacCodecString(parseAudioSpecificConfig(t.config)));
      } else if (t.codec === 'opus') {
        codecs.push('opus');
      }
    }
    let peak = 0;
    let totalBits = 0;
    let totalS = 0;
    for (const s of this.listed) {
      const durS = s.duration / this.driving.rate;
      if (durS <= 0) continue;
      peak = Math.max(peak, (s.bytes * 8) / durS);
      totalBits += s.bytes * 8;
      totalS += durS;
    }
    const out: Omit<PlaylistVariant, 'uri'> = { bandwidth: peak, codecs };
    if (totalS > 0) out.averageBandwidth = totalBits / totalS;
    if (resolution) out.resolution = resolution;
    const last = this.listed[this.listed.length - 1];
    if (this.driving.kind === 'video' && last && last.duration > 0) out.frameRate = (last.frames * this.driving.rate) / last.duration;
    return out;
  }

  // ---- internals ----

  private flushEvents(): SegmenterEvent[] {
    const e = this.events;
    this.events = [];
    return e;
  }

  private ext(): 'mp4' | 'ts' {
    return this.options.variant === 'mpegts' ? 'ts' : 'mp4';
  }

  private makeFile(kind: HlsFile['kind'], chunks: Uint8Array[]): HlsFile {
    let byteLength = 0;
    for (const c of chunks) byteLength += c.byteLength;
    const contentType = this.ext() === 'ts' ? 'video/mp2t' : this.driving.kind === 'video' ? 'video/mp4' : 'audio/mp4';
    return { kind, contentType, chunks, byteLength };
  }

  private newSegment(discontinuity: boolean): Segment {
    return {
      msn: this.nextMsn++,
      parts: [],
      duration: 0,
      frames: 0,
      startDts: 0,
      bytes: 0,
      discontinuity,
      initGen: this.initGen,
      completedAtMs: 0,
      partsHiddenAtMs: undefined,
      expiresAtMs: Infinity,
    };
  }

  /** Continues a predecessor's numbering and adopts its segments (constructor; see the module doc). */
  private takeOver(h: SegmenterHandover): void {
    this.nextMsn = h.nextMsn;
    this.nextPartId = h.nextPartId;
    this.initGen = h.nextInitGen - 1;
    this.discontinuitySequence = h.discontinuitySequence;
    this.maxPlaylistMs = h.maxPlaylistMs;
    for (const [gen, init] of h.inits) {
      this.inits.set(gen, init);
      this.bytes += init.byteLength;
    }
    const rate = this.driving.rate;
    const adopt = (s: HandoverSegment): Segment => {
      const parts = s.parts.map((p): Part => ({ id: p.id, msn: s.msn, index: 0, data: p.data, duration: Math.round(p.durationS * rate), independent: p.independent }));
      parts.forEach((p, i) => {
        p.index = i;
        this.parts.set(p.id, p);
      });
      const seg: Segment = {
        msn: s.msn,
        parts,
        duration: Math.round(s.durationS * rate),
        frames: s.frames,
        startDts: 0,
        bytes: s.bytes,
        discontinuity: s.discontinuity,
        initGen: s.initGen,
        completedAtMs: s.completedAtMs,
        partsHiddenAtMs: s.partsHiddenAtMs,
        expiresAtMs: s.expiresAtMs,
        pdtMs: s.programDateTimeMs,
      };
      this.segmentsByMsn.set(seg.msn, seg);
      this.bytes += seg.bytes;
      return seg;
    };
    this.listed = h.listed.map(adopt);
    this.retired = h.retired.map(adopt);
    if (this.listed.length > 0) {
      // the playlist continues: its target duration cannot change (6.2.1)
      this.targetDuration = h.targetDurationS;
      this.maxSegmentTicks = (this.targetDuration + 0.5) * rate;
      this.published = true;
    }
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
    this.current.initGen = this.initGen;
    this.started = true;
    return true;
  }

  /** Builds the init segment (fMP4) or TS muxer for the current track parameters. */
  private rebuildInit(): void {
    this.initGen++;
    for (const st of this.active) st.initVersion = st.track.version;
    if (this.options.variant === 'mpegts') {
      const video = this.active.find((s) => s.kind === 'video');
      const audio = this.active.find((s) => s.kind === 'audio')?.track;
      const params = video ? h264Params(video) : undefined;
      this.ts = new TsMuxer({
        ...(params ? { video: params } : {}),
        ...(audio?.config ? { audio: { config: audio.config } } : {}),
      });
      return;
    }
    const tracks: Fmp4Track[] = this.active.map((st) => fmp4Track(st));
    const init = initSegment(tracks);
    this.inits.set(this.initGen, init);
    this.bytes += init.byteLength;
  }

  private paramsChanged(): boolean {
    for (const st of this.active) if (st.track.version !== st.initVersion) return true;
    return false;
  }

  private segmentTicks(): number {
    return this.current.duration + this.partDuration;
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
      const minTicks = (this.options.segmentMinDurationMs * st.rate) / 1000;
      if (changed || this.segmentTicks() >= minTicks) {
        this.closePart(true);
        this.closeSegment();
        if (changed) {
          if (st.kind === 'video') adoptInBandParams(st, s.units);
          this.rebuildInit();
          this.current.initGen = this.initGen;
          this.current.discontinuity = true;
        }
      }
    }
    if (!s.keyframe && st.kind === 'video') {
      const ticks = this.segmentTicks();
      const minTicks = (this.options.segmentMinDurationMs * st.rate) / 1000;
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

  /** Fixes the part target from the first frame interval (see module doc); never changes afterwards. */
  private decidePartTarget(frameTicks: number): void {
    const rate = this.driving.rate;
    const wanted = (this.options.partDurationMs * rate) / 1000;
    const f = Math.max(1, frameTicks);
    // a predecessor's target is kept (4.4.3.7: it does not change) when at least one frame and a half fit in it,
    // as they do in a target of our own
    const resumed = Math.round(this.resumedPartTargetS * rate);
    if (resumed >= 1.5 * f) {
      this.partTarget = resumed;
      return;
    }
    const k = Math.max(1, Math.round(wanted / f));
    this.partTarget = k * f + Math.floor(f / 2);
  }

  /**
   * Builds the open part from the queued samples (driving track: all; others: those that start before the part
   * ends) as one fMP4 fragment or a run of TS packets. `segmentEnd` skips the forced-cut check (the caller closes
   * the segment anyway).
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
    const runs: { st: TrackState; samples: Sample[] }[] = [{ st: d, samples: driving }];
    for (const st of this.active) {
      if (st === d || st.queue.length === 0) continue;
      let n = 0;
      while (n < st.queue.length && (st.queue[n] as Sample).dts / st.rate < endS) n++;
      if (n > 0) runs.push({ st, samples: st.queue.splice(0, n) });
    }
    const seg = this.current;
    const id = this.nextPartId++;
    const data = this.options.variant === 'mpegts' ? this.buildTs(runs, seg.parts.length === 0) : buildFmp4(runs, id + 1);
    if (seg.parts.length === 0) seg.startDts = first.dts;
    const part: Part = { id, msn: seg.msn, index: seg.parts.length, data, duration, independent: first.keyframe };
    seg.parts.push(part);
    seg.duration += duration;
    seg.frames += driving.length;
    seg.bytes += data.byteLength;
    this.bytes += data.byteLength;
    this.parts.set(id, part);
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

  private buildTs(runs: { st: TrackState; samples: Sample[] }[], withTables: boolean): Uint8Array {
    const frames: TsFrame[] = [];
    for (const { st, samples } of runs) {
      for (const s of samples) {
        frames.push({
          kind: st.kind,
          dts: to90k(s.dts, st.rate),
          pts: to90k(s.pts, st.rate),
          keyframe: s.keyframe,
          units: s.units,
        });
      }
    }
    frames.sort((a, b) => a.dts - b.dts);
    return (this.ts as TsMuxer).mux(frames, withTables);
  }

  private closeSegment(): void {
    const seg = this.current;
    if (seg.parts.length === 0) return;
    seg.completedAtMs = this.now;
    this.listed.push(seg);
    this.segmentsByMsn.set(seg.msn, seg);
    const rate = this.driving.rate;
    if (!this.pdtFixed) {
      if (!Number.isFinite(this.pdtOriginMs)) this.pdtOriginMs = this.now;
      this.pdtFixed = true;
    }
    if (this.targetDuration === 0) this.fixTarget(seg);
    const needed = this.options.variant === 'mpegts' ? SEGMENTS_TO_PUBLISH.mpegts : SEGMENTS_TO_PUBLISH.fmp4;
    if (!this.published && this.listed.length >= needed) this.publish();
    this.events.push({ type: 'segment', msn: seg.msn });
    this.current = this.newSegment(false);
    this.current.initGen = this.initGen;
    this.keyframeAskAt = 0;
    this.trimWindow();
    this.updatePartWindow();
  }

  /** Fixes EXT-X-TARGETDURATION from the first segment (see the module doc); later segments obey it. */
  private fixTarget(first: Segment): void {
    const rate = this.driving.rate;
    const minS = this.options.segmentMinDurationMs / 1000;
    this.targetDuration = Math.max(1, Math.ceil(minS - 1e-9), Math.ceil(first.duration / rate - 1e-9), this.minTargetDuration);
    // 6.2.1: EXTINF rounded to the nearest second ≤ target: a segment must stay under target + 0.5 s
    this.maxSegmentTicks = (this.targetDuration + 0.5) * rate;
  }

  /** Makes the playlist servable ('ready'). */
  private publish(): void {
    this.published = true;
    this.events.push({ type: 'ready' });
    this.updatePartWindow();
  }

  /** Removes the oldest segments beyond `segmentCount` from the playlist, keeping ≥ 3 target durations (6.2.2). */
  private trimWindow(): void {
    const rate = this.driving.rate;
    const minTicks = 3 * this.targetDuration * rate;
    let total = 0;
    for (const s of this.listed) total += s.duration;
    this.maxPlaylistMs = Math.max(this.maxPlaylistMs, ((total + this.segmentTicks()) * 1000) / rate);
    while (this.listed.length > this.options.segmentCount) {
      const oldest = this.listed[0] as Segment;
      if (total - oldest.duration < minTicks) break;
      this.retire(oldest);
      total -= oldest.duration;
    }
  }

  private retire(seg: Segment): void {
    this.listed.shift();
    if (seg.discontinuity) this.discontinuitySequence++;
    const rate = this.driving.rate;
    const targetMs = this.targetDuration * 1000;
    // 6.2.2: available until first listed + segment duration + longest playlist; parts 3 target durations after
    // their EXT-X-PART tags left the playlist
    const segmentEnd = seg.completedAtMs + (seg.duration * 1000) / rate + this.maxPlaylistMs;
    const partsEnd = (seg.partsHiddenAtMs ?? this.now) + 3 * targetMs;
    seg.partsHiddenAtMs ??= this.now;
    seg.expiresAtMs = Math.max(segmentEnd, this.options.variant === 'lowLatency' ? partsEnd : 0);
    this.retired.push(seg);
  }

  /** Hides the EXT-X-PART tags of segments more than three target durations from the playlist end (6.2.2). */
  private updatePartWindow(): void {
    if (!this.published) return;
    const limit = 3 * this.targetDuration * this.driving.rate;
    let fromEnd = this.current.duration;
    for (let i = this.listed.length - 1; i >= 0; i--) {
      const s = this.listed[i] as Segment;
      if (s.partsHiddenAtMs !== undefined) break;
      if (fromEnd > limit) {
        for (let j = i; j >= 0 && (this.listed[j] as Segment).partsHiddenAtMs === undefined; j--) {
          (this.listed[j] as Segment).partsHiddenAtMs = this.now;
        }
        break;
      }
      fromEnd += s.duration;
    }
  }

  private expire(): void {
    while (this.retired.length > 0) {
      const idx = this.indexOfExpired();
      if (idx < 0) break;
      this.drop(this.retired[idx] as Segment, idx);
    }
  }

  private indexOfExpired(): number {
    for (let i = 0; i < this.retired.length; i++) if ((this.retired[i] as Segment).expiresAtMs <= this.now) return i;
    return -1;
  }

  private drop(seg: Segment, retiredIndex: number): void {
    this.retired.splice(retiredIndex, 1);
    this.segmentsByMsn.delete(seg.msn);
    for (const p of seg.parts) this.parts.delete(p.id);
    this.bytes -= seg.bytes;
    // init segments no retained segment refers to
    let minGen = this.current.initGen;
    for (const s of this.listed) minGen = Math.min(minGen, s.initGen);
    for (const s of this.retired) minGen = Math.min(minGen, s.initGen);
    for (const [gen, init] of this.inits) {
      if (gen < minGen) {
        this.inits.delete(gen);
        this.bytes -= init.byteLength;
      }
    }
  }

  /** Keeps `bytes` ≤ maxBytes: retired segments go first, then listed ones down to 3 target durations. */
  private enforceBytes(): void {
    const max = this.options.maxBytes;
    while (this.bytes > max && this.retired.length > 0) {
      this.stats.evictedEarly++;
      this.drop(this.retired[0] as Segment, 0);
    }
    if (this.bytes <= max) return;
    const minTicks = 3 * this.targetDuration * this.driving.rate;
    let total = 0;
    for (const s of this.listed) total += s.duration;
    while (this.bytes > max && this.listed.length > 1 && total - (this.listed[0] as Segment).duration >= minTicks) {
      const oldest = this.listed[0] as Segment;
      total -= oldest.duration;
      this.retire(oldest);
      this.stats.evictedEarly++;
      this.drop(oldest, this.retired.length - 1);
    }
    if (this.bytes > max) throw new LimitError('HLS buffered bytes', max, this.bytes);
  }
}

/** The SPS/PPS of a video track: the track's, else those seen in-band. */
function h264Params(st: TrackState): { sps: Uint8Array; pps: Uint8Array } | undefined {
  const sps = st.track.sps ?? st.inbandSps;
  const pps = st.track.pps ?? st.inbandPps;
  return sps && pps ? { sps, pps } : undefined;
}

/** True when a track has what its init segment needs. */
function configured(st: TrackState): boolean {
  const t = st.track;
  if (t.codec === 'h264') return h264Params(st) !== undefined;
  if (t.codec === 'aac') return t.config !== undefined;
  return true;
}

/** Remembers (copies) SPS/PPS of a keyframe's NAL units, used when the track itself has none. */
function adoptInBandParams(st: TrackState, units: readonly Uint8Array[]): void {
  for (const u of units) {
    const type = nalType(u);
    if (type === NalUnitType.Sps) st.inbandSps = Uint8Array.from(u);
    else if (type === NalUnitType.Pps) st.inbandPps = Uint8Array.from(u);
  }
}

/** NAL units that go into samples: access unit delimiters and filler data are dropped (the containers frame AUs). */
function sampleUnits(st: TrackState, au: readonly Uint8Array[]): readonly Uint8Array[] {
  if (st.kind !== 'video') return au;
  let keepAll = true;
  for (const u of au) {
    const t = nalType(u);
    if (u.byteLength === 0 || t === NalUnitType.AccessUnitDelimiter || t === NalUnitType.FillerData) keepAll = false;
  }
  if (keepAll) return au;
  return au.filter((u) => {
    const t = nalType(u);
    return u.byteLength > 0 && t !== NalUnitType.AccessUnitDelimiter && t !== NalUnitType.FillerData;
  });
}

/** A plausible sample duration when none was measured yet: 1/30 s video, one AAC (1024) or Opus (20 ms) frame. */
function nominalDuration(st: TrackState): number {
  const t = st.track;
  if (t.codec === 'h264') return Math.round(st.rate / 30);
  if (t.codec === 'aac') {
    const perFrame = t.config ? parseAudioSpecificConfig(t.config).frameLength : 1024;
    const sampleRate = t.sampleRate ?? st.rate;
    return Math.round((perFrame * st.rate) / sampleRate);
  }
  return Math.round(st.rate / 50);
}

function to90k(ticks: number, rate: number): number {
  return rate === 90000 ? ticks : Math.round((ticks * 90000) / rate);
}

function videoSize(t: SegmenterTrack, sps: Uint8Array): { width: number; height: number } {
  if (t.width !== undefined && t.height !== undefined && t.width > 0 && t.height > 0) return { width: t.width, height: t.height };
  const parsed = parseSps(sps);
  return { width: parsed.width, height: parsed.height };
}

function fmp4Track(st: TrackState): Fmp4Track {
  const t = st.track;
  if (t.codec === 'h264') {
    const { sps, pps } = h264Params(st) as { sps: Uint8Array; pps: Uint8Array };
    const { width, height } = videoSize(t, sps);
    return { kind: 'video', codec: 'h264', id: st.fmp4Id, timescale: st.rate, width, height, sps, pps };
  }
  if (t.codec === 'aac') {
    const asc = parseAudioSpecificConfig(t.config as Uint8Array);
    return {
      kind: 'audio',
      codec: 'aac',
      id: st.fmp4Id,
      timescale: st.rate,
      sampleRate: t.sampleRate ?? asc.sampleRate,
      channels: t.channels ?? (asc.channels || 2),
      config: t.config as Uint8Array,
    };
  }
  return { kind: 'audio', codec: 'opus', id: st.fmp4Id, timescale: st.rate, channels: t.channels ?? 2 };
}

function buildFmp4(runs: { st: TrackState; samples: Sample[] }[], sequenceNumber: number): Uint8Array {
  const tracks: Fmp4FragmentTrack[] = runs.map(({ st, samples }) => ({
    trackId: st.fmp4Id,
    baseMediaDecodeTime: (samples[0] as Sample).dts,
    lengthPrefixed: st.kind === 'video',
    samples: samples.map((s) => ({
      duration: s.duration,
      flags: s.keyframe ? SAMPLE_FLAGS_SYNC : SAMPLE_FLAGS_NON_SYNC,
      compositionOffset: s.pts - s.dts,
      units: s.units,
    })),
  }));
  return fragment({ sequenceNumber, tracks });
}
