/**
 * WHIP publish → HLS, end to end: headless Chromium (fake camera and microphone, inside a network namespace) publishes
 * H.264 + Opus over WHIP to a real gateway; the stream is read back over HLS with Opus in fMP4:
 * - ffprobe sees H.264 + Opus 48 kHz and ffmpeg decodes 5 s without a single error line;
 * - the multivariant playlist names the codecs `avc1.xxxxxx,opus`;
 * - the init segment and the fragments parse with mp4frag (an independent parser), the `dOps` box is right field by
 *   field ("Encapsulation of Opus in ISO Base Media File Format" 4.3.2), Opus samples last 20 ms, every track's tfdt
 *   continues where the previous fragment ended, and audio and video start together;
 * - hls.js plays the player page with audio;
 * - the MPEG-TS variant serves the video alone (hls.js and Apple players cannot play Opus in TS).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { parseConfig } from '../../src/config.js';
import { startHlsServer, type HlsServer } from '../../src/egress/hls/server.js';
import { log } from '../../src/log.js';
import { startGateway, type Gateway } from '../../src/main.js';
import { freePort } from '../helpers/gateway.js';
import { run, waitFor } from '../helpers/media-tools.js';
import { canRunBrowserTests, createNetns, launchChromium, publishWhipFromPage, type Netns } from '../egress/webrtc/harness.js';

const skip = !canRunBrowserTests() && 'needs root (network namespaces), ffmpeg and /usr/bin/chromium';
const PATH = 'live/whip';
/** Opus frame Chromium sends: 20 ms at 48 kHz (RFC 7587 §4.2: the RTP clock is always 48 kHz). */
const OPUS_FRAME_TICKS = 960;

const require = createRequire(import.meta.url);
interface Mp4FragLike {
  on(event: 'segment', cb: (s: { duration: number; segment: Buffer }) => void): void;
  on(event: 'error', cb: (e: Error) => void): void;
  write(b: Uint8Array): boolean;
  end(): void;
  readonly mime: string | null;
  readonly initialization: Buffer | null;
}
const Mp4Frag = require('mp4frag') as new (o?: Record<string, unknown>) => Mp4FragLike;

/** One ISOBMFF box: where its payload starts and where it ends, in the buffer it was read from. */
interface Box {
  type: string;
  start: number;
  body: number;
  end: number;
}

/** The boxes between `start` and `end` (32-bit sizes only: we never write the 64-bit form). */
function boxesIn(b: Uint8Array, start: number, end: number): Box[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: Box[] = [];
  let p = start;
  while (p + 8 <= end) {
    const size = dv.getUint32(p);
    assert.ok(size >= 8 && p + size <= end, `box at ${p} has size ${size}`);
    out.push({ type: String.fromCharCode(b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!), start: p, body: p + 8, end: p + size });
    p += size;
  }
  assert.equal(p, end, 'boxes fill their parent exactly');
  return out;
}

function child(b: Uint8Array, parent: Box, type: string, skipBytes = 0): Box {
  const found = boxesIn(b, parent.body + skipBytes, parent.end).find((x) => x.type === type);
  assert.ok(found, `${parent.type} has a ${type}`);
  return found;
}

/** One traf of a moof, read field by field (ISO/IEC 14496-12 8.8.7, 8.8.12, 8.8.8). */
interface Traf {
  trackId: number;
  tfdt: number;
  durations: number[];
  sizes: number[];
}

function readMoof(b: Uint8Array, moof: Box): Traf[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return boxesIn(b, moof.body, moof.end)
    .filter((x) => x.type === 'traf')
    .map((traf) => {
      const tfhd = child(b, traf, 'tfhd');
      const tfdt = child(b, traf, 'tfdt');
      const trun = child(b, traf, 'trun');
      const tfdtVersion = b[tfdt.body]!;
      const base = tfdtVersion === 1 ? dv.getUint32(tfdt.body + 4) * 2 ** 32 + dv.getUint32(tfdt.body + 8) : dv.getUint32(tfdt.body + 4);
      const flags = dv.getUint32(trun.body) & 0xffffff;
      const count = dv.getUint32(trun.body + 4);
      let p = trun.body + 8 + (flags & 0x1 ? 4 : 0) + (flags & 0x4 ? 4 : 0);
      const durations: number[] = [];
      const sizes: number[] = [];
      for (let i = 0; i < count; i++) {
        if (flags & 0x100) {
          durations.push(dv.getUint32(p));
          p += 4;
        }
        if (flags & 0x200) {
          sizes.push(dv.getUint32(p));
          p += 4;
        }
        if (flags & 0x400) p += 4;
        if (flags & 0x800) p += 4;
      }
      return { trackId: dv.getUint32(tfhd.body + 4), tfdt: base, durations, sizes };
    });
}

