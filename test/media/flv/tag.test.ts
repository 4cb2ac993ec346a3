import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { ParseError, StreamgateError, UnsupportedError } from '../../../src/errors.js';
import { readUint24BE, readUint32BE } from '../../../src/media/bytes.js';
import { parseAudioSpecificConfig } from '../../../src/media/codecs/aac.js';
import { joinAvcc, nalType, parseAvcConfig, splitAvcc } from '../../../src/media/codecs/h264.js';
import {
  aacAudioTag,
  aacAudioTagHeader,
  aacSequenceHeaderTag,
  avcSequenceHeaderTag,
  avcVideoTag,
  avcVideoTagHeader,
  parseAudioTag,
  parseVideoTag,
  type VideoTag,
} from '../../../src/media/flv/tag.js';

const FIXTURES = new URL('../../../../test/fixtures/flv/', import.meta.url);
/** Hex bytes; whitespace and `// comments` are ignored. */
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\/\/.*$/gm, '').replace(/\s+/g, ''), 'hex'));

/** The tags of an FLV file (FLV spec E.2, E.3): what an RTMP message would carry as type and payload. */
function flvTags(name: string): { type: number; timestamp: number; body: Uint8Array }[] {
  const buf = new Uint8Array(readFileSync(new URL(name, FIXTURES)));
  assert.equal(Buffer.from(buf.subarray(0, 3)).toString(), 'FLV');
  const tags: { type: number; timestamp: number; body: Uint8Array }[] = [];
  let pos = readUint32BE(buf, 5) + 4; // header, PreviousTagSize0
  while (pos < buf.length) {
    const size = readUint24BE(buf, pos + 1);
    const timestamp = readUint24BE(buf, pos + 4) + (buf[pos + 7] as number) * 0x1000000;
    tags.push({ type: buf[pos] as number, timestamp, body: buf.subarray(pos + 11, pos + 11 + size) });
    pos += 11 + size + 4;
  }
  return tags;
}

describe('FLV video tags from ffmpeg-libx264 320x240 (flv muxer)', () => {
  const video = flvTags('libx264-aac-320x240.flv').filter((t) => t.type === 9);
  const parsed = video.map((t) => parseVideoTag(t.body));

  it('sequence header, then NALU tags, then end of sequence', () => {
    assert.deepEqual(
      parsed.map((p) => (p.kind === 'avc' ? `${p.frameType}:${p.packetType}` : p.kind)),
      ['1:sequence', '1:nalu', '2:nalu', '2:nalu', '2:nalu', '2:nalu', '2:nalu', '1:end'],
    );
  });

  it('the sequence header holds the avcC record and re-serializes byte for byte', () => {
    const seq = parsed[0] as VideoTag & { kind: 'avc' };
    assert.equal(seq.cts, 0);
    const rec = parseAvcConfig(seq.data);
    assert.equal(rec.profileIdc, 100);
    assert.deepEqual(avcSequenceHeaderTag(seq.data), video[0]?.body);
  });

  it('NALU tags: composition times of B-frame reordering, AVCC data, exact re-serialization', () => {
    const cts: number[] = [];
    parsed.forEach((p, i) => {
      if (p.kind !== 'avc' || p.packetType !== 'nalu') return;
      cts.push(p.cts);
      const body = video[i]?.body as Uint8Array;
      assert.equal(p.data.buffer, body.buffer, 'data is a view');
      const nalus = splitAvcc(p.data);
      assert.equal(nalus.some((n) => nalType(n) === 5), p.frameType === 1);
      assert.deepEqual(avcVideoTagHeader(p.frameType === 1, p.cts), body.subarray(0, 5));
      assert.deepEqual(avcVideoTag(p.frameType === 1, p.cts, nalus), body);
    });
    // ms offsets ffmpeg wrote for -bf 2 at 30 fps
    assert.deepEqual(cts, [67, 133, 33, 34, 100, 33]);
  });
});

