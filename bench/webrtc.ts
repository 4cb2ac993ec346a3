/**
 * WebRTC fan-out benchmark (issue 5, point 6): N viewers of one 2.5 Mbps H.264 720p30 stream, for the lean engine
 * and for werift used as-is (one RTCPeerConnection per viewer), in the same run.
 *
 * The gateway runs in this process (WebRTC listener + a publisher replaying a pre-encoded clip in real time, so no
 * encoder competes for CPU); viewers run in child processes (bench/webrtc-viewers.ts) that complete ICE and DTLS and
 * count the SRTP packets they get. Figures per engine and N:
 * - CPU µs per packet per viewer: this process's CPU during the window, minus the same window with no viewers,
 *   divided by the packets it sent (all viewers together);
 * - RSS per viewer: RSS growth over the no-viewer baseline, divided by N;
 * - share of viewers that received ≥ 99 % of what was sent to them;
 * - send latency: a video frame entering the gateway → its last packet handed to the kernel for a viewer (p50/p95);
 * - held: ≥ 95 % of the N viewers (failed connections count as failures) got ≥ 99 % of their packets.
 *
 * - with --browser: one headless Chromium joins as viewer N+1 after the window (the N keep running) and reports
 *   its jitter buffer delay, frame rate, freezes and losses over 8 s.
 *
 * Standalone: `node --expose-gc dist/bench/webrtc.js [--viewers 10,50,100,200] [--seconds 10] [--engines lean,werift]
 * [--browser]`.
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { sendLatencyProbe } from '../src/egress/webrtc/fanout.js';
import { makeFrame } from '../src/media/bus/frame.js';
import { DEFAULT_PATH_SETTINGS, PathRegistry } from '../src/media/bus/registry.js';
import type { Session } from '../src/media/bus/session.js';
import { Track } from '../src/media/bus/track.js';
import { isKeyframe, NalUnitType, nalType, splitAnnexB } from '../src/media/codecs/h264.js';
import { parseSps } from '../src/media/codecs/h264-sps.js';
import { startWebrtcServer } from '../src/signaling/whip-whep.js';
import { canRunBrowserTests, createNetns, launchChromium, type Netns } from '../test/egress/webrtc/harness.js';

/** Options of one benchmark run. */
export interface WebrtcBenchOptions {
  viewers: number[];
  seconds: number;
  engines: ('lean' | 'werift')[];
  viewersPerProcess: number;
  /** send threads of the lean engine (undefined: the server's default) */
  sendThreads?: number;
  /**
   * After each point's window, with the N viewers still connected, one headless Chromium (in a network namespace:
   * it ignores loopback candidates) plays the stream on the player page for BROWSER_SECONDS and reports its
   * jitter buffer. Needs root, `ip` and /usr/bin/chromium; skipped otherwise.
   */
  browser?: boolean;
}

/** What Chromium's getStats() says about the video it received, over the browser window. */
export interface BrowserPlayStats {
  framesDecoded: number;
  framesDropped: number;
  freezeCount: number;
  /** mean jitter buffer delay (jitterBufferDelay / jitterBufferEmittedCount) over the window, ms */
  jitterBufferDelayMs: number;
  /** packets lost as Chromium counts them over the window */
  packetsLost: number;
}

/** How long Chromium plays before its figures count, and then how long they are sampled. */
const BROWSER_WARMUP_MS = 3000;
const BROWSER_SECONDS = 8;

/** One measured point. */
export interface WebrtcBenchResult {
  engine: string;
  n: number;
  connected: number;
  usPerPacketPerViewer: number;
  /** the user-space part of it (JavaScript and OpenSSL; the rest is the kernel's UDP send, loopback delivery included) */
  userUsPerPacketPerViewer: number;
  rssKbPerViewer: number;
  shareAt99: number;
  latencyP50Ms: number;
  latencyP95Ms: number;
  packetsPerViewerPerSecond: number;
  held: boolean;
  /** Chromium as the N+1st viewer (with `browser`), or why not */
  browser?: BrowserPlayStats | { error: string };
}

const CLIP = '/tmp/streamgate-bench-webrtc-720p30-2500k.h264';
const FPS = 30;

