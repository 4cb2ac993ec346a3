import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { lookupFile } from '../../../src/egress/hls/hls-files.js';
import { SegmentWindow } from '../../../src/egress/hls/segment-window.js';

function window(): SegmentWindow {
  const w = new SegmentWindow({ variant: 'lowLatency', segmentCount: 7, maxBytes: 1 << 20 }, 90000, { evictedEarly: 0 }, undefined, 0);
  w.addInit(0, Uint8Array.of(1, 2, 3));
  w.addPart({ id: 0, msn: 0, index: 0, data: Uint8Array.of(4, 5), duration: 9000, independent: true }, 3);
  w.addPart({ id: 1, msn: 0, index: 1, data: Uint8Array.of(6), duration: 9000, independent: false }, 3);
  w.listCurrent();
  w.openNext(0);
  return w;
}

describe('lookupFile', () => {
  it('serves init segments, segments as their parts (views) and parts (low latency)', () => {
    const w = window();
    const ctx = { variant: 'lowLatency' as const, video: true, hintedPartId: 2 };
    const seg = lookupFile(w, 'seg0.mp4', ctx);
    assert.ok(seg.status === 'ok');
    assert.deepEqual(seg.file, { kind: 'segment', contentType: 'video/mp4', chunks: [w.parts.get(0)!.data, w.parts.get(1)!.data], byteLength: 3 });
    assert.equal(seg.file.chunks[0], w.parts.get(0)!.data, 'a view, not a copy');
    const init = lookupFile(w, 'init0.mp4', { ...ctx, video: false });
    assert.ok(init.status === 'ok');
    assert.equal(init.file.contentType, 'audio/mp4');
    assert.equal(init.file.byteLength, 3);
    assert.equal(lookupFile(w, 'part1.mp4', ctx).status, 'ok');
  });

  it('the hinted part is pending until built; other names are not found', () => {
    const w = window();
    const ctx = { variant: 'lowLatency' as const, video: true, hintedPartId: 2 };
    assert.deepEqual(lookupFile(w, 'part2.mp4', ctx), { status: 'pending' });
    assert.deepEqual(lookupFile(w, 'part2.mp4', { ...ctx, hintedPartId: undefined }), { status: 'not-found' });
    for (const name of ['part3.mp4', 'part1.ts', 'seg0.ts', 'seg1.mp4', 'init1.mp4', 'init0.ts', 'seg00x.mp4', '../seg0.mp4', 'seg1234567890123456.mp4']) {
      assert.deepEqual(lookupFile(w, name, ctx), { status: 'not-found' }, name);
    }
  });

  it('fmp4 serves no parts; mpegts serves .ts segments as video/mp2t and no init', () => {
    const w = window();
    assert.deepEqual(lookupFile(w, 'part0.mp4', { variant: 'fmp4', video: true, hintedPartId: 2 }), { status: 'not-found' });
    const ts = { variant: 'mpegts' as const, video: true, hintedPartId: 2 };
    const seg = lookupFile(w, 'seg0.ts', ts);
    assert.ok(seg.status === 'ok');
    assert.equal(seg.file.contentType, 'video/mp2t');
    assert.deepEqual(lookupFile(w, 'init0.mp4', ts), { status: 'not-found' });
    assert.deepEqual(lookupFile(w, 'part0.ts', ts), { status: 'not-found' });
  });
});
