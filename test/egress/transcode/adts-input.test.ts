import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { AdtsInput } from '../../../src/egress/transcode/adts-input.js';
import { makeFrame } from '../../../src/media/bus/frame.js';
import { Track } from '../../../src/media/bus/track.js';
import { parseAdts, splitAdtsFrames } from '../../../src/media/codecs/aac.js';
import { ParseError } from '../../../src/errors.js';

const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(`../../../../test/fixtures/aac/${name}`, import.meta.url)));

test('raw frames of ffmpeg AAC fixtures get back the ADTS headers ffmpeg wrote; each dts goes to the timeline', () => {
  for (const [name, asc, sampleRate, channels] of [
    ['aac-lc-44100-mono.aac', [0x12, 0x08], 44100, 1],
    ['aac-lc-48000-stereo.aac', [0x11, 0x90], 48000, 2],
    ['aac-lc-8000-mono.aac', [0x15, 0x88], 8000, 1],
  ] as const) {
    const file = fixture(name);
    const frames = splitAdtsFrames(file);
    const track = new Track({ codec: 'aac', clockRate: sampleRate });
    track.setAudioConfig(Uint8Array.from(asc), sampleRate, channels);
    const fed: number[] = [];
    const input = new AdtsInput(track, { push: (dts) => fed.push(dts) });
    let off = 0;
    frames.slice(0, 20).forEach((f, i) => {
      const out = input.encode(makeFrame(track, i * 1024, i * 1024, true, [f.payload]))!;
      assert.equal(out[1], f.payload, `${name}: the raw frame is written as is (a view, no copy)`);
      const header = parseAdts(Uint8Array.from([...out[0]!, ...out[1]!]));
      assert.equal(header.sampleRate, sampleRate);
      assert.equal(header.channels, channels);
      assert.equal(header.frameLength, f.frameLength);
      // ffmpeg's own header differs only in buffer fullness (it writes the real value, we write VBR 0x7FF)
      assert.deepEqual([...out[0]!.subarray(0, 5)], [...file.subarray(off, off + 5)], `${name} frame ${i}`);
      off += f.frameLength;
    });
    assert.deepEqual(fed, frames.slice(0, 20).map((_, i) => i * 1024));
  }
});

test('a frame without payload is skipped; a track without AudioSpecificConfig throws (the transcoder stops)', () => {
  const track = new Track({ codec: 'aac', clockRate: 44100 });
  const fed: number[] = [];
  const input = new AdtsInput(track, { push: (dts) => fed.push(dts) });
  assert.equal(input.encode(makeFrame(track, 0, 0, true, [])), null);
  assert.throws(() => input.encode(makeFrame(track, 0, 0, true, [Uint8Array.of(1)])), ParseError);
  assert.deepEqual(fed, [], 'nothing recorded for frames not written');
});

test('the config is parsed again when the track gets a new one', () => {
  const track = new Track({ codec: 'aac', clockRate: 44100 });
  track.setAudioConfig(Uint8Array.of(0x12, 0x08), 44100, 1); // AAC-LC 44.1 kHz mono
  const input = new AdtsInput(track, { push: () => undefined });
  const raw = [new Uint8Array(100)];
  assert.equal(parseAdts(Uint8Array.from([...input.encode(makeFrame(track, 0, 0, true, raw))![0]!, ...raw[0]!])).channels, 1);
  track.setAudioConfig(Uint8Array.of(0x11, 0x90), 48000, 2); // AAC-LC 48 kHz stereo
  const h = parseAdts(Uint8Array.from([...input.encode(makeFrame(track, 1024, 1024, true, raw))![0]!, ...raw[0]!]));
  assert.deepEqual([h.sampleRate, h.channels], [48000, 2]);
});
