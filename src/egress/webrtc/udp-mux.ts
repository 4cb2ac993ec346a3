/**
 * All WebRTC peers on one ICE port (`icePort`), as ICE-lite (RFC 8445 §2.5): the gateway only answers
 * connectivity checks, the browser (always a full agent) nominates. Datagrams are demultiplexed by their first
 * byte (RFC 7983 §7): 0–3 STUN, 20–63 DTLS, 128–191 RTP/RTCP.
 *
 * - A STUN Binding request names its peer in USERNAME ("<our ufrag>:<their ufrag>", RFC 8445 §7.2.2); it is
 *   answered only when MESSAGE-INTEGRITY verifies with that peer's password, and only then is the source address
 *   bound to the peer.
 * - Everything else is routed by source address; datagrams from unknown addresses and garbage are dropped and
 *   counted, never parsed further.
 * - ICE-TCP (RFC 6544, passive) on the same port number: ice-tcp.ts frames the connections and asks this mux to
 *   verify their checks; a verified check binds the connection to the peer.
 * - IPv6: a second UDP socket on the same number where the machine has IPv6 (link-local addresses are never
 *   announced: an SDP candidate cannot carry their zone id).
 *
 * Each verified check hands the peer an `IceLink` (a UDP remote address, or a TCP connection); the peer sends
 * through the link of its nominated pair, so it never needs to know which transport it is on.
 *
 * werift binds a socket per peer and has no hook for a shared one, so the gateway's own peers (peer.ts) use this
 * mux with werift's DTLS state machine only.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { crc32 } from 'node:zlib';
import { errorMessage } from '../../errors.js';
import { log, RateLimitedLog } from '../../log.js';
import { IceTcpServer, TcpLink, type IceTcpRouter } from './ice-tcp.js';

/** STUN magic cookie (RFC 5389 §6). */
export const STUN_MAGIC = 0x2112a442;
/** Binding request / success response message types (RFC 5389 §6, §18.1). */
export const STUN_BINDING_REQUEST = 0x0001;
export const STUN_BINDING_SUCCESS = 0x0101;
/** Attribute types (RFC 5389 §18.2, RFC 8445 §16.1). */
export const STUN_ATTR = {
  username: 0x0006,
  messageIntegrity: 0x0008,
  xorMappedAddress: 0x0020,
  priority: 0x0024,
  useCandidate: 0x0025,
  fingerprint: 0x8028,
  iceControlled: 0x8029,
  iceControlling: 0x802a,
} as const;
/** FINGERPRINT XOR value: "STUN" (RFC 5389 §15.5). */
const FINGERPRINT_XOR = 0x5354554e;
/**
 * Largest STUN message parsed: a Binding request from a browser is ~100 bytes; 548 is the smallest reassembly
 * size the STUN RFC tells senders to stay within (RFC 5389 §7.1), so anything bigger is not a check we answer.
 */
export const STUN_MAX_MESSAGE = 548;
/** A peer whose address sent nothing valid (checks or media) for this long is gone (RFC 7675 consent: 30 s). */
export const CONSENT_TIMEOUT_MS = 30_000;

/** A parsed STUN message: header fields and attribute views. */
export interface StunMessage {
  type: number;
  transactionId: Uint8Array;
  /** attribute type → value (view); the first occurrence of each */
  attrs: Map<number, Uint8Array>;
  /** byte offset of MESSAGE-INTEGRITY's header, -1 when absent */
  integrityOffset: number;
}

/**
 * Parses a STUN message (RFC 5389 §6, §15).
 * @returns the message (attribute values are views into `buf`), or null when the bytes are not STUN
 */
