/**
 * ICE-TCP, passive side (RFC 6544), on the same port number as the UDP ICE socket: browsers whose UDP is blocked
 * open a TCP connection to our `tcptype passive` host candidate and run ICE, DTLS and SRTP over it. Every packet
 * on the stream is prefixed with its 16-bit big-endian length (RFC 4571 §2; RFC 6544 §3), which is also how
 * libwebrtc's `AsyncTCPSocket` frames ICE-TCP.
 *
 * - `IceTcpConnection` is the sans-I/O state machine of one connection: bytes in (split anywhere), frames out to a
 *   sink, a typed error when the connection must close. Its first frame must be a Binding request that the router
 *   verifies (same ufrag / MESSAGE-INTEGRITY rules as UDP, udp-mux.ts); that binds the connection to the peer, and
 *   only then do DTLS/SRTP frames (RFC 7983 first-byte ranges) reach the peer.
 * - `IceTcpServer` owns the `net.Server` and the timers; `TcpLink` is a connection as a peer sends through it,
 *   dropping packets (counted) once the socket's buffer passes `ICE_TCP_MAX_QUEUED_BYTES` instead of growing.
 *
 * Only the mux (udp-mux.ts) decides which peer a check belongs to; this module imports its types only.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { LimitError, ParseError, StreamgateError } from '../../errors.js';
import { log, RateLimitedLog } from '../../log.js';
import type { IceLink, IpFamily, MuxPeer } from './udp-mux.js';

/**
 * Largest frame accepted: a DTLS 1.2 record (13-byte header + at most 2^14 + 2048 bytes, RFC 6347 §4.1 /
 * RFC 5246 §6.2.3). SRTP packets (~1.2 KB here) and STUN checks (≤ 548 bytes) are far smaller; the 16-bit length
 * would allow 65535, so this also bounds the per-connection reassembly buffer to ~18 KB.
 */
export const ICE_TCP_MAX_FRAME = 13 + 2 ** 14 + 2048;
/**
 * Size range of the first frame of a connection, which must be a Binding request: a STUN header is 20 bytes and
 * checks larger than 548 bytes are not answered (udp-mux.ts STUN_MAX_MESSAGE, RFC 5389 §7.1). So an unbound
 * connection never buffers more than 548 bytes, and garbage is refused as soon as its length header arrives.
 */
export const ICE_TCP_MIN_CHECK = 20;
export const ICE_TCP_MAX_CHECK = 548;
/**
 * An unbound connection must present a verified check this soon. Browsers send their first check right after the
 * TCP handshake and retransmit it within ~1.5 s (RFC 8445 §14.3 Ta pacing, RFC 5389 RTO 500 ms); 10 s frees slots
 * held by scanners and stale clients quickly.
 */
export const ICE_TCP_CHECK_TIMEOUT_MS = 10_000;
/** A bound connection without a verified check for this long is closed (RFC 7675 §5.1 consent: 30 s). */
export const ICE_TCP_CONSENT_TIMEOUT_MS = 30_000;
/**
 * Cap on connections that have not (yet) passed a check. A viewer opens one per TCP candidate pair and binds it
 * within a round trip, so 256 covers many viewers joining at once; beyond it new connections are closed at once,
 * which bounds what a scanner can make us hold (an fd and ≤ 548 buffered bytes each).
 */
export const ICE_TCP_MAX_UNBOUND = 256;
/**
 * A TCP viewer whose socket has this much queued (not yet taken by the kernel) gets its packets dropped until it
 * drains: ~3 s of a 2.5 Mbit/s stream. Memory per slow viewer stays bounded and other viewers never wait.
 */
export const ICE_TCP_MAX_QUEUED_BYTES = 1024 * 1024;

/** Connection states: waiting for a verified check, carrying a peer's packets, done. */
export type IceTcpState = 'unbound' | 'bound' | 'closed';

