import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { makeFrame, type Frame } from '../../../src/media/bus/frame.js';
import { Stream } from '../../../src/media/bus/stream.js';
import { Track } from '../../../src/media/bus/track.js';
import { nalType, splitAnnexB } from '../../../src/media/codecs/h264.js';
import { H264Depacketizer } from '../../../src/media/rtp/h264.js';
import { parseRtp, type RtpPacket } from '../../../src/media/rtp/packet.js';
import { parseRtcp, serializeRtcp } from '../../../src/media/rtp/rtcp.js';
import { SipTranscoderPool } from '../../../src/egress/sip/g711-transcoder.js';
import {
  h264PayloadsOf,
  MAX_MODE0_NALU_BYTES,
  openRtpPair,
  PACE_BYTES,
  PACE_INTERVAL_MS,
  SIP_RTP_MTU,
  SipRtpSender,
  type SipMediaTarget,
} from '../../../src/egress/sip/rtp-sender.js';

const H264 = new URL('../../../../test/fixtures/h264/libx264-1280x720-high.h264', import.meta.url);
const nalus = splitAnnexB(new Uint8Array(readFileSync(H264)));
const SPS = nalus.find((n) => nalType(n) === 7)!;
const PPS = nalus.find((n) => nalType(n) === 8)!;
const IDR = nalus.find((n) => nalType(n) === 5)!;
const P = nalus.filter((n) => nalType(n) === 1);

/** A phone's RTP/RTCP ports, recording. */
async function phonePorts(): Promise<{ rtpPort: number; rtp: Buffer[]; rtcp: Buffer[]; send(b: Uint8Array, port: number): void; close(): void }> {
  const pair = await openRtpPair('127.0.0.1');
  const rtp: Buffer[] = [];
  const rtcp: Buffer[] = [];
  pair.rtp.on('message', (m) => rtp.push(m));
  pair.rtcp.on('message', (m) => rtcp.push(m));
  return { rtpPort: pair.port, rtp, rtcp, send: (b, port) => pair.rtcp.send(b, port, '127.0.0.1'), close: () => pair.close() };
}

function target(kind: 'video' | 'audio', codec: SipMediaTarget['codec'], payloadType: number, rtpPort: number, extra: Partial<SipMediaTarget> = {}): SipMediaTarget {
  return { kind, codec, payloadType, send: true, address: '127.0.0.1', rtpPort, rtcpAddress: '127.0.0.1', rtcpPort: rtpPort + 1, rtcpMux: false, ...extra };
}

function videoStream(): { stream: Stream; video: Track; opus: Track } {
  const stream = new Stream('test/sip');
  const video = new Track({ codec: 'h264', clockRate: 90000 });
  video.setH264Params(SPS, PPS, { width: 1280, height: 720 });
  const opus = new Track({ codec: 'opus', clockRate: 48000, channels: 2 });
  const [v, o] = stream.setTracks([video, opus]) as [Track, Track];
  return { stream, video: v, opus: o };
}

const settle = (ms = 100) => new Promise((r) => setTimeout(r, ms));

