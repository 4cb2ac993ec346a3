import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, writeFileSync, existsSync, cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitForPort } from './proc.js';

/** The RTMP servers the fan-out benchmark runs, each as its own process tree on a loopback port. */

/** Repository root (this file runs from dist/bench/). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Debian's nginx and its RTMP module (packages `nginx` and `libnginx-mod-rtmp`). */
export const NGINX_BIN = '/usr/sbin/nginx';
export const NGINX_RTMP_MODULE = '/usr/lib/nginx/modules/ngx_rtmp_module.so';

/** How long a server may take to bind its port. */
const START_TIMEOUT_MS = 15_000;
/** How long a server may take to exit after SIGTERM before it is killed (streamgate's own limit is 5 s). */
const STOP_TIMEOUT_MS = 7_000;

/** A server process started by {@link launchProcess}. */
export interface ServerProcess {
  /** root of the process tree whose CPU and memory are measured */
  pid: number;
  alive(): boolean;
  /** the last lines of its log, for error messages */
  logTail(): string;
  /** SIGTERM, wait for the exit (so a CPU profile gets written), SIGKILL after a timeout */
  stop(): Promise<void>;
}

/** A server process under test. */
export interface RunningServer extends ServerProcess {
  port: number;
}

/** How to start a server. */
export interface StartOptions {
  /** write a V8 CPU profile of a Node server there */
  cpuProfileDir?: string;
  /** streamgate: YAML appended to the generated config (e.g. a `paths:` block to try a setting) */
  streamgateYaml?: string;
}

/** One server implementation the benchmark knows how to start. */
export interface ServerKind {
  key: 'streamgate' | 'nginx' | 'nms';
  label: string;
  /** starts it with its files in `dir`; `cpuProfileDir` asks a Node server for a V8 CPU profile */
  start(dir: string, opts?: StartOptions): Promise<RunningServer>;
}

/** How {@link launchProcess} starts a server. */
export interface LaunchOptions {
  env?: NodeJS.ProcessEnv;
  /** what the error says did not start (default: the command) */
  name?: string;
}

/**
 * Starts a server with its output appended to `dir`/server.log and resolves once it accepts connections on every
 * port; if it does not, stops it and rejects with the log's tail.
 */
export async function launchProcess(cmd: string, args: string[], dir: string, ports: number[], opts: LaunchOptions = {}): Promise<ServerProcess> {
  const logPath = join(dir, 'server.log');
  const fd = openSync(logPath, 'a');
  const child: ChildProcess = spawn(cmd, args, { cwd: REPO_ROOT, env: opts.env ?? process.env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.once('error', () => {
      exited = true;
      resolve();
    });
  });
  const server: ServerProcess = {
    pid: child.pid ?? -1,
    alive: () => !exited,
    logTail: () => (existsSync(logPath) ? readFileSync(logPath, 'utf8').split('\n').slice(-15).join('\n') : ''),
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exit;
      clearTimeout(timer);
    },
  };
  try {
    for (const port of ports) await waitForPort(port, START_TIMEOUT_MS, server.alive);
  } catch (err) {
    await server.stop();
    throw new Error(`${opts.name ?? cmd} did not start: ${err instanceof Error ? err.message : String(err)}\n${server.logTail()}`);
  }
  return server;
}

async function launch(cmd: string, args: string[], dir: string, port: number, env: NodeJS.ProcessEnv = process.env): Promise<RunningServer> {
  return { ...(await launchProcess(cmd, args, dir, [port], { env })), port };
}

/**
 * The nginx.conf of an nginx-rtmp server on loopback: one worker (plus its master), an RTMP `application` block
 * (`application` is its name and block, e.g. `live { live on; }`), then `tail` (an `http { … }` block).
 */
export function nginxRtmpConf(dir: string, rtmpPort: number, o: { workerConnections: number; rlimitNofile?: number; application: string; tail?: string[] }): string {
  return [
    `load_module ${NGINX_RTMP_MODULE};`,
    'daemon off;',
    'master_process on;',
    'worker_processes 1;',
    ...(o.rlimitNofile ? [`worker_rlimit_nofile ${o.rlimitNofile};`] : []),
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')} warn;`,
    `events { worker_connections ${o.workerConnections}; }`,
    'rtmp {',
    '  server {',
    `    listen 127.0.0.1:${rtmpPort};`,
    `    application ${o.application}`,
    '  }',
    '}',
    ...(o.tail ?? []),
    '',
  ].join('\n');
}

