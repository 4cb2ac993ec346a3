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
export type ToReaders =
  | { type: 'probe'; host: string; port: number; app: string; name: string }
  | { type: 'connect'; count: number; perSecond: number; timeoutMs: number }
  | { type: 'window-start' }
  | { type: 'window-end' }
  | { type: 'stop' };

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
  | { type: 'probe-ready' }
  | { type: 'connected'; playing: number; failed: number }
  | { type: 'window-started' }
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
    }
  | { type: 'error'; message: string };

function send(msg: FromReaders): void {
  process.send?.(msg);
}

/** One receive buffer for every socket: the parser never keeps views into it. */
const readBuffer = Buffer.allocUnsafe(256 * 1024);
let target: { host: string; port: number; app: string; name: string } | undefined;
let probe: RtmpPlayClient | undefined;
const readers: RtmpPlayClient[] = [];
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

function player(): RtmpPlayClient {
  const t = target!;
  return new RtmpPlayClient({ ...t, readBuffer, onFrame, onFirstKeyframe });
}

function startProbe(): void {
  probe = player();
  const deadline = Date.now() + 20_000;
  const wait = setInterval(() => {
    const s = probe!.stats;
    // a few frames past the first keyframe: the publisher is live and the probe follows it
    if (s.firstKeyAtMs >= 0 && s.frames >= 10) {
      clearInterval(wait);
      send({ type: 'probe-ready' });
    } else if (Date.now() > deadline) {
      clearInterval(wait);
      send({ type: 'error', message: `probe player got no video: ${s.error ?? (s.closed ? 'closed' : 'timeout')}` });
    } else if (s.error !== null || s.closed) {
      // the publisher is not there yet (streamgate refuses to play an unpublished path): try again
      probe!.destroy();
      probe = player();
    }
  }, 50);
}

function connect(count: number, perSecond: number, timeoutMs: number): void {
  // connect in small batches every 10 ms: `perSecond` players a second, like viewers arriving, not one SYN flood
  const perTick = Math.max(1, Math.round(perSecond / 100));
  let started = 0;
  const ramp = setInterval(() => {
    for (let k = 0; k < perTick && started < count; k++, started++) readers.push(player());
    if (started >= count) clearInterval(ramp);
  }, 10);
  const begin = Date.now();
  const check = setInterval(() => {
    if (started < count) return;
    let playing = 0;
    let failed = 0;
    for (const r of readers) {
      if (r.stats.firstKeyAtMs >= 0) playing++;
      else if (r.stats.error !== null || r.stats.closed) failed++;
    }
    if (playing + failed === count || Date.now() - begin > timeoutMs) {
      clearInterval(check);
      send({ type: 'connected', playing, failed });
    }
  }, 50);
}

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
    probeFrames: probe?.stats.frames ?? 0,
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
    probeFrames: (probe?.stats.frames ?? 0) - w.probeFrames,
    liveEdgeAdvanceMs: liveTs - w.liveTs,
    bytes: measuredBytes() - w.bytes,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  });
}

process.on('message', (msg: ToReaders) => {
  switch (msg.type) {
    case 'probe':
      target = { host: msg.host, port: msg.port, app: msg.app, name: msg.name };
      startProbe();
      break;
    case 'connect':
      connect(msg.count, msg.perSecond, msg.timeoutMs);
      break;
    case 'window-start':
      startWindow();
      break;
    case 'window-end':
      endWindow();
      break;
    case 'stop':
      for (const r of readers) r.destroy();
      probe?.destroy();
      process.disconnect?.();
      setTimeout(() => process.exit(0), 100).unref();
      break;
  }
});
process.on('disconnect', () => process.exit(0));
