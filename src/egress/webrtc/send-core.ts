/**
 * The per-thread send engine of the lean fan-out, used by each send thread (send-worker.ts) and by the main thread
 * for its own share of viewers (send-pool.ts): it owns the viewers' SRTP send contexts and, per batch of
 * (packet, viewer) jobs, protects each viewer's run of packets in one call (rtp-protector.ts) and sends them.
 *
 * Each viewer gets its own UDP socket bound to the ICE port (SO_REUSEADDR) and `connect`ed to the viewer: a send on
 * a connected socket skips Node's per-send address handling and the kernel's route lookup — measured here 2.8 µs
 * instead of 4.6 µs of CPU per 1200-byte datagram. Linux delivers the viewer's own datagrams (RTCP, consent checks)
 * to the connected socket (exact 4-tuple match wins), so they are passed to `onRx` like those of the shared socket.
 * Until the socket is connected, or if it fails, the shared socket sends.
 */
import { createSocket, type Socket } from 'node:dgram';
import { RateLimitedLog, log } from '../../log.js';
import { SrtpContext } from './srtp.js';

/** SRTP master keys of a viewer: local key, local salt, remote key, remote salt. */
export type SrtpKeys = [Uint8Array, Uint8Array, Uint8Array, Uint8Array];

/**
 * Connected sockets per thread at most; viewers beyond it share the thread's socket (each costs a file descriptor
 * and ~1 KB of kernel memory; 4096 per thread covers the 2000-reader target with room).
 */
export const MAX_CONNECTED_SOCKETS = 4096;

interface Target {
  ctx: SrtpContext;
  address: string;
  port: number;
  /** connected socket, set once `connect` completed */
  conn: Socket | undefined;
  /** the socket being set up or in use (closed on move/remove) */
  pending: Socket | undefined;
}

/** What a send engine needs from its thread. */
export interface SendCoreOptions {
  icePort: number;
  host: string | undefined;
  /** the thread's socket on the ICE port (unconnected), used until a viewer's own socket is connected */
  shared: Socket;
  /** a datagram that arrived on a viewer's connected socket */
  onRx: (data: Buffer, address: string, port: number) => void;
  /** false: never create per-viewer sockets (tests of the shared path) */
  connectedSockets?: boolean;
}

/** Viewers, their SRTP contexts and sockets, and the batch sender of one thread. */
export class SendCore {
  private readonly viewers = new Map<number, Target>();
  private connectedCount = 0;
  /** latency samples (ms from a frame entering the gateway to a viewer's last packet sent), when probing */
  probe: number[] | null = null;
  // reused per run
  private readonly runPackets: Uint8Array[] = [];
  private readonly runTypes: number[] = [];
  private readonly runStamps: number[] = [];
  private readonly runOut: Buffer[] = [];
  private readonly warn = new RateLimitedLog(log);

  constructor(private readonly o: SendCoreOptions) {}

  /** Number of viewers served by this thread. */
  get size(): number {
    return this.viewers.size;
  }

  add(id: number, keys: SrtpKeys, address: string, port: number): void {
    const t: Target = { ctx: new SrtpContext(...keys), address, port, conn: undefined, pending: undefined };
    this.viewers.set(id, t);
    this.connect(t);
  }

  /** The viewer's nominated address changed (ICE). */
  move(id: number, address: string, port: number): void {
    const t = this.viewers.get(id);
    if (!t || (t.address === address && t.port === port)) return;
    this.disconnect(t);
    t.address = address;
    t.port = port;
    this.connect(t);
  }

  remove(id: number): void {
    const t = this.viewers.get(id);
    if (!t) return;
    this.viewers.delete(id);
    this.disconnect(t);
  }

  /**
   * Sends a batch: `jobs` is [packet index, viewer id, payload type, timestamp (-1: keep)] × n; consecutive jobs of
   * the same viewer are protected together. `receivedAt` (epoch ms the frame entered the gateway) feeds the probe.
   */
  send(packets: readonly Uint8Array[], jobs: readonly number[], receivedAt: number): void {
    const measure = this.probe !== null && Number.isFinite(receivedAt) && receivedAt > 0;
    const n = jobs.length;
    let i = 0;
    while (i < n) {
      const id = jobs[i + 1]!;
      let j = i;
      let k = 0;
      for (; j < n && jobs[j + 1] === id; j += 4, k++) {
        this.runPackets[k] = packets[jobs[j]!]!;
        this.runTypes[k] = jobs[j + 2]!;
        this.runStamps[k] = jobs[j + 3]!;
      }
      i = j;
      const t = this.viewers.get(id);
      if (!t) continue;
      t.ctx.protectRtpBatch(this.runPackets, this.runTypes, this.runStamps, 0, k, this.runOut);
      const conn = t.conn;
      for (let m = 0; m < k; m++) {
        const out = this.runOut[m]!;
        if (out.byteLength === 0) continue;
        if (conn) conn.send(out);
        else this.o.shared.send(out, t.port, t.address);
      }
      if (measure) this.probe!.push(performance.timeOrigin + performance.now() - receivedAt);
    }
    // drop references to the packets so they can be collected
    this.runPackets.length = 0;
    this.runOut.length = 0;
  }

  /** Closes every viewer socket (the shared socket belongs to the thread). */
  close(): void {
    for (const t of this.viewers.values()) this.disconnect(t);
    this.viewers.clear();
  }

  private connect(t: Target): void {
    if (this.o.connectedSockets === false || this.connectedCount >= MAX_CONNECTED_SOCKETS || t.address.includes(':')) return;
    const s = createSocket({ type: 'udp4', reuseAddr: true });
    t.pending = s;
    this.connectedCount++;
    const fail = (err: Error): void => {
      this.warn.warn({ err: err.message, remote: `${t.address}:${t.port}` }, 'webrtc: per-viewer socket failed, using the shared one');
      if (t.pending === s) this.disconnect(t);
    };
    s.once('error', fail);
    s.on('message', (data, r) => this.o.onRx(data, r.address, r.port));
    try {
      s.bind(this.o.icePort, this.o.host, () => {
        if (t.pending !== s) return;
        s.connect(t.port, t.address, () => {
          if (t.pending !== s) return;
          // WebRTC bursts (an IDR is ~100 packets): a larger kernel buffer avoids drops on send
          try {
            s.setSendBufferSize(1024 * 1024);
          } catch {
            // capped by net.core.wmem_max: keep the default
          }
          t.conn = s;
        });
      });
    } catch (err) {
      fail(err as Error);
    }
  }

  private disconnect(t: Target): void {
    const s = t.pending;
    if (!s) return;
    t.pending = undefined;
    t.conn = undefined;
    this.connectedCount--;
    s.removeAllListeners('message');
    // later send errors of a closing socket are of no interest
    s.on('error', () => undefined);
    try {
      s.close();
    } catch {
      // already closed
    }
  }
}
