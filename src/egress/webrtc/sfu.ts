/**
 * WebRTC readers (WHEP, WebSocket signaling): one peer per viewer, fed from the frame bus.
 *
 * Per frame, the RTP payloads are computed once per stream (`h264Payloads`, cached per Frame) and every viewer
 * only writes its own 12-byte header in front of them. AAC audio goes through one shared Opus transcoder per path
 * (`opus-transcoder.ts`); Opus from the bus (WHIP publishers) passes through.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  type RTCRtpTransceiver,
} from 'werift';
import { BusyError, ProtocolError, UnsupportedError } from '../../errors.js';
import { parseSps } from '../../media/codecs/h264-sps.js';
import { log, RateLimitedLog } from '../../log.js';
import type { Frame } from '../../media/bus/frame.js';
import type { FrameSink, Reader } from '../../media/bus/reader.js';
import type { AccessRequest, PathRegistry } from '../../media/bus/registry.js';
import type { Session } from '../../media/bus/session.js';
import type { Stream } from '../../media/bus/stream.js';
import type { Track } from '../../media/bus/track.js';
import { NalUnitType, nalType } from '../../media/codecs/h264.js';
import { H264Packetizer } from '../../media/rtp/h264.js';
import { buildAnswer, negotiate, parseOffer, type Capabilities, type Negotiation } from '../../signaling/sdp/negotiate.js';
import { LeanViewer, sendLatencyProbe, StreamFanout } from './fanout.js';
import { ffmpegAvailable, OPUS_CLOCK_RATE, OpusTranscoder, type OpusSink } from './opus-transcoder.js';
import { dtlsIdentity, LeanPeer } from './peer.js';
import type { SendPool } from './send-pool.js';
import { SharedTranscoders } from '../transcode/shared-transcoders.js';
import type { UdpMux } from './udp-mux.js';

/**
 * RTP packet size budget: 1200 bytes of RTP leaves room for SRTP's 10-byte tag, UDP/IPv6 headers and a TURN
 * channel header within a 1280-byte IPv6 minimum MTU path (the value libwebrtc and pion use).
 */
export const WEBRTC_RTP_MTU = 1200;
/** A viewer that has not completed ICE+DTLS this long after its offer is dropped (WHEP POSTs that never connect). */
export const CONNECT_TIMEOUT_MS = 15_000;
/** Default per-server cap on WebRTC viewers; beyond it offers are refused with 503. */
export const DEFAULT_MAX_VIEWERS = 1000;

/** An ICE server as given to clients (RTCIceServer). */
export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

/** Settings shared by every WebRTC session of a server. */
export interface WebrtcEgressOptions {
  /**
   * 'lean' (default): the gateway's own ICE-lite/DTLS/SRTP peers on the shared `mux` port, packets built once per
   * stream. 'werift': one werift RTCPeerConnection per viewer (its own UDP port each), kept as the reference the
   * benchmark compares against.
   */
  engine?: 'lean' | 'werift';
  /** the shared ICE port (required for the lean engine); its `candidates()` go into every answer */
  mux?: UdpMux;
  /** send threads for viewers' RTP (lean engine); undefined: sent on the main thread */
  sendPool?: SendPool;
  /** address the ICE port is bound to (the lean engine's candidates come from `mux.candidates()`, which follows it) */
  iceHost?: string | undefined;
  /** extra host candidates (public IP behind NAT) */
  additionalHosts: string[];
  /** UDP ports werift may bind per peer; undefined = any */
  icePortRange?: [number, number] | undefined;
  maxViewers?: number;
  connectTimeoutMs?: number;
  /**
   * Asks the path's publisher for a keyframe (a viewer sent PLI/FIR). The signaling layer fills it in for WHIP
   * publishers; the bus has no upstream request for other publishers yet.
   */
  requestKeyframe?: (path: string) => void;
}

const payloadCache = new WeakMap<Frame, readonly Uint8Array[]>();
let packetizer: H264Packetizer | undefined;

/**
 * RTP payloads (FU-A / STAP-A / single NAL, RFC 6184 non-interleaved mode) of an H.264 frame, computed once per
 * frame for all viewers. A keyframe without in-band SPS/PPS gets the track's in front, so every IDR is decodable
 * on its own (a viewer may start at any of them).
 */
