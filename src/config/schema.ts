/** The zod schema of the config file (phase 1: shapes, types, ranges, unknown keys) and its value parsers. */
import { z } from 'zod';
import type { Config, PathConf } from './types.js';
import { describeValue } from './messages.js';

/** Default size bound of a reader's queue: about 10 s of 3 Mbit/s video. */
const DEFAULT_READER_QUEUE_BYTES = 4 * 1024 * 1024;

const DURATION_PART = /(\d+(?:\.\d+)?)(ms|h|m|s)/y;

/** Parses `"10s"`, `"500ms"`, `"1m30s"`, `"1.5h"` to seconds; `null` when malformed. */
export function parseDuration(text: string): number | null {
  const s = text.trim();
  if (s === '') return null;
  let total = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < s.length) {
    const m = DURATION_PART.exec(s);
    if (m === null) return null;
    const n = Number(m[1]);
    const unit = m[2];
    total += unit === 'ms' ? n / 1000 : unit === 'm' ? n * 60 : unit === 'h' ? n * 3600 : n;
  }
  return total;
}

/** Accepts yes/no as booleans: mediamtx.yml (YAML 1.1) writes them that way, YAML 1.2 reads them as strings. */
const bool = z.preprocess(
  (v) => (v === 'yes' ? true : v === 'no' ? false : v),
  z.boolean({ error: 'expected true or false' }),
);

/** A duration in seconds: number, or string like "10s" / "500ms" / "1m30s". */
function duration(opts: { min?: number; positive?: boolean } = {}) {
  return z.unknown().transform((v, ctx): number => {
    const secs = typeof v === 'number' ? v : typeof v === 'string' ? parseDuration(v) : null;
    if (secs === null || !Number.isFinite(secs)) {
      ctx.addIssue({ code: 'custom', message: 'expected a duration: seconds, or a string like "10s", "500ms", "1m30s"' });
      return z.NEVER;
    }
    if (secs < 0 || (opts.positive === true && secs === 0)) {
      ctx.addIssue({ code: 'custom', message: `expected a duration ${opts.positive === true ? '> 0' : '>= 0'}` });
      return z.NEVER;
    }
    return secs;
  });
}

function intIn(min: number, max: number) {
  return z
    .number({ error: (iss) => `expected an integer, got ${describeValue(iss.input)}` })
    .int({ error: 'expected an integer' })
    .min(min, { error: `must be between ${min} and ${max}` })
    .max(max, { error: `must be between ${min} and ${max}` });
}

const port = (def: number) => intIn(0, 65535).default(def);
const str = z.string({ error: (iss) => `expected a string, got ${describeValue(iss.input)}` });

/** A strict object where YAML `key:` with nothing after it (null) or a missing key means "all defaults". */
function section<T extends z.core.$ZodLooseShape>(shape: T) {
  return z.preprocess((v) => (v === null || v === undefined ? {} : v), z.strictObject(shape, { error: objectError }));
}

function objectError(iss: { code: string; input?: unknown }): string | undefined {
  return iss.code === 'invalid_type' ? `expected a mapping, got ${describeValue(iss.input)}` : undefined;
}

function list<T extends z.core.SomeType>(item: T) {
  return z.array(item, { error: (iss) => `expected a list, got ${describeValue(iss.input)}` });
}

function listenerShape(defPort: number) {
  return { enabled: bool.default(true), port: port(defPort), host: str.optional() };
}

const SOURCE_PROTOCOLS = new Set(['rtsp:', 'rtsps:', 'rtmp:']);

const sourceSchema = str.refine(
  (s) => {
    if (s === 'publisher') return true;
    try {
      const u = new URL(s);
      return SOURCE_PROTOCOLS.has(u.protocol) && u.hostname !== '';
    } catch {
      return false;
    }
  },
  { error: "expected 'publisher' or an rtsp://, rtsps:// or rtmp:// URL with a host" },
);

const iceServerSchema = section({
  urls: z.preprocess((v) => (typeof v === 'string' ? [v] : v), list(str).min(1, { error: 'needs at least one URL' })),
  username: str.optional(),
  credential: str.optional(),
});

