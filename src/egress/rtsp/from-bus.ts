/**
 * Frame bus → RTSP readers: the SDP of a stream for DESCRIBE, and the frame sink of a PLAY session that sends
 * RTP and RTCP sender reports (after mediamtx `servers/rtsp` + gortsplib `ServerStream`).
 *
 * Each frame is packetized ONCE per stream (one packetizer per Track: one SSRC and sequence space shared by every
 * reader, cached per Frame) and the same packet buffers go to every reader. Readers differ only in where packets
 * go (interleaved channel or UDP port) and in their RTCP: each gets its own SR counts and its RRs are digested
 * into loss, jitter and round trip for the API.
 */
import { randomBytes } from 'node:crypto';
import type { Frame } from '../../media/bus/frame.js';
import type { FrameSink } from '../../media/bus/reader.js';
import type { Stream } from '../../media/bus/stream.js';
import type { Track } from '../../media/bus/track.js';
import { NalUnitType, nalType } from '../../media/codecs/h264.js';
import { AAC_SAMPLES_PER_FRAME, Mpeg4GenericPacketizer, SimpleAudioPacketizer } from '../../media/rtp/audio.js';
import { H264Packetizer } from '../../media/rtp/h264.js';
import { RTP_MAX_MTU } from '../../media/rtp/packet.js';
import {
  compoundReport,
  parseRtcp,
  RtcpSenderStats,
  rtcpIntervalMs,
  serializeRtcp,
  type RemoteReception,
} from '../../media/rtp/rtcp.js';
import {
  aacFormat,
  buildSessionDescription,
  h264Format,
  opusFormat,
  serializeSdp,
  type MediaFormat,
  type MediaInit,
} from '../../signaling/sdp/description.js';

/**
 * RTP packet size for RTSP readers: the largest the packetizers allow. Over TCP size does not matter; over UDP
 * 1450 + 28 bytes of IP/UDP headers fits a 1500-byte Ethernet MTU.
 */
export const RTSP_RTP_MTU = RTP_MAX_MTU;
/** Payload types in our SDP: the first dynamic ones (RFC 3551 §6), as ffmpeg and GStreamer number them. */
export const VIDEO_PAYLOAD_TYPE = 96;
/** See VIDEO_PAYLOAD_TYPE. */
export const AUDIO_PAYLOAD_TYPE = 97;
/** RTCP bandwidth assumed for the SR interval: 5% of a 3 Mbit/s session (RFC 3550 §6.2), in octets/s. */
const RTCP_BANDWIDTH = (3_000_000 / 8) * 0.05;
/** CNAME of our RTP streams (RFC 3550 §6.5.1; RFC 7022 allows a random one). */
const CNAME = `streamgate-${randomBytes(6).toString('hex')}`;

/** The payload format a track is sent with. */
export function formatOf(track: Track): MediaFormat {
  switch (track.codec) {
    case 'h264':
      return h264Format(VIDEO_PAYLOAD_TYPE, { sps: track.sps, pps: track.pps });
    case 'aac':
      return aacFormat(AUDIO_PAYLOAD_TYPE, {
        config: track.config ?? new Uint8Array(0),
        sampleRate: track.clockRate,
        channels: track.channels ?? 2,
      });
    case 'opus':
      return opusFormat(AUDIO_PAYLOAD_TYPE, { channels: track.channels ?? 2 });
  }
}

/**
 * The SDP a DESCRIBE answer carries for `stream`: media i is track i, control `trackID=i`.
 * @param name session name (`s=`), the path
 */
export function describeStream(stream: Stream, name: string): { sdp: string; mediaCount: number } {
  const media: MediaInit[] = stream.tracks.map((t, i) => ({
    type: t.isVideo ? 'video' : 'audio',
    format: formatOf(t),
    control: `trackID=${i}`,
  }));
  const desc = buildSessionDescription({ name, media, sessionId: String(Date.now()), tool: 'streamgate' });
  return { sdp: serializeSdp(desc), mediaCount: media.length };
}

/** One track's packetizer, shared by every reader of the stream. */
interface SharedPacketizer {
  packetize(frame: Frame): Uint8Array[];
  ssrc: number;
  nextSequenceNumber(): number;
  rtpTimestamp(pts: number): number;
}

const packetizers = new WeakMap<Track, SharedPacketizer>();
const packetCache = new WeakMap<Frame, readonly Uint8Array[]>();

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

