/**
 * Timing rules of the HLS segmenter as pure functions: placing input timestamps on the output timeline (resets and
 * jumps), nominal frame durations, tick conversions, and the part target and target duration derived from the
 * first frames and segment (rfc8216bis 4.4.3.7, 6.2.1). See segmenter.ts for the rules in prose.
 */
import { parseAudioSpecificConfig } from '../../media/codecs/aac.js';
import type { TrackState } from './track-state.js';

/**
 * A forward timestamp step beyond this is a reset, not a stall: the bus (MAX_FORWARD_JUMP_MS) rebases larger jumps
 * itself, so anything over it reaching us is a clock reset to absorb.
 */
export const TIMESTAMP_JUMP_MS = 10_000;

/** `ms` in ticks of `rate` (not rounded). */
export function msToTicks(ms: number, rate: number): number {
  return (ms * rate) / 1000;
}

/** Ticks of `rate` in 90 kHz MPEG-TS ticks (rounded). */
export function to90k(ticks: number, rate: number): number {
  return rate === 90000 ? ticks : Math.round((ticks * 90000) / rate);
}

/** A plausible sample duration when none was measured yet: 1/30 s video, one AAC (1024) or Opus (20 ms) frame. */
export function nominalDuration(st: TrackState): number {
  const t = st.track;
  if (t.codec === 'h264') return Math.round(st.rate / 30);
  if (t.codec === 'aac') {
    const perFrame = t.config ? parseAudioSpecificConfig(t.config).frameLength : 1024;
    const sampleRate = t.sampleRate ?? st.rate;
    return Math.round((perFrame * st.rate) / sampleRate);
  }
  return Math.round(st.rate / 50);
}

/** A frame's timestamps on the output timeline. */
export interface PlacedTimestamps {
  dts: number;
  pts: number;
  /** the input stepped back, stood still or jumped beyond {@link TIMESTAMP_JUMP_MS}: the track was rebased */
  jumped: boolean;
}

/**
 * Moves input timestamps onto the output timeline of `st` (its offset), absorbing resets: a step backwards (or of
 * zero), or forwards by more than {@link TIMESTAMP_JUMP_MS}, continues the track right after its previous frame.
 * Updates `st.offset` and `st.lastDts`.
 * @returns null for the track's first frame when it lies before the timeline origin (audio before the first
 *   keyframe); `st` is then unchanged
 */
export function placeOnTimeline(st: TrackState, inputDts: number, inputPts: number): PlacedTimestamps | null {
  let dts = inputDts + st.offset;
  let pts = inputPts + st.offset;
  let jumped = false;
  if (st.lastDts === undefined) {
    if (dts < 0) return null;
  } else {
    const step = dts - st.lastDts;
    if (step <= 0 || step > msToTicks(TIMESTAMP_JUMP_MS, st.rate)) {
      const target = st.lastDts + (st.lastDuration || nominalDuration(st));
      st.offset += target - dts;
      pts += target - dts;
      dts = target;
      jumped = true;
    }
  }
  st.lastDts = dts;
  return { dts, pts, jumped };
}

/**
 * The part target in ticks from the first frame interval `frameTicks`: `k·f + f/2` with `k = round(wanted / f)`
 * (at least 1); the half frame absorbs the ±1 ms jitter of millisecond timestamps. A predecessor's target
 * (`resumedS`, seconds) is kept (4.4.3.7: it does not change) when at least one frame and a half fit in it, as they
 * do in a target of our own.
 */
export function partTargetTicks(frameTicks: number, partDurationMs: number, rate: number, resumedS: number): number {
  const wanted = msToTicks(partDurationMs, rate);
  const f = Math.max(1, frameTicks);
  const resumed = Math.round(resumedS * rate);
  if (resumed >= 1.5 * f) return resumed;
  const k = Math.max(1, Math.round(wanted / f));
  return k * f + Math.floor(f / 2);
}

/**
 * EXT-X-TARGETDURATION (s), fixed when the first segment completes: `max(ceil(segmentMin), ceil(first segment))`,
 * and at least `minTargetS` (a predecessor's). 6.2.1: it MUST NOT change afterwards.
 */
export function targetDurationS(segmentMinDurationMs: number, firstSegmentTicks: number, rate: number, minTargetS: number): number {
  const minS = segmentMinDurationMs / 1000;
  return Math.max(1, Math.ceil(minS - 1e-9), Math.ceil(firstSegmentTicks / rate - 1e-9), minTargetS);
}

/** Longest segment (ticks) under a target duration: 6.2.1 wants every EXTINF rounded to the nearest second ≤ target. */
export function maxSegmentTicks(targetS: number, rate: number): number {
  return (targetS + 0.5) * rate;
}
