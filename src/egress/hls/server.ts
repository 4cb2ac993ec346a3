/**
 * The HLS / LL-HLS listener: HTTP in front of one {@link HlsSegmenter} per path.
 *
 * URLs (INTERFACE.md): `/<path>/index.m3u8` is the multivariant playlist, `/<path>/stream.m3u8` the media playlist
 * (blocking reloads with `_HLS_msn`/`_HLS_part`, delta updates with `_HLS_skip`), `/<path>/init<n>.mp4`,
 * `/<path>/seg<msn>.mp4|ts` and `/<path>/part<n>.mp4` the media, `/<path>/` the player page and
 * `/<path>/hls.min.js` the player library (from our own node_modules, no CDN).
 *
 * A muxer starts on the first request for a path (it becomes one reader of the path's stream) and stops
 * `muxerCloseAfter` after the last request, unless the path is `alwaysRemux`. Each client is an API session,
 * identified by the `s=<id>` query the playlists put on every URI; its bytes sent are counted, and the registry's
 * `readerClients` hook lists the clients as the path's readers (instead of the muxer).
 *
 * The playlist of a path continues across restarts (rfc8216bis 6.2.1): a new publisher with other tracks hands the
 * old segmenter's segments to the new one, and a muxer started again within {@link RESUME_MEMORY_MS} continues the
 * numbering of the last one, so the media sequence a player holds never goes back.
 *
 * Only this file touches sockets and timers; the segmenter and the playlist writer are pure.
 */
import { readFileSync } from 'node:fs';
import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Socket, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { nanoid } from 'nanoid';
import { parseAuthorization, basicChallenge } from '../../auth.js';
import { AuthError, BusyError, NotFoundError, errorMessage } from '../../errors.js';
import { RateLimitedLog, log as rootLog } from '../../log.js';
import type { Frame } from '../../media/bus/frame.js';
import type { FrameSink, Reader } from '../../media/bus/reader.js';
import type { AccessRequest } from '../../media/bus/registry.js';
import type { Role, Session } from '../../media/bus/session.js';
import type { Stream } from '../../media/bus/stream.js';
import { writeMediaPlaylist, writeMultivariantPlaylist } from './playlist.js';
import {
  HlsSegmenter,
  withoutMedia,
  type HlsVariant,
  type SegmenterEvent,
  type SegmenterHandover,
  type SegmenterOptions,
} from './segmenter.js';

/** The registry as the HLS server uses it (PathRegistry implements it; tests pass fakes). */
export interface HlsPaths {
  addSession(session: Session): void;
  removeSession(session: Session, reason: string): void;
  addReader(path: string, session: Session, sink: FrameSink, req: Omit<AccessRequest, 'action' | 'path'>): Promise<Reader>;
  /** authorizes a read of `path` and waits until it has tracks */
  waitReady(path: string, req: Omit<AccessRequest, 'action' | 'path'>, timeoutMs?: number): Promise<Stream>;
  /** where the server registers the lookup of the client sessions behind a muxer's reader (API reader lists) */
  readonly readerClients?: Set<(reader: Reader) => readonly Session[] | undefined>;
  /** throws BusyError when the path's `maxReaders` leaves no room for one more viewer */
  assertReaderRoom?(path: string): void;
}

/** Options of the HLS listener (from `listeners.hls` and the paths' `hls.alwaysRemux`). */
export interface HlsServerOptions {
  host?: string;
  port: number;
  paths: HlsPaths;
  variant: HlsVariant;
  segmentMinDurationMs: number;
  partDurationMs: number;
  segmentCount: number;
  /** a muxer without requests for this long is stopped */
  muxerCloseAfterMs: number;
  /** paths whose muxer runs even without readers (never stopped for idleness) */
  alwaysRemux?: (path: string) => boolean;
  /** housekeeping period (idle muxers and sessions); tests shorten it */
  sweepIntervalMs?: number;
}

