import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { startApiServer, type RecordingInfo } from '../src/api.js';
import { makeFrame, type Frame } from '../src/media/bus/frame.js';
import type { FrameSink } from '../src/media/bus/reader.js';
import { DEFAULT_PATH_SETTINGS, PathRegistry, type PathPolicy } from '../src/media/bus/registry.js';
import type { Protocol, Role } from '../src/media/bus/session.js';
import type { Stream } from '../src/media/bus/stream.js';
import { Track } from '../src/media/bus/track.js';
import { CHROMIUM_PATH, HEADLESS_CHROMIUM_ARGS } from './helpers/chromium.js';
import { fakeSession as makeFakeSession, feedUntilSeen, type FakeSession } from './helpers/sessions.js';

const PULL_URL = 'rtsp://admin:hunter2@192.0.2.10:554/stream1';

/** A session as a protocol would register it; close() detaches it from the registry like a real one. */
function fakeSession(
  registry: PathRegistry,
  id: string,
  protocol: Protocol,
  role: Role,
  remoteAddr: string,
  stats?: Record<string, unknown>,
): FakeSession {
  return makeFakeSession(registry, id, protocol, role, { remoteAddr, createdAt: Date.UTC(2026, 0, 2, 3, 4, 5, 678), ...(stats ? { stats } : {}) });
}

/** A reader sink that records what it got. */
class RecordingSink implements FrameSink {
  frames: Frame[] = [];
  closed: string | undefined;
  start(): void {}
  writeFrame(f: Frame): void {
    this.frames.push(f);
  }
  bufferedBytes(): number {
    return 0;
  }
  close(reason: string): void {
    this.closed = reason;
  }
}

interface Fixture {
  registry: PathRegistry;
  stream: Stream;
  pub: FakeSession;
  rd: FakeSession;
  src: FakeSession;
  sink: RecordingSink;
}

/**
 * live/cam1: an RTMP publisher with H.264 1280x720 High + AAC 44.1 kHz stereo, and one HLS reader.
 * pull/cam: an RTSP pull source whose URL carries a password.
 */
async function fixture(): Promise<Fixture> {
  const policy: PathPolicy = {
    resolve: (p) => (p === 'pull/cam' ? { ...DEFAULT_PATH_SETTINGS, source: PULL_URL } : DEFAULT_PATH_SETTINGS),
    authorize: async () => {},
  };
  const registry = new PathRegistry(policy);
  const req = { protocol: 'rtmp' as const, ip: '127.0.0.1' };
  const pub = fakeSession(registry, 'pub1', 'rtmp', 'publisher', '127.0.0.1:50001', { rttMs: 12, nested: { n: 1n } });
  const stream = await registry.addPublisher('live/cam1', pub, req);
  const v = new Track({ codec: 'h264', clockRate: 90000 });
  v.setH264Params(new Uint8Array([0x67, 0x64, 0x00, 0x1f]), new Uint8Array([0x68, 0xee]), {
    width: 1280,
    height: 720,
    profile: 'High',
  });
  const a = new Track({ codec: 'aac', clockRate: 44100 });
  a.setAudioConfig(new Uint8Array([0x12, 0x10]), 44100, 2);
  const [tv, ta] = stream.setTracks([v, a]) as [Track, Track];
  stream.write(makeFrame(tv, 0, 0, true, [new Uint8Array(1000)]));
  stream.write(makeFrame(ta, 0, 0, true, [new Uint8Array(100)]));

  const rd = fakeSession(registry, 'rd1', 'hls', 'reader', '127.0.0.1:50002');
  const sink = new RecordingSink();
  rd.reader = await registry.addReader('live/cam1', rd, sink, { protocol: 'hls', ip: '127.0.0.1' });
  stream.write(makeFrame(tv, 3000, 3000, false, [new Uint8Array(500)]));
  stream.write(makeFrame(ta, 1470, 1470, true, [new Uint8Array(100)]));
  pub.bytesIn = 5000;
  rd.bytesOut = 3000;

  const src = fakeSession(registry, 'src1', 'source', 'publisher', PULL_URL);
  await registry.addPublisher('pull/cam', src, { protocol: 'source', ip: '' });
  return { registry, stream, pub, rd, src, sink };
}

