import type { Reader } from '../../src/media/bus/reader.js';
import type { PathRegistry } from '../../src/media/bus/registry.js';
import type { Protocol, Role, Session } from '../../src/media/bus/session.js';

/** A registered test session: the reasons it was closed with, and the reader a test attached to it. */
export type FakeSession = Session & { closedWith: string[]; reader?: Reader };

/** What {@link fakeSession} makes differ between tests. */
export interface FakeSessionOptions {
  remoteAddr: string;
  createdAt: number;
  /** what `stats()` returns; without it the session has no `stats` */
  stats?: Record<string, unknown>;
}

/**
 * A session as a protocol would register it (already added to `registry`); close() detaches it from the registry
 * like a real one: the publisher and the reader go, then the session, once.
 */
export function fakeSession(registry: PathRegistry, id: string, protocol: Protocol, role: Role, o: FakeSessionOptions): FakeSession {
  const s: FakeSession = {
    id,
    protocol,
    role,
    path: '',
    remoteAddr: o.remoteAddr,
    state: role === 'publisher' ? 'publish' : 'play',
    createdAt: o.createdAt,
    bytesIn: 0,
    bytesOut: 0,
    closedWith: [],
    close(reason: string) {
      s.closedWith.push(reason);
      if (s.closedWith.length > 1) return;
      if (role === 'publisher') registry.removePublisher(s);
      s.reader?.close(reason);
      registry.removeSession(s, reason);
    },
  };
  const stats = o.stats;
  if (stats) s.stats = () => stats;
  registry.addSession(s);
  return s;
}

/**
 * Calls `feed` (e.g. adds to a session's byte counter) every `stepMs` until `read` gives a non-zero figure or
 * `timeoutMs` passed. @returns the last figure read (0: never seen)
 */
export async function feedUntilSeen(feed: () => void, read: () => Promise<number>, timeoutMs = 3000, stepMs = 60): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let seen = 0;
  while (Date.now() < deadline && seen === 0) {
    feed();
    await new Promise((r) => setTimeout(r, stepMs));
    seen = await read();
  }
  return seen;
}
