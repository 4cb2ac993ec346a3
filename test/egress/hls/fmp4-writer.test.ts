import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Fmp4FragmentWriter } from '../../../src/egress/hls/fmp4-writer.js';
import { newTrackState } from '../../../src/egress/hls/track-state.js';
import { audio44k, video30 } from '../../fixtures/hls/media.js';

const v = video30();
const a = audio44k();
const video = newTrackState({ id: 0, codec: 'h264', clockRate: 90000, sps: v.sps, pps: v.pps, version: 1 }, 1);
const audio = newTrackState({ id: 1, codec: 'aac', clockRate: 44100, config: a.config, sampleRate: 44100, channels: 1, version: 1 }, 2);
const runs = [
  { st: video, samples: v.aus.slice(0, 3).map((au) => ({ dts: au.dts, pts: au.pts, duration: 3000, keyframe: au.keyframe, units: au.units })) },
  { st: audio, samples: a.frames.slice(0, 4).map((f, i) => ({ dts: i * 1024, pts: i * 1024, duration: 1024, keyframe: true, units: [f] })) },
];

describe('Fmp4FragmentWriter', () => {
  it('builds an init segment (ftyp+moov) and one moof/mdat per part with the sequence number', () => {
    const w = new Fmp4FragmentWriter();
    const init = w.configure([video, audio]);
    const type = (b: Uint8Array, at = 0): string => new TextDecoder().decode(b.subarray(at + 4, at + 8));
    assert.equal(type(init), 'ftyp');
    const frag = w.write(runs, 42);
    assert.equal(type(frag), 'moof');
    // mfhd is the first box in moof: size(4) type(4) version/flags(4) sequence_number(4)
    assert.equal(type(frag, 8), 'mfhd');
    assert.equal(new DataView(frag.buffer, frag.byteOffset).getUint32(20), 42);
  });
});
