/**
 * The frame sink of an RTSP PLAY session: sends the stream's shared packets (packet-cache.ts) to one reader and
 * RTCP sender reports. Readers differ only in where packets go (interleaved channel or UDP port, paced by
 * udp-pacer.ts) and in their RTCP: each gets its own SR counts and its RRs are digested into loss, jitter and
 * round trip for the API.
 */
import { randomBytes } from 'node:crypto';
import type { Frame } from '../../media/bus/frame.js';
import type { FrameSink } from '../../media/bus/reader.js';
import type { Stream } from '../../media/bus/stream.js';
import type { Track } from '../../media/bus/track.js';
import {
  compoundReport,
  parseRtcp,
  RtcpSenderStats,
  rtcpIntervalMs,
  serializeRtcp,
  type RemoteReception,
} from '../../media/rtp/rtcp.js';
import { interleavedFramesOf } from './interleaved.js';
import { framePackets, packetizerOf, type SharedPacketizer } from './packet-cache.js';
import { PACE_MIN_BYTES_PER_SEC, PACE_RATE_FACTOR, UdpPacer, type PaceTimerFactory } from './udp-pacer.js';

/** RTCP bandwidth assumed for the SR interval: 5% of a 3 Mbit/s session (RFC 3550 §6.2), in octets/s. */
const RTCP_BANDWIDTH = (3_000_000 / 8) * 0.05;
/** CNAME of our RTP streams (RFC 3550 §6.5.1; RFC 7022 allows a random one). */
const CNAME = `streamgate-${randomBytes(6).toString('hex')}`;

/**
 * Wall clock ↔ media time of a stream, fixed at the first frame any reader sends. Every SR maps "now" through it,
 * so all readers and all tracks of a stream get one consistent NTP↔RTP relation (RFC 3550 §6.4.1) — also after a
 * GOP-cache burst, which sends seconds of media in milliseconds.
 */
interface ClockAnchor {
  wallMs: number;
  mediaMs: number;
}
const anchors = new WeakMap<Stream, ClockAnchor>();

/**
 * Audio frames a TCP reader holds for the next video frame so both go out in one write: one syscall per video
 * frame instead of ~2.4 at 30 fps with 44.1 kHz AAC, which is most of the per-reader cost (the RTMP egress does
 * the same). 8 AAC frames ≈ 190 ms: a stream whose video stalls still gets its audio.
 */
export const MAX_HELD_AUDIO = 8;

/** Real timers that never keep the process alive. */
const unrefTimer: PaceTimerFactory = (fn, ms) => setTimeout(fn, ms).unref();

/** One SETUP media of a PLAY session, as the API shows it. */
export interface RtspMediaStats {
  media: number;
  packetsSent: number;
  /** frames of the track sent as the publisher's RTP packets, re-stamped (stream-wide) */
  framesPassedThrough: number;
  /** frames of the track packetized by us (stream-wide) */
  framesPacketized: number;
  reception?: RemoteReception;
  /** PLI/FIR the reader sent about this media (passed to the publisher through the bus) */
  keyframeRequests?: number;
}

/** What the sink needs from its RTSP connection; the RTSP server's player implements it. */
export interface RtspPlayerHandle {
  /** SDP media indices the reader SETUP (= track ids of the described stream) */
  readonly media: readonly number[];
  /** how the session's media go: UDP readers are paced, TCP has the kernel's flow control */
  readonly transport: 'tcp' | 'udp';
  /**
   * The interleaved channel of a SETUP media's RTP over TCP, or -1 (UDP). The sink then hands whole frames to
   * `sendInterleaved`, framed once per stream and channel, instead of one `sendRtp` per packet.
   */
  rtpChannel(media: number): number;
  sendRtp(media: number, packet: Uint8Array): void;
  /**
   * Writes buffers already framed as interleaved RTP (RFC 2326 §10.12) to the TCP connection, in one syscall.
   * The array is the sink's and is reused after the call: keep the buffers, not the array.
   */
  sendInterleaved(frames: readonly Uint8Array[]): void;
  sendRtcp(media: number, packet: Uint8Array): void;
  /** bytes queued toward the client (TCP `writableLength`; 0 for UDP) */
  bufferedBytes(): number;
  /** the sink gives up on the reader (tracks changed) */
  end(reason: string): void;
}

