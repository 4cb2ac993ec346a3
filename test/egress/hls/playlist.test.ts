import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import {
  formatDecimal,
  skippedSegmentCount,
  writeMediaPlaylist,
  writeMultivariantPlaylist,
  type MediaPlaylist,
  type PlaylistSegment,
} from '../../../src/egress/hls/playlist.js';

/** What m3u8-parser (an independent parser, used by video.js) returns, narrowed to the fields we check. */
interface ParsedManifest {
  version?: number;
  targetDuration?: number;
  mediaSequence?: number;
  discontinuitySequence?: number;
  endList?: boolean;
  segments: { uri: string; duration: number; map?: { uri: string }; programDateTime?: number; discontinuity?: boolean; parts?: { uri: string; duration: number; independent?: boolean }[] }[];
  serverControl?: { canBlockReload?: boolean; partHoldBack?: number; canSkipUntil?: number };
  partInf?: { partTarget: number };
  skip?: { skippedSegments: number };
  preloadSegment?: { parts?: { uri: string; duration: number; independent?: boolean }[]; preloadHints?: { type: string; uri: string }[] };
  playlists?: { uri: string; attributes: Record<string, unknown> }[];
}
const require = createRequire(import.meta.url);
const { Parser } = require('m3u8-parser') as { Parser: new () => { push(s: string): void; end(): void; manifest: ParsedManifest } };

function parse(text: string): ParsedManifest {
  const p = new Parser();
  p.push(text);
  p.end();
  return p.manifest;
}

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

/** A live LL-HLS playlist: `n` complete 2 s segments of 10 parts (the last 2 listed with parts) + 3 parts. */
function llPlaylist(n = 4): MediaPlaylist {
  const segments: PlaylistSegment[] = [];
  let part = 0;
  const parts = (count: number): { uri: string; duration: number; independent: boolean }[] =>
    Array.from({ length: count }, (_, i) => ({ uri: `part${part++}.mp4`, duration: 0.2, independent: i === 0 }));
  for (let i = 0; i < n; i++) {
    const p = parts(10);
    const s: PlaylistSegment = { uri: `seg${10 + i}.mp4`, duration: 2, mapUri: 'init0.mp4', programDateTimeMs: T0 + i * 2000 };
    if (i >= n - 2) s.parts = p;
    segments.push(s);
  }
  segments.push({ duration: 0.6, mapUri: 'init0.mp4', programDateTimeMs: T0 + n * 2000, parts: parts(3) });
  return {
    targetDuration: 2,
    mediaSequence: 10,
    canBlockReload: true,
    canSkipUntil: 12,
    lowLatency: { partTarget: 0.21667, preloadHintUri: `part${part}.mp4` },
    segments,
  };
}

