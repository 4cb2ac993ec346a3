/**
 * Frame bus → RTSP readers: the SDP of a stream for DESCRIBE, and the frame sink of a PLAY session that sends
 * RTP and RTCP sender reports (after mediamtx `servers/rtsp` + gortsplib `ServerStream`).
 *
 * Each frame is made into packets ONCE per stream (one packetizer per Track: one SSRC and sequence space shared by
 * every reader, cached per Frame) and the same packet buffers go to every reader. H.264 frames that arrived over
 * RTP keep the publisher's packets, re-stamped (see {@link restampedPackets}); the others are packetized. Readers
 * differ only in where packets
 * go (interleaved channel or UDP port) and in their RTCP: each gets its own SR counts and its RRs are digested
 * into loss, jitter and round trip for the API.
 *
 * UDP readers are paced (see {@link UdpPacer}): a new reader gets the whole GOP cache at once, and over UDP that
 * burst would overflow its socket buffer.
 */
import { randomBytes } from 'node:crypto';
import type { Frame } from '../../media/bus/frame.js';
import type { FrameSink } from '../../media/bus/reader.js';
import type { Stream } from '../../media/bus/stream.js';
import type { Track } from '../../media/bus/track.js';
import { NalUnitType, nalType } from '../../media/codecs/h264.js';
import { AAC_SAMPLES_PER_FRAME, Mpeg4GenericPacketizer, SimpleAudioPacketizer } from '../../media/rtp/audio.js';
import { H264Packetizer } from '../../media/rtp/h264.js';
import { parseRtp, RTP_HEADER_SIZE, RTP_MAX_MTU, type RtpHeaderWriter } from '../../media/rtp/packet.js';
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
/**
 * Largest publisher packet passed through (see {@link restampedPackets}): 1472 bytes = a 1500-byte Ethernet MTU
 * minus IPv4 and UDP headers, mediamtx's `udpMaxPayloadSize`. ffmpeg publishes at exactly this size (`pkt_size`),
 * GStreamer at 1400 and cameras at 1400-1460; a frame with a larger packet is re-packetized to RTSP_RTP_MTU.
 */
export const PASSTHROUGH_MAX_PACKET = 1472;
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

/**
 * UDP pacing rate as a multiple of the stream's measured bitrate. A joining reader's GOP-cache burst (one GOP,
 * typically 1-2 s of media) then drains at twice real time on top of the live frames: caught up within ~1 s of a
 * 2 s GOP. Higher factors gain little (players play from the first keyframe at normal speed anyway) and shrink
 * how long a receiver may stop reading without overflowing: ffmpeg's 384 KiB socket buffer (≈ 340 full packets)
 * lasts ~170 ms at 3 × an 8 Mbit/s stream, enough for ffmpeg's pause between probing and decoding on a busy host.
 */
export const PACE_RATE_FACTOR = 3;
/**
 * Lowest pacing rate, bytes/s (8 Mbit/s): used until a track's bitrate is measured (its first second of media)
 * and for low-bitrate streams, where a burst is small anyway.
 */
export const PACE_MIN_BYTES_PER_SEC = 1_000_000;
/**
 * Bytes a UDP reader may get back to back: 64 KiB is well under the smallest receive buffer of real clients
 * (Linux's default `rmem_default` is 208 KiB, ffmpeg asks for 384 KiB, GStreamer's udpsrc for 512 KiB), so a
 * paced reader never overflows its socket even when it reads late; a live P-frame passes unpaced.
 */
export const PACE_BURST_BYTES = 64 * 1024;
/**
 * How often a paced reader's queue is drained while it holds packets. 5 ms at the 64 KiB burst caps a reader at
 * ~13 MB/s, above PACE_RATE_FACTOR × any stream the gateway is sized for (25 Mbit/s); a late timer only sends a
 * bigger (burst-bounded) batch.
 */
