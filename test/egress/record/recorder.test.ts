import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  PathRecording,
  RecordingFragmenter,
  mvhdDurationOffset,
  startRecorder,
  type RecordAction,
  type RecorderPaths,
} from '../../../src/egress/record/recorder.js';
import { parseMoofRuns, parseMoovTracks, readBoxHeader } from '../../../src/egress/record/catalog.js';
import { parseConfig } from '../../../src/config.js';
import { makeFrame, type Frame } from '../../../src/media/bus/frame.js';
import type { FrameSink } from '../../../src/media/bus/reader.js';
import type { Session } from '../../../src/media/bus/session.js';
import { Stream } from '../../../src/media/bus/stream.js';
import { PathRegistry } from '../../../src/media/bus/registry.js';
import { pathPolicy } from '../../../src/main.js';
import { Track } from '../../../src/media/bus/track.js';
import { audio44k, video30 } from '../../fixtures/hls/media.js';
import { hasCommand, run, waitFor } from '../../helpers/media-tools.js';

const fixture = video30();
const aac = audio44k();
const T0 = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
const tmp = mkdtempSync(join(tmpdir(), 'sg-rec-unit-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function videoTrack(): Track {
  const t = new Track({ codec: 'h264', clockRate: 90000 });
  t.setH264Params(fixture.sps, fixture.pps, { width: 320, height: 240 });
  t.id = 0;
  return t;
}
function audioTrack(): Track {
  const t = new Track({ codec: 'aac', clockRate: 44100 });
  t.setAudioConfig(aac.config, 44100, 1);
  t.id = 1;
  return t;
}

/**
 * The fixtures as bus frames, interleaved by time: `seconds` of 30 fps video (GOP 30, looped) and 44.1 kHz AAC,
 * starting at `startS` on the path timeline. `audioFirst` puts audio that precedes the first keyframe in front.
 */
function frames(video: Track | null, audio: Track | null, seconds: number, startS = 0): Frame[] {
  const out: Frame[] = [];
  const v0 = Math.round(startS * 30);
  const a0 = Math.ceil((startS * 44100) / 1024);
  let ai = a0;
  for (let vi = v0; vi < v0 + seconds * 30; vi++) {
    const t = vi / 30;
    while (audio && (ai * 1024) / 44100 <= t) {
      out.push(makeFrame(audio, ai * 1024, ai * 1024, true, [aac.frames[ai % aac.frames.length]!]));
      ai++;
    }
    if (video) {
      const au = fixture.aus[vi % fixture.aus.length]!;
      out.push(makeFrame(video, vi * 3000, vi * 3000, au.keyframe, au.units));
    }
  }
  if (!video && audio) {
    for (; ai < a0 + Math.round((seconds * 44100) / 1024); ai++) {
      out.push(makeFrame(audio, ai * 1024, ai * 1024, true, [aac.frames[ai % aac.frames.length]!]));
    }
  }
  return out;
}

/** Runs frames through a fragmenter; returns the actions and the files they describe (bytes, mvhd patched). */
function record(f: RecordingFragmenter, tracks: Track[], input: Frame[], finish = true): { actions: RecordAction[]; files: Uint8Array[] } {
  const actions: RecordAction[] = [...f.start(tracks)];
  input.forEach((fr, i) => actions.push(...f.push(fr, T0 + i)));
  if (finish) actions.push(...f.finish());
  const files: Uint8Array[] = [];
  let parts: Uint8Array[] = [];
  let offset = -1;
  const flush = (durationMs?: number) => {
    const len = parts.reduce((n, p) => n + p.byteLength, 0);
    const buf = new Uint8Array(len);
    let o = 0;
    for (const p of parts) (buf.set(p, o), (o += p.byteLength));
    if (durationMs !== undefined && offset >= 0) new DataView(buf.buffer).setUint32(offset, durationMs);
    files.push(buf);
    parts = [];
  };
  for (const a of actions) {
    if (a.type === 'open') {
      if (parts.length > 0) flush();
      parts = [a.init];
      offset = a.durationOffset;
    } else if (a.type === 'write') parts.push(a.data);
    else flush(a.durationMs);
  }
  if (parts.length > 0) flush();
  return { actions, files };
}

/** Top-level box types of a file, and per track the time span of its fragments (track ticks). */
function inspect(file: Uint8Array): { types: string[]; timescales: Map<number, number>; spans: Map<number, { start: number; end: number; fragments: number }> } {
  const types: string[] = [];
  let tracks = new Map<number, { timescale: number; defaultSampleDuration: number }>();
  const spans = new Map<number, { start: number; end: number; fragments: number }>();
  let pos = 0;
  while (pos < file.byteLength) {
    const h = readBoxHeader(file, pos);
    assert.ok(h && pos + h.size <= file.byteLength, `box at ${pos}`);
    types.push(h.type);
    const body = file.subarray(pos + h.headerSize, pos + h.size);
    if (h.type === 'moov') tracks = parseMoovTracks(body);
    if (h.type === 'moof') {
      for (const r of parseMoofRuns(body, tracks)) {
        const s = spans.get(r.trackId);
        if (!s) spans.set(r.trackId, { start: r.start, end: r.end, fragments: 1 });
        else {
          assert.equal(r.start, s.end, `track ${r.trackId}: fragments are contiguous`);
          s.end = r.end;
          s.fragments++;
        }
      }
    }
    pos += h.size;
  }
  return { types, timescales: new Map([...tracks].map(([id, t]) => [id, t.timescale])), spans };
}

const canProbe = hasCommand('ffprobe') && hasCommand('ffmpeg');

async function probe(file: string): Promise<{ format: { duration?: string }; streams: { codec_name: string; width?: number; height?: number; sample_rate?: string }[] }> {
  const r = await run('ffprobe', ['-v', 'error', '-show_format', '-show_streams', '-of', 'json', file]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Awaited<ReturnType<typeof probe>>;
}

describe('RecordingFragmenter', () => {
  it('writes one file: init, ~1 s fragments cut at keyframes, a close with the duration', () => {
    const v = videoTrack();
    const a = audioTrack();
    const input = frames(v, a, 4);
    const { actions, files } = record(new RecordingFragmenter(), [v, a], input);
    assert.deepEqual(
      actions.map((x) => x.type),
      ['open', 'write', 'write', 'write', 'write', 'close'],
    );
    const open = actions[0] as Extract<RecordAction, { type: 'open' }>;
    // the first audio frame (t = 0) comes before the keyframe: the file starts at the keyframe
    assert.equal(open.startMs, T0 + input.findIndex((x) => x.track === v), 'the file is named after its first frame');
    const close = actions.at(-1) as Extract<RecordAction, { type: 'close' }>;
    assert.ok(Math.abs(close.durationMs - 4000) <= 40, `duration ${close.durationMs}`);
    assert.equal(files.length, 1);
    const info = inspect(files[0]!);
    assert.deepEqual(info.types, ['ftyp', 'moov', 'moof', 'mdat', 'moof', 'mdat', 'moof', 'mdat', 'moof', 'mdat']);
    assert.deepEqual([...info.timescales], [[1, 90000], [2, 44100]]);
    const video = info.spans.get(1)!;
    assert.equal(video.start, 0);
    assert.equal(video.end, 120 * 3000, 'every video frame, each 1/30 s (the last one gets the measured duration)');
    const audio = info.spans.get(2)!;
    // the audio frame at t = 0 arrived before the keyframe (the bus reader would not even deliver it)
    assert.equal(audio.start, 1024);
    assert.ok(Math.abs(audio.end / 44100 - 4) < 0.05, `audio ends at ${audio.end / 44100} s`);
  });

  it('names the mvhd duration field so a clean close can patch it', () => {
    const v = videoTrack();
    const { actions, files } = record(new RecordingFragmenter(), [v], frames(v, null, 1));
    const open = actions[0] as Extract<RecordAction, { type: 'open' }>;
    assert.equal(open.durationOffset, mvhdDurationOffset(open.init));
    const dv = new DataView(files[0]!.buffer);
    assert.equal(dv.getUint32(open.durationOffset - 4), 1000, 'mvhd timescale precedes the duration');
    assert.equal(dv.getUint32(open.durationOffset), 1000);
    assert.equal(mvhdDurationOffset(new Uint8Array([0, 0, 0, 8, 0x66, 0x72, 0x65, 0x65])), -1);
  });

  it('starts at the first keyframe: earlier video and audio are dropped, timestamps start at 0', () => {
    const v = videoTrack();
    const a = audioTrack();
    // a reader joining mid-GOP: the first 10 video frames are not keyframes
    const input = frames(v, a, 3, 1 / 3);
    const f = new RecordingFragmenter();
    const { actions, files } = record(f, [v, a], input);
    assert.equal(actions[0]!.type, 'open');
    const open = actions[0] as Extract<RecordAction, { type: 'open' }>;
    const firstKey = input.findIndex((x) => x.track === v && x.keyframe);
    assert.equal(open.startMs, T0 + firstKey);
    assert.ok(f.stats.framesDropped >= firstKey);
    const info = inspect(files[0]!);
    assert.equal(info.spans.get(1)!.start, 0);
    assert.ok(info.spans.get(2)!.start < 1024, 'audio starts within one frame of the video');
  });

  it('rotates files every segmentDuration, at a keyframe, without losing a frame', () => {
    const v = videoTrack();
    const a = audioTrack();
    const { actions, files } = record(new RecordingFragmenter({ segmentDurationMs: 1500 }), [v, a], frames(v, a, 6));
    assert.equal(actions.filter((x) => x.type === 'open').length, 3);
    assert.equal(actions.filter((x) => x.type === 'close').length, 3);
    let videoTicks = 0;
    for (const file of files) {
      const info = inspect(file);
      const s = info.spans.get(1)!;
      assert.equal(s.start, 0, 'each file starts its own timeline');
      assert.equal(s.end, 60 * 3000, 'cut at the keyframe after 1.5 s: 2 s per file');
      videoTicks += s.end;
    }
    assert.equal(videoTicks, 180 * 3000);
    const starts = actions.filter((x): x is Extract<RecordAction, { type: 'open' }> => x.type === 'open').map((x) => x.startMs);
    assert.ok(starts[0]! < starts[1]! && starts[1]! < starts[2]!);
  });

  it('starts a new file when the tracks change, and when a track changes its parameters', () => {
    const v = videoTrack();
    const a = audioTrack();
    const f = new RecordingFragmenter();
    const acts: RecordAction[] = [...f.start([v, a])];
    for (const x of frames(v, a, 2)) acts.push(...f.push(x, T0));
    // same tracks again: nothing happens
    assert.deepEqual(f.start([v, a]), []);
    // new SPS (same bytes with a changed level would do; a copy with a flipped reserved bit is enough for a version)
    const sps2 = Uint8Array.from(fixture.sps);
    sps2[sps2.length - 1] ^= 0x01;
    v.setH264Params(sps2, fixture.pps);
    for (const x of frames(v, a, 2, 2)) acts.push(...f.push(x, T0 + 2000));
    assert.deepEqual(acts.filter((x) => x.type !== 'write').map((x) => x.type), ['open', 'close', 'open']);
    // a new publisher with other tracks (video only)
    const v2 = videoTrack();
    const changed = f.start([v2]);
    assert.deepEqual(changed.filter((x) => x.type !== 'write').map((x) => x.type), ['close']);
    const more: RecordAction[] = [];
    for (const x of frames(v2, null, 1)) more.push(...f.push(x, T0 + 5000));
    more.push(...f.finish());
    assert.deepEqual(more.filter((x) => x.type !== 'write').map((x) => x.type), ['open', 'close']);
  });

  it('leaves out a track that is not configured yet, and starts a file with it once it is', () => {
    const v = videoTrack();
    const a = new Track({ codec: 'aac', clockRate: 44100 });
    a.id = 1;
    const f = new RecordingFragmenter();
    const acts: RecordAction[] = [...f.start([v, a])];
    for (const x of frames(v, a, 2)) acts.push(...f.push(x, T0));
    const first = acts[0] as Extract<RecordAction, { type: 'open' }>;
    a.setAudioConfig(aac.config, 44100, 1);
    for (const x of frames(v, a, 2, 2)) acts.push(...f.push(x, T0 + 2000));
    acts.push(...f.finish());
    const opens = acts.filter((x): x is Extract<RecordAction, { type: 'open' }> => x.type === 'open');
    assert.equal(opens.length, 2);
    assert.equal(opens[0], first);
    const tracksOf = (init: Uint8Array) => inspect(init).timescales;
    assert.deepEqual([...tracksOf(opens[0]!.init).values()], [90000], 'video only while audio has no config');
    assert.deepEqual([...tracksOf(opens[1]!.init).values()], [90000, 44100]);
  });

  it('records audio-only streams, cutting fragments on audio alone', () => {
    const a = audioTrack();
    const { actions, files } = record(new RecordingFragmenter(), [a], frames(null, a, 3));
    assert.equal(actions[0]!.type, 'open');
    const info = inspect(files[0]!);
    assert.equal(info.spans.get(1)!.fragments, 3);
    assert.ok(Math.abs(info.spans.get(1)!.end / 44100 - 3) < 0.05);
  });

  it('cuts fragments inside a long GOP after fragmentMaxDuration', () => {
    const v = videoTrack();
    const input = frames(v, null, 4).map((x, i) => (i === 0 ? x : { ...x, keyframe: false }));
    const { files } = record(new RecordingFragmenter({ fragmentMaxDurationMs: 1000 }), [v], input);
    assert.equal(inspect(files[0]!).spans.get(1)!.fragments, 4);
  });

  it('keeps decode times increasing when the input repeats one', () => {
    const v = videoTrack();
    const input = frames(v, null, 1);
    input[5] = { ...input[5]!, dts: input[4]!.dts, pts: input[4]!.pts };
    const { files } = record(new RecordingFragmenter(), [v], input);
    assert.equal(inspect(files[0]!).spans.get(1)!.end, 30 * 3000);
  });

  it('ignores frames of unknown tracks, and does nothing without frames', () => {
    const v = videoTrack();
    const f = new RecordingFragmenter();
    f.start([v]);
    assert.deepEqual(f.push(frames(videoTrack(), null, 1)[0]!, T0), []);
    assert.deepEqual(f.finish(), []);
  });

  it('writes files ffmpeg decodes without an error (H.264 + AAC, 320x240, ~4 s)', { skip: !canProbe }, async () => {
    const v = videoTrack();
    const a = audioTrack();
    const { files } = record(new RecordingFragmenter(), [v, a], frames(v, a, 4));
    const file = join(tmp, 'unit.mp4');
    writeFileSync(file, files[0]!);
    const p = await probe(file);
    assert.deepEqual(p.streams.map((s) => s.codec_name).sort(), ['aac', 'h264']);
    const video = p.streams.find((s) => s.codec_name === 'h264')!;
    assert.equal(video.width, 320);
    assert.equal(video.height, 240);
    assert.ok(Math.abs(Number(p.format.duration) - 4) < 0.1, `duration ${p.format.duration}`);
    const dec = await run('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-']);
    assert.equal(dec.code, 0);
    assert.equal(dec.stderr.trim(), '');
  });
});

/** A fake registry: remembers listeners and readers; `publish(path)` fires the listeners like addPublisher does. */
function fakeRegistry(): RecorderPaths & { publish(path: string): void; sinks: Map<string, { sink: FrameSink; closed: boolean; reasons: string[] }> } {
  const publishListeners = new Set<(path: string) => void>();
  const paths = new Map<string, { publisher: Session | undefined }>();
  const sinks = new Map<string, { sink: FrameSink; closed: boolean; reasons: string[] }>();
  return {
    publishListeners,
    paths,
    sinks,
    publish(path) {
      paths.set(path, { publisher: { id: 'p' } as Session });
      for (const l of publishListeners) l(path);
    },
    async addReader(path, _session, sink) {
      const entry = { sink, closed: false, reasons: [] as string[] };
      sinks.set(path, entry);
      return {
        get closed() {
          return entry.closed;
        },
        close(reason: string) {
          if (entry.closed) return;
          entry.closed = true;
          entry.reasons.push(reason);
          sink.close(reason);
        },
      };
    },
  };
}

describe('PathRecording and startRecorder', () => {
  it('records only paths with record: true, writes <root>/<path>/<UTC start>.mp4, closeAll finishes the file', async () => {
    const root = join(tmp, 'rec1');
    const config = parseConfig(`paths:\n  "~^rec/": { record: true, recordPath: ${JSON.stringify(root)} }\n  "~^plain/": {}\n`);
    const reg = fakeRegistry();
    const rec = startRecorder({ registry: reg, config: () => config });
    reg.publish('plain/x');
    reg.publish('rec/cam1');
    await waitFor(() => reg.sinks.has('rec/cam1'));
    assert.equal(reg.sinks.has('plain/x'), false);
    const v = videoTrack();
    const a = audioTrack();
    const stream = new Stream('rec/cam1');
    stream.tracks = [v, a];
    const sink = reg.sinks.get('rec/cam1')!.sink;
    sink.start(stream);
    for (const f of frames(v, a, 2)) sink.writeFrame(f);
    assert.equal(sink.bufferedBytes(), 0, 'the bus never drops frames for the recorder');
    assert.equal(rec.active().size, 1);
    await rec.closeAll();
    assert.equal(rec.active().size, 0);
    const names = readdirSync(join(root, 'rec', 'cam1'));
    assert.equal(names.length, 1);
    assert.match(names[0]!, /^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}-\d{3}\.mp4$/);
    const bytes = new Uint8Array(readFileSync(join(root, 'rec', 'cam1', names[0]!)));
    const off = mvhdDurationOffset(bytes);
    assert.ok(Math.abs(new DataView(bytes.buffer).getUint32(off) - 2000) <= 40, 'mvhd duration patched on close');
    const list = rec.catalog();
    assert.equal(list.length, 1);
    assert.equal(list[0]!.path, 'rec/cam1');
    assert.equal(list[0]!.segments[0]!.bytes, bytes.byteLength);
    assert.ok(Math.abs(list[0]!.segments[0]!.durationMs - 2000) <= 40);
    assert.equal(list[0]!.segments[0]!.url, `/v1/recordings/rec/cam1/${names[0]!}`);
  });

  it('a disk error stops only that recording: logged, reader closed, nothing thrown into the bus', async () => {
    const blocker = join(tmp, 'not-a-dir');
    writeFileSync(blocker, 'x');
    const rec = new PathRecording({ path: 'rec/cam', root: blocker });
    const reasons: string[] = [];
    rec.reader = {
      closed: false,
      close(reason) {
        reasons.push(reason);
        (this as { closed: boolean }).closed = true;
        rec.close(reason);
      },
    };
    const v = videoTrack();
    const stream = new Stream('rec/cam');
    stream.tracks = [v];
    rec.start(stream);
    for (const f of frames(v, null, 2)) rec.writeFrame(f);
    await rec.done;
    assert.equal(rec.failed, true);
    assert.equal(reasons.length, 1);
    assert.match(reasons[0]!, /recording failed/);
    // later frames are ignored
    rec.writeFrame(frames(v, null, 1)[0]!);
  });

  it('a queue over its bound stops the recording instead of growing memory', async () => {
    const rec = new PathRecording({ path: 'rec/q', root: join(tmp, 'rec-q'), maxQueueBytes: 20_000 });
    const v = videoTrack();
    const stream = new Stream('rec/q');
    stream.tracks = [v];
    rec.start(stream);
    // the fixture's first second is ~60 KB: one fragment alone is over the bound
    for (const f of frames(v, null, 3)) rec.writeFrame(f);
    await rec.done;
    assert.equal(rec.failed, true);
  });

  it('a shutdown while the registry is still attaching the reader detaches it once attached', async () => {
    const config = parseConfig(`paths:\n  "~^rec/": { record: true, recordPath: ${JSON.stringify(join(tmp, 'rec-slow'))} }\n`);
    const reg = fakeRegistry();
    const attach = reg.addReader.bind(reg);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    reg.addReader = async (...args) => {
      await gate;
      return attach(...args);
    };
    const rec = startRecorder({ registry: reg, config: () => config });
    reg.publish('rec/slow');
    await rec.closeAll();
    release();
    await waitFor(() => reg.sinks.get('rec/slow')?.closed === true);
    assert.deepEqual(reg.sinks.get('rec/slow')!.reasons, ['recording stopped']);
  });

  it('a refused reader (credentials, reader cap) is logged and leaves nothing running', async () => {
    const config = parseConfig(`paths:\n  "~^rec/": { record: true, recordPath: ${JSON.stringify(join(tmp, 'rec-refused'))} }\n`);
    const reg = fakeRegistry();
    reg.addReader = () => Promise.reject(new Error('refused'));
    const rec = startRecorder({ registry: reg, config: () => config });
    reg.publish('rec/a');
    await waitFor(() => rec.active().size === 0);
    await rec.closeAll();
  });
});

