import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ParseError, StreamgateError } from '../../../src/errors.js';
import {
  compoundReport,
  isRfc3550Compound,
  nackPairs,
  nackSequenceNumbers,
  ntpFromUnixMs,
  ntpMiddle32,
  ntpToUnixMs,
  parseRtcp,
  RtcpReceiverStats,
  RtcpSenderStats,
  rtcpIntervalMs,
  rtcpSize,
  serializeRtcp,
  type RtcpPacket,
} from '../../../src/media/rtp/rtcp.js';
import { bytes, hex, loadPackets } from './fixtures.js';

const GST_CNAME_SENDER = 'user1947682914@host-5780f35d';
const GST_CNAME_RECEIVER = 'user3488777104@host-8322bbfc';

/** Parse → fields → serialize → the same bytes. */
const cases: { name: string; bytes: Uint8Array; want: RtcpPacket[] }[] = [
  {
    name: 'ffmpeg 5.1 rtpenc: bare SR at stream start (no SDES, counts 0)',
    bytes: loadPackets('ffmpeg-h264.rtcp.bin')[0] as Uint8Array,
    want: [
      { type: 'sr', ssrc: 0x8da8b48f, ntpSec: 0xeeac89e0, ntpFrac: 0x6dd2f1a9, rtpTimestamp: 0x1bc9f04a, packetCount: 0, octetCount: 0, reports: [] },
    ],
  },
  {
    name: 'GStreamer 1.22 rtpbin sender: SR + SDES (CNAME, TOOL)',
    bytes: loadPackets('gst-rtcp-sender.rtcp.bin')[0] as Uint8Array,
    want: [
      { type: 'sr', ssrc: 0x3f772d7a, ntpSec: 0xeeac8a83, ntpFrac: 0x8a422899, rtpTimestamp: 0x37d11049, packetCount: 0xb2, octetCount: 0xcce8, reports: [] },
      { type: 'sdes', chunks: [{ ssrc: 0x3f772d7a, items: [{ type: 1, text: GST_CNAME_SENDER }, { type: 6, text: 'GStreamer' }] }] },
    ],
  },
  {
    name: 'GStreamer 1.22 rtpbin sender at EOS: SR + SDES + BYE',
    bytes: loadPackets('gst-rtcp-sender.rtcp.bin')[2] as Uint8Array,
    want: [
      { type: 'sr', ssrc: 0x3f772d7a, ntpSec: 0xeeac8a8b, ntpFrac: 0x96c8d5c7, rtpTimestamp: 0x37dc1dfd, packetCount: 0x388, octetCount: 0x3d606, reports: [] },
      { type: 'sdes', chunks: [{ ssrc: 0x3f772d7a, items: [{ type: 1, text: GST_CNAME_SENDER }, { type: 6, text: 'GStreamer' }] }] },
      { type: 'bye', ssrcs: [0x3f772d7a] },
    ],
  },
  {
    name: 'GStreamer 1.22 rtpbin receiver: RR with LSR/DLSR and cumulative lost -1 (a duplicate) + SDES',
    bytes: loadPackets('gst-rtcp-receiver.rtcp.bin')[1] as Uint8Array,
    want: [
      {
        type: 'rr',
        ssrc: 0x05709475,
        reports: [{ ssrc: 0x3f772d7a, fractionLost: 0, cumulativeLost: -1, highestSequence: 0x5219, jitter: 0x11, lastSr: 0x8a838a42, delaySinceLastSr: 0x2c881 }],
      },
      { type: 'sdes', chunks: [{ ssrc: 0x05709475, items: [{ type: 1, text: GST_CNAME_RECEIVER }, { type: 6, text: 'GStreamer' }] }] },
    ],
  },
  {
    name: 'hand-made: RR with one block, then BYE with a reason',
    bytes: hex(`
      81 c9 0007 00000001                    // RR, RC=1, length 7, SSRC 1
      00000002 40 000010 0001ffff 00000020 12345678 00010000 // block: 25% lost, 16 lost, seq, jitter 32, LSR, DLSR 1 s
      81 cb 0003 00000001                    // BYE, SC=1, length 3
      07 7465617264776e                      // reason "teardwn" (1+7 bytes, no padding needed)
    `),
    want: [
      {
        type: 'rr',
        ssrc: 1,
        reports: [{ ssrc: 2, fractionLost: 0x40, cumulativeLost: 16, highestSequence: 0x1ffff, jitter: 32, lastSr: 0x12345678, delaySinceLastSr: 0x10000 }],
      },
      { type: 'bye', ssrcs: [1], reason: 'teardwn' },
    ],
  },
  {
    name: 'hand-made (Chrome layout): RR without blocks, PLI, FIR, generic NACK',
    bytes: hex(`
      80 c9 0001 00000001                    // RR, no blocks
      81 ce 0002 00000001 0000abcd           // PSFB FMT 1 = PLI, sender 1, media 0xabcd
      84 ce 0004 00000001 00000000 0000abcd 07000000 // PSFB FMT 4 = FIR, FCI: SSRC 0xabcd, seq nr 7
      81 cd 0004 00000001 0000abcd 0064 0005 fffe 8000 // RTPFB FMT 1 = NACK: pid 100 + blp bits 0,2; pid 65534 + bit 15
    `),
    want: [
      { type: 'rr', ssrc: 1, reports: [] },
      { type: 'pli', senderSsrc: 1, mediaSsrc: 0xabcd },
      { type: 'fir', senderSsrc: 1, mediaSsrc: 0, entries: [{ ssrc: 0xabcd, seqNr: 7 }] },
      { type: 'nack', senderSsrc: 1, mediaSsrc: 0xabcd, pairs: [{ pid: 100, blp: 5 }, { pid: 65534, blp: 0x8000 }] },
    ],
  },
];