export const PACE_INTERVAL_MS = 5;
/** Media time over which a track's bitrate is averaged: long enough to include a keyframe of a 1 s GOP. */
const RATE_WINDOW_SEC = 1;
/** A dts step outside 0..this many seconds is a timeline jump, not media: the bitrate window restarts. */
const RATE_MAX_STEP_SEC = 10;

/**
 * A track's bitrate, measured on its media clock (dts) from the packets made for it: a GOP-cache burst, sent in
 * milliseconds, still counts at its real duration.
 */
class MediaRate {
  /** last complete window's average, 0 until one completed */
  bytesPerSec = 0;
  private start = Number.NaN;
  private bytes = 0;

  constructor(private readonly clockRate: number) {}

  add(dts: number, bytes: number): void {
    const elapsed = dts - this.start;
    if (!(elapsed >= 0 && elapsed <= RATE_MAX_STEP_SEC * this.clockRate)) {
      this.start = dts; // first frame or a timeline jump
      this.bytes = bytes;
      return;
    }
    if (elapsed >= RATE_WINDOW_SEC * this.clockRate) {
      this.bytesPerSec = (this.bytes * this.clockRate) / elapsed;
      this.start = dts;
      this.bytes = bytes;
      return;
    }
    this.bytes += bytes;
  }
}

/** One track's packetizer, shared by every reader of the stream. */
interface SharedPacketizer {
  packetize(frame: Frame): Uint8Array[];
  ssrc: number;
  nextSequenceNumber(): number;
  rtpTimestamp(pts: number): number;
  /** bitrate of the packets made so far */
  rate: MediaRate;
  /** frames sent as the publisher's packets re-stamped / as packets of our own */
  framesPassedThrough: number;
  framesPacketized: number;
}

const packetizers = new WeakMap<Track, SharedPacketizer>();
/** A frame's packets and what every reader's RTCP sender statistics need of them, computed once per stream. */
interface FramePackets {
  packets: readonly Uint8Array[];
  /** sequence number and timestamp of the first packet (RTP-Info) */
  firstSeq: number;
  timestamp: number;
  /** payload octets of all packets (RFC 3550 §6.4.1 sender's octet count) */
  payloadBytes: number;
}
const packetCache = new WeakMap<Frame, FramePackets>();

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
    const shared: SharedPacketizer = {
      rate: new MediaRate(track.clockRate),
      framesPassedThrough: 0,
      framesPacketized: 0,
      ssrc: h.stream.ssrc,
      nextSequenceNumber: () => h.stream.nextSequenceNumber,
      rtpTimestamp: (pts) => h.stream.rtpTimestamp(pts),
      packetize(frame) {
        const passed = frame.rtp ? restampedPackets(h.stream, frame) : null;
        if (passed) {
          shared.framesPassedThrough++;
          return passed;
        }
        shared.framesPacketized++;
        let nalus = frame.au;
        // a reader may start at any IDR: give it the parameter sets when the AU does not carry them
        if (frame.keyframe && track.sps && track.pps && !nalus.some((n) => nalType(n) === NalUnitType.Sps)) {
          nalus = [track.sps, track.pps, ...nalus];
        }
        return h.packetize(nalus, frame.pts);
      },
    };
    p = shared;
  } else if (track.codec === 'aac') {
    const a = new Mpeg4GenericPacketizer({ payloadType: AUDIO_PAYLOAD_TYPE, mtu: RTSP_RTP_MTU, samplesPerFrame: AAC_SAMPLES_PER_FRAME });
    p = {
      rate: new MediaRate(track.clockRate),
      framesPassedThrough: 0,
      framesPacketized: 0,
      ssrc: a.stream.ssrc,
      nextSequenceNumber: () => a.stream.nextSequenceNumber,
      rtpTimestamp: (pts) => a.stream.rtpTimestamp(pts),
      packetize(frame) {
        this.framesPacketized++;
        return a.packetize(frame.au, frame.pts);
      },
    };
  } else {
    const o = new SimpleAudioPacketizer({ payloadType: AUDIO_PAYLOAD_TYPE, mtu: RTSP_RTP_MTU });
    p = {
      rate: new MediaRate(track.clockRate),
      framesPassedThrough: 0,
      framesPacketized: 0,
      ssrc: o.stream.ssrc,
      nextSequenceNumber: () => o.stream.nextSequenceNumber,
      rtpTimestamp: (pts) => o.stream.rtpTimestamp(pts),
      packetize(frame) {
        this.framesPacketized++;
        return frame.au.filter((f) => f.length > 0).map((f) => o.packetize(f, frame.pts));
      },
    };
  }
  packetizers.set(track, p);
  return p;
}

