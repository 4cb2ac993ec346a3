/**
 * The RTSP listener: TCP connections on `listeners.rtsp.port` and the shared RTP/RTCP UDP pair on
 * `rtpPort`/`rtcpPort`. The only RTSP file that owns sockets and timers: it moves bytes between sockets and the
 * sans-I/O {@link RtspServerSession}, carries out its path actions against the registry, feeds publishers' RTP to
 * {@link RtspToBus}, and hands PLAY sessions to the egress sink (egress/rtsp/from-bus.ts) through `RtspEgress`,
 * which main.ts fills in.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { nanoid } from 'nanoid';
import { basicChallenge, credentialsFromHeader, digestChallenge, type DigestCredentials } from '../../auth.js';
import { AuthError, errorMessage, ParseError, StreamgateError } from '../../errors.js';
import { log as rootLog, RateLimitedLog } from '../../log.js';
import type { FrameSink, Reader } from '../../media/bus/reader.js';
import type { AccessRequest } from '../../media/bus/registry.js';
import type { Session } from '../../media/bus/session.js';
import type { Stream } from '../../media/bus/stream.js';
import { compoundReport, serializeRtcp } from '../../media/rtp/rtcp.js';
import { randomUint32 } from '../../media/rtp/packet.js';
import { startTcpListener, type TcpListener } from '../tcp-listener.js';
import { TcpSession } from '../tcp-session.js';
import { interleavedHeader, RtspHeaders, RtspParser, serializeResponse, type RtspMessage } from './message.js';
import {
  RtspServerSession,
  rtspStatusOf,
  type RtspPathRequest,
  type RtspServerAction,
  type RtspSetupTrack,
} from './session.js';
import { RtspToBus } from './to-bus.js';

/** Receiver reports to publishers every 5 s: RFC 3550 §6.2's recommended minimum interval. */
const RR_INTERVAL_MS = 5000;
/**
 * UDP socket buffers: a 1080p keyframe is ~200 packets arriving in a burst; the OS default (~200 KiB on Linux)
 * overflows when a few publishers burst at once. 4 MiB is what mediamtx asks for (`udpReadBufferSize`).
 */
const UDP_BUFFER_BYTES = 4 * 1024 * 1024;

/** The registry as the RTSP server uses it (PathRegistry implements it; tests pass fakes). */
export interface RtspPaths {
  addSession(session: Session): void;
  removeSession(session: Session, reason: string): void;
  waitReady(path: string, req: Omit<AccessRequest, 'action' | 'path'>, timeoutMs?: number): Promise<Stream>;
  addPublisher(path: string, session: Session, req: Omit<AccessRequest, 'action' | 'path'>): Promise<Stream>;
  removePublisher(session: Session): void;
  addReader(path: string, session: Session, sink: FrameSink, req: Omit<AccessRequest, 'action' | 'path'>): Promise<Reader>;
  removeReader(reader: Reader): void;
}

/** What a PLAY session's sink gets from its connection. */
export interface RtspPlayer {
  /** SDP media indices the reader SETUP */
  readonly media: readonly number[];
  /** how its media go (one transport per session); the egress paces UDP readers */
  readonly transport: 'tcp' | 'udp';
  /** interleaved RTP channel of a SETUP media, -1 over UDP */
  rtpChannel(media: number): number;
  sendRtp(media: number, packet: Uint8Array): void;
  /** buffers already framed as interleaved data (the egress frames each frame once for all TCP readers), one write */
  sendInterleaved(frames: readonly Uint8Array[]): void;
  sendRtcp(media: number, packet: Uint8Array): void;
  bufferedBytes(): number;
  end(reason: string): void;
}

/** The sink of a PLAY session, made by the egress. */
export interface RtspPlaySinkLike extends FrameSink {
  /** seq/rtptime of the first packet per SETUP media, for RTP-Info */
  rtpInfo(): { media: number; seq?: number; rtptime?: number }[];
  /** RTCP (receiver reports) from the reader */
  onRtcp(media: number, raw: Uint8Array, nowMs: number): void;
  stats(): unknown;
}

/** RTSP egress (egress/rtsp/from-bus.ts), passed in by main.ts. */
export interface RtspEgress {
  /** The DESCRIBE SDP of a ready stream; media i must be track i. */
  describe(stream: Stream, name: string): { sdp: string; mediaCount: number };
  createPlaySink(player: RtspPlayer): RtspPlaySinkLike;
}

