/**
 * The server side of one RTSP connection as a sans-I/O state machine (after gortsplib `server_session.go`):
 * requests in, actions out, the clock passed in. It validates every request (CSeq, version, session id, state,
 * Transport), answers what it can alone (OPTIONS, SETUP, PAUSE, TEARDOWN, keepalives) and hands the steps that
 * need the path registry (DESCRIBE, ANNOUNCE, PLAY, RECORD) to the shell as actions; the shell answers with
 * `resolve()`. Requests that arrive while such a step is pending wait in a bounded queue.
 *
 *   initial ──DESCRIBE/SETUP──▶ prePlay ──PLAY──▶ play ──PAUSE──▶ prePlay
 *      └──ANNOUNCE──▶ preRecord ──RECORD──▶ record ──PAUSE──▶ preRecord      (TEARDOWN: back to initial)
 *
 * Requests the state table of RFC 2326 Appendix A.1 does not allow get 455 Method Not Valid in This State with
 * an Allow header (§11.3.6); SETUP of the aggregate URL of a several-media session gets 459 Aggregate Operation
 * Not Allowed (§11.3.10), and PLAY/PAUSE/RECORD of one media's URL in such a session 460 Only Aggregate
 * Operation Allowed (§11.3.11): the session's media start and stop together.
 */
import {
  AuthError,
  BusyError,
  LimitError,
  NotFoundError,
  ParseError,
  ProtocolError,
  StateError,
  StreamgateError,
  UnsupportedError,
} from '../../errors.js';
import { controlUrl, parseSdp, type SessionDescription } from '../../signaling/sdp/description.js';
import {
  cseqOf,
  LIMIT_BODY,
  LIMIT_URL,
  parseSessionHeader,
  parseTransports,
  RTSP_VERSION,
  RtspHeaders,
  serializeResponse,
  serializeRtpInfo,
  serializeSessionHeader,
  serializeTransport,
  type RtpInfoEntry,
  type RtspRequest,
  type RtspTransport,
} from './message.js';

/** States, as gortsplib names them. */
export type RtspServerState = 'initial' | 'prePlay' | 'play' | 'preRecord' | 'record';

/** How one SETUP media is carried. */
export type RtspTrackTransport =
  | { kind: 'tcp'; channels: [number, number] }
  | { kind: 'udp'; clientPorts: [number, number] };

/** A media that was SETUP: its index in the SDP and its transport. */
export interface RtspSetupTrack {
  media: number;
  transport: RtspTrackTransport;
}

/** The request a path step comes from, for authorization and logs. */
export interface RtspPathRequest {
  method: string;
  url: string;
  /** path name, e.g. `live/cam1` */
  path: string;
  /** the URL's query without `?` */
  query: string;
  /** the Authorization header, if any */
  authorization?: string;
}

/** What the shell must do. */
export type RtspServerAction =
  | { type: 'send'; bytes: Uint8Array; status: number; method: string; error?: unknown }
  | { type: 'describe'; request: RtspPathRequest }
  | { type: 'announce'; request: RtspPathRequest; description: SessionDescription }
  | { type: 'play'; request: RtspPathRequest; tracks: RtspSetupTrack[] }
  | { type: 'record'; request: RtspPathRequest; tracks: RtspSetupTrack[] }
  | { type: 'pause' }
  | { type: 'teardown' }
  | { type: 'close'; reason: string; error?: StreamgateError };

/** The shell's answer to a path step. */
export type RtspResolution =
  | {
      ok: true;
      /** DESCRIBE: our SDP and its number of media */
      sdp?: string;
      mediaCount?: number;
      /** PLAY: per SETUP media, the first packet's seq/rtptime when known */
      rtpInfo?: { media: number; seq?: number; rtptime?: number }[];
    }
  | {
      ok: false;
      error: unknown;
      /** WWW-Authenticate values for a 401 */
      challenges?: string[];
    };

/** Options of one session. */
export interface RtspServerSessionOptions {
  /** session id for the Session header (inject for tests; RFC 2326 §3.4 wants it hard to guess) */
  sessionId: string;
  /** RTSP session timeout announced and enforced for UDP sessions, seconds (RFC 2326 §12.37 default 60) */
  sessionTimeoutSec?: number;
  /** publishers silent this long are closed (config `readTimeout`), ms */
  readTimeoutMs?: number;
  /** the server's RTP/RTCP ports; undefined = UDP transport refused with 461 */
  udpPorts?: [number, number];
  /** value of the Server header */
  serverName?: string;
}

