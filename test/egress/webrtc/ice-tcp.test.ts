import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { parseMessage } from 'werift';
import { LimitError, ParseError, StreamgateError } from '../../../src/errors.js';
import {
  ICE_TCP_CHECK_TIMEOUT_MS,
  ICE_TCP_CONSENT_TIMEOUT_MS,
  ICE_TCP_MAX_CHECK,
  ICE_TCP_MAX_FRAME,
  ICE_TCP_MAX_QUEUED_BYTES,
  ICE_TCP_MAX_UNBOUND,
  IceTcpConnection,
  type IceTcpSink,
} from '../../../src/egress/webrtc/ice-tcp.js';
import { parseStun, STUN_MAX_MESSAGE, UdpMux, verifyIntegrity, type IceLink, type MuxPeer } from '../../../src/egress/webrtc/udp-mux.js';
import { bindingRequest as stunBindingRequest } from '../../helpers/stun.js';

/** What Chromium 156 sent on its ICE-TCP connection (test/fixtures/webrtc/README.md): 19 RFC 4571 frames. */
const session = readFileSync(new URL('../../../../test/fixtures/webrtc/chromium-156-ice-tcp-session.bin', import.meta.url));
const UFRAG = '297dxs0p';
const PWD = 'jkbJOsl1JMfNJ3C4Ji89a5EB';

/** A sink that verifies checks like the mux does (ufrag + MESSAGE-INTEGRITY) and records what it got. */
function recordingSink(pwd = PWD): IceTcpSink & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    stun(frame) {
      const m = parseStun(frame);
      const user = m?.attrs.get(0x0006);
      const ok = !!m && m.type === 0x0001 && !!user && Buffer.from(user).toString().split(':')[0] === UFRAG && verifyIntegrity(frame, m, pwd);
      events.push(`stun ${frame.byteLength} ${ok ? 'ok' : 'rejected'}`);
      return ok;
    },
    media(frame) {
      events.push(`media ${frame.byteLength} ${frame[0]}`);
    },
  };
}

/** Feeds `chunks` to a new connection; returns the sink's events and the error it threw (its class name), if any. */
function run(chunks: Buffer[], pwd = PWD): { events: string[]; error: string | null; conn: IceTcpConnection } {
  const conn = new IceTcpConnection(0);
  const sink = recordingSink(pwd);
  try {
    for (const c of chunks) conn.push(c, 1, sink);
    return { events: sink.events, error: null, conn };
  } catch (err) {
    if (!(err instanceof StreamgateError)) throw err;
    return { events: sink.events, error: err.constructor.name, conn };
  }
}

const frame = (body: Uint8Array): Buffer => {
  const b = Buffer.alloc(2 + body.byteLength);
  b.writeUInt16BE(body.byteLength, 0);
  b.set(body, 2);
  return b;
};

/** The first frame of the capture: Chromium's first Binding request (framed). */
const firstCheck = session.subarray(0, 2 + session.readUInt16BE(0));

test('IceTcpConnection: Chromium\'s ICE-TCP session gives its 19 frames in order, split at every byte', () => {
  const whole = run([session]);
  assert.equal(whole.error, null);
  assert.equal(whole.events.length, 19);
  assert.equal(whole.events[0], 'stun 100 ok');
  assert.equal(whole.events.filter((e) => e.startsWith('stun')).length, 5);
  assert.ok(whole.events.every((e) => !e.includes('rejected')));
  assert.deepEqual(whole.events.slice(1, 3), ['media 1200 22', 'media 263 22'], 'DTLS ClientHello flight');
  assert.equal(whole.conn.state, 'bound');
  for (let i = 0; i <= session.byteLength; i++) {
    const r = run([session.subarray(0, i), session.subarray(i)]);
    assert.deepEqual(r.events, whole.events, `split at ${i}`);
  }
  assert.deepEqual(run([...session].map((b) => Buffer.of(b))).events, whole.events, 'one byte per chunk');
});

