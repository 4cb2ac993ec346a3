import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { log } from '../../../src/log.js';
import type { Frame } from '../../../src/media/bus/frame.js';
import { Reader, type FrameSink } from '../../../src/media/bus/reader.js';
import type { Session } from '../../../src/media/bus/session.js';
import { Stream } from '../../../src/media/bus/stream.js';
import { parseTransport, RtspParser, type RtspMessage } from '../../../src/ingest/rtsp/message.js';
import { busCodecOf, carriedMedia, RtspToBus } from '../../../src/ingest/rtsp/to-bus.js';
import { controlUrl, parseSdp } from '../../../src/signaling/sdp/description.js';
import { parseRtp } from '../../../src/media/rtp/packet.js';
import { isRfc3550Compound, parseRtcp, RTCP_PSFB } from '../../../src/media/rtp/rtcp.js';

const FIXTURES = new URL('../../../../test/fixtures/', import.meta.url);
const load = (p: string): Uint8Array => new Uint8Array(readFileSync(new URL(p, FIXTURES)));

function session(): Session {
  return { id: 't', protocol: 'rtsp', role: 'reader', path: 'p', remoteAddr: '', state: '', createdAt: 0, bytesIn: 0, bytesOut: 0, close() {} };
}

function collect(stream: Stream): Frame[] {
  const frames: Frame[] = [];
  const sink: FrameSink = { start() {}, writeFrame: (f) => frames.push(f), bufferedBytes: () => 0, close() {} };
  stream.addReader(new Reader(session(), sink));
  return frames;
}

/** Replays a captured publish session: the ANNOUNCE SDP, then every interleaved frame as if it arrived 1 ms apart. */
function replay(capture: string): { frames: Frame[]; toBus: RtspToBus; stream: Stream } {
  const msgs: RtspMessage[] = new RtspParser().push(load(capture));
  const announce = msgs.find((m) => m.kind === 'request' && m.method === 'ANNOUNCE');
  assert.ok(announce?.kind === 'request');
  const desc = parseSdp(Buffer.from(announce.body).toString());
  // channel → media index, from each SETUP's URL (matched to the media's control) and its interleaved pair
  const byChannel = new Map<number, number>();
  for (const m of msgs) {
    if (m.kind !== 'request' || m.method !== 'SETUP') continue;
    const index = desc.media.findIndex((md) => controlUrl(announce.url, md.control) === m.url);
    const t = parseTransport(m.headers.get('transport') ?? '');
    assert.ok(index >= 0 && t.interleaved);
    byChannel.set(t.interleaved[0], index);
    byChannel.set(t.interleaved[1], index);
  }
  const stream = new Stream('test');
  const frames = collect(stream);
  const toBus = new RtspToBus(stream, desc.media, log);
  let now = 1000;
  for (const m of msgs) {
    if (m.kind !== 'interleaved') continue;
    now += 1;
    const index = byChannel.get(m.channel) as number;
    if (m.channel % 2 === 0) toBus.pushRtp(index, m.data, now);
    else toBus.pushRtcp(index, m.data, now);
  }
  toBus.tick(now + 10_000);
  return { frames, toBus, stream };
}