/** Methods answered, for OPTIONS (RFC 2326 §10.1). */
export const PUBLIC_METHODS = 'OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, GET_PARAMETER, SET_PARAMETER, TEARDOWN';
/** Default RTSP session timeout, seconds (RFC 2326 §12.37). */
export const DEFAULT_SESSION_TIMEOUT_SEC = 60;
/** Default silence allowed from a publisher before it is closed, ms (config `readTimeout` default). */
export const DEFAULT_READ_TIMEOUT_MS = 10_000;
/**
 * Requests waiting behind a pending DESCRIBE/ANNOUNCE/PLAY/RECORD. Clients wait for each answer (ffmpeg, GStreamer,
 * VLC); a few pipelined keepalives fit, a flood closes the connection.
 */
export const MAX_QUEUED_REQUESTS = 16;
/** Most media SETUP in one session: an SDP carries at most MAX_SDP_MEDIA (32). */
export const MAX_SETUP_TRACKS = 32;

const PATH = /^[A-Za-z0-9._~-]+(?:\/[A-Za-z0-9._~-]+)*$/;
/** Last path segment that names a track rather than a path (`trackID=0`, `streamid=1`, `stream=0`). */
const TRACK_SEGMENT = /\/(?:trackID|streamid|stream|track)=?\d+\/?$/i;

/** The RTSP status for an error a step or the parser raised. */
export function rtspStatusOf(err: unknown): number {
  if (err instanceof ProtocolError) return err.status;
  if (err instanceof AuthError) return 401;
  if (err instanceof NotFoundError) return 404;
  if (err instanceof BusyError) return 503;
  if (err instanceof StateError) return 455;
  if (err instanceof UnsupportedError) return 415;
  if (err instanceof LimitError) return err.what === LIMIT_URL ? 414 : err.what === LIMIT_BODY ? 413 : 400;
  if (err instanceof ParseError) return 400;
  return 500;
}

/** `rtsp://host:port/a/b?q` → { path: 'a/b', query: 'q' }; null when it is not an RTSP URL. */
export function splitRtspUrl(url: string): { path: string; query: string; pathname: string } | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (u.protocol !== 'rtsp:' && u.protocol !== 'rtsps:') return null;
  let pathname: string;
  try {
    pathname = decodeURIComponent(u.pathname);
  } catch {
    return null;
  }
  return { path: pathname.replace(/^\/+/, '').replace(/\/+$/, ''), query: u.search.replace(/^\?/, ''), pathname };
}

/** URL compared by path and query only: clients reach us as 127.0.0.1, localhost or a public name. */
function urlKey(url: string): string | null {
  const s = splitRtspUrl(url);
  return s ? `${s.path}?${s.query}` : null;
}

/**
 * One RTSP connection's server session. `push(request)` for every parsed request; `resolve()` once for every
 * path action; `touch()` when media or RTCP arrives from the client; `tick()` at `nextDeadline()`.
 */
export class RtspServerSession {
  state: RtspServerState = 'initial';
  /** path of the session, '' until DESCRIBE/ANNOUNCE/SETUP names one */
  path = '';
  /** SETUP media, in SETUP order */
  readonly tracks: RtspSetupTrack[] = [];
  private readonly opts: Required<Omit<RtspServerSessionOptions, 'udpPorts'>> & { udpPorts?: [number, number] };
  private established = false;
  private baseUrl = '';
  private controls: (string | undefined)[] = [];
  private announced: SessionDescription | undefined;
  private pending: { req: RtspRequest; cseq: number; kind: 'describe' | 'setup' | 'announce' | 'play' | 'record' } | undefined;
  private readonly queue: RtspRequest[] = [];
  private lastActivityMs: number;
  private closed = false;

  constructor(opts: RtspServerSessionOptions, nowMs: number) {
    this.opts = {
      sessionId: opts.sessionId,
      sessionTimeoutSec: opts.sessionTimeoutSec ?? DEFAULT_SESSION_TIMEOUT_SEC,
      readTimeoutMs: opts.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS,
      serverName: opts.serverName ?? 'streamgate',
    };
    if (opts.udpPorts) this.opts.udpPorts = opts.udpPorts;
    this.lastActivityMs = nowMs;
  }