const normalize = (packets: RtcpPacket[]): RtcpPacket[] =>
  packets.map((p) => (p.type === 'other' ? { ...p, raw: bytes(p.raw) } : p));

describe('parseRtcp / serializeRtcp', () => {
  for (const c of cases) {
    it(c.name, () => {
      const packets = parseRtcp(c.bytes);
      assert.deepEqual(packets, c.want);
      assert.equal(rtcpSize(packets), c.bytes.length);
      assert.deepEqual(serializeRtcp(packets), bytes(c.bytes));
    });
  }

  it('every captured GStreamer/ffmpeg compound packet round-trips', () => {
    for (const f of ['gst-rtcp-sender.rtcp.bin', 'gst-rtcp-receiver.rtcp.bin', 'ffmpeg-aac.rtcp.bin', 'ffmpeg-opus.rtcp.bin']) {
      for (const raw of loadPackets(f)) assert.deepEqual(serializeRtcp(parseRtcp(raw)), bytes(raw), f);
    }
  });

  it('APP and REMB are skipped as "other" and kept byte for byte', () => {
    const buf = hex(`
      80 c9 0001 00000001                    // RR
      82 cc 0003 00000001 6e616d65 0102 0304 // APP subtype 2, name "name", 4 data bytes
      8f ce 0005 00000001 00000000 52454d42 01 0a 1234 0000abcd // PSFB FMT 15 = REMB
    `);
    const packets = normalize(parseRtcp(buf));
    assert.equal(packets.length, 3);
    assert.deepEqual(packets[1], { type: 'other', packetType: 204, count: 2, raw: buf.subarray(8, 24) });
    assert.deepEqual(packets[2], { type: 'other', packetType: 206, count: 15, raw: buf.subarray(24) });
    assert.deepEqual(serializeRtcp(packets), buf);
  });

  it('padding on the last packet is removed (RFC 3550 §6.4.1 P bit)', () => {
    const buf = hex(`
      a0 c9 0002 00000001 00000004           // RR with P=1: 4 padding bytes, count 4
    `);
    assert.deepEqual(parseRtcp(buf), [{ type: 'rr', ssrc: 1, reports: [] }]);
  });

  const malformed: { name: string; bytes: Uint8Array }[] = [
    { name: 'empty', bytes: hex('') },
    { name: '3 bytes', bytes: hex('80c900') },
    { name: 'version 0', bytes: hex('00c90001 00000001') },
    { name: 'length overruns the buffer', bytes: hex('80c90005 00000001') },
    { name: 'SR shorter than its sender info', bytes: hex('80c80002 00000001 00000000') },
    { name: 'RR with RC=1 but no block', bytes: hex('81c90001 00000001') },
    { name: 'SDES item longer than the packet', bytes: hex('81ca0002 00000001 01ff0000') },
    { name: 'SDES chunk without terminator', bytes: hex('81ca0002 00000001 01026162') },
    { name: 'BYE with SC=2 and one SSRC', bytes: hex('82cb0001 00000001') },
    { name: 'BYE reason longer than the packet', bytes: hex('81cb0002 00000001 09616263') },
    { name: 'NACK FCI not a multiple of 4 (2 bytes of padding)', bytes: hex('a1cd0004 00000001 00000002 00000000 00000002') },
    { name: 'FIR FCI not a multiple of 8', bytes: hex('84ce0003 00000001 00000000 0000abcd') },
    { name: 'feedback without media SSRC', bytes: hex('81ce0001 00000001') },
    { name: 'padding count 0', bytes: hex('a0c90001 00000000') },
    { name: 'padding larger than the packet', bytes: hex('a0c90001 00000009') },
    { name: 'trailing 2 bytes after a valid packet', bytes: hex('80c90001 00000001 8000') },
  ];
  for (const m of malformed) {
    it(`malformed: ${m.name} → ParseError`, () => {
      assert.throws(() => parseRtcp(m.bytes), ParseError);
    });
  }

  it('random bytes, truncations and bit flips of real packets: only StreamgateErrors; parses re-serialize stably', () => {
    const seeds = [...cases.map((c) => c.bytes), ...loadPackets('gst-rtcp-receiver.rtcp.bin')];
    const mutated = fc.constantFrom(...seeds).chain((s) =>
      fc.tuple(fc.nat(s.length), fc.nat(Math.max(0, s.length - 1)), fc.integer({ min: 0, max: 255 })).map(([cut, at, v]) => {
        const b = Uint8Array.from(s.subarray(0, Math.max(cut, 1)));
        if (at < b.length) b[at] = v;
        return b;
      }),
    );
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 80 }), mutated), (buf) => {
        let packets: RtcpPacket[];
        try {
          packets = parseRtcp(buf);
        } catch (e) {
          if (!(e instanceof StreamgateError)) throw e;
          return;
        }
        // canonical form is a fixed point (padding and extra SDES nulls are dropped once)
        let once: Uint8Array;
        try {
          once = serializeRtcp(packets);
        } catch (e) {
          if (e instanceof RangeError) return; // text that re-encodes over 255 bytes after U+FFFD replacement
          throw e;
        }
        assert.deepEqual(serializeRtcp(parseRtcp(once)), once);
      }),
      { numRuns: 3000, interruptAfterTimeLimit: 4000 },
    );
  });
});