async function start(
  t: TestContext,
  registry: PathRegistry,
  extra: { healthy?: () => boolean; recordings?: () => RecordingInfo[] } = {},
): Promise<string> {
  const opts = {
    host: '127.0.0.1',
    port: 0,
    registry,
    isHealthy: extra.healthy ?? (() => true),
    bitrateIntervalMs: 40,
    ...(extra.recordings ? { recordings: extra.recordings } : {}),
  };
  const api = await startApiServer(opts);
  t.after(() => api.close());
  return `http://127.0.0.1:${api.port}`;
}

async function getJson(url: string, init?: RequestInit): Promise<{ status: number; body: unknown; res: Response }> {
  const res = await fetch(url, init);
  const text = await res.text();
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/, `${url}: JSON content type`);
  return { status: res.status, body: JSON.parse(text) as unknown, res };
}

test('GET /health follows isHealthy()', async (t) => {
  const { registry } = await fixture();
  let healthy = true;
  const base = await start(t, registry, { healthy: () => healthy });
  let r = await getJson(`${base}/health`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { status: 'ok' });
  assert.equal(r.res.headers.get('access-control-allow-origin'), '*');
  healthy = false;
  r = await getJson(`${base}/health`);
  assert.equal(r.status, 503);
  assert.deepEqual(r.body, { status: 'unavailable' });
  const head = await fetch(`${base}/health`, { method: 'HEAD' });
  assert.equal(head.status, 503);
  assert.equal(await head.text(), '');
});

test('GET /v1/paths lists every path with source, tracks, readers and byte counts', async (t) => {
  const f = await fixture();
  const base = await start(t, f.registry);
  const r = await getJson(`${base}/v1/paths`);
  assert.equal(r.status, 200);
  const body = r.body as { items: Record<string, unknown>[] };
  assert.deepEqual(
    body.items.map((p) => p['name']),
    ['live/cam1', 'pull/cam'],
  );
  const cam = body.items[0]!;
  assert.deepEqual(cam['source'], { type: 'rtmpPublisher', id: 'pub1', remoteAddr: '127.0.0.1:50001' });
  assert.equal(cam['ready'], true);
  assert.deepEqual(cam['tracks'], [
    { codec: 'h264', width: 1280, height: 720, profile: 'High', sampleRate: null, channels: null },
    { codec: 'aac', width: null, height: null, profile: null, sampleRate: 44100, channels: 2 },
  ]);
  assert.equal(cam['readerCount'], 1);
  assert.deepEqual(cam['readers'], [{ id: 'rd1', protocol: 'hls', remoteAddr: '127.0.0.1:50002' }]);
  assert.equal(cam['bytesIn'], 1700);
  assert.equal(cam['bytesIn'], f.stream.bytesIn);
  const sent = f.sink.frames.reduce((n, fr) => n + fr.byteLength, 0);
  assert.ok(sent > 0);
  assert.equal(cam['bytesOut'], sent);
  assert.equal(typeof cam['bitrateIn'], 'number');
  assert.equal(typeof cam['bitrateOut'], 'number');
  f.registry.requestKeyframe('live/cam1', 'test'); // an RTMP publisher: it cannot act on it
  const again = (await getJson(`${base}/v1/paths/live/cam1`)).body as Record<string, unknown>;
  assert.deepEqual(again['keyframeRequests'], { requested: 1, passedUp: 0, unserved: 1 });

  const pull = body.items[1]!;
  assert.deepEqual(pull['source'], {
    type: 'rtspSource',
    id: 'src1',
    remoteAddr: 'rtsp://admin:***@192.0.2.10:554/stream1',
    url: 'rtsp://admin:***@192.0.2.10:554/stream1',
  });
  assert.equal(pull['ready'], false);
  assert.deepEqual(pull['tracks'], []);
});

test('the password of a pull URL never appears in the API', async (t) => {
  const f = await fixture();
  const base = await start(t, f.registry);
  for (const url of ['/v1/paths', '/v1/paths/pull/cam', '/v1/sessions', '/v1/sessions/src1']) {
    const text = await (await fetch(base + url)).text();
    assert.ok(!text.includes('hunter2'), `${url} leaks the password: ${text}`);
    assert.ok(text.includes('admin:***@'), url);
  }
});

