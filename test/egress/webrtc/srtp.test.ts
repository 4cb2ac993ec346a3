import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RtpHeader, SrtcpSession, SrtpSession } from 'werift';
import { deriveSessionKeys, SrtpContext, SRTP_AES128_CM_HMAC_SHA1_80 } from '../../../src/egress/webrtc/srtp.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('deriveSessionKeys: RFC 3711 Appendix B.3 test vectors', () => {
  const k = deriveSessionKeys(hex('E1F97A0D3E018BE0D64FA32C06DE4139'), hex('0EC675AD498AFEEBB6960B3AABE6'));
  assert.equal(k.rtpKey.toString('hex').toUpperCase(), 'C61E7A93744F39EE10734AFE3FF7A087');
  assert.equal(k.rtpSalt.toString('hex').toUpperCase(), '30CBBC08863D8C85D49DB34A9AE1');
  assert.equal(k.rtpAuth.toString('hex').toUpperCase(), 'CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4');
});

function rtp(seq: number, ssrc: number, payload: Buffer, ext = false): Buffer {
  const h = Buffer.alloc(ext ? 20 : 12);
  h[0] = ext ? 0x90 : 0x80;
  h[1] = 96;
  h.writeUInt16BE(seq, 2);
  h.writeUInt32BE(seq * 3000, 4);
  h.writeUInt32BE(ssrc, 8);
  if (ext) {
    h.writeUInt16BE(0xbede, 12);
    h.writeUInt16BE(1, 14);
    h.writeUInt32BE(0x10ff0000, 16);
  }
  return Buffer.concat([h, payload]);
}

const keys = { localMasterKey: randomBytes(16), localMasterSalt: randomBytes(14), remoteMasterKey: randomBytes(16), remoteMasterSalt: randomBytes(14) };
// werift plays the browser: its "local" keys are our remote ones
const peer = { localMasterKey: keys.remoteMasterKey, localMasterSalt: keys.remoteMasterSalt, remoteMasterKey: keys.localMasterKey, remoteMasterSalt: keys.localMasterSalt };

for (const start of [0, 1, 65500, 65535]) {
  test(`SRTP: werift decrypts what we protect and we decrypt what werift protects, across the seq wrap (start ${start})`, () => {
    const ours = new SrtpContext(keys.localMasterKey, keys.localMasterSalt, keys.remoteMasterKey, keys.remoteMasterSalt);
    const theirs = new SrtpSession({ keys: peer, profile: SRTP_AES128_CM_HMAC_SHA1_80 });
    for (let i = 0; i < 80; i++) {
      const seq = (start + i) & 0xffff;
      const payload = randomBytes(1 + ((i * 97) % 1200));
      const plain = rtp(seq, 0x11223344, payload, i % 3 === 0);
      const prot = ours.protectRtp(plain);
      assert.equal(prot.byteLength, plain.byteLength + 10);
      assert.deepEqual(theirs.decrypt(prot), plain, `seq ${seq}`);
      const back = theirs.encrypt(payload, RtpHeader.deSerialize(plain));
      assert.deepEqual(ours.unprotectRtp(back), plain, `unprotect seq ${seq}`);
    }
  });
}

test('SRTP: a tampered packet is dropped', () => {
  const ours = new SrtpContext(keys.localMasterKey, keys.localMasterSalt, keys.remoteMasterKey, keys.remoteMasterSalt);
  const theirs = new SrtpSession({ keys: peer, profile: SRTP_AES128_CM_HMAC_SHA1_80 });
  const plain = rtp(7, 1, randomBytes(100));
  const prot = theirs.encrypt(plain.subarray(12), RtpHeader.deSerialize(plain));
  prot[20]! ^= 1;
  assert.equal(ours.unprotectRtp(prot), null);
  assert.equal(ours.unprotectRtp(Buffer.alloc(5)), null);
});

