import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { errorMessage } from './errors.js';
import { log } from './log.js';
import type { PathRegistry } from './media/bus/registry.js';
import type { Stream } from './media/bus/stream.js';

/** How often bitrates are sampled: "bitrate now" is the rate over the last second, as in OBS's status bar. */
export const BITRATE_SAMPLE_INTERVAL_MS = 1000;

/** Bitrates of one session in bits per second. */
export interface SessionBitrate {
  bitrateIn: number;
  bitrateOut: number;
}

interface Counters {
  bytesIn: number;
  bytesOut: number;
  atMs: number;
}

/**
 * Turns the byte counters of the registry's sessions and streams into bitrates by sampling them at a fixed
 * interval. Sans-I/O: the caller drives `sample(nowMs)` from a timer (the API and metrics servers each own one).
 * A session seen for the first time gets its average rate since it was created, so a fresh sampler does not
 * report 0 for a busy stream.
 */
export class BitrateSampler {
  private readonly sessions = new Map<string, Counters>();
  private readonly sessionRates = new Map<string, SessionBitrate>();
  private readonly streams = new Map<Stream, Counters>();
  private readonly streamRates = new Map<Stream, number>();

  constructor(private readonly registry: PathRegistry) {}

  /** Reads every counter once; `nowMs` is wall-clock time (`Date.now()`, the clock of `Session.createdAt`). */
  sample(nowMs: number): void {
    const seen = new Set<string>();
    for (const s of this.registry.sessions.values()) {
      seen.add(s.id);
      const prev = this.sessions.get(s.id);
      const from = prev ?? { bytesIn: 0, bytesOut: 0, atMs: s.createdAt };
      const dtMs = nowMs - from.atMs;
      if (dtMs > 0) {
        this.sessionRates.set(s.id, {
          bitrateIn: rate(s.bytesIn - from.bytesIn, dtMs),
          bitrateOut: rate(s.bytesOut - from.bytesOut, dtMs),
        });
      } else if (!this.sessionRates.has(s.id)) {
        this.sessionRates.set(s.id, { bitrateIn: 0, bitrateOut: 0 });
      }
      this.sessions.set(s.id, { bytesIn: s.bytesIn, bytesOut: s.bytesOut, atMs: nowMs });
    }
    for (const id of this.sessions.keys()) {
      if (!seen.has(id)) {
        this.sessions.delete(id);
        this.sessionRates.delete(id);
      }
    }

    const live = new Set<Stream>();
    for (const entry of this.registry.paths.values()) {
      const st = entry.stream;
      live.add(st);
      const prev = this.streams.get(st);
      if (prev && nowMs > prev.atMs) this.streamRates.set(st, rate(st.bytesIn - prev.bytesIn, nowMs - prev.atMs));
      else if (!prev) this.streamRates.set(st, 0);
      this.streams.set(st, { bytesIn: st.bytesIn, bytesOut: 0, atMs: nowMs });
    }
    for (const st of this.streams.keys()) {
      if (!live.has(st)) {
        this.streams.delete(st);
        this.streamRates.delete(st);
      }
    }
  }

  /** Bitrates of a session at the last sample (0 before its first one). */
  session(id: string): SessionBitrate {
    return this.sessionRates.get(id) ?? { bitrateIn: 0, bitrateOut: 0 };
  }

  /** Media bitrate entering a stream at the last sample (frame payload bytes, without container overhead). */
  stream(stream: Stream): number {
    return this.streamRates.get(stream) ?? 0;
  }
}

function rate(bytes: number, dtMs: number): number {
  return bytes > 0 ? Math.round((bytes * 8 * 1000) / dtMs) : 0;
}

/** Starts a sampler on an unref'd timer (it never keeps the process alive). */
export function startBitrateSampler(
  registry: PathRegistry,
  intervalMs = BITRATE_SAMPLE_INTERVAL_MS,
): { sampler: BitrateSampler; stop(): void } {
  const sampler = new BitrateSampler(registry);
  sampler.sample(Date.now());
  const timer = setInterval(() => sampler.sample(Date.now()), intervalMs);
  timer.unref();
  return { sampler, stop: () => clearInterval(timer) };
}

