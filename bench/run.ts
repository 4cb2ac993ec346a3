import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dateLine, machineLine, publishSection, toolVersion } from './benchmarks-md.js';
import { renderFanout, runFanout, type FanoutOptions } from './rtmp-fanout.js';
import { NGINX_BIN, REPO_ROOT, SERVERS, type ServerKind } from './servers.js';

/**
 * `npm run bench [-- options]`: runs the benchmarks, prints their tables and writes them to BENCHMARKS.md.
 *
 * Each benchmark is one entry of {@link BENCHMARKS} (a `bench/<name>.ts` module, imported only when it runs): add
 * yours there. It gets the parsed command line and returns the Markdown section that replaces its own block in BENCHMARKS.md (between
 * `<!-- bench:<name>:start -->` and `<!-- bench:<name>:end -->`), so benchmarks run separately never erase
 * each other's results.
 */

/** The command line every benchmark sees. */
export interface BenchArgs {
  readers: number[];
  seconds: number;
  servers: ServerKind['key'][];
  /** players started per second while connecting (all reader processes together) */
  connectRate: number;
  readersPerProcess: number;
  /** write a V8 CPU profile of the Node servers and print their hot spots */
  profile: boolean;
  /** YAML appended to streamgate's generated config, to measure a setting (e.g. the GOP cache off) */
  streamgateYaml?: string;
}

/** A benchmark: runs, logs progress, returns its Markdown section (without the heading). */
export interface Benchmark {
  title: string;
  run(args: BenchArgs, log: (line: string) => void): Promise<string>;
}

/** A registered benchmark, loaded only when it runs (one that fails to load never stops the others). */
interface Entry {
  /** false: only with `--only` (keeps the default `npm run bench` within about 10 minutes) */
  inDefaultRun: boolean;
  load(): Promise<Benchmark>;
}

const rtmpFanout: Benchmark = {
  title: 'RTMP fan-out (issue 2)',
  async run(args, log) {
    const opts: FanoutOptions = { ...args };
    const results = await runFanout(opts, log);
    return renderFanout(results, opts);
  },
};

const BENCHMARKS: Record<string, Entry> = {
  rtmp: { inDefaultRun: true, load: async () => rtmpFanout },
  hls: { inDefaultRun: false, load: async () => (await import('./hls.js')).hlsBenchmark },
  // `--only rtsp --readers 1,100,500 --seconds 15` reproduces the recorded run (N = 1000 UDP readers is past
  // what one reader process can receive on this machine)
  rtsp: { inDefaultRun: false, load: async () => (await import('./rtsp.js')).rtspBenchmark },
  webrtc: { inDefaultRun: false, load: async () => (await import('./webrtc.js')).webrtcBenchmark },
};

/**
 * Benchmarks on this shared 2-core machine take turns: every run holds this lock (bench/hls.ts's standalone runs
 * take it with `flock` too), so two benchmarks never measure each other's load.
 */
const LOCK_FILE = '/tmp/streamgate-bench.lock';
const LOCK_HELD_ENV = 'STREAMGATE_BENCH_LOCK_HELD';

const USAGE = `usage: npm run bench -- [options]

  --only NAMES             benchmarks to run, comma-separated (${Object.keys(BENCHMARKS).join(', ')});
                           default: ${defaultNames().join(', ')}
  --readers LIST           reader counts (default 1,100,500,1000)
  --seconds S              steady measurement window per run (default 20)
  --servers LIST           streamgate,nginx,nms (default all three)
  --connect-rate R         readers started per second while connecting (default 200)
  --readers-per-process K  players per reader process (default 500)
  --profile                V8 CPU profile of the Node servers (streamgate, NMS); prints the hot spots
  --streamgate-yaml TEXT   YAML appended to streamgate's config ("\\n" for newlines), e.g. to turn the GOP
                           cache off: 'paths:\\n  "~^live/": { gopCache: false }'
  --no-write               print only, leave BENCHMARKS.md alone
  -h, --help               this text`;

function numbers(s: string, what: string): number[] {
  const xs = s.split(',').map((x) => Number(x.trim()));
  if (xs.length === 0 || xs.some((x) => !Number.isInteger(x) || x < 0)) throw new Error(`--${what}: expected non-negative integers, got "${s}"`);
  return xs;
}

