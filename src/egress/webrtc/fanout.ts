/**
 * The lean fan-out: everything that can be computed once per stream is. Each frame is packetized once into
 * complete RTP packets with one stream-wide SSRC, sequence and timestamp space (`TrackRtp`), cached per Frame, and
 * every viewer only protects (SRTP) and sends the same bytes — patching its negotiated payload type. NACKs are
 * answered from one bounded history per track; RTCP sender reports map every track to one media clock so browsers
 * keep audio and video in sync.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { log, RateLimitedLog } from '../../log.js';
import type { Frame } from '../../media/bus/frame.js';
import type { FrameSink, Reader } from '../../media/bus/reader.js';
import type { PathRegistry } from '../../media/bus/registry.js';
import type { Session } from '../../media/bus/session.js';
import type { Stream } from '../../media/bus/stream.js';
import type { Track } from '../../media/bus/track.js';
import {
  compoundReport,
  nackSequenceNumbers,
  ntpFromUnixMs,
  parseRtcp,
  serializeRtcp,
  type RtcpSenderReport,
} from '../../media/rtp/rtcp.js';
import type { Negotiation } from '../../signaling/sdp/negotiate.js';
import { OPUS_CLOCK_RATE, ffmpegAvailable, type OpusSink } from './opus-transcoder.js';
import type { LeanPeer } from './peer.js';
import { h264Payloads, type TranscoderPool } from './sfu.js';

/**
 * Packets kept per track for NACKs: 1024 ≈ 1.3 s of a 8 Mbps stream in 1200-byte packets, longer than the ~1 s
 * libwebrtc keeps asking for a lost packet. A power of two, so the slot is `seq & (N-1)`.
 */
export const NACK_HISTORY = 1024;
/** RTCP sender report period per viewer: libwebrtc sends one per ~1 s for video; enough for A/V sync and RTT. */
export const SR_INTERVAL_MS = 1000;
/** Keyframe requests passed to the publisher at most this often per path (libwebrtc throttles its own PLIs to ~1/RTT; 500 ms keeps an encoder from being flooded by many viewers). */
export const KEYFRAME_REQUEST_MS = 500;
/** At most one keyframe-request log line per this many ms per path. */
const PLI_LOG_MS = 10_000;

/**
 * Benchmark probe: when `samples` is an array, every viewer appends the time from a video frame entering the
 * gateway (`Frame.receivedAtMs`) to its last packet being handed to the kernel for that viewer, in ms. Off (null)
 * in production: one property read per frame.
 */
export const sendLatencyProbe: { samples: number[] | null } = { samples: null };

/** One outgoing RTP stream shared by all viewers of a track. */
export class TrackRtp {
  readonly ssrc = randomBytes(4).readUInt32BE(0);
  seq = randomBytes(2).readUInt16BE(0);
  /** random initial timestamp (RFC 3550 §5.1) */
  readonly tsOffset = randomBytes(4).readUInt32BE(0);
  private readonly history: (Buffer | undefined)[] = new Array<Buffer | undefined>(NACK_HISTORY);

  constructor(readonly clockRate: number) {}

  /** One RTP packet (header + payload, one allocation), remembered for NACKs. */
  packet(payload: Uint8Array, timestamp: number, marker: boolean, payloadType: number): Buffer {
    // its own ArrayBuffer (not a slice of Node's 8 KiB pool): posted to a send thread, only these bytes are copied
    const b = Buffer.allocUnsafeSlow(12 + payload.byteLength);
    b[0] = 0x80;
    b[1] = (marker ? 0x80 : 0) | payloadType;
    b.writeUInt16BE(this.seq, 2);
    b.writeUInt32BE((timestamp + this.tsOffset) >>> 0, 4);
    b.writeUInt32BE(this.ssrc, 8);
    b.set(payload, 12);
    this.history[this.seq & (NACK_HISTORY - 1)] = b;
    this.seq = (this.seq + 1) & 0xffff;
    return b;
  }

  /** A remembered packet, or undefined when it left the history. */
  lookup(seq: number): Buffer | undefined {
    const b = this.history[seq & (NACK_HISTORY - 1)];
    return b && b.readUInt16BE(2) === seq ? b : undefined;
  }
}

/** Per-stream shared state: RTP streams per track, the media clock anchor, the transcoded audio fan-out. */
export class StreamFanout {
  private readonly tracks = new WeakMap<Track, TrackRtp>();
  private readonly packets = new WeakMap<Frame, readonly Buffer[]>();
  /** Opus made from an AAC track, per AAC track */
  private readonly opus = new WeakMap<Track, TrackRtp>();
  /** media time (ms on the path timeline) ↔ performance.now() of the newest frame sent */
  private anchorMediaMs = -Infinity;
  private anchorWallMs = 0;
  readonly viewers = new Set<LeanViewer>();
  private transcoding: { track: Track; sink: OpusSink } | undefined;
  private lastPliLog = -Infinity;
  private lastUpstream = -Infinity;
  pliReceived = 0;

