import type { Track } from './track.js';

/**
 * One access unit on the frame bus: an H.264 picture (all its NAL units) or one audio frame.
 *
 * Invariants:
 * - `au` holds views into the publisher's buffers (no copy on ingest); H.264: NAL units without start codes or
 *   length prefixes, each at least 1 byte; audio: exactly one raw frame (no ADTS header).
 * - `dts`/`pts` are ticks of `track.clockRate`. The Stream rewrites them on write() so that each path's timeline
 *   starts near 0 and never goes back, also across a publisher reconnect. Readers never mutate a frame.
 * - `rtp`, when present, are the original RTP packets (RTSP/WebRTC ingest), so RTP egress can pass them through.
 * - Anything that must outlive the current tick (GOP cache) is kept by reference: the publisher never reuses a
 *   buffer it handed to the bus.
 */
export interface Frame {
  track: Track;
  dts: number;
  pts: number;
  keyframe: boolean;
  au: readonly Uint8Array[];
  rtp?: readonly Uint8Array[];
  /** sum of au lengths */
  byteLength: number;
  /** performance.now() when the frame entered the gateway, for latency measurements */
  receivedAtMs: number;
  /**
   * Set on a re-timed copy (catch-up burst): the shared frame it was copied from, with the same `au`. Egress can
   * reuse what it serialized for the original and patch only the timestamps.
   */
  origin?: Frame;
}

/** Builds a frame, computing byteLength. */
export function makeFrame(
  track: Track,
  dts: number,
  pts: number,
  keyframe: boolean,
  au: readonly Uint8Array[],
  receivedAtMs = performance.now(),
): Frame {
  let byteLength = 0;
  for (const u of au) byteLength += u.byteLength;
  return { track, dts, pts, keyframe, au, byteLength, receivedAtMs };
}