  /** The Session header id. */
  get sessionId(): string {
    return this.opts.sessionId;
  }

  /** The ANNOUNCE description (record sessions). */
  get description(): SessionDescription | undefined {
    return this.announced;
  }

  /** Which media and stream (RTP or RTCP) an interleaved channel belongs to. */
  channelTarget(channel: number): { media: number; rtcp: boolean } | undefined {
    for (const t of this.tracks) {
      if (t.transport.kind !== 'tcp') continue;
      if (t.transport.channels[0] === channel) return { media: t.media, rtcp: false };
      if (t.transport.channels[1] === channel) return { media: t.media, rtcp: true };
    }
    return undefined;
  }

  /** Media or RTCP arrived from the client: it is alive. */
  touch(nowMs: number): void {
    this.lastActivityMs = nowMs;
  }

  /** When `tick()` must run next, or null. */
  nextDeadline(): number | null {
    if (this.closed) return null;
    if (this.state === 'record') return this.lastActivityMs + this.opts.readTimeoutMs;
    if (this.state === 'play' && this.tracks.every((t) => t.transport.kind === 'tcp')) return null; // TCP liveness is enough
    return this.lastActivityMs + this.opts.sessionTimeoutSec * 1000;
  }

  /** Closes the session when its deadline passed. */
  tick(nowMs: number): RtspServerAction[] {
    const d = this.nextDeadline();
    if (d === null || nowMs < d) return [];
    this.closed = true;
    const what = this.state === 'record' ? `no media for ${this.opts.readTimeoutMs} ms` : `no request or RTCP for ${this.opts.sessionTimeoutSec} s`;
    return [{ type: 'close', reason: `session timed out: ${what}` }];
  }

  /** Handles one request. */
  push(req: RtspRequest, nowMs: number): RtspServerAction[] {
    if (this.closed) return [];
    this.lastActivityMs = nowMs;
    if (this.pending) {
      if (this.queue.length >= MAX_QUEUED_REQUESTS) {
        this.closed = true;
        return [{ type: 'close', reason: 'too many pipelined requests', error: new LimitError('RTSP queued requests', MAX_QUEUED_REQUESTS, this.queue.length + 1) }];
      }
      this.queue.push(req);
      return [];
    }
    return this.handle(req);
  }

  /** The shell's answer to the pending path action; then queued requests run. */
  resolve(result: RtspResolution, nowMs: number): RtspServerAction[] {
    const p = this.pending;
    if (!p || this.closed) return [];
    this.pending = undefined;
    this.lastActivityMs = nowMs;
    const out: RtspServerAction[] = [];
    if (!result.ok) {
      out.push(this.errorResponse(p.req, p.cseq, result.error, result.challenges));
    } else {
      switch (p.kind) {
        case 'describe': {
          this.controls = Array.from({ length: result.mediaCount ?? 0 }, (_, i) => `trackID=${i}`);
          const headers = this.headers(p.cseq);
          headers.set('Content-Base', `${this.baseUrl}/`);
          headers.set('Content-Type', 'application/sdp');
          out.push(this.send(p.req.method, 200, headers, new TextEncoder().encode(result.sdp ?? '')));
          break;
        }
        case 'setup':
          this.controls = Array.from({ length: result.mediaCount ?? 0 }, (_, i) => `trackID=${i}`);
          try {
            out.push(...this.setup(p.req, p.cseq));
          } catch (err) {
            out.push(this.errorResponse(p.req, p.cseq, err));
          }
          break;
        case 'announce':
          this.state = 'preRecord';
          out.push(this.send(p.req.method, 200, this.headers(p.cseq)));
          break;
        case 'play': {
          this.state = 'play';
          const headers = this.headers(p.cseq);
          headers.set('Range', 'npt=0.000-');
          const entries: RtpInfoEntry[] = [];
          for (const t of this.tracks) {
            const info = result.rtpInfo?.find((r) => r.media === t.media);
            const e: RtpInfoEntry = { url: controlUrl(this.baseUrl, this.controls[t.media]) };
            if (info?.seq !== undefined) e.seq = info.seq;
            if (info?.rtptime !== undefined) e.rtptime = info.rtptime;
            entries.push(e);
          }
          if (entries.length > 0) headers.set('RTP-Info', serializeRtpInfo(entries));
          out.push(this.send(p.req.method, 200, headers));
          break;
        }
        case 'record':
          this.state = 'record';
          out.push(this.send(p.req.method, 200, this.headers(p.cseq)));
          break;
      }
    }
    while (!this.pending && this.queue.length > 0 && !this.closed) out.push(...this.handle(this.queue.shift() as RtspRequest));
    return out;
  }

