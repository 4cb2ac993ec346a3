import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import {
  ChunkStreamReader,
  ChunkStreamWriter,
  RTMP_DEFAULT_MAX_MESSAGE_LENGTH,
  RtmpMessageType,
  UserControlEvent,
  abortMessage,
  acknowledgementMessage,
  parseControlU32,
  parseUserControl,
  pingRequestMessage,
  serializeMessage,
  setChunkSizeMessage,
  setPeerBandwidthMessage,
  streamBeginMessage,
  windowAckSizeMessage,
  type RtmpMessage,
  type RtmpOutMessage,
} from '../../../src/ingest/rtmp/chunk-stream.js';
import { decodeAmf0All } from '../../../src/media/flv/amf0.js';
import { LimitError, ParseError, StreamgateError } from '../../../src/errors.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const capture = readFileSync(new URL('../../../../test/fixtures/rtmp/ffmpeg-publish.bin', import.meta.url));
/** The chunk stream ffmpeg sent after C0+C1+C2. */
const stream = Uint8Array.from(capture.subarray(1 + 2 * 1536));

/** Comparable form of a message list. */
function summary(msgs: RtmpMessage[]): string[] {
  return msgs.map((m) => `${m.csid}/${m.type}/${m.streamId}/${m.timestamp}/${toHex(m.payload)}`);
}

function readAll(chunks: Uint8Array[], reader = new ChunkStreamReader()): RtmpMessage[] {
  const out: RtmpMessage[] = [];
  for (const c of chunks) out.push(...reader.push(c));
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const whole = readAll([stream]);

test('chunk stream: the ffmpeg 5.1 publish capture parses into its commands and media', () => {
  const commands = whole.filter((m) => m.type === RtmpMessageType.commandAmf0).map((m) => decodeAmf0All(m.payload)[0]);
  assert.deepEqual(commands, ['connect', 'releaseStream', 'FCPublish', 'createStream', 'publish']);
  const data = whole.filter((m) => m.type === RtmpMessageType.dataAmf0);
  assert.equal(data.length, 1);
  assert.deepEqual(decodeAmf0All((data[0] as RtmpMessage).payload).slice(0, 2), ['@setDataFrame', 'onMetaData']);
  const video = whole.filter((m) => m.type === RtmpMessageType.video);
  const audio = whole.filter((m) => m.type === RtmpMessageType.audio);
  assert.equal(video.length, 50);
  assert.equal(audio.length, 68);
  // first video message: AVC sequence header (keyframe, AVC, packet type 0)
  assert.deepEqual([...(video[0] as RtmpMessage).payload.subarray(0, 2)], [0x17, 0x00]);
  // media timestamps never go backwards per kind and stay on message stream 1
  for (const list of [video, audio]) {
    for (let i = 1; i < list.length; i++) {
      assert.ok((list[i] as RtmpMessage).timestamp >= (list[i - 1] as RtmpMessage).timestamp);
      assert.equal((list[i] as RtmpMessage).streamId, 1);
    }
  }
  // the capture is cropped mid-message: everything before the crop was complete
  assert.ok(whole.length >= 124);
});

test('chunk stream: one byte per push gives the same messages as one push', () => {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
  assert.deepEqual(summary(readAll(chunks)), summary(whole));
});

test('chunk stream property: random split points give the same message list (time-boxed)', () => {
  const expected = summary(whole);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: stream.length }), { maxLength: 400 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const chunks: Uint8Array[] = [];
      let prev = 0;
      for (const p of points) {
        chunks.push(stream.subarray(prev, p));
        prev = p;
      }
      chunks.push(stream.subarray(prev));
      assert.deepEqual(summary(readAll(chunks)), expected);
    }),
    { numRuns: 1000, interruptAfterTimeLimit: 10_000, markInterruptAsFailure: false },
  );
});

