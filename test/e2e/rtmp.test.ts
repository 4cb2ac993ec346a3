/**
 * RTMP end to end on loopback: a real gateway in this process, real ffmpeg publishers and readers, and a raw
 * RTMP player (the pull client's sans-I/O connection over a socket) where the test needs to see or stall the
 * bytes itself. The cases run concurrently, each on its own path, to fit in well under a minute on 2 cores.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { RtmpClientConnection, parseRtmpUrl, type RtmpClientAction } from '../../src/ingest/rtmp/client-session.js';
import type { Gateway } from '../../src/main.js';
import { startTestGateway } from '../helpers/gateway.js';
import { ffmpegPublish, ffprobeStreams, hasCommand, run, waitFor, type PublishOptions } from '../helpers/media-tools.js';

const haveFfmpeg = hasCommand('ffmpeg') && hasCommand('ffprobe');
const FPS = 30;
/** Frame interval on the FLV millisecond timeline, and the largest gap that still means "no frame lost". */
const FRAME_MS = 1000 / FPS;
const MAX_GAP_MS = 1.8 * FRAME_MS;

/** One packet of ffmpeg's framecrc output. */
interface Packet {
  stream: number;
  dts: number;
  pts: number;
  size: number;
  crc: string;
}

/** An `ffmpeg -c copy -f framecrc -` reader: every packet it receives, as it receives it. */
interface CopyReader {
  child: ChildProcess;
  packets: Packet[];
  exited: Promise<number | null>;
  video(): Packet[];
}

function copyReader(url: string, extra: string[] = []): CopyReader {
  const child = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', url, ...extra, '-c', 'copy', '-f', 'framecrc', '-'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const packets: Packet[] = [];
  let rest = '';
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (rest + d.toString()).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) {
      const m = /^(\d+),\s*(-?\d+),\s*(-?\d+),\s*\d+,\s*(\d+),\s*(0x[0-9a-f]+)/.exec(l);
      if (m) packets.push({ stream: Number(m[1]), dts: Number(m[2]), pts: Number(m[3]), size: Number(m[4]), crc: m[5]! });
    }
  });
  child.stderr!.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, packets, exited, video: () => packets.filter((p) => p.stream === 0) };
}

/** Largest dts step between consecutive packets (ms; FLV input gives framecrc a 1/1000 time base). */
function maxGap(ps: Packet[]): number {
  let g = 0;
  for (let i = 1; i < ps.length; i++) g = Math.max(g, ps[i]!.dts - ps[i - 1]!.dts);
  return g;
}

function assertMonotonic(ps: Packet[], what: string, strict: boolean): void {
  for (let i = 1; i < ps.length; i++) {
    const ok = strict ? ps[i]!.dts > ps[i - 1]!.dts : ps[i]!.dts >= ps[i - 1]!.dts;
    assert.ok(ok, `${what}: dts ${ps[i - 1]!.dts} then ${ps[i]!.dts} at packet ${i}`);
  }
}

/** A video message a raw player received. */
interface RawVideo {
  atMs: number;
  timestamp: number;
  keyframe: boolean;
}

/** A raw RTMP player: the pull client's connection over a plain socket, so the test controls reading. */
interface RawPlayer {
  socket: net.Socket;
  playingAtMs: number;
  video: RawVideo[];
  closed: Promise<void>;
  isClosed(): boolean;
}

