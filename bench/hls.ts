import http from 'node:http';
import { execFileSync, fork, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { FromLoad, LoadWindow, ToLoad } from './hls-load.js';
import { STAMP_UUID_HLSJS, findStamps, prepareHlsSource, startStampingPublisher, tsElementaryStreams, wallMs, type StampingPublisher } from './hls-media.js';
import { cpuSeconds, freePort, processTree, quantile, rssBytes, sleep } from './proc.js';
import { dateLine, machineLine, publishSection, toolVersion } from './benchmarks-md.js';
import type { BenchArgs, Benchmark } from './run.js';
import { launchNginx, launchProcess, nginxRtmpConf, NGINX_BIN, NGINX_RTMP_MODULE, REPO_ROOT, streamgateConfig, type ServerProcess } from './servers.js';

/**
 * HLS / LL-HLS benchmark (issue 4): how soon media is downloadable, how late hls.js plays, and how many LL-HLS
 * clients one gateway serves in time. nginx-rtmp's HLS (1 s fragments) is published the same frames at the same
 * moment as the latency reference.
 *
 * Method. A paced RTMP publisher (bench/hls-media.ts) stamps every video frame with the wall clock of its sending
 * (an SEI message inside the frame). A probe waits on each LL-HLS part before it exists (the request for the
 * preload-hinted part blocks until the part is complete, 6.2.6), so the moment its download completes is the
 * moment the part became downloadable; the stamps inside say when each of its frames was sent. For nginx-rtmp
 * a probe polls the playlist every {@link NGINX_POLL_MS} ms and takes the first time a fragment is listed.
 * Publisher and servers are on loopback, so "sent" is "arrived at the gateway" within a fraction of a ms (an
 * upper bound of the gateway-side figure: it includes the gateway's own read delay). In Chromium, hls.js
 * (default config: low-latency mode) reports the same stamps for the frames it parses (FRAG_PARSING_USERDATA);
 * latency = now − (stamp of the frame at currentTime), i.e. publisher to screen.
 */

const CHROMIUM = '/usr/bin/chromium';
/** Flags the shared machine wants for headless Chromium. */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'];
/** nginx-rtmp lists a fragment only once it is closed; a 25 ms poll adds 12.5 ms on average to its figures. */
const NGINX_POLL_MS = 25;
/** Load clients start over this long, so the server does not see N playlist requests in the same millisecond. */
const RAMP_MS = 5000;
/** After the ramp, clients settle (first parts, retries) before the window opens. */
const SETTLE_MS = 3000;
/** How long the browser plays before its figures count, and then how long they are sampled. */
const BROWSER_WARMUP_MS = 6000;
const BROWSER_SAMPLE_MS = 20_000;
const APP = 'live';
const STREAM = 'bench';

/** Options of a run. */
export interface HlsBenchOptions {
  /**
   * 'head': a clean build of the committed HEAD in a temporary directory (the shared work tree may be half
   * rebuilt by someone else at any moment); 'worktree': dist/ of the work tree as it is
   */
  code: 'head' | 'worktree';
  /** concurrent LL-HLS clients per load step */
  clients: number[];
  /** measurement window per load step, seconds */
  seconds: number;
  nginx: boolean;
  browser: boolean;
  /** processes the load clients are spread over */
  loadProcesses: number;
}

/** One part or fragment the probes saw become downloadable. */
interface Availability {
  /** part id (streamgate) or fragment sequence (nginx) */
  id: number;
  /** wall-clock ms when it was downloadable */
  atMs: number;
  /** send times of its video frames */
  stamps: number[];
}

/** Latency figures of one probe over a time range. */
interface LatencyStats {
  units: number;
  frames: number;
  /** frame sent → its part/fragment downloadable */
  perFrame: { p50: number; p95: number };
  /** last frame of the part/fragment sent → downloadable */
  afterLast: { p50: number; p95: number; max: number };
  /** part/fragment durations in frames, median */
  framesPerUnit: number;
}

/** What hls.js in Chromium measured for one server. */
interface BrowserStats {
  samples: number;
  /** publisher → screen, ms */
  g2g: { p50: number; p95: number };
  /** hls.js's own `hls.latency` (distance to the live edge it computes), s */
  hlsLatency: number;
  /** now − hls.playingDate (EXT-X-PROGRAM-DATE-TIME of the playing position), ms; null without PDT */
  pdt: number | null;
  stalls: number;
  errors: string[];
}

/** One load step. */
interface LoadStep {
  clients: number;
  window: LoadWindow;
  seconds: number;
  cpuPercent: number;
  /** CPU of the load process (same machine): when it nears 100 %, part lags are the client's */
  clientCpuPercent: number;
  rssMb: number;
  rssStartMb: number;
  /** the server's event-loop delay over the window (prom-client's histogram, reset by each scrape), ms */
  loopDelay: { p99: number; max: number } | null;
  /** parts fetched by clients, and the share fetched within PART-HOLD-BACK of their last frame */
  partsFetched: number;
  inTime: number;
  lag: { p50: number; p95: number };
  probe: LatencyStats | null;
}

/** Everything a run measured. */
export interface HlsBenchResult {
  options: HlsBenchOptions;
  /** what streamgate ran from */
  code: string;
  partTargetS: number;
  partHoldBackS: number;
  idle: { streamgate: LatencyStats | null; nginx: LatencyStats | null };
  /** one entry per server and player page played */
  browser: { server: string; config: string; stats: BrowserStats | null; error?: string }[];
  load: LoadStep[];
  notes: string[];
}

// ---- servers ----

type Server = ServerProcess;

/**
 * Extracts the committed HEAD (src, bin, package.json, tsconfig.json) into a temporary directory and compiles it
 * there, node_modules symlinked. @returns the directory and the commit
 */
function buildHead(log: (l: string) => void): { root: string; commit: string } {
  const commit = execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const root = mkdtempSync(join(tmpdir(), 'sg-bench-hls-code-'));
  log(`building streamgate ${commit} (committed HEAD) in ${root}`);
  execFileSync('sh', ['-c', `git -C '${REPO_ROOT}' archive HEAD src bin package.json tsconfig.json | tar -x -C '${root}'`]);
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'));
  // type errors (other engineers' work in progress) do not stop tsc from emitting; a missing entry point does
  spawnSync(process.execPath, [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'ignore' });
  if (!existsSync(join(root, 'dist/src/cli.js'))) throw new Error(`the build of ${commit} produced no dist/src/cli.js`);
  return { root, commit };
}

async function startStreamgate(dir: string, codeRoot: string): Promise<Server & { rtmpPort: number; hlsPort: number; metricsPort: number }> {
  const rtmpPort = await freePort();
  const hlsPort = await freePort();
  const metricsPort = await freePort();
  const conf = join(dir, 'streamgate.yml');
  writeFileSync(
    conf,
    streamgateConfig({
      rtmp: `{ port: ${rtmpPort}, host: 127.0.0.1 }`,
      hls: `{ port: ${hlsPort}, host: 127.0.0.1 }`,
      // for its event-loop delay figures (prom-client's default process metrics)
      metrics: `{ port: ${metricsPort}, host: 127.0.0.1 }`,
    }),
  );
  const s = await launchProcess(process.execPath, [join(codeRoot, 'bin/streamgate.js'), '--config', conf], dir, [rtmpPort, hlsPort, metricsPort], { env: { ...process.env, STREAMGATE_LOG_LEVEL: 'warn' } });
  return { ...s, rtmpPort, hlsPort, metricsPort };
}

/** nginx-rtmp with HLS: 1 s fragments, served by nginx's own HTTP module. */
async function startNginx(dir: string): Promise<Server & { rtmpPort: number; httpPort: number }> {
  const rtmpPort = await freePort();
  const httpPort = await freePort();
  mkdirSync(join(dir, 'hls'), { recursive: true });
  // the worker runs as nobody: it must reach and write the fragment directory (mkdtemp makes 0700 directories)
  for (const d of [join(dir, '..'), dir]) chmodSync(d, 0o755);
  chmodSync(join(dir, 'hls'), 0o777);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    nginxRtmpConf(dir, rtmpPort, {
      workerConnections: 1024,
      application: `${APP} { live on; hls on; hls_path ${join(dir, 'hls')}; hls_fragment 1s; hls_playlist_length 6s; }`,
      tail: [
        'http {',
        '  access_log off;',
        `  client_body_temp_path ${join(dir, 'tmp')};`,
        `  proxy_temp_path ${join(dir, 'tmp')};`,
        `  fastcgi_temp_path ${join(dir, 'tmp')};`,
        `  uwsgi_temp_path ${join(dir, 'tmp')};`,
        `  scgi_temp_path ${join(dir, 'tmp')};`,
        '  server {',
        `    listen 127.0.0.1:${httpPort};`,
        '    location /hls/ {',
        '      types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }',
        `      alias ${join(dir, 'hls')}/;`,
        '      add_header Cache-Control no-cache;',
        "      add_header Access-Control-Allow-Origin '*';",
        '    }',
        '  }',
        '}',
      ],
    }),
  );
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const s = await launchNginx(dir, conf, [rtmpPort, httpPort]);
  return { ...s, rtmpPort, httpPort };
}

