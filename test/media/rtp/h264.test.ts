import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ParseError, StreamgateError, UnsupportedError } from '../../../src/errors.js';
import { parseSps } from '../../../src/media/codecs/h264-sps.js';
import { H264Depacketizer, H264DtsEstimator, H264Packetizer, MAX_RTP_NALUS_PER_ACCESS_UNIT, type H264AccessUnit } from '../../../src/media/rtp/h264.js';
import { parseRtp, serializeRtp, type RtpPacket } from '../../../src/media/rtp/packet.js';
import { bytes, hex, loadPackets } from './fixtures.js';

const types = (au: H264AccessUnit): number[] => au.nalus.map((n) => (n[0] as number) & 0x1f);

function depacketizeAll(raws: readonly Uint8Array[], d = new H264Depacketizer()): H264AccessUnit[] {
  const out: H264AccessUnit[] = [];
  for (const raw of raws) {
    const au = d.push(parseRtp(raw), raw);
    if (au) out.push(au);
  }
  out.push(...d.flush());
  return out;
}

const pkt = (seq: number, ts: number, marker: boolean, payload: Uint8Array): RtpPacket => ({
  marker,
  payloadType: 96,
  sequenceNumber: seq & 0xffff,
  timestamp: ts,
  ssrc: 1,
  csrc: [],
  payload,
  paddingSize: 0,
});

describe('H264Depacketizer on real captures', () => {
  it('ffmpeg 5.1 libx264 640x360 (-g 30, 2 s, B-frames): 60 AUs, IDR every 30, presentation times 3000 apart', () => {
    const raws = loadPackets('ffmpeg-h264.bin');
    const d = new H264Depacketizer();
    const aus = depacketizeAll(raws, d);
    assert.equal(aus.length, 60);
    assert.deepEqual(types(aus[0] as H264AccessUnit), [7, 8, 6, 5]); // SPS, PPS, SEI (x264 options), IDR
    assert.deepEqual(aus.map((a, i) => (a.keyframe ? i : -1)).filter((i) => i >= 0), [0, 30]);
    // RTP timestamps are presentation times; with B-frames they come in decode order
    const sorted = aus.map((a) => a.pts).sort((a, b) => a - b);
    for (let i = 1; i < sorted.length; i++) assert.equal((sorted[i] as number) - (sorted[i - 1] as number), 3000);
    const sps = parseSps((aus[0] as H264AccessUnit).nalus[0] as Uint8Array);
    assert.deepEqual([sps.width, sps.height], [640, 360]);
    assert.deepEqual(d.stats, { packets: raws.length, packetsLost: 0, packetsLate: 0, accessUnits: 60, accessUnitsDropped: 0, accessUnitsOversized: 0 });
    // passthrough: every packet ends up in exactly one AU
    assert.equal(aus.reduce((n, a) => n + (a.rtp?.length ?? 0), 0), raws.length);
    // views: single-NAL units point into the captured packet, not a copy
    const idrPackets = (aus[1] as H264AccessUnit).rtp ?? [];
    const first = (aus[1] as H264AccessUnit).nalus[0] as Uint8Array;
    if (first.length < 1400) assert.equal(first.buffer, (idrPackets[0] as Uint8Array).buffer);
  });

  it('GStreamer 1.22 rtph264pay (aggregate-mode=zero-latency, mtu 1200): SPS+PPS in STAP-A, 60 AUs', () => {
    const raws = loadPackets('gst-h264.bin');
    assert.ok(raws.some((r) => ((parseRtp(r).payload[0] as number) & 0x1f) === 24), 'capture has STAP-A');
    const aus = depacketizeAll(raws);
    assert.equal(aus.length, 60);
    assert.ok((aus[0] as H264AccessUnit).keyframe);
    assert.deepEqual(types(aus[0] as H264AccessUnit).slice(0, 3), [9, 7, 8]); // AUD, SPS, PPS
    const sps = parseSps((aus[0] as H264AccessUnit).nalus[1] as Uint8Array);
    assert.deepEqual([sps.width, sps.height], [640, 360]);
  });

  it('missing marker bits: AUs end on timestamp change, the last one on flush()', () => {
    const raws = loadPackets('ffmpeg-h264.bin');
    const want = depacketizeAll(raws).map((a) => ({ nalus: a.nalus.map(bytes), pts: a.pts }));
    const unmarked = raws.map((r) => {
      const c = Uint8Array.from(r);
      c[1] = (c[1] as number) & 0x7f;
      return c;
    });
    const got = depacketizeAll(unmarked).map((a) => ({ nalus: a.nalus.map(bytes), pts: a.pts }));
    assert.deepEqual(got, want);
  });

  it('a lost packet drops the AU it belongs to, and only that one', () => {
    const raws = loadPackets('ffmpeg-h264.bin');
    const full = depacketizeAll(raws);
    // lose a middle FU-A fragment of the first IDR
    const lostAt = raws.findIndex((r) => {
      const p = parseRtp(r).payload;
      return ((p[0] as number) & 0x1f) === 28 && ((p[1] as number) & 0xc0) === 0 && ((p[1] as number) & 0x1f) === 5;
    });
    assert.ok(lostAt > 0);
    const d = new H264Depacketizer();
    const aus = depacketizeAll([...raws.slice(0, lostAt), ...raws.slice(lostAt + 1)], d);
    assert.equal(aus.length, 59);
    assert.equal(d.stats.packetsLost, 1);
    assert.equal(d.stats.accessUnitsDropped, 1);
    assert.deepEqual(aus.map((a) => a.pts), full.slice(1).map((a) => a.pts));
  });

  it('joining mid-stream (first packets missing, FU-A continuation first) drops only the partial AU', () => {
    const raws = loadPackets('ffmpeg-h264.bin');
    const start = raws.findIndex((r) => {
      const p = parseRtp(r).payload;
      return ((p[0] as number) & 0x1f) === 28 && ((p[1] as number) & 0x80) === 0;
    });
    const d = new H264Depacketizer();
    const aus = depacketizeAll(raws.slice(start), d);
    assert.equal(d.stats.accessUnitsDropped, 1);
    assert.equal(aus.length, 59);
  });

  it('reordered/duplicate packets are ignored as late', () => {
    const raws = loadPackets('ffmpeg-h264.bin');
    const d = new H264Depacketizer();
    const withDup = [...raws.slice(0, 10), raws[5] as Uint8Array, ...raws.slice(10)];
    assert.equal(depacketizeAll(withDup, d).length, 60);
    assert.equal(d.stats.packetsLate, 1);
  });
});

