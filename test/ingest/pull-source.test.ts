import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ParseError, StreamgateError } from '../../src/errors.js';
import type { Session } from '../../src/media/bus/session.js';
import {
  Backoff,
  PULL_SOURCE_MAX_BACKOFF_MS,
  PULL_SOURCE_MIN_BACKOFF_MS,
  PULL_SOURCE_TICK_MS,
  PullSource,
  type PullSourceOptions,
  type PullSourcePaths,
  type PullSourceTimer,
  type PullSourceTimers,
} from '../../src/ingest/pull-source.js';

/** Timers on a manual clock: `advance(ms)` runs what falls due, in time order. */
class ManualTimers implements PullSourceTimers {
  nowMs = 0;
  private seq = 0;
  private readonly pending = new Map<number, { at: number; fn: () => void; everyMs: number | null }>();

  now(): number {
    return this.nowMs;
  }

  setTimeout(fn: () => void, ms: number): PullSourceTimer {
    return this.add(fn, ms, null);
  }

  setInterval(fn: () => void, ms: number): PullSourceTimer {
    return this.add(fn, ms, ms);
  }

  get count(): number {
    return this.pending.size;
  }

  advance(ms: number): void {
    const end = this.nowMs + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void; everyMs: number | null }] | undefined;
      for (const e of this.pending) if (e[1].at <= end && (next === undefined || e[1].at < next[1].at)) next = e;
      if (next === undefined) break;
      const [id, t] = next;
      this.nowMs = t.at;
      if (t.everyMs === null) this.pending.delete(id);
      else t.at += t.everyMs;
      t.fn();
    }
    this.nowMs = end;
  }

  private add(fn: () => void, ms: number, everyMs: number | null): PullSourceTimer {
    const id = ++this.seq;
    this.pending.set(id, { at: this.nowMs + ms, fn, everyMs });
    return { cancel: () => void this.pending.delete(id) };
  }
}

/** A registry that records what the source did to it. */
function fakePaths(): PullSourcePaths & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    addSession: (s: Session) => void events.push(`addSession ${s.protocol}`),
    removeSession: (_s: Session, reason: string) => void events.push(`removeSession: ${reason}`),
    addPublisher: () => Promise.reject(new Error('not expected')),
    removePublisher: () => void events.push('removePublisher'),
  };
}