/** A bound HLS listener. */
export interface HlsServer {
  port: number;
  server: Server;
  /** running muxers by path */
  readonly muxers: ReadonlyMap<string, HlsMuxer>;
  /** starts the muxer of a path without a request (for `alwaysRemux` paths when their publisher starts) */
  ensureMuxer(path: string): Promise<void>;
  close(): Promise<void>;
}

/** A path: segments of `[A-Za-z0-9._~-]` joined by `/` (INTERFACE.md), without `.`/`..` segments. */
const PATH_SEGMENT = /^[A-Za-z0-9._~-]+$/;
/** Longest path name we route, a bound on what we log and key maps with (mediamtx limits URLs similarly). */
export const MAX_PATH_LENGTH = 512;
/** Blocked requests one muxer holds before answering 503: each is a socket and a closure, ~2 KB. */
export const MAX_BLOCKED_REQUESTS = 20_000;
/** How long the first playlist request waits for the first segment (a GOP of a slow camera plus start-up). */
export const FIRST_PLAYLIST_TIMEOUT_MS = 15_000;
/** An HLS client that made no request for this long is gone (players reload playlists every part or segment). */
export const SESSION_IDLE_MS = 30_000;
/**
 * How long the numbering of a stopped muxer is remembered for the next muxer of its path: longer than a player
 * retries a failing live playlist (hls.js: 4 retries with back-off, about a minute) or a cache keeps a file
 * (6 target durations), so a URI never names two different files for anyone who saw the first.
 */
export const RESUME_MEMORY_MS = 60 * 60 * 1000;
/** Paths whose numbering is remembered (~200 bytes each): the oldest are forgotten first. */
export const MAX_RESUME_PATHS = 10_000;
/** Kicked session ids remembered so the kicked player cannot continue with its URLs. */
const KICKED_MEMORY = 1000;
/** `_HLS_msn`/`_HLS_part` values: decimal-integer (4.2), bounded to stay exact in a double. */
const DECIMAL_INTEGER = /^\d{1,15}$/;
/** Placeholder for the session id in cached playlist texts; cannot appear in a URI we write. */
const SID_TOKEN = '\u0001';

const CORS_HEADERS: Record<string, string> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS',
  'Access-Control-Allow-Headers': 'Authorization, Range, Content-Type',
  'Access-Control-Max-Age': '86400',
};
const PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';

const rateLog = new RateLimitedLog(rootLog);