  constructor(
    readonly path: string,
    private readonly pool: TranscoderPool,
    private readonly requestKeyframe?: (path: string) => void,
  ) {}

  rtpOf(track: Track): TrackRtp {
    let t = this.tracks.get(track);
    if (!t) this.tracks.set(track, (t = new TrackRtp(track.clockRate)));
    return t;
  }

  opusOf(aac: Track): TrackRtp {
    let t = this.opus.get(aac);
    if (!t) this.opus.set(aac, (t = new TrackRtp(OPUS_CLOCK_RATE)));
    return t;
  }

  /** RTP packets of a frame, built on first use (PT 0: each viewer patches its own). */
  framePackets(frame: Frame): readonly Buffer[] {
    const cached = this.packets.get(frame);
    if (cached) return cached;
    const track = frame.track;
    const rtp = this.rtpOf(track);
    let out: Buffer[];
    if (track.codec === 'h264') {
      const payloads = h264Payloads(frame, track);
      out = payloads.map((p, i) => rtp.packet(p, frame.pts, i === payloads.length - 1, 0));
    } else {
      const p = frame.au[0];
      out = p ? [rtp.packet(p, Math.round((frame.pts * OPUS_CLOCK_RATE) / track.clockRate), false, 0)] : [];
    }
    this.packets.set(frame, out);
    const mediaMs = (frame.pts * 1000) / track.clockRate;
    if (mediaMs > this.anchorMediaMs) {
      this.anchorMediaMs = mediaMs;
      this.anchorWallMs = performance.now();
    }
    return out;
  }

  /** The RTP timestamp `rtp` would carry now, on the shared media clock (for sender reports). */
  rtpNow(rtp: TrackRtp, nowWallMs: number): number {
    if (this.anchorMediaMs === -Infinity) return rtp.tsOffset;
    const mediaMs = this.anchorMediaMs + (nowWallMs - this.anchorWallMs);
    return (Math.round((mediaMs * rtp.clockRate) / 1000) + rtp.tsOffset) >>> 0;
  }

  /** Starts (or moves) the shared AAC→Opus transcoding for this path's viewers. */
  ensureTranscoder(aac: Track | undefined): void {
    if (this.transcoding && this.transcoding.track !== aac) {
      this.pool.release(this.path, this.transcoding.sink);
      this.transcoding = undefined;
    }
    if (!aac || aac.codec !== 'aac' || this.transcoding || !ffmpegAvailable()) return;
    const rtp = this.opusOf(aac);
    const sink: OpusSink = (payload, ts48) => {
      const pkt = rtp.packet(payload, ts48, false, 0);
      const mediaMs = ts48 / 48;
      if (!this.hasVideo() && mediaMs > this.anchorMediaMs) {
        this.anchorMediaMs = mediaMs;
        this.anchorWallMs = performance.now();
      }
      for (const v of this.viewers) v.sendAudioPacket(pkt);
    };
    this.pool.acquire(this.path, aac, sink);
    this.transcoding = { track: aac, sink };
  }

  private hasVideo(): boolean {
    for (const v of this.viewers) if (v.videoTrack) return true;
    return false;
  }

  /** Feeds an AAC frame to the path's transcoder (the pool de-duplicates frames). */
  feedAac(frame: Frame): void {
    this.pool.feed(this.path, frame);
  }

  /**
   * A viewer asked for a keyframe (PLI/FIR): counted and passed up at most once per KEYFRAME_REQUEST_MS (every
   * viewer of a lossy network would otherwise make the encoder send keyframes back to back).
   */
  keyframeRequested(): void {
    this.pliReceived++;
    const now = performance.now();
    if (now - this.lastUpstream >= KEYFRAME_REQUEST_MS) {
      this.lastUpstream = now;
      this.requestKeyframe?.(this.path);
    }
    if (now - this.lastPliLog > PLI_LOG_MS) {
      this.lastPliLog = now;
      log.debug({ path: this.path, total: this.pliReceived }, 'webrtc viewer asked for a keyframe');
    }
  }

  /** Stops the transcoder subscription (last viewer gone). */
  release(): void {
    if (this.transcoding) this.pool.release(this.path, this.transcoding.sink);
    this.transcoding = undefined;
  }
}

/** Per-viewer counters of one SSRC, for its sender reports. */
interface SentCounts {
  packets: number;
  octets: number;
}

/**
 * One WebRTC viewer on the lean path: a bus reader whose frames go out through its LeanPeer.
 */
