import { RtspPlayClient, type RtspTransportKind } from './rtsp-client.js';

/**
 * A child process holding many cheap RTSP players (see rtsp-client.ts), driven by the RTSP benchmark over IPC, so
 * the players' CPU never counts as the server's. One "probe" player connects first; it makes sure the stream is
 * up before anything is measured.
 *
 * Packet accounting: every reader of a stream gets the same RTP sequence numbers (the server packetizes once per
 * stream), so the packets sent during the window are the largest advance of the highest sequence number any
 * player of this process saw, per media. A reader's share is what it received in the window over that.
 */

/** Messages from the benchmark to a reader process. */
export type ToRtspReaders =
  | { type: 'probe'; host: string; port: number; path: string; transport: RtspTransportKind }
  | { type: 'connect'; count: number; perSecond: number; timeoutMs: number }
  | { type: 'window-start' }
  | { type: 'window-end' }
  | { type: 'stop' };

/** What one measured player reports at the end of the window. */
export interface RtspReaderResult {
  /** RTP packets received during the window, all media */
  received: number;
  /** connect → first keyframe packet, ms (-1: none) */
  firstKeyMs: number;
  /** connect → PLAY answered, ms (-1: not playing) */
  playMs: number;
  error: string | null;
  closed: boolean;
}

/** Messages from a reader process to the benchmark. */
export type FromRtspReaders =
  | { type: 'probe-ready' }
  | { type: 'connected'; playing: number; failed: number }
  | { type: 'window-started' }
  | {
      type: 'result';
      windowMs: number;
      readers: RtspReaderResult[];
      /** packets the server sent per reader during the window (all media), see the module comment */
      sent: number;
      /** RTP bytes received by the measured players in the window */
      bytes: number;
      /** this process's CPU in the window (user + system), seconds */
      cpuSeconds: number;
    }
  | { type: 'error'; message: string };

function send(msg: FromRtspReaders): void {
  process.send?.(msg);
}

/** One receive buffer for every TCP player: the parser never keeps views into it. */
const readBuffer = Buffer.allocUnsafe(256 * 1024);
let target: { host: string; port: number; path: string; transport: RtspTransportKind } | undefined;
let probe: RtspPlayClient | undefined;
const readers: RtspPlayClient[] = [];
let windowStart: { at: number; received: number[]; highest: number[][]; bytes: number; cpu: NodeJS.CpuUsage } | undefined;

function player(): RtspPlayClient {
  return new RtspPlayClient({ ...target!, readBuffer });
}

const all = (): RtspPlayClient[] => (probe ? [probe, ...readers] : readers);
const receivedOf = (c: RtspPlayClient): number => c.stats.media.reduce((s, m) => s + m.received, 0);
const bytesOf = (c: RtspPlayClient): number => c.stats.media.reduce((s, m) => s + m.bytes, 0);

function startProbe(): void {
  probe = player();
  const deadline = Date.now() + 20_000;
  const wait = setInterval(() => {
    const s = probe!.stats;
    if (s.firstKeyAtMs >= 0 && (s.media[0]?.received ?? 0) >= 100) {
      clearInterval(wait);
      send({ type: 'probe-ready' });
    } else if (Date.now() > deadline) {
      clearInterval(wait);
      send({ type: 'error', message: `probe player got no video: ${s.error ?? (s.closed ? 'closed' : 'timeout')}` });
    } else if (s.error !== null || s.closed) {
      // the publisher is not there yet (404): try again
      probe!.destroy();
      probe = player();
    }
  }, 50);
}

function connect(count: number, perSecond: number, timeoutMs: number): void {
  // small batches every 10 ms: `perSecond` players a second, like viewers arriving, not one SYN flood
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

function startWindow(): void {
  const players = all();
  windowStart = {
    at: performance.now(),
    received: readers.map(receivedOf),
    highest: players.map((c) => c.stats.media.map((m) => m.highest)),
    bytes: readers.reduce((s, r) => s + bytesOf(r), 0),
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
  // per media, the largest advance of the highest sequence number among players that had one at the start
  const sentPerMedia: number[] = [];
  all().forEach((c, i) => {
    c.stats.media.forEach((m, k) => {
      const h0 = w.highest[i]?.[k] ?? -1;
      if (h0 >= 0 && m.highest >= h0) sentPerMedia[k] = Math.max(sentPerMedia[k] ?? 0, m.highest - h0);
    });
  });
  const result: RtspReaderResult[] = readers.map((r, i) => {
    const s = r.stats;
    return {
      received: receivedOf(r) - (w.received[i] ?? 0),
      firstKeyMs: s.firstKeyAtMs >= 0 ? s.firstKeyAtMs - s.connectAtMs : -1,
      playMs: s.playAtMs >= 0 ? s.playAtMs - s.connectAtMs : -1,
      error: s.error,
      closed: s.closed,
    };
  });
  send({
    type: 'result',
    windowMs: performance.now() - w.at,
    readers: result,
    sent: sentPerMedia.reduce((s, x) => s + (x ?? 0), 0),
    bytes: readers.reduce((s, r) => s + bytesOf(r), 0) - w.bytes,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  });
}

process.on('message', (msg: ToRtspReaders) => {
  switch (msg.type) {
    case 'probe':
      target = { host: msg.host, port: msg.port, path: msg.path, transport: msg.transport };
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