export function parseStun(buf: Uint8Array): StunMessage | null {
  if (buf.byteLength < 20 || buf.byteLength > STUN_MAX_MESSAGE || (buf[0]! & 0xc0) !== 0) return null;
  const len = (buf[2]! << 8) | buf[3]!;
  const cookie = ((buf[4]! << 24) | (buf[5]! << 16) | (buf[6]! << 8) | buf[7]!) >>> 0;
  if (cookie !== STUN_MAGIC || len + 20 !== buf.byteLength || (len & 3) !== 0) return null;
  const attrs = new Map<number, Uint8Array>();
  let integrityOffset = -1;
  let off = 20;
  while (off + 4 <= buf.byteLength) {
    const t = (buf[off]! << 8) | buf[off + 1]!;
    const l = (buf[off + 2]! << 8) | buf[off + 3]!;
    if (off + 4 + l > buf.byteLength) return null;
    if (t === STUN_ATTR.messageIntegrity) integrityOffset = off;
    if (!attrs.has(t)) attrs.set(t, buf.subarray(off + 4, off + 4 + l));
    off += 4 + ((l + 3) & ~3);
  }
  return { type: (buf[0]! << 8) | buf[1]!, transactionId: buf.subarray(8, 20), attrs, integrityOffset };
}

/** Verifies MESSAGE-INTEGRITY with a short-term credential (RFC 5389 §15.4): HMAC-SHA1 keyed with the password. */
export function verifyIntegrity(buf: Uint8Array, msg: StunMessage, password: string): boolean {
  const mi = msg.attrs.get(STUN_ATTR.messageIntegrity);
  if (!mi || mi.byteLength !== 20 || msg.integrityOffset < 0) return false;
  // the length field covers the message up to and including MESSAGE-INTEGRITY
  const head = Buffer.from(buf.subarray(0, msg.integrityOffset));
  head.writeUInt16BE(msg.integrityOffset - 20 + 24, 2);
  const h = createHmac('sha1', password).update(head).digest();
  return timingSafeEqual(h, mi);
}

/** A Binding success response (RFC 5389 §7.3.1) with XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY and FINGERPRINT. */
export function bindingSuccess(transactionId: Uint8Array, address: string, port: number, password: string): Buffer {
  const v6 = address.includes(':');
  const addrLen = v6 ? 16 : 4;
  const xma = 4 + 4 + addrLen;
  const total = 20 + xma + 24 + 8;
  const b = Buffer.alloc(total);
  b.writeUInt16BE(STUN_BINDING_SUCCESS, 0);
  b.writeUInt32BE(STUN_MAGIC, 4);
  b.set(transactionId, 8);
  let o = 20;
  b.writeUInt16BE(STUN_ATTR.xorMappedAddress, o);
  b.writeUInt16BE(4 + addrLen, o + 2);
  b[o + 5] = v6 ? 0x02 : 0x01;
  b.writeUInt16BE(port ^ (STUN_MAGIC >>> 16), o + 6);
  const ip = v6 ? ipv6Bytes(address) : Buffer.from(address.split('.').map(Number));
  const xorKey = Buffer.concat([b.subarray(4, 8), Buffer.from(transactionId)]);
  for (let i = 0; i < addrLen; i++) b[o + 8 + i] = ip[i]! ^ xorKey[i]!;
  o += xma;
  // MESSAGE-INTEGRITY over everything before it, length field counting up to its end
  b.writeUInt16BE(o - 20 + 24, 2);
  b.writeUInt16BE(STUN_ATTR.messageIntegrity, o);
  b.writeUInt16BE(20, o + 2);
  createHmac('sha1', password).update(b.subarray(0, o)).digest().copy(b, o + 4);
  o += 24;
  b.writeUInt16BE(o - 20 + 8, 2);
  b.writeUInt16BE(STUN_ATTR.fingerprint, o);
  b.writeUInt16BE(4, o + 2);
  b.writeUInt32BE((crc32(b.subarray(0, o)) ^ FINGERPRINT_XOR) >>> 0, o + 4);
  return b;
}

function ipv6Bytes(address: string): Buffer {
  // a zone id ("%eth0") is local to this host, not part of the address
  const a = address.split('%')[0]!;
  const [head = '', tail = ''] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = a.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16) || 0, i * 2));
  return out;
}

/** IP version of a socket or address. */
export type IpFamily = 4 | 6;
/** ICE candidate transports the gateway serves. */
export type IceTransport = 'udp' | 'tcp';

