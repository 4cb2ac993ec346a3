/**
 * The sans-I/O layer of recording: frames in, file actions out (the wall clock injected); see recorder.ts.
 *
 * File layout: the init segment (`ftyp` + `moov`), then one `moof` + `mdat` per ~1 s (cut at a video keyframe, or
 * anywhere after {@link RECORD_FRAGMENT_MAX_DURATION_MS} for long GOPs). Every fragment is complete on its own, so a
 * file is playable while it is written and after a crash up to its last complete fragment. On a clean close the
 * `mvhd` duration is patched in, so players show the length without scanning the fragments.
 *
 * A new file starts every `recordSegmentDuration` of the path (default {@link RECORD_SEGMENT_DURATION_MS}; at the next
 * keyframe), when the publisher's tracks change, and when a track's parameters change (new SPS/PPS or
 * AudioSpecificConfig need a new init segment).
 */
import type { Frame } from '../../media/bus/frame.js';
import type { Track } from '../../media/bus/track.js';
import { parseAudioSpecificConfig } from '../../media/codecs/aac.js';
import { parseSps } from '../../media/codecs/h264-sps.js';
import { NalUnitType, nalType } from '../../media/codecs/h264.js';
import {
  SAMPLE_FLAGS_NON_SYNC,
  SAMPLE_FLAGS_SYNC,
  fragment,
  initSegment,
  type Fmp4FragmentTrack,
  type Fmp4Track,
} from '../../media/mux/fmp4.js';

// ---------------------------------------------------------------------------------------------------------------
// Limits and defaults

/**
 * Length of one recording file. The config has no `recordSegmentDuration` key (yet), so this is fixed; it is
 * mediamtx's `recordSegmentDuration` default (1h): few files per day, and a lost file costs at most an hour.
 */
export const RECORD_SEGMENT_DURATION_MS = 60 * 60 * 1000;
/**
 * Target length of one movie fragment: what a crash can lose, and how far behind a reader of the growing file is.
 * 1 s matches mediamtx's `recordPartDuration` order of magnitude while keeping the moof overhead under 0.1 %.
 */
export const RECORD_FRAGMENT_DURATION_MS = 1000;
/** A fragment is cut at any video frame past this, so a 10 s-GOP camera still loses at most ~5 s in a crash. */
export const RECORD_FRAGMENT_MAX_DURATION_MS = 5000;
/**
 * Samples of one track held for the current fragment before it is flushed regardless of the video (audio while the
 * video stalls): 3000 AAC frames ≈ 64 s at 48 kHz. Bounds memory when the driving track goes silent.
 */
export const RECORD_MAX_FRAGMENT_SAMPLES = 3000;

// ---------------------------------------------------------------------------------------------------------------
// Sans-I/O fragmenter

/** Start a new file. `startMs` is the wall-clock time of its first frame. */
export interface RecordOpenAction {
  type: 'open';
  startMs: number;
  /** ftyp + moov */
  init: Uint8Array;
  /** byte offset of the 32-bit `mvhd` duration field in `init` (timescale 1000), patched on close */
  durationOffset: number;
}
/** Append a fragment (moof + mdat) to the open file. */
export interface RecordWriteAction {
  type: 'write';
  data: Uint8Array;
}
/** The open file is complete. */
export interface RecordCloseAction {
  type: 'close';
  /** media time covered, ms */
  durationMs: number;
}
/** What the fragmenter asks the I/O layer to do, in order. */
export type RecordAction = RecordOpenAction | RecordWriteAction | RecordCloseAction;

/** Options of {@link RecordingFragmenter}; defaults are the RECORD_* constants. */
export interface RecordingFragmenterOptions {
  segmentDurationMs: number;
  fragmentDurationMs: number;
  fragmentMaxDurationMs: number;
}

/** One sample waiting for its fragment. `units` are views into the publisher's frame (see `push`). */
interface Sample {
  /** decode time relative to the file start, track ticks */
  dts: number;
  pts: number;
  duration: number;
  sync: boolean;
  units: readonly Uint8Array[];
}

