import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ParseError, StreamgateError } from '../../../src/errors.js';
import {
  parseRtp,
  RtpHeaderWriter,
  rtpSize,
  SeqUnwrapper,
  seqAdd,
  seqDiff,
  seqLess,
  serializeRtp,
  TimestampUnwrapper,
  tsAdd,
  tsDiff,
  checkMtu,
  type RtpPacket,
} from '../../../src/media/rtp/packet.js';
import { bytes, hex, loadPackets } from './fixtures.js';

const cases: { name: string; bytes: Uint8Array; want: Omit<RtpPacket, 'payload'> & { payload: string } }[] = [
  {
    name: 'hand-made: single NAL packet (SEI), no marker',
    bytes: hex(`
      80 60 1234 00000000 deadbeef // V=2, PT 96, seq 0x1234, ts 0, SSRC
      06 05 ff                     // payload
    `),
    want: { marker: false, payloadType: 96, sequenceNumber: 0x1234, timestamp: 0, ssrc: 0xdeadbeef, csrc: [], paddingSize: 0, payload: '0605ff' },
  },
  {
    name: 'two CSRCs, marker, PT 0',
    bytes: hex(`
      82 80 ffff ffffffff 00000001 // V=2, CC=2, M=1, PT 0, seq 65535, ts 2^32-1
      00000002 00000003            // CSRCs
      aa bb
    `),
    want: { marker: true, payloadType: 0, sequenceNumber: 0xffff, timestamp: 0xffffffff, ssrc: 1, csrc: [2, 3], paddingSize: 0, payload: 'aabb' },
  },
  {
    name: 'RFC 8285 one-byte header extension (0xBEDE, 1 word)',
    bytes: hex(`
      90 6f 0001 00000010 00000020 // X=1, PT 111
      bede 0001 10 ff 00 00        // profile 0xBEDE, 1 word: id 1 len 1 (audio level)
      01 02 03
    `),
    want: {
      marker: false, payloadType: 111, sequenceNumber: 1, timestamp: 16, ssrc: 32, csrc: [], paddingSize: 0,
      extension: { profile: 0xbede, data: hex('10ff0000') }, payload: '010203',
    },
  },
  {
    name: 'padding of 4 bytes (P=1, count in last octet)',
    bytes: hex(`
      a0 08 0002 00000001 00000002 // P=1, PT 8 (PCMA)
      d5 d5                        // payload
      00 00 00 04                  // padding, count 4
    `),
    want: { marker: false, payloadType: 8, sequenceNumber: 2, timestamp: 1, ssrc: 2, csrc: [], paddingSize: 4, payload: 'd5d5' },
  },
];

describe('parseRtp / serializeRtp', () => {
  for (const c of cases) {
    it(c.name, () => {
      const p = parseRtp(c.bytes);
      const { payload, ...rest } = p;
      assert.equal(Buffer.from(payload).toString('hex'), c.want.payload);
      const { payload: _w, ...wantRest } = c.want;
      assert.deepEqual({ ...rest, extension: rest.extension && { ...rest.extension, data: bytes(rest.extension.data) } }, { extension: undefined, ...wantRest });
      assert.equal(rtpSize(p), c.bytes.length);
      assert.deepEqual(serializeRtp(p), c.bytes);
    });
  }

  it('payload is a view, not a copy', () => {
    const buf = hex('80600001000000000000000199');
    const p = parseRtp(buf);
    assert.equal(p.payload.buffer, buf.buffer);
    assert.equal(p.payload.byteOffset, buf.byteOffset + 12);
  });

  it('every packet of the ffmpeg and GStreamer captures round-trips byte for byte', () => {
    for (const f of ['ffmpeg-h264.bin', 'gst-h264.bin', 'ffmpeg-aac.bin', 'gst-aac.bin', 'ffmpeg-opus.bin', 'ffmpeg-pcmu.bin']) {
      const packets = loadPackets(f);
      assert.ok(packets.length > 5, f);
      for (const raw of packets) assert.deepEqual(serializeRtp(parseRtp(raw)), bytes(raw), f);
    }
  });

  const malformed: { name: string; bytes: Uint8Array; offset: number }[] = [
    { name: 'shorter than the fixed header', bytes: hex('8060000100000000000000'), offset: 0 },
    { name: 'version 1', bytes: hex('406000010000000000000001'), offset: 0 },
    { name: 'CC=3 but only one CSRC present', bytes: hex('836000010000000000000001 00000002'), offset: 12 },
    { name: 'X=1 but the extension header is cut', bytes: hex('906000010000000000000001 bede'), offset: 12 },
    { name: 'extension length 2 words, 1 present', bytes: hex('906000010000000000000001 bede0002 00000000'), offset: 12 },
    { name: 'padding count 0', bytes: hex('a06000010000000000000001 aa00'), offset: 13 },
    { name: 'padding count larger than the payload', bytes: hex('a06000010000000000000001 aa05'), offset: 13 },
  ];
  for (const m of malformed) {
    it(`malformed: ${m.name} → ParseError`, () => {
      assert.throws(() => parseRtp(m.bytes), (e: unknown) => e instanceof ParseError && e.offset === m.offset && e.code === 'SG_PARSE');
    });
  }

  it('random bytes and truncations never throw anything but ParseError; what parses re-serializes', () => {
    const seeds = [...cases.map((c) => c.bytes), ...loadPackets('gst-h264.bin').slice(0, 5)];
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.constantFrom(...seeds).chain((s) => fc.nat(s.length).map((n) => s.subarray(0, n)))), (buf) => {
        try {
          const p = parseRtp(buf);
          // padding bytes other than the count are not kept, so compare without them
          const out = serializeRtp(p);
          assert.equal(out.length, buf.length);
          assert.deepEqual(out.subarray(0, out.length - p.paddingSize), bytes(buf.subarray(0, buf.length - p.paddingSize)));
        } catch (e) {
          if (!(e instanceof StreamgateError)) throw e;
        }
      }),
      { numRuns: 2000, interruptAfterTimeLimit: 3000 },
    );
  });
});