/** A running HTTP server with the port it listens on. */
export interface RunningServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** Options of the metrics listener. */
export interface MetricsServerOptions {
  host?: string;
  port: number;
  registry: PathRegistry;
  /** bitrate sampling period; tests shorten it */
  bitrateIntervalMs?: number;
}

let processMetrics: Registry | undefined;

/**
 * prom-client's process metrics (CPU seconds, resident memory, heap, event loop lag), collected into one
 * registry per process: each collector enables its own event-loop-delay histogram, which is never disabled.
 */
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

/**
 * Builds the Prometheus registry of one gateway: every streamgate_* metric is computed from the PathRegistry at
 * scrape time (collect callbacks), merged with the process metrics.
 *
 * Counters (`*_total`) never go back: bytes of ended sessions come from `registry.closedTotals`, and each series
 * is additionally held at its highest value, because a session's bytes move from path '' to its path once the
 * path is known (the few handshake bytes then stay under path '' as well: a sum over paths may count them twice,
 * which is the price of never going back).
 */
export function createMetricsRegistry(registry: PathRegistry, sampler: BitrateSampler): Registry {
  const reg = new Registry();
  const registers = [reg];

  new Gauge({
    name: 'streamgate_clients',
    help: 'Sessions connected (publishers, readers and pull sources), per protocol, path and role',
    labelNames: ['protocol', 'path', 'role'] as const,
    registers,
    collect() {
      this.reset();
      for (const s of registry.sessions.values()) this.inc({ protocol: s.protocol, path: s.path, role: s.role });
    },
  });

  new Gauge({
    name: 'streamgate_publishers',
    help: 'Publishers (or running pull sources) per path: 1 or 0',
    labelNames: ['path'] as const,
    registers,
    collect() {
      this.reset();
      for (const e of registry.paths.values()) this.set({ path: e.name }, e.publisher ? 1 : 0);
    },
  });

  new Gauge({
    name: 'streamgate_readers',
    help: 'Readers attached to a path, per reading protocol',
    labelNames: ['path', 'protocol'] as const,
    registers,
    collect() {
      this.reset();
      for (const e of registry.paths.values()) {
        // an HLS muxer is one bus reader serving many viewers: count the viewers
        for (const r of e.readers) for (const s of registry.sessionsOf(r)) this.inc({ path: e.name, protocol: s.protocol });
      }
    },
  });

  new Gauge({
    name: 'streamgate_paths_ready',
    help: 'Paths whose stream is up (tracks known and a publisher attached)',
    registers,
    collect() {
      let n = 0;
      for (const e of registry.paths.values()) if (e.stream.ready) n++;
      this.set(n);
    },
  });

  const highIn = new Map<string, number>();
  const highOut = new Map<string, number>();
  const totals = (): Map<string, { bytesIn: number; bytesOut: number }> => {
    const sums = new Map<string, { bytesIn: number; bytesOut: number }>();
    for (const [key, t] of registry.closedTotals) sums.set(key, { bytesIn: t.bytesIn, bytesOut: t.bytesOut });
    for (const s of registry.sessions.values()) {
      const key = `${s.protocol}|${s.path}`;
      const t = sums.get(key) ?? { bytesIn: 0, bytesOut: 0 };
      t.bytesIn += s.bytesIn;
      t.bytesOut += s.bytesOut;
      sums.set(key, t);
    }
    return sums;
  };
  const monotonic = (high: Map<string, number>, key: string, v: number): number => {
    const m = Math.max(high.get(key) ?? 0, v);
    high.set(key, m);
    return m;
  };
  const byKey = (
    high: Map<string, number>,
    pick: (t: { bytesIn: number; bytesOut: number }) => number,
  ): [{ protocol: string; path: string }, number][] => {
    const sums = totals();
    for (const key of high.keys()) if (!sums.has(key)) sums.set(key, { bytesIn: 0, bytesOut: 0 });
    return [...sums].map(([key, t]) => {
      const bar = key.indexOf('|'); // protocols never contain '|', and the key is `${protocol}|${path}`
      return [{ protocol: key.slice(0, bar), path: key.slice(bar + 1) }, monotonic(high, key, pick(t))];
    });
  };

  new Counter({
    name: 'streamgate_bytes_received_total',
    help: 'Bytes received from clients and pull sources (live and ended sessions), per protocol and path',
    labelNames: ['protocol', 'path'] as const,
    registers,
    collect() {
      this.reset();
      for (const [labels, v] of byKey(highIn, (t) => t.bytesIn)) this.inc(labels, v);
    },
  });

  new Counter({
    name: 'streamgate_bytes_sent_total',
    help: 'Bytes sent to clients (live and ended sessions), per protocol and path',
    labelNames: ['protocol', 'path'] as const,
    registers,
    collect() {
      this.reset();
      for (const [labels, v] of byKey(highOut, (t) => t.bytesOut)) this.inc(labels, v);
    },
  });

  new Counter({
    name: 'streamgate_session_bytes_received_total',
    help: 'Bytes received by one connected session',
    labelNames: ['id', 'protocol', 'path'] as const,
    registers,
    collect() {
      this.reset();
      for (const s of registry.sessions.values()) this.inc({ id: s.id, protocol: s.protocol, path: s.path }, s.bytesIn);
    },
  });

  new Counter({
    name: 'streamgate_session_bytes_sent_total',
    help: 'Bytes sent by one connected session',
    labelNames: ['id', 'protocol', 'path'] as const,
    registers,
    collect() {
      this.reset();
      for (const s of registry.sessions.values()) this.inc({ id: s.id, protocol: s.protocol, path: s.path }, s.bytesOut);
    },
  });

  new Gauge({
    name: 'streamgate_session_bitrate_bits',
    help: 'Bitrate of one connected session over the last second, in bits per second',
    labelNames: ['id', 'direction'] as const,
    registers,
    collect() {
      this.reset();
      for (const s of registry.sessions.values()) {
        const b = sampler.session(s.id);
        this.set({ id: s.id, direction: 'in' }, b.bitrateIn);
        this.set({ id: s.id, direction: 'out' }, b.bitrateOut);
      }
    },
  });

  let droppedHigh = 0;
  new Counter({
    name: 'streamgate_frames_dropped_total',
    help: 'Frames dropped for readers that could not keep up',
    registers,
    collect() {
      this.reset();
      droppedHigh = Math.max(droppedHigh, registry.framesDropped());
      this.inc(droppedHigh);
    },
  });

  return Registry.merge([processRegistry(), reg]);
}

