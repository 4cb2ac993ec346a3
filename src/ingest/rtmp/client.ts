/**
 * Pull source for `paths.<p>.source: rtmp://host[:port]/app/stream[?query]`: plays the stream from another
 * server (an origin, a camera, nginx-rtmp) and publishes it into the frame bus as a session of protocol
 * `source`. It reconnects with exponential backoff for as long as the registry keeps it running.
 */
import net from 'node:net';
import { nanoid } from 'nanoid';
import { StreamgateError, errorMessage } from '../../errors.js';
import { log as rootLog, type Logger } from '../../log.js';
import type { AccessRequest, SourceHandle } from '../../media/bus/registry.js';
import { redactUrl } from '../../media/bus/registry.js';
import type { Role, Session } from '../../media/bus/session.js';
import type { Stream } from '../../media/bus/stream.js';
import { RTMP_DEFAULT_MAX_MESSAGE_LENGTH } from './chunk-stream.js';
import { RtmpClientConnection, parseRtmpUrl, type RtmpClientAction, type RtmpClientTarget } from './client-session.js';
import { RtmpToBus } from './to-bus.js';

/** First pause before reconnecting: 1 s, so a restarting origin is picked up quickly. */
export const RTMP_SOURCE_MIN_BACKOFF_MS = 1000;
/** Longest pause between attempts: 30 s, so an origin that is down for long is not hammered. */
export const RTMP_SOURCE_MAX_BACKOFF_MS = 30_000;
/** How often the client's deadlines (connect, start, read timeout) are checked. */
const DEADLINE_CHECK_MS = 1000;
/**
 * Media held between Play.Start and the registry accepting the publisher (normally one microtask): twice the
 * largest message, so a keyframe plus its audio fits while a server flooding us before we publish cannot grow
 * memory without bound.
 */
const MAX_HELD_BYTES = 2 * RTMP_DEFAULT_MAX_MESSAGE_LENGTH;

/** The registry as the pull source uses it (PathRegistry implements it; tests pass fakes). */
export interface RtmpSourcePaths {
  addSession(session: Session): void;
  removeSession(session: Session, reason: string): void;
  addPublisher(path: string, session: Session, req: Omit<AccessRequest, 'action' | 'path'>): Promise<Stream>;
  removePublisher(session: Session): void;
}

/** Options of {@link startRtmpSource}; the defaults are the named constants. */
export interface RtmpSourceOptions {
  /** close the connection when the server sends nothing for this long (default 10 s) */
  readTimeoutMs?: number;
  /** give up on a connection that has not started playing after this long (default 10 s) */
  startTimeoutMs?: number;
  /** first pause before reconnecting, doubled after each failed attempt (default {@link RTMP_SOURCE_MIN_BACKOFF_MS}) */
  minBackoffMs?: number;
  /** longest pause between attempts (default {@link RTMP_SOURCE_MAX_BACKOFF_MS}) */
  maxBackoffMs?: number;
}

/**
 * Starts pulling `url` into `path`. The source registers one API session (protocol `source`, remote address
 * = the URL, shown redacted) for its whole life, and is the path's publisher while a connection is playing.
 * Kicking that session (`DELETE /v1/sessions/{id}`) drops the current connection; the source reconnects.
 * `close()` stops it for good.
 */
export function startRtmpSource(path: string, url: string, registry: RtmpSourcePaths, opts: RtmpSourceOptions = {}): SourceHandle {
  const source = new RtmpSource(path, url, registry, opts);
  source.start();
  return { close: () => source.stop() };
}

type Publishing = { state: 'no' } | { state: 'pending'; held: RtmpClientAction[]; heldBytes: number } | { state: 'yes'; toBus: RtmpToBus };

/** One live attempt: a socket and its protocol state. */
interface Attempt {
  socket: net.Socket;
  conn: RtmpClientConnection;
  publishing: Publishing;
  done: boolean;
}

/** The pull source: a Session for the API, and the reconnect loop around {@link RtmpClientConnection}. */
class RtmpSource implements Session {
  readonly id = nanoid(12);
  readonly protocol = 'source' as const;
  role: Role = 'publisher';
  state = 'idle';
  readonly createdAt = Date.now();
  bytesIn = 0;
  bytesOut = 0;
  readonly remoteAddr: string;

  private readonly log: Logger;
  private readonly target: RtmpClientTarget | null;
  private attempt: Attempt | undefined;
  private attempts = 0;
  /** connections that got as far as publishing into the path */
  private connects = 0;
  private backoffMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private lastError = '';
  private stopped = false;

  constructor(
    public path: string,
    url: string,
    private readonly registry: RtmpSourcePaths,
    private readonly opts: RtmpSourceOptions,
  ) {
    this.remoteAddr = url;
    this.backoffMs = opts.minBackoffMs ?? RTMP_SOURCE_MIN_BACKOFF_MS;
    this.log = rootLog.child({ session: this.id, protocol: 'source', path, source: redactUrl(url) });
    let target: RtmpClientTarget | null = null;
    try {
      target = parseRtmpUrl(url);
    } catch (err) {
      this.lastError = errorMessage(err);
      this.log.error({ err: this.lastError }, 'cannot pull this source');
    }
    this.target = target;
  }

  start(): void {
    this.registry.addSession(this);
    if (this.target === null) {
      this.state = 'invalid';
      return;
    }
    this.deadlineTimer = setInterval(() => this.tick(), DEADLINE_CHECK_MS);
    this.deadlineTimer.unref();
    this.connect();
  }

