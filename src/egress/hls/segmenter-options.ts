/**
 * Options of an HLS segmenter and their defaults, with the evidence for each number; no logic.
 */

/** Container and latency flavour of a muxer (config `hls.variant`). */
export type HlsVariant = 'lowLatency' | 'fmp4' | 'mpegts';

/** Options of a segmenter. */
export interface SegmenterOptions {
  variant: HlsVariant;
  /** shortest segment; segments are cut at the first keyframe after it. Default 1000 */
  segmentMinDurationMs: number;
  /** wanted part duration; the exact part target is derived from the frame rate (see segmenter.ts). Default 200 */
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

/** Every option at its default. */
export const DEFAULT_SEGMENTER_OPTIONS: Readonly<SegmenterOptions> = {
  variant: 'lowLatency',
  segmentMinDurationMs: DEFAULT_SEGMENT_MIN_DURATION_MS,
  partDurationMs: DEFAULT_PART_DURATION_MS,
  segmentCount: DEFAULT_SEGMENT_COUNT,
  maxBytes: DEFAULT_MAX_BYTES,
  maxSegmentBytes: DEFAULT_MAX_SEGMENT_BYTES,
};

/** Complete segments before the playlist of `variant` is served ({@link SEGMENTS_TO_PUBLISH}). */
export function segmentsToPublish(variant: HlsVariant): number {
  return variant === 'mpegts' ? SEGMENTS_TO_PUBLISH.mpegts : SEGMENTS_TO_PUBLISH.fmp4;
}

/** File extension of the variant's segments and parts. */
export function mediaExtension(variant: HlsVariant): 'mp4' | 'ts' {
  return variant === 'mpegts' ? 'ts' : 'mp4';
}