describe('RtspToBus', () => {
  it('ffmpeg 5.1 ANNOUNCE/RECORD over TCP: H.264 + AAC frames on one timeline, DTS ≤ PTS', () => {
    const { frames, toBus, stream } = replay('rtsp/ffmpeg-publish-tcp.client.bin');
    assert.deepEqual(stream.tracks.map((t) => t.codec), ['h264', 'aac']);
    assert.deepEqual([stream.tracks[0]?.width, stream.tracks[0]?.height], [320, 180]);
    assert.equal(stream.tracks[1]?.sampleRate, 44100);
    const video = frames.filter((f) => f.track.codec === 'h264');
    const audio = frames.filter((f) => f.track.codec === 'aac');
    assert.ok(video.length >= 25, `${video.length} video frames`);
    assert.ok(audio.length >= 60, `${audio.length} audio frames`);
    assert.ok(video[0]?.keyframe);
    for (const f of video) assert.ok(f.dts <= f.pts);
    for (let i = 1; i < video.length; i++) assert.ok((video[i] as Frame).dts > (video[i - 1] as Frame).dts);
    // aligned: first audio and first video within 200 ms of each other on the stream timeline
    const v0 = ((video[0] as Frame).pts * 1000) / 90000;
    const a0 = ((audio[0] as Frame).pts * 1000) / 44100;
    assert.ok(Math.abs(v0 - a0) < 200, `video ${v0} ms, audio ${a0} ms`);
    assert.ok((video[0] as Frame).rtp && (video[0] as Frame).rtp!.length > 0, 'original packets kept');
    const stats = toBus.stats();
    assert.equal(stats.length, 2);
    assert.ok(stats.every((s) => s.errors === 0 && s.reception !== undefined && s.reception.packetsLost === 0));
  });

  it('GStreamer 1.22 rtspclientsink: MP4A-LATM (media 0) + H.264 (media 1)', () => {
    // gst SETUPs media 0 (audio, control stream=1) on channels 0-1 and media 1 (video, stream=0) on 2-3
    const { frames, stream } = replay('rtsp/gst-publish-tcp.client.bin');
    assert.deepEqual(stream.tracks.map((t) => t.codec), ['aac', 'h264']);
    assert.equal(stream.tracks[0]?.sampleRate, 48000);
    assert.ok(frames.some((f) => f.track.codec === 'aac') && frames.some((f) => f.track.codec === 'h264'));
  });

  it('keyframe requests: RR + SDES + PLI + FIR per video media, naming the SSRC of its RTP (gst: video is media 1)', () => {
    const d = parseSdp(readFileSync(new URL('sdp/ffmpeg-publish-tcp-announce.sdp', FIXTURES), 'utf8'));
    assert.deepEqual(new RtspToBus(new Stream('x'), d.media, log).keyframeRequests(1, 'c'), [], 'no RTP yet: no SSRC to name');

    const { toBus } = replay('rtsp/gst-publish-tcp.client.bin');
    const videoRtp = new RtspParser().push(load('rtsp/gst-publish-tcp.client.bin')).find((m) => m.kind === 'interleaved' && m.channel === 2);
    assert.ok(videoRtp?.kind === 'interleaved');
    const videoSsrc = parseRtp(videoRtp.data).ssrc;
    const [req, ...more] = toBus.keyframeRequests(0xcafe, 'streamgate-test');
    assert.equal(more.length, 0, 'the audio media gets none');
    assert.equal(req?.index, 1);
    const packets = parseRtcp(req.packet);
    assert.ok(isRfc3550Compound(packets));
    assert.deepEqual(packets.map((p) => p.type), ['rr', 'sdes', 'pli', 'fir']);
    assert.deepEqual(packets[0], { type: 'rr', ssrc: 0xcafe, reports: [] });
    assert.deepEqual(packets[2], { type: 'pli', senderSsrc: 0xcafe, mediaSsrc: videoSsrc });
    assert.deepEqual(packets[3], { type: 'fir', senderSsrc: 0xcafe, mediaSsrc: 0, entries: [{ ssrc: videoSsrc, seqNr: 1 }] });
    // the PLI header on the wire: V=2, FMT=1, PT=206, length 2 (RFC 4585 §6.1, §6.3.1)
    const at = req.packet.length - 12 - 20;
    assert.deepEqual([...req.packet.subarray(at, at + 4)], [0x81, RTCP_PSFB, 0, 2]);
    const again = parseRtcp(toBus.keyframeRequests(0xcafe, 'streamgate-test')[0]!.packet);
    assert.deepEqual(again[3], { type: 'fir', senderSsrc: 0xcafe, mediaSsrc: 0, entries: [{ ssrc: videoSsrc, seqNr: 2 }] }, 'a new request, a new FIR sequence number');
  });

  it('codec support: what the bus carries and what it refuses', () => {
    const d = parseSdp(readFileSync(new URL('sdp/onvif-backchannel-handmade.sdp', FIXTURES), 'utf8'));
    assert.deepEqual(carriedMedia(d.media), [true, false, false, false]); // PCMU, metadata, back channel
    assert.deepEqual(busCodecOf({ payloadType: 96, encoding: 'H264', clockRate: 90000, fmtp: { 'packetization-mode': '2' } }), {
      unsupported: 'H264 packetization-mode 2',
    });
    assert.equal(busCodecOf({ payloadType: 111, encoding: 'opus', clockRate: 48000, channels: 2, fmtp: {} }), 'opus');
    assert.throws(() => new RtspToBus(new Stream('x'), [d.media[1]!], log));
  });

  it('garbage packets are counted, never thrown', () => {
    const d = parseSdp(readFileSync(new URL('sdp/ffmpeg-publish-tcp-announce.sdp', FIXTURES), 'utf8'));
    const toBus = new RtspToBus(new Stream('x'), d.media, log);
    toBus.pushRtp(0, Uint8Array.of(1, 2, 3), 1);
    toBus.pushRtp(1, Uint8Array.of(0x80, 0x61, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff), 2);
    toBus.pushRtcp(0, Uint8Array.of(9), 3);
    toBus.pushRtp(7, Uint8Array.of(1), 4); // unknown media index
    assert.deepEqual(toBus.stats().map((s) => s.errors), [1, 1]);
  });
});