/** The clip, encoded once: 10 s of testsrc2 720p30 at 2.5 Mbps CBR-ish, GOP 2 s, no B-frames, AUD per picture. */
function clip(): Uint8Array[][] {
  if (!existsSync(CLIP)) {
    const r = spawnSync('ffmpeg', [
      '-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=${FPS}`, '-t', '10',
      '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-b:v', '2500k', '-maxrate', '2500k', '-bufsize', '2500k',
      '-g', String(FPS * 2), '-pix_fmt', 'yuv420p', '-bsf:v', 'h264_metadata=aud=insert', '-f', 'h264', CLIP,
    ]);
    if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr?.toString()}`);
  }
  // cut at each access unit delimiter (start code + NAL type 9), then split each picture into NAL units
  const buf = readFileSync(CLIP);
  const aud = Buffer.from([0, 0, 0, 1, 0x09]);
  const starts: number[] = [];
  for (let k = buf.indexOf(aud); k >= 0; k = buf.indexOf(aud, k + 1)) starts.push(k);
  starts.push(buf.byteLength);
  const aus: Uint8Array[][] = [];
  for (let k = 0; k + 1 < starts.length; k++) {
    const au = splitAnnexB(buf.subarray(starts[k]!, starts[k + 1]!)).filter((n) => nalType(n) !== NalUnitType.AccessUnitDelimiter);
    if (au.length) aus.push(au);
  }
  return aus;
}

function session(): Session {
  return { id: 'bench-publisher', protocol: 'rtmp', role: 'publisher', path: '', remoteAddr: 'bench', state: 'publish', createdAt: Date.now(), bytesIn: 0, bytesOut: 0, close: () => undefined };
}

/** A full GC before reading RSS when node runs with --expose-gc (the figures are noise without it). */
function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface ViewerProc {
  child: ChildProcess;
  request<T>(msg: object, key: string): Promise<T>;
}

function spawnViewers(): ViewerProc {
  const child = fork(fileURLToPath(new URL('./webrtc-viewers.js', import.meta.url)), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  let errors = 0;
  child.on('message', (m: { error?: string }) => {
    if (m.error && errors++ < 3) console.error(`  viewer failed: ${m.error}`);
  });
  return {
    child,
    // a viewer process that died answers with nothing: its viewers count as failed
    request: <T>(msg: object, key: string) =>
      new Promise<T>((resolve) => {
        const empty = { ready: 0, failed: 0, counts: [] } as unknown as T;
        if (!child.connected) return resolve(empty);
        const on = (m: Record<string, unknown>): void => {
          if (key in m) {
            child.off('message', on);
            child.off('exit', gone);
            resolve(m as T);
          }
        };
        const gone = (): void => {
          child.off('message', on);
          resolve(empty);
        };
        child.on('message', on);
        child.once('exit', gone);
        child.send(msg, (err) => err && gone());
      }),
  };
}

/**
 * Heap use at which a point is abandoned as overloaded: werift as-is queues sends as promises, and when the CPU
 * cannot keep up the backlog grows until the process dies (it did at N=100–200 here, once within 500 ms of passing 1.5 GB); stopping at 1 GB (checked every 200 ms) reports that
 * as "not held" instead.
 */
const OVERLOAD_HEAP_BYTES = 1024 ** 3;

/** Runs one engine at one N, abandoning it when the process is overloaded. */
async function measure(engine: 'lean' | 'werift', n: number, o: WebrtcBenchOptions, aus: Uint8Array[][], log: (s: string) => void): Promise<WebrtcBenchResult> {
  let watchdog: NodeJS.Timeout | undefined;
  const overloaded = new Promise<WebrtcBenchResult>((resolve) => {
    watchdog = setInterval(() => {
      if (process.memoryUsage().heapUsed < OVERLOAD_HEAP_BYTES) return;
      log(`  ${engine} N=${n}: heap over ${OVERLOAD_HEAP_BYTES / 1024 ** 3} GB — overloaded, abandoned`);
      resolve({ engine, n, connected: 0, usPerPacketPerViewer: Number.NaN, userUsPerPacketPerViewer: Number.NaN, rssKbPerViewer: Number.NaN, shareAt99: 0, latencyP50Ms: Number.NaN, latencyP95Ms: Number.NaN, packetsPerViewerPerSecond: 0, held: false });
    }, 200);
  });
  const abort = { aborted: false };
  // made here, not in measureOnce: an overloaded point is abandoned mid-way and its process exits at once
  let ns: Netns | undefined;
  let browserError: string | undefined;
  if (o.browser) {
    if (canRunBrowserTests()) ns = createNetns();
    else browserError = 'needs root, ip and /usr/bin/chromium';
  }
  try {
    return await Promise.race([measureOnce(engine, n, o, aus, log, abort, ns, browserError), overloaded]);
  } finally {
    abort.aborted = true;
    clearInterval(watchdog);
    ns?.destroy();
  }
}

async function measureOnce(engine: 'lean' | 'werift', n: number, o: WebrtcBenchOptions, aus: Uint8Array[][], log: (s: string) => void, abort: { aborted: boolean }, ns: Netns | undefined, browserError: string | undefined): Promise<WebrtcBenchResult> {
  const registry = new PathRegistry({ resolve: () => ({ ...DEFAULT_PATH_SETTINGS, maxReaders: 0 }), authorize: async () => undefined });
  // with a browser, the gateway listens on the namespace's veth address (local to this host, so the child viewers
  // reach it the same way as 127.0.0.1)
  const host = ns?.hostIp ?? '127.0.0.1';
  const srv = await startWebrtcServer({ host, port: 0, icePort: 0, iceServers: [], additionalHosts: [], registry, engine, maxViewers: 100_000, connectTimeoutMs: 30_000, ...(o.sendThreads !== undefined ? { sendThreads: o.sendThreads } : {}) });
  const pub = session();
  const stream = await registry.addPublisher('bench/live', pub, { protocol: 'rtmp', ip: '127.0.0.1' });
  const first = aus.find((au) => au.some((x) => nalType(x) === NalUnitType.Sps))!;
  const sps = first.find((x) => nalType(x) === NalUnitType.Sps)!;
  const pps = first.find((x) => nalType(x) === NalUnitType.Pps)!;
  const track = new Track({ codec: 'h264', clockRate: 90000 });
  const info = parseSps(sps);
  track.setH264Params(sps, pps, { width: info.width, height: info.height });
  const [t] = stream.setTracks([track]);
  let i = 0;
  const t0 = performance.now();
  // real-time replay: catch up on every tick so timer jitter never changes the frame rate
  const procs: ViewerProc[] = [];
  const timer = setInterval(() => {
    if (abort.aborted) {
      clearInterval(timer);
      for (const p of procs) p.child.kill('SIGKILL');
      void srv.close();
      return;
    }
    const due = Math.floor(((performance.now() - t0) * FPS) / 1000);
    while (i <= due) {
      const au = aus[i % aus.length]!;
      const pts = i * (90000 / FPS);
      stream.write(makeFrame(t!, pts, pts, isKeyframe(au), au));
      i++;
    }
  }, 5);
  try {
    await sleep(1500);
    const baseCpu0 = process.cpuUsage();
    const baseT0 = performance.now();
    await sleep(3000);
    const baseCpu = process.cpuUsage(baseCpu0);
    const baseSeconds = (performance.now() - baseT0) / 1000;
    const baseCpuUs = (baseCpu.user + baseCpu.system) / baseSeconds;
    const baseUserUs = baseCpu.user / baseSeconds;
    gc();
    const baseRss = process.memoryUsage().rss;

    const url = `http://${host}:${srv.port}/bench/live/whep`;
    let connected = 0;
    for (let left = n; left > 0; left -= o.viewersPerProcess) procs.push(spawnViewers());
    const starts = await Promise.all(
      procs.map((p, k) => p.request<{ ready: number; failed: number }>({ start: { url, count: Math.min(o.viewersPerProcess, n - k * o.viewersPerProcess), concurrency: 4 } }, 'ready')),
    );
    connected = starts.reduce((s, r) => s + r.ready, 0);
    log(`  ${engine} N=${n}: ${connected} connected`);
    await sleep(2000);

    const sentOf = (): Map<string, number> => {
      const m = new Map<string, number>();
      for (const s of srv.egress.sessions.values()) m.set(`/bench/live/whep/${s.id}`, s.packetsSent);
      return m;
    };
    const recvOf = async (): Promise<Map<string, number>> => {
      const m = new Map<string, number>();
      for (const p of procs) for (const c of (await p.request<{ counts: { id: string; rtp: number }[] }>({ report: true }, 'counts')).counts) m.set(c.id, c.rtp);
      return m;
    };
    sendLatencyProbe.samples = [];
    srv.sendPool?.probe(true);
    const sent0 = sentOf();
    const recv0 = await recvOf();
    const profiler = process.env.STREAMGATE_BENCH_PROFILE ? await startProfile() : undefined;
    const cpu0 = process.cpuUsage();
    const w0 = performance.now();
    await sleep(o.seconds * 1000);
    const cpu = process.cpuUsage(cpu0);
    if (profiler) await profiler.stop(`${process.env.STREAMGATE_BENCH_PROFILE}/${engine}-${n}.cpuprofile`);
    const wall = (performance.now() - w0) / 1000;
    const sent1 = sentOf();
    await sleep(300); // packets in flight
    const recv1 = await recvOf();
    gc();
    const rss = process.memoryUsage().rss;
    srv.sendPool?.probe(false);
    await sleep(600); // the threads report their samples every 500 ms
    const lat = sendLatencyProbe.samples.sort((a, b) => a - b);
    sendLatencyProbe.samples = null;

    let browser: WebrtcBenchResult['browser'];
    if (ns) browser = await playInChromium(ns, `http://${host}:${srv.port}/bench/live/`).catch((err: Error) => ({ error: err.message }));
    else if (browserError) browser = { error: browserError };

    let packets = 0;
    let ok = 0;
    for (const [id, s1] of sent1) {
      const sent = s1 - (sent0.get(id) ?? 0);
      packets += sent;
      const got = (recv1.get(id) ?? 0) - (recv0.get(id) ?? 0);
      if (sent > 0 && got >= 0.99 * sent) ok++;
    }
    const cpuUs = cpu.user + cpu.system - baseCpuUs * wall;
    const userUs = cpu.user - baseUserUs * wall;
    for (const p of procs) p.child.send({ stop: true });
    await sleep(500);
    return {
      engine,
      n,
      connected,
      usPerPacketPerViewer: packets > 0 ? cpuUs / packets : Number.NaN,
      userUsPerPacketPerViewer: packets > 0 ? userUs / packets : Number.NaN,
      rssKbPerViewer: Math.round((rss - baseRss) / 1024 / Math.max(1, connected)),
      shareAt99: connected > 0 ? ok / n : 0,
      latencyP50Ms: percentile(lat, 50),
      latencyP95Ms: percentile(lat, 95),
      packetsPerViewerPerSecond: connected > 0 ? packets / connected / wall : 0,
      // a viewer that failed to connect counts as one that did not get its packets
      held: ok / n >= 0.95,
      ...(browser ? { browser } : {}),
    };
  } finally {
    clearInterval(timer);
    registry.removePublisher(pub);
    await srv.close();
  }
}

