import type net from 'node:net';
import { StreamgateError, errorMessage } from '../../errors.js';
import type { FrameSink, Reader } from '../../media/bus/reader.js';
import type { AccessRequest } from '../../media/bus/registry.js';
import type { Session } from '../../media/bus/session.js';
import type { Stream } from '../../media/bus/stream.js';
import { startTcpListener } from '../tcp-listener.js';
import { TcpSession } from '../tcp-session.js';
import { serializeMessage, type RtmpOutMessage } from './chunk-stream.js';
import { RtmpServerConnection, type RtmpAction, type RtmpStreamRequest } from './session.js';
import { RtmpToBus } from './to-bus.js';

/** The registry as the RTMP server uses it (PathRegistry implements it; tests pass fakes). */
export interface RtmpPaths {
  addSession(session: Session): void;
  removeSession(session: Session, reason: string): void;
  addPublisher(path: string, session: Session, req: Omit<AccessRequest, 'action' | 'path'>): Promise<Stream>;
  removePublisher(session: Session): void;
  addReader(
    path: string,
    session: Session,
    sink: FrameSink,
    req: Omit<AccessRequest, 'action' | 'path'>,
    opts?: { catchUp?: boolean },
  ): Promise<Reader>;
  removeReader(reader: Reader): void;
}

/** What a player's sink needs from its connection; the egress side (egress/rtmp/from-bus.ts) implements the sink. */
export interface RtmpPlayer {
  readonly streamId: number;
  serialize(msg: RtmpOutMessage): Uint8Array;
  send(bytes: Uint8Array): void;
  /** several buffers in one syscall */
  sendMany(parts: readonly Uint8Array[]): void;
  bufferedBytes(): number;
  end(reason: string): void;
}

/** Options of the RTMP listener. */
export interface RtmpServerOptions {
  host?: string;
  port: number;
  paths: RtmpPaths;
  /** makes the frame sink of a player (main.ts passes the RTMP egress) */
  createPlaySink(player: RtmpPlayer): FrameSink;
  /** close publishers and unidentified clients silent for this long */
  readTimeoutMs: number;
}

/** A bound RTMP listener. */
export interface RtmpServer {
  port: number;
  connections: Set<RtmpConnection>;
  close(): Promise<void>;
}

/**
 * Starts the RTMP listener (publish and play on one port). A connection that never completes the handshake, or a
 * publisher that stops sending, is closed after the read timeout (config `readTimeout`, default 10 s), checked
 * every second.
 */
export async function startRtmpServer(opts: RtmpServerOptions): Promise<RtmpServer> {
  return startTcpListener({ port: opts.port, host: opts.host, accept: (socket) => new RtmpConnection(socket, opts) });
}

/**
 * One RTMP TCP connection: moves bytes between the socket and the sans-I/O {@link RtmpServerConnection},
 * and carries out its actions against the registry. It is the connection's API session.
 */
export class RtmpConnection extends TcpSession {
  private readonly conn: RtmpServerConnection;
  private publishing: { streamId: number; toBus: RtmpToBus } | undefined;
  private reader: Reader | undefined;
  private readonly players = new Map<number, { accepted: boolean; held: Uint8Array[] }>();
  private stoppingPlay = false;

  constructor(
    socket: net.Socket,
    private readonly opts: RtmpServerOptions,
  ) {
    super('rtmp', 'handshake', socket, opts.paths);
    this.conn = new RtmpServerConnection(Date.now(), { readTimeoutMs: opts.readTimeoutMs });
    socket.on('data', (chunk: Buffer) => {
      this.bytesIn += chunk.byteLength;
      try {
        this.run(this.conn.push(chunk, Date.now()));
      } catch (err) {
        // a bug reached by this peer's bytes: end this session, never the process
        this.log.error({ err: errorMessage(err), stack: err instanceof Error ? err.stack : undefined }, 'internal error on RTMP input: closing the session');
        this.close(`internal error: ${errorMessage(err)}`);
      }
    });
  }

  /** Read-timeout check, called about once a second. */
  override tick(now: number): void {
    const d = this.conn.nextDeadline();
    if (d !== null && now >= d) this.run(this.conn.tick(now));
  }

  /** Kick (API), config change or shutdown. */
  override close(reason: string): void {
    if (this.closed) return;
    this.log.info({ reason }, 'closing RTMP connection');
    this.socket.end();
    this.socket.destroy();
    this.cleanup(reason);
  }

  stats(): Record<string, unknown> {
    return this.reader ? { framesSent: this.reader.framesSent, framesDropped: this.reader.framesDropped } : {};
  }

  private run(actions: RtmpAction[]): void {
    for (const a of actions) {
      if (this.closed) return;
      switch (a.type) {
        case 'send':
          this.write(a.bytes);
          break;
        case 'publish':
          void this.startPublish(a);
          break;
        case 'play':
          void this.startPlay(a);
          break;
        case 'media':
          this.media(a);
          break;
        case 'unpublish':
          this.stopPublish();
          break;
        case 'unplay':
          this.stopPlay('player stopped');
          break;
        case 'pause':
          break; // live streams do not pause: players that pause just stop rendering
        case 'close':
          if (a.error) this.log.warn({ err: a.error.message, code: a.error.code }, 'RTMP protocol error');
          this.socket.end();
          this.cleanup(a.reason);
          return;
      }
    }
  }

