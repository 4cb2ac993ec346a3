import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Track } from '../../../src/media/bus/track.js';
import { makeFrame, type Frame } from '../../../src/media/bus/frame.js';
import { Stream, GOP_CACHE_MAX_FRAMES, KEYFRAME_REQUEST_INTERVAL_MS } from '../../../src/media/bus/stream.js';
import { Reader, type FrameSink } from '../../../src/media/bus/reader.js';
import type { Session } from '../../../src/media/bus/session.js';

export function fakeSession(id = 's1'): Session & { closedWith?: string } {
  const s: Session & { closedWith?: string } = {
    id,
    protocol: 'rtmp',
    role: 'reader',
    path: '',
    remoteAddr: '127.0.0.1:1',
    state: 'play',
    createdAt: Date.now(),
    bytesIn: 0,
    bytesOut: 0,
    close(reason: string) {
      s.closedWith = reason;
    },
  };
  return s;
}

class RecordingSink implements FrameSink {
  frames: { dts: number; key: boolean; codec: string }[] = [];
  starts = 0;
  queued = 0;
  closed: string | undefined;
  start(): void {
    this.starts++;
  }
  writeFrame(f: Frame): void {
    this.frames.push({ dts: f.dts, key: f.keyframe, codec: f.track.codec });
  }
  bufferedBytes(): number {
    return this.queued;
  }
  close(reason: string): void {
    this.closed = reason;
  }
}

function tracks(): Track[] {
  const v = new Track({ codec: 'h264', clockRate: 90000 });
  v.setH264Params(new Uint8Array([0x67, 1, 2]), new Uint8Array([0x68, 3]), { width: 640, height: 360 });
  const a = new Track({ codec: 'aac', clockRate: 48000 });
  a.setAudioConfig(new Uint8Array([0x11, 0x90]), 48000, 2);
  return [v, a];
}

/** Writes `n` video frames at 30 fps (3000 ticks), a keyframe every `gop`, with one audio frame each. */
function writeFrames(s: Stream, [v, a]: Track[], n: number, gop: number, startDts = 0): void {
  for (let i = 0; i < n; i++) {
    const dts = startDts + i * 3000;
    s.write(makeFrame(v!, dts, dts, i % gop === 0, [new Uint8Array(100)]));
    s.write(makeFrame(a!, (dts / 90000) * 48000, (dts / 90000) * 48000, true, [new Uint8Array(10)]));
  }
}

test('a reader joining mid-GOP starts at once at the cached keyframe', () => {
  const s = new Stream('live/a');
  const ts = s.setTracks(tracks());
  writeFrames(s, ts, 45, 30); // keyframes at 0 and 30
  const sink = new RecordingSink();
  s.addReader(new Reader(fakeSession(), sink));
  assert.equal(sink.starts, 1);
  assert.ok(sink.frames.length > 0);
  assert.equal(sink.frames[0]!.key, true);
  assert.equal(sink.frames[0]!.dts, 30 * 3000);
  assert.equal(sink.frames.filter((f) => f.codec === 'h264').length, 15);
});

test('every reader gets the same frame objects; a slow reader drops to the next keyframe and is counted', () => {
  const s = new Stream('live/b');
  const ts = s.setTracks(tracks());
  const fast = new RecordingSink();
  const slow = new RecordingSink();
  const rSlow = new Reader(fakeSession('slow'), slow, { maxQueueBytes: 1000, maxStallMs: 60_000 });
  s.addReader(new Reader(fakeSession('fast'), fast));
  s.addReader(rSlow);
  writeFrames(s, ts, 10, 30);
  slow.queued = 5000; // its socket stops draining
  writeFrames(s, ts, 10, 30, 10 * 3000);
  slow.queued = 0; // drains again: must wait for a keyframe
  writeFrames(s, ts, 25, 30, 20 * 3000); // its first frame is a keyframe
  assert.equal(fast.frames.length, 90);
  assert.ok(rSlow.framesDropped > 0);
  const firstAfterDrop = slow.frames[20]!;
  assert.equal(firstAfterDrop.key, true);
  assert.equal(firstAfterDrop.dts, 20 * 3000);
});

test('a reader stalled past maxStallMs is closed, others go on', async () => {
  const s = new Stream('live/c');
  const ts = s.setTracks(tracks());
  const dead = new RecordingSink();
  const ok = new RecordingSink();
  const r = new Reader(fakeSession('dead'), dead, { maxQueueBytes: 10, maxStallMs: 20 });
  let detached = '';
  r.onClose = (why) => (detached = why);
  s.addReader(r);
  s.addReader(new Reader(fakeSession('ok'), ok));
  dead.queued = 100;
  writeFrames(s, ts, 1, 30);
  await new Promise((res) => setTimeout(res, 40));
  writeFrames(s, ts, 1, 30, 3000);
  assert.match(dead.closed ?? '', /stalled/);
  assert.match(detached, /stalled/);
  assert.equal(ok.frames.length, 4);
});

test('a sink that throws closes only that reader', () => {
  const s = new Stream('live/d');
  const ts = s.setTracks(tracks());
  const bad = new RecordingSink();
  bad.writeFrame = () => {
    throw new Error('boom');
  };
  const good = new RecordingSink();
  s.addReader(new Reader(fakeSession('bad'), bad));
  s.addReader(new Reader(fakeSession('good'), good));
  writeFrames(s, ts, 3, 30);
  assert.match(bad.closed ?? '', /boom/);
  assert.equal(good.frames.length, 6);
});