describe('writeMediaPlaylist', () => {
  it('writes a Low-Latency HLS playlist (expected text)', () => {
    const text = writeMediaPlaylist(llPlaylist(3));
    const parts = (from: number, n: number): string =>
      Array.from({ length: n }, (_, i) => `#EXT-X-PART:DURATION=0.20000,URI="part${from + i}.mp4"${i === 0 ? ',INDEPENDENT=YES' : ''}\n`).join('');
    assert.equal(
      text,
      '#EXTM3U\n' +
        '#EXT-X-VERSION:6\n' +
        '#EXT-X-TARGETDURATION:2\n' +
        '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.00000,PART-HOLD-BACK=0.65001\n' +
        '#EXT-X-PART-INF:PART-TARGET=0.21667\n' +
        '#EXT-X-MEDIA-SEQUENCE:10\n' +
        '#EXT-X-MAP:URI="init0.mp4"\n' +
        '#EXT-X-PROGRAM-DATE-TIME:2026-01-01T12:00:00.000Z\n' +
        '#EXTINF:2.00000,\nseg10.mp4\n' +
        '#EXT-X-PROGRAM-DATE-TIME:2026-01-01T12:00:02.000Z\n' +
        parts(10, 10) +
        '#EXTINF:2.00000,\nseg11.mp4\n' +
        '#EXT-X-PROGRAM-DATE-TIME:2026-01-01T12:00:04.000Z\n' +
        parts(20, 10) +
        '#EXTINF:2.00000,\nseg12.mp4\n' +
        '#EXT-X-PROGRAM-DATE-TIME:2026-01-01T12:00:06.000Z\n' +
        parts(30, 3) +
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part33.mp4"\n',
    );
  });

  it('round-trips through m3u8-parser with the LL-HLS rules intact', () => {
    const m = parse(writeMediaPlaylist(llPlaylist(5)));
    assert.equal(m.targetDuration, 2);
    assert.equal(m.mediaSequence, 10);
    assert.deepEqual(m.segments.map((s) => s.uri), ['seg10.mp4', 'seg11.mp4', 'seg12.mp4', 'seg13.mp4', 'seg14.mp4']);
    assert.ok(m.segments.every((s) => s.map?.uri === 'init0.mp4'));
    assert.equal(m.segments[0]!.programDateTime, T0);
    assert.equal(m.segments[3]!.parts?.length, 10);
    assert.equal(m.segments[3]!.parts?.[0]?.independent, true);
    assert.equal(m.segments[0]!.parts, undefined);
    assert.equal(m.partInf?.partTarget, 0.21667);
    assert.equal(m.serverControl?.canBlockReload, true);
    assert.ok(m.serverControl!.partHoldBack! >= 3 * m.partInf!.partTarget, 'PART-HOLD-BACK ≥ 3 × PART-TARGET (Apple 14.3)');
    assert.ok(m.serverControl!.canSkipUntil! >= 6 * m.targetDuration!, 'CAN-SKIP-UNTIL ≥ 6 × target (4.4.3.8)');
    assert.deepEqual(m.preloadSegment?.parts?.map((p) => p.uri), ['part50.mp4', 'part51.mp4', 'part52.mp4']);
    assert.deepEqual(m.preloadSegment?.preloadHints, [{ type: 'PART', uri: 'part53.mp4' }]);
    for (const s of m.segments) for (const p of s.parts ?? []) assert.ok(p.duration <= m.partInf!.partTarget);
  });

  it('writes a delta update for _HLS_skip=YES: segments older than the skip boundary become EXT-X-SKIP', () => {
    // Apple's example shape: 4 s segments, CAN-SKIP-UNTIL 24 s, 9 complete segments → 3 skipped
    const segments: PlaylistSegment[] = Array.from({ length: 9 }, (_, i) => ({ uri: `fs${264 + i}.mp4`, duration: 4, mapUri: 'init.mp4', programDateTimeMs: T0 + 4000 * i }));
    segments.push({ duration: 1, mapUri: 'init.mp4', programDateTimeMs: T0 + 36000, parts: [{ uri: 'p0.mp4', duration: 1, independent: true }] });
    const p: MediaPlaylist = { targetDuration: 4, mediaSequence: 264, canBlockReload: true, canSkipUntil: 24, lowLatency: { partTarget: 1, preloadHintUri: 'p1.mp4' }, segments };
    assert.equal(skippedSegmentCount(p, 24), 3);
    const text = writeMediaPlaylist(p, { skip: true });
    assert.match(text, /^#EXTM3U\n#EXT-X-VERSION:9\n/);
    assert.match(text, /#EXT-X-MEDIA-SEQUENCE:264\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T12:00:12.000Z\n#EXTINF:4.00000,\nfs267.mp4\n/);
    assert.doesNotMatch(text, /fs266|EXT-X-MAP/, 'skipped segments and the unchanged MAP are left out');
    const m = parse(text);
    assert.equal(m.skip?.skippedSegments, 3);
    assert.equal(m.segments.length, 6);
    // ignored without CAN-SKIP-UNTIL, and once the playlist has ended (6.2.5.1)
    assert.doesNotMatch(writeMediaPlaylist({ ...p, canSkipUntil: undefined }, { skip: true }), /EXT-X-SKIP/);
    assert.doesNotMatch(writeMediaPlaylist({ ...p, endList: true }, { skip: true }), /EXT-X-SKIP/);
  });

  it('raises CAN-SKIP-UNTIL to six target durations', () => {
    const text = writeMediaPlaylist({ ...llPlaylist(1), canSkipUntil: 1 });
    assert.match(text, /CAN-SKIP-UNTIL=12\.00000/);
  });

  it('writes discontinuities, a new EXT-X-MAP where the init changes, ENDLIST, and no hint after the end', () => {
    const p: MediaPlaylist = {
      targetDuration: 2,
      mediaSequence: 3,
      discontinuitySequence: 1,
      lowLatency: { partTarget: 0.2, preloadHintUri: 'part9.mp4' },
      endList: true,
      segments: [
        { uri: 'seg3.mp4', duration: 2, mapUri: 'init0.mp4' },
        { uri: 'seg4.mp4', duration: 1.5, mapUri: 'init1.mp4', discontinuity: true },
        { uri: 'seg5.mp4', duration: 1.96, mapUri: 'init1.mp4' },
      ],
    };
    const text = writeMediaPlaylist(p);
    assert.match(
      text,
      /#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-MAP:URI="init0.mp4"\n#EXTINF:2.00000,\nseg3.mp4\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init1.mp4"\n#EXTINF:1.50000,\nseg4.mp4\n#EXTINF:1.96000,\nseg5.mp4\n#EXT-X-ENDLIST\n$/,
    );
    const m = parse(text);
    assert.equal(m.discontinuitySequence, 1);
    assert.equal(m.endList, true);
    assert.equal(m.segments[1]!.discontinuity, true);
    assert.equal(m.segments[2]!.map?.uri, 'init1.mp4');
  });

  it('writes classic MPEG-TS playlists at version 3, with a session query on every URI', () => {
    const text = writeMediaPlaylist(
      { targetDuration: 2, mediaSequence: 0, segments: [{ uri: 'seg0.ts', duration: 2.002 }, { uri: 'seg1.ts', duration: 1.9 }] },
      { uriQuery: 's=abc' },
    );
    assert.equal(text, '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.00200,\nseg0.ts?s=abc\n#EXTINF:1.90000,\nseg1.ts?s=abc\n');
    assert.match(writeMediaPlaylist(llPlaylist(1), { uriQuery: 's=1' }), /#EXT-X-MAP:URI="init0.mp4\?s=1"[\s\S]*PRELOAD-HINT:TYPE=PART,URI="part13.mp4\?s=1"\n$/);
  });

  it('refuses URIs that cannot be quoted', () => {
    assert.throws(() => writeMediaPlaylist({ targetDuration: 1, mediaSequence: 0, segments: [{ uri: 'a.mp4', duration: 1, mapUri: 'x".mp4' }] }), RangeError);
  });

  it('property: PART-HOLD-BACK as written is at least 3 × PART-TARGET as written', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.01, max: 5, noNaN: true }), (partTarget) => {
        const m = parse(writeMediaPlaylist({ targetDuration: 6, mediaSequence: 0, canBlockReload: true, lowLatency: { partTarget }, segments: [] }));
        assert.ok(m.serverControl!.partHoldBack! >= 3 * m.partInf!.partTarget - 1e-12);
        assert.equal(formatDecimal(partTarget), m.partInf!.partTarget.toFixed(5));
      }),
      { numRuns: 300 },
    );
  });
});

