import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LimitError, ParseError, StreamgateError, UnsupportedError } from '../../../src/errors.js';
import {
  AAC_HBR,
  LatmDepacketizer,
  Mpeg4GenericDepacketizer,
  Mpeg4GenericPacketizer,
  mpeg4GenericParams,
  parseStreamMuxConfig,
  SimpleAudioDepacketizer,
  SimpleAudioPacketizer,
  type AudioFrame,
} from '../../../src/media/rtp/audio.js';
import { parseRtp, type RtpPacket } from '../../../src/media/rtp/packet.js';
import { bytes, hex, loadPackets } from './fixtures.js';

const pkt = (seq: number, ts: number, marker: boolean, payload: Uint8Array): RtpPacket => ({
  marker,
  payloadType: 97,
  sequenceNumber: seq & 0xffff,
  timestamp: ts,
  ssrc: 1,
  csrc: [],
  payload,
  paddingSize: 0,
});

function run<T>(raws: readonly Uint8Array[], push: (p: RtpPacket) => T[] | T | null): T[] {
  const out: T[] = [];
  for (const raw of raws) {
    const r = push(parseRtp(raw));
    if (Array.isArray(r)) out.push(...r);
    else if (r !== null) out.push(r);
  }
  return out;
}

/** An AAC raw_data_block starts with a 3-bit element id; SCE/CPE/FIL are 0, 1, 6. */
const firstElementId = (f: AudioFrame): number => (f.data[0] as number) >> 5;

describe('mpeg4GenericParams', () => {
  it('reads ffmpeg and GStreamer AAC-hbr fmtp (names lower-cased by the SDP layer)', () => {
    assert.deepEqual(mpeg4GenericParams({ 'profile-level-id': '1', mode: 'AAC-hbr', sizelength: '13', indexlength: '3', indexdeltalength: '3', config: '121056E500' }), AAC_HBR);
    assert.deepEqual(mpeg4GenericParams({ sizelength: '6', indexlength: '2', indexdeltalength: '2' }), { sizeLength: 6, indexLength: 2, indexDeltaLength: 2 });
  });
  it('rejects what the depacketizer does not implement', () => {
    assert.throws(() => mpeg4GenericParams({ sizelength: '13', ctsdeltalength: '16' }), UnsupportedError);
    assert.throws(() => mpeg4GenericParams({ sizelength: '13', randomaccessindication: '1' }), UnsupportedError);
    assert.throws(() => mpeg4GenericParams({ indexlength: '3' }), UnsupportedError);
    assert.throws(() => mpeg4GenericParams({ sizelength: 'x' }), ParseError);
  });
});

