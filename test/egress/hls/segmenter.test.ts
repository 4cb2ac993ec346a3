import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { writeMediaPlaylist, writeMultivariantPlaylist } from '../../../src/egress/hls/playlist.js';
import {
  HlsSegmenter,
  type HlsFile,
  type SegmenterEvent,
  type SegmenterFrame,
  type SegmenterOptions,
  type SegmenterTrack,
  withoutMedia,
} from '../../../src/egress/hls/segmenter.js';
import { UnsupportedError } from '../../../src/errors.js';
import { audio44k, video30 } from '../../fixtures/hls/media.js';
import { hasCommand, run } from '../../helpers/media-tools.js';

interface ParsedPart {
  uri: string;
  duration: number;
  independent?: boolean;
}
interface ParsedManifest {
  targetDuration: number;
  mediaSequence: number;
  discontinuitySequence: number;
  endList?: boolean;
  segments: { uri: string; duration: number; map?: { uri: string }; discontinuity?: boolean; programDateTime?: number; parts?: ParsedPart[] }[];
  partInf?: { partTarget: number };
  serverControl?: { partHoldBack?: number; canSkipUntil?: number; canBlockReload?: boolean };
  preloadSegment?: { parts?: ParsedPart[]; preloadHints?: { uri: string }[] };
}
const require = createRequire(import.meta.url);
const { Parser } = require('m3u8-parser') as { Parser: new () => { push(s: string): void; end(): void; manifest: ParsedManifest } };

const fixture = video30();
const aac = audio44k();
const T0 = Date.UTC(2026, 0, 1);

function videoTrack(): SegmenterTrack {
  return { id: 0, codec: 'h264', clockRate: 90000, sps: fixture.sps, pps: fixture.pps, width: 320, height: 240, version: 1 };
}
function audioTrack(id = 1): SegmenterTrack {
  return { id, codec: 'aac', clockRate: 44100, config: aac.config, sampleRate: 44100, channels: 1, version: 1 };
}

const IDR = [Uint8Array.of(0x09, 0xf0), Uint8Array.of(0x65, 0x88, 0x80, 0x10)]; // AUD + IDR slice
const P = [Uint8Array.of(0x41, 0x9a, 0x02)];

function vframe(track: SegmenterTrack, dts: number, keyframe: boolean, pts = dts): SegmenterFrame {
  const au = keyframe ? IDR : P;
  return { track, dts, pts, keyframe, au, byteLength: au.reduce((n, u) => n + u.length, 0) };
}
function aframe(track: SegmenterTrack, dts: number): SegmenterFrame {
  const au = [Uint8Array.of(0x21, 0x10, 0x04, dts & 0xff)];
  return { track, dts, pts: dts, keyframe: true, au, byteLength: 4 };
}

/** A timeline entry: a frame and its arrival time (ms after T0). */
type Timed = { at: number; frame: SegmenterFrame };

/** Video at the given frame durations (90 kHz), keyframe when `key(i, t)` says so. */
function videoTimeline(track: SegmenterTrack, durations: number[], key: (i: number, dtsS: number) => boolean, start = 0): Timed[] {
  const out: Timed[] = [];
  let dts = start;
  durations.forEach((d, i) => {
    out.push({ at: (dts * 1000) / 90000, frame: vframe(track, dts, key(i, dts / 90000)) });
    dts += d;
  });
  return out;
}

function audioTimeline(track: SegmenterTrack, seconds: number, start = 0): Timed[] {
  const out: Timed[] = [];
  for (let dts = start; dts < start + seconds * 44100; dts += 1024) out.push({ at: (dts * 1000) / 44100, frame: aframe(track, dts) });
  return out;
}

/** Feeds a merged timeline in arrival order with a wall clock of T0 + arrival; returns all events. */
function feed(seg: HlsSegmenter, ...timelines: Timed[][]): SegmenterEvent[] {
  const all = timelines.flat().sort((a, b) => a.at - b.at);
  const events: SegmenterEvent[] = [];
  for (const t of all) events.push(...seg.push(t.frame, T0 + t.at));
  return events;
}

function manifest(seg: HlsSegmenter, skip = false): ParsedManifest {
  const p = new Parser();
  p.push(writeMediaPlaylist(seg.mediaPlaylist(), { skip }));
  p.end();
  return p.manifest;
}

function allParts(m: ParsedManifest): { part: ParsedPart; last: boolean }[] {
  const out: { part: ParsedPart; last: boolean }[] = [];
  for (const s of m.segments) (s.parts ?? []).forEach((part, i, a) => out.push({ part, last: i === a.length - 1 }));
  for (const part of m.preloadSegment?.parts ?? []) out.push({ part, last: false });
  return out;
}

/** The rfc8216bis rules every playlist we serve must obey. */
function checkRules(m: ParsedManifest): void {
  for (const s of m.segments) assert.ok(Math.round(s.duration) <= m.targetDuration, `EXTINF ${s.duration} rounds above ${m.targetDuration} (6.2.1)`);
  if (m.partInf) {
    const target = m.partInf.partTarget;
    assert.ok(m.serverControl!.partHoldBack! >= 3 * target - 1e-9, 'PART-HOLD-BACK ≥ 3 × PART-TARGET');
    assert.ok(m.serverControl!.canSkipUntil! >= 6 * m.targetDuration, 'CAN-SKIP-UNTIL ≥ 6 × target');
    for (const { part } of allParts(m)) assert.ok(part.duration <= target, `part ${part.uri} ${part.duration} > PART-TARGET ${target}`);
  }
}

/** Bytes of a served file. */
function bytesOf(f: HlsFile): Buffer {
  return Buffer.concat(f.chunks);
}

