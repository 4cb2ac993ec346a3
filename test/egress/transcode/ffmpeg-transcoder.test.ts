import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import {
  FfmpegTranscoder,
  ffmpegPipeArgs,
  TRANSCODER_MAX_PENDING_BYTES,
  type FfmpegTranscoderOptions,
  type TranscoderChild,
} from '../../../src/egress/transcode/ffmpeg-transcoder.js';
import { makeFrame, type Frame } from '../../../src/media/bus/frame.js';
import { Track } from '../../../src/media/bus/track.js';
import { hasCommand, waitFor } from '../../helpers/media-tools.js';

/** A child process that records what is written to it and can stop taking writes (ffmpeg not reading). */
class FakeChild extends EventEmitter implements TranscoderChild {
  readonly pid = 4242;
  readonly written: Uint8Array[] = [];
  readonly kills: NodeJS.Signals[] = [];
  ended = false;
  private hold = false;
  private held: (() => void)[] = [];
  readonly stdin = new Writable({
    write: (chunk: Buffer, _enc, done) => {
      this.written.push(chunk);
      if (this.hold) this.held.push(done);
      else done();
    },
    final: (done) => {
      this.ended = true;
      done();
    },
  });
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();

  /** Stops taking writes: they stay pending, as when ffmpeg does not read its stdin. */
  stall(): void {
    this.hold = true;
  }

  /** Takes the pending writes and every later one. */
  resume(): void {
    this.hold = false;
    for (const done of this.held.splice(0)) done();
  }

  kill(signal: NodeJS.Signals): boolean {
    this.kills.push(signal);
    return true;
  }
}

type Out = [bytes: Uint8Array, at: number];

/** Writes each frame's payload as is; each stdout chunk is one output item, numbered. */
class EchoTranscoder extends FfmpegTranscoder<Out> {
  encodeError: Error | undefined;
  decodeError: Error | undefined;
  private chunks = 0;

  protected override encode(frame: Frame): Uint8Array[] | null {
    if (this.encodeError) throw this.encodeError;
    return frame.au.length === 0 ? null : [...frame.au];
  }

  protected override decode(chunk: Uint8Array): Out[] {
    if (this.decodeError) throw this.decodeError;
    return [[chunk, this.chunks++]];
  }
}

function setup(opts: Partial<FfmpegTranscoderOptions> = {}): { t: EchoTranscoder; child: FakeChild; track: Track; args: string[][] } {
  const child = new FakeChild();
  const track = new Track({ codec: 'aac', clockRate: 48000 });
  const args: string[][] = [];
  const t = new EchoTranscoder({
    path: 'test/p',
    input: track,
    name: 'echo transcoder',
    readers: 'test readers',
    inputCodec: 'AAC',
    args: ['-x'],
    spawn: (a) => {
      args.push(a);
      return child;
    },
    ...opts,
  });
  return { t, child, track, args };
}

const frame = (track: Track, dts: number, ...au: number[][]): Frame => makeFrame(track, dts, dts, true, au.map((b) => Uint8Array.from(b)));
const tick = () => new Promise((r) => setImmediate(r));

describe('ffmpegPipeArgs', () => {
  it('reads the input as it comes and flushes every output packet (the flags the three transcoders always used)', () => {
    assert.deepEqual(ffmpegPipeArgs('aac', ['-c:a', 'libopus'], 'ogg', ['-page_duration', '20000']), [
      '-hide_banner', '-loglevel', 'error', '-nostdin',
      '-fflags', '+nobuffer', '-probesize', '32', '-analyzeduration', '0',
      '-f', 'aac', '-i', 'pipe:0',
      '-c:a', 'libopus',
      '-f', 'ogg', '-page_duration', '20000', '-flush_packets', '1', 'pipe:1',
    ]);
    assert.deepEqual(ffmpegPipeArgs('ogg', [], 'adts').slice(-5), ['-f', 'adts', '-flush_packets', '1', 'pipe:1']);
  });
});