/** Options of the RTSP listener. */
export interface RtspServerOptions {
  host?: string;
  port: number;
  /** UDP RTP port (even) and RTCP port (rtpPort + 1); 0 or absent = UDP transport refused (461) */
  rtpPort?: number;
  rtcpPort?: number;
  paths: RtspPaths;
  egress: RtspEgress;
  /** close publishers silent this long (config `readTimeout`) */
  readTimeoutMs: number;
  /** RTSP session timeout, seconds (default 60) */
  sessionTimeoutSec?: number;
  /** WWW-Authenticate values for a 401 (default: Digest MD5 without qop, then Basic) */
  challenges?(action: 'read' | 'publish', path: string, nowMs: number): string[];
}

/** A bound RTSP listener. */
export interface RtspServer {
  port: number;
  rtpPort: number;
  rtcpPort: number;
  connections: Set<RtspConnection>;
  /** UDP packets from addresses no session announced (dropped) */
  readonly unknownUdpPackets: number;
  close(): Promise<void>;
}

/** Where an incoming UDP packet goes. */
interface UdpTarget {
  conn: RtspConnection;
  media: number;
  rtcp: boolean;
}

/** The shared UDP pair: routes incoming packets by source address, sends for every session. */
class UdpPair {
  readonly targets = new Map<string, UdpTarget>();
  unknown = 0;
  private readonly warn = new RateLimitedLog(rootLog);

  constructor(
    readonly rtp: dgram.Socket,
    readonly rtcp: dgram.Socket,
  ) {
    const onMessage = (isRtcp: boolean) => (msg: Buffer, rinfo: dgram.RemoteInfo) => {
      const ip = rinfo.address.replace(/^::ffff:/, '');
      const t = this.targets.get(`${ip}:${rinfo.port}`);
      if (!t || t.rtcp !== isRtcp) {
        this.unknown++;
        this.warn.warn({ protocol: 'rtsp', from: `${ip}:${rinfo.port}`, rtcp: isRtcp }, 'UDP packet from an unknown address dropped');
        return;
      }
      t.conn.onUdp(t, new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
    };
    rtp.on('message', onMessage(false));
    rtcp.on('message', onMessage(true));
  }
}

async function bindUdp(port: number, host: string | undefined): Promise<dgram.Socket> {
  const type = host && net.isIPv6(host) ? 'udp6' : 'udp4';
  const s = dgram.createSocket({ type, recvBufferSize: UDP_BUFFER_BYTES, sendBufferSize: UDP_BUFFER_BYTES });
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, host, () => {
      s.off('error', reject);
      resolve();
    });
  });
  s.on('error', (err) => rootLog.warn({ protocol: 'rtsp', err: err.message }, 'UDP socket error'));
  return s;
}

/** Starts the RTSP listener (publish and read on one port, UDP on the RTP/RTCP pair). */
export async function startRtspServer(opts: RtspServerOptions): Promise<RtspServer> {
  let udp: UdpPair | undefined;
  if (opts.rtpPort && opts.rtcpPort) {
    const rtp = await bindUdp(opts.rtpPort, opts.host);
    let rtcp: dgram.Socket;
    try {
      rtcp = await bindUdp(opts.rtcpPort, opts.host);
    } catch (err) {
      rtp.close();
      throw err;
    }
    udp = new UdpPair(rtp, rtcp);
  }
  // deadlines (session timeouts, held frames, receiver reports) are checked every second
  let listener: TcpListener<RtspConnection>;
  try {
    listener = await startTcpListener({
      port: opts.port,
      host: opts.host,
      accept: (socket) => new RtspConnection(socket, opts, udp),
    });
  } catch (err) {
    udp?.rtp.close();
    udp?.rtcp.close();
    throw err;
  }
  return {
    port: listener.port,
    rtpPort: udp ? (udp.rtp.address() as net.AddressInfo).port : 0,
    rtcpPort: udp ? (udp.rtcp.address() as net.AddressInfo).port : 0,
    connections: listener.connections,
    get unknownUdpPackets() {
      return udp?.unknown ?? 0;
    },
    close: () => {
      // connections first (they unregister their UDP routes), then the UDP pair, in the same turn as the TCP server
      const closed = listener.close();
      udp?.rtp.close();
      udp?.rtcp.close();
      return closed;
    },
  };
}