/**
 * One path to a remote ICE candidate as a peer sends through it: a UDP address:port on the v4 or v6 socket, or
 * one ICE-TCP connection (ice-tcp.ts). A peer sends through the link of its nominated pair.
 */
export interface IceLink {
  readonly transport: IceTransport;
  readonly family: IpFamily;
  /** remote address (IPv4 dotted, or IPv6 without brackets) */
  readonly address: string;
  readonly port: number;
  /** true when the link can no longer carry packets (a closed TCP connection) */
  readonly closed: boolean;
  /** Sends one packet; false when it was dropped (closed, or TCP back-pressure). Never throws. */
  send(buf: Uint8Array): boolean;
}

/** A UDP remote address on one of the mux's sockets. */
class UdpLink implements IceLink {
  readonly transport = 'udp' as const;
  readonly closed = false;
  constructor(
    private readonly socket: Socket,
    readonly family: IpFamily,
    readonly address: string,
    readonly port: number,
  ) {}

  /** No per-send callback (a closure per packet on the hot path): errors surface as the socket's 'error' event. */
  send(buf: Uint8Array): boolean {
    this.socket.send(buf, this.port, this.address);
    return true;
  }
}

/** A peer as the mux sees it. */
export interface MuxPeer {
  readonly localUfrag: string;
  readonly localPwd: string;
  /** A connectivity check on `link` verified; `nominated` when it carried USE-CANDIDATE. */
  onCheck(link: IceLink, nominated: boolean): void;
  /** A DTLS or SRTP/SRTCP packet from a link bound to this peer. */
  onDatagram(buf: Buffer, link: IceLink): void;
  /** Consent expired (nothing from the peer for CONSENT_TIMEOUT_MS). */
  onTimeout(): void;
}

/** Counters for the API/metrics and tests. */
export interface MuxStats {
  stunAnswered: number;
  stunRejected: number;
  unknownDropped: number;
  peers: number;
}

/** A host candidate the mux serves. */
export interface IceCandidate {
  transport: IceTransport;
  family: IpFamily;
  address: string;
  port: number;
}

/**
 * Which candidates answers advertise. A test seam, not a config key: end-to-end tests restrict answers to TCP or
 * IPv6 candidates to prove those paths work, since the test machine has no packet filter to block UDP or IPv4.
 * Production leaves it unset (every transport and family that is bound).
 */
export interface IceAdvertise {
  transports?: readonly IceTransport[];
  families?: readonly IpFamily[];
}

/** Options of `UdpMux.bind` beyond port and host. */
export interface IceBindOptions {
  /** config `additionalHosts`: extra addresses (or names) announced as host candidates; an IPv6 one binds udp6 */
  additionalHosts?: readonly string[];
  /** ICE-TCP passive listener on the same port number (default true) */
  tcp?: boolean;
  /** see IceAdvertise (tests only) */
  advertise?: IceAdvertise;
}

/** fe80::/10: link-local IPv6 needs a zone id to be usable, which SDP candidates cannot carry. */
export function isLinkLocalV6(address: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(address);
}

/** Non-internal, non-link-local IPv6 addresses of this machine (what an IPv6 host candidate may use). */
function machineV6(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === 'IPv6' && !a.internal && !isLinkLocalV6(a.address) && !a.address.startsWith('::ffff:')) out.push(a.address);
    }
  }
  return out;
}

/**
 * Host candidate addresses: the bound address when specific, else every non-internal IPv4 address (and, with
 * `ipv6`, every non-link-local IPv6 one), plus the configured extras (never a link-local one).
 */
export function hostAddresses(bound: string | undefined, additional: readonly string[], ipv6: boolean): string[] {
  const out: string[] = [];
  if (bound && bound !== '0.0.0.0' && bound !== '::') out.push(bound);
  else {
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) out.push(a.address);
    }
    if (ipv6 && bound !== '0.0.0.0') out.push(...machineV6());
  }
  for (const a of additional) if (!out.includes(a) && !isLinkLocalV6(a)) out.push(a);
  return out;
}

