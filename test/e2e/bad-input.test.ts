/**
 * Bad input on the RTMP port (issue 2 item 7): malformed handshakes and chunks, limits, random bytes and silent
 * clients each close only their own session, with a reason in its "session ended" log line, while an ffmpeg
 * publish + read on the same gateway goes on without losing a frame; memory stays bounded.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { RTMP_HANDSHAKE_SIZE } from '../../src/ingest/rtmp/handshake.js';
import { RTMP_DEFAULT_MAX_MESSAGE_LENGTH } from '../../src/ingest/rtmp/chunk-stream.js';
import type { Session } from '../../src/media/bus/session.js';
import type { Gateway } from '../../src/main.js';
import { startTestGateway } from '../helpers/gateway.js';
import { ffmpegPublish, hasCommand, waitFor } from '../helpers/media-tools.js';

const haveFfmpeg = hasCommand('ffmpeg');
const FPS = 30;
/** The gateway's readTimeout in this file, and how late the server's once-a-second deadline check may see it. */
const READ_TIMEOUT_MS = 1000;
const CLOSE_WITHIN_MS = READ_TIMEOUT_MS + 2500;

/** C0 + C1 + C2 of a simple handshake (zero time, zero version): the server takes it and starts the chunk stream. */
const HANDSHAKE = (() => {
  const b = new Uint8Array(1 + 2 * RTMP_HANDSHAKE_SIZE);
  b[0] = 3;
  return b;
})();

/** A fmt-0 chunk on `csid` with an 11-byte message header (RTMP spec §5.3.1.2.1) and the given payload. */
function chunk(csid: number, type: number, length: number, payload: number[]): Uint8Array {
  return Uint8Array.from([csid, 0, 0, 0, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff, type, 0, 0, 0, 0, ...payload]);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

interface Case {
  name: string;
  bytes: () => Uint8Array;
  /** what the session's end reason (its log line) must say */
  reason: RegExp;
}

const cases: Case[] = [
  { name: 'malformed handshake version (0x2a)', bytes: () => Uint8Array.of(0x2a, ...randomBytes(100)), reason: /version byte is 42, expected 3/ },
  { name: 'RTMPE handshake (version 6)', bytes: () => Uint8Array.of(6, ...new Uint8Array(1536)), reason: /RTMPE/ },
  { name: 'random bytes instead of a handshake', bytes: () => Uint8Array.of(0xf0, ...randomBytes(4096)), reason: /version byte is 240/ },
  {
    name: 'set chunk size 0',
    bytes: () => concat(HANDSHAKE, chunk(2, 1, 4, [0, 0, 0, 0])),
    reason: /rtmp chunk size is 0, over the limit/,
  },
  {
    name: 'set chunk size 16 MiB + 1',
    bytes: () => concat(HANDSHAKE, chunk(2, 1, 4, [0x01, 0, 0, 0x01])),
    reason: /rtmp chunk size is 16777217, over the limit of 16777216/,
  },
  {
    name: 'message length 16 MiB - 1 (over the 8 MiB limit)',
    bytes: () => concat(HANDSHAKE, chunk(3, 20, 0xffffff, [])),
    reason: new RegExp(`rtmp message length is 16777215, over the limit of ${RTMP_DEFAULT_MAX_MESSAGE_LENGTH}`),
  },
  {
    name: 'command that is not AMF0 (string longer than the message)',
    bytes: () => concat(HANDSHAKE, chunk(3, 20, 5, [0x02, 0x00, 0x10, 0x41, 0x41])),
    reason: /amf0/,
  },
  {
    name: 'fmt-1 chunk on a chunk stream that never had a header',
    bytes: () => concat(HANDSHAKE, Uint8Array.of(0x44, 0, 0, 0, 0, 0, 4, 20, 1, 2, 3, 4)),
    reason: /fmt 1 chunk on csid 4 with no previous header/,
  },
  { name: 'random bytes after a valid handshake', bytes: () => concat(HANDSHAKE, randomBytes(8192)), reason: /./ },
  { name: 'a client that connects and never sends', bytes: () => new Uint8Array(0), reason: new RegExp(`no data for ${READ_TIMEOUT_MS} ms`) },
  { name: 'a client that stops in the middle of the handshake', bytes: () => Uint8Array.of(3, ...new Uint8Array(700)), reason: /no data for/ },
];

/** Sends `bytes`, reads whatever comes back, and resolves when the server closed the connection. */
function garbage(port: number, bytes: Uint8Array): Promise<{ localPort: number; closedAfterMs: number; serverClosed: boolean }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = net.connect(port, '127.0.0.1');
    let localPort = 0;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ localPort, closedAfterMs: performance.now() - t0, serverClosed: false });
    }, CLOSE_WITHIN_MS + 2000);
    s.on('connect', () => {
      localPort = s.localPort ?? 0;
      if (bytes.length > 0) s.write(bytes);
    });
    s.resume();
    // the server may reset instead of closing when our bytes are still unread: both count as closed
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      if (localPort === 0) reject(new Error('could not connect'));
      else resolve({ localPort, closedAfterMs: performance.now() - t0, serverClosed: true });
    });
  });
}