function parse(argv: string[]): { only: string[]; args: BenchArgs; write: boolean } | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      only: { type: 'string' },
      readers: { type: 'string', default: '1,100,500,1000' },
      seconds: { type: 'string', default: '20' },
      servers: { type: 'string', default: 'streamgate,nginx,nms' },
      'connect-rate': { type: 'string', default: '200' },
      'readers-per-process': { type: 'string', default: '500' },
      profile: { type: 'boolean', default: false },
      'streamgate-yaml': { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return null;
  const only = values.only ? values.only.split(',').map((s) => s.trim()) : defaultNames();
  for (const o of only) if (!BENCHMARKS[o]) throw new Error(`--only: unknown benchmark "${o}" (known: ${Object.keys(BENCHMARKS).join(', ')})`);
  const servers = values.servers.split(',').map((s) => s.trim());
  for (const s of servers) if (!(s in SERVERS)) throw new Error(`--servers: unknown server "${s}" (known: ${Object.keys(SERVERS).join(', ')})`);
  const [seconds] = numbers(values.seconds, 'seconds');
  const [connectRate] = numbers(values['connect-rate'], 'connect-rate');
  const [perProcess] = numbers(values['readers-per-process'], 'readers-per-process');
  if (!seconds || !connectRate || !perProcess) throw new Error('--seconds, --connect-rate and --readers-per-process must be > 0');
  return {
    only,
    write: !values['no-write'],
    args: {
      readers: numbers(values.readers, 'readers'),
      seconds,
      servers: servers as ServerKind['key'][],
      connectRate,
      readersPerProcess: perProcess,
      profile: values.profile,
      ...(values['streamgate-yaml'] ? { streamgateYaml: values['streamgate-yaml'].replace(/\\n/g, '\n') } : {}),
    },
  };
}

function machine(): string {
  const nms = JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules/node-media-server/package.json'), 'utf8')) as { version: string };
  return [
    machineLine('the machine is shared'),
    `- code: streamgate at ${toolVersion('git', ['-C', REPO_ROOT, 'describe', '--always', '--dirty'])} (dist/ as compiled at the start of the run; the work tree is shared, so "-dirty" may include other engineers' uncommitted files)`,
    `- Node ${process.version}; ${toolVersion(NGINX_BIN, ['-v'])} with libnginx-mod-rtmp; node-media-server ${nms.version}; ${toolVersion('ffmpeg', ['-version'])}`,
  ].join('\n');
}

const HEADER = `# Benchmarks

Produced by \`npm run bench\` (bench/run.ts). Each section below is rewritten by its benchmark; notes outside the
\`<!-- bench:… -->\` markers are kept.
`;

function defaultNames(): string[] {
  return Object.keys(BENCHMARKS).filter((k) => BENCHMARKS[k]!.inDefaultRun);
}

/** Runs this script again under `flock` (waiting for any other benchmark); false when flock is not installed. */
function runUnderLock(): boolean {
  if (process.env[LOCK_HELD_ENV]) return false;
  if (spawnSync('flock', ['-n', LOCK_FILE, 'true']).status === 1) console.log(`waiting for ${LOCK_FILE}: another benchmark is running …`);
  const r = spawnSync('flock', [LOCK_FILE, process.execPath, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, [LOCK_HELD_ENV]: '1' },
  });
  if (r.error) return false;
  process.exitCode = r.status ?? 1;
  return true;
}

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(process.argv.slice(2));
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    process.exit(2);
  }
  if (!parsed) {
    console.log(USAGE);
    return;
  }
  if (runUnderLock()) return;
  const argv = process.argv
    .slice(2)
    .map((a) => (/^[\w,.=\/-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
  for (const name of parsed.only) {
    const b = await BENCHMARKS[name]!.load();
    const began = new Date();
    const log = (line: string) => console.log(line);
    log(`== ${b.title}`);
    const body = await b.run(parsed.args, log);
    const seconds = Math.round((Date.now() - began.getTime()) / 1000);
    const section = [
      `## ${b.title}`,
      '',
      `- command: \`npm run bench${argv ? ` -- ${argv}` : ''}\` (took ${seconds} s)`,
      dateLine(began),
      machine(),
      '',
      body,
    ].join('\n');
    publishSection(name, section, parsed.write, HEADER);
  }
}

await main();