describe('writeMultivariantPlaylist', () => {
  it('writes one variant with CODECS, RESOLUTION, BANDWIDTH and FRAME-RATE (expected text, m3u8-parser)', () => {
    const text = writeMultivariantPlaylist({
      variants: [{ uri: 'stream.m3u8', bandwidth: 1234567.8, averageBandwidth: 1000000.2, codecs: ['avc1.64001f', 'mp4a.40.2'], resolution: { width: 1280, height: 720 }, frameRate: 29.97 }],
    }, { uriQuery: 's=xyz' });
    assert.equal(
      text,
      '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1234568,AVERAGE-BANDWIDTH=1000000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=29.970\nstream.m3u8?s=xyz\n',
    );
    const m = parse(text);
    assert.equal(m.playlists?.length, 1);
    const a = m.playlists![0]!.attributes;
    assert.equal(a.BANDWIDTH, 1234568);
    assert.equal(a.CODECS, 'avc1.64001f,mp4a.40.2');
    assert.deepEqual(a.RESOLUTION, { width: 1280, height: 720 });
    assert.equal(a['FRAME-RATE'], 29.97);
  });

  it('writes audio-only variants without RESOLUTION', () => {
    const text = writeMultivariantPlaylist({ variants: [{ uri: 'a.m3u8', bandwidth: 70000, codecs: ['mp4a.40.2'] }] });
    assert.equal(text, '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=70000,CODECS="mp4a.40.2"\na.m3u8\n');
  });
});
