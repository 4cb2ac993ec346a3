import { spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { hotSpotLines, keepCpuProfile } from './cpuprofile.js';
import { freePort, processTree, quantile, sleep, stopChild } from './proc.js';
import { ReaderProcess } from './reader-proc.js';
import { FPS, prepareSource, startLoopPublisher } from './rtmp-fanout.js';
import type { FromReaders, ToReaders } from './rtmp-readers.js';
import type { FromRtspReaders, RtspReaderResult, ToRtspReaders } from './rtsp-readers.js';
import { dateLine, machineLine, publishSection, toolVersion } from './benchmarks-md.js';
import type { BenchArgs, Benchmark } from './run.js';
import { freezeStreamgate, launchProcess, REPO_ROOT, streamgateCodeRoot, streamgateConfig, unfreezeStreamgate, type ServerProcess } from './servers.js';
import { failedFigures, fmt, pct, sampleServer, serverFigures, split, table, type ServerFigures } from './stats.js';

/**
 * RTSP fan-out (issue 3): one ~3 Mbps stream published over RTMP (the RTMP benchmark's pre-encoded 1280x720 30 fps
 * file, `-re -stream_loop -1 -c copy`), N cheap readers over RTSP with TCP interleaving, over RTSP with UDP, and
 * over RTMP, each (transport, N) on a fresh streamgate process with the same config (RTMP + RTSP listeners), so the
 * three columns of one N are measured alike, minutes apart on the same machine.
 *
 * Readers run in separate processes (bench/rtsp-readers.ts and the RTMP benchmark's bench/rtmp-readers.ts);
 * server CPU and RSS come from /proc for the server's process tree; per-reader figures are (window − baseline
 * with the publisher and one probe reader) / N. An RTSP reader "got the stream" when it received ≥ 99 % of the RTP
 * packets sent during the window (counted by sequence number, all media); an RTMP reader when it got ≥ 99 % of
 * the frames. First frame: connect → first keyframe packet (RTMP: first keyframe message).
 */

/** Stream path on the server. */
const PATH = 'live/bench';
/** After the probe sees video: let JIT and buffers settle before the baseline is taken. */
const WARMUP_MS = 2000;
/** Baseline window with only the publisher and the probe player. */
const BASELINE_MS = 4000;
/** After the last reader started: time for GOP-cache bursts (paced for UDP) to drain before the window. */
const SETTLE_MS = 3000;
/** A reader "got the stream" if it received at least this share of what was sent during the window. */
const SHARE = 0.99;
/** Issue 3 targets. */
const TARGET_TCP_CPU_VS_RTMP = 1.2;
const TARGET_UDP_SHARE_N = 500;
/** The lock every benchmark on this shared machine holds while it runs (see bench/run.ts). */
const LOCK_FILE = '/tmp/streamgate-bench.lock';
const LOCK_HELD_ENV = 'STREAMGATE_BENCH_LOCK_HELD';

/** How the readers of one run read. */
export type ReadMode = 'rtsp-tcp' | 'rtsp-udp' | 'rtmp';
/** RTSP/TCP and RTMP run back to back: their ratio is a target, so they should see the same machine. */
const MODES: ReadMode[] = ['rtsp-tcp', 'rtmp', 'rtsp-udp'];
/**
 * UDP players per reader process at most: Node spends ~4 µs per received datagram, and 500 UDP readers of a
 * 3 Mbit/s stream are ~150k datagrams/s, more than one process keeps up with on a shared 2-core machine (it then
 * loses packets itself and the figure measures the reader, not the server).
 */
const UDP_READERS_PER_PROCESS = 250;
const LABEL: Record<ReadMode, string> = { 'rtsp-tcp': 'RTSP/TCP', 'rtsp-udp': 'RTSP/UDP', rtmp: 'RTMP' };

/** Options of a run. */
export interface RtspBenchOptions {
  readers: number[];
  seconds: number;
  modes: ReadMode[];
  connectRate: number;
  readersPerProcess: number;
  /** V8 CPU profile of streamgate per run; hot spots printed and kept in the result */
  profile: boolean;
}

/** Figures of one (mode, N) run. */
export interface RtspRunResult extends ServerFigures {
  mode: ReadMode;
  readers: number;
  error?: string;
  /** share of readers that received ≥ 99 % of the packets (RTMP: frames) sent in the window */
  okShare: number;
  /** all readers' received / sent */
  deliveredShare: number;
  failed: number;
  firstKeyP50: number;
  firstKeyP95: number;
  hotSpots?: string[];
}

/** A running streamgate with RTMP and RTSP (TCP + a UDP pair) on loopback. */
interface Server extends ServerProcess {
  rtmpPort: number;
  rtspPort: number;
}

/** An even UDP port whose successor is free too (the server's RTP/RTCP pair). */
async function freeUdpPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20000 + 2 * Math.floor(Math.random() * 15000);
    const ok = await Promise.all(
      [port, port + 1].map(
        (p) =>
          new Promise<boolean>((resolve) => {
            const s = dgram.createSocket('udp4');
            s.once('error', () => resolve(false));
            s.bind(p, '127.0.0.1', () => s.close(() => resolve(true)));
          }),
      ),
    );
    if (ok.every(Boolean)) return port;
  }
  throw new Error('no free UDP port pair');
}