/** A PLAY session's player: routes the sink's packets to the interleaved channels or UDP ports it SETUP. */
class Player implements RtspPlayer {
  readonly media: number[];
  readonly transport: 'tcp' | 'udp';
  /** packets before the PLAY answer is written are held (the sink starts inside addReader); media -1: framed bytes */
  held: { media: number; rtcp: boolean; packet: Uint8Array }[] | undefined = [];
  paused = false;
  /** SETUP track by media index (a per-packet lookup without a search) */
  private readonly byMedia: (RtspSetupTrack | undefined)[] = [];

  constructor(
    private readonly conn: RtspConnection,
    tracks: RtspSetupTrack[],
  ) {
    this.media = tracks.map((t) => t.media);
    this.transport = tracks[0]?.transport.kind ?? 'tcp';
    for (const t of tracks) this.byMedia[t.media] = t;
  }

  rtpChannel(media: number): number {
    const t = this.byMedia[media];
    return t?.transport.kind === 'tcp' ? t.transport.channels[0] : -1;
  }

  sendRtp(media: number, packet: Uint8Array): void {
    this.send(media, false, packet);
  }

  sendRtcp(media: number, packet: Uint8Array): void {
    this.send(media, true, packet);
  }

  sendInterleaved(frames: readonly Uint8Array[]): void {
    if (this.paused) return;
    if (this.held) for (const f of frames) this.held.push({ media: -1, rtcp: false, packet: f });
    else this.conn.writeMedia(frames);
  }

  private send(media: number, rtcp: boolean, packet: Uint8Array): void {
    if (this.paused) return;
    if (this.held) {
      this.held.push({ media, rtcp, packet });
      return;
    }
    const t = this.byMedia[media];
    if (t) this.conn.sendMedia(t, rtcp, packet);
  }

  /** The PLAY answer is out: packets go to the client from now on (the GOP-cache burst as one write over TCP). */
  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    const framed: Uint8Array[] = [];
    for (const h of held) {
      if (h.media < 0) {
        framed.push(h.packet);
        continue;
      }
      if (framed.length > 0) this.sendInterleaved(framed.splice(0));
      this.send(h.media, h.rtcp, h.packet);
    }
    if (framed.length > 0) this.sendInterleaved(framed);
  }

  bufferedBytes(): number {
    return this.conn.bufferedBytes();
  }

  end(reason: string): void {
    this.conn.close(reason);
  }
}

/**
 * One RTSP TCP connection and its session; it is also the session the API and metrics see (one RTSP session per
 * connection, as ffmpeg, GStreamer and VLC use it).
 */
export class RtspConnection extends TcpSession {
  private readonly warn: RateLimitedLog;
  private readonly parser = new RtspParser();
  private readonly session: RtspServerSession;
  private stream: Stream | undefined;
  private publishing = false;
  private toBus: RtspToBus | undefined;
  private reader: Reader | undefined;
  private sink: RtspPlaySinkLike | undefined;
  private player: Player | undefined;
  private readonly udpKeys: string[] = [];
  private rrSsrc = randomUint32();
  private nextRrMs = 0;
  private corked = false;
  private unknownChannelFrames = 0;
  private keyframeRequestsSent = 0;

