import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { execFileSync, type ChildProcess } from 'node:child_process';

/** Linux process accounting from /proc, and small process/port helpers for the benchmarks. */

/** Kernel clock ticks per second (utime/stime unit in /proc/<pid>/stat); 100 on every mainstream Linux build. */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Fields of /proc/<pid>/stat after the command name (which may contain spaces and parentheses). */
function statFields(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** A process and all its descendants (nginx master + worker, a node server and anything it spawned). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const f = statFields(pid);
    if (!f) continue;
    const ppid = Number(f[1]); // field 4 of stat: ppid
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

/** CPU seconds of a set of processes, split as the kernel accounts them. */
export interface CpuTimes {
  user: number;
  system: number;
}

/** User and system CPU seconds of the processes (fields 14 and 15 of stat). */
export function cpuTimes(pids: number[]): CpuTimes {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    if (!f) continue;
    user += Number(f[11]);
    system += Number(f[12]);
  }
  return { user: user / CLK_TCK, system: system / CLK_TCK };
}

/** User + system CPU seconds of the processes. */
export function cpuSeconds(pids: number[]): number {
  const t = cpuTimes(pids);
  return t.user + t.system;
}

/** Resident set size of the processes in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      // the process is gone
    }
  }
  return kb * 1024;
}

/** A loopback TCP port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A loopback-style TCP client (Nagle off) whose reads all land in `buffer`, shared by every connection of a load
 * process (no allocation per read); `onData(buffer, n)` must be done with the n bytes when it returns.
 */
export function connectInto(host: string, port: number, buffer: Buffer, onData: (buf: Uint8Array, n: number) => void): net.Socket {
  return net.connect({
    host,
    port,
    noDelay: true,
    onread: {
      buffer,
      callback: (n: number, buf: Uint8Array) => {
        onData(buf, n);
        return true;
      },
    },
  });
}

/** Resolves once something accepts TCP connections on the port. */
export async function waitForPort(port: number, timeoutMs: number, alive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!alive()) throw new Error(`the process meant to listen on port ${port} exited`);
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Promise-based setTimeout. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The value at quantile q (0..1) of the numbers, nearest-rank; NaN for an empty list. */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** SIGTERM to a child process, SIGKILL after 3 s; resolves once it exited. */
export async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(t);
}
