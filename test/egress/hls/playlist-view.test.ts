import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildMediaPlaylist, buildVariant, initFileName, partFileName, segmentFileName, type MediaPlaylistView } from '../../../src/egress/hls/playlist-view.js';
import { writeMediaPlaylist } from '../../../src/egress/hls/playlist.js';
import type { Part, Segment } from '../../../src/egress/hls/segment-window.js';
import { newTrackState } from '../../../src/egress/hls/track-state.js';
import { audio44k, video30 } from '../../fixtures/hls/media.js';

const RATE = 90000;
const T0 = Date.UTC(2026, 0, 1);

function part(id: number, msn: number, index: number, duration = 45000, bytes = 1000): Part {
  return { id, msn, index, data: new Uint8Array(bytes), duration, independent: index === 0 };
}

/** a segment of `n` half-second parts starting at part id `firstId` */
function segment(msn: number, firstId: number, n: number, over: Partial<Segment> = {}): Segment {
  const parts = Array.from({ length: n }, (_, i) => part(firstId + i, msn, i));
  return {
    msn,
    parts,
    duration: parts.reduce((d, p) => d + p.duration, 0),
    frames: n * 15,
    startDts: msn * 2 * RATE,
    bytes: parts.reduce((b, p) => b + p.data.byteLength, 0),
    discontinuity: false,
    initGen: 0,
    completedAtMs: 0,
    partsHiddenAtMs: undefined,
    expiresAtMs: Infinity,
    ...over,
  };
}

function view(over: Partial<MediaPlaylistView> = {}): MediaPlaylistView {
  return {
    variant: 'lowLatency',
    rate: RATE,
    listed: [segment(3, 12, 4, { partsHiddenAtMs: 5 }), segment(4, 16, 4, { discontinuity: true, initGen: 1 })],
    current: segment(5, 20, 2, { initGen: 1 }),
    targetDurationS: 2,
    discontinuitySequence: 1,
    pdtOriginMs: T0,
    partTargetS: 0.5,
    ended: false,
    nextPartId: 22,
    ...over,
  };
}

describe('file names', () => {
  it('init, part and segment URIs per variant', () => {
    assert.equal(initFileName(3), 'init3.mp4');
    assert.equal(partFileName(7, 'lowLatency'), 'part7.mp4');
    assert.equal(segmentFileName(9, 'fmp4'), 'seg9.mp4');
    assert.equal(segmentFileName(9, 'mpegts'), 'seg9.ts');
  });
});