describe('RTMP bad input', { skip: !haveFfmpeg, timeout: 90_000 }, () => {
  let gw: Gateway;
  let port: number;
  const children: ChildProcess[] = [];
  /** reason each session ended with, by remote address (what the "session ended" log line says) */
  const ended = new Map<string, string>();
  let publisher: Session;
  /** video packets (dts, ms) the healthy reader received */
  const received: number[] = [];
  let reader: ChildProcess;

  before(async () => {
    gw = await startTestGateway(`readTimeout: ${READ_TIMEOUT_MS}ms\n`, ['rtmp', 'api']);
    port = gw.ports['rtmp']!;
    const registry = gw.registry;
    const removeSession = registry.removeSession.bind(registry);
    registry.removeSession = (s: Session, reason: string) => {
      ended.set(s.remoteAddr, reason);
      removeSession(s, reason);
    };
    children.push(ffmpegPublish(`rtmp://127.0.0.1:${port}/live/ok`, { size: '320x240', rate: FPS, gop: FPS }));
    await waitFor(() => registry.paths.get('live/ok')?.stream.ready, 15_000);
    publisher = registry.paths.get('live/ok')!.publisher!;
    reader = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', `rtmp://127.0.0.1:${port}/live/ok`, '-map', '0:v', '-c', 'copy', '-f', 'framecrc', '-'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(reader);
    let rest = '';
    reader.stdout!.on('data', (d: Buffer) => {
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) {
        const m = /^0,\s*(-?\d+),/.exec(l);
        if (m) received.push(Number(m[1]));
      }
    });
    await waitFor(() => received.length > FPS, 10_000);
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await gw?.close();
  });

  test('each bad input closes its own session, with the reason in its log line', async () => {
    const results = await Promise.all(cases.map((c) => garbage(port, c.bytes())));
    results.forEach((r, i) => {
      const c = cases[i]!;
      assert.ok(r.serverClosed, `${c.name}: the server did not close the connection within ${CLOSE_WITHIN_MS} ms`);
      const reason = ended.get(`127.0.0.1:${r.localPort}`);
      assert.ok(reason !== undefined, `${c.name}: no session ended`);
      assert.match(reason, c.reason, `${c.name}: reason '${reason}'`);
    });
    const silent = results[cases.findIndex((c) => c.name.includes('never sends'))]!;
    assert.ok(silent.closedAfterMs >= READ_TIMEOUT_MS - 50, `silent client closed after ${silent.closedAfterMs} ms`);
    assert.equal(gw.registry.paths.get('live/ok')?.publisher, publisher, 'the publisher was not disturbed');
  });

  test('200 garbage connections: every one closed, sessions back to the baseline, RSS bounded', async (t) => {
    const baseline = gw.registry.sessions.size;
    const rss0 = process.memoryUsage().rss;
    const kinds = [
      () => randomBytes(2048),
      () => concat(HANDSHAKE, randomBytes(8192)),
      // a message of 8 MiB - 1 announced and never sent: the reader's biggest allocation, held until the timeout
      () => concat(HANDSHAKE, chunk(3, 9, RTMP_DEFAULT_MAX_MESSAGE_LENGTH - 1, [...randomBytes(128)])),
      () => concat(HANDSHAKE, chunk(2, 1, 4, [0, 0, 0, 0])),
    ];
    let peak = rss0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
    let closed = 0;
    for (let batch = 0; batch < 4; batch++) {
      const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => garbage(port, kinds[i % kinds.length]!())));
      closed += rs.filter((r) => r.serverClosed).length;
    }
    clearInterval(sampler);
    assert.equal(closed, 200);
    await waitFor(() => gw.registry.sessions.size === baseline, 5000);
    const grew = (process.memoryUsage().rss - rss0) / 1024 / 1024;
    t.diagnostic(`RSS ${(rss0 / 1048576).toFixed(0)} MB before, peak +${((peak - rss0) / 1048576).toFixed(0)} MB, +${grew.toFixed(0)} MB after`);
    assert.ok(grew < 150, `RSS grew by ${grew.toFixed(0)} MB`);
  });

  test('the concurrent ffmpeg publish and read went on without losing a frame', async () => {
    const count = received.length;
    await waitFor(() => received.length >= count + FPS, 5000);
    assert.equal(reader.exitCode, null, 'the reader is still running');
    assert.equal(gw.registry.paths.get('live/ok')?.publisher, publisher, 'same publisher session');
    const busReader = [...gw.registry.paths.get('live/ok')!.readers][0]!;
    assert.equal(busReader.framesDropped, 0);
    let gap = 0;
    for (let i = 1; i < received.length; i++) gap = Math.max(gap, received[i]! - received[i - 1]!);
    assert.ok(gap <= 1.8 * (1000 / FPS), `a video frame was lost (gap ${gap} ms)`);
  });
});
