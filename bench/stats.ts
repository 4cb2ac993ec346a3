import { cpuTimes, rssBytes, sleep } from './proc.js';
import type { ReaderWindow } from './reader-proc.js';

/**
 * Figures of the fan-out benchmarks (RTMP, RTSP): server CPU and memory sampled from /proc over a window, the
 * per-reader figures derived from a baseline and a measured window, and the Markdown they are printed as.
 */

/** Server CPU and memory over one sampled window. */
export interface CpuWindow {
  /** length of the window, s */
  seconds: number;
  /** user + system CPU-seconds per second */
  cpuRate: number;
  /** the kernel's share of it, CPU-seconds per second */
  sysRate: number;
  /** resident memory at the end of the window, bytes */
  rss: number;
}

/**
 * Samples the processes' CPU over `ms` milliseconds, then their resident memory. The process set is fixed for the
 * window: nothing is forked during it.
 */
export async function sampleServer(pids: number[], ms: number): Promise<CpuWindow> {
  const c0 = cpuTimes(pids);
  const t0 = performance.now();
  await sleep(ms);
  const c1 = cpuTimes(pids);
  const seconds = (performance.now() - t0) / 1000;
  return {
    seconds,
    cpuRate: (c1.user + c1.system - c0.user - c0.system) / seconds,
    sysRate: (c1.system - c0.system) / seconds,
    rss: rssBytes(pids),
  };
}

/** Server figures of one fan-out run with N readers, against the baseline with none. */
export interface ServerFigures {
  windowS: number;
  baselineCpuPct: number;
  cpuPct: number;
  /** the part of cpuPct spent in the kernel (socket writes, loopback TCP) */
  sysPct: number;
  /** (CPU in the window − baseline CPU) per reader, in CPU-seconds per reader-minute */
  cpuPerReaderMin: number;
  baselineRssMB: number;
  rssMB: number;
  rssPerReaderKB: number;
  mbpsPerReader: number;
  /** the reader processes' CPU, % of one core */
  readerCpuPct: number;
}

/** The server figures of `n` readers from the baseline, the window and the reader processes' reports. */
export function serverFigures(n: number, baseline: CpuWindow, window: CpuWindow, reports: ReaderWindow[]): ServerFigures {
  const readerWindowS = reports.reduce((s, r) => s + r.windowMs, 0) / reports.length / 1000;
  return {
    windowS: window.seconds,
    baselineCpuPct: baseline.cpuRate * 100,
    cpuPct: window.cpuRate * 100,
    sysPct: window.sysRate * 100,
    cpuPerReaderMin: n > 0 ? ((window.cpuRate - baseline.cpuRate) * 60) / n : NaN,
    baselineRssMB: baseline.rss / 2 ** 20,
    rssMB: window.rss / 2 ** 20,
    rssPerReaderKB: n > 0 ? (window.rss - baseline.rss) / 1024 / n : NaN,
    mbpsPerReader: n > 0 ? (reports.reduce((s, r) => s + r.bytes, 0) * 8) / 1e6 / readerWindowS / n : NaN,
    readerCpuPct: (reports.reduce((s, r) => s + r.cpuSeconds, 0) / readerWindowS) * 100,
  };
}

/** {@link ServerFigures} of a run that failed: all NaN. */
export function failedFigures(): ServerFigures {
  const nan = NaN;
  return { windowS: nan, baselineCpuPct: nan, cpuPct: nan, sysPct: nan, cpuPerReaderMin: nan, baselineRssMB: nan, rssMB: nan, rssPerReaderKB: nan, mbpsPerReader: nan, readerCpuPct: nan };
}

/** `n` split into `parts` counts that differ by at most one (readers per reader process). */
export function split(n: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));
}

/** A number with `digits` decimals, or '–' when it is not finite. */
export function fmt(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '–';
}

/** A share (0..1) as a percentage with `digits` decimals, or '–' when it is not finite. */
export function pct(x: number, digits = 1): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(digits)}%` : '–';
}

/** A Markdown table. */
export function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