describe('H264Depacketizer regressions and malformed input', () => {
  it('issue gortsplib/649 (CostarHD): FU-A with both start and end bits', () => {
    const d = new H264Depacketizer();
    const au = d.push(
      pkt(1, 0, true, hex(`
        7c    // FU indicator: NRI 3, type 28
        c5    // FU header: S=1, E=1, type 5 (IDR)
        888421 // fragment
      `)),
    );
    assert.deepEqual(au?.nalus.map(bytes), [hex('65888421')]);
    assert.equal(au?.keyframe, true);
  });

  it('STAP-A with trailing zero padding (cameras that pad to 4 bytes)', () => {
    const d = new H264Depacketizer();
    const au = d.push(
      pkt(1, 0, true, hex(`
        78          // STAP-A, NRI 3
        0002 6742   // SPS (2 bytes)
        0002 68ce   // PPS (2 bytes)
        0000 00     // padding
      `)),
    );
    assert.deepEqual(au?.nalus.map(bytes), [hex('6742'), hex('68ce')]);
  });

  it('one packet can complete two AUs: the second comes from the next push/flush', () => {
    const d = new H264Depacketizer();
    assert.equal(d.push(pkt(1, 0, false, hex('4101'))), null); // no marker
    const a = d.push(pkt(2, 3000, true, hex('4102'))); // new ts closes the first, marker closes itself
    assert.equal(a?.pts, 0);
    assert.deepEqual(d.flush().map((x) => x.pts), [3000]);
  });

  const malformed: { name: string; payload: Uint8Array; err: typeof ParseError | typeof UnsupportedError }[] = [
    { name: 'empty payload', payload: hex(''), err: ParseError },
    { name: 'NAL type 0', payload: hex('00aa'), err: ParseError },
    { name: 'NAL type 30', payload: hex('1eaa'), err: ParseError },
    { name: 'STAP-A size field cut', payload: hex('78 00'), err: ParseError },
    { name: 'STAP-A unit overruns the packet', payload: hex('78 0005 6742'), err: ParseError },
    { name: 'STAP-A without units', payload: hex('78'), err: ParseError },
    { name: 'STAP-A empty first unit', payload: hex('78 0000'), err: ParseError },
    { name: 'FU-A without FU header', payload: hex('7c'), err: ParseError },
    { name: 'FU-A carrying type 28', payload: hex('7c 9c 00'), err: ParseError },
    { name: 'STAP-B (interleaved mode)', payload: hex('79 0000 0002 6742'), err: UnsupportedError },
    { name: 'FU-B (interleaved mode)', payload: hex('7d 85 0000 00'), err: UnsupportedError },
  ];
  for (const m of malformed) {
    it(`malformed: ${m.name} → ${m.err.name}, its AU dropped, the next AU fine`, () => {
      const d = new H264Depacketizer();
      assert.equal(d.push(pkt(1, 0, false, hex('0601ff'))), null);
      assert.throws(() => d.push(pkt(2, 0, true, m.payload)), m.err);
      const next = d.push(pkt(3, 3000, true, hex('6588')));
      assert.deepEqual(next?.nalus.map(bytes), [hex('6588')]);
      assert.equal(d.stats.accessUnitsDropped, 1);
    });
  }

  it(`more than ${MAX_RTP_NALUS_PER_ACCESS_UNIT} NAL units in one AU: dropped and counted as oversized`, () => {
    const d = new H264Depacketizer();
    for (let i = 0; i <= MAX_RTP_NALUS_PER_ACCESS_UNIT; i++) assert.equal(d.push(pkt(i, 0, false, hex('4101'))), null);
    assert.equal(d.push(pkt(MAX_RTP_NALUS_PER_ACCESS_UNIT + 1, 0, true, hex('4101'))), null);
    assert.equal(d.stats.accessUnitsOversized, 1);
    assert.ok(d.push(pkt(MAX_RTP_NALUS_PER_ACCESS_UNIT + 2, 3000, true, hex('4101'))));
  });

  it('random payloads: only StreamgateErrors, never an empty NAL unit', () => {
    const d = new H264Depacketizer();
    let seq = 0;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.boolean(), fc.nat(3), (payload, marker, tsStep) => {
        seq++;
        try {
          const au = d.push(pkt(seq, seq * tsStep, marker, payload));
          if (au) for (const n of au.nalus) assert.ok(n.length > 0);
        } catch (e) {
          if (!(e instanceof StreamgateError)) throw e;
        }
      }),
      { numRuns: 5000, interruptAfterTimeLimit: 3000 },
    );
    for (const au of d.flush()) for (const n of au.nalus) assert.ok(n.length > 0);
  });
});

