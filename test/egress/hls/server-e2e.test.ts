/**
 * End to end: ffmpeg publishes RTMP → frame bus → HLS server; ffprobe/ffmpeg, m3u8-parser and hls.js in headless
 * Chromium read it back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { startHlsServer, type HlsServer } from '../../../src/egress/hls/server.js';
import { RtmpPlaySink } from '../../../src/egress/rtmp/from-bus.js';
import { startRtmpServer, type RtmpServer } from '../../../src/ingest/rtmp/server.js';
import { DEFAULT_PATH_SETTINGS, PathRegistry } from '../../../src/media/bus/registry.js';
import { ffmpegPublish, hasCommand, run, waitFor } from '../../helpers/media-tools.js';
import { CHROMIUM_PATH } from '../../helpers/chromium.js';
import { parseM3u8, TEST_HLS_SERVER } from '../../helpers/hls.js';

const canRun = hasCommand('ffmpeg') && hasCommand('ffprobe');

describe('HLS end to end (ffmpeg RTMP publish)', { skip: !canRun && 'ffmpeg/ffprobe not installed', timeout: 120_000 }, () => {
  let registry: PathRegistry;
  let rtmp: RtmpServer;
  let hls: HlsServer;
  let publisher: ChildProcess;
  let base: string;
  let mediaUri = '';

  before(async () => {
    registry = new PathRegistry({ resolve: () => DEFAULT_PATH_SETTINGS, authorize: async () => {} });
    rtmp = await startRtmpServer({ host: '127.0.0.1', port: 0, paths: registry, createPlaySink: (p) => new RtmpPlaySink(p), readTimeoutMs: 10_000 });
    hls = await startHlsServer({ ...TEST_HLS_SERVER, paths: registry });
    base = `http://127.0.0.1:${hls.port}/live/e2e`;
    publisher = ffmpegPublish(`rtmp://127.0.0.1:${rtmp.port}/live/e2e`, { size: '640x360', rate: 30, gop: 30 });
    await waitFor(() => registry.paths.get('live/e2e')?.stream.ready, 15_000);
    const r = await fetch(`${base}/index.m3u8`);
    assert.equal(r.status, 200);
    mediaUri = parseM3u8(await r.text()).playlists![0]!.uri;
  });

  after(async () => {
    publisher?.kill('SIGKILL');
    await hls?.close();
    await rtmp?.close();
  });

  it('serves playlists that parse with m3u8-parser and obey the LL-HLS rules', async () => {
    const m = parseM3u8(await (await fetch(`${base}/${mediaUri}`)).text());
    assert.equal(m.targetDuration, 1);
    assert.equal(m.serverControl?.canBlockReload, true);
    const target = m.partInf!.partTarget;
    assert.ok(target > 0.15 && target < 0.3, `PART-TARGET ${target}`);
    assert.ok(m.serverControl!.partHoldBack! >= 3 * target - 1e-9);
    assert.ok(m.serverControl!.canSkipUntil! >= 6 * m.targetDuration);
    for (const s of m.segments) assert.ok(Math.round(s.duration) <= m.targetDuration, `EXTINF ${s.duration}`);
    const parts = [...m.segments.flatMap((s) => s.parts ?? []), ...(m.preloadSegment?.parts ?? [])];
    assert.ok(parts.length > 0);
    for (const p of parts) assert.ok(p.duration <= target, `part ${p.duration} > ${target}`);
    assert.ok(parts.some((p) => p.independent), 'keyframe parts are INDEPENDENT');
    assert.equal(m.preloadSegment?.preloadHints?.length, 1);
  });

  it('answers a blocking request for the next part within ~3 part durations, with that part in it', async () => {
    const m = parseM3u8(await (await fetch(`${base}/${mediaUri}`)).text());
    const msn = m.mediaSequence + m.segments.length;
    const next = m.preloadSegment?.parts?.length ?? 0;
    const sep = mediaUri.includes('?') ? '&' : '?';
    const t0 = performance.now();
    const r = await fetch(`${base}/${mediaUri}${sep}_HLS_msn=${msn}&_HLS_part=${next}`);
    const ms = performance.now() - t0;
    assert.equal(r.status, 200);
    assert.ok(ms < 3 * m.partInf!.partTarget * 1000 + 250, `answered after ${ms.toFixed(0)} ms`);
    const after = parseM3u8(await r.text());
    const hinted = m.preloadSegment!.preloadHints![0]!.uri;
    const listed = [...after.segments.flatMap((s) => s.parts ?? []), ...(after.preloadSegment?.parts ?? [])].map((p) => p.uri);
    assert.ok(listed.includes(hinted), `${hinted} is listed`);
    const part = await fetch(`${base}/${hinted}`);
    assert.equal(part.status, 200);
    assert.ok((await part.arrayBuffer()).byteLength > 0);
  });

  it('ffmpeg reads the HLS URL and decodes 6 s without errors; ffprobe sees H.264 and AAC', async () => {
    const probe = await run('ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', `${base}/index.m3u8`], 30_000);
    assert.equal(probe.code, 0, probe.stderr);
    const streams = (JSON.parse(probe.stdout) as { streams: { codec_name: string; width?: number }[] }).streams;
    assert.deepEqual(streams.map((s) => s.codec_name).sort(), ['aac', 'h264']);
    assert.equal(streams.find((s) => s.codec_name === 'h264')?.width, 640);
    const dec = await run('ffmpeg', ['-v', 'error', '-i', `${base}/index.m3u8`, '-t', '6', '-f', 'null', '-'], 40_000);
    assert.equal(dec.code, 0, dec.stderr);
    assert.equal(dec.stderr.trim(), '', 'no decoding errors');
  });

  for (const variant of ['fmp4', 'mpegts'] as const) {
    it(`the ${variant} variant: classic playlists (no parts), ffprobe sees H.264 + AAC and ffmpeg decodes 4 s without errors`, async () => {
      const other = await startHlsServer({ ...TEST_HLS_SERVER, paths: registry, variant });
      try {
        const url = `http://127.0.0.1:${other.port}/live/e2e/index.m3u8`;
        const multi = await (await fetch(url)).text();
        assert.match(multi, /CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2",RESOLUTION=640x360/);
        const media = await (await fetch(new URL(parseM3u8(multi).playlists![0]!.uri, url))).text();
        assert.doesNotMatch(media, /EXT-X-PART|EXT-X-PRELOAD-HINT|CAN-BLOCK-RELOAD/);
        if (variant === 'fmp4') assert.match(media, /#EXT-X-VERSION:6\n[\s\S]*#EXT-X-MAP:URI="init0\.mp4\?s=/);
        else assert.match(media, /#EXT-X-VERSION:3\n[\s\S]*seg\d+\.ts\?s=/);
        const probe = await run('ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', url], 30_000);
        assert.equal(probe.code, 0, probe.stderr);
        const streams = (JSON.parse(probe.stdout) as { streams: { codec_name: string; width?: number }[] }).streams;
        assert.deepEqual(streams.map((x) => x.codec_name).sort(), ['aac', 'h264']);
        const dec = await run('ffmpeg', ['-v', 'error', '-i', url, '-t', '4', '-f', 'null', '-'], 40_000);
        assert.equal(dec.code, 0, dec.stderr);
        assert.equal(dec.stderr.trim(), '', 'no decoding errors');
      } finally {
        await other.close();
      }
    });
  }

  it('counts HLS sessions with bytes sent', () => {
    const sessions = [...registry.sessions.values()].filter((s) => s.protocol === 'hls');
    assert.ok(sessions.length >= 2);
    assert.ok(sessions.some((s) => s.bytesOut > 100_000));
  });

  it('plays the player page in headless Chromium (hls.js, low latency mode) for 10 s', { skip: !existsSync(CHROMIUM_PATH) && 'chromium not installed' }, async (t) => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--autoplay-policy=no-user-gesture-required', '--no-first-run', '--disable-background-networking'],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${base}/`);
      type Status = { state: string; latency: number | null; currentTime?: number; lowLatencyMode: boolean | null; errors: string[] };
      const status = (): Promise<Status> => page.evaluate(() => (globalThis as unknown as { __streamgate: Status }).__streamgate);
      await page.waitForFunction(() => ((globalThis as unknown as { __streamgate: { currentTime?: number } }).__streamgate.currentTime ?? 0) > 0, undefined, { timeout: 20_000 });
      const first = await status();
      await new Promise((r) => setTimeout(r, 10_000));
      const last = await status();
      t.diagnostic(`hls.js latency ${last.latency?.toFixed(2)} s, currentTime ${first.currentTime?.toFixed(1)} → ${last.currentTime?.toFixed(1)}`);
      assert.deepEqual(errors, []);
      assert.equal(last.lowLatencyMode, true);
      assert.equal(last.state, 'live', JSON.stringify(last));
      assert.ok((last.currentTime ?? 0) - (first.currentTime ?? 0) > 8, `currentTime ${first.currentTime} → ${last.currentTime}`);
      assert.ok(last.latency !== null && last.latency < 3, `latency ${last.latency}`);
      assert.ok(!last.errors.some((e) => e.includes('fatal')), last.errors.join('; '));
    } finally {
      await browser.close();
    }
  });
});
