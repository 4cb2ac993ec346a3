import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { splitAdtsFrames, serializeAudioSpecificConfig } from '../../../src/media/codecs/aac.js';
import { Track } from '../../../src/media/bus/track.js';
import { makeFrame } from '../../../src/media/bus/frame.js';
import {
  AacToOpusTimeline,
  OggReader,
  OpusTranscoder,
  ffmpegAvailable,
  opusPacketSamples,
  opusTranscoderArgs,
} from '../../../src/egress/webrtc/opus-transcoder.js';
import { ParseError } from '../../../src/errors.js';

const fixture = (name: string): Uint8Array => readFileSync(new URL(`../../../../test/fixtures/webrtc/${name}`, import.meta.url));

for (const start of [0, 44100 * 3600, 2 ** 32 - 2048]) {
  test(`AacToOpusTimeline maps output samples to input dts (start ${start})`, () => {
    const t = new AacToOpusTimeline(44100);
    for (let i = 0; i < 10; i++) t.push(start + i * 1024);
    // a gap of 5 frames in the input
    for (let i = 15; i < 20; i++) t.push(start + i * 1024);
    const at48 = (ticks: number): number => Math.round((ticks * 48000) / 44100);
    assert.equal(t.map(0), at48(start));
    // output sample 48000/44100·1024·3 is the start of input frame 3
    assert.equal(t.map((3 * 1024 * 48000) / 44100), at48(start + 3 * 1024));
    // the 11th frame fed (index 10) is the one after the gap: dts of frame 15
    assert.equal(t.map((10 * 1024 * 48000) / 44100), at48(start + 15 * 1024));
    // pre-roll before the first frame extrapolates back
    assert.equal(t.map(-312), Math.round(((start - (312 * 44100) / 48000) * 48000) / 44100));
  });
}

test('AacToOpusTimeline forgets old frames (bounded)', () => {
  const t = new AacToOpusTimeline(48000);
  for (let i = 0; i < 5000; i++) t.push(i * 1024);
  assert.equal(t.map(0), null);
  assert.equal(t.map(4999 * 1024), 4999 * 1024);
});

test('ffmpeg arguments: ADTS in, low-delay 20 ms stereo Opus at 96 kbit/s out, one Ogg page per packet, flushed', () => {
  assert.deepEqual(opusTranscoderArgs(), [
    '-hide_banner', '-loglevel', 'error', '-nostdin', '-fflags', '+nobuffer', '-probesize', '32', '-analyzeduration', '0',
    '-f', 'aac', '-i', 'pipe:0',
    '-vn', '-c:a', 'libopus', '-b:a', '96k', '-ar', '48000', '-ac', '2', '-application', 'lowdelay', '-frame_duration', '20',
    '-f', 'ogg', '-page_duration', '20000', '-flush_packets', '1', 'pipe:1',
  ]);
});

test('opusPacketSamples reads the TOC (RFC 6716 §3.1)', () => {
  const cases: [string, number[], number][] = [
    ['CELT 20 ms, 1 frame (libopus lowdelay)', [0xf8], 960],
    ['CELT 20 ms, 2 frames (code 1)', [0xf9], 1920],
    ['SILK 20 ms, code 3 with 3 frames', [0x0b, 0x03], 2880],
    ['Hybrid 10 ms', [0x60], 480],
    ['CELT 2.5 ms', [0x80], 120],
    ['empty', [], 0],
  ];
  for (const [name, bytes, want] of cases) assert.equal(opusPacketSamples(Uint8Array.from(bytes)), want, name);
});

test('OggReader: packets across split points equal one big push', () => {
  // a tiny Ogg stream: page 1 with one 3-byte packet, page 2 with a 300-byte packet (segments 255 + 45)
  const page = (granule: number, segs: number[], body: Uint8Array): Uint8Array => {
    const h = new Uint8Array(27 + segs.length);
    h.set([0x4f, 0x67, 0x67, 0x53]);
    new DataView(h.buffer).setBigInt64(6, BigInt(granule), true);
    h[26] = segs.length;
    h.set(segs, 27);
    const out = new Uint8Array(h.byteLength + body.byteLength);
    out.set(h);
    out.set(body, h.byteLength);
    return out;
  };
  const p1 = page(0, [3], Uint8Array.from([1, 2, 3]));
  const big = new Uint8Array(300).map((_, i) => i & 0xff);
  const p2 = page(960, [255, 45], big);
  const all = new Uint8Array(p1.byteLength + p2.byteLength);
  all.set(p1);
  all.set(p2, p1.byteLength);
  const whole = new OggReader().push(all);
  assert.equal(whole.length, 2);
  assert.deepEqual([...whole[1]!.data], [...big]);
  assert.equal(whole[1]!.granule, 960);
  for (let split = 1; split < all.byteLength; split += 7) {
    const r = new OggReader();
    const got = [...r.push(all.subarray(0, split)), ...r.push(all.subarray(split))];
    assert.deepEqual(got.map((p) => [...p.data]), whole.map((p) => [...p.data]));
  }
  assert.throws(() => new OggReader().push(new Uint8Array(40)), ParseError);
});

test('OpusTranscoder: ffmpeg turns real AAC frames into Opus packets on the input timeline', { skip: !ffmpegAvailable() }, async () => {
  const frames = splitAdtsFrames(fixture('aac-lc-44100-mono-1s.aac'));
  const f0 = frames[0]!;
  const track = new Track({ codec: 'aac', clockRate: 44100, sampleRate: 44100, channels: 1 });
  track.setAudioConfig(serializeAudioSpecificConfig({ objectType: f0.objectType, sampleRateIndex: f0.sampleRateIndex, channelConfig: f0.channelConfig }), 44100, 1);
  track.id = 0;
  const tr = new OpusTranscoder('test/opus', track);
  const got: { bytes: number; ts: number }[] = [];
  tr.subscribe((payload, ts) => got.push({ bytes: payload.byteLength, ts }));
  const base = 441000; // 10 s into the path's timeline
  frames.forEach((f, i) => {
    const dts = base + i * 1024;
    const frame = makeFrame(track, dts, dts, true, [f.payload]);
    tr.feed(frame);
    tr.feed(frame); // a second reader delivering the same frame: fed once
  });
  const want = Math.floor((frames.length * 1024 * 48000) / 44100 / 960) - 2;
  const deadline = Date.now() + 10_000;
  while (got.length < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  tr.stop();
  assert.equal(tr.framesIn, frames.length);
  assert.ok(got.length >= want, `got ${got.length} Opus packets, want ≥ ${want}`);
  const base48 = Math.round((base * 48000) / 44100);
  // the first packet starts in the encoder pre-roll (≤ 6.5 ms before the input), then 20 ms steps
  assert.ok(got[0]!.ts <= base48 && got[0]!.ts > base48 - 312 - 2, `first ts ${got[0]!.ts} vs input ${base48}`);
  for (let i = 1; i < got.length; i++) assert.ok(Math.abs(got[i]!.ts - got[i - 1]!.ts - 960) <= 1, `step at ${i}`);
});