async function startServer(dir: string, profDir: string | undefined): Promise<Server> {
  const rtmpPort = await freePort();
  const rtspPort = await freePort();
  const apiPort = await freePort();
  const rtp = await freeUdpPair();
  const conf = join(dir, 'streamgate.yml');
  writeFileSync(
    conf,
    streamgateConfig({
      rtmp: `{ port: ${rtmpPort}, host: 127.0.0.1 }`,
      rtsp: `{ port: ${rtspPort}, host: 127.0.0.1, rtpPort: ${rtp}, rtcpPort: ${rtp + 1} }`,
      api: `{ port: ${apiPort}, host: 127.0.0.1 }`,
    }),
  );
  const env = { ...process.env };
  delete env.STREAMGATE_LOG_LEVEL;
  const prof = profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
  const args = [...prof, join(streamgateCodeRoot(), 'bin/streamgate.js'), '--config', conf];
  return { ...(await launchProcess(process.execPath, args, dir, [rtspPort, rtmpPort], { env, name: 'streamgate' })), rtmpPort, rtspPort };
}

/** What a reader process reports at the end of the window, for either protocol. */
interface WindowReport {
  windowMs: number;
  /** per reader: share of the window's packets (frames) received, and connect → first keyframe (ms, -1: none) */
  readers: { share: number; firstKeyMs: number; failed: boolean }[];
  bytes: number;
  cpuSeconds: number;
}

type AnyReaders = ReaderProcess<ToRtspReaders, FromRtspReaders> | ReaderProcess<ToReaders, FromReaders>;

/** Drives the reader processes of one run through probe, connect and window, whatever their protocol. */
function driver(mode: ReadMode, server: Server, count: number) {
  if (mode === 'rtmp') {
    const procs = Array.from({ length: count }, () => new ReaderProcess<ToReaders, FromReaders>('rtmp-readers.js'));
    const [app, name] = PATH.split('/') as [string, string];
    return {
      procs: procs as AnyReaders[],
      probe: () => Promise.all(procs.map((p) => p.request({ type: 'probe', host: '127.0.0.1', port: server.rtmpPort, app, name }, 'probe-ready', 25_000))),
      connect: (counts: number[], perSecond: number, timeoutMs: number) =>
        Promise.all(procs.map((p, i) => p.request({ type: 'connect', count: counts[i]!, perSecond, timeoutMs: timeoutMs - 5000 }, 'connected', timeoutMs))),
      windowStart: () => Promise.all(procs.map((p) => p.request({ type: 'window-start' }, 'window-started', 10_000))),
      windowEnd: async (): Promise<WindowReport[]> =>
        (await Promise.all(procs.map((p) => p.request({ type: 'window-end' }, 'result', 30_000)))).map((r) => {
          const sent = (r.liveEdgeAdvanceMs * FPS) / 1000;
          return {
            windowMs: r.windowMs,
            readers: r.readers.map((x) => ({ share: sent > 0 ? x.frames / sent : 0, firstKeyMs: x.firstKeyMs, failed: x.error !== null || x.firstKeyMs < 0 })),
            bytes: r.bytes,
            cpuSeconds: r.cpuSeconds,
          };
        }),
    };
  }
  const procs = Array.from({ length: count }, () => new ReaderProcess<ToRtspReaders, FromRtspReaders>('rtsp-readers.js'));
  const transport = mode === 'rtsp-tcp' ? 'tcp' : 'udp';
  return {
    procs: procs as AnyReaders[],
    probe: () => Promise.all(procs.map((p) => p.request({ type: 'probe', host: '127.0.0.1', port: server.rtspPort, path: PATH, transport }, 'probe-ready', 25_000))),
    connect: (counts: number[], perSecond: number, timeoutMs: number) =>
      Promise.all(procs.map((p, i) => p.request({ type: 'connect', count: counts[i]!, perSecond, timeoutMs: timeoutMs - 5000 }, 'connected', timeoutMs))),
    windowStart: () => Promise.all(procs.map((p) => p.request({ type: 'window-start' }, 'window-started', 10_000))),
    windowEnd: async (): Promise<WindowReport[]> =>
      (await Promise.all(procs.map((p) => p.request({ type: 'window-end' }, 'result', 30_000)))).map((r) => ({
        windowMs: r.windowMs,
        readers: r.readers.map((x: RtspReaderResult) => ({ share: r.sent > 0 ? x.received / r.sent : 0, firstKeyMs: x.firstKeyMs, failed: x.error !== null || x.firstKeyMs < 0 })),
        bytes: r.bytes,
        cpuSeconds: r.cpuSeconds,
      })),
  };
}

