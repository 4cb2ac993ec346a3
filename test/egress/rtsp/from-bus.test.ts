import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { makeFrame, type Frame } from '../../../src/media/bus/frame.js';
import { Stream } from '../../../src/media/bus/stream.js';
import { Track } from '../../../src/media/bus/track.js';
import {
  describeStream,
  PACE_BURST_BYTES,
  PACE_INTERVAL_MS,
  PACE_MIN_BYTES_PER_SEC,
  PACE_RATE_FACTOR,
  MAX_HELD_AUDIO,
  PASSTHROUGH_MAX_PACKET,
  RtspPlaySink,
  rtpPacketsOf,
  UdpPacer,
  type PaceTimerFactory,
  type RtspPlayerHandle,
} from '../../../src/egress/rtsp/from-bus.js';
import { parseRtp, serializeRtp } from '../../../src/media/rtp/packet.js';
import { H264Depacketizer } from '../../../src/media/rtp/h264.js';
import { NalUnitType, nalType } from '../../../src/media/codecs/h264.js';
import { loadPackets } from '../../media/rtp/fixtures.js';
import { isRfc3550Compound, parseRtcp, serializeRtcp, ntpToUnixMs, type RtcpSenderReport } from '../../../src/media/rtp/rtcp.js';
import { parseSdp } from '../../../src/signaling/sdp/description.js';

const SPS = Uint8Array.from(Buffer.from('Z2QAKKzZQHgCJ+XARAAAAwAEAAADAMg8YMZY', 'base64'));
const PPS = Uint8Array.from(Buffer.from('aOvjyyLA', 'base64'));

function stream(): Stream {
  const video = new Track({ codec: 'h264', clockRate: 90000 });
  video.setH264Params(SPS, PPS, { width: 1920, height: 1080 });
  const audio = new Track({ codec: 'aac', clockRate: 48000, sampleRate: 48000, channels: 2 });
  audio.setAudioConfig(Uint8Array.of(0x11, 0x90), 48000, 2);
  const s = new Stream('live/x');
  s.setTracks([video, audio]);
  return s;
}

type TestPlayer = RtspPlayerHandle & {
  rtp: [number, Uint8Array][];
  rtcp: [number, Uint8Array][];
  /** TCP: the framed buffers of each sendInterleaved call (one call = one write) */
  writes: Uint8Array[][];
};

/**
 * A player that records what the sink sends. `channels`: TCP interleaved RTP channel per media (the sink then sends
 * framed bytes, split back into packets here); without it packets come one by one, as over UDP.
 */
function player(media: number[], transport: 'tcp' | 'udp' = 'tcp', channels?: number[]): TestPlayer {
  const rtp: [number, Uint8Array][] = [];
  const rtcp: [number, Uint8Array][] = [];
  const writes: Uint8Array[][] = [];
  const split = (bytes: Uint8Array): void => {
    for (let o = 0; o < bytes.length; ) {
      assert.equal(bytes[o], 0x24, 'interleaved frame magic');
      const len = ((bytes[o + 2] as number) << 8) | (bytes[o + 3] as number);
      rtp.push([media[channels?.indexOf(bytes[o + 1] as number) ?? -1] ?? -1, bytes.subarray(o + 4, o + 4 + len)]);
      o += 4 + len;
    }
  };
  return {
    media,
    transport,
    rtp,
    rtcp,
    writes,
    rtpChannel: (m) => channels?.[media.indexOf(m)] ?? -1,
    sendRtp: (m, p) => rtp.push([m, p]),
    sendInterleaved(frames) {
      writes.push([...frames]);
      for (const f of frames) split(f);
    },
    sendRtcp: (m, p) => rtcp.push([m, p]),
    bufferedBytes: () => 0,
    end() {},
  };
}

