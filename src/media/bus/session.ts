/** Protocols a session can speak. `source` is a pull client that streamgate runs itself. */
export type Protocol = 'rtmp' | 'rtsp' | 'hls' | 'webrtc' | 'sip' | 'source';

/** Which side of a stream a session is on. */
export type Role = 'publisher' | 'reader';

/**
 * A client connection (or pull source) attached to a path, as the control API, the metrics and the logs see it.
 * Each protocol implements it; the counters are updated by the protocol as bytes move.
 */
export interface Session {
  readonly id: string;
  readonly protocol: Protocol;
  /** may change once: a connection is a reader until it publishes */
  role: Role;
  /** path name, '' until known */
  path: string;
  /** "ip:port" of the peer (or the pull URL for a source) */
  readonly remoteAddr: string;
  /** protocol-specific state ('publish', 'play', 'handshake', ...) */
  state: string;
  /** Date.now() at creation */
  readonly createdAt: number;
  bytesIn: number;
  bytesOut: number;
  /** extra per-protocol figures for the API (RTCP loss/jitter/RTT, dropped frames, ...) */
  stats?(): Record<string, unknown>;
  /**
   * Publishers that can make their encoder send a keyframe implement this (RTSP: RTCP PLI/FIR to the publisher or
   * camera; WHIP: PLI to the browser). The registry hands it to the path's Stream while the session publishes; the
   * Stream calls it at most once per KEYFRAME_REQUEST_INTERVAL_MS. Publishers that cannot act (RTMP) leave it out.
   * Must not throw for a request it cannot serve right now (no video yet, not recording): it just does nothing.
   */
  requestKeyframe?(reason: string): void;
  /** Ends the session (API kick, config reload, shutdown). Must be idempotent. */
  close(reason: string): void;
}
