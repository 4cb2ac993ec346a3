import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TsFragmentWriter } from '../../../src/egress/hls/ts-writer.js';
import { newTrackState } from '../../../src/egress/hls/track-state.js';
import { StateError } from '../../../src/errors.js';
import { audio44k, video30 } from '../../fixtures/hls/media.js';

const v = video30();
const a = audio44k();
const video = newTrackState({ id: 0, codec: 'h264', clockRate: 90000, sps: v.sps, pps: v.pps, version: 1 }, 1);
const audio = newTrackState({ id: 1, codec: 'aac', clockRate: 44100, config: a.config, sampleRate: 44100, channels: 1, version: 1 }, 2);
const runs = [
  { st: video, samples: v.aus.slice(0, 3).map((au) => ({ dts: au.dts, pts: au.pts, duration: 3000, keyframe: au.keyframe, units: au.units })) },
  { st: audio, samples: a.frames.slice(0, 4).map((f, i) => ({ dts: i * 1024, pts: i * 1024, duration: 1024, keyframe: true, units: [f] })) },
];

describe('TsFragmentWriter', () => {
  it('refuses to write before configure', () => {
    assert.throws(() => new TsFragmentWriter().write(runs, 1, true), StateError);
  });

  it('writes whole 188-byte packets, PAT first at a segment start, none otherwise', () => {
    const w = new TsFragmentWriter();
    assert.equal(w.configure([video, audio]), undefined, 'no init segment');
    const first = w.write(runs, 1, true);
    const next = w.write(runs, 2, false);
    assert.equal(first.byteLength % 188, 0);
    assert.equal(next.byteLength % 188, 0);
    const pid = (b: Uint8Array): number => ((b[1]! & 0x1f) << 8) | b[2]!;
    assert.equal(pid(first), 0, 'PAT');
    assert.notEqual(pid(next), 0);
  });
});