describe('compound packets', () => {
  it('compoundReport puts the report first and an SDES CNAME second (RFC 3550 §6.1)', () => {
    const sr = { type: 'sr' as const, ssrc: 7, ntpSec: 1, ntpFrac: 2, rtpTimestamp: 3, packetCount: 4, octetCount: 5, reports: [] };
    const packets = compoundReport(sr, 'streamgate@host', [{ type: 'pli', senderSsrc: 7, mediaSsrc: 9 }]);
    assert.ok(isRfc3550Compound(packets));
    const back = parseRtcp(serializeRtcp(packets));
    assert.equal(back[0]?.type, 'sr');
    assert.deepEqual(back[1], { type: 'sdes', chunks: [{ ssrc: 7, items: [{ type: 1, text: 'streamgate@host' }] }] });
    assert.equal(back[2]?.type, 'pli');
  });

  it('isRfc3550Compound: ffmpeg bare SR is not, GStreamer SR+SDES is', () => {
    assert.equal(isRfc3550Compound(parseRtcp(loadPackets('ffmpeg-h264.rtcp.bin')[0] as Uint8Array)), false);
    assert.equal(isRfc3550Compound(parseRtcp(loadPackets('gst-rtcp-sender.rtcp.bin')[0] as Uint8Array)), true);
    assert.equal(isRfc3550Compound([{ type: 'pli', senderSsrc: 1, mediaSsrc: 2 }]), false);
  });

  it('SDES padding: 1 to 4 null octets depending on the text length', () => {
    for (let len = 0; len < 12; len++) {
      const packets: RtcpPacket[] = [{ type: 'sdes', chunks: [{ ssrc: 1, items: [{ type: 1, text: 'x'.repeat(len) }] }] }];
      const buf = serializeRtcp(packets);
      assert.equal(buf.length % 4, 0);
      assert.equal(buf.length, 4 + 4 + Math.floor((2 + len) / 4 + 1) * 4);
      assert.deepEqual(parseRtcp(buf), packets);
    }
  });
});

describe('NACK helpers', () => {
  it('pairs ⇄ sequence numbers, also across 65535 → 0', () => {
    assert.deepEqual(nackSequenceNumbers({ pairs: [{ pid: 100, blp: 5 }] }), [100, 101, 103]);
    assert.deepEqual(nackSequenceNumbers({ pairs: [{ pid: 65534, blp: 0x8003 }] }), [65534, 65535, 0, 14]);
    for (const start of [0, 1, 65519, 65534, 65535]) {
      const seqs = [0, 1, 2, 5, 16, 17, 40].map((d) => (start + d) & 0xffff);
      const pairs = nackPairs(seqs);
      assert.deepEqual(nackSequenceNumbers({ pairs }), seqs, `start ${start}`);
      assert.equal(pairs.length, 3, `start ${start}`); // [0..16], [17], [40]
    }
  });
});