test('a pull source that is still connecting shows its redacted URL and no session', async (t) => {
  const policy: PathPolicy = {
    resolve: () => ({ ...DEFAULT_PATH_SETTINGS, source: 'rtmps://u:secret@192.0.2.11/app/key' }),
    authorize: async () => {},
  };
  const registry = new PathRegistry(policy, () => ({ close() {} }));
  registry.startStaticSources(['edge/cam']);
  const base = await start(t, registry);
  const r = await getJson(`${base}/v1/paths/edge/cam`);
  assert.equal(r.status, 200);
  const p = r.body as Record<string, unknown>;
  assert.deepEqual(p['source'], { type: 'rtmpSource', id: null, remoteAddr: null, url: 'rtmps://u:***@192.0.2.11/app/key' });
  assert.equal(p['ready'], false);
  assert.equal(p['readerCount'], 0);
});

test('GET /v1/paths/{path}: slashes, URL-encoding, trailing slash, unknown path', async (t) => {
  const f = await fixture();
  const base = await start(t, f.registry);
  for (const p of ['/v1/paths/live/cam1', '/v1/paths/live%2Fcam1', '/v1/paths/live/cam1/', '/v1/paths/%6Cive/cam1?x=1']) {
    const r = await getJson(base + p);
    assert.equal(r.status, 200, p);
    assert.equal((r.body as { name: string }).name, 'live/cam1', p);
  }
  for (const p of ['/v1/paths/live/cam2', '/v1/paths/live', '/v1/paths/live/cam1/extra']) {
    const r = await getJson(base + p);
    assert.equal(r.status, 404, p);
    assert.match((r.body as { error: string }).error, /not found/);
  }
});

test('GET /v1/sessions: every session with counters, ISO createdAt and stats()', async (t) => {
  const f = await fixture();
  const base = await start(t, f.registry);
  const r = await getJson(`${base}/v1/sessions`);
  assert.equal(r.status, 200);
  const items = (r.body as { items: Record<string, unknown>[] }).items;
  assert.deepEqual(
    items.map((s) => s['id']),
    ['pub1', 'rd1', 'src1'],
  );
  const pub = items[0]!;
  assert.deepEqual(
    { ...pub, bitrateIn: 0, bitrateOut: 0 },
    {
      id: 'pub1',
      protocol: 'rtmp',
      role: 'publisher',
      path: 'live/cam1',
      remoteAddr: '127.0.0.1:50001',
      state: 'publish',
      createdAt: '2026-01-02T03:04:05.678Z',
      bytesIn: 5000,
      bytesOut: 0,
      bitrateIn: 0,
      bitrateOut: 0,
      stats: { rttMs: 12, nested: { n: 1 } },
    },
  );
  assert.equal(typeof pub['bitrateIn'], 'number');
  assert.deepEqual(items[1]!['stats'], {});
  assert.equal(items[1]!['bytesOut'], 3000);

  const one = await getJson(`${base}/v1/sessions/rd1`);
  assert.equal(one.status, 200);
  assert.equal((one.body as { path: string }).path, 'live/cam1');
  assert.equal((await getJson(`${base}/v1/sessions/nope`)).status, 404);
});

test('bitrate "now" follows the byte counters', async (t) => {
  const f = await fixture();
  const base = await start(t, f.registry);
  const seen = await feedUntilSeen(
    () => (f.pub.bytesIn += 10_000),
    async () => ((await getJson(`${base}/v1/sessions/pub1`)).body as { bitrateIn: number }).bitrateIn,
  );
  assert.ok(seen > 0, 'bitrateIn became positive');
});

test('DELETE /v1/sessions/{id} kicks the session; 404 afterwards', async (t) => {
  const f = await fixture();
  const base = await start(t, f.registry);
  const r = await getJson(`${base}/v1/sessions/rd1`, { method: 'DELETE' });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { id: 'rd1', kicked: true });
  assert.deepEqual(f.rd.closedWith, ['kicked by API']);
  assert.equal(f.sink.closed, 'kicked by API');
  assert.equal((await getJson(`${base}/v1/sessions/rd1`)).status, 404);
  assert.equal((await getJson(`${base}/v1/sessions/rd1`, { method: 'DELETE' })).status, 404);
  const path = (await getJson(`${base}/v1/paths/live/cam1`)).body as { readerCount: number };
  assert.equal(path.readerCount, 0);
  assert.deepEqual(f.pub.closedWith, []);
});

test('GET /v1/recordings: empty without a recorder, the recorder\'s list otherwise', async (t) => {
  const f = await fixture();
  const base = await start(t, f.registry);
  assert.deepEqual((await getJson(`${base}/v1/recordings`)).body, { items: [] });
  const recs: RecordingInfo[] = [
    { path: 'live/cam1', segments: [{ start: '2026-01-02T03:04:05.000Z', durationMs: 60_000, bytes: 1234, url: '/rec/1.mp4' }] },
  ];
  const base2 = await start(t, f.registry, { recordings: () => recs });
  assert.deepEqual((await getJson(`${base2}/v1/recordings`)).body, { items: recs });
});

