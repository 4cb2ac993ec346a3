import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serializeAvcConfig } from '../../../src/media/codecs/h264.js';
import {
  OPUS_DEFAULT_PRE_SKIP,
  SAMPLE_FLAGS_NON_SYNC,
  SAMPLE_FLAGS_SYNC,
  fragment,
  fragmentSize,
  initSegment,
  type Fmp4FragmentTrack,
  type Fmp4Sample,
  type Fmp4Track,
} from '../../../src/media/mux/fmp4.js';
import { audio44k, video25BFrames, video30, type FixtureVideo } from '../../fixtures/hls/media.js';
import { hasCommand, run } from '../../helpers/media-tools.js';

// ---- a minimal ISOBMFF reader, independent of the muxer ----

interface Box {
  type: string;
  start: number;
  end: number;
  /** first byte after the 8-byte header */
  body: number;
}

function boxes(buf: Uint8Array, start = 0, end = buf.length): Box[] {
  const out: Box[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = start;
  while (pos + 8 <= end) {
    const size = dv.getUint32(pos);
    assert.ok(size >= 8 && pos + size <= end, `box at ${pos} has size ${size} (end ${end})`);
    out.push({ type: String.fromCharCode(...buf.subarray(pos + 4, pos + 8)), start: pos, end: pos + size, body: pos + 8 });
    pos += size;
  }
  assert.equal(pos, end, 'boxes fill their parent exactly');
  return out;
}

/** Children of a container box; `skip` bytes of fields come before the children (sample entries, stsd). */
function children(buf: Uint8Array, b: Box, skip = 0): Box[] {
  return boxes(buf, b.body + skip, b.end);
}

function child(buf: Uint8Array, b: Box, type: string, skip = 0): Box {
  const found = children(buf, b, skip).filter((c) => c.type === type);
  assert.equal(found.length, 1, `one ${type} in ${b.type}`);
  return found[0]!;
}

function path(buf: Uint8Array, root: Box, ...types: string[]): Box {
  let b = root;
  for (const t of types) b = child(buf, b, t);
  return b;
}

const u8 = (buf: Uint8Array, o: number): number => buf[o]!;
const u16 = (buf: Uint8Array, o: number): number => new DataView(buf.buffer, buf.byteOffset).getUint16(o);
const u32 = (buf: Uint8Array, o: number): number => new DataView(buf.buffer, buf.byteOffset).getUint32(o);
const i32 = (buf: Uint8Array, o: number): number => new DataView(buf.buffer, buf.byteOffset).getInt32(o);
const u64 = (buf: Uint8Array, o: number): number => u32(buf, o) * 2 ** 32 + u32(buf, o + 4);
const fourcc = (buf: Uint8Array, o: number): string => String.fromCharCode(...buf.subarray(o, o + 4));

// ---- inputs ----

function videoTrack(v: FixtureVideo, id = 1): Fmp4Track {
  return { kind: 'video', codec: 'h264', id, timescale: 90000, width: 320, height: 240, sps: v.sps, pps: v.pps };
}

/** Fragments of `count` AUs each from a fixture (sample duration = next dts − dts; the last one repeats). */
function videoRuns(v: FixtureVideo, perFragment: number, trackId = 1): Fmp4FragmentTrack[] {
  const runs: Fmp4FragmentTrack[] = [];
  for (let i = 0; i < v.aus.length; i += perFragment) {
    const aus = v.aus.slice(i, i + perFragment);
    runs.push({
      trackId,
      baseMediaDecodeTime: aus[0]!.dts,
      lengthPrefixed: true,
      samples: aus.map((au, j) => {
        const next = v.aus[i + j + 1];
        const prev = v.aus[i + j - 1];
        const duration = next ? next.dts - au.dts : au.dts - (prev?.dts ?? 0);
        return {
          duration,
          flags: au.keyframe ? SAMPLE_FLAGS_SYNC : SAMPLE_FLAGS_NON_SYNC,
          compositionOffset: au.pts - au.dts,
          // AUDs are framing, not sample data
          units: au.units.filter((u) => (u[0]! & 0x1f) !== 9),
        };
      }),
    });
  }
  return runs;
}

describe('initSegment', () => {
  const v = video30();
  const a = audio44k();
  const tracks: Fmp4Track[] = [
    videoTrack(v),
    { kind: 'audio', codec: 'aac', id: 2, timescale: 44100, sampleRate: 44100, channels: 1, config: a.config },
  ];
  const init = initSegment(tracks);
  const top = boxes(init);

  it('is ftyp + moov', () => {
    assert.deepEqual(top.map((b) => b.type), ['ftyp', 'moov']);
    const ftyp = top[0]!;
    assert.equal(fourcc(init, ftyp.body), 'iso5'); // major_brand
    assert.equal(u32(init, ftyp.body + 4), 512); // minor_version
    const brands = [];
    for (let o = ftyp.body + 8; o < ftyp.end; o += 4) brands.push(fourcc(init, o));
    assert.deepEqual(brands, ['iso5', 'iso6', 'mp41']);
  });

  const moov = top[1]!;
  it('has mvhd, one trak per track, mvex with a trex each', () => {
    assert.deepEqual(children(init, moov).map((b) => b.type), ['mvhd', 'trak', 'trak', 'mvex']);
    const mvhd = child(init, moov, 'mvhd');
    assert.equal(u8(init, mvhd.body), 0); // version
    assert.equal(u32(init, mvhd.body + 12), 1000); // timescale
    assert.equal(u32(init, mvhd.body + 16), 0); // duration: live
    assert.equal(u32(init, mvhd.body + 20), 0x00010000); // rate
    assert.equal(u32(init, mvhd.end - 4), 3); // next_track_ID
    const mvex = child(init, moov, 'mvex');
    const trex = children(init, mvex);
    assert.deepEqual(trex.map((b) => b.type), ['trex', 'trex']);
    assert.deepEqual(trex.map((b) => u32(init, b.body + 4)), [1, 2]); // track_ID
    assert.deepEqual(trex.map((b) => u32(init, b.body + 8)), [1, 1]); // default_sample_description_index
  });

  const [vtrak, atrak] = children(init, moov).filter((b) => b.type === 'trak') as [Box, Box];
  it('video trak: tkhd, mdhd 90 kHz, vide handler, vmhd, avc1 + avcC from the SPS/PPS', () => {
    const tkhd = child(init, vtrak, 'tkhd');
    assert.equal(u32(init, tkhd.body) & 0xffffff, 3); // flags: enabled | in movie
    assert.equal(u32(init, tkhd.body + 12), 1); // track_ID
    assert.equal(u16(init, tkhd.body + 36), 0); // volume
    assert.equal(u32(init, tkhd.end - 8), 320 * 65536); // width 16.16
    assert.equal(u32(init, tkhd.end - 4), 240 * 65536);
    const mdhd = path(init, vtrak, 'mdia', 'mdhd');
    assert.equal(u32(init, mdhd.body + 12), 90000); // timescale
    assert.equal(u16(init, mdhd.body + 20), 0x55c4); // 'und'
    const hdlr = path(init, vtrak, 'mdia', 'hdlr');
    assert.equal(fourcc(init, hdlr.body + 8), 'vide');
    const minf = path(init, vtrak, 'mdia', 'minf');
    assert.deepEqual(children(init, minf).map((b) => b.type), ['vmhd', 'dinf', 'stbl']);
    const stbl = child(init, minf, 'stbl');
    assert.deepEqual(children(init, stbl).map((b) => b.type), ['stsd', 'stts', 'stsc', 'stco', 'stsz']);
    const stsd = child(init, stbl, 'stsd');
    assert.equal(u32(init, stsd.body + 4), 1); // entry_count
    const avc1 = child(init, stsd, 'avc1', 8);
    assert.equal(u16(init, avc1.body + 6), 1); // data_reference_index
    assert.equal(u16(init, avc1.body + 24), 320); // width
    assert.equal(u16(init, avc1.body + 26), 240); // height
    assert.equal(u16(init, avc1.body + 40), 1); // frame_count
    const avcC = child(init, avc1, 'avcC', 78);
    assert.deepEqual(init.subarray(avcC.body, avcC.end), serializeAvcConfig([v.sps], [v.pps]));
  });

  it('audio trak: mdhd at the sample rate, soun handler, smhd, mp4a + esds with the AudioSpecificConfig', () => {
    const tkhd = child(init, atrak, 'tkhd');
    assert.equal(u32(init, tkhd.body + 12), 2);
    assert.equal(u16(init, tkhd.body + 36), 0x0100); // volume 1.0
    assert.equal(u32(init, path(init, atrak, 'mdia', 'mdhd').body + 12), 44100);
    assert.equal(fourcc(init, path(init, atrak, 'mdia', 'hdlr').body + 8), 'soun');
    const minf = path(init, atrak, 'mdia', 'minf');
    assert.deepEqual(children(init, minf).map((b) => b.type), ['smhd', 'dinf', 'stbl']);
    const stsd = path(init, atrak, 'mdia', 'minf', 'stbl', 'stsd');
    const mp4a = child(init, stsd, 'mp4a', 8);
    assert.equal(u16(init, mp4a.body + 16), 1); // channelcount
    assert.equal(u16(init, mp4a.body + 18), 16); // samplesize
    assert.equal(u32(init, mp4a.body + 24), 44100 * 65536); // samplerate 16.16
    const esds = child(init, mp4a, 'esds', 28);
    const d = esds.body + 4;
    assert.equal(u8(init, d), 0x03); // ES_Descriptor
    assert.equal(u8(init, d + 8), 0x04); // DecoderConfigDescriptor
    assert.equal(u8(init, d + 13), 0x40); // objectTypeIndication: MPEG-4 audio
    assert.equal(u8(init, d + 14), 0x15); // streamType audio
    assert.equal(u8(init, d + 26), 0x05); // DecoderSpecificInfo
    assert.equal(u8(init, d + 30), a.config.length);
    assert.deepEqual(init.subarray(d + 31, d + 31 + a.config.length), a.config);
    assert.equal(u8(init, d + 31 + a.config.length), 0x06); // SLConfigDescriptor
  });

  it('Opus: Opus sample entry with dOps; more than 2 channels is refused', () => {
    const opus = initSegment([{ kind: 'audio', codec: 'opus', id: 1, timescale: 48000, channels: 2, preSkip: 312 }]);
    const stsd = path(opus, boxes(opus)[1]!, 'trak', 'mdia', 'minf', 'stbl', 'stsd');
    const entry = child(opus, stsd, 'Opus', 8);
    const dops = child(opus, entry, 'dOps', 28);
    assert.deepEqual([...opus.subarray(dops.body, dops.end)], [0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]);
    assert.throws(() => initSegment([{ kind: 'audio', codec: 'opus', id: 1, timescale: 48000, channels: 6 }]), { code: 'SG_UNSUPPORTED' });
  });

  it('Opus from RTP (no pre-skip known): dOps field by field per Opus-in-ISOBMFF 4.3.2, sample entry per 4.3.1', () => {
    const init = initSegment([{ kind: 'audio', codec: 'opus', id: 2, timescale: 48000, channels: 1 }]);
    const stsd = path(init, boxes(init)[1]!, 'trak', 'mdia', 'minf', 'stbl', 'stsd');
    const entry = child(init, stsd, 'Opus', 8);
    const dv = new DataView(init.buffer, init.byteOffset, init.byteLength);
    assert.equal(dv.getUint16(entry.body + 16), 1, 'channelcount = OutputChannelCount');
    assert.equal(dv.getUint16(entry.body + 18), 16, 'samplesize 16');
    assert.equal(dv.getUint32(entry.body + 24), 48000 * 0x10000, 'samplerate 48000 << 16');
    const dops = child(init, entry, 'dOps', 28);
    const bytes = [...init.subarray(dops.body, dops.end)];
    assert.deepEqual(bytes, [
      0x00, // Version 0
      0x01, // OutputChannelCount
      0x01, 0x38, // PreSkip 312 (OPUS_DEFAULT_PRE_SKIP, big-endian)
      0x00, 0x00, 0xbb, 0x80, // InputSampleRate 48000
      0x00, 0x00, // OutputGain 0 dB (8.8)
      0x00, // ChannelMappingFamily 0: no mapping table follows
    ]);
    assert.equal(OPUS_DEFAULT_PRE_SKIP, 312);
  });
});

describe('fragment', () => {
  const nalA = Uint8Array.of(0x65, 1, 2, 3); // IDR slice
  const nalB = Uint8Array.of(0x06, 9); // SEI
  const nalC = Uint8Array.of(0x41, 7, 7); // non-IDR slice
  const aac = Uint8Array.of(0x21, 0x10, 0x04);
  const video: Fmp4FragmentTrack = {
    trackId: 1,
    baseMediaDecodeTime: 2 ** 32 + 5, // needs the 64-bit tfdt
    lengthPrefixed: true,
    samples: [
      { duration: 3000, flags: SAMPLE_FLAGS_SYNC, compositionOffset: 6000, units: [nalB, nalA] },
      { duration: 3003, flags: SAMPLE_FLAGS_NON_SYNC, compositionOffset: -3000, units: [nalC] },
    ],
  };
  const audio: Fmp4FragmentTrack = {
    trackId: 2,
    baseMediaDecodeTime: 1024,
    lengthPrefixed: false,
    samples: [{ duration: 1024, flags: SAMPLE_FLAGS_SYNC, compositionOffset: 0, units: [aac] }],
  };
  const frag = fragment({ sequenceNumber: 7, tracks: [video, { ...audio, samples: [] }, audio] });

  it('is moof + mdat of exactly fragmentSize() bytes', () => {
    assert.deepEqual(boxes(frag).map((b) => b.type), ['moof', 'mdat']);
    assert.equal(frag.length, fragmentSize({ sequenceNumber: 7, tracks: [video, audio] }));
  });

  const [moof, mdat] = boxes(frag) as [Box, Box];
  it('mfhd carries the sequence number; one traf per track with samples', () => {
    const kids = children(frag, moof);
    assert.deepEqual(kids.map((b) => b.type), ['mfhd', 'traf', 'traf']);
    assert.equal(u32(frag, kids[0]!.body + 4), 7);
  });

  it('traf: tfhd default-base-is-moof, tfdt version 1, trun version 1 with per-sample fields', () => {
    const [vtraf, atraf] = children(frag, moof).slice(1) as [Box, Box];
    const tfhd = child(frag, vtraf, 'tfhd');
    assert.equal(u32(frag, tfhd.body), 0x00020000); // version 0, default-base-is-moof
    assert.equal(u32(frag, tfhd.body + 4), 1);
    const tfdt = child(frag, vtraf, 'tfdt');
    assert.equal(u8(frag, tfdt.body), 1); // version 1
    assert.equal(u64(frag, tfdt.body + 4), 2 ** 32 + 5);
    const trun = child(frag, vtraf, 'trun');
    assert.equal(u8(frag, trun.body), 1); // version 1: signed composition offsets
    assert.equal(u32(frag, trun.body) & 0xffffff, 0x000f01);
    assert.equal(u32(frag, trun.body + 4), 2); // sample_count
    const dataOffset = i32(frag, trun.body + 8);
    const s0 = trun.body + 12;
    assert.deepEqual([u32(frag, s0), u32(frag, s0 + 4), u32(frag, s0 + 8), i32(frag, s0 + 12)], [3000, 4 + 2 + 4 + 4, 0x02000000, 6000]);
    const s1 = s0 + 16;
    assert.deepEqual([u32(frag, s1), u32(frag, s1 + 4), u32(frag, s1 + 8), i32(frag, s1 + 12)], [3003, 4 + 3, 0x01010000, -3000]);
    // data_offset (from the moof start) points at AVCC data: length-prefixed NAL units
    const data = frag.subarray(moof.start + dataOffset, moof.start + dataOffset + 17);
    assert.deepEqual([...data], [0, 0, 0, 2, 0x06, 9, 0, 0, 0, 4, 0x65, 1, 2, 3, 0, 0, 0]);
    assert.equal(moof.start + dataOffset, mdat.body);

    const atrun = child(frag, atraf, 'trun');
    assert.equal(u32(frag, child(frag, atraf, 'tfhd').body + 4), 2);
    assert.equal(u64(frag, child(frag, atraf, 'tfdt').body + 4), 1024);
    const aOffset = i32(frag, atrun.body + 8);
    assert.deepEqual(frag.subarray(moof.start + aOffset, moof.start + aOffset + 3), aac); // raw, no prefix
    assert.equal(moof.start + aOffset + 3, mdat.end);
  });

  it('refuses a fragment without samples', () => {
    assert.throws(() => fragment({ sequenceNumber: 1, tracks: [{ ...audio, samples: [] }] }), { code: 'SG_UNSUPPORTED' });
  });
});

// ---- independent parsers: mp4frag and ffprobe ----

interface Mp4FragLike {
  write(chunk: Buffer): boolean;
  on(event: 'data', cb: (data: { type: string; mime?: string; duration?: number }) => void): void;
  on(event: 'error', cb: (err: Error) => void): void;
}
const require = createRequire(import.meta.url);
const Mp4Frag = require('mp4frag') as new (opts: { readableObjectMode: boolean }) => Mp4FragLike;

/** Init + one fragment per GOP-ish run of video (and matching audio) from the fixtures. */
function avFile(): { init: Uint8Array; fragments: Uint8Array[]; videoFrames: number; audioFrames: number } {
  const v = video30();
  const a = audio44k();
  const init = initSegment([
    videoTrack(v),
    { kind: 'audio', codec: 'aac', id: 2, timescale: 44100, sampleRate: 44100, channels: 1, config: a.config },
  ]);
  const vRuns = videoRuns(v, 15);
  const fragments = vRuns.map((run, i) => {
    const startS = run.baseMediaDecodeTime / 90000;
    const endS = startS + run.samples.reduce((n, s) => n + s.duration, 0) / 90000;
    const samples: Fmp4Sample[] = [];
    let first = -1;
    a.frames.forEach((f, j) => {
      const t = (j * 1024) / 44100;
      if (t >= startS && (t < endS || i === vRuns.length - 1)) {
        if (first < 0) first = j;
        samples.push({ duration: 1024, flags: SAMPLE_FLAGS_SYNC, compositionOffset: 0, units: [f] });
      }
    });
    const tracks: Fmp4FragmentTrack[] = [run];
    if (samples.length > 0) tracks.push({ trackId: 2, baseMediaDecodeTime: first * 1024, lengthPrefixed: false, samples });
    return fragment({ sequenceNumber: i + 1, tracks });
  });
  return { init, fragments, videoFrames: v.aus.length, audioFrames: a.frames.length };
}

describe('fMP4 read back by mp4frag', () => {
  it('emits the init segment with the codecs and one segment per fragment', async () => {
    const { init, fragments } = avFile();
    const parser = new Mp4Frag({ readableObjectMode: true });
    const got: { type: string; mime?: string; duration?: number }[] = [];
    const errors: Error[] = [];
    parser.on('data', (d) => got.push(d));
    parser.on('error', (e) => errors.push(e));
    parser.write(Buffer.from(init));
    for (const f of fragments) parser.write(Buffer.from(f));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(errors, []);
    assert.equal(got[0]?.type, 'init');
    assert.match(got[0]?.mime ?? '', /^video\/mp4; codecs="avc1\.64000D, mp4a\.40\.2"$/);
    assert.equal(got.filter((d) => d.type === 'segment').length, fragments.length);
    const seg = got.find((d) => d.type === 'segment');
    assert.ok(Math.abs((seg?.duration ?? 0) - 0.5) < 1e-6, `segment duration ${seg?.duration}`);
  });
});

interface ProbeResult {
  streams: { codec_name: string; codec_type: string; width?: number; height?: number; nb_read_frames?: string; sample_rate?: string; channels?: number }[];
  format: { duration?: string };
}

async function probe(bytes: Uint8Array[]): Promise<{ result: ProbeResult; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-fmp4-'));
  try {
    const file = join(dir, 'out.mp4');
    writeFileSync(file, Buffer.concat(bytes));
    const r = await run('ffprobe', ['-v', 'error', '-count_frames', '-show_streams', '-show_format', '-of', 'json', file]);
    assert.equal(r.code, 0, r.stderr);
    return { result: JSON.parse(r.stdout) as ProbeResult, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('fMP4 read back by ffprobe', { skip: !hasCommand('ffprobe') && 'ffprobe not installed' }, () => {
  it('H.264 + AAC: codecs, size, every frame decodes, 2 s long', async () => {
    const { init, fragments, videoFrames, audioFrames } = avFile();
    const { result, stderr } = await probe([init, ...fragments]);
    assert.equal(stderr, '');
    const [vs, as] = result.streams;
    assert.equal(vs?.codec_name, 'h264');
    assert.equal(vs?.width, 320);
    assert.equal(vs?.height, 240);
    assert.equal(Number(vs?.nb_read_frames), videoFrames);
    assert.equal(as?.codec_name, 'aac');
    assert.equal(as?.sample_rate, '44100');
    assert.equal(as?.channels, 1);
    assert.equal(Number(as?.nb_read_frames), audioFrames);
    assert.ok(Math.abs(Number(result.format.duration) - 2) < 0.05, `duration ${result.format.duration}`);
  });

  it('H.264 with B-frames: composition offsets keep every frame decodable', async () => {
    const v = video25BFrames();
    assert.ok(v.aus.some((au, i) => i > 0 && au.pts < v.aus[i - 1]!.pts), 'fixture has reordered frames');
    const init = initSegment([videoTrack(v)]);
    const fragments = videoRuns(v, 10).map((t, i) => fragment({ sequenceNumber: i + 1, tracks: [t] }));
    const { result, stderr } = await probe([init, ...fragments]);
    assert.equal(stderr, '');
    assert.equal(result.streams[0]?.codec_name, 'h264');
    assert.equal(Number(result.streams[0]?.nb_read_frames), v.aus.length);
    assert.ok(Math.abs(Number(result.format.duration) - 2) < 0.1, `duration ${result.format.duration}`);
  });
});
