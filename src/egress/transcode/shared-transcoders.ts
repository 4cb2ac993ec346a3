/**
 * Reference-counted transcoders: one per key (a path, or a path and an output codec), started by the first reader
 * that acquires it and stopped when the last one releases it, or when it stops by itself (idle, bad output).
 */
import type { Track } from '../../media/bus/track.js';
import type { FfmpegTranscoder } from './ffmpeg-transcoder.js';

/**
 * Transcoders of type `T`, whose subscribers are called with `A`, by key. Each egress's pool extends it with
 * `acquire`/`release` in its own terms (which key, which transcoder to start).
 */
export class SharedTranscoders<A extends unknown[], T extends FfmpegTranscoder<A> = FfmpegTranscoder<A>> {
  private readonly byKey = new Map<string, T>();

  /**
   * Subscribes `sink` to the transcoder of `key`. One is started with `start()` when there is none, when the one
   * there no longer runs (ffmpeg exited) or when it transcodes another track (a new publisher).
   */
  subscribe(key: string, input: Track, sink: (...args: A) => void, start: () => T): T {
    let t = this.byKey.get(key);
    if (t && (!t.running || t.input !== input)) {
      t.stop();
      t = undefined;
    }
    if (!t) {
      const started = start();
      started.onStop = () => {
        if (this.byKey.get(key) === started) this.byKey.delete(key);
      };
      this.byKey.set(key, started);
      t = started;
    }
    t.subscribe(sink);
    return t;
  }

  /** Unsubscribes; the transcoder stops with its last subscriber. */
  unsubscribe(key: string, sink: (...args: A) => void): void {
    const t = this.byKey.get(key);
    if (!t) return;
    t.unsubscribe(sink);
    if (t.subscribers === 0) t.stop();
  }

  /** The transcoder of `key`, if one was started and has not stopped. */
  get(key: string): T | undefined {
    return this.byKey.get(key);
  }

  /** Transcoders running. */
  get size(): number {
    return this.byKey.size;
  }

  /** Stops every transcoder. */
  closeAll(): void {
    for (const t of [...this.byKey.values()]) t.stop();
    this.byKey.clear();
  }
}
