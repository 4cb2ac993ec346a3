import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { routeHls, parseDirectives, startHlsServer, type HlsServer } from '../../../src/egress/hls/server.js';
import { AuthError } from '../../../src/errors.js';
import { makeFrame } from '../../../src/media/bus/frame.js';
import { DEFAULT_PATH_SETTINGS, PathRegistry, type PathPolicy } from '../../../src/media/bus/registry.js';
import type { Session } from '../../../src/media/bus/session.js';
import type { Stream } from '../../../src/media/bus/stream.js';
import { Track } from '../../../src/media/bus/track.js';
import { audio44k, video30 } from '../../fixtures/hls/media.js';

interface ParsedManifest {
  targetDuration: number;
  mediaSequence: number;
  segments: { uri: string; duration: number; map?: { uri: string }; parts?: { uri: string; duration: number }[] }[];
  partInf?: { partTarget: number };
  serverControl?: { canBlockReload?: boolean; partHoldBack?: number };
  preloadSegment?: { parts?: { uri: string }[]; preloadHints?: { uri: string }[] };
  playlists?: { uri: string; attributes: Record<string, unknown> }[];
  skip?: { skippedSegments: number };
}
const require = createRequire(import.meta.url);
const { Parser } = require('m3u8-parser') as { Parser: new () => { push(s: string): void; end(): void; manifest: ParsedManifest } };
const parse = (text: string): ParsedManifest => {
  const p = new Parser();
  p.push(text);
  p.end();
  return p.manifest;
};

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
  readonly audio: Track;
  constructor(readonly stream: Stream) {
    this.video = new Track({ codec: 'h264', clockRate: 90000 });
    this.video.setH264Params(fixture.sps, fixture.pps, { width: 320, height: 240 });
    this.audio = new Track({ codec: 'aac', clockRate: 44100 });
    this.audio.setAudioConfig(aac.config, 44100, 1);
    [this.video, this.audio] = stream.setTracks([this.video, this.audio]) as [Track, Track];
  }
  /** media time written so far, seconds */
  get seconds(): number {
    return this.videoIndex / 30;
  }
  advance(seconds: number): void {
    const until = this.seconds + seconds;
    while (this.videoIndex / 30 < until - 1e-9) {
      const t = this.videoIndex / 30;
      while ((this.audioIndex * 1024) / 44100 <= t) {
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
    server = await startHlsServer({
      host: '127.0.0.1',
      port: 0,
      paths: registry,
      variant: 'lowLatency',
      segmentMinDurationMs: 1000,
      partDurationMs: 200,
      segmentCount: 7,
      muxerCloseAfterMs: 60_000,
      sweepIntervalMs: 100,
    });
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
    const m = parse(r.text);
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
    media = parse(r.text);
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
    const m = parse(pl.text);
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
    const m = parse((await get(base, `/live/cam1/stream.m3u8?s=${sid}`)).text);
    const msn = m.mediaSequence + m.segments.length + 1;
    const r = await get(base, `/live/cam1/stream.m3u8?s=${sid}&_HLS_msn=${msn}`);
    assert.equal(r.status, 503);
    assert.ok(r.ms >= 2900 && r.ms < 4000, `after ${r.ms} ms`);
  });

  it('holds thousands of blocked requests without stalling, and answers them all on one part', async () => {
    const m = parse((await get(base, `/live/cam1/stream.m3u8?s=${sid}`)).text);
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
    assert.equal((await get(base, '/secure/cam/index.m3u8?user=viewer&pass=pw')).status, 200);
  });

  it('a kicked session cannot continue with its URLs', async () => {
    const r = await get(base, '/live/cam1/index.m3u8');
    const kickedSid = /s=([A-Za-z0-9_-]+)/.exec(r.text)![1]!;
    registry.sessions.get(kickedSid)!.close('kicked by API');
    assert.equal(registry.sessions.has(kickedSid), false);
    assert.equal((await get(base, `/live/cam1/stream.m3u8?s=${kickedSid}`)).status, 403);
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
      const mediaText = (await get(b2, `/live/ts/${parse(multi.text).playlists![0]!.uri}`)).text;
      assert.doesNotMatch(mediaText, /EXT-X-PART|EXT-X-MAP/);
      const seg = parse(mediaText).segments[0]!;
      const ts = await get(b2, `/live/ts/${seg.uri}`);
      assert.equal(ts.headers.get('content-type'), 'video/mp2t');
      assert.equal(ts.bytes[0], 0x47);
      assert.equal(reg.paths.get('live/ts')?.readers.size, 1, 'the muxer reads the stream');
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(s2.muxers.size, 0, 'idle muxer stopped');
      assert.equal(reg.paths.get('live/ts')?.readers.size, 0);
      // restarted by the next request; stopped with its publisher
      const again = get(b2, '/live/ts/index.m3u8');
      await new Promise((r) => setTimeout(r, 50));
      p.advance(2.5);
      assert.equal((await again).status, 200);
      reg.removePublisher(publisher);
      assert.equal(s2.muxers.size, 0);
      assert.equal((await get(b2, '/live/ts/index.m3u8')).status, 404);
    } finally {
      await s2.close();
    }
  });
});
