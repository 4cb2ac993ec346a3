import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { LimitError, StreamgateError } from '../../../src/errors.js';
import { h264CodecString, nalType, splitAnnexB } from '../../../src/media/codecs/h264.js';
import { parseSps, removeEmulationPrevention, type Sps } from '../../../src/media/codecs/h264-sps.js';

const FIXTURES = new URL('../../../../test/fixtures/h264/', import.meta.url);

/** The first SPS NAL unit of an Annex-B fixture. */
function fixtureSps(name: string): Uint8Array {
  const nal = splitAnnexB(new Uint8Array(readFileSync(new URL(`${name}.h264`, FIXTURES)))).find((n) => nalType(n) === 7);
  assert.ok(nal, `${name} has an SPS`);
  return nal;
}

/** ffmpeg's trace_headers view of the same SPS (`name=value` lines, see the fixtures README). */
function fixtureTrace(name: string): [string, number][] {
  return readFileSync(new URL(`${name}.sps.txt`, FIXTURES), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const [k, v] = l.split('=');
      return [k as string, Number(v)];
    });
}

const camel = (s: string): string => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const RENAMED: Record<string, string> = { gapsInFrameNumAllowedFlag: 'gapsInFrameNumValueAllowedFlag' };

/** Compares every trace field that has a same-named field in our result; returns how many matched. */
function compareWithTrace(sps: Sps, trace: [string, number][]): number {
  let checked = 0;
  const num = (v: unknown): unknown => (typeof v === 'boolean' ? Number(v) : v);
  for (const [name, want] of trace) {
    const m = /^(\w+?)(?:\[(\d+)\])?$/.exec(name);
    if (!m) continue;
    const base = m[1] as string;
    const index = m[2] === undefined ? undefined : Number(m[2]);
    const cs = /^constraint_set(\d)_flag$/.exec(base);
    if (cs) {
      assert.equal((sps.constraintSetFlags >> (7 - Number(cs[1]))) & 1, want, name);
      checked++;
      continue;
    }
    const key = RENAMED[camel(base)] ?? camel(base);
    const holders: object[] = [sps, sps.vui ?? {}, sps.vui?.nalHrd ?? {}];
    const holder = holders.find((h) => key in h) as Record<string, unknown> | undefined;
    if (holder === undefined || base === 'delta_scale') continue;
    const got = holder[key];
    assert.equal(num(index === undefined ? got : (got as unknown[])[index]), want, name);
    checked++;
  }
  return checked;
}

interface Case {
  name: string;
  file: string;
  want: Partial<Sps> & { codec: string };
}

const cases: Case[] = [
  {
    name: 'ffmpeg-libx264 1280x720 high',
    file: 'libx264-1280x720-high',
    want: { codec: 'avc1.64001f', profileIdc: 100, levelIdc: 31, width: 1280, height: 720, fps: 30, chromaFormatIdc: 1 },
  },
  {
    name: 'ffmpeg-libx264 320x240 baseline (constrained, poc type 2)',
    file: 'libx264-320x240-baseline',
    want: { codec: 'avc1.42c00d', profileIdc: 66, constraintSetFlags: 0xc0, width: 320, height: 240, fps: 25, picOrderCntType: 2 },
  },
  {
    name: 'ffmpeg-libx264 1920x1080 main (1088 cropped to 1080, 30000/1001)',
    file: 'libx264-1920x1080-main',
    want: { codec: 'avc1.4d4028', profileIdc: 77, width: 1920, height: 1080, fps: 30000 / 1001, frameCropBottomOffset: 4 },
  },
  {
    name: 'ffmpeg-libx264 1366x768 high (odd width cropped from 1376)',
    file: 'libx264-1366x768-high',
    want: { codec: 'avc1.64002a', width: 1366, height: 768, fps: 60, frameCropRightOffset: 5 },
  },
  {
    name: 'ffmpeg-libx264 720x576 interlaced (frame_mbs_only 0, MBAFF)',
    file: 'libx264-720x576-interlaced',
    want: { codec: 'avc1.64001e', width: 720, height: 576, fps: 25, frameMbsOnlyFlag: false, mbAdaptiveFrameFieldFlag: true },
  },
  {
    name: 'ffmpeg-libx264 640x360 high444 (chroma_format_idc 3)',
    file: 'libx264-640x360-high444',
    want: { codec: 'avc1.f4001e', profileIdc: 244, chromaFormatIdc: 3, width: 640, height: 360, fps: 24 },
  },
  {
    name: 'ffmpeg-libx264 176x144 high422 (chroma_format_idc 2)',
    file: 'libx264-176x144-high422',
    want: { codec: 'avc1.7a000a', profileIdc: 122, chromaFormatIdc: 2, width: 176, height: 144, fps: 10 },
  },
  {
    name: 'ffmpeg-libx264 854x480 high10 (10-bit, odd width)',
    file: 'libx264-854x480-high10',
    want: { codec: 'avc1.6e001e', profileIdc: 110, bitDepthLumaMinus8: 2, bitDepthChromaMinus8: 2, width: 854, height: 480, fps: 15 },
  },
  {
    name: 'ffmpeg-libx264 640x360 nal-hrd + full VUI (SAR 7:5, bt709, full range, chroma loc)',
    file: 'libx264-640x360-hrd-vui',
    want: { codec: 'avc1.64001f', width: 640, height: 360, fps: 50 },
  },
  {
    name: 'handmade 352x288 (seq scaling lists, poc type 1, sps id 1; checked by ffmpeg trace_headers)',
    file: 'handmade-352x288-scaling-lists-poc1',
    want: { codec: 'avc1.64001e', seqParameterSetId: 1, width: 352, height: 288, picOrderCntType: 1, offsetForRefFrame: [2, -3] },
  },
];

