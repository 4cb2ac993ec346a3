import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import type { Session } from '../../src/media/bus/session.js';
import { startTcpListener, type TcpListener } from '../../src/ingest/tcp-listener.js';
import { TCP_SESSION_END_GRACE_MS, TcpSession, type TcpSessionRegistry } from '../../src/ingest/tcp-session.js';

/** A registry that records what sessions did to it. */
function fakeRegistry(): TcpSessionRegistry & { events: string[]; live: Set<Session> } {
  const events: string[] = [];
  const live = new Set<Session>();
  return {
    events,
    live,
    addSession: (s) => {
      live.add(s);
      events.push(`add ${s.protocol} ${s.state}`);
    },
    removeSession: (s, reason) => {
      live.delete(s);
      events.push(`remove: ${reason}`);
    },
  };
}

/** A line-echo protocol: 'bye' closes from our side. */
class EchoSession extends TcpSession {
  released: string[] = [];

  constructor(socket: net.Socket, registry: TcpSessionRegistry) {
    super('rtsp', 'initial', socket, registry);
    socket.on('data', (b: Buffer) => {
      this.bytesIn += b.byteLength;
      if (b.toString() === 'bye') this.close('asked to');
      else this.write(b);
    });
  }

  override tick(): void {}

  override close(reason: string): void {
    this.cleanup(reason);
  }

  /** A write after the end is dropped. */
  writeNow(bytes: Uint8Array): void {
    this.write(bytes);
  }

  protected override release(reason: string): void {
    this.released.push(reason);
  }
}

async function serve(t: { after(fn: () => Promise<void>): void }): Promise<{ listener: TcpListener<EchoSession>; registry: ReturnType<typeof fakeRegistry> }> {
  const registry = fakeRegistry();
  const listener = await startTcpListener({ host: '127.0.0.1', port: 0, accept: (s) => new EchoSession(s, registry) });
  t.after(() => listener.close());
  return { listener, registry };
}

async function dial(port: number, allowHalfOpen = false): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen });
  s.on('error', () => {});
  await once(s, 'connect');
  return s;
}

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('tcp session: registered on accept with the peer address, counts what it writes', async (t) => {
  const { listener, registry } = await serve(t);
  const c = await dial(listener.port);
  await waitFor(() => listener.connections.size === 1);
  const s = [...listener.connections][0]!;
  assert.deepEqual(registry.events, ['add rtsp initial']);
  assert.equal(s.ip, '127.0.0.1');
  assert.equal(s.remoteAddr, `127.0.0.1:${c.localPort}`);
  assert.equal(s.role, 'reader');
  assert.equal(s.path, '');
  assert.match(s.id, /^[\w-]{12}$/);
  c.write('hello');
  const [echo] = (await once(c, 'data')) as [Buffer];
  assert.equal(echo.toString(), 'hello');
  assert.equal(s.bytesOut, 5);
  assert.equal(s.bytesIn, 5);
  c.destroy();
});

test('tcp session: a peer hang-up cleans up once: released, removed with the reason, later writes dropped', async (t) => {
  const { listener, registry } = await serve(t);
  const c = await dial(listener.port);
  await waitFor(() => listener.connections.size === 1);
  const s = [...listener.connections][0]!;
  c.end();
  await waitFor(() => registry.events.length === 2);
  assert.deepEqual(registry.events, ['add rtsp initial', 'remove: connection closed by peer']);
  assert.deepEqual(s.released, ['connection closed by peer']);
  s.close('again');
  s.writeNow(Uint8Array.of(1, 2, 3));
  assert.deepEqual(s.released, ['connection closed by peer']);
  assert.equal(s.bytesOut, 0);
  assert.equal(registry.live.size, 0);
});

test('tcp session: a socket error ends the session with the error in the reason', async (t) => {
  const { listener, registry } = await serve(t);
  await dial(listener.port);
  await waitFor(() => listener.connections.size === 1);
  const s = [...listener.connections][0]!;
  s.socket.destroy(new Error('boom'));
  await waitFor(() => registry.events.length === 2);
  assert.deepEqual(s.released, ['socket error: boom']);
  assert.equal(registry.events[1], 'remove: socket error: boom');
});

test('tcp session: closing from our side ends the socket (the peer sees the end) and removes the session', async (t) => {
  const { listener, registry } = await serve(t);
  const c = await dial(listener.port);
  await waitFor(() => listener.connections.size === 1);
  c.write('bye');
  await once(c, 'end');
  assert.deepEqual(registry.events, ['add rtsp initial', 'remove: asked to']);
  await waitFor(() => listener.connections.size === 0);
});

test('tcp session: a peer that never ends its side is destroyed after the grace period', async (t) => {
  assert.equal(TCP_SESSION_END_GRACE_MS, 2000);
  const { listener } = await serve(t);
  const c = await dial(listener.port, true);
  t.after(() => void c.destroy());
  await waitFor(() => listener.connections.size === 1);
  const s = [...listener.connections][0]!;
  const closed = once(s.socket, 'close');
  const started = Date.now();
  c.write('bye');
  await once(c, 'end');
  // half-open: we keep our side open; the server's socket is destroyed when the grace period is over
  await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('never destroyed')), 5000))]);
  const waited = Date.now() - started;
  assert.ok(waited >= TCP_SESSION_END_GRACE_MS - 100 && waited < TCP_SESSION_END_GRACE_MS + 1500, `closed after ${waited} ms`);
});