/** Where an `IceTcpConnection` delivers complete frames. */
export interface IceTcpSink {
  /**
   * A STUN frame (first byte 0–3). Returns true when it was a Binding request verified for this connection's
   * peer (the router answered it); false otherwise.
   */
  stun(frame: Buffer): boolean;
  /** A DTLS (first byte 20–63) or SRTP/SRTCP (128–191) frame on a bound connection. */
  media(frame: Buffer): void;
}

/**
 * One ICE-TCP connection as a state machine: `push(chunk, nowMs, sink)` reassembles RFC 4571 frames (any split)
 * and hands them to `sink` in order; `expired(nowMs)` says when it must close for silence.
 * Frames are views into `chunk` when a chunk holds them whole, else a buffer of the frame's size allocated once.
 */
export class IceTcpConnection {
  state: IceTcpState = 'unbound';
  /** frames delivered to the sink */
  framesIn = 0;
  /** frames on a bound connection that were neither STUN, DTLS nor SRTP (dropped) */
  framesDropped = 0;
  /** first byte of a length header split across chunks, or -1 */
  private head = -1;
  /** the frame being reassembled, allocated at its full length */
  private partial: Buffer | undefined;
  private filled = 0;
  private readonly openedAtMs: number;
  private lastCheckMs = -1;

  constructor(openedAtMs: number) {
    this.openedAtMs = openedAtMs;
  }

  /**
   * Feeds bytes from the socket. Frames reach `sink` before this returns.
   * @throws LimitError (frame over ICE_TCP_MAX_FRAME) or ParseError (anything but a verified check first): the
   *   connection must close; `state` is then 'closed'
   */
  push(chunk: Buffer, nowMs: number, sink: IceTcpSink): void {
    if (this.state === 'closed') return;
    try {
      this.consume(chunk, nowMs, sink);
    } catch (err) {
      this.state = 'closed';
      this.partial = undefined;
      throw err;
    }
  }

  private consume(chunk: Buffer, nowMs: number, sink: IceTcpSink): void {
    const n = chunk.byteLength;
    let off = 0;
    while (off < n) {
      const partial = this.partial;
      if (partial) {
        const take = Math.min(partial.byteLength - this.filled, n - off);
        chunk.copy(partial, this.filled, off, off + take);
        this.filled += take;
        off += take;
        if (this.filled < partial.byteLength) return;
        this.partial = undefined;
        this.frame(partial, nowMs, sink);
        continue;
      }
      let len: number;
      if (this.head >= 0) {
        len = (this.head << 8) | chunk[off]!;
        this.head = -1;
        off += 1;
      } else if (n - off >= 2) {
        len = (chunk[off]! << 8) | chunk[off + 1]!;
        off += 2;
      } else {
        this.head = chunk[off]!;
        return;
      }
      this.checkLength(len, off);
      if (n - off >= len) {
        const f = chunk.subarray(off, off + len);
        off += len;
        this.frame(f, nowMs, sink);
      } else {
        this.partial = Buffer.allocUnsafe(len);
        this.filled = 0;
      }
    }
  }

  private checkLength(len: number, offset: number): void {
    if (len > ICE_TCP_MAX_FRAME) throw new LimitError('ICE-TCP frame length', ICE_TCP_MAX_FRAME, len);
    if (this.state === 'unbound' && (len < ICE_TCP_MIN_CHECK || len > ICE_TCP_MAX_CHECK)) {
      throw new ParseError('ice-tcp', `first frame of ${len} bytes cannot be a connectivity check`, offset - 2);
    }
  }