/** The player page template (player.html next to this file in the source tree; tsc does not copy .html). */
let playerTemplate: string | undefined;
function playerPage(path: string): string {
  playerTemplate ??= readFileSync(fileURLToPath(new URL('../../../../src/egress/hls/player.html', import.meta.url)), 'utf8');
  return playerTemplate.replaceAll('{{PATH}}', path.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`));
}

/** hls.js, read once from our own dependency. */
let hlsJs: Buffer | undefined;
function hlsJsBytes(): Buffer {
  hlsJs ??= readFileSync(fileURLToPath(new URL('../../../../node_modules/hls.js/dist/hls.min.js', import.meta.url)));
  return hlsJs;
}

/** A request held until the muxer can answer it. */
interface Waiter {
  /** true when done (answered); called on every muxer event */
  poll(): boolean;
  /** the wait ended without an answer */
  expire(): void;
  timer: NodeJS.Timeout;
}

/** One HLS client (player), as the API and metrics see it. */
class HlsClientSession implements Session {
  readonly protocol = 'hls' as const;
  role: Role = 'reader';
  state = 'read';
  readonly createdAt = Date.now();
  bytesIn = 0;
  bytesOut = 0;
  lastSeenMs = Date.now();
  closed = false;
  constructor(
    readonly id: string,
    public path: string,
    readonly remoteAddr: string,
    private readonly onClose: (s: HlsClientSession, reason: string) => void,
  ) {}
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this, reason);
  }
}

/**
 * The muxer of one path: a bus reader feeding an {@link HlsSegmenter}, plus the requests waiting on it.
 * Playlist texts are rendered once per change with a session-id placeholder, so thousands of blocked clients
 * cost a string join each, not a playlist render.
 */
export class HlsMuxer implements FrameSink {
  segmenter: HlsSegmenter | undefined;
  reader: Reader | undefined;
  lastUsedMs = Date.now();
  closed = false;
  private readonly waiters = new Set<Waiter>();
  private tracks: readonly unknown[] | undefined;
  /** the stream read, for keyframe requests */
  private stream: Stream | undefined;
  /** why the muxer closed, for the answer to requests that were waiting for it */
  closeReason: string | undefined;
  private version = 0;
  private cache: { version: number; full?: string[]; delta?: string[]; multi?: string[] } = { version: -1 };
  /** the muxer's own bus session (a reader of the path; not listed as an API session) */
  readonly session: Session;

  /**
   * @param resume numbering of the path's previous muxer (see {@link RESUME_MEMORY_MS}), used by the first segmenter
   */
  constructor(
    readonly path: string,
    private readonly options: Partial<SegmenterOptions>,
    private readonly onClosed: (m: HlsMuxer, reason: string) => void,
    private resume?: SegmenterHandover,
  ) {
    const self = this;
    this.session = {
      id: `hls-${nanoid(10)}`,
      protocol: 'hls',
      role: 'reader',
      path,
      remoteAddr: 'hls-muxer',
      state: 'muxing',
      createdAt: Date.now(),
      bytesIn: 0,
      bytesOut: 0,
      close(reason: string): void {
        self.reader?.close(reason);
        self.close(reason);
      },
    };
  }

  /**
   * Bus: the stream has (new) tracks. Same tracks continue; different ones start a new segmenter that takes the
   * old one's segments over, so the playlist continues after an EXT-X-DISCONTINUITY.
   */
  start(stream: Stream): void {
    if (this.segmenter && this.tracks && stream.tracks.length === this.tracks.length && stream.tracks.every((t, i) => t === this.tracks![i])) {
      return;
    }
    const handover = this.segmenter ? this.segmenter.handover(Date.now()) : this.resume;
    this.resume = undefined;
    this.tracks = [...stream.tracks];
    this.stream = stream;
    this.segmenter = new HlsSegmenter(stream.tracks, this.options, handover);
    for (const t of this.segmenter.leftOut) {
      rootLog.warn({ path: this.path, codec: t.codec, variant: this.options.variant }, `HLS: the ${t.codec === 'opus' ? 'Opus' : t.codec} track is left out: ${t.reason}`);
    }
    this.changed();
  }

  /** Bus: one frame. A segmenter error (a limit) ends this muxer only. */
  writeFrame(frame: Frame): void {
    const seg = this.segmenter;
    if (!seg || this.closed) return;
    let events: SegmenterEvent[];
    try {
      events = seg.push(frame, Date.now());
    } catch (err) {
      rateLog.warn({ path: this.path, err: errorMessage(err) }, 'HLS muxer failed');
      this.reader?.close(`HLS muxer failed: ${errorMessage(err)}`);
      this.close(`HLS muxer failed: ${errorMessage(err)}`);
      return;
    }
    let changed = false;
    for (const e of events) {
      // WebRTC publishers send an IDR only when asked; the bus rate-limits and counts the requests
      if (e.type === 'keyframe-wanted') this.stream?.requestKeyframe('HLS segment due');
      else changed = true;
    }
    if (changed) this.changed();
  }

  bufferedBytes(): number {
    return 0;
  }

  /** Bus or server: the muxer ends; blocked requests are answered. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    if (this.segmenter && !this.segmenter.isEnded) this.segmenter.finish(Date.now());
    this.changed();
    for (const w of [...this.waiters]) {
      clearTimeout(w.timer);
      this.waiters.delete(w);
      w.expire();
    }
    this.onClosed(this, reason);
  }

  /** Holds a request until `poll()` says it is answered, or `timeoutMs` passes (then `expire()`). */
  wait(poll: () => boolean, expire: () => void, timeoutMs: number, res: ServerResponse): void {
    if (poll()) return;
    if (this.closed || this.waiters.size >= MAX_BLOCKED_REQUESTS) {
      expire();
      return;
    }
    const w: Waiter = {
      poll,
      expire,
      timer: setTimeout(() => {
        this.waiters.delete(w);
        expire();
      }, timeoutMs),
    };
    this.waiters.add(w);
    res.once('close', () => {
      clearTimeout(w.timer);
      this.waiters.delete(w);
    });
  }

  /** Number of requests currently held. */
  get blocked(): number {
    return this.waiters.size;
  }

  /**
   * The media playlist for a session, from a text rendered once per change.
   * @param skip `_HLS_skip=YES|v2`: a delta update
   */
  mediaPlaylist(sid: string, skip: boolean): string {
    const seg = this.segmenter as HlsSegmenter;
    if (this.cache.version !== this.version) this.cache = { version: this.version };
    const key = skip ? 'delta' : 'full';
    let parts = this.cache[key];
    if (!parts) {
      parts = writeMediaPlaylist(seg.mediaPlaylist(), { skip, uriQuery: `s=${SID_TOKEN}` }).split(SID_TOKEN);
      this.cache[key] = parts;
    }
    return parts.join(sid);
  }

  /** The multivariant playlist for a session. */
  multivariantPlaylist(sid: string): string {
    const seg = this.segmenter as HlsSegmenter;
    if (this.cache.version !== this.version) this.cache = { version: this.version };
    let parts = this.cache.multi;
    if (!parts) {
      parts = writeMultivariantPlaylist({ variants: [{ ...seg.variant(), uri: 'stream.m3u8' }] }, { uriQuery: `s=${SID_TOKEN}` }).split(SID_TOKEN);
      this.cache.multi = parts;
    }
    return parts.join(sid);
  }

  private changed(): void {
    this.version++;
    for (const w of [...this.waiters]) {
      if (!this.waiters.has(w)) continue;
      let done: boolean;
      try {
        done = w.poll();
      } catch (err) {
        rateLog.warn({ path: this.path, err: errorMessage(err) }, 'HLS blocked request failed');
        done = true;
      }
      if (done) {
        clearTimeout(w.timer);
        this.waiters.delete(w);
      }
    }
  }
}

/** What a request names under a path. */
type Target =
  | { kind: 'page' }
  | { kind: 'hlsjs' }
  | { kind: 'multivariant' }
  | { kind: 'media' }
  | { kind: 'file'; name: string };

const FILE_NAME = /^(?:init\d{1,9}\.mp4|seg\d{1,15}\.(?:mp4|ts)|part\d{1,15}\.mp4)$/;

/**
 * Splits a request path into the stream path and what is asked of it. Percent-encoding is not decoded: `%` is not
 * in the path grammar, so encoded traversal (`%2e%2e`, `%2f`) can only fail to match. `.` and `..` segments are
 * refused. @returns null for anything that is not one of our URLs
 */
export function routeHls(pathname: string): { path: string; target: Target } | { redirect: string } | null {
  if (pathname.length > MAX_PATH_LENGTH + 32 || !pathname.startsWith('/')) return null;
  const segments = pathname.slice(1).split('/');
  const last = segments.pop() as string;
  const valid = (parts: string[]): boolean => parts.length > 0 && parts.every((p) => PATH_SEGMENT.test(p) && p !== '.' && p !== '..');
  if (last === '') {
    if (!valid(segments)) return null;
    return { path: segments.join('/'), target: { kind: 'page' } };
  }
  if (!valid(segments)) {
    // `/live/cam1` without the trailing slash: the player page
    if (segments.length === 0 && valid([last])) return { redirect: `/${last}/` };
    return null;
  }
  const path = segments.join('/');
  if (path.length > MAX_PATH_LENGTH) return null;
  if (last === 'index.m3u8') return { path, target: { kind: 'multivariant' } };
  if (last === 'stream.m3u8') return { path, target: { kind: 'media' } };
  if (last === 'hls.min.js') return { path, target: { kind: 'hlsjs' } };
  if (FILE_NAME.test(last)) return { path, target: { kind: 'file', name: last } };
  if (valid([last])) return { redirect: `/${path}/${last}/` };
  return null;
}

/** Delivery directives of a media playlist request (rfc8216bis 6.2.5), validated. */
export function parseDirectives(q: URLSearchParams): { msn?: number; part?: number; skip: boolean } | { error: string } {
  const msnS = q.get('_HLS_msn');
  const partS = q.get('_HLS_part');
  const skipS = q.get('_HLS_skip');
  const out: { msn?: number; part?: number; skip: boolean } = { skip: false };
  if (msnS !== null) {
    if (!DECIMAL_INTEGER.test(msnS)) return { error: '_HLS_msn must be a decimal integer' };
    out.msn = Number(msnS);
  }
  if (partS !== null) {
    if (!DECIMAL_INTEGER.test(partS)) return { error: '_HLS_part must be a decimal integer' };
    // 6.2.5.2: "_HLS_part directive but no _HLS_msn directive ... MUST return Bad Request"
    if (msnS === null) return { error: '_HLS_part without _HLS_msn' };
    out.part = Number(partS);
  }
  if (skipS !== null) {
    if (skipS !== 'YES' && skipS !== 'v2') return { error: '_HLS_skip must be YES or v2' };
    out.skip = true;
  }
  return out;
}

/** Starts the HLS listener. */
export async function startHlsServer(opts: HlsServerOptions): Promise<HlsServer> {
  const muxers = new Map<string, HlsMuxer>();
  const starting = new Map<string, Promise<HlsMuxer>>();
  const sessions = new Map<string, HlsClientSession>();
  /** the same sessions by path, for the registry's reader lists */
  const sessionsByPath = new Map<string, Set<HlsClientSession>>();
  /** numbering of stopped muxers by path (see RESUME_MEMORY_MS); insertion order = age */
  const resumes = new Map<string, { handover: SegmenterHandover; atMs: number }>();
  const kicked = new Set<string>();
  /** muxers of this server (the registry may be shared with another HLS server, in tests) */
  const ownMuxers = new WeakSet<HlsMuxer>();
  const segmenterOptions: Partial<SegmenterOptions> = {
    variant: opts.variant,
    segmentMinDurationMs: opts.segmentMinDurationMs,
    partDurationMs: opts.partDurationMs,
    segmentCount: opts.segmentCount,
  };

  const onSessionClosed = (s: HlsClientSession, reason: string): void => {
    sessions.delete(s.id);
    const byPath = sessionsByPath.get(s.path);
    byPath?.delete(s);
    if (byPath?.size === 0) sessionsByPath.delete(s.path);
    if (reason !== 'idle') {
      kicked.add(s.id);
      if (kicked.size > KICKED_MEMORY) kicked.delete(kicked.values().next().value as string);
    }
    opts.paths.removeSession(s, reason);
  };

  const onMuxerClosed = (m: HlsMuxer, reason: string): void => {
    if (muxers.get(m.path) === m) muxers.delete(m.path);
    if (m.segmenter) {
      resumes.delete(m.path);
      resumes.set(m.path, { handover: withoutMedia(m.segmenter.handover(Date.now())), atMs: Date.now() });
      if (resumes.size > MAX_RESUME_PATHS) resumes.delete(resumes.keys().next().value as string);
    }
    rootLog.info({ path: m.path, reason }, 'HLS muxer stopped');
  };

  /** The running muxer of `path`, starting it (a new bus reader) when there is none. */
  const muxerFor = (path: string, req: Omit<AccessRequest, 'action' | 'path'>): Promise<HlsMuxer> => {
    const m = muxers.get(path);
    if (m && !m.closed) return Promise.resolve(m);
    let p = starting.get(path);
    if (!p) {
      const muxer = new HlsMuxer(path, segmenterOptions, onMuxerClosed, resumes.get(path)?.handover);
      ownMuxers.add(muxer);
      p = opts.paths
        .addReader(path, muxer.session, muxer, req)
        .then((reader) => {
          muxer.reader = reader;
          // a reader that failed to start (a stream this variant cannot carry) says why
          if (reader.closed) throw new NotFoundError(`path '${path}': ${muxer.closeReason ?? 'closed'}`);
          muxers.set(path, muxer);
          rootLog.info({ path, variant: opts.variant }, 'HLS muxer started');
          return muxer;
        })
        .finally(() => starting.delete(path));
      starting.set(path, p);
    }
    return p;
  };

  const send = (res: ServerResponse, status: number, headers: Record<string, string>, body?: string | Buffer): void => {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { ...CORS_HEADERS, ...headers });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  };
  const sendError = (res: ServerResponse, status: number, message: string): void => {
    const headers: Record<string, string> = { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache' };
    if (status === 401) headers['WWW-Authenticate'] = basicChallenge();
    send(res, status, headers, `${message}\n`);
  };
  const refusal = (res: ServerResponse, err: unknown): void => {
    if (err instanceof AuthError) sendError(res, 401, 'unauthorized');
    else if (err instanceof NotFoundError) sendError(res, 404, err.message);
    else if (err instanceof BusyError) sendError(res, 503, err.message);
    else {
      rateLog.warn({ err: errorMessage(err) }, 'HLS request failed');
      sendError(res, 500, 'internal error');
    }
  };

  const accessOf = (req: IncomingMessage, url: URL): Omit<AccessRequest, 'action' | 'path'> => {
    const a: Omit<AccessRequest, 'action' | 'path'> = { protocol: 'hls', ip: remoteIp(req) };
    const auth = parseAuthorization(req.headers.authorization);
    const user = auth?.scheme === 'basic' ? auth.user : url.searchParams.get('user');
    const pass = auth?.scheme === 'basic' ? auth.pass : url.searchParams.get('pass');
    if (user !== null) a.user = user;
    if (pass !== null) a.pass = pass;
    const key = url.searchParams.get('key');
    if (key !== null) a.key = key;
    if (url.search) a.query = url.search.slice(1);
    return a;
  };

  /**
   * The client session of a request: the one named by `s=`, or a new one after the request is authorized. Media
   * requests without a known session (a cache in front, a probe) are authorized but make no session: a player's
   * session starts with a playlist.
   * @returns undefined when the request was answered (refused), null for an authorized request without a session
   */
  const sessionFor = async (req: IncomingMessage, res: ServerResponse, url: URL, path: string, muxer: HlsMuxer | undefined, access: Omit<AccessRequest, 'action' | 'path'>, create: boolean): Promise<HlsClientSession | null | undefined> => {
    const sid = url.searchParams.get('s');
    if (sid !== null) {
      const s = sessions.get(sid);
      if (s && s.path === path) {
        s.lastSeenMs = Date.now();
        return s;
      }
      if (kicked.has(sid)) {
        sendError(res, 403, 'session closed');
        return undefined;
      }
    }
    if (muxer) {
      // the muxer authorized its first client; every new client is authorized too
      try {
        await opts.paths.waitReady(path, access, FIRST_PLAYLIST_TIMEOUT_MS);
      } catch (err) {
        refusal(res, err);
        return undefined;
      }
    }
    if (!create) return null;
    try {
      // each HLS viewer counts against the path's maxReaders, like any other player
      opts.paths.assertReaderRoom?.(path);
    } catch (err) {
      refusal(res, err);
      return undefined;
    }
    const s = new HlsClientSession(nanoid(16), path, `${remoteIp(req)}:${req.socket.remotePort ?? 0}`, onSessionClosed);
    sessions.set(s.id, s);
    let byPath = sessionsByPath.get(path);
    if (!byPath) sessionsByPath.set(path, (byPath = new Set()));
    byPath.add(s);
    opts.paths.addSession(s);
    return s;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method === 'OPTIONS') {
      send(res, 204, {});
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, { Allow: 'GET, HEAD, OPTIONS', 'Content-Type': 'text/plain', 'Cache-Control': 'no-cache' }, 'method not allowed\n');
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      sendError(res, 400, 'bad request');
      return;
    }
    const route = routeHls(url.pathname);
    if (!route) {
      sendError(res, 404, 'not found');
      return;
    }
    if ('redirect' in route) {
      send(res, 301, { Location: route.redirect + url.search, 'Content-Type': 'text/plain' }, 'moved\n');
      return;
    }
    const { path, target } = route;
    if (target.kind === 'page') {
      send(res, 200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-cache' }, playerPage(path));
      return;
    }
    if (target.kind === 'hlsjs') {
      send(res, 200, { 'Content-Type': 'application/javascript', 'Cache-Control': 'public, max-age=86400' }, hlsJsBytes());
      return;
    }

    const access = accessOf(req, url);
    let muxer = muxers.get(path);
    const hadMuxer = muxer !== undefined;
    if (!muxer) {
      if (target.kind === 'file') {
        // media of a muxer that does not run (any more): nothing to serve
        sendError(res, 404, 'not found');
        return;
      }
      try {
        muxer = await muxerFor(path, access);
      } catch (err) {
        refusal(res, err);
        return;
      }
    }
    const session = await sessionFor(req, res, url, path, hadMuxer ? muxer : undefined, access, target.kind !== 'file');
    if (session === undefined) return;
    muxer.lastUsedMs = Date.now();
    const m = muxer;
    const count = (bytes: number): void => {
      if (session) session.bytesOut += bytes;
      m.session.bytesOut += bytes;
    };

    if (target.kind === 'file') {
      serveFile(m, target.name, res, count);
      return;
    }
    const directives = target.kind === 'media' && opts.variant === 'lowLatency' ? parseDirectives(url.searchParams) : { skip: false };
    if ('error' in directives) {
      sendError(res, 400, directives.error);
      return;
    }
    const respond = (): void => {
      const seg = m.segmenter as HlsSegmenter;
      const sid = session?.id ?? ''; // playlist requests always have a session (create = true)
      const body = target.kind === 'multivariant' ? m.multivariantPlaylist(sid) : m.mediaPlaylist(sid, directives.skip && !seg.isEnded);
      count(Buffer.byteLength(body));
      send(res, 200, { 'Content-Type': PLAYLIST_TYPE, 'Cache-Control': 'no-cache' }, body);
    };
    // first the muxer's first segment, then the blocking-reload condition (6.2.5.2)
    const poll = (): boolean => {
      const seg = m.segmenter;
      if (!seg?.ready) {
        if (m.closed) {
          sendError(res, 404, 'stream ended');
          return true;
        }
        return false;
      }
      if (target.kind === 'media' && directives.msn !== undefined) {
        const state = seg.blockingState(directives.msn, directives.part);
        if (state === 'bad-request') {
          sendError(res, 400, '_HLS_msn/_HLS_part too far ahead');
          return true;
        }
        if (state === 'wait') return false;
      }
      respond();
      return true;
    };
    const seg = m.segmenter;
    const timeoutMs = seg?.ready ? seg.blockingTimeoutMs() : FIRST_PLAYLIST_TIMEOUT_MS;
    m.wait(poll, () => sendError(res, 503, 'playlist not available in time'), timeoutMs, res);
  };

  const serveFile = (m: HlsMuxer, name: string, res: ServerResponse, count: (n: number) => void): void => {
    const poll = (): boolean => {
      const seg = m.segmenter;
      if (!seg) {
        sendError(res, 404, 'not found');
        return true;
      }
      const r = seg.file(name);
      if (r.status === 'pending') return false;
      if (r.status === 'not-found') {
        sendError(res, 404, 'not found');
        return true;
      }
      const f = r.file;
      if (res.headersSent || res.destroyed) return true;
      res.writeHead(200, {
        ...CORS_HEADERS,
        'Content-Type': f.contentType,
        'Content-Length': String(f.byteLength),
        // immutable while it exists; a cache in front may keep it for the time it stays listed
        'Cache-Control': `public, max-age=${Math.max(1, seg.targetDurationS * 6)}`,
      });
      if (res.req.method === 'HEAD') {
        res.end();
        return true;
      }
      for (const c of f.chunks) res.write(c);
      res.end();
      count(f.byteLength);
      return true;
    };
    // 6.2.6: a request for the hinted part is held until the part is complete
    const timeoutMs = m.segmenter?.ready ? m.segmenter.blockingTimeoutMs() : FIRST_PLAYLIST_TIMEOUT_MS;
    m.wait(poll, () => sendError(res, 503, 'part not available in time'), timeoutMs, res);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => refusal(res, err));
  });
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 20_000;
  server.requestTimeout = 20_000;
  // requests node's parser refuses get their answer here, with the CORS headers every answer carries
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const code = err.code ?? '';
    if (code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const remote = socket instanceof Socket ? `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}` : '?';
    rateLog.warn({ remote, err: code || err.message, status }, 'HLS: malformed HTTP request');
    const body = `${STATUS_CODES[status] ?? 'Bad Request'}\n`;
    const head = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`, 'Connection: close', 'Content-Type: text/plain; charset=utf-8', 'Cache-Control: no-cache'];
    for (const [k, v] of Object.entries(CORS_HEADERS)) head.push(`${k}: ${v}`);
    head.push(`Content-Length: ${Buffer.byteLength(body)}`);
    socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  // the API lists the clients of a muxer as the path's readers, instead of the muxer
  const clientsOf = (reader: Reader): readonly Session[] | undefined => {
    const sink = reader.sink;
    if (!(sink instanceof HlsMuxer) || !ownMuxers.has(sink)) return undefined;
    return [...(sessionsByPath.get(sink.path) ?? [])];
  };
  opts.paths.readerClients?.add(clientsOf);

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [path, r] of resumes) {
      if (now - r.atMs <= RESUME_MEMORY_MS) break; // oldest first
      resumes.delete(path);
    }
    for (const m of [...muxers.values()]) {
      if (opts.alwaysRemux?.(m.path)) continue;
      if (m.blocked === 0 && now - m.lastUsedMs > opts.muxerCloseAfterMs) {
        m.reader?.close('no HLS clients');
        m.close('no HLS clients');
      }
    }
    for (const s of [...sessions.values()]) if (now - s.lastSeenMs > SESSION_IDLE_MS) s.close('idle');
  }, opts.sweepIntervalMs ?? 1000);
  sweep.unref();

  return {
    port: (server.address() as AddressInfo).port,
    server,
    muxers,
    async ensureMuxer(path: string): Promise<void> {
      await muxerFor(path, { protocol: 'hls', ip: '127.0.0.1' });
    },
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(sweep);
        opts.paths.readerClients?.delete(clientsOf);
        for (const m of [...muxers.values()]) {
          m.reader?.close('server shutting down');
          m.close('server shutting down');
        }
        for (const s of [...sessions.values()]) s.close('server shutting down');
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function remoteIp(req: IncomingMessage): string {
  return (req.socket.remoteAddress ?? '?').replace(/^::ffff:/, '');
}