/** One mode with N readers: fresh server, publisher, baseline, connect, settle, window, stop. */
async function runOnce(mode: ReadMode, n: number, opts: RtspBenchOptions, source: string): Promise<RtspRunResult> {
  const dir = mkdtempSync(join(tmpdir(), `sg-bench-rtsp-${mode}-`));
  const profDir = opts.profile ? join(dir, 'prof') : undefined;
  let server: Server | undefined;
  let publisher: ChildProcess | undefined;
  let d: ReturnType<typeof driver> | undefined;
  try {
    server = await startServer(dir, profDir);
    publisher = startLoopPublisher(source, `rtmp://127.0.0.1:${server.rtmpPort}/${PATH}`);
    const perProcess = mode === 'rtsp-udp' ? Math.min(opts.readersPerProcess, UDP_READERS_PER_PROCESS) : opts.readersPerProcess;
    const nProcs = Math.max(1, Math.ceil(n / perProcess));
    d = driver(mode, server, nProcs);
    await d.probe();
    await sleep(WARMUP_MS);

    const tree = () => processTree(server!.pid);
    let pids = tree();
    const baseline = await sampleServer(pids, BASELINE_MS);

    const connectTimeout = (n / opts.connectRate) * 1000 + 20_000;
    const connected = await d.connect(split(n, nProcs), opts.connectRate / nProcs, connectTimeout);
    const failedToStart = connected.reduce((s, c) => s + c.failed, 0);
    await sleep(SETTLE_MS);

    pids = tree();
    await d.windowStart();
    const window = await sampleServer(pids, opts.seconds * 1000);
    const reports = await d.windowEnd();
    if (!server.alive()) throw new Error(`server exited during the run\n${server.logTail()}`);

    const readers = reports.flatMap((r) => r.readers);
    const firstKey = readers.map((r) => r.firstKeyMs).filter((x) => x >= 0);
    return {
      mode,
      readers: n,
      ...serverFigures(n, baseline, window, reports),
      okShare: n > 0 ? readers.filter((r) => r.share >= SHARE).length / n : NaN,
      deliveredShare: readers.length > 0 ? readers.reduce((s, r) => s + Math.min(1, r.share), 0) / readers.length : NaN,
      failed: Math.max(failedToStart, readers.filter((r) => r.failed).length),
      firstKeyP50: quantile(firstKey, 0.5),
      firstKeyP95: quantile(firstKey, 0.95),
    };
  } finally {
    if (d) await Promise.allSettled(d.procs.map((p) => p.stop()));
    if (publisher) await stopChild(publisher);
    if (server) await server.stop();
    const keep = keepCpuProfile(profDir, `rtsp-${mode}-n${n}`);
    if (keep) lastProfile = keep;
    rmSync(dir, { recursive: true, force: true });
  }
}

let lastProfile: string | undefined;

/** Runs every (N, mode), N outermost so slow drifts of the shared machine hit the three transports alike. */
export async function runRtsp(opts: RtspBenchOptions, log: (line: string) => void): Promise<RtspRunResult[]> {
  const source = prepareSource();
  log(`streamgate runs from a frozen copy of dist/: ${freezeStreamgate()}`);
  const out: RtspRunResult[] = [];
  try {
    for (const n of opts.readers) {
      for (const mode of opts.modes) {
        log(`rtsp fan-out: ${LABEL[mode]}, ${n} readers …`);
        lastProfile = undefined;
        let r: RtspRunResult;
        try {
          r = await runOnce(mode, n, opts, source);
        } catch (err) {
          r = failedRun(mode, n, err instanceof Error ? err.message : String(err));
        }
        if (lastProfile) {
          r.hotSpots = hotSpotLines(lastProfile, streamgateCodeRoot(), 20);
          log(`  CPU profile: ${lastProfile}`);
          for (const h of r.hotSpots) log(`    ${h}`);
        }
        log(r.error ? `  FAILED: ${r.error}` : `  ${summaryLine(r)}`);
        out.push(r);
      }
    }
  } finally {
    unfreezeStreamgate();
  }
  return out;
}