test('IceTcpConnection: random chunkings of the session give the same frames (fast-check, time-boxed)', () => {
  const want = run([session]).events;
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 1, max: session.byteLength - 1 }), { maxLength: 200 }), (cuts) => {
      const at = [0, ...cuts.sort((a, b) => a - b), session.byteLength];
      const chunks = at.slice(1).map((end, i) => session.subarray(at[i]!, end));
      assert.deepEqual(run(chunks).events, want);
    }),
    { numRuns: 300, interruptAfterTimeLimit: 5000 },
  );
});

test('IceTcpConnection: a frame whole in one chunk is a view of it; a split one is reassembled once', () => {
  const conn = new IceTcpConnection(0);
  const got: Buffer[] = [];
  const sink: IceTcpSink = { stun: () => true, media: (f) => got.push(f) };
  const dtls = frame(Buffer.from([22, 0xfe, 0xfd, 1, 2, 3]));
  const chunk = Buffer.concat([firstCheck, dtls]);
  conn.push(chunk, 0, sink);
  assert.equal(got[0]!.buffer, chunk.buffer, 'a view, not a copy');
  conn.push(dtls.subarray(0, 4), 0, sink);
  conn.push(dtls.subarray(4), 0, sink);
  assert.deepEqual([...got[1]!], [22, 0xfe, 0xfd, 1, 2, 3]);
});

/** Malformed streams: name, bytes, the error class, and the password the sink verifies with. */
const malformed: { name: string; bytes: Buffer; error: string | null; pwd?: string }[] = [
  { name: 'an HTTP request (length 0x4745 = "GE")', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), error: 'ParseError' },
  { name: 'a TLS ClientHello from a scanner (length 0x1603)', bytes: Buffer.from('160301020001', 'hex'), error: 'ParseError' },
  { name: 'a DTLS record before any check', bytes: frame(Buffer.from([22, 0xfe, 0xfd, ...new Array(40).fill(0)])), error: 'ParseError' },
  { name: 'an empty frame first', bytes: Buffer.concat([Buffer.of(0, 0), firstCheck]), error: 'ParseError' },
  { name: 'a first frame one byte over the STUN bound', bytes: Buffer.concat([Buffer.of(0, ICE_TCP_MAX_CHECK + 1), Buffer.alloc(ICE_TCP_MAX_CHECK + 1)]), error: 'ParseError' },
  { name: 'Chromium\'s check with the wrong password', bytes: firstCheck, error: 'ParseError', pwd: 'not-the-password-0123456' },
  { name: 'a STUN-looking first frame that is not STUN', bytes: frame(Buffer.alloc(40, 1)), error: 'ParseError' },
  { name: 'a frame over ICE_TCP_MAX_FRAME after a valid check', bytes: Buffer.concat([firstCheck, Buffer.of(0xff, 0xff), Buffer.alloc(100)]), error: 'LimitError' },
  { name: 'garbage frames after a valid check are dropped, not fatal', bytes: Buffer.concat([firstCheck, frame(Buffer.of(70, 1, 2)), Buffer.of(0, 0), frame(Buffer.of(0x80, 0xc8, 0, 1))]), error: null },
];

for (const m of malformed) {
  test(`IceTcpConnection: ${m.name} → ${m.error ?? 'no error'}, at every split point`, () => {
    const whole = run([m.bytes], m.pwd);
    assert.equal(whole.error, m.error);
    if (m.error) assert.equal(whole.conn.state, 'closed');
    assert.ok(whole.events.every((e) => !e.startsWith('media') || whole.events[0] === 'stun 100 ok'), 'no media before a verified check');
    for (let i = 0; i <= m.bytes.byteLength; i++) {
      const r = run([m.bytes.subarray(0, i), m.bytes.subarray(i)], m.pwd);
      assert.equal(r.error, m.error, `split at ${i}`);
      assert.deepEqual(r.events, whole.events, `split at ${i}`);
    }
  });
}

test('IceTcpConnection: the first frame is refused from its length header alone (nothing of a bad body is buffered)', () => {
  const conn = new IceTcpConnection(0);
  assert.throws(() => conn.push(Buffer.of(0x47, 0x45), 0, recordingSink()), ParseError);
  const bound = new IceTcpConnection(0);
  bound.push(firstCheck, 0, recordingSink());
  assert.throws(() => bound.push(Buffer.of(0xff, 0xff), 0, recordingSink()), (e: unknown) => e instanceof LimitError && e.limit === ICE_TCP_MAX_FRAME);
  assert.ok(ICE_TCP_MAX_CHECK === STUN_MAX_MESSAGE, 'the first-frame bound is the mux STUN bound');
});

