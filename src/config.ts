/**
 * YAML configuration → typed, validated `Config` (after mediamtx `internal/conf`).
 *
 * Two phases: zod checks shapes, types, ranges and unknown keys; then `semanticIssues()` checks what spans keys
 * (path names, regexes, port clashes, credential pairs). Every issue names its key path (`listeners.rtmp.port`) and
 * the `line:column` of the YAML node it came from, so a user can jump straight to it.
 *
 * Durations in the typed `Config` are seconds (fractions allowed) unless the key name says otherwise
 * (`readerQueueMs`). In YAML a duration is a number of seconds or a string like `"10s"`, `"500ms"`, `"1m30s"`.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { ConfigError, errorMessage } from './errors.js';

// ---------------------------------------------------------------------------------------------------------------
// Types

/** Log verbosity. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** One listening socket. `port: 0` or `enabled: false` disables it. */
export interface ListenerConf {
  enabled: boolean;
  /** 1..65535; 0 disables the listener */
  port: number;
  /** bind address; absent = all interfaces */
  host?: string;
}

/** RTSP listener: TCP `port`, plus the UDP pair for RTP/RTCP (RTP even, RTCP = RTP + 1, RFC 3550 §11). */
export interface RtspListenerConf extends ListenerConf {
  rtpPort: number;
  rtcpPort: number;
}

/** HLS flavour: LL-HLS (fMP4 parts), plain fMP4 segments, or MPEG-TS segments. */
export type HlsVariant = 'lowLatency' | 'fmp4' | 'mpegts';

/** HLS / LL-HLS listener and muxer settings. */
export interface HlsListenerConf extends ListenerConf {
  variant: HlsVariant;
  /** target segment length, seconds (segments are cut at the first keyframe after it) */
  segmentDuration: number;
  /** LL-HLS part length, seconds */
  partDuration: number;
  /** segments kept in the playlist */
  segmentCount: number;
  /** seconds a muxer lives without readers before it is closed */
  muxerCloseAfter: number;
  /** run the HLS muxer even when no one reads */
  alwaysRemux: boolean;
}

/** An ICE server offered to WebRTC clients. `urls` is always an array here. */
export interface IceServerConf {
  urls: string[];
  username?: string;
  credential?: string;
}

/** WebRTC listener (WHIP/WHEP/WebSocket HTTP on `port`, ICE on UDP+TCP `icePort`). */
export interface WebrtcListenerConf extends ListenerConf {
  icePort: number;
  iceServers: IceServerConf[];
  /** extra host addresses/names announced as ICE candidates (e.g. a public IP behind NAT) */
  additionalHosts: string[];
  /** shared secret for time-limited TURN credentials (coturn `use-auth-secret`) */
  turnSecret?: string;
}

/** Every listener. */
export interface ListenersConf {
  rtmp: ListenerConf;
  rtsp: RtspListenerConf;
  hls: HlsListenerConf;
  webrtc: WebrtcListenerConf;
  sip: ListenerConf;
  api: ListenerConf;
  metrics: ListenerConf;
}

/** How the RTSP client pulls a source. */
export type RtspTransport = 'automatic' | 'udp' | 'tcp';

/** Settings of one path (or of every path a `~regex` entry matches), defaults filled in. */
export interface PathConf {
  /** `'publisher'` (wait for a client to publish) or an `rtsp://`, `rtsps://`, `rtmp://` URL to pull */
  source: string;
  /** pull the source only while someone reads */
  sourceOnDemand: boolean;
  /** seconds to wait for an on-demand source to become ready */
  sourceOnDemandStartTimeout: number;
  /** seconds an on-demand source stays up after the last reader left */
  sourceOnDemandCloseAfter: number;
  rtspTransport: RtspTransport;
  /** write the stream to disk */
  record: boolean;
  /** directory recordings of this path go under */
  recordPath: string;
  /** seconds of media per recording file; a new file starts at the next keyframe after it (MediaMTX's key) */
  recordSegmentDuration: number;
  publishUser?: string;
  /** plain, or `sha256:<hex>` / `sha256:<base64>` */
  publishPass?: string;
  readUser?: string;
  /** plain, or `sha256:<hex>` / `sha256:<base64>` */
  readPass?: string;
  /** a second publisher takes the path over instead of being refused */
  overridePublisher: boolean;
  /** seconds readers stay attached after the publisher dropped, waiting for it to come back */
  publisherGrace: number;
  /** keep the last GOP so new readers start at a keyframe at once */
  gopCache: boolean;
  /** 0 = unlimited */
  maxReaders: number;
  sip: { extension?: string };
  /** `alwaysRemux` inherits `listeners.hls.alwaysRemux` when not set on the path */
  hls: { alwaysRemux: boolean };
}