  /** handle.close(): stops for good. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.deadlineTimer);
    this.teardown();
    this.state = 'stopped';
    this.registry.removeSession(this, 'source stopped');
  }

  /** Session.close (API kick, registry shutdown): drops the connection; the source reconnects unless stopped. */
  close(reason: string): void {
    if (this.stopped || !this.attempt) return;
    this.disconnected(reason);
  }

  stats(): Record<string, unknown> {
    return { connects: this.connects, attempts: this.attempts, lastError: this.lastError || null };
  }

  private connect(): void {
    const target = this.target!;
    this.attempts++;
    this.state = 'connecting';
    this.log.info({ attempt: this.attempts, host: target.host, port: target.port }, 'pull source connecting');
    const socket = net.connect({ host: target.host, port: target.port });
    const a: Attempt = { socket, conn: new RtmpClientConnection(target, Date.now(), this.connOptions()), publishing: { state: 'no' }, done: false };
    this.attempt = a;
    socket.setNoDelay(true);
    socket.on('connect', () => {
      if (a.done) return;
      this.state = 'handshake';
      this.run(a, a.conn.start());
    });
    socket.on('data', (chunk: Buffer) => {
      if (a.done) return;
      this.bytesIn += chunk.byteLength;
      this.run(a, a.conn.push(chunk, Date.now()));
    });
    socket.on('error', (err) => {
      if (!a.done) this.disconnected(`socket error: ${err.message}`);
    });
    socket.on('close', () => {
      if (!a.done) this.disconnected('connection closed by the server');
    });
  }

  private connOptions(): { readTimeoutMs?: number; startTimeoutMs?: number } {
    const o: { readTimeoutMs?: number; startTimeoutMs?: number } = {};
    if (this.opts.readTimeoutMs !== undefined) o.readTimeoutMs = this.opts.readTimeoutMs;
    if (this.opts.startTimeoutMs !== undefined) o.startTimeoutMs = this.opts.startTimeoutMs;
    return o;
  }

  private tick(): void {
    const a = this.attempt;
    if (!a || a.done) return;
    const now = Date.now();
    const d = a.conn.nextDeadline();
    if (d !== null && now >= d) this.run(a, a.conn.tick(now));
  }

  private run(a: Attempt, actions: RtmpClientAction[]): void {
    for (const act of actions) {
      if (a.done) return;
      switch (act.type) {
        case 'send':
          this.bytesOut += act.bytes.byteLength;
          a.socket.write(act.bytes);
          break;
        case 'playing':
          this.state = 'playing';
          this.publish(a);
          break;
        case 'media':
          this.media(a, act);
          break;
        case 'close':
          this.disconnected(act.reason, act.error);
          return;
      }
    }
  }

  private publish(a: Attempt): void {
    a.publishing = { state: 'pending', held: [], heldBytes: 0 };
    this.registry.addPublisher(this.path, this, { protocol: 'source', ip: a.socket.remoteAddress ?? '' }).then(
      (stream) => {
        if (a.done) {
          this.registry.removePublisher(this);
          return;
        }
        const pending = a.publishing;
        const toBus = new RtmpToBus(stream, this.log);
        a.publishing = { state: 'yes', toBus };
        this.connects++;
        this.log.info({ attempt: this.attempts }, 'pull source playing');
        if (pending.state === 'pending') for (const m of pending.held) this.media(a, m);
      },
      (err: unknown) => {
        if (!a.done) this.disconnected(`the path refused the source: ${errorMessage(err)}`);
      },
    );
  }

  private media(a: Attempt, act: RtmpClientAction): void {
    if (act.type !== 'media') return;
    const p = a.publishing;
    if (p.state === 'no') return;
    if (p.state === 'pending') {
      p.heldBytes += act.body.byteLength;
      if (p.heldBytes > MAX_HELD_BYTES) this.disconnected(`over ${MAX_HELD_BYTES} bytes of media before the path accepted the source`);
      else p.held.push(act);
      return;
    }
    try {
      if (act.kind === 'data') p.toBus.onData(act.name, act.values);
      else if (act.kind === 'video') p.toBus.onVideo(act.timestamp, act.body);
      else p.toBus.onAudio(act.timestamp, act.body);
    } catch (err) {
      if (!(err instanceof StreamgateError)) throw err;
      this.disconnected(`bad media from the server: ${err.message}`, err);
      return;
    }
    // a connection that got the stream going earns a quick reconnect next time
    if (p.toBus.isStarted) this.backoffMs = this.opts.minBackoffMs ?? RTMP_SOURCE_MIN_BACKOFF_MS;
  }

  /** Ends the current attempt (publisher detached) without scheduling anything. */
  private teardown(): void {
    const a = this.attempt;
    if (!a || a.done) return;
    a.done = true;
    this.attempt = undefined;
    a.socket.destroy();
    if (a.publishing.state !== 'no') this.registry.removePublisher(this);
    a.publishing = { state: 'no' };
  }

  /** The current attempt failed or ended: detach, log, and try again after the backoff. */
  private disconnected(reason: string, error?: StreamgateError): void {
    this.teardown();
    this.lastError = reason;
    if (this.stopped) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs ?? RTMP_SOURCE_MAX_BACKOFF_MS);
    this.state = 'waiting';
    this.log.warn({ reason, code: error?.code, retryInMs: delay, attempt: this.attempts }, 'pull source disconnected: reconnecting');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.stopped) this.connect();
    }, delay);
    this.retryTimer.unref();
  }
}