  private frame(f: Buffer, nowMs: number, sink: IceTcpSink): void {
    this.framesIn++;
    const b0 = f[0];
    if (b0 !== undefined && b0 < 4) {
      if (sink.stun(f)) {
        // the sink may have closed us (e.g. the peer was removed meanwhile): never reopen
        if (this.state === 'unbound') this.state = 'bound';
        this.lastCheckMs = nowMs;
      } else if (this.state === 'unbound') {
        throw new ParseError('ice-tcp', 'first frame is not a verified connectivity check');
      }
      return;
    }
    if (this.state === 'unbound') throw new ParseError('ice-tcp', `data (first byte ${b0 ?? 'none'}) before a connectivity check`);
    if (b0 !== undefined && ((b0 >= 20 && b0 <= 63) || (b0 >= 128 && b0 <= 191))) sink.media(f);
    else this.framesDropped++;
  }

  /** When the connection must close for silence (ms, same clock as `push`). */
  nextDeadline(): number {
    if (this.state === 'closed') return Infinity;
    return this.state === 'unbound' ? this.openedAtMs + ICE_TCP_CHECK_TIMEOUT_MS : this.lastCheckMs + ICE_TCP_CONSENT_TIMEOUT_MS;
  }

  /** Why the connection must close now, or null; closes it when so. */
  expired(nowMs: number): string | null {
    if (nowMs < this.nextDeadline()) return null;
    const why = this.state === 'unbound' ? `no verified connectivity check within ${ICE_TCP_CHECK_TIMEOUT_MS} ms` : `no connectivity check for ${ICE_TCP_CONSENT_TIMEOUT_MS} ms`;
    this.state = 'closed';
    this.partial = undefined;
    return why;
  }

  /** Marks the connection closed (the socket ended or the peer went away). */
  close(): void {
    this.state = 'closed';
    this.partial = undefined;
  }
}

/** What the server asks the mux. */
export interface IceTcpRouter {
  /**
   * A STUN frame on `link`: verifies it (for `bound`'s ufrag only, when the link is bound), answers through the
   * link and notifies the peer. Returns the peer, or null when it is not a verified Binding request.
   */
  check(frame: Buffer, link: TcpLink, bound: MuxPeer | undefined): MuxPeer | null;
  /** A DTLS/SRTP frame from a bound link. */
  media(frame: Buffer, link: TcpLink, peer: MuxPeer): void;
  /** The link closed (either side). */
  closed(link: TcpLink): void;
}

/** `::ffff:a.b.c.d` (an IPv4 client of a dual-stack listener) → `a.b.c.d`. */
function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** An ICE-TCP connection as a peer's link: sends framed packets, drops them under back-pressure. */
export class TcpLink implements IceLink {
  readonly transport = 'tcp' as const;
  readonly family: IpFamily;
  readonly address: string;
  readonly port: number;
  /** the peer this connection is bound to (set by the server after the first verified check) */
  peer: MuxPeer | undefined;
  /** packets dropped because the socket's buffer was over ICE_TCP_MAX_QUEUED_BYTES */
  packetsDropped = 0;

  constructor(
    private readonly socket: Socket,
    readonly conn: IceTcpConnection,
  ) {
    this.address = plainAddress(socket.remoteAddress ?? '');
    this.family = this.address.includes(':') ? 6 : 4;
    this.port = socket.remotePort ?? 0;
  }

  get closed(): boolean {
    return this.conn.state === 'closed' || this.socket.destroyed;
  }

  /** Bytes queued in user space for this connection (Node's `writableLength`). */
  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  /**
   * Sends one packet with its RFC 4571 length prefix (one allocation, one write). Returns false when the packet
   * was dropped: the link is closed, or the socket's buffer is over ICE_TCP_MAX_QUEUED_BYTES.
   */
  send(buf: Uint8Array): boolean {
    if (this.closed || buf.byteLength > 0xffff) return false;
    if (this.socket.writableLength > ICE_TCP_MAX_QUEUED_BYTES) {
      this.packetsDropped++;
      return false;
    }
    const out = Buffer.allocUnsafe(2 + buf.byteLength);
    out[0] = buf.byteLength >> 8;
    out[1] = buf.byteLength & 0xff;
    out.set(buf, 2);
    this.socket.write(out);
    return true;
  }