test('timestamps start at 0 and continue monotonically across a publisher reconnect with compatible tracks', () => {
  const s = new Stream('live/e');
  const sink = new RecordingSink();
  let ts = s.setTracks(tracks());
  s.addReader(new Reader(fakeSession(), sink));
  writeFrames(s, ts, 30, 30, 5_000_000); // the publisher's clock starts far from 0
  assert.equal(sink.frames[0]!.dts, 0);
  s.publisherGone();
  const fresh = tracks();
  ts = s.setTracks(fresh);
  assert.notEqual(ts[0], fresh[0], 'old Track objects are kept so readers continue');
  assert.equal(sink.starts, 1, 'readers are not restarted');
  writeFrames(s, ts, 30, 30, 0);
  const video = sink.frames.filter((f) => f.codec === 'h264').map((f) => f.dts);
  for (let i = 1; i < video.length; i++) assert.ok(video[i]! > video[i - 1]!, `dts goes back at ${i}`);
});

test('a timestamp reset inside one publisher is rebased', () => {
  const s = new Stream('live/f');
  const sink = new RecordingSink();
  const ts = s.setTracks(tracks());
  s.addReader(new Reader(fakeSession(), sink));
  writeFrames(s, ts, 30, 30, 900_000);
  writeFrames(s, ts, 30, 30, 0); // encoder restarted
  const video = sink.frames.filter((f) => f.codec === 'h264').map((f) => f.dts);
  for (let i = 1; i < video.length; i++) assert.ok(video[i]! > video[i - 1]!);
});

test('incompatible new tracks restart readers', () => {
  const s = new Stream('live/g');
  const sink = new RecordingSink();
  s.setTracks(tracks());
  s.addReader(new Reader(fakeSession(), sink));
  const other = tracks();
  other[0]!.setH264Params(new Uint8Array([0x67, 9]), new Uint8Array([0x68, 9]), { width: 1280, height: 720 });
  s.publisherGone();
  s.setTracks(other);
  assert.equal(sink.starts, 2);
});

test('the GOP cache is bounded', () => {
  const s = new Stream('live/h');
  const ts = s.setTracks(tracks());
  writeFrames(s, ts, GOP_CACHE_MAX_FRAMES, 1_000_000);
  assert.ok(s.cachedFrames().length < GOP_CACHE_MAX_FRAMES);
});

test('catch-up readers get the cached GOP re-timed to end at the live edge, video only, same bytes', () => {
  const s = new Stream('live/i');
  const ts = s.setTracks(tracks());
  writeFrames(s, ts, 60, 60); // one 2 s GOP
  const plain = new RecordingSink();
  const fast = new RecordingSink();
  s.addReader(new Reader(fakeSession('plain'), plain));
  const r = new Reader(fakeSession('fast'), fast);
  r.catchUp = true;
  s.addReader(r);
  assert.equal(plain.frames[0]!.dts, 0);
  assert.equal(fast.frames.length, 60, 'cached audio is left out');
  const live = 59 * 3000;
  assert.equal(fast.frames.at(-1)!.dts, live);
  assert.ok(live - fast.frames[0]!.dts <= 59 * 135 + 1, 'the GOP is compressed to ≥ 1.5 ms per frame');
  for (let i = 1; i < fast.frames.length; i++) assert.ok(fast.frames[i]!.dts > fast.frames[i - 1]!.dts);
  assert.equal(s.cachedFrames()[0]!.dts, 0, 'the shared cache is not modified');
});

test('keyframe requests: passed up at most once per interval, counted, unserved without a handler', () => {
  const s = new Stream('live/k');
  const got: string[] = [];
  assert.equal(s.requestKeyframe('early', 0), false, 'no publisher handler yet');
  s.setKeyframeHandler((reason) => got.push(reason));
  assert.equal(s.requestKeyframe('viewer 1', 1000), true);
  assert.equal(s.requestKeyframe('viewer 2', 1000 + KEYFRAME_REQUEST_INTERVAL_MS - 1), false, 'inside the interval');
  assert.equal(s.requestKeyframe('viewer 3', 1000 + KEYFRAME_REQUEST_INTERVAL_MS), true);
  assert.deepEqual(got, ['viewer 1', 'viewer 3']);
  assert.deepEqual(s.keyframeRequests, { requested: 4, passedUp: 2, unserved: 1 });
  s.publisherGone();
  assert.equal(s.requestKeyframe('after', 5000), false, 'the handler leaves with the publisher');
  assert.deepEqual(s.keyframeRequests, { requested: 5, passedUp: 2, unserved: 2 });
});

test('keyframe requests: a throwing handler does not reach the reader; a new handler starts a fresh interval', () => {
  const s = new Stream('live/k2');
  s.setKeyframeHandler(() => {
    throw new Error('socket gone');
  });
  assert.equal(s.requestKeyframe('viewer', 0), true);
  let n = 0;
  s.setKeyframeHandler(() => void n++);
  assert.equal(s.requestKeyframe('viewer', 1), true, 'the new publisher is asked at once');
  assert.equal(n, 1);
});

test('keyframe requests: a reader that would wait for a keyframe asks the publisher for one; one with a cached GOP does not', () => {
  const s = new Stream('live/k3');
  const got: string[] = [];
  s.setKeyframeHandler((reason) => got.push(reason));
  const ts = s.setTracks(tracks());
  writeFrames(s, ts, 5, 100);
  s.addReader(new Reader(fakeSession('a'), new RecordingSink()));
  assert.deepEqual(got, [], 'the cached GOP starts it');
  // a GOP longer than the cache: the cache is dropped, the next reader has nothing to start from
  writeFrames(s, ts, GOP_CACHE_MAX_FRAMES + 10, 100_000, 5 * 3000);
  assert.equal(s.cachedFrames().length, 0);
  s.addReader(new Reader(fakeSession('b'), new RecordingSink()));
  assert.deepEqual(got, ['a new reader waits for a keyframe']);
});
