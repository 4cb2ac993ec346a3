/**
 * Pull source for `paths.<p>.source: rtsp://[user:pass@]host[:port]/...`: reads a camera (or another server) with
 * OPTIONS, DESCRIBE, SETUP, PLAY over UDP or TCP interleaved and publishes it into the frame bus as a session of
 * protocol `source` (after gortsplib `client.go` and mediamtx `staticsources/rtsp`).
 *
 * `rtspTransport: automatic` tries UDP first and falls back to TCP when the camera refuses UDP (461) or no packet
 * arrives; the choice is kept for later reconnects. Digest/Basic credentials from the URL answer a 401.
 * Keepalives (GET_PARAMETER or OPTIONS) every half session timeout, receiver reports every 5 s, reconnects with
 * exponential backoff while the registry keeps the source running.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { computeDigestResponse, parseAuthParams } from '../../auth.js';
import { errorMessage, ParseError, ProtocolError, StreamgateError, UnsupportedError } from '../../errors.js';
import type { SourceHandle } from '../../media/bus/registry.js';
import { redactUrl } from '../../media/bus/registry.js';
import { randomUint32 } from '../../media/rtp/packet.js';
import { compoundReport, serializeRtcp } from '../../media/rtp/rtcp.js';
import { controlUrl, parseSdp, type SessionDescription } from '../../signaling/sdp/description.js';
import {
  cseqOf,
  parseSessionHeader,
  parseTransport,
  RtspHeaders,
  RtspParser,
  serializeInterleaved,
  serializeRequest,
  serializeResponse,
  type RtspMessage,
  type RtspResponse,
} from './message.js';
import { PullSource, PULL_SOURCE_MAX_BACKOFF_MS, PULL_SOURCE_MIN_BACKOFF_MS, type PullSourceOptions, type PullSourcePaths } from '../pull-source.js';
import { carriedMedia, RtspToBus } from './to-bus.js';

/** First pause before reconnecting; doubled after every failed attempt (the pull-source default). */
export const RTSP_SOURCE_MIN_BACKOFF_MS = PULL_SOURCE_MIN_BACKOFF_MS;
/** Longest pause between attempts, so a camera that is down is not hammered (the pull-source default). */
export const RTSP_SOURCE_MAX_BACKOFF_MS = PULL_SOURCE_MAX_BACKOFF_MS;
/** A request without answer for this long fails the attempt (cameras answer in well under a second). */
export const RTSP_REQUEST_TIMEOUT_MS = 10_000;
/** With `automatic`, PLAY over UDP that brings no packet within this long is retried over TCP (firewalls, NAT). */
export const UDP_FALLBACK_MS = 3000;
/** Receiver reports to the camera every 5 s (RFC 3550 §6.2 minimum); some cameras stop sending without them. */
const RR_INTERVAL_MS = 5000;
/** Default RTSP session timeout when the camera names none (RFC 2326 §12.37). */
const DEFAULT_SESSION_TIMEOUT_SEC = 60;
const USER_AGENT = 'streamgate';

/** How the source reaches the camera (config `rtspTransport`). */
export type RtspSourceTransport = 'automatic' | 'udp' | 'tcp';

/** The registry as the pull source uses it (PathRegistry implements it). */
export type RtspSourcePaths = PullSourcePaths;

/** Options of {@link startRtspSource}. */
export interface RtspSourceOptions extends PullSourceOptions {
  transport?: RtspSourceTransport;
  /** no media for this long closes the connection (default 10 s) */
  readTimeoutMs?: number;
}

/**
 * Starts pulling `url` into `path`. One API session (protocol `source`) lives as long as the source; it is the
 * path's publisher while a connection plays. `close()` stops it for good.
 */
export function startRtspSource(path: string, url: string, registry: RtspSourcePaths, opts: RtspSourceOptions = {}): SourceHandle {
  return new RtspSource(path, url, registry, opts).start();
}

