/**
 * Frame bus → RTP/RTCP over UDP for one SIP call: the frame sink of a SIP reader (after mediamtx's RTP egress,
 * reduced to what a phone needs).
 *
 * Each call owns one UDP socket pair (RTP on an even port, RTCP on the next, RFC 3550 §11) per accepted medium;
 * its ports go into the SDP answer and packets are sent from them to the address/ports the phone offered.
 *
 * Video: each H.264 frame is packetized ONCE for all SIP readers (payloads cached per Frame, SPS/PPS put in front
 * of keyframes that lack them, since phones rarely read sprop-parameter-sets); each reader only writes its own
 * 12-byte header (its SSRC, sequence numbers, payload type, random timestamp base) and hands header + payload to
 * the kernel as two buffers, so no payload byte is copied per reader.
 * Audio: Opus from the path is passed through; AAC goes through a transcoder shared per path and codec
 * (`SipTranscoderPool`) to PCMU, PCMA or Opus.
 * RTCP: a sender report (+ SDES CNAME) after the first packet and then every ~5 s (RFC 3550 §6.2), with the RTP
 * time of "now" taken from one wall-clock/media anchor per stream, so audio and video SRs agree (lip sync).
 * Receiver reports from the phone feed the loss/jitter/RTT figures of the API.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { log, RateLimitedLog } from '../../log.js';
import type { Frame } from '../../media/bus/frame.js';
import type { FrameSink } from '../../media/bus/reader.js';
import type { Stream } from '../../media/bus/stream.js';
import type { Track } from '../../media/bus/track.js';
import { NalUnitType, nalType } from '../../media/codecs/h264.js';
import { H264Packetizer } from '../../media/rtp/h264.js';
import { randomUint32, RTP_DEFAULT_MTU, RTP_HEADER_SIZE, RTP_VERSION } from '../../media/rtp/packet.js';
import {
  compoundReport,
  parseRtcp,
  RtcpSenderStats,
  rtcpIntervalMs,
  serializeRtcp,
  type RemoteReception,
  type RtcpPacket,
} from '../../media/rtp/rtcp.js';
import { SipTranscoderPool, type AudioPacketSink, type TranscodeTarget } from './g711-transcoder.js';

/**
 * RTP packet size toward phones: 1200 bytes, the WebRTC default that every path carries (media/rtp/packet.ts);
 * SIP video phones on VPNs and SIP trunks fragment larger packets.
 */
export const SIP_RTP_MTU = RTP_DEFAULT_MTU;
/**
 * Frames held between the sink start (inside `addReader`, before the 200 OK is sent) and `activate()`: at most
 * the GOP cache's own frame bound (media/bus/stream.ts GOP_CACHE_MAX_FRAMES), which is all a start can deliver.
 */
export const MAX_HELD_FRAMES = 1200;
/**
 * Pacing of RTP toward a phone (a token bucket): at most this many bytes per PACE_INTERVAL_MS, i.e. ~52 Mbit/s.
 * The start-up burst (the GOP cache handed over when the call starts: ~250 KB for a 1 s GOP at 2 Mbit/s) then
 * leaves in ~40 ms, and a large keyframe in a few ms, instead of in one event-loop turn; sent at once they overflow
 * a phone's default 208 KiB socket buffer (baresip 1.0 lost 2% of the first second's video that way).
 */
export const PACE_BYTES = 32 * 1024;
/** See PACE_BYTES. */
export const PACE_INTERVAL_MS = 5;
/** Attempts to find an even port whose successor is free too before giving up. */
const PAIR_ATTEMPTS = 40;
/** RTCP bandwidth assumed for the SR interval: 5% of a 2 Mbit/s call (RFC 3550 §6.2), in octets/s. */
const RTCP_BANDWIDTH = (2_000_000 / 8) * 0.05;
/** CNAME of our RTP streams (RFC 3550 §6.5.1; RFC 7022 allows a random one). */
const CNAME = `streamgate-${randomBytes(6).toString('hex')}`;

/** An RTP/RTCP socket pair of one medium of one call. */
export interface RtpSocketPair {
  rtp: dgram.Socket;
  rtcp: dgram.Socket;
  /** the RTP port (even); RTCP is on port + 1 */
  port: number;
  close(): void;
}