export class LeanViewer implements Session, FrameSink {
  readonly id = randomUUID();
  readonly protocol = 'webrtc' as const;
  readonly role = 'reader' as const;
  state: 'connecting' | 'connected' | 'closed' = 'connecting';
  readonly createdAt = Date.now();
  bytesIn = 0;
  bytesOut = 0;
  remoteAddr = '';
  answer = '';
  reader: Reader | undefined;
  videoTrack: Track | undefined;
  private audioTrack: Track | undefined;
  private readonly videoPt: number;
  private readonly audioPt: number;
  private readonly counts = new Map<number, SentCounts>();
  private srTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private readonly cname = randomUUID();
  nackReceived = 0;
  retransmitted = 0;
  pliReceived = 0;
  onClosed: ((reason: string) => void) | undefined;
  private readonly warn = new RateLimitedLog(log);

  constructor(
    public path: string,
    readonly peer: LeanPeer,
    neg: Negotiation,
    private readonly fanout: StreamFanout,
    private readonly registry: PathRegistry,
    connectTimeoutMs: number,
  ) {
    this.videoPt = neg.video?.codec?.payloadType ?? -1;
    this.audioPt = neg.audio?.codec?.payloadType ?? -1;
    peer.onConnected = () => {
      this.state = 'connected';
      clearTimeout(this.connectTimer);
      this.remoteAddr = peer.address.includes(':') ? `[${peer.address}]:${peer.port}` : `${peer.address}:${peer.port}`;
      log.info({ session: this.id, path: this.path, remote: this.remoteAddr }, 'webrtc viewer connected');
      this.srTimer = setInterval(() => this.sendReports(), SR_INTERVAL_MS);
      this.srTimer.unref();
    };
    peer.onClosed = (reason) => this.close(reason);
    peer.onRtcp = (plain) => this.onRtcp(plain);
    this.connectTimer = setTimeout(() => this.close(`ICE/DTLS not connected within ${connectTimeoutMs} ms`), connectTimeoutMs);
    this.connectTimer.unref();
  }

  /** The viewer's SSRCs for the answer, by mid. */
  ssrcFor(stream: Stream): { video?: number; audio?: number } {
    const v = stream.tracks.find((t) => t.codec === 'h264');
    const a = stream.tracks.find((t) => t.codec === 'opus' || t.codec === 'aac');
    const out: { video?: number; audio?: number } = {};
    if (v && this.videoPt >= 0) out.video = this.fanout.rtpOf(v).ssrc;
    if (a && this.audioPt >= 0) out.audio = a.codec === 'aac' ? this.fanout.opusOf(a).ssrc : this.fanout.rtpOf(a).ssrc;
    return out;
  }

  /** FrameSink: tracks known (again). */
  start(stream: Stream): void {
    this.videoTrack = this.videoPt >= 0 ? stream.tracks.find((t) => t.codec === 'h264') : undefined;
    this.audioTrack = this.audioPt >= 0 ? stream.tracks.find((t) => t.codec === 'opus' || t.codec === 'aac') : undefined;
    if (this.audioTrack?.codec === 'aac') this.fanout.ensureTranscoder(this.audioTrack);
  }

  /** FrameSink: one frame → SRTP → UDP. */
  writeFrame(frame: Frame): void {
    if (this.state !== 'connected') return;
    const track = frame.track;
    if (track === this.videoTrack) {
      if (frame.pts !== frame.dts && frame.origin === undefined) {
        // see webrtcRefusal in sfu.ts: Chromium shows only keyframes of a stream with B-frames
        this.close('the stream switched to B-frames, which browsers cannot play');
        return;
      }
      // a catch-up copy (re-timed GOP cache, Stream catchUpBurst) reuses its original's packets — same sequence
      // numbers, so the viewer's sequence stays contiguous into the live packets — with the timestamp re-written
      const src = frame.origin ?? frame;
      const pkts = this.fanout.framePackets(src);
      const ts = src === frame ? -1 : (this.fanout.rtpOf(track).tsOffset + frame.pts) >>> 0;
      const at = performance.timeOrigin + frame.receivedAtMs;
      for (let i = 0; i < pkts.length; i++) this.send(pkts[i]!, this.videoPt, ts, at);
      if (!this.peer.offloaded) sendLatencyProbe.samples?.push(performance.now() - frame.receivedAtMs);
    } else if (track === this.audioTrack) {
      if (track.codec === 'aac') this.fanout.feedAac(frame);
      else {
        const pkts = this.fanout.framePackets(frame);
        for (let i = 0; i < pkts.length; i++) this.send(pkts[i]!, this.audioPt);
      }
    }
  }