describe('parseSps', () => {
  for (const c of cases) {
    it(c.name, () => {
      const nal = fixtureSps(c.file);
      const sps = parseSps(nal);
      const { codec, ...fields } = c.want;
      assert.equal(h264CodecString(nal), codec);
      for (const [k, v] of Object.entries(fields)) assert.deepEqual(sps[k as keyof Sps], v, k);
      const checked = compareWithTrace(sps, fixtureTrace(c.file));
      assert.ok(checked >= 20, `only ${checked} fields compared with ffmpeg`);
    });
  }

  it('decodes the VUI groups x264 writes with nal-hrd', () => {
    const { vui } = parseSps(fixtureSps('libx264-640x360-hrd-vui'));
    assert.ok(vui);
    assert.equal(vui.aspectRatioIdc, 255);
    assert.deepEqual([vui.sarWidth, vui.sarHeight], [7, 5]);
    assert.equal(vui.videoFullRangeFlag, true);
    assert.deepEqual([vui.colourPrimaries, vui.transferCharacteristics, vui.matrixCoefficients], [1, 1, 1]);
    assert.equal(vui.nalHrd?.cpbCntMinus1, 0);
    assert.equal(vui.vclHrd, undefined);
    assert.equal(vui.picStructPresentFlag, true);
  });

  it('decodes scaling lists, default-matrix signaling and fall-back (absent) lists', () => {
    const sps = parseSps(fixtureSps('handmade-352x288-scaling-lists-poc1'));
    assert.deepEqual(sps.seqScalingListPresentFlag, [true, false, true, false, false, false, true, false]);
    // deltas -2, 1, 1, 1 then zeros: 6, 7, 8, 9, 9, ...
    assert.deepEqual(sps.scalingLists[0], [6, 7, 8, ...Array<number>(13).fill(9)]);
    assert.deepEqual(sps.useDefaultScalingMatrixFlag[2], true);
    assert.deepEqual(sps.scalingLists[2], []);
    // delta 8 -> 16, then delta -16 -> nextScale 0: the rest repeats 16
    assert.deepEqual(sps.scalingLists[6], Array<number>(64).fill(16));
    assert.equal(sps.vui, undefined);
    assert.equal(sps.fps, undefined);
  });

  it('a truncated VUI leaves vui/fps undefined but keeps the size', () => {
    const nal = fixtureSps('libx264-1280x720-high');
    // cut inside the bitstream_restriction group (the last bytes of the SPS)
    const sps = parseSps(nal.subarray(0, nal.length - 2));
    assert.equal(sps.vui, undefined);
    assert.equal(sps.fps, undefined);
    assert.deepEqual([sps.width, sps.height], [1280, 720]);
  });

  const malformed: { name: string; bytes: Uint8Array; code: string }[] = [
    { name: 'zero-length', bytes: new Uint8Array(0), code: 'SG_PARSE' },
    { name: 'header only', bytes: Uint8Array.of(0x67), code: 'SG_PARSE' },
    { name: 'a PPS, not an SPS', bytes: Uint8Array.of(0x68, 0xce, 0x3c, 0x80), code: 'SG_PARSE' },
    { name: 'forbidden_zero_bit set', bytes: Uint8Array.of(0xe7, 0x42, 0xc0, 0x0d, 0xda), code: 'SG_PARSE' },
    // profile 66, level 13, then ue(v) with more than 31 leading zeros
    { name: 'exp-Golomb overflow in seq_parameter_set_id', bytes: Uint8Array.of(0x67, 0x42, 0, 13, 0, 0, 0, 0, 0x80), code: 'SG_PARSE' },
    // profile 100, sps id 0 (1), chroma_format_idc = ue 4 (00101)
    { name: 'chroma_format_idc 4', bytes: Uint8Array.of(0x67, 100, 0, 31, 0b10010100, 0xff), code: 'SG_PARSE' },
    { name: 'truncated before the picture size', bytes: fixtureSps('libx264-1280x720-high').subarray(0, 7), code: 'SG_PARSE' },
  ];
  for (const m of malformed) {
    it(`rejects ${m.name}`, () => {
      assert.throws(() => parseSps(m.bytes), (e: unknown) => e instanceof StreamgateError && e.code === m.code);
    });
  }

  it('rejects a picture larger than level 6.2 allows', () => {
    const ue = (v: number): string => {
      const b = (v + 1).toString(2);
      return '0'.repeat(b.length - 1) + b;
    };
    // baseline: sps id, log2_max_frame_num_minus4, poc type 2, 1 ref frame, no gaps, 2048x2048 MBs,
    // frame_mbs_only, direct_8x8, no cropping, no VUI, stop bit
    const bits = ue(0) + ue(0) + ue(2) + ue(1) + '0' + ue(2047) + ue(2047) + '1' + '1' + '0' + '0' + '1';
    const bytes = [0x67, 66, 0, 62];
    const padded = bits + '0'.repeat((8 - (bits.length % 8)) % 8);
    for (let i = 0; i < padded.length; i += 8) bytes.push(parseInt(padded.slice(i, i + 8), 2));
    assert.throws(() => parseSps(Uint8Array.from(bytes)), LimitError);
  });

  it('random bytes and mutated real SPSs throw only StreamgateError', () => {
    const seeds = cases.map((c) => fixtureSps(c.file));
    const mutated = fc
      .tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat())
      .map(([s, edits, cut]) => {
        const b = Uint8Array.from(s);
        for (const [i, v] of edits) b[1 + (i % (b.length - 1))] = v;
        return b.subarray(0, Math.max(1, b.length - (cut % 8)));
      });
    const random = fc.uint8Array({ maxLength: 64 }).map((b) => Uint8Array.of(0x67, ...b));
    fc.assert(
      fc.property(fc.oneof(mutated, random), (b) => {
        try {
          const sps = parseSps(b);
          assert.ok(sps.width > 0 && sps.height > 0);
        } catch (e) {
          if (!(e instanceof StreamgateError)) throw e;
        }
      }),
      { numRuns: 3000, interruptAfterTimeLimit: 5000 },
    );
  });
});