/**
 * With STREAMGATE_BENCH_PROFILE=<dir>: a V8 CPU profile of the main thread over the measured window only (no
 * start-up, no ICE/DTLS), written as <dir>/<engine>-<N>.cpuprofile.
 */
async function startProfile(): Promise<{ stop(file: string): Promise<void> }> {
  const { Session } = await import('node:inspector');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  const post = (method: string): Promise<unknown> => new Promise((resolve, reject) => session.post(method, (err, res) => (err ? reject(err) : resolve(res))));
  await post('Profiler.enable');
  await post('Profiler.start');
  return {
    async stop(file) {
      const { profile } = (await post('Profiler.stop')) as { profile: unknown };
      writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/** One Chromium plays the player page; figures are the difference between two getStats() over BROWSER_SECONDS. */
async function playInChromium(ns: Netns, pageUrl: string): Promise<BrowserPlayStats> {
  const browser = await launchChromium(ns);
  try {
    const page = await browser.newPage();
    await page.goto(pageUrl);
    await page.waitForFunction(`(() => { const pc = window.streamgate && window.streamgate.pc; return !!pc && pc.connectionState === 'connected'; })()`, undefined, { timeout: 20_000, polling: 100 });
    await sleep(BROWSER_WARMUP_MS);
    // browser code as a string: this project compiles without the DOM lib
    const read = (): Promise<Record<string, number>> =>
      page.evaluate(`(async () => {
        const out = {};
        (await window.streamgate.pc.getStats()).forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') Object.assign(out, { framesDecoded: s.framesDecoded || 0, framesDropped: s.framesDropped || 0, freezeCount: s.freezeCount || 0, jb: s.jitterBufferDelay || 0, jbn: s.jitterBufferEmittedCount || 0, lost: s.packetsLost || 0 });
        });
        return out;
      })()`) as Promise<Record<string, number>>;
    const a = await read();
    await sleep(BROWSER_SECONDS * 1000);
    const b = await read();
    const d = (k: string): number => (b[k] ?? 0) - (a[k] ?? 0);
    return {
      framesDecoded: d('framesDecoded'),
      framesDropped: d('framesDropped'),
      freezeCount: d('freezeCount'),
      jitterBufferDelayMs: d('jbn') > 0 ? (d('jb') / d('jbn')) * 1000 : Number.NaN,
      packetsLost: d('lost'),
    };
  } finally {
    await browser.close();
  }
}

function browserCell(b: WebrtcBenchResult['browser']): string {
  if (!b) return '—';
  if ('error' in b) return `(${b.error})`;
  return `${(b.framesDecoded / BROWSER_SECONDS).toFixed(0)} fps, jitter buffer ${b.jitterBufferDelayMs.toFixed(0)} ms, ${b.freezeCount} freezes, ${b.packetsLost} lost`;
}

/**
 * Runs one point in a child process (this file with `--point`): werift overloaded can exhaust the heap faster than
 * the watchdog sees it (its promise backlog starves the event loop), and a crash must cost only that point.
 */
function measureInChild(engine: 'lean' | 'werift', n: number, o: WebrtcBenchOptions, log: (s: string) => void): Promise<WebrtcBenchResult> {
  const failed = (why: string): WebrtcBenchResult => ({ engine, n, connected: 0, usPerPacketPerViewer: Number.NaN, userUsPerPacketPerViewer: Number.NaN, rssKbPerViewer: Number.NaN, shareAt99: 0, latencyP50Ms: Number.NaN, latencyP95Ms: Number.NaN, packetsPerViewerPerSecond: 0, held: false, browser: { error: why } });
  return new Promise((resolve) => {
    const child = fork(fileURLToPath(import.meta.url), ['--point', JSON.stringify({ engine, n, o })], { execArgv: ['--expose-gc'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let result: WebrtcBenchResult | undefined;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.on('message', (m: { log?: string; result?: WebrtcBenchResult }) => {
      if (m.log) log(m.log);
      // JSON turned NaN into null
      if (m.result) result = Object.fromEntries(Object.entries(m.result).map(([k, v]) => [k, v === null ? Number.NaN : v])) as unknown as WebrtcBenchResult;
    });
    child.on('exit', (code, signal) => {
      if (result) return resolve(result);
      const why = /heap out of memory/.test(stderr) ? 'the process ran out of heap: overloaded' : `the point's process exited (${signal ?? code})`;
      log(`  ${engine} N=${n}: ${why}`);
      resolve(failed(why));
    });
  });
}

/** Runs the matrix; `log` gets progress lines. */
export async function runWebrtcBench(o: WebrtcBenchOptions, log: (s: string) => void): Promise<WebrtcBenchResult[]> {
  clip(); // encode the clip once, before the children read it
  const out: WebrtcBenchResult[] = [];
  for (const engine of o.engines) {
    for (const n of o.viewers) {
      const r = await measureInChild(engine, n, o, log);
      out.push(r);
      log(`  ${engine} N=${n}: ${r.usPerPacketPerViewer.toFixed(1)} µs/pkt/viewer (user ${r.userUsPerPacketPerViewer.toFixed(1)}), ${r.rssKbPerViewer} KB/viewer, ${(r.shareAt99 * 100).toFixed(0)}% ≥99%, latency p50 ${r.latencyP50Ms.toFixed(1)} ms p95 ${r.latencyP95Ms.toFixed(1)} ms${r.browser ? `; Chromium: ${browserCell(r.browser)}` : ''}`);
      if (!r.held) break; // a larger N will not hold either
    }
  }
  return out;
}

/** Markdown table of the results. */
export function renderWebrtcBench(rs: WebrtcBenchResult[], o: WebrtcBenchOptions): string {
  const lines = [
    `One H.264 1280x720p30 stream at 2.5 Mbps replayed in real time; ${o.seconds} s window per point; viewers complete ICE+DTLS in child processes and count SRTP packets.`,
    '',
    '| engine | N | connected | CPU µs/pkt/viewer (user-space part) | RSS KB/viewer | viewers ≥ 99 % pkts | send latency p50 / p95 ms | pkts/s/viewer | held | Chromium as viewer N+1 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|---|',
  ];
  for (const r of rs) {
    lines.push(`| ${r.engine} | ${r.n} | ${r.connected} | ${r.usPerPacketPerViewer.toFixed(1)} (${r.userUsPerPacketPerViewer.toFixed(1)}) | ${r.rssKbPerViewer} | ${(r.shareAt99 * 100).toFixed(0)} % | ${r.latencyP50Ms.toFixed(1)} / ${r.latencyP95Ms.toFixed(1)} | ${r.packetsPerViewerPerSecond.toFixed(0)} | ${r.held ? 'yes' : 'no'} | ${browserCell(r.browser)} |`);
  }
  for (const engine of new Set(rs.map((r) => r.engine))) {
    const held = rs.filter((r) => r.engine === engine && r.held).map((r) => r.n);
    lines.push('', `${engine}: highest N held ${held.length ? Math.max(...held) : 0}.`);
  }
  return lines.join('\n');
}

/** The entry bench/run.ts can register. */
export const webrtcBenchmark = {
  title: 'WebRTC fan-out (issue 5)',
  async run(args: { readers: number[]; seconds: number }, log: (line: string) => void): Promise<string> {
    const o: WebrtcBenchOptions = { viewers: [10, 50, 100, 200], seconds: Math.min(args.seconds, 10), engines: ['lean', 'werift'], viewersPerProcess: 50, browser: true };
    return renderWebrtcBench(await runWebrtcBench(o, log), o);
  },
};

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.argv[2] === '--point') {
  // one point, for measureInChild
  process.env.STREAMGATE_LOG_LEVEL ??= 'warn';
  const { engine, n, o } = JSON.parse(process.argv[3]!) as { engine: 'lean' | 'werift'; n: number; o: WebrtcBenchOptions };
  const result = await measure(engine, n, o, clip(), (line) => process.send?.({ log: line }));
  await new Promise<void>((resolve) => process.send!({ result }, () => resolve()));
  process.exit(0);
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({
    options: {
      viewers: { type: 'string', default: '10,50,100,200' },
      seconds: { type: 'string', default: '10' },
      engines: { type: 'string', default: 'lean,werift' },
      'viewers-per-process': { type: 'string', default: '50' },
      'send-threads': { type: 'string' },
      browser: { type: 'boolean', default: false },
    },
  });
  const o: WebrtcBenchOptions = {
    viewers: values.viewers.split(',').map(Number),
    seconds: Number(values.seconds),
    engines: values.engines.split(',') as ('lean' | 'werift')[],
    viewersPerProcess: Number(values['viewers-per-process']),
    browser: values.browser,
  };
  if (values['send-threads'] !== undefined) o.sendThreads = Number(values['send-threads']);
  process.env.STREAMGATE_LOG_LEVEL ??= 'warn';
  const rs = await runWebrtcBench(o, (s) => console.log(s));
  console.log(renderWebrtcBench(rs, o));
  process.exit(0);
}
