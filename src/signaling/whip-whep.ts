/**
 * The WebRTC HTTP listener (INTERFACE.md, :8889): WHEP (`POST /<path>/whep`), WHIP (`POST /<path>/whip`), session
 * resources (`PATCH` trickle ICE, `DELETE`), CORS preflight with ICE servers, the player page (`GET /<path>/`)
 * and WebSocket signaling (`/<path>/ws`, see ws.ts).
 *
 * Status codes follow the WHEP/WHIP drafts: 201 + Location for a session, 400 malformed SDP, 401 credentials,
 * 404 unknown path or session, 405 other methods, 406 unusable offer (488 in SIP terms), 413 too large,
 * 503 server full.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { AuthError, BusyError, errorMessage, NotFoundError, ParseError, ProtocolError, StreamgateError, UnsupportedError } from '../errors.js';
import { log } from '../log.js';
import type { AccessRequest, PathRegistry } from '../media/bus/registry.js';
import { playerPage } from '../egress/webrtc/player.js';
import { WebrtcEgress, type IceServer, type ViewerSession } from '../egress/webrtc/sfu.js';
import { UdpMux, type IceAdvertise } from '../egress/webrtc/udp-mux.js';
import { defaultSendThreads, SendPool } from '../egress/webrtc/send-pool.js';
import { sendLatencyProbe } from '../egress/webrtc/fanout.js';
import { buildAnswer, iceRestartFragment, iceUfragOf, MAX_OFFER_BYTES, negotiate, parseOffer } from './sdp/negotiate.js';
import { dtlsIdentity, LeanPeer } from '../egress/webrtc/peer.js';
import { WebrtcToBus, type FrameTarget } from '../ingest/webrtc/to-bus.js';
import type { Session } from '../media/bus/session.js';
import { compoundReport, parseRtcp, RtcpReceiverStats, serializeRtcp, type RtcpPacket } from '../media/rtp/rtcp.js';
import { randomBytes, randomUUID } from 'node:crypto';
import { attachWebsocketSignaling } from './ws.js';

/** Options of `startWebrtcServer`, from `listeners.webrtc` in the config. */
export interface WebrtcServerOptions {
  host?: string | undefined;
  port: number;
  /** UDP port for ICE (see the module doc of egress/webrtc/sfu.ts for how it is used) */
  icePort: number;
  iceServers: IceServer[];
  additionalHosts: string[];
  /** coturn `use-auth-secret`: TURN servers get time-limited credentials (TURN REST API) */
  turnSecret?: string | undefined;
  registry: PathRegistry;
  /** cap on WebRTC viewers of the whole server */
  maxViewers?: number;
  /** ICE/DTLS connect timeout per session */
  connectTimeoutMs?: number;
  /** see WebrtcEgressOptions.engine; default 'lean' */
  engine?: 'lean' | 'werift';
  /** threads that protect and send viewers' RTP (lean engine); default: cores − 1, at most 3; 0 = main thread */
  sendThreads?: number;
  /** test seam, not a config key: restricts the candidates answers advertise (udp-mux.ts IceAdvertise) */
  iceAdvertise?: IceAdvertise;
}

/** A running WebRTC listener. */
export interface RunningWebrtcServer {
  port: number;
  /** the egress, for the API and tests */
  egress: WebrtcEgress;
  /** the shared ICE socket (lean engine) */
  mux: UdpMux | undefined;
  /** the send threads (lean engine), for the benchmark's latency probe */
  sendPool: SendPool | undefined;
  close(): Promise<void>;
}

/** Lifetime of TURN REST credentials handed to a client: long enough for a viewing session to (re)connect. */
export const TURN_CREDENTIAL_TTL_S = 24 * 3600;

/** A path as INTERFACE.md defines it: segments of [A-Za-z0-9._~-] joined by '/'. */
const PATH_RE = /^[A-Za-z0-9._~-]+(?:\/[A-Za-z0-9._~-]+)*$/;

/** Parsed request target. */
export type WebrtcRoute =
  | { kind: 'page'; path: string }
  | { kind: 'whep' | 'whip'; path: string }
  | { kind: 'session'; path: string; endpoint: 'whep' | 'whip'; id: string }
  | { kind: 'ws'; path: string }
  | { kind: 'redirect'; location: string }
  | { kind: 'none' };

