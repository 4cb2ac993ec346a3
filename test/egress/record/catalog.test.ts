import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  RecordingCatalog,
  parseMoofRuns,
  parseMoovTracks,
  parseRecordingFileName,
  readBoxHeader,
  recordingFileName,
} from '../../../src/egress/record/catalog.js';
import { ParseError } from '../../../src/errors.js';
import { SAMPLE_FLAGS_SYNC, fragment, initSegment } from '../../../src/media/mux/fmp4.js';
import { audio44k, video30 } from '../../fixtures/hls/media.js';
import { hasCommand, run } from '../../helpers/media-tools.js';

const fixture = video30();
const aac = audio44k();
const tmp = mkdtempSync(join(tmpdir(), 'sg-rec-catalog-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const init = initSegment([
  { kind: 'video', codec: 'h264', id: 1, timescale: 90000, width: 320, height: 240, sps: fixture.sps, pps: fixture.pps },
  { kind: 'audio', codec: 'aac', id: 2, timescale: 44100, sampleRate: 44100, channels: 1, config: aac.config },
]);

/** One second of the fixtures as a fragment starting at `second`. */
function oneSecond(second: number, seq: number): Uint8Array {
  const frames = Math.round(44100 / 1024);
  return fragment({
    sequenceNumber: seq,
    tracks: [
      {
        trackId: 1,
        baseMediaDecodeTime: second * 90000,
        lengthPrefixed: true,
        samples: fixture.aus.slice(0, 30).map((au) => ({ duration: 3000, flags: SAMPLE_FLAGS_SYNC, compositionOffset: 0, units: au.units })),
      },
      {
        trackId: 2,
        baseMediaDecodeTime: second * frames * 1024,
        lengthPrefixed: false,
        samples: aac.frames.slice(0, frames).map((f) => ({ duration: 1024, flags: SAMPLE_FLAGS_SYNC, compositionOffset: 0, units: [f] })),
      },
    ],
  });
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.byteLength));
  return out;
}

describe('recording file names', () => {
  const cases: { name: string; ms: number | null }[] = [
    { name: '2026-01-02_03-04-05-678.mp4', ms: Date.UTC(2026, 0, 2, 3, 4, 5, 678) },
    { name: '1999-12-31_23-59-59-999.mp4', ms: Date.UTC(1999, 11, 31, 23, 59, 59, 999) },
    { name: '2026-01-02_03-04-05-678-2.mp4', ms: Date.UTC(2026, 0, 2, 3, 4, 5, 678) },
    { name: '2024-02-31_00-00-00-000.mp4', ms: null }, // no 31st of February
    { name: '2024-01-01_24-00-00-000.mp4', ms: null },
    { name: '2024-01-01_00-00-00.mp4', ms: null },
    { name: '../2024-01-01_00-00-00-000.mp4', ms: null },
    { name: '2024-01-01_00-00-00-000.mp4.part', ms: null },
    { name: 'cam.mp4', ms: null },
  ];
  for (const c of cases) {
    it(`${c.name} → ${c.ms === null ? 'not a recording' : new Date(c.ms).toISOString()}`, () => {
      assert.equal(parseRecordingFileName(c.name), c.ms);
    });
  }
  it('round-trips, with a suffix for a clash', () => {
    const ms = Date.UTC(2026, 5, 7, 8, 9, 10, 11);
    assert.equal(recordingFileName(ms), '2026-06-07_08-09-10-011.mp4');
    assert.equal(recordingFileName(ms, 3), '2026-06-07_08-09-10-011-3.mp4');
    assert.equal(parseRecordingFileName(recordingFileName(ms, 3)), ms);
  });
});

