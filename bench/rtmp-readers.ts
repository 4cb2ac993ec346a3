import { ReaderPool, sendToBenchmark, serveReaders, type ReaderCommand, type ReaderReply } from './reader-proc.js';
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
export interface ReaderResult {
  /** pictures received during the window */
  frames: number;
  /** connect → first picture of any kind, ms (-1: none) */
  firstFrameMs: number;
  /** connect → first keyframe, ms (-1: none) */
  firstKeyMs: number;
  /** live edge minus the first keyframe's timestamp when it arrived, ms */
  firstKeyAgeMs: number;
  error: string | null;
  closed: boolean;
}

/** Messages from a reader process to the benchmark. */
export type FromReaders =
  | ReaderReply
  | {
      type: 'result';
      windowMs: number;
      readers: ReaderResult[];
      probeFrames: number;
      /**
       * frames the publisher sent during the window: how far the live edge's timestamp advanced, times the frame
       * rate (the source is constant frame rate). Publisher hiccups on a busy machine then count for nobody.
       */
      liveEdgeAdvanceMs: number;
      /** media bytes received by the measured players in the window */
      bytes: number;
      /** this process's CPU in the window (user + system), seconds */
      cpuSeconds: number;
    };

const send = (msg: FromReaders): void => sendToBenchmark(msg);

/** One receive buffer for every socket: the parser never keeps views into it. */
const readBuffer = Buffer.allocUnsafe(256 * 1024);
let target: { host: string; port: number; app: string; name: string } | undefined;
/** newest video timestamp any player in this process received: the live edge as seen from here */
let liveTs = -1;
const ages = new Map<RtmpPlayClient, number>();
let windowStart: { at: number; liveTs: number; frames: number[]; probeFrames: number; bytes: number; cpu: NodeJS.CpuUsage } | undefined;

function onFrame(_c: RtmpPlayClient, ts: number): void {
  if (ts > liveTs) liveTs = ts;
}

function onFirstKeyframe(c: RtmpPlayClient, ts: number): void {
  // probe first: it has been at the live edge for seconds, so liveTs is meaningful for every measured player
  ages.set(c, liveTs >= 0 ? Math.max(0, liveTs - ts) : -1);
}

const pool = new ReaderPool(() => new RtmpPlayClient({ ...target!, readBuffer, onFrame, onFirstKeyframe }));
const readers = pool.readers;

function measuredBytes(): number {
  let b = 0;
  for (const r of readers) b += r.stats.bytes;
  return b;
}

function startWindow(): void {
  windowStart = {
    at: performance.now(),
    liveTs,
    frames: readers.map((r) => r.stats.frames),
    probeFrames: pool.probe?.stats.frames ?? 0,
    bytes: measuredBytes(),
    cpu: process.cpuUsage(),
  };
  send({ type: 'window-started' });
}

function endWindow(): void {
  const w = windowStart;
  if (!w) {
    send({ type: 'error', message: 'window-end before window-start' });
    return;
  }
  const cpu = process.cpuUsage(w.cpu);
  const result: ReaderResult[] = readers.map((r, i) => {
    const s = r.stats;
    return {
      frames: s.frames - (w.frames[i] ?? 0),
      firstFrameMs: s.firstFrameAtMs >= 0 ? s.firstFrameAtMs - s.connectAtMs : -1,
      firstKeyMs: s.firstKeyAtMs >= 0 ? s.firstKeyAtMs - s.connectAtMs : -1,
      firstKeyAgeMs: ages.get(r) ?? -1,
      error: s.error,
      closed: s.closed,
    };
  });
  send({
    type: 'result',
    windowMs: performance.now() - w.at,
    readers: result,
    probeFrames: (pool.probe?.stats.frames ?? 0) - w.probeFrames,
    liveEdgeAdvanceMs: liveTs - w.liveTs,
    bytes: measuredBytes() - w.bytes,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  });
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
