/**
 * Frame → RTP packets, once per stream: one packetizer per Track (one SSRC and sequence space shared by every
 * reader of the stream), its packets cached per Frame, and the same packet buffers go to every reader. H.264
 * frames that arrived over RTP keep the publisher's packets, re-stamped (see {@link restampedPackets}); the others
 * are packetized. Each track's bitrate is measured here for the UDP pacer.
 */
import type { Frame } from '../../media/bus/frame.js';
import type { Track } from '../../media/bus/track.js';
import { NalUnitType, nalType } from '../../media/codecs/h264.js';
import { AAC_SAMPLES_PER_FRAME, Mpeg4GenericPacketizer, SimpleAudioPacketizer } from '../../media/rtp/audio.js';
import { H264Packetizer } from '../../media/rtp/h264.js';
import { parseRtp, RTP_HEADER_SIZE, RTP_MAX_MTU, type RtpHeaderWriter } from '../../media/rtp/packet.js';
import { AUDIO_PAYLOAD_TYPE, VIDEO_PAYLOAD_TYPE } from './describe.js';

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
export interface SharedPacketizer {
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

/** The shared packetizer of `track`, made on first use. */
export function packetizerOf(track: Track): SharedPacketizer {
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

/** A frame's packets and their RTCP figures, made once per stream (cached per Frame). */
export function framePackets(frame: Frame): FramePackets {
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
