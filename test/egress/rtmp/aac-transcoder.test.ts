import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { aacTranscoderArgs, AacTranscoderPool, AdtsReader, OpusToAacTimeline, oggPage, opusHead } from '../../../src/egress/rtmp/aac-transcoder.js';
import { OggReader, opusPacketSamples } from '../../../src/egress/webrtc/opus-transcoder.js';
import { makeFrame, type Frame } from '../../../src/media/bus/frame.js';
import { Track } from '../../../src/media/bus/track.js';
import { parseAudioSpecificConfig } from '../../../src/media/codecs/aac.js';
import { hasCommand, waitFor } from '../../helpers/media-tools.js';
import { RtmpPlaySink, type RtmpPlayConnection } from '../../../src/egress/rtmp/from-bus.js';
import { rtmpAacTranscoders, TRANSCODER_IDLE_MS } from '../../../src/egress/rtmp/aac-transcoder.js';
import { serializeMessage, ChunkStreamReader } from '../../../src/ingest/rtmp/chunk-stream.js';
import { Stream } from '../../../src/media/bus/stream.js';

const FIXTURE = 'test/fixtures/rtmp/opus-48000-stereo-1s.ogg';

/** The fixture's Opus packets (OpusHead and OpusTags dropped). */
function opusPackets(): Uint8Array[] {
  return new OggReader().push(readFileSync(FIXTURE)).slice(2).map((p) => p.data);
}

test('timeline maps output samples back to packet dts across a gap', () => {
  const t = new OpusToAacTimeline();
  t.push(1000, 960);
  t.push(1960, 960);
  t.push(10_000, 960); // DTX gap: the next packet came 8 s... later on the input clock
  assert.equal(t.map(0), 1000);
  assert.equal(t.map(1000), 2000);
  assert.equal(t.map(1920), 10_000);
  assert.equal(t.map(2000), 10_080);
  assert.equal(t.map(-1024), 1000 - 1024); // priming extrapolates before the first packet
});

test('ffmpeg arguments: Ogg/Opus in, 48 kHz AAC at 128 kbit/s with the input\'s channels out as ADTS, flushed', () => {
  for (const channels of [1, 2]) {
    assert.deepEqual(aacTranscoderArgs(channels), [
      '-hide_banner', '-loglevel', 'error', '-nostdin', '-fflags', '+nobuffer', '-probesize', '32', '-analyzeduration', '0',
      '-f', 'ogg', '-i', 'pipe:0',
      '-vn', '-c:a', 'aac', '-b:a', '128k', '-ar', '48000', '-ac', String(channels),
      '-f', 'adts', '-flush_packets', '1', 'pipe:1',
    ]);
  }
});

test('ogg page round-trips through the Ogg reader', () => {
  const big = new Uint8Array(600).map((_, i) => i & 0xff);
  const pages = [oggPage(opusHead(2), 0n, 7, 0, 2), oggPage(big, 960n, 7, 1, 0)];
  const bytes = new Uint8Array(pages[0]!.byteLength + pages[1]!.byteLength);
  bytes.set(pages[0]!, 0);
  bytes.set(pages[1]!, pages[0]!.byteLength);
  const got = new OggReader().push(bytes);
  assert.equal(got.length, 2);
  assert.deepEqual(got[1]!.data, big);
  assert.equal(got[1]!.granule, 960);
});

test('ADTS reader reassembles frames split at every byte', { skip: !hasCommand('ffmpeg') }, async () => {
  const { execFileSync } = await import('node:child_process');
  const adts = execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'sine=sample_rate=48000', '-t', '0.2', '-c:a', 'aac', '-f', 'adts', 'pipe:1']);
  const whole = new AdtsReader().push(new Uint8Array(adts));
  assert.ok(whole.length >= 9);
  const r = new AdtsReader();
  const bytewise = [];
  for (let i = 0; i < adts.byteLength; i++) bytewise.push(...r.push(new Uint8Array(adts.subarray(i, i + 1))));
  assert.deepEqual(bytewise.map((f) => f.payload), whole.map((f) => f.payload));
  assert.throws(() => new AdtsReader().push(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])), { code: 'SG_PARSE' });
});

