import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fromHandoverSegment, programDateTimeMs, toHandoverSegment, withoutMedia, type SegmenterHandover } from '../../../src/egress/hls/handover.js';
import type { Segment } from '../../../src/egress/hls/segment-window.js';

const data = Uint8Array.of(1, 2, 3);
const seg: Segment = {
  msn: 3,
  parts: [{ id: 7, msn: 3, index: 0, data, duration: 45000, independent: true }, { id: 8, msn: 3, index: 1, data, duration: 45000, independent: false }],
  duration: 90000,
  frames: 30,
  startDts: 180000,
  bytes: 6,
  discontinuity: true,
  initGen: 1,
  completedAtMs: 1000,
  partsHiddenAtMs: undefined,
  expiresAtMs: Infinity,
};

describe('handover', () => {
  it('a segment goes to absolute times and back (dated by its own PDT afterwards)', () => {
    const h = toHandoverSegment(seg, 90000, 5000);
    assert.equal(h.programDateTimeMs, 7000);
    assert.deepEqual(h.parts.map((p) => p.durationS), [0.5, 0.5]);
    assert.equal(h.parts[0]!.data, data, 'media handed over as views');
    const back = fromHandoverSegment(h, 48000);
    assert.deepEqual(back, { ...seg, parts: seg.parts.map((p) => ({ ...p, duration: 24000 })), duration: 48000, startDts: 0, pdtMs: 7000 });
    assert.equal(programDateTimeMs(back, 0, 48000), 7000);
  });

  it('withoutMedia keeps the counters and counts the discontinuities of the dropped segments (6.2.2)', () => {
    const h: SegmenterHandover = {
      nextMsn: 4, nextPartId: 9, nextInitGen: 2, discontinuitySequence: 2, targetDurationS: 1, partTargetS: 0.5, maxPlaylistMs: 4000,
      published: true, listed: [toHandoverSegment(seg, 90000, 0), toHandoverSegment({ ...seg, discontinuity: false }, 90000, 0)],
      retired: [toHandoverSegment(seg, 90000, 0)], inits: [[1, data]],
    };
    assert.deepEqual(withoutMedia(h), { ...h, discontinuitySequence: 3, listed: [], retired: [], inits: [] });
  });
});
