import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { LeanViewer, NACK_HISTORY, StreamFanout, TrackRtp } from '../../../src/egress/webrtc/fanout.js';
import type { LeanPeer } from '../../../src/egress/webrtc/peer.js';
import { TranscoderPool } from '../../../src/egress/webrtc/sfu.js';
import { makeFrame } from '../../../src/media/bus/frame.js';
import { Stream } from '../../../src/media/bus/stream.js';
import { Track } from '../../../src/media/bus/track.js';
import { NalUnitType, nalType, splitAnnexB } from '../../../src/media/codecs/h264.js';
import { nackPairs, serializeRtcp } from '../../../src/media/rtp/rtcp.js';
import { negotiate, parseOffer } from '../../../src/signaling/sdp/negotiate.js';
import { openRegistry } from './harness.js';

for (const start of [0, 1, 1000, 65535]) {
  test(`TrackRtp: sequence numbers wrap and the NACK history finds packets by seq (start ${start})`, () => {
    const rtp = new TrackRtp(90000);
    rtp.seq = start;
    const sent: number[] = [];
    for (let i = 0; i < NACK_HISTORY + 10; i++) {
      const p = rtp.packet(Uint8Array.of(i & 0xff), i * 3000, i % 5 === 4, 0);
      sent.push(p.readUInt16BE(2));
      assert.equal(p.readUInt32BE(8), rtp.ssrc);
      assert.equal(p.readUInt32BE(4), (i * 3000 + rtp.tsOffset) >>> 0);
    }
    assert.equal(sent[0], start);
    assert.equal(sent[1], (start + 1) & 0xffff);
    // the oldest 10 were overwritten; the rest are found, with the right contents
    for (let i = 0; i < 10; i++) assert.equal(rtp.lookup(sent[i]!), undefined);
    for (let i = 10; i < sent.length; i++) assert.equal(rtp.lookup(sent[i]!)![12], i & 0xff);
  });
}

const h264 = readFileSync(new URL('../../../../test/fixtures/h264/libx264-320x240-baseline.h264', import.meta.url));

function videoTrack(): { track: Track; aus: Uint8Array[][] } {
  const nalus = splitAnnexB(h264);
  const sps = nalus.find((n) => nalType(n) === NalUnitType.Sps)!;
  const pps = nalus.find((n) => nalType(n) === NalUnitType.Pps)!;
  const track = new Track({ codec: 'h264', clockRate: 90000 });
  track.setH264Params(sps, pps, { width: 320, height: 240 });
  // one AU per slice NAL, parameter sets stripped (as RTMP publishers send them out of band)
  const aus = nalus.filter((n) => nalType(n) === NalUnitType.IdrSlice || nalType(n) === NalUnitType.NonIdrSlice).map((n) => [n]);
  return { track, aus };
}

test('StreamFanout: a frame is packetized once; keyframes carry SPS/PPS; PT left for each viewer', () => {
  const { track, aus } = videoTrack();
  const fo = new StreamFanout('t', new TranscoderPool());
  const key = makeFrame(track, 0, 0, true, aus[0]!);
  const a = fo.framePackets(key);
  const b = fo.framePackets(key);
  assert.equal(a, b, 'the same array (and buffers) for every viewer');
  // first packet: STAP-A (type 24) holding SPS and PPS, or the SPS alone
  const firstNal = a[0]![12]! & 0x1f;
  assert.ok(firstNal === 24 || firstNal === NalUnitType.Sps, `first payload type ${firstNal}`);
  assert.equal(a[a.length - 1]![1]! & 0x80, 0x80, 'marker on the last packet');
  for (const p of a) assert.ok(p.byteLength <= 1200);
  const delta = makeFrame(track, 3000, 3000, false, aus[1]!);
  const d = fo.framePackets(delta);
  assert.equal(d[0]!.readUInt16BE(2), (a[a.length - 1]!.readUInt16BE(2) + 1) & 0xffff, 'one sequence space per track');
  assert.equal((d[0]![12]! & 0x1f) === 24, false, 'no parameter sets on a non-IDR frame');
});

class FakePeer {
  sent: { seq: number; pt: number }[] = [];
  rtcp: Uint8Array[] = [];
  onConnected: (() => void) | undefined;
  onClosed: ((r: string) => void) | undefined;
  onRtcp: ((b: Buffer) => void) | undefined;
  address = '10.0.0.2';
  port = 5000;
  packetsSent = 0;
  bytesSent = 0;
  sendRtp(p: Uint8Array, pt: number): void {
    this.sent.push({ seq: (p[2]! << 8) | p[3]!, pt });
  }
  sendRtcp(p: Uint8Array): void {
    this.rtcp.push(p);
  }
  close(): void {}
}

test('LeanViewer: sends with its own payload type, answers NACKs from the history, ignores unknown SSRCs', async () => {
  const { track, aus } = videoTrack();
  const registry = openRegistry();
  const stream = new Stream('t');
  stream.setTracks([track]);
  const fo = new StreamFanout('t', new TranscoderPool());
  const offer = parseOffer(readFileSync(new URL('../../../../test/fixtures/webrtc/chromium-156-whep-offer.sdp', import.meta.url), 'utf8'));
  const neg = negotiate(offer, { role: 'send', video: { profileIdc: 0x42, constraintFlags: 0xc0, levelIdc: 0x0d }, audio: false });
  const peer = new FakePeer();
  const v = new LeanViewer('t', peer as unknown as LeanPeer, neg, fo, registry, 60_000);
  v.start(stream);
  peer.onConnected!();
  v.writeFrame(makeFrame(track, 0, 0, true, aus[0]!));
  const pt = neg.video!.codec!.payloadType;
  assert.ok(peer.sent.length > 1);
  assert.ok(peer.sent.every((s) => s.pt === pt));
  const ssrc = fo.rtpOf(track).ssrc;
  const want = [peer.sent[0]!.seq, peer.sent[1]!.seq];
  peer.sent = [];
  const nack = serializeRtcp([{ type: 'nack', senderSsrc: 1, mediaSsrc: ssrc, pairs: nackPairs(want) }]);
  peer.onRtcp!(Buffer.from(nack));
  assert.deepEqual(peer.sent.map((s) => s.seq), want);
  assert.equal(v.retransmitted, 2);
  peer.onRtcp!(Buffer.from(serializeRtcp([{ type: 'nack', senderSsrc: 1, mediaSsrc: 12345, pairs: nackPairs(want) }])));
  peer.onRtcp!(Buffer.from([1, 2, 3]));
  assert.equal(v.retransmitted, 2);
  peer.onRtcp!(Buffer.from(serializeRtcp([{ type: 'pli', senderSsrc: 1, mediaSsrc: ssrc }])));
  assert.equal(v.pliReceived, 1);
  v.close('test');
});

test('StreamFanout: viewers\' keyframe requests go upstream at most once per KEYFRAME_REQUEST_MS', async () => {
  const { KEYFRAME_REQUEST_MS } = await import('../../../src/egress/webrtc/fanout.js');
  const asked: string[] = [];
  const fo = new StreamFanout('live/x', new TranscoderPool(), (p) => asked.push(p));
  for (let i = 0; i < 10; i++) fo.keyframeRequested();
  assert.deepEqual(asked, ['live/x']);
  assert.equal(fo.pliReceived, 10);
  await new Promise((r) => setTimeout(r, KEYFRAME_REQUEST_MS + 20));
  fo.keyframeRequested();
  assert.deepEqual(asked, ['live/x', 'live/x']);
});
