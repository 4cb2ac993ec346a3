import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RtmpPlaySink, type RtmpPlayConnection } from '../../../src/egress/rtmp/from-bus.js';
import { serializeMessage, ChunkStreamReader } from '../../../src/ingest/rtmp/chunk-stream.js';
import { Track } from '../../../src/media/bus/track.js';
import { makeFrame, type Frame } from '../../../src/media/bus/frame.js';
import { Stream, catchUpBurst } from '../../../src/media/bus/stream.js';
import { parseVideoTag } from '../../../src/media/flv/tag.js';

const CHUNK = 4096;

function fakeConn(): RtmpPlayConnection & { writes: Uint8Array[][] } {
  const writes: Uint8Array[][] = [];
  return {
    writes,
    streamId: 1,
    serialize: (msg) => serializeMessage(msg, CHUNK),
    send: (b) => void writes.push([b]),
    sendMany: (parts) => void writes.push([...parts]),
    bufferedBytes: () => 0,
    end() {},
  };
}

function tracks(): [Track, Track] {
  const v = new Track({ codec: 'h264', clockRate: 90000 });
  v.setH264Params(Uint8Array.of(0x67, 0x42, 0xc0, 0x1e, 0xda), Uint8Array.of(0x68, 0xce, 0x3c, 0x80), { width: 320, height: 240 });
  const a = new Track({ codec: 'aac', clockRate: 44100, sampleRate: 44100, channels: 1 });
  a.setAudioConfig(Uint8Array.of(0x12, 0x08), 44100, 1);
  return [v, a];
}

/** Every RTMP message a player would read from the bytes written. */
function messages(writes: Uint8Array[][]) {
  const r = new ChunkStreamReader();
  // the player learned our chunk size from Set Chunk Size at connect
  r.push(serializeMessage({ csid: 2, type: 1, streamId: 0, timestamp: 0, payload: Uint8Array.of(0, 0, CHUNK >> 8, 0) }, 128));
  const all = writes.flat();
  const out = [];
  for (const w of all) out.push(...r.push(w));
  return out;
}

test('players get metadata, sequence headers, then frames; audio rides with the next video frame in one write', () => {
  const s = new Stream('live/x');
  const [v, a] = s.setTracks(tracks()) as [Track, Track];
  const conn = fakeConn();
  const sink = new RtmpPlaySink(conn);
  sink.start(s);
  sink.writeFrame(makeFrame(v, 0, 0, true, [Uint8Array.of(0x65, 1, 2, 3)]));
  sink.writeFrame(makeFrame(a, 0, 0, true, [Uint8Array.of(0x21, 9)]));
  sink.writeFrame(makeFrame(a, 1024, 1024, true, [Uint8Array.of(0x21, 8)]));
  assert.equal(conn.writes.length, 4, 'metadata, 2 sequence headers, first video; audio held');
  sink.writeFrame(makeFrame(v, 3000, 6000, false, [Uint8Array.of(0x41, 7)]));
  assert.equal(conn.writes.length, 5);
  assert.equal(conn.writes[4]!.length, 3, 'two audio frames + video in one write');
  const msgs = messages(conn.writes);
  assert.deepEqual(msgs.map((m) => m.type), [18, 9, 8, 9, 8, 8, 9]);
  const last = parseVideoTag(msgs[6]!.payload);
  assert.equal(msgs[6]!.timestamp, 33);
  assert.equal(last.kind === 'avc' && last.cts, 33);
});

test('a re-timed catch-up frame is the shared chunks with only timestamp and composition time patched', async () => {
  const s = new Stream('live/y');
  const [v] = s.setTracks(tracks()) as [Track, Track];
  const big = new Uint8Array(10_000).fill(7); // spans 3 chunks
  big[0] = 0x41;
  const gop: Frame[] = [];
  for (let i = 0; i < 30; i++) {
    const f = makeFrame(v, i * 3000, i * 3000 + 6000, i === 0, [i === 0 ? Uint8Array.of(0x65, 1) : big]);
    s.write(f);
    gop.push(f);
  }
  const burst = catchUpBurst(s.cachedFrames());
  const conn = fakeConn();
  const sink = new RtmpPlaySink(conn);
  sink.start(s);
  for (const f of burst) sink.writeFrame(f);
  await Promise.resolve(); // the burst goes out as one write in a microtask
  assert.equal(conn.writes.length, 4, 'metadata, 2 sequence headers, the burst');
  const patched = messages(conn.writes).filter((m) => m.type === 9).slice(1);
  assert.equal(patched.length, 30);
  for (let i = 0; i < burst.length; i++) {
    const f = burst[i]!;
    const m = patched[i]!;
    assert.equal(m.timestamp, Math.round(f.dts / 90));
    const tag = parseVideoTag(m.payload);
    assert.equal(tag.kind === 'avc' && tag.cts, Math.round((f.pts - f.dts) / 90));
    assert.equal(m.payload.byteLength, 5 + 4 + f.au[0]!.byteLength);
  }
});
