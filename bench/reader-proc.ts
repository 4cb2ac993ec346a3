import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * The reader child-process protocol shared by the RTMP and RTSP fan-out benchmarks: the benchmark forks a process
 * of cheap players (bench/rtmp-readers.ts, bench/rtsp-readers.ts) and drives it over IPC through probe → connect →
 * window-start → window-end → stop, so the players' CPU never counts as the server's.
 */

/** Benchmark → reader process, besides the protocol's own `probe` message (which says what to play). */
export type ReaderCommand =
  | { type: 'connect'; count: number; perSecond: number; timeoutMs: number }
  | { type: 'window-start' }
  | { type: 'window-end' }
  | { type: 'stop' };

/** Reader process → benchmark, besides the protocol's own `result` message. */
export type ReaderReply = { type: 'probe-ready' } | { type: 'connected'; playing: number; failed: number } | { type: 'window-started' } | { type: 'error'; message: string };

/** What every reader process reports about its measured window, besides its per-reader figures. */
export interface ReaderWindow {
  windowMs: number;
  /** media bytes received by the measured players in the window */
  bytes: number;
  /** this process's CPU in the window (user + system), seconds */
  cpuSeconds: number;
}

/** Starts timing a window: the returned function gives its length and this process's CPU in it so far. */
export function windowClock(): () => Omit<ReaderWindow, 'bytes'> {
  const at = performance.now();
  const cpu = process.cpuUsage();
  return () => {
    const used = process.cpuUsage(cpu);
    return { windowMs: performance.now() - at, cpuSeconds: (used.user + used.system) / 1e6 };
  };
}

/** Receive buffer size of a reader process's sockets: one buffer for all, as the parsers never keep views into it. */
const READ_BUFFER_BYTES = 256 * 1024;
let readBuffer: Buffer | undefined;

/** The one receive buffer every player socket of this process reads into. */
export function sharedReadBuffer(): Buffer {
  readBuffer ??= Buffer.allocUnsafe(READ_BUFFER_BYTES);
  return readBuffer;
}

/** What a pool needs from a player: its start-up state and a way to drop it. */
export interface PoolPlayer {
  stats: { connectAtMs: number; firstKeyAtMs: number; error: string | null; closed: boolean };
  destroy(): void;
}

/** Milliseconds from the player's connect to `atMs`, or -1 when that never happened (`atMs` < 0). */
export function sinceConnect(p: PoolPlayer, atMs: number): number {
  return atMs >= 0 ? atMs - p.stats.connectAtMs : -1;
}

/** What every measured player reports at the end of the window, whatever its protocol. */
export interface PlayerOutcome {
  /** connect → first keyframe (RTSP: its first packet), ms (-1: none) */
  firstKeyMs: number;
  error: string | null;
  closed: boolean;
}

/** The player's {@link PlayerOutcome} now. */
export function outcomeOf(p: PoolPlayer): PlayerOutcome {
  return { firstKeyMs: sinceConnect(p, p.stats.firstKeyAtMs), error: p.stats.error, closed: p.stats.closed };
}

/** Sends a message to the benchmark (the parent process). */
export function sendToBenchmark<M extends { type: string }>(msg: M): void {
  process.send?.(msg);
}

/** How long the probe player may take to see the stream. */
const PROBE_TIMEOUT_MS = 20_000;

/** The players of one reader process: the probe and the measured readers. */
export class ReaderPool<P extends PoolPlayer> {
  probe: P | undefined;
  readonly readers: P[] = [];

  /** @param player makes a new player for the current target */
  constructor(private readonly player: () => P) {}

  /** Starts the probe; answers `probe-ready` once `ready(probe)` holds, retrying while the stream is not there. */
  startProbe(ready: (probe: P) => boolean): void {
    this.probe = this.player();
    const deadline = Date.now() + PROBE_TIMEOUT_MS;
    const wait = setInterval(() => {
      const s = this.probe!.stats;
      if (ready(this.probe!)) {
        clearInterval(wait);
        sendToBenchmark({ type: 'probe-ready' });
      } else if (Date.now() > deadline) {
        clearInterval(wait);
        sendToBenchmark({ type: 'error', message: `probe player got no video: ${s.error ?? (s.closed ? 'closed' : 'timeout')}` });
      } else if (s.error !== null || s.closed) {
        // the publisher is not there yet (streamgate refuses to play an unpublished path): try again
        this.probe!.destroy();
        this.probe = this.player();
      }
    }, 50);
  }