describe('FLV audio tags', () => {
  it('ffmpeg-aac 44100 stereo: sequence header with ASC, raw frames, exact re-serialization', () => {
    const audio = flvTags('libx264-aac-320x240.flv').filter((t) => t.type === 8);
    const first = parseAudioTag(audio[0]?.body as Uint8Array);
    assert.deepEqual([first.soundFormat, first.soundRate, first.soundSize, first.soundType], [10, 3, 1, 1]);
    assert.equal(first.aacPacketType, 'sequence');
    assert.deepEqual(first.data, hex('121056e500'));
    assert.equal(parseAudioSpecificConfig(first.data).sampleRate, 44100);
    assert.deepEqual(aacSequenceHeaderTag(first.data), audio[0]?.body);
    for (const t of audio.slice(1)) {
      const a = parseAudioTag(t.body);
      assert.equal(a.aacPacketType, 'raw');
      assert.deepEqual(aacAudioTag(a.data), t.body);
      assert.deepEqual(aacAudioTagHeader(), t.body.subarray(0, 2));
    }
  });

  it('ffmpeg-libmp3lame 44100 mono: reported with soundFormat 2 so callers can refuse it', () => {
    const audio = flvTags('libmp3lame-44100-mono.flv').filter((t) => t.type === 8);
    assert.ok(audio.length > 0);
    for (const t of audio) {
      const a = parseAudioTag(t.body);
      assert.deepEqual([a.soundFormat, a.soundRate, a.soundSize, a.soundType], [2, 3, 1, 0]);
      assert.equal(a.aacPacketType, undefined);
      assert.equal(a.data.length, t.body.length - 1);
    }
  });

  it('Enhanced RTMP ExAudioTagHeader (soundFormat 9) reports the FourCC', () => {
    const a = parseAudioTag(hex('90 4f707573 0102')); // 1001 0000: ExHeader, SequenceStart; 'Opus'
    assert.deepEqual([a.soundFormat, a.fourcc, a.audioPacketType], [9, 'Opus', 0]);
    assert.deepEqual(a.data, hex('0102'));
  });

  const malformed: { name: string; bytes: Uint8Array }[] = [
    { name: 'zero-length', bytes: new Uint8Array(0) },
    { name: 'AAC without AACPacketType', bytes: hex('af') },
    { name: 'AACPacketType 2', bytes: hex('af02 1210') },
    { name: 'ExAudioTagHeader with a truncated FourCC', bytes: hex('90 4f70') },
  ];
  for (const m of malformed) it(`rejects ${m.name}`, () => assert.throws(() => parseAudioTag(m.bytes), ParseError));
});