/** A SourceStarter for the registry: `transportOf(path)` reads the path's `rtspTransport` from the config. */
export function rtspSourceStarter(opts: { transportOf?(path: string): RtspSourceTransport; readTimeoutMs?: number } = {}) {
  return (path: string, url: string, registry: RtspSourcePaths): SourceHandle => {
    const o: RtspSourceOptions = { transport: opts.transportOf?.(path) ?? 'automatic' };
    if (opts.readTimeoutMs !== undefined) o.readTimeoutMs = opts.readTimeoutMs;
    return startRtspSource(path, url, registry, o);
  };
}

/** Where an RTSP pull source connects, from its URL. */
export interface RtspSourceTarget {
  /** the URL without credentials */
  requestUrl: string;
  host: string;
  port: number;
  user?: string;
  pass?: string;
}

/** Credentials and the request URL of a source URL (credentials never go on the wire in the URL). */
export function parseSourceUrl(url: string): RtspSourceTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ParseError('rtsp-url', `not a URL: ${redactUrl(url)}`);
  }
  if (u.protocol !== 'rtsp:') throw new UnsupportedError(`${u.protocol}// sources are not supported by the RTSP client`);
  if (!u.hostname) throw new ParseError('rtsp-url', 'no host');
  const out: RtspSourceTarget = {
    requestUrl: '',
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 554,
  };
  if (u.username) out.user = decodeURIComponent(u.username);
  if (u.password) out.pass = decodeURIComponent(u.password);
  u.username = '';
  u.password = '';
  out.requestUrl = u.toString();
  return out;
}

/**
 * The Authorization header answering a WWW-Authenticate challenge: Digest (RFC 2617, MD5/SHA-256, with or
 * without qop=auth) when offered, else Basic. Null when no challenge is usable.
 */
