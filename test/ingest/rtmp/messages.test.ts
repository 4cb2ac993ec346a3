import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ParseError, StreamgateError } from '../../../src/errors.js';
import { ChunkStreamReader, RtmpMessageType, serializeMessage, type RtmpMessage } from '../../../src/ingest/rtmp/chunk-stream.js';
import { commandMessage, dataMessage, parseCommand, RtmpMediaDemuxer, type RtmpMediaAction } from '../../../src/ingest/rtmp/messages.js';
import { amf0EcmaArray, amf0Object, encodeAmf0, type Amf0Value } from '../../../src/media/flv/amf0.js';

/** An incoming message of stream `streamId`. */
function msg(type: number, streamId: number, timestamp: number, payload: Uint8Array): RtmpMessage {
  return { csid: 6, type, streamId, timestamp, payload };
}

/** One FLV tag of an aggregate message: 11-byte header, body, 4-byte back pointer (spec §7.1.6). */
function tag(type: number, ts: number, body: number[]): number[] {
  const size = body.length;
  return [type, size >> 16, (size >> 8) & 0xff, size & 0xff, (ts >> 16) & 0xff, (ts >> 8) & 0xff, ts & 0xff, (ts >>> 24) & 0xff, 0, 0, 0, ...body, 0, 0, 0, 11 + size];
}

const summary = (out: RtmpMediaAction[]): (string | number)[][] =>
  out.map((a) => [a.kind === 'data' ? a.name : a.kind, a.streamId, a.timestamp, a.body.length]);

test('commandMessage: AMF0 command (type 20), timestamp 0, the bytes an FMS onBWDone has', () => {
  const m = commandMessage(3, 0, 'onBWDone', 0, null);
  assert.equal(m.type, RtmpMessageType.commandAmf0);
  assert.equal(m.type, 20);
  assert.deepEqual([m.csid, m.streamId, m.timestamp], [3, 0, 0]);
  assert.deepEqual(
    Buffer.from(m.payload as Uint8Array).toString('hex'),
    // string marker, length 8, "onBWDone"; number marker, 0.0 as a double; null marker
    '02' + '0008' + Buffer.from('onBWDone').toString('hex') + '00' + '0000000000000000' + '05',
  );
});

test('dataMessage: AMF0 data (type 18) on its chunk stream and message stream, timestamp 0', () => {
  const m = dataMessage(5, 1, '|RtmpSampleAccess', true, true);
  assert.deepEqual([m.csid, m.type, m.streamId, m.timestamp], [5, RtmpMessageType.dataAmf0, 1, 0]);
  assert.deepEqual(m.payload, encodeAmf0('|RtmpSampleAccess', true, true));
});

test('parseCommand: round trip through the chunk stream; AMF3 commands skip their format byte', () => {
  const out = commandMessage(3, 0, 'connect', 1, amf0Object({ app: 'live', tcUrl: 'rtmp://h/live' }));
  const [back] = new ChunkStreamReader().push(serializeMessage(out, 128));
  assert.ok(back);
  const c = parseCommand(back);
  assert.equal(c.name, 'connect');
  assert.equal(c.tx, 1);
  assert.equal(c.values.length, 3);
  const amf3 = parseCommand(msg(RtmpMessageType.commandAmf3, 0, 0, Uint8Array.from([0, ...encodeAmf0('createStream', 2, null)])));
  assert.deepEqual([amf3.name, amf3.tx, amf3.values], ['createStream', 2, ['createStream', 2, null]]);
});

test('parseCommand: a missing transaction id is 0; a name that is not a string or bad AMF0 is a ParseError', () => {
  assert.equal(parseCommand(msg(20, 0, 0, encodeAmf0('onStatus'))).tx, 0);
  assert.equal(parseCommand(msg(20, 0, 0, encodeAmf0('x', 'not a number'))).tx, 0);
  assert.throws(() => parseCommand(msg(20, 0, 0, encodeAmf0(42, 1))), (e: unknown) => e instanceof ParseError && /not a string/.test(e.message));
  assert.throws(() => parseCommand(msg(20, 0, 0, Uint8Array.of(0x02, 0x00, 0x09, 0x61))), ParseError);
});