function failedRun(mode: ReadMode, readers: number, error: string): RtspRunResult {
  const nan = NaN;
  return {
    mode, readers, error, ...failedFigures(), okShare: nan, deliveredShare: nan, failed: readers, firstKeyP50: nan, firstKeyP95: nan,
  };
}

function summaryLine(r: RtspRunResult): string {
  return (
    `cpu ${fmt(r.cpuPct, 1)}% (sys ${fmt(r.sysPct, 1)}%, baseline ${fmt(r.baselineCpuPct, 1)}%), ${fmt(r.cpuPerReaderMin, 4)} CPU-s/reader-min, ` +
    `rss ${fmt(r.rssMB, 1)} MB (+${fmt(r.rssPerReaderKB, 1)} KB/reader), ≥99% ${pct(r.okShare)} (delivered ${pct(r.deliveredShare, 2)}), ` +
    `first frame p50/p95 ${fmt(r.firstKeyP50, 0)}/${fmt(r.firstKeyP95, 0)} ms, ${fmt(r.mbpsPerReader, 2)} Mbps/reader, failed ${r.failed}, readers' CPU ${fmt(r.readerCpuPct, 0)}%`
  );
}

/** Markdown: the three transports side by side per N, then the targets. */
export function renderRtsp(results: RtspRunResult[], opts: RtspBenchOptions): string {
  const out: string[] = [];
  const rows = results.map((r) =>
    r.error
      ? [String(r.readers), LABEL[r.mode], `failed: ${r.error.split('\n')[0]}`, '', '', '', '', '', '', '']
      : [
          String(r.readers),
          LABEL[r.mode],
          fmt(r.cpuPerReaderMin, 4),
          `${fmt(r.cpuPct, 1)} / ${fmt(r.sysPct, 1)} (${fmt(r.baselineCpuPct, 1)})`,
          fmt(r.rssPerReaderKB, 1),
          `${fmt(r.rssMB, 1)} (${fmt(r.baselineRssMB, 1)})`,
          `${pct(r.okShare)} (${pct(r.deliveredShare, 2)})`,
          `${fmt(r.firstKeyP50, 0)} / ${fmt(r.firstKeyP95, 0)}`,
          fmt(r.mbpsPerReader, 2),
          `${fmt(r.readerCpuPct, 0)}`,
          String(r.failed),
        ],
  );
  out.push(
    table(
      [
        'N',
        'readers',
        'CPU-s / reader-min',
        'server CPU % / of it kernel (N=0)',
        'RSS KB / reader',
        'RSS MB (N=0)',
        'readers ≥ 99 % packets (RTMP: frames) (all delivered)',
        'first frame p50 / p95 ms',
        'Mbps / reader',
        "readers' processes CPU %",
        'failed',
      ],
      rows,
    ),
  );
  const by = (mode: ReadMode, n: number) => results.find((r) => r.mode === mode && r.readers === n && !r.error);
  const yes = (b: boolean) => (b ? 'met' : '**missed**');
  const targetRows: string[][] = [];
  for (const n of opts.readers.filter((x) => x > 1)) {
    const tcp = by('rtsp-tcp', n);
    const rtmp = by('rtmp', n);
    if (tcp && rtmp && tcp.cpuPerReaderMin > 0 && rtmp.cpuPerReaderMin > 0) {
      const ratio = tcp.cpuPerReaderMin / rtmp.cpuPerReaderMin;
      targetRows.push([`RTSP/TCP CPU per reader ≤ ${TARGET_TCP_CPU_VS_RTMP}× RTMP, N = ${n}`, `${ratio.toFixed(2)}× (${fmt(tcp.cpuPerReaderMin, 4)} vs ${fmt(rtmp.cpuPerReaderMin, 4)})`, yes(ratio <= TARGET_TCP_CPU_VS_RTMP)]);
    }
  }
  const udp = by('rtsp-udp', TARGET_UDP_SHARE_N);
  if (udp) targetRows.push([`RTSP/UDP readers with ≥ 99 % of the packets, N = ${TARGET_UDP_SHARE_N}`, `${pct(udp.okShare)} of readers; ${pct(udp.deliveredShare, 2)} of all packets delivered`, yes(udp.okShare >= SHARE)]);
  if (targetRows.length > 0) out.push(`### Targets (issue 3)\n\n${table(['target', 'measured', 'result'], targetRows)}`);
  for (const r of results.filter((x) => x.hotSpots)) out.push(`### CPU profile: ${LABEL[r.mode]}, N = ${r.readers} (self time, busy samples)\n\n\`\`\`\n${r.hotSpots!.join('\n')}\n\`\`\``);
  return out.join('\n\n');
}

