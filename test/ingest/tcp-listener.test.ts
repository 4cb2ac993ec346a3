import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { startTcpListener, TCP_LISTENER_TICK_MS, type TcpListenerConnection } from '../../src/ingest/tcp-listener.js';

/** A connection that records what the listener did to it and echoes what it reads. */
class EchoConnection implements TcpListenerConnection {
  ticks: number[] = [];
  closedWith: string | null = null;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (b: Buffer) => socket.write(b));
    socket.on('error', () => {});
  }

  tick(nowMs: number): void {
    this.ticks.push(nowMs);
  }

  close(reason: string): void {
    this.closedWith = reason;
    this.socket.destroy();
  }
}

async function dial(port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  await once(s, 'connect');
  return s;
}

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('tcp listener: the default tick is 1 s', () => {
  assert.equal(TCP_LISTENER_TICK_MS, 1000);
});

test('tcp listener: port 0 binds an ephemeral port; accepted sockets become tracked connections until they close', async () => {
  const made: EchoConnection[] = [];
  const l = await startTcpListener({
    host: '127.0.0.1',
    port: 0,
    accept: (socket) => {
      const c = new EchoConnection(socket);
      made.push(c);
      return c;
    },
  });
  try {
    assert.ok(l.port > 0);
    const a = await dial(l.port);
    const b = await dial(l.port);
    await waitFor(() => l.connections.size === 2);
    assert.deepEqual([...l.connections], made);
    a.write('ping');
    const [echo] = (await once(a, 'data')) as [Buffer];
    assert.equal(echo.toString(), 'ping');
    // the peer hangs up: its connection leaves the set, the other stays
    a.destroy();
    await waitFor(() => l.connections.size === 1);
    assert.deepEqual([...l.connections], [made[1]]);
    b.destroy();
    await waitFor(() => l.connections.size === 0);
    assert.equal(made[0]?.closedWith, null, 'a connection whose peer left is not closed by the listener');
  } finally {
    await l.close();
  }
});

test('tcp listener: every live connection is ticked on the shared timer with the wall clock', async () => {
  const l = await startTcpListener({ host: '127.0.0.1', port: 0, tickMs: 20, accept: (s) => new EchoConnection(s) });
  try {
    const a = await dial(l.port);
    const b = await dial(l.port);
    await waitFor(() => l.connections.size === 2);
    const t0 = Date.now();
    await waitFor(() => [...l.connections].every((c) => c.ticks.length >= 3));
    for (const c of l.connections) {
      for (const t of c.ticks) assert.ok(Math.abs(t - t0) < 5000, `tick time ${t} is the wall clock`);
      for (let i = 1; i < c.ticks.length; i++) assert.ok(c.ticks[i]! >= c.ticks[i - 1]!);
    }
    a.destroy();
    b.destroy();
  } finally {
    await l.close();
  }
});

test('tcp listener: close() closes every connection with the shutdown reason, stops ticking and accepting', async () => {
  const made: EchoConnection[] = [];
  const l = await startTcpListener({
    host: '127.0.0.1',
    port: 0,
    tickMs: 10,
    accept: (socket) => {
      const c = new EchoConnection(socket);
      made.push(c);
      return c;
    },
  });
  const clients = await Promise.all([dial(l.port), dial(l.port), dial(l.port)]);
  for (const c of clients) c.on('error', () => {});
  await waitFor(() => l.connections.size === 3);
  await l.close();
  assert.deepEqual(
    made.map((c) => c.closedWith),
    ['server shutting down', 'server shutting down', 'server shutting down'],
  );
  // each socket's 'close' (which drops it from the set) may come just after the server's
  await waitFor(() => l.connections.size === 0);
  const ticks = made.map((c) => c.ticks.length);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(
    made.map((c) => c.ticks.length),
    ticks,
    'no tick after close()',
  );
  const refused = net.connect({ host: '127.0.0.1', port: l.port });
  const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNREFUSED');
});

test('tcp listener: a port in use rejects with the listen error and leaves nothing bound', async () => {
  const first = await startTcpListener({ host: '127.0.0.1', port: 0, accept: (s) => new EchoConnection(s) });
  try {
    await assert.rejects(
      startTcpListener({ host: '127.0.0.1', port: first.port, accept: (s) => new EchoConnection(s) }),
      (e: NodeJS.ErrnoException) => e.code === 'EADDRINUSE',
    );
    // the first listener still serves
    const a = await dial(first.port);
    await waitFor(() => first.connections.size === 1);
    a.destroy();
  } finally {
    await first.close();
  }
});