test('RtmpMediaDemuxer: audio and video of accepted streams become media actions; others are counted', () => {
  const d = new RtmpMediaDemuxer((id) => id === 1);
  const out: RtmpMediaAction[] = [];
  assert.equal(d.push(msg(RtmpMessageType.video, 1, 40, Uint8Array.of(0x17, 1)), out), true);
  assert.equal(d.push(msg(RtmpMessageType.audio, 1, 41, Uint8Array.of(0xaf, 1, 9)), out), true);
  assert.equal(d.push(msg(RtmpMessageType.audio, 2, 42, Uint8Array.of(0xaf, 1, 9)), out), true);
  assert.deepEqual(summary(out), [
    ['video', 1, 40, 2],
    ['audio', 1, 41, 3],
  ]);
  assert.equal(d.droppedMessages, 1);
  assert.equal(d.badDataMessages, 0);
});

test('RtmpMediaDemuxer: commands, user control and protocol control are not media: false, nothing pushed', () => {
  const d = new RtmpMediaDemuxer(() => true);
  const out: RtmpMediaAction[] = [];
  for (const type of [1, 3, 4, 5, 6, RtmpMessageType.commandAmf0, RtmpMessageType.commandAmf3]) {
    assert.equal(d.push(msg(type, 0, 0, encodeAmf0('x')), out), false, `type ${type}`);
  }
  assert.deepEqual(out, []);
  assert.equal(d.droppedMessages, 0);
});

test('RtmpMediaDemuxer: data messages: @setDataFrame stripped, AMF3 format byte skipped, name and values decoded', () => {
  const d = new RtmpMediaDemuxer(() => true);
  const out: RtmpMediaAction[] = [];
  const meta = amf0EcmaArray({ width: 320, height: 240 });
  d.push(msg(RtmpMessageType.dataAmf0, 1, 0, encodeAmf0('@setDataFrame', 'onMetaData', meta)), out);
  d.push(msg(RtmpMessageType.dataAmf3, 1, 5, Uint8Array.from([0, ...encodeAmf0('onCuePoint', 'x')])), out);
  assert.equal(out.length, 2);
  const [a, b] = out;
  assert.ok(a?.kind === 'data' && b?.kind === 'data');
  assert.equal(a.name, 'onMetaData');
  assert.deepEqual(a.body, encodeAmf0('onMetaData', meta), 'the body is a view starting at the name');
  assert.deepEqual(a.values[0], 'onMetaData');
  assert.deepEqual([b.name, b.timestamp, b.values], ['onCuePoint', 5, ['onCuePoint', 'x']]);
});

test('RtmpMediaDemuxer: undecodable or nameless data is counted, never thrown', () => {
  const d = new RtmpMediaDemuxer(() => true);
  const out: RtmpMediaAction[] = [];
  d.push(msg(RtmpMessageType.dataAmf0, 1, 0, Uint8Array.of(0x02, 0x00, 0x20, 0x41)), out);
  d.push(msg(RtmpMessageType.dataAmf0, 1, 0, encodeAmf0(7, 'x')), out);
  d.push(msg(RtmpMessageType.dataAmf0, 1, 0, encodeAmf0('@setDataFrame')), out);
  assert.deepEqual(out, []);
  assert.equal(d.badDataMessages, 3);
});

test('RtmpMediaDemuxer: @clearDataFrame is dropped silently only when asked (the server side), handed on otherwise', () => {
  const clear = encodeAmf0('@clearDataFrame');
  const server = new RtmpMediaDemuxer(() => true, { dropClearDataFrame: true });
  const out: RtmpMediaAction[] = [];
  server.push(msg(RtmpMessageType.dataAmf0, 1, 0, clear), out);
  assert.deepEqual(out, []);
  assert.deepEqual([server.droppedMessages, server.badDataMessages], [0, 0]);
  const client = new RtmpMediaDemuxer(() => true);
  client.push(msg(RtmpMessageType.dataAmf0, 1, 0, clear), out);
  assert.deepEqual(summary(out), [['@clearDataFrame', 1, 0, clear.length]]);
});

