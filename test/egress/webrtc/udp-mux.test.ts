import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import fc from 'fast-check';
import { parseMessage } from 'werift';
import { bindingSuccess, parseStun, UdpMux, verifyIntegrity, type IceLink, type MuxPeer } from '../../../src/egress/webrtc/udp-mux.js';
import { bindingRequest as stunBindingRequest } from '../../helpers/stun.js';

/** A Binding request as a browser sends it over UDP (the priority of a host UDP candidate). */
const bindingRequest = (user: string, pwd: string, useCandidate: boolean): Buffer => stunBindingRequest(user, pwd, useCandidate, 1845501695);

class FakePeer implements MuxPeer {
  checks: [string, number, boolean][] = [];
  datagrams: Buffer[] = [];
  timedOut = false;
  constructor(readonly localUfrag: string, readonly localPwd: string) {}
  onCheck(link: IceLink, n: boolean): void {
    this.checks.push([link.address, link.port, n]);
  }
  onDatagram(b: Buffer): void {
    this.datagrams.push(b);
  }
  onTimeout(): void {
    this.timedOut = true;
  }
}

async function client(): Promise<{ s: Socket; next(): Promise<Buffer> }> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const queue: Buffer[] = [];
  const waiters: ((b: Buffer) => void)[] = [];
  s.on('message', (b) => (waiters.length ? waiters.shift()!(b) : queue.push(b)));
  return { s, next: () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiters.push(r))) };
}

test('parseStun/verifyIntegrity/bindingSuccess agree with werift', () => {
  const req = bindingRequest('srvU:cliU', 'server-password-0123456789', true);
  const m = parseStun(req)!;
  assert.ok(m);
  assert.equal(m.type, 0x0001);
  assert.equal(Buffer.from(m.attrs.get(0x0006)!).toString(), 'srvU:cliU');
  assert.ok(m.attrs.has(0x0025));
  assert.ok(verifyIntegrity(req, m, 'server-password-0123456789'));
  assert.ok(!verifyIntegrity(req, m, 'wrong'));
  const res = bindingSuccess(m.transactionId, '10.1.2.3', 54321, 'server-password-0123456789');
  const parsed = parseMessage(res, Buffer.from('server-password-0123456789'));
  assert.ok(parsed, 'werift verifies our MESSAGE-INTEGRITY and FINGERPRINT');
  assert.deepEqual(parsed.getAttributeValue('XOR-MAPPED-ADDRESS'), ['10.1.2.3', 54321]);
  assert.equal(parsed.transactionIdHex, Buffer.from(m.transactionId).toString('hex'));
});

test('UdpMux: answers verified checks, binds the address, routes media, drops the rest', async (t) => {
  const mux = await UdpMux.bind(0, '127.0.0.1');
  t.after(() => mux.close());
  const peer = new FakePeer('srvU', 'server-password-0123456789');
  mux.add(peer);
  const c = await client();
  t.after(() => c.s.close());
  const send = (b: Uint8Array): void => c.s.send(b, mux.port, '127.0.0.1');

  // media before any check: unknown address, dropped
  send(Buffer.from([0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]));
  // a check with the wrong password: no answer
  send(bindingRequest('srvU:cliU', 'not-the-password-012345', false));
  // a check for an unknown ufrag: no answer
  send(bindingRequest('nobody:cliU', 'server-password-0123456789', false));
  // a valid check
  send(bindingRequest('srvU:cliU', 'server-password-0123456789', true));
  const res = await c.next();
  const parsed = parseMessage(res, Buffer.from('server-password-0123456789'))!;
  assert.deepEqual(parsed.getAttributeValue('XOR-MAPPED-ADDRESS'), ['127.0.0.1', c.s.address().port]);
  assert.deepEqual(peer.checks, [['127.0.0.1', c.s.address().port, true]]);
  assert.equal(mux.stats.stunRejected, 2);
  // now DTLS and RTP from that address reach the peer; a byte outside RFC 7983 ranges does not
  send(Buffer.from([22, 0xfe, 0xfd, 0, 0]));
  send(Buffer.from([0x80, 96, 0, 2]));
  send(Buffer.from([70, 1, 2, 3]));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(peer.datagrams.length, 2);
  assert.equal(mux.stats.unknownDropped, 2);
  mux.remove(peer);
  send(Buffer.from([0x80, 96, 0, 3]));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(peer.datagrams.length, 2, 'a removed peer gets nothing');
});

