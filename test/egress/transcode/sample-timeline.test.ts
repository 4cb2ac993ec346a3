import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SampleTimeline } from '../../../src/egress/transcode/sample-timeline.js';
import { AacToOpusTimeline, TIMELINE_MAX_FRAMES } from '../../../src/egress/webrtc/opus-transcoder.js';

test('maps positions inside, before and after the frames fed (Opus packets of 960 with a DTX gap)', () => {
  const t = new SampleTimeline(8);
  assert.equal(t.map(0), null, 'nothing fed');
  t.push(1000, 960);
  t.push(1960, 960);
  t.push(10_000, 960); // the next packet came 8000 ticks later on the input clock
  assert.equal(t.samples, 2880);
  assert.equal(t.map(0), 1000);
  assert.equal(t.map(959.5), 1959.5, 'fractional positions stay fractional');
  assert.equal(t.map(1920), 10_000, 'the first sample after the gap');
  assert.equal(t.map(2000), 10_080);
  assert.equal(t.map(5000), 10_000 + 5000 - 1920, 'past the last frame: extrapolated from it');
  assert.equal(t.map(-1024), 1000 - 1024, 'encoder priming before the first frame ever fed: extrapolated back');
});

test('bounded: forgets the oldest frames past maxFrames, and positions in them map to null', () => {
  const t = new SampleTimeline(4);
  for (let i = 0; i < 10; i++) t.push(i * 100, 10);
  assert.equal(t.map(59), null, 'frame 5 is forgotten');
  assert.equal(t.map(-1), null, 'no extrapolation back once the first frame is forgotten');
  assert.equal(t.map(60), 600);
  assert.equal(t.map(99), 909);
  assert.equal(t.samples, 100);
});

/**
 * The direct-index mapping AacToOpusTimeline had before it was built on SampleTimeline (frames of exactly 1024
 * samples, so frame k starts at k·1024): the reference the shared timeline must match to the bit.
 */
function directIndexMap(dts: readonly number[], firstIndex: number, sampleRate: number, p: number): number | null {
  if (dts.length === 0) return null;
  const q = (p * sampleRate) / 48000;
  let k = Math.floor(q / 1024);
  if (k < firstIndex) {
    if (firstIndex > 0) return null;
    k = 0;
  }
  const last = firstIndex + dts.length - 1;
  if (k > last) k = last;
  return Math.round(((dts[k - firstIndex]! + (q - k * 1024)) * 48000) / sampleRate);
}

test('AacToOpusTimeline on SampleTimeline gives the timestamps of the direct-index mapping it replaced', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(8000, 22050, 44100, 48000, 96000),
      fc.integer({ min: 0, max: 2 ** 32 }),
      fc.integer({ min: 0, max: TIMELINE_MAX_FRAMES * 2 + 10 }),
      fc.array(fc.tuple(fc.nat(3000), fc.integer({ min: 0, max: 44_100 })), { maxLength: 5 }),
      fc.array(fc.double({ min: -5000, max: 3 * 1024 * 48 * 2, noNaN: true }), { minLength: 1, maxLength: 30 }),
      (sampleRate, start, frames, gaps, probes) => {
        const t = new AacToOpusTimeline(sampleRate);
        const dts: number[] = [];
        let firstIndex = 0;
        let next = start;
        for (let i = 0; i < frames; i++) {
          for (const [at, gap] of gaps) if (at === i) next += gap;
          t.push(next);
          dts.push(next);
          if (dts.length > TIMELINE_MAX_FRAMES) {
            dts.shift();
            firstIndex++;
          }
          next += 1024;
        }
        const outputSamples = (frames * 1024 * 48000) / sampleRate;
        for (const p of [...probes, 0, -312, outputSamples - 1, outputSamples + 960, (firstIndex * 1024 * 48000) / sampleRate]) {
          assert.equal(t.map(p), directIndexMap(dts, firstIndex, sampleRate, p), `p=${p}`);
        }
      },
    ),
    { numRuns: 300, interruptAfterTimeLimit: 5000 },
  );
});
