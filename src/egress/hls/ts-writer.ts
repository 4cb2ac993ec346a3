/**
 * MPEG-TS writer of the HLS segmenter: one `TsMuxer` per set of track parameters (continuity counters run on
 * across parts), each part a run of TS packets with the frames of all tracks in dts order, PAT/PMT at segment starts.
 */
import { StateError } from '../../errors.js';
import { TsMuxer, type TsFrame } from '../../media/mux/mpegts.js';
import type { FragmentWriter, PartRun } from './fragment-writer.js';
import { h264Params, type TrackState } from './track-state.js';
import { to90k } from './timing.js';

/** Writes parts as MPEG-TS packets; there is no init segment. */
export class TsFragmentWriter implements FragmentWriter {
  private muxer: TsMuxer | undefined;

  /**
   * Starts a new muxer for the first video and audio track of `active`.
   * @throws UnsupportedError when the AAC config cannot be carried in ADTS (from TsMuxer)
   */
  configure(active: readonly TrackState[]): undefined {
    const video = active.find((s) => s.kind === 'video');
    const audio = active.find((s) => s.kind === 'audio')?.track;
    const params = video ? h264Params(video) : undefined;
    this.muxer = new TsMuxer({
      ...(params ? { video: params } : {}),
      ...(audio?.config ? { audio: { config: audio.config } } : {}),
    });
    return undefined;
  }

  /** The frames of every run at 90 kHz in dts order; the tables first when `startsSegment`. */
  write(runs: readonly PartRun[], _sequenceNumber: number, startsSegment: boolean): Uint8Array {
    if (!this.muxer) throw new StateError('unconfigured', ['configured'], 'writing a TS part');
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
    return this.muxer.mux(frames, startsSegment);
  }
}