export function h264Payloads(frame: Frame, track: Track): readonly Uint8Array[] {
  // a re-timed catch-up copy has its original's payloads
  frame = frame.origin ?? frame;
  const cached = payloadCache.get(frame);
  if (cached) return cached;
  let nalus = frame.au;
  if (frame.keyframe && track.sps && track.pps && !nalus.some((n) => nalType(n) === NalUnitType.Sps)) {
    nalus = [track.sps, track.pps, ...nalus.filter((n) => nalType(n) !== NalUnitType.AccessUnitDelimiter)];
  }
  packetizer ??= new H264Packetizer({ mtu: WEBRTC_RTP_MTU });
  const payloads = packetizer.payloads(nalus);
  payloadCache.set(frame, payloads);
  return payloads;
}

/**
 * Why a stream cannot be sent to browsers, or null. Chromium's WebRTC H.264 path does not reorder: with B-frames
 * (measured with Chromium 156 and x264 `-bf 2`) it decodes only the keyframes (12 of 278 frames received in 10 s)
 * and keeps sending PLIs, so such streams are refused with this reason instead of showing a frozen picture.
 * Detected from the SPS (VUI max_num_reorder_frames > 0) or from cached frames whose pts ≠ dts.
 */
export function webrtcRefusal(stream: Stream): string | null {
  const v = stream.tracks.find((t) => t.codec === 'h264');
  if (!v) return null;
  let reorder = false;
  if (v.sps) {
    try {
      reorder = (parseSps(v.sps).vui?.maxNumReorderFrames ?? 0) > 0;
    } catch {
      // an SPS we cannot parse says nothing about B-frames; the frames below still do
    }
  }
  if (!reorder) reorder = stream.cachedFrames().some((f) => f.track === v && f.pts !== f.dts);
  return reorder
    ? "the stream has B-frames, which browsers' WebRTC decoders cannot play (they show only keyframes); publish without B-frames (x264 -bf 0, OBS: profile baseline or 'bframes=0')"
    : null;
}

/** Reference-counted Opus transcoders, one per path. */
export class TranscoderPool extends SharedTranscoders<Parameters<OpusSink>, OpusTranscoder> {
  /** Subscribes `sink` to the path's transcoder for `track`, starting it on first use. */
  acquire(path: string, track: Track, sink: OpusSink): OpusTranscoder {
    return this.subscribe(path, track, sink, () => new OpusTranscoder(path, track));
  }

  /** Unsubscribes; the transcoder stops with its last subscriber. */
  release(path: string, sink: OpusSink): void {
    this.unsubscribe(path, sink);
  }

  /** Feeds an AAC frame to the path's transcoder (once per frame, whichever viewer delivers it first). */
  feed(path: string, frame: Frame): void {
    this.get(path)?.feed(frame);
  }
}

/** The RTP state of one outgoing stream of one viewer. */
class RtpOut {
  seq = randomBytes(2).readUInt16BE(0);
  /** random initial timestamp (RFC 3550 §5.1) added to the path's timeline */
  readonly tsOffset = randomBytes(4).readUInt32BE(0);
  packets = 0;
  bytes = 0;
  constructor(readonly payloadType: number) {}

  /** Header + payload in one new buffer. SSRC is left 0: werift sets its own. */
  build(payload: Uint8Array, timestamp: number, marker: boolean): Buffer {
    const b = Buffer.allocUnsafe(12 + payload.byteLength);
    b[0] = 0x80;
    b[1] = (marker ? 0x80 : 0) | this.payloadType;
    b.writeUInt16BE(this.seq, 2);
    b.writeUInt32BE((timestamp + this.tsOffset) >>> 0, 4);
    b.writeUInt32BE(0, 8);
    b.set(payload, 12);
    this.seq = (this.seq + 1) & 0xffff;
    this.packets++;
    this.bytes += b.byteLength;
    return b;
  }
}

/** How a session ends, for the API and the log. */
export type WebrtcSessionState = 'connecting' | 'connected' | 'closed';

/**
 * One WebRTC viewer: a werift peer connection, a bus reader, and the RTP state of its video and audio streams.
 */
