import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { BitrateSampler, startMetricsServer } from '../src/metrics.js';
import { makeFrame, type Frame } from '../src/media/bus/frame.js';
import type { FrameSink } from '../src/media/bus/reader.js';
import { DEFAULT_PATH_SETTINGS, PathRegistry } from '../src/media/bus/registry.js';
import type { Protocol, Role } from '../src/media/bus/session.js';
import type { Stream } from '../src/media/bus/stream.js';
import { Track } from '../src/media/bus/track.js';
import { fakeSession as makeFakeSession, feedUntilSeen, type FakeSession } from './helpers/sessions.js';

function fakeSession(registry: PathRegistry, id: string, protocol: Protocol, role: Role, createdAt = Date.now()): FakeSession {
  return makeFakeSession(registry, id, protocol, role, { remoteAddr: '127.0.0.1:4000', createdAt });
}

/** A sink whose socket queue size the test sets, to make the reader drop frames. */
class Sink implements FrameSink {
  frames: Frame[] = [];
  queued = 0;
  start(): void {}
  writeFrame(f: Frame): void {
    this.frames.push(f);
  }
  bufferedBytes(): number {
    return this.queued;
  }
  close(): void {}
}

interface Fixture {
  registry: PathRegistry;
  stream: Stream;
  video: Track;
  pub: FakeSession;
  fast: FakeSession;
  slow: FakeSession;
  slowSink: Sink;
}

/** live/cam1: an RTMP publisher, a fast HLS reader and a slow RTMP reader that drops frames. */
async function fixture(): Promise<Fixture> {
  const registry = new PathRegistry({ resolve: () => DEFAULT_PATH_SETTINGS, authorize: async () => {} });
  const pub = fakeSession(registry, 'pub1', 'rtmp', 'publisher');
  const stream = await registry.addPublisher('live/cam1', pub, { protocol: 'rtmp', ip: '127.0.0.1' });
  const v = new Track({ codec: 'h264', clockRate: 90000 });
  v.setH264Params(new Uint8Array([0x67, 0x42]), new Uint8Array([0x68]), { width: 640, height: 360 });
  const [video] = stream.setTracks([v]) as [Track];
  const fast = fakeSession(registry, 'fast1', 'hls', 'reader');
  fast.reader = await registry.addReader('live/cam1', fast, new Sink(), { protocol: 'hls', ip: '127.0.0.1' });
  const slow = fakeSession(registry, 'slow1', 'rtmp', 'reader');
  const slowSink = new Sink();
  slow.reader = await registry.addReader('live/cam1', slow, slowSink, { protocol: 'rtmp', ip: '127.0.0.1' });
  stream.write(makeFrame(video, 0, 0, true, [new Uint8Array(1000)]));
  slowSink.queued = 64 * 1024 * 1024; // over any queue limit: every further frame is dropped for this reader
  for (let i = 1; i <= 5; i++) stream.write(makeFrame(video, i * 3000, i * 3000, false, [new Uint8Array(200)]));
  pub.bytesIn = 10_000;
  fast.bytesOut = 4000;
  slow.bytesOut = 1500;
  return { registry, stream, video, pub, fast, slow, slowSink };
}

/** One sample of the text format: metric name and its labels. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
}

/** Parses Prometheus text format 0.0.4 strictly enough that a malformed line fails the test. */
function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      if (m[1] === 'TYPE') types.set(m[2]!, m[3]!);
      else helps.add(m[2]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparseable line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/y;
    let lm: RegExpExecArray | null;
    let at = 0;
    while ((lm = re.exec(body))) {
      labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
      at = re.lastIndex;
    }
    assert.equal(at, body.length, `bad labels in: ${line}`);
    // Prometheus reads values with Go's strconv.ParseFloat, which takes NaN in any case (prom-client writes "Nan")
    const value = /^nan$/i.test(m[3]!) ? NaN : Number(m[3]);
    assert.ok(!Number.isNaN(value) || /^nan$/i.test(m[3]!), `bad value in: ${line}`);
    samples.push({ name: m[1]!, labels, value });
  }
  for (const s of samples) {
    const family = types.has(s.name) ? s.name : s.name.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(family), `no # TYPE for ${s.name}`);
    assert.ok(helps.has(family), `no # HELP for ${s.name}`);
  }
  return { types, samples };
}

function value(e: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  const hit = e.samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want);
  return hit?.value;
}

async function start(t: TestContext, registry: PathRegistry): Promise<string> {
  const m = await startMetricsServer({ host: '127.0.0.1', port: 0, registry, bitrateIntervalMs: 40 });
  t.after(() => m.close());
  return `http://127.0.0.1:${m.port}`;
}

async function scrape(base: string): Promise<Exposition> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

