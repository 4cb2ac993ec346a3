import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AUDIO_PID,
  PMT_PID,
  TS_PACKET_SIZE,
  TS_TIMESTAMP_OFFSET,
  TsMuxer,
  VIDEO_PID,
  crc32Mpeg2,
  type TsFrame,
} from '../../../src/media/mux/mpegts.js';
import { audio44k, video30 } from '../../fixtures/hls/media.js';
import { hasCommand, run } from '../../helpers/media-tools.js';

interface TsPacket {
  pid: number;
  pusi: boolean;
  cc: number;
  hasPayload: boolean;
  af?: { length: number; randomAccess: boolean; pcr?: number };
  payload: Uint8Array;
}

/** Parses whole 188-byte packets (ISO/IEC 13818-1 2.4.3.2), checking the sync byte of each. */
function packets(ts: Uint8Array): TsPacket[] {
  assert.equal(ts.length % TS_PACKET_SIZE, 0);
  const out: TsPacket[] = [];
  for (let o = 0; o < ts.length; o += TS_PACKET_SIZE) {
    const p = ts.subarray(o, o + TS_PACKET_SIZE);
    assert.equal(p[0], 0x47, `sync byte of packet ${o / TS_PACKET_SIZE}`);
    const afc = (p[3]! >> 4) & 3;
    let pos = 4;
    const pkt: TsPacket = { pid: ((p[1]! & 0x1f) << 8) | p[2]!, pusi: (p[1]! & 0x40) !== 0, cc: p[3]! & 0x0f, hasPayload: (afc & 1) !== 0, payload: new Uint8Array() };
    if (afc & 2) {
      const len = p[4]!;
      const af: TsPacket['af'] = { length: len, randomAccess: len > 0 && (p[5]! & 0x40) !== 0 };
      if (len > 0 && p[5]! & 0x10) af.pcr = p[6]! * 2 ** 25 + p[7]! * 2 ** 17 + p[8]! * 2 ** 9 + p[9]! * 2 + (p[10]! >> 7);
      pkt.af = af;
      pos = 5 + len;
    }
    pkt.payload = p.subarray(pos);
    out.push(pkt);
  }
  return out;
}

/** The fixtures as interleaved TS frames (audio converted to 90 kHz), in dts order. */
function fixtureFrames(): TsFrame[] {
  const v = video30();
  const a = audio44k();
  const frames: TsFrame[] = v.aus.map((au) => ({ kind: 'video', dts: au.dts, pts: au.pts, keyframe: au.keyframe, units: au.units }));
  a.frames.forEach((f, i) => {
    const t = Math.round((i * 1024 * 90000) / 44100);
    frames.push({ kind: 'audio', dts: t, pts: t, keyframe: true, units: [f] });
  });
  return frames.sort((x, y) => x.dts - y.dts);
}