function fileOf(seg: HlsSegmenter, name: string): HlsFile {
  const r = seg.file(name);
  assert.equal(r.status, 'ok', `${name} is served`);
  return (r as { file: HlsFile }).file;
}

/** tfdt (baseMediaDecodeTime) per traf, in order, found by scanning the moof of a part. */
function tfdts(part: Uint8Array): number[] {
  const out: number[] = [];
  const dv = new DataView(part.buffer, part.byteOffset, part.byteLength);
  for (let i = 0; i + 8 < part.length; i++) {
    if (part[i] === 0x74 && part[i + 1] === 0x66 && part[i + 2] === 0x64 && part[i + 3] === 0x74) {
      out.push(dv.getUint32(i + 8) * 2 ** 32 + dv.getUint32(i + 12));
    }
  }
  return out;
}

/** sample_flags of the first sample of the first trun says sync (sample_is_non_sync_sample = 0). */
function firstSampleIsSync(bytes: Uint8Array): boolean {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 4; i + 28 < bytes.length; i++) {
    if (bytes[i] === 0x74 && bytes[i + 1] === 0x72 && bytes[i + 2] === 0x75 && bytes[i + 3] === 0x6e) {
      return (dv.getUint32(i + 24) & 0x00010000) === 0; // 'trun', version/flags, count, data offset, duration, size, flags
    }
  }
  throw new Error('no trun');
}

const steady30 = (seconds: number): number[] => Array(seconds * 30).fill(3000);

describe('HlsSegmenter: steady 30 fps video + AAC', () => {
  const v = videoTrack();
  const a = audioTrack();
  const seg = new HlsSegmenter([v, a]);
  const events = feed(seg, videoTimeline(v, steady30(10), (i) => i % 30 === 0), audioTimeline(a, 10));

  it('publishes once two segments are complete (one for MPEG-TS)', () => {
    const segments = events.flatMap((e, i) => (e.type === 'segment' ? [i] : []));
    assert.equal(events.findIndex((e) => e.type === 'ready'), segments[1]! - 1);
    assert.ok(events.findIndex((e) => e.type === 'part') < segments[0]!, 'parts come before their segment');
    assert.ok(seg.ready);
    const ts = new HlsSegmenter([videoTrack()], { variant: 'mpegts' });
    const tsEvents = feed(ts, videoTimeline(videoTrack(), steady30(2), (i) => i % 30 === 0));
    assert.equal(tsEvents.findIndex((e) => e.type === 'ready'), tsEvents.findIndex((e) => e.type === 'segment') - 1);
    // a stream that ends after one segment is still served
    const short = new HlsSegmenter([videoTrack()]);
    feed(short, videoTimeline(videoTrack(), Array(20).fill(3000), (i) => i === 0));
    assert.equal(short.ready, false);
    assert.deepEqual(short.finish(T0 + 2000).map((e) => e.type), ['part', 'segment', 'ready', 'ended']);
  });

  it('fixes PART-TARGET from the frame rate (6 frames + half a frame) and TARGETDURATION from the first GOP', () => {
    assert.equal(seg.partTargetS, 19500 / 90000);
    assert.equal(seg.targetDurationS, 1);
    const m = manifest(seg);
    assert.equal(m.partInf?.partTarget, 0.21667);
    assert.equal(m.targetDuration, 1);
    checkRules(m);
  });

  it('cuts 1 s segments at keyframes into five 0.2 s parts, keyframe parts INDEPENDENT', () => {
    const m = manifest(seg);
    for (const s of m.segments) assert.equal(s.duration, 1);
    const withParts = m.segments.filter((s) => s.parts);
    assert.ok(withParts.length >= 2);
    for (const s of withParts) {
      assert.deepEqual(s.parts!.map((p) => p.duration), [0.2, 0.2, 0.2, 0.2, 0.2]);
      assert.deepEqual(s.parts!.map((p) => p.independent ?? false), [true, false, false, false, false]);
    }
    // every part but a segment's last is ≥ 85 % of the part target (4.4.4.9)
    for (const { part, last } of allParts(m)) if (!last && !part.independent) assert.ok(part.duration >= 0.85 * m.partInf!.partTarget);
  });

  it('lists segmentCount segments, never less than 3 target durations, with parts for the last 3 target durations', () => {
    const m = manifest(seg);
    assert.equal(m.segments.length, 7);
    assert.ok(m.segments.reduce((n, s) => n + s.duration, 0) >= 3 * m.targetDuration);
    const fromEnd = m.segments.slice(-3);
    assert.ok(fromEnd.every((s) => s.parts), 'recent segments carry EXT-X-PART');
    assert.equal(m.segments[0]!.parts, undefined, 'old segments do not');
    assert.equal(m.mediaSequence, events.filter((e) => e.type === 'segment').length - 7);
  });

  it('serves init, parts and segments; a segment is exactly its parts; the hinted part is pending', () => {
    const pl = seg.mediaPlaylist();
    const last = pl.segments.filter((s) => s.uri)[pl.segments.filter((s) => s.uri).length - 1]!;
    const segment = fileOf(seg, last.uri!);
    assert.equal(segment.kind, 'segment');
    assert.equal(segment.contentType, 'video/mp4');
    const parts = last.parts!.map((p) => bytesOf(fileOf(seg, p.uri)));
    assert.deepEqual(bytesOf(segment), Buffer.concat(parts));
    assert.equal(fileOf(seg, 'init0.mp4').kind, 'init');
    assert.deepEqual(seg.file(seg.preloadHintName()), { status: 'pending' });
    assert.equal(pl.lowLatency?.preloadHintUri, seg.preloadHintName());
    for (const name of ['seg999.mp4', 'seg1.ts', 'part99999.mp4', 'init7.mp4', '../init0.mp4', 'index.m3u8', 'seg01x.mp4']) {
      assert.deepEqual(seg.file(name), { status: 'not-found' }, name);
    }
  });

  it('audio and video share one timeline in each part (tfdt in seconds within a frame)', () => {
    const pl = seg.mediaPlaylist();
    const part = pl.segments.find((s) => s.parts)!.parts![2]!;
    const [vt, at] = tfdts(bytesOf(fileOf(seg, part.uri)));
    assert.ok(vt !== undefined && at !== undefined);
    assert.ok(Math.abs(vt / 90000 - at / 44100) < 0.03, `video ${vt / 90000} audio ${at / 44100}`);
  });

  it('describes the variant for the multivariant playlist', () => {
    const v = seg.variant();
    assert.deepEqual(v.codecs, ['avc1.64000d', 'mp4a.40.2']);
    assert.deepEqual(v.resolution, { width: 320, height: 240 });
    assert.equal(v.frameRate, 30);
    assert.ok(v.bandwidth > 0 && v.bandwidth >= (v.averageBandwidth ?? 0));
    assert.match(writeMultivariantPlaylist({ variants: [{ ...v, uri: 'stream.m3u8' }] }), /CODECS="avc1.64000d,mp4a.40.2",RESOLUTION=320x240,FRAME-RATE=30.000/);
  });

  it('dates segments from the wall clock of their first frame', () => {
    const m = manifest(seg);
    const first = m.segments[0]!;
    const msn = m.mediaSequence;
    assert.equal(first.programDateTime, T0 + msn * 1000);
  });
});

