/**
 * Send threads for the lean fan-out: SRTP protection and the UDP send are ~95 % of the per-viewer cost, so they
 * move to worker threads (send-worker.ts) and the main thread keeps the bus, ICE, DTLS and RTCP. Viewers are
 * assigned round-robin when their DTLS completes; per event-loop turn, each thread gets one message with the
 * distinct packets (copied once per thread) and the (packet, viewer, payload type, timestamp) jobs.
 *
 * All sockets share the ICE port through SO_REUSEADDR: every thread sends from the port the viewers' ICE checks
 * went to, and whichever socket the kernel delivers an incoming datagram to, it reaches the main thread's mux.
 * (The option also lets another process of this machine bind the port; run the gateway on a host you control.)
 */
import { createSocket, type Socket } from 'node:dgram';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { log } from '../../log.js';
import { SendCore, type SrtpKeys } from './send-core.js';
import type { FromSendWorker, ToSendWorker } from './send-worker.js';

/** The `worker` of a handle served by the main thread's own SendCore. */
const MAIN_THREAD = -1;

/** A viewer's place in the pool: its thread (MAIN_THREAD or a worker index) and id there. */
export interface SendHandle {
  worker: number;
  id: number;
}

/** Send threads started by default: every core but the main thread's, at most 3 (2 cores here → 1). */
export function defaultSendThreads(): number {
  return Math.min(3, Math.max(0, availableParallelism() - 1));
}

interface Batch {
  packets: Uint8Array[];
  index: Map<Uint8Array, number>;
  jobs: number[];
  receivedAt: number;
}

/** The worker threads, the main thread's share, and the per-turn batches. */
export class SendPool {
  private readonly workers: Worker[] = [];
  private readonly batches: (Batch | undefined)[] = [];
  private mainBatch: Batch | undefined;
  private main: SendCore | undefined;
  private mainSocket: Socket | undefined;
  private flushQueued = false;
  private nextWorker = 0;
  private nextId = 1;
  /** latency samples from the threads, when the probe is on */
  onLatency: ((samples: number[]) => void) | undefined;

  private constructor(private readonly onRx: (data: Buffer, address: string, port: number) => void) {}

  /** Starts `threads` send threads bound to `host:icePort`; resolves when their sockets are bound. */
  static async start(threads: number, icePort: number, host: string | undefined, onRx: (data: Buffer, address: string, port: number) => void): Promise<SendPool> {
    const pool = new SendPool(onRx);
    const url = new URL('./send-worker.js', import.meta.url);
    await Promise.all(
      Array.from({ length: threads }, () => {
        const w = new Worker(url, { workerData: { icePort, host } });
        w.unref();
        pool.workers.push(w);
        pool.batches.push(undefined);
        return new Promise<void>((resolve, reject) => {
          w.once('error', reject);
          w.on('message', (m: FromSendWorker) => {
            if (m.t === 'ready') resolve();
            else if (m.t === 'rx') pool.onRx(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength), m.address, m.port);
            else if (m.t === 'lat') pool.onLatency?.(m.samples);
          });
        });
      }),
    );
    for (const w of pool.workers) w.on('error', (err) => log.error({ err }, 'webrtc send thread failed'));
    // the main thread's share: its own socket on the ICE port, so its viewers' sends never touch the mux's
    const sock = createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(icePort, host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    sock.on('message', (data, r) => pool.onRx(data, r.address, r.port));
    sock.on('error', () => undefined); // a failed send only loses that datagram
    pool.mainSocket = sock;
    pool.main = new SendCore({ icePort, host, shared: sock, onRx: (d, a, p) => pool.onRx(d, a, p) });
    log.info({ threads }, 'webrtc send threads started');
    return pool;
  }

  /**
   * Hands a viewer's SRTP send state to a thread; returns the handle for `send`. Viewers are spread round-robin
   * over the threads AND the main thread, which has cycles to spare (the bus and RTCP are light), so with one
   * thread on two cores both cores send. IPv4 UDP viewers only (the sockets are udp4).
   */
  add(keys: SrtpKeys, address: string, port: number): SendHandle {
    const slot = this.nextWorker;
    this.nextWorker = (this.nextWorker + 1) % (this.workers.length + 1);
    const id = this.nextId++;
    if (slot === this.workers.length) {
      this.main!.add(id, keys, address, port);
      return { worker: MAIN_THREAD, id };
    }
    this.post(slot, { t: 'add', id, keys, address, port });
    return { worker: slot, id };
  }

  move(h: SendHandle, address: string, port: number): void {
    if (h.worker === MAIN_THREAD) this.main!.move(h.id, address, port);
    else this.post(h.worker, { t: 'move', id: h.id, address, port });
  }

  remove(h: SendHandle): void {
    if (h.worker === MAIN_THREAD) this.main!.remove(h.id);
    else this.post(h.worker, { t: 'del', id: h.id });
  }

  /**
   * Queues one packet for one viewer; flushed once per event-loop turn. `receivedAt`: epoch ms when the frame
   * entered the gateway, for the latency probe (0: not a video frame's packet).
   */
  send(h: SendHandle, packet: Uint8Array, payloadType: number, timestamp: number, receivedAt: number): void {
    let b = h.worker === MAIN_THREAD ? this.mainBatch : this.batches[h.worker];
    if (!b) {
      b = { packets: [], index: new Map(), jobs: [], receivedAt: Infinity };
      if (h.worker === MAIN_THREAD) this.mainBatch = b;
      else this.batches[h.worker] = b;
    }
    let i = b.index.get(packet);
    if (i === undefined) {
      i = b.packets.length;
      b.packets.push(packet);
      b.index.set(packet, i);
    }
    if (receivedAt > 0 && receivedAt < b.receivedAt) b.receivedAt = receivedAt;
    b.jobs.push(i, h.id, payloadType, timestamp);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Turns the latency probe of the threads on or off. */
  probe(on: boolean): void {
    for (let k = 0; k < this.workers.length; k++) this.post(k, { t: 'probe', on });
    if (this.main) this.main.probe = on ? [] : null;
  }

  private flush(): void {
    this.flushQueued = false;
    // the threads first, so they work while this thread sends its own share

    for (let k = 0; k < this.workers.length; k++) {
      const b = this.batches[k];
      if (!b) continue;
      this.batches[k] = undefined;
      this.post(k, { t: 'send', packets: b.packets, jobs: b.jobs, receivedAt: b.receivedAt });
    }
    const mb = this.mainBatch;
    const main = this.main;
    if (mb && main) {
      this.mainBatch = undefined;
      main.send(mb.packets, mb.jobs, mb.receivedAt);
      if (main.probe && main.probe.length > 0) {
        this.onLatency?.(main.probe);
        main.probe = [];
      }
    }
  }

  private post(worker: number, m: ToSendWorker): void {
    this.workers[worker]!.postMessage(m);
  }

  async close(): Promise<void> {
    this.main?.close();
    this.mainSocket?.close();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