test('ffmpeg fixture Opus → AAC frames on the input timeline, one child shared by two readers', { skip: !hasCommand('ffmpeg') }, async () => {
  const packets = opusPackets();
  assert.ok(packets.length >= 45, `${packets.length} packets`);
  const opus = new Track({ codec: 'opus', clockRate: 48000, channels: 2 });
  opus.id = 1;
  const pool = new AacTranscoderPool();
  const got: Frame[][] = [[], []];
  const sinks = got.map((g) => (f: Frame) => g.push(f));
  const t = pool.acquire('live/whip', opus, 2, sinks[0]!);
  assert.equal(pool.acquire('live/whip', opus, 2, sinks[1]!), t);
  assert.equal(pool.size, 1);
  const start = 48_000 * 5; // the path's timeline is at 5 s
  let dts = start;
  for (const p of packets) {
    const f = makeFrame(opus, dts, dts, true, [p]);
    t.feed(f);
    t.feed(f); // the second reader delivers the same frame: written once
    dts += opusPacketSamples(p);
  }
  assert.equal(t.framesIn, packets.length);
  // ~1 s in: 46 AAC frames of 1024 samples, less the encoder's look-ahead still inside ffmpeg
  await waitFor(() => got[0]!.length >= 40 || null, 15_000);
  const out = got[0]!;
  assert.deepEqual(got[1], out, 'both readers get the same Frame objects');
  assert.equal(t.track.codec, 'aac');
  assert.equal(t.track.id, 2);
  const asc = parseAudioSpecificConfig(t.track.config!);
  assert.equal(asc.sampleRate, 48000);
  assert.equal(asc.channels, 2);
  assert.equal(asc.objectType, 2);
  for (let i = 1; i < out.length; i++) assert.equal(out[i]!.dts - out[i - 1]!.dts, 1024, `frame ${i}`);
  // frame 0 is the encoder's priming (1024 samples before the input), frame 1 starts at the first input sample
  assert.equal(out[0]!.dts, start - 1024);
  assert.equal(out[1]!.dts, start);
  assert.ok(out.every((f) => f.track === t.track && f.au.length === 1 && f.au[0]!.byteLength > 0));
  pool.release('live/whip', sinks[0]!);
  assert.ok(t.running);
  pool.release('live/whip', sinks[1]!);
  assert.equal(t.running, false);
  assert.equal(pool.size, 0);
});

test('e2e: an H.264 + Opus stream reaches an RTMP player of a real gateway as h264 + aac', { skip: !hasCommand('ffmpeg') || !hasCommand('ffprobe') }, async () => {
  const { startTestGateway } = await import('../../helpers/gateway.js');
  const { splitAnnexB, nalType } = await import('../../../src/media/codecs/h264.js');
  const { ffprobeStreams } = await import('../../helpers/media-tools.js');
  const gw = await startTestGateway('', ['rtmp']);
  let timer: NodeJS.Timeout | undefined;
  try {
    const pub = {
      id: 'whip1', protocol: 'webrtc' as const, role: 'publisher' as const, path: '', remoteAddr: '127.0.0.1:9', state: 'publish',
      createdAt: Date.now(), bytesIn: 0, bytesOut: 0, close() {},
    };
    const stream = await gw.registry.addPublisher('live/whip', pub, { protocol: 'webrtc', ip: '127.0.0.1' });
    // the fixture's first picture (an IDR with its SPS and PPS), sent 25 times a second: every frame decodable
    const nals = splitAnnexB(readFileSync('test/fixtures/h264/libx264-320x240-baseline.h264'));
    const picture = nals.slice(0, nals.findIndex((n) => nalType(n) === 5) + 1); // one slice per picture (crf 40, 320x240)
    const v = new Track({ codec: 'h264', clockRate: 90000 });
    v.setH264Params(nals.find((n) => nalType(n) === 7)!, nals.find((n) => nalType(n) === 8)!, { width: 320, height: 240 });
    const a = new Track({ codec: 'opus', clockRate: 48000, channels: 2 });
    const [tv, ta] = stream.setTracks([v, a]) as [Track, Track];
    const packets = opusPackets();
    let tick = 0;
    timer = setInterval(() => {
      const now = tick * 960; // 20 ms ticks at 48 kHz
      if (tick % 2 === 0) stream.write(makeFrame(tv, tick * 1800, tick * 1800, true, picture));
      stream.write(makeFrame(ta, now, now, true, [packets[tick % packets.length]!]));
      tick++;
    }, 20);
    const streams = await ffprobeStreams(`rtmp://127.0.0.1:${gw.ports.rtmp}/live/whip`, [], 30_000);
    const byType = Object.fromEntries(streams.map((s) => [s.codec_type, s]));
    assert.equal(byType.video?.codec_name, 'h264');
    assert.equal(byType.audio?.codec_name, 'aac');
    assert.equal(byType.audio?.sample_rate, '48000');
    // ffprobe has hung up and the server detached its reader: nothing feeds the path's transcoder any more, so
    // its idle watchdog stops the child
    await waitFor(() => rtmpAacTranscoders.size === 0 || null, TRANSCODER_IDLE_MS + 3000);
  } finally {
    clearInterval(timer);
    await gw.close('test done');
  }
});