function rawPlay(port: number, path: string): Promise<RawPlayer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const conn = new RtmpClientConnection(parseRtmpUrl(`rtmp://127.0.0.1:${port}/${path}`), Date.now());
    const video: RawVideo[] = [];
    let closed = false;
    const closedP = new Promise<void>((r) => socket.once('close', () => ((closed = true), r())));
    const player: RawPlayer = { socket, playingAtMs: 0, video, closed: closedP, isClosed: () => closed };
    const runActions = (actions: RtmpClientAction[]): void => {
      for (const a of actions) {
        if (a.type === 'send') socket.write(a.bytes);
        else if (a.type === 'playing') {
          player.playingAtMs = performance.now();
          resolve(player);
        } else if (a.type === 'media' && a.kind === 'video' && a.body[1] === 1) {
          // AVC NALU packets only (not the sequence header); frame type 1 = keyframe
          video.push({ atMs: performance.now(), timestamp: a.timestamp, keyframe: a.body[0]! >> 4 === 1 });
        } else if (a.type === 'close') {
          socket.destroy();
          reject(new Error(`raw player closed: ${a.reason}`));
        }
      }
    };
    socket.on('connect', () => runActions(conn.start()));
    socket.on('data', (d: Buffer) => runActions(conn.push(d, Date.now())));
    socket.on('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('RTMP end to end', { skip: !haveFfmpeg, concurrency: true, timeout: 90_000 }, () => {
  let gw: Gateway;
  let port: number;
  const children: ChildProcess[] = [];
  const url = (path: string): string => `rtmp://127.0.0.1:${port}/${path}`;
  const publish = (path: string, o: PublishOptions = {}): ChildProcess => {
    const c = ffmpegPublish(url(path), { size: '320x240', rate: FPS, ...o });
    children.push(c);
    return c;
  };
  const ready = (path: string, timeoutMs = 15_000) => waitFor(() => gw.registry.paths.get(path)?.stream.ready, timeoutMs);
  const sessionOf = (socket: net.Socket) => [...gw.registry.sessions.values()].find((s) => s.remoteAddr === `127.0.0.1:${socket.localPort}`);

  before(async () => {
    gw = await startTestGateway(
      [
        // a reader whose socket stays over readerQueueBytes for writeTimeout is dead, not slow
        'writeTimeout: 2s',
        'readerQueueBytes: 524288', // 0.5 s of the 8 Mbit/s test stream: a busy CI machine must not make good readers drop
        'paths:',
        '  secure/cam: { publishUser: pub, publishPass: secret }',
        '  "~^grace/": { publisherGrace: 5s }',
        '  "~^.*$": {}',
      ].join('\n'),
      ['rtmp', 'api'],
    );
    port = gw.ports['rtmp']!;
    publish('live/main', { sampleRate: 48000, gop: FPS });
    await ready('live/main');
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await gw?.close();
  });

  test('ffprobe sees h264 320x240 and aac 48 kHz', async () => {
    const streams = await ffprobeStreams(url('live/main'));
    const v = streams.find((s) => s.codec_type === 'video');
    const a = streams.find((s) => s.codec_type === 'audio');
    assert.equal(v?.codec_name, 'h264');
    assert.equal(v?.width, 320);
    assert.equal(v?.height, 240);
    assert.equal(a?.codec_name, 'aac');
    assert.equal(a?.sample_rate, '48000');
  });

  test('an ffmpeg -c copy reader gets the expected number of frames over 4 s, with monotonic timestamps', async (t) => {
    const r = copyReader(url('live/main'), ['-t', '4']);
    children.push(r.child);
    assert.equal(await r.exited, 0);
    const video = r.video();
    const audio = r.packets.filter((p) => p.stream === 1);
    assertMonotonic(video, 'video', true);
    assertMonotonic(audio, 'audio', false);
    // the reader starts with the cached GOP replayed fast (< 1 s of frames, timestamps compressed), then 4 s live
    const live = video.filter((p, i) => i > 0 && p.dts - video[i - 1]!.dts >= FRAME_MS / 2);
    assert.ok(live.length >= 4 * FPS - 4 && live.length <= 4 * FPS + 2, `${live.length} live video frames in 4 s`);
    assert.ok(video.length <= 4 * FPS + FPS + 2, `${video.length} video frames in all`);
    assert.ok(maxGap(video) <= MAX_GAP_MS, `a video frame was lost (gap ${maxGap(video)} ms)`);
    // 48 kHz AAC: 1024 samples = 21.3 ms a frame; 4 s ≈ 187 frames (audio of the cached GOP is not replayed)
    assert.ok(audio.length >= 180 && audio.length <= 192, `${audio.length} audio frames`);
    t.diagnostic(`video: ${video.length} frames (${live.length} live), audio: ${audio.length} frames`);
  });

  test('two readers get every frame while a reader that never reads is closed after writeTimeout', async (t) => {
    // 8 Mbit/s (CBR with filler) fills the stalled socket's kernel buffers within seconds
    const br = '8M';
    publish('live/fan', { gop: FPS, extra: ['-b:v', br, '-minrate', br, '-maxrate', br, '-bufsize', '1M', '-x264-params', 'nal-hrd=cbr:filler=1'] });
    await ready('live/fan');
    const stalled = await rawPlay(port, 'live/fan');
    stalled.socket.pause();
    const stalledSession = sessionOf(stalled.socket);
    assert.ok(stalledSession, 'stalled reader has a session');
    const readers = [copyReader(url('live/fan'), ['-map', '0:v']), copyReader(url('live/fan'), ['-map', '0:v'])];
    children.push(...readers.map((r) => r.child));
    await waitFor(() => readers.every((r) => r.packets.length > 0), 10_000);
    const t0 = Date.now();
    await waitFor(() => !gw.registry.sessions.has(stalledSession.id), 20_000, 100);
    const stalledMs = Date.now() - t0;
    // the good readers go on for one more second after the stalled one was closed
    const counts = readers.map((r) => r.packets.length);
    await sleep(1000);
    readers.forEach((r, i) => assert.ok(r.packets.length >= counts[i]! + FPS - 6, `reader ${i} kept receiving`));
    const entry = gw.registry.paths.get('live/fan')!;
    const busReaders = [...entry.readers];
    assert.equal(busReaders.length, 2, 'only the stalled reader was detached');
    for (const br2 of busReaders) assert.equal(br2.framesDropped, 0, `reader ${br2.session.id} dropped frames`);
    for (const r of readers) {
      r.child.kill('SIGKILL');
      assertMonotonic(r.packets, 'fan-out reader', true);
      assert.ok(maxGap(r.packets) <= MAX_GAP_MS, `a frame was lost (gap ${maxGap(r.packets)} ms)`);
    }
    // the two readers joined at about the same time: they saw the same frames, byte for byte
    const [a, b] = readers.map((r) => r.packets.map((p) => p.crc));
    const start = a!.indexOf(b![FPS + 5]!);
    assert.ok(start >= 0, 'reader 2 frames are in reader 1');
    const n = Math.min(a!.length - start, b!.length - (FPS + 5));
    assert.deepEqual(a!.slice(start, start + n), b!.slice(FPS + 5, FPS + 5 + n));
    assert.ok(stalledMs < 20_000, `stalled reader closed after ${stalledMs} ms`);
    t.diagnostic(`stalled reader closed ${stalledMs} ms after the good readers started; they got ${readers.map((r) => r.packets.length).join(' and ')} frames`);
    stalled.socket.destroy();
  });

  test('a reader joining mid-GOP gets the cached keyframe at once (GOP 10 s, joins 3 s in)', async (t) => {
    publish('live/longgop', { gop: 10 * FPS, audio: false, extra: ['-sc_threshold', '0'] });
    await ready('live/longgop');
    await sleep(3000);
    const p = await rawPlay(port, 'live/longgop');
    await waitFor(() => p.video.length > 0, 3000);
    const first = p.video[0]!;
    const firstMs = first.atMs - p.playingAtMs;
    assert.ok(first.keyframe, 'the first frame is the cached keyframe');
    assert.ok(firstMs < 1000, `first frame after ${firstMs.toFixed(0)} ms`);
    await sleep(1000);
    // the GOP so far (~3 s of frames) arrives in a burst, so the player is at the live edge at once
    assert.ok(p.video.length >= 2.5 * FPS, `${p.video.length} frames in the first second`);
    assert.equal(p.video.filter((v) => v.keyframe).length, 1, 'no new keyframe was needed');
    p.socket.destroy();
    // ffmpeg decodes a picture long before the next keyframe (7 s away)
    const t0 = performance.now();
    const r = await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', url('live/longgop'), '-frames:v', '1', '-f', 'null', '-'], 15_000);
    const decodeMs = performance.now() - t0;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(decodeMs < 4000, `ffmpeg decoded its first picture after ${decodeMs.toFixed(0)} ms`);
    t.diagnostic(`raw player: first frame ${firstMs.toFixed(1)} ms after Play.Start; ffmpeg: first picture after ${decodeMs.toFixed(0)} ms`);
  });

  test('catch-up start: a player joining 3 s into a GOP is at the live edge at once (first-frame age < 500 ms)', async (t) => {
    publish('live/catchup', { gop: 10 * FPS, audio: false, extra: ['-sc_threshold', '0'] });
    await ready('live/catchup');
    await sleep(3000);
    const p = await rawPlay(port, 'live/catchup');
    await sleep(1000);
    p.socket.destroy();
    const first = p.video[0]!;
    const last = p.video[p.video.length - 1]!;
    // the newest frame is the live edge; how far behind it the first frame was, on the media timeline, beyond
    // the wall time that passed: ~0 when the cached GOP is replayed re-timed (Stream catchUpBurst), ~3 s when not
    const ageMs = last.timestamp - first.timestamp - (last.atMs - first.atMs);
    t.diagnostic(`first-frame age ${ageMs.toFixed(0)} ms (${p.video.length} frames in the first second)`);
    assert.ok(first.keyframe);
    assert.ok(ageMs < 500, `the first frame was ${ageMs.toFixed(0)} ms behind live`);
  });

  test('publisher disconnect + reconnect within publisherGrace keeps the reader attached', async () => {
    const first = publish('grace/cam', { gop: FPS, audio: false });
    await ready('grace/cam');
    const reader = copyReader(url('grace/cam'));
    children.push(reader.child);
    await waitFor(() => reader.packets.length > FPS, 10_000);
    const readerSession = [...gw.registry.paths.get('grace/cam')!.readers][0]!.session;
    first.kill('SIGKILL');
    await waitFor(() => !gw.registry.paths.get('grace/cam')?.stream.ready, 5000);
    await sleep(1500);
    const atRepublish = reader.packets.length;
    publish('grace/cam', { gop: FPS, audio: false });
    await ready('grace/cam');
    await waitFor(() => reader.packets.length >= atRepublish + 2 * FPS, 10_000);
    assert.equal(reader.child.exitCode, null, 'the reader is still running');
    assert.deepEqual([...gw.registry.paths.get('grace/cam')!.readers].map((r) => r.session), [readerSession], 'same reader session');
    assertMonotonic(reader.packets, 'reader across the republish', true);
    reader.child.kill('SIGKILL');
  });

  test('a second publisher on a busy path is refused; the first one goes on', async () => {
    publish('live/busy', { gop: FPS, audio: false });
    await ready('live/busy');
    const owner = gw.registry.paths.get('live/busy')!.publisher!;
    const second = await run('ffmpeg', [
      '-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30', '-t', '5',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'flv', url('live/busy'),
    ], 15_000);
    assert.notEqual(second.code, 0, 'second publisher must fail');
    assert.match(second.stderr, /already has a publisher/);
    assert.equal(gw.registry.paths.get('live/busy')?.publisher, owner);
    assert.ok(gw.registry.paths.get('live/busy')?.stream.ready);
  });

  test('publishUser/publishPass: refused without or with wrong credentials, accepted with ?user=&pass=', async () => {
    const attempt = (query: string) =>
      run('ffmpeg', [
        '-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30', '-t', '1.5',
        '-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'flv', `${url('secure/cam')}${query}`,
      ], 15_000);
    const [none, wrong] = await Promise.all([attempt(''), attempt('?user=pub&pass=nope')]);
    assert.notEqual(none.code, 0);
    assert.notEqual(wrong.code, 0);
    assert.match(none.stderr + wrong.stderr, /Server error/);
    let sawPublisher = false;
    const watch = setInterval(() => (sawPublisher ||= gw.registry.paths.get('secure/cam')?.publisher !== undefined), 20);
    const ok = await attempt('?user=pub&pass=secret');
    clearInterval(watch);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(sawPublisher, 'the publish with credentials was accepted');
  });

  test('DELETE /v1/sessions/{id} kicks a reader', async () => {
    const p = await rawPlay(port, 'live/main');
    await waitFor(() => p.video.length > 0, 5000);
    const api = `http://127.0.0.1:${gw.ports['api']}/v1/sessions`;
    const list = (await (await fetch(api)).json()) as { items: { id: string; role: string; path: string; remoteAddr: string }[] };
    const mine = list.items.find((s) => s.remoteAddr === `127.0.0.1:${p.socket.localPort}`);
    assert.ok(mine && mine.role === 'reader' && mine.path === 'live/main', JSON.stringify(mine));
    const del = await fetch(`${api}/${mine.id}`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    await Promise.race([p.closed, sleep(3000).then(() => assert.fail('socket not closed after the kick'))]);
    assert.equal((await fetch(`${api}/${mine.id}`)).status, 404);
    assert.ok(gw.registry.paths.get('live/main')?.stream.ready, 'the stream goes on');
  });
});
