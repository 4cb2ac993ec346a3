import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SegmentWindow, type Part } from '../../../src/egress/hls/segment-window.js';
import { LimitError } from '../../../src/errors.js';

const RATE = 1000; // ticks are ms here

/** A window with target duration 1 s and `n` complete 1 s segments of one 100-byte part each, completed at 1000·i. */
function filled(n: number, opts: Partial<{ segmentCount: number; maxBytes: number; variant: 'lowLatency' | 'fmp4' | 'mpegts' }> = {}): {
  w: SegmentWindow;
  counters: { evictedEarly: number };
} {
  const counters = { evictedEarly: 0 };
  const w = new SegmentWindow({ variant: 'lowLatency', segmentCount: 3, maxBytes: 1 << 20, ...opts }, RATE, counters, undefined, -1);
  w.addInit(0, new Uint8Array(10));
  w.current.initGen = 0;
  w.targetDurationS = 1;
  for (let i = 0; i < n; i++) addSegment(w, i);
  return { w, counters };
}

let nextId = 0;
function addSegment(w: SegmentWindow, i: number): void {
  w.now = 1000 * (i + 1);
  const part: Part = { id: nextId++, msn: w.current.msn, index: 0, data: new Uint8Array(100), duration: 1000, independent: true };
  w.addPart(part, 30);
  w.listCurrent();
  w.openNext(0);
  w.trim(0);
  w.updatePartWindow();
}

describe('SegmentWindow', () => {
  it('numbers segments, counts bytes, lists up to segmentCount while keeping 3 target durations', () => {
    nextId = 0;
    const { w } = filled(5);
    // 5 listed > segmentCount 3: the oldest go while 3 target durations stay
    assert.deepEqual(w.listed.map((s) => s.msn), [2, 3, 4]);
    assert.deepEqual(w.retired.map((s) => s.msn), [0, 1]);
    assert.equal(w.current.msn, 5);
    assert.equal(w.nextMsnForSuccessor(), 5);
    assert.equal(w.bytes, 10 + 5 * 100);
    assert.equal(w.maxPlaylistMs, 4000);
  });

  it('hides EXT-X-PART tags beyond three target durations from the end, and expires retired segments (6.2.2)', () => {
    nextId = 0;
    const { w } = filled(5);
    assert.deepEqual(w.listed.map((s) => s.partsHiddenAtMs), [undefined, undefined, undefined]);
    // segment 0's parts were hidden at 4000 (4 s listed); it is available until completed (1000) + 1 s + the
    // longest playlist (4 s), its parts until 3 s after they were hidden
    assert.deepEqual(w.retired.map((s) => [s.partsHiddenAtMs, s.expiresAtMs]), [[4000, 7000], [5000, 8000]]);
    assert.equal(w.nextDeadline(), 7000);
    w.now = 6999;
    w.expire();
    assert.equal(w.retired.length, 2);
    w.now = 7000;
    w.expire();
    assert.deepEqual(w.retired.map((s) => s.msn), [1]);
    assert.equal(w.segmentsByMsn.has(0), false);
    assert.equal(w.parts.has(0), false);
    assert.equal(w.bytes, 10 + 4 * 100);
    assert.equal(w.nextDeadline(), 8000);
  });

  it('without parts (fmp4/mpegts) a retired segment lives for its duration plus the longest playlist', () => {
    nextId = 0;
    const { w } = filled(5, { variant: 'mpegts' });
    assert.deepEqual(w.retired.map((s) => s.expiresAtMs), [6000, 7000]);
  });

  it('enforces maxBytes: retired first, then listed down to 3 target durations, then LimitError', () => {
    nextId = 0;
    const retiredFirst = filled(5, { maxBytes: 420 });
    retiredFirst.w.enforceBytes();
    assert.deepEqual(retiredFirst.w.retired.map((s) => s.msn), [1]);
    assert.deepEqual(retiredFirst.w.listed.map((s) => s.msn), [2, 3, 4]);
    assert.equal(retiredFirst.counters.evictedEarly, 1);
    const { w, counters } = filled(5, { segmentCount: 10, maxBytes: 420 });
    assert.equal(w.listed.length, 5);
    w.enforceBytes();
    assert.deepEqual(w.listed.map((s) => s.msn), [1, 2, 3, 4]);
    assert.equal(w.retired.length, 0);
    assert.equal(counters.evictedEarly, 1);
    assert.equal(w.bytes, 410);
    const { w: tight } = filled(3, { segmentCount: 10, maxBytes: 200 });
    assert.throws(() => tight.enforceBytes(), LimitError);
  });

  it('drops init segments no retained segment refers to', () => {
    nextId = 0;
    const { w } = filled(4);
    w.addInit(1, new Uint8Array(7));
    w.current.initGen = 1;
    for (const s of w.listed) s.initGen = 1;
    w.now = 1e9;
    w.expire();
    assert.deepEqual([...w.inits.keys()], [1]);
    assert.equal(w.bytes, 7 + 3 * 100);
  });

  it('adopts a handover: numbering, segments, parts and inits continue', () => {
    const data = new Uint8Array(50);
    const seg = { msn: 9, parts: [{ id: 40, data, durationS: 0.5, independent: true }, { id: 41, data, durationS: 0.5, independent: false }], durationS: 1, frames: 30, programDateTimeMs: 123, bytes: 100, discontinuity: true, initGen: 2, completedAtMs: 5, partsHiddenAtMs: undefined, expiresAtMs: Infinity };
    const w = new SegmentWindow({ variant: 'lowLatency', segmentCount: 3, maxBytes: 1 << 20 }, 90000, { evictedEarly: 0 }, {
      nextMsn: 10, nextPartId: 42, nextInitGen: 3, discontinuitySequence: 4, targetDurationS: 1, partTargetS: 0.5, maxPlaylistMs: 3000,
      published: true, listed: [seg], retired: [], inits: [[2, new Uint8Array(20)]],
    }, 2);
    assert.equal(w.current.msn, 10);
    assert.equal(w.current.discontinuity, true);
    assert.equal(w.current.initGen, 2);
    assert.equal(w.bytes, 120);
    assert.equal(w.discontinuitySequence, 4);
    assert.deepEqual(w.parts.get(41), { id: 41, msn: 9, index: 1, data, duration: 45000, independent: false });
    assert.equal(w.segmentsByMsn.get(9)!.pdtMs, 123);
  });
});