test('chunk stream: a message in one chunk is a view into the pushed bytes, a multi-chunk one is copied once', () => {
  const r = new ChunkStreamReader();
  const msgs = r.push(stream);
  const single = msgs.find((m) => m.payload.length <= 128 && m.payload.length > 0) as RtmpMessage;
  assert.equal(single.payload.buffer, stream.buffer);
  const multi = msgs.find((m) => m.payload.length > 128) as RtmpMessage;
  assert.notEqual(multi.payload.buffer, stream.buffer);
  assert.equal(multi.payload.byteLength, multi.payload.buffer.byteLength);
});

/** The capture's messages as outgoing messages. */
const asOut = (msgs: RtmpMessage[]): RtmpOutMessage[] =>
  msgs.map((m) => ({ csid: m.csid, type: m.type, streamId: m.streamId, timestamp: m.timestamp, payload: m.payload }));

for (const chunkSize of [128, 4096, 60000]) {
  for (const absolute of [false, true]) {
    test(`chunk stream: writer → reader round trip (chunk size ${chunkSize}, ${absolute ? 'absolute fmt 0' : 'compressed headers'})`, () => {
      const w = new ChunkStreamWriter({ absolute });
      const parts: Uint8Array[] = [];
      if (chunkSize !== 128) parts.push(w.setChunkSize(chunkSize));
      for (const m of asOut(whole)) parts.push(w.write(m));
      const bytes = concat(parts);
      const back = readAll([bytes]).filter((m) => m.type !== RtmpMessageType.setChunkSize);
      assert.deepEqual(summary(back), summary(whole));
      if (!absolute && chunkSize === 128) {
        // header compression never needs more bytes than ffmpeg's own framing (which also compresses)
        assert.ok(bytes.length <= stream.length, `${bytes.length} vs ${stream.length}`);
      }
    });
  }
}

test('chunk stream: serializeMessage is stateless (same bytes every call) and uses fmt 0 + fmt 3', () => {
  const msg: RtmpOutMessage = { csid: 6, type: 9, streamId: 1, timestamp: 40, payload: [new Uint8Array(100).fill(1), new Uint8Array(100).fill(2)] };
  const a = serializeMessage(msg, 128);
  const b = serializeMessage(msg, 128);
  assert.deepEqual(a, b);
  assert.equal(a.length, 12 + 200 + 1);
  assert.equal(toHex(a.subarray(0, 12)), '06' + '000028' + '0000c8' + '09' + '01000000');
  assert.equal(a[12 + 128], 0xc6); // fmt 3, csid 6
  const [m] = new ChunkStreamReader().push(a);
  assert.deepEqual(m?.payload, concat([new Uint8Array(100).fill(1), new Uint8Array(100).fill(2)]));
});

test('chunk stream: 2-byte and 3-byte chunk stream ids', () => {
  const cases: [number, string][] = [
    [63, '3f'],
    [64, '0000'],
    [319, '00ff'],
    [320, '010001'],
    [65599, '01ffff'],
  ];
  for (const [csid, basic] of cases) {
    const bytes = serializeMessage({ csid, type: 8, streamId: 1, timestamp: 5, payload: new Uint8Array(300).fill(7) }, 128);
    assert.equal(toHex(bytes.subarray(0, basic.length / 2)), basic, `csid ${csid}`);
    // continuation chunks repeat the basic header with fmt 3
    const cont = bytes[basic.length / 2 + 11 + 128] as number;
    assert.equal(cont >> 6, 3);
    const [m] = new ChunkStreamReader().push(bytes);
    assert.equal(m?.csid, csid);
    assert.equal(m?.payload.length, 300);
  }
});

test('chunk stream: extended timestamp repeated in fmt-3 chunks (spec errata, ffmpeg, OBS)', () => {
  const ts = 0x1234567; // above 0xFFFFFF
  const bytes = serializeMessage({ csid: 4, type: 8, streamId: 1, timestamp: ts, payload: new Uint8Array(200).fill(9) }, 128);
  // fmt 0 header: ts field 0xFFFFFF, then the 4-byte extended timestamp; the fmt-3 chunk repeats it
  assert.equal(toHex(bytes.subarray(0, 16)), '04' + 'ffffff' + '0000c8' + '08' + '01000000' + '01234567');
  assert.equal(toHex(bytes.subarray(16 + 128, 16 + 128 + 5)), 'c4' + '01234567');
  const r = new ChunkStreamReader();
  const [m] = r.push(bytes);
  assert.equal(m?.timestamp, ts);
  assert.deepEqual(m?.payload, new Uint8Array(200).fill(9));
  assert.equal(r.peerRepeatsExtendedTimestamp, true);
});

