/**
 * The handover between two segmenters of one path (rfc8216bis 6.2.1: the Media Sequence Number never decreases;
 * 6.2.2: a removed segment stays available): what a segmenter hands its successor, and the conversion of segments
 * between a segmenter's timeline and the handover's absolute times.
 */
import type { Part, Segment } from './segment-window.js';

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
 * What a segmenter hands to the next one of the same path so the playlist a player holds continues (see the
 * segmenter.ts module doc). {@link withoutMedia} keeps only the counters, for a muxer that stopped and whose media is
 * gone.
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

/** EXT-X-PROGRAM-DATE-TIME of a segment: a handed-over one keeps its own, others are dated from the origin. */
export function programDateTimeMs(s: Segment, pdtOriginMs: number, rate: number): number {
  return s.pdtMs ?? Math.round(pdtOriginMs + (s.startDts * 1000) / rate);
}

/** A segment of a timeline at `rate` in absolute times; the part data are views of the segment's buffers. */
export function toHandoverSegment(s: Segment, rate: number, pdtOriginMs: number): HandoverSegment {
  return {
    msn: s.msn,
    parts: s.parts.map((p) => ({ id: p.id, data: p.data, durationS: p.duration / rate, independent: p.independent })),
    durationS: s.duration / rate,
    frames: s.frames,
    programDateTimeMs: programDateTimeMs(s, pdtOriginMs, rate),
    bytes: s.bytes,
    discontinuity: s.discontinuity,
    initGen: s.initGen,
    completedAtMs: s.completedAtMs,
    partsHiddenAtMs: s.partsHiddenAtMs,
    expiresAtMs: s.expiresAtMs,
  };
}

/** A handed-over segment on a timeline at `rate` (durations rounded to ticks; dated by its own PDT). */
export function fromHandoverSegment(s: HandoverSegment, rate: number): Segment {
  const parts = s.parts.map((p, i): Part => ({
    id: p.id,
    msn: s.msn,
    index: i,
    data: p.data,
    duration: Math.round(p.durationS * rate),
    independent: p.independent,
  }));
  return {
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
}