describe('TsMuxer', () => {
  const v = video30();
  const a = audio44k();

  it('CRC-32/MPEG-2 matches the standard check value', () => {
    assert.equal(crc32Mpeg2(new TextEncoder().encode('123456789')), 0x0376e6e7);
  });

  it('writes PAT and PMT with valid CRCs, pointing at the video and audio PIDs', () => {
    const mux = new TsMuxer({ video: { sps: v.sps, pps: v.pps }, audio: { config: a.config } });
    const pk = packets(mux.mux([], true));
    assert.equal(pk.length, 2);
    const [pat, pmt] = pk as [TsPacket, TsPacket];
    assert.equal(pat.pid, 0);
    assert.ok(pat.pusi);
    const patSec = pat.payload.subarray(1, 1 + 3 + ((pat.payload[2]! & 0x0f) << 8 | pat.payload[3]!));
    assert.equal(crc32Mpeg2(patSec), 0, 'a section including its CRC has a zero remainder');
    assert.equal(((patSec[10]! & 0x1f) << 8) | patSec[11]!, PMT_PID);
    assert.equal(pmt.pid, PMT_PID);
    const pmtSec = pmt.payload.subarray(1, 1 + 3 + ((pmt.payload[2]! & 0x0f) << 8 | pmt.payload[3]!));
    assert.equal(crc32Mpeg2(pmtSec), 0);
    assert.equal(((pmtSec[8]! & 0x1f) << 8) | pmtSec[9]!, VIDEO_PID); // PCR_PID
    assert.deepEqual([pmtSec[12], ((pmtSec[13]! & 0x1f) << 8) | pmtSec[14]!], [0x1b, VIDEO_PID]);
    assert.deepEqual([pmtSec[17], ((pmtSec[18]! & 0x1f) << 8) | pmtSec[19]!], [0x0f, AUDIO_PID]);
  });

  it('packetizes PES with continuous counters across calls, PCR and random access on keyframes', () => {
    const mux = new TsMuxer({ video: { sps: v.sps, pps: v.pps }, audio: { config: a.config } });
    const frames = fixtureFrames();
    const half = Math.floor(frames.length / 2);
    const ts = [mux.mux(frames.slice(0, half), true), mux.mux(frames.slice(half), true)];
    const pk = ts.flatMap(packets);
    const last = new Map<number, number>();
    for (const p of pk) {
      const prev = last.get(p.pid);
      if (prev !== undefined) assert.equal(p.cc, (prev + 1) & 15, `continuity on PID ${p.pid}`);
      last.set(p.pid, p.cc);
    }
    const videoStarts = pk.filter((p) => p.pid === VIDEO_PID && p.pusi);
    assert.equal(videoStarts.length, v.aus.length);
    videoStarts.forEach((p, i) => {
      const au = v.aus[i]!;
      assert.equal(p.af?.randomAccess ?? false, au.keyframe, `random_access_indicator of AU ${i}`);
      assert.ok(p.af?.pcr !== undefined, 'PCR on every video PES');
      assert.ok(p.af!.pcr! <= au.dts + TS_TIMESTAMP_OFFSET, 'PCR before DTS');
      // PES header, then an AUD, then (keyframes) SPS/PPS
      assert.deepEqual([...p.payload.subarray(0, 4)], [0, 0, 1, 0xe0]);
      const es = p.payload.subarray(9 + p.payload[8]!);
      assert.deepEqual([...es.subarray(0, 6)], [0, 0, 0, 1, 0x09, 0xf0]);
    });
    assert.equal(pk.filter((p) => p.pid === AUDIO_PID && p.pusi).length, a.frames.length);
    // PES packets of one PID never straddle: stuffing fills the last packet of each
    assert.ok(pk.some((p) => p.af !== undefined && !p.af.randomAccess && p.af.pcr === undefined), 'stuffing packets exist');
  });

  it('puts the PCR on the audio PID of an audio-only stream', () => {
    const mux = new TsMuxer({ audio: { config: a.config } });
    assert.equal(mux.pcrPid, AUDIO_PID);
    const pk = packets(mux.mux([{ kind: 'audio', dts: 0, pts: 0, keyframe: true, units: [a.frames[0]!] }], true));
    assert.ok(pk[2]!.af?.pcr !== undefined);
  });

  it('writes HE-AAC (explicit SBR) as its AAC-LC core in ADTS', () => {
    // audioObjectType 5, core 22.05 kHz stereo, extension 44.1 kHz, core AAC-LC
    const mux = new TsMuxer({ audio: { config: Uint8Array.of(0x2b, 0x92, 0x08, 0x00) } });
    const pk = packets(mux.mux([{ kind: 'audio', dts: 0, pts: 0, keyframe: true, units: [Uint8Array.of(1, 2, 3)] }], false));
    const pes = pk[0]!.payload;
    const adts = pes.subarray(9 + pes[8]!);
    assert.equal(adts[2]! >> 6, 1); // profile_ObjectType = 2 - 1 (LC)
    assert.equal((adts[2]! >> 2) & 0x0f, 7); // sampling_frequency_index: 22050, the core rate
  });

  it('property: any frame sizes give whole packets whose PES payloads reassemble to the input', () => {
    const frameArb = fc.record({
      kind: fc.constantFrom<'video' | 'audio'>('video', 'audio'),
      size: fc.integer({ min: 1, max: 1200 }),
      keyframe: fc.boolean(),
      cts: fc.integer({ min: 0, max: 9000 }),
    });
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 12 }), fc.boolean(), (specs, withTables) => {
        const mux = new TsMuxer({ video: { sps: v.sps, pps: v.pps }, audio: { config: a.config } });
        const frames: TsFrame[] = specs.map((f, i) => {
          const body = new Uint8Array(f.size).fill(i + 1);
          if (f.kind === 'video') body[0] = 0x41; // a non-IDR slice header byte
          return { kind: f.kind, dts: i * 3000, pts: i * 3000 + (f.kind === 'video' ? f.cts : 0), keyframe: f.keyframe, units: [body] };
        });
        const pk = packets(mux.mux(frames, withTables));
        const pes = new Map<number, Uint8Array[][]>();
        for (const p of pk) {
          if (p.pid !== VIDEO_PID && p.pid !== AUDIO_PID) continue;
          const list = pes.get(p.pid) ?? [];
          if (p.pusi) list.push([]);
          list[list.length - 1]!.push(p.payload);
          pes.set(p.pid, list);
        }
        const cursors = new Map<number, number>();
        for (const f of frames) {
          const pid = f.kind === 'video' ? VIDEO_PID : AUDIO_PID;
          const n = cursors.get(pid) ?? 0;
          cursors.set(pid, n + 1);
          const bytes = Buffer.concat(pes.get(pid)![n]!);
          const unit = f.units[0]!;
          // the frame's bytes end the PES exactly: stuffing never leaks into the payload
          assert.deepEqual(new Uint8Array(bytes.subarray(bytes.length - unit.length)), unit);
          if (f.kind === 'audio') assert.equal(bytes.readUInt16BE(4), bytes.length - 6, 'PES_packet_length');
        }
      }),
      { numRuns: 150 },
    );
  });

  it('refuses no tracks, and AAC that ADTS cannot carry', () => {
    assert.throws(() => new TsMuxer({}), { code: 'SG_UNSUPPORTED' });
    // AAC-LD (audioObjectType 23), 48 kHz mono
    assert.throws(() => new TsMuxer({ audio: { config: Uint8Array.of(0xb9, 0x88) } }), { code: 'SG_UNSUPPORTED' });
  });
});

