/**
 * What every ffmpeg audio transcoder of the egresses shares: one child process per path (and output codec), used by
 * all readers of the path that need it.
 *
 * Every reader feeds the frames it receives; each frame is written once (readers deliver the same frames in the
 * same order, so a dts not above the last one written is a repeat). stdin is bounded: with more than
 * {@link TRANSCODER_MAX_PENDING_BYTES} not yet taken by ffmpeg, frames are dropped and counted. stdout is cut into
 * output items by the subclass, and each item goes to every subscriber. A subclass says only how a frame becomes
 * input bytes (`encode`) and how stdout becomes output (`decode`); both usually keep a timeline that maps output
 * positions back to input timestamps (see `sample-timeline.ts`).
 *
 * Lifecycle: started by the constructor, stopped by `stop()` (idempotent), by bad input or output, or after
 * `idleMs` without input. A child that exits by itself is logged and leaves the transcoder not `running`; the
 * pool (`shared-transcoders.ts`) replaces it on the next acquire.
 */
import { spawn as spawnChild } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { log, RateLimitedLog, type Logger } from '../../log.js';
import type { Frame } from '../../media/bus/frame.js';
import type { Track } from '../../media/bus/track.js';

/** Bytes written to ffmpeg's stdin and not yet taken before frames are dropped: ~2 s of 128 kbps AAC. */
export const TRANSCODER_MAX_PENDING_BYTES = 64 * 1024;
/** Characters of ffmpeg's stderr kept for the exit log line: with `-loglevel error` its first lines say why. */
export const FFMPEG_STDERR_KEEP = 2000;
/** How often the idle watchdog looks (at most; a shorter `idleMs` looks as often as that). */
const IDLE_CHECK_MS = 1000;

/**
 * ffmpeg arguments for a low-latency pipe: `inputFormat` on stdin, read as it comes (no probing delay, no input
 * buffering), encoded with `encoderArgs`, muxed as `outputFormat` (with `muxerArgs`) on stdout, each packet
 * flushed as soon as it is encoded.
 */
export function ffmpegPipeArgs(inputFormat: string, encoderArgs: readonly string[], outputFormat: string, muxerArgs: readonly string[] = []): string[] {
  return [
    '-hide_banner', '-loglevel', 'error', '-nostdin',
    '-fflags', '+nobuffer', '-probesize', '32', '-analyzeduration', '0',
    '-f', inputFormat, '-i', 'pipe:0',
    ...encoderArgs,
    '-f', outputFormat, ...muxerArgs, '-flush_packets', '1', 'pipe:1',
  ];
}

/** What a transcoder uses of its child process: node's `ChildProcess` fits, tests pass a fake. */
export interface TranscoderChild {
  readonly pid?: number | undefined;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  kill(signal: NodeJS.Signals): boolean;
}

/** Starts ffmpeg with `args` and its three standard streams piped. */
export type SpawnFfmpeg = (args: string[]) => TranscoderChild;

const spawnFfmpeg: SpawnFfmpeg = (args) => spawnChild('ffmpeg', args, { stdio: ['pipe', 'pipe', 'pipe'] });

/** How a transcoder is started and what its log lines say. */
export interface FfmpegTranscoderOptions {
  /** the path whose readers share the transcoder (on every log line) */
  path: string;
  /** the track whose frames are fed; frames of other tracks are ignored */
  input: Track;
  /** the transcoder's name at the start of its log lines, e.g. 'opus transcoder' */
  name: string;
  /** who goes without audio when ffmpeg fails, e.g. 'WebRTC readers' */
  readers: string;
  /** the input codec as log lines name it, e.g. 'AAC' */
  inputCodec: string;
  /** ffmpeg's arguments (see {@link ffmpegPipeArgs}) */
  args: string[];
  /** fields added to every log line besides the path */
  logFields?: Record<string, unknown>;
  /** stop after this long without a frame of the input track (readers that went away without releasing) */
  idleMs?: number;
  /** runs ffmpeg; tests pass a fake child */
  spawn?: SpawnFfmpeg;
}

/**
 * One ffmpeg child for one input track of one path. `A` are the arguments each subscriber is called with for one
 * output item (an Opus packet and its timestamp, an AAC frame, ...).
 */
export abstract class FfmpegTranscoder<A extends unknown[]> {
  /** the path whose readers share this transcoder */
  readonly path: string;
  /** the track fed to ffmpeg */
  readonly input: Track;
  /** frames written to ffmpeg */
  framesIn = 0;
  /** output items handed to the subscribers */
  framesOut = 0;
  /** frames dropped because ffmpeg did not keep up */
  framesDropped = 0;
  /** called once when the transcoder stops, whatever stopped it (the pool forgets it) */
  onStop: (() => void) | undefined;
  private child: TranscoderChild | undefined;
  private readonly sinks = new Set<(...args: A) => void>();
  private lastDts = -Infinity;
  private closed = false;
  private lastFeedMs = performance.now();
  private readonly watchdog: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private readonly behind: RateLimitedLog;
  private readonly name: string;
  private readonly readers: string;
  private readonly inputCodec: string;