/** A logger whose JSON lines land in `lines`. */
function captureLog(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

/** A pull source whose attempts are records: the test says when one fails. */
class FakeSource extends PullSource<{ host: string }> {
  readonly calls: string[] = [];
  open = false;

  constructor(url: string, paths: PullSourcePaths, opts: PullSourceOptions) {
    super({
      ...opts,
      path: 'relay/x',
      url,
      registry: paths,
      remoteAddr: url,
      parseTarget: (u) => {
        if (!u.startsWith('fake://')) throw new ParseError('fake-url', `not fake: ${u}`);
        return { host: u.slice('fake://'.length) };
      },
    });
  }

  protected override connect(target: { host: string }): void {
    this.open = true;
    this.calls.push(`connect ${target.host} #${this.attempts} at ${this.timers.now()}`);
  }

  protected override hasAttempt(): boolean {
    return this.open;
  }

  protected override teardown(stopping: boolean): void {
    if (!this.open) return;
    this.open = false;
    this.calls.push(`teardown${stopping ? ' (stopping)' : ''}`);
  }

  protected override tick(nowMs: number): void {
    this.calls.push(`tick ${nowMs}`);
  }

  fail(reason: string, err?: unknown): void {
    this.disconnected(reason, err);
  }

  playing(): void {
    this.connects++;
    this.resetBackoff();
  }
}

function setup(url = 'fake://cam', opts: PullSourceOptions = {}) {
  const timers = new ManualTimers();
  const paths = fakePaths();
  const { logger, lines } = captureLog();
  const src = new FakeSource(url, paths, { timers, logger, ...opts });
  return { timers, paths, lines, src };
}

const connects = (src: FakeSource): string[] => src.calls.filter((c) => c.startsWith('connect'));

test('Backoff: 1 s doubling to 30 s by default, reset() starts over', () => {
  const b = new Backoff(PULL_SOURCE_MIN_BACKOFF_MS, PULL_SOURCE_MAX_BACKOFF_MS);
  assert.deepEqual(
    Array.from({ length: 8 }, () => b.next()),
    [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000],
  );
  b.reset();
  assert.deepEqual([b.next(), b.next()], [1000, 2000]);
});

test('Backoff: a maximum that is not a doubling of the minimum is reached exactly; min > max gives min once', () => {
  const b = new Backoff(50, 200);
  assert.deepEqual([b.next(), b.next(), b.next(), b.next()], [50, 100, 200, 200]);
  const odd = new Backoff(300, 100);
  assert.deepEqual([odd.next(), odd.next()], [300, 100]);
});

test('PullSource: start registers the session and opens the first attempt at once; ticks every second', () => {
  const { timers, paths, src } = setup();
  src.start();
  assert.deepEqual(paths.events, ['addSession source']);
  assert.deepEqual(src.calls, ['connect cam #1 at 0']);
  assert.equal(src.state, 'connecting');
  assert.equal(src.protocol, 'source');
  assert.equal(src.role, 'publisher');
  timers.advance(3 * PULL_SOURCE_TICK_MS);
  assert.deepEqual(src.calls.slice(1), ['tick 1000', 'tick 2000', 'tick 3000']);
});

test('PullSource: each failure waits 1 s, 2 s, 4 s … 30 s before the next attempt, one log line each', () => {
  const { timers, src, lines } = setup();
  src.start();
  const expected = [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000];
  for (const [i, delay] of expected.entries()) {
    src.fail(`refused ${i}`, new StreamgateError('SG_PROTOCOL', 'x'));
    assert.equal(src.state, 'waiting');
    const before = connects(src).length;
    timers.advance(delay - 1);
    assert.equal(connects(src).length, before, `no attempt before ${delay} ms`);
    timers.advance(1);
    assert.equal(connects(src).length, before + 1, `an attempt after ${delay} ms`);
    assert.equal(src.state, 'connecting');
  }
  const warns = lines.filter((l) => l['msg'] === 'pull source disconnected: reconnecting');
  assert.deepEqual(
    warns.map((l) => l['retryInMs']),
    expected,
  );
  assert.deepEqual(
    warns.map((l) => [l['reason'], l['code'], l['attempt'], l['path'], l['protocol']]),
    expected.map((_, i) => [`refused ${i}`, 'SG_PROTOCOL', i + 1, 'relay/x', 'source']),
  );
  assert.equal(lines.filter((l) => l['level'] === 50).length, 0);
  assert.deepEqual(src.stats(), { connects: 0, attempts: 8, lastError: 'refused 6' });
});

test('PullSource: an attempt that got the stream going is retried after the shortest pause again', () => {
  const { timers, src } = setup();
  src.start();
  src.fail('a');
  timers.advance(1000);
  src.fail('b');
  timers.advance(2000);
  src.playing();
  src.fail('c');
  timers.advance(999);
  assert.equal(connects(src).length, 3);
  timers.advance(1);
  assert.equal(connects(src).length, 4);
  assert.equal(src.stats()['connects'], 1);
});

test('PullSource: an error that is not a StreamgateError is logged as an error, and the source still reconnects', () => {
  const { timers, src, lines } = setup();
  src.start();
  src.fail('boom', new TypeError('x is undefined'));
  const e = lines.find((l) => l['msg'] === 'pull source failed: reconnecting');
  assert.ok(e, JSON.stringify(lines));
  assert.equal(e['level'], 50);
  assert.equal(e['err'], 'x is undefined');
  assert.equal(e['retryInMs'], 1000);
  timers.advance(1000);
  assert.equal(connects(src).length, 2);
});

test('PullSource: close() (API kick) drops the attempt and reconnects; without an attempt it does nothing', () => {
  const { timers, src } = setup();
  src.start();
  src.close('kicked');
  assert.deepEqual(src.calls, ['connect cam #1 at 0', 'teardown']);
  assert.equal(src.stats()['lastError'], 'kicked');
  src.close('kicked again while waiting');
  assert.equal(src.stats()['lastError'], 'kicked');
  timers.advance(1000);
  assert.equal(connects(src).length, 2);
});

test('PullSource: the handle start() returns stops it: polite teardown, session ended, every timer cancelled; idempotent', () => {
  const { timers, paths, src } = setup();
  const handle = src.start();
  handle.close();
  assert.deepEqual(src.calls, ['connect cam #1 at 0', 'teardown (stopping)']);
  assert.equal(src.state, 'stopped');
  assert.deepEqual(paths.events, ['addSession source', 'removeSession: source stopped']);
  assert.equal(timers.count, 0);
  src.stop();
  src.close('late kick');
  timers.advance(60_000);
  assert.deepEqual(paths.events, ['addSession source', 'removeSession: source stopped']);
  handle.close();
  assert.equal(src.calls.length, 2);
});

test('PullSource: stop() while waiting for a retry: no attempt follows', () => {
  const { timers, src } = setup();
  src.start();
  src.fail('down');
  src.stop();
  assert.equal(timers.count, 0);
  timers.advance(60_000);
  assert.equal(connects(src).length, 1);
  assert.equal(src.state, 'stopped');
});

test('PullSource: a URL that does not parse leaves the session `invalid`, logged once, never attempted', () => {
  const { timers, paths, src, lines } = setup('http://cam');
  src.start();
  assert.equal(src.state, 'invalid');
  assert.deepEqual(paths.events, ['addSession source']);
  assert.deepEqual(src.calls, []);
  assert.equal(timers.count, 0);
  assert.equal(src.stats()['lastError'], 'fake-url: not fake: http://cam');
  const e = lines.filter((l) => l['msg'] === 'cannot pull this source');
  assert.equal(e.length, 1);
  assert.equal(e[0]?.['source'], 'http://cam/');
  src.stop();
  assert.deepEqual(paths.events, ['addSession source', 'removeSession: source stopped']);
});

test('PullSource: the logger carries the redacted URL; custom backoff bounds are used', () => {
  const { timers, src, lines } = setup('fake://u:secret@cam', { minBackoffMs: 50, maxBackoffMs: 120 });
  src.start();
  for (const delay of [50, 100, 120, 120]) {
    src.fail('down');
    timers.advance(delay);
  }
  assert.equal(connects(src).length, 5);
  assert.ok(lines.length > 0);
  for (const l of lines) assert.ok(!String(l['source']).includes('secret'), JSON.stringify(l));
});