test('IceTcpConnection: random bytes only ever raise StreamgateErrors and never reach media() unbound (fast-check)', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ minLength: 0, maxLength: 700 }), { maxLength: 8 }), fc.boolean(), (chunks, prefixCheck) => {
      const conn = new IceTcpConnection(0);
      let verified = false;
      const sink: IceTcpSink = {
        stun: (f) => {
          const m = parseStun(f);
          const ok = m !== null && verifyIntegrity(f, m, PWD);
          verified ||= ok;
          return ok;
        },
        media: () => assert.ok(verified, 'media only after a verified check'),
      };
      try {
        if (prefixCheck) conn.push(firstCheck, 0, sink);
        for (const c of chunks) conn.push(Buffer.from(c), 0, sink);
      } catch (err) {
        assert.ok(err instanceof StreamgateError, String(err));
      }
    }),
    { numRuns: 2000, interruptAfterTimeLimit: 5000 },
  );
});

test('IceTcpConnection: deadlines — unbound 10 s after opening, bound 30 s after the last verified check', () => {
  const conn = new IceTcpConnection(1000);
  assert.equal(conn.nextDeadline(), 1000 + ICE_TCP_CHECK_TIMEOUT_MS);
  assert.equal(conn.expired(1000 + ICE_TCP_CHECK_TIMEOUT_MS - 1), null);
  assert.match(conn.expired(1000 + ICE_TCP_CHECK_TIMEOUT_MS) ?? '', /no verified connectivity check/);
  assert.equal(conn.state, 'closed');
  const bound = new IceTcpConnection(0);
  bound.push(firstCheck, 5000, recordingSink());
  assert.equal(bound.nextDeadline(), 5000 + ICE_TCP_CONSENT_TIMEOUT_MS);
  bound.push(firstCheck, 9000, recordingSink());
  assert.equal(bound.expired(9000 + ICE_TCP_CONSENT_TIMEOUT_MS - 1), null);
  assert.match(bound.expired(9000 + ICE_TCP_CONSENT_TIMEOUT_MS) ?? '', /no connectivity check/);
});

// ---- the listener, through the mux, over real sockets on 127.0.0.1 ----

/** A Binding request as a browser sends it over TCP (the priority of a host TCP candidate). */
const bindingRequest = (user: string, pwd: string, useCandidate: boolean): Buffer => stunBindingRequest(user, pwd, useCandidate, 1518280447);

class FakePeer implements MuxPeer {
  checks: IceLink[] = [];
  datagrams: Buffer[] = [];
  timedOut = false;
  constructor(readonly localUfrag: string, readonly localPwd: string) {}
  onCheck(link: IceLink): void {
    this.checks.push(link);
  }
  onDatagram(b: Buffer): void {
    this.datagrams.push(Buffer.from(b));
  }
  onTimeout(): void {
    this.timedOut = true;
  }
}

/** A TCP client that collects RFC 4571 frames. */
async function tcpClient(port: number, host = '127.0.0.1'): Promise<{ s: Socket; frames: Buffer[]; closed: Promise<void>; next(): Promise<Buffer> }> {
  const s = connect({ port, host });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  s.on('error', () => undefined);
  const frames: Buffer[] = [];
  const waiters: ((b: Buffer) => void)[] = [];
  const conn = new IceTcpConnection(0);
  // the client side of the framing: everything is "verified" so frames flow
  const sink: IceTcpSink = { stun: (f) => (deliver(Buffer.from(f)), true), media: (f) => deliver(Buffer.from(f)) };
  const deliver = (b: Buffer): void => {
    if (waiters.length) waiters.shift()!(b);
    else frames.push(b);
  };
  s.on('data', (d: Buffer) => conn.push(d, 0, sink));
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  return { s, frames, closed, next: () => (frames.length ? Promise.resolve(frames.shift()!) : new Promise((r) => waiters.push(r))) };
}