describe('HlsSegmenter: blocking playlist reload (rfc8216bis 6.2.5.2)', () => {
  const v = videoTrack();
  it('waits until the first segment is published', () => {
    const fresh = new HlsSegmenter([v]);
    feed(fresh, videoTimeline(v, Array(20).fill(3000), (i) => i === 0));
    assert.equal(fresh.ready, false);
    assert.equal(fresh.blockingState(0), 'wait');
    assert.equal(fresh.blockingState(1000), 'wait');
  });

  const seg = new HlsSegmenter([v]);

  // 2 complete 1 s segments (msn 0, 1) and 2 parts of msn 2
  feed(seg, videoTimeline(v, Array(30 * 2 + 13).fill(3000), (i) => i % 30 === 0));

  it('answers at once for published segments and parts, including past the final part of a parent (→ next)', () => {
    assert.equal(seg.mediaPlaylist().segments.filter((s) => s.uri).length, 2);
    assert.equal(seg.blockingState(0), 'ready');
    assert.equal(seg.blockingState(1), 'ready');
    assert.equal(seg.blockingState(1, 4), 'ready');
    assert.equal(seg.blockingState(1, 5), 'ready', 'part 5 of a 5-part segment is part 0 of the next one');
    assert.equal(seg.blockingState(2, 0), 'ready');
    assert.equal(seg.blockingState(2, 1), 'ready');
  });

  it('holds requests for the next part, segment and the one after', () => {
    assert.equal(seg.blockingState(2, 2), 'wait');
    assert.equal(seg.blockingState(2), 'wait');
    assert.equal(seg.blockingState(3), 'wait');
    assert.equal(seg.blockingState(3, 0), 'wait');
  });

  it('refuses msn beyond the last segment + 2, and parts beyond the Advance Part Limit', () => {
    assert.equal(seg.blockingState(4), 'bad-request');
    assert.equal(seg.blockingState(4, 0), 'bad-request');
    // PART-TARGET 0.21667 s < 1 s: the limit is 3 / 0.21667 = 13.8 parts past the last one (msn 2 part 1)
    assert.equal(seg.blockingState(2, 14), 'wait');
    assert.equal(seg.blockingState(2, 15), 'bad-request');
    // msn 3 needs at least 3 more parts of msn 2 (to reach 1 s) first: part 9 of msn 3 is ≥ 13 parts away
    assert.equal(seg.blockingState(3, 9), 'wait');
    assert.equal(seg.blockingState(3, 11), 'bad-request');
  });

  it('becomes ready when the awaited part arrives; blocking timeout is 3 target durations', () => {
    const before = seg.blockingState(2, 2);
    // frames up to 72 are in; part 2 of msn 2 (frames 72-77) completes when frame 78 arrives
    const events = feed(seg, [73, 74, 75, 76, 77, 78].map((i) => ({ at: i * 33.3, frame: vframe(v, i * 3000, false) })));
    assert.equal(before, 'wait');
    assert.ok(events.some((e) => e.type === 'part' && e.msn === 2 && e.index === 2));
    assert.equal(seg.blockingState(2, 2), 'ready');
    assert.equal(seg.blockingTimeoutMs(), 3000);
  });

  it('answers everything once the stream ended (directives are ignored with EXT-X-ENDLIST)', () => {
    const events = seg.finish(T0 + 10_000);
    assert.ok(events.some((e) => e.type === 'ended'));
    assert.equal(seg.blockingState(100, 3), 'ready');
    const m = manifest(seg);
    assert.equal(m.endList, true);
    assert.equal(m.preloadSegment, undefined);
    assert.deepEqual(seg.file(seg.preloadHintName()), { status: 'not-found' });
  });
});