test('chunk stream: extended timestamp NOT repeated in fmt-3 chunks (older encoders) is detected', () => {
  const ts = 0x1234567;
  const full = serializeMessage({ csid: 4, type: 8, streamId: 1, timestamp: ts, payload: new Uint8Array(300).fill(9) }, 128);
  // drop the 4 repeated bytes after each of the two fmt-3 basic headers
  const first = 16 + 128;
  const second = first + 5 + 128;
  const stripped = concat([full.subarray(0, first + 1), full.subarray(first + 5, second + 1), full.subarray(second + 5)]);
  assert.equal(stripped.length, full.length - 8);
  const r = new ChunkStreamReader();
  const msgs: RtmpMessage[] = [];
  for (const b of stripped) msgs.push(...r.push(Uint8Array.of(b)));
  assert.equal(r.peerRepeatsExtendedTimestamp, false);
  assert.equal(msgs.length, 1);
  assert.equal(msgs[0]?.timestamp, ts);
  assert.deepEqual(msgs[0]?.payload, new Uint8Array(300).fill(9));
});

test('chunk stream: 32-bit timestamp rollover gives increasing extended timestamps', () => {
  const base = 2 ** 32 - 40;
  const stamps = [base, base + 20, base + 40, base + 60, base + 80, 2 ** 33 + 5];
  for (const absolute of [false, true]) {
    const w = new ChunkStreamWriter({ absolute });
    const bytes = concat(stamps.map((timestamp) => w.write({ csid: 6, type: 9, streamId: 1, timestamp, payload: Uint8Array.of(0x27, 1) })));
    const got = new ChunkStreamReader().push(bytes).map((m) => m.timestamp);
    // the last one jumps by more than 2^31 at once: only the compressed writer (fmt 0 on a > 2^32 delta) keeps it exact
    assert.deepEqual(got.slice(0, 5), stamps.slice(0, 5), absolute ? 'absolute' : 'compressed');
  }
  // wire values: fmt 0 with 0xFFFFFFD8, then fmt 2 deltas of 20 crossing 2^32
  const w = new ChunkStreamWriter();
  const a = w.write({ csid: 6, type: 9, streamId: 1, timestamp: base, payload: Uint8Array.of(1) });
  const b = w.write({ csid: 6, type: 9, streamId: 1, timestamp: base + 20, payload: Uint8Array.of(1) });
  const c = w.write({ csid: 6, type: 9, streamId: 1, timestamp: base + 40, payload: Uint8Array.of(1) });
  const d = w.write({ csid: 6, type: 9, streamId: 1, timestamp: base + 60, payload: Uint8Array.of(1) });
  assert.equal(toHex(a), '06ffffff' + '000001' + '09' + '01000000' + 'ffffffd8' + '01');
  assert.equal(toHex(b), '86000014' + '01'); // fmt 2, delta 20
  assert.equal(toHex(c), 'c6' + '01'); // fmt 3 new message: same delta as the fmt-2 header
  assert.equal(toHex(d), 'c6' + '01');
  assert.deepEqual(new ChunkStreamReader().push(concat([a, b, c, d])).map((m) => m.timestamp), [base, base + 20, base + 40, base + 60]);
});

test('chunk stream: a second chunk stream starting after a rollover joins the same epoch', () => {
  const r = new ChunkStreamReader();
  const w = new ChunkStreamWriter({ absolute: true });
  const ts = [2 ** 32 - 10, 2 ** 32 + 10];
  r.push(w.write({ csid: 6, type: 9, streamId: 1, timestamp: ts[0] as number, payload: Uint8Array.of(1) }));
  r.push(w.write({ csid: 6, type: 9, streamId: 1, timestamp: ts[1] as number, payload: Uint8Array.of(1) }));
  const [audio] = r.push(w.write({ csid: 4, type: 8, streamId: 1, timestamp: 2 ** 32 + 12, payload: Uint8Array.of(1) }));
  assert.equal(audio?.timestamp, 2 ** 32 + 12);
});