/** What a user may be allowed to do. */
export type AuthAction = 'publish' | 'read' | 'playback' | 'api' | 'metrics';

/** One grant: an action, on every path or on one (`name` or `~regex`). */
export interface AuthPermission {
  action: AuthAction;
  path?: string;
}

/** One user of `auth.users`. `user: any` matches everyone without credentials. */
export interface AuthUser {
  user: string;
  /** plain, or `sha256:<hex>` / `sha256:<base64>`; absent only for `any` */
  pass?: string;
  /** allowed client addresses: IPs or CIDR ranges; absent = any address */
  ips?: string[];
  permissions: AuthPermission[];
}

/** `auth`: internal users and/or an external HTTP service. */
export interface AuthConf {
  users: AuthUser[];
  http?: {
    url: string;
    /** seconds to wait for the service; no answer = refused */
    timeout: number;
  };
}

/** The whole validated configuration. */
export interface Config {
  logLevel: LogLevel;
  /** seconds a peer may stay silent before its session is closed */
  readTimeout: number;
  /** seconds a write to a peer may stay blocked before its session is closed */
  writeTimeout: number;
  /** bytes queued per reader before it starts dropping frames up to the next keyframe */
  readerQueueBytes: number;
  /** milliseconds of media queued per reader before it starts dropping */
  readerQueueMs: number;
  listeners: ListenersConf;
  /** absent: every path is allowed with default settings */
  paths?: Record<string, PathConf>;
  /** absent: no authentication */
  auth?: AuthConf;
}