describe('Mpeg4GenericDepacketizer', () => {
  it('ffmpeg 5.1 aac 44.1 kHz stereo: several AUs per packet, 1024 ticks apart, 1 s of audio', () => {
    const raws = loadPackets('ffmpeg-aac.bin');
    const d = new Mpeg4GenericDepacketizer();
    const frames = run(raws, (p) => d.push(p));
    assert.ok(raws.length < 15, 'ffmpeg aggregates');
    assert.ok(frames.length >= 42 && frames.length <= 45, `${frames.length} frames`); // 44100 / 1024 ≈ 43
    for (let i = 1; i < frames.length; i++) assert.equal((frames[i] as AudioFrame).pts - (frames[i - 1] as AudioFrame).pts, 1024);
    assert.ok(frames.every((f) => [0, 1, 6].includes(firstElementId(f))));
    assert.equal(d.stats.framesDropped, 0);
    // the first packet: AU-headers-length 80 bits = 5 AU headers (13+3 bits each)
    assert.equal(new Mpeg4GenericDepacketizer().push(parseRtp(raws[0] as Uint8Array))?.length, 5);
  });

  it('GStreamer 1.22 rtpmp4gpay 48 kHz stereo: one AU per packet', () => {
    const raws = loadPackets('gst-aac.bin');
    const d = new Mpeg4GenericDepacketizer();
    const frames = run(raws, (p) => d.push(p));
    assert.equal(frames.length, raws.length);
    assert.ok(frames.every((f) => [0, 1, 6].includes(firstElementId(f))));
  });

  it('reassembles an AU fragmented over three packets (marker on the last only)', () => {
    const au = new Uint8Array(3000).map((_, i) => i & 0xff);
    const d = new Mpeg4GenericDepacketizer();
    const header = hex('0010 5dc0'); // 16 bits of headers: AU-size 3000 (13 bits), index 0 (3 bits)
    const part = (from: number, to: number): Uint8Array => Uint8Array.from([...header, ...au.subarray(from, to)]);
    assert.equal(d.push(pkt(65535, 100, false, part(0, 1000))), null);
    assert.equal(d.push(pkt(0, 100, false, part(1000, 2000))), null);
    const frames = d.push(pkt(1, 100, true, part(2000, 3000)));
    assert.equal(frames?.length, 1);
    assert.deepEqual(frames?.[0]?.data, au);
    assert.equal(frames?.[0]?.pts, 100);
  });

  it('a lost fragment drops that AU only', () => {
    const d = new Mpeg4GenericDepacketizer();
    const header = hex('0010 5dc0');
    const frag = Uint8Array.from([...header, ...new Uint8Array(1000)]);
    d.push(pkt(10, 0, false, frag));
    // seq 11 lost; 12 is the last fragment of the same AU and is skipped
    assert.equal(d.push(pkt(12, 0, true, frag)), null);
    const next = d.push(pkt(13, 1024, true, hex('0010 0020 aabbccdd'))); // AU-size 4
    assert.deepEqual(next?.map((f) => bytes(f.data)), [hex('aabbccdd')]);
    assert.equal(d.stats.framesDropped, 1);
    assert.equal(d.stats.packetsLost, 1);
  });

  const malformed: { name: string; payload: Uint8Array; err: typeof ParseError | typeof UnsupportedError }[] = [
    { name: 'one byte', payload: hex('00'), err: ParseError },
    { name: 'AU-headers-length beyond the packet', payload: hex('0100 0000'), err: ParseError },
    { name: 'AU-headers-length 0', payload: hex('0000 aabb'), err: ParseError },
    { name: 'AU-headers-length not a whole header (15 bits)', payload: hex('000f 0020'), err: ParseError },
    { name: 'second AU overruns the packet', payload: hex('0020 0020 0040 aabbccdd'), err: ParseError },
    { name: 'interleaved (AU-Index 1)', payload: hex('0010 0021 aabbccdd'), err: UnsupportedError },
  ];
  for (const m of malformed) {
    it(`malformed: ${m.name} → ${m.err.name}`, () => {
      const d = new Mpeg4GenericDepacketizer();
      assert.throws(() => d.push(pkt(1, 0, true, m.payload)), m.err);
      assert.ok(d.push(pkt(2, 1024, true, hex('0010 0020 aabbccdd'))));
    });
  }

  it('random payloads: only StreamgateErrors, never an empty frame', () => {
    const d = new Mpeg4GenericDepacketizer();
    let seq = 0;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.boolean(), (payload, marker) => {
        try {
          const frames = d.push(pkt(seq++, seq * 1024, marker, payload));
          for (const f of frames ?? []) assert.ok(f.data.length > 0);
        } catch (e) {
          if (!(e instanceof StreamgateError)) throw e;
        }
      }),
      { numRuns: 3000, interruptAfterTimeLimit: 3000 },
    );
  });
});