/** One `paths` entry: every key optional, defaults filled in (`hls.alwaysRemux` stays unset). */
export const pathSchema = section({
  source: sourceSchema.default('publisher'),
  sourceOnDemand: bool.default(false),
  sourceOnDemandStartTimeout: duration({ positive: true }).default(10),
  sourceOnDemandCloseAfter: duration().default(10),
  rtspTransport: z.enum(['automatic', 'udp', 'tcp']).default('automatic'),
  record: bool.default(false),
  recordPath: str.min(1).default('recordings'),
  recordSegmentDuration: duration({ positive: true }).default(3600),
  publishUser: str.optional(),
  publishPass: str.optional(),
  readUser: str.optional(),
  readPass: str.optional(),
  // refused by default (nginx-rtmp behaviour; registry.ts DEFAULT_PATH_SETTINGS agrees)
  overridePublisher: bool.default(false),
  publisherGrace: duration().default(10),
  gopCache: bool.default(true),
  maxReaders: intIn(0, 1_000_000).default(0),
  sip: section({
    extension: z
      .preprocess((v) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? String(v) : v), str)
      .refine((s) => /^[0-9]{1,32}$/.test(s), { error: 'expected digits only (1 to 32)' })
      .optional(),
  }),
  hls: section({ alwaysRemux: bool.optional() }),
});

const permissionSchema = section({
  action: z.enum(['publish', 'read', 'playback', 'api', 'metrics']),
  path: str.optional(),
});

const userSchema = section({
  user: str.min(1, { error: 'must not be empty' }),
  pass: str.optional(),
  ips: list(str).optional(),
  permissions: list(permissionSchema),
});

const authSchema = section({
  users: list(userSchema).default([]),
  http: section({
    url: str.refine(
      (s) => {
        try {
          const u = new URL(s);
          return u.protocol === 'http:' || u.protocol === 'https:';
        } catch {
          return false;
        }
      },
      { error: 'expected an http:// or https:// URL' },
    ),
    timeout: duration({ positive: true }).default(5),
  }).optional(),
});

/** The whole file (phase 1: shapes, types, ranges, unknown keys). */
export const configSchema = section({
  logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  readTimeout: duration({ positive: true }).default(10),
  writeTimeout: duration({ positive: true }).default(10),
  readerQueueBytes: intIn(64 * 1024, 1024 * 1024 * 1024).default(DEFAULT_READER_QUEUE_BYTES),
  // 2 s: a reader that far behind live is better served by skipping to the next keyframe
  readerQueueMs: z
    .unknown()
    .transform((v, ctx): number => {
      if (typeof v === 'number' && Number.isFinite(v) && v > 0) return v;
      const secs = typeof v === 'string' ? parseDuration(v) : null;
      if (secs !== null && secs > 0) return secs * 1000;
      ctx.addIssue({ code: 'custom', message: 'expected milliseconds > 0, or a duration string like "2s"' });
      return z.NEVER;
    })
    .default(2000),
  listeners: section({
    rtmp: section(listenerShape(1935)),
    rtsp: section({ ...listenerShape(8554), rtpPort: port(8000), rtcpPort: port(8001) }),
    hls: section({
      ...listenerShape(8888),
      variant: z.enum(['lowLatency', 'fmp4', 'mpegts']).default('lowLatency'),
      segmentDuration: duration({ positive: true }).default(1),
      partDuration: duration({ positive: true }).default(0.2),
      // gohlslib: "Their number doesn't influence latency. It defaults to 7."
      segmentCount: intIn(3, 1000).default(7),
      muxerCloseAfter: duration().default(60),
      alwaysRemux: bool.default(false),
    }),
    webrtc: section({
      ...listenerShape(8889),
      icePort: port(8189),
      iceServers: list(iceServerSchema).default([]),
      additionalHosts: list(str).default([]),
      turnSecret: str.optional(),
    }),
    sip: section(listenerShape(5060)),
    api: section(listenerShape(9997)),
    metrics: section(listenerShape(9998)),
  }),
  // `paths:` with nothing under it is an empty mapping (no path allowed), not "no paths key"
  paths: z
    .preprocess(
      (v) => (v === null ? {} : v),
      z.record(z.string(), pathSchema, { error: (iss) => `expected a mapping, got ${describeValue(iss.input)}` }),
    )
    .optional(),
  auth: authSchema.optional(),
});

/** Compile-time proof that the schema produces exactly what `Config` promises. */
export type SchemaOut = z.output<typeof configSchema>;
const schemaMatchesConfig: (c: SchemaOut) => Omit<Config, 'paths'> & { paths?: Record<string, RawPathConf> } = (c) =>
  c;
void schemaMatchesConfig;
/** A path entry before `hls.alwaysRemux` inherits the listener's value. */
type RawPathConf = Omit<PathConf, 'hls'> & { hls: { alwaysRemux?: boolean | undefined } };
