import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startApiServer, type PathJson } from '../../../src/api.js';
import { routeHls, parseDirectives, startHlsServer, type HlsServer } from '../../../src/egress/hls/server.js';
import { AuthError } from '../../../src/errors.js';
import { makeFrame } from '../../../src/media/bus/frame.js';
import { DEFAULT_PATH_SETTINGS, PathRegistry, type PathPolicy } from '../../../src/media/bus/registry.js';
import type { Session } from '../../../src/media/bus/session.js';
import type { Stream } from '../../../src/media/bus/stream.js';
import { Track } from '../../../src/media/bus/track.js';
import { audio44k, video30 } from '../../fixtures/hls/media.js';
import { parseM3u8, TEST_HLS_SERVER, type ParsedManifest } from '../../helpers/hls.js';

const fixture = video30();
const aac = audio44k();

function publisherSession(): Session {
  return { id: 'pub', protocol: 'rtmp', role: 'publisher', path: '', remoteAddr: '127.0.0.1:1', state: 'publish', createdAt: Date.now(), bytesIn: 0, bytesOut: 0, close() {} };
}

/** Publishes the fixtures in a loop: `advance(seconds)` writes that much media at once. */
class Publisher {
  private videoIndex = 0;
  private audioIndex = 0;
  readonly video: Track;
  readonly audio: Track | undefined;
  /** `withAudio: false` publishes other tracks than the default publisher: muxers restart */
  constructor(
    readonly stream: Stream,
    { withAudio = true } = {},
  ) {
    let video = new Track({ codec: 'h264', clockRate: 90000 });
    video.setH264Params(fixture.sps, fixture.pps, { width: 320, height: 240 });
    if (withAudio) {
      const audio = new Track({ codec: 'aac', clockRate: 44100 });
      audio.setAudioConfig(aac.config, 44100, 1);
      [video, this.audio] = stream.setTracks([video, audio]) as [Track, Track];
    } else {
      [video] = stream.setTracks([video]) as [Track];
    }
    this.video = video;
  }
  /** media time written so far, seconds */
  get seconds(): number {
    return this.videoIndex / 30;
  }
  advance(seconds: number): void {
    const until = this.seconds + seconds;
    while (this.videoIndex / 30 < until - 1e-9) {
      const t = this.videoIndex / 30;
      while (this.audio && (this.audioIndex * 1024) / 44100 <= t) {
        const f = aac.frames[this.audioIndex % aac.frames.length]!;
        this.stream.write(makeFrame(this.audio, this.audioIndex * 1024, this.audioIndex * 1024, true, [f]));
        this.audioIndex++;
      }
      const au = fixture.aus[this.videoIndex % fixture.aus.length]!;
      const dts = this.videoIndex * 3000;
      this.stream.write(makeFrame(this.video, dts, dts, au.keyframe, au.units));
      this.videoIndex++;
    }
  }
}

/** Writes `text` on a fresh TCP connection and returns everything the server sends until it closes (or 2 s). */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const sock = connect(port, '127.0.0.1', () => sock.write(text));
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (out += d));
    sock.on('close', () => resolve(out));
    sock.on('error', (err) => (out ? resolve(out) : reject(err)));
    setTimeout(() => sock.destroy(), 2000).unref();
  });
}

async function get(base: string, path: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; text: string; bytes: Buffer; ms: number }> {
  const t0 = Date.now();
  const r = await fetch(base + path, { redirect: 'manual', ...init });
  const bytes = Buffer.from(await r.arrayBuffer());
  return { status: r.status, headers: r.headers, text: bytes.toString('utf8'), bytes, ms: Date.now() - t0 };
}