describe('HlsSegmenter: timelines', () => {
  it('variable frame rate: every part fits PART-TARGET and every segment the target duration', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 2250, max: 4500 }), { minLength: 200, maxLength: 400 }), fc.integer({ min: 20, max: 60 }), (durations, gop) => {
        const v = videoTrack();
        const seg = new HlsSegmenter([v]);
        feed(seg, videoTimeline(v, durations, (i) => i % gop === 0));
        if (!seg.ready) return;
        checkRules(manifest(seg));
      }),
      { numRuns: 40 },
    );
  });

  it('a GOP longer than the target duration is split at a part boundary; the target never changes', () => {
    const v = videoTrack();
    const seg = new HlsSegmenter([v]);
    // first GOP 2 s (target 2), then a 7 s GOP, then 2 s GOPs again
    const keys = new Set([0, 60, 270, 330, 390, 450]);
    feed(seg, videoTimeline(v, Array(480).fill(3000), (i) => keys.has(i)));
    const m = manifest(seg);
    assert.equal(m.targetDuration, 2);
    checkRules(m);
    assert.ok(seg.stats.forcedCuts >= 2, `forced cuts ${seg.stats.forcedCuts}`);
    // the segments cut inside the long GOP start with a non-sync sample
    const starts: boolean[] = [];
    for (let msn = 0; seg.file(`seg${msn}.mp4`).status === 'ok'; msn++) starts.push(firstSampleIsSync(bytesOf(fileOf(seg, `seg${msn}.mp4`))));
    assert.deepEqual(starts.slice(0, 2), [true, true]);
    assert.ok(starts.includes(false), `segment starts: ${starts.join(',')}`);
  });

  it('a first GOP longer than the minimum sets a longer target (long-GOP cameras)', () => {
    const v = videoTrack();
    const seg = new HlsSegmenter([v]);
    feed(seg, videoTimeline(v, Array(30 * 12).fill(3000), (i) => i % 120 === 0));
    assert.equal(seg.targetDurationS, 4);
    const m = manifest(seg);
    assert.deepEqual(m.segments.map((s) => s.duration), [4, 4]);
    checkRules(m);
  });

  it('audio-only: cut by time (≥ 1 s), parts of 9 AAC frames', () => {
    const a = audioTrack(0);
    const seg = new HlsSegmenter([a]);
    feed(seg, audioTimeline(a, 6));
    assert.ok(seg.ready);
    assert.equal(seg.partTargetS, (9 * 1024 + 512) / 44100);
    const m = manifest(seg);
    checkRules(m);
    for (const s of m.segments) assert.ok(s.duration >= 1 && s.duration < 1.3, `segment ${s.duration}`);
    for (const { part, last } of allParts(m)) {
      assert.ok(part.independent);
      // 4.4.4.9: parts are ≥ 85 % of the target, except a parent segment's final part
      if (!last) assert.ok(part.duration >= 0.85 * m.partInf!.partTarget, `part ${part.duration}`);
    }
    assert.equal(fileOf(seg, 'seg0.mp4').contentType, 'audio/mp4');
    assert.deepEqual(seg.variant().codecs, ['mp4a.40.2']);
  });

  it('timestamp resets (backwards, far forwards) continue the timeline; tfdt never goes back', () => {
    const v = videoTrack();
    const a = audioTrack();
    const seg = new HlsSegmenter([v, a]);
    const first = [...videoTimeline(v, steady30(3), (i) => i % 30 === 0), ...audioTimeline(a, 3)];
    // the publisher restarts its clock at 0 ...
    const back = [...videoTimeline(v, steady30(3), (i) => i % 30 === 0), ...audioTimeline(a, 3)].map((t) => ({ ...t, at: t.at + 3000 }));
    // ... then jumps 1 hour ahead
    const ahead = [...videoTimeline(v, steady30(3), (i) => i % 30 === 0, 3600 * 90000), ...audioTimeline(a, 3, 3600 * 44100)].map((t) => ({
      ...t,
      at: (t.frame.track.codec === 'h264' ? (t.frame.dts - 3600 * 90000) / 90 : (t.frame.dts - 3600 * 44100) / 44.1) + 6000,
    }));
    feed(seg, first);
    feed(seg, back);
    feed(seg, ahead);
    assert.equal(seg.stats.timestampJumps, 4, 'one reset per track, twice');
    const pl = seg.mediaPlaylist();
    checkRules(manifest(seg));
    let lastVideo = -1;
    let lastAudio = -1;
    for (const s of pl.segments) {
      for (const p of s.parts ?? []) {
        const [vt, at] = tfdts(bytesOf(fileOf(seg, p.uri)));
        assert.ok(vt! > lastVideo, 'video tfdt increases');
        lastVideo = vt!;
        if (at !== undefined) {
          assert.ok(at > lastAudio, 'audio tfdt increases');
          lastAudio = at;
        }
      }
    }
    // 9 s of media in, 9 s of timeline out
    assert.ok(lastVideo / 90000 > 8.5 && lastVideo / 90000 < 9, `timeline ends at ${lastVideo / 90000}`);
  });

  it('a video stall (2 s hole while audio flows) keeps real time and parts within PART-TARGET', () => {
    const v = videoTrack();
    const a = audioTrack();
    const seg = new HlsSegmenter([v, a]);
    const video = videoTimeline(v, steady30(6), (i) => i % 30 === 0).filter((t) => t.at < 2000 || t.at >= 4000);
    feed(seg, video, audioTimeline(a, 6));
    assert.ok(seg.stats.gaps >= 1);
    assert.equal(seg.stats.timestampJumps, 0);
    checkRules(manifest(seg));
    // the part after the hole starts at the real time of its first frame
    const parts = seg.mediaPlaylist().segments.flatMap((s) => s.parts ?? []);
    const starts = parts.map((p) => tfdts(bytesOf(fileOf(seg, p.uri)))[0]! / 90000);
    assert.ok(starts.some((t) => Math.abs(t - 4) < 1e-9), `a part starts at 4 s: ${starts.join(' ')}`);
  });

  it('drops frames before the first keyframe and audio from before it', () => {
    const v = videoTrack();
    const a = audioTrack();
    const seg = new HlsSegmenter([v, a]);
    feed(seg, videoTimeline(v, steady30(3), (i) => i === 10 || i === 40 || i === 70), audioTimeline(a, 3));
    assert.ok(seg.stats.framesDropped >= 10);
    const first = seg.mediaPlaylist().segments[0]!;
    const [vt, at] = tfdts(bytesOf(fileOf(seg, first.parts?.[0]?.uri ?? 'part0.mp4')));
    assert.equal(vt, 0);
    assert.ok(at !== undefined && at >= 0 && at < 1024);
  });
});

