/**
 * The segments and parts an HLS segmenter retains, and their limits (rfc8216bis 6.2.2): the open segment, the
 * segments listed in the playlist (up to `segmentCount`, never less than three target durations), the retired ones
 * still downloadable until their availability ends, which EXT-X-PART tags are still listed, the init segments any
 * of them refers to, and the byte budget `maxBytes` over all of it. Sans-I/O: the owner sets `now` and calls
 * `expire()` at `nextDeadline()`.
 */
import { LimitError } from '../../errors.js';
import { fromHandoverSegment, type SegmenterHandover } from './handover.js';
import type { HlsVariant } from './segmenter-options.js';

/** One part: an fMP4 fragment or a run of TS packets. */
export interface Part {
  id: number;
  msn: number;
  index: number;
  data: Uint8Array;
  /** driving-track ticks */
  duration: number;
  independent: boolean;
}

/** One segment: its parts, complete or still open. */
export interface Segment {
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

/** The options the window obeys. */
export interface SegmentWindowOptions {
  variant: HlsVariant;
  segmentCount: number;
  maxBytes: number;
}

/** Segments and parts retained for one variant, all times in ticks of the driving track (`rate`). */
export class SegmentWindow {
  /** wall clock (ms) of the current push/tick; the owner sets it */
  now = 0;
  /** EXT-X-TARGETDURATION (s); 0 until fixed */
  targetDurationS = 0;
  /** the segment being built (not listed) */
  current: Segment;
  /** segments in the playlist, oldest first */
  listed: Segment[] = [];
  /** segments out of the playlist but still downloadable */
  retired: Segment[] = [];
  /** every retained part by id */
  readonly parts = new Map<number, Part>();
  /** every complete retained segment by Media Sequence Number */
  readonly segmentsByMsn = new Map<number, Segment>();
  /** init segments (fMP4) by generation */
  readonly inits = new Map<number, Uint8Array>();
  /** EXT-X-DISCONTINUITY-SEQUENCE of `listed[0]` */
  discontinuitySequence = 0;
  /** longest playlist served (ms), for the availability of retired segments (6.2.2) */
  maxPlaylistMs = 0;
  /** bytes in parts and init segments */
  bytes = 0;
  private nextMsn = 0;

  /**
   * @param rate ticks per second of the driving track
   * @param counters where early evictions are counted (the segmenter's stats)
   * @param handover a predecessor's state: its numbering continues and its segments are adopted
   * @param initGen init generation of the first open segment
   */
  constructor(
    private readonly options: SegmentWindowOptions,
    private readonly rate: number,
    private readonly counters: { evictedEarly: number },
    handover: SegmenterHandover | undefined,
    initGen: number,
  ) {
    if (handover) this.adopt(handover);
    this.current = this.newSegment(handover?.published ?? false, initGen);
  }

  /** Keeps a new init segment of generation `gen`. */
  addInit(gen: number, init: Uint8Array): void {
    this.inits.set(gen, init);
    this.bytes += init.byteLength;
  }

  /** Adds a part to the open segment (its bytes count from now on). */
  addPart(part: Part, driveFrames: number): void {
    const seg = this.current;
    seg.parts.push(part);
    seg.duration += part.duration;
    seg.frames += driveFrames;
    seg.bytes += part.data.byteLength;
    this.bytes += part.data.byteLength;
    this.parts.set(part.id, part);
  }

  /**
   * Lists the open segment, completed now. It stays `current` until {@link openNext}, so a part-window update in
   * between still counts it as open.
   */
  listCurrent(): Segment {
    const seg = this.current;
    seg.completedAtMs = this.now;
    this.listed.push(seg);
    this.segmentsByMsn.set(seg.msn, seg);
    return seg;
  }

  /** Opens the next segment, with init generation `initGen`. */
  openNext(initGen: number): void {
    this.current = this.newSegment(false, initGen);
  }

  /** Media Sequence Number of the first segment a successor would write. */
  nextMsnForSuccessor(): number {
    return this.current.parts.length > 0 ? this.current.msn + 1 : this.current.msn;
  }

