import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { SrtpSession } from 'werift';
import { SendPool } from '../../../src/egress/webrtc/send-pool.js';
import { SRTP_AES128_CM_HMAC_SHA1_80 } from '../../../src/egress/webrtc/srtp.js';
import { UdpMux } from '../../../src/egress/webrtc/udp-mux.js';

test('SendPool: a send thread protects and sends from the shared ICE port; datagrams it receives reach the mux', async (t) => {
  const mux = await UdpMux.bind(0, '127.0.0.1', true);
  t.after(() => mux.close());
  const rx: Buffer[] = [];
  const origReceive = mux.receive.bind(mux);
  mux.receive = (b, a, p) => {
    rx.push(b);
    origReceive(b, a, p);
  };
  const pool = await SendPool.start(2, mux.port, '127.0.0.1', (d, a, p) => mux.receive(d, a, p));
  t.after(() => pool.close());
  const client = createSocket('udp4');
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
  t.after(() => client.close());
  const got: { data: Buffer; port: number }[] = [];
  client.on('message', (data, r) => got.push({ data, port: r.port }));

  const keys = [randomBytes(16), randomBytes(14), randomBytes(16), randomBytes(14)] as [Buffer, Buffer, Buffer, Buffer];
  const viewerA = pool.add(keys, '127.0.0.1', client.address().port)!;
  const viewerB = pool.add(keys, '127.0.0.1', client.address().port)!;
  assert.notEqual(viewerA.worker, viewerB.worker, 'round-robin over the threads');
  const viewerMain = pool.add(keys, '127.0.0.1', client.address().port);
  assert.equal(viewerMain.worker, -1, 'then the main thread takes one');
  assert.equal(pool.add(keys, '127.0.0.1', client.address().port)!.worker, viewerA.worker);
  const packets = Array.from({ length: 5 }, (_, i) => {
    const p = Buffer.allocUnsafeSlow(12 + 100);
    p.fill(i, 12);
    p[0] = 0x80;
    p[1] = 0;
    p.writeUInt16BE(1000 + i, 2);
    p.writeUInt32BE(90000 * i, 4);
    p.writeUInt32BE(0xabcdef01, 8);
    return p;
  });
  // let the per-viewer sockets connect (either path must deliver; the test checks the source port)
  await new Promise((r) => setTimeout(r, 100));
  for (const p of packets) pool.send(viewerA, p, 108, -1, 0);
  const deadline = Date.now() + 3000;
  while (got.length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(got.length, 5);
  assert.ok(got.every((g) => g.port === mux.port), 'sent from the ICE port');
  // the browser side decrypts with the same keys (its remote = our local)
  const browser = new SrtpSession({ keys: { localMasterKey: keys[2], localMasterSalt: keys[3], remoteMasterKey: keys[0], remoteMasterSalt: keys[1] }, profile: SRTP_AES128_CM_HMAC_SHA1_80 });
  const plain = got.map((g) => browser.decrypt(g.data));
  const bySeq = new Map(plain.map((p) => [p.readUInt16BE(2), p]));
  for (let i = 0; i < 5; i++) {
    const p = bySeq.get(1000 + i)!;
    assert.equal(p[1]! & 0x7f, 108, 'payload type patched');
    assert.equal(p[20], i);
  }
  // the main thread's share: protected in one batch per turn, sent from the ICE port, timestamps replaced
  got.length = 0;
  for (const p of packets) pool.send(viewerMain, p, 109, 12345, 0);
  const d1 = Date.now() + 3000;
  while (got.length < 5 && Date.now() < d1) await new Promise((r) => setTimeout(r, 20));
  assert.equal(got.length, 5);
  assert.ok(got.every((g) => g.port === mux.port), 'main-thread share sent from the ICE port');
  const browser2 = new SrtpSession({ keys: { localMasterKey: keys[2], localMasterSalt: keys[3], remoteMasterKey: keys[0], remoteMasterSalt: keys[1] }, profile: SRTP_AES128_CM_HMAC_SHA1_80 });
  for (const g of got) {
    const p = browser2.decrypt(g.data);
    assert.equal(p[1]! & 0x7f, 109);
    assert.equal(p.readUInt32BE(4), 12345);
  }
  // a datagram to the shared port reaches the mux whichever socket the kernel picks (the client is a viewer's
  // address, so a connected per-viewer socket gets it: that one must forward it too)
  client.send(Buffer.from([0x80, 96, 0, 1]), mux.port, '127.0.0.1');
  const d2 = Date.now() + 2000;
  while (rx.length === 0 && Date.now() < d2) await new Promise((r) => setTimeout(r, 20));
  assert.equal(rx.length, 1);
  // and one from an address that is no viewer's too
  const other = createSocket('udp4');
  await new Promise<void>((r) => other.bind(0, '127.0.0.1', r));
  t.after(() => other.close());
  other.send(Buffer.from([0x80, 96, 0, 2]), mux.port, '127.0.0.1');
  const d3 = Date.now() + 2000;
  while (rx.length === 1 && Date.now() < d3) await new Promise((r) => setTimeout(r, 20));
  assert.equal(rx.length, 2);
  pool.remove(viewerA);
  pool.remove(viewerMain);
});
