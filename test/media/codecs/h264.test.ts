import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { LimitError, ParseError, StreamgateError } from '../../../src/errors.js';
import {
  MAX_ACCESS_UNIT_SIZE,
  MAX_NALUS_PER_ACCESS_UNIT,
  NalUnitType,
  annexBSize,
  h264CodecString,
  isKeyframe,
  joinAnnexB,
  joinAvcc,
  nalType,
  nalUnitTypeName,
  parseAvcConfig,
  serializeAvcConfig,
  splitAnnexB,
  splitAvcc,
} from '../../../src/media/codecs/h264.js';

const FIXTURES = new URL('../../../../test/fixtures/h264/', import.meta.url);
const load = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, FIXTURES)));
/** Hex bytes; whitespace and `// comments` are ignored. */
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\/\/.*$/gm, '').replace(/\s+/g, ''), 'hex'));
const isStreamgate = (e: unknown): boolean => e instanceof StreamgateError;

describe('splitAnnexB', () => {
  const files: { name: string; file: string; types: number[] }[] = [
    { name: 'ffmpeg-libx264 1280x720 high (IDR + 2 P, 3- and 4-byte start codes)', file: 'libx264-1280x720-high.h264', types: [7, 8, 6, 5, 1, 1] },
    { name: 'ffmpeg-libx264 320x240 baseline', file: 'libx264-320x240-baseline.h264', types: [7, 8, 6, 5, 1, 1] },
    { name: 'ffmpeg-libx264 720x576 interlaced (2 SEI)', file: 'libx264-720x576-interlaced.h264', types: [7, 8, 6, 6, 5] },
    { name: 'ffmpeg-libx264 640x360 nal-hrd (3 SEI)', file: 'libx264-640x360-hrd-vui.h264', types: [7, 8, 6, 6, 6, 5] },
  ];
  for (const c of files) {
    it(c.name, () => {
      const buf = load(c.file);
      const nalus = splitAnnexB(buf);
      assert.deepEqual(nalus.map(nalType), c.types);
      // views, not copies
      for (const n of nalus) assert.equal(n.buffer, buf.buffer);
      // nothing lost: every byte is either a start code or in a NAL unit
      const startCodeBytes = buf.length - nalus.reduce((s, n) => s + n.length, 0);
      assert.ok(startCodeBytes >= 3 * nalus.length && startCodeBytes <= 4 * nalus.length);
      assert.ok(isKeyframe(nalus));
      assert.deepEqual(splitAnnexB(joinAnnexB(nalus)), nalus);
    });
  }

  const cases: { name: string; bytes: Uint8Array; want: Uint8Array[] }[] = [
    { name: '4-byte start code', bytes: hex('00000001 6742'), want: [hex('6742')] },
    { name: '3-byte start code', bytes: hex('000001 6742'), want: [hex('6742')] },
    { name: 'mixed 3/4-byte start codes', bytes: hex('00000001 6742 000001 68ce 00000001 6588'), want: [hex('6742'), hex('68ce'), hex('6588')] },
    { name: 'leading zero_byte(s) before the first start code', bytes: hex('0000 00000001 09f0'), want: [hex('09f0')] },
    { name: 'trailing_zero_8bits after the last NAL unit', bytes: hex('000001 09f0 000000'), want: [hex('09f0')] },
    { name: 'empty NAL units between start codes are skipped', bytes: hex('000001 000001 00000001 6588'), want: [hex('6588')] },
    { name: 'emulation-prevented 00 00 03 stays inside the NAL unit', bytes: hex('000001 6588 000003 01 80'), want: [hex('6588 000003 01 80')] },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(splitAnnexB(c.bytes), c.want));
  }

  const malformed: { name: string; bytes: Uint8Array; error: typeof ParseError | typeof LimitError }[] = [
    { name: 'zero-length', bytes: new Uint8Array(0), error: ParseError },
    { name: 'no start code (AVCC data passed by mistake)', bytes: hex('00000002 6742'), error: ParseError },
    { name: 'garbage before the first start code', bytes: hex('ff 000001 6742'), error: ParseError },
    { name: 'start codes only', bytes: hex('00000001 000001 0000'), error: ParseError },
    {
      name: `more than ${MAX_NALUS_PER_ACCESS_UNIT} NAL units`,
      bytes: hex('000001 09f0'.repeat(MAX_NALUS_PER_ACCESS_UNIT + 1)),
      error: LimitError,
    },
    { name: 'more than MAX_ACCESS_UNIT_SIZE bytes', bytes: new Uint8Array(MAX_ACCESS_UNIT_SIZE + 1), error: LimitError },
  ];
  for (const m of malformed) {
    it(`rejects ${m.name}`, () => assert.throws(() => splitAnnexB(m.bytes), m.error));
  }

  it('random bytes: only StreamgateError, never an empty NAL unit', () => {
    const seeds = files.map((c) => load(c.file).subarray(0, 200));
    const arb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      // dense in 00/01 bytes so start codes are common
      fc.array(fc.constantFrom(0, 0, 1, 3, 0x67, 0x80), { maxLength: 100 }).map((a) => Uint8Array.from(a)),
      fc.tuple(fc.constantFrom(...seeds), fc.nat(), fc.nat({ max: 255 })).map(([s, i, v]) => {
        const b = Uint8Array.from(s);
        b[i % b.length] = v;
        return b;
      }),
    );
    fc.assert(
      fc.property(arb, (b) => {
        try {
          for (const n of splitAnnexB(b)) assert.ok(n.length > 0 && n[n.length - 1] !== 0);
        } catch (e) {
          if (!isStreamgate(e)) throw e;
        }
      }),
      { numRuns: 3000, interruptAfterTimeLimit: 5000 },
    );
  });

  it('split(join(nalus)) is the identity for valid NAL units', () => {
    // a valid NAL unit has no 00 00 0x (x <= 2) inside and does not end in 00 (7.4.1, B.2)
    const nal = fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => {
      const out: number[] = [];
      let zeros = 0;
      for (const x of b) {
        if (zeros >= 2 && x <= 3) (out.push(3), (zeros = 0));
        out.push(x);
        zeros = x === 0 ? zeros + 1 : 0;
      }
      if (out[out.length - 1] === 0) out.push(0x80);
      return Uint8Array.from(out);
    });
    fc.assert(
      fc.property(fc.array(nal, { minLength: 1, maxLength: 20 }), (nalus) => {
        const joined = joinAnnexB(nalus);
        assert.equal(joined.length, annexBSize(nalus));
        assert.deepEqual(splitAnnexB(joined), nalus);
      }),
      { numRuns: 500 },
    );
  });
});