test('wrong methods 405 with Allow, unknown routes 404, CORS preflight 204', async (t) => {
  const f = await fixture();
  const base = await start(t, f.registry);
  for (const [method, url, allow] of [
    ['POST', '/v1/paths', 'GET, HEAD, OPTIONS'],
    ['DELETE', '/v1/paths/live/cam1', 'GET, HEAD, OPTIONS'],
    ['PUT', '/v1/sessions/rd1', 'GET, DELETE, HEAD, OPTIONS'],
    ['PATCH', '/health', 'GET, HEAD, OPTIONS'],
    ['POST', '/', 'GET, HEAD, OPTIONS'],
  ] as const) {
    const r = await getJson(base + url, { method, body: method === 'PATCH' || method === 'POST' ? '{}' : null });
    assert.equal(r.status, 405, `${method} ${url}`);
    assert.equal(r.res.headers.get('allow'), allow, `${method} ${url}`);
    assert.match((r.body as { error: string }).error, /not allowed/);
  }
  assert.deepEqual(f.rd.closedWith, []);
  for (const url of ['/v2/paths', '/v1/pathsX', '/v1/sessions/rd1/extra', '/favicon.ico', '/v1']) {
    const r = await getJson(base + url);
    assert.equal(r.status, 404, url);
    assert.deepEqual(r.body, { error: 'not found' });
  }
  const pre = await fetch(`${base}/v1/sessions/rd1`, {
    method: 'OPTIONS',
    headers: { Origin: 'http://example.test', 'Access-Control-Request-Method': 'DELETE' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  assert.match(pre.headers.get('access-control-allow-methods') ?? '', /DELETE/);
});

/** Sends raw bytes and returns the status line of the answer. */
function rawRequest(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let got = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (got += d));
    sock.on('end', () => resolve(got.split('\r\n', 1)[0] ?? ''));
    sock.on('error', reject);
    sock.end(bytes);
  });
}

test('malformed URLs and requests get 400 and the server keeps serving', async (t) => {
  const f = await fixture();
  const base = await start(t, f.registry);
  const port = Number(new URL(base).port);
  for (const url of ['/v1/paths/%E0%A4%A', '/v1/paths/%', '/v1/sessions/%zz']) {
    const line = await rawRequest(port, `GET ${url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.match(line, /^HTTP\/1\.1 400/, url);
  }
  assert.match(await rawRequest(port, 'HELLO THERE\r\n\r\n'), /^HTTP\/1\.1 400/);
  assert.match(await rawRequest(port, `GET /v1/paths HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n`), /^HTTP\/1\.1 400/);
  assert.equal((await getJson(`${base}/v1/paths`)).status, 200);
});

test('GET / and /dashboard serve a self-contained page', async (t) => {
  const f = await fixture();
  const base = await start(t, f.registry);
  for (const url of ['/', '/dashboard', '/dashboard/']) {
    const res = await fetch(base + url);
    assert.equal(res.status, 200, url);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const html = await res.text();
    assert.match(html, /\/v1\/paths/);
    assert.match(html, /\/v1\/sessions/);
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=|https?:\/\//, 'nothing loaded from elsewhere');
  }
});

test('the dashboard renders sessions in Chromium and its kick button works', { timeout: 60_000 }, async (t) => {
  if (!existsSync(CHROMIUM_PATH)) {
    t.skip(`${CHROMIUM_PATH} not installed`);
    return;
  }
  const { chromium } = await import('playwright-core');
  const f = await fixture();
  const base = await start(t, f.registry);
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...HEADLESS_CHROMIUM_ARGS],
  });
  t.after(() => browser.close());
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(`${base}/`);
  const row = page.locator('tr[data-session-id="rd1"]');
  await row.waitFor({ timeout: 15_000 });
  assert.match(await row.innerText(), /hls/);
  const pathRow = page.locator('tr[data-path="live/cam1"]');
  assert.match(await pathRow.innerText(), /1280x720/);
  assert.match(await page.locator('#health').innerText(), /healthy/);
  await row.locator('button.kick').click();
  await row.waitFor({ state: 'detached', timeout: 15_000 });
  assert.deepEqual(f.rd.closedWith, ['kicked by API']);
  assert.deepEqual(errors, []);
});
