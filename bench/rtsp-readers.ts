import { ReaderPool, sendToBenchmark, serveReaders, type ReaderCommand, type ReaderReply } from './reader-proc.js';
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
export type ToRtspReaders = { type: 'probe'; host: string; port: number; path: string; transport: RtspTransportKind } | ReaderCommand;

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
  | ReaderReply
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
    };

const send = (msg: FromRtspReaders): void => sendToBenchmark(msg);

/** One receive buffer for every TCP player: the parser never keeps views into it. */
const readBuffer = Buffer.allocUnsafe(256 * 1024);
let target: { host: string; port: number; path: string; transport: RtspTransportKind } | undefined;
const pool = new ReaderPool(() => new RtspPlayClient({ ...target!, readBuffer }));
const readers = pool.readers;
let windowStart: { at: number; received: number[]; highest: number[][]; bytes: number; cpu: NodeJS.CpuUsage } | undefined;

const all = (): RtspPlayClient[] => (pool.probe ? [pool.probe, ...readers] : readers);
const receivedOf = (c: RtspPlayClient): number => c.stats.media.reduce((s, m) => s + m.received, 0);
const bytesOf = (c: RtspPlayClient): number => c.stats.media.reduce((s, m) => s + m.bytes, 0);

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

serveReaders(pool, {
  probe(msg: Extract<ToRtspReaders, { type: 'probe' }>) {
    target = { host: msg.host, port: msg.port, path: msg.path, transport: msg.transport };
    pool.startProbe((p) => p.stats.firstKeyAtMs >= 0 && (p.stats.media[0]?.received ?? 0) >= 100);
  },
  startWindow,
  endWindow,
});
