/**
 * Blocking playlist reload bookkeeping (rfc8216bis 6.2.5.2) as a pure function: whether a request for
 * `_HLS_msn=msn` (and `_HLS_part=part`) is answered now, held, or refused.
 */

/** Answer to a blocking playlist request (6.2.5.2). */
export type BlockingDecision =
  /** the playlist already satisfies the request: answer now */
  | 'ready'
  /** hold the request until an event makes it 'ready' (or 3 target durations pass: 503) */
  | 'wait'
  /** further ahead than the spec allows to wait for: 400 */
  | 'bad-request';

/** The playlist state a decision reads. */
export interface BlockingView {
  /** the playlist has EXT-X-ENDLIST */
  ended: boolean;
  /** a playlist is served */
  published: boolean;
  /** Media Sequence Number of the open segment */
  openMsn: number;
  /** parts built in the open segment */
  openParts: number;
  /** parts of the complete segment `msn`, or undefined when it is no longer retained */
  partsOf(msn: number): number | undefined;
  /** parts the open segment still needs at least before it may end (its minimum duration) */
  partsToMinimum(): number;
  /** PART-TARGET in seconds */
  partTargetS: number;
}

/**
 * 'ready' when the current playlist satisfies the request, 'wait' when it is near (the server holds the request and
 * asks again on each event), 'bad-request' when `msn` is beyond the last segment + 2 or `part` exceeds the last part
 * by more than the Advance Part Limit (3 / PART-TARGET for targets under 1 s, else 3 parts).
 */
export function blockingDecision(v: BlockingView, msn: number, part?: number): BlockingDecision {
  if (v.ended) return 'ready'; // 6.2.5.2: ignored once the playlist has EXT-X-ENDLIST
  if (!v.published) return 'wait';
  const lastComplete = v.openMsn - 1;
  if (msn > lastComplete + 2) return 'bad-request';
  if (part === undefined) return msn <= lastComplete ? 'ready' : 'wait';
  // 6.2.5.2: a Part Index past the parent's final part means part 0 of the next segment
  let m = msn;
  let p = part;
  while (m <= lastComplete) {
    const parts = v.partsOf(m);
    if (parts === undefined || p < parts) return 'ready';
    m++;
    p = 0;
  }
  const built = v.openParts;
  if (m === v.openMsn && p < built) return 'ready';
  // distance in parts from the last part of the playlist; for the segment after the open one, the open segment
  // still needs at least enough parts to reach the minimum duration
  const distance = m === v.openMsn ? p - (built - 1) : v.partsToMinimum() + p + 1;
  const targetS = v.partTargetS;
  const limit = targetS < 1 ? 3 / targetS : 3;
  return distance > limit ? 'bad-request' : 'wait';
}