  /** Transcoded Opus from the stream's fan-out. */
  sendAudioPacket(pkt: Buffer): void {
    if (this.state === 'connected' && this.audioTrack?.codec === 'aac') this.send(pkt, this.audioPt);
  }

  private send(pkt: Buffer, pt: number, timestamp = -1, receivedAtEpochMs = 0): void {
    this.peer.sendRtp(pkt, pt, timestamp, receivedAtEpochMs);
    const ssrc = pkt.readUInt32BE(8);
    let c = this.counts.get(ssrc);
    if (!c) this.counts.set(ssrc, (c = { packets: 0, octets: 0 }));
    c.packets++;
    c.octets += pkt.byteLength - 12;
    this.bytesOut += pkt.byteLength + 10;
  }

  /** RTP packets sent to this viewer (the benchmark's per-viewer count). */
  get packetsSent(): number {
    return this.peer.packetsSent;
  }

  /** Sender reports for every SSRC this viewer received, all on the stream's media clock. */
  private sendReports(): void {
    if (this.state !== 'connected') return;
    const wall = performance.now();
    const { ntpSec, ntpFrac } = ntpFromUnixMs(Date.now());
    const rtps: { rtp: ReturnType<StreamFanout['rtpOf']> }[] = [];
    if (this.videoTrack) rtps.push({ rtp: this.fanout.rtpOf(this.videoTrack) });
    if (this.audioTrack) rtps.push({ rtp: this.audioTrack.codec === 'aac' ? this.fanout.opusOf(this.audioTrack) : this.fanout.rtpOf(this.audioTrack) });
    for (const { rtp } of rtps) {
      const c = this.counts.get(rtp.ssrc);
      if (!c) continue;
      const sr: RtcpSenderReport = {
        type: 'sr',
        ssrc: rtp.ssrc,
        ntpSec,
        ntpFrac,
        rtpTimestamp: this.fanout.rtpNow(rtp, wall),
        packetCount: c.packets >>> 0,
        octetCount: c.octets >>> 0,
        reports: [],
      };
      this.peer.sendRtcp(serializeRtcp(compoundReport(sr, this.cname)));
    }
  }

  private onRtcp(plain: Buffer): void {
    let packets;
    try {
      packets = parseRtcp(plain);
    } catch (err) {
      this.warn.warn({ session: this.id, err: (err as Error).message }, 'webrtc: bad RTCP from viewer');
      return;
    }
    for (const p of packets) {
      if (p.type === 'nack') {
        this.nackReceived++;
        const rtp = this.trackBySsrc(p.mediaSsrc);
        if (!rtp) continue;
        const pt = rtp === this.videoRtp() ? this.videoPt : this.audioPt;
        for (const seq of nackSequenceNumbers(p)) {
          const pkt = rtp.lookup(seq);
          if (pkt) {
            this.peer.sendRtp(pkt, pt);
            this.retransmitted++;
          }
        }
      } else if (p.type === 'pli' || p.type === 'fir') {
        this.pliReceived++;
        this.fanout.keyframeRequested();
      }
    }
  }

  private videoRtp(): TrackRtp | undefined {
    return this.videoTrack ? this.fanout.rtpOf(this.videoTrack) : undefined;
  }

  private trackBySsrc(ssrc: number): TrackRtp | undefined {
    const v = this.videoRtp();
    if (v?.ssrc === ssrc) return v;
    const a = this.audioTrack;
    if (!a) return undefined;
    const rtp = a.codec === 'aac' ? this.fanout.opusOf(a) : this.fanout.rtpOf(a);
    return rtp.ssrc === ssrc ? rtp : undefined;
  }

  /** FrameSink: sends go straight to the kernel; nothing queues here. */
  bufferedBytes(): number {
    return 0;
  }

  stats(): Record<string, unknown> {
    return {
      state: this.state,
      packetsSent: this.peer.packetsSent,
      bytesSent: this.peer.bytesSent,
      nackReceived: this.nackReceived,
      retransmitted: this.retransmitted,
      pliReceived: this.pliReceived,
      framesDropped: this.reader?.framesDropped ?? 0,
      // an ICE-TCP viewer over its queue bound loses packets rather than growing memory
      rtpDropped: this.peer.rtpDropped,
      iceTransport: this.peer.link ? `${this.peer.link.transport}/ipv${this.peer.link.family}` : null,
    };
  }

  /** Trickle ICE is not needed by an ICE-lite peer: the browser's checks reveal its addresses. */
  async addRemoteCandidate(_candidate: string): Promise<void> {
    // nothing to do
  }

  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.connectTimer);
    clearInterval(this.srTimer);
    this.peer.close(reason);
    if (this.reader) {
      this.reader.close(reason);
      this.registry.removeReader(this.reader);
    }
    this.registry.removeSession(this, reason);
    this.onClosed?.(reason);
  }
}