export class WhepSession implements Session, FrameSink {
  readonly id = randomUUID();
  readonly protocol = 'webrtc' as const;
  readonly role = 'reader' as const;
  path: string;
  state: WebrtcSessionState = 'connecting';
  readonly createdAt = Date.now();
  bytesIn = 0;
  bytesOut = 0;
  remoteAddr = '';
  answer = '';
  reader: Reader | undefined;
  /** called once when the session ends */
  onClosed: ((reason: string) => void) | undefined;
  private videoTx: RTCRtpTransceiver | undefined;
  private audioTx: RTCRtpTransceiver | undefined;
  private videoOut: RtpOut | undefined;
  private audioOut: RtpOut | undefined;
  private videoTrack: Track | undefined;
  private audioTrack: Track | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private readonly opusSink: OpusSink = (payload, ts) => this.sendAudio(payload, ts, true);
  private transcoding = false;
  pliReceived = 0;
  nackReceived = 0;
  private readonly warn = new RateLimitedLog(log);

  constructor(
    path: string,
    readonly pc: RTCPeerConnection,
    private readonly neg: Negotiation,
    private readonly registry: PathRegistry,
    private readonly pool: TranscoderPool,
  ) {
    this.path = path;
  }

  /** Sets up transceivers, answers the offer and waits for ICE gathering; returns the answer SDP. */
  async answerOffer(offerSdp: string, connectTimeoutMs: number): Promise<string> {
    const pc = this.pc;
    if (this.neg.video?.codec) this.videoTx = pc.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction: 'sendonly' });
    if (this.neg.audio?.codec) this.audioTx = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
    if (this.neg.video?.codec) this.videoOut = new RtpOut(this.neg.video.codec.payloadType);
    if (this.neg.audio?.codec) this.audioOut = new RtpOut(this.neg.audio.codec.payloadType);
    pc.connectionStateChange.subscribe((s) => {
      if (s === 'connected') {
        this.state = 'connected';
        clearTimeout(this.connectTimer);
        const pair = pc.iceTransports[0]?.connection.nominated;
        if (pair) this.remoteAddr = `${pair.remoteCandidate.host}:${pair.remoteCandidate.port}`;
        log.info({ session: this.id, path: this.path, remote: this.remoteAddr }, 'webrtc viewer connected');
      } else if (s === 'failed' || s === 'closed' || s === 'disconnected') {
        this.close(`peer connection ${s}`);
      }
    });
    for (const tx of [this.videoTx, this.audioTx]) {
      tx?.sender.onPictureLossIndication.subscribe(() => {
        this.pliReceived++;
      });
      tx?.sender.onGenericNack.subscribe(() => {
        this.nackReceived++;
      });
    }
    this.connectTimer = setTimeout(() => this.close(`ICE/DTLS not connected within ${connectTimeoutMs} ms`), connectTimeoutMs);
    this.connectTimer.unref();
    await pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
    await pc.setLocalDescription(await pc.createAnswer());
    if (pc.iceGatheringState !== 'complete') {
      await new Promise<void>((resolve) => {
        const { unSubscribe } = pc.iceGatheringStateChange.subscribe((s) => {
          if (s === 'complete') {
            unSubscribe();
            resolve();
          }
        });
      });
    }
    this.answer = pc.localDescription?.sdp ?? '';
    return this.answer;
  }

  /** FrameSink: the stream's tracks are known (again). */
  start(stream: Stream): void {
    this.videoTrack = stream.tracks.find((t) => t.codec === 'h264');
    const audio = stream.tracks.find((t) => t.codec === 'opus' || t.codec === 'aac');
    if (this.audioTrack !== audio && this.transcoding) {
      this.pool.release(this.path, this.opusSink);
      this.transcoding = false;
    }
    this.audioTrack = audio;
    if (audio?.codec === 'aac' && this.audioOut && !this.transcoding && ffmpegAvailable()) {
      this.pool.acquire(this.path, audio, this.opusSink);
      this.transcoding = true;
    }
  }

  /** FrameSink: sends one frame to this viewer. */
  writeFrame(frame: Frame): void {
    if (this.state === 'closed') return;
    const track = frame.track;
    if (track === this.videoTrack && this.videoOut && this.videoTx) {
      if (frame.pts !== frame.dts) {
        this.close('the stream switched to B-frames, which browsers cannot play');
        return;
      }
      const payloads = h264Payloads(frame, track);
      const out = this.videoOut;
      const sender = this.videoTx.sender;
      for (let i = 0; i < payloads.length; i++) {
        const pkt = out.build(payloads[i]!, frame.pts, i === payloads.length - 1);
        this.bytesOut += pkt.byteLength;
        sender.sendRtp(pkt).catch((err: unknown) => this.warn.warn({ session: this.id, err: String(err) }, 'webrtc: video send failed'));
      }
      sendLatencyProbe.samples?.push(performance.now() - frame.receivedAtMs);
    } else if (track === this.audioTrack && this.audioOut) {
      if (track.codec === 'opus') {
        const payload = frame.au[0];
        if (payload) this.sendAudio(payload, Math.round((frame.dts * OPUS_CLOCK_RATE) / track.clockRate), false);
      } else if (this.transcoding) {
        this.pool.feed(this.path, frame);
      }
    }
  }

  private sendAudio(payload: Uint8Array, timestamp: number, _transcoded: boolean): void {
    if (this.state === 'closed' || !this.audioOut || !this.audioTx) return;
    const pkt = this.audioOut.build(payload, timestamp, false);
    this.bytesOut += pkt.byteLength;
    this.audioTx.sender.sendRtp(pkt).catch((err: unknown) => this.warn.warn({ session: this.id, err: String(err) }, 'webrtc: audio send failed'));
  }

  /** Trickle ICE from the client. */
  async addRemoteCandidate(candidate: string): Promise<void> {
    await this.pc.addIceCandidate({ candidate, sdpMLineIndex: 0 });
  }

  /** FrameSink: werift queues in the kernel socket buffer; nothing is held here. */
  bufferedBytes(): number {
    return 0;
  }

  /** RTP packets handed to werift (the benchmark's per-viewer count). */
  get packetsSent(): number {
    return (this.videoOut?.packets ?? 0) + (this.audioOut?.packets ?? 0);
  }

  /** Figures for the API and the WebSocket stats messages. */
  stats(): Record<string, unknown> {
    return {
      state: this.state,
      videoPackets: this.videoOut?.packets ?? 0,
      audioPackets: this.audioOut?.packets ?? 0,
      pliReceived: this.pliReceived,
      nackReceived: this.nackReceived,
      framesDropped: this.reader?.framesDropped ?? 0,
    };
  }

  /** Ends the session (DELETE, kick, bus close, ICE failure). Idempotent. */
  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.connectTimer);
    if (this.transcoding) this.pool.release(this.path, this.opusSink);
    this.transcoding = false;
    if (this.reader) {
      this.reader.close(reason);
      this.registry.removeReader(this.reader);
    }
    this.registry.removeSession(this, reason);
    this.pc.close().catch(() => undefined);
    this.onClosed?.(reason);
  }
}