const until = async (cond: () => boolean, ms = 2000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

test('ICE-TCP listener: same port number as UDP; a verified check binds the connection, DTLS/SRTP flow both ways', async (t) => {
  const mux = await UdpMux.bind(0, '127.0.0.1');
  t.after(() => mux.close());
  assert.ok(mux.tcp);
  assert.equal(mux.tcp.port, mux.port);
  assert.deepEqual(mux.candidates().map((c) => `${c.transport} ${c.address}`), ['udp 127.0.0.1', 'tcp 127.0.0.1']);
  const peer = new FakePeer('srvU', 'server-password-0123456789');
  mux.add(peer);
  const c = await tcpClient(mux.port);
  t.after(() => c.s.destroy());
  c.s.write(frame(bindingRequest('srvU:cliU', 'server-password-0123456789', true)));
  const res = await c.next();
  const parsed = parseMessage(res, Buffer.from('server-password-0123456789'))!;
  assert.ok(parsed, 'werift verifies the framed Binding success');
  assert.deepEqual(parsed.getAttributeValue('XOR-MAPPED-ADDRESS'), ['127.0.0.1', c.s.localPort]);
  await until(() => peer.checks.length === 1);
  const link = peer.checks[0]!;
  assert.deepEqual([link.transport, link.family, link.address, link.port], ['tcp', 4, '127.0.0.1', c.s.localPort]);
  // DTLS and SRTP in one write, split across two writes
  const dtls = frame(Buffer.from([22, 0xfe, 0xfd, 0, 0, 9]));
  const srtp = frame(Buffer.from([0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 7, 7]));
  c.s.write(Buffer.concat([dtls, srtp.subarray(0, 5)]));
  c.s.write(srtp.subarray(5));
  await until(() => peer.datagrams.length === 2);
  assert.deepEqual(peer.datagrams.map((d) => d[0]), [22, 0x80]);
  // and back: the peer sends through its link
  assert.equal(link.send(Buffer.from([0x80, 111, 0, 2])), true);
  assert.deepEqual([...(await c.next())], [0x80, 111, 0, 2]);
  // a check for another peer on a bound connection is not answered
  mux.add(new FakePeer('other', 'server-password-0123456789'));
  c.s.write(frame(bindingRequest('other:cliU', 'server-password-0123456789', true)));
  await until(() => mux.stats.stunRejected === 1);
  // removing the peer closes its connections
  mux.remove(peer);
  await c.closed;
  assert.equal(link.closed, true);
  assert.equal(link.send(Buffer.of(0x80)), false);
});

test('ICE-TCP listener: garbage first, a failed check, or silence close the connection', async (t) => {
  const mux = await UdpMux.bind(0, '127.0.0.1');
  t.after(() => mux.close());
  const peer = new FakePeer('srvU', 'server-password-0123456789');
  mux.add(peer);
  const garbage = await tcpClient(mux.port);
  garbage.s.write('GET / HTTP/1.1\r\n\r\n');
  await garbage.closed;
  const wrong = await tcpClient(mux.port);
  wrong.s.write(frame(bindingRequest('srvU:cliU', 'not-the-password-0123456', true)));
  await wrong.closed;
  assert.equal(wrong.frames.length, 0, 'no answer to a failed check');
  assert.equal(mux.tcp!.stats.rejected, 2);
  const silent = await tcpClient(mux.port);
  await until(() => mux.tcp!.stats.open === 1);
  mux.tcp!.sweep(Date.now() + ICE_TCP_CHECK_TIMEOUT_MS - 2000);
  assert.equal(mux.tcp!.stats.timedOut, 0);
  mux.tcp!.sweep(Date.now() + ICE_TCP_CHECK_TIMEOUT_MS + 1000);
  await silent.closed;
  assert.equal(mux.tcp!.stats.timedOut, 1);
  assert.equal(peer.checks.length, 0);
  assert.equal(peer.datagrams.length, 0);
});

test(`ICE-TCP listener: at most ${ICE_TCP_MAX_UNBOUND} connections without a check; more are closed at once`, async (t) => {
  const mux = await UdpMux.bind(0, '127.0.0.1');
  t.after(() => mux.close());
  const clients = await Promise.all(Array.from({ length: ICE_TCP_MAX_UNBOUND }, () => tcpClient(mux.port)));
  t.after(() => clients.forEach((c) => c.s.destroy()));
  await until(() => mux.tcp!.stats.accepted === ICE_TCP_MAX_UNBOUND, 5000);
  const extra = await tcpClient(mux.port);
  await extra.closed;
  assert.equal(mux.tcp!.stats.refused, 1);
  // a connection that binds frees its slot
  const peer = new FakePeer('srvU', 'server-password-0123456789');
  mux.add(peer);
  clients[0]!.s.write(frame(bindingRequest('srvU:cliU', 'server-password-0123456789', true)));
  await until(() => peer.checks.length === 1);
  assert.equal(mux.tcp!.unbound, ICE_TCP_MAX_UNBOUND - 1);
  const next = await tcpClient(mux.port);
  t.after(() => next.s.destroy());
  await until(() => mux.tcp!.stats.accepted === ICE_TCP_MAX_UNBOUND + 1);
  assert.equal(mux.tcp!.stats.refused, 1);
});

test('ICE-TCP back-pressure: a viewer that stops reading gets packets dropped (counted), memory stays bounded', async (t) => {
  const mux = await UdpMux.bind(0, '127.0.0.1');
  t.after(() => mux.close());
  const peer = new FakePeer('srvU', 'server-password-0123456789');
  mux.add(peer);
  const c = await tcpClient(mux.port);
  t.after(() => c.s.destroy());
  c.s.write(frame(bindingRequest('srvU:cliU', 'server-password-0123456789', true)));
  await c.next();
  await until(() => peer.checks.length === 1);
  c.s.pause();
  const link = peer.checks[0]! as IceLink & { packetsDropped: number; queuedBytes: number };
  const pkt = Buffer.alloc(1200, 0x80);
  let refused = 0;
  // 60 MB offered at once, far past what the kernel buffers take
  for (let i = 0; i < 50_000; i++) if (!link.send(pkt)) refused++;
  assert.ok(refused > 0, 'some packets were dropped');
  assert.equal(link.packetsDropped, refused);
  assert.ok(link.queuedBytes <= ICE_TCP_MAX_QUEUED_BYTES + 1202, `queued ${link.queuedBytes}`);
  // the reader resumes: what was queued arrives intact and framed
  c.s.resume();
  await until(() => c.frames.length > 100, 5000);
  assert.ok(c.frames.slice(0, 100).every((f) => f.byteLength === 1200));
});

test('ICE-TCP listener: dual-stack when the bind host is unset (IPv4 clients appear as IPv4), IPv6 over UDP too', async (t) => {
  const mux = await UdpMux.bind(0);
  t.after(() => mux.close());
  const peer = new FakePeer('srvU', 'server-password-0123456789');
  mux.add(peer);
  const v4 = await tcpClient(mux.port, '127.0.0.1');
  t.after(() => v4.s.destroy());
  v4.s.write(frame(bindingRequest('srvU:cliU', 'server-password-0123456789', false)));
  const r4 = parseMessage(await v4.next(), Buffer.from('server-password-0123456789'))!;
  assert.deepEqual(r4.getAttributeValue('XOR-MAPPED-ADDRESS'), ['127.0.0.1', v4.s.localPort]);
  assert.equal(peer.checks[0]!.address, '127.0.0.1', 'not ::ffff:127.0.0.1');
  assert.equal(peer.checks[0]!.family, 4);
  if (!mux.udpFamilies.includes(6)) {
    t.diagnostic('no IPv6 on this machine: the IPv6 half is not exercised');
    return;
  }
  const v6 = await tcpClient(mux.port, '::1');
  t.after(() => v6.s.destroy());
  v6.s.write(frame(bindingRequest('srvU:cliU', 'server-password-0123456789', true)));
  const r6 = parseMessage(await v6.next(), Buffer.from('server-password-0123456789'))!;
  assert.deepEqual(r6.getAttributeValue('XOR-MAPPED-ADDRESS'), ['::1', v6.s.localPort]);
  assert.equal(peer.checks[1]!.family, 6);
});