describe('startRecorder on a real PathRegistry', () => {
  const publisher = (): Session => ({
    id: 'pub', protocol: 'rtmp', role: 'publisher', path: '', remoteAddr: '127.0.0.1:1', state: 'publish',
    createdAt: Date.now(), bytesIn: 0, bytesOut: 0, close() {},
  });

  it('joins a path that is already live (GOP cache first), follows reloads, finishes when the publisher leaves', async () => {
    const root = join(tmp, 'rec-live');
    const on = parseConfig(`paths:\n  "~^rec/": { record: true, recordPath: ${JSON.stringify(root)}, publisherGrace: 0 }\n`);
    const off = parseConfig(`paths:\n  "~^rec/": { record: false, recordPath: ${JSON.stringify(root)}, publisherGrace: 0 }\n`);
    let config = off;
    const registry = new PathRegistry(pathPolicy(on));
    const pub = publisher();
    const stream = await registry.addPublisher('rec/cam', pub, { protocol: 'rtmp', ip: '127.0.0.1' });
    const [v, a] = stream.setTracks([videoTrack(), audioTrack()]) as [Track, Track];
    const input = frames(v, a, 6);
    const at = (s: number) => input.findIndex((f) => f.track === v && f.dts >= s * 90000);
    // 1.5 s before the recorder exists: the GOP cache then holds the keyframe at 1 s and what followed
    for (const f of input.slice(0, at(1.5))) stream.write(f);
    const rec = startRecorder({ registry, config: () => config });
    assert.equal(rec.active().size, 0, 'record: false');
    config = on;
    rec.reload();
    await waitFor(() => registry.paths.get('rec/cam')!.internalReaders.size === 1);
    for (const f of input.slice(at(1.5), at(3))) stream.write(f);
    // recording switched off by a reload: the file is finished, the stream goes on
    config = off;
    rec.reload();
    await waitFor(() => rec.active().size === 0);
    assert.equal(registry.paths.get('rec/cam')!.internalReaders.size, 0);
    assert.ok(registry.paths.get('rec/cam')!.publisher, 'the publisher stays');
    // and on again: a new file from the next keyframe the GOP cache holds
    config = on;
    rec.reload();
    await waitFor(() => rec.active().size === 1 && registry.paths.get('rec/cam')!.internalReaders.size === 1);
    for (const f of input.slice(at(3))) stream.write(f);
    const recording = rec.active().get('rec/cam')!;
    registry.removePublisher(pub);
    await recording.done;
    await rec.closeAll();
    const segs = rec.catalog()[0]!.segments;
    assert.equal(segs.length, 2);
    // the first file starts at the cached keyframe (1 s) and ends at 3 s; the second starts at the cached 2 s
    // keyframe (frames up to 3 s were already in the cache) and runs to 6 s. Every frame here was made at the same
    // instant, so their start times are the same to a millisecond or two: compare the durations as a set.
    const durations = segs.map((x) => x.durationMs).sort((x, y) => x - y);
    assert.ok(Math.abs(durations[0]! - 2000) <= 40 && Math.abs(durations[1]! - 4000) <= 40, durations.join(', '));
  });
});