test('UdpMux: random datagrams never throw and never reach a peer', async (t) => {
  const mux = await UdpMux.bind(0, '127.0.0.1');
  t.after(() => mux.close());
  const peer = new FakePeer('srvU', 'server-password-0123456789');
  mux.add(peer);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (bytes) => {
      mux.receive(Buffer.from(bytes), '192.0.2.9', 4000);
    }),
    { numRuns: 2000 },
  );
  assert.equal(peer.checks.length, 0);
  assert.equal(peer.datagrams.length, 0);
});

test('UdpMux: a peer silent for the consent timeout (RFC 7675) is removed and told', async (t) => {
  const { CONSENT_TIMEOUT_MS } = await import('../../../src/egress/webrtc/udp-mux.js');
  const mux = await UdpMux.bind(0, '127.0.0.1');
  t.after(() => mux.close());
  const quiet = new FakePeer('quiet', 'server-password-0123456789');
  mux.add(quiet);
  mux.sweep(Date.now() + CONSENT_TIMEOUT_MS - 1000);
  assert.equal(quiet.timedOut, false);
  mux.sweep(Date.now() + CONSENT_TIMEOUT_MS + 1000);
  assert.equal(quiet.timedOut, true);
  assert.equal(mux.stats.peers, 0);
});

/** A udp6 client on ::1. */
async function client6(): Promise<{ s: Socket; next(): Promise<Buffer> }> {
  const s = createSocket('udp6');
  await new Promise<void>((r) => s.bind(0, '::1', r));
  const queue: Buffer[] = [];
  const waiters: ((b: Buffer) => void)[] = [];
  s.on('message', (b) => (waiters.length ? waiters.shift()!(b) : queue.push(b)));
  return { s, next: () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiters.push(r))) };
}

const hasV6 = Object.values(networkInterfaces()).some((l) => l?.some((a) => a.family === 'IPv6' && !a.internal && !/^fe[89ab]/i.test(a.address)));

test('UdpMux (bind host unset): UDP on IPv4 and IPv6 on one port number; IPv6 host candidates, never link-local', { skip: !hasV6 && 'no non-link-local IPv6 address on this machine' }, async (t) => {
  const mux = await UdpMux.bind(0);
  t.after(() => mux.close());
  assert.deepEqual(mux.udpFamilies, [4, 6]);
  const cands = mux.candidates();
  assert.ok(cands.some((c) => c.family === 6 && c.transport === 'udp'));
  assert.ok(cands.some((c) => c.family === 6 && c.transport === 'tcp'), 'the dual-stack TCP listener serves IPv6');
  assert.ok(cands.every((c) => !/^fe[89ab]/i.test(c.address) && c.address !== '::1' && c.address !== '127.0.0.1' && c.port === mux.port));
  assert.deepEqual(
    mux.candidates().map((c) => c.transport).slice(0, 1),
    ['udp'],
    'UDP candidates come first',
  );
  const peer = new FakePeer('srvU', 'server-password-0123456789');
  mux.add(peer);
  const c = await client6();
  t.after(() => c.s.close());
  c.s.send(bindingRequest('srvU:cliU', 'server-password-0123456789', true), mux.port, '::1');
  const parsed = parseMessage(await c.next(), Buffer.from('server-password-0123456789'))!;
  assert.deepEqual(parsed.getAttributeValue('XOR-MAPPED-ADDRESS'), ['::1', c.s.address().port]);
  assert.deepEqual(peer.checks, [['::1', c.s.address().port, true]]);
  c.s.send(Buffer.from([0x80, 96, 0, 2]), mux.port, '::1');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(peer.datagrams.length, 1);
});

test('UdpMux: an IPv6 bind host binds IPv6 only; the advertise test seam filters candidates; link-local extras are dropped', async (t) => {
  const loopback6 = Object.values(networkInterfaces()).some((l) => l?.some((a) => a.address === '::1'));
  if (loopback6) {
    const v6 = await UdpMux.bind(0, '::1');
    t.after(() => v6.close());
    assert.deepEqual(v6.udpFamilies, [6]);
    assert.deepEqual(v6.candidates().map((c) => `${c.transport} ${c.family} ${c.address}`), ['udp 6 ::1', 'tcp 6 ::1']);
  }
  const v4 = await UdpMux.bind(0, '127.0.0.1', false, { additionalHosts: ['fe80::1', '198.51.100.7'], advertise: { transports: ['tcp'] } });
  t.after(() => v4.close());
  assert.deepEqual(v4.candidates().map((c) => `${c.transport} ${c.address}`), ['tcp 127.0.0.1', 'tcp 198.51.100.7']);
  const noTcp = await UdpMux.bind(0, '127.0.0.1', false, { tcp: false });
  t.after(() => noTcp.close());
  assert.equal(noTcp.tcp, undefined);
  assert.deepEqual(noTcp.candidates().map((c) => c.transport), ['udp']);
});