  private request(a: RtmpStreamRequest): Omit<AccessRequest, 'action' | 'path'> {
    const req: Omit<AccessRequest, 'action' | 'path'> = { protocol: 'rtmp', ip: this.socket.remoteAddress ?? '' };
    const p = a.params;
    if (p.user !== undefined) req.user = p.user;
    if (p.pass !== undefined) req.pass = p.pass;
    if (p.key !== undefined) req.key = p.key;
    if (a.query) req.query = a.query;
    return req;
  }

  private async startPublish(a: RtmpStreamRequest): Promise<void> {
    try {
      if (this.publishing) throw new StreamgateError('SG_STATE', 'this connection is already publishing');
      const stream = await this.opts.paths.addPublisher(a.path, this, this.request(a));
      if (this.closed) {
        this.opts.paths.removePublisher(this);
        return;
      }
      this.role = 'publisher';
      this.path = a.path;
      this.state = 'publish';
      this.publishing = { streamId: a.streamId, toBus: new RtmpToBus(stream, this.log.child({ path: a.path })) };
      this.log.info({ path: a.path }, 'publishing');
      this.run(this.conn.resolve(a.streamId, null, Date.now()));
    } catch (err) {
      this.log.warn({ path: a.path, err: errorMessage(err) }, 'publish refused');
      this.run(this.conn.resolve(a.streamId, err, Date.now()));
    }
  }

  private async startPlay(a: RtmpStreamRequest): Promise<void> {
    // the sink may start writing (metadata, GOP cache) inside addReader, before Play.Start is sent: hold it
    const player = { accepted: false, held: [] as Uint8Array[] };
    this.players.set(a.streamId, player);
    const self = this;
    const handle: RtmpPlayer = {
      streamId: a.streamId,
      serialize: (msg) => serializeMessage(msg, this.conn.session.chunkSize),
      send(bytes) {
        if (player.accepted) self.write(bytes);
        else player.held.push(bytes);
      },
      sendMany(parts) {
        if (!player.accepted) {
          player.held.push(...parts);
          return;
        }
        self.socket.cork();
        for (const p of parts) self.write(p);
        self.socket.uncork();
      },
      bufferedBytes: () => this.socket.writableLength,
      end: (reason) => {
        if (this.closed || this.stoppingPlay) return;
        this.run(this.conn.session.unpublishNotify(a.streamId));
        this.reader = undefined;
        this.close(reason);
      },
    };
    try {
      if (this.reader) throw new StreamgateError('SG_STATE', 'this connection is already playing');
      this.role = 'reader';
      this.path = a.path;
      this.state = 'play';
      const reader = await this.opts.paths.addReader(a.path, this, this.opts.createPlaySink(handle), this.request(a), {
        catchUp: true,
      });
      if (this.closed) {
        this.opts.paths.removeReader(reader);
        return;
      }
      this.reader = reader;
      this.log.info({ path: a.path }, 'playing');
      this.run(this.conn.resolve(a.streamId, null, Date.now()));
      player.accepted = true;
      for (const b of player.held) this.write(b);
      player.held = [];
    } catch (err) {
      this.players.delete(a.streamId);
      this.log.warn({ path: a.path, err: errorMessage(err) }, 'play refused');
      this.run(this.conn.resolve(a.streamId, err, Date.now()));
    }
  }

  private media(a: Extract<RtmpAction, { type: 'media' }>): void {
    const pub = this.publishing;
    if (!pub || pub.streamId !== a.streamId) return;
    try {
      if (a.kind === 'data') pub.toBus.onData(a.name, a.values);
      else if (a.kind === 'video') pub.toBus.onVideo(a.timestamp, a.body);
      else pub.toBus.onAudio(a.timestamp, a.body);
    } catch (err) {
      if (err instanceof StreamgateError) this.log.warn({ path: this.path, err: err.message, code: err.code }, 'bad media from publisher: closing it');
      else this.log.error({ path: this.path, err: errorMessage(err) }, 'internal error on publisher media: closing it');
      this.close(errorMessage(err));
    }
  }

  private stopPublish(): void {
    if (!this.publishing) return;
    this.publishing = undefined;
    this.opts.paths.removePublisher(this);
    this.state = 'idle';
  }

  private stopPlay(reason: string): void {
    const r = this.reader;
    if (!r) return;
    this.reader = undefined;
    // close the reader so its sink frees what it holds (a shared transcoder subscription); the sink's end() is
    // a no-op while we stop it ourselves
    this.stoppingPlay = true;
    try {
      r.close(reason);
    } finally {
      this.stoppingPlay = false;
    }
    this.opts.paths.removeReader(r);
    this.state = 'idle';
  }

  protected override release(reason: string): void {
    this.conn.session.markClosed();
    this.stopPublish();
    this.stopPlay(reason);
  }
}