  constructor(
    socket: net.Socket,
    private readonly opts: RtspServerOptions,
    private readonly udp: UdpPair | undefined,
  ) {
    super('rtsp', 'initial', socket, opts.paths);
    this.warn = new RateLimitedLog(this.log);
    const sessionOpts: ConstructorParameters<typeof RtspServerSession>[0] = { sessionId: nanoid(16), readTimeoutMs: opts.readTimeoutMs };
    if (opts.sessionTimeoutSec !== undefined) sessionOpts.sessionTimeoutSec = opts.sessionTimeoutSec;
    if (udp) sessionOpts.udpPorts = [(udp.rtp.address() as net.AddressInfo).port, (udp.rtcp.address() as net.AddressInfo).port];
    this.session = new RtspServerSession(sessionOpts, Date.now());
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  /** Deadlines: session timeout, held publisher frames, receiver reports. */
  override tick(now: number): void {
    if (this.closed) return;
    this.toBus?.tick(now);
    if (this.toBus && now >= this.nextRrMs) {
      this.nextRrMs = now + RR_INTERVAL_MS;
      this.sendReceiverReports(now);
    }
    this.run(this.session.tick(now));
  }

  /** Kick (API), config change, shutdown, or the egress giving up. */
  override close(reason: string): void {
    if (this.closed) return;
    this.log.info({ reason }, 'closing RTSP connection');
    this.cleanup(reason);
  }

  /**
   * A reader of our path needs a keyframe (the bus calls this, rate-limited, while we publish): RTCP RR + PLI + FIR
   * to the publisher over the RTCP channel of each video media (UDP to its RTCP port, or the interleaved RTCP
   * channel). Encoders that read RTCP (GStreamer rtspclientsink) answer with an IDR; ffmpeg ignores it.
   */
  requestKeyframe(reason: string): void {
    if (this.closed || !this.toBus || this.state !== 'record') return;
    const sent: number[] = [];
    for (const { index, packet } of this.toBus.keyframeRequests(this.rrSsrc, `streamgate-${this.id}`)) {
      const t = this.session.tracks.find((x) => x.media === index);
      if (!t) continue;
      this.sendMedia(t, true, packet);
      sent.push(index);
    }
    if (sent.length > 0) this.keyframeRequestsSent++;
    this.log.debug({ reason, media: sent }, 'keyframe requested from the publisher');
  }

  stats(): Record<string, unknown> {
    const s: Record<string, unknown> = { rtspState: this.session.state, transport: this.session.tracks[0]?.transport.kind };
    if (this.keyframeRequestsSent > 0) s.keyframeRequestsSent = this.keyframeRequestsSent;
    if (this.toBus) s.tracks = this.toBus.stats();
    if (this.sink) s.tracks = this.sink.stats();
    if (this.reader) Object.assign(s, { framesSent: this.reader.framesSent, framesDropped: this.reader.framesDropped });
    if (this.unknownChannelFrames > 0) s.unknownChannelFrames = this.unknownChannelFrames;
    return s;
  }

  /** TCP backlog toward the client (the reader's drop policy reads it). */
  bufferedBytes(): number {
    return this.socket.writableLength;
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.bytesIn += chunk.byteLength;
    let msgs: RtspMessage[];
    try {
      msgs = this.parser.push(chunk);
    } catch (err) {
      if (!(err instanceof StreamgateError)) throw err;
      // the stream cannot be resynchronized: answer without CSeq and close
      const status = rtspStatusOf(err);
      this.log.warn({ err: err.message, code: err.code, status }, 'malformed RTSP input: closing');
      this.write(serializeResponse({ status, headers: new RtspHeaders([['Server', 'streamgate']]) }));
      this.cleanup(err.message);
      return;
    }
    const now = Date.now();
    for (const m of msgs) {
      if (this.closed) return;
      if (m.kind === 'request') this.run(this.session.push(m, now));
      else if (m.kind === 'interleaved') this.onInterleaved(m.channel, m.data, now);
      // responses: we never send requests on server connections; ignore strays
    }
  }

  private onInterleaved(channel: number, data: Uint8Array, now: number): void {
    const target = this.session.channelTarget(channel);
    if (!target) {
      this.unknownChannelFrames++;
      this.warn.warn({ channel }, 'interleaved frame for a channel no SETUP announced: dropped', now);
      return;
    }
    this.media(target.media, target.rtcp, data, now);
  }

  /** A UDP packet routed to this session by its source address. */
  onUdp(t: UdpTarget, data: Uint8Array): void {
    if (this.closed) return;
    this.bytesIn += data.byteLength;
    this.media(t.media, t.rtcp, data, Date.now());
  }

  private media(media: number, rtcp: boolean, data: Uint8Array, now: number): void {
    this.session.touch(now);
    if (this.toBus) {
      if (rtcp) this.toBus.pushRtcp(media, data, now);
      else this.toBus.pushRtp(media, data, now);
    } else if (this.sink && rtcp) {
      try {
        this.sink.onRtcp(media, data, now);
      } catch (err) {
        if (!(err instanceof StreamgateError)) throw err;
        this.warn.warn({ media, err: err.message }, 'bad RTCP from reader dropped', now);
      }
    }
  }

  /** Writes interleaved frames the egress framed (whole frames of RTP) to the TCP connection: one syscall. */
  writeMedia(frames: readonly Uint8Array[]): void {
    if (this.closed || this.socket.destroyed) return;
    const many = frames.length > 1;
    if (many) this.socket.cork();
    for (const f of frames) {
      this.socket.write(f);
      this.bytesOut += f.length;
    }
    if (many) this.socket.uncork();
  }

  /** Sends one RTP/RTCP packet of a SETUP media to the client. */
  sendMedia(t: RtspSetupTrack, rtcp: boolean, packet: Uint8Array): void {
    if (this.closed) return;
    if (t.transport.kind === 'tcp') {
      if (this.socket.destroyed) return;
      // gather the frame's writes into one writev: cork now, uncork once the current task is done
      if (!this.corked) {
        this.corked = true;
        this.socket.cork();
        queueMicrotask(() => {
          this.corked = false;
          this.socket.uncork();
        });
      }
      this.socket.write(interleavedHeader(t.transport.channels[rtcp ? 1 : 0], packet.length));
      this.socket.write(packet);
      this.bytesOut += packet.length + 4;
    } else if (this.udp) {
      const port = t.transport.clientPorts[rtcp ? 1 : 0];
      (rtcp ? this.udp.rtcp : this.udp.rtp).send(packet, port, this.ip);
      this.bytesOut += packet.length;
    }
  }

  private run(actions: RtspServerAction[]): void {
    for (const a of actions) {
      if (this.closed) return;
      switch (a.type) {
        case 'send':
          if (a.status >= 400) {
            const err = a.error;
            if (err !== undefined && !(err instanceof StreamgateError)) this.log.error({ err: errorMessage(err), method: a.method }, 'RTSP request failed');
            else this.log.warn({ method: a.method, status: a.status, err: err === undefined ? undefined : errorMessage(err) }, 'RTSP request refused');
          }
          this.write(a.bytes);
          break;
        case 'describe':
          void this.describe(a.request);
          break;
        case 'announce':
          void this.announce(a.request);
          break;
        case 'play':
          void this.play(a.request, a.tracks);
          break;
        case 'record':
          this.record(a.tracks);
          break;
        case 'pause':
          // a paused reader gets nothing until PLAY; a paused publisher keeps its stream until RECORD or timeout
          if (this.player) this.player.paused = true;
          this.state = this.publishing ? 'preRecord' : 'prePlay';
          break;
        case 'teardown':
          this.stopMedia('TEARDOWN');
          this.state = 'initial';
          break;
        case 'close':
          if (a.error) this.log.warn({ err: a.error.message, code: a.error.code }, 'RTSP protocol error');
          this.cleanup(a.reason);
          return;
      }
    }
  }

  private access(r: RtspPathRequest): Omit<AccessRequest, 'action' | 'path'> & { digest?: DigestCredentials } {
    const req: Omit<AccessRequest, 'action' | 'path'> & { digest?: DigestCredentials } = {
      protocol: 'rtsp',
      ip: this.ip,
      ...credentialsFromHeader(r.authorization, r.method, Date.now()),
    };
    if (r.query) req.query = r.query;
    return req;
  }

  private challenges(action: 'read' | 'publish', path: string): string[] {
    const now = Date.now();
    return this.opts.challenges?.(action, path, now) ?? [digestChallenge({ nowMs: now, qop: false }), basicChallenge()];
  }

  private refuse(err: unknown, action: 'read' | 'publish', path: string): RtspServerAction[] {
    return this.session.resolve(
      err instanceof AuthError ? { ok: false, error: err, challenges: this.challenges(action, path) } : { ok: false, error: err },
      Date.now(),
    );
  }

  private async describe(r: RtspPathRequest): Promise<void> {
    let actions: RtspServerAction[];
    try {
      const stream = await this.opts.paths.waitReady(r.path, this.access(r));
      if (this.closed) return;
      this.stream = stream;
      this.path = r.path;
      actions = this.session.resolve({ ok: true, ...this.opts.egress.describe(stream, r.path) }, Date.now());
    } catch (err) {
      if (this.closed) return;
      actions = this.refuse(err, 'read', r.path);
    }
    this.run(actions);
  }

  private async announce(r: RtspPathRequest): Promise<void> {
    let actions: RtspServerAction[];
    try {
      if (this.publishing || this.reader) throw new ParseError('rtsp', 'this connection already publishes or reads');
      const stream = await this.opts.paths.addPublisher(r.path, this, this.access(r));
      if (this.closed) {
        this.opts.paths.removePublisher(this);
        return;
      }
      this.stream = stream;
      this.publishing = true;
      this.role = 'publisher';
      this.path = r.path;
      this.state = 'preRecord';
      actions = this.session.resolve({ ok: true }, Date.now());
    } catch (err) {
      if (this.closed) return;
      actions = this.refuse(err, 'publish', r.path);
    }
    this.run(actions);
  }

  private async play(r: RtspPathRequest, tracks: RtspSetupTrack[]): Promise<void> {
    if (this.reader && this.player && this.sink) {
      // PLAY after PAUSE: resume
      this.player.paused = false;
      this.state = 'play';
      this.run(this.session.resolve({ ok: true, rtpInfo: this.sink.rtpInfo() }, Date.now()));
      return;
    }
    const player = new Player(this, tracks);
    const sink = this.opts.egress.createPlaySink(player);
    let actions: RtspServerAction[];
    try {
      const reader = await this.opts.paths.addReader(r.path, this, sink, this.access(r));
      if (this.closed) {
        this.opts.paths.removeReader(reader);
        return;
      }
      this.reader = reader;
      this.sink = sink;
      this.player = player;
      this.role = 'reader';
      this.path = r.path;
      this.state = 'play';
      this.registerUdp(tracks, true);
      this.log.info({ path: r.path, transport: tracks[0]?.transport.kind, media: player.media }, 'playing');
      actions = this.session.resolve({ ok: true, rtpInfo: sink.rtpInfo() }, Date.now());
      this.run(actions);
      player.release();
      return;
    } catch (err) {
      if (this.closed) return;
      actions = this.refuse(err, 'read', r.path);
    }
    this.run(actions);
  }

  private record(tracks: RtspSetupTrack[]): void {
    let actions: RtspServerAction[];
    if (this.toBus) {
      // RECORD after PAUSE: the same publisher resumes on the same timeline
      this.state = 'record';
      this.run(this.session.resolve({ ok: true }, Date.now()));
      return;
    }
    try {
      const desc = this.session.description;
      if (!this.stream || !desc) throw new ParseError('rtsp', 'RECORD without ANNOUNCE');
      this.toBus = new RtspToBus(this.stream, desc.media, this.log.child({ path: this.path }), tracks.map((t) => t.media));
      this.registerUdp(tracks, false);
      this.state = 'record';
      this.log.info({ path: this.path, transport: tracks[0]?.transport.kind, media: tracks.map((t) => t.media) }, 'publishing');
      actions = this.session.resolve({ ok: true }, Date.now());
    } catch (err) {
      actions = this.session.resolve({ ok: false, error: err }, Date.now());
    }
    this.run(actions);
  }

  /** Routes the client's UDP ports to this session: RTP and RTCP from publishers, RTCP from readers. */
  private registerUdp(tracks: RtspSetupTrack[], readerOnly: boolean): void {
    if (!this.udp) return;
    for (const t of tracks) {
      if (t.transport.kind !== 'udp') continue;
      const [rtpPort, rtcpPort] = t.transport.clientPorts;
      const entries: [number, boolean][] = readerOnly ? [[rtcpPort, true]] : [[rtpPort, false], [rtcpPort, true]];
      for (const [port, rtcp] of entries) {
        const key = `${this.ip}:${port}`;
        const other = this.udp.targets.get(key);
        if (other && other.conn !== this) this.log.warn({ key }, 'UDP source address already used by another session: taking it over');
        this.udp.targets.set(key, { conn: this, media: t.media, rtcp });
        this.udpKeys.push(key);
      }
    }
  }

  /** RR + SDES per publisher media, so a sender (and its RTT figures) sees us (RFC 3550 §6.4.2). */
  private sendReceiverReports(now: number): void {
    if (!this.toBus) return;
    for (const { index, block } of this.toBus.reportBlocks(now)) {
      const t = this.session.tracks.find((x) => x.media === index);
      if (!t) continue;
      const bytes = serializeRtcp(compoundReport({ type: 'rr', ssrc: this.rrSsrc, reports: [block] }, `streamgate-${this.id}`));
      this.sendMedia(t, true, bytes);
    }
  }

  private stopMedia(reason: string): void {
    if (this.publishing) {
      this.publishing = false;
      this.toBus = undefined;
      this.opts.paths.removePublisher(this);
    }
    if (this.reader) {
      const r = this.reader;
      this.reader = undefined;
      this.sink = undefined;
      this.player = undefined;
      r.close(reason);
      this.opts.paths.removeReader(r);
    }
    if (this.udp) for (const k of this.udpKeys.splice(0)) if (this.udp.targets.get(k)?.conn === this) this.udp.targets.delete(k);
  }

  protected override release(reason: string): void {
    this.stopMedia(reason);
  }
}