/** Starts nginx with the configuration in `conf`, logging to `dir`. */
export function launchNginx(dir: string, conf: string, ports: number[]): Promise<ServerProcess> {
  return launchProcess(NGINX_BIN, ['-p', `${dir}/`, '-c', conf, '-e', join(dir, 'error.log')], dir, ports);
}

/** Where streamgate runs from: the work tree, or a frozen copy (see {@link freezeStreamgate}). */
let streamgateRoot = REPO_ROOT;

/**
 * Copies the compiled server (dist/src, bin, package.json) to a temporary directory and runs streamgate from
 * there for the rest of the process, so a rebuild of the shared work tree in the middle of a benchmark cannot
 * change the code under test. src/ (HTML templates, source maps' targets) and node_modules are symlinked.
 * @returns the copy's root; remove it with {@link unfreezeStreamgate}
 */
export function freezeStreamgate(): string {
  const root = mkdtempSync(join(tmpdir(), 'sg-bench-code-'));
  cpSync(join(REPO_ROOT, 'dist/src'), join(root, 'dist/src'), { recursive: true });
  cpSync(join(REPO_ROOT, 'bin'), join(root, 'bin'), { recursive: true });
  cpSync(join(REPO_ROOT, 'package.json'), join(root, 'package.json'));
  symlinkSync(join(REPO_ROOT, 'src'), join(root, 'src'));
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'));
  streamgateRoot = root;
  return root;
}

/** Back to the work tree; deletes the copy. */
export function unfreezeStreamgate(): void {
  if (streamgateRoot !== REPO_ROOT) rmSync(streamgateRoot, { recursive: true, force: true });
  streamgateRoot = REPO_ROOT;
}

/** The root streamgate runs from (for mapping profiles back to sources). */
export function streamgateCodeRoot(): string {
  return streamgateRoot;
}

/** streamgate's listeners, in the order its benchmark configs list them. */
const LISTENERS = ['rtmp', 'rtsp', 'hls', 'webrtc', 'sip', 'api', 'metrics'] as const;

/**
 * A streamgate config for a benchmark: logging at warn, `listeners` given as their YAML flow maps (e.g.
 * `{ port: 1935, host: 127.0.0.1 }`), every other listener disabled, then `extraYaml`.
 */
export function streamgateConfig(listeners: Partial<Record<(typeof LISTENERS)[number], string>>, extraYaml = ''): string {
  return [
    'logLevel: warn',
    'listeners:',
    ...LISTENERS.map((name) => `  ${name}: ${listeners[name] ?? '{ enabled: false }'}`),
    extraYaml,
    '',
  ].join('\n');
}

/** streamgate (see {@link freezeStreamgate}), RTMP + API only, logging at warn. */
export const streamgate: ServerKind = {
  key: 'streamgate',
  label: 'streamgate',
  async start(dir, opts = {}) {
    const port = await freePort();
    const apiPort = await freePort();
    const yml = streamgateConfig({ rtmp: `{ port: ${port}, host: 127.0.0.1 }`, api: `{ port: ${apiPort}, host: 127.0.0.1 }` }, opts.streamgateYaml);
    const conf = join(dir, 'streamgate.yml');
    writeFileSync(conf, yml);
    const env = { ...process.env };
    delete env.STREAMGATE_LOG_LEVEL;
    const prof = opts.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfileDir] : [];
    return launch(process.execPath, [...prof, join(streamgateRoot, 'bin/streamgate.js'), '--config', conf], dir, port, env);
  },
};

/** nginx-rtmp on loopback: one worker (plus its master), `live on`, the module's defaults otherwise. */
export const nginx: ServerKind = {
  key: 'nginx',
  label: 'nginx-rtmp',
  async start(dir) {
    const port = await freePort();
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, nginxRtmpConf(dir, port, { workerConnections: 8192, rlimitNofile: 16384, application: 'live { live on; }' }));
    return { ...(await launchNginx(dir, conf, [port])), port };
  },
};

/** Node-Media-Server 4 (npm `node-media-server`), RTMP only, through bench/nms-server.ts. */
export const nms: ServerKind = {
  key: 'nms',
  label: 'Node-Media-Server',
  async start(dir, opts = {}) {
    const port = await freePort();
    const prof = opts.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfileDir] : [];
    return launch(process.execPath, [...prof, join(REPO_ROOT, 'dist/bench/nms-server.js'), String(port), dir], dir, port);
  },
};

/** Every server, by key. */
export const SERVERS: Record<ServerKind['key'], ServerKind> = { streamgate, nginx, nms };