/** A track's state inside the open file. */
interface TrackRun {
  track: Track;
  /** fMP4 track_ID (1-based) */
  fmp4Id: number;
  video: boolean;
  /** bus dts of the file start, in this track's ticks */
  originTicks: number;
  lastDts: number | undefined;
  lastDuration: number;
  /** the latest sample: its duration is known when the next one of its track arrives */
  pending: Sample | undefined;
  /** complete samples of the current fragment */
  samples: Sample[];
}

interface OpenFile {
  runs: TrackRun[];
  byTrack: Map<Track, TrackRun>;
  /** video if the file has one, else its first track: decides fragment and file cuts */
  driving: TrackRun;
  /** per stream track: its version when the file was opened, -1 when it was left out */
  signature: number[];
  sequence: number;
  /** media time covered so far, ms */
  durationMs: number;
}

/**
 * Frames → fragmented MP4 files, without I/O. `start(tracks)` when the stream's tracks are (re)declared, `push` for
 * each frame in bus order, `finish` at the end; each returns the file actions to perform, in order.
 *
 * Timestamps: a file's time starts at its first frame (a video keyframe, or any audio frame without video); every
 * track keeps the bus timeline's offset to it, so A/V sync is exactly the publisher's. Audio from before the first
 * keyframe is dropped. A decode time that does not advance is nudged one tick forward (the trun cannot go back).
 */
export class RecordingFragmenter {
  private readonly opts: RecordingFragmenterOptions;
  private tracks: readonly Track[] = [];
  private file: OpenFile | undefined;
  private out: RecordAction[] = [];
  /** counters for the API and tests */
  readonly stats = { framesIn: 0, framesDropped: 0, fragments: 0, files: 0 };

  constructor(opts: Partial<RecordingFragmenterOptions> = {}) {
    this.opts = {
      segmentDurationMs: opts.segmentDurationMs ?? RECORD_SEGMENT_DURATION_MS,
      fragmentDurationMs: opts.fragmentDurationMs ?? RECORD_FRAGMENT_DURATION_MS,
      fragmentMaxDurationMs: opts.fragmentMaxDurationMs ?? RECORD_FRAGMENT_MAX_DURATION_MS,
    };
  }

  /** True while a file is open. */
  get isOpen(): boolean {
    return this.file !== undefined;
  }

  /** The stream declared its tracks. The same Track objects continue the file; others end it. */
  start(tracks: readonly Track[]): RecordAction[] {
    this.out = [];
    const same = tracks.length === this.tracks.length && tracks.every((t, i) => t === this.tracks[i]);
    if (!same) {
      this.closeFile();
      this.tracks = [...tracks];
    }
    return this.flushOut();
  }

  /**
   * One frame of the stream. Its `au` views are kept until the fragment holding it is built (at most
   * `fragmentMaxDurationMs` of media), then copied once into the fragment: publishers never reuse frame buffers.
   * @param nowMs wall-clock time the frame was received (names the file when it starts one)
   */
  push(frame: Frame, nowMs: number): RecordAction[] {
    this.out = [];
    this.stats.framesIn++;
    if (!this.tracks.includes(frame.track)) {
      this.stats.framesDropped++;
      return this.flushOut();
    }
    if (!this.file && !this.openAt(frame, nowMs)) {
      this.stats.framesDropped++;
      return this.flushOut();
    }
    let file = this.file as OpenFile;
    let run = file.byTrack.get(frame.track);
    if (run === undefined) {
      // a track left out of this file (not configured when it began): the signature change rotates the file
      this.stats.framesDropped++;
      return this.flushOut();
    }
    const cutPoint = run === file.driving && (!run.video || frame.keyframe);
    if (cutPoint) {
      // complete the frame before this one first: its duration ends at this frame
      this.completePending(run, frame.dts - run.originTicks);
      const fileMs = ((frame.dts - run.originTicks) * 1000) / run.track.clockRate;
      if (fileMs >= this.opts.segmentDurationMs || this.signatureChanged(file)) {
        this.closeFile();
        if (!this.openAt(frame, nowMs)) {
          this.stats.framesDropped++;
          return this.flushOut();
        }
        file = this.file as OpenFile;
        run = file.byTrack.get(frame.track) as TrackRun; // openAt only opens with the frame's track in the file
      } else if (this.fragmentMs(file) >= this.opts.fragmentDurationMs) {
        this.flushFragment(false);
      }
    }
    let dts = frame.dts - run.originTicks;
    let pts = frame.pts - run.originTicks;
    if (run.lastDts === undefined && dts < 0) {
      this.stats.framesDropped++; // audio from before the file's first keyframe
      return this.flushOut();
    }
    if (run.lastDts !== undefined && dts <= run.lastDts) {
      const shift = run.lastDts + 1 - dts;
      dts += shift;
      pts += shift;
    }
    if (!cutPoint) this.completePending(run, dts);
    run.lastDts = dts;
    run.pending = { dts, pts, duration: 0, sync: !run.video || frame.keyframe, units: sampleUnits(run, frame.au) };
    if (run === file.driving && !cutPoint && this.fragmentMs(file) >= this.opts.fragmentMaxDurationMs) this.flushFragment(false);
    else if (run.samples.length >= RECORD_MAX_FRAGMENT_SAMPLES) this.flushFragment(false);
    return this.flushOut();
  }