describe('routeHls / parseDirectives', () => {
  it('routes our URLs and nothing else; traversal never matches', () => {
    assert.deepEqual(routeHls('/live/cam1/index.m3u8'), { path: 'live/cam1', target: { kind: 'multivariant' } });
    assert.deepEqual(routeHls('/live/cam1/stream.m3u8'), { path: 'live/cam1', target: { kind: 'media' } });
    assert.deepEqual(routeHls('/live/cam1/part12.mp4'), { path: 'live/cam1', target: { kind: 'file', name: 'part12.mp4' } });
    assert.deepEqual(routeHls('/live/cam1/'), { path: 'live/cam1', target: { kind: 'page' } });
    assert.deepEqual(routeHls('/cam1'), { redirect: '/cam1/' });
    assert.deepEqual(routeHls('/live/cam1'), { redirect: '/live/cam1/' });
    for (const bad of ['/', '//index.m3u8', '/../etc/passwd', '/live/../x/index.m3u8', '/live/./index.m3u8', '/live/%2e%2e/index.m3u8', '/live%2fcam/index.m3u8', '/live/cam1/x.m3u8?', '/a b/index.m3u8', '/../', 'index.m3u8', '/live/cam1/init.mp4/../../x']) {
      assert.equal(routeHls(bad), null, bad);
    }
    // a name that is no file of ours may be a deeper path: its player page
    assert.deepEqual(routeHls('/live/cam1/seg.mp4'), { redirect: '/live/cam1/seg.mp4/' });
  });

  it('validates delivery directives (rfc8216bis 6.2.5)', () => {
    assert.deepEqual(parseDirectives(new URLSearchParams('_HLS_msn=5&_HLS_part=2&_HLS_skip=YES')), { msn: 5, part: 2, skip: true });
    assert.deepEqual(parseDirectives(new URLSearchParams('_HLS_skip=v2')), { skip: true });
    for (const bad of ['_HLS_part=1', '_HLS_msn=-1', '_HLS_msn=1e3', '_HLS_msn=', '_HLS_msn=1&_HLS_part=x', '_HLS_skip=NO', '_HLS_msn=9999999999999999']) {
      assert.ok('error' in parseDirectives(new URLSearchParams(bad)), bad);
    }
  });
});