test('BitrateSampler: average since creation first, then the rate over each interval', () => {
  const registry = new PathRegistry({ resolve: () => DEFAULT_PATH_SETTINGS, authorize: async () => {} });
  const s = fakeSession(registry, 'a', 'rtmp', 'publisher', 10_000);
  const sampler = new BitrateSampler(registry);
  assert.deepEqual(sampler.session('a'), { bitrateIn: 0, bitrateOut: 0 });
  s.bytesIn = 250_000; // 2 Mbit in the 2 s since creation
  s.bytesOut = 1000;
  sampler.sample(12_000);
  assert.deepEqual(sampler.session('a'), { bitrateIn: 1_000_000, bitrateOut: 4000 });
  s.bytesIn += 375_000; // 3 Mbit in 1 s
  sampler.sample(13_000);
  assert.deepEqual(sampler.session('a'), { bitrateIn: 3_000_000, bitrateOut: 0 });
  sampler.sample(13_000); // no time passed: keep the last rate
  assert.deepEqual(sampler.session('a'), { bitrateIn: 3_000_000, bitrateOut: 0 });
  s.bytesIn -= 10; // a counter that goes back (a bug elsewhere) never gives a negative rate
  sampler.sample(14_000);
  assert.equal(sampler.session('a').bitrateIn, 0);
  registry.removeSession(s, 'done');
  sampler.sample(15_000);
  assert.deepEqual(sampler.session('a'), { bitrateIn: 0, bitrateOut: 0 });
});

test('BitrateSampler: media bitrate of each stream', async () => {
  const f = await fixture();
  const sampler = new BitrateSampler(f.registry);
  sampler.sample(1000);
  assert.equal(sampler.stream(f.stream), 0);
  for (let i = 6; i < 36; i++) f.stream.write(makeFrame(f.video, i * 3000, i * 3000, false, [new Uint8Array(12_500)]));
  sampler.sample(2000);
  assert.equal(sampler.stream(f.stream), 30 * 12_500 * 8);
});

test('/metrics exposes every streamgate metric with the right names, types and labels', async (t) => {
  const f = await fixture();
  const base = await start(t, f.registry);
  const e = await scrape(base);
  const types: [string, string][] = [
    ['streamgate_clients', 'gauge'],
    ['streamgate_publishers', 'gauge'],
    ['streamgate_readers', 'gauge'],
    ['streamgate_paths_ready', 'gauge'],
    ['streamgate_bytes_received_total', 'counter'],
    ['streamgate_bytes_sent_total', 'counter'],
    ['streamgate_session_bytes_received_total', 'counter'],
    ['streamgate_session_bytes_sent_total', 'counter'],
    ['streamgate_session_bitrate_bits', 'gauge'],
    ['streamgate_frames_dropped_total', 'counter'],
    ['process_cpu_seconds_total', 'counter'],
    ['process_resident_memory_bytes', 'gauge'],
    ['nodejs_eventloop_lag_seconds', 'gauge'],
  ];
  for (const [name, type] of types) assert.equal(e.types.get(name), type, name);

  assert.equal(value(e, 'streamgate_clients', { protocol: 'rtmp', path: 'live/cam1', role: 'publisher' }), 1);
  assert.equal(value(e, 'streamgate_clients', { protocol: 'rtmp', path: 'live/cam1', role: 'reader' }), 1);
  assert.equal(value(e, 'streamgate_clients', { protocol: 'hls', path: 'live/cam1', role: 'reader' }), 1);
  assert.equal(value(e, 'streamgate_publishers', { path: 'live/cam1' }), 1);
  assert.equal(value(e, 'streamgate_readers', { path: 'live/cam1', protocol: 'hls' }), 1);
  assert.equal(value(e, 'streamgate_readers', { path: 'live/cam1', protocol: 'rtmp' }), 1);
  assert.equal(value(e, 'streamgate_paths_ready'), 1);
  assert.equal(value(e, 'streamgate_bytes_received_total', { protocol: 'rtmp', path: 'live/cam1' }), 10_000);
  assert.equal(value(e, 'streamgate_bytes_sent_total', { protocol: 'rtmp', path: 'live/cam1' }), 1500);
  assert.equal(value(e, 'streamgate_bytes_sent_total', { protocol: 'hls', path: 'live/cam1' }), 4000);
  assert.equal(
    value(e, 'streamgate_session_bytes_received_total', { id: 'pub1', protocol: 'rtmp', path: 'live/cam1' }),
    10_000,
  );
  assert.equal(value(e, 'streamgate_session_bytes_sent_total', { id: 'fast1', protocol: 'hls', path: 'live/cam1' }), 4000);
  for (const id of ['pub1', 'fast1', 'slow1']) {
    for (const direction of ['in', 'out']) {
      assert.equal(typeof value(e, 'streamgate_session_bitrate_bits', { id, direction }), 'number', `${id} ${direction}`);
    }
  }
  assert.equal(value(e, 'streamgate_frames_dropped_total'), 5);
  assert.equal(value(e, 'streamgate_frames_dropped_total'), f.registry.framesDropped());
  assert.ok((value(e, 'process_resident_memory_bytes') ?? 0) > 1_000_000);
});