/** The run.ts entry (`npm run bench -- --only rtsp`): `--readers`, `--seconds`, `--connect-rate`, `--readers-per-process`, `--profile`. */
export const rtspBenchmark: Benchmark = {
  title: 'RTSP fan-out (issue 3)',
  async run(args: BenchArgs, log) {
    const opts: RtspBenchOptions = {
      readers: args.readers,
      seconds: args.seconds,
      modes: MODES,
      connectRate: args.connectRate,
      readersPerProcess: args.readersPerProcess,
      profile: args.profile,
    };
    return renderRtsp(await runRtsp(opts, log), opts);
  },
};

// ---- standalone: node dist/bench/rtsp.js ----

const USAGE = `usage: node dist/bench/rtsp.js [options]   (takes ${LOCK_FILE} itself; after npx tsc -p .)

  --readers LIST           reader counts (default 1,100,500)
  --seconds S              steady measurement window per run (default 15)
  --modes LIST             rtsp-tcp,rtmp,rtsp-udp (default all three, in this order)
  --connect-rate R         readers started per second while connecting (default 200)
  --readers-per-process K  players per reader process (default 500; UDP at most ${UDP_READERS_PER_PROCESS})
  --profile                V8 CPU profile of streamgate per run; prints the hot spots
  --no-write               print only, leave BENCHMARKS.md alone
  -h, --help               this text`;

/** True when this process already runs under `flock LOCK_FILE` (an ancestor holds it, or run.ts said so). */
function lockHeld(): boolean {
  if (process.env[LOCK_HELD_ENV]) return true;
  for (let pid = process.ppid; pid > 1; ) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.endsWith('flock') && cmd.includes(LOCK_FILE)) return true;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      return false;
    }
  }
  return false;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      readers: { type: 'string', default: '1,100,500' },
      seconds: { type: 'string', default: '15' },
      modes: { type: 'string', default: MODES.join(',') },
      'connect-rate': { type: 'string', default: '200' },
      'readers-per-process': { type: 'string', default: '500' },
      profile: { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const ints = (s: string, what: string): number[] => {
    const xs = s.split(',').map((x) => Number(x.trim()));
    if (xs.some((x) => !Number.isInteger(x) || x < 0)) throw new Error(`--${what}: expected non-negative integers, got "${s}"`);
    return xs;
  };
  const modes = values.modes.split(',').map((m) => m.trim()) as ReadMode[];
  for (const m of modes) if (!MODES.includes(m)) throw new Error(`--modes: unknown "${m}" (known: ${MODES.join(', ')})`);
  const opts: RtspBenchOptions = {
    readers: ints(values.readers, 'readers'),
    seconds: ints(values.seconds, 'seconds')[0] || 15,
    modes,
    connectRate: ints(values['connect-rate'], 'connect-rate')[0] || 200,
    readersPerProcess: ints(values['readers-per-process'], 'readers-per-process')[0] || 500,
    profile: values.profile,
  };
  if (!lockHeld()) {
    // take the benchmark lock: run this script again under flock
    const r = spawnSync('flock', [LOCK_FILE, process.execPath, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, [LOCK_HELD_ENV]: '1' },
    });
    process.exitCode = r.status ?? 1;
    return;
  }
  const argv = process.argv.slice(2).join(' ');
  const began = new Date();
  const body = renderRtsp(await runRtsp(opts, (l) => console.log(l)), opts);
  const took = Math.round((Date.now() - began.getTime()) / 1000);
  const section = [
    '## RTSP fan-out (issue 3)',
    '',
    `- command: \`flock ${LOCK_FILE} node dist/bench/rtsp.js${argv ? ` ${argv}` : ''}\` after \`npx tsc -p .\` (took ${took} s)`,
    dateLine(began),
    machineLine("shared with other engineers' work"),
    `- code: streamgate at ${toolVersion('git', ['-C', REPO_ROOT, 'describe', '--always', '--dirty'])}, run from a frozen copy of dist/; Node ${process.version}; ${toolVersion('ffmpeg', ['-version'])}`,
    `- stream: the RTMP benchmark's 1280x720 30 fps 2 s GOP ~3 Mbps + AAC file, published with \`ffmpeg -re -stream_loop -1 -c copy\` over RTMP; readers in separate processes; each (transport, N) on a fresh server`,
    '',
    body,
  ].join('\n');
  publishSection('rtsp', section, !values['no-write']);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(2);
  });
}