describe('HLS server', () => {
  let server: HlsServer;
  let registry: PathRegistry;
  let base: string;
  let pub: Publisher;
  const policy: PathPolicy = {
    resolve: () => ({ ...DEFAULT_PATH_SETTINGS, publisherGraceMs: 0 }),
    authorize: async (r) => {
      if (r.action === 'read' && r.path.startsWith('secure/') && !(r.user === 'viewer' && r.pass === 'pw')) throw new AuthError('bad credentials');
    },
  };

  before(async () => {
    registry = new PathRegistry(policy);
    server = await startHlsServer({ ...TEST_HLS_SERVER, paths: registry, sweepIntervalMs: 100 });
    base = `http://127.0.0.1:${server.port}`;
    const stream = await registry.addPublisher('live/cam1', publisherSession(), { protocol: 'rtmp', ip: '127.0.0.1' });
    pub = new Publisher(stream);
    pub.advance(1); // the GOP cache holds the latest keyframe for the muxer
  });
  after(() => server.close());

  it('404s unknown paths and files, refuses other methods; CORS on every answer', async () => {
    for (const p of ['/nobody/index.m3u8', '/live/cam1/seg0.mp4', '/../x', '/live/%2e%2e/index.m3u8', '/live/cam1/nope.txt']) {
      const r = await get(base, p);
      assert.ok(r.status === 404 || r.status === 301, `${p}: ${r.status}`);
      assert.equal(r.headers.get('access-control-allow-origin'), '*');
    }
    assert.equal((await get(base, '/live/cam1/index.m3u8', { method: 'POST' })).status, 405);
    const pre = await get(base, '/live/cam1/index.m3u8', { method: 'OPTIONS' });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /GET/);
  });

  it('serves the player page and hls.js from our own package', async () => {
    const page = await get(base, '/live/cam1/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(page.text, /<script src="hls.min.js"><\/script>/);
    assert.doesNotMatch(page.text, /https?:\/\/(?!localhost)[a-z]/i, 'no CDN');
    const js = await get(base, '/live/cam1/hls.min.js');
    assert.equal(js.status, 200);
    assert.ok(js.bytes.length > 100_000);
    assert.equal((await get(base, '/live/cam1')).headers.get('location'), '/live/cam1/');
  });

  let sid = '';
  let media: ParsedManifest;
  it('starts a muxer on the first request: multivariant playlist with CODECS, RESOLUTION, BANDWIDTH and a session id', async () => {
    const pending = get(base, '/live/cam1/index.m3u8');
    await new Promise((r) => setTimeout(r, 50));
    pub.advance(2.5); // completes the first segments
    const r = await pending;
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    assert.equal(r.headers.get('cache-control'), 'no-cache');
    const m = parseM3u8(r.text);
    const v = m.playlists![0]!;
    assert.equal(v.attributes.CODECS, 'avc1.64000d,mp4a.40.2');
    assert.deepEqual(v.attributes.RESOLUTION, { width: 320, height: 240 });
    assert.ok(Number(v.attributes.BANDWIDTH) > 0);
    sid = /^stream\.m3u8\?s=([A-Za-z0-9_-]+)$/.exec(v.uri)?.[1] ?? '';
    assert.ok(sid, v.uri);
    assert.ok(server.muxers.has('live/cam1'));
    const session = registry.sessions.get(sid);
    assert.equal(session?.protocol, 'hls');
    assert.equal(session?.path, 'live/cam1');
  });

  it('serves the LL-HLS media playlist, init, parts and segments, counting bytes on the session', async () => {
    const r = await get(base, `/live/cam1/stream.m3u8?s=${sid}`);
    assert.equal(r.status, 200);
    media = parseM3u8(r.text);
    assert.equal(media.serverControl?.canBlockReload, true);
    assert.ok(media.serverControl!.partHoldBack! >= 3 * media.partInf!.partTarget);
    const seg = media.segments[media.segments.length - 1]!;
    assert.match(seg.uri, new RegExp(`^seg\\d+\\.mp4\\?s=${sid}$`));
    const init = await get(base, `/live/cam1/${seg.map!.uri}`);
    assert.equal(init.status, 200);
    assert.equal(init.headers.get('content-type'), 'video/mp4');
    assert.equal(init.bytes.subarray(4, 8).toString(), 'ftyp');
    const s = await get(base, `/live/cam1/${seg.uri}`);
    assert.equal(s.status, 200);
    assert.equal(Number(s.headers.get('content-length')), s.bytes.length);
    assert.match(s.headers.get('cache-control') ?? '', /public, max-age=\d+/);
    const parts = await Promise.all(seg.parts!.map((p) => get(base, `/live/cam1/${p.uri}`)));
    assert.deepEqual(Buffer.concat(parts.map((p) => p.bytes)), s.bytes, 'a segment is its parts');
    const sessions = registry.sessions.size;
    const anonymous = await get(base, `/live/cam1/${seg.uri.replace(/\?.*/, '')}`);
    assert.deepEqual(anonymous.bytes, s.bytes, 'media without a session id is served (a cache in front)');
    assert.equal(registry.sessions.size, sessions, 'but makes no session');
    const head = await get(base, `/live/cam1/${seg.uri}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.bytes.length, 0);
    assert.ok(registry.sessions.get(sid)!.bytesOut >= init.bytes.length + 2 * s.bytes.length);
  });

  it('answers a blocking reload for the next part as soon as it exists (and the hinted part request too)', async () => {
    const last = media.preloadSegment?.parts?.length ?? 0;
    const msn = media.mediaSequence + media.segments.length;
    const hint = media.preloadSegment!.preloadHints![0]!.uri;
    const blocked = get(base, `/live/cam1/stream.m3u8?s=${sid}&_HLS_msn=${msn}&_HLS_part=${last}`);
    const part = get(base, `/live/cam1/${hint}`);
    await new Promise((r) => setTimeout(r, 150));
    const t0 = Date.now();
    pub.advance(0.3);
    const [pl, p] = await Promise.all([blocked, part]);
    assert.equal(pl.status, 200);
    assert.ok(pl.ms >= 150 && Date.now() - t0 < 500, `answered ${Date.now() - t0} ms after the part`);
    const m = parseM3u8(pl.text);
    const hinted = hint.replace(/\?.*/, '');
    assert.ok([...m.segments.flatMap((s) => s.parts ?? []), ...(m.preloadSegment?.parts ?? [])].some((x) => x.uri.startsWith(hinted)), 'the playlist lists the awaited part');
    assert.equal(p.status, 200);
    assert.equal(p.headers.get('content-type'), 'video/mp4');
    assert.equal(p.bytes.subarray(4, 8).toString(), 'moof');
  });

  it('400s malformed and too-far delivery directives; accepts _HLS_skip', async () => {
    for (const q of ['_HLS_part=1', '_HLS_msn=x', '_HLS_msn=1&_HLS_part=-1', '_HLS_msn=100000', '_HLS_skip=1']) {
      const r = await get(base, `/live/cam1/stream.m3u8?s=${sid}&${q}`);
      assert.equal(r.status, 400, q);
    }
    const r = await get(base, `/live/cam1/stream.m3u8?s=${sid}&_HLS_msn=0&_HLS_skip=YES`);
    assert.equal(r.status, 200);
  });

  it('answers 503 when a blocked reload is not satisfied within 3 target durations', async () => {
    const m = parseM3u8((await get(base, `/live/cam1/stream.m3u8?s=${sid}`)).text);
    const msn = m.mediaSequence + m.segments.length + 1;
    const r = await get(base, `/live/cam1/stream.m3u8?s=${sid}&_HLS_msn=${msn}`);
    assert.equal(r.status, 503);
    assert.ok(r.ms >= 2900 && r.ms < 4000, `after ${r.ms} ms`);
  });

  it('holds thousands of blocked requests without stalling, and answers them all on one part', async () => {
    const m = parseM3u8((await get(base, `/live/cam1/stream.m3u8?s=${sid}`)).text);
    const msn = m.mediaSequence + m.segments.length;
    const n = m.preloadSegment?.parts?.length ?? 0;
    const { request, Agent } = await import('node:http');
    const agent = new Agent({ keepAlive: true, maxSockets: 1000 });
    const url = `${base}/live/cam1/stream.m3u8?s=${sid}&_HLS_msn=${msn}&_HLS_part=${n}`;
    const answers = Array.from({ length: 1000 }, () => new Promise<number>((resolve, reject) => {
      request(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      }).on('error', reject).end();
    }));
    const muxer = server.muxers.get('live/cam1')!;
    for (let i = 0; i < 100 && muxer.blocked < 1000; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(muxer.blocked, 1000);
    const t0 = performance.now();
    pub.advance(0.3);
    const spent = performance.now() - t0;
    const statuses = await Promise.all(answers);
    agent.destroy();
    assert.ok(statuses.every((s) => s === 200));
    assert.ok(spent < 1000, `answering 1000 blocked requests took ${spent.toFixed(0)} ms of loop time`);
  });

  it('authorizes new sessions: 401 with a Basic challenge, then access with credentials', async () => {
    const stream = await registry.addPublisher('secure/cam', { ...publisherSession(), id: 'pub2' }, { protocol: 'rtmp', ip: '127.0.0.1' });
    const p2 = new Publisher(stream);
    p2.advance(1);
    const denied = await get(base, '/secure/cam/index.m3u8');
    assert.equal(denied.status, 401);
    assert.match(denied.headers.get('www-authenticate') ?? '', /^Basic realm=/);
    const pending = get(base, '/secure/cam/index.m3u8', { headers: { Authorization: `Basic ${Buffer.from('viewer:pw').toString('base64')}` } });
    await new Promise((r) => setTimeout(r, 50));
    p2.advance(2.5);
    assert.equal((await pending).status, 200);
    assert.equal((await get(base, '/secure/cam/index.m3u8?user=viewer&pass=nope')).status, 401);
    const ok = await get(base, '/secure/cam/index.m3u8?user=viewer&pass=pw');
    assert.equal(ok.status, 200);
    const media = parseM3u8((await get(base, `/secure/cam/${parseM3u8(ok.text).playlists![0]!.uri}`)).text);
    const segUri = media.segments[0]!.uri;
    assert.equal((await get(base, `/secure/cam/${segUri}`)).status, 200, 'the session authorizes its media');
    assert.equal((await get(base, `/secure/cam/${segUri.replace(/\?.*/, '')}`)).status, 401, 'media without a session needs credentials');
  });

  it('a kicked session cannot continue with its URLs', async () => {
    const r = await get(base, '/live/cam1/index.m3u8');
    const kickedSid = /s=([A-Za-z0-9_-]+)/.exec(r.text)![1]!;
    registry.sessions.get(kickedSid)!.close('kicked by API');
    assert.equal(registry.sessions.has(kickedSid), false);
    assert.equal((await get(base, `/live/cam1/stream.m3u8?s=${kickedSid}`)).status, 403);
  });

  it('CORS and no-cache on every error, including requests the HTTP parser refuses', async () => {
    const checks: [string, RequestInit, number][] = [
      [`/live/cam1/stream.m3u8?s=${sid}&_HLS_msn=x`, {}, 400],
      ['/nobody/index.m3u8', {}, 404],
      ['/live/cam1/part99999999.mp4', {}, 404],
      ['/live/cam1/index.m3u8', { method: 'PUT' }, 405],
      ['/secure/cam/index.m3u8', {}, 401],
    ];
    for (const [path, init, status] of checks) {
      const r = await get(base, path, init);
      assert.equal(r.status, status, path);
      assert.equal(r.headers.get('access-control-allow-origin'), '*', path);
      assert.equal(r.headers.get('cache-control'), 'no-cache', path);
    }
    for (const bad of ['GET /live/cam1/index.m3u8 HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n', 'BLAH\r\n\r\n', `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nX: ${'b'.repeat(20_000)}\r\n\r\n`]) {
      const answer = await raw(server.port, bad);
      assert.match(answer, /^HTTP\/1\.1 4(00|31) /, JSON.stringify(answer.slice(0, 80)));
      assert.match(answer, /\r\nAccess-Control-Allow-Origin: \*\r\n/);
    }
  });

  it('never leaves the served tree: dot segments and encoded traversal, sent as raw request lines', async () => {
    for (const target of ['/../../../../etc/passwd', '/live/cam1/../../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/live/cam1/%2e%2e%2f%2e%2e%2fpackage.json', '/live/cam1/..%2f..%2fsrc%2fmain.ts', '/live/cam1/%252e%252e/x', '/live/cam1/hls.min.js/../../../../etc/passwd', '//etc/passwd', '/live/cam1/player.html', '/src/egress/hls/player.html']) {
      const answer = await raw(server.port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(answer)?.[1]);
      assert.ok(status === 404 || status === 301 || (status === 200 && /<title>/.test(answer)), `${target}: ${status}`);
      assert.doesNotMatch(answer, /root:|"name": "streamgate"|import /, target);
      if (status === 301) assert.match(answer, /\r\nLocation: \/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*\/\r\n/, `${target} redirects inside the tree`);
    }
  });

  it('answers _HLS_skip=YES with a delta update: EXT-X-SKIP replaces the oldest segments', async () => {
    pub.advance(8); // a playlist longer than CAN-SKIP-UNTIL (6 target durations)
    const fullText = (await get(base, `/live/cam1/stream.m3u8?s=${sid}`)).text;
    const full = parseM3u8(fullText);
    const last = full.mediaSequence + full.segments.length - 1;
    const r = await get(base, `/live/cam1/stream.m3u8?s=${sid}&_HLS_msn=${last}&_HLS_skip=YES`);
    assert.equal(r.status, 200);
    assert.match(r.text, /^#EXTM3U\n#EXT-X-VERSION:9\n/);
    const delta = parseM3u8(r.text);
    const skipped = delta.skip?.skippedSegments ?? 0;
    assert.ok(skipped >= 1, r.text);
    assert.equal(delta.mediaSequence, full.mediaSequence);
    assert.deepEqual(delta.segments.map((x) => x.uri), full.segments.slice(skipped).map((x) => x.uri));
    assert.doesNotMatch(fullText, /EXT-X-SKIP/);
  });

  it('lists the HLS clients as the path\'s readers in the API (not the muxer)', async () => {
    const api = await startApiServer({ host: '127.0.0.1', port: 0, registry, isHealthy: () => true, bitrateIntervalMs: 100 });
    try {
      const other = /s=([A-Za-z0-9_-]+)/.exec((await get(base, '/live/cam1/index.m3u8')).text)![1]!;
      const clients = [...registry.sessions.values()].filter((x) => x.protocol === 'hls' && x.path === 'live/cam1').map((x) => x.id);
      assert.ok(clients.includes(sid) && clients.includes(other));
      const path = (await (await fetch(`http://127.0.0.1:${api.port}/v1/paths/live/cam1`)).json()) as PathJson;
      assert.deepEqual(path.readers.map((x) => x.id).sort(), [...clients].sort());
      assert.equal(path.readerCount, clients.length);
      assert.ok(path.readers.every((x) => x.protocol === 'hls' && x.remoteAddr.startsWith('127.0.0.1:')));
      assert.ok(path.bytesOut >= registry.sessions.get(sid)!.bytesOut);
      const list = (await (await fetch(`http://127.0.0.1:${api.port}/v1/paths`)).json()) as { items: PathJson[] };
      assert.equal(list.items.find((x) => x.name === 'live/cam1')?.readerCount, clients.length);
      registry.sessions.get(other)!.close('kicked by API');
      const afterKick = (await (await fetch(`http://127.0.0.1:${api.port}/v1/paths/live/cam1`)).json()) as PathJson;
      assert.equal(afterKick.readerCount, clients.length - 1);
      assert.equal(registry.paths.get('live/cam1')!.readers.size, 1, 'still one bus reader: the muxer');
    } finally {
      await api.close();
    }
  });

  it('a new publisher with other tracks continues the playlist: sequence numbers go on after EXT-X-DISCONTINUITY', async () => {
    const stream = await registry.addPublisher('live/switch', { ...publisherSession(), id: 'pub3' }, { protocol: 'rtmp', ip: '127.0.0.1' });
    const first = new Publisher(stream);
    first.advance(1);
    const pending = get(base, '/live/switch/index.m3u8');
    await new Promise((r) => setTimeout(r, 50));
    first.advance(3);
    const mediaUri = parseM3u8((await pending).text).playlists![0]!.uri;
    const beforeText = (await get(base, `/live/switch/${mediaUri}`)).text;
    const before = parseM3u8(beforeText);
    const oldSeg = before.segments[before.segments.length - 1]!;
    const oldBytes = (await get(base, `/live/switch/${oldSeg.uri}`)).bytes;
    // a player blocked on the next part when the publisher changes
    const nextMsn = before.mediaSequence + before.segments.length;
    const blocked = get(base, `/live/switch/${mediaUri}&_HLS_msn=${nextMsn + 1}&_HLS_part=0`);
    await new Promise((r) => setTimeout(r, 50));
    const second = new Publisher(stream, { withAudio: false });
    second.advance(2.5);
    const woke = await blocked;
    assert.equal(woke.status, 200);
    const afterText = (await get(base, `/live/switch/${mediaUri}`)).text;
    const after = parseM3u8(afterText);
    assert.ok(after.mediaSequence >= before.mediaSequence, 'the media sequence never goes back');
    assert.equal(after.targetDuration, before.targetDuration);
    assert.equal(after.partInf?.partTarget, before.partInf?.partTarget);
    assert.match(afterText, /#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init1\.mp4/);
    assert.ok(after.segments.some((x) => x.uri === oldSeg.uri), 'the old segments are still listed');
    assert.deepEqual((await get(base, `/live/switch/${oldSeg.uri}`)).bytes, oldBytes, 'with the same bytes');
    const multi = parseM3u8((await get(base, '/live/switch/index.m3u8')).text);
    assert.equal(multi.playlists![0]!.attributes.CODECS, 'avc1.64000d', 'the variant now describes the new tracks');
  });

  it('stops the muxer after muxerCloseAfter without requests, and when the publisher leaves', async () => {
    const reg = new PathRegistry(policy);
    const s2 = await startHlsServer({ host: '127.0.0.1', port: 0, paths: reg, variant: 'mpegts', segmentMinDurationMs: 1000, partDurationMs: 200, segmentCount: 3, muxerCloseAfterMs: 300, sweepIntervalMs: 50 });
    try {
      const b2 = `http://127.0.0.1:${s2.port}`;
      const publisher = publisherSession();
      const stream = await reg.addPublisher('live/ts', publisher, { protocol: 'rtmp', ip: '127.0.0.1' });
      const p = new Publisher(stream);
      p.advance(1);
      const pending = get(b2, '/live/ts/index.m3u8');
      await new Promise((r) => setTimeout(r, 50));
      p.advance(2.5);
      const multi = await pending;
      assert.equal(multi.status, 200);
      const mediaText = (await get(b2, `/live/ts/${parseM3u8(multi.text).playlists![0]!.uri}`)).text;
      assert.doesNotMatch(mediaText, /EXT-X-PART|EXT-X-MAP/);
      const seg = parseM3u8(mediaText).segments[0]!;
      const ts = await get(b2, `/live/ts/${seg.uri}`);
      assert.equal(ts.headers.get('content-type'), 'video/mp2t');
      assert.equal(ts.bytes[0], 0x47);
      assert.equal(reg.paths.get('live/ts')?.readers.size, 1, 'the muxer reads the stream');
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(s2.muxers.size, 0, 'idle muxer stopped');
      assert.equal(reg.paths.get('live/ts')?.readers.size, 0);
      // restarted by the next request; stopped with its publisher
      const before = parseM3u8(mediaText);
      const again = get(b2, '/live/ts/index.m3u8');
      await new Promise((r) => setTimeout(r, 50));
      p.advance(2.5);
      const restarted = await again;
      assert.equal(restarted.status, 200);
      // the new muxer continues the numbering of the last one (a player may still hold its playlist)
      const mediaAgain = (await get(b2, `/live/ts/${parseM3u8(restarted.text).playlists![0]!.uri}`)).text;
      const after = parseM3u8(mediaAgain);
      assert.ok(after.mediaSequence >= before.mediaSequence + before.segments.length, `${after.mediaSequence} after ${before.mediaSequence}+${before.segments.length}`);
      assert.match(mediaAgain, /#EXT-X-MEDIA-SEQUENCE:\d+\n#EXT-X-DISCONTINUITY\n/);
      reg.removePublisher(publisher);
      assert.equal(s2.muxers.size, 0);
      assert.equal((await get(b2, '/live/ts/index.m3u8')).status, 404);
    } finally {
      await s2.close();
    }
  });
});
