import type { Frame } from './frame.js';
import type { Session } from './session.js';
import type { Stream } from './stream.js';

/**
 * Where a reader's frames go: one per egress session (an RTMP socket, an RTSP session, an HLS muxer, a WebRTC
 * peer). The bus calls `start` once the stream's tracks are known (and again if a new publisher brings different
 * tracks), then `writeFrame` for every frame, in order.
 */
export interface FrameSink {
  start(stream: Stream): void;
  /** Writes a frame. Must not keep `frame.au` views beyond the call unless it documents why (sockets do). */
  writeFrame(frame: Frame): void;
  /** Bytes accepted by writeFrame but not yet handed to the kernel (socket `writableLength`); 0 for sinks that never queue. */
  bufferedBytes(): number;
  /** The bus ends the reader (too slow, publisher gone, kicked). Must be idempotent. */
  close(reason: string): void;
}

/** Bounds of one reader's queue. */
export interface ReaderLimits {
  /**
   * Bytes a reader may have queued before frames are dropped to the next keyframe. Default 4 MiB ≈ 10 s of a
   * 3 Mbps stream: more than any healthy TCP reader on a LAN ever queues, and 2000 readers × 4 MiB stays in RAM.
   */
  maxQueueBytes: number;
  /** A reader whose queue stays over the limit this long is dead, not slow: it is closed. Default 10 s. */
  maxStallMs: number;
}

export const DEFAULT_READER_LIMITS: ReaderLimits = { maxQueueBytes: 4 * 1024 * 1024, maxStallMs: 10_000 };

/**
 * One reader of a Stream: applies the drop policy between the stream's fan-out and the sink.
 * When the sink's queue is over `maxQueueBytes`, frames are dropped (and counted) until the queue has room
 * AND a video keyframe arrives, so the reader resumes with a decodable picture. A reader never slows the
 * publisher or another reader; an exception in a sink closes only that reader.
 */
export class Reader {
  framesSent = 0;
  framesDropped = 0;
  bytesSent = 0;
  closed = false;
  /** true until the reader got a keyframe (start, or after a drop) */
  private needKeyframe = true;
  private overSinceMs = -1;
  /** called when the reader closes itself (too slow, sink error), so the registry can detach it */
  onClose: ((reason: string) => void) | undefined;
  /**
   * Start at the live edge: the GOP cache is replayed re-timed (see Stream `catchUpBurst`) instead of as it was,
   * so the player starts at once AND is not one GOP behind live. For players (RTMP, WebRTC); not for muxers.
   */
  catchUp = false;

  constructor(
    readonly session: Session,
    readonly sink: FrameSink,
    readonly limits: ReaderLimits = DEFAULT_READER_LIMITS,
  ) {}

  /** Restart from a keyframe (new tracks). */
  resetToKeyframe(): void {
    this.needKeyframe = true;
  }

  /** Fan-out entry point; never throws. */
  deliver(frame: Frame, hasVideo: boolean, nowMs: number): void {
    if (this.closed) return;
    const queued = this.sink.bufferedBytes();
    if (queued > this.limits.maxQueueBytes) {
      if (this.overSinceMs < 0) this.overSinceMs = nowMs;
      else if (nowMs - this.overSinceMs > this.limits.maxStallMs) {
        this.close(`reader stalled: ${queued} bytes queued for over ${this.limits.maxStallMs} ms`);
        return;
      }
      this.framesDropped++;
      this.needKeyframe = true;
      return;
    }
    this.overSinceMs = -1;
    if (this.needKeyframe) {
      const canStart = hasVideo ? frame.track.isVideo && frame.keyframe : true;
      if (!canStart) {
        this.framesDropped++;
        return;
      }
      this.needKeyframe = false;
    }
    try {
      this.sink.writeFrame(frame);
      this.framesSent++;
      this.bytesSent += frame.byteLength;
    } catch (err) {
      this.close(`reader failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Tells the sink the stream (re)started; never throws. */
  start(stream: Stream): void {
    if (this.closed) return;
    this.needKeyframe = true;
    try {
      this.sink.start(stream);
    } catch (err) {
      this.close(`reader failed to start: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.sink.close(reason);
    } catch {
      // a sink that throws on close is already gone
    }
    this.onClose?.(reason);
  }
}
