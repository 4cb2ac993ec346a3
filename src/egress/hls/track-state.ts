/**
 * Per-track input state of the HLS segmenter (timeline offset, the frame waiting for its duration, samples not yet
 * in a part) and the codec facts read from a track: its H.264 parameter sets (the track's or in-band ones), whether
 * it can be initialised, its picture size, and which NAL units go into samples. Pure: no I/O, no clock.
 */
import { parseSps } from '../../media/codecs/h264-sps.js';
import { NalUnitType, nalType } from '../../media/codecs/h264.js';

/** The track fields the segmenter reads; the bus `Track` satisfies it. */
export interface SegmenterTrack {
  /** stable id within the stream */
  id: number;
  codec: 'h264' | 'aac' | 'opus';
  /** ticks per second of dts/pts */
  clockRate: number;
  sps?: Uint8Array | undefined;
  pps?: Uint8Array | undefined;
  width?: number | undefined;
  height?: number | undefined;
  /** AAC AudioSpecificConfig */
  config?: Uint8Array | undefined;
  sampleRate?: number | undefined;
  channels?: number | undefined;
  /** increments when parameter sets change */
  version: number;
}

/** The frame fields the segmenter reads; the bus `Frame` satisfies it. */
export interface SegmenterFrame {
  track: SegmenterTrack;
  dts: number;
  pts: number;
  keyframe: boolean;
  /** H.264: NAL units without start codes; audio: one raw frame. Views kept until the part is built. */
  au: readonly Uint8Array[];
  byteLength: number;
}

/** One frame on the output timeline (ticks of its track's clock rate). */
export interface Sample {
  dts: number;
  pts: number;
  /** 0 until the next frame of the track arrives */
  duration: number;
  keyframe: boolean;
  /** views into the frame's access unit, kept until the part is built */
  units: readonly Uint8Array[];
}

/** What the segmenter keeps about one track it carries. */
export interface TrackState {
  track: SegmenterTrack;
  kind: 'video' | 'audio';
  rate: number;
  /** track_ID in the fMP4 */
  fmp4Id: number;
  /** ticks added to input timestamps */
  offset: number;
  /** last accepted output dts */
  lastDts: number | undefined;
  /** duration of the last placed sample; 0 until known */
  lastDuration: number;
  /** the latest frame, waiting for the next one to know its duration */
  pending: Sample | undefined;
  /** samples with known durations not yet in a part */
  queue: Sample[];
  /** track.version when the current init segment was built */
  initVersion: number;
  /** SPS/PPS found in-band when the track has none; the shared Track is never mutated */
  inbandSps: Uint8Array | undefined;
  inbandPps: Uint8Array | undefined;
}

/** The initial state of a track the segmenter carries as fMP4 track `fmp4Id`. */
export function newTrackState(track: SegmenterTrack, fmp4Id: number): TrackState {
  return {
    track,
    kind: track.codec === 'h264' ? 'video' : 'audio',
    rate: track.clockRate,
    fmp4Id,
    offset: 0,
    lastDts: undefined,
    lastDuration: 0,
    pending: undefined,
    queue: [],
    initVersion: track.version,
    inbandSps: undefined,
    inbandPps: undefined,
  };
}

/** The SPS/PPS of a video track: the track's, else those seen in-band. */
export function h264Params(st: TrackState): { sps: Uint8Array; pps: Uint8Array } | undefined {
  const sps = st.track.sps ?? st.inbandSps;
  const pps = st.track.pps ?? st.inbandPps;
  return sps && pps ? { sps, pps } : undefined;
}

/** True when a track has what its init segment needs. */
export function configured(st: TrackState): boolean {
  const t = st.track;
  if (t.codec === 'h264') return h264Params(st) !== undefined;
  if (t.codec === 'aac') return t.config !== undefined;
  return true;
}

/** Remembers (copies) SPS/PPS of a keyframe's NAL units, used when the track itself has none. */
export function adoptInBandParams(st: TrackState, units: readonly Uint8Array[]): void {
  for (const u of units) {
    const type = nalType(u);
    if (type === NalUnitType.Sps) st.inbandSps = Uint8Array.from(u);
    else if (type === NalUnitType.Pps) st.inbandPps = Uint8Array.from(u);
  }
}

/**
 * NAL units that go into samples: access unit delimiters, filler data and empty units are dropped (the containers
 * frame AUs).
 * @returns `au` itself when nothing is dropped, else a new array of views into it
 */
export function sampleUnits(st: TrackState, au: readonly Uint8Array[]): readonly Uint8Array[] {
  if (st.kind !== 'video') return au;
  let keepAll = true;
  for (const u of au) {
    const t = nalType(u);
    if (u.byteLength === 0 || t === NalUnitType.AccessUnitDelimiter || t === NalUnitType.FillerData) keepAll = false;
  }
  if (keepAll) return au;
  return au.filter((u) => {
    const t = nalType(u);
    return u.byteLength > 0 && t !== NalUnitType.AccessUnitDelimiter && t !== NalUnitType.FillerData;
  });
}

/** Picture size of a video track: the track's when set, else parsed from `sps`. */
export function videoSize(t: SegmenterTrack, sps: Uint8Array): { width: number; height: number } {
  if (t.width !== undefined && t.height !== undefined && t.width > 0 && t.height > 0) return { width: t.width, height: t.height };
  const parsed = parseSps(sps);
  return { width: parsed.width, height: parsed.height };
}
