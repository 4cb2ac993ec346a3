/**
 * Maps sample positions of a transcoder's decoded input back to input timestamps.
 *
 * ffmpeg decodes its input into one contiguous run of samples: gaps in the input's timestamps (DTX, loss, a
 * publisher's pause) are not in it. Each frame fed is remembered with its dts and the position of its first sample
 * in that run, so the input sample at position `q` inside frame `k` had the timestamp `dts_k + q − pos_k`. An
 * output item starting at `q` (its position converted to input samples, minus the encoder's delay) gets that
 * timestamp, and audio keeps the path's timeline, and lip sync, across gaps.
 */

/**
 * A bounded list of (dts, first sample) of the frames fed. Positions and dts are in ticks of the input's sample
 * rate, dts unwrapped.
 */
export class SampleTimeline {
  private readonly dts: number[] = [];
  private readonly pos: number[] = [];
  private fedSamples = 0;

  /** @param maxFrames frames remembered: enough to cover ffmpeg's pipeline delay, bounded when ffmpeg stalls */
  constructor(readonly maxFrames: number) {}

  /** Records the next frame written to ffmpeg, which decodes to `samples` samples. */
  push(dts: number, samples: number): void {
    this.dts.push(dts);
    this.pos.push(this.fedSamples);
    this.fedSamples += samples;
    if (this.dts.length > this.maxFrames) {
      this.dts.shift();
      this.pos.shift();
    }
  }

  /** Samples fed so far. */
  get samples(): number {
    return this.fedSamples;
  }

  /**
   * Timestamp of input sample `q`, or null when nothing was fed or the frame it came from is no longer remembered.
   * Positions before the first frame ever fed (an encoder's priming, −delay…0) and past the last one extrapolate
   * from the nearest frame.
   */
  map(q: number): number | null {
    const n = this.pos.length;
    if (n === 0) return null;
    if (q < this.pos[0]!) return this.pos[0] === 0 ? this.dts[0]! + q : null;
    // binary search: the last frame starting at or before q
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.pos[mid]! <= q) lo = mid;
      else hi = mid - 1;
    }
    return this.dts[lo]! + (q - this.pos[lo]!);
  }
}
