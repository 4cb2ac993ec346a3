/**
 * The bookkeeping every accepted TCP connection of a protocol listener shares (RtmpConnection, RtspConnection):
 * the API session's fields and counters, the peer address, registering with the registry, turning socket errors
 * and hang-ups into one cleanup, counted writes, and ending the socket politely with a forced destroy after a
 * grace period. The protocol subclass moves bytes, runs its sans-I/O machine and says what to release.
 */
import type net from 'node:net';
import { nanoid } from 'nanoid';
import { log as rootLog, type Logger } from '../log.js';
import type { Protocol, Role, Session } from '../media/bus/session.js';
import type { TcpListenerConnection } from './tcp-listener.js';

/**
 * How long a closed connection's socket may take to flush what is queued and end before it is destroyed: 2 s,
 * enough for a last status message or error response on a live link, short enough that a peer that stopped reading
 * cannot pin the socket.
 */
export const TCP_SESSION_END_GRACE_MS = 2000;

/** The registry as a connection uses it for its own session (PathRegistry implements it). */
export interface TcpSessionRegistry {
  addSession(session: Session): void;
  removeSession(session: Session, reason: string): void;
}

/**
 * One accepted connection as the API sees it. The constructor registers the session and wires the socket's
 * 'error' and 'close' to {@link cleanup}; the subclass adds its 'data' handler. {@link cleanup} runs once, whoever
 * ends the connection: it ends the socket, calls {@link release}, and removes the session.
 */
export abstract class TcpSession implements Session, TcpListenerConnection {
  readonly id = nanoid(12);
  role: Role = 'reader';
  path = '';
  /** the peer's IP, without the `::ffff:` of an IPv4-mapped address */
  readonly ip: string;
  /** `ip:port` of the peer */
  readonly remoteAddr: string;
  readonly createdAt = Date.now();
  bytesIn = 0;
  bytesOut = 0;
  /** tagged with the session id, protocol and peer */
  protected readonly log: Logger;
  /** true once {@link cleanup} ran: nothing is written or attached after it */
  protected closed = false;

  /** `state`: the protocol's first state ('handshake', 'initial'). */
  protected constructor(
    readonly protocol: Protocol,
    public state: string,
    readonly socket: net.Socket,
    private readonly registry: TcpSessionRegistry,
  ) {
    this.ip = (socket.remoteAddress ?? '?').replace(/^::ffff:/, '');
    this.remoteAddr = `${this.ip}:${socket.remotePort ?? 0}`;
    this.log = rootLog.child({ session: this.id, protocol, remote: this.remoteAddr });
    socket.setNoDelay(true);
    registry.addSession(this);
    socket.on('error', (err) => this.cleanup(`socket error: ${err.message}`));
    socket.on('close', () => this.cleanup('connection closed by peer'));
  }

  /** Deadline checks, called by the listener about once a second. */
  abstract tick(nowMs: number): void;

  /** Kick (API), config change or shutdown. */
  abstract close(reason: string): void;

  /** Detaches what the connection publishes or reads; called once, from {@link cleanup}. */
  protected abstract release(reason: string): void;

  /** Writes to the socket and counts the bytes; nothing once closed. */
  protected write(bytes: Uint8Array): void {
    if (this.closed || this.socket.destroyed) return;
    this.bytesOut += bytes.byteLength;
    this.socket.write(bytes);
  }

  /**
   * Ends the connection once: the socket is ended (destroyed after {@link TCP_SESSION_END_GRACE_MS} if it lingers),
   * {@link release} detaches its streams, and the session leaves the registry with `reason`.
   */
  protected cleanup(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.socket.destroyed) {
      this.socket.end();
      setTimeout(() => this.socket.destroy(), TCP_SESSION_END_GRACE_MS).unref();
    }
    this.release(reason);
    this.registry.removeSession(this, reason);
  }
}
