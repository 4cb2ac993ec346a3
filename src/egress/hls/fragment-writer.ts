/**
 * The seam between the segmenter and a container: a {@link FragmentWriter} turns the samples of one part into the
 * part's bytes (an fMP4 fragment or a run of MPEG-TS packets), and is reconfigured when the track parameters change.
 */
import { Fmp4FragmentWriter } from './fmp4-writer.js';
import type { HlsVariant } from './segmenter-options.js';
import type { Sample, TrackState } from './track-state.js';
import { TsFragmentWriter } from './ts-writer.js';

/** The samples of one track that go into a part, in decode order. */
export interface PartRun {
  st: TrackState;
  /** at least one */
  samples: Sample[];
}

/** Writes parts in one container. */
export interface FragmentWriter {
  /**
   * Takes the current parameters of `active` (at the start and after each change).
   * @returns the init segment to serve (fMP4), or undefined when the container carries its tables in-band (TS)
   */
  configure(active: readonly TrackState[]): Uint8Array | undefined;
  /**
   * The bytes of one part: `runs[0]` is the driving track. `sequenceNumber` is the fMP4 mfhd sequence number;
   * `startsSegment` puts the TS tables (PAT/PMT) in front. Call only after `configure`.
   * @returns a new buffer the caller keeps; the sample views are no longer referenced
   */
  write(runs: readonly PartRun[], sequenceNumber: number, startsSegment: boolean): Uint8Array;
}

/** The writer of a variant: MPEG-TS packets for 'mpegts', fMP4 fragments otherwise. */
export function createFragmentWriter(variant: HlsVariant): FragmentWriter {
  return variant === 'mpegts' ? new TsFragmentWriter() : new Fmp4FragmentWriter();
}
