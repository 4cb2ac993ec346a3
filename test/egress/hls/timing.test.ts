import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  TIMESTAMP_JUMP_MS,
  maxSegmentTicks,
  nominalDuration,
  partTargetTicks,
  placeOnTimeline,
  targetDurationS,
  to90k,
} from '../../../src/egress/hls/timing.js';
import { newTrackState, type SegmenterTrack } from '../../../src/egress/hls/track-state.js';
import { audio44k } from '../../fixtures/hls/media.js';

const video: SegmenterTrack = { id: 0, codec: 'h264', clockRate: 90000, version: 1 };
const aac: SegmenterTrack = { id: 1, codec: 'aac', clockRate: 44100, config: audio44k().config, sampleRate: 44100, version: 1 };

describe('timing', () => {
  it('nominal durations: 1/30 s video, one AAC frame, 20 ms Opus', () => {
    assert.equal(nominalDuration(newTrackState(video, 1)), 3000);
    assert.equal(nominalDuration(newTrackState(aac, 2)), 1024);
    assert.equal(nominalDuration(newTrackState({ id: 2, codec: 'opus', clockRate: 48000, version: 1 }, 2)), 960);
  });

  it('to90k keeps 90 kHz ticks and rounds others', () => {
    assert.equal(to90k(12345, 90000), 12345);
    assert.equal(to90k(1024, 44100), 2090);
    assert.equal(to90k(33, 1000), 2970);
  });

  it('places the first frame, refuses one before the origin, rebases resets and jumps', () => {
    const st = newTrackState(video, 1);
    st.offset = -9000;
    assert.equal(placeOnTimeline(st, 0, 0), null, 'before the origin');
    assert.equal(st.lastDts, undefined);
    assert.deepEqual(placeOnTimeline(st, 9000, 12000), { dts: 0, pts: 3000, jumped: false });
    st.lastDuration = 3000;
    assert.deepEqual(placeOnTimeline(st, 12000, 12000), { dts: 3000, pts: 3000, jumped: false });
    // backwards: continues one frame after the last
    assert.deepEqual(placeOnTimeline(st, 100, 200), { dts: 6000, pts: 6100, jumped: true });
    // zero step
    assert.deepEqual(placeOnTimeline(st, 100, 100), { dts: 9000, pts: 9000, jumped: true });
    // a forward step just within the jump limit is a stall, beyond it a reset
    const limit = (TIMESTAMP_JUMP_MS * 90000) / 1000;
    assert.deepEqual(placeOnTimeline(st, 100 + limit, 100 + limit), { dts: 9000 + limit, pts: 9000 + limit, jumped: false });
    assert.deepEqual(placeOnTimeline(st, 101 + 2 * limit, 101 + 2 * limit), { dts: 12000 + limit, pts: 12000 + limit, jumped: true });
  });

  it('part target: k frames and a half, at least one frame; a predecessor target kept when 1.5 frames fit', () => {
    assert.equal(partTargetTicks(3000, 200, 90000, 0), 6 * 3000 + 1500);
    assert.equal(partTargetTicks(33, 200, 1000, 0), 6 * 33 + 16);
    assert.equal(partTargetTicks(90000, 200, 90000, 0), 90000 + 45000, 'a frame longer than the wanted part');
    assert.equal(partTargetTicks(0, 200, 90000, 0), 18000, 'a zero interval counts as one tick');
    assert.equal(partTargetTicks(3000, 200, 90000, 0.3), 27000, 'predecessor PART-TARGET');
    assert.equal(partTargetTicks(30000, 200, 90000, 0.3), 45000, 'predecessor target too short for 1.5 frames');
  });

  it('target duration: ceil of the minimum and the first segment, at least a predecessor\'s; max segment +0.5 s', () => {
    assert.equal(targetDurationS(1000, 90000, 90000, 0), 1);
    assert.equal(targetDurationS(1000, 90000 * 1.2, 90000, 0), 2);
    assert.equal(targetDurationS(1500, 90000, 90000, 0), 2);
    assert.equal(targetDurationS(1000, 90000, 90000, 4), 4);
    assert.equal(targetDurationS(0, 0, 90000, 0), 1);
    assert.equal(maxSegmentTicks(2, 90000), 225000);
  });
});