  private handle(req: RtspRequest): RtspServerAction[] {
    const cseq = cseqOf(req.headers);
    if (cseq === undefined) {
      return [this.send(req.method, 400, new RtspHeaders([['Server', this.opts.serverName]]), undefined, 'missing or invalid CSeq')];
    }
    if (req.version !== RTSP_VERSION) return [this.send(req.method, 505, this.headers(cseq))];
    const required = req.headers.get('require');
    if (required !== undefined) {
      // RFC 2326 §12.32: no extension is supported (ONVIF back channel asks with Require)
      const h = this.headers(cseq);
      h.set('Unsupported', required);
      return [this.send(req.method, 551, h)];
    }
    const session = req.headers.get('session');
    if (session !== undefined) {
      let id: string;
      try {
        id = parseSessionHeader(session).id;
      } catch (err) {
        return [this.errorResponse(req, cseq, err)];
      }
      if (!this.established || id !== this.opts.sessionId) return [this.send(req.method, 454, this.headers(cseq))];
    }
    try {
      switch (req.method) {
        case 'OPTIONS': {
          const h = this.headers(cseq);
          h.set('Public', PUBLIC_METHODS);
          return [this.send(req.method, 200, h)];
        }
        case 'GET_PARAMETER':
        case 'SET_PARAMETER':
          return [this.send(req.method, 200, this.headers(cseq))]; // keepalives
        case 'DESCRIBE':
          return this.describe(req, cseq);
        case 'ANNOUNCE':
          return this.announce(req, cseq);
        case 'SETUP':
          return this.setup(req, cseq);
        case 'PLAY':
          return this.playOrRecord(req, cseq, 'play');
        case 'RECORD':
          return this.playOrRecord(req, cseq, 'record');
        case 'PAUSE':
          // RFC 2326 A.1: Playing → Ready, Recording → Ready; not valid before PLAY/RECORD
          this.allow(req, ['play', 'record']);
          this.aggregateOnly(req);
          this.state = this.state === 'play' ? 'prePlay' : 'preRecord';
          return [this.send(req.method, 200, this.headers(cseq)), { type: 'pause' }];
        case 'TEARDOWN': {
          const h = this.headers(cseq);
          this.state = 'initial';
          this.tracks.length = 0;
          this.established = false;
          this.announced = undefined;
          return [this.send(req.method, 200, h), { type: 'teardown' }];
        }
        default:
          return [this.send(req.method, 501, this.headers(cseq))];
      }
    } catch (err) {
      return [this.errorResponse(req, cseq, err)];
    }
  }

  private allow(req: RtspRequest, states: RtspServerState[]): void {
    if (!states.includes(this.state)) throw new StateError(this.state, states, req.method);
  }

  /** 460 when `req` names one media of a session that SETUP several: they play or record only together. */
  private aggregateOnly(req: RtspRequest): void {
    if (this.tracks.length < 2) return;
    const key = urlKey(req.url);
    if (key === null || key === urlKey(this.baseUrl)) return;
    const t = this.tracks.find((x) => urlKey(controlUrl(this.baseUrl, this.controls[x.media])) === key);
    if (t) throw new ProtocolError(460, `${req.method} of media ${t.media} alone: this session's ${this.tracks.length} media only play or record together`);
  }

  private pathRequest(req: RtspRequest, path: string, query: string): RtspPathRequest {
    const r: RtspPathRequest = { method: req.method, url: req.url, path, query };
    const auth = req.headers.get('authorization');
    if (auth !== undefined) r.authorization = auth;
    return r;
  }

