/**
 * Pull source for `paths.<p>.source: rtmp://host[:port]/app/stream[?query]`: plays the stream from another
 * server (an origin, a camera, nginx-rtmp) and publishes it into the frame bus as a session of protocol
 * `source`. It reconnects with exponential backoff for as long as the registry keeps it running (see
 * {@link PullSource}).
 */
import net from 'node:net';
import { StreamgateError, errorMessage } from '../../errors.js';
import type { SourceHandle } from '../../media/bus/registry.js';
import { PullSource, PULL_SOURCE_MAX_BACKOFF_MS, PULL_SOURCE_MIN_BACKOFF_MS, type PullSourceOptions, type PullSourcePaths } from '../pull-source.js';
import { RTMP_DEFAULT_MAX_MESSAGE_LENGTH } from './chunk-stream.js';
import { RtmpClientConnection, parseRtmpUrl, type RtmpClientAction, type RtmpClientTarget } from './client-session.js';
import { RtmpToBus } from './to-bus.js';

/** First pause before reconnecting (the pull-source default). */
export const RTMP_SOURCE_MIN_BACKOFF_MS = PULL_SOURCE_MIN_BACKOFF_MS;
/** Longest pause between attempts (the pull-source default). */
export const RTMP_SOURCE_MAX_BACKOFF_MS = PULL_SOURCE_MAX_BACKOFF_MS;
/**
 * Media held between Play.Start and the registry accepting the publisher (normally one microtask): twice the
 * largest message, so a keyframe plus its audio fits while a server flooding us before we publish cannot grow
 * memory without bound.
 */
const MAX_HELD_BYTES = 2 * RTMP_DEFAULT_MAX_MESSAGE_LENGTH;

/** The registry as the pull source uses it (PathRegistry implements it; tests pass fakes). */
export type RtmpSourcePaths = PullSourcePaths;

/** Options of {@link startRtmpSource}; the defaults are the named constants. */
export interface RtmpSourceOptions extends PullSourceOptions {
  /** close the connection when the server sends nothing for this long (default 10 s) */
  readTimeoutMs?: number;
  /** give up on a connection that has not started playing after this long (default 10 s) */
  startTimeoutMs?: number;
}

/**
 * Starts pulling `url` into `path`. The source registers one API session (protocol `source`, remote address
 * = the URL, shown redacted) for its whole life, and is the path's publisher while a connection is playing.
 * Kicking that session (`DELETE /v1/sessions/{id}`) drops the current connection; the source reconnects.
 * `close()` stops it for good.
 */
export function startRtmpSource(path: string, url: string, registry: RtmpSourcePaths, opts: RtmpSourceOptions = {}): SourceHandle {
  return new RtmpSource(path, url, registry, opts).start();
}

type Publishing = { state: 'no' } | { state: 'pending'; held: RtmpClientAction[]; heldBytes: number } | { state: 'yes'; toBus: RtmpToBus };

/** One live attempt: a socket and its protocol state. */
interface Attempt {
  socket: net.Socket;
  conn: RtmpClientConnection;
  publishing: Publishing;
  done: boolean;
}

/** The RTMP pull source: {@link RtmpClientConnection} on a socket, one per attempt, inside the {@link PullSource} loop. */
class RtmpSource extends PullSource<RtmpClientTarget> {
  private attempt: Attempt | undefined;

  constructor(
    path: string,
    url: string,
    registry: RtmpSourcePaths,
    private readonly opts: RtmpSourceOptions,
  ) {
    super({ ...opts, path, url, registry, remoteAddr: url, parseTarget: parseRtmpUrl });
  }

  protected override connect(target: RtmpClientTarget): void {
    this.log.info({ attempt: this.attempts, host: target.host, port: target.port }, 'pull source connecting');
    const socket = net.connect({ host: target.host, port: target.port });
    const a: Attempt = { socket, conn: new RtmpClientConnection(target, this.timers.now(), this.connOptions()), publishing: { state: 'no' }, done: false };
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
      this.run(a, a.conn.push(chunk, this.timers.now()));
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

  protected override hasAttempt(): boolean {
    return this.attempt !== undefined;
  }

  protected override tick(nowMs: number): void {
    const a = this.attempt;
    if (!a || a.done) return;
    const d = a.conn.nextDeadline();
    if (d !== null && nowMs >= d) this.run(a, a.conn.tick(nowMs));
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
    if (p.toBus.isStarted) this.resetBackoff();
  }

  /** Ends the current attempt (publisher detached) without scheduling anything. */
  protected override teardown(): void {
    const a = this.attempt;
    if (!a || a.done) return;
    a.done = true;
    this.attempt = undefined;
    a.socket.destroy();
    if (a.publishing.state !== 'no') this.registry.removePublisher(this);
    a.publishing = { state: 'no' };
  }
}
