import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseLlhls } from '../../bench/hls-load.js';
import { writeMediaPlaylist, type MediaPlaylist } from '../../src/egress/hls/playlist.js';

const part = (id: number, independent = false) => ({ uri: `part${id}.mp4`, duration: 0.2, independent });
const playlist: MediaPlaylist = {
  targetDuration: 1,
  mediaSequence: 10,
  canBlockReload: true,
  canSkipUntil: 6,
  lowLatency: { partTarget: 0.2145, preloadHintUri: 'part57.mp4' },
  segments: [
    ...Array.from({ length: 8 }, (_, i) => ({ uri: `seg${10 + i}.mp4`, duration: 1 })),
    { uri: 'seg18.mp4', duration: 1, parts: [part(45, true), part(46), part(47), part(48), part(49)] },
    { uri: 'seg19.mp4', duration: 1, parts: [part(50, true), part(51), part(52), part(53), part(54)] },
    { duration: 0.4, parts: [part(55, true), part(56)] },
  ],
};

describe('bench/hls-load: parseLlhls', () => {
  it('lists the parts and the position of the next one (in-progress segment)', () => {
    const r = parseLlhls(writeMediaPlaylist(playlist, { uriQuery: 's=abc' }));
    assert.deepEqual(r.parts.map((p) => p.id), [45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56]);
    assert.equal(r.parts[0]!.uri, 'part45.mp4?s=abc');
    assert.deepEqual([r.nextMsn, r.nextPart], [20, 2]);
  });

  it('counts skipped segments of a delta update, and a just-completed segment asks for part 0 of the next', () => {
    const done: MediaPlaylist = { ...playlist, segments: playlist.segments.slice(0, -1) };
    const r = parseLlhls(writeMediaPlaylist(done, { skip: true }));
    assert.match(writeMediaPlaylist(done, { skip: true }), /EXT-X-SKIP:SKIPPED-SEGMENTS=[1-9]/);
    assert.deepEqual([r.nextMsn, r.nextPart], [20, 0]);
    assert.equal(r.parts.at(-1)!.id, 54);
  });
});