test('session bitrate gauge follows the counters', async (t) => {
  const f = await fixture();
  const base = await start(t, f.registry);
  const seen = await feedUntilSeen(
    () => (f.pub.bytesIn += 10_000),
    async () => value(await scrape(base), 'streamgate_session_bitrate_bits', { id: 'pub1', direction: 'in' }) ?? 0,
  );
  assert.ok(seen > 0);
});

test('counters never go back when sessions close or a session learns its path', async (t) => {
  const f = await fixture();
  const base = await start(t, f.registry);
  const before = await scrape(base);
  const counters = (e: Exposition): Sample[] => e.samples.filter((s) => s.name.startsWith('streamgate_') && s.name.endsWith('_total') && !s.name.startsWith('streamgate_session_'));

  f.slow.close('test');
  f.fast.bytesOut += 100;
  f.fast.close('test');
  const late = fakeSession(f.registry, 'late1', 'rtsp', 'reader');
  late.bytesOut = 777; // bytes before the path is known count under path ""
  const mid = await scrape(base);
  assert.equal(value(mid, 'streamgate_bytes_sent_total', { protocol: 'rtsp', path: '' }), 777);
  late.path = 'live/cam1';
  late.bytesOut = 800;
  const after = await scrape(base);

  for (const s of counters(before)) {
    const now = value(after, s.name, s.labels);
    assert.ok(now !== undefined && now >= s.value, `${s.name}${JSON.stringify(s.labels)}: ${s.value} → ${now}`);
  }
  for (const s of counters(mid)) {
    const now = value(after, s.name, s.labels);
    assert.ok(now !== undefined && now >= s.value, `${s.name}${JSON.stringify(s.labels)}: ${s.value} → ${now}`);
  }
  assert.equal(value(after, 'streamgate_bytes_sent_total', { protocol: 'hls', path: 'live/cam1' }), 4100);
  assert.equal(value(after, 'streamgate_bytes_sent_total', { protocol: 'rtmp', path: 'live/cam1' }), 1500);
  assert.equal(value(after, 'streamgate_bytes_sent_total', { protocol: 'rtsp', path: 'live/cam1' }), 800);
  assert.equal(value(after, 'streamgate_frames_dropped_total'), 5);
  // gauges and per-session series follow the live sessions
  assert.equal(value(after, 'streamgate_clients', { protocol: 'hls', path: 'live/cam1', role: 'reader' }), undefined);
  assert.equal(value(after, 'streamgate_readers', { path: 'live/cam1', protocol: 'rtmp' }), undefined);
  assert.equal(value(after, 'streamgate_session_bytes_sent_total', { id: 'fast1', protocol: 'hls', path: 'live/cam1' }), undefined);
  assert.equal(value(after, 'streamgate_session_bitrate_bits', { id: 'slow1', direction: 'out' }), undefined);

  f.pub.close('test');
  const end = await scrape(base);
  assert.equal(value(end, 'streamgate_bytes_received_total', { protocol: 'rtmp', path: 'live/cam1' }), 10_000);
  assert.equal(value(end, 'streamgate_paths_ready'), 0);
});

test('only GET /metrics: other paths 404, other methods 405', async (t) => {
  const f = await fixture();
  const base = await start(t, f.registry);
  assert.equal((await fetch(`${base}/`)).status, 404);
  assert.equal((await fetch(`${base}/metricsx`)).status, 404);
  const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  assert.equal((await fetch(`${base}/metrics/?x=1`)).status, 200);
  assert.equal((await fetch(`${base}/metrics`, { method: 'HEAD' })).status, 200);
});

test('two metrics servers in one process do not clash', async (t) => {
  const a = await fixture();
  const b = await fixture();
  const ea = await scrape(await start(t, a.registry));
  const eb = await scrape(await start(t, b.registry));
  assert.equal(value(ea, 'streamgate_paths_ready'), 1);
  assert.equal(value(eb, 'streamgate_paths_ready'), 1);
});

test('a port already in use rejects the start instead of crashing', async (t) => {
  const f = await fixture();
  const first = await startMetricsServer({ host: '127.0.0.1', port: 0, registry: f.registry });
  t.after(() => first.close());
  await assert.rejects(startMetricsServer({ host: '127.0.0.1', port: first.port, registry: f.registry }), /EADDRINUSE/);
});
