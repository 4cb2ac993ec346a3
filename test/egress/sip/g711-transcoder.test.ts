import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { makeFrame } from '../../../src/media/bus/frame.js';
import { Track } from '../../../src/media/bus/track.js';
import { splitAdtsFrames } from '../../../src/media/codecs/aac.js';
import { AacToOpusTimeline } from '../../../src/egress/webrtc/opus-transcoder.js';
import {
  G711_RESYNC_TICKS,
  G711_SAMPLES_PER_PACKET,
  G711Packetizer,
  G711Transcoder,
  g711TranscoderArgs,
  SipTranscoderPool,
} from '../../../src/egress/sip/g711-transcoder.js';

const haveFfmpeg = spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status === 0;

/** A timeline of `n` AAC frames at 44.1 kHz starting at `start`, with an optional gap (ticks) before frame `gapAt`. */
function timeline(n: number, start = 0, gapAt = -1, gap = 0): AacToOpusTimeline {
  const t = new AacToOpusTimeline(44100);
  for (let i = 0; i < n; i++) t.push(start + i * 1024 + (gapAt >= 0 && i >= gapAt ? gap : 0));
  return t;
}

describe('G.711 packetizer', () => {
  for (const start of [0, 441_000, 2 ** 32 - 44_100]) {
    it(`cuts 20 ms payloads at any chunk size with contiguous timestamps (start ${start})`, () => {
      const p = new G711Packetizer(timeline(200, start));
      const out: { data: Uint8Array; timestamp: number }[] = [];
      const bytes = new Uint8Array(8000).map((_, i) => i & 0xff);
      for (let o = 0; o < bytes.length; o += 97) out.push(...p.push(bytes.subarray(o, o + 97)));
      assert.equal(out.length, 8000 / G711_SAMPLES_PER_PACKET);
      assert.ok(out.every((x) => x.data.length === G711_SAMPLES_PER_PACKET));
      assert.deepEqual(Buffer.concat(out.map((x) => x.data)), Buffer.from(bytes));
      assert.equal(out[0]!.timestamp, Math.round((start * 8000) / 44100));
      for (let i = 1; i < out.length; i++) assert.equal(out[i]!.timestamp - out[i - 1]!.timestamp, 160);
    });
  }

  it('keeps counting samples through input jitter below one packet (RTMP millisecond timestamps)', () => {
    const t = new AacToOpusTimeline(44100);
    // frame dts rounded to whole milliseconds, as RTMP delivers them: ±22 ticks of jitter
    for (let i = 0; i < 100; i++) t.push(Math.round((Math.round((i * 1024 * 1000) / 44100) * 44100) / 1000));
    const out = new G711Packetizer(t).push(new Uint8Array(160 * 50));
    for (let i = 1; i < out.length; i++) assert.equal(out[i]!.timestamp - out[i - 1]!.timestamp, 160);
  });

  it('follows the timeline across a real gap in the input (1 s missing)', () => {
    const p = new G711Packetizer(timeline(200, 0, 20, 44100));
    const out = p.push(new Uint8Array(160 * 40));
    const steps = out.slice(1).map((x, i) => x.timestamp - out[i]!.timestamp);
    const jumps = steps.filter((s) => s !== 160);
    assert.equal(jumps.length, 1);
    assert.ok(jumps[0]! > 160 + G711_RESYNC_TICKS, `a jump of ${jumps[0]}`);
  });
});

describe('G.711 transcoder arguments', () => {
  it('ADTS in, raw 8 kHz mono μ-law or A-law out, flushed per packet', () => {
    for (const [law, codec, format] of [['pcmu', 'pcm_mulaw', 'mulaw'], ['pcma', 'pcm_alaw', 'alaw']] as const) {
      assert.deepEqual(g711TranscoderArgs(law), [
        '-hide_banner', '-loglevel', 'error', '-nostdin', '-fflags', '+nobuffer', '-probesize', '32', '-analyzeduration', '0',
        '-f', 'aac', '-i', 'pipe:0',
        '-vn', '-ac', '1', '-ar', '8000', '-c:a', codec,
        '-f', format, '-flush_packets', '1', 'pipe:1',
      ]);
    }
  });
});

describe('G.711 transcoder (ffmpeg)', { skip: haveFfmpeg ? false : 'ffmpeg missing' }, () => {
  it('AAC (ffmpeg 1 kHz fixture, looped) in, PCMU payloads out; the pool shares one child and stops it after the last reader', async () => {
    const adts = splitAdtsFrames(new Uint8Array(readFileSync(new URL('../../../../test/fixtures/aac/aac-lc-44100-mono.aac', import.meta.url))));
    const track = new Track({ codec: 'aac', clockRate: 44100, sampleRate: 44100, channels: 1 });
    track.setAudioConfig(Uint8Array.of(0x12, 0x08), 44100, 1); // AAC-LC, 44.1 kHz, mono
    track.id = 0;
    const pool = new SipTranscoderPool();
    const a: { data: Uint8Array; timestamp: number }[] = [];
    const b: number[] = [];
    const sinkA = (data: Uint8Array, timestamp: number) => a.push({ data, timestamp });
    const sinkB = (_: Uint8Array, timestamp: number) => b.push(timestamp);
    pool.acquire('p', track, 'pcmu', sinkA);
    pool.acquire('p', track, 'pcmu', sinkB);
    assert.equal(pool.size, 1, 'one child per path and codec');
    for (let i = 0; i < 60; i++) {
      const f = adts[i % adts.length]!;
      const frame = makeFrame(track, i * 1024, i * 1024, true, [f.payload]);
      pool.feed('p', frame);
      pool.feed('p', frame); // a second reader delivering the same frame: written once
    }
    const end = Date.now() + 10_000;
    while (a.length < 50 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.ok(a.length >= 50, `${a.length} payloads`);
    assert.ok(a.every((x) => x.data.length === 160));
    assert.deepEqual(b, a.map((x) => x.timestamp).slice(0, b.length), 'both readers get the same payloads');
    for (let i = 1; i < a.length; i++) assert.equal(a[i]!.timestamp - a[i - 1]!.timestamp, 160);
    // 60 frames × 1024 samples at 44.1 kHz ≈ 1.39 s → ≈ 69 payloads; never more than went in
    assert.ok(a.length <= Math.ceil((60 * 1024 * 8000) / 44100 / 160) + 1);
    pool.release('p', 'pcmu', sinkA);
    assert.equal(pool.size, 1);
    pool.release('p', 'pcmu', sinkB);
    assert.equal(pool.size, 0, 'stopped with its last reader');
  });

  it('stops itself on a track without AudioSpecificConfig', () => {
    const track = new Track({ codec: 'aac', clockRate: 44100 });
    const t = new G711Transcoder('p', track, 'pcma');
    t.feed(makeFrame(track, 0, 0, true, [Uint8Array.of(1, 2, 3)]));
    assert.equal(t.running, false);
  });
});