describe('Mpeg4GenericPacketizer', () => {
  it('depacketize(packetize(AUs)) is the identity for many AU sizes, MTUs and start values', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 3000 }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1200, max: 1450 }),
        fc.constantFrom(0, 1, 65534, 65535),
        fc.constantFrom(0, 0xfffffc00),
        (aus, mtu, seq, ts) => {
          const p = new Mpeg4GenericPacketizer({ payloadType: 97, mtu, ssrc: 9, initialSequenceNumber: seq, initialTimestamp: ts });
          const d = new Mpeg4GenericDepacketizer();
          const raws = p.packetize(aus, 0);
          assert.ok(raws.every((r) => r.length <= mtu));
          const frames = run(raws, (x) => d.push(x));
          assert.deepEqual(frames.map((f) => bytes(f.data)), aus.map(bytes));
          assert.deepEqual(frames.map((f) => f.pts), aus.map((_, i) => ts + i * 1024));
          // markers: clear only on non-final fragments
          const parsed = raws.map(parseRtp);
          assert.equal(parsed[parsed.length - 1]?.marker, true);
        },
      ),
      { numRuns: 300, interruptAfterTimeLimit: 5000 },
    );
  });

  it('re-packetizing the ffmpeg capture gives the same frames', () => {
    const frames = run(loadPackets('ffmpeg-aac.bin'), ((d) => (p: RtpPacket) => d.push(p))(new Mpeg4GenericDepacketizer()));
    const p = new Mpeg4GenericPacketizer({ payloadType: 97, mtu: 1450 });
    const again = run(p.packetize(frames.map((f) => f.data), 0), ((d) => (x: RtpPacket) => d.push(x))(new Mpeg4GenericDepacketizer()));
    assert.deepEqual(again.map((f) => bytes(f.data)), frames.map((f) => bytes(f.data)));
  });

  it('an AU over 8191 bytes cannot be described by a 13-bit AU-size → LimitError', () => {
    const p = new Mpeg4GenericPacketizer({ payloadType: 97 });
    assert.throws(() => p.packetize([new Uint8Array(8192)], 0), LimitError);
  });
});

describe('MP4A-LATM', () => {
  it('parseStreamMuxConfig: ffmpeg 5.1 config=400024203fc0 (44.1 kHz stereo, AAC-LC)', () => {
    const c = parseStreamMuxConfig(hex(`
      40   // audioMuxVersion 0, allStreamsSameTimeFraming 1, numSubFrames 0
      00   // numProgram 0, numLayer 0, first ASC bit
      2420 // ASC: AOT 2, sampling index 4 (44100), channels 2, GASpecificConfig 000; frameLengthType starts
      3fc0 // frameLengthType 0, latmBufferFullness 0xff, no other data, no CRC
    `));
    assert.deepEqual(c, { audioMuxVersion: 0, numSubFrames: 0, audioSpecificConfig: hex('1210'), sampleRate: 44100, channels: 2, samplesPerFrame: 1024, otherDataLenBits: 0 });
  });

  it('parseStreamMuxConfig: GStreamer 1.22 config=40002320adca00 (48 kHz stereo, ASC with SBR sync extension, cut short)', () => {
    const c = parseStreamMuxConfig(hex('40002320adca00'));
    // the ASC is the 5-byte codec_data of avenc_aac, with the 0x2b7 "no SBR" extension
    assert.deepEqual(bytes(c.audioSpecificConfig), hex('119056e500'));
    assert.equal(c.sampleRate, 48000);
    assert.equal(c.channels, 2);
  });

  it('parseStreamMuxConfig: unsupported and truncated configs', () => {
    assert.throws(() => parseStreamMuxConfig(hex('4010')), UnsupportedError); // numProgram 1
    assert.throws(() => parseStreamMuxConfig(hex('00')), UnsupportedError); // allStreamsSameTimeFraming 0
    assert.throws(() => parseStreamMuxConfig(hex('4000')), ParseError); // ASC cut
  });

  it('ffmpeg 5.1 -rtpflags latm: one AudioMuxElement per packet, frames 1024 apart', () => {
    const d = new LatmDepacketizer(hex('400024203fc0'));
    const frames = run(loadPackets('ffmpeg-aac-latm.bin'), (p) => d.push(p));
    assert.ok(frames.length >= 43 && frames.length <= 45, `${frames.length}`);
    for (let i = 1; i < frames.length; i++) assert.equal((frames[i] as AudioFrame).pts - (frames[i - 1] as AudioFrame).pts, 1024);
    assert.ok(frames.every((f) => [0, 1, 6].includes(firstElementId(f))));
  });

  it('GStreamer 1.22 rtpmp4apay gives the same frames as its rtpmp4gpay for the same source', () => {
    const latm = run(loadPackets('gst-aac-latm.bin'), ((d) => (p: RtpPacket) => d.push(p))(new LatmDepacketizer(hex('40002320adca00'))));
    const generic = run(loadPackets('gst-aac.bin'), ((d) => (p: RtpPacket) => d.push(p))(new Mpeg4GenericDepacketizer()));
    assert.equal(latm.length, generic.length);
    assert.deepEqual(latm.map((f) => bytes(f.data)), generic.map((f) => bytes(f.data)));
  });

  it('an element fragmented over two packets is joined; PayloadLengthInfo with 255 continuation', () => {
    const d = new LatmDepacketizer(hex('400024203fc0'));
    const frame = new Uint8Array(300).fill(0x21);
    const element = Uint8Array.from([255, 45, ...frame]); // 255 + 45 = 300
    assert.equal(d.push(pkt(1, 0, false, element.subarray(0, 100))), null);
    const out = d.push(pkt(2, 0, true, element.subarray(100)));
    assert.deepEqual(out?.map((f) => bytes(f.data)), [frame]);
  });

  it('malformed: length beyond the element → ParseError; random bytes → only StreamgateErrors', () => {
    const d = new LatmDepacketizer(hex('400024203fc0'));
    assert.throws(() => d.push(pkt(1, 0, true, hex('05 aabb'))), ParseError);
    assert.throws(() => d.push(pkt(2, 0, true, hex('ffff'))), ParseError);
    let seq = 3;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 30 }), fc.boolean(), (payload, marker) => {
        try {
          for (const f of d.push(pkt(seq++, seq, marker, payload)) ?? []) assert.ok(f.data.length > 0);
        } catch (e) {
          if (!(e instanceof StreamgateError)) throw e;
        }
      }),
      { numRuns: 2000, interruptAfterTimeLimit: 2000 },
    );
  });
});