test('chunk stream: fmt 3 after fmt 0 starts a message one "timestamp field" later (ffmpeg semantics)', () => {
  // fmt 0 ts 1000, len 1 type 8 on csid 4; then a bare fmt-3 chunk starting a new message
  const bytes = hex('04 0003e8 000001 08 01000000 aa' + 'c4 bb');
  const msgs = new ChunkStreamReader().push(bytes);
  assert.deepEqual(msgs.map((m) => [m.timestamp, toHex(m.payload)]), [[1000, 'aa'], [2000, 'bb']]);
});

test('chunk stream: Set Chunk Size applies to the very next chunk in the same push', () => {
  const w = new ChunkStreamWriter();
  const bytes = concat([w.setChunkSize(4096), w.write({ csid: 6, type: 9, streamId: 1, timestamp: 0, payload: new Uint8Array(3000).fill(3) })]);
  const r = new ChunkStreamReader();
  const msgs = r.push(bytes);
  assert.equal(r.chunkSize, 4096);
  assert.equal(msgs.length, 2);
  assert.equal(msgs[1]?.payload.length, 3000);
  assert.equal(msgs[1]?.payload.buffer, bytes.buffer); // one chunk now: a view
});

test('chunk stream limits: Set Chunk Size 0, over 16 MiB, or with bit 31 set → LimitError', () => {
  for (const size of ['00000000', '01000001', '80000000', 'ffffffff']) {
    const bytes = hex('02 000000 000004 01 00000000' + size);
    assert.throws(() => new ChunkStreamReader().push(bytes), (e) => e instanceof LimitError && e.what === 'rtmp chunk size', size);
  }
  // exactly 16 MiB is allowed
  const r = new ChunkStreamReader();
  r.push(hex('02 000000 000004 01 00000000 01000000'));
  assert.equal(r.chunkSize, 16 * 1024 * 1024);
  assert.throws(() => new ChunkStreamWriter({ chunkSize: 0 }), LimitError);
  assert.throws(() => setChunkSizeMessage(16 * 1024 * 1024 + 1), LimitError);
});

test('chunk stream limits: message length, chunk streams, pending bytes', () => {
  // 0xFFFFFF-byte message announced: over the default 8 MiB limit as soon as the header arrives
  assert.throws(() => new ChunkStreamReader().push(hex('06 000000 ffffff 09 01000000')), (e) => e instanceof LimitError && e.what === 'rtmp message length');
  assert.equal(RTMP_DEFAULT_MAX_MESSAGE_LENGTH, 8 * 1024 * 1024);
  assert.throws(() => new ChunkStreamReader({ maxMessageLength: 100 }).push(hex('06 000000 000065 09 01000000')), LimitError);
  // a 65th chunk stream
  const many = concat(Array.from({ length: 65 }, (_, i) => serializeMessage({ csid: 3 + i, type: 8, streamId: 1, timestamp: 0, payload: Uint8Array.of(1) }, 128)));
  assert.throws(() => new ChunkStreamReader().push(many), (e) => e instanceof LimitError && e.what === 'rtmp chunk streams');
  // partial messages on several csids adding up past the pending bound
  // (each first chunk complete: 128 of 1024 bytes)
  const partial = concat([3, 4, 5].map((csid) => concat([hex(`0${csid} 000000 000400 09 01000000`), new Uint8Array(128)])));
  assert.throws(() => new ChunkStreamReader({ maxPendingBytes: 2048 }).push(partial), (e) => e instanceof LimitError && e.what === 'rtmp pending message bytes');
});

