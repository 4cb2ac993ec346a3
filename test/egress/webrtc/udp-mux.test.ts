import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import fc from 'fast-check';
import { Message, parseMessage } from 'werift';
import { bindingSuccess, parseStun, UdpMux, verifyIntegrity, type IceLink, type MuxPeer } from '../../../src/egress/webrtc/udp-mux.js';

/** A Binding request as a browser sends it (RFC 8445 §7.1.2), built with werift's STUN encoder. */
function bindingRequest(user: string, pwd: string, useCandidate: boolean): Buffer {
  const m = new Message(1 /* BINDING */, 0 /* REQUEST */);
  m.setAttribute('USERNAME', user);
  m.setAttribute('PRIORITY', 1845501695);
  m.setAttribute('ICE-CONTROLLING', BigInt('0x1122334455667788'));
  if (useCandidate) m.setAttribute('USE-CANDIDATE', null);
  m.addMessageIntegrity(Buffer.from(pwd));
  m.addFingerprint();
  return m.bytes;
}

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
