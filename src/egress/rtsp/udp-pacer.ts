/**
 * UDP readers are paced: a new reader gets the whole GOP cache at once, and over UDP that burst would overflow its
 * socket buffer. {@link UdpPacer} is the token bucket in front of one UDP reader.
 */
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

/** A pacing timer: Node's `Timeout` (unref'd) by default; tests pass a fake. */
export interface PaceTimer {
  /** re-arms the timer for its interval from now */
  refresh(): unknown;
  /** cancels it for good */
  close(): unknown;
}

/** Makes the pacing timer of one reader; called once, on the first packet that has to wait. */
export type PaceTimerFactory = (onTimeout: () => void, ms: number) => PaceTimer;

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
