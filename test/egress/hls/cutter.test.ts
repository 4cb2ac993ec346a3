import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SegmentCutter, type SegmenterEvent, type SegmenterStats } from '../../../src/egress/hls/cutter.js';
import type { FragmentWriter, PartRun } from '../../../src/egress/hls/fragment-writer.js';
import { SegmentWindow } from '../../../src/egress/hls/segment-window.js';
import { DEFAULT_SEGMENTER_OPTIONS, type SegmenterOptions } from '../../../src/egress/hls/segmenter-options.js';
import { newTrackState, type TrackState } from '../../../src/egress/hls/track-state.js';
import { video30 } from '../../fixtures/hls/media.js';

/** A writer that records the runs it got and writes one byte per sample. */
class RecordingWriter implements FragmentWriter {
  readonly parts: { samples: number[]; sequenceNumber: number; startsSegment: boolean }[] = [];
  configured = 0;
  configure(): Uint8Array {
    this.configured++;
    return Uint8Array.of(0);
  }
  write(runs: readonly PartRun[], sequenceNumber: number, startsSegment: boolean): Uint8Array {
    const samples = runs.map((r) => r.samples.length);
    this.parts.push({ samples, sequenceNumber, startsSegment });
    return new Uint8Array(samples.reduce((a, b) => a + b, 0));
  }
}

function setup(over: Partial<SegmenterOptions> = {}): { cutter: SegmentCutter; window: SegmentWindow; writer: RecordingWriter; video: TrackState; stats: SegmenterStats } {
  const v = video30();
  const options = { ...DEFAULT_SEGMENTER_OPTIONS, ...over };
  const video = newTrackState({ id: 0, codec: 'h264', clockRate: 90000, sps: v.sps, pps: v.pps, version: 1 }, 1);
  const stats = { framesIn: 0, framesDropped: 0, timestampJumps: 0, gaps: 0, forcedCuts: 0, evictedEarly: 0 };
  const window = new SegmentWindow(options, 90000, stats, undefined, -1);
  const writer = new RecordingWriter();
  const cutter = new SegmentCutter({ options, driving: video, window, writer, stats }, -1);
  cutter.begin([video]);
  return { cutter, window, writer, video, stats };
}

/** 30 fps frames `from`..`to-1`, a keyframe every `gop` frames (0: only the first) */
function feed(c: SegmentCutter, video: TrackState, window: SegmentWindow, from: number, to: number, gop: number): SegmenterEvent[] {
  const events: SegmenterEvent[] = [];
  for (let i = from; i < to; i++) {
    window.now = 1000 + i * 33;
    c.push(video, { dts: i * 3000, pts: i * 3000, duration: 0, keyframe: gop > 0 ? i % gop === 0 : i === 0, units: [] });
    events.push(...c.drain());
  }
  return events;
}

describe('SegmentCutter', () => {
  it('30 fps, 1 s GOPs: 6-frame parts under the part target, segments at keyframes, ready after two segments', () => {
    const { cutter, window, writer, video } = setup();
    const events = feed(cutter, video, window, 0, 91, 30);
    assert.equal(cutter.partTarget, 19500, '6 frames + half a frame');
    assert.equal(cutter.partTargetS, 19500 / 90000);
    assert.equal(writer.configured, 1);
    assert.deepEqual(events.filter((e) => e.type !== 'part'), [{ type: 'segment', msn: 0 }, { type: 'ready' }, { type: 'segment', msn: 1 }, { type: 'segment', msn: 2 }]);
    assert.deepEqual(events.slice(0, 5).map((e) => e.type === 'part' && e.index), [0, 1, 2, 3, 4]);
    assert.ok(writer.parts.every((p) => p.samples[0] === 6));
    assert.deepEqual(writer.parts.map((p) => p.sequenceNumber), writer.parts.map((_, i) => i + 1));
    assert.equal(cutter.published, true);
    assert.equal(window.targetDurationS, 1);
    assert.deepEqual(window.listed.map((s) => [s.msn, s.duration, s.parts.length]), [[0, 90000, 5], [1, 90000, 5], [2, 90000, 5]]);
    assert.equal(cutter.nextPartId, 15);
    assert.equal(cutter.pdtOriginMs, 1000 + 30 * 33, 'no estimate given: the clock when the first segment completed');
    cutter.finish();
    assert.deepEqual(cutter.drain(), [{ type: 'part', id: 15, msn: 3, index: 0 }, { type: 'segment', msn: 3 }]);
  });

  it('no keyframe after the minimum duration: one keyframe-wanted per minimum duration', () => {
    const { cutter, window, video } = setup();
    const events = feed(cutter, video, window, 0, 95, 0);
    assert.deepEqual(events.filter((e) => e.type === 'keyframe-wanted').length, 3, 'at 1 s, 2 s and 3 s of open segment');
    assert.equal(window.listed.length, 0);
    assert.equal(cutter.partsToMinimum(), 0);
  });

  it('the earliest origin estimate wins until the first segment completes', () => {
    const { cutter, window, video } = setup();
    cutter.estimateOrigin(500);
    cutter.estimateOrigin(400);
    cutter.estimateOrigin(450);
    feed(cutter, video, window, 0, 31, 30);
    cutter.estimateOrigin(100);
    assert.equal(cutter.pdtOriginMs, 400);
  });
});