describe('Enhanced RTMP video tags', () => {
  const cases: { name: string; bytes: Uint8Array; want: VideoTag }[] = [
    {
      name: 'hvc1 SequenceStart (keyframe)',
      bytes: hex('90 68766331 0101600000'), // 1 001 0000: isExHeader, keyframe, SequenceStart; 'hvc1'; hvcC start
      want: { kind: 'enhanced', frameType: 1, packetType: 'sequenceStart', fourcc: 'hvc1', cts: 0, data: hex('0101600000') },
    },
    {
      name: 'hvc1 CodedFrames with SI24 composition time',
      bytes: hex('91 68766331 000021 00000002 2601'), // CodedFrames; cts 33; one length-prefixed NAL unit
      want: { kind: 'enhanced', frameType: 1, packetType: 'codedFrames', fourcc: 'hvc1', cts: 33, data: hex('00000002 2601') },
    },
    {
      name: 'avc1 CodedFrames with a negative composition time',
      bytes: hex('a1 61766331 fffffe 00000001 41'), // 1 010 0001: inter frame; cts -2
      want: { kind: 'enhanced', frameType: 2, packetType: 'codedFrames', fourcc: 'avc1', cts: -2, data: hex('00000001 41') },
    },
    {
      name: 'av01 CodedFramesX (no composition time)',
      bytes: hex('a3 61763031 12000a0b'),
      want: { kind: 'enhanced', frameType: 2, packetType: 'codedFramesX', fourcc: 'av01', cts: 0, data: hex('12000a0b') },
    },
    {
      name: 'vp09 CodedFrames (no composition time for VP9)',
      bytes: hex('91 76703039 8249'),
      want: { kind: 'enhanced', frameType: 1, packetType: 'codedFrames', fourcc: 'vp09', cts: 0, data: hex('8249') },
    },
    {
      name: 'av01 SequenceEnd',
      bytes: hex('92 61763031'),
      want: { kind: 'enhanced', frameType: 1, packetType: 'sequenceEnd', fourcc: 'av01', cts: 0, data: new Uint8Array(0) },
    },
    {
      name: 'hvc1 Metadata (AMF payload)',
      bytes: hex('94 68766331 02000a636f6c6f72496e666f'),
      want: { kind: 'enhanced', frameType: 1, packetType: 'metadata', fourcc: 'hvc1', cts: 0, data: hex('02000a636f6c6f72496e666f') },
    },
    {
      name: 'av01 MPEG2TSSequenceStart',
      bytes: hex('95 61763031 8004'),
      want: { kind: 'enhanced', frameType: 1, packetType: 'mpeg2tsSequenceStart', fourcc: 'av01', cts: 0, data: hex('8004') },
    },
    { name: 'command frame (frame type 5): end seek', bytes: hex('d1 01'), want: { kind: 'command', command: 1 } },
    { name: 'legacy VP6 (CodecID 4) reported as other', bytes: hex('14 00ff'), want: { kind: 'other', frameType: 1, codecId: 4, data: hex('00ff') } },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(parseVideoTag(c.bytes), c.want));

  it('multitrack and ModEx are unsupported', () => {
    assert.throws(() => parseVideoTag(hex('96 00 68766331')), UnsupportedError);
    assert.throws(() => parseVideoTag(hex('97 00')), UnsupportedError);
  });

  const malformed: { name: string; bytes: Uint8Array }[] = [
    { name: 'zero-length', bytes: new Uint8Array(0) },
    { name: 'unknown enhanced packet type 8', bytes: hex('98 68766331') },
    { name: 'truncated FourCC', bytes: hex('90 6876') },
    { name: 'hvc1 CodedFrames without its composition time', bytes: hex('91 68766331 00') },
    { name: 'command frame without the command byte', bytes: hex('d1') },
    { name: 'AVC tag shorter than 5 bytes', bytes: hex('17 01 0000') },
    { name: 'AVCPacketType 3', bytes: hex('17 03 000000') },
  ];
  for (const m of malformed) it(`rejects ${m.name}`, () => assert.throws(() => parseVideoTag(m.bytes), ParseError));
});

describe('serializers', () => {
  it('avcVideoTagHeader writes frame type, packet type and signed SI24 cts', () => {
    assert.deepEqual(avcVideoTagHeader(true, 0), hex('17 01 000000'));
    assert.deepEqual(avcVideoTagHeader(false, -33), hex('27 01 ffffdf'));
    assert.throws(() => avcVideoTagHeader(false, 0x800000), RangeError);
  });

  it('random bytes: only StreamgateError from both parsers', () => {
    const arb = fc.oneof(
      fc.uint8Array({ maxLength: 24 }),
      fc.tuple(fc.constantFrom(0x17, 0x27, 0x90, 0x91, 0xa3, 0xd1, 0xaf, 0x2f, 0x90), fc.uint8Array({ maxLength: 12 })).map(([b0, r]) =>
        Uint8Array.of(b0, ...r),
      ),
    );
    fc.assert(
      fc.property(arb, (b) => {
        for (const parse of [parseVideoTag, parseAudioTag]) {
          try {
            parse(b);
          } catch (e) {
            if (!(e instanceof StreamgateError)) throw e;
          }
        }
      }),
      { numRuns: 3000, interruptAfterTimeLimit: 5000 },
    );
  });

  it('parse(avcVideoTag(...)) round trips keyframe, cts and NAL units', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.integer({ min: -0x800000, max: 0x7fffff }),
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 50 }), { minLength: 1, maxLength: 8 }),
        (keyframe, cts, nalus) => {
          const tag = parseVideoTag(avcVideoTag(keyframe, cts, nalus));
          assert.ok(tag.kind === 'avc');
          assert.deepEqual([tag.frameType, tag.packetType, tag.cts], [keyframe ? 1 : 2, 'nalu', cts]);
          assert.deepEqual(tag.data, joinAvcc(nalus));
        },
      ),
      { numRuns: 500 },
    );
  });
});