describe('removeEmulationPrevention', () => {
  it('returns the same array when there is nothing to remove', () => {
    const nal = Uint8Array.of(0x67, 0x42, 0, 1, 0, 0, 4);
    assert.equal(removeEmulationPrevention(nal), nal);
  });
  it('removes every 00 00 03, including one at the end and back-to-back ones', () => {
    const nal = Uint8Array.of(1, 0, 0, 3, 0, 0, 3, 1, 0, 0, 3);
    assert.deepEqual(removeEmulationPrevention(nal), Uint8Array.of(1, 0, 0, 0, 0, 1, 0, 0));
  });
  it('does not treat the 03 after a removed 03 as a new sequence', () => {
    // 00 00 03 03: the second 03 is data
    assert.deepEqual(removeEmulationPrevention(Uint8Array.of(0, 0, 3, 3)), Uint8Array.of(0, 0, 3));
  });
  it('real x264 SPS: 1280x720 has 00 00 03 sequences', () => {
    const nal = fixtureSps('libx264-1280x720-high');
    const rbsp = removeEmulationPrevention(nal);
    assert.ok(rbsp.length < nal.length);
    assert.notEqual(rbsp, nal);
  });
  it('undoes emulation prevention added to random payloads', () => {
    // the encoder rule of 7.4.1: 03 goes after 00 00 when the next byte is 00..03
    const add = (b: Uint8Array): Uint8Array => {
      const out: number[] = [];
      let zeros = 0;
      for (const x of b) {
        if (zeros >= 2 && x <= 3) {
          out.push(3);
          zeros = 0;
        }
        out.push(x);
        zeros = x === 0 ? zeros + 1 : 0;
      }
      return Uint8Array.from(out);
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        assert.deepEqual(removeEmulationPrevention(add(b)), b);
      }),
      { numRuns: 1000 },
    );
  });
});