// ---- HTTP ----

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

function get(url: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
  });
}

// ---- probes ----

/**
 * Follows streamgate's parts one by one, always asking for the next part before it exists (the preload hint),
 * so each answer comes the moment that part is complete.
 */
class LlhlsProbe {
  readonly seen: Availability[] = [];
  partTargetS = 0;
  partHoldBackS = 0;
  errors = 0;
  private stopped = false;

  constructor(private readonly base: string) {}

  async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.follow();
      } catch {
        this.errors++;
        await sleep(500);
      }
    }
  }

  stop(): void {
    this.stopped = true;
  }

  private async follow(): Promise<void> {
    const multi = await get(`${this.base}/index.m3u8`);
    const mediaUri = /^stream\.m3u8\?\S+$/m.exec(multi.body.toString())?.[0];
    if (!mediaUri) throw new Error('no media playlist');
    const sid = /s=([\w-]+)/.exec(mediaUri)![1]!;
    const media = (await get(`${this.base}/${mediaUri}`)).body.toString();
    this.partTargetS = Number(/PART-TARGET=([\d.]+)/.exec(media)?.[1] ?? 0);
    this.partHoldBackS = Number(/PART-HOLD-BACK=([\d.]+)/.exec(media)?.[1] ?? 0);
    let next = Number(/PRELOAD-HINT:TYPE=PART,URI="part(\d+)\./.exec(media)?.[1]);
    if (!Number.isFinite(next)) throw new Error('no preload hint');
    while (!this.stopped) {
      const asked = wallMs();
      const r = await get(`${this.base}/part${next}.mp4?s=${sid}`);
      const atMs = wallMs();
      if (r.status !== 200) throw new Error(`part ${r.status}`);
      // an answer without waiting means we were late: its time is not when it became available
      if (atMs - asked > 5) this.seen.push({ id: next, atMs, stamps: findStamps(r.body) });
      next++;
    }
  }
}