describe('NTP time', () => {
  it('Unix ms ⇄ NTP, and the middle 32 bits', () => {
    const ms = Date.UTC(2024, 0, 1, 12, 0, 0, 250);
    const { ntpSec, ntpFrac } = ntpFromUnixMs(ms);
    assert.equal(ntpSec, ms / 1000 - 0.25 + 2_208_988_800);
    assert.equal(ntpFrac, 0x40000000);
    assert.equal(ntpToUnixMs(ntpSec, ntpFrac), ms);
    assert.equal(ntpMiddle32(0x0001_0002, 0x0003_0004), 0x0002_0003);
    // the GStreamer capture: SR NTP eeac8a83.8a422899 is echoed as LSR 8a838a42
    assert.equal(ntpMiddle32(0xeeac8a83, 0x8a422899), 0x8a838a42);
  });
});

describe('RtcpReceiverStats', () => {
  for (const start of [0, 1, 1000, 65000, 65534, 65535]) {
    it(`loss, fraction and extended highest seq from start ${start}`, () => {
      const s = new RtcpReceiverStats(0xabc, 90000);
      let t = 0;
      // 100 packets, every 10th lost
      for (let i = 0; i < 100; i++) if (i % 10 !== 9) s.onRtp((start + i) & 0xffff, i * 3000, (t += 33));
      const b1 = s.reportBlock(t);
      assert.ok(b1);
      assert.equal(b1.ssrc, 0xabc);
      // 99 is the highest received, 98..99: packets 9,19,..,89 lost (9), 99 lost is beyond highest
      assert.equal(b1.highestSequence, start + 98);
      assert.equal(b1.cumulativeLost, 9);
      assert.equal(b1.fractionLost, Math.floor((9 * 256) / 99));
      // next interval: 50 packets, none lost
      for (let i = 100; i < 150; i++) s.onRtp((start + i) & 0xffff, i * 3000, (t += 33));
      const b2 = s.reportBlock(t);
      assert.ok(b2);
      assert.equal(b2.fractionLost, Math.floor((1 * 256) / 51)); // packet 99 turned out lost
      assert.equal(b2.cumulativeLost, 10);
      assert.equal(b2.highestSequence, start + 149);
      assert.equal(s.summary().packetsReceived, 140);
    });
  }

  it('duplicates make cumulative lost negative (as in the GStreamer capture)', () => {
    const s = new RtcpReceiverStats(1, 90000);
    s.onRtp(10, 0, 0);
    s.onRtp(11, 0, 1);
    s.onRtp(11, 0, 2);
    assert.equal(s.reportBlock(2)?.cumulativeLost, -1);
  });

  it('a jump beyond MAX_DROPOUT restarts only when the next packet confirms it (RFC 3550 A.1)', () => {
    const s = new RtcpReceiverStats(1, 90000);
    for (let i = 0; i < 10; i++) s.onRtp(i, 0, i);
    assert.equal(s.onRtp(20000, 0, 11), false); // stray
    assert.equal(s.onRtp(10, 0, 12), true);
    assert.equal(s.reportBlock(12)?.highestSequence, 10);
    assert.equal(s.onRtp(40000, 0, 13), false);
    assert.equal(s.onRtp(40001, 0, 14), true); // confirmed: restart from here
    const b = s.reportBlock(14);
    assert.equal(b?.highestSequence, 40001);
    assert.equal(b?.cumulativeLost, 0);
  });

  it('jitter: 0 for a constant transit, ~|D| for alternating delay (RFC 3550 A.8)', () => {
    const steady = new RtcpReceiverStats(1, 90000);
    for (let i = 0; i < 200; i++) steady.onRtp(i, 1234 + i * 3000, 1000 + (i * 100) / 3);
    assert.equal(steady.reportBlock(9000)?.jitter, 0);

    const wobbly = new RtcpReceiverStats(1, 90000);
    // arrival alternates +0 / +10 ms: |D| = 900 ticks every packet; J converges to 900
    for (let i = 0; i < 500; i++) wobbly.onRtp(i, i * 3000, (i * 100) / 3 + (i % 2) * 10);
    const j = wobbly.reportBlock(20000)?.jitter ?? 0;
    assert.ok(j > 890 && j <= 900, `jitter ${j}`);
    assert.ok(Math.abs(wobbly.summary().jitterMs - 10) < 0.2);
  });

  it('LSR/DLSR echo the last SR; the SR mapping is kept for A/V alignment', () => {
    const s = new RtcpReceiverStats(1, 90000);
    s.onRtp(1, 0, 0);
    assert.deepEqual([s.reportBlock(0)?.lastSr, s.reportBlock(0)?.delaySinceLastSr], [0, 0]);
    s.onSenderReport({ ntpSec: 0xeeac8a83, ntpFrac: 0x8a422899, rtpTimestamp: 0x37d11049 }, 5000);
    const b = s.reportBlock(7500);
    assert.equal(b?.lastSr, 0x8a838a42);
    assert.equal(b?.delaySinceLastSr, 2.5 * 65536);
    const sr = s.summary().lastSr;
    assert.equal(sr?.rtpTimestamp, 0x37d11049);
    assert.equal(sr?.receivedAtMs, 5000);
    assert.ok(Math.abs((sr?.unixMs ?? 0) - ntpToUnixMs(0xeeac8a83, 0x8a422899)) < 1e-6);
  });
});