describe('SIP RTP sender', () => {
  it('openRtpPair binds an even RTP port and RTCP on the next one', async () => {
    const pairs = await Promise.all([0, 1, 2].map(() => openRtpPair('127.0.0.1')));
    for (const p of pairs) {
      assert.equal(p.port % 2, 0);
      assert.equal(p.rtcp.address().port, p.port + 1);
    }
    pairs.forEach((p) => p.close());
  });

  it('H.264 payloads: SPS+PPS put in front of a keyframe (STAP-A), FU-A under the MTU, cached per frame; mode 0 sends NAL units whole', () => {
    const { video } = videoStream();
    const key = makeFrame(video, 0, 0, true, [IDR]);
    const payloads = h264PayloadsOf(key);
    assert.equal(payloads[0]![0]! & 0x1f, 24, 'STAP-A with SPS and PPS');
    assert.ok(payloads.slice(1).every((p) => (p[0]! & 0x1f) === 28 && p.length <= SIP_RTP_MTU - 12), 'FU-A fragments');
    assert.equal(h264PayloadsOf(key), payloads, 'computed once per frame');
    const mode0 = h264PayloadsOf(key, 0);
    assert.deepEqual(mode0.map((n) => nalType(n)), [7, 8, 5]);
    assert.equal(mode0[2], IDR, 'views, no copy');
    const huge = makeFrame(video, 0, 0, false, [new Uint8Array(MAX_MODE0_NALU_BYTES + 1).fill(0x41), P[0]!]);
    assert.deepEqual(h264PayloadsOf(huge, 0), [P[0]], 'a NAL unit no datagram can carry is left out in mode 0');
  });

  it('holds frames until activate(), then sends RTP that depacketizes to the same access units; SR on RTCP; RR digested', async () => {
    const phone = await phonePorts();
    const pair = await openRtpPair('127.0.0.1');
    const { stream, video } = videoStream();
    const ended: string[] = [];
    const sender = new SipRtpSender({
      path: 'test/sip',
      media: [{ target: target('video', 'h264', 99, phone.rtpPort), pair }],
      transcoders: new SipTranscoderPool(),
      onEnd: (r) => ended.push(r),
    });
    sender.start(stream);
    const frames: Frame[] = [makeFrame(video, 0, 0, true, [IDR]), ...P.map((p, i) => makeFrame(video, (i + 1) * 3000, (i + 1) * 3000, false, [p]))];
    sender.writeFrame(frames[0]!);
    await settle(50);
    assert.equal(phone.rtp.length, 0, 'nothing before activate()');
    sender.activate();
    for (const f of frames.slice(1)) sender.writeFrame(f);
    await settle();
    const packets = phone.rtp.map((b) => parseRtp(b));
    assert.ok(packets.every((p) => p.payloadType === 99));
    const d = new H264Depacketizer();
    const aus = packets.flatMap((p: RtpPacket) => d.push(p) ?? []);
    const last = d.flush();
    const all = [...aus, ...last];
    assert.equal(all.length, frames.length);
    assert.deepEqual(all[0]!.nalus.map((n) => nalType(n)), [7, 8, 5]);
    assert.deepEqual(Buffer.from(all[0]!.nalus[2]!), Buffer.from(IDR));
    const base = packets[0]!.timestamp;
    assert.deepEqual(all.map((au) => (au.pts - base) % 2 ** 32), frames.map((f) => f.pts));
    assert.equal(packets.filter((p) => p.marker).length, frames.length, 'marker on the last packet of each AU');

    const sr = phone.rtcp.flatMap((b) => parseRtcp(b));
    assert.equal(sr[0]?.type, 'sr');
    assert.equal(sr[0]?.type === 'sr' && sr[0].ssrc, packets[0]!.ssrc);
    assert.equal(sr[1]?.type, 'sdes');

    // a receiver report from the phone about our SSRC
    const rr = serializeRtcp([
      { type: 'rr', ssrc: 1234, reports: [{ ssrc: packets[0]!.ssrc, fractionLost: 64, cumulativeLost: 3, highestSequence: packets.at(-1)!.sequenceNumber, jitter: 90, lastSr: 0, delaySinceLastSr: 0 }] },
    ]);
    phone.send(rr, pair.port + 1);
    await settle();
    const stats = sender.stats()[0]!;
    assert.deepEqual((stats.reception as { fractionLost: number }).fractionLost, 0.25);
    assert.equal(stats.packetsSent, packets.length);
    assert.ok(sender.bytesIn > 0 && sender.bytesOut > 0);

    sender.close('test over');
    await settle();
    assert.deepEqual(ended, ['test over']);
    const bye = phone.rtcp.flatMap((b) => parseRtcp(b)).filter((p) => p.type === 'bye');
    assert.equal(bye.length, 1, 'RTCP BYE on close');
    sender.close('again');
    assert.deepEqual(ended, ['test over'], 'close is idempotent');
    phone.close();
  });

  it('Opus passes through with its own payload type; hold sends nothing; update() moves the stream; rtcp-mux puts SR on the RTP port', async () => {
    const phone = await phonePorts();
    const phone2 = await phonePorts();
    const pair = await openRtpPair('127.0.0.1');
    const { stream, opus } = videoStream();
    const sender = new SipRtpSender({
      path: 'test/sip',
      media: [{ target: target('audio', 'opus', 111, phone.rtpPort, { send: false }), pair }],
      transcoders: new SipTranscoderPool(),
      onEnd: () => undefined,
    });
    sender.start(stream);
    sender.activate();
    const opusFrame = (i: number) => makeFrame(opus, i * 960, i * 960, true, [Uint8Array.of(0xfc, i)]);
    sender.writeFrame(opusFrame(0));
    await settle(50);
    assert.equal(phone.rtp.length, 0, 'on hold');
    sender.update([target('audio', 'opus', 112, phone2.rtpPort, { rtcpMux: true, rtcpPort: phone2.rtpPort })]);
    for (let i = 1; i <= 3; i++) sender.writeFrame(opusFrame(i));
    await settle();
    const rtp = phone2.rtp.map((b) => b).filter((b) => b[1]! < 192 || b[1]! > 223).map((b) => parseRtp(b));
    assert.deepEqual(rtp.map((p) => [p.payloadType, [...p.payload]]), [1, 2, 3].map((i) => [112, [0xfc, i]]));
    assert.deepEqual(rtp.map((p) => (p.timestamp - rtp[0]!.timestamp) >>> 0), [0, 960, 1920]);
    assert.ok(phone2.rtp.some((b) => b[1] === 200), 'SR muxed on the RTP port');
    sender.close('done');
    phone.close();
    phone2.close();
  });

  it('paces a start-up burst: at most PACE_BYTES leave at once, the rest follows within a few intervals', async () => {
    const phone = await phonePorts();
    const pair = await openRtpPair('127.0.0.1');
    const { stream, video } = videoStream();
    const sender = new SipRtpSender({
      path: 'test/sip',
      media: [{ target: target('video', 'h264', 96, phone.rtpPort), pair }],
      transcoders: new SipTranscoderPool(),
      onEnd: () => undefined,
    });
    sender.start(stream);
    // ten 20 KB pictures: 200 KB, the size of a 1 s GOP at 1.6 Mbit/s
    for (let i = 0; i < 10; i++) sender.writeFrame(makeFrame(video, i * 3600, i * 3600, i === 0, [new Uint8Array(20_000).fill(0x65, 0, 1).fill(7, 1)]));
    sender.activate();
    const queued = sender.bufferedBytes();
    // about PACE_BYTES leave at once (plus what the bucket refilled while the test ran on a busy machine)
    assert.ok(queued > 200_000 - 2 * PACE_BYTES - SIP_RTP_MTU && queued < 200_000, `${queued} bytes wait for the pacer`);
    await settle(30 * PACE_INTERVAL_MS);
    assert.equal(sender.bufferedBytes(), 0);
    const packets = phone.rtp.map((b) => parseRtp(b));
    for (let i = 1; i < packets.length; i++) assert.equal(packets[i]!.sequenceNumber, (packets[i - 1]!.sequenceNumber + 1) & 0xffff);
    assert.equal(packets.filter((p) => p.marker).length, 10);
    sender.close('done');
    phone.close();
  });

  it('ends the call when a new publisher brings other tracks', () => {
    const { stream } = videoStream();
    const ended: string[] = [];
    const sender = new SipRtpSender({ path: 'test/sip', media: [], transcoders: new SipTranscoderPool(), onEnd: (r) => ended.push(r) });
    sender.start(stream);
    sender.start(new Stream('other'));
    assert.deepEqual(ended, ['the stream was replaced']);
  });
});
