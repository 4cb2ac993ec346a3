import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { WebrtcToBus } from '../../../src/ingest/webrtc/to-bus.js';
import type { Frame } from '../../../src/media/bus/frame.js';
import type { Track } from '../../../src/media/bus/track.js';
import { NalUnitType, nalType, splitAnnexB } from '../../../src/media/codecs/h264.js';
import { H264Packetizer } from '../../../src/media/rtp/h264.js';
import { serializeRtp } from '../../../src/media/rtp/packet.js';

const h264 = readFileSync(new URL('../../../../test/fixtures/h264/libx264-320x240-baseline.h264', import.meta.url));

/** Access units of the fixture as a browser sends them: SPS+PPS with every IDR. */
function accessUnits(): Uint8Array[][] {
  const aus: Uint8Array[][] = [];
  let params: Uint8Array[] = [];
  for (const n of splitAnnexB(h264)) {
    const t = nalType(n);
    if (t === NalUnitType.Sps || t === NalUnitType.Pps) params.push(n);
    else if (t === NalUnitType.IdrSlice || t === NalUnitType.NonIdrSlice) {
      aus.push([...params, n]);
      params = [];
    }
  }
  return aus;
}

class Target {
  tracks: Track[] = [];
  frames: Frame[] = [];
  setTracks(t: Track[]): Track[] {
    this.tracks = t;
    return t;
  }
  write(f: Frame): void {
    this.frames.push(f);
  }
}

for (const start of [0, 65500, 65535]) {
  test(`WebrtcToBus: H.264 + Opus RTP → tracks once SPS/PPS arrive, frames on one timeline (seq start ${start})`, () => {
    const target = new Target();
    const toBus = new WebrtcToBus(target, { video: 102, audio: 111 });
    const pk = new H264Packetizer({ ssrc: 0x1234, payloadType: 102, initialSequenceNumber: start, initialTimestamp: 4_000_000_000 });
    assert.equal(toBus.wantsKeyframe(0), true, 'a PLI right away: the stream starts at a keyframe');
    assert.equal(toBus.wantsKeyframe(10), false, 'at most one a second');
    let seqA = start;
    const opus = (i: number): Uint8Array =>
      serializeRtp({ marker: false, payloadType: 111, sequenceNumber: (seqA++) & 0xffff, timestamp: (100 + i * 960) >>> 0, ssrc: 0x5678, csrc: [], payload: Uint8Array.of(0xfc, i), paddingSize: 0 });
    // audio before the first keyframe is held back (no tracks yet)
    toBus.push(opus(0), 0);
    assert.equal(target.tracks.length, 0);
    const aus = accessUnits();
    Array.from({ length: 10 }, (_, i) => aus[i % aus.length]!).forEach((au, i) => {
      for (const p of pk.packetize(au, i * 3000)) toBus.push(p, 1000 + i * 33);
      toBus.push(opus(i + 1), 1000 + i * 33);
    });
    assert.deepEqual(target.tracks.map((t) => t.codec), ['h264', 'opus']);
    assert.equal(target.tracks[0]!.width, 320);
    const video = target.frames.filter((f) => f.track.codec === 'h264');
    const audio = target.frames.filter((f) => f.track.codec === 'opus');
    assert.ok(video.length >= 8, `${video.length} video frames`);
    assert.ok(video[0]!.keyframe);
    assert.ok(audio.length >= 8);
    // both tracks are placed by the arrival of their first packet: the video's first frame at 1000 ms, the
    // audio's first packet at 0 ms, so video starts ~1 s later on the shared timeline
    assert.equal(video[0]!.pts, 90_000);
    for (let i = 1; i < video.length; i++) assert.equal(video[i]!.pts - video[i - 1]!.pts, 3000);
    assert.equal(toBus.wantsKeyframe(5000), false, 'a keyframe came: no more PLIs');
  });
}

test('WebrtcToBus: garbage and unknown payload types are counted, never thrown', () => {
  const target = new Target();
  const toBus = new WebrtcToBus(target, { video: 102, audio: 111 });
  toBus.push(Uint8Array.of(1, 2, 3), 0);
  toBus.push(serializeRtp({ marker: true, payloadType: 99, sequenceNumber: 1, timestamp: 1, ssrc: 1, csrc: [], payload: Uint8Array.of(1), paddingSize: 0 }), 0);
  toBus.push(serializeRtp({ marker: true, payloadType: 102, sequenceNumber: 2, timestamp: 1, ssrc: 1, csrc: [], payload: Uint8Array.of(0x1f), paddingSize: 0 }), 0);
  assert.equal(toBus.packetsBad, 3);
  assert.equal(target.frames.length, 0);
});
