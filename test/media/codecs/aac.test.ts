import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { ParseError, StreamgateError, UnsupportedError } from '../../../src/errors.js';
import {
  AAC_SAMPLE_RATES,
  aacCodecString,
  adtsHeader,
  parseAdts,
  parseAudioSpecificConfig,
  sampleRateIndexOf,
  serializeAudioSpecificConfig,
  splitAdtsFrames,
  type AudioSpecificConfig,
} from '../../../src/media/codecs/aac.js';

const FIXTURES = new URL('../../../../test/fixtures/aac/', import.meta.url);
const load = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, FIXTURES)));
/** Hex bytes; whitespace and `// comments` are ignored. */
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\/\/.*$/gm, '').replace(/\s+/g, ''), 'hex'));
const onlyStreamgate = (f: () => void): void => {
  try {
    f();
  } catch (e) {
    if (!(e instanceof StreamgateError)) throw e;
  }
};

describe('ADTS', () => {
  // frame counts as `ffprobe -count_packets` reports them
  const files = [
    { name: 'ffmpeg-aac 44100 mono', file: 'aac-lc-44100-mono.aac', sampleRateIndex: 4, sampleRate: 44100, channels: 1, frames: 6 },
    { name: 'ffmpeg-aac 48000 stereo', file: 'aac-lc-48000-stereo.aac', sampleRateIndex: 3, sampleRate: 48000, channels: 2, frames: 6 },
    { name: 'ffmpeg-aac 8000 mono', file: 'aac-lc-8000-mono.aac', sampleRateIndex: 11, sampleRate: 8000, channels: 1, frames: 3 },
    { name: 'ffmpeg-aac 96000 5.1', file: 'aac-lc-96000-5.1.aac', sampleRateIndex: 0, sampleRate: 96000, channels: 6, frames: 6 },
  ];
  for (const c of files) {
    it(c.name, () => {
      const buf = load(c.file);
      const frames = splitAdtsFrames(buf);
      assert.equal(frames.length, c.frames);
      let pos = 0;
      for (const f of frames) {
        assert.equal(f.objectType, 2);
        assert.equal(f.mpegVersion, 4);
        assert.equal(f.sampleRateIndex, c.sampleRateIndex);
        assert.equal(f.sampleRate, c.sampleRate);
        assert.equal(f.channels, c.channels);
        assert.equal(f.headerLength, 7);
        assert.equal(f.payload.buffer, buf.buffer, 'payload is a view');
        // serialize: the header ffmpeg wrote, byte for byte
        assert.deepEqual(adtsHeader(f, f.payload.length), buf.subarray(pos, pos + 7));
        pos += f.frameLength;
      }
      assert.equal(pos, buf.length);
    });
  }

  it('parses a CRC-protected header (protection_absent 0, 9-byte header)', () => {
    const bytes = hex(`
      fff0    // syncword, ID 0 (MPEG-4), layer 0, protection_absent 0
      50      // profile 1 (LC), sampling_frequency_index 4 (44100), private 0, channel_configuration bit 2 = 0
      40      // channel_configuration bits 1..0 = 01 (mono), 4 zero flags, aac_frame_length bits 12..11 = 00
      2e 1f   // aac_frame_length bits 10..0 = 00101110 000 -> 368; buffer fullness high 5 bits
      fc      // buffer fullness low 6 bits (0x7ff), number_of_raw_data_blocks_in_frame 0
      abcd    // crc_check
    `);
    const frame = new Uint8Array(368);
    frame.set(bytes);
    const f = parseAdts(frame);
    assert.equal(f.protectionAbsent, false);
    assert.equal(f.headerLength, 9);
    assert.equal(f.frameLength, 368);
    assert.equal(f.payload.length, 368 - 9);
  });

  const malformed: { name: string; bytes: Uint8Array; error: typeof ParseError | typeof UnsupportedError }[] = [
    { name: 'zero-length', bytes: new Uint8Array(0), error: ParseError },
    { name: 'shorter than a header', bytes: hex('fff15040'), error: ParseError },
    { name: 'no syncword', bytes: hex('fef1 5040 01ff fc 00'), error: ParseError },
    { name: 'layer 1', bytes: hex('fff3 5040 01ff fc 00'), error: ParseError },
    // sampling_frequency_index = 13 and 14 are reserved, 15 is forbidden in ADTS
    { name: 'reserved sampling_frequency_index 13', bytes: hex('fff1 7440 01ff fc 00'), error: ParseError },
    { name: 'reserved sampling_frequency_index 14', bytes: hex('fff1 7840 01ff fc 00'), error: ParseError },
    { name: 'sampling_frequency_index 15', bytes: hex('fff1 7c40 01ff fc 00'), error: ParseError },
    { name: 'aac_frame_length 7 (no payload)', bytes: hex('fff1 5040 00ff fc'), error: ParseError },
    { name: 'aac_frame_length past the end (truncated)', bytes: hex('fff1 5040 22df fc de02'), error: ParseError },
    { name: 'huge aac_frame_length 8191', bytes: hex('fff1 5043 ffff fc 00'), error: ParseError },
    { name: 'two raw data blocks', bytes: hex('fff1 5040 011f fd 00'), error: UnsupportedError },
  ];
  for (const m of malformed) it(`rejects ${m.name}`, () => assert.throws(() => parseAdts(m.bytes), m.error));

  it('splitAdtsFrames rejects a stream cut mid-frame', () => {
    const buf = load('aac-lc-48000-stereo.aac');
    assert.throws(() => splitAdtsFrames(buf.subarray(0, buf.length - 1)), ParseError);
  });

  it('adtsHeader refuses what ADTS cannot express', () => {
    assert.throws(() => adtsHeader({ objectType: 5, sampleRateIndex: 4, channelConfig: 2 }, 100), ParseError);
    assert.throws(() => adtsHeader({ objectType: 2, sampleRateIndex: 15, channelConfig: 2 }, 100), ParseError);
    assert.throws(() => adtsHeader({ objectType: 2, sampleRateIndex: 4, channelConfig: 2 }, 8185), ParseError);
    assert.throws(() => adtsHeader({ objectType: 2, sampleRateIndex: 4, channelConfig: 2 }, 0), ParseError);
  });

  it('random bytes: only StreamgateError; header round trip for every valid config', () => {
    const seed = load('aac-lc-44100-mono.aac');
    const arb = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.uint8Array({ maxLength: 64 }).map((b) => Uint8Array.of(0xff, 0xf1, ...b)),
      fc.tuple(fc.nat(), fc.nat({ max: 255 })).map(([i, v]) => {
        const b = Uint8Array.from(seed);
        b[i % 7] = v;
        return b;
      }),
    );
    fc.assert(
      fc.property(arb, (b) => onlyStreamgate(() => splitAdtsFrames(b))),
      { numRuns: 3000, interruptAfterTimeLimit: 5000 },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 12 }),
        fc.integer({ min: 0, max: 7 }),
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        (objectType, sampleRateIndex, channelConfig, payload) => {
          const frame = Uint8Array.from([...adtsHeader({ objectType, sampleRateIndex, channelConfig }, payload.length), ...payload]);
          const f = parseAdts(frame);
          assert.deepEqual([f.objectType, f.sampleRateIndex, f.channelConfig, f.frameLength], [objectType, sampleRateIndex, channelConfig, frame.length]);
          assert.deepEqual(f.payload, payload);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('AudioSpecificConfig', () => {
  const cases: { name: string; bytes: Uint8Array; want: Partial<AudioSpecificConfig>; codec: string }[] = [
    // ffmpeg native encoder, `-c:a aac -f flv`: 2 bytes + sync extension 0x2b7 saying "no SBR"
    { name: 'ffmpeg-aac 44100 stereo', bytes: hex('1210 56e500'), want: { objectType: 2, sampleRate: 44100, channels: 2, sbrPresentFlag: false }, codec: 'mp4a.40.2' },
    { name: 'ffmpeg-aac 44100 mono', bytes: hex('1208 56e500'), want: { sampleRateIndex: 4, channels: 1 }, codec: 'mp4a.40.2' },
    { name: 'ffmpeg-aac 48000 stereo', bytes: hex('1190 56e500'), want: { sampleRate: 48000, channels: 2, frameLength: 1024 }, codec: 'mp4a.40.2' },
    { name: 'ffmpeg-aac 8000 mono', bytes: hex('1588 56e500'), want: { sampleRateIndex: 11, sampleRate: 8000, channels: 1 }, codec: 'mp4a.40.2' },
    { name: 'ffmpeg-aac 96000 5.1', bytes: hex('1030 56e500'), want: { sampleRateIndex: 0, channelConfig: 6, channels: 6 }, codec: 'mp4a.40.2' },
    { name: 'ffmpeg-aac 7350 stereo (index 12)', bytes: hex('1610 56e500'), want: { sampleRateIndex: 12, sampleRate: 7350 }, codec: 'mp4a.40.2' },
    // 00010 (LC) 0011 (48000) 0010 (stereo) 000: the 2-byte form most RTMP encoders send
    { name: 'LC 48000 stereo, 2 bytes', bytes: hex('1190'), want: { objectType: 2, sampleRate: 48000, channels: 2 }, codec: 'mp4a.40.2' },
    // 00010 0011 0010, frameLengthFlag 1
    { name: 'LC 960-sample frames', bytes: hex('1194'), want: { frameLength: 960 }, codec: 'mp4a.40.2' },
    // 00010, index 1111, 24-bit 22000, 0010, 000
    { name: 'explicit frequency (index 15) 22000 Hz', bytes: hex('17802af810'), want: { sampleRateIndex: 15, sampleRate: 22000, channels: 2 }, codec: 'mp4a.40.2' },
    // 11111 + 001010 (32 + 10 = 42, USAC), 0011, 0010: not GA, nothing more is read
    { name: 'extended object type 31 escape (AOT 42)', bytes: hex('f94640'), want: { objectType: 42, sampleRate: 48000, channels: 2, frameLength: 1024 }, codec: 'mp4a.40.42' },
    // 00101 (SBR) 0110 (24000) 0010, ext 0011 (48000), core 00010 (LC), GA 000
    { name: 'HE-AAC v1 explicit (AOT 5) 24000/48000', bytes: hex('2b118800'), want: { objectType: 5, coreObjectType: 2, sampleRate: 24000, extensionSampleRate: 48000 }, codec: 'mp4a.40.5' },
    // 11101 (PS) 0110 0001, ext 0011, core 00010, GA 000
    { name: 'HE-AAC v2 explicit (AOT 29) mono', bytes: hex('eb098800'), want: { objectType: 29, channels: 1, extensionSampleRateIndex: 3 }, codec: 'mp4a.40.29' },
    // LC 22050 stereo + sync 0x2b7, AOT 5, sbrPresentFlag 1, ext 44100, sync 0x548, psPresentFlag 1
    { name: 'backward-compatible SBR+PS signaling', bytes: hex('139056e5a54880'), want: { sbrPresentFlag: true, extensionSampleRate: 44100, psPresentFlag: true }, codec: 'mp4a.40.2' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const asc = parseAudioSpecificConfig(c.bytes);
      for (const [k, v] of Object.entries(c.want)) assert.deepEqual(asc[k as keyof AudioSpecificConfig], v, k);
      assert.equal(aacCodecString(asc), c.codec);
      assert.deepEqual(serializeAudioSpecificConfig(asc), c.bytes);
    });
  }

  const malformed: { name: string; bytes: Uint8Array }[] = [
    { name: 'zero-length', bytes: new Uint8Array(0) },
    { name: 'truncated (1 byte)', bytes: hex('12') },
    { name: 'audioObjectType 0', bytes: hex('0010') },
    // 00010 1101 ...: samplingFrequencyIndex 13 is reserved
    { name: 'reserved samplingFrequencyIndex 13', bytes: hex('1690') },
    { name: 'explicit frequency of 0 Hz', bytes: hex('1780000010') },
    { name: 'explicit frequency truncated', bytes: hex('17802a') },
    // 00010 0011 1000: channelConfiguration 8 is reserved
    { name: 'reserved channelConfiguration 8', bytes: hex('11c0') },
    { name: 'AOT 31 escape truncated', bytes: hex('f8') },
  ];
  for (const m of malformed) it(`rejects ${m.name}`, () => assert.throws(() => parseAudioSpecificConfig(m.bytes), ParseError));

  it('serializes from sample-rate-table values', () => {
    assert.deepEqual(serializeAudioSpecificConfig({ objectType: 2, sampleRateIndex: sampleRateIndexOf(48000), channelConfig: 2 }), hex('1190'));
    assert.equal(AAC_SAMPLE_RATES.length, 13);
    assert.equal(sampleRateIndexOf(12345), -1);
    assert.throws(() => serializeAudioSpecificConfig({ objectType: 2, sampleRateIndex: 13, channelConfig: 2 }), ParseError);
    assert.throws(() => serializeAudioSpecificConfig({ objectType: 2, sampleRateIndex: 15, channelConfig: 2 }), ParseError);
  });

  it('random bytes: only StreamgateError; parse(serialize(parse(x))) is stable', () => {
    const seeds = cases.map((c) => c.bytes);
    const arb = fc.oneof(
      fc.uint8Array({ maxLength: 16 }),
      fc.tuple(fc.constantFrom(...seeds), fc.nat(), fc.nat({ max: 255 })).map(([s, i, v]) => {
        const b = Uint8Array.from(s);
        b[i % b.length] = v;
        return b;
      }),
    );
    fc.assert(
      fc.property(arb, (b) =>
        onlyStreamgate(() => {
          const asc = parseAudioSpecificConfig(b);
          assert.deepEqual(parseAudioSpecificConfig(serializeAudioSpecificConfig(asc)), asc);
        }),
      ),
      { numRuns: 3000, interruptAfterTimeLimit: 5000 },
    );
  });
});