describe('sequence and timestamp arithmetic', () => {
  it('seqDiff/seqLess/seqAdd wrap at 2^16', () => {
    assert.equal(seqDiff(0, 65535), 1);
    assert.equal(seqDiff(65535, 0), -1);
    assert.equal(seqDiff(100, 100), 0);
    assert.equal(seqDiff(32767, 0), 32767);
    assert.equal(seqDiff(32768, 0), -32768);
    assert.ok(seqLess(65535, 0));
    assert.ok(!seqLess(0, 65535));
    assert.equal(seqAdd(65535, 1), 0);
    assert.equal(seqAdd(0, -1), 65535);
  });

  it('tsDiff/tsAdd wrap at 2^32', () => {
    assert.equal(tsDiff(0, 0xffffffff), 1);
    assert.equal(tsDiff(0xffffffff, 0), -1);
    assert.equal(tsDiff(3000, 0), 3000);
    assert.equal(tsAdd(0xffffffff, 1), 0);
    assert.equal(tsAdd(0, -1), 0xffffffff);
    assert.equal(tsAdd(5, 2 ** 40 + 3), 8);
  });

  for (const start of [0, 1, 1000, 32767, 32768, 65000, 65534, 65535]) {
    it(`SeqUnwrapper from ${start}: monotonic across wraps, late packets below`, () => {
      const u = new SeqUnwrapper();
      assert.equal(u.unwrap(start), start);
      let seq = start;
      for (let i = 1; i <= 200_000; i += 7) {
        seq = (start + i) & 0xffff;
        assert.equal(u.unwrap(seq), start + i);
      }
      const highest = u.highest;
      // a packet 3 behind the highest (reordering) gets its own smaller number and does not move the highest
      assert.equal(u.unwrap((seq - 3) & 0xffff), highest - 3);
      assert.equal(u.highest, highest);
    });
  }

  for (const start of [0, 90000, 0x7fffffff, 0xfffff000, 0xffffffff]) {
    it(`TimestampUnwrapper from ${start}: 40 h of 90 kHz frames stay monotonic`, () => {
      const u = new TimestampUnwrapper();
      assert.equal(u.unwrap(start), start);
      const step = 90000 * 60; // one minute
      for (let i = 1; i <= 40 * 60; i++) assert.equal(u.unwrap((start + i * step) % 2 ** 32), start + i * step);
      const last = start + 40 * 60 * step;
      assert.equal(u.unwrap((last - 3000) % 2 ** 32), last - 3000, 'B-frame style earlier timestamp');
      assert.equal(u.unwrap((last + 3000) % 2 ** 32), last + 3000);
    });
  }
});

describe('RtpHeaderWriter', () => {
  it('writes headers with injected SSRC/seq/timestamp, wrapping the sequence number at 65535', () => {
    const w = new RtpHeaderWriter({ payloadType: 97, ssrc: 0x01020304, initialSequenceNumber: 65535, initialTimestamp: 0xfffffff0 });
    const a = w.allocate(2, false, w.rtpTimestamp(0));
    const b = w.allocate(0, true, w.rtpTimestamp(32));
    const pa = parseRtp(a);
    const pb = parseRtp(b);
    assert.equal(pa.sequenceNumber, 65535);
    assert.equal(pb.sequenceNumber, 0);
    assert.equal(pa.timestamp, 0xfffffff0);
    assert.equal(pb.timestamp, 0x10);
    assert.equal(pb.marker, true);
    assert.equal(pa.ssrc, 0x01020304);
    assert.equal(pa.payload.length, 2);
    assert.equal(w.nextSequenceNumber, 1);
  });

  it('random SSRC and sequence number when not given', () => {
    const a = new RtpHeaderWriter({ payloadType: 96 });
    const b = new RtpHeaderWriter({ payloadType: 96 });
    assert.notEqual(a.ssrc, b.ssrc);
    assert.throws(() => new RtpHeaderWriter({ payloadType: 128 }), RangeError);
  });

  it('checkMtu accepts 1200..1450 only', () => {
    assert.equal(checkMtu(1200), 1200);
    assert.equal(checkMtu(1450), 1450);
    assert.throws(() => checkMtu(1199), RangeError);
    assert.throws(() => checkMtu(1500), RangeError);
  });
});