describe('joinAnnexB', () => {
  it('writes 4-byte start codes', () => {
    assert.deepEqual(joinAnnexB([hex('6742'), hex('68ce')]), hex('00000001 6742 00000001 68ce'));
  });
  it('rejects an empty NAL unit', () => assert.throws(() => joinAnnexB([hex('67'), new Uint8Array(0)]), ParseError));
});

describe('splitAvcc / joinAvcc', () => {
  const nalus = splitAnnexB(load('libx264-1280x720-high.h264'));
  for (const lengthSize of [1, 2, 4]) {
    it(`round trips real NAL units with ${lengthSize}-byte lengths`, () => {
      const small = lengthSize === 1 ? nalus.filter((n) => n.length < 256) : nalus;
      const avcc = joinAvcc(small, lengthSize);
      const back = splitAvcc(avcc, lengthSize);
      assert.deepEqual(back, small);
      for (const n of back) assert.equal(n.buffer, avcc.buffer);
    });
  }

  const cases: { name: string; bytes: Uint8Array; want: Uint8Array[] }[] = [
    { name: 'two NAL units', bytes: hex('00000002 6742 00000001 68'), want: [hex('6742'), hex('68')] },
    { name: 'a zero length is skipped', bytes: hex('00000000 00000001 65'), want: [hex('65')] },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(splitAvcc(c.bytes), c.want));

  const malformed: { name: string; bytes: Uint8Array; lengthSize?: number }[] = [
    { name: 'zero-length input', bytes: new Uint8Array(0) },
    { name: 'truncated length prefix', bytes: hex('000000') },
    { name: 'length past the end', bytes: hex('00000005 6742') },
    { name: 'huge length (0xffffffff)', bytes: hex('ffffffff 6742') },
    { name: 'only zero lengths', bytes: hex('00000000') },
    { name: 'lengthSize 3', bytes: hex('000002 6742'), lengthSize: 3 },
  ];
  for (const m of malformed) {
    it(`rejects ${m.name}`, () => assert.throws(() => splitAvcc(m.bytes, m.lengthSize), ParseError));
  }

  it('rejects a NAL unit too long for a 1-byte length', () => {
    assert.throws(() => joinAvcc([new Uint8Array(256).fill(1)], 1), ParseError);
  });

  it('random bytes: only StreamgateError; round trip of arbitrary NAL units', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.constantFrom(1, 2, 4), (b, ls) => {
        try {
          for (const n of splitAvcc(b, ls)) assert.ok(n.length > 0);
        } catch (e) {
          if (!isStreamgate(e)) throw e;
        }
      }),
      { numRuns: 2000, interruptAfterTimeLimit: 5000 },
    );
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 10 }), (ns) => {
        assert.deepEqual(splitAvcc(joinAvcc(ns)), ns);
      }),
      { numRuns: 300 },
    );
  });
});

