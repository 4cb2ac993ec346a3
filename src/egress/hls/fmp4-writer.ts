/**
 * fMP4 (CMAF) writer of the HLS segmenter: the init segment for the active tracks and one moof/mdat fragment per
 * part (ISO/IEC 14496-12, rfc8216bis 3.1.2), built by `media/mux/fmp4`.
 */
import { parseAudioSpecificConfig } from '../../media/codecs/aac.js';
import {
  SAMPLE_FLAGS_NON_SYNC,
  SAMPLE_FLAGS_SYNC,
  fragment,
  initSegment,
  type Fmp4FragmentTrack,
  type Fmp4Track,
} from '../../media/mux/fmp4.js';
import type { FragmentWriter, PartRun } from './fragment-writer.js';
import { h264Params, videoSize, type Sample, type TrackState } from './track-state.js';

/** The init-segment description of a configured track (the caller checked `configured(st)`). */
export function fmp4Track(st: TrackState): Fmp4Track {
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

/** Writes parts as fMP4 fragments; the init segment is served separately. */
export class Fmp4FragmentWriter implements FragmentWriter {
  /** Builds the init segment of `active`. */
  configure(active: readonly TrackState[]): Uint8Array {
    return initSegment(active.map((st) => fmp4Track(st)));
  }

  /** One moof/mdat pair: a traf per run, its tfdt at the run's first dts. */
  write(runs: readonly PartRun[], sequenceNumber: number): Uint8Array {
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
}