test('RtmpPlaySink: Opus goes out as AAC (metadata audiocodecid 10, AAC sequence header, raw frames); the child stops with the last player', { skip: !hasCommand('ffmpeg') }, async () => {
  const CHUNK = 4096;
  const writes: Uint8Array[] = [];
  const conn: RtmpPlayConnection = {
    streamId: 1,
    serialize: (msg) => serializeMessage(msg, CHUNK),
    send: (b) => void writes.push(b),
    sendMany: (parts) => void writes.push(...parts),
    bufferedBytes: () => 0,
    end() {},
  };
  const s = new Stream('live/whip-sink');
  const v = new Track({ codec: 'h264', clockRate: 90000 });
  v.setH264Params(Uint8Array.of(0x67, 0x42, 0xc0, 0x1e, 0xda), Uint8Array.of(0x68, 0xce, 0x3c, 0x80), { width: 320, height: 240 });
  const [, a] = s.setTracks([v, new Track({ codec: 'opus', clockRate: 48000, channels: 2 })]) as [Track, Track];
  const sink = new RtmpPlaySink(conn);
  sink.start(s);
  assert.equal(rtmpAacTranscoders.size, 1);
  let dts = 0;
  for (const p of opusPackets()) {
    sink.writeFrame(makeFrame(a, dts, dts, true, [p]));
    dts += opusPacketSamples(p);
  }
  const reader = new ChunkStreamReader();
  reader.push(serializeMessage({ csid: 2, type: 1, streamId: 0, timestamp: 0, payload: Uint8Array.of(0, 0, CHUNK >> 8, 0) }, 128));
  const msgs: { type: number; timestamp: number; payload: Uint8Array }[] = [];
  await waitFor(() => {
    for (const w of writes.splice(0)) msgs.push(...reader.push(w));
    return msgs.filter((m) => m.type === 8).length >= 20 || null;
  }, 15_000);
  const meta = Buffer.from(msgs.find((m) => m.type === 18)!.payload);
  const at = meta.indexOf('audiocodecid');
  assert.ok(at > 0);
  assert.equal(meta[at + 12], 0); // AMF0 number
  assert.equal(meta.readDoubleBE(at + 13), 10);
  const audio = msgs.filter((m) => m.type === 8);
  assert.deepEqual([...audio[0]!.payload.subarray(0, 2)], [0xaf, 0]); // AAC sequence header
  assert.equal(parseAudioSpecificConfig(audio[0]!.payload.subarray(2)).sampleRate, 48000);
  assert.ok(audio.slice(1).every((m) => m.payload[0] === 0xaf && m.payload[1] === 1));
  for (let i = 2; i < audio.length; i++) assert.ok(audio[i]!.timestamp > audio[i - 1]!.timestamp);
  sink.close('done');
  assert.equal(rtmpAacTranscoders.size, 0);
});