function bindSocket(s: dgram.Socket, port: number, host: string | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const onError = () => resolve(false);
    s.once('error', onError);
    s.bind({ port, ...(host !== undefined ? { address: host } : {}), exclusive: true }, () => {
      s.off('error', onError);
      resolve(true);
    });
  });
}

/**
 * Binds an even RTP port and the odd port after it (RFC 3550 §11), on `host` (all interfaces when undefined).
 * @param family 6 for a phone with an IPv6 media address
 * @throws Error when no pair could be bound
 */
export async function openRtpPair(host: string | undefined, family: 4 | 6 = 4): Promise<RtpSocketPair> {
  const type = family === 6 ? 'udp6' : 'udp4';
  const bindHost = host === undefined || host === '' || host === '0.0.0.0' || host === '::' ? undefined : host;
  for (let attempt = 0; attempt < PAIR_ATTEMPTS; attempt++) {
    const rtp = dgram.createSocket(type);
    if (!(await bindSocket(rtp, 0, bindHost))) {
      rtp.close();
      continue;
    }
    const port = rtp.address().port;
    if (port % 2 !== 0 || port >= 65535) {
      rtp.close();
      continue;
    }
    const rtcp = dgram.createSocket(type);
    if (!(await bindSocket(rtcp, port + 1, bindHost))) {
      rtp.close();
      rtcp.close();
      continue;
    }
    let closed = false;
    return {
      rtp,
      rtcp,
      port,
      close() {
        if (closed) return;
        closed = true;
        rtp.close();
        rtcp.close();
      },
    };
  }
  throw new Error(`no free RTP/RTCP port pair after ${PAIR_ATTEMPTS} attempts`);
}

/** Where and how one medium is sent; the negotiated part changes with a re-INVITE. */
export interface SipMediaTarget {
  kind: 'video' | 'audio';
  codec: 'h264' | 'pcmu' | 'pcma' | 'opus';
  payloadType: number;
  /** H.264 only: 1 = FU-A/STAP-A (RFC 6184 §6.3), 0 = one NAL unit per packet (§6.2) */
  h264Mode?: 0 | 1;
  /** false: the phone wants nothing now (hold, sendonly offer): packets are not sent, counters keep going */
  send: boolean;
  address: string;
  rtpPort: number;
  rtcpAddress: string;
  rtcpPort: number;
  rtcpMux: boolean;
}

/** Options of a sender. */
export interface SipRtpSenderOptions {
  path: string;
  /** one entry per accepted medium, with its bound pair */
  media: { target: SipMediaTarget; pair: RtpSocketPair }[];
  transcoders: SipTranscoderPool;
  /** the bus or the sender itself ended the reader (publisher gone, kick, tracks changed) */
  onEnd(reason: string): void;
  /** Unix ms clock (it becomes the SR's NTP time); default Date.now */
  now?: () => number;
  random?: () => number;
}

/** One outgoing medium. */
class Outgoing {
  readonly ssrc = randomUint32();
  seq = randomUint32() & 0xffff;
  /** random initial timestamp (RFC 3550 §5.1), added to the path's timeline */
  readonly tsOffset = randomUint32();
  readonly clockRate: number;
  readonly rtcpStats: RtcpSenderStats;
  nextSrMs = 0;
  track: Track | undefined;
  /** the transcoder subscription, when the audio is transcoded */
  transcoded: { target: TranscodeTarget; sink: AudioPacketSink } | undefined;
  reception: RemoteReception | undefined;
  packetsSent = 0;

  constructor(
    public target: SipMediaTarget,
    readonly pair: RtpSocketPair,
  ) {
    this.clockRate = target.codec === 'h264' ? 90000 : target.codec === 'opus' ? 48000 : 8000;
    this.rtcpStats = new RtcpSenderStats(this.ssrc, this.clockRate);
  }

  /** A fresh RTP header; takes the next sequence number. */
  header(marker: boolean, timestamp: number): Uint8Array {
    const h = new Uint8Array(RTP_HEADER_SIZE);
    h[0] = RTP_VERSION << 6;
    h[1] = (marker ? 0x80 : 0) | this.target.payloadType;
    h[2] = this.seq >>> 8;
    h[3] = this.seq & 0xff;
    h[4] = timestamp >>> 24;
    h[5] = (timestamp >>> 16) & 0xff;
    h[6] = (timestamp >>> 8) & 0xff;
    h[7] = timestamp & 0xff;
    h[8] = this.ssrc >>> 24;
    h[9] = (this.ssrc >>> 16) & 0xff;
    h[10] = (this.ssrc >>> 8) & 0xff;
    h[11] = this.ssrc & 0xff;
    this.seq = (this.seq + 1) & 0xffff;
    return h;
  }
}