describe('isKeyframe / nal types', () => {
  it('an IDR slice makes a keyframe; SPS/PPS alone or non-IDR slices do not', () => {
    assert.equal(isKeyframe([hex('6742'), hex('68ce'), hex('6588')]), true);
    assert.equal(isKeyframe([hex('6742'), hex('68ce')]), false);
    assert.equal(isKeyframe([hex('419a')]), false);
    assert.equal(isKeyframe([]), false);
  });
  it('names types for logs', () => {
    assert.equal(nalUnitTypeName(NalUnitType.IdrSlice), 'IdrSlice');
    assert.equal(nalUnitTypeName(28), 'FuA');
    assert.equal(nalUnitTypeName(0), 'Unspecified0');
    assert.equal(nalUnitTypeName(17), 'Reserved17');
  });
});

describe('AVCDecoderConfigurationRecord', () => {
  // from test/fixtures/flv/libx264-aac-320x240.flv (ffmpeg 5.1 flv muxer, libx264 high)
  const ffmpegRecord = hex(`
    01          // configurationVersion
    64 00 0d    // profile 100, compat 0, level 1.3
    ff          // 6 reserved bits + lengthSizeMinusOne 3
    e1          // 3 reserved bits + 1 SPS
    0019        // SPS length 25
    6764000dacd94141fb0110000003001000000303c0f1429960
    01          // 1 PPS
    0005 68ef81372c
    fd f8 f8 00 // High profile trailer: chroma_format_idc 1, bit depths 8/8, no SPS extensions
  `);

  it('parses ffmpeg-libx264 320x240 high from an FLV sequence header', () => {
    const c = parseAvcConfig(ffmpegRecord);
    assert.equal(c.profileIdc, 100);
    assert.equal(c.profileCompat, 0);
    assert.equal(c.levelIdc, 13);
    assert.equal(c.lengthSize, 4);
    assert.equal(c.sps.length, 1);
    assert.equal(c.pps.length, 1);
    assert.deepEqual(c.pps[0], hex('68ef81372c'));
    assert.equal(h264CodecString(c.sps[0] as Uint8Array), 'avc1.64000d');
  });

  it('serializes back to the same bytes (with the High profile trailer)', () => {
    const c = parseAvcConfig(ffmpegRecord);
    assert.deepEqual(serializeAvcConfig(c.sps, c.pps), ffmpegRecord);
  });

  it('baseline: no trailer, round trips through parse', () => {
    const nalus = splitAnnexB(load('libx264-320x240-baseline.h264'));
    const sps = nalus.filter((n) => nalType(n) === 7);
    const pps = nalus.filter((n) => nalType(n) === 8);
    const rec = serializeAvcConfig(sps, pps, 2);
    assert.equal(rec.length, 7 + 2 + (sps[0] as Uint8Array).length + 2 + (pps[0] as Uint8Array).length);
    assert.deepEqual(parseAvcConfig(rec), { profileIdc: 66, profileCompat: 0xc0, levelIdc: 13, lengthSize: 2, sps, pps });
  });

  const malformed: { name: string; bytes: Uint8Array }[] = [
    { name: 'zero-length', bytes: new Uint8Array(0) },
    { name: 'configurationVersion 0', bytes: hex('00 640016 ff e1 0004 67640016 01 0002 68ee') },
    { name: 'lengthSizeMinusOne 2', bytes: hex('01 640016 fe e1 0004 67640016 01 0002 68ee') },
    { name: 'SPS length past the end', bytes: hex('01 640016 ff e1 0040 67640016 01 0002 68ee') },
    { name: 'empty SPS', bytes: hex('01 640016 ff e1 0000 01 0002 68ee') },
    { name: 'missing PPS count', bytes: hex('01 640016 ff e1 0004 67640016') },
    { name: 'truncated PPS', bytes: hex('01 640016 ff e1 0004 67640016 01 0009 68ee') },
  ];
  for (const m of malformed) it(`rejects ${m.name}`, () => assert.throws(() => parseAvcConfig(m.bytes), ParseError));

  it('serializing without an SPS is an error', () => assert.throws(() => serializeAvcConfig([], [hex('68ee')]), ParseError));

  it('random bytes: only StreamgateError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 63 }).map((b) => Uint8Array.of(1, ...b))), (b) => {
        try {
          const c = parseAvcConfig(b);
          for (const s of [...c.sps, ...c.pps]) assert.ok(s.length > 0);
        } catch (e) {
          if (!isStreamgate(e)) throw e;
        }
      }),
      { numRuns: 2000, interruptAfterTimeLimit: 5000 },
    );
  });
});

describe('h264CodecString', () => {
  it('is profile, constraint flags and level in hex', () => {
    assert.equal(h264CodecString(hex('6742c01f')), 'avc1.42c01f');
  });
  it('rejects an SPS shorter than 4 bytes', () => assert.throws(() => h264CodecString(hex('6742')), ParseError));
});