/**
 * Starts the Prometheus listener: `GET /metrics` (text format 0.0.4). Anything else is 404, other methods 405.
 * Resolves once listening; `close()` stops the sampler and drops open connections.
 */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<RunningServer> {
  const bitrates = startBitrateSampler(opts.registry, opts.bitrateIntervalMs);
  const metrics = createMetricsRegistry(opts.registry, bitrates.sampler);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?', 1)[0]!.replace(/\/+$/, '');
    if (path !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: try /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    const body = await metrics.metrics();
    res.writeHead(200, { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' }).end(body);
  };

  const server = createServer((req, res) => {
    req.resume(); // a request body is never read; drain it so the connection stays usable
    handle(req, res).catch((err: unknown) => {
      log.error({ err: errorMessage(err) }, 'metrics: scrape failed');
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('scrape failed\n');
    });
  });
  try {
    await listen(server, opts.port, opts.host);
  } catch (err) {
    bitrates.stop();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  log.info({ host: opts.host ?? '0.0.0.0', port }, 'metrics listener up');
  return {
    server,
    port,
    close: () => {
      bitrates.stop();
      return closeServer(server);
    },
  };
}

/** Listens and resolves once bound; rejects on EADDRINUSE and the like. */
export function listen(server: Server, port: number, host?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** Stops accepting, ends idle and active keep-alive connections, resolves when the server is closed. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
