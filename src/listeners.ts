import type { Config } from './config.js';
import type { PathRegistry } from './media/bus/registry.js';
import type { Recorder } from './egress/record/recorder.js';
import { startRtmpServer } from './ingest/rtmp/server.js';
import { RtmpPlaySink } from './egress/rtmp/from-bus.js';
import { startApiServer } from './api.js';
import { startHlsServer } from './egress/hls/server.js';
import { startWebrtcServer } from './signaling/whip-whep.js';
import { startRtspServer } from './ingest/rtsp/server.js';
import { rtspEgress } from './egress/rtsp/from-bus.js';
import { basicChallenge, digestChallenge, digestUsable } from './auth.js';
import { resolvePathConf } from './config.js';
import { startMetricsServer } from './metrics.js';
import { sipExtensions, startSipServer } from './signaling/sip/server.js';

/** What every listener starter gets: the shared registry and the live config. */
export interface ListenerContext {
  registry: PathRegistry;
  /** recordings for the API (catalog and playback) */
  recorder: Recorder;
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
  [
    'rtsp',
    async (ctx) => {
      const l = ctx.config.listeners.rtsp;
      return startRtspServer({
        port: l.port,
        ...(l.host ? { host: l.host } : {}),
        rtpPort: l.rtpPort,
        rtcpPort: l.rtcpPort,
        paths: ctx.registry,
        egress: rtspEgress,
        readTimeoutMs: ctx.config.readTimeout * 1000,
        // Digest only where the credentials can be checked with it (plain passwords), Basic always
        challenges: (action, path, nowMs) =>
          digestUsable(ctx.config, action, resolvePathConf(ctx.config, path)?.conf ?? null)
            ? [digestChallenge({ nowMs, qop: false }), basicChallenge()]
            : [basicChallenge()],
      });
    },
  ],
  [
    'hls',
    async (ctx) => {
      const { registry } = ctx;
      const hls = ctx.config.listeners.hls;
      // read the live config: a reload may change which paths are always remuxed
      const alwaysRemux = (p: string) => resolvePathConf(ctx.config, p)?.conf.hls.alwaysRemux ?? false;
      const server = await startHlsServer({
        port: hls.port,
        ...(hls.host ? { host: hls.host } : {}),
        paths: registry,
        variant: hls.variant,
        segmentMinDurationMs: hls.segmentDuration * 1000,
        partDurationMs: hls.partDuration * 1000,
        segmentCount: hls.segmentCount,
        muxerCloseAfterMs: hls.muxerCloseAfter * 1000,
        alwaysRemux,
      });
      const onPublish = (p: string) => {
        if (alwaysRemux(p)) void server.ensureMuxer(p).catch(() => undefined);
      };
      registry.publishListeners.add(onPublish);
      return {
        port: server.port,
        close: async () => {
          registry.publishListeners.delete(onPublish);
          await server.close();
        },
      };
    },
  ],
  [
    'webrtc',
    async ({ registry, config }) => {
      const w = config.listeners.webrtc;
      return startWebrtcServer({
        port: w.port,
        host: w.host,
        icePort: w.icePort,
        iceServers: w.iceServers,
        additionalHosts: w.additionalHosts,
        turnSecret: w.turnSecret,
        registry,
      });
    },
  ],
  [
    'sip',
    async (ctx) => {
      const l = ctx.config.listeners.sip;
      return startSipServer({
        port: l.port,
        ...(l.host ? { host: l.host } : {}),
        registry: ctx.registry,
        extensions: () => sipExtensions(ctx.config),
        // SIP authenticates with Digest only (RFC 3261 §22.1 forbids Basic): null → 403 for hashed passwords
        challenge: (path, nowMs, stale) =>
          digestUsable(ctx.config, 'read', resolvePathConf(ctx.config, path)?.conf ?? null) ? digestChallenge({ nowMs, stale }) : null,
      });
    },
  ],
  [
    'api',
    async ({ registry, config, isHealthy, recorder }) =>
      startApiServer({
        port: config.listeners.api.port,
        ...(config.listeners.api.host ? { host: config.listeners.api.host } : {}),
        registry,
        isHealthy,
        recordings: () => recorder.catalog(),
        playback: recorder.playback,
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