test('SRTCP: both directions against werift', () => {
  const ours = new SrtpContext(keys.localMasterKey, keys.localMasterSalt, keys.remoteMasterKey, keys.remoteMasterSalt);
  const theirs = new SrtcpSession({ keys: peer, profile: SRTP_AES128_CM_HMAC_SHA1_80 });
  // a PLI (RFC 4585 §6.3.1): V=2 FMT=1 PT=206 length=2, sender SSRC, media SSRC
  const pli = hex('81ce0002 aabbccdd 11223344');
  for (let i = 0; i < 5; i++) {
    assert.deepEqual(theirs.decrypt(ours.protectRtcp(pli)), pli);
    assert.deepEqual(ours.unprotectRtcp(theirs.encrypt(pli)), pli);
  }
  const bad = theirs.encrypt(pli);
  bad[bad.byteLength - 1]! ^= 0xff;
  assert.equal(ours.unprotectRtcp(bad), null);
});

test('SRTP batch: one cipher call for many packets (over the 64 KiB chunk), truncated headers skipped, werift decrypts all', () => {
  const ours = new SrtpContext(keys.localMasterKey, keys.localMasterSalt, keys.remoteMasterKey, keys.remoteMasterSalt);
  const theirs = new SrtpSession({ keys: peer, profile: SRTP_AES128_CM_HMAC_SHA1_80 });
  const packets: Buffer[] = [];
  const pts: number[] = [];
  const tss: number[] = [];
  for (let i = 0; i < 130; i++) {
    // 130 × ~1200 bytes ≈ 150 KiB: three cipher calls; seq wraps inside the batch
    packets.push(i === 40 ? Buffer.alloc(7) : rtp((65500 + i) & 0xffff, i % 2 ? 0x01020304 : 0x0a0b0c0d, randomBytes(i % 17 === 0 ? 1 : 1100 + i), i % 5 === 0));
    pts.push(i % 3 === 0 ? 111 : -1);
    tss.push(i % 4 === 0 ? 0xfffffff0 + i : -1);
  }
  const out: Buffer[] = [];
  ours.protectRtpBatch(packets, pts, tss, 0, packets.length, out);
  assert.equal(out.length, packets.length);
  for (let i = 0; i < packets.length; i++) {
    if (i === 40) {
      assert.equal(out[i]!.byteLength, 0, 'truncated header: nothing to send');
      continue;
    }
    const want = Buffer.from(packets[i]!);
    if (pts[i]! >= 0) want[1] = (want[1]! & 0x80) | pts[i]!;
    if (tss[i]! >= 0) want.writeUInt32BE(tss[i]! >>> 0, 4);
    assert.deepEqual(theirs.decrypt(out[i]!), want, `packet ${i}`);
  }
  assert.equal(packets[0]![1], 96, 'the shared input is not modified');
});

test('SRTP: a context that noted what another protected takes over the SSRC with the right rollover counter', () => {
  const thread = new SrtpContext(keys.localMasterKey, keys.localMasterSalt, keys.remoteMasterKey, keys.remoteMasterSalt);
  const main = new SrtpContext(keys.localMasterKey, keys.localMasterSalt, keys.remoteMasterKey, keys.remoteMasterSalt);
  const fresh = new SrtpContext(keys.localMasterKey, keys.localMasterSalt, keys.remoteMasterKey, keys.remoteMasterSalt);
  const theirs = new SrtpSession({ keys: peer, profile: SRTP_AES128_CM_HMAC_SHA1_80 });
  for (let i = 0; i < 20; i++) {
    const plain = rtp((65525 + i) & 0xffff, 0x55667788, randomBytes(50));
    assert.deepEqual(theirs.decrypt(thread.protectRtp(plain)), plain);
    main.noteRtpSent(plain);
  }
  // the link moves: the main thread's context protects from here on (ROC 1 after the wrap)
  const next = rtp(20 - 11, 0x55667788, randomBytes(50));
  const mine = main.protectRtp(next);
  assert.deepEqual(theirs.decrypt(mine), next, 'the browser decrypts it with ROC 1');
  assert.notDeepEqual(fresh.protectRtp(next), mine, 'a context that did not follow would use ROC 0');
});
