/**
 * All WebRTC peers on one UDP port (`icePort`), as ICE-lite (RFC 8445 §2.5): the gateway only answers
 * connectivity checks, the browser (always a full agent) nominates. Datagrams are demultiplexed by their first
 * byte (RFC 7983 §7): 0–3 STUN, 20–63 DTLS, 128–191 RTP/RTCP.
 *
 * - A STUN Binding request names its peer in USERNAME ("<our ufrag>:<their ufrag>", RFC 8445 §7.2.2); it is
 *   answered only when MESSAGE-INTEGRITY verifies with that peer's password, and only then is the source address
 *   bound to the peer.
 * - Everything else is routed by source address; datagrams from unknown addresses and garbage are dropped and
 *   counted, never parsed further.
 *
 * werift binds a socket per peer and has no hook for a shared one, so the gateway's own peers (peer.ts) use this
 * mux with werift's DTLS state machine only.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { crc32 } from 'node:zlib';
import { log, RateLimitedLog } from '../../log.js';

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

function ipv6Bytes(a: string): Buffer {
  const [head = '', tail = ''] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = a.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16) || 0, i * 2));
  return out;
}

/** A peer as the mux sees it. */
export interface MuxPeer {
  readonly localUfrag: string;
  readonly localPwd: string;
  /** A connectivity check from `address:port` verified; `nominated` when it carried USE-CANDIDATE. */
  onCheck(address: string, port: number, nominated: boolean): void;
  /** A DTLS or SRTP/SRTCP datagram from an address bound to this peer. */
  onDatagram(buf: Buffer, address: string, port: number): void;
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

/** The shared ICE UDP socket and its routing tables. */
export class UdpMux {
  private readonly byUfrag = new Map<string, MuxPeer>();
  private readonly byAddr = new Map<string, MuxPeer>();
  private readonly addrsOf = new Map<MuxPeer, Set<string>>();
  private readonly lastSeen = new Map<MuxPeer, number>();
  private readonly warn = new RateLimitedLog(log);
  private sweeper: NodeJS.Timeout | undefined;
  readonly stats: MuxStats = { stunAnswered: 0, stunRejected: 0, unknownDropped: 0, peers: 0 };

  private constructor(readonly socket: Socket) {}

  /**
   * Binds the shared socket (udp4) on `host:port` (port 0: any free port). `reuseAddr` lets send threads bind the
   * same port (send-pool.ts).
   */
  static async bind(port: number, host?: string, reuseAddr = false): Promise<UdpMux> {
    const socket = createSocket({ type: 'udp4', reuseAddr });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    // WebRTC bursts (an IDR is ~100 packets) to many viewers: a larger kernel buffer avoids drops on send
    try {
      socket.setSendBufferSize(4 * 1024 * 1024);
      socket.setRecvBufferSize(1024 * 1024);
    } catch {
      // capped by net.core.[rw]mem_max: keep the default
    }
    const mux = new UdpMux(socket);
    socket.on('message', (buf, rinfo) => mux.receive(buf, rinfo.address, rinfo.port));
    socket.on('error', (err) => mux.warn.warn({ err: err.message }, 'webrtc ice socket error'));
    mux.sweeper = setInterval(() => mux.sweep(Date.now()), 5000);
    mux.sweeper.unref();
    return mux;
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** Makes a peer reachable by its ufrag. */
  add(peer: MuxPeer): void {
    this.byUfrag.set(peer.localUfrag, peer);
    this.lastSeen.set(peer, Date.now());
    this.stats.peers = this.byUfrag.size;
  }

  /** Forgets a peer and its addresses. */
  remove(peer: MuxPeer): void {
    if (this.byUfrag.get(peer.localUfrag) === peer) this.byUfrag.delete(peer.localUfrag);
    for (const a of this.addrsOf.get(peer) ?? []) if (this.byAddr.get(a) === peer) this.byAddr.delete(a);
    this.addrsOf.delete(peer);
    this.lastSeen.delete(peer);
    this.stats.peers = this.byUfrag.size;
  }

  /**
   * Sends a datagram. No per-send callback (a closure per packet on the hot path): send errors surface as the
   * socket's 'error' event, logged at a limited rate, never thrown.
   */
  send(buf: Uint8Array, address: string, port: number): void {
    this.socket.send(buf, port, address);
  }

  /** Routes one datagram; public for tests. */
  receive(buf: Buffer, address: string, port: number): void {
    const b0 = buf[0];
    if (b0 === undefined) return;
    if (b0 < 4) {
      this.stun(buf, address, port);
      return;
    }
    const peer = this.byAddr.get(`${address}:${port}`);
    if (!peer || !((b0 >= 20 && b0 <= 63) || (b0 >= 128 && b0 <= 191))) {
      this.stats.unknownDropped++;
      return;
    }
    this.lastSeen.set(peer, Date.now());
    peer.onDatagram(buf, address, port);
  }

  private stun(buf: Buffer, address: string, port: number): void {
    const msg = parseStun(buf);
    if (!msg || msg.type !== STUN_BINDING_REQUEST) {
      this.stats.unknownDropped++;
      return;
    }
    const user = msg.attrs.get(STUN_ATTR.username);
    const ufrag = user ? Buffer.from(user).toString('utf8').split(':')[0] : undefined;
    const peer = ufrag !== undefined ? this.byUfrag.get(ufrag) : undefined;
    if (!peer || !verifyIntegrity(buf, msg, peer.localPwd)) {
      this.stats.stunRejected++;
      return;
    }
    this.stats.stunAnswered++;
    this.send(bindingSuccess(msg.transactionId, address, port, peer.localPwd), address, port);
    const key = `${address}:${port}`;
    const owner = this.byAddr.get(key);
    if (owner !== peer) {
      if (owner) this.addrsOf.get(owner)?.delete(key);
      this.byAddr.set(key, peer);
      let set = this.addrsOf.get(peer);
      if (!set) this.addrsOf.set(peer, (set = new Set()));
      set.add(key);
    }
    this.lastSeen.set(peer, Date.now());
    peer.onCheck(address, port, msg.attrs.has(STUN_ATTR.useCandidate));
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

  /** Closes the socket; peers are not notified (the server closes them first). */
  close(): void {
    clearInterval(this.sweeper);
    this.socket.close();
  }
}