describe('H264Packetizer', () => {
  it('SPS+PPS+SEI go in one STAP-A with the maximum NRI; a large IDR is cut into FU-A; marker on the last', () => {
    const p = new H264Packetizer({ mtu: 1200, ssrc: 0x11223344, initialSequenceNumber: 65534, initialTimestamp: 1000, payloadType: 96 });
    const sps = hex('6742c01e d9');
    const pps = hex('68ce3c80');
    const sei = hex('0605ff');
    const idr = new Uint8Array(3000).fill(7);
    idr[0] = 0x65;
    const packets = p.packetize([sps, pps, sei, idr], 3000).map(parseRtp);
    assert.deepEqual(packets.map((x) => x.sequenceNumber), [65534, 65535, 0, 1]);
    assert.deepEqual(packets.map((x) => x.marker), [false, false, false, true]);
    assert.ok(packets.every((x) => x.timestamp === 4000 && x.ssrc === 0x11223344 && x.payloadType === 96));
    assert.ok(packets.every((x) => x.payload.length + 12 <= 1200));
    assert.deepEqual(bytes(packets[0]?.payload as Uint8Array), hex('78 0005 6742c01ed9 0004 68ce3c80 0003 0605ff'));
    assert.deepEqual(packets.slice(1).map((x) => [x.payload[0], (x.payload[1] as number) & 0xc0]), [[0x7c, 0x80], [0x7c, 0], [0x7c, 0x40]]);
  });

  it('payloads(): single NAL payloads are views of the input, not copies', () => {
    const nal = hex('419a0000');
    const [payload] = new H264Packetizer().payloads([nal]);
    assert.equal(payload, nal);
  });

  it('depacketize(packetize(AU)) is the identity for many AU shapes, MTUs and start sequence numbers', () => {
    const nalArb = fc.tuple(fc.constantFrom(0x65, 0x41, 0x67, 0x68, 0x06, 0x09), fc.integer({ min: 0, max: 4000 })).map(([h, n]) => {
      const b = new Uint8Array(n + 1);
      b[0] = h;
      for (let i = 1; i < b.length; i++) b[i] = (i * 31 + n) & 0xff;
      return b;
    });
    fc.assert(
      fc.property(
        fc.array(fc.array(nalArb, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1200, max: 1450 }),
        fc.constantFrom(0, 1, 32767, 65534, 65535),
        fc.constantFrom(0, 0xffffff00),
        (aus, mtu, seq, ts) => {
          const p = new H264Packetizer({ mtu, initialSequenceNumber: seq, initialTimestamp: ts, ssrc: 5 });
          const d = new H264Depacketizer();
          const got: H264AccessUnit[] = [];
          aus.forEach((au, i) => {
            for (const raw of p.packetize(au, i * 3000)) {
              assert.ok(raw.length <= mtu);
              const out = d.push(parseRtp(raw));
              if (out) got.push(out);
            }
          });
          got.push(...d.flush());
          assert.equal(got.length, aus.length);
          got.forEach((g, i) => {
            assert.deepEqual(g.nalus.map(bytes), (aus[i] as Uint8Array[]).map(bytes));
            assert.equal(g.pts, ts + i * 3000);
          });
        },
      ),
      { numRuns: 300, interruptAfterTimeLimit: 5000 },
    );
  });

  it('re-packetizing the ffmpeg capture gives the same AUs back (MTU 1200 and 1450)', () => {
    const aus = depacketizeAll(loadPackets('ffmpeg-h264.bin'));
    for (const mtu of [1200, 1450]) {
      const p = new H264Packetizer({ mtu, initialSequenceNumber: 65535 });
      const again = depacketizeAll(aus.flatMap((a) => p.packetize(a.nalus, a.pts)).map((r) => serializeRtp(parseRtp(r))));
      assert.deepEqual(again.map((a) => a.nalus.map(bytes)), aus.map((a) => a.nalus.map(bytes)));
    }
  });

  it('rejects an MTU outside 1200..1450', () => {
    assert.throws(() => new H264Packetizer({ mtu: 1000 }), RangeError);
    assert.throws(() => new H264Packetizer({ mtu: 1500 }), RangeError);
  });
});