describe('buildMediaPlaylist', () => {
  it('low latency: listed segments, parts only where not hidden, the open segment, preload hint', () => {
    const pl = buildMediaPlaylist(view());
    assert.equal(pl.mediaSequence, 3);
    assert.equal(pl.targetDuration, 2);
    assert.equal(pl.discontinuitySequence, 1);
    assert.equal(pl.canBlockReload, true);
    assert.equal(pl.canSkipUntil, 12);
    assert.deepEqual(pl.lowLatency, { partTarget: 0.5, preloadHintUri: 'part22.mp4' });
    assert.equal(pl.endList, undefined);
    assert.equal(pl.segments.length, 3);
    const [a, b, open] = pl.segments;
    assert.deepEqual(a, { duration: 2, programDateTimeMs: T0 + 6000, uri: 'seg3.mp4', mapUri: 'init0.mp4' });
    assert.equal(b!.discontinuity, true);
    assert.equal(b!.mapUri, 'init1.mp4');
    assert.deepEqual(b!.parts?.map((p) => p.uri), ['part16.mp4', 'part17.mp4', 'part18.mp4', 'part19.mp4']);
    assert.deepEqual(b!.parts?.[0], { uri: 'part16.mp4', duration: 0.5, independent: true });
    assert.equal(open!.uri, undefined, 'the open segment has parts but no URI yet');
    assert.equal(open!.duration, 1);
    assert.deepEqual(open!.parts?.map((p) => p.uri), ['part20.mp4', 'part21.mp4']);
    assert.match(writeMediaPlaylist(pl), /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part22.mp4"/);
  });

  it('a handed-over segment keeps its own program date time', () => {
    const pl = buildMediaPlaylist(view({ listed: [segment(3, 12, 4, { pdtMs: T0 - 777 })] }));
    assert.equal(pl.segments[0]!.programDateTimeMs, T0 - 777);
  });

  it('ended: EXT-X-ENDLIST, no open segment, no preload hint', () => {
    const pl = buildMediaPlaylist(view({ ended: true }));
    assert.equal(pl.endList, true);
    assert.equal(pl.segments.length, 2);
    assert.deepEqual(pl.lowLatency, { partTarget: 0.5 });
  });

  it('fmp4 and mpegts: no parts, no low-latency tags; mpegts has no EXT-X-MAP; first sequence from the open segment', () => {
    const fmp4 = buildMediaPlaylist(view({ variant: 'fmp4', discontinuitySequence: 0 }));
    assert.equal(fmp4.segments.length, 2);
    assert.ok(fmp4.segments.every((s) => s.parts === undefined && s.mapUri !== undefined));
    assert.equal(fmp4.lowLatency, undefined);
    assert.equal(fmp4.canBlockReload, undefined);
    assert.equal(fmp4.discontinuitySequence, undefined);
    const ts = buildMediaPlaylist(view({ variant: 'mpegts' }));
    assert.deepEqual(ts.segments.map((s) => [s.uri, s.mapUri]), [['seg3.ts', undefined], ['seg4.ts', undefined]]);
    const empty = buildMediaPlaylist(view({ variant: 'mpegts', listed: [] }));
    assert.equal(empty.mediaSequence, 5);
    assert.deepEqual(empty.segments, []);
  });

  it('does not mutate its input', () => {
    const v = view();
    const before = JSON.stringify(v, (_, x) => (x instanceof Uint8Array ? x.byteLength : x));
    buildMediaPlaylist(v);
    assert.equal(JSON.stringify(v, (_, x) => (x instanceof Uint8Array ? x.byteLength : x)), before);
  });
});

describe('buildVariant', () => {
  const v30 = video30();
  const aac = audio44k();
  const video = newTrackState({ id: 0, codec: 'h264', clockRate: RATE, sps: v30.sps, pps: v30.pps, width: 320, height: 240, version: 1 }, 1);
  const audio = newTrackState({ id: 1, codec: 'aac', clockRate: 44100, config: aac.config, sampleRate: 44100, channels: 1, version: 1 }, 2);
  const opus = newTrackState({ id: 2, codec: 'opus', clockRate: 48000, channels: 2, version: 1 }, 2);

  it('codecs, resolution, frame rate of the last segment, peak and average bit rate', () => {
    const small = segment(0, 0, 4); // 4000 bytes in 2 s: 16 kbit/s
    const big = { ...segment(1, 4, 2), bytes: 8000, frames: 45 }; // 8000 bytes in 1 s: 64 kbit/s, 45 fps
    const v = buildVariant({ tracks: [video, audio], listed: [small, big], rate: RATE, video: true });
    assert.deepEqual(v, {
      bandwidth: 64000,
      averageBandwidth: (12000 * 8) / 3,
      codecs: ['avc1.64000d', 'mp4a.40.2'],
      resolution: { width: 320, height: 240 },
      frameRate: 45,
    });
  });

  it('audio only (no frame rate, no resolution); zero-length segments are skipped; nothing listed', () => {
    const v = buildVariant({ tracks: [opus], listed: [{ ...segment(0, 0, 0), bytes: 10 }, segment(1, 0, 2)], rate: 48000, video: false });
    assert.deepEqual(v.codecs, ['opus']);
    assert.equal(v.resolution, undefined);
    assert.equal(v.frameRate, undefined);
    assert.equal(v.bandwidth, v.averageBandwidth);
    assert.deepEqual(buildVariant({ tracks: [audio], listed: [], rate: 44100, video: false }), { bandwidth: 0, codecs: ['mp4a.40.2'] });
  });
});