/** Maps a URL pathname to a route; pure, for tests. */
export function route(pathname: string): WebrtcRoute {
  let p: string;
  try {
    p = decodeURIComponent(pathname);
  } catch {
    return { kind: 'none' };
  }
  if (!p.startsWith('/')) return { kind: 'none' };
  const segs = p.slice(1).split('/');
  const last = segs[segs.length - 1]!;
  const prev = segs[segs.length - 2];
  const pathOf = (n: number): string | null => {
    const kept = segs.slice(0, segs.length - n);
    const s = kept.join('/');
    // '.' and '..' match the character class but would read as relative references in URLs
    return PATH_RE.test(s) && !kept.some((x) => /^\.+$/.test(x)) ? s : null;
  };
  if (last === '') {
    const path = pathOf(1);
    return path ? { kind: 'page', path } : { kind: 'none' };
  }
  if (last === 'whep' || last === 'whip' || last === 'ws') {
    const path = pathOf(1);
    if (!path) return { kind: 'none' };
    return last === 'ws' ? { kind: 'ws', path } : { kind: last, path };
  }
  if ((prev === 'whep' || prev === 'whip') && /^[0-9a-f-]{36}$/.test(last)) {
    const path = pathOf(2);
    return path ? { kind: 'session', path, endpoint: prev, id: last } : { kind: 'none' };
  }
  const path = pathOf(0);
  return path ? { kind: 'redirect', location: `/${path}/` } : { kind: 'none' };
}

/** ICE servers for a client; TURN entries get REST credentials when a secret is set (coturn use-auth-secret). */
export function iceServersFor(servers: IceServer[], turnSecret: string | undefined, nowS = Math.floor(Date.now() / 1000)): IceServer[] {
  return servers.map((s) => {
    const isTurn = s.urls.some((u) => u.startsWith('turn:') || u.startsWith('turns:'));
    if (!isTurn || !turnSecret) return s;
    const username = `${nowS + TURN_CREDENTIAL_TTL_S}:streamgate`;
    const credential = createHmac('sha1', turnSecret).update(username).digest('base64');
    return { urls: s.urls, username, credential };
  });
}

/** `Link` header values announcing ICE servers (WHIP draft §4.4, RFC 8288 syntax). */
export function linkHeader(servers: IceServer[]): string[] {
  const q = (v: string): string => `"${v.replace(/["\\]/g, '\\$&')}"`;
  const out: string[] = [];
  for (const s of servers) {
    for (const u of s.urls) {
      let v = `<${u}>; rel="ice-server"`;
      if (s.username !== undefined) v += `; username=${q(s.username)}`;
      if (s.credential !== undefined) v += `; credential=${q(s.credential)}; credential-type="password"`;
      out.push(v);
    }
  }
  return out;
}

/** HTTP status for an error thrown while handling a request. */
export function statusOf(err: unknown): number {
  if (err instanceof ProtocolError) return err.status === 488 ? 406 : err.status;
  if (err instanceof ParseError) return 400;
  if (err instanceof NotFoundError) return 404;
  if (err instanceof AuthError) return 401;
  if (err instanceof BusyError) return 503;
  if (err instanceof UnsupportedError) return 406;
  if (err instanceof StreamgateError && err.code === 'SG_LIMIT') return 413;
  return 500;
}

/** Credentials of a request: `?user=&pass=`, `?key=`, HTTP Basic, or `Authorization: Bearer <key>` (OBS). */
export function accessOf(req: IncomingMessage, url: URL): Omit<AccessRequest, 'action' | 'path'> {
  const out: Omit<AccessRequest, 'action' | 'path'> = { protocol: 'webrtc', ip: req.socket.remoteAddress ?? '' };
  const user = url.searchParams.get('user');
  const pass = url.searchParams.get('pass');
  const key = url.searchParams.get('key');
  if (user !== null) out.user = user;
  if (pass !== null) out.pass = pass;
  if (key !== null) out.key = key;
  const auth = req.headers.authorization;
  // OBS's WHIP output sends its "Bearer Token" field this way: it is the stream key (as MediaMTX reads it)
  if (auth !== undefined && /^Bearer /i.test(auth) && out.key === undefined) out.key = auth.slice(7).trim();
  if (auth?.startsWith('Basic ') && out.user === undefined) {
    const dec = Buffer.from(auth.slice(6), 'base64').toString();
    const i = dec.indexOf(':');
    if (i >= 0) {
      out.user = dec.slice(0, i);
      out.pass = dec.slice(i + 1);
    }
  }
  if (url.search) out.query = url.search.slice(1);
  return out;
}