describe('FfmpegTranscoder (fake child)', () => {
  it('spawns with the given args; writes each frame of its track once, in order, whichever reader delivers it', async () => {
    const { t, child, track, args } = setup();
    assert.deepEqual(args, [['-x']]);
    assert.ok(t.running);
    const other = new Track({ codec: 'aac', clockRate: 48000 });
    t.feed(frame(track, 0, [1, 2], [3]));
    t.feed(frame(track, 0, [9])); // a second reader's copy
    t.feed(frame(other, 1024, [9])); // another track
    t.feed(frame(track, 1024, [4]));
    t.feed(frame(track, 512, [9])); // older than the last written
    t.feed(frame(track, 2048)); // encode skips it
    await tick();
    assert.deepEqual(child.written.map((b) => [...b]), [[1, 2], [3], [4]]);
    assert.equal(t.framesIn, 2);
    assert.equal(t.framesDropped, 0);
    t.stop();
  });

  it('hands every output item to every subscriber, and counts them', () => {
    const { t, child } = setup();
    const a: number[] = [];
    const b: number[] = [];
    const sinkA = (_: Uint8Array, at: number) => a.push(at);
    const sinkB = (_: Uint8Array, at: number) => b.push(at);
    t.subscribe(sinkA);
    t.subscribe(sinkB);
    assert.equal(t.subscribers, 2);
    child.stdout.write(Uint8Array.of(1));
    child.stdout.write(Uint8Array.of(2));
    t.unsubscribe(sinkB);
    child.stdout.write(Uint8Array.of(3));
    assert.deepEqual(a, [0, 1, 2]);
    assert.deepEqual(b, [0, 1]);
    assert.equal(t.framesOut, 3);
    t.stop();
  });

  it(`drops and counts frames while more than ${TRANSCODER_MAX_PENDING_BYTES} bytes wait for ffmpeg, then writes again`, async () => {
    const { t, child, track } = setup();
    child.stall();
    const big = new Array<number>(16 * 1024).fill(7);
    let dts = 0;
    for (let i = 0; i < 10; i++) t.feed(frame(track, (dts += 1024), big));
    // 16 KiB frames: the 6th finds 80 KiB pending (the first write is in flight, the rest queued)
    assert.equal(t.framesIn, 5);
    assert.equal(t.framesDropped, 5);
    assert.equal(child.written.length, 1, 'one write in flight');
    child.resume();
    await tick();
    assert.equal(child.stdin.writableLength, 0);
    t.feed(frame(track, (dts += 1024), [1]));
    assert.equal(t.framesIn, 6);
    assert.equal(t.framesDropped, 5);
    t.stop();
  });

  it('stops (stdin ended, SIGKILL, onStop once, subscribers forgotten) on stop(), idempotently', async () => {
    const { t, child, track } = setup();
    let stops = 0;
    t.onStop = () => stops++;
    t.subscribe(() => assert.fail('no output after stop'));
    t.stop();
    t.stop();
    await tick();
    assert.equal(t.running, false);
    assert.deepEqual(child.kills, ['SIGKILL']);
    assert.ok(child.ended);
    assert.equal(stops, 1);
    assert.equal(t.subscribers, 0);
    t.feed(frame(track, 0, [1]));
    assert.equal(t.framesIn, 0);
  });

  it('stops when a frame cannot be encoded or ffmpeg writes what cannot be decoded', () => {
    const a = setup();
    a.t.encodeError = new Error('no AudioSpecificConfig');
    a.t.feed(frame(a.track, 0, [1]));
    assert.equal(a.t.running, false);
    assert.deepEqual(a.child.kills, ['SIGKILL']);
    assert.equal(a.t.framesIn, 0);

    const b = setup();
    const got: number[] = [];
    b.t.subscribe((_, at) => got.push(at));
    b.t.decodeError = new Error('missing OggS capture pattern');
    b.child.stdout.write(Uint8Array.of(1));
    assert.equal(b.t.running, false);
    assert.deepEqual(got, []);
  });

  it('a child that exits by itself leaves the transcoder not running; stop() then has nothing to kill', () => {
    const { t, child, track } = setup();
    let stops = 0;
    t.onStop = () => stops++;
    child.stderr.write('Unknown encoder\n');
    child.emit('exit', 1, null);
    assert.equal(t.running, false);
    t.feed(frame(track, 0, [1]));
    assert.equal(t.framesIn, 0);
    t.stop();
    assert.deepEqual(child.kills, []);
    assert.equal(stops, 1);
  });

  it('a child that cannot be spawned (ENOENT) stops the transcoder', () => {
    const { t, child } = setup();
    child.emit('error', Object.assign(new Error('spawn ffmpeg ENOENT'), { code: 'ENOENT' }));
    assert.equal(t.running, false);
  });

  it('with idleMs, stops after that long without a frame of its track (repeats count as activity)', async () => {
    const { t, track } = setup({ idleMs: 150 });
    let stops = 0;
    t.onStop = () => stops++;
    const f = frame(track, 0, [1]);
    for (let i = 0; i < 6; i++) {
      t.feed(f); // the same frame again: written once, but the readers are still there
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(t.running, 'fed every 50 ms: alive');
    await waitFor(() => stops === 1 || null, 2000);
    assert.equal(t.running, false);
  });
});

describe('FfmpegTranscoder (real ffmpeg)', { skip: hasCommand('ffmpeg') ? false : 'ffmpeg missing' }, () => {
  /** 16-bit PCM through ffmpeg unchanged: the spawn, pipes and stop path with a real child. */
  class PcmTranscoder extends FfmpegTranscoder<[Uint8Array]> {
    protected override encode(f: Frame): Uint8Array[] {
      return [...f.au];
    }
    protected override decode(chunk: Uint8Array): [Uint8Array][] {
      return [[chunk]];
    }
  }
  // s16le in and out at the demuxer's defaults (44.1 kHz mono): nothing to convert
  const pcmArgs = (encoder: string) => ffmpegPipeArgs('s16le', ['-c:a', encoder], 's16le');
  const options = (args: string[], track: Track): FfmpegTranscoderOptions => ({ path: 'test/pcm', input: track, name: 'pcm transcoder', readers: 'test readers', inputCodec: 'PCM', args });

  it('PCM in, the same PCM out; stop() kills the child', async () => {
    const track = new Track({ codec: 'aac', clockRate: 44100 });
    const t = new PcmTranscoder({ ...options(pcmArgs('pcm_s16le'), track), logFields: { test: true } });
    const out: Uint8Array[] = [];
    t.subscribe((b) => out.push(Uint8Array.from(b)));
    const input = new Uint8Array(2 * 16_000).map((_, i) => (i * 7) & 0xff);
    for (let i = 0; i < 10; i++) t.feed(makeFrame(track, i * 1600, i * 1600, true, [input.subarray(i * 3200, (i + 1) * 3200)]));
    const total = () => out.reduce((n, b) => n + b.byteLength, 0);
    await waitFor(() => total() >= 8000 || null, 10_000);
    const got = Buffer.concat(out);
    assert.deepEqual(got, Buffer.from(input.subarray(0, got.byteLength)));
    assert.equal(t.framesIn, 10);
    t.stop();
    assert.equal(t.running, false);
  });

  it('ffmpeg refusing its arguments exits; the transcoder is then not running', async () => {
    const track = new Track({ codec: 'aac', clockRate: 44100 });
    const t = new PcmTranscoder(options(pcmArgs('no_such_encoder'), track));
    // ffmpeg opens its input (reads stdin) before it looks for the encoder
    t.feed(makeFrame(track, 0, 0, true, [new Uint8Array(3200)]));
    await waitFor(() => !t.running || null, 10_000);
    t.feed(makeFrame(track, 1600, 1600, true, [new Uint8Array(3200)]));
    assert.equal(t.framesIn, 1);
    t.stop();
  });
});
