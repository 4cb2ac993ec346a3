/**
 * Recording (`paths.<p>.record: true`): each path that records gets one bus reader when a publisher (or pull
 * source) attaches, and its frames are written as fragmented MP4 files
 * `<recordPath>/<path>/<YYYY-MM-DD_HH-MM-SS-mmm>.mp4` (UTC start time, see catalog.ts).
 *
 * File layout: the init segment (`ftyp` + `moov`), then one `moof` + `mdat` per ~1 s (cut at a video keyframe, or
 * anywhere after {@link RECORD_FRAGMENT_MAX_DURATION_MS} for long GOPs). Every fragment is complete on its own, so a
 * file is playable while it is written and after a crash up to its last complete fragment. On a clean close the
 * `mvhd` duration is patched in, so players show the length without scanning the fragments.
 *
 * A new file starts every `recordSegmentDuration` of the path (default {@link RECORD_SEGMENT_DURATION_MS}; at the next
 * keyframe), when the publisher's tracks change, and when a track's parameters change (new SPS/PPS or
 * AudioSpecificConfig need a new init segment).
 *
 * Layers, one file each (this file re-exports them so importers keep one path): `RecordingFragmenter`
 * (fragmenter.ts) is sans-I/O (frames in, file actions out, the wall clock injected); `PathRecording`
 * (path-recording.ts) is the bus sink that applies those actions to disk through a bounded, serial write queue;
 * `startRecorder` (start-recorder.ts) attaches a `PathRecording` to every recording path when it gets a publisher.
 */
export {
  RECORD_SEGMENT_DURATION_MS,
  RECORD_FRAGMENT_DURATION_MS,
  RECORD_FRAGMENT_MAX_DURATION_MS,
  RECORD_MAX_FRAGMENT_SAMPLES,
  RecordingFragmenter,
  mvhdDurationOffset,
  type RecordOpenAction,
  type RecordWriteAction,
  type RecordCloseAction,
  type RecordAction,
  type RecordingFragmenterOptions,
} from './fragmenter.js';
export {
  RECORD_MAX_QUEUE_BYTES,
  PathRecording,
  type RecordingReader,
  type RecordedFile,
  type PathRecordingOptions,
} from './path-recording.js';
export { startRecorder, type RecorderPaths, type RecorderOptions, type Recorder } from './start-recorder.js';