describe('RTSP egress', () => {
  it('describeStream: H.264 with sprop/profile-level-id and AAC mpeg4-generic, controls trackID=N', () => {
    const { sdp, mediaCount } = describeStream(stream(), 'live/x');
    assert.equal(mediaCount, 2);
    const d = parseSdp(sdp);
    assert.equal(d.name, 'live/x');
    assert.deepEqual(d.media.map((m) => [m.control, m.formats[0]?.encoding, m.formats[0]?.clockRate]), [
      ['trackID=0', 'H264', 90000],
      ['trackID=1', 'MPEG4-GENERIC', 48000],
    ]);
    assert.equal(d.media[0]?.formats[0]?.fmtp['profile-level-id'], '640028');
    assert.equal(d.media[1]?.formats[0]?.fmtp['config'], '1190');
  });

  it('packets are made once per frame and shared by every reader; keyframes get SPS/PPS in front', () => {
    const s = stream();
    const [video] = s.tracks as [Track];
    const a = player([0, 1]);
    const b = player([0]);
    const sa = new RtspPlaySink(a, () => 1_700_000_000_000);
    const sb = new RtspPlaySink(b, () => 1_700_000_000_000);
    sa.start(s);
    sb.start(s);
    const idr = makeFrame(video, 0, 0, true, [Uint8Array.of(0x65, 1, 2, 3)]);
    sa.writeFrame(idr);
    sb.writeFrame(idr);
    assert.equal(a.rtp.length, 1);
    assert.equal(a.rtp[0]?.[1], b.rtp[0]?.[1], 'the same buffer object');
    assert.equal(rtpPacketsOf(idr)[0], a.rtp[0]?.[1]);
    const p = parseRtp(a.rtp[0]?.[1] as Uint8Array);
    assert.equal(p.payload[0] & 0x1f, 24, 'STAP-A with SPS, PPS, IDR');
    assert.equal(p.marker, true);
    assert.deepEqual(sa.rtpInfo().map((r) => r.media), [0, 1]);
    assert.equal(sa.rtpInfo()[0]?.seq, p.sequenceNumber);
    assert.equal(sa.rtpInfo()[0]?.rtptime, p.timestamp);
  });

  it('TCP readers get each frame framed once per channel, audio with the next video frame: one write per video frame', () => {
    const s = stream();
    const [video, audio] = s.tracks as [Track, Track];
    const a = player([0, 1], 'tcp', [0, 2]);
    const b = player([0, 1], 'tcp', [0, 2]);
    const c = player([0], 'tcp', [4]);
    const sinks = [a, b, c].map((p) => new RtspPlaySink(p, () => 1_700_000_000_000));
    for (const k of sinks) k.start(s);
    const idr = makeFrame(video, 0, 0, true, [new Uint8Array(5000).fill(0x65, 0, 1)]);
    const aac = makeFrame(audio, 100, 100, true, [Uint8Array.of(1, 2, 3)]);
    const p1 = makeFrame(video, 3000, 3000, false, [Uint8Array.of(0x41, 9)]);
    for (const k of sinks) {
      k.writeFrame(idr);
      k.writeFrame(aac);
      assert.equal(k.bufferedBytes(), k === sinks[2] ? 0 : 4 + 12 + 4 + 3, 'held audio counts as buffered');
      k.writeFrame(p1);
    }
    assert.deepEqual(a.writes.map((w) => w.length), [1, 2], 'the IDR alone, then the audio with the next picture');
    assert.ok(Buffer.isBuffer(a.writes[0]?.[0]), 'a Buffer: the socket takes it without conversion');
    assert.equal(a.writes[0]?.[0], b.writes[0]?.[0], 'shared by readers on the same channels');
    assert.notEqual(a.writes[0]?.[0], c.writes[0]?.[0], 'framed again for another channel');
    const packets = rtpPacketsOf(idr);
    assert.equal(packets.length, 5, 'SPS+PPS STAP-A and 4 FU-A');
    const bytes = (xs: Uint8Array[]) => xs.map((x) => Uint8Array.from(x));
    assert.deepEqual(bytes(a.rtp.filter(([m]) => m === 0).map(([, p]) => p)), bytes([...packets, ...rtpPacketsOf(p1)]));
    assert.deepEqual(bytes(a.rtp.filter(([m]) => m === 1).map(([, p]) => p)), bytes([...rtpPacketsOf(aac)]));
    assert.deepEqual(c.rtp.map(([m]) => m), [0, 0, 0, 0, 0, 0]);
    assert.equal(sinks[0]?.stats()[0]?.packetsSent, 6, 'RTCP counts every packet');
    // a video stall: audio goes out after MAX_HELD_AUDIO frames anyway
    for (let i = 0; i < MAX_HELD_AUDIO; i++) sinks[0]?.writeFrame(makeFrame(audio, 200 + i * 1024, 200 + i * 1024, true, [Uint8Array.of(i)]));
    assert.deepEqual(a.writes.map((w) => w.length), [1, 2, MAX_HELD_AUDIO]);
  });

  it('SRs are compound (SR + SDES), and map NTP to RTP on one anchor also after a GOP burst', () => {
    const s = stream();
    const [video] = s.tracks as [Track];
    let now = 1_700_000_000_000;
    const pl = player([0]);
    const sink = new RtspPlaySink(pl, () => now, () => 0.5);
    sink.start(s);
    // a 2 s GOP burst written in 1 ms, then live frames in real time
    const frames: Frame[] = [];
    for (let i = 0; i < 50; i++) frames.push(makeFrame(video, i * 3600, i * 3600, i === 0, [Uint8Array.of(i === 0 ? 0x65 : 0x41, i)]));
    for (const f of frames) sink.writeFrame(f);
    for (let i = 50; i < 300; i++) {
      now += 40;
      sink.writeFrame(makeFrame(video, i * 3600, i * 3600, false, [Uint8Array.of(0x41, i & 0xff)]));
    }
    const srs = pl.rtcp.map(([, b]) => parseRtcp(b));
    assert.ok(srs.length >= 2, `${srs.length} SRs`);
    for (const c of srs) assert.ok(isRfc3550Compound(c));
    const [first, second] = srs.map((c) => c[0] as RtcpSenderReport);
    const dNtpMs = ntpToUnixMs(second!.ntpSec, second!.ntpFrac) - ntpToUnixMs(first!.ntpSec, first!.ntpFrac);
    const dRtpMs = (((second!.rtpTimestamp - first!.rtpTimestamp) >>> 0) * 1000) / 90000;
    assert.ok(Math.abs(dNtpMs - dRtpMs) < 1, `NTP advanced ${dNtpMs} ms, RTP ${dRtpMs} ms`);
  });

  it('receiver reports about our SSRC become loss/jitter/RTT figures; a new track set ends the reader', () => {
    const s = stream();
    let ended = '';
    const pl = { ...player([0]), end: (r: string) => (ended = r) };
    const sink = new RtspPlaySink(pl, () => 1_700_000_000_000);
    sink.start(s);
    sink.writeFrame(makeFrame(s.tracks[0] as Track, 0, 0, true, [Uint8Array.of(0x65, 0)]));
    const ssrc = parseRtp(pl.rtp[0]?.[1] as Uint8Array).ssrc;
    const rr = serializeRtcp([{ type: 'rr', ssrc: 9, reports: [{ ssrc, fractionLost: 64, cumulativeLost: 3, highestSequence: 10, jitter: 900, lastSr: 0, delaySinceLastSr: 0 }] }]);
    sink.onRtcp(0, rr, 1_700_000_000_100);
    assert.deepEqual(sink.stats()[0]?.reception, { fractionLost: 0.25, packetsLost: 3, jitterMs: 10, highestSequence: 10 });
    const other = new Stream('y');
    other.setTracks([new Track({ codec: 'opus', clockRate: 48000 })]);
    sink.start(other);
    assert.match(ended, /tracks changed/);
  });

  it('PLI/FIR from a reader about the video track reach the publisher through the bus; about audio they do not', () => {
    const s = stream();
    const asked: string[] = [];
    s.setKeyframeHandler((reason) => asked.push(reason));
    const pl = player([0, 1]);
    const sink = new RtspPlaySink(pl, () => 1_700_000_000_000);
    sink.start(s);
    sink.writeFrame(makeFrame(s.tracks[0] as Track, 0, 0, true, [Uint8Array.of(0x65, 0)]));
    const ssrc = parseRtp(pl.rtp[0]?.[1] as Uint8Array).ssrc;
    // VLC/libavformat-style compound: RR + SDES, then the feedback
    const pli = serializeRtcp([
      { type: 'rr', ssrc: 9, reports: [] },
      { type: 'sdes', chunks: [{ ssrc: 9, items: [{ type: 1, text: 'reader' }] }] },
      { type: 'pli', senderSsrc: 9, mediaSsrc: ssrc },
    ]);
    sink.onRtcp(0, pli, 1_700_000_000_100);
    sink.onRtcp(1, pli, 1_700_000_000_100); // on the audio media's channel: not a picture to refresh
    assert.deepEqual(asked, ['rtsp reader PLI']);
    assert.equal(sink.stats()[0]?.keyframeRequests, 1);
    assert.equal(sink.stats()[1]?.keyframeRequests, undefined);
    const fir = serializeRtcp([{ type: 'fir', senderSsrc: 9, mediaSsrc: 0, entries: [{ ssrc, seqNr: 1 }] }]);
    sink.onRtcp(0, fir, 1_700_000_000_200);
    assert.equal(sink.stats()[0]?.keyframeRequests, 2);
    assert.deepEqual(s.keyframeRequests, { requested: 2, passedUp: 1, unserved: 0 }, 'the second is inside the bus interval');
  });
});