  /** The stream ended: the open file gets its last frames and is closed. */
  finish(): RecordAction[] {
    this.out = [];
    this.closeFile();
    return this.flushOut();
  }

  private flushOut(): RecordAction[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  /** The pending sample of `run` ends at `nextDts`: it joins the fragment. */
  private completePending(run: TrackRun, nextDts: number): void {
    const p = run.pending;
    if (!p) return;
    const d = nextDts - p.dts;
    p.duration = d > 0 ? d : 1;
    run.lastDuration = p.duration;
    run.samples.push(p);
    run.pending = undefined;
  }

  private fragmentMs(file: OpenFile): number {
    const d = file.driving;
    let ticks = 0;
    for (const s of d.samples) ticks += s.duration;
    return (ticks * 1000) / d.track.clockRate;
  }

  /** Tracks that can go into an init segment now. */
  private eligible(t: Track): boolean {
    if (!t.configured) return false;
    if (t.codec === 'h264') return t.sps !== undefined && t.pps !== undefined;
    if (t.codec === 'aac') return t.config !== undefined;
    // Opus in MP4 without a channel mapping table: mono or stereo only (fmp4.ts)
    return (t.channels ?? 2) <= 2;
  }

  private signatureOf(): number[] {
    return this.tracks.map((t) => (this.eligible(t) ? t.version : -1));
  }

  private signatureChanged(file: OpenFile): boolean {
    const now = this.signatureOf();
    return now.some((v, i) => v !== file.signature[i]);
  }

  /** Opens a file whose first frame is `frame`, if it can start one. */
  private openAt(frame: Frame, nowMs: number): boolean {
    const included = this.tracks.filter((t) => this.eligible(t));
    if (!included.includes(frame.track)) return false;
    const hasVideo = included.some((t) => t.codec === 'h264');
    if (hasVideo && !(frame.track.codec === 'h264' && frame.keyframe)) return false;
    const originMs = (frame.dts * 1000) / frame.track.clockRate;
    const runs: TrackRun[] = included.map((track, i) => ({
      track,
      fmp4Id: i + 1,
      video: track.codec === 'h264',
      originTicks: Math.round((originMs * track.clockRate) / 1000),
      lastDts: undefined,
      lastDuration: 0,
      pending: undefined,
      samples: [],
    }));
    // the frame that opens the file drives it (the first video track, or the audio track of an audio-only stream)
    const driving = runs.find((r) => r.track === frame.track) as TrackRun;
    const init = initSegment(runs.map(fmp4Track));
    this.file = {
      runs,
      byTrack: new Map(runs.map((r) => [r.track, r])),
      driving,
      signature: this.signatureOf(),
      sequence: 1,
      durationMs: 0,
    };
    this.stats.files++;
    this.out.push({ type: 'open', startMs: nowMs, init, durationOffset: mvhdDurationOffset(init) });
    return true;
  }

  /** Writes the complete samples (and with `final`, the pending ones too) as one fragment. */
  private flushFragment(final: boolean): void {
    const file = this.file;
    if (!file) return;
    if (final) {
      for (const r of file.runs) {
        if (r.pending) this.completePending(r, r.pending.dts + (r.lastDuration || nominalDuration(r.track)));
      }
    }
    const tracks: Fmp4FragmentTrack[] = [];
    for (const r of file.runs) {
      if (r.samples.length === 0) continue;
      const first = r.samples[0] as Sample;
      const last = r.samples[r.samples.length - 1] as Sample;
      tracks.push({
        trackId: r.fmp4Id,
        baseMediaDecodeTime: first.dts,
        lengthPrefixed: r.video,
        samples: r.samples.map((s) => ({
          duration: s.duration,
          flags: s.sync ? SAMPLE_FLAGS_SYNC : SAMPLE_FLAGS_NON_SYNC,
          compositionOffset: s.pts - s.dts,
          units: s.units,
        })),
      });
      file.durationMs = Math.max(file.durationMs, ((last.dts + last.duration) * 1000) / r.track.clockRate);
      r.samples = [];
    }
    if (tracks.length === 0) return;
    this.out.push({ type: 'write', data: fragment({ sequenceNumber: file.sequence++, tracks }) });
    this.stats.fragments++;
  }

  private closeFile(): void {
    if (!this.file) return;
    this.flushFragment(true);
    this.out.push({ type: 'close', durationMs: Math.round(this.file.durationMs) });
    this.file = undefined;
  }
}

/** NAL units that go into samples: access unit delimiters, filler data and empty units are left out. */
function sampleUnits(run: TrackRun, au: readonly Uint8Array[]): readonly Uint8Array[] {
  if (!run.video) return au;
  const keep = (u: Uint8Array) => {
    if (u.byteLength === 0) return false;
    const t = nalType(u);
    return t !== NalUnitType.AccessUnitDelimiter && t !== NalUnitType.FillerData;
  };
  return au.every(keep) ? au : au.filter(keep);
}

/** Duration of a last sample whose successor never came: one frame at 30 fps, one AAC frame, 20 ms of Opus. */
function nominalDuration(t: Track): number {
  if (t.codec === 'h264') return Math.round(t.clockRate / 30);
  if (t.codec === 'aac') {
    const perFrame = t.config ? parseAudioSpecificConfig(t.config).frameLength : 1024;
    return Math.max(1, Math.round((perFrame * t.clockRate) / (t.sampleRate ?? t.clockRate)));
  }
  return Math.round(t.clockRate / 50);
}

function fmp4Track(r: TrackRun): Fmp4Track {
  const t = r.track;
  if (t.codec === 'h264') {
    const sps = t.sps as Uint8Array;
    let width = t.width ?? 0;
    let height = t.height ?? 0;
    if (width <= 0 || height <= 0) ({ width, height } = parseSps(sps));
    return { kind: 'video', codec: 'h264', id: r.fmp4Id, timescale: t.clockRate, width, height, sps, pps: t.pps as Uint8Array };
  }
  if (t.codec === 'aac') {
    const config = t.config as Uint8Array;
    const asc = parseAudioSpecificConfig(config);
    return {
      kind: 'audio',
      codec: 'aac',
      id: r.fmp4Id,
      timescale: t.clockRate,
      sampleRate: t.sampleRate ?? asc.sampleRate,
      channels: t.channels ?? (asc.channels || 2),
      config,
    };
  }
  return { kind: 'audio', codec: 'opus', id: r.fmp4Id, timescale: t.clockRate, channels: t.channels ?? 2 };
}

/**
 * Offset of the `mvhd` duration field in an init segment: `moov` → `mvhd` (version 0: 4 bytes version/flags,
 * creation and modification times, timescale, then duration; ISO/IEC 14496-12 8.2.2). -1 when not found.
 */
export function mvhdDurationOffset(init: Uint8Array): number {
  const dv = new DataView(init.buffer, init.byteOffset, init.byteLength);
  const type = (at: number) => String.fromCharCode(init[at + 4]!, init[at + 5]!, init[at + 6]!, init[at + 7]!);
  let pos = 0;
  while (pos + 8 <= init.byteLength) {
    const size = dv.getUint32(pos);
    if (size < 8) return -1;
    if (type(pos) === 'moov') {
      const child = pos + 8;
      if (child + 32 <= init.byteLength && type(child) === 'mvhd' && init[child + 8] === 0) return child + 24;
      return -1;
    }
    pos += size;
  }
  return -1;
}