/** Per SETUP media: RTCP state and what was sent first (for RTP-Info). */
interface MediaOut {
  media: number;
  /** interleaved RTP channel, -1 for UDP */
  channel: number;
  track: Track;
  packetizer: SharedPacketizer;
  sender: RtcpSenderStats;
  first?: { seq: number; rtptime: number };
  nextSrMs: number;
  reception?: RemoteReception;
  /** PLI/FIR the reader sent about this media */
  keyframeRequests: number;
}

/**
 * The frame sink of one RTSP PLAY session. Sends every frame's shared packets to the reader (through a
 * {@link UdpPacer} for UDP readers) and, on the RFC 3550 schedule, a compound SR + SDES per media. RTCP is not
 * paced: it is small and its timing matters. `now`, `random` and the pacing timer are injectable for tests.
 */
export class RtspPlaySink implements FrameSink {
  private out: MediaOut[] = [];
  private described: Track[] | undefined;
  private stream: Stream | undefined;
  private pacer: UdpPacer | undefined;
  /** TCP: framed frames waiting for the next video frame (see MAX_HELD_AUDIO) */
  private readonly held: Buffer[] = [];
  private heldBytes = 0;
  private heldAudio = 0;
  private anchored = false;
  private closed = false;

  constructor(
    private readonly player: RtspPlayerHandle,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
    private readonly paceTimer: PaceTimerFactory = unrefTimer,
  ) {}

  start(stream: Stream): void {
    if (this.described) {
      // an RTSP client cannot take new tracks mid-session: it has to DESCRIBE again
      const same = stream.tracks.length === this.described.length && stream.tracks.every((t, i) => t === this.described?.[i]);
      if (!same) this.player.end('the stream tracks changed');
      return;
    }
    this.described = stream.tracks;
    this.stream = stream;
    this.out = this.player.media.flatMap((m) => {
      const track = stream.tracks[m];
      if (!track) return [];
      const packetizer = packetizerOf(track);
      const sender = new RtcpSenderStats(packetizer.ssrc, track.clockRate);
      return [{ media: m, channel: this.player.rtpChannel(m), track, packetizer, sender, nextSrMs: 0, keyframeRequests: 0 }];
    });
    if (this.player.transport === 'udp') {
      this.pacer = new UdpPacer(
        (media, packet) => this.player.sendRtp(media, packet),
        () => this.paceRate(),
        this.now,
        this.paceTimer,
        (err) => this.player.end(`sending RTP failed: ${err instanceof Error ? err.message : String(err)}`),
      );
    }
  }

  /** Pacing rate of this reader, bytes/s: PACE_RATE_FACTOR × the bitrate of the tracks it reads. */
  private paceRate(): number {
    let sum = 0;
    for (const o of this.out) sum += o.packetizer.rate.bytesPerSec;
    return Math.max(PACE_MIN_BYTES_PER_SEC, PACE_RATE_FACTOR * sum);
  }

  writeFrame(frame: Frame): void {
    if (this.closed) return;
    let o: MediaOut | undefined;
    for (const x of this.out) if (x.track === frame.track) o = x;
    if (!o) return; // a track the reader did not SETUP
    const now = this.now();
    if (!this.anchored && this.stream) {
      if (!anchors.has(this.stream)) anchors.set(this.stream, { wallMs: now, mediaMs: (frame.pts * 1000) / frame.track.clockRate });
      this.anchored = true; // a stream's anchor never changes once set
    }
    const fp = framePackets(frame);
    const packets = fp.packets;
    if (packets.length === 0) return;
    o.first ??= { seq: fp.firstSeq, rtptime: fp.timestamp };
    o.sender.onRtpSent(fp.timestamp, fp.payloadBytes, now, packets.length);
    if (o.channel >= 0) {
      // TCP: the whole frame framed once for every reader on this channel; audio waits for the next video frame
      const framed = interleavedFramesOf(frame, packets, o.channel);
      this.held.push(framed);
      this.heldBytes += framed.length;
      if (!o.track.isVideo && this.stream?.hasVideo === true && ++this.heldAudio < MAX_HELD_AUDIO) {
        if (now >= o.nextSrMs) this.sendSr(o, now);
        return;
      }
      this.flush();
    } else if (this.pacer) {
      for (const p of packets) this.pacer.push(o.media, p, now);
    } else {
      for (const p of packets) this.player.sendRtp(o.media, p);
    }
    if (now >= o.nextSrMs) this.sendSr(o, now);
  }