describe('one frame per packet (Opus, G.711)', () => {
  it('ffmpeg 5.1 libopus: 20 ms frames, 960 ticks apart at 48 kHz', () => {
    const d = new SimpleAudioDepacketizer();
    const frames = run(loadPackets('ffmpeg-opus.bin'), (p) => d.push(p));
    assert.ok(frames.length >= 49);
    for (let i = 1; i < frames.length; i++) assert.equal((frames[i] as AudioFrame).pts - (frames[i - 1] as AudioFrame).pts, 960);
  });

  it('ffmpeg 5.1 pcm_mulaw: 8 kHz frames', () => {
    const d = new SimpleAudioDepacketizer();
    const frames = run(loadPackets('ffmpeg-pcmu.bin'), (p) => d.push(p));
    const total = frames.reduce((n, f) => n + f.data.length, 0);
    assert.equal(total, 8000); // 1 s of 8-bit samples
  });

  for (const start of [0, 65535]) {
    it(`packetize → depacketize round trip, sequence from ${start}`, () => {
      const p = new SimpleAudioPacketizer({ payloadType: 111, initialSequenceNumber: start, initialTimestamp: 0xffffff00 });
      const d = new SimpleAudioDepacketizer();
      const input = [hex('fc01'), hex('fc0203'), hex('fc')];
      const out = input.map((f, i) => d.push(parseRtp(p.packetize(f, i * 960))));
      assert.deepEqual(out.map((f) => f && bytes(f.data)), input);
      assert.deepEqual(out.map((f) => f?.pts), [0xffffff00, 0xffffff00 + 960, 0xffffff00 + 1920]);
      assert.equal(d.stats.packetsLost, 0);
    });
  }

  it('a frame larger than the MTU → LimitError', () => {
    assert.throws(() => new SimpleAudioPacketizer({ payloadType: 0 }).packetize(new Uint8Array(1300), 0), LimitError);
  });
});