/**
 * Pass-through of an H.264 frame that came over RTP (RTSP publisher or camera): the publisher's packets, each
 * copied once for the whole stream with OUR header: SSRC, the next sequence numbers of the track's shared
 * sequence space (so passed-through and packetized frames interleave seamlessly), the timestamp of the frame's
 * bus pts, payload type 96 and the marker on the last packet only. Payloads are kept as they are: RFC 6184
 * packetization-mode 0 and 1 packets (the only ones the ingest accepts) are valid under the `packetization-mode=1`
 * our SDP announces. CSRCs, header extensions (ids negotiated with the publisher, meaningless to our readers) and
 * padding are left out. The publisher's buffers are never written: they are shared with every other egress.
 * @returns null when the frame must be packetized instead: a packet is unreadable or larger than
 *   PASSTHROUGH_MAX_PACKET, or it is a keyframe without an SPS, which the packetizer puts in front of it for
 *   readers that start there
 */
export function restampedPackets(header: RtpHeaderWriter, frame: Frame): Uint8Array[] | null {
  const rtp = frame.rtp;
  if (!rtp || rtp.length === 0 || frame.track.codec !== 'h264') return null;
  if (frame.keyframe && frame.track.sps && !frame.au.some((n) => nalType(n) === NalUnitType.Sps)) return null;
  // check every packet before taking sequence numbers
  const payloads: Uint8Array[] = new Array<Uint8Array>(rtp.length);
  for (let i = 0; i < rtp.length; i++) {
    let payload: Uint8Array;
    try {
      payload = parseRtp(rtp[i] as Uint8Array).payload;
    } catch {
      return null; // the ingest parsed it already; a frame built by other means falls back to packetizing
    }
    if (payload.length === 0 || RTP_HEADER_SIZE + payload.length > PASSTHROUGH_MAX_PACKET) return null;
    payloads[i] = payload;
  }
  const ts = header.rtpTimestamp(frame.pts);
  const out: Uint8Array[] = new Array<Uint8Array>(payloads.length);
  for (let i = 0; i < payloads.length; i++) {
    const payload = payloads[i] as Uint8Array;
    const buf = header.allocate(payload.length, i === payloads.length - 1, ts);
    buf.set(payload, RTP_HEADER_SIZE);
    out[i] = buf;
  }
  return out;
}

/** The RTP packets of a frame, made once for all readers. */
export function rtpPacketsOf(frame: Frame): readonly Uint8Array[] {
  return framePackets(frame).packets;
}

/**
 * The last frame looked up: the bus hands one frame to every reader in a row, so readers after the first skip the
 * WeakMap. Holds one frame at most (the newest), which the GOP cache or the next write releases.
 */
let lastFrame: Frame | undefined;
let lastPackets: FramePackets | undefined;

function framePackets(frame: Frame): FramePackets {
  if (frame === lastFrame && lastPackets) return lastPackets;
  let fp = packetCache.get(frame);
  if (!fp) {
    const p = packetizerOf(frame.track);
    const packets = p.packetize(frame);
    let bytes = 0;
    for (const x of packets) bytes += x.length;
    p.rate.add(frame.dts, bytes);
    const first = packets[0];
    fp = {
      packets,
      firstSeq: first ? ((first[2] as number) << 8) | (first[3] as number) : 0,
      // every packet of a frame carries the frame's timestamp
      timestamp: first ? (((first[4] as number) << 24) | ((first[5] as number) << 16) | ((first[6] as number) << 8) | (first[7] as number)) >>> 0 : 0,
      payloadBytes: bytes - RTP_HEADER_SIZE * packets.length,
    };
    packetCache.set(frame, fp);
  }
  lastFrame = frame;
  lastPackets = fp;
  return fp;
}