/** Binds a UDP socket; rejects with the bind error. */
async function bindUdp(type: 'udp4' | 'udp6', port: number, host: string | undefined, reuseAddr: boolean): Promise<Socket> {
  // ipv6Only: the v6 socket shares the port number with the v4 one instead of taking v4 traffic (dual-stack)
  const socket = createSocket(type === 'udp6' ? { type, reuseAddr, ipv6Only: true } : { type, reuseAddr });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    socket.close();
    throw err;
  }
  // WebRTC bursts (an IDR is ~100 packets) to many viewers: a larger kernel buffer avoids drops on send
  try {
    socket.setSendBufferSize(4 * 1024 * 1024);
    socket.setRecvBufferSize(1024 * 1024);
  } catch {
    // capped by net.core.[rw]mem_max: keep the default
  }
  return socket;
}

/** Ephemeral-port attempts when `icePort` is 0 and the TCP port of the UDP socket's number is taken. */
const EPHEMERAL_ATTEMPTS = 8;
/** ICE-TCP links one peer may bind: one per TCP candidate pair, a few local interfaces × our TCP candidates. */
export const ICE_TCP_MAX_LINKS_PER_PEER = 16;

/** A UDP remote address bound to a peer. */
interface UdpRoute {
  peer: MuxPeer;
  link: UdpLink;
}

/**
 * The shared ICE port: the UDP socket(s) (IPv4, and IPv6 where the machine has it), the ICE-TCP listener on the
 * same number, and the routing tables from ufrag and remote address to peer.
 */
export class UdpMux implements IceTcpRouter {
  private readonly byUfrag = new Map<string, MuxPeer>();
  private readonly byAddr = new Map<string, UdpRoute>();
  private readonly addrsOf = new Map<MuxPeer, Set<string>>();
  private readonly tcpOf = new Map<MuxPeer, Set<TcpLink>>();
  private readonly lastSeen = new Map<MuxPeer, number>();
  private readonly warn = new RateLimitedLog(log);
  private sweeper: NodeJS.Timeout | undefined;
  /** the IPv6 socket (when `socket` is IPv4 and IPv6 is available) */
  private socket6: Socket | undefined;
  /** the ICE-TCP listener, when bound */
  tcp: IceTcpServer | undefined;
  /** families the TCP listener accepts */
  private tcpFamilies: readonly IpFamily[] = [];
  private host: string | undefined;
  private additionalHosts: readonly string[] = [];
  private advertise: IceAdvertise = {};
  readonly stats: MuxStats = { stunAnswered: 0, stunRejected: 0, unknownDropped: 0, peers: 0 };

  /** `socket`: the primary UDP socket (IPv4, or IPv6 when the bind host is an IPv6 address). */
  private constructor(
    readonly socket: Socket,
    private readonly family: IpFamily,
  ) {}

  /**
   * Binds the ICE port on `host:port` (port 0: any free port that is free for UDP and TCP alike): UDP on IPv4,
   * UDP on IPv6 too when the machine has a non-link-local IPv6 address, `additionalHosts` names one or `host` is
   * `::` (an IPv6 `host` binds IPv6 only), and the ICE-TCP listener (ice-tcp.ts) on the same number, dual-stack
   * when IPv6 is bound. IPv6 or TCP that fail to bind are logged once and left out of the candidates.
   * `reuseAddr` lets send threads bind the same UDP port (send-pool.ts).
   */
  static async bind(port: number, host?: string, reuseAddr = false, opts: IceBindOptions = {}): Promise<UdpMux> {
    const additional = opts.additionalHosts ?? [];
    const v6Host = host !== undefined && isIP(host) === 6 && host !== '::';
    const wantV6 = !v6Host && (host === '::' || ((host === undefined || host === '') && machineV6().length > 0) || additional.some((a) => isIP(a) === 6));
    const udpHost = host === '::' || host === '' ? undefined : host;
    for (let attempt = 1; ; attempt++) {
      const socket = await bindUdp(v6Host ? 'udp6' : 'udp4', port, udpHost, reuseAddr);
      const mux = new UdpMux(socket, v6Host ? 6 : 4);
      mux.host = host;
      mux.additionalHosts = additional;
      mux.advertise = opts.advertise ?? {};
      const p = socket.address().port;
      if (opts.tcp !== false) {
        const tcpHost = udpHost ?? (wantV6 ? '::' : '0.0.0.0');
        try {
          mux.tcp = await IceTcpServer.listen(p, tcpHost, mux);
          mux.tcpFamilies = v6Host ? [6] : tcpHost === '::' ? [4, 6] : [4];
        } catch (err) {
          if (port === 0 && attempt < EPHEMERAL_ATTEMPTS && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
            socket.close();
            continue;
          }
          log.warn({ port: p, host: tcpHost, err: errorMessage(err) }, 'webrtc: ICE-TCP listener not bound; ICE over UDP only');
        }
      }
      if (wantV6) {
        try {
          mux.socket6 = await bindUdp('udp6', p, '::', false);
        } catch (err) {
          log.warn({ port: p, err: errorMessage(err) }, 'webrtc: IPv6 ICE socket not bound; IPv4 candidates only');
          // a dual-stack TCP listener still serves IPv6 clients, but without UDP there is no IPv6 candidate set
        }
      }
      mux.listen(socket, v6Host ? 6 : 4);
      if (mux.socket6) mux.listen(mux.socket6, 6);
      mux.sweeper = setInterval(() => mux.sweep(Date.now()), 5000);
      mux.sweeper.unref();
      return mux;
    }
  }

