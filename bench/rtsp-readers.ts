import { outcomeOf, ReaderPool, serveReaders, sharedReadBuffer, sinceConnect, windowClock, type PlayerOutcome, type ReaderCommand, type ReaderReply, type ReaderWindow } from './reader-proc.js';
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
export interface RtspReaderResult extends PlayerOutcome {
  /** RTP packets received during the window, all media */
  received: number;
  /** connect → PLAY answered, ms (-1: not playing) */
  playMs: number;
}

/** Messages from a reader process to the benchmark. */
export type FromRtspReaders =
  | ReaderReply
  | (ReaderWindow & {
      type: 'result';
      readers: RtspReaderResult[];
      /** packets the server sent per reader during the window (all media), see the module comment */
      sent: number;
    });

let target: { host: string; port: number; path: string; transport: RtspTransportKind } | undefined;
const pool = new ReaderPool(() => new RtspPlayClient({ ...target!, readBuffer: sharedReadBuffer() }));
const readers = pool.readers;
/** The counters when the window opened. */
interface WindowStart {
  clock: () => Omit<ReaderWindow, 'bytes'>;
  received: number[];
  highest: number[][];
  bytes: number;
}

const all = (): RtspPlayClient[] => (pool.probe ? [pool.probe, ...readers] : readers);
const receivedOf = (c: RtspPlayClient): number => c.stats.media.reduce((s, m) => s + m.received, 0);
const bytesOf = (c: RtspPlayClient): number => c.stats.media.reduce((s, m) => s + m.bytes, 0);

function startWindow(): WindowStart {
  const players = all();
  return {
    clock: windowClock(),
    received: readers.map(receivedOf),
    highest: players.map((c) => c.stats.media.map((m) => m.highest)),
    bytes: readers.reduce((s, r) => s + bytesOf(r), 0),
  };
}

function endWindow(w: WindowStart): Extract<FromRtspReaders, { type: 'result' }> {
  // per media, the largest advance of the highest sequence number among players that had one at the start
  const sentPerMedia: number[] = [];
  all().forEach((c, i) => {
    c.stats.media.forEach((m, k) => {
      const h0 = w.highest[i]?.[k] ?? -1;
      if (h0 >= 0 && m.highest >= h0) sentPerMedia[k] = Math.max(sentPerMedia[k] ?? 0, m.highest - h0);
    });
  });
  const result: RtspReaderResult[] = readers.map((r, i) => ({
    ...outcomeOf(r),
    received: receivedOf(r) - (w.received[i] ?? 0),
    playMs: sinceConnect(r, r.stats.playAtMs),
  }));
  return {
    type: 'result',
    ...w.clock(),
    readers: result,
    sent: sentPerMedia.reduce((s, x) => s + (x ?? 0), 0),
    bytes: readers.reduce((s, r) => s + bytesOf(r), 0) - w.bytes,
  };
}

serveReaders(pool, {
  probe(msg: Extract<ToRtspReaders, { type: 'probe' }>) {
    target = { host: msg.host, port: msg.port, path: msg.path, transport: msg.transport };
    pool.startProbe((p) => p.stats.firstKeyAtMs >= 0 && (p.stats.media[0]?.received ?? 0) >= 100);
  },
  startWindow,
  endWindow,
});