describe('WHIP (Chromium, H.264 + Opus) → HLS with Opus in fMP4', { skip, timeout: 170_000 }, () => {
  let ns: Netns;
  let gw: Gateway;
  let browser: Browser;
  let base: string;
  const cleanup: (() => unknown)[] = [];

  before(async () => {
    ns = createNetns();
    cleanup.push(() => ns.destroy());
    const [hlsPort, webrtcPort, icePort] = [await freePort(), await freePort(), await freePort()];
    // the HLS listener binds the veth address so the browser in the namespace reaches it (and ffprobe here does too)
    const yaml = [
      'listeners:',
      '  rtmp: { enabled: false }',
      '  rtsp: { enabled: false }',
      `  hls: { port: ${hlsPort}, host: ${ns.hostIp} }`,
      `  webrtc: { port: ${webrtcPort}, icePort: ${icePort} }`,
      '  sip: { enabled: false }',
      '  api: { enabled: false }',
      '  metrics: { enabled: false }',
      '',
    ].join('\n');
    gw = await startGateway({ config: parseConfig(yaml, 'whip-hls.yml'), handleSignals: false });
    cleanup.push(() => gw.close());
    const origin = `http://${ns.hostIp}:${gw.ports.webrtc}`;
    // getUserMedia needs a secure context: treat the gateway's origin as one
    browser = await launchChromium(ns, [`--unsafely-treat-insecure-origin-as-secure=${origin}`]);
    cleanup.push(() => browser.close());
    const pub = await browser.newPage();
    await pub.goto(`${origin}/`);
    assert.equal(await publishWhipFromPage(pub, `${origin}/${PATH}/whip`, { width: 640, height: 360, waitForGathering: true }), 201);
    await waitFor(() => gw.registry.paths.get(PATH)?.stream.ready, 15_000);
    assert.deepEqual(gw.registry.paths.get(PATH)!.stream.tracks.map((t) => t.codec), ['h264', 'opus']);
    base = `http://${ns.hostIp}:${gw.ports.hls}/${PATH}`;
  });

  after(async () => {
    for (const f of cleanup.reverse()) await f();
  });

  it('ffprobe sees H.264 + Opus 48 kHz; ffmpeg decodes 5 s without an error line', async () => {
    const probe = await run('ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', `${base}/index.m3u8`], 40_000);
    assert.equal(probe.code, 0, probe.stderr);
    const streams = (JSON.parse(probe.stdout) as { streams: { codec_name: string; sample_rate?: string; channels?: number; width?: number }[] }).streams;
    console.log(`# ffprobe: ${JSON.stringify(streams.map((s) => [s.codec_name, s.width ?? s.sample_rate, s.channels]))}`);
    assert.deepEqual(streams.map((s) => s.codec_name).sort(), ['h264', 'opus']);
    const opus = streams.find((s) => s.codec_name === 'opus')!;
    assert.equal(opus.sample_rate, '48000');
    assert.equal(opus.channels, 2);
    // WebRTC video has a variable frame rate (Chromium drops from 30 to 20 fps under CPU load, frames jitter by a
    // millisecond or two): `-enc_time_base -1` keeps the source time base, as ffmpeg's null muxer otherwise rounds
    // each frame to 1/r_frame_rate and reports two frames in one such slot as "non monotonically increasing dts"
    const dec = await run('ffmpeg', ['-v', 'error', '-i', `${base}/index.m3u8`, '-t', '5', '-enc_time_base', '-1', '-f', 'null', '-'], 40_000);
    assert.equal(dec.code, 0, dec.stderr);
    assert.equal(dec.stderr.trim(), '', 'no decoding errors');
  });

  it('the multivariant playlist names the codecs avc1.xxxxxx,opus (RFC 6381; Opus is written "opus")', async () => {
    const multi = await (await fetch(`${base}/index.m3u8`)).text();
    assert.match(multi, /CODECS="avc1\.[0-9a-f]{6},opus"/, multi);
  });

  it('init segment and fragments: mp4frag parses them, dOps is right field by field, 20 ms Opus samples, continuous tfdt, A/V aligned', async () => {
    const multiUrl = `${base}/index.m3u8`;
    const multi = await (await fetch(multiUrl)).text();
    const mediaUri = multi.split('\n').find((l) => l.startsWith('stream.m3u8'))!;
    // wait until four complete segments are listed, then read them in order
    let media = '';
    await waitFor(async () => {
      media = await (await fetch(new URL(mediaUri, multiUrl))).text();
      return media.split('\n').filter((l) => /^seg\d+\.mp4/.test(l)).length >= 4;
    }, 20_000, 250);
    const mapUri = /#EXT-X-MAP:URI="([^"]+)"/.exec(media)![1]!;
    const segUris = media.split('\n').filter((l) => /^seg\d+\.mp4/.test(l)).slice(-4);
    const get = async (uri: string): Promise<Uint8Array> => {
      const r = await fetch(new URL(uri, multiUrl));
      assert.equal(r.status, 200, uri);
      return new Uint8Array(await r.arrayBuffer());
    };
    const init = await get(mapUri);
    const segments = await Promise.all(segUris.map(get));

    // mp4frag: an independent parser; it reads ftyp+moov as the initialization and each moof+mdat as a segment
    const frag = new Mp4Frag();
    const fragSegments: number[] = [];
    const fragErrors: string[] = [];
    frag.on('segment', (s) => fragSegments.push(s.duration));
    frag.on('error', (e) => fragErrors.push(e.message));
    frag.write(init);
    for (const s of segments) frag.write(s);
    let moofs = 0;
    for (const s of segments) moofs += boxesIn(s, 0, s.byteLength).filter((x) => x.type === 'moof').length;
    assert.deepEqual(fragErrors, []);
    assert.equal(Buffer.compare(frag.initialization!, Buffer.from(init)), 0, 'mp4frag finds the init segment');
    // mp4frag 0.7 only names AVC/HEVC/AAC codecs; it reads Opus tracks without naming them
    assert.match(frag.mime ?? '', /^video\/mp4; codecs="avc1\.[0-9A-F]{6}"$/);
    assert.equal(fragSegments.length, moofs, 'mp4frag sees every moof+mdat');
    assert.ok(fragSegments.every((d) => d > 0 && d < 1), `fragment durations ${fragSegments.join(',')}`);

    // the init segment: the Opus sample entry and its dOps (Opus in ISOBMFF 4.3.1, 4.3.2; fields big-endian)
    const top = boxesIn(init, 0, init.byteLength);
    assert.deepEqual(top.map((x) => x.type), ['ftyp', 'moov']);
    const moov = top[1]!;
    const traks = boxesIn(init, moov.body, moov.end).filter((x) => x.type === 'trak');
    assert.equal(traks.length, 2);
    const dv = new DataView(init.buffer, init.byteOffset, init.byteLength);
    const trackIds: Record<string, number> = {};
    let dops: Box | undefined;
    let opusEntry: Box | undefined;
    for (const trak of traks) {
      const tkhd = child(init, trak, 'tkhd');
      const mdia = child(init, trak, 'mdia');
      const mdhd = child(init, mdia, 'mdhd');
      const stsd = child(init, child(init, child(init, mdia, 'minf'), 'stbl'), 'stsd');
      const entry = boxesIn(init, stsd.body + 8, stsd.end)[0]!;
      trackIds[entry.type] = dv.getUint32(tkhd.body + 12);
      if (entry.type === 'Opus') {
        assert.equal(dv.getUint32(mdhd.body + 12), 48000, 'Opus mdhd timescale is 48000');
        opusEntry = entry;
        // AudioSampleEntry: 6 reserved + data_reference_index + 8 reserved, then channelcount, samplesize, 4 zero
        // bytes, samplerate 16.16; 4.3.1: channelcount = OutputChannelCount, samplesize 16, samplerate 48000<<16
        assert.equal(dv.getUint16(entry.body + 6), 1, 'data_reference_index');
        assert.equal(dv.getUint16(entry.body + 16), 2, 'channelcount');
        assert.equal(dv.getUint16(entry.body + 18), 16, 'samplesize');
        assert.equal(dv.getUint32(entry.body + 24), 48000 * 65536, 'samplerate');
        dops = child(init, entry, 'dOps', 28);
      } else {
        assert.equal(entry.type, 'avc1');
        assert.equal(dv.getUint32(mdhd.body + 12), 90000);
      }
    }
    assert.ok(opusEntry && dops, 'an Opus sample entry with a dOps box');
    assert.equal(dops.end - dops.body, 11, 'dOps of mapping family 0 has 11 bytes');
    const d = new DataView(init.buffer, init.byteOffset + dops.body, 11);
    const fields = {
      Version: d.getUint8(0),
      OutputChannelCount: d.getUint8(1),
      PreSkip: d.getUint16(2),
      InputSampleRate: d.getUint32(4),
      OutputGain: d.getInt16(8),
      ChannelMappingFamily: d.getUint8(10),
    };
    console.log(`# dOps ${JSON.stringify(fields)}`);
    // PreSkip: RTP (RFC 7587) does not carry it; 312 is the libopus encoder lookahead (6.5 ms) browsers and OBS use
    assert.deepEqual(fields, { Version: 0, OutputChannelCount: 2, PreSkip: 312, InputSampleRate: 48000, OutputGain: 0, ChannelMappingFamily: 0 });

    // ffprobe reads the same init + one segment as a file and names the dOps values it understood
    const dir = mkdtempSync(join(tmpdir(), 'whip-hls-'));
    try {
      const file = join(dir, 'first.mp4');
      writeFileSync(file, Buffer.concat([init, segments[0]!]));
      const p = await run('ffprobe', ['-v', 'error', '-select_streams', 'a', '-show_data', '-show_entries', 'stream=codec_name,sample_rate,channels,extradata', '-of', 'json', file]);
      assert.equal(p.code, 0, p.stderr);
      const s = (JSON.parse(p.stdout) as { streams: { codec_name: string; sample_rate?: string; channels?: number; extradata?: string }[] }).streams;
      assert.equal(s.length, 1, JSON.stringify(s));
      const o = s[0]!;
      assert.equal(o.codec_name, 'opus');
      assert.equal(o.sample_rate, '48000');
      assert.equal(o.channels, 2);
      // ffmpeg's mov demuxer turns dOps into an Ogg OpusHead (RFC 7845 §5.1, little-endian): version 1, 2 channels,
      // pre-skip 312 (38 01), input rate 48000 (80 bb 00 00), gain 0, mapping family 0
      const hex = (o.extradata ?? '').split('\n').map((l) => /^[0-9a-f]{8}: ((?:[0-9a-f]{2,4} )+)/.exec(l)?.[1]?.replaceAll(' ', '') ?? '').join('');
      assert.equal(hex, Buffer.from('OpusHead').toString('hex') + '0102' + '3801' + '80bb0000' + '0000' + '00');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    // fragments: sample durations, tfdt continuity per track, and A/V start alignment in every segment
    const audioId = trackIds.Opus!;
    const videoId = trackIds.avc1!;
    const next = new Map<number, number>();
    const audioDurations: number[] = [];
    let worstAv = 0;
    segments.forEach((seg, si) => {
      const moofList = boxesIn(seg, 0, seg.byteLength).filter((x) => x.type === 'moof');
      moofList.forEach((moof, mi) => {
        const trafs = readMoof(seg, moof);
        for (const t of trafs) {
          const expected = next.get(t.trackId);
          if (expected !== undefined && t.trackId === audioId) {
            // audio holes stay inside a sample's duration: the audio timeline has no gaps at all
            assert.equal(t.tfdt, expected, `audio tfdt of segment ${si} fragment ${mi}`);
          } else if (expected !== undefined) {
            // video may skip a stall of the camera (the segmenter keeps real time), never go back or overlap
            assert.ok(t.tfdt >= expected && t.tfdt - expected < 90000, `video tfdt ${t.tfdt} after ${expected}`);
          }
          next.set(t.trackId, t.tfdt + t.durations.reduce((a, b) => a + b, 0));
          if (t.trackId === audioId) audioDurations.push(...t.durations);
          assert.ok(t.sizes.every((n) => n > 0));
        }
        if (mi === 0) {
          const a = trafs.find((t) => t.trackId === audioId);
          const v = trafs.find((t) => t.trackId === videoId);
          assert.ok(a && v, `segment ${si} starts with audio and video`);
          worstAv = Math.max(worstAv, Math.abs(a.tfdt / 48000 - v.tfdt / 90000));
        }
      });
    });
    const counts = new Map<number, number>();
    for (const x of audioDurations) counts.set(x, (counts.get(x) ?? 0) + 1);
    console.log(`# ${audioDurations.length} Opus samples, durations ${JSON.stringify([...counts])}; worst A/V start offset ${(worstAv * 1000).toFixed(1)} ms`);
    assert.ok(audioDurations.length > 100);
    const regular = audioDurations.filter((x) => x === OPUS_FRAME_TICKS).length;
    assert.ok(regular >= audioDurations.length - 2, `Opus samples of 20 ms: ${regular} of ${audioDurations.length}`);
    assert.ok(audioDurations.every((x) => x % OPUS_FRAME_TICKS === 0), 'a lost packet leaves a whole number of frames');
    assert.ok(worstAv < 0.1, `audio and video start ${(worstAv * 1000).toFixed(1)} ms apart`);
  });

  it('hls.js plays the player page with audio', async () => {
    const page = await browser.newPage();
    try {
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${base}/`);
      type Status = { state: string; currentTime?: number; errors: string[] };
      const status = (): Promise<Status> => page.evaluate('window.__streamgate') as Promise<Status>;
      await page.waitForFunction('(window.__streamgate.currentTime || 0) > 0', undefined, { timeout: 20_000, polling: 200 });
      const first = await status();
      await new Promise((r) => setTimeout(r, 6000));
      const last = await status();
      const media = (await page.evaluate(`(() => {
        const v = document.getElementById('video');
        const level = hls.levels[hls.currentLevel] || hls.levels[0];
        return { audioBytes: v.webkitAudioDecodedByteCount, videoBytes: v.webkitVideoDecodedByteCount, audioCodec: level && level.audioCodec };
      })()`)) as { audioBytes: number; videoBytes: number; audioCodec?: string };
      console.log(`# hls.js: currentTime ${first.currentTime} → ${last.currentTime}, ${JSON.stringify(media)}, errors ${JSON.stringify(last.errors)}`);
      assert.deepEqual(errors, []);
      assert.ok(!last.errors.some((e) => e.includes('fatal')), last.errors.join('; '));
      assert.equal(last.state, 'live', JSON.stringify(last));
      assert.ok((last.currentTime ?? 0) - (first.currentTime ?? 0) > 4, `currentTime ${first.currentTime} → ${last.currentTime}`);
      assert.equal(media.audioCodec, 'opus');
      assert.ok(media.audioBytes > 0, 'audio is decoded');
      assert.ok(media.videoBytes > 0, 'video is decoded');
    } finally {
      await page.close();
    }
  });

  it('the MPEG-TS variant serves the video alone and says once why there is no audio', async () => {
    const warnings: string[] = [];
    const origWarn = log.warn.bind(log);
    // the gateway logs through this module's logger; record what it says while the muxer starts
    log.warn = ((obj: unknown, msg?: string) => {
      warnings.push(`${msg ?? ''} ${JSON.stringify(obj)}`);
    }) as typeof log.warn;
    let ts: HlsServer | undefined;
    try {
      ts = await startHlsServer({ host: ns.hostIp, port: 0, paths: gw.registry, variant: 'mpegts', segmentMinDurationMs: 1000, partDurationMs: 200, segmentCount: 7, muxerCloseAfterMs: 60_000 });
      const url = `http://${ns.hostIp}:${ts.port}/${PATH}/index.m3u8`;
      const multi = await (await fetch(url)).text();
      assert.match(multi, /CODECS="avc1\.[0-9a-f]{6}"/, multi);
      const probe = await run('ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', url], 30_000);
      assert.equal(probe.code, 0, probe.stderr);
      const streams = (JSON.parse(probe.stdout) as { streams: { codec_name: string }[] }).streams;
      assert.deepEqual(streams.map((s) => s.codec_name), ['h264']);
      const dec = await run('ffmpeg', ['-v', 'error', '-i', url, '-t', '3', '-f', 'null', '-'], 30_000);
      assert.equal(dec.code, 0, dec.stderr);
      assert.equal(dec.stderr.trim(), '');
      const opusLines = warnings.filter((w) => /Opus/.test(w));
      assert.equal(opusLines.length, 1, warnings.join('\n'));
      assert.match(opusLines[0]!, /live\/whip/);
    } finally {
      log.warn = origWarn;
      await ts?.close();
    }
  });
});
