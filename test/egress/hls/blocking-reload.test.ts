import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { blockingDecision, type BlockingView } from '../../../src/egress/hls/blocking-reload.js';

/** Segments 5..7 complete with 4 parts each (5 no longer retained), segment 8 open with 2 parts. */
function view(over: Partial<BlockingView> = {}): BlockingView {
  return {
    ended: false,
    published: true,
    openMsn: 8,
    openParts: 2,
    partsOf: (m) => (m >= 6 && m <= 7 ? 4 : undefined),
    partsToMinimum: () => 3,
    partTargetS: 0.2,
    ...over,
  };
}

describe('blockingDecision (rfc8216bis 6.2.5.2)', () => {
  it('ended: always ready; unpublished: wait', () => {
    assert.equal(blockingDecision(view({ ended: true }), 1000, 50), 'ready');
    assert.equal(blockingDecision(view({ published: false }), 1000), 'wait');
  });

  it('msn only: ready up to the last complete segment, wait for the next two, then 400', () => {
    assert.equal(blockingDecision(view(), 7), 'ready');
    assert.equal(blockingDecision(view(), 8), 'wait');
    assert.equal(blockingDecision(view(), 9), 'wait');
    assert.equal(blockingDecision(view(), 10), 'bad-request');
  });

  it('parts: a built part is ready, an index past a parent\'s last part is the next segment\'s part 0', () => {
    assert.equal(blockingDecision(view(), 5, 99), 'ready', 'no longer retained');
    assert.equal(blockingDecision(view(), 7, 3), 'ready');
    assert.equal(blockingDecision(view(), 7, 4), 'ready', 'part 0 of segment 8 exists');
    assert.equal(blockingDecision(view(), 8, 1), 'ready');
    assert.equal(blockingDecision(view(), 8, 2), 'wait');
  });

  it('Advance Part Limit: 3 / PART-TARGET under 1 s, else 3 parts', () => {
    // 0.2 s parts: limit 15 parts ahead of the last built one (index 1)
    assert.equal(blockingDecision(view(), 8, 16), 'wait');
    assert.equal(blockingDecision(view(), 8, 17), 'bad-request');
    // next segment: 3 parts to the minimum + p + 1
    assert.equal(blockingDecision(view(), 9, 11), 'wait');
    assert.equal(blockingDecision(view(), 9, 12), 'bad-request');
    assert.equal(blockingDecision(view({ partTargetS: 1 }), 8, 4), 'wait');
    assert.equal(blockingDecision(view({ partTargetS: 1 }), 8, 5), 'bad-request');
  });
});