  constructor(opts: FfmpegTranscoderOptions) {
    this.path = opts.path;
    this.input = opts.input;
    this.name = opts.name;
    this.readers = opts.readers;
    this.inputCodec = opts.inputCodec;
    this.log = log.child({ path: opts.path, ...opts.logFields });
    this.behind = new RateLimitedLog(this.log);
    const child = (opts.spawn ?? spawnFfmpeg)(opts.args);
    this.child = child;
    child.on('error', (err) => {
      this.log.warn({ err: err.message }, `${this.name}: cannot run ffmpeg; ${this.readers} get no audio`);
      this.stop();
    });
    child.stdin!.on('error', () => undefined); // EPIPE when ffmpeg exits first; 'exit' reports it
    child.stdout!.on('data', (chunk: Buffer) => this.onOutput(chunk));
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < FFMPEG_STDERR_KEEP) stderr += d.toString();
    });
    child.on('exit', (code, signal) => {
      if (!this.closed) this.log.warn({ code, signal, stderr: stderr.trim() || undefined }, `${this.name}: ffmpeg exited; ${this.readers} get no audio`);
      this.child = undefined;
    });
    const idleMs = opts.idleMs;
    if (idleMs !== undefined) {
      this.watchdog = setInterval(() => {
        if (performance.now() - this.lastFeedMs > idleMs) {
          this.log.info(`${this.name} idle: stopping it`);
          this.stop();
        }
      }, Math.min(IDLE_CHECK_MS, idleMs)).unref();
    }
    this.log.info({ pid: child.pid }, `${this.name} started`);
  }

  /**
   * The bytes to write to ffmpeg for one new frame of the input track, recording the frame on the timeline the
   * output is mapped back with; null skips the frame. Throwing stops the transcoder (the track cannot be fed).
   */
  protected abstract encode(frame: Frame): readonly Uint8Array[] | null;

  /**
   * The output items a chunk of ffmpeg's stdout completes, each as the arguments subscribers are called with.
   * Throwing (ffmpeg wrote something unexpected) stops the transcoder.
   */
  protected abstract decode(chunk: Uint8Array): A[];

  /** Adds a receiver of the output. */
  subscribe(sink: (...args: A) => void): void {
    this.sinks.add(sink);
  }

  /** Removes a receiver. */
  unsubscribe(sink: (...args: A) => void): void {
    this.sinks.delete(sink);
  }

  /** Receivers subscribed. */
  get subscribers(): number {
    return this.sinks.size;
  }

  /** Feeds one frame of the input track (once: frames already fed, by dts, are skipped). */
  feed(frame: Frame): void {
    if (this.closed || frame.track !== this.input) return;
    this.lastFeedMs = performance.now();
    if (frame.dts <= this.lastDts) return;
    this.lastDts = frame.dts;
    const stdin = this.child?.stdin;
    if (!stdin || stdin.destroyed) return;
    if (stdin.writableLength > TRANSCODER_MAX_PENDING_BYTES) {
      this.framesDropped++;
      this.behind.warn({ pending: stdin.writableLength }, `${this.name} is behind: dropping ${this.inputCodec} frames`);
      return;
    }
    let bytes: readonly Uint8Array[] | null;
    try {
      bytes = this.encode(frame);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, `${this.name}: the ${this.inputCodec} track cannot be fed to ffmpeg; ${this.readers} get no audio`);
      this.stop();
      return;
    }
    if (!bytes) return;
    this.framesIn++;
    for (const b of bytes) stdin.write(b);
  }

  private onOutput(chunk: Buffer): void {
    let items: A[];
    try {
      items = this.decode(chunk);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, `${this.name}: bad output from ffmpeg; stopping it`);
      this.stop();
      return;
    }
    for (const args of items) {
      this.framesOut++;
      for (const s of this.sinks) s(...args);
    }
  }

  /** Stops the child and forgets the subscribers. Idempotent. */
  stop(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.watchdog);
    this.sinks.clear();
    this.onStop?.();
    const child = this.child;
    this.child = undefined;
    if (child) {
      child.stdin?.end();
      child.kill('SIGKILL');
      this.log.info({ framesIn: this.framesIn, framesOut: this.framesOut }, `${this.name} stopped`);
    }
  }

  /** True while the child runs. */
  get running(): boolean {
    return !this.closed && this.child !== undefined;
  }
}