/** A WebRTC viewer of either engine, as the signaling layer sees it. */
export type ViewerSession = WhepSession | LeanViewer;

/** Creates and tracks WebRTC viewer sessions. */
export class WebrtcEgress {
  readonly sessions = new Map<string, ViewerSession>();
  readonly pool = new TranscoderPool();
  private readonly fanouts = new WeakMap<Stream, StreamFanout>();

  constructor(
    private readonly registry: PathRegistry,
    private readonly opts: WebrtcEgressOptions,
  ) {}

  /** What this gateway can send for a stream: H.264 from its SPS, Opus when the audio is Opus or transcodable. */
  static capabilities(stream: Stream): Capabilities {
    const v = stream.tracks.find((t) => t.codec === 'h264');
    const a = stream.tracks.find((t) => t.codec === 'opus' || t.codec === 'aac');
    const sps = v?.sps;
    return {
      role: 'send',
      video: v ? (sps && sps.byteLength >= 4 ? { profileIdc: sps[1]!, constraintFlags: sps[2]!, levelIdc: sps[3]! } : { profileIdc: 0x42, constraintFlags: 0xe0, levelIdc: 0x1f }) : null,
      audio: a !== undefined && (a.codec === 'opus' || ffmpegAvailable()),
    };
  }

  /**
   * Answers a viewer's offer for `path`: waits for the stream, negotiates, creates the peer and attaches it to the
   * bus. The returned session holds the answer SDP.
   * @throws ParseError (400), ProtocolError (488), NotFoundError (404), AuthError (401), BusyError (503)
   */
  async createViewer(path: string, offerSdp: string, req: Omit<AccessRequest, 'action' | 'path'>): Promise<ViewerSession> {
    const max = this.opts.maxViewers ?? DEFAULT_MAX_VIEWERS;
    if (this.sessions.size >= max) throw new BusyError(`the server has reached its limit of ${max} WebRTC viewers`);
    const offer = parseOffer(offerSdp);
    const stream = await this.registry.waitReady(path, req);
    const refusal = webrtcRefusal(stream);
    if (refusal) throw new UnsupportedError(refusal);
    const neg = negotiate(offer, WebrtcEgress.capabilities(stream));
    if ((this.opts.engine ?? 'lean') === 'lean') return this.createLeanViewer(path, stream, offer, neg, req);
    const pc = new RTCPeerConnection({
      codecs: {
        video: neg.video?.codec
          ? [
              new RTCRtpCodecParameters({
                mimeType: 'video/H264',
                clockRate: 90000,
                payloadType: neg.video.codec.payloadType,
                // werift matches offered and local codecs on the exact fmtp string
                parameters: neg.video.codec.fmtpLine,
                rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }],
              }),
            ]
          : [],
        audio: neg.audio?.codec
          ? [
              new RTCRtpCodecParameters({
                mimeType: 'audio/opus',
                clockRate: 48000,
                channels: 2,
                payloadType: neg.audio.codec.payloadType,
                parameters: neg.audio.codec.fmtpLine,
              }),
            ]
          : [],
      },
      headerExtensions: { video: [], audio: [] },
      iceUseIpv4: true,
      iceUseIpv6: false,
      iceAdditionalHostAddresses: this.opts.additionalHosts.length > 0 ? this.opts.additionalHosts : undefined,
      icePortRange: this.opts.icePortRange,
    });
    const session = new WhepSession(path, pc, neg, this.registry, this.pool);
    this.sessions.set(session.id, session);
    session.onClosed = () => this.sessions.delete(session.id);
    try {
      await session.answerOffer(offerSdp, this.opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
      this.registry.addSession(session);
      session.reader = await this.registry.addReader(path, session, session, req, { catchUp: true });
    } catch (err) {
      session.close(err instanceof Error ? err.message : String(err));
      throw err instanceof Error ? err : new ProtocolError(500, String(err));
    }
    return session;
  }

  private async createLeanViewer(
    path: string,
    stream: Stream,
    offer: ReturnType<typeof parseOffer>,
    neg: Negotiation,
    req: Omit<AccessRequest, 'action' | 'path'>,
  ): Promise<LeanViewer> {
    const mux = this.opts.mux;
    if (!mux) throw new ProtocolError(500, 'the lean WebRTC engine needs the shared ICE socket');
    const id = await dtlsIdentity();
    const peer = new LeanPeer(mux, id, offer.fingerprints, this.opts.sendPool);
    let fanout = this.fanouts.get(stream);
    if (!fanout) this.fanouts.set(stream, (fanout = new StreamFanout(path, this.pool, this.opts.requestKeyframe)));
    const viewer = new LeanViewer(path, peer, neg, fanout, this.registry, this.opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
    const fo = fanout;
    fo.viewers.add(viewer);
    this.sessions.set(viewer.id, viewer);
    viewer.onClosed = () => {
      this.sessions.delete(viewer.id);
      fo.viewers.delete(viewer);
      if (fo.viewers.size === 0) fo.release();
    };
    const ssrc = viewer.ssrcFor(stream);
    const ssrcs = new Map<string, number>();
    if (neg.video?.codec && ssrc.video !== undefined) ssrcs.set(neg.video.mid, ssrc.video);
    if (neg.audio?.codec && ssrc.audio !== undefined) ssrcs.set(neg.audio.mid, ssrc.audio);
    viewer.answer = buildAnswer(offer, neg, {
      iceUfrag: peer.localUfrag,
      icePwd: peer.localPwd,
      fingerprint: id.fingerprint,
      candidates: mux.candidates(),
      direction: 'sendonly',
      ssrcs,
      cname: viewer.id,
      streamId: 'streamgate',
      sessionId: String(Date.now()),
    });
    try {
      this.registry.addSession(viewer);
      // start at the live edge: the cached GOP comes re-timed (Stream catchUpBurst), the picture shows at once
      viewer.reader = await this.registry.addReader(path, viewer, viewer, req, { catchUp: true });
    } catch (err) {
      viewer.close(err instanceof Error ? err.message : String(err));
      throw err;
    }
    return viewer;
  }

  /** Closes every session (shutdown). */
  closeAll(reason: string): void {
    for (const s of [...this.sessions.values()]) s.close(reason);
    this.pool.closeAll();
  }
}
