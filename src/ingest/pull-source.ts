/**
 * The protocol-independent shell of a pull source (`paths.<p>.source: rtmp://…` or `rtsp://…`): the API session
 * it shows for its whole life, and the loop that opens one connection attempt after another with exponential
 * backoff until the registry stops it (at once for always-on sources, when the last reader leaves for
 * `sourceOnDemand` ones). The protocol clients (rtmp/client.ts, rtsp/client.ts) extend {@link PullSource} and
 * only say how one attempt connects, ticks and ends.
 */
import { nanoid } from 'nanoid';
import { errorMessage, StreamgateError } from '../errors.js';
import { log as rootLog, type Logger } from '../log.js';
import type { AccessRequest, SourceHandle } from '../media/bus/registry.js';
import { redactUrl } from '../media/bus/registry.js';
import type { Role, Session } from '../media/bus/session.js';
import type { Stream } from '../media/bus/stream.js';

/** First pause before reconnecting: 1 s, so a restarting origin or camera is picked up quickly. */
export const PULL_SOURCE_MIN_BACKOFF_MS = 1000;
/** Longest pause between attempts: 30 s, so an origin or camera that is down for long is not hammered. */
export const PULL_SOURCE_MAX_BACKOFF_MS = 30_000;
/** How often an attempt's deadlines (connect, start, read timeout, keepalives) are checked. */
export const PULL_SOURCE_TICK_MS = 1000;

/** The registry as a pull source uses it (PathRegistry implements it; tests pass fakes). */
export interface PullSourcePaths {
  addSession(session: Session): void;
  removeSession(session: Session, reason: string): void;
  addPublisher(path: string, session: Session, req: Omit<AccessRequest, 'action' | 'path'>): Promise<Stream>;
  removePublisher(session: Session): void;
}

/** A pending timer of {@link PullSourceTimers}. */
export interface PullSourceTimer {
  cancel(): void;
}

/** The clock and timers a pull source runs on; tests pass a manual one. Timers never keep the process alive. */
export interface PullSourceTimers {
  /** milliseconds, the clock `tick(nowMs)` gets */
  now(): number;
  setTimeout(fn: () => void, ms: number): PullSourceTimer;
  setInterval(fn: () => void, ms: number): PullSourceTimer;
}

/** `Date.now()` and Node's timers, unref'd. */
export const systemTimers: PullSourceTimers = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
};

/**
 * Exponential backoff: `next()` gives `minMs`, then twice the previous pause up to `maxMs`; `reset()` starts over
 * (after an attempt that got the stream going).
 */
export class Backoff {
  private nextMs: number;

  constructor(
    readonly minMs: number,
    readonly maxMs: number,
  ) {
    this.nextMs = minMs;
  }

  /** The pause before the next attempt; the one after it is twice as long, at most `maxMs`. */
  next(): number {
    const delay = this.nextMs;
    this.nextMs = Math.min(delay * 2, this.maxMs);
    return delay;
  }

  reset(): void {
    this.nextMs = this.minMs;
  }
}

/** Reconnect options every pull source takes. */
export interface PullSourceOptions {
  /** first pause before reconnecting, doubled after each failed attempt (default {@link PULL_SOURCE_MIN_BACKOFF_MS}) */
  minBackoffMs?: number;
  /** longest pause between attempts (default {@link PULL_SOURCE_MAX_BACKOFF_MS}) */
  maxBackoffMs?: number;
  /** default {@link systemTimers} */
  timers?: PullSourceTimers;
  /** parent of the source's logger (default the process logger) */
  logger?: Logger;
}

/** What a {@link PullSource} is made from. */
export interface PullSourceInit<T> extends PullSourceOptions {
  /** the path it publishes into */
  path: string;
  /** the source URL (logged redacted) */
  url: string;
  registry: PullSourcePaths;
  /** what the API shows as the session's remote address */
  remoteAddr: string;
  /** the connect target of `url`; a throw marks the source `invalid` (logged once, never attempted) */
  parseTarget(url: string): T;
}

/**
 * A pull source: one API session (protocol `source`) for its whole life, which is the path's publisher while an
 * attempt plays. `start()` opens the first attempt; when one ends, the subclass calls {@link disconnected} and the
 * next starts after the backoff (1 s, 2 s, 4 s … 30 s, back to 1 s after {@link resetBackoff}), with one log line
 * per disconnect. `close()` (API kick, registry shutdown) drops the current attempt, which is retried; `stop()` ends
 * the source for good.
 */