  private target(req: RtspRequest, stripTrack: boolean): { path: string; query: string; base: string } {
    const s = splitRtspUrl(req.url);
    if (!s) throw new ProtocolError(400, `not an rtsp:// URL: '${req.url.slice(0, 80)}'`);
    let path = s.path;
    let base = req.url.replace(/\?.*$/, '').replace(/\/+$/, '');
    if (stripTrack && TRACK_SEGMENT.test(`/${path}`)) {
      path = `/${path}`.replace(TRACK_SEGMENT, '').replace(/^\//, '');
      base = base.replace(TRACK_SEGMENT, '');
    }
    if (!PATH.test(path)) throw new ProtocolError(400, `invalid path '${path.slice(0, 80)}'`);
    return { path, query: s.query, base: s.query ? `${base}?${s.query}` : base };
  }

  private describe(req: RtspRequest, cseq: number): RtspServerAction[] {
    this.allow(req, ['initial', 'prePlay']);
    const { path, query, base } = this.target(req, false);
    if (this.tracks.length > 0 && path !== this.path) throw new ProtocolError(400, 'DESCRIBE of another path inside a session');
    this.path = path;
    this.baseUrl = base;
    this.pending = { req, cseq, kind: 'describe' };
    return [{ type: 'describe', request: this.pathRequest(req, path, query) }];
  }

  private announce(req: RtspRequest, cseq: number): RtspServerAction[] {
    this.allow(req, ['initial']);
    const type = (req.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/sdp') throw new ProtocolError(415, `ANNOUNCE body is '${type ?? ''}', not application/sdp`);
    const { path, query, base } = this.target(req, false);
    const description = parseSdp(new TextDecoder().decode(req.body));
    if (description.media.length === 0) throw new ProtocolError(400, 'ANNOUNCE SDP has no media');
    this.path = path;
    this.baseUrl = base;
    this.announced = description;
    this.controls = description.media.map((m) => m.control);
    this.pending = { req, cseq, kind: 'announce' };
    return [{ type: 'announce', request: this.pathRequest(req, path, query), description }];
  }

  /** Which media a SETUP URL names. */
  private mediaOf(url: string): number {
    const key = urlKey(url);
    if (key === null) throw new ProtocolError(400, `not an rtsp:// URL: '${url.slice(0, 80)}'`);
    for (let i = 0; i < this.controls.length; i++) {
      if (urlKey(controlUrl(this.baseUrl, this.controls[i])) === key) return i;
    }
    if (urlKey(this.baseUrl) === key) {
      // a single-media session may be SETUP with the aggregate URL itself (RFC 2326 C.1.1)
      if (this.controls.length === 1) return 0;
      throw new ProtocolError(459, `SETUP of the aggregate URL of a session with ${this.controls.length} media: SETUP each media's control URL`);
    }
    throw new ProtocolError(404, `SETUP URL '${url.slice(0, 120)}' names no media of this session`);
  }

  private setup(req: RtspRequest, cseq: number): RtspServerAction[] {
    this.allow(req, ['initial', 'prePlay', 'preRecord']);
    if (this.state === 'initial' && this.controls.length === 0) {
      // SETUP without DESCRIBE: look the path up first (gortsplib allows it; some players skip DESCRIBE)
      const { path, query, base } = this.target(req, true);
      this.path = path;
      this.baseUrl = base;
      this.pending = { req, cseq, kind: 'setup' };
      return [{ type: 'describe', request: this.pathRequest(req, path, query) }];
    }
    const media = this.mediaOf(req.url);
    if (this.tracks.some((t) => t.media === media)) throw new ProtocolError(455, `media ${media} is already SETUP`);
    if (this.tracks.length >= MAX_SETUP_TRACKS) throw new LimitError('RTSP SETUP media', MAX_SETUP_TRACKS, this.tracks.length + 1);
    const value = req.headers.get('transport');
    if (value === undefined) throw new ProtocolError(461, 'SETUP without Transport header');
    const offers = parseTransports(value);
    const recording = this.state === 'preRecord';
    if (offers.length > 0 && offers.every((o) => (o.mode === 'record') !== recording)) {
      // Transport mode=record needs an ANNOUNCEd session, mode=play (the default, §12.39) a described one
      throw new StateError(this.state, recording ? ['initial', 'prePlay'] : ['preRecord'], `SETUP with Transport mode=${recording ? 'play' : 'record'}`);
    }
    const chosen = this.chooseTransport(offers, media);
    if (!chosen) throw new ProtocolError(461, `no acceptable transport in '${value.slice(0, 200)}'`);
    this.tracks.push({ media, transport: chosen.transport });
    this.established = true;
    if (this.state === 'initial') this.state = 'prePlay';
    const h = this.headers(cseq);
    h.set('Transport', serializeTransport(chosen.answer));
    return [this.send(req.method, 200, h)];
  }

  private chooseTransport(offers: RtspTransport[], media: number): { transport: RtspTrackTransport; answer: RtspTransport } | undefined {
    const kind = this.tracks[0]?.transport.kind;
    for (const o of offers) {
      if (o.protocol !== 'RTP/AVP') continue;
      if (o.delivery === 'multicast') continue;
      const mode = this.state === 'preRecord' ? 'record' : undefined;
      if (o.lowerTransport === 'TCP') {
        if (kind === 'udp') continue; // one transport per session (gortsplib does the same)
        let channels = o.interleaved;
        const used = (c: number): boolean => this.channelTarget(c) !== undefined;
        if (!channels) {
          let c = media * 2;
          while (used(c) || used(c + 1)) c += 2;
          if (c + 1 > 255) continue;
          channels = [c, c + 1];
        }
        if (used(channels[0]) || used(channels[1])) continue;
        const answer: RtspTransport = { protocol: 'RTP/AVP', lowerTransport: 'TCP', delivery: 'unicast', interleaved: channels };
        if (mode) answer.mode = mode;
        return { transport: { kind: 'tcp', channels }, answer };
      }
      if (!this.opts.udpPorts || !o.clientPort || kind === 'tcp') continue;
      const answer: RtspTransport = {
        protocol: 'RTP/AVP',
        lowerTransport: 'UDP',
        delivery: 'unicast',
        clientPort: o.clientPort,
        serverPort: this.opts.udpPorts,
      };
      if (mode) answer.mode = mode;
      return { transport: { kind: 'udp', clientPorts: o.clientPort }, answer };
    }
    return undefined;
  }

  private playOrRecord(req: RtspRequest, cseq: number, what: 'play' | 'record'): RtspServerAction[] {
    this.allow(req, what === 'play' ? ['prePlay', 'play'] : ['preRecord', 'record']);
    this.aggregateOnly(req);
    // Playing + PLAY → Playing, Recording + RECORD → Recording (RFC 2326 A.1): a seek or refresh, nothing to do
    if (this.state === what) return [this.send(req.method, 200, this.headers(cseq))];
    if (this.tracks.length === 0) throw new ProtocolError(455, `${req.method} before any SETUP`);
    this.pending = { req, cseq, kind: what };
    const s = splitRtspUrl(req.url);
    return [{ type: what, request: this.pathRequest(req, this.path, s?.query ?? ''), tracks: [...this.tracks] }];
  }

  private headers(cseq: number): RtspHeaders {
    const h = new RtspHeaders([
      ['CSeq', String(cseq)],
      ['Server', this.opts.serverName],
    ]);
    // the timeout on every answer of the session, so a client learns it whichever answer it reads it from
    if (this.established) h.set('Session', serializeSessionHeader({ id: this.opts.sessionId, timeoutSec: this.opts.sessionTimeoutSec }));
    return h;
  }

  private send(method: string, status: number, headers: RtspHeaders, body?: Uint8Array, reason?: string): RtspServerAction {
    const res: Parameters<typeof serializeResponse>[0] = { status, headers };
    if (body) res.body = body;
    if (reason) res.reason = reason;
    return { type: 'send', bytes: serializeResponse(res), status, method };
  }

  private errorResponse(req: RtspRequest, cseq: number, err: unknown, challenges?: string[]): RtspServerAction {
    const status = rtspStatusOf(err);
    const h = this.headers(cseq);
    if (status === 401) for (const c of challenges ?? []) h.append('WWW-Authenticate', c);
    if (status === 455) h.set('Allow', this.allowedMethods());
    const action = this.send(req.method, status, h);
    if (action.type === 'send') action.error = err; // the shell logs it (and reports non-StreamgateErrors as bugs)
    return action;
  }

  private allowedMethods(): string {
    const common = ['OPTIONS', 'GET_PARAMETER', 'SET_PARAMETER', 'TEARDOWN'];
    const byState: Record<RtspServerState, string[]> = {
      initial: ['DESCRIBE', 'ANNOUNCE', 'SETUP'],
      prePlay: ['DESCRIBE', 'SETUP', 'PLAY'],
      play: ['PLAY', 'PAUSE'],
      preRecord: ['SETUP', 'RECORD'],
      record: ['RECORD', 'PAUSE'],
    };
    return [...common, ...byState[this.state]].join(', ');
  }
}
