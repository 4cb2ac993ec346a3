import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { FfmpegTranscoder, type TranscoderChild } from '../../../src/egress/transcode/ffmpeg-transcoder.js';
import { SharedTranscoders } from '../../../src/egress/transcode/shared-transcoders.js';
import type { Frame } from '../../../src/media/bus/frame.js';
import { Track } from '../../../src/media/bus/track.js';

/** A child that runs until killed or told to exit. */
class FakeChild extends EventEmitter implements TranscoderChild {
  readonly pid = 1;
  readonly stdin = new PassThrough();
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  killed = false;

  kill(): boolean {
    this.killed = true;
    return true;
  }
}

class Fake extends FfmpegTranscoder<[number]> {
  readonly fake: FakeChild;

  constructor(input: Track, idleMs?: number) {
    const child = new FakeChild();
    super({ path: 'p', input, name: 'fake transcoder', readers: 'test readers', inputCodec: 'AAC', args: [], spawn: () => child, ...(idleMs ? { idleMs } : {}) });
    this.fake = child;
  }

  protected override encode(frame: Frame): Uint8Array[] {
    return [...frame.au];
  }

  protected override decode(): [number][] {
    return [];
  }
}

function pool(): { shared: SharedTranscoders<[number], Fake>; started: Fake[]; start: (input: Track) => () => Fake } {
  const started: Fake[] = [];
  return {
    shared: new SharedTranscoders<[number], Fake>(),
    started,
    start: (input) => () => {
      const t = new Fake(input);
      started.push(t);
      return t;
    },
  };
}

const aac = () => new Track({ codec: 'aac', clockRate: 44100 });

test('one transcoder per key, shared by its subscribers, stopped with the last one', () => {
  const { shared, started, start } = pool();
  const track = aac();
  const [s1, s2, s3] = [() => undefined, () => undefined, () => undefined];
  const a = shared.subscribe('pcmu|live', track, s1, start(track));
  assert.equal(shared.subscribe('pcmu|live', track, s2, start(track)), a);
  shared.subscribe('pcma|live', track, s3, start(track));
  assert.equal(started.length, 2);
  assert.equal(shared.size, 2);
  assert.equal(shared.get('pcmu|live'), a);
  assert.equal(a.subscribers, 2);
  shared.unsubscribe('pcmu|live', s1);
  assert.ok(a.running);
  shared.unsubscribe('pcmu|live', s2);
  assert.equal(a.running, false);
  assert.ok(a.fake.killed);
  assert.equal(shared.get('pcmu|live'), undefined);
  assert.equal(shared.size, 1);
  shared.unsubscribe('nothing|here', s1); // unknown key: no-op
  shared.closeAll();
  assert.equal(shared.size, 0);
  assert.ok(started.every((t) => !t.running));
});

test('a transcoder whose ffmpeg exited, or that transcodes another track, is replaced on the next subscribe', () => {
  const { shared, started, start } = pool();
  const track = aac();
  const sink = () => undefined;
  const first = shared.subscribe('live', track, sink, start(track));
  first.fake.emit('exit', 1, null);
  const second = shared.subscribe('live', track, sink, start(track));
  assert.notEqual(second, first);
  assert.equal(shared.size, 1);
  const republished = aac(); // a new publisher on the path: new Track objects
  const third = shared.subscribe('live', republished, sink, start(republished));
  assert.notEqual(third, second);
  assert.equal(second.running, false, 'the old track\'s transcoder stopped');
  assert.equal(third.input, republished);
  assert.equal(started.length, 3);
  assert.equal(shared.size, 1);
});

test('a transcoder that stops by itself (idle) is forgotten at once', async () => {
  const shared = new SharedTranscoders<[number], Fake>();
  const track = aac();
  const t = shared.subscribe('live', track, () => undefined, () => new Fake(track, 100));
  assert.equal(shared.size, 1);
  const end = Date.now() + 2000;
  while (shared.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  assert.equal(shared.size, 0);
  assert.equal(t.running, false);
});