export abstract class PullSource<T> implements Session {
  readonly id = nanoid(12);
  readonly protocol = 'source' as const;
  role: Role = 'publisher';
  state = 'idle';
  readonly createdAt = Date.now();
  bytesIn = 0;
  bytesOut = 0;
  path: string;
  readonly remoteAddr: string;

  protected readonly log: Logger;
  protected readonly registry: PullSourcePaths;
  protected readonly timers: PullSourceTimers;
  /** null when the URL did not parse */
  protected readonly target: T | null;
  /** attempts opened so far */
  protected attempts = 0;
  /** attempts that got as far as publishing (or playing) into the path */
  protected connects = 0;
  protected lastError = '';
  protected stopped = false;
  private readonly backoff: Backoff;
  private retryTimer: PullSourceTimer | undefined;
  private tickTimer: PullSourceTimer | undefined;

  protected constructor(init: PullSourceInit<T>) {
    this.path = init.path;
    this.remoteAddr = init.remoteAddr;
    this.registry = init.registry;
    this.timers = init.timers ?? systemTimers;
    this.backoff = new Backoff(init.minBackoffMs ?? PULL_SOURCE_MIN_BACKOFF_MS, init.maxBackoffMs ?? PULL_SOURCE_MAX_BACKOFF_MS);
    this.log = (init.logger ?? rootLog).child({ session: this.id, protocol: 'source', path: init.path, source: redactUrl(init.url) });
    let target: T | null = null;
    try {
      target = init.parseTarget(init.url);
    } catch (err) {
      this.lastError = errorMessage(err);
      this.log.error({ err: this.lastError }, 'cannot pull this source');
    }
    this.target = target;
  }

  /**
   * Registers the session and opens the first attempt (a source whose URL did not parse stays `invalid`).
   * @returns the registry's handle: its `close()` is {@link stop}
   */
  start(): SourceHandle {
    this.registry.addSession(this);
    const target = this.target;
    if (target === null) {
      this.state = 'invalid';
    } else {
      this.tickTimer = this.timers.setInterval(() => this.tick(this.timers.now()), PULL_SOURCE_TICK_MS);
      this.openAttempt(target);
    }
    return { close: () => this.stop() };
  }

  /** The registry's `SourceHandle.close()`: stops for good and ends the session. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.retryTimer?.cancel();
    this.tickTimer?.cancel();
    this.teardown(true);
    this.state = 'stopped';
    this.registry.removeSession(this, 'source stopped');
  }

  /** Session.close (API kick, registry shutdown): drops the current attempt; the source reconnects unless stopped. */
  close(reason: string): void {
    if (this.stopped || !this.hasAttempt()) return;
    this.disconnected(reason);
  }

  stats(): Record<string, unknown> {
    return { connects: this.connects, attempts: this.attempts, lastError: this.lastError || null };
  }

  /** Opens one attempt toward `target` (the state is already `connecting`). */
  protected abstract connect(target: T): void;

  /** True while an attempt is open. */
  protected abstract hasAttempt(): boolean;

  /**
   * Ends the current attempt, if any: closes its sockets and detaches the publisher, without scheduling anything.
   * `stopping`: the source stops for good (say goodbye to the server where the protocol has a way to).
   */
  protected abstract teardown(stopping: boolean): void;

  /** Checks the current attempt's deadlines, every {@link PULL_SOURCE_TICK_MS}. */
  protected abstract tick(nowMs: number): void;

  /** The attempt got the stream going: the next disconnect is retried after the shortest pause again. */
  protected resetBackoff(): void {
    this.backoff.reset();
  }

  /**
   * The current attempt failed or ended: tears it down, logs why, and opens the next one after the backoff.
   * `err`: the error behind it; one that is not a StreamgateError (a bug) is logged as an error.
   */
  protected disconnected(reason: string, err?: unknown): void {
    this.teardown(false);
    this.lastError = reason;
    if (this.stopped) return;
    const delay = this.backoff.next();
    this.state = 'waiting';
    if (err !== undefined && !(err instanceof StreamgateError)) {
      this.log.error({ err: errorMessage(err), reason, retryInMs: delay, attempt: this.attempts }, 'pull source failed: reconnecting');
    } else {
      this.log.warn({ reason, code: err?.code, retryInMs: delay, attempt: this.attempts }, 'pull source disconnected: reconnecting');
    }
    this.retryTimer?.cancel();
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.stopped && this.target !== null) this.openAttempt(this.target);
    }, delay);
  }

  private openAttempt(target: T): void {
    this.attempts++;
    this.state = 'connecting';
    this.connect(target);
  }
}
