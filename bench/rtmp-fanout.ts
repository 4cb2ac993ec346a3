import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hotSpotLines, keepCpuProfile } from './cpuprofile.js';
import { processTree, quantile, sleep, stopChild } from './proc.js';
import { ReaderProcess } from './reader-proc.js';
import type { BenchArgs } from './run.js';
import type { FromReaders, ReaderResult, ToReaders } from './rtmp-readers.js';
import { REPO_ROOT, SERVERS, freezeStreamgate, streamgateCodeRoot, unfreezeStreamgate, type RunningServer, type ServerKind } from './servers.js';
import { failedFigures, fmt, pct, sampleServer, serverFigures, split, table, type ServerFigures } from './stats.js';

/**
 * RTMP fan-out: one ffmpeg publisher at ~3 Mbps, N cheap players in separate processes, the same load through
 * streamgate, nginx-rtmp and Node-Media-Server 4. Each (server, N) gets a fresh server process so memory figures
 * are not left over from an earlier run.
 */

/** The publisher's stream (issue 2: 1280x720, 30 fps, 2 s GOP, ~3 Mbps). */
export const FPS = 30;
const GOP_FRAMES = 60;
const SOURCE_SECONDS = 60;
/** Stream address on every server. */
const APP = 'live';
const STREAM = 'bench';
/** After the probe sees video: let JIT and buffers settle before the baseline is taken. */
const WARMUP_MS = 2000;
/** Baseline window with only the publisher and the probe players: what N readers add is measured against it. */
const BASELINE_MS = 5000;
/** After the last reader started: time to drain catch-up bursts before the steady window. */
const SETTLE_MS = 3000;
/** A reader "got the stream" if it received at least this share of the frames sent during the window. */
const FRAME_SHARE = 0.99;
/** Issue 2 targets. */
const TARGET_CPU_VS_NGINX = 1.0;
const TARGET_RSS_KB = 32;
const TARGET_FIRST_FRAME_P95_MS = 50;

/** Options of one fan-out run: the benchmark command line (see {@link BenchArgs}). */
export type FanoutOptions = BenchArgs;

/** Figures of one (server, N) run. */
export interface RunResult extends ServerFigures {
  server: ServerKind['key'];
  readers: number;
  error?: string;
  expectedFrames: number;
  /** share of readers that received ≥ 99 % of the expected frames */
  framesOkShare: number;
  medianFrames: number;
  probeFrames: number;
  failed: number;
  firstFrameP50: number;
  firstFrameP95: number;
  firstKeyP50: number;
  firstKeyP95: number;
  ageP50: number;
  ageP95: number;
  hotSpots?: string[];
}