function packetizerOf(track: Track): SharedPacketizer {
  let p = packetizers.get(track);
  if (p) return p;
  if (track.codec === 'h264') {
    const h = new H264Packetizer({ mtu: RTSP_RTP_MTU, payloadType: VIDEO_PAYLOAD_TYPE });
    p = {
      ssrc: h.stream.ssrc,
      nextSequenceNumber: () => h.stream.nextSequenceNumber,
      rtpTimestamp: (pts) => h.stream.rtpTimestamp(pts),
      packetize(frame) {
        let nalus = frame.au;
        // a reader may start at any IDR: give it the parameter sets when the AU does not carry them
        if (frame.keyframe && track.sps && track.pps && !nalus.some((n) => nalType(n) === NalUnitType.Sps)) {
          nalus = [track.sps, track.pps, ...nalus];
        }
        return h.packetize(nalus, frame.pts);
      },
    };
  } else if (track.codec === 'aac') {
    const a = new Mpeg4GenericPacketizer({ payloadType: AUDIO_PAYLOAD_TYPE, mtu: RTSP_RTP_MTU, samplesPerFrame: AAC_SAMPLES_PER_FRAME });
    p = {
      ssrc: a.stream.ssrc,
      nextSequenceNumber: () => a.stream.nextSequenceNumber,
      rtpTimestamp: (pts) => a.stream.rtpTimestamp(pts),
      packetize: (frame) => a.packetize(frame.au, frame.pts),
    };
  } else {
    const o = new SimpleAudioPacketizer({ payloadType: AUDIO_PAYLOAD_TYPE, mtu: RTSP_RTP_MTU });
    p = {
      ssrc: o.stream.ssrc,
      nextSequenceNumber: () => o.stream.nextSequenceNumber,
      rtpTimestamp: (pts) => o.stream.rtpTimestamp(pts),
      packetize: (frame) => frame.au.filter((f) => f.length > 0).map((f) => o.packetize(f, frame.pts)),
    };
  }
  packetizers.set(track, p);
  return p;
}

/** The RTP packets of a frame, made once for all readers. */
export function rtpPacketsOf(frame: Frame): readonly Uint8Array[] {
  let packets = packetCache.get(frame);
  if (!packets) {
    packets = packetizerOf(frame.track).packetize(frame);
    packetCache.set(frame, packets);
  }
  return packets;
}

/** What the sink needs from its RTSP connection; the RTSP server's player implements it. */
export interface RtspPlayerHandle {
  /** SDP media indices the reader SETUP (= track ids of the described stream) */
  readonly media: readonly number[];
  sendRtp(media: number, packet: Uint8Array): void;
  sendRtcp(media: number, packet: Uint8Array): void;
  /** bytes queued toward the client (TCP `writableLength`; 0 for UDP) */
  bufferedBytes(): number;
  /** the sink gives up on the reader (tracks changed) */
  end(reason: string): void;
}

/** Per SETUP media: RTCP state and what was sent first (for RTP-Info). */
interface MediaOut {
  media: number;
  track: Track;
  packetizer: SharedPacketizer;
  sender: RtcpSenderStats;
  first?: { seq: number; rtptime: number };
  nextSrMs: number;
  reception?: RemoteReception;
}

/**
 * The frame sink of one RTSP PLAY session. Sends every frame's shared packets to the reader and, on the RFC 3550
 * schedule, a compound SR + SDES per media. `now` is injectable for tests.
 */
export class RtspPlaySink implements FrameSink {
  private out: MediaOut[] = [];
  private described: Track[] | undefined;
  private stream: Stream | undefined;
  private closed = false;

  constructor(
    private readonly player: RtspPlayerHandle,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
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
      return [{ media: m, track, packetizer, sender: new RtcpSenderStats(packetizer.ssrc, track.clockRate), nextSrMs: 0 }];
    });
  }

  writeFrame(frame: Frame): void {
    if (this.closed) return;
    const o = this.out.find((x) => x.track === frame.track);
    if (!o) return; // a track the reader did not SETUP
    const now = this.now();
    if (this.stream && !anchors.has(this.stream)) anchors.set(this.stream, { wallMs: now, mediaMs: (frame.pts * 1000) / frame.track.clockRate });
    const packets = rtpPacketsOf(frame);
    for (const p of packets) {
      const seq = ((p[2] as number) << 8) | (p[3] as number);
      const ts = (((p[4] as number) << 24) | ((p[5] as number) << 16) | ((p[6] as number) << 8) | (p[7] as number)) >>> 0;
      o.first ??= { seq, rtptime: ts };
      o.sender.onRtpSent(ts, p.length - 12, now);
      this.player.sendRtp(o.media, p);
    }
    if (packets.length > 0 && now >= o.nextSrMs) this.sendSr(o, now);
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

  /** RTCP from the reader (its RRs) about media `media`. */
  onRtcp(media: number, raw: Uint8Array, nowMs: number): void {
    const o = this.out.find((x) => x.media === media);
    if (!o) return;
    // throws ParseError on a malformed compound packet: the connection counts and drops it
    for (const p of parseRtcp(raw)) {
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

  /** Per media: packets sent and what the reader reports (loss, jitter, round trip). */
  stats(): { media: number; packetsSent: number; reception?: RemoteReception }[] {
    return this.out.map((o) => {
      const s: { media: number; packetsSent: number; reception?: RemoteReception } = { media: o.media, packetsSent: o.sender.packetCount };
      if (o.reception) s.reception = o.reception;
      return s;
    });
  }

  bufferedBytes(): number {
    return this.player.bufferedBytes();
  }

  close(): void {
    this.closed = true;
  }
}

/** The RTSP egress as the RTSP listener takes it (main.ts passes this to `startRtspServer`). */
export const rtspEgress = {
  describe: describeStream,
  createPlaySink: (player: RtspPlayerHandle): RtspPlaySink => new RtspPlaySink(player),
};