/**
 * Audio frames a TCP reader holds for the next video frame so both go out in one write: one syscall per video
 * frame instead of ~2.4 at 30 fps with 44.1 kHz AAC, which is most of the per-reader cost (the RTMP egress does
 * the same). 8 AAC frames ≈ 190 ms: a stream whose video stalls still gets its audio.
 */
export const MAX_HELD_AUDIO = 8;
/** `$`, the first byte of an interleaved frame (RFC 2326 §10.12). */
const INTERLEAVED_MAGIC = 0x24;
/** Per frame: its packets framed for interleaved channel `channel`, for the TCP readers that use that channel. */
const framedCache = new WeakMap<Frame, { channel: number; bytes: Buffer }[]>();
/** The last framed frame (see lastFrame). */
let lastFramed: { frame: Frame | undefined; channel: number; bytes: Buffer | undefined } = { frame: undefined, channel: -1, bytes: undefined };

/**
 * A frame's RTP packets as consecutive interleaved frames (`$`, channel, 16-bit length, packet) in one Buffer,
 * made once per frame and channel (nearly every client asks for channels 0-1 and 2-3, so in practice once per
 * frame) and written whole to every TCP reader: one socket write per frame instead of two per packet. A Buffer,
 * so the socket takes it as is.
 */
export function interleavedFramesOf(frame: Frame, packets: readonly Uint8Array[], channel: number): Buffer {
  // the same one-entry memo as framePackets: consecutive readers of a frame usually share the channel
  if (frame === lastFramed.frame && channel === lastFramed.channel && lastFramed.bytes) return lastFramed.bytes;
  let list = framedCache.get(frame);
  if (list) {
    for (const f of list) {
      if (f.channel !== channel) continue;
      lastFramed = { frame, channel, bytes: f.bytes };
      return f.bytes;
    }
  }
  let size = 0;
  for (const p of packets) size += 4 + p.length;
  const bytes = Buffer.allocUnsafe(size);
  let o = 0;
  for (const p of packets) {
    // packets never exceed RTP_MAX_MTU / PASSTHROUGH_MAX_PACKET, far below the 16-bit length
    bytes[o] = INTERLEAVED_MAGIC;
    bytes[o + 1] = channel;
    bytes[o + 2] = p.length >>> 8;
    bytes[o + 3] = p.length & 0xff;
    bytes.set(p, o + 4);
    o += 4 + p.length;
  }
  if (!list) {
    list = [];
    framedCache.set(frame, list);
  }
  list.push({ channel, bytes });
  lastFramed = { frame, channel, bytes };
  return bytes;
}

/** A pacing timer: Node's `Timeout` (unref'd) by default; tests pass a fake. */
export interface PaceTimer {
  /** re-arms the timer for its interval from now */
  refresh(): unknown;
  /** cancels it for good */
  close(): unknown;
}

/** Makes the pacing timer of one reader; called once, on the first packet that has to wait. */
export type PaceTimerFactory = (onTimeout: () => void, ms: number) => PaceTimer;

/** Real timers that never keep the process alive. */
const unrefTimer: PaceTimerFactory = (fn, ms) => setTimeout(fn, ms).unref();

/** Smallest queue of a UDP pacer, in packets; it doubles when full (the bus bounds the bytes, see bufferedBytes). */
const PACE_QUEUE_INITIAL = 256;

/**
 * A token bucket in front of one UDP reader: packets go out at once while the bucket (PACE_BURST_BYTES) has
 * tokens, which refill at `rate()` bytes/s; the rest wait in a FIFO drained every PACE_INTERVAL_MS. The FIFO is a
 * ring of packet references (the shared buffers, no copy, no per-packet object); its bytes count in the sink's
 * `bufferedBytes()`, so the bus's slow-reader policy drops frames when a reader cannot keep up.
 */