  private listen(socket: Socket, family: IpFamily): void {
    socket.on('message', (buf, rinfo) => this.receive(buf, rinfo.address, rinfo.port, family));
    socket.on('error', (err) => this.warn.warn({ err: err.message }, 'webrtc ice socket error'));
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** IP families with a bound UDP socket. */
  get udpFamilies(): IpFamily[] {
    return this.socket6 ? [this.family, 6] : [this.family];
  }

  /**
   * The host candidates answers carry (see `hostAddresses`), UDP first: each address on every transport bound for
   * its family, filtered by the `advertise` test seam. Names in `additionalHosts` count as IPv4.
   */
  candidates(): IceCandidate[] {
    const udp = this.udpFamilies;
    const addrs = hostAddresses(this.host, this.additionalHosts, udp.includes(6));
    const a = this.advertise;
    const out: IceCandidate[] = [];
    for (const transport of ['udp', 'tcp'] as const) {
      if (a.transports && !a.transports.includes(transport)) continue;
      const served = transport === 'udp' ? udp : this.tcpFamilies;
      for (const address of addrs) {
        const family: IpFamily = isIP(address) === 6 ? 6 : 4;
        if (!served.includes(family) || (a.families && !a.families.includes(family))) continue;
        out.push({ transport, family, address, port: this.port });
      }
    }
    return out;
  }

  /** Makes a peer reachable by its ufrag. */
  add(peer: MuxPeer): void {
    this.byUfrag.set(peer.localUfrag, peer);
    this.lastSeen.set(peer, Date.now());
    this.stats.peers = this.byUfrag.size;
  }

  /** A peer changed its local ufrag (ICE restart): checks with the old one are no longer answered. */
  rekey(peer: MuxPeer, oldUfrag: string): void {
    if (this.byUfrag.get(oldUfrag) === peer) this.byUfrag.delete(oldUfrag);
    this.byUfrag.set(peer.localUfrag, peer);
  }

  /** Forgets a peer and its addresses, and closes its ICE-TCP connections. */
  remove(peer: MuxPeer): void {
    if (this.byUfrag.get(peer.localUfrag) === peer) this.byUfrag.delete(peer.localUfrag);
    for (const a of this.addrsOf.get(peer) ?? []) if (this.byAddr.get(a)?.peer === peer) this.byAddr.delete(a);
    this.addrsOf.delete(peer);
    const tcp = this.tcpOf.get(peer);
    this.tcpOf.delete(peer);
    for (const l of tcp ?? []) l.close();
    this.lastSeen.delete(peer);
    this.stats.peers = this.byUfrag.size;
  }

  /** Sends a datagram from the socket of the address's family (dropped when that family is not bound). */
  send(buf: Uint8Array, address: string, port: number): void {
    const s = address.includes(':') ? (this.family === 6 ? this.socket : this.socket6) : this.family === 4 ? this.socket : undefined;
    s?.send(buf, port, address);
  }

  /** Routes one datagram (from the primary socket, or `family` 6 from the IPv6 one); public for tests and send threads. */
  receive(buf: Buffer, address: string, port: number, family: IpFamily = this.family): void {
    const b0 = buf[0];
    if (b0 === undefined) return;
    const key = `${address}:${port}`;
    if (b0 < 4) {
      const route = this.byAddr.get(key);
      const socket = family === this.family ? this.socket : this.socket6;
      if (!socket) return;
      const link = route?.link ?? new UdpLink(socket, family, address, port);
      const peer = this.check(buf, link, undefined);
      if (peer && route?.peer !== peer) {
        if (route) this.addrsOf.get(route.peer)?.delete(key);
        this.byAddr.set(key, { peer, link });
        let set = this.addrsOf.get(peer);
        if (!set) this.addrsOf.set(peer, (set = new Set()));
        set.add(key);
      }
      return;
    }
    const route = this.byAddr.get(key);
    if (!route || !((b0 >= 20 && b0 <= 63) || (b0 >= 128 && b0 <= 191))) {
      this.stats.unknownDropped++;
      return;
    }
    this.lastSeen.set(route.peer, Date.now());
    route.peer.onDatagram(buf, route.link);
  }

  /**
   * IceTcpRouter and the UDP path: a STUN message on `link`. Answered (through the link) only when it is a Binding
   * request whose USERNAME names a known peer (and `bound`, when given) and whose MESSAGE-INTEGRITY verifies.
   * @returns the peer, or null
   */
  check(buf: Buffer, link: IceLink, bound: MuxPeer | undefined): MuxPeer | null {
    const msg = parseStun(buf);
    if (!msg || msg.type !== STUN_BINDING_REQUEST) {
      this.stats.unknownDropped++;
      return null;
    }
    const user = msg.attrs.get(STUN_ATTR.username);
    const ufrag = user ? Buffer.from(user).toString('utf8').split(':')[0] : undefined;
    const peer = ufrag !== undefined ? this.byUfrag.get(ufrag) : undefined;
    if (!peer || (bound && peer !== bound) || !verifyIntegrity(buf, msg, peer.localPwd)) {
      this.stats.stunRejected++;
      return null;
    }
    if (link instanceof TcpLink && !bound) {
      let set = this.tcpOf.get(peer);
      if (!set) this.tcpOf.set(peer, (set = new Set()));
      if (set.size >= ICE_TCP_MAX_LINKS_PER_PEER) {
        this.stats.stunRejected++;
        return null;
      }
      set.add(link);
    }
    this.stats.stunAnswered++;
    link.send(bindingSuccess(msg.transactionId, link.address, link.port, peer.localPwd));
    this.lastSeen.set(peer, Date.now());
    peer.onCheck(link, msg.attrs.has(STUN_ATTR.useCandidate));
    return peer;
  }

  /** IceTcpRouter: DTLS/SRTP from a bound ICE-TCP connection. */
  media(frame: Buffer, link: TcpLink, peer: MuxPeer): void {
    this.lastSeen.set(peer, Date.now());
    peer.onDatagram(frame, link);
  }

  /** IceTcpRouter: an ICE-TCP connection closed. */
  closed(link: TcpLink): void {
    if (link.peer) this.tcpOf.get(link.peer)?.delete(link);
  }

  /** Ends peers silent for CONSENT_TIMEOUT_MS (run every 5 s; public so tests can pass their own clock). */
  sweep(nowMs: number): void {
    for (const [peer, seen] of [...this.lastSeen]) {
      if (nowMs - seen > CONSENT_TIMEOUT_MS) {
        this.remove(peer);
        peer.onTimeout();
      }
    }
  }

  /** Closes the sockets and the TCP listener; peers are not notified (the server closes them first). */
  close(): void {
    clearInterval(this.sweeper);
    this.socket.close();
    this.socket6?.close();
    this.tcp?.close();
  }
}
