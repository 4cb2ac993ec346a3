import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { makeFrame, type Frame } from '../../../src/media/bus/frame.js';
import { Stream } from '../../../src/media/bus/stream.js';
import { Track } from '../../../src/media/bus/track.js';
import { describeStream, RtspPlaySink, rtpPacketsOf, type RtspPlayerHandle } from '../../../src/egress/rtsp/from-bus.js';
import { parseRtp } from '../../../src/media/rtp/packet.js';
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

function player(media: number[]): RtspPlayerHandle & { rtp: [number, Uint8Array][]; rtcp: [number, Uint8Array][] } {
  const rtp: [number, Uint8Array][] = [];
  const rtcp: [number, Uint8Array][] = [];
  return { media, rtp, rtcp, sendRtp: (m, p) => rtp.push([m, p]), sendRtcp: (m, p) => rtcp.push([m, p]), bufferedBytes: () => 0, end() {} };
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
});
