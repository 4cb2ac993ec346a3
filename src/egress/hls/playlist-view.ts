/**
 * The segmenter's state as playlists: the media playlist (rfc8216bis 4.4.3, 4.4.4 with the Low-Latency tags) and
 * the EXT-X-STREAM-INF attributes of the variant (4.4.6.2). Pure functions of plain data (the retained window, the
 * carried tracks, a few counters): no clock, no mutation. Serialize the results with playlist.ts.
 */
import { aacCodecString, parseAudioSpecificConfig } from '../../media/codecs/aac.js';
import { h264CodecString } from '../../media/codecs/h264.js';
import { programDateTimeMs } from './handover.js';
import type { MediaPlaylist, PlaylistSegment, PlaylistVariant } from './playlist.js';
import type { Segment } from './segment-window.js';
import { mediaExtension, type HlsVariant } from './segmenter-options.js';
import { h264Params, videoSize, type TrackState } from './track-state.js';

/** URI of init segment generation `gen` (fMP4 variants), e.g. `init0.mp4`. */
export function initFileName(gen: number): string {
  return `init${gen}.mp4`;
}

/** URI of part `id` (low-latency variant; also the preload hint target). */
export function partFileName(id: number, variant: HlsVariant): string {
  return `part${id}.${mediaExtension(variant)}`;
}

/** URI of segment `msn`. */
export function segmentFileName(msn: number, variant: HlsVariant): string {
  return `seg${msn}.${mediaExtension(variant)}`;
}

/** What the media playlist shows: the window as plain data, all durations in ticks of the driving track. */
export interface MediaPlaylistView {
  variant: HlsVariant;
  /** driving-track clock rate (ticks per second) */
  rate: number;
  /** segments in the playlist, oldest first */
  listed: readonly Segment[];
  /** the open segment (listed with its parts in the low-latency variant) */
  current: Segment;
  targetDurationS: number;
  discontinuitySequence: number;
  /** wall clock (ms) of output time 0, for EXT-X-PROGRAM-DATE-TIME */
  pdtOriginMs: number;
  /** PART-TARGET (s) */
  partTargetS: number;
  /** the stream ended: EXT-X-ENDLIST, no open segment, no preload hint */
  ended: boolean;
  /** id of the next part: the EXT-X-PRELOAD-HINT target */
  nextPartId: number;
}

/** The media playlist of `v`; write it with `writeMediaPlaylist`. */
export function buildMediaPlaylist(v: MediaPlaylistView): MediaPlaylist {
  const ll = v.variant === 'lowLatency';
  const rate = v.rate;
  const segments: PlaylistSegment[] = [];
  const withParts = (s: Segment): boolean => ll && s.partsHiddenAtMs === undefined;
  const describe = (s: Segment, complete: boolean): PlaylistSegment => {
    const out: PlaylistSegment = {
      duration: s.duration / rate,
      programDateTimeMs: programDateTimeMs(s, v.pdtOriginMs, rate),
    };
    if (complete) out.uri = segmentFileName(s.msn, v.variant);
    if (v.variant !== 'mpegts') out.mapUri = initFileName(s.initGen);
    if (s.discontinuity) out.discontinuity = true;
    if (withParts(s)) {
      out.parts = s.parts.map((p) => ({ uri: partFileName(p.id, v.variant), duration: p.duration / rate, independent: p.independent }));
    }
    return out;
  };
  for (const s of v.listed) segments.push(describe(s, true));
  if (ll && v.current.parts.length > 0 && !v.ended) segments.push(describe(v.current, false));
  const first = v.listed[0];
  const playlist: MediaPlaylist = {
    targetDuration: v.targetDurationS,
    mediaSequence: first ? first.msn : v.current.msn,
    segments,
  };
  if (v.discontinuitySequence > 0) playlist.discontinuitySequence = v.discontinuitySequence;
  if (v.ended) playlist.endList = true;
  if (ll) {
    playlist.canBlockReload = true;
    playlist.canSkipUntil = 6 * v.targetDurationS;
    playlist.lowLatency = { partTarget: v.partTargetS };
    if (!v.ended) playlist.lowLatency.preloadHintUri = partFileName(v.nextPartId, v.variant);
  }
  // no EXT-X-INDEPENDENT-SEGMENTS: a later forced cut would have to remove it, and 6.2.1 forbids such edits
  return playlist;
}

/** What the variant attributes are computed from. */
export interface VariantView {
  /** the tracks the variant carries (codec parameters, in-band SPS/PPS) */
  tracks: readonly TrackState[];
  /** segments in the playlist: bit rates and frame rate */
  listed: readonly Segment[];
  /** driving-track clock rate */
  rate: number;
  /** the driving track is video (a frame rate is announced) */
  video: boolean;
}

/**
 * The variant's EXT-X-STREAM-INF attributes: RFC 6381 codecs, resolution, frame rate, peak and average bit rate
 * of the listed segments.
 */
export function buildVariant(v: VariantView): Omit<PlaylistVariant, 'uri'> {
  const codecs: string[] = [];
  let resolution: { width: number; height: number } | undefined;
  for (const st of v.tracks) {
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
  for (const s of v.listed) {
    const durS = s.duration / v.rate;
    if (durS <= 0) continue;
    peak = Math.max(peak, (s.bytes * 8) / durS);
    totalBits += s.bytes * 8;
    totalS += durS;
  }
  const out: Omit<PlaylistVariant, 'uri'> = { bandwidth: peak, codecs };
  if (totalS > 0) out.averageBandwidth = totalBits / totalS;
  if (resolution) out.resolution = resolution;
  const last = v.listed[v.listed.length - 1];
  if (v.video && last && last.duration > 0) out.frameRate = (last.frames * v.rate) / last.duration;
  return out;
}
