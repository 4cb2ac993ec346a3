import { watch, type FSWatcher } from 'node:fs';
import { resolvePathConf, listenerEnabled, loadConfigFile, formatConfigError, type Config, type PathConf } from './config.js';
import { authorizeAsync, type AuthRequest, type DigestCredentials } from './auth.js';
import { errorMessage } from './errors.js';
import { log } from './log.js';
import {
  DEFAULT_PATH_SETTINGS,
  PathRegistry,
  type PathPolicy,
  type PathSettings,
} from './media/bus/registry.js';
import { startRecorder } from './egress/record/recorder.js';
import { listenerStarters, type RunningListener } from './listeners.js';
import { sourceStarter } from './sources.js';
import { rtspSourceStarter } from './ingest/rtsp/client.js';
import { startRtmpSource } from './ingest/rtmp/client.js';

/** Options of runGateway. */
export interface GatewayOptions {
  config: Config;
  /** the file the config came from; SIGHUP and changes to it reload paths and auth */
  configPath?: string;
  /** install SIGTERM/SIGINT/SIGHUP handlers (default true; tests that embed the gateway pass false) */
  handleSignals?: boolean;
}

/** A running gateway, for tests and embedding. */
export interface Gateway {
  registry: PathRegistry;
  /** actual bound ports by listener name (useful with port 0 in tests) */
  ports: Record<string, number>;
  reload(config: Config): void;
  close(reason?: string): Promise<void>;
}

/** The config's log level, unless STREAMGATE_LOG_LEVEL overrides it (tests run silent). */
function applyLogLevel(config: Config): void {
  log.level = process.env.STREAMGATE_LOG_LEVEL ?? config.logLevel;
}

/** Maps a path's YAML settings to what the frame bus needs. */
export function pathSettings(conf: PathConf, config: Config): PathSettings {
  const s: PathSettings = {
    ...DEFAULT_PATH_SETTINGS,
    publisherGraceMs: Math.round(conf.publisherGrace * 1000),
    gopCache: conf.gopCache,
    maxReaders: conf.maxReaders,
    overridePublisher: conf.overridePublisher,
    sourceOnDemand: conf.sourceOnDemand,
    sourceOnDemandStartTimeoutMs: Math.round(conf.sourceOnDemandStartTimeout * 1000),
    sourceOnDemandCloseAfterMs: Math.round(conf.sourceOnDemandCloseAfter * 1000),
    readerLimits: { maxQueueBytes: config.readerQueueBytes, maxStallMs: Math.max(1000, config.writeTimeout * 1000) },
  };
  if (conf.source && conf.source !== 'publisher') s.source = conf.source;
  return s;
}

/** The registry's view of a config: which paths exist, their settings, who may publish/read. */
export function pathPolicy(config: Config): PathPolicy {
  return {
    resolve(path) {
      const r = resolvePathConf(config, path);
      return r ? pathSettings(r.conf, config) : null;
    },
    async authorize(req) {
      const r = resolvePathConf(config, req.path);
      if (!r) return; // resolve() already refused unknown paths
      const { digest, ...rest } = req;
      // the bus carries Digest credentials opaquely; the protocols that send them build auth.ts DigestCredentials
      const auth: AuthRequest = { ...rest, pathConf: r.conf };
      if (digest !== undefined) auth.digest = digest as DigestCredentials;
      await authorizeAsync(config, auth);
    },
  };
}

/**
 * Starts streamgate: the registry, then every enabled listener. Resolves once all listeners are bound.
 * Listeners that fail to bind are logged and make /health report 503; the others keep running.
 */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  let config = opts.config;
  applyLogLevel(config);
  const registry = new PathRegistry(pathPolicy(config));
  registry.setSourceStarter(
    sourceStarter({
      rtmp: startRtmpSource,
      rtsp: rtspSourceStarter({
        // read the live config: a reload may change a path's transport
        transportOf: (p) => resolvePathConf(config, p)?.conf.rtspTransport ?? 'automatic',
        readTimeoutMs: config.readTimeout * 1000,
      }),
    }),
  );
  // a live getter: a reload changes which paths record
  const recorder = startRecorder({ registry, config: () => config });
  const running: RunningListener[] = [];
  const ports: Record<string, number> = {};
  let failed = 0;
  const ctx = {
    registry,
    recorder,
    get config() {
      return config;
    },
    isHealthy: () => failed === 0,
  };

  for (const [name, start] of listenerStarters) {
    const conf = (config.listeners as unknown as Record<string, { enabled: boolean; port: number; host?: string }>)[name];
    if (!conf || !listenerEnabled(conf)) {
      log.info({ listener: name }, 'listener disabled');
      continue;
    }
    if (!start) {
      log.warn({ listener: name, port: conf.port }, 'listener not available yet in this version of streamgate');
      continue;
    }
    try {
      const l = await start(ctx);
      running.push(l);
      ports[name] = l.port;
      log.info({ listener: name, host: conf.host ?? '0.0.0.0', port: l.port }, 'listening');
    } catch (err) {
      failed++;
      log.error({ listener: name, port: conf.port, err: errorMessage(err) }, 'listener failed to start');
    }
  }
  registry.startStaticSources(Object.keys(config.paths ?? {}).filter((k) => !k.startsWith('~')));

  const gateway: Gateway = {
    registry,
    ports,
    reload(next) {
      config = next;
      applyLogLevel(config);
      registry.reload(pathPolicy(config));
      recorder.reload();
      registry.startStaticSources(Object.keys(config.paths ?? {}).filter((k) => !k.startsWith('~')));
      log.info('configuration reloaded');
    },
    async close(reason = 'server shutting down') {
      registry.closeAll(reason);
      await recorder.closeAll();
      await Promise.allSettled(running.map((l) => l.close()));
    },
  };
  return gateway;
}

/**
 * The process entry (used by the CLI): starts the gateway and handles signals.
 * SIGTERM/SIGINT close every session cleanly and exit 0; SIGHUP or a change of the config file reloads it.
 */
export async function runGateway(opts: GatewayOptions): Promise<void> {
  const gateway = await startGateway(opts);
  log.info({ config: opts.configPath ?? '(embedded defaults)' }, 'streamgate started');
  if (opts.handleSignals === false) return;

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(0), 5000);
    force.unref();
    watcher?.close();
    void gateway.close('server shutting down').finally(() => {
      log.flush?.();
      process.exit(0);
    });
  };
  // Last resort: every protocol closes the session whose input hit a bug, but an exception that still escapes
  // (a socket callback we did not wrap) must not take every other stream down with it.
  process.on('uncaughtException', (err) => {
    log.error({ err: err.message, stack: err.stack }, 'uncaught exception (a bug): the gateway keeps running');
  });
  process.on('unhandledRejection', (reason) => {
    log.error({ err: errorMessage(reason) }, 'unhandled promise rejection (a bug): the gateway keeps running');
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  const reload = (why: string) => {
    if (!opts.configPath) {
      log.info({ why }, 'no config file to reload');
      return;
    }
    try {
      gateway.reload(loadConfigFile(opts.configPath));
    } catch (err) {
      log.error({ why, err: formatConfigError(err) }, 'config reload refused: keeping the running configuration');
    }
  };
  process.on('SIGHUP', () => reload('SIGHUP'));

  let watcher: FSWatcher | undefined;
  if (opts.configPath) {
    let debounce: NodeJS.Timeout | undefined;
    try {
      watcher = watch(opts.configPath, () => {
        clearTimeout(debounce);
        debounce = setTimeout(() => reload('config file changed'), 200);
      });
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'cannot watch the config file; use SIGHUP to reload');
    }
  }
}