/** Encodes the publisher's source once (cached across runs): ffmpeg's x264 then never competes with the servers. */
export function prepareSource(): string {
  const dir = join(tmpdir(), 'streamgate-bench');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `testsrc2-1280x720-${FPS}fps-gop${GOP_FRAMES}-3M-${SOURCE_SECONDS}s.flv`);
  if (existsSync(file)) return file;
  const tmp = `${file}.${process.pid}.tmp`;
  process.stdout.write(`encoding the publisher source once: ${file}\n`);
  execFileSync(
    'ffmpeg',
    [
      ...['-hide_banner', '-loglevel', 'error', '-y'],
      ...['-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=${FPS}`],
      ...['-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=44100'],
      ...['-t', String(SOURCE_SECONDS)],
      ...['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'],
      ...['-b:v', '3M', '-maxrate', '3M', '-bufsize', '3M'],
      ...['-g', String(GOP_FRAMES), '-keyint_min', String(GOP_FRAMES), '-sc_threshold', '0'],
      ...['-c:a', 'aac', '-b:a', '128k', '-ac', '2'],
      ...['-f', 'flv', tmp],
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  renameSync(tmp, file);
  return file;
}

/** ffmpeg publishing the source file to `url` in a loop at its own pace, without re-encoding. */
export function startLoopPublisher(source: string, url: string): ChildProcess {
  return spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', source, '-c', 'copy', '-f', 'flv', url], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** One server with N readers: start, baseline, connect, steady window, stop. */
export async function runOnce(kind: ServerKind, n: number, opts: FanoutOptions, source: string): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), `sg-bench-${kind.key}-`));
  const profDir = opts.profile && kind.key !== 'nginx' ? join(dir, 'prof') : undefined;
  let server: RunningServer | undefined;
  let publisher: ChildProcess | undefined;
  const procs: ReaderProcess<ToReaders, FromReaders>[] = [];
  try {
    server = await kind.start(dir, {
      ...(profDir ? { cpuProfileDir: profDir } : {}),
      ...(opts.streamgateYaml ? { streamgateYaml: opts.streamgateYaml } : {}),
    });
    publisher = startLoopPublisher(source, `rtmp://127.0.0.1:${server.port}/${APP}/${STREAM}`);
    const nProcs = Math.max(1, Math.ceil(n / opts.readersPerProcess));
    for (let i = 0; i < nProcs; i++) procs.push(new ReaderProcess<ToReaders, FromReaders>('rtmp-readers.js'));
    const probe: ToReaders = { type: 'probe', host: '127.0.0.1', port: server.port, app: APP, name: STREAM };
    await Promise.all(procs.map((p) => p.request(probe, 'probe-ready', 25_000)));
    await sleep(WARMUP_MS);

    const tree = () => processTree(server!.pid);
    let pids = tree();
    const baseline = await sampleServer(pids, BASELINE_MS);

    const counts = split(n, nProcs);
    const rate = opts.connectRate / nProcs;
    const connectTimeout = (n / opts.connectRate) * 1000 + 20_000;
    const connected = await Promise.all(
      procs.map((p, i) => p.request({ type: 'connect', count: counts[i]!, perSecond: rate, timeoutMs: connectTimeout - 5000 }, 'connected', connectTimeout)),
    );
    const failedToStart = connected.reduce((s, c) => s + c.failed, 0);
    await sleep(SETTLE_MS);

    pids = tree();
    await Promise.all(procs.map((p) => p.request({ type: 'window-start' }, 'window-started', 10_000)));
    const window = await sampleServer(pids, opts.seconds * 1000);
    const results = await Promise.all(procs.map((p) => p.request({ type: 'window-end' }, 'result', 30_000)));
    if (!server.alive()) throw new Error(`server exited during the run\n${server.logTail()}`);

    const readers: ReaderResult[] = results.flatMap((r) => r.readers);
    // frames sent in the window, from the live edge's timestamps (see FromReaders.liveEdgeAdvanceMs)
    const sent = (r: (typeof results)[number]) => (r.liveEdgeAdvanceMs * FPS) / 1000;
    let ok = 0;
    for (const r of results) for (const x of r.readers) if (x.frames >= FRAME_SHARE * sent(r)) ok++;
    const got = (xs: number[]) => xs.filter((x) => x >= 0);
    const firstFrame = got(readers.map((r) => r.firstFrameMs));
    const firstKey = got(readers.map((r) => r.firstKeyMs));
    const age = got(readers.map((r) => r.firstKeyAgeMs));
    return {
      server: kind.key,
      readers: n,
      ...serverFigures(n, baseline, window, results),
      expectedFrames: results.reduce((s, r) => s + sent(r), 0) / results.length,
      framesOkShare: n > 0 ? ok / n : NaN,
      medianFrames: quantile(readers.map((r) => r.frames), 0.5),
      probeFrames: results[0]!.probeFrames,
      failed: Math.max(failedToStart, readers.filter((r) => r.error !== null || r.firstKeyMs < 0).length),
      firstFrameP50: quantile(firstFrame, 0.5),
      firstFrameP95: quantile(firstFrame, 0.95),
      firstKeyP50: quantile(firstKey, 0.5),
      firstKeyP95: quantile(firstKey, 0.95),
      ageP50: quantile(age, 0.5),
      ageP95: quantile(age, 0.95),
    };
  } finally {
    await Promise.allSettled(procs.map((p) => p.stop()));
    if (publisher) await stopChild(publisher);
    if (server) await server.stop();
    const keep = keepCpuProfile(profDir, `${kind.key}-n${n}`);
    if (keep) lastProfile.set(`${kind.key}/${n}`, keep);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Profiles written by the last runs, by `server/N`. */
const lastProfile = new Map<string, string>();

/** Runs every (N, server) pair, N outermost so slow drifts of the shared machine hit every server alike. */
export async function runFanout(opts: FanoutOptions, log: (line: string) => void): Promise<RunResult[]> {
  const source = prepareSource();
  if (opts.servers.includes('streamgate')) log(`streamgate runs from a frozen copy of dist/: ${freezeStreamgate()}`);
  try {
    return await runAll(opts, source, log);
  } finally {
    unfreezeStreamgate();
  }
}

async function runAll(opts: FanoutOptions, source: string, log: (line: string) => void): Promise<RunResult[]> {
  const out: RunResult[] = [];
  for (const n of opts.readers) {
    for (const key of opts.servers) {
      const kind = SERVERS[key];
      log(`rtmp fan-out: ${kind.label}, ${n} readers …`);
      let r: RunResult;
      try {
        r = await runOnce(kind, n, opts, source);
      } catch (err) {
        r = failedRun(key, n, err instanceof Error ? err.message : String(err));
      }
      const prof = lastProfile.get(`${key}/${n}`);
      if (prof) {
        r.hotSpots = hotSpotLines(prof, key === 'streamgate' ? streamgateCodeRoot() : REPO_ROOT, 15);
        log(`  CPU profile: ${prof}`);
        for (const h of r.hotSpots) log(`    ${h}`);
      }
      log(r.error ? `  FAILED: ${r.error}` : `  ${summaryLine(r)}`);
      out.push(r);
    }
  }
  return out;
}

function failedRun(server: ServerKind['key'], readers: number, error: string): RunResult {
  const nan = NaN;
  return {
    server, readers, error, ...failedFigures(), expectedFrames: nan, framesOkShare: nan, medianFrames: nan, probeFrames: nan, failed: readers,
    firstFrameP50: nan, firstFrameP95: nan, firstKeyP50: nan, firstKeyP95: nan, ageP50: nan, ageP95: nan,
  };
}

function summaryLine(r: RunResult): string {
  return (
    `cpu ${fmt(r.cpuPct, 1)}% (sys ${fmt(r.sysPct, 1)}%, baseline ${fmt(r.baselineCpuPct, 1)}%), ${fmt(r.cpuPerReaderMin, 4)} CPU-s/reader-min, ` +
    `rss ${fmt(r.rssMB, 1)} MB (+${fmt(r.rssPerReaderKB, 1)} KB/reader), frames ok ${pct(r.framesOkShare)}, ` +
    `first frame p50/p95 ${fmt(r.firstKeyP50, 0)}/${fmt(r.firstKeyP95, 0)} ms, age p50/p95 ${fmt(r.ageP50, 0)}/${fmt(r.ageP95, 0)} ms, ` +
    `readers' process CPU ${fmt(r.readerCpuPct, 0)}%`
  );
}

function ratio(a: number, b: number): string {
  // a per-reader figure ≤ 0 is measurement noise (small N: the baseline moved more than the readers added)
  if (!Number.isFinite(a) || !Number.isFinite(b) || a <= 0 || b <= 0) return '–';
  return `${(a / b).toFixed(2)}×`;
}

/** Markdown tables: one per server, then streamgate's ratios, then the targets. */
export function renderFanout(results: RunResult[], opts: FanoutOptions): string {
  const out: string[] = [];
  for (const key of opts.servers) {
    const rows = results
      .filter((r) => r.server === key)
      .map((r) =>
        r.error
          ? [String(r.readers), `failed: ${r.error.split('\n')[0]}`, '', '', '', '', '', '', '', '']
          : [
              String(r.readers),
              fmt(r.cpuPerReaderMin, 4),
              `${fmt(r.cpuPct, 1)} / ${fmt(r.sysPct, 1)} (${fmt(r.baselineCpuPct, 1)})`,
              fmt(r.rssPerReaderKB, 1),
              `${fmt(r.rssMB, 1)} (${fmt(r.baselineRssMB, 1)})`,
              `${pct(r.framesOkShare)} (median ${fmt(r.medianFrames, 0)}/${fmt(r.expectedFrames, 0)})`,
              `${fmt(r.firstKeyP50, 0)} / ${fmt(r.firstKeyP95, 0)}`,
              `${fmt(r.ageP50, 0)} / ${fmt(r.ageP95, 0)}`,
              fmt(r.mbpsPerReader, 2),
              String(r.failed),
            ],
      );
    out.push(
      `### ${SERVERS[key].label}\n\n` +
        table(
          [
            'N',
            'CPU-s / reader-min',
            'server CPU % / of it kernel (N=0)',
            'RSS KB / reader',
            'RSS MB (N=0)',
            'readers ≥ 99 % frames',
            'first frame p50 / p95 ms',
            'first-frame age p50 / p95 ms',
            'Mbps / reader',
            'failed',
          ],
          rows,
        ),
    );
  }
  const by = (key: string, n: number) => results.find((r) => r.server === key && r.readers === n && !r.error);
  if (opts.servers.includes('streamgate') && opts.servers.length > 1) {
    const rows = opts.readers.map((n) => {
      const sg = by('streamgate', n);
      const ng = by('nginx', n);
      const nm = by('nms', n);
      const cell = (f: (r: RunResult) => number, other: RunResult | undefined) => (sg && other ? ratio(f(sg), f(other)) : '–');
      return [
        String(n),
        cell((r) => r.cpuPerReaderMin, ng),
        cell((r) => r.cpuPerReaderMin, nm),
        cell((r) => r.rssPerReaderKB, ng),
        cell((r) => r.rssPerReaderKB, nm),
        cell((r) => r.firstKeyP95, ng),
        cell((r) => r.firstKeyP95, nm),
      ];
    });
    out.push(
      '### streamgate as a ratio (lower is better)\n\n' +
        table(['N', 'CPU/reader vs nginx-rtmp', 'CPU/reader vs NMS', 'RSS/reader vs nginx-rtmp', 'RSS/reader vs NMS', 'first frame p95 vs nginx-rtmp', 'first frame p95 vs NMS'], rows),
    );
  }
  const sizes = [...new Set(opts.readers)].filter((n) => n > 0).sort((a, b) => a - b);
  if (sizes.length >= 2) {
    // the slope between the two largest N: per-reader cost without the fixed part that appears with the first
    // readers (V8 heap growth, buffers sized once)
    const [na, nb] = sizes.slice(-2) as [number, number];
    const rows = opts.servers.map((key) => {
      const a = by(key, na);
      const b = by(key, nb);
      if (!a || !b) return [SERVERS[key].label, '–', '–'];
      const cpu = (((b.cpuPct - b.baselineCpuPct) - (a.cpuPct - a.baselineCpuPct)) / 100) * 60 / (nb - na);
      const rss = (((b.rssMB - b.baselineRssMB) - (a.rssMB - a.baselineRssMB)) * 1024) / (nb - na);
      return [SERVERS[key].label, fmt(cpu, 4), fmt(rss, 1)];
    });
    out.push(`### Marginal cost per added reader, N = ${na} → ${nb}\n\n` + table(['server', 'CPU-s / reader-min', 'RSS KB / reader'], rows));
  }
  const nMax = Math.max(...opts.readers);
  const sg = by('streamgate', nMax);
  const ng = by('nginx', nMax);
  if (sg) {
    const yes = (b: boolean) => (b ? 'met' : '**missed**');
    const cpuRatio = ng ? sg.cpuPerReaderMin / ng.cpuPerReaderMin : NaN;
    out.push(
      `### Targets (issue 2), streamgate at N = ${nMax}\n\n` +
        table(
          ['target', 'measured', 'result'],
          [
            [`CPU per reader ≤ ${TARGET_CPU_VS_NGINX.toFixed(1)}× nginx-rtmp`, Number.isFinite(cpuRatio) ? `${cpuRatio.toFixed(2)}×` : 'nginx-rtmp not run', Number.isFinite(cpuRatio) ? yes(cpuRatio <= TARGET_CPU_VS_NGINX) : '–'],
            [`RSS ≤ ${TARGET_RSS_KB} KB per reader`, `${fmt(sg.rssPerReaderKB, 1)} KB`, yes(sg.rssPerReaderKB <= TARGET_RSS_KB)],
            [`≥ 99 % of readers get ≥ 99 % of the frames`, pct(sg.framesOkShare), yes(sg.framesOkShare >= 0.99)],
            [`first frame ≤ ${TARGET_FIRST_FRAME_P95_MS} ms p95`, `${fmt(sg.firstKeyP95, 0)} ms`, yes(sg.firstKeyP95 <= TARGET_FIRST_FRAME_P95_MS)],
            ['first-frame age (report only)', `p50 ${fmt(sg.ageP50, 0)} ms, p95 ${fmt(sg.ageP95, 0)} ms`, '–'],
          ],
        ),
    );
  }
  const hot = results.filter((r) => r.hotSpots);
  for (const r of hot) out.push(`### CPU profile: ${SERVERS[r.server].label}, N = ${r.readers} (self time, busy samples)\n\n\`\`\`\n${r.hotSpots!.join('\n')}\n\`\`\``);
  return out.join('\n\n');
}