/** Payloads of an H.264 frame, computed once for every SIP reader. */
const videoPayloads = new WeakMap<Frame, Uint8Array[]>();
const sharedPacketizer = new H264Packetizer({ mtu: SIP_RTP_MTU });

/**
 * Largest RTP payload in packetization mode 0: a UDP datagram carries at most 65 507 bytes over IPv4; a NAL unit
 * that does not fit cannot be sent in that mode at all (the IP layer fragments anything above the path MTU).
 */
export const MAX_MODE0_NALU_BYTES = 65_507 - RTP_HEADER_SIZE;

function withParameterSets(frame: Frame): readonly Uint8Array[] {
  const t = frame.track;
  if (frame.keyframe && t.sps && t.pps && !frame.au.some((n) => nalType(n) === NalUnitType.Sps)) return [t.sps, t.pps, ...frame.au];
  return frame.au;
}

/**
 * RTP payloads of an H.264 frame, with SPS/PPS in front of a keyframe that lacks them. Mode 1: STAP-A/FU-A,
 * cached per frame for every reader. Mode 0: the NAL units themselves (views), without those too large to send.
 */
export function h264PayloadsOf(frame: Frame, mode: 0 | 1 = 1): readonly Uint8Array[] {
  if (mode === 0) return withParameterSets(frame).filter((n) => n.length > 0 && n.length <= MAX_MODE0_NALU_BYTES);
  const cached = videoPayloads.get(frame);
  if (cached) return cached;
  const payloads = sharedPacketizer.payloads(withParameterSets(frame));
  videoPayloads.set(frame, payloads);
  return payloads;
}

/** Where a stream's media time was at one wall-clock instant: the SR's NTP↔RTP mapping for every medium. */
const anchors = new WeakMap<Stream, { wallMs: number; mediaMs: number }>();

/**
 * The frame sink of one SIP call. Frames that arrive before `activate()` (the GOP burst delivered while the
 * reader is added, before the 200 OK is on the wire) are held and sent on activation.
 */
export class SipRtpSender implements FrameSink {
  private readonly out: Outgoing[];
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly warn = new RateLimitedLog(log);
  private stream: Stream | undefined;
  private held: Frame[] | undefined = [];
  /** packets waiting for the pacer, in order */
  private wire: { o: Outgoing; header: Uint8Array; payload: Uint8Array }[] = [];
  private wireBytes = 0;
  private tokens = PACE_BYTES;
  private tokensAtMs = performance.now();
  private paceTimer: NodeJS.Timeout | undefined;
  private closed = false;
  bytesOut = 0;
  bytesIn = 0;