export function authorizationFor(challenges: readonly string[], user: string, pass: string, method: string, uri: string, nc = 1): string | null {
  const digest = challenges.find((c) => /^digest\s/i.test(c));
  if (digest) {
    const p = parseAuthParams(digest.replace(/^digest\s+/i, ''));
    const realm = p?.get('realm');
    const nonce = p?.get('nonce');
    if (p && realm !== undefined && nonce !== undefined) {
      const algorithm = p.get('algorithm');
      const qop = p.get('qop')?.split(',').map((s) => s.trim()).includes('auth') ? 'auth' : undefined;
      const cnonce = randomBytes(8).toString('hex');
      const ncs = nc.toString(16).padStart(8, '0');
      const inputs: Parameters<typeof computeDigestResponse>[0] = { username: user, realm, pass, method, uri, nonce };
      if (algorithm) inputs.algorithm = algorithm;
      if (qop) Object.assign(inputs, { qop, nc: ncs, cnonce });
      const response = computeDigestResponse(inputs);
      if (response !== null) {
        const parts = [`username="${user}"`, `realm="${realm}"`, `nonce="${nonce}"`, `uri="${uri}"`, `response="${response}"`];
        if (algorithm) parts.push(`algorithm=${algorithm}`);
        const opaque = p.get('opaque');
        if (opaque !== undefined) parts.push(`opaque="${opaque}"`);
        if (qop) parts.push(`qop=${qop}`, `nc=${ncs}`, `cnonce="${cnonce}"`);
        return `Digest ${parts.join(', ')}`;
      }
    }
  }
  if (challenges.some((c) => /^basic(\s|$)/i.test(c))) return `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  return null;
}

/** One connection attempt. */
interface Attempt {
  target: RtspSourceTarget;
  socket: net.Socket;
  parser: RtspParser;
  cseq: number;
  session?: string;
  timeoutSec: number;
  auth?: { challenges: string[] };
  waiting?: { resolve(r: RtspResponse): void; reject(e: Error): void; timer: NodeJS.Timeout };
  transport: 'udp' | 'tcp';
  udp?: { rtp: dgram.Socket; rtcp: dgram.Socket };
  /** media index → where its packets come from / RTCP goes */
  media: Map<number, { channels?: [number, number]; serverPorts?: [number, number] }>;
  toBus?: RtspToBus;
  publishing: boolean;
  lastMediaMs: number;
  playingSinceMs: number;
  nextKeepaliveMs: number;
  nextRrMs: number;
  keepaliveMethod: string;
  rrSsrc: number;
  done: boolean;
}

/** The RTSP pull source: one TCP connection (plus a UDP pair) per attempt, inside the {@link PullSource} loop. */
class RtspSource extends PullSource<RtspSourceTarget> {
  private transport: 'udp' | 'tcp';
  private readonly automatic: boolean;
  private attempt: Attempt | undefined;
  private keyframeRequestsSent = 0;

  constructor(
    path: string,
    url: string,
    registry: RtspSourcePaths,
    private readonly opts: RtspSourceOptions,
  ) {
    super({ ...opts, path, url, registry, remoteAddr: redactUrl(url), parseTarget: parseSourceUrl });
    this.automatic = (opts.transport ?? 'automatic') === 'automatic';
    this.transport = opts.transport === 'tcp' ? 'tcp' : 'udp';
  }

  override stats(): Record<string, unknown> {
    return {
      connects: this.connects,
      attempts: this.attempts,
      transport: this.transport,
      lastError: this.lastError || null,
      keyframeRequestsSent: this.keyframeRequestsSent,
      tracks: this.attempt?.toBus?.stats() ?? [],
    };
  }

  protected override hasAttempt(): boolean {
    return this.attempt !== undefined;
  }

  protected override connect(t: RtspSourceTarget): void {
    const socket = net.connect({ host: t.host, port: t.port });
    const a: Attempt = {
      target: t,
      socket,
      parser: new RtspParser(),
      cseq: 0,
      timeoutSec: DEFAULT_SESSION_TIMEOUT_SEC,
      transport: this.transport,
      media: new Map(),
      publishing: false,
      lastMediaMs: 0,
      playingSinceMs: 0,
      nextKeepaliveMs: 0,
      nextRrMs: 0,
      keepaliveMethod: 'OPTIONS',
      rrSsrc: randomUint32(),
      done: false,
    };
    this.attempt = a;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(a, chunk));
    socket.on('error', (err) => a.done || this.disconnected(`socket error: ${err.message}`));
    socket.on('close', () => a.done || this.disconnected('connection closed by the camera'));
    socket.once('connect', () => {
      this.run(a).catch((err: unknown) => {
        if (!a.done) this.disconnected(errorMessage(err), err);
      });
    });
  }

  private onData(a: Attempt, chunk: Buffer): void {
    if (a.done) return;
    this.bytesIn += chunk.byteLength;
    let msgs: RtspMessage[];
    try {
      msgs = a.parser.push(chunk);
    } catch (err) {
      this.disconnected(`bad data from the camera: ${errorMessage(err)}`, err);
      return;
    }
    const now = this.timers.now();
    for (const m of msgs) {
      if (a.done) return;
      if (m.kind === 'response') {
        const w = a.waiting;
        if (w && cseqOf(m.headers) === a.cseq) {
          a.waiting = undefined;
          clearTimeout(w.timer);
          w.resolve(m);
        }
      } else if (m.kind === 'interleaved') {
        for (const [index, info] of a.media) {
          if (info.channels?.[0] === m.channel) this.onMedia(a, index, false, m.data, now);
          else if (info.channels?.[1] === m.channel) this.onMedia(a, index, true, m.data, now);
        }
      } else {
        // a request from the camera (some send GET_PARAMETER/OPTIONS keepalives): answer 200
        this.write(a, serializeResponse({ status: 200, headers: new RtspHeaders([['CSeq', m.headers.get('cseq') ?? '0']]) }));
      }
    }
  }

  private onMedia(a: Attempt, index: number, rtcp: boolean, data: Uint8Array, now: number): void {
    a.lastMediaMs = now;
    if (!a.toBus) return;
    if (rtcp) a.toBus.pushRtcp(index, data, now);
    else a.toBus.pushRtp(index, data, now);
  }

  private write(a: Attempt, bytes: Uint8Array): void {
    if (a.done || a.socket.destroyed) return;
    this.bytesOut += bytes.byteLength;
    a.socket.write(bytes);
  }

  /** Sends a request and waits for its answer; answers a 401 once with the URL's credentials. */
  private async request(a: Attempt, method: string, url: string, extra: [string, string][] = [], retried = false): Promise<RtspResponse> {
    const headers = new RtspHeaders([['CSeq', String(++a.cseq)], ['User-Agent', USER_AGENT], ...extra]);
    if (a.session) headers.set('Session', a.session);
    const t = a.target;
    if (a.auth && t.user !== undefined) {
      const value = authorizationFor(a.auth.challenges, t.user, t.pass ?? '', method, url);
      if (value) headers.set('Authorization', value);
    }
    const res = await new Promise<RtspResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        a.waiting = undefined;
        reject(new StreamgateError('SG_TIMEOUT', `no answer to ${method} within ${RTSP_REQUEST_TIMEOUT_MS} ms`));
      }, RTSP_REQUEST_TIMEOUT_MS);
      a.waiting = { resolve, reject, timer };
      this.write(a, serializeRequest({ method, url, headers }));
    });
    if (res.status === 401 && !retried && t.user !== undefined) {
      a.auth = { challenges: res.headers.getAll('www-authenticate') };
      return this.request(a, method, url, extra, true);
    }
    return res;
  }

  private expectOk(res: RtspResponse, what: string): void {
    if (res.status !== 200) throw new ProtocolError(res.status, `${what} answered ${res.status} ${res.reason}`);
  }

  /** One attempt: DESCRIBE → SETUP → publish → PLAY; then media flows until something fails. */
  private async run(a: Attempt): Promise<void> {
    const t = a.target;
    this.state = 'describe';
    const options = await this.request(a, 'OPTIONS', t.requestUrl);
    if (options.status === 200 && /GET_PARAMETER/i.test(options.headers.get('public') ?? '')) a.keepaliveMethod = 'GET_PARAMETER';
    const described = await this.request(a, 'DESCRIBE', t.requestUrl, [['Accept', 'application/sdp']]);
    this.expectOk(described, 'DESCRIBE');
    const desc: SessionDescription = parseSdp(new TextDecoder().decode(described.body));
    const base = described.headers.get('content-base') ?? described.headers.get('content-location') ?? t.requestUrl;
    const carried = carriedMedia(desc.media);
    if (!carried.some(Boolean)) throw new UnsupportedError('the camera offers no H.264, AAC or Opus media');

    this.state = 'setup';
    for (let i = 0; i < desc.media.length; i++) {
      if (!carried[i]) continue;
      await this.setup(a, i, controlUrl(base, desc.media[i]?.control));
    }

    const stream = await this.registry.addPublisher(this.path, this, { protocol: 'source', ip: '' });
    if (a.done) {
      this.registry.removePublisher(this);
      return;
    }
    a.publishing = true;
    // every carried media was SETUP, so the to-bus and the session agree on which media flow
    a.toBus = new RtspToBus(stream, desc.media, this.log);

    this.state = 'play';
    const play = await this.request(a, 'PLAY', controlUrl(base, desc.control), [['Range', 'npt=0.000-']]);
    this.expectOk(play, 'PLAY');
    const now = this.timers.now();
    a.playingSinceMs = now;
    a.lastMediaMs = now;
    a.nextKeepaliveMs = now + (a.timeoutSec * 1000) / 2;
    a.nextRrMs = now + RR_INTERVAL_MS;
    this.state = 'playing';
    this.connects++;
    this.resetBackoff();
    this.log.info({ transport: a.transport, media: [...a.media.keys()] }, 'pull source playing');
    // UDP: a first packet toward the camera's ports opens NAT/firewall state on our side
    if (a.udp) for (const [, info] of a.media) if (info.serverPorts) this.punch(a, info.serverPorts);
  }

  private async setup(a: Attempt, index: number, url: string): Promise<void> {
    let transport: string;
    if (a.transport === 'udp') {
      a.udp ??= await this.bindUdpPair(a);
      const [rtpPort, rtcpPort] = [(a.udp.rtp.address() as net.AddressInfo).port, (a.udp.rtcp.address() as net.AddressInfo).port];
      // one local pair serves every media: packets are told apart by the camera's source port
      transport = `RTP/AVP;unicast;client_port=${rtpPort}-${rtcpPort}`;
    } else {
      transport = `RTP/AVP/TCP;unicast;interleaved=${index * 2}-${index * 2 + 1}`;
    }
    const res = await this.request(a, 'SETUP', url, [['Transport', transport]]);
    if (res.status === 461 && a.transport === 'udp' && this.automatic) {
      this.transport = 'tcp';
      throw new ProtocolError(461, 'the camera refuses UDP: retrying over TCP');
    }
    this.expectOk(res, 'SETUP');
    const session = res.headers.get('session');
    if (session !== undefined && !a.session) {
      const s = parseSessionHeader(session);
      a.session = s.id;
      if (s.timeoutSec) a.timeoutSec = s.timeoutSec;
    }
    const answer = parseTransport(res.headers.get('transport') ?? transport);
    if (a.transport === 'tcp') a.media.set(index, { channels: answer.interleaved ?? [index * 2, index * 2 + 1] });
    else a.media.set(index, { serverPorts: answer.serverPort ?? [0, 0] });
  }

  private async bindUdpPair(a: Attempt): Promise<{ rtp: dgram.Socket; rtcp: dgram.Socket }> {
    const host = a.target.host;
    const type = net.isIPv6(host) ? 'udp6' : 'udp4';
    for (let i = 0; i < 20; i++) {
      const rtp = dgram.createSocket(type);
      const rtcp = dgram.createSocket(type);
      try {
        await new Promise<void>((resolve, reject) => {
          rtp.once('error', reject);
          rtp.bind(0, () => resolve());
        });
        const port = (rtp.address() as net.AddressInfo).port;
        if (port % 2 !== 0 || port === 65535) throw new Error('odd RTP port');
        await new Promise<void>((resolve, reject) => {
          rtcp.once('error', reject);
          rtcp.bind(port + 1, () => resolve());
        });
        const onMessage = (isRtcp: boolean) => (msg: Buffer, rinfo: dgram.RemoteInfo) => {
          if (a.done) return;
          this.bytesIn += msg.byteLength;
          for (const [index, info] of a.media) {
            const expected = info.serverPorts?.[isRtcp ? 1 : 0];
            // the camera's source port tells media apart; cameras that do not say (0) get the first media
            if (expected === rinfo.port || (expected === 0 && a.media.size === 1)) {
              this.onMedia(a, index, isRtcp, new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), this.timers.now());
              return;
            }
          }
        };
        rtp.on('message', onMessage(false));
        rtcp.on('message', onMessage(true));
        rtp.on('error', () => {});
        rtcp.on('error', () => {});
        return { rtp, rtcp };
      } catch {
        rtp.close();
        try {
          rtcp.close();
        } catch {
          // not bound yet
        }
      }
    }
    throw new StreamgateError('SG_BUSY', 'no free local UDP port pair');
  }

  private punch(a: Attempt, ports: [number, number]): void {
    const host = a.target.host;
    if (!a.udp || ports[0] === 0) return;
    const rr = serializeRtcp(compoundReport({ type: 'rr', ssrc: a.rrSsrc, reports: [] }, `streamgate-${this.id}`));
    a.udp.rtcp.send(rr, ports[1], host);
  }

  protected override tick(now: number): void {
    const a = this.attempt;
    if (!a || a.done || this.state !== 'playing') return;
    a.toBus?.tick(now);
    const readTimeout = this.opts.readTimeoutMs ?? 10_000;
    if (a.transport === 'udp' && this.automatic && a.lastMediaMs === a.playingSinceMs && now - a.playingSinceMs > UDP_FALLBACK_MS) {
      this.transport = 'tcp';
      this.disconnected(`no UDP packet within ${UDP_FALLBACK_MS} ms: retrying over TCP`);
      return;
    }
    if (now - a.lastMediaMs > readTimeout) {
      this.disconnected(`no media for ${readTimeout} ms`);
      return;
    }
    if (now >= a.nextKeepaliveMs) {
      a.nextKeepaliveMs = now + (a.timeoutSec * 1000) / 2;
      const t = a.target;
      // answers are matched by CSeq and not awaited: a late keepalive answer is harmless
      const headers = new RtspHeaders([['CSeq', String(++a.cseq)], ['User-Agent', USER_AGENT]]);
      if (a.session) headers.set('Session', a.session);
      if (a.auth && t.user !== undefined) {
        const v = authorizationFor(a.auth.challenges, t.user, t.pass ?? '', a.keepaliveMethod, t.requestUrl);
        if (v) headers.set('Authorization', v);
      }
      this.write(a, serializeRequest({ method: a.keepaliveMethod, url: t.requestUrl, headers }));
    }
    if (now >= a.nextRrMs && a.toBus) {
      a.nextRrMs = now + RR_INTERVAL_MS;
      for (const { index, block } of a.toBus.reportBlocks(now)) {
        this.sendRtcp(a, index, serializeRtcp(compoundReport({ type: 'rr', ssrc: a.rrSsrc, reports: [block] }, `streamgate-${this.id}`)));
      }
    }
  }

  /** RTCP about media `index` to the camera: its interleaved RTCP channel, or its RTCP port over UDP. */
  private sendRtcp(a: Attempt, index: number, bytes: Uint8Array): boolean {
    const info = a.media.get(index);
    if (info?.channels) {
      this.write(a, serializeInterleaved(info.channels[1], bytes));
      return true;
    }
    if (info?.serverPorts && a.udp && info.serverPorts[1] !== 0) {
      a.udp.rtcp.send(bytes, info.serverPorts[1], a.target.host);
      this.bytesOut += bytes.length;
      return true;
    }
    return false;
  }

  /**
   * A reader of the path needs a keyframe (the bus calls this, rate-limited, while the source publishes): RTCP RR +
   * PLI + FIR to the camera about each video media. Cameras that read RTCP feedback answer with an IDR; the many
   * that do not wait for their next GOP.
   */
  requestKeyframe(reason: string): void {
    const a = this.attempt;
    if (!a || a.done || !a.toBus || this.state !== 'playing') return;
    let sent = false;
    for (const { index, packet } of a.toBus.keyframeRequests(a.rrSsrc, `streamgate-${this.id}`)) sent = this.sendRtcp(a, index, packet) || sent;
    if (sent) this.keyframeRequestsSent++;
    this.log.debug({ reason, sent }, 'keyframe requested from the camera');
  }

  protected override teardown(polite: boolean): void {
    const a = this.attempt;
    if (!a || a.done) return;
    if (polite && a.session && this.state === 'playing') {
      const t = a.target;
      const headers = new RtspHeaders([['CSeq', String(++a.cseq)], ['User-Agent', USER_AGENT], ['Session', a.session]]);
      this.write(a, serializeRequest({ method: 'TEARDOWN', url: t.requestUrl, headers }));
    }
    a.done = true;
    if (a.waiting) {
      clearTimeout(a.waiting.timer);
      a.waiting.reject(new StreamgateError('SG_STATE', 'connection closed'));
      a.waiting = undefined;
    }
    a.socket.end();
    setTimeout(() => a.socket.destroy(), 1000).unref();
    a.udp?.rtp.close();
    a.udp?.rtcp.close();
    if (a.publishing) {
      a.publishing = false;
      this.registry.removePublisher(this);
    }
    this.attempt = undefined;
  }
}