/** One problem found in a config file; `line`/`col` are 1-based. */
export interface ConfigIssue {
  key: string;
  line?: number;
  col?: number;
  message: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Schema

/** One path name segment: RFC 3986 unreserved characters. */
const PATH_SEGMENT = /^[A-Za-z0-9._~-]+$/;
/** Longest path name accepted (mediamtx has none; 1 KiB keeps URLs, file names and log lines sane). */
export const MAX_PATH_NAME_LENGTH = 1024;
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

const pathSchema = section({
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

const configSchema = section({
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
type SchemaOut = z.output<typeof configSchema>;
const schemaMatchesConfig: (c: SchemaOut) => Omit<Config, 'paths'> & { paths?: Record<string, RawPathConf> } = (c) =>
  c;
void schemaMatchesConfig;
/** A path entry before `hls.alwaysRemux` inherits the listener's value. */
type RawPathConf = Omit<PathConf, 'hls'> & { hls: { alwaysRemux?: boolean | undefined } };

// ---------------------------------------------------------------------------------------------------------------
// Path names

/** True if `name` is a valid concrete path name: segments of `[A-Za-z0-9._~-]` joined by `/` (no `.`/`..`). */
export function isValidPathName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_PATH_NAME_LENGTH) return false;
  for (const seg of name.split('/')) {
    if (!PATH_SEGMENT.test(seg) || seg === '.' || seg === '..') return false;
  }
  return true;
}

const regexCache = new Map<string, RegExp>();

/** Compiles the regex of a `~regex` key (without the `~`), cached. Throws SyntaxError when invalid. */
export function pathRegex(key: string): RegExp {
  let re = regexCache.get(key);
  if (re === undefined) {
    re = new RegExp(key.slice(1));
    regexCache.set(key, re);
  }
  return re;
}

/** True if a path pattern (`name` or `~regex`, as in `paths` keys and auth permissions) matches `name`. */
export function pathPatternMatches(pattern: string, name: string): boolean {
  return pattern.startsWith('~') ? pathRegex(pattern).test(name) : pattern === name;
}

/** Why a `paths` key or permission path is invalid, or null. */
function pathKeyProblem(key: string): string | null {
  if (key.startsWith('~')) {
    if (key.length === 1) return 'empty regular expression';
    try {
      pathRegex(key);
      return null;
    } catch (err) {
      return `invalid regular expression: ${errorMessage(err).replace(/^Invalid regular expression: /, '')}`;
    }
  }
  if (key === '__proto__') return 'reserved name';
  if (!isValidPathName(key)) {
    return 'invalid path name: use segments of A-Z a-z 0-9 . _ ~ - joined by /, or ~regex';
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------------
// Cross-key checks (phase 2)

interface RawIssue {
  path: (string | number)[];
  message: string;
  /** point at the key itself, not at its value */
  atKey?: boolean;
}

/** Path names are checked on the raw keys (zod's record would turn `__proto__` into a prototype change). */
function pathKeyIssues(raw: unknown): RawIssue[] {
  const out: RawIssue[] = [];
  const rawPaths = isRecord(raw) && isRecord(raw['paths']) ? Object.keys(raw['paths']) : [];
  for (const key of rawPaths) {
    const problem = pathKeyProblem(key);
    if (problem !== null) out.push({ path: ['paths', key], message: problem, atKey: true });
  }
  return out;
}

/** Checks that need the whole, well-typed config. */
function semanticIssues(c: SchemaOut): RawIssue[] {
  const out: RawIssue[] = [];
  const l = c.listeners;
  const extensions = new Map<string, string>();
  for (const [key, p] of Object.entries(c.paths ?? {})) {
    if (key.startsWith('~') && p.source !== 'publisher') {
      out.push({ path: ['paths', key, 'source'], message: 'a ~regex path cannot pull a source; name the path exactly' });
    }
    if (p.sourceOnDemand && p.source === 'publisher') {
      out.push({ path: ['paths', key, 'sourceOnDemand'], message: "needs a source URL (source is 'publisher')" });
    }
    for (const [u, pw] of [
      ['publishUser', 'publishPass'],
      ['readUser', 'readPass'],
    ] as const) {
      if ((p[u] === undefined) !== (p[pw] === undefined)) {
        const missing = p[u] === undefined ? u : pw;
        out.push({ path: ['paths', key, p[u] === undefined ? pw : u], message: `needs ${missing} too` });
      }
    }
    const ext = p.sip.extension;
    if (ext !== undefined) {
      const other = extensions.get(ext);
      if (other !== undefined) {
        out.push({ path: ['paths', key, 'sip', 'extension'], message: `extension ${ext} is already used by ${other}` });
      } else extensions.set(ext, key);
    }
  }

  const rtsp = l.rtsp;
  if (rtsp.rtpPort !== 0 && rtsp.rtpPort % 2 !== 0) {
    out.push({ path: ['listeners', 'rtsp', 'rtpPort'], message: 'must be even (RFC 3550 §11)' });
  }
  if (rtsp.rtpPort !== 0 && rtsp.rtcpPort !== rtsp.rtpPort + 1) {
    out.push({ path: ['listeners', 'rtsp', 'rtcpPort'], message: `must be rtpPort + 1 (${rtsp.rtpPort + 1})` });
  }
  if (l.hls.partDuration > l.hls.segmentDuration) {
    out.push({ path: ['listeners', 'hls', 'partDuration'], message: 'must not exceed segmentDuration' });
  }
  out.push(...portClashes(c));

  c.auth?.users.forEach((u, i) => {
    if (u.user === 'any' && u.pass !== undefined) {
      out.push({ path: ['auth', 'users', i, 'pass'], message: "user 'any' means no credentials; remove pass" });
    }
    if (u.user !== 'any' && u.pass === undefined) {
      out.push({ path: ['auth', 'users', i], message: "needs pass (or use user 'any')" });
    }
    u.ips?.forEach((ip, j) => {
      if (!isIpOrCidr(ip)) out.push({ path: ['auth', 'users', i, 'ips', j], message: 'expected an IP address or CIDR range' });
    });
    u.permissions.forEach((perm, j) => {
      if (perm.path === undefined) return;
      const problem = pathKeyProblem(perm.path);
      if (problem !== null) out.push({ path: ['auth', 'users', i, 'permissions', j, 'path'], message: problem });
    });
  });
  return out;
}

/** Two enabled listeners on the same port and protocol cannot both bind. */
function portClashes(c: SchemaOut): RawIssue[] {
  const l = c.listeners;
  const on = (x: { enabled: boolean; port: number }) => x.enabled && x.port !== 0;
  type Use = { path: (string | number)[]; port: number; host: string };
  const tcp: Use[] = [];
  const udp: Use[] = [];
  for (const name of ['rtmp', 'rtsp', 'hls', 'webrtc', 'sip', 'api', 'metrics'] as const) {
    const x = l[name];
    if (on(x)) tcp.push({ path: ['listeners', name, 'port'], port: x.port, host: x.host ?? '' });
  }
  if (on(l.sip)) udp.push({ path: ['listeners', 'sip', 'port'], port: l.sip.port, host: l.sip.host ?? '' });
  if (on(l.rtsp)) {
    for (const k of ['rtpPort', 'rtcpPort'] as const) {
      if (l.rtsp[k] !== 0) udp.push({ path: ['listeners', 'rtsp', k], port: l.rtsp[k], host: l.rtsp.host ?? '' });
    }
  }
  if (on(l.webrtc) && l.webrtc.icePort !== 0) {
    const u = { path: ['listeners', 'webrtc', 'icePort'], port: l.webrtc.icePort, host: l.webrtc.host ?? '' };
    tcp.push(u);
    udp.push(u);
  }
  const out: RawIssue[] = [];
  for (const [proto, uses] of [
    ['TCP', tcp],
    ['UDP', udp],
  ] as const) {
    const seen: Use[] = [];
    for (const u of uses) {
      // an empty host binds every interface, so it clashes with any host on the same port
      const other = seen.find((s) => s.port === u.port && (s.host === '' || u.host === '' || s.host === u.host));
      if (other !== undefined) {
        out.push({ path: u.path, message: `${proto} port ${u.port} is already used by ${keyPath(other.path)}` });
      } else seen.push(u);
    }
  }
  return out;
}

function isIpOrCidr(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash < 0) return isIP(s) !== 0;
  const family = isIP(s.slice(0, slash));
  const bits = s.slice(slash + 1);
  if (family === 0 || !/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------------------------------
// Issue → key path and position

/** `listeners.rtmp.port`, `auth.users[0].pass`, `paths["live/cam1"].source`. */
export function keyPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) s += s === '' ? seg : `.${seg}`;
    else s += `[${JSON.stringify(String(seg))}]`;
  }
  return s;
}

/** Finds the YAML node for `path` (or the deepest existing ancestor) and returns its start offset. */
function offsetOf(doc: Document, path: readonly PropertyKey[], atKey: boolean): number | undefined {
  let node: Node | null = doc.contents as Node | null;
  let offset = node?.range?.[0];
  for (let i = 0; i < path.length && node !== null; i++) {
    if (isAlias(node)) node = (node.resolve(doc) as Node | undefined) ?? null;
    const seg = path[i];
    let next: Node | null = null;
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (pair === undefined) break;
      const keyNode = isScalar(pair.key) ? pair.key : null;
      const last = i === path.length - 1;
      const valueNode = pair.value as Node | null;
      // `key:` with nothing after it: the empty value has no useful position, the key does
      const emptyValue = isScalar(valueNode) && valueNode.value === null && valueNode.range?.[0] === valueNode.range?.[1];
      if ((last && atKey) || valueNode === null || valueNode.range == null || emptyValue) {
        offset = keyNode?.range?.[0] ?? offset;
        if (last && atKey) return offset;
        next = valueNode;
      } else next = valueNode;
    } else if (isSeq(node) && typeof seg === 'number') {
      next = (node.items[seg] as Node | undefined) ?? null;
    } else break;
    if (next === null || (isScalar(next) && next.value === null && next.range?.[0] === next.range?.[1])) break;
    node = next;
    offset = node.range?.[0] ?? offset;
  }
  return offset;
}

/** The parts of zod's schema definitions walked to list the keys allowed at a path. */
interface SchemaDef {
  type: string;
  in?: z.core.$ZodType;
  out?: z.core.$ZodType;
  innerType?: z.core.$ZodType;
  shape?: Record<string, z.core.$ZodType>;
  valueType?: z.core.$ZodType;
  element?: z.core.$ZodType;
}

function defOf(t: z.core.$ZodType): SchemaDef {
  return t._zod.def as unknown as SchemaDef;
}

/** Keys the schema allows at `path` (for "did you mean" hints). */
function knownKeys(path: readonly (string | number)[]): string[] {
  let t: z.core.$ZodType | undefined = configSchema;
  let i = 0;
  for (let guard = 0; t !== undefined && guard < 100; guard++) {
    const d = defOf(t);
    if (d.type === 'pipe') t = d.out?._zod.def.type === 'transform' ? d.in : d.out;
    else if (d.innerType !== undefined) t = d.innerType;
    else if (i === path.length) return d.type === 'object' ? Object.keys(d.shape ?? {}) : [];
    else if (d.type === 'object') t = d.shape?.[String(path[i++])];
    else if (d.type === 'record') (t = d.valueType), i++;
    else if (d.type === 'array') (t = d.element), i++;
    else return [];
  }
  return [];
}

/** The known key closest to a typo (case-insensitive equal, or within 2 edits), or null. */
function suggest(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDist = 3;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : editDistance(k, key);
    if (d < bestDist) (best = k), (bestDist = d);
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 3;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (v === undefined) return 'nothing';
  return `${typeof v} ${String(v)}`;
}

function issueMessage(iss: z.core.$ZodIssue): string {
  switch (iss.code) {
    case 'invalid_value':
      return `expected one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'invalid_type':
      if (iss.input === undefined) return 'is required';
      return iss.message.startsWith('Invalid input') ? `expected ${iss.expected}, got ${describeValue(iss.input)}` : iss.message;
    case 'too_small':
      if (iss.origin === 'array') return `needs at least ${String(iss.minimum)} item(s)`;
      if (iss.origin === 'string') return 'must not be empty';
      return iss.message;
    default:
      return iss.message;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Public API

/**
 * Parses and validates YAML text. `sourceName` (a file name) prefixes every message.
 * @throws ConfigError listing every issue with its key path and line:column; its message is `formatConfigError` text.
 */
export function parseConfig(text: string, sourceName = '<config>'): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const pos = (offset: number | undefined) => {
    if (offset === undefined) return {};
    const p = lineCounter.linePos(offset);
    return { line: Math.max(1, p.line), col: p.col };
  };
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e): ConfigIssue => ({ key: '', ...pos(e.pos[0]), message: yamlMessage(e.message) }));
    throw configError(sourceName, issues);
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw configError(sourceName, [{ key: '', message: errorMessage(err) }]);
  }
  const result = configSchema.safeParse(raw, { reportInput: true });
  const rawIssues: RawIssue[] = pathKeyIssues(raw);
  if (!result.success) {
    for (const iss of result.error.issues) {
      const path = iss.path.filter((p): p is string | number => typeof p !== 'symbol');
      if (iss.code === 'unrecognized_keys') {
        const known = knownKeys(path);
        for (const k of iss.keys) {
          const hint = suggest(k, known);
          const message = `unknown key ${JSON.stringify(k)}${hint === null ? '' : ` (did you mean ${JSON.stringify(hint)}?)`}`;
          rawIssues.push({ path: [...path, k], message, atKey: true });
        }
      } else rawIssues.push({ path, message: issueMessage(iss) });
    }
  } else if (rawIssues.length === 0) {
    rawIssues.push(...semanticIssues(result.data));
  }
  if (rawIssues.length > 0 || !result.success) {
    const issues = rawIssues.map((r): ConfigIssue => ({
      key: keyPath(r.path),
      ...pos(offsetOf(doc, r.path, r.atKey === true)),
      message: r.message,
    }));
    issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
    throw configError(sourceName, issues);
  }
  return finish(result.data);
}

/** Fills what zod cannot: per-path `hls.alwaysRemux` inherits the listener's setting. */
function finish(c: SchemaOut): Config {
  const { paths, ...rest } = c;
  const config: Config = rest;
  if (paths !== undefined) {
    const out: Record<string, PathConf> = {};
    for (const [k, p] of Object.entries(paths)) {
      out[k] = { ...p, hls: { alwaysRemux: p.hls.alwaysRemux ?? c.listeners.hls.alwaysRemux } };
    }
    config.paths = out;
  }
  return config;
}

/** yaml's messages end with " at line L, column C" in some versions; the position is printed separately. */
function yamlMessage(msg: string): string {
  return msg.replace(/ at line \d+, column \d+:?[\s\S]*$/, '').trim();
}

function configError(sourceName: string, issues: ConfigIssue[]): ConfigError {
  const lines = issues.map((i) => formatIssue(sourceName, i));
  return new ConfigError(lines.join('\n'), issues);
}

/** `FILE:line:col: key: message` (parts that are unknown are left out). */
export function formatIssue(sourceName: string, i: ConfigIssue): string {
  const where = i.line !== undefined ? `${sourceName}:${i.line}:${i.col ?? 1}` : sourceName;
  return i.key === '' ? `${where}: ${i.message}` : `${where}: ${i.key}: ${i.message}`;
}

/** Reads and parses a YAML config file. @throws ConfigError (also when the file cannot be read) */
export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw configError(path, [{ key: '', message: `cannot read: ${errorMessage(err)}` }]);
  }
  return parseConfig(text, path);
}

/** The embedded defaults (what `config/default.yml` spells out): every listener on, every path open, no auth. */
export function defaultConfig(): Config {
  return parseConfig('', '<default>');
}

/** Human-readable text for a config error (one `FILE:line:col: key: message` line per issue), or any error. */
export function formatConfigError(err: unknown): string {
  return err instanceof ConfigError ? err.message : errorMessage(err);
}

/** Settings of a path with nothing configured. */
export function defaultPathConf(config?: Config): PathConf {
  const p = pathSchema.parse({});
  return { ...p, hls: { alwaysRemux: config?.listeners.hls.alwaysRemux ?? false } };
}

/** Result of `resolvePathConf`: the path, its settings and the `paths` key that matched (null: no `paths` key). */
export interface ResolvedPath {
  name: string;
  conf: PathConf;
  matchedKey: string | null;
}

/**
 * Finds the settings for a concrete path name: the exact `paths` entry first, then `~regex` entries in file order.
 * Without a `paths` key every valid name is allowed with defaults.
 * @returns null when the name is invalid or (with `paths` present) matches no entry: the path is not allowed.
 */
export function resolvePathConf(config: Config, pathName: string): ResolvedPath | null {
  if (!isValidPathName(pathName)) return null;
  const paths = config.paths;
  if (paths === undefined) return { name: pathName, conf: defaultPathConf(config), matchedKey: null };
  if (!pathName.startsWith('~') && Object.hasOwn(paths, pathName)) {
    const conf = paths[pathName];
    if (conf !== undefined) return { name: pathName, conf, matchedKey: pathName };
  }
  for (const [key, conf] of Object.entries(paths)) {
    if (key.startsWith('~') && pathRegex(key).test(pathName)) return { name: pathName, conf, matchedKey: key };
  }
  return null;
}

/** True if the listener should be started. */
export function listenerEnabled(l: ListenerConf): boolean {
  return l.enabled && l.port !== 0;
}