test('chunk stream: Abort drops the partial message on that csid', () => {
  const w = new ChunkStreamWriter();
  const big = w.write({ csid: 6, type: 9, streamId: 1, timestamp: 0, payload: new Uint8Array(300).fill(1) });
  const r = new ChunkStreamReader({ maxPendingBytes: 300 });
  assert.deepEqual(r.push(big.subarray(0, 12 + 128)), []);
  const abort = w.write(abortMessage(6));
  const msgs = r.push(abort);
  assert.equal(msgs[0]?.type, RtmpMessageType.abort);
  assert.equal(parseControlU32((msgs[0] as RtmpMessage).payload), 6);
  // the csid is free again, and its pending bytes were released (the limit is exactly one 300-byte message)
  const again = r.push(serializeMessage({ csid: 6, type: 9, streamId: 1, timestamp: 5, payload: new Uint8Array(300).fill(2) }, 128));
  assert.equal(again.length, 1);
  assert.deepEqual(again[0]?.payload, new Uint8Array(300).fill(2));
});

test('chunk stream malformed: fmt 1/2/3 on a chunk stream with no previous header', () => {
  for (const b of ['44 000000 000001 08 00', '84 000000', 'c4 00']) {
    assert.throws(() => new ChunkStreamReader().push(hex(b)), ParseError, b);
  }
  assert.throws(() => new ChunkStreamReader().push(hex('02 000000 000002 01 00000000 0001')), ParseError); // 2-byte set chunk size
});

test('chunk stream: acknowledgement after the peer-declared window', () => {
  const r = new ChunkStreamReader();
  const w = new ChunkStreamWriter();
  r.push(w.write(windowAckSizeMessage(1000)));
  assert.equal(r.peerWindowAckSize, 1000);
  assert.equal(r.takeAcknowledgement(), null);
  const media = w.write({ csid: 6, type: 9, streamId: 1, timestamp: 0, payload: new Uint8Array(1000) });
  r.push(media);
  const seq = r.takeAcknowledgement();
  assert.equal(seq, r.bytesReceived);
  assert.equal(r.takeAcknowledgement(), null);
  assert.equal(toHex(serializeMessage(acknowledgementMessage(seq as number), 128)), '020000000000040300000000' + (seq as number).toString(16).padStart(8, '0'));
});

test('chunk stream: protocol control and user control builders (exact bytes)', () => {
  const s = (m: RtmpOutMessage): string => toHex(serializeMessage(m, 128));
  assert.equal(s(setChunkSizeMessage(4096)), '02000000000004010000000000001000');
  assert.equal(s(windowAckSizeMessage(2500000)), '0200000000000405000000000026 25a0'.replace(' ', ''));
  assert.equal(s(setPeerBandwidthMessage(2500000, 2)), '020000000000050600000000002625a002');
  assert.equal(s(streamBeginMessage(1)), '020000000000060400000000' + '0000' + '00000001');
  assert.equal(s(pingRequestMessage(0x1234)), '020000000000060400000000' + '0006' + '00001234');
  assert.deepEqual(parseUserControl(hex('0006 00001234')), { event: UserControlEvent.pingRequest, value: 0x1234 });
  assert.deepEqual(parseUserControl(hex('0003 00000001 00000bb8')), { event: UserControlEvent.setBufferLength, value: 1, bufferMs: 3000 });
  assert.throws(() => parseUserControl(hex('0003 00000001')), ParseError);
  assert.throws(() => parseUserControl(hex('0006')), ParseError);
});

test('chunk stream property: random and mutated bytes throw only StreamgateError', () => {
  const seed = stream.subarray(0, 4000);
  const mutated = fc
    .array(fc.tuple(fc.nat(seed.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 })
    .map((edits) => {
      const c = Uint8Array.from(seed);
      for (const [i, v] of edits) c[i] = v;
      return c;
    });
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 2000 }), mutated), fc.integer({ min: 1, max: 300 }), (bytes, step) => {
      const r = new ChunkStreamReader();
      try {
        for (let i = 0; i < bytes.length; i += step) r.push(bytes.subarray(i, i + step));
      } catch (e) {
        if (!(e instanceof StreamgateError)) throw e;
      }
    }),
    { numRuns: 1500, interruptAfterTimeLimit: 5000, markInterruptAsFailure: false },
  );
});