describe('H264DtsEstimator', () => {
  it('ffmpeg 5.1 libx264 with B-pyramid (max_num_reorder_frames 2): DTS strictly increasing, ≤ PTS, one frame apart', () => {
    const aus = depacketizeAll(loadPackets('ffmpeg-h264.bin'));
    const sps = parseSps((aus[0] as H264AccessUnit).nalus[0] as Uint8Array);
    assert.equal(sps.vui?.maxNumReorderFrames, 2);
    const e = new H264DtsEstimator(sps.vui?.maxNumReorderFrames);
    const dts = aus.map((a) => e.next(a.pts));
    const base = (aus[0] as H264AccessUnit).pts;
    assert.deepEqual(dts.slice(0, 4).map((d) => d - base), [-6000, -3000, 0, 3000]);
    for (let i = 0; i < aus.length; i++) {
      assert.ok((dts[i] as number) <= (aus[i] as H264AccessUnit).pts, `frame ${i}`);
      if (i > 0) assert.equal((dts[i] as number) - (dts[i - 1] as number), 3000, `frame ${i}`);
    }
  });

  it('depth 0 (Baseline, zerolatency): DTS = PTS', () => {
    const e = new H264DtsEstimator(0);
    assert.deepEqual([0, 3000, 6000, 9000].map((p) => e.next(p)), [0, 3000, 6000, 9000]);
  });

  it('input breaking its declared depth still gives strictly increasing DTS', () => {
    const e = new H264DtsEstimator(0);
    const out = [0, 9000, 3000, 6000].map((p) => e.next(p));
    for (let i = 1; i < out.length; i++) assert.ok((out[i] as number) > (out[i - 1] as number));
  });
});