  /** Closes the connection (the peer ended, or the connection broke a rule). */
  close(): void {
    this.conn.close();
    this.socket.destroy();
  }
}

/** Counters for tests and the log. */
export interface IceTcpStats {
  accepted: number;
  /** refused at once: over ICE_TCP_MAX_UNBOUND */
  refused: number;
  /** closed for bad bytes or a failed first check */
  rejected: number;
  /** closed for silence */
  timedOut: number;
  open: number;
}

/** How often deadlines are checked: well under ICE_TCP_CHECK_TIMEOUT_MS, one timer for all connections. */
const SWEEP_INTERVAL_MS = 1000;

/** The ICE-TCP listener. */
export class IceTcpServer {
  readonly stats: IceTcpStats = { accepted: 0, refused: 0, rejected: 0, timedOut: 0, open: 0 };
  private readonly links = new Set<TcpLink>();
  private readonly warn = new RateLimitedLog(log);
  private readonly sweeper: NodeJS.Timeout;

  private constructor(
    private readonly server: Server,
    private readonly router: IceTcpRouter,
  ) {
    server.on('connection', (s) => this.accept(s));
    server.on('error', (err) => this.warn.warn({ err: err.message }, 'webrtc ice-tcp listener error'));
    this.sweeper = setInterval(() => this.sweep(Date.now()), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  /**
   * Listens on `host:port` (host undefined: Node's default, `::` dual-stack where IPv6 exists, else 0.0.0.0).
   * @throws the listen error (EADDRINUSE, EADDRNOTAVAIL …)
   */
  static async listen(port: number, host: string | undefined, router: IceTcpRouter): Promise<IceTcpServer> {
    const server = createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new IceTcpServer(server, router);
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  /** Connections that have not passed a check yet. */
  get unbound(): number {
    let n = 0;
    for (const l of this.links) if (l.conn.state === 'unbound') n++;
    return n;
  }

  private accept(socket: Socket): void {
    if (this.unbound >= ICE_TCP_MAX_UNBOUND) {
      this.stats.refused++;
      this.warn.warn({ remote: socket.remoteAddress, limit: ICE_TCP_MAX_UNBOUND }, 'webrtc ice-tcp: too many connections without a check, refusing');
      socket.destroy();
      return;
    }
    this.stats.accepted++;
    const link = new TcpLink(socket, new IceTcpConnection(Date.now()));
    this.links.add(link);
    this.stats.open = this.links.size;
    const sink: IceTcpSink = {
      stun: (frame) => {
        const peer = this.router.check(frame, link, link.peer);
        if (peer) link.peer = peer;
        return peer !== null;
      },
      media: (frame) => {
        if (link.peer) this.router.media(frame, link, link.peer);
      },
    };
    socket.on('data', (chunk: Buffer) => {
      try {
        link.conn.push(chunk, Date.now(), sink);
      } catch (err) {
        if (!(err instanceof StreamgateError)) throw err;
        this.stats.rejected++;
        this.warn.warn({ remote: `${link.address}:${link.port}`, reason: err.message }, 'webrtc ice-tcp: closing connection');
        link.close();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      link.conn.close();
      this.links.delete(link);
      this.stats.open = this.links.size;
      this.router.closed(link);
    });
  }

  /** Closes connections past their deadline; public so tests can pass their own clock. */
  sweep(nowMs: number): void {
    for (const link of this.links) {
      const why = link.conn.expired(nowMs);
      if (why === null) continue;
      this.stats.timedOut++;
      log.debug({ remote: `${link.address}:${link.port}`, reason: why }, 'webrtc ice-tcp: connection timed out');
      link.close();
    }
  }

  /** Stops listening and closes every connection. */
  close(): void {
    clearInterval(this.sweeper);
    for (const link of this.links) link.close();
    this.server.close();
  }
}
