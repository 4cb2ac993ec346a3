/**
 * A send thread of the lean WebRTC fan-out (see send-pool.ts): a SendCore (send-core.ts) for the viewers assigned
 * to it, and a UDP socket bound to the same ICE port (SO_REUSEADDR). Datagrams that the kernel delivers to this
 * thread's sockets (with shared binding it may pick any of them) go back to the main thread, which owns ICE, DTLS
 * and RTCP.
 */
import { createSocket } from 'node:dgram';
import { parentPort, workerData } from 'node:worker_threads';
import { SendCore, type SrtpKeys } from './send-core.js';

/** Messages from the main thread. */
export type ToSendWorker =
  | { t: 'add'; id: number; keys: SrtpKeys; address: string; port: number }
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

const port = parentPort;
if (port) {
  const { icePort, host } = workerData as { icePort: number; host: string | undefined };
  const sock = createSocket({ type: 'udp4', reuseAddr: true });
  const forward = (data: Buffer, address: string, rport: number): void => {
    const msg: FromSendWorker = { t: 'rx', data: Uint8Array.from(data), address, port: rport };
    port.postMessage(msg);
  };
  const core = new SendCore({ icePort, host, shared: sock, onRx: forward });
  sock.on('message', (data, r) => forward(data, r.address, r.port));
  // a send error (peer gone, buffer full) only loses that datagram, like a lost packet
  sock.on('error', () => undefined);
  sock.bind(icePort, host, () => port.postMessage({ t: 'ready' } satisfies FromSendWorker));
  setInterval(() => {
    if (core.probe && core.probe.length > 0) {
      port.postMessage({ t: 'lat', samples: core.probe } satisfies FromSendWorker);
      core.probe = [];
    }
  }, 500).unref();
  port.on('message', (m: ToSendWorker) => {
    switch (m.t) {
      case 'add':
        core.add(m.id, m.keys, m.address, m.port);
        break;
      case 'move':
        core.move(m.id, m.address, m.port);
        break;
      case 'del':
        core.remove(m.id);
        break;
      case 'probe':
        core.probe = m.on ? [] : null;
        break;
      case 'send':
        core.send(m.packets, m.jobs, m.receivedAt);
        break;
    }
  });
}
