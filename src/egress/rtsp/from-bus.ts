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
 *
 * Layers, one file each (this file re-exports them so importers keep one path): describe.ts (SDP), packet-cache.ts
 * (frame → packets once per stream), interleaved.ts (TCP framing once per frame and channel), udp-pacer.ts (token
 * bucket per UDP reader), play-sink.ts (per-reader sink with its RTCP sender reports).
 */
export { VIDEO_PAYLOAD_TYPE, AUDIO_PAYLOAD_TYPE, formatOf, describeStream } from './describe.js';
export { RTSP_RTP_MTU, PASSTHROUGH_MAX_PACKET, restampedPackets, rtpPacketsOf } from './packet-cache.js';
export { interleavedFramesOf } from './interleaved.js';
export {
  PACE_RATE_FACTOR,
  PACE_MIN_BYTES_PER_SEC,
  PACE_BURST_BYTES,
  PACE_INTERVAL_MS,
  UdpPacer,
  type PaceTimer,
  type PaceTimerFactory,
} from './udp-pacer.js';
export { MAX_HELD_AUDIO, RtspPlaySink, type RtspMediaStats, type RtspPlayerHandle } from './play-sink.js';
import { describeStream } from './describe.js';
import { RtspPlaySink, type RtspPlayerHandle } from './play-sink.js';

/** The RTSP egress as the RTSP listener takes it (main.ts passes this to `startRtspServer`). */
export const rtspEgress = {
  describe: describeStream,
  createPlaySink: (player: RtspPlayerHandle): RtspPlaySink => new RtspPlaySink(player),
};
