import { outcomeOf, ReaderPool, serveReaders, sharedReadBuffer, sinceConnect, windowClock, type PlayerOutcome, type ReaderCommand, type ReaderReply, type ReaderWindow } from './reader-proc.js';
import { RtmpPlayClient } from './rtmp-client.js';

/**
 * A child process holding many cheap RTMP players (see rtmp-client.ts), driven by the benchmark over IPC.
 * It is separate from the server under test so the players' CPU never counts as the server's.
 *
 * Besides the players it keeps one "probe" player, connected before the measured readers: its frames (and every
 * player's) give the live edge, the newest video timestamp seen in this process, against which each new player's
 * first keyframe is dated ("first-frame age").
 */

/** Messages from the benchmark to a reader process. */
export type ToReaders = { type: 'probe'; host: string; port: number; app: string; name: string } | ReaderCommand;

/** What one measured player reports at the end of the window. */
export interface ReaderResult extends PlayerOutcome {
  /** pictures received during the window */
  frames: number;
  /** connect → first picture of any kind, ms (-1: none) */
  firstFrameMs: number;
  /** live edge minus the first keyframe's timestamp when it arrived, ms */
  firstKeyAgeMs: number;
}

/** Messages from a reader process to the benchmark. */
export type FromReaders =
  | ReaderReply
  | (ReaderWindow & {
      type: 'result';
      readers: ReaderResult[];
      probeFrames: number;
      /**
       * frames the publisher sent during the window: how far the live edge's timestamp advanced, times the frame
       * rate (the source is constant frame rate). Publisher hiccups on a busy machine then count for nobody.
       */
      liveEdgeAdvanceMs: number;
    });

let target: { host: string; port: number; app: string; name: string } | undefined;
/** newest video timestamp any player in this process received: the live edge as seen from here */
let liveTs = -1;
const ages = new Map<RtmpPlayClient, number>();
/** The counters when the window opened. */
interface WindowStart {
  clock: () => Omit<ReaderWindow, 'bytes'>;
  liveTs: number;
  frames: number[];
  probeFrames: number;
  bytes: number;
}

function onFrame(_c: RtmpPlayClient, ts: number): void {
  if (ts > liveTs) liveTs = ts;
}

function onFirstKeyframe(c: RtmpPlayClient, ts: number): void {
  // probe first: it has been at the live edge for seconds, so liveTs is meaningful for every measured player
  ages.set(c, liveTs >= 0 ? Math.max(0, liveTs - ts) : -1);
}

const pool = new ReaderPool(() => new RtmpPlayClient({ ...target!, readBuffer: sharedReadBuffer(), onFrame, onFirstKeyframe }));
const readers = pool.readers;

function measuredBytes(): number {
  let b = 0;
  for (const r of readers) b += r.stats.bytes;
  return b;
}

function startWindow(): WindowStart {
  return {
    clock: windowClock(),
    liveTs,
    frames: readers.map((r) => r.stats.frames),
    probeFrames: pool.probe?.stats.frames ?? 0,
    bytes: measuredBytes(),
  };
}

function endWindow(w: WindowStart): Extract<FromReaders, { type: 'result' }> {
  const result: ReaderResult[] = readers.map((r, i) => ({
    ...outcomeOf(r),
    frames: r.stats.frames - (w.frames[i] ?? 0),
    firstFrameMs: sinceConnect(r, r.stats.firstFrameAtMs),
    firstKeyAgeMs: ages.get(r) ?? -1,
  }));
  return {
    type: 'result',
    ...w.clock(),
    readers: result,
    probeFrames: (pool.probe?.stats.frames ?? 0) - w.probeFrames,
    liveEdgeAdvanceMs: liveTs - w.liveTs,
    bytes: measuredBytes() - w.bytes,
  };
}

serveReaders(pool, {
  probe(msg: Extract<ToReaders, { type: 'probe' }>) {
    target = { host: msg.host, port: msg.port, app: msg.app, name: msg.name };
    // a few frames past the first keyframe: the publisher is live and the probe follows it
    pool.startProbe((p) => p.stats.firstKeyAtMs >= 0 && p.stats.frames >= 10);
  },
  startWindow,
  endWindow,
});