/** Polls nginx-rtmp's playlist and records when each fragment is first listed. */
class NginxProbe {
  readonly seen: Availability[] = [];
  errors = 0;
  private stopped = false;
  private readonly known = new Set<string>();
  private first = true;

  constructor(private readonly base: string) {}

  async run(): Promise<void> {
    while (!this.stopped) {
      const t0 = Date.now();
      try {
        const r = await get(`${this.base}/${STREAM}.m3u8`);
        if (r.status === 200) {
          const atMs = wallMs();
          const uris = r.body.toString().split('\n').filter((l) => l !== '' && !l.startsWith('#'));
          for (const uri of uris) {
            if (this.known.has(uri)) continue;
            this.known.add(uri);
            if (this.first) continue; // listed before the probe looked: when is unknown
            const seg = await get(`${this.base}/${uri}`);
            const stamps = tsElementaryStreams(seg.body).flatMap((es) => findStamps(es));
            this.seen.push({ id: Number(/(\d+)\.ts$/.exec(uri)?.[1] ?? -1), atMs, stamps });
          }
          if (uris.length > 0) this.first = false;
        }
      } catch {
        this.errors++;
      }
      await sleep(Math.max(0, NGINX_POLL_MS - (Date.now() - t0)));
    }
  }

  stop(): void {
    this.stopped = true;
  }
}

function latencyStats(seen: readonly Availability[], fromMs: number, toMs: number): LatencyStats | null {
  const within = seen.filter((a) => a.atMs >= fromMs && a.atMs <= toMs && a.stamps.length > 0);
  if (within.length === 0) return null;
  const perFrame: number[] = [];
  const afterLast: number[] = [];
  for (const a of within) {
    for (const s of a.stamps) perFrame.push(a.atMs - s);
    afterLast.push(a.atMs - Math.max(...a.stamps));
  }
  return {
    units: within.length,
    frames: perFrame.length,
    perFrame: { p50: quantile(perFrame, 0.5), p95: quantile(perFrame, 0.95) },
    afterLast: { p50: quantile(afterLast, 0.5), p95: quantile(afterLast, 0.95), max: Math.max(...afterLast) },
    framesPerUnit: quantile(
      within.map((a) => a.stamps.length),
      0.5,
    ),
  };
}

// ---- browser ----

/**
 * Runs in every page before its scripts: wraps the `Hls` global when hls.min.js defines it, so that each player
 * the page creates (streamgate's own player page, or {@link PAGE}) reports the frame stamps hls.js parses, and
 * samples the latency of the frame on screen every 100 ms.
 */
const INSTRUMENT = `(() => {
  const marks = [];
  const bench = { samples: [], errors: [], stalls: 0, players: 0 };
  window.__bench = bench;
  let wrapped;
  Object.defineProperty(window, 'Hls', {
    configurable: true,
    get() { return wrapped; },
    set(Real) {
      wrapped = class extends Real {
        constructor(config) {
          super(config);
          bench.players++;
          this.on(Real.Events.FRAG_PARSING_USERDATA, (_e, data) => {
            for (const s of data.samples) if (s.uuid === '${STAMP_UUID_HLSJS}') marks.push([s.pts, Number(s.userData)]);
            marks.sort((a, b) => a[0] - b[0]);
            if (marks.length > 3000) marks.splice(0, marks.length - 3000);
          });
          this.on(Real.Events.ERROR, (_e, d) => bench.errors.push(d.type + ':' + d.details + (d.fatal ? ' (fatal)' : '')));
          window.__benchHls = this;
        }
      };
    },
  });
  document.addEventListener('waiting', () => bench.stalls++, true);
  setInterval(() => {
    const video = document.querySelector('video');
    const hls = window.__benchHls;
    if (!video || !hls || video.paused || video.readyState < 3) return;
    const t = video.currentTime;
    let m = null;
    for (let i = marks.length - 1; i >= 0; i--) if (marks[i][0] <= t + 1e-3) { m = marks[i]; break; }
    if (!m) return;
    const now = Date.now();
    bench.samples.push({ at: now, t, g2g: now - (m[1] + (t - m[0]) * 1000), latency: hls.latency, pdt: hls.playingDate ? now - hls.playingDate.getTime() : null });
  }, 100);
})();`;