/** A fake pacing timer: records arming; the test fires it by calling drain with its own clock. */
function fakeTimer(): PaceTimerFactory & { made: number; refreshed: number; closed: boolean; fire?: () => void } {
  const f = ((fn: () => void, ms: number) => {
    assert.equal(ms, PACE_INTERVAL_MS);
    f.made++;
    f.fire = fn;
    return { refresh: () => f.refreshed++, close: () => (f.closed = true) };
  }) as PaceTimerFactory & { made: number; refreshed: number; closed: boolean; fire?: () => void };
  f.made = 0;
  f.refreshed = 0;
  f.closed = false;
  return f;
}

describe('RTSP egress UDP pacing', () => {
  const packet = (n: number, size = 1400): Uint8Array => {
    const p = new Uint8Array(size);
    p[0] = n & 0xff;
    p[1] = n >> 8;
    return p;
  };
  const id = (p: Uint8Array): number => (p[0] as number) | ((p[1] as number) << 8);

  it('UdpPacer: the burst goes at once, the rest waits in order and drains at the rate', () => {
    let now = 1000;
    const sent: [number, Uint8Array][] = [];
    const timer = fakeTimer();
    const rate = 1_400_000; // bytes/s: 1400 bytes per ms
    const pacer = new UdpPacer((m, p) => sent.push([m, p]), () => rate, () => now, timer, (e) => assert.fail(String(e)));
    const n = 600; // ~840 KB: past the burst and past the ring's first size
    for (let i = 0; i < n; i++) pacer.push(i % 2, packet(i), now);
    const burst = Math.floor(PACE_BURST_BYTES / 1400);
    assert.equal(sent.length, burst);
    assert.equal(pacer.queuedPackets, n - burst);
    assert.equal(pacer.queuedBytes, (n - burst) * 1400);
    assert.equal(timer.made, 1, 'one timer per reader, made when a packet first waits');
    for (let t = 1; pacer.queuedPackets > 0 && t < 10_000; t++) {
      now += PACE_INTERVAL_MS;
      pacer.drain(now);
      assert.equal(sent.length, Math.min(n, burst + t * PACE_INTERVAL_MS), `after ${t} drains`);
    }
    assert.equal(pacer.queuedBytes, 0);
    assert.deepEqual(sent.map(([, p]) => id(p)), Array.from({ length: n }, (_, i) => i), 'FIFO order kept across the ring growth');
    assert.deepEqual(sent.slice(0, 4).map(([m]) => m), [0, 1, 0, 1], 'media indices kept');
    assert.ok(timer.refreshed > 0 && timer.made === 1, 'the same timer is re-armed');
    // an idle reader refills to the burst, never beyond it
    now += 60_000;
    for (let i = 0; i < burst + 5; i++) pacer.push(0, packet(i), now);
    assert.equal(pacer.queuedPackets, 5);
    pacer.close();
    assert.equal(timer.closed, true);
    assert.equal(pacer.queuedBytes, 0);
  });

  it('a UDP reader gets the GOP burst paced at PACE_RATE_FACTOR × the measured bitrate; its queue counts as buffered', () => {
    const s = stream();
    const [video] = s.tracks as [Track];
    let now = 1_700_000_000_000;
    const timer = fakeTimer();
    const pl = player([0], 'udp');
    const sink = new RtspPlaySink(pl, () => now, () => 0.5, timer);
    sink.start(s);
    // 2 s of 30 fps video, 40 KB per frame (4.8 Mbit/s plus headers), written at once like a GOP-cache burst
    const frames: Frame[] = [];
    for (let i = 0; i < 60; i++) frames.push(makeFrame(video, i * 3000, i * 3000, i === 0, [new Uint8Array(40_000).fill(i === 0 ? 0x65 : 0x41, 0, 1)]));
    for (const f of frames) sink.writeFrame(f);
    const sentBytes = (): number => pl.rtp.reduce((n, [, p]) => n + p.length, 0);
    const total = frames.reduce((n, f) => n + rtpPacketsOf(f).reduce((m, p) => m + p.length, 0), 0);
    assert.ok(sentBytes() > 0 && sentBytes() <= PACE_BURST_BYTES, `${sentBytes()} bytes sent at once`);
    assert.equal(sink.bufferedBytes(), total - sentBytes(), 'what waits counts for the slow-reader policy');
    // the bitrate is measured on the media clock: the first second of frames, although written in no time
    const bytesPerSec = frames.slice(0, 30).reduce((n, f) => n + rtpPacketsOf(f).reduce((m, p) => m + p.length, 0), 0);
    const want = Math.max(PACE_MIN_BYTES_PER_SEC, PACE_RATE_FACTOR * bytesPerSec);
    const before = sentBytes();
    for (let t = 0; t < 20; t++) {
      now += PACE_INTERVAL_MS;
      timer.fire?.();
    }
    const perSecond = ((sentBytes() - before) * 1000) / (20 * PACE_INTERVAL_MS);
    assert.ok(Math.abs(perSecond - want) / want < 0.02, `paced at ${perSecond} B/s, want ${want}`);
    assert.equal(sink.bufferedBytes(), total - sentBytes());
    sink.close();
    assert.equal(sink.bufferedBytes(), 0);
    assert.equal(timer.closed, true);
  });

  it('TCP readers are not paced', () => {
    const s = stream();
    const [video] = s.tracks as [Track];
    const timer = fakeTimer();
    const pl = player([0], 'tcp');
    const sink = new RtspPlaySink(pl, () => 1_700_000_000_000, () => 0.5, timer);
    sink.start(s);
    for (let i = 0; i < 30; i++) sink.writeFrame(makeFrame(video, i * 3000, i * 3000, i === 0, [new Uint8Array(40_000).fill(0x41, 0, 1)]));
    assert.ok(pl.rtp.reduce((n, [, p]) => n + p.length, 0) > 1_000_000);
    assert.equal(sink.bufferedBytes(), 0);
    assert.equal(timer.made, 0);
  });
});

