/**
 * The HLS benchmark's measurement method: a frame's send-time stamp (SEI) must come out of streamgate's fMP4 parts
 * and MPEG-TS segments unchanged, once per frame, and hls.js must see the same UUID.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { STAMP_UUID, STAMP_UUID_HLSJS, findStamps, stampNal, tsElementaryStreams } from '../../bench/hls-media.js';
import { HlsSegmenter, type SegmenterTrack } from '../../src/egress/hls/segmenter.js';
import { video30 } from '../fixtures/hls/media.js';

const fixture = video30();
const T0 = Date.UTC(2026, 0, 1);

/** 2 s of the fixture video, each frame with a stamp of T0 + its index, through a segmenter of `variant`. */
function stampedSegments(variant: 'lowLatency' | 'mpegts'): { seg: HlsSegmenter; names: string[] } {
  const track: SegmenterTrack = { id: 0, codec: 'h264', clockRate: 90000, sps: fixture.sps, pps: fixture.pps, width: 320, height: 240, version: 1 };
  const seg = new HlsSegmenter([track], { variant });
  for (let i = 0; i < 61; i++) {
    const au = fixture.aus[i % fixture.aus.length]!;
    const stamp = stampNal((T0 + i).toFixed(3)).subarray(4); // without the AVCC length prefix: a bare NAL unit
    const units = [stamp, ...au.units];
    seg.push({ track, dts: i * 3000, pts: i * 3000, keyframe: i % 30 === 0, au: units, byteLength: units.reduce((n, u) => n + u.length, 0) }, T0 + i * 33);
  }
  const ext = variant === 'mpegts' ? 'ts' : 'mp4';
  return { seg, names: [`seg0.${ext}`, `seg1.${ext}`] };
}

describe('bench/hls-media: frame stamps', () => {
  it('an SEI user_data_unregistered NAL unit with no zero byte (no emulation prevention), length-prefixed', () => {
    const nal = stampNal('1767225600000.125');
    assert.equal(nal.readUInt32BE(0), nal.length - 4);
    assert.equal(nal[4], 0x06);
    assert.equal(nal[5], 5);
    assert.equal(nal[6], STAMP_UUID.length + 17);
    assert.equal(nal.subarray(4).includes(0), false);
    assert.equal(nal[nal.length - 1], 0x80);
    assert.equal(STAMP_UUID_HLSJS, '73747265-616d-6761-7465-2d62656e6368');
    assert.deepEqual(findStamps(nal), [1767225600000.125]);
  });

  it('come out of streamgate fMP4 segments once per frame, in order', () => {
    const { seg, names } = stampedSegments('lowLatency');
    const stamps = names.flatMap((n) => {
      const f = seg.file(n);
      if (f.status !== 'ok') assert.fail(`${n}: ${f.status}`);
      return findStamps(Buffer.concat(f.file.chunks));
    });
    assert.deepEqual(stamps, Array.from({ length: 60 }, (_, i) => T0 + i));
  });

  it('come out of MPEG-TS segments once the packets are joined per PID', () => {
    const { seg, names } = stampedSegments('mpegts');
    const stamps = names.flatMap((n) => {
      const f = seg.file(n);
      if (f.status !== 'ok') assert.fail(`${n}: ${f.status}`);
      return tsElementaryStreams(Buffer.concat(f.file.chunks)).flatMap((es) => findStamps(es));
    });
    assert.deepEqual(stamps, Array.from({ length: 60 }, (_, i) => T0 + i));
  });
});