describe('box parsing', () => {
  it('reads timescales from our moov and spans from our moofs', () => {
    const h = readBoxHeader(init, 0)!;
    assert.equal(h.type, 'ftyp');
    const moovAt = h.size;
    const moov = readBoxHeader(init, moovAt)!;
    assert.equal(moov.type, 'moov');
    const tracks = parseMoovTracks(init.subarray(moovAt + 8, moovAt + moov.size));
    assert.deepEqual([...tracks], [[1, { timescale: 90000, defaultSampleDuration: 0 }], [2, { timescale: 44100, defaultSampleDuration: 0 }]]);
    const frag = oneSecond(2, 3);
    const mh = readBoxHeader(frag, 0)!;
    assert.equal(mh.type, 'moof');
    assert.deepEqual(parseMoofRuns(frag.subarray(8, mh.size), tracks), [
      { trackId: 1, start: 180000, end: 270000 },
      { trackId: 2, start: 2 * 43 * 1024, end: 3 * 43 * 1024 },
    ]);
  });

  it('reads 64-bit largesize headers and size 0 (to the end)', () => {
    const big = new Uint8Array([0, 0, 0, 1, 0x6d, 0x64, 0x61, 0x74, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert.deepEqual(readBoxHeader(big, 0), { type: 'mdat', size: 2 ** 32, headerSize: 16 });
    const toEnd = new Uint8Array([0, 0, 0, 0, 0x6d, 0x64, 0x61, 0x74]);
    assert.deepEqual(readBoxHeader(toEnd, 0, 1000), { type: 'mdat', size: 1000, headerSize: 8 });
    assert.equal(readBoxHeader(toEnd.subarray(0, 7), 0), null);
    assert.throws(() => readBoxHeader(new Uint8Array([0, 0, 0, 4, 0x66, 0x72, 0x65, 0x65]), 0), ParseError);
  });

  it('never throws anything but ParseError on random or cut boxes (fast-check, time-boxed)', () => {
    const moov = init.subarray(readBoxHeader(init, 0)!.size + 8);
    const moof = oneSecond(0, 1);
    const seeds = [moov, moof.subarray(8)];
    const tracks = parseMoovTracks(moov);
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(...seeds).chain((s) => fc.nat(s.byteLength).map((n) => s.subarray(0, n)))), (bytes) => {
        for (const parse of [() => parseMoovTracks(bytes), () => parseMoofRuns(bytes, tracks)]) {
          try {
            parse();
          } catch (err) {
            assert.ok(err instanceof ParseError, String(err));
          }
        }
      }),
      { numRuns: 2000, interruptAfterTimeLimit: 5000 },
    );
  });

  it('reads fragmented MP4 from ffmpeg (tfhd default durations, other flags)', { skip: !hasCommand('ffmpeg') }, async () => {
    const file = join(tmp, 'ffmpeg-frag.mp4');
    const r = await run('ffmpeg', [
      '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25', '-f', 'lavfi', '-i', 'sine=sample_rate=48000',
      '-t', '3', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-c:a', 'aac',
      '-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-y', file,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const info = new RecordingCatalog(() => []).fileInfo(file)!;
    assert.ok(Math.abs(info.durationMs - 3000) <= 60, `duration ${info.durationMs}`);
  });
});

describe('RecordingCatalog', () => {
  const root = join(tmp, 'root');
  const dir = join(root, 'live', 'cam1');
  mkdirSync(dir, { recursive: true });
  const name1 = recordingFileName(Date.UTC(2026, 0, 1, 10, 0, 0, 0));
  const name2 = recordingFileName(Date.UTC(2026, 0, 1, 11, 0, 0, 0));
  const file1 = join(dir, name1);
  const file2 = join(dir, name2);
  const full = concat([init, oneSecond(0, 1), oneSecond(1, 2), oneSecond(2, 3)]);
  writeFileSync(file1, full);
  writeFileSync(file2, concat([init, oneSecond(0, 1)]));
  // not recordings: wrong names, a bad path directory
  writeFileSync(join(dir, 'notes.txt'), 'x');
  mkdirSync(join(root, 'bad name'), { recursive: true });
  writeFileSync(join(root, 'bad name', name1), full);

  it('lists paths and segments sorted, with start, duration from the fragments, size and URL', () => {
    const cat = new RecordingCatalog(() => [root, root + '/']);
    assert.deepEqual(cat.list(), [
      {
        path: 'live/cam1',
        segments: [
          { start: '2026-01-01T10:00:00.000Z', durationMs: 3000, bytes: full.byteLength, url: `/v1/recordings/live/cam1/${name1}` },
          { start: '2026-01-01T11:00:00.000Z', durationMs: 1000, bytes: init.byteLength + oneSecond(0, 1).byteLength, url: `/v1/recordings/live/cam1/${name2}` },
        ],
      },
    ]);
  });

  it('counts only complete fragments of a file cut short (crash) or still growing', () => {
    const f = join(dir, recordingFileName(Date.UTC(2026, 0, 1, 12)));
    const cut = concat([init, oneSecond(0, 1), oneSecond(1, 2)]);
    writeFileSync(f, cut.subarray(0, cut.byteLength - 100));
    const cat = new RecordingCatalog(() => [root]);
    assert.equal(cat.fileInfo(f)!.durationMs, 1000);
    // the rest arrives, then another fragment: parsed from where the last listing stopped
    appendFileSync(f, cut.subarray(cut.byteLength - 100));
    appendFileSync(f, oneSecond(2, 3));
    assert.equal(cat.fileInfo(f)!.durationMs, 3000);
    truncateSync(f, init.byteLength);
    assert.equal(cat.fileInfo(f)!.durationMs, 0, 'a shrunk file is parsed again');
    rmSync(f);
  });

  it('locates files only for valid path and file names, never outside the root', () => {
    const cat = new RecordingCatalog(() => [root]);
    assert.equal(cat.locate('live/cam1', name1), file1);
    for (const [p, n] of [
      ['live/cam1', 'notes.txt'],
      ['live/../live/cam1', name1],
      ['../root/live/cam1', name1],
      ['/live/cam1', name1],
      ['live/cam1/', name1],
      ['live\\cam1', name1],
      ['bad name', name1],
      ['live/cam1', `../cam1/${name1}`],
      ['live/cam1\0', name1],
      ['live/cam2', name1],
      ['', name1],
    ] as const) {
      assert.equal(cat.locate(p, n), null, `${p} ${n}`);
    }
  });

  it('lists nothing for missing roots', () => {
    assert.deepEqual(new RecordingCatalog(() => [join(tmp, 'missing')]).list(), []);
  });
});