/** Frames of a captured H.264 RTP session as the RTSP ingest makes them: AUs with their original packets. */
function framesFromCapture(name: string, track: Track): Frame[] {
  const d = new H264Depacketizer();
  const frames: Frame[] = [];
  let first = -1;
  for (const raw of loadPackets(name)) {
    const au = d.push(parseRtp(raw), raw);
    if (!au) continue;
    if (first < 0) first = au.pts;
    const sps = au.nalus.find((n) => nalType(n) === NalUnitType.Sps);
    const pps = au.nalus.find((n) => nalType(n) === NalUnitType.Pps);
    if (sps && pps) track.setH264Params(sps, pps);
    const f = makeFrame(track, au.pts - first, au.pts - first, au.keyframe, au.nalus);
    if (au.rtp) f.rtp = au.rtp;
    frames.push(f);
  }
  return frames;
}

describe('RTSP egress pass-through of the publisher RTP packets', () => {
  for (const capture of ['gst-h264.bin', 'ffmpeg-h264.bin']) {
    it(`${capture}: payloads kept byte for byte under our SSRC, sequence, timestamps and marker; one copy for all readers`, () => {
      const video = new Track({ codec: 'h264', clockRate: 90000 });
      const frames = framesFromCapture(capture, video);
      assert.ok(frames.length > 20 && frames.some((f) => f.keyframe));
      const originals = frames.map((f) => (f.rtp ?? []).map((p) => Uint8Array.from(p)));
      const s = new Stream('live/pass');
      s.setTracks([video]);
      const a = player([0]);
      const b = player([0], 'udp');
      const sa = new RtspPlaySink(a, () => 1_700_000_000_000);
      const sb = new RtspPlaySink(b, () => 1_700_000_000_000, () => 0.5, fakeTimer());
      sa.start(s);
      sb.start(s);
      for (const f of frames) {
        sa.writeFrame(f);
        sb.writeFrame(f);
      }
      assert.deepEqual(sa.stats()[0] && [sa.stats()[0]?.framesPassedThrough, sa.stats()[0]?.framesPacketized], [frames.length, 0]);
      const sent = a.rtp.map(([, p]) => p);
      assert.equal(sent.length, originals.flat().length);
      assert.ok(b.rtp.every(([, p], i) => p === sent[i]), 'readers share the same buffers');
      const ours = sent.map((p) => parseRtp(p));
      const ssrc = ours[0]?.ssrc;
      let k = 0;
      frames.forEach((f, fi) => {
        const orig = originals[fi] as Uint8Array[];
        orig.forEach((o, j) => {
          const got = ours[k] as ReturnType<typeof parseRtp>;
          assert.deepEqual(Uint8Array.from(got.payload), Uint8Array.from(parseRtp(o).payload), `frame ${fi} packet ${j}: payload`);
          assert.equal(got.ssrc, ssrc);
          assert.equal(got.payloadType, 96);
          assert.equal(got.marker, j === orig.length - 1, `frame ${fi} packet ${j}: marker`);
          assert.equal(got.timestamp, ((ours[0]?.timestamp as number) + f.pts) >>> 0, `frame ${fi}: timestamp from the bus pts`);
          if (k > 0) assert.equal(got.sequenceNumber, ((ours[k - 1]?.sequenceNumber as number) + 1) & 0xffff);
          k++;
        });
        assert.deepEqual((f.rtp ?? []).map((p) => Uint8Array.from(p)), orig, `frame ${fi}: the publisher's packets are untouched`);
      });
      assert.notEqual(ssrc, parseRtp(originals[0]?.[0] as Uint8Array).ssrc);
    });
  }

  it('frames that cannot pass through are packetized in the same sequence space', () => {
    const video = new Track({ codec: 'h264', clockRate: 90000 });
    const frames = framesFromCapture('gst-h264.bin', video).slice(0, 6);
    const s = new Stream('live/mixed');
    s.setTracks([video]);
    const pl = player([0]);
    const sink = new RtspPlaySink(pl, () => 1_700_000_000_000);
    sink.start(s);
    const [idr, p1, p2, p3] = frames as [Frame, Frame, Frame, Frame];
    assert.ok(idr.keyframe);
    // a keyframe whose packets lack the SPS/PPS: packetized, so the parameter sets go in front of it
    const bare = makeFrame(video, idr.dts, idr.pts, true, idr.au.filter((n) => nalType(n) === NalUnitType.IdrSlice));
    bare.rtp = (idr.rtp ?? []).filter((r) => {
      const t = (parseRtp(r).payload[0] as number) & 0x1f;
      return t !== NalUnitType.StapA; // the STAP-A carries AUD, SPS and PPS
    });
    // a packet over the pass-through limit (a sender with a 1500-byte payload)
    const big = serializeRtp({ ...parseRtp((p2.rtp ?? [])[0] as Uint8Array), payload: new Uint8Array(PASSTHROUGH_MAX_PACKET).fill(0x41, 0, 1) });
    const oversized = makeFrame(video, p2.dts, p2.pts, false, [big.subarray(12)]);
    oversized.rtp = [big];
    for (const f of [bare, p1, oversized, p3]) sink.writeFrame(f);
    assert.deepEqual([sink.stats()[0]?.framesPassedThrough, sink.stats()[0]?.framesPacketized], [2, 2]);
    const got = pl.rtp.map(([, p]) => parseRtp(p));
    const first = got[0] as ReturnType<typeof parseRtp>;
    assert.equal((first.payload[0] as number) & 0x1f, NalUnitType.StapA);
    assert.deepEqual(
      got.map((p) => p.sequenceNumber),
      got.map((_, i) => (first.sequenceNumber + i) & 0xffff),
      'one sequence space',
    );
    assert.ok(got.every((p) => p.ssrc === first.ssrc && p.payload.length > 0));
    assert.ok(got.every((p) => p.payload.length + 12 <= 1450), 'the oversized frame was cut to our MTU');
  });
});
