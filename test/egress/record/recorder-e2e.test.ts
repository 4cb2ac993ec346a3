/**
 * Recording end to end: a real gateway in this process, ffmpeg publishing over RTMP, the recorder attached to the
 * gateway's registry, the API server serving the catalog and the files, and ffprobe/ffmpeg judging the result.
 *
 * The recorder here is started by the test on the gateway's registry (main.ts wires its own once the lead adds it):
 * it reads a copy of the config whose recordPath is this test's own directory, so a recorder the gateway may run
 * itself writes elsewhere and cannot disturb the counts below.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRecorder, type Recorder } from '../../../src/egress/record/recorder.js';
import { startApiServer } from '../../../src/api.js';
import { parseConfig } from '../../../src/config.js';
import type { Gateway } from '../../../src/main.js';
import type { RunningServer } from '../../../src/metrics.js';
import { startTestGateway } from '../../helpers/gateway.js';
import { ffmpegPublish, hasCommand, run, waitFor } from '../../helpers/media-tools.js';

const haveTools = hasCommand('ffmpeg') && hasCommand('ffprobe');

interface Probe {
  format: { duration?: string; size?: string };
  streams: { codec_name: string; codec_type: string; width?: number; height?: number; sample_rate?: string }[];
}

async function probe(target: string): Promise<Probe> {
  const r = await run('ffprobe', ['-v', 'error', '-show_format', '-show_streams', '-of', 'json', target]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Probe;
}

/** Publishes `seconds` of test pattern + tone over RTMP and waits until ffmpeg is done. */
async function publishFor(url: string, seconds: number): Promise<void> {
  const child = ffmpegPublish(url, { duration: seconds, size: '640x360', rate: 30, gop: 30 });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, `ffmpeg publisher: ${stderr}`);
}

