import type { Config } from './config.js';
import type { PathRegistry } from './media/bus/registry.js';
import { startRtmpServer } from './ingest/rtmp/server.js';
import { RtmpPlaySink } from './egress/rtmp/from-bus.js';
import { startApiServer } from './api.js';
import { startMetricsServer } from './metrics.js';

/** What every listener starter gets: the shared registry and the live config. */
export interface ListenerContext {
  registry: PathRegistry;
  readonly config: Config;
  isHealthy(): boolean;
}

/** A bound listener. */
export interface RunningListener {
  port: number;
  close(): Promise<void>;
}

export type ListenerStarter = (ctx: ListenerContext) => Promise<RunningListener>;

/**
 * Every listener of INTERFACE.md, in start order. `null` marks a listener this version does not have yet: the
 * config accepts its keys and the gateway logs that it is not available.
 */
export const listenerStarters: [string, ListenerStarter | null][] = [
  [
    'rtmp',
    async ({ registry, config }) =>
      startRtmpServer({
        port: config.listeners.rtmp.port,
        ...(config.listeners.rtmp.host ? { host: config.listeners.rtmp.host } : {}),
        paths: registry,
        createPlaySink: (player) => new RtmpPlaySink(player),
        readTimeoutMs: config.readTimeout * 1000,
      }),
  ],
  ['rtsp', null],
  ['hls', null],
  ['webrtc', null],
  ['sip', null],
  [
    'api',
    async ({ registry, config, isHealthy }) =>
      startApiServer({
        port: config.listeners.api.port,
        ...(config.listeners.api.host ? { host: config.listeners.api.host } : {}),
        registry,
        isHealthy,
      }),
  ],
  [
    'metrics',
    async ({ registry, config }) =>
      startMetricsServer({
        port: config.listeners.metrics.port,
        ...(config.listeners.metrics.host ? { host: config.listeners.metrics.host } : {}),
        registry,
      }),
  ],
];