/** A bare player: hls.js with its default config. */
const PAGE = (src: string): string => `<!doctype html><meta charset="utf-8"><video muted autoplay playsinline></video>
<script src="hls.min.js"></script>
<script>
  const video = document.querySelector('video');
  const hls = new Hls();
  hls.loadSource(${JSON.stringify(src)});
  hls.attachMedia(video);
  video.play().catch(() => {});
</script>`;

/**
 * Opens `url` in headless Chromium and samples the latency of what hls.js shows. A URL ending in
 * `/__bench__/player.html?src=…` is answered here with {@link PAGE} (hls.js defaults), any other is a real page.
 */
async function measureBrowser(url: string, log: (l: string) => void): Promise<BrowserStats> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    await page.addInitScript(INSTRUMENT);
    const hlsJs = readFileSync(join(REPO_ROOT, 'node_modules/hls.js/dist/hls.min.js'));
    await page.route('**/__bench__/**', (route) => {
      const u = new URL(route.request().url());
      if (u.pathname.endsWith('/hls.min.js')) return route.fulfill({ status: 200, contentType: 'application/javascript', body: hlsJs });
      return route.fulfill({ status: 200, contentType: 'text/html', body: PAGE(u.searchParams.get('src') ?? '') });
    });
    await page.goto(url);
    const src = url;
    type Sample = { at: number; t: number; g2g: number; latency: number | null; pdt: number | null };
    type Bench = { samples: Sample[]; errors: string[]; stalls: number };
    const read = (): Promise<Bench> => page.evaluate(() => (globalThis as unknown as { __bench: Bench }).__bench);
    const deadline = Date.now() + 20_000;
    while ((await read()).samples.length === 0) {
      if (Date.now() > deadline) throw new Error(`hls.js did not play ${src}: ${(await read()).errors.join('; ')}`);
      await sleep(250);
    }
    await sleep(BROWSER_WARMUP_MS);
    const from = Date.now();
    const stallsBefore = (await read()).stalls;
    await sleep(BROWSER_SAMPLE_MS);
    const b = await read();
    const samples = b.samples.filter((s) => s.at >= from);
    const g2g = samples.map((s) => s.g2g);
    const pdts = samples.map((s) => s.pdt).filter((x): x is number => x !== null);
    const out: BrowserStats = {
      samples: samples.length,
      g2g: { p50: quantile(g2g, 0.5), p95: quantile(g2g, 0.95) },
      hlsLatency: quantile(
        samples.map((s) => s.latency ?? NaN).filter((x) => Number.isFinite(x)),
        0.5,
      ),
      pdt: pdts.length > 0 ? quantile(pdts, 0.5) : null,
      stalls: b.stalls - stallsBefore,
      errors: [...new Set(b.errors)].slice(0, 5),
    };
    log(`  hls.js ${src}: publisher→screen p50 ${out.g2g.p50.toFixed(0)} ms, p95 ${out.g2g.p95.toFixed(0)} ms; hls.latency ${out.hlsLatency.toFixed(2)} s; stalls ${out.stalls}`);
    return out;
  } finally {
    await browser.close();
  }
}

// ---- load ----