describe('MPEG-TS read back by ffprobe', { skip: !hasCommand('ffprobe') && 'ffprobe not installed' }, () => {
  it('two segments concatenated: H.264 + AAC streams, every frame, no errors', async () => {
    const v = video30();
    const a = audio44k();
    const mux = new TsMuxer({ video: { sps: v.sps, pps: v.pps }, audio: { config: a.config } });
    const frames = fixtureFrames();
    const cut = frames.findIndex((f, i) => i > 0 && f.kind === 'video' && f.keyframe);
    const bytes = [mux.mux(frames.slice(0, cut), true), mux.mux(frames.slice(cut), true)];
    const dir = mkdtempSync(join(tmpdir(), 'sg-ts-'));
    try {
      const file = join(dir, 'out.ts');
      writeFileSync(file, Buffer.concat(bytes));
      const r = await run('ffprobe', ['-v', 'error', '-count_frames', '-show_streams', '-show_format', '-of', 'json', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      const out = JSON.parse(r.stdout) as {
        streams: { codec_name: string; width?: number; height?: number; nb_read_frames: string; sample_rate?: string }[];
        format: { format_name: string; duration: string };
      };
      assert.equal(out.format.format_name, 'mpegts');
      const vs = out.streams.find((s) => s.codec_name === 'h264');
      const as = out.streams.find((s) => s.codec_name === 'aac');
      assert.equal(vs?.width, 320);
      assert.equal(vs?.height, 240);
      assert.equal(Number(vs?.nb_read_frames), v.aus.length);
      assert.equal(as?.sample_rate, '44100');
      assert.equal(Number(as?.nb_read_frames), a.frames.length);
      assert.ok(Math.abs(Number(out.format.duration) - 2) < 0.1, `duration ${out.format.duration}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