const CORS: Record<string, string> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'OPTIONS, GET, POST, PATCH, DELETE',
  'Access-Control-Allow-Headers': 'Authorization, Content-Type, If-Match',
  'Access-Control-Expose-Headers': 'Link, Location, ETag, Accept-Patch',
};

/** Reads a request body up to `limit` bytes. */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.byteLength;
      if (n > limit) {
        reject(new ProtocolError(413, `body over ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * Starts the WebRTC listener.
 * @returns the bound port and close(), which ends every session.
 */
export async function startWebrtcServer(opts: WebrtcServerOptions): Promise<RunningWebrtcServer> {
  const engine = opts.engine ?? 'lean';
  // the lean engine puts every peer on icePort (0 in tests: any free port)
  // send threads have IPv4 sockets: an IPv6 bind host leaves every peer on the main thread
  const threads = engine === 'lean' && isIP(opts.host ?? '') !== 6 ? (opts.sendThreads ?? defaultSendThreads()) : 0;
  const iceOpts = { additionalHosts: opts.additionalHosts, ...(opts.iceAdvertise ? { advertise: opts.iceAdvertise } : {}) };
  const mux = engine === 'lean' ? await UdpMux.bind(opts.icePort, opts.host, threads > 0, iceOpts) : undefined;
  const sendPool = mux && threads > 0 ? await SendPool.start(threads, mux.port, opts.host, (d, a, p) => mux.receive(d, a, p)) : undefined;
  if (sendPool) sendPool.onLatency = (samples) => sendLatencyProbe.samples?.push(...samples);
  const publishers = new Map<string, WhipPublisher>();
  const egressOpts: ConstructorParameters<typeof WebrtcEgress>[1] = {
    additionalHosts: opts.additionalHosts,
    engine,
    iceHost: opts.host,
    // viewers' PLI/FIR go to whatever publishes the path (WHIP, RTSP, camera), rate-limited by the bus
    requestKeyframe: (path) => void opts.registry.requestKeyframe(path, 'webrtc viewer PLI/FIR'),
  };
  if (mux) egressOpts.mux = mux;
  if (sendPool) egressOpts.sendPool = sendPool;
  if (opts.maxViewers !== undefined) egressOpts.maxViewers = opts.maxViewers;
  if (opts.connectTimeoutMs !== undefined) egressOpts.connectTimeoutMs = opts.connectTimeoutMs;
  const egress = new WebrtcEgress(opts.registry, egressOpts);
  const clientIce = (): IceServer[] => iceServersFor(opts.iceServers, opts.turnSecret);

  /**
   * ICE state of each session as PATCH needs it: the client's current ufrag (another one in a PATCH is an ICE
   * restart) and the entity tag, which changes with every restart (RFC 9725 §4.3.1).
   */
  const iceOf = new Map<string, { remoteUfrag: string | undefined; etag: string }>();

  /** Registers a new session's ICE state; ended sessions are forgotten in bulk (at most twice the live ones). */
  const trackIce = (id: string, offer: string): string => {
    const etag = `"${id}"`;
    iceOf.set(id, { remoteUfrag: iceUfragOf(offer), etag });
    if (iceOf.size > 2 * (publishers.size + egress.sessions.size) + 64) {
      for (const k of iceOf.keys()) if (!publishers.has(k) && !egress.sessions.has(k)) iceOf.delete(k);
    }
    return etag;
  };
  /** ICE restarts served, numbering the entity tags they produce */
  let restarts = 0;

  /**
   * PATCH on a session (RFC 9725 §4.3). Trickle ICE fragments (RFC 8840) are accepted — this ICE-lite server learns
   * the client's addresses from its checks, so candidates need no action (the werift engine is given them). An ICE
   * restart (a new ice-ufrag) gets new local credentials: 200 with them in an SDP fragment and a new ETag; the
   * session's DTLS and SRTP continue. `restart` is undefined where restarts are not supported (501).
   */
  const patch = async (
    req: IncomingMessage,
    res: ServerResponse,
    id: string,
    session: { answer: string; restart?: () => { ufrag: string; pwd: string }; addCandidate?: (c: string) => Promise<void> },
  ): Promise<void> => {
    const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (ct !== 'application/trickle-ice-sdpfrag') return send(res, 415, 'Content-Type must be application/trickle-ice-sdpfrag\n');
    const ifMatch = req.headers['if-match'];
    const ice = iceOf.get(id);
    if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== ice?.etag) return send(res, 412, 'If-Match does not name the current state of this session\n');
    const body = await readBody(req, MAX_OFFER_BYTES);
    const ufrag = iceUfragOf(body);
    if (ice && ufrag !== undefined && ice.remoteUfrag !== undefined && ufrag !== ice.remoteUfrag) {
      const frag = session.restart ? restartFragment(session.answer, session.restart) : null;
      if (!frag) return send(res, 501, 'ICE restarts are not supported here: start a new session\n');
      ice.remoteUfrag = ufrag;
      ice.etag = `"${id}.${++restarts}"`;
      log.info({ session: id }, 'webrtc ICE restart');
      res.writeHead(200, { ...CORS, 'Content-Type': 'application/trickle-ice-sdpfrag', ETag: ice.etag });
      res.end(frag);
      return;
    }
    if (session.addCandidate) for (const l of body.split(/\r?\n/)) if (l.startsWith('a=candidate:')) await session.addCandidate(l.slice(2));
    send(res, 204, '');
  };

  /** New local ICE credentials for a session, as the PATCH answer's fragment; null when there is nothing to name. */
  const restartFragment = (answer: string, restart: () => { ufrag: string; pwd: string }): string | null => {
    if (!mux || iceRestartFragment(answer, 'x', 'x', []) === null) return null;
    const c = restart();
    return iceRestartFragment(answer, c.ufrag, c.pwd, mux.candidates());
  };

  const send = (res: ServerResponse, status: number, body: string, headers: Record<string, string | string[]> = {}): void => {
    res.writeHead(status, { ...CORS, 'Content-Type': 'text/plain; charset=utf-8', ...headers });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    const r = route(url.pathname);
    const method = req.method ?? 'GET';
    if (r.kind === 'none' || r.kind === 'ws') return send(res, 404, 'not found\n');
    if (r.kind === 'redirect') return send(res, 301, '', { Location: r.location + url.search });
    if (method === 'OPTIONS') {
      res.writeHead(204, { ...CORS, Link: linkHeader(clientIce()), 'Accept-Post': 'application/sdp' });
      res.end();
      return;
    }
    if (r.kind === 'page') {
      if (method !== 'GET' && method !== 'HEAD') return send(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD, OPTIONS' });
      res.writeHead(200, { ...CORS, 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-cache' });
      res.end(method === 'HEAD' ? undefined : playerPage(r.path));
      return;
    }
    if (r.kind === 'whep' || r.kind === 'whip') {
      if (method !== 'POST') return send(res, 405, 'method not allowed\n', { Allow: 'POST, OPTIONS' });
      const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (ct !== 'application/sdp') return send(res, 415, 'Content-Type must be application/sdp\n');
      const offer = await readBody(req, MAX_OFFER_BYTES);
      if (r.kind === 'whip') {
        if (!mux) return send(res, 405, 'WHIP needs the lean WebRTC engine\n');
        const pub = await createPublisher(r.path, offer, accessOf(req, url));
        publishers.set(pub.id, pub);
        const etag = trackIce(pub.id, offer);
        pub.onClosed = () => {
          publishers.delete(pub.id);
          iceOf.delete(pub.id);
        };
        res.writeHead(201, {
          ...CORS,
          'Content-Type': 'application/sdp',
          Location: `/${r.path}/whip/${pub.id}`,
          ETag: etag,
          'Accept-Patch': 'application/trickle-ice-sdpfrag',
          Link: linkHeader(clientIce()),
        });
        res.end(pub.answer);
        return;
      }
      const session: ViewerSession = await egress.createViewer(r.path, offer, accessOf(req, url));
      const etag = trackIce(session.id, offer);
      res.writeHead(201, {
        ...CORS,
        'Content-Type': 'application/sdp',
        Location: `/${r.path}/whep/${session.id}`,
        ETag: etag,
        'Accept-Patch': 'application/trickle-ice-sdpfrag',
        Link: linkHeader(clientIce()),
      });
      res.end(session.answer);
      return;
    }
    if (r.kind !== 'session') return send(res, 404, 'not found\n');
    if (r.endpoint === 'whip') {
      const pub = publishers.get(r.id);
      if (!pub || pub.path !== r.path) return send(res, 404, 'no such session\n');
      if (method === 'DELETE') {
        pub.close('DELETE by the client');
        return send(res, 200, '');
      }
      if (method === 'PATCH') return patch(req, res, r.id, { answer: pub.answer, restart: () => pub.restartIce() });
      return send(res, 405, 'method not allowed\n', { Allow: 'PATCH, DELETE, OPTIONS' });
    }
    const session = egress.sessions.get(r.id);
    if (!session || session.path !== r.path) return send(res, 404, 'no such session\n');
    if (method === 'DELETE') {
      session.close('DELETE by the client');
      return send(res, 200, '');
    }
    if (method === 'PATCH') {
      const peer = (session as { peer?: unknown }).peer;
      const restart = peer instanceof LeanPeer ? () => peer.restartIce() : undefined;
      return patch(req, res, r.id, { answer: session.answer, addCandidate: (c) => session.addRemoteCandidate(c), ...(restart ? { restart } : {}) });
    }
    return send(res, 405, 'method not allowed\n', { Allow: 'PATCH, DELETE, OPTIONS' });
  };

  /** A WHIP publisher: ICE-lite/DTLS/SRTP peer on the shared port, RTP → WebrtcToBus → the path's Stream. */
  const createPublisher = async (path: string, offerSdp: string, access: Omit<AccessRequest, 'action' | 'path'>): Promise<WhipPublisher> => {
    const offer = parseOffer(offerSdp);
    const neg = negotiate(offer, { role: 'receive', video: 'any', audio: true });
    const id = await dtlsIdentity();
    const peer = new LeanPeer(mux!, id, offer.fingerprints);
    const pub = new WhipPublisher(path, peer, opts.registry);
    try {
      opts.registry.addSession(pub);
      const stream = await opts.registry.addPublisher(path, pub, access);
      pub.attach(stream, { video: neg.video?.codec?.payloadType ?? -1, audio: neg.audio?.codec?.payloadType ?? -1 }, opts.connectTimeoutMs ?? 15_000);
    } catch (err) {
      pub.close(errorMessage(err));
      throw err;
    }
    pub.answer = buildAnswer(offer, neg, {
      iceUfrag: peer.localUfrag,
      icePwd: peer.localPwd,
      fingerprint: id.fingerprint,
      candidates: mux!.candidates(),
      direction: 'recvonly',
      cname: pub.id,
      streamId: 'streamgate',
      sessionId: String(Date.now()),
    });
    return pub;
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = statusOf(err);
      const msg = errorMessage(err);
      if (status >= 500) log.error({ err, url: req.url }, 'webrtc: request failed');
      else log.info({ status, url: req.url, reason: msg, remote: req.socket.remoteAddress }, 'webrtc: request refused');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const headers: Record<string, string> = {};
      if (status === 401) headers['WWW-Authenticate'] = 'Basic realm="streamgate"';
      send(res, status, `${msg}\n`, headers);
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const signaling = attachWebsocketSignaling(server, { egress, iceServers: clientIce });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port, host: opts.host, engine, icePort: mux?.port }, 'webrtc listener up');
  return {
    port,
    egress,
    mux,
    sendPool,
    close: () =>
      new Promise<void>((resolve) => {
        egress.closeAll('server shutting down');
        for (const p of [...publishers.values()]) p.close('server shutting down');
        signaling.close();
        mux?.close();
        void sendPool?.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Receiver report period for WHIP publishers: browsers ramp their bitrate up on loss-free reports (RFC 3550 §6.2 allows ≥ 1 s at these rates). */
export const WHIP_RR_INTERVAL_MS = 1000;

/** A WHIP publish session. */
export class WhipPublisher implements Session {
  readonly id = randomUUID();
  readonly protocol = 'webrtc' as const;
  readonly role = 'publisher' as const;
  state: 'connecting' | 'publish' | 'closed' = 'connecting';
  readonly createdAt = Date.now();
  bytesIn = 0;
  bytesOut = 0;
  remoteAddr = '';
  answer = '';
  onClosed: ((reason: string) => void) | undefined;
  private toBus: WebrtcToBus | undefined;
  private readonly rx = new Map<number, RtcpReceiverStats>();
  private readonly ssrc = randomBytes(4).readUInt32BE(0);
  private rrTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private videoSsrc = -1;

  constructor(
    public path: string,
    private readonly peer: LeanPeer,
    private readonly registry: PathRegistry,
  ) {
    peer.onClosed = (reason) => this.close(reason);
  }

  /** Starts feeding `stream` once DTLS is up. */
  attach(stream: FrameTarget, pts: { video: number; audio: number }, connectTimeoutMs: number): void {
    this.toBus = new WebrtcToBus(stream, pts);
    const toBus = this.toBus;
    this.connectTimer = setTimeout(() => this.close(`ICE/DTLS not connected within ${connectTimeoutMs} ms`), connectTimeoutMs);
    this.connectTimer.unref();
    this.peer.onConnected = () => {
      clearTimeout(this.connectTimer);
      this.state = 'publish';
      this.remoteAddr = `${this.peer.address}:${this.peer.port}`;
      this.rrTimer = setInterval(() => this.reports(), WHIP_RR_INTERVAL_MS);
      this.rrTimer.unref();
    };
    this.peer.onRtp = (plain) => {
      const now = performance.now();
      this.bytesIn += plain.byteLength;
      const ssrc = plain.readUInt32BE(8);
      let st = this.rx.get(ssrc);
      const pt = plain[1]! & 0x7f;
      if (!st && this.rx.size < 8) this.rx.set(ssrc, (st = new RtcpReceiverStats(ssrc, pt === pts.video ? 90000 : 48000)));
      if (pt === pts.video) this.videoSsrc = ssrc;
      st?.onRtp(plain.readUInt16BE(2), plain.readUInt32BE(4), now);
      toBus.push(plain, now);
      if (toBus.wantsKeyframe(now)) this.sendPli();
    };
    this.peer.onRtcp = (plain) => {
      try {
        for (const p of parseRtcp(plain)) if (p.type === 'sr') this.rx.get(p.ssrc)?.onSenderReport(p, performance.now());
      } catch {
        // malformed RTCP from the publisher: ignored (its media still flows)
      }
    };
  }

  /** ICE restart asked by the client (PATCH): new local credentials on the same peer. */
  restartIce(): { ufrag: string; pwd: string } {
    return this.peer.restartIce();
  }

  /** A reader needs a keyframe (the bus calls this, rate-limited): PLI to the browser/OBS that publishes. */
  requestKeyframe(): void {
    if (this.state === 'publish') this.sendPli();
  }

  private sendPli(): void {
    if (this.videoSsrc < 0) return;
    const pli: RtcpPacket = { type: 'pli', senderSsrc: this.ssrc, mediaSsrc: this.videoSsrc };
    this.peer.sendRtcp(serializeRtcp(compoundReport({ type: 'rr', ssrc: this.ssrc, reports: [] }, this.id, [pli])));
  }

  private reports(): void {
    const now = performance.now();
    const blocks = [...this.rx.values()].map((s) => s.reportBlock(now)).filter((b) => b !== null);
    this.peer.sendRtcp(serializeRtcp(compoundReport({ type: 'rr', ssrc: this.ssrc, reports: blocks }, this.id)));
  }

  stats(): Record<string, unknown> {
    return { state: this.state, ...(this.toBus?.stats() ?? {}) };
  }

  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.connectTimer);
    clearInterval(this.rrTimer);
    this.peer.close(reason);
    this.registry.removePublisher(this);
    this.registry.removeSession(this, reason);
    this.onClosed?.(reason);
  }
}