describe('HlsSegmenter: parameter changes, retention and bounds', () => {
  it('new SPS: cuts at the next keyframe with a new init segment and EXT-X-DISCONTINUITY', () => {
    const v = videoTrack();
    const seg = new HlsSegmenter([v]);
    feed(seg, videoTimeline(v, steady30(3), (i) => i % 30 === 0));
    const sps2 = Uint8Array.from(fixture.sps);
    v.sps = sps2;
    v.version++;
    feed(seg, videoTimeline(v, steady30(3), (i) => i % 30 === 0, 3 * 90000).map((t) => ({ ...t, at: t.at })));
    const pl = seg.mediaPlaylist();
    const changed = pl.segments.findIndex((s) => s.mapUri === 'init1.mp4');
    assert.ok(changed > 0);
    assert.equal(pl.segments[changed]!.discontinuity, true);
    const text = writeMediaPlaylist(pl);
    assert.match(text, /#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init1.mp4"/);
    assert.equal(fileOf(seg, 'init1.mp4').kind, 'init');
  });

  it('keeps removed segments downloadable for their availability duration, then drops them', () => {
    const v = videoTrack();
    const seg = new HlsSegmenter([v], { segmentCount: 3 });
    feed(seg, videoTimeline(v, steady30(12), (i) => i % 30 === 0));
    const m = manifest(seg);
    assert.ok(m.segments.length >= 3);
    assert.equal(m.mediaSequence, 8);
    // now ≈ 12 s. seg7 left the playlist at ~11 s; it first appeared at ~8 s: available until
    // 8 + 1 (its duration) + ~4 (longest playlist), and its parts 3 target durations after their tags went
    assert.equal(seg.file('seg7.mp4').status, 'ok');
    assert.equal(seg.file('seg0.mp4').status, 'not-found', 'expired long ago');
    const deadline = seg.nextDeadline();
    assert.ok(deadline !== undefined && deadline > T0 + 11_966 && deadline < T0 + 16_000, `deadline ${deadline! - T0}`);
    seg.tick(T0 + 60_000);
    assert.equal(seg.nextDeadline(), undefined);
    assert.equal(seg.file('seg7.mp4').status, 'not-found');
    assert.equal(seg.file('seg8.mp4').status, 'ok', 'listed segments are never dropped by time');
    assert.equal(manifest(seg).mediaSequence, 8, 'the media sequence never goes back');
  });

  it('bounds memory: retired segments go first, then LimitError for an oversized segment', () => {
    const v = videoTrack();
    const mid = new Uint8Array(20_000).fill(7);
    mid[0] = 0x41;
    // 3 listed segments of 600 kB + the one being built fit in 3 MB; retired ones do not
    const seg = new HlsSegmenter([v], { segmentCount: 3, maxBytes: 3_000_000 });
    for (let i = 0; i < 30 * 8; i++) {
      const f = vframe(v, i * 3000, i % 30 === 0);
      seg.push({ ...f, au: [...f.au, mid], byteLength: f.byteLength + mid.length }, T0 + i * 33);
    }
    assert.ok(seg.stats.evictedEarly > 0);
    assert.ok(seg.bufferedBytes <= 3_000_000);
    assert.equal(manifest(seg).segments.length, 3);
    const big = new Uint8Array(200_000).fill(7);
    big[0] = 0x41;
    const tiny = new HlsSegmenter([v], { maxSegmentBytes: 1_000_000 });
    assert.throws(() => {
      for (let i = 0; i < 30; i++) {
        const f = vframe(v, i * 3000, i === 0);
        tiny.push({ ...f, au: [...f.au, big], byteLength: f.byteLength + big.length }, T0 + i * 33);
      }
    }, { code: 'SG_LIMIT' });
  });

  it('delta updates skip old segments once the playlist is longer than CAN-SKIP-UNTIL', () => {
    const v = videoTrack();
    const seg = new HlsSegmenter([v], { segmentCount: 10 });
    feed(seg, videoTimeline(v, steady30(12), (i) => i % 30 === 0));
    const full = manifest(seg);
    const delta = manifest(seg, true);
    assert.equal(full.serverControl?.canSkipUntil, 6);
    const skipped = full.segments.length - delta.segments.length;
    assert.ok(skipped >= 3, `skipped ${skipped}`);
    assert.match(writeMediaPlaylist(seg.mediaPlaylist(), { skip: true }), new RegExp(`#EXT-X-SKIP:SKIPPED-SEGMENTS=${skipped}\n`));
  });
});

describe('HlsSegmenter: real H.264 + AAC read back', { skip: !hasCommand('ffprobe') && 'ffprobe not installed' }, () => {
  const withTracks = (variant: SegmenterOptions['variant']): { seg: HlsSegmenter; names: string[] } => {
    const v = videoTrack();
    const a = audioTrack();
    const seg = new HlsSegmenter([v, a], { variant });
    const video: Timed[] = fixture.aus.map((au) => ({
      at: au.dts / 90,
      frame: { track: v, dts: au.dts, pts: au.pts, keyframe: au.keyframe, au: au.units, byteLength: au.units.reduce((n, u) => n + u.length, 0) },
    }));
    const audio: Timed[] = aac.frames.map((f, i) => ({ at: (i * 1024) / 44.1, frame: { track: a, dts: i * 1024, pts: i * 1024, keyframe: true, au: [f], byteLength: f.length } }));
    feed(seg, video, audio);
    seg.finish(T0 + 3000);
    const names = seg.mediaPlaylist().segments.map((s) => s.uri!);
    return { seg, names };
  };

  const probe = async (bytes: Buffer[], ext: string): Promise<{ streams: { codec_name: string; nb_read_frames: string; width?: number }[] }> => {
    const dir = mkdtempSync(join(tmpdir(), 'sg-seg-'));
    try {
      const file = join(dir, `all.${ext}`);
      writeFileSync(file, Buffer.concat(bytes));
      const r = await run('ffprobe', ['-v', 'error', '-count_frames', '-show_streams', '-of', 'json', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      return JSON.parse(r.stdout) as { streams: { codec_name: string; nb_read_frames: string; width?: number }[] };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('LL-HLS fMP4: init + every segment decodes all 60 video frames and the audio', async () => {
    const { seg, names } = withTracks('lowLatency');
    assert.deepEqual(names, ['seg0.mp4', 'seg1.mp4']);
    const out = await probe([bytesOf(fileOf(seg, 'init0.mp4')), ...names.map((n) => bytesOf(fileOf(seg, n)))], 'mp4');
    const vs = out.streams.find((s) => s.codec_name === 'h264');
    const as = out.streams.find((s) => s.codec_name === 'aac');
    assert.equal(vs?.width, 320);
    assert.equal(Number(vs?.nb_read_frames), 60);
    assert.ok(Math.abs(Number(as?.nb_read_frames) - aac.frames.length) <= 1, `audio frames ${as?.nb_read_frames}`);
  });

  it('MPEG-TS variant: .ts segments without parts or MAP decode completely', async () => {
    const { seg, names } = withTracks('mpegts');
    assert.deepEqual(names, ['seg0.ts', 'seg1.ts']);
    const text = writeMediaPlaylist(seg.mediaPlaylist());
    assert.doesNotMatch(text, /EXT-X-PART|EXT-X-MAP|PRELOAD/);
    assert.equal(fileOf(seg, 'seg0.ts').contentType, 'video/mp2t');
    assert.deepEqual(seg.file('part0.mp4'), { status: 'not-found' });
    const out = await probe(names.map((n) => bytesOf(fileOf(seg, n))), 'ts');
    assert.equal(Number(out.streams.find((s) => s.codec_name === 'h264')?.nb_read_frames), 60);
    assert.ok(Number(out.streams.find((s) => s.codec_name === 'aac')?.nb_read_frames) >= aac.frames.length - 1);
  });
});

describe('HlsSegmenter: handover to a successor on the same path (rfc8216bis 6.2.1, 6.2.2)', () => {
  /** A timeline arriving `ms` later on the wall clock (its media timestamps unchanged). */
  const later = (timeline: Timed[], ms: number): Timed[] => timeline.map((t) => ({ ...t, at: t.at + ms }));
  const uris = (m: ParsedManifest): string[] => [...m.segments.flatMap((s) => [s.uri, ...(s.parts ?? []).map((p) => p.uri)]), ...(m.preloadSegment?.parts ?? []).map((p) => p.uri)];

  it('continues the media sequence, part ids and init names; old segments stay listed and served, new ones follow an EXT-X-DISCONTINUITY', () => {
    const v = videoTrack();
    const a = audioTrack();
    const old = new HlsSegmenter([v, a]);
    feed(old, videoTimeline(v, steady30(4), (i) => i % 30 === 0), audioTimeline(a, 4));
    old.push(vframe(v, 4 * 90000, false), T0 + 4000); // the last segment is in progress: parts 0..n exist
    const before = manifest(old);
    const oldSeg = before.segments[before.segments.length - 1]!;
    const oldBytes = bytesOf(fileOf(old, oldSeg.uri));

    // a new publisher with other tracks (video only, new SPS), its own timeline from 0
    const v2: SegmenterTrack = { ...videoTrack(), id: 5, sps: Uint8Array.from(fixture.sps), version: 1 };
    const next = new HlsSegmenter([v2], {}, old.handover(T0 + 4100));
    assert.ok(old.isEnded, 'the predecessor ended');
    const waiting = manifest(next);
    assert.ok(next.ready, 'the playlist continues before the first new frame');
    assert.deepEqual(waiting.segments.map((s) => s.uri), [...before.segments.map((s) => s.uri), `seg${before.mediaSequence + before.segments.length}.mp4`], 'the in-progress segment was completed');
    assert.equal(waiting.partInf?.partTarget, before.partInf?.partTarget, 'PART-TARGET announced before the frame rate is known');
    assert.deepEqual(next.file(next.preloadHintName()), { status: 'pending' });
    assert.deepEqual(bytesOf(fileOf(next, oldSeg.uri)), oldBytes, 'old segments stay downloadable with the same bytes');
    assert.equal(next.blockingState(before.mediaSequence), 'ready');

    feed(next, later(videoTimeline(v2, steady30(4), (i) => i % 30 === 0), 4200));
    const after = manifest(next);
    checkRules(after);
    assert.ok(after.mediaSequence >= before.mediaSequence, 'the media sequence never goes back');
    assert.equal(after.targetDuration, before.targetDuration);
    assert.equal(after.partInf?.partTarget, before.partInf?.partTarget, 'PART-TARGET kept (same frame rate)');
    const firstNew = after.segments.findIndex((s) => s.discontinuity);
    assert.ok(firstNew > 0, 'EXT-X-DISCONTINUITY before the first new segment');
    const msns = after.segments.map((s) => Number(/^seg(\d+)\.mp4$/.exec(s.uri)![1]));
    assert.deepEqual(msns, msns.map((_, i) => after.mediaSequence + i), 'consecutive sequence numbers');
    assert.equal(after.segments[firstNew - 1]!.map?.uri, 'init0.mp4');
    assert.equal(after.segments[firstNew]!.map?.uri, 'init1.mp4', 'a new init name, never a reused one');
    assert.equal(fileOf(next, 'init1.mp4').kind, 'init');
    // a name the old playlist gave out names the same bytes in the new one
    const oldNames = new Set(uris(before));
    let shared = 0;
    for (const u of uris(after)) {
      if (!oldNames.has(u) || old.file(u).status !== 'ok') continue;
      assert.deepEqual(bytesOf(fileOf(next, u)), bytesOf(fileOf(old, u)), u);
      shared++;
    }
    assert.ok(shared > 0);
    const partIds = uris(after).filter((u) => u.startsWith('part')).map((u) => Number(/\d+/.exec(u)![0]));
    assert.deepEqual(partIds, [...partIds].sort((x, y) => x - y), 'part ids only grow');
    const dates = after.segments.map((s) => s.programDateTime!);
    for (let i = 1; i < dates.length; i++) assert.ok(dates[i]! > dates[i - 1]!, 'PROGRAM-DATE-TIME grows');

    // once the old segments have left the playlist, the discontinuity sequence counts the tag that went with them
    feed(next, later(videoTimeline(v2, steady30(8), (i) => i % 30 === 0, 4 * 90000), 8200));
    const end = manifest(next);
    assert.equal(end.segments.some((s) => s.discontinuity), false);
    assert.equal(end.discontinuitySequence, 1);
  });

  it('an audio-only successor keeps the playlist (durations in its own clock rate)', () => {
    const v = videoTrack();
    const old = new HlsSegmenter([v]);
    feed(old, videoTimeline(v, steady30(3), (i) => i % 30 === 0));
    const before = manifest(old);
    const a = audioTrack(9);
    const next = new HlsSegmenter([a], {}, old.handover(T0 + 3000));
    feed(next, later(audioTimeline(a, 3), 3100));
    const after = manifest(next);
    checkRules(after);
    const kept = after.segments.filter((s) => before.segments.some((b) => b.uri === s.uri));
    assert.ok(kept.length > 0);
    for (const s of kept) assert.ok(Math.abs(s.duration - before.segments.find((b) => b.uri === s.uri)!.duration) < 1e-4, 'same EXTINF');
  });

  it('a much lower frame rate gets its own PART-TARGET (a part must hold a frame and a half)', () => {
    const v = videoTrack();
    const old = new HlsSegmenter([v]);
    feed(old, videoTimeline(v, steady30(3), (i) => i % 30 === 0));
    const v2: SegmenterTrack = { ...videoTrack(), id: 3 };
    const next = new HlsSegmenter([v2], {}, old.handover(T0 + 3000));
    feed(next, later(videoTimeline(v2, Array(20).fill(18000), (i) => i % 5 === 0), 3100)); // 5 fps
    assert.ok(next.partTargetS >= 0.3, `PART-TARGET ${next.partTargetS}`);
  });

  it('counters only (a muxer started again): the new playlist continues the numbering after EXT-X-DISCONTINUITY', () => {
    const v = videoTrack();
    const old = new HlsSegmenter([v], { segmentCount: 3 });
    feed(old, videoTimeline(v, steady30(6), (i) => i % 30 === 0));
    const v2: SegmenterTrack = { ...videoTrack(), version: 1 };
    v2.sps = Uint8Array.from(fixture.sps);
    v2.version = 2;
    // a parameter change makes the old playlist carry a discontinuity of its own
    feed(old, later(videoTimeline(v2, steady30(2), (i) => i % 30 === 0, 6 * 90000), 0));
    const before = manifest(old);
    const tags = before.segments.filter((s) => s.discontinuity).length;
    assert.equal(tags, 1);
    const h = withoutMedia(old.handover(T0 + 8000));
    assert.deepEqual([h.listed, h.retired, h.inits], [[], [], []]);
    const next = new HlsSegmenter([videoTrack()], {}, h);
    assert.equal(next.ready, false, 'nothing to list until the first new segment');
    feed(next, later(videoTimeline(v, steady30(3), (i) => i % 30 === 0), 60_000));
    const after = manifest(next);
    assert.ok(after.mediaSequence > before.mediaSequence + before.segments.length - 1);
    assert.equal(after.segments[0]!.discontinuity, true);
    assert.equal(after.discontinuitySequence, before.discontinuitySequence + tags, 'the dropped tags are counted');
    assert.equal(after.segments[0]!.map?.uri, `init${2}.mp4`);
  });
});

describe('HlsSegmenter: WebRTC publishers (H.264 with IDRs only on request, Opus)', () => {
  function opusTrack(id = 1): SegmenterTrack {
    return { id, codec: 'opus', clockRate: 48000, sampleRate: 48000, channels: 2, version: 1 };
  }
  /** Opus frames of 20 ms (RFC 7587: 960 ticks of the 48 kHz RTP clock). */
  function opusTimeline(track: SegmenterTrack, seconds: number, start = 0): Timed[] {
    const out: Timed[] = [];
    for (let dts = start; dts < start + seconds * 48000; dts += 960) {
      out.push({ at: (dts * 1000) / 48000, frame: { track, dts, pts: dts, keyframe: true, au: [Uint8Array.of(0xfc, dts & 0xff)], byteLength: 2 } });
    }
    return out;
  }

  /**
   * Feeds like a browser encoder: one IDR at the start, then an IDR only `rttFrames` frames after each
   * 'keyframe-wanted' event (PLI round trip plus encode).
   */
  function feedOnDemand(seg: HlsSegmenter, v: SegmenterTrack, seconds: number, rttFrames: number, audio: Timed[] = []): { events: SegmenterEvent[]; asked: number[] } {
    const events: SegmenterEvent[] = [];
    const asked: number[] = [];
    const idrAt = new Set([0]);
    const video = videoTimeline(v, steady30(seconds), () => false);
    const all = [...video.map((t, i) => ({ ...t, i })), ...audio.map((t) => ({ ...t, i: -1 }))].sort((a, b) => a.at - b.at);
    for (const t of all) {
      const frame = t.i >= 0 ? vframe(v, t.frame.dts, idrAt.has(t.i)) : t.frame;
      const out = seg.push(frame, T0 + t.at);
      events.push(...out);
      if (t.i >= 0 && out.some((e) => e.type === 'keyframe-wanted')) {
        asked.push(t.i);
        idrAt.add(t.i + rttFrames);
      }
    }
    return { events, asked };
  }

  it('asks for a keyframe when a segment reaches the minimum duration, so segments end (~1 s + the round trip)', () => {
    const v = videoTrack();
    const seg = new HlsSegmenter([v]);
    const { events, asked } = feedOnDemand(seg, v, 8, 3);
    // without the requests a stream with a single IDR never publishes
    assert.ok(seg.ready);
    assert.deepEqual(asked.slice(0, 3), [30, 63, 96], 'asked at 1 s into each segment (frame 30 after an IDR at 0, 33, 66)');
    assert.equal(events.filter((e) => e.type === 'keyframe-wanted').length, asked.length);
    const m = manifest(seg);
    checkRules(m);
    // the minimum is a minimum: the first segment (1.1 s) rounds the target up to 2 s
    assert.equal(m.targetDuration, 2);
    for (const s of m.segments) assert.equal(s.duration, 1.1, 'each segment ends at the IDR that answered');
    assert.equal(seg.stats.forcedCuts, 0);
  });

  it('a publisher that does not answer is asked again once per further minimum duration, not per frame', () => {
    const v = videoTrack();
    const seg = new HlsSegmenter([v]);
    const events = feed(seg, videoTimeline(v, steady30(5), (i) => i === 0));
    assert.deepEqual(events.filter((e) => e.type === 'keyframe-wanted').length, 4, 'at 1, 2, 3 and 4 s');
  });

  it('a regular GOP no longer than the minimum duration is never asked for keyframes', () => {
    const v = videoTrack();
    const a = audioTrack();
    const seg = new HlsSegmenter([v, a]);
    const events = feed(seg, videoTimeline(v, steady30(6), (i) => i % 30 === 0), audioTimeline(a, 6));
    assert.ok(!events.some((e) => e.type === 'keyframe-wanted'));
    const audioOnly = new HlsSegmenter([audioTrack(0)]);
    assert.ok(!feed(audioOnly, audioTimeline(audioTrack(0), 4)).some((e) => e.type === 'keyframe-wanted'));
  });

  it('H.264 + Opus in fMP4: CODECS avc1…,opus, an Opus sample entry, 960-tick samples, audio tfdt continuous', () => {
    const v = videoTrack();
    const o = opusTrack();
    const seg = new HlsSegmenter([v, o]);
    feedOnDemand(seg, v, 6, 2, opusTimeline(o, 6));
    assert.deepEqual(seg.variant().codecs, ['avc1.64000d', 'opus']);
    assert.deepEqual(seg.leftOut, []);
    const init = bytesOf(fileOf(seg, 'init0.mp4'));
    assert.ok(init.includes(Buffer.from('Opus')) && init.includes(Buffer.from('dOps')));
    // the audio traf of consecutive segments: each starts where the previous ended
    let expected: number | undefined;
    for (let msn = 0; seg.file(`seg${msn}.mp4`).status === 'ok'; msn++) {
      const parts = fileOf(seg, `seg${msn}.mp4`).chunks;
      for (const p of parts) {
        const [vt, at] = tfdts(p);
        assert.ok(vt !== undefined);
        if (at === undefined) continue;
        if (expected !== undefined) assert.equal(at, expected, `audio tfdt in seg${msn}`);
        // every Opus sample is 960 ticks: the next part's audio starts 960 × samples later
        const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
        const trun = Buffer.from(p).lastIndexOf(Buffer.from('trun'));
        const count = dv.getUint32(trun + 8);
        for (let i = 0; i < count; i++) assert.equal(dv.getUint32(trun + 16 + 16 * i), 960);
        expected = at + 960 * count;
      }
    }
    assert.ok(expected !== undefined && expected > 48000 * 3);
  });

  it('MPEG-TS variant: an Opus track is left out (with the reason), the video is served; Opus alone is refused', () => {
    const v = videoTrack();
    const o = opusTrack();
    const seg = new HlsSegmenter([v, o], { variant: 'mpegts' });
    assert.equal(seg.leftOut.length, 1);
    assert.equal(seg.leftOut[0]!.codec, 'opus');
    assert.match(seg.leftOut[0]!.reason, /MPEG-TS/);
    feedOnDemand(seg, v, 3, 2, opusTimeline(o, 3));
    assert.ok(seg.ready);
    assert.deepEqual(seg.variant().codecs, ['avc1.64000d']);
    assert.throws(() => new HlsSegmenter([o], { variant: 'mpegts' }), (e: unknown) => e instanceof UnsupportedError && /Opus/.test(e.message));
    // Opus alone is fine in fMP4
    const audioOnly = new HlsSegmenter([opusTrack(0)], { variant: 'fmp4' });
    feed(audioOnly, opusTimeline(opusTrack(0), 4));
    assert.ok(audioOnly.ready);
    assert.deepEqual(audioOnly.variant().codecs, ['opus']);
  });
});
