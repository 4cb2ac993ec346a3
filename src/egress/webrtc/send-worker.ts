/**
 * A send thread of the lean WebRTC fan-out (see send-pool.ts): it owns the SRTP send contexts of the viewers
 * assigned to it and a UDP socket bound to the same ICE port (SO_REUSEADDR), and for each batch from the main
 * thread protects and sends every (packet, viewer) job. Datagrams that the kernel delivers to this socket (with
 * shared binding it may pick any of them) go back to the main thread, which owns ICE, DTLS and RTCP.
 */
import { createSocket } from 'node:dgram';
import { parentPort, workerData } from 'node:worker_threads';
import { SrtpContext } from './srtp.js';

/** Messages from the main thread. */
export type ToSendWorker =
  | { t: 'add'; id: number; keys: [Uint8Array, Uint8Array, Uint8Array, Uint8Array]; address: string; port: number }
  | { t: 'move'; id: number; address: string; port: number }
  | { t: 'del'; id: number }
  /** jobs: [packet index, viewer id, payload type, timestamp (-1 keep)] × n; receivedAt: frame entry, epoch ms */
  | { t: 'send'; packets: Uint8Array[]; jobs: number[]; receivedAt: number }
  | { t: 'probe'; on: boolean };

/** Messages to the main thread. */
export type FromSendWorker =
  | { t: 'ready' }
  | { t: 'rx'; data: Uint8Array; address: string; port: number }
  | { t: 'lat'; samples: number[] };

interface Target {
  ctx: SrtpContext;
  address: string;
  port: number;
}

const port = parentPort;
if (port) {
  const { icePort, host } = workerData as { icePort: number; host: string | undefined };
  const viewers = new Map<number, Target>();
  const sock = createSocket({ type: 'udp4', reuseAddr: true });
  let probe: number[] | null = null;
  sock.on('message', (data, r) => {
    const msg: FromSendWorker = { t: 'rx', data: Uint8Array.from(data), address: r.address, port: r.port };
    port.postMessage(msg);
  });
  // a send error (peer gone, buffer full) only loses that datagram, like a lost packet
  sock.on('error', () => undefined);
  sock.bind(icePort, host, () => port.postMessage({ t: 'ready' } satisfies FromSendWorker));
  setInterval(() => {
    if (probe && probe.length > 0) {
      port.postMessage({ t: 'lat', samples: probe } satisfies FromSendWorker);
      probe = [];
    }
  }, 500).unref();
  port.on('message', (m: ToSendWorker) => {
    switch (m.t) {
      case 'add':
        viewers.set(m.id, { ctx: new SrtpContext(...m.keys), address: m.address, port: m.port });
        break;
      case 'move': {
        const v = viewers.get(m.id);
        if (v) {
          v.address = m.address;
          v.port = m.port;
        }
        break;
      }
      case 'del':
        viewers.delete(m.id);
        break;
      case 'probe':
        probe = m.on ? [] : null;
        break;
      case 'send': {
        const { packets, jobs } = m;
        const measure = probe !== null && Number.isFinite(m.receivedAt);
        let last = -1;
        for (let i = 0; i < jobs.length; i += 4) {
          const id = jobs[i + 1]!;
          if (measure && last >= 0 && id !== last) probe!.push(performance.timeOrigin + performance.now() - m.receivedAt);
          last = id;
          const v = viewers.get(id);
          if (!v) continue;
          const out = v.ctx.protectRtp(packets[jobs[i]!]!, jobs[i + 2]!, jobs[i + 3]!);
          sock.send(out, v.port, v.address);
        }
        if (measure && last >= 0) probe!.push(performance.timeOrigin + performance.now() - m.receivedAt);
        break;
      }
    }
  });
}