  /** Starts `count` players at `perSecond`; answers `connected` when each one plays or failed, or after `timeoutMs`. */
  connect(count: number, perSecond: number, timeoutMs: number): void {
    // small batches every 10 ms: `perSecond` players a second, like viewers arriving, not one SYN flood
    const perTick = Math.max(1, Math.round(perSecond / 100));
    let started = 0;
    const ramp = setInterval(() => {
      for (let k = 0; k < perTick && started < count; k++, started++) this.readers.push(this.player());
      if (started >= count) clearInterval(ramp);
    }, 10);
    const begin = Date.now();
    const check = setInterval(() => {
      if (started < count) return;
      let playing = 0;
      let failed = 0;
      for (const r of this.readers) {
        if (r.stats.firstKeyAtMs >= 0) playing++;
        else if (r.stats.error !== null || r.stats.closed) failed++;
      }
      if (playing + failed === count || Date.now() - begin > timeoutMs) {
        clearInterval(check);
        sendToBenchmark({ type: 'connected', playing, failed });
      }
    }, 50);
  }

  /** Drops every player. */
  destroy(): void {
    for (const r of this.readers) r.destroy();
    this.probe?.destroy();
  }
}

/** What a reader process does for the messages that differ per protocol. */
export interface ReaderHandlers<Probe, Window> {
  /** remembers what to play and starts the pool's probe */
  probe(msg: Probe): void;
  /** the counters when the window opens */
  startWindow(): Window;
  /** the `result` message of the window that `startWindow` opened */
  endWindow(start: Window): { type: 'result' };
}

/** Serves the benchmark's messages in this (child) process until `stop` or the parent goes away. */
export function serveReaders<P extends PoolPlayer, Probe extends { type: 'probe' }, Window>(pool: ReaderPool<P>, handlers: ReaderHandlers<Probe, Window>): void {
  let window: Window | undefined;
  process.on('message', (msg: Probe | ReaderCommand) => {
    switch (msg.type) {
      case 'probe':
        handlers.probe(msg as Probe);
        break;
      case 'connect':
        pool.connect(msg.count, msg.perSecond, msg.timeoutMs);
        break;
      case 'window-start':
        window = handlers.startWindow();
        sendToBenchmark({ type: 'window-started' });
        break;
      case 'window-end':
        if (window === undefined) sendToBenchmark({ type: 'error', message: 'window-end before window-start' });
        else sendToBenchmark(handlers.endWindow(window));
        break;
      case 'stop':
        pool.destroy();
        process.disconnect?.();
        setTimeout(() => process.exit(0), 100).unref();
        break;
    }
  });
  process.on('disconnect', () => process.exit(0));
}

/** A reader child process seen from the benchmark: request/response over IPC. */
export class ReaderProcess<To extends { type: string }, From extends { type: string }> {
  private readonly child: ChildProcess;
  private readonly waiting: ((m: From | { type: 'error'; message: string }) => void)[] = [];
  private exited = false;

  /** @param script the reader module's file name in dist/bench/ */
  constructor(script: string) {
    // the reader modules are compiled next to this one (dist/bench/)
    this.child = fork(fileURLToPath(new URL(script, import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
    this.child.on('message', (m: From) => {
      for (const w of this.waiting.splice(0)) w(m);
    });
    this.child.once('exit', () => {
      this.exited = true;
      for (const w of this.waiting.splice(0)) w({ type: 'error', message: 'reader process exited' });
    });
  }

  /** Sends `msg` and resolves with the next message if it is `expect` (an `error` or anything else rejects). */
  request<T extends From['type']>(msg: To, expect: T, timeoutMs: number): Promise<Extract<From, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`reader process: no ${expect} after ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push((m) => {
        clearTimeout(timer);
        if (m.type === expect) resolve(m as Extract<From, { type: T }>);
        else reject(new Error('message' in m ? String(m.message) : `reader process: got ${m.type}, wanted ${expect}`));
      });
      this.child.send(msg);
    });
  }

  /** Asks the process to stop; kills it after 3 s. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.send({ type: 'stop' });
    const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(t);
  }
}