  constructor(private readonly opts: SipRtpSenderOptions) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.out = opts.media.map((m) => new Outgoing(m.target, m.pair));
    for (const o of this.out) {
      o.pair.rtp.on('message', (msg) => {
        // the phone's own media (we answered sendonly, many send anyway) or muxed RTCP: counted, then dropped
        this.bytesIn += msg.length;
        if (o.target.rtcpMux && msg.length >= 2 && msg[1]! >= 192 && msg[1]! <= 223) this.onRtcp(o, msg);
      });
      o.pair.rtcp.on('message', (msg) => {
        this.bytesIn += msg.length;
        this.onRtcp(o, msg);
      });
      for (const s of [o.pair.rtp, o.pair.rtcp]) s.on('error', (err) => this.warn.warn({ path: opts.path, err: err.message }, 'SIP RTP socket error'));
    }
  }

  start(stream: Stream): void {
    if (this.closed) return;
    if (this.stream && this.stream !== stream) {
      this.opts.onEnd('the stream was replaced');
      return;
    }
    const video = stream.tracks.find((t) => t.codec === 'h264');
    const audio = stream.tracks.find((t) => !t.isVideo);
    for (const o of this.out) {
      const track = o.target.kind === 'video' ? video : audio;
      if (o.track && o.track !== track) {
        // a new publisher with other tracks: the negotiated formats may no longer fit, the phone has to call again
        this.opts.onEnd('the stream tracks changed');
        return;
      }
      o.track = track;
    }
    this.stream = stream;
    for (const o of this.out) {
      if (o.target.kind !== 'audio' || !o.track || o.transcoded) continue;
      if (o.track.codec === 'aac') {
        const target = o.target.codec as TranscodeTarget;
        const sink: AudioPacketSink = (payload, ts) => this.sendAudio(o, payload, ts);
        o.transcoded = { target, sink };
        this.opts.transcoders.acquire(this.opts.path, o.track, target, sink);
      }
    }
  }

  /** Sends what was held (paced, see PACE_BYTES) and everything after it. Call right after the 200 OK went out. */
  activate(): void {
    const held = this.held;
    this.held = undefined;
    if (held) for (const f of held) this.send(f);
  }

  writeFrame(frame: Frame): void {
    if (this.closed) return;
    if (this.held) {
      if (this.held.length < MAX_HELD_FRAMES) this.held.push(frame);
      return;
    }
    this.send(frame);
  }

  /** Sends queued packets while the token bucket allows, and comes back for the rest. */
  private flush(): void {
    this.paceTimer = undefined;
    const t = performance.now();
    this.tokens = Math.min(PACE_BYTES, this.tokens + ((t - this.tokensAtMs) * PACE_BYTES) / PACE_INTERVAL_MS);
    this.tokensAtMs = t;
    let sent = 0;
    while (sent < this.wire.length && this.tokens > 0 && !this.closed) {
      const w = this.wire[sent++]!;
      const size = w.header.length + w.payload.length;
      this.tokens -= size;
      this.wireBytes -= size;
      this.bytesOut += size;
      w.o.pair.rtp.send([w.header, w.payload], w.o.target.rtpPort, w.o.target.address, (err) => {
        if (err) this.warn.warn({ path: this.opts.path, err: err.message }, 'SIP RTP send failed');
      });
    }
    this.wire.splice(0, sent);
    if (this.wire.length > 0 && !this.closed) this.paceTimer = setTimeout(() => this.flush(), PACE_INTERVAL_MS);
  }

  private send(frame: Frame): void {
    if (this.stream && !anchors.has(this.stream)) anchors.set(this.stream, { wallMs: this.now(), mediaMs: (frame.pts * 1000) / frame.track.clockRate });
    if (frame.track.codec === 'aac') {
      // every SIP reader feeds; each transcoder takes a frame once
      this.opts.transcoders.feed(this.opts.path, frame);
      return;
    }
    for (const o of this.out) {
      if (o.track !== frame.track) continue;
      if (frame.track.codec === 'h264') this.sendVideo(o, frame);
      else if (frame.track.codec === 'opus' && o.target.codec === 'opus') {
        const payload = frame.au[0];
        if (payload && payload.length > 0) this.sendAudio(o, payload, frame.pts);
      }
    }
  }

  /** Bytes waiting for the pacer (UDP itself never queues: the kernel takes or drops each datagram at once). */
  bufferedBytes(): number {
    return this.wireBytes;
  }

  private sendVideo(o: Outgoing, frame: Frame): void {
    const payloads = h264PayloadsOf(frame, o.target.h264Mode ?? 1);
    const ts = (o.tsOffset + Math.round(frame.pts)) >>> 0;
    const now = this.now();
    for (let i = 0; i < payloads.length; i++) {
      const p = payloads[i]!;
      this.sendRtp(o, o.header(i === payloads.length - 1, ts), p, ts, now);
    }
    this.maybeSr(o, now);
  }

  private sendAudio(o: Outgoing, payload: Uint8Array, mediaTs: number): void {
    if (this.closed || this.held) return;
    const ts = (o.tsOffset + Math.round(mediaTs)) >>> 0;
    const now = this.now();
    this.sendRtp(o, o.header(false, ts), payload, ts, now);
    this.maybeSr(o, now);
  }

  private sendRtp(o: Outgoing, header: Uint8Array, payload: Uint8Array, ts: number, now: number): void {
    o.rtcpStats.onRtpSent(ts, payload.length, now);
    o.packetsSent++;
    if (!o.target.send) return;
    this.wire.push({ o, header, payload });
    this.wireBytes += header.length + payload.length;
    if (this.paceTimer === undefined) this.flush();
  }

  private maybeSr(o: Outgoing, now: number): void {
    // on hold nothing is sent; the first report goes out with the first packet after it
    if (!o.target.send || now < o.nextSrMs) return;
    const initial = o.nextSrMs === 0;
    o.nextSrMs =
      now +
      rtcpIntervalMs({ members: 2, senders: 1, rtcpBandwidth: RTCP_BANDWIDTH, weSent: true, avgRtcpSize: 100, initial, random: this.random });
    const sr = this.senderReport(o, now);
    if (sr) this.sendRtcp(o, sr);
  }

  private senderReport(o: Outgoing, now: number): RtcpPacket[] | null {
    const sr = o.rtcpStats.senderReport(now);
    const anchor = this.stream ? anchors.get(this.stream) : undefined;
    if (!sr || !anchor) return null;
    // the RTP time of "now" on the stream's media clock (shared by all media), not extrapolated per medium
    sr.rtpTimestamp = (o.tsOffset + Math.round(((anchor.mediaMs + (now - anchor.wallMs)) * o.clockRate) / 1000)) >>> 0;
    return compoundReport(sr, CNAME);
  }

  private sendRtcp(o: Outgoing, packets: RtcpPacket[]): void {
    if (!o.target.send) return;
    const bytes = serializeRtcp(packets);
    this.bytesOut += bytes.length;
    const socket = o.target.rtcpMux ? o.pair.rtp : o.pair.rtcp;
    socket.send(bytes, o.target.rtcpPort, o.target.rtcpAddress, (err) => {
      if (err) this.warn.warn({ path: this.opts.path, err: err.message }, 'SIP RTCP send failed');
    });
  }

  private onRtcp(o: Outgoing, msg: Buffer): void {
    let packets: RtcpPacket[];
    try {
      packets = parseRtcp(msg);
    } catch (err) {
      this.warn.warn({ path: this.opts.path, err: (err as Error).message }, 'malformed RTCP from a SIP phone');
      return;
    }
    const now = this.now();
    for (const p of packets) {
      if (p.type !== 'rr' && p.type !== 'sr') continue;
      for (const b of p.reports) if (b.ssrc === o.ssrc) o.reception = o.rtcpStats.onReportBlock(b, now);
    }
  }

  /**
   * Applies a re-INVITE's outcome: new destinations, payload types or hold state per medium (matched by kind).
   * The codecs stay those of the call (the dialog refuses an offer that would change them).
   */
  update(targets: readonly SipMediaTarget[]): void {
    for (const t of targets) {
      const o = this.out.find((x) => x.target.kind === t.kind);
      if (o) o.target = { ...t, codec: o.target.codec };
    }
  }

  /** The media being sent, for the API. */
  stats(): Record<string, unknown>[] {
    return this.out.map((o) => {
      const s: Record<string, unknown> = {
        kind: o.target.kind,
        codec: o.target.codec,
        payloadType: o.target.payloadType,
        remote: `${isIP(o.target.address) === 6 ? `[${o.target.address}]` : o.target.address}:${o.target.rtpPort}`,
        localPort: o.pair.port,
        sending: o.target.send,
        packetsSent: o.packetsSent,
      };
      if (o.reception) s.reception = o.reception;
      return s;
    });
  }

  /** The local RTP ports, in media order. */
  get ports(): number[] {
    return this.out.map((o) => o.pair.port);
  }

  /**
   * Ends the sender: an RTCP BYE (RFC 3550 §6.6) after a last SR, transcoder subscriptions released, sockets
   * closed. Called by the bus (reader closed) or by the call; idempotent. Tells `onEnd` either way.
   */
  close(reason: string): void {
    if (this.closed) return;
    const now = this.now();
    for (const o of this.out) {
      const sr = this.senderReport(o, now);
      if (sr) this.sendRtcp(o, [...sr, { type: 'bye', ssrcs: [o.ssrc] }]);
    }
    this.closed = true;
    this.held = undefined;
    clearTimeout(this.paceTimer);
    this.wire = [];
    this.wireBytes = 0;
    for (const o of this.out) {
      if (o.transcoded && o.track) this.opts.transcoders.release(this.opts.path, o.transcoded.target, o.transcoded.sink);
      o.transcoded = undefined;
      // after the BYE left: close on the next tick
      setImmediate(() => o.pair.close());
    }
    this.opts.onEnd(reason);
  }
}