class LoadProcess {
  private readonly child: ChildProcess;
  private readonly waiting: ((m: FromLoad) => void)[] = [];
  constructor() {
    this.child = fork(fileURLToPath(new URL('./hls-load.js', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: FromLoad) => this.waiting.shift()?.(m));
  }
  get pid(): number {
    return this.child.pid ?? -1;
  }
  request<T extends FromLoad['type']>(msg: ToLoad, expect: T): Promise<Extract<FromLoad, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load process: no ${expect}`)), 30_000);
      this.waiting.push((m) => {
        clearTimeout(timer);
        if (m.type === expect) resolve(m as Extract<FromLoad, { type: T }>);
        else reject(new Error(`load process: got ${m.type}, wanted ${expect}`));
      });
      this.child.send(msg);
    });
  }
  /** Sends a message that has no answer. */
  post(msg: ToLoad): void {
    this.child.send(msg);
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.send({ type: 'stop' } satisfies ToLoad);
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(t);
  }
}

/** Scrapes streamgate's metrics: event-loop delay p99 and max (seconds in the text) since the last scrape, in ms. */
async function loopDelay(metricsPort: number): Promise<{ p99: number; max: number } | null> {
  try {
    const text = (await get(`http://127.0.0.1:${metricsPort}/metrics`)).body.toString();
    const value = (name: string): number => Number(new RegExp(`^${name} ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN) * 1000;
    const out = { p99: value('nodejs_eventloop_lag_p99_seconds'), max: value('nodejs_eventloop_lag_max_seconds') };
    return Number.isFinite(out.p99) ? out : null;
  } catch {
    return null;
  }
}

async function loadStep(n: number, base: string, serverPid: number, metricsPort: number, probe: LlhlsProbe, opts: HlsBenchOptions, log: (l: string) => void): Promise<LoadStep> {
  const loads = Array.from({ length: Math.min(n, opts.loadProcesses) }, () => new LoadProcess());
  try {
    await Promise.all(loads.map((l, i) => l.request({ type: 'start', base, clients: Math.floor(n / loads.length) + (i < n % loads.length ? 1 : 0), rampMs: RAMP_MS }, 'started')));
    await sleep(RAMP_MS + SETTLE_MS);
    const pids = processTree(serverPid);
    const rssStart = rssBytes(pids);
    let rssMax = rssStart;
    const cpu0 = cpuSeconds(pids);
    const loadPids = loads.map((l) => l.pid);
    const clientCpu0 = cpuSeconds(loadPids);
    const t0 = wallMs();
    for (const l of loads) l.post({ type: 'mark' });
    await loopDelay(metricsPort); // resets the histogram: the next scrape covers the window
    const until = Date.now() + opts.seconds * 1000;
    while (Date.now() < until) {
      await sleep(500);
      rssMax = Math.max(rssMax, rssBytes(processTree(serverPid)));
    }
    const windows = (await Promise.all(loads.map((l) => l.request({ type: 'collect' }, 'window')))).map((m) => m.window);
    const window: LoadWindow = { clients: n, running: 0, playlistRequests: 0, partRequests: 0, errors: {}, restarts: 0, bytes: 0, parts: [] };
    for (const w of windows) {
      window.running += w.running;
      window.playlistRequests += w.playlistRequests;
      window.partRequests += w.partRequests;
      window.restarts += w.restarts;
      window.bytes += w.bytes;
      for (const [k, v] of Object.entries(w.errors)) window.errors[k] = (window.errors[k] ?? 0) + v;
      for (const x of w.parts) window.parts.push(x);
    }
    const t1 = wallMs();
    const cpu = cpuSeconds(processTree(serverPid)) - cpu0;
    const clientCpu = cpuSeconds(loadPids) - clientCpu0;
    const delay = await loopDelay(metricsPort);
    const seconds = (t1 - t0) / 1000;
    // a part is fetched in time when a player PART-HOLD-BACK behind the live edge has it before it must play it
    const lastStamp = new Map<number, number>();
    for (const a of probe.seen) if (a.stamps.length > 0) lastStamp.set(a.id, Math.max(...a.stamps));
    const lags: number[] = [];
    let unknown = 0;
    for (let i = 0; i < window.parts.length; i += 2) {
      const last = lastStamp.get(window.parts[i]!);
      if (last === undefined) unknown++;
      else lags.push(window.parts[i + 1]! - last);
    }
    const holdBackMs = probe.partHoldBackS * 1000;
    const inTime = lags.filter((l) => l <= holdBackMs).length / Math.max(1, lags.length + unknown);
    const step: LoadStep = {
      clients: n,
      window,
      seconds,
      cpuPercent: (cpu / seconds) * 100,
      clientCpuPercent: (clientCpu / seconds) * 100,
      rssMb: rssMax / 2 ** 20,
      rssStartMb: rssStart / 2 ** 20,
      loopDelay: delay,
      partsFetched: lags.length + unknown,
      inTime,
      lag: { p50: quantile(lags, 0.5), p95: quantile(lags, 0.95) },
      probe: latencyStats(probe.seen, t0, t1),
    };
    const errs = Object.entries(window.errors).map(([k, v]) => `${k}×${v}`).join(', ') || 'none';
    log(
      `  N=${n}: server CPU ${step.cpuPercent.toFixed(0)} % (clients ${step.clientCpuPercent.toFixed(0)} %), RSS ${step.rssMb.toFixed(0)} MB, event-loop delay p99 ${ms(delay?.p99 ?? NaN)} max ${ms(delay?.max ?? NaN)}; ${window.running}/${n} clients running; ` +
        `${(step.partsFetched / seconds).toFixed(0)} parts/s, ${(window.playlistRequests / seconds).toFixed(0)} playlists/s; ` +
        `in time ${(inTime * 100).toFixed(1)} %; lag p50 ${step.lag.p50.toFixed(0)} / p95 ${step.lag.p95.toFixed(0)} ms; errors ${errs}`,
    );
    return step;
  } finally {
    await Promise.all(loads.map((l) => l.stop()));
  }
}

/** Runs the benchmark (servers, publisher, probes, browser, load steps). */
export async function runHls(opts: HlsBenchOptions, log: (line: string) => void): Promise<HlsBenchResult> {
  const notes: string[] = [];
  const source = prepareHlsSource();
  const dir = mkdtempSync(join(tmpdir(), 'sg-bench-hls-'));
  const servers: Server[] = [];
  let publisher: StampingPublisher | undefined;
  const probes: { stop(): void }[] = [];
  const cleanup: string[] = [dir];
  try {
    mkdirSync(join(dir, 'streamgate'), { recursive: true });
    let codeRoot = REPO_ROOT;
    let code = `dist/ of the work tree at ${execFileSync('git', ['-C', REPO_ROOT, 'describe', '--always', '--dirty'], { encoding: 'utf8' }).trim()}`;
    if (opts.code === 'head') {
      const built = buildHead(log);
      codeRoot = built.root;
      cleanup.push(built.root);
      code = `commit ${built.commit} (a clean build of the committed tree)`;
    }
    const sg = await startStreamgate(join(dir, 'streamgate'), codeRoot);
    servers.push(sg);
    const targets = [{ label: 'streamgate', port: sg.rtmpPort, app: APP, stream: STREAM }];
    let ng: (Server & { rtmpPort: number; httpPort: number }) | undefined;
    if (opts.nginx) {
      if (existsSync(NGINX_BIN) && existsSync(NGINX_RTMP_MODULE)) {
        mkdirSync(join(dir, 'nginx'), { recursive: true });
        ng = await startNginx(join(dir, 'nginx'));
        servers.push(ng);
        targets.push({ label: 'nginx-rtmp', port: ng.rtmpPort, app: APP, stream: STREAM });
      } else {
        notes.push('nginx-rtmp not installed: no reference figures');
      }
    }
    log(`publishing ${source} to ${targets.map((t) => t.label).join(' and ')}`);
    publisher = await startStampingPublisher(source, targets);
    await sleep(1500);
    const sgBase = `http://127.0.0.1:${sg.hlsPort}/${APP}/${STREAM}`;
    const probe = new LlhlsProbe(sgBase);
    probes.push(probe);
    void probe.run();
    let nginxProbe: NginxProbe | undefined;
    if (ng) {
      nginxProbe = new NginxProbe(`http://127.0.0.1:${ng.httpPort}/hls`);
      probes.push(nginxProbe);
      void nginxProbe.run();
    }

    // latency with the probes (and the browser, when enabled) as the only clients
    const idleFrom = wallMs();
    const browser: HlsBenchResult['browser'] = [];
    if (opts.browser && existsSync(CHROMIUM)) {
      log('hls.js in headless Chromium');
      // streamgate's own player page, then hls.js with its defaults on streamgate and on nginx-rtmp
      const bare = (origin: string, src: string): string => `${origin}/__bench__/player.html?src=${encodeURIComponent(src)}`;
      const plays: [string, string, string][] = [
        ['streamgate', 'player page', `${sgBase}/`],
        ['streamgate', 'hls.js defaults', bare(`http://127.0.0.1:${sg.hlsPort}`, `${sgBase}/index.m3u8`)],
      ];
      if (ng) plays.push(['nginx-rtmp', 'hls.js defaults', bare(`http://127.0.0.1:${ng.httpPort}`, `http://127.0.0.1:${ng.httpPort}/hls/${STREAM}.m3u8`)]);
      for (const [server, config, url] of plays) {
        try {
          browser.push({ server, config, stats: await measureBrowser(url, log) });
        } catch (e) {
          browser.push({ server, config, stats: null, error: e instanceof Error ? e.message.split('\n')[0]! : String(e) });
        }
      }
    } else {
      if (opts.browser) notes.push(`${CHROMIUM} not installed: no hls.js figures`);
      await sleep(20_000);
    }
    const idleTo = wallMs();
    const idle = { streamgate: latencyStats(probe.seen, idleFrom, idleTo), nginx: nginxProbe ? latencyStats(nginxProbe.seen, idleFrom, idleTo) : null };
    const fmt = (s: LatencyStats | null): string =>
      s ? `frame→downloadable p50 ${s.perFrame.p50.toFixed(0)} / p95 ${s.perFrame.p95.toFixed(0)} ms; after last frame p50 ${s.afterLast.p50.toFixed(0)} / p95 ${s.afterLast.p95.toFixed(0)} ms (${s.units} units)` : 'no data';
    log(`  streamgate parts: ${fmt(idle.streamgate)}`);
    if (nginxProbe) log(`  nginx-rtmp fragments: ${fmt(idle.nginx)}${nginxProbe.errors ? ` (${nginxProbe.errors} probe errors)` : ''}`);
    for (const e of publisher.errors()) log(`  publisher: ${e}`);
    if (ng && !idle.nginx) log(`  nginx log: ${ng.logTail()}`);
    // the load steps measure streamgate only: stop nginx so it does not take CPU from it
    nginxProbe?.stop();
    if (ng) await ng.stop();

    const load: LoadStep[] = [];
    for (const n of opts.clients) {
      log(`load: ${n} LL-HLS clients (ramp ${RAMP_MS / 1000} s, window ${opts.seconds} s)`);
      load.push(await loadStep(n, sgBase, sg.pid, sg.metricsPort, probe, opts, log));
      await sleep(2000);
    }
    const errs = publisher.errors();
    if (errs.some((e) => e.startsWith('streamgate'))) notes.push(`publisher: ${errs.join('; ')}`);
    if (probe.errors > 0) notes.push(`the part probe restarted ${probe.errors} times`);
    if (nginxProbe && nginxProbe.errors > 0) notes.push(`${nginxProbe.errors} nginx playlist polls failed`);
    return { options: opts, code, partTargetS: probe.partTargetS, partHoldBackS: probe.partHoldBackS, idle, browser, load, notes };
  } finally {
    for (const p of probes) p.stop();
    publisher?.stop();
    agent.destroy();
    for (const s of servers) await s.stop();
    for (const d of cleanup) rmSync(d, { recursive: true, force: true });
  }
}

// ---- report ----

const ms = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(0)} ms` : '–');

/** The Markdown section body (without the heading). */
export function renderHls(r: HlsBenchResult): string {
  const o = r.options;
  const lines: string[] = [];
  lines.push(
    `Source: 640×360 30 fps H.264 (1 s GOP, no B-frames, 1 Mbit/s) + AAC, published in real time over RTMP by a Node publisher that stamps every video frame with its send time (SEI); streamgate with its default HLS settings (LL-HLS, 1 s segments, 200 ms parts: PART-TARGET ${r.partTargetS} s, PART-HOLD-BACK ${r.partHoldBackS} s). ${o.nginx ? 'nginx-rtmp gets the same frames at the same moment (`hls_fragment 1s`).' : ''}`,
    '',
    '**Latency** (only the probes and the browser as clients). "Downloadable" for streamgate is when a request for the preload-hinted part, made before the part exists, completes (the server holds it until the part is complete; a blocking playlist reload is answered in the same event-loop turn); for nginx-rtmp, the first time a fragment is listed in its playlist (polled every 25 ms). Times are publisher send → downloadable on one clock; on loopback, send ≈ arrival at the gateway.',
    '',
    '| server | unit | frames/unit | frame → downloadable p50 / p95 | last frame → downloadable p50 / p95 / max | units |',
    '|---|---|---:|---:|---:|---:|',
  );
  const row = (name: string, unit: string, s: LatencyStats | null): void => {
    if (!s) lines.push(`| ${name} | ${unit} | – | – | – | 0 |`);
    else lines.push(`| ${name} | ${unit} | ${s.framesPerUnit} | ${ms(s.perFrame.p50)} / ${ms(s.perFrame.p95)} | ${ms(s.afterLast.p50)} / ${ms(s.afterLast.p95)} / ${ms(s.afterLast.max)} | ${s.units} |`);
  };
  row('streamgate', 'LL-HLS part', r.idle.streamgate);
  if (o.nginx) row('nginx-rtmp', 'HLS fragment', r.idle.nginx);
  const sgOk = r.idle.streamgate && r.idle.streamgate.afterLast.p95 <= 250;
  lines.push('', `Target "part available ≤ 250 ms after its last frame": ${r.idle.streamgate ? `${sgOk ? 'met' : 'NOT met'} at p95 (${ms(r.idle.streamgate.afterLast.p95)})` : 'not measured'}.`);
  lines.push(
    '',
    `**hls.js ${hlsJsVersion()} in headless Chromium** (${BROWSER_SAMPLE_MS / 1000} s sampled every 100 ms after ${BROWSER_WARMUP_MS / 1000} s of play; "player page" is streamgate's own page at \`/<path>/\`, "hls.js defaults" a bare page with \`new Hls()\` (low-latency mode is on by default)): publisher → screen = now − send time of the frame at \`currentTime\` (stamps from hls.js's FRAG_PARSING_USERDATA); \`hls.latency\` is hls.js's own estimate (distance to the live edge it knows, without the server's part building); PDT = now − \`hls.playingDate\` (streamgate dates media by its arrival).`,
    '',
    '| server | player | publisher → screen p50 / p95 | hls.latency p50 | now − PDT p50 | stalls | hls.js errors |',
    '|---|---|---:|---:|---:|---:|---|',
  );
  for (const b of r.browser) {
    const st = b.stats;
    if (!st) lines.push(`| ${b.server} | ${b.config} | – | – | – | – | ${b.error ?? 'failed'} |`);
    else lines.push(`| ${b.server} | ${b.config} | ${ms(st.g2g.p50)} / ${ms(st.g2g.p95)} | ${Number.isFinite(st.hlsLatency) ? `${st.hlsLatency.toFixed(2)} s` : '–'} | ${st.pdt === null ? '–' : ms(st.pdt)} | ${st.stalls} | ${st.errors.join(', ') || 'none'} |`);
  }
  const page = r.browser.find((b) => b.server === 'streamgate' && b.stats);
  if (page?.stats) {
    lines.push('', `Target "hls.js latency ≤ 1.5 s" (streamgate's player page): ${page.stats.g2g.p95 <= 1500 ? 'met' : 'NOT met'} at p95 (publisher → screen p50 ${ms(page.stats.g2g.p50)}, p95 ${ms(page.stats.g2g.p95)}).`);
  }
  lines.push(
    '',
    `**Load** (streamgate only; nginx stopped): N LL-HLS clients in ${o.loadProcesses === 1 ? 'one separate Node process' : `${o.loadProcesses} separate Node processes`} (node:http keep-alive), each like hls.js: blocking reload for the next part with \`_HLS_msn\`/\`_HLS_part\`/\`_HLS_skip=YES\`, then every new part. Clients start over ${RAMP_MS / 1000} s, settle ${SETTLE_MS / 1000} s, then ${o.seconds} s are measured. "In time" = a client had the part within PART-HOLD-BACK (${r.partHoldBackS} s) of the part's last frame being sent, so a player at the hold-back distance never waits for it. CPU is % of one core (the machine has ${cpus().length}, shared with the load process and the publisher); RSS is the peak of the server process.`,
    '',
    '| clients | server CPU | load process CPU | server RSS (start → peak) | server event-loop delay p99 / max | running | parts/s | playlists/s | in time | part lag p50 / p95 | probe: last frame → part p50 / p95 | errors |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  );
  for (const s of r.load) {
    const errs = Object.entries(s.window.errors).map(([k, v]) => `${k} ×${v}`).join(', ') || 'none';
    lines.push(
      `| ${s.clients} | ${s.cpuPercent.toFixed(0)} % | ${s.clientCpuPercent.toFixed(0)} % | ${s.rssStartMb.toFixed(0)} → ${s.rssMb.toFixed(0)} MB | ${s.loopDelay ? `${ms(s.loopDelay.p99)} / ${ms(s.loopDelay.max)}` : '–'} | ${s.window.running} | ${(s.partsFetched / s.seconds).toFixed(0)} | ${(s.window.playlistRequests / s.seconds).toFixed(0)} | ${(s.inTime * 100).toFixed(1)} % | ${ms(s.lag.p50)} / ${ms(s.lag.p95)} | ${s.probe ? `${ms(s.probe.afterLast.p50)} / ${ms(s.probe.afterLast.p95)}` : '–'} | ${errs}${s.window.restarts ? `; ${s.window.restarts} restarts` : ''} |`,
    );
  }
  if (r.notes.length > 0) lines.push('', ...r.notes.map((n) => `- note: ${n}`));
  return lines.join('\n');
}

function hlsJsVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules/hls.js/package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

/** The run.ts entry (`npm run bench -- --only hls`): `--readers` are the client counts, `--seconds` the window. */
export const hlsBenchmark: Benchmark = {
  title: 'HLS / LL-HLS (issue 4)',
  async run(args: BenchArgs, log) {
    const opts: HlsBenchOptions = {
      clients: args.readers.filter((n) => n > 0),
      seconds: args.seconds,
      nginx: args.servers.includes('nginx'),
      browser: true,
      code: 'head',
      loadProcesses: 1,
    };
    return renderHls(await runHls(opts, log));
  },
};

// ---- standalone: node dist/bench/hls.js ----

const USAGE = `usage: node dist/bench/hls.js [options]   (wrap in: flock /tmp/streamgate-bench.lock …)

  --clients LIST   concurrent LL-HLS clients per load step (default 100,500,1000)
  --seconds S      measurement window per load step (default 20)
  --no-nginx       skip the nginx-rtmp reference
  --no-browser     skip hls.js in Chromium
  --load-processes K  spread the load clients over K processes (default 1)
  --worktree       run dist/ of the work tree instead of a clean build of the committed HEAD
  --no-write       print only, leave BENCHMARKS.md alone
  -h, --help       this text`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '100,500,1000' },
      seconds: { type: 'string', default: '20' },
      'no-nginx': { type: 'boolean', default: false },
      'no-browser': { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      worktree: { type: 'boolean', default: false },
      'load-processes': { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const clients = values.clients.split(',').map((x) => Number(x.trim()));
  const seconds = Number(values.seconds);
  // --clients 0: no load steps
  if (clients.some((n) => !Number.isInteger(n) || n < 0) || !(seconds > 0)) {
    console.error(USAGE);
    process.exit(2);
  }
  const began = new Date();
  const log = (l: string): void => console.log(l);
  log(`== HLS / LL-HLS (issue 4)`);
  const result = await runHls({ clients: clients.filter((n) => n > 0), seconds, nginx: !values['no-nginx'], browser: !values['no-browser'], code: values.worktree ? 'worktree' : 'head', loadProcesses: Math.max(1, Number(values['load-processes']) || 1) }, log);
  const took = Math.round((Date.now() - began.getTime()) / 1000);
  const argv = process.argv.slice(2).join(' ');
  const section = [
    `## ${hlsBenchmark.title}`,
    '',
    `- command: \`flock /tmp/streamgate-bench.lock node dist/bench/hls.js${argv ? ` ${argv}` : ''}\` after \`npx tsc -p .\` (took ${took} s)`,
    dateLine(began),
    machineLine('the machine is shared'),
    `- code: streamgate ${result.code}; Node ${process.version}; ${toolVersion(NGINX_BIN, ['-v'])} with libnginx-mod-rtmp; ${toolVersion(CHROMIUM, ['--version'])}`,
    '',
    renderHls(result),
  ].join('\n');
  publishSection('hls', section, !values['no-write']);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