export class UdpPacer {
  /** bytes waiting in the queue */
  queuedBytes = 0;
  private tokens = PACE_BURST_BYTES;
  private lastRefillMs: number;
  private packets: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(PACE_QUEUE_INITIAL).fill(undefined);
  private medias = new Uint8Array(PACE_QUEUE_INITIAL);
  private head = 0;
  private count = 0;
  private timer: PaceTimer | undefined;
  private armed = false;
  private closed = false;

  /**
   * @param send hands one packet to the socket
   * @param rate current rate, bytes/s
   * @param now clock, ms
   * @param onError the reader failed while draining from the timer (the sink ends it)
   */
  constructor(
    private readonly send: (media: number, packet: Uint8Array) => void,
    private readonly rate: () => number,
    private readonly now: () => number,
    private readonly makeTimer: PaceTimerFactory,
    private readonly onError: (err: unknown) => void,
  ) {
    this.lastRefillMs = now();
  }

  /** Packets waiting. */
  get queuedPackets(): number {
    return this.count;
  }

  /** Sends `packet` now if the bucket allows and nothing waits before it; queues it otherwise. */
  push(media: number, packet: Uint8Array, nowMs: number): void {
    if (this.closed) return;
    if (this.count === 0) {
      this.refill(nowMs);
      if (this.tokens >= packet.length) {
        this.tokens -= packet.length;
        this.send(media, packet);
        return;
      }
    }
    if (this.count === this.packets.length) this.grow();
    const tail = (this.head + this.count) % this.packets.length;
    this.packets[tail] = packet;
    this.medias[tail] = media;
    this.count++;
    this.queuedBytes += packet.length;
    this.arm();
  }

  /** Sends what the bucket allows now; re-arms the timer while packets remain. */
  drain(nowMs: number): void {
    this.armed = false;
    if (this.closed) return;
    this.refill(nowMs);
    const cap = this.packets.length;
    while (this.count > 0) {
      const p = this.packets[this.head] as Uint8Array;
      if (this.tokens < p.length) break;
      this.tokens -= p.length;
      const media = this.medias[this.head] as number;
      this.packets[this.head] = undefined; // do not pin the frame's buffers once sent
      this.head = (this.head + 1) % cap;
      this.count--;
      this.queuedBytes -= p.length;
      this.send(media, p);
    }
    if (this.count > 0) this.arm();
  }

  /** Drops the queue and the timer (reader gone). */
  close(): void {
    this.closed = true;
    this.timer?.close();
    this.packets.fill(undefined);
    this.count = 0;
    this.queuedBytes = 0;
  }

  private refill(nowMs: number): void {
    const elapsed = nowMs - this.lastRefillMs;
    this.lastRefillMs = nowMs;
    if (elapsed <= 0) return; // same millisecond, or the clock stepped back
    this.tokens = Math.min(PACE_BURST_BYTES, this.tokens + (elapsed * this.rate()) / 1000);
  }

  private arm(): void {
    if (this.armed) return;
    this.armed = true;
    if (this.timer) this.timer.refresh();
    else this.timer = this.makeTimer(() => this.onTimeout(), PACE_INTERVAL_MS);
  }

  private onTimeout(): void {
    try {
      this.drain(this.now());
    } catch (err) {
      this.onError(err);
    }
  }

  private grow(): void {
    const cap = this.packets.length;
    const packets = new Array<Uint8Array | undefined>(cap * 2).fill(undefined);
    const medias = new Uint8Array(cap * 2);
    for (let i = 0; i < this.count; i++) {
      const k = (this.head + i) % cap;
      packets[i] = this.packets[k];
      medias[i] = this.medias[k] as number;
    }
    this.packets = packets;
    this.medias = medias;
    this.head = 0;
  }
}

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

/** The RTSP egress as the RTSP listener takes it (main.ts passes this to `startRtspServer`). */
export const rtspEgress = {
  describe: describeStream,
  createPlaySink: (player: RtspPlayerHandle): RtspPlaySink => new RtspPlaySink(player),
};