  private sendSr(o: MediaOut, now: number): void {
    const sr = o.sender.senderReport(now);
    const anchor = this.stream ? anchors.get(this.stream) : undefined;
    if (!sr || !anchor) return;
    // the RTP time of "now" on the stream's media clock, not extrapolated from the last send
    sr.rtpTimestamp = o.packetizer.rtpTimestamp(Math.round(((anchor.mediaMs + (now - anchor.wallMs)) * o.track.clockRate) / 1000));
    const initial = o.nextSrMs === 0;
    this.player.sendRtcp(o.media, serializeRtcp(compoundReport(sr, CNAME)));
    const interval = rtcpIntervalMs({
      members: 2,
      senders: 1,
      rtcpBandwidth: RTCP_BANDWIDTH,
      weSent: true,
      avgRtcpSize: 100,
      initial,
      random: this.random,
    });
    o.nextSrMs = now + interval;
  }

  /**
   * RTCP from the reader about media `media`: its RRs, and PLI/FIR (RFC 4585 §6.3.1, RFC 5104 §4.3.1) about a video
   * track, which go to the path's publisher through the bus (rate-limited there).
   */
  onRtcp(media: number, raw: Uint8Array, nowMs: number): void {
    const o = this.out.find((x) => x.media === media);
    if (!o) return;
    // throws ParseError on a malformed compound packet: the connection counts and drops it
    for (const p of parseRtcp(raw)) {
      if (p.type === 'pli' || p.type === 'fir') {
        if (o.track.isVideo) {
          o.keyframeRequests++;
          this.stream?.requestKeyframe(`rtsp reader ${p.type.toUpperCase()}`);
        }
        continue;
      }
      if (p.type !== 'rr' && p.type !== 'sr') continue;
      for (const b of p.reports) if (b.ssrc === o.sender.ssrc) o.reception = o.sender.onReportBlock(b, nowMs);
    }
  }

  /** First packet's seq/rtptime per SETUP media, once known (the PLAY answer's RTP-Info). */
  rtpInfo(): { media: number; seq?: number; rtptime?: number }[] {
    return this.player.media.map((m) => {
      const o = this.out.find((x) => x.media === m);
      if (o?.first) return { media: m, seq: o.first.seq, rtptime: o.first.rtptime };
      const track = this.described?.[m];
      return track ? { media: m, seq: packetizerOf(track).nextSequenceNumber() } : { media: m };
    });
  }

  /**
   * Per media: packets sent, what the reader reports (loss, jitter, round trip), and how the stream's frames of
   * that track were made into packets (shared by all readers: passed through from the publisher or packetized).
   */
  stats(): RtspMediaStats[] {
    return this.out.map((o) => {
      const s: RtspMediaStats = {
        media: o.media,
        packetsSent: o.sender.packetCount,
        framesPassedThrough: o.packetizer.framesPassedThrough,
        framesPacketized: o.packetizer.framesPacketized,
      };
      if (o.reception) s.reception = o.reception;
      if (o.keyframeRequests > 0) s.keyframeRequests = o.keyframeRequests;
      return s;
    });
  }

  /** Sends the held TCP frames in one write. */
  private flush(): void {
    if (this.held.length === 0) return;
    this.player.sendInterleaved(this.held);
    // reused: sendInterleaved does not keep the array, only its buffers
    this.held.length = 0;
    this.heldBytes = 0;
    this.heldAudio = 0;
  }

  /**
   * The connection's backlog plus what waits here (UDP pacer queue, held TCP audio): the bus drops frames for a
   * reader over its limit.
   */
  bufferedBytes(): number {
    return this.player.bufferedBytes() + (this.pacer?.queuedBytes ?? 0) + this.heldBytes;
  }

  close(): void {
    this.closed = true;
    this.pacer?.close();
    this.held.length = 0;
    this.heldBytes = 0;
  }
}