describe('recording end to end (RTMP → fMP4 files → API → playback)', { skip: !haveTools, timeout: 120_000 }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'sg-rec-e2e-'));
  const gatewayRoot = join(tmp, 'gateway');
  const root = join(tmp, 'test');
  const pathsYaml = (dir: string) => `paths:\n  "~^rec/": { record: true, recordPath: ${JSON.stringify(dir)}, publisherGrace: 0 }\n`;
  let gw: Gateway;
  let recorder: Recorder;
  let rotating: Recorder;
  let api: RunningServer;
  const config = parseConfig(pathsYaml(root));
  // a second recorder that rotates files every 1.5 s (the path's recordSegmentDuration), for paths under rec/rot/ only
  const rotConfig = parseConfig(`paths:\n  "~^rec/rot/": { record: true, recordPath: ${JSON.stringify(join(tmp, 'rot'))}, recordSegmentDuration: 1500ms }\n`);

  before(async () => {
    gw = await startTestGateway(pathsYaml(gatewayRoot), ['rtmp']);
    recorder = startRecorder({ registry: gw.registry, config: () => config });
    rotating = startRecorder({ registry: gw.registry, config: () => rotConfig });
    api = await startApiServer({
      port: 0,
      host: '127.0.0.1',
      registry: gw.registry,
      isHealthy: () => true,
      recordings: () => recorder.catalog(),
      playback: recorder.playback,
    });
  });
  after(async () => {
    await api?.close();
    await recorder?.closeAll();
    await rotating?.closeAll();
    await gw?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const rtmp = (path: string) => `rtmp://127.0.0.1:${gw.ports['rtmp']}/${path}`;
  const base = () => `http://127.0.0.1:${api.port}`;

  it('records 4 s of H.264 + AAC that ffprobe reads and ffmpeg decodes without errors; the API lists it and serves it', async () => {
    await publishFor(rtmp('rec/cam1'), 4);
    // publisherGrace 0: the reader closes with the publisher, and the file is finished
    await waitFor(() => !recorder.active().has('rec/cam1'), 10_000);
    const dir = join(root, 'rec', 'cam1');
    const names = readdirSync(dir);
    assert.equal(names.length, 1, names.join(', '));
    const file = join(dir, names[0]!);

    const p = await probe(file);
    const video = p.streams.find((s) => s.codec_type === 'video');
    const audio = p.streams.find((s) => s.codec_type === 'audio');
    assert.equal(video?.codec_name, 'h264');
    assert.equal(video?.width, 640);
    assert.equal(video?.height, 360);
    assert.equal(audio?.codec_name, 'aac');
    assert.equal(audio?.sample_rate, '44100');
    const duration = Number(p.format.duration);
    assert.ok(Math.abs(duration - 4) <= 1, `duration ${duration} s`);
    const dec = await run('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-']);
    assert.equal(dec.code, 0);
    assert.equal(dec.stderr.trim(), '', 'decoding printed errors');

    const list = (await (await fetch(`${base()}/v1/recordings`)).json()) as {
      items: { path: string; segments: { start: string; durationMs: number; bytes: number; url: string }[] }[];
    };
    const entry = list.items.find((i) => i.path === 'rec/cam1');
    assert.ok(entry, JSON.stringify(list));
    assert.equal(entry.segments.length, 1);
    const seg = entry.segments[0]!;
    assert.ok(Math.abs(seg.durationMs - duration * 1000) <= 100, `catalog ${seg.durationMs} ms vs ffprobe ${duration} s`);
    assert.equal(seg.bytes, Number(p.format.size));
    assert.ok(Math.abs(Date.parse(seg.start) - Date.now()) < 60_000, seg.start);

    const whole = await fetch(base() + seg.url);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('content-type'), 'video/mp4');
    assert.equal((await whole.arrayBuffer()).byteLength, seg.bytes);
    const part = await fetch(base() + seg.url, { headers: { Range: 'bytes=0-1023' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 0-1023/${seg.bytes}`);
    assert.equal((await part.arrayBuffer()).byteLength, 1024);
    // ffprobe plays it straight from the API
    const remote = await probe(base() + seg.url);
    assert.deepEqual(remote.streams.map((s) => s.codec_name).sort(), ['aac', 'h264']);
  });

  it('rotates to a new file every segment duration (1.5 s → cut at the next keyframe)', async () => {
    await publishFor(rtmp('rec/rot/a'), 4);
    await waitFor(() => !rotating.active().has('rec/rot/a'), 20_000);
    const segs = rotating.catalog().find((i) => i.path === 'rec/rot/a')?.segments ?? [];
    assert.ok(segs.length >= 2 && segs.length <= 3, `${segs.length} files`);
    let total = 0;
    for (const s of segs.slice(0, -1)) {
      // keyframes every second: the first keyframe at or after 1.5 s is at 2 s
      assert.ok(Math.abs(s.durationMs - 2000) <= 100, `file of ${s.durationMs} ms`);
    }
    for (const s of segs) total += s.durationMs;
    assert.ok(Math.abs(total - 4000) <= 1000, `total ${total} ms`);
    for (let i = 1; i < segs.length; i++) assert.ok(Date.parse(segs[i]!.start) > Date.parse(segs[i - 1]!.start));
    const dir = join(tmp, 'rot', 'rec', 'rot', 'a');
    for (const name of readdirSync(dir)) {
      const p = await probe(join(dir, name));
      assert.deepEqual(p.streams.map((s) => s.codec_name).sort(), ['aac', 'h264'], name);
      const dec = await run('ffmpeg', ['-v', 'error', '-i', join(dir, name), '-f', 'null', '-']);
      assert.equal(dec.stderr.trim(), '', `${name}: decoding printed errors`);
    }
  });

  it('a recording in progress is playable, and closeAll (SIGTERM) finishes it', async () => {
    const child = ffmpegPublish(rtmp('rec/live'), { size: '640x360', rate: 30, gop: 30 });
    child.stderr!.resume();
    try {
      const dir = join(root, 'rec', 'live');
      const seg = (await waitFor(() => {
        const s = recorder.catalog().find((i) => i.path === 'rec/live')?.segments[0];
        return s && s.durationMs >= 2000 ? s : undefined;
      }, 15_000))!;
      assert.ok(recorder.active().has('rec/live'), 'still recording');
      const names = readdirSync(dir);
      assert.equal(names.length, 1);
      const p = await probe(join(dir, names[0]!));
      assert.deepEqual(p.streams.map((s) => s.codec_name).sort(), ['aac', 'h264']);
      const remote = await probe(base() + seg.url);
      assert.equal(remote.streams.find((s) => s.codec_type === 'video')?.width, 640);

      await recorder.closeAll();
      assert.equal(recorder.active().size, 0);
      const done = await probe(join(dir, names[0]!));
      assert.ok(Number(done.format.duration) >= 2, `finished file lasts ${done.format.duration} s`);
      const dec = await run('ffmpeg', ['-v', 'error', '-i', join(dir, names[0]!), '-f', 'null', '-']);
      assert.equal(dec.stderr.trim(), '', 'decoding printed errors');
      // the stream itself went on: the publisher is still attached
      assert.ok(gw.registry.paths.get('rec/live')?.publisher, 'the publisher was not disturbed');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