  /**
   * Removes the oldest segments beyond `segmentCount` from the playlist, keeping ≥ 3 target durations (6.2.2).
   * @param openTicks ticks of the open segment including its unfinished part (for the longest playlist)
   */
  trim(openTicks: number): void {
    const rate = this.rate;
    const minTicks = 3 * this.targetDurationS * rate;
    let total = 0;
    for (const s of this.listed) total += s.duration;
    this.maxPlaylistMs = Math.max(this.maxPlaylistMs, ((total + openTicks) * 1000) / rate);
    while (this.listed.length > this.options.segmentCount) {
      const oldest = this.listed[0] as Segment;
      if (total - oldest.duration < minTicks) break;
      this.retire(oldest);
      total -= oldest.duration;
    }
  }

  /** Hides the EXT-X-PART tags of segments more than three target durations from the playlist end (6.2.2). */
  updatePartWindow(): void {
    const limit = 3 * this.targetDurationS * this.rate;
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

  /** Drops retired segments whose availability ended. */
  expire(): void {
    while (this.retired.length > 0) {
      const idx = this.indexOfExpired();
      if (idx < 0) break;
      this.drop(this.retired[idx] as Segment, idx);
    }
  }

  /** When a retired segment's availability ends next (ms), or undefined. */
  nextDeadline(): number | undefined {
    let min: number | undefined;
    for (const s of this.retired) if (min === undefined || s.expiresAtMs < min) min = s.expiresAtMs;
    return min;
  }

  /**
   * Keeps `bytes` ≤ maxBytes: retired segments go first, then listed ones down to 3 target durations.
   * @throws LimitError when the listed minimum alone exceeds maxBytes
   */
  enforceBytes(): void {
    const max = this.options.maxBytes;
    while (this.bytes > max && this.retired.length > 0) {
      this.counters.evictedEarly++;
      this.drop(this.retired[0] as Segment, 0);
    }
    if (this.bytes <= max) return;
    const minTicks = 3 * this.targetDurationS * this.rate;
    let total = 0;
    for (const s of this.listed) total += s.duration;
    while (this.bytes > max && this.listed.length > 1 && total - (this.listed[0] as Segment).duration >= minTicks) {
      const oldest = this.listed[0] as Segment;
      total -= oldest.duration;
      this.retire(oldest);
      this.counters.evictedEarly++;
      this.drop(oldest, this.retired.length - 1);
    }
    if (this.bytes > max) throw new LimitError('HLS buffered bytes', max, this.bytes);
  }

  private newSegment(discontinuity: boolean, initGen: number): Segment {
    return {
      msn: this.nextMsn++,
      parts: [],
      duration: 0,
      frames: 0,
      startDts: 0,
      bytes: 0,
      discontinuity,
      initGen,
      completedAtMs: 0,
      partsHiddenAtMs: undefined,
      expiresAtMs: Infinity,
    };
  }

  /** Continues a predecessor's numbering and adopts its segments and init segments. */
  private adopt(h: SegmenterHandover): void {
    this.nextMsn = h.nextMsn;
    this.discontinuitySequence = h.discontinuitySequence;
    this.maxPlaylistMs = h.maxPlaylistMs;
    for (const [gen, init] of h.inits) this.addInit(gen, init);
    const adopt = (hs: SegmenterHandover['listed'][number]): Segment => {
      const seg = fromHandoverSegment(hs, this.rate);
      for (const p of seg.parts) this.parts.set(p.id, p);
      this.segmentsByMsn.set(seg.msn, seg);
      this.bytes += seg.bytes;
      return seg;
    };
    this.listed = h.listed.map(adopt);
    this.retired = h.retired.map(adopt);
  }

  private retire(seg: Segment): void {
    this.listed.shift();
    if (seg.discontinuity) this.discontinuitySequence++;
    const targetMs = this.targetDurationS * 1000;
    // 6.2.2: available until first listed + segment duration + longest playlist; parts 3 target durations after
    // their EXT-X-PART tags left the playlist
    const segmentEnd = seg.completedAtMs + (seg.duration * 1000) / this.rate + this.maxPlaylistMs;
    const partsEnd = (seg.partsHiddenAtMs ?? this.now) + 3 * targetMs;
    seg.partsHiddenAtMs ??= this.now;
    seg.expiresAtMs = Math.max(segmentEnd, this.options.variant === 'lowLatency' ? partsEnd : 0);
    this.retired.push(seg);
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
}