test('RtmpMediaDemuxer: aggregate messages: tags back to back, timestamps relative to the first, other tag types skipped', () => {
  const d = new RtmpMediaDemuxer((id) => id === 1);
  const out: RtmpMediaAction[] = [];
  // timestamps 0x01000010 (extended byte set) and +20 ms; a script tag; an unknown tag type 15
  const base = 0x0100_0010;
  const agg = Uint8Array.from([
    ...tag(8, base, [0xaf, 1, 1]),
    ...tag(9, base + 20, [0x27, 1, 0, 0, 0]),
    ...tag(18, base + 20, [...encodeAmf0('onMetaData', amf0EcmaArray({ width: 2 }))]),
    ...tag(15, base + 30, [1, 2]),
  ]);
  d.push(msg(RtmpMessageType.aggregate, 1, 500, agg), out);
  assert.deepEqual(
    out.map((a) => [a.kind === 'data' ? a.name : a.kind, a.timestamp]),
    [
      ['audio', 500],
      ['video', 520],
      ['onMetaData', 520],
    ],
  );
  assert.deepEqual([...out[1]!.body], [0x27, 1, 0, 0, 0]);
  // an aggregate of a stream that is not accepted: each media tag counts as dropped
  d.push(msg(RtmpMessageType.aggregate, 2, 500, agg), out);
  assert.equal(out.length, 3);
  assert.equal(d.droppedMessages, 3);
});

test('RtmpMediaDemuxer: a tag past the end of an aggregate is a ParseError after the tags before it were pushed', () => {
  const d = new RtmpMediaDemuxer(() => true);
  const out: RtmpMediaAction[] = [];
  const whole = tag(8, 0, [0xaf, 1, 1]);
  const cut = tag(9, 40, [0x27, 1, 0, 0, 0]).slice(0, 13);
  assert.throws(() => d.push(msg(RtmpMessageType.aggregate, 1, 0, Uint8Array.from([...whole, ...cut])), out), (e: unknown) => e instanceof ParseError && e.offset === whole.length);
  assert.deepEqual(summary(out), [['audio', 1, 0, 3]]);
  // fewer than 11 trailing bytes are ignored, as before
  out.length = 0;
  d.push(msg(RtmpMessageType.aggregate, 1, 0, Uint8Array.from([...whole, 9, 0, 0])), out);
  assert.equal(out.length, 1);
});

test('RtmpMediaDemuxer property: random data and aggregate payloads give actions or a StreamgateError, never another throw', () => {
  const seeds = [Uint8Array.from(tag(8, 0, [0xaf, 1, 1])), encodeAmf0('@setDataFrame', 'onMetaData', amf0EcmaArray({ a: 1 }))];
  fc.assert(
    fc.property(
      fc.oneof(fc.constantFrom(...seeds), fc.uint8Array({ maxLength: 300 })),
      fc.constantFrom(RtmpMessageType.aggregate, RtmpMessageType.dataAmf0, RtmpMessageType.dataAmf3),
      (payload, type) => {
        const d = new RtmpMediaDemuxer(() => true);
        const out: RtmpMediaAction[] = [];
        try {
          d.push(msg(type, 1, 0, payload), out);
        } catch (e) {
          assert.ok(e instanceof StreamgateError, String(e));
          assert.equal(type, RtmpMessageType.aggregate, 'only aggregates throw; bad data is counted');
        }
        for (const a of out) assert.ok(a.body.length <= payload.length);
      },
    ),
    { numRuns: 500, interruptAfterTimeLimit: 5000 },
  );
});

test('round trip: what commandMessage writes, parseCommand reads back (values as sent)', () => {
  const cases: Amf0Value[][] = [
    ['_result', 1, amf0Object({ fmsVer: 'FMS/3,0,1,123', capabilities: 31 }), amf0Object({ code: 'NetConnection.Connect.Success' })],
    ['play', 0, null, 'cam1?user=u', -2],
    ['deleteStream', 0, null, 1],
  ];
  for (const values of cases) {
    const out = commandMessage(8, 1, ...values);
    const [back] = new ChunkStreamReader().push(serializeMessage(out, 4096));
    assert.ok(back);
    const c = parseCommand(back);
    assert.equal(c.name, values[0]);
    assert.deepEqual(c.values.length, values.length);
    assert.equal(back.streamId, 1);
  }
});