describe('RtcpSenderStats', () => {
  it('SR maps NTP now onto the RTP clock, extrapolating from the last packet', () => {
    const s = new RtcpSenderStats(0x1234, 90000);
    assert.equal(s.senderReport(1000), null);
    const t0 = Date.UTC(2024, 5, 1);
    s.onRtpSent(0xfffff000, 1000, t0);
    s.onRtpSent(0xfffff000, 500, t0 + 1);
    const sr = s.senderReport(t0 + 1 + 100);
    assert.ok(sr);
    assert.equal(sr.rtpTimestamp, (0xfffff000 + 9000) >>> 0); // 100 ms later, wrapped
    assert.equal(sr.packetCount, 2);
    assert.equal(sr.octetCount, 1500);
    assert.equal(ntpToUnixMs(sr.ntpSec, sr.ntpFrac), t0 + 101);
    // the packets of one frame recorded at once count the same
    const b = new RtcpSenderStats(0x1234, 90000);
    b.onRtpSent(0xfffff000, 1500, t0 + 1, 2);
    assert.deepEqual(b.senderReport(t0 + 101), sr);
  });

  it('round trip from LSR/DLSR: 2 × 40 ms one-way plus 250 ms hold → 80 ms', () => {
    const sender = new RtcpSenderStats(0x1234, 90000);
    const receiver = new RtcpReceiverStats(0x1234, 90000);
    const t0 = Date.UTC(2024, 5, 1, 10);
    sender.onRtpSent(1, 100, t0);
    receiver.onRtp(1, 1, t0 + 40);
    const sr = sender.senderReport(t0 + 10);
    assert.ok(sr);
    // the receiver's clock is 1 h off: RTT must not depend on it
    const skew = 3_600_000;
    receiver.onSenderReport(sr, t0 + 50 + skew);
    const block = receiver.reportBlock(t0 + 300 + skew);
    assert.ok(block);
    const r = sender.onReportBlock(block, t0 + 340);
    assert.ok(r.rttMs !== undefined && Math.abs(r.rttMs - 80) < 0.1, `rtt ${r.rttMs}`);
    assert.equal(sender.remoteReception?.packetsLost, 0);
  });
});

describe('rtcpIntervalMs (RFC 3550 A.7)', () => {
  const base = { members: 2, senders: 1, rtcpBandwidth: 5000, weSent: true, avgRtcpSize: 100, initial: false };
  it('small sessions get the 5 s minimum, randomized in [0.5, 1.5] and compensated by e - 3/2', () => {
    assert.equal(rtcpIntervalMs({ ...base, random: () => 0.5 }), 5000 / (Math.E - 1.5));
    assert.equal(rtcpIntervalMs({ ...base, random: () => 0 }), 2500 / (Math.E - 1.5));
    assert.equal(rtcpIntervalMs({ ...base, initial: true, random: () => 0.5 }), 2500 / (Math.E - 1.5));
  });
  it('large sessions scale with members over bandwidth; senders share 25%', () => {
    // 1000 receivers, 1 sender, 100-byte reports, 1000 B/s: receivers share 750 B/s → 999 * 100 / 750 s
    const receiver = rtcpIntervalMs({ members: 1000, senders: 1, rtcpBandwidth: 1000, weSent: false, avgRtcpSize: 100, initial: false, random: () => 0.5 });
    assert.ok(Math.abs(receiver - ((999 * 100) / 750) * 1000 / (Math.E - 1.5)) < 1e-6);
    const sender = rtcpIntervalMs({ members: 1000, senders: 1, rtcpBandwidth: 1000, weSent: true, avgRtcpSize: 100, initial: false, random: () => 0.5 });
    assert.equal(sender, 5000 / (Math.E - 1.5)); // 1 * 100 / 250 = 0.4 s < minimum
  });
});
