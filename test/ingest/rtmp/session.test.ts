import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import fc from 'fast-check';
import {
  RTMP_OUT_CHUNK_SIZE,
  RtmpCsid,
  RtmpServerConnection,
  RtmpSession,
  isValidPath,
  type RtmpAction,
} from '../../../src/ingest/rtmp/session.js';
import {
  ChunkStreamReader,
  ChunkStreamWriter,
  RtmpMessageType,
  UserControlEvent,
  parseControlU32,
  parseUserControl,
  pingRequestMessage,
  serializeMessage,
  windowAckSizeMessage,
  type RtmpMessage,
} from '../../../src/ingest/rtmp/chunk-stream.js';
import { amf0Object, decodeAmf0All, encodeAmf0, isAmf0Object, type Amf0Value } from '../../../src/media/flv/amf0.js';
import { BusyError, NotFoundError, StateError, StreamgateError } from '../../../src/errors.js';

const capture = readFileSync(new URL('../../../../test/fixtures/rtmp/ffmpeg-publish.bin', import.meta.url));

/** A command message as a client sends it. */
function cmd(streamId: number, ...values: Amf0Value[]): RtmpMessage {
  return { csid: streamId === 0 ? 3 : 8, type: RtmpMessageType.commandAmf0, streamId, timestamp: 0, payload: encodeAmf0(...values) };
}

/** Decodes what the session sent, as a client would: [type, ...AMF values] or [type, user control event, value]. */
class Peer {
  readonly reader = new ChunkStreamReader();
  readonly got: { type: number; streamId: number; values: Amf0Value[] }[] = [];
  take(actions: RtmpAction[]): RtmpAction[] {
    for (const a of actions) {
      if (a.type !== 'send') continue;
      for (const m of this.reader.push(a.bytes)) {
        let values: Amf0Value[];
        if (m.type === RtmpMessageType.commandAmf0 || m.type === RtmpMessageType.dataAmf0) values = decodeAmf0All(m.payload);
        else if (m.type === RtmpMessageType.userControl) {
          const uc = parseUserControl(m.payload);
          values = [uc.event, uc.value];
        } else if (m.payload.length >= 4) values = [parseControlU32(m.payload)];
        else values = [];
        this.got.push({ type: m.type, streamId: m.streamId, values });
      }
    }
    return actions.filter((a) => a.type !== 'send');
  }
  /** Names (commands) or types (control) of everything received, then forgets it. */
  drain(): { type: number; streamId: number; values: Amf0Value[] }[] {
    return this.got.splice(0);
  }
}

const code = (v: Amf0Value): unknown => (isAmf0Object(v) ? v['code'] : undefined);

function connected(app = 'live', tcUrl = `rtmp://127.0.0.1/${app}`): { s: RtmpSession; peer: Peer } {
  const s = new RtmpSession();
  const peer = new Peer();
  peer.take(s.push(cmd(0, 'connect', 1, amf0Object({ app, tcUrl, flashVer: 'FMLE/3.0' })), 0));
  peer.drain();
  return { s, peer };
}

test('session: connect replies Window Ack Size, Set Peer Bandwidth, Set Chunk Size, then _result and onBWDone', () => {
  const s = new RtmpSession();
  const peer = new Peer();
  const rest = peer.take(s.push(cmd(0, 'connect', 1, amf0Object({ app: 'live', tcUrl: 'rtmp://h/live', objectEncoding: 3 })), 0));
  assert.deepEqual(rest, []);
  const got = peer.drain();
  assert.deepEqual(got.map((g) => g.type), [5, 6, 1, 20, 20]);
  assert.deepEqual(got[0]?.values, [2_500_000]);
  assert.deepEqual(got[2]?.values, [RTMP_OUT_CHUNK_SIZE]);
  assert.equal(s.chunkSize, RTMP_OUT_CHUNK_SIZE);
  const [name, tx, props, inf] = got[3]?.values ?? [];
  assert.equal(name, '_result');
  assert.equal(tx, 1);
  assert.ok(isAmf0Object(props) && props['fmsVer'] === 'FMS/3,0,1,123' && props['capabilities'] === 31);
  assert.ok(isAmf0Object(inf));
  assert.equal(inf['code'], 'NetConnection.Connect.Success');
  assert.equal(inf['objectEncoding'], 3); // echoed
  assert.equal(got[4]?.values[0], 'onBWDone');
});

test('session: the ffmpeg 5.1 publish capture → publish live/cam1, then metadata and media once accepted', () => {
  const conn = new RtmpServerConnection(0, { handshake: { random: (b) => b.fill(1) } });
  const peer = new Peer();
  const actions: RtmpAction[] = [];
  let handshakeBytes = 0;
  // 64-byte reads; the publish is accepted as soon as it is asked for
  for (let i = 0; i < capture.length; i += 64) {
    for (const a of conn.push(capture.subarray(i, i + 64), i)) {
      if (a.type === 'send' && handshakeBytes === 0) {
        handshakeBytes = a.bytes.length; // S0+S1+S2 (digest mode for ffmpeg), not chunk stream
        continue;
      }
      if (a.type === 'send') peer.take([a]);
      else actions.push(a);
      if (a.type === 'publish') for (const b of conn.resolve(a.streamId, null, i)) peer.take([b]);
    }
  }
  assert.equal(handshakeBytes, 3073);
  assert.equal(conn.handshake.mode, 'digest');
  const publish = actions.find((a) => a.type === 'publish');
  assert.ok(publish?.type === 'publish');
  assert.equal(publish.app, 'live');
  assert.equal(publish.streamName, 'cam1');
  assert.equal(publish.path, 'live/cam1');
  assert.equal(publish.query, '');
  assert.equal(publish.publishType, 'live');
  assert.equal(publish.streamId, 1);
  assert.equal(publish.tcUrl, 'rtmp://127.0.0.1:43727/live');
  // replies, in order: connect (5 messages), releaseStream _result, onFCPublish, createStream _result, Publish.Start
  const got = peer.drain();
  const names = got.map((g) => (typeof g.values[0] === 'string' ? g.values[0] : `type${g.type}`));
  assert.deepEqual(names, ['type5', 'type6', 'type1', '_result', 'onBWDone', '_result', 'onFCPublish', '_result', 'onStatus']);
  assert.deepEqual(got[7]?.values.slice(0, 4), ['_result', 4, null, 1]);
  assert.equal(code(got[8]?.values[3] as Amf0Value), 'NetStream.Publish.Start');
  assert.equal(got[8]?.streamId, 1);
  const media = actions.filter((a) => a.type === 'media');
  const data = media.filter((a) => a.kind === 'data');
  assert.equal(data.length, 1);
  const meta = data[0];
  assert.ok(meta?.type === 'media' && meta.kind === 'data');
  assert.equal(meta.name, 'onMetaData');
  const obj = meta.values[1];
  assert.ok(isAmf0Object(obj) && obj['width'] === 640 && obj['height'] === 360 && obj['videocodecid'] === 7);
  // @setDataFrame stripped: the body starts at the "onMetaData" string
  assert.deepEqual([...meta.body.subarray(0, 3)], [0x02, 0x00, 0x0a]);
  assert.equal(media.filter((a) => a.type === 'media' && a.kind === 'video').length, 50);
  assert.equal(media.filter((a) => a.type === 'media' && a.kind === 'audio').length, 68);
  assert.equal(conn.session.droppedMessages, 0);
});

const pathCases: { name: string; app: string; tcUrl: string; stream: string; path: string; query: string; params: Record<string, string> }[] = [
  { name: 'rtmp://host/live/cam1 (ffmpeg)', app: 'live', tcUrl: 'rtmp://host/live', stream: 'cam1', path: 'live/cam1', query: '', params: {} },
  { name: 'OBS server rtmp://host/live + key cam1', app: 'live', tcUrl: 'rtmp://host:1935/live', stream: 'cam1', path: 'live/cam1', query: '', params: {} },
  {
    name: 'credentials on the app (OBS server "rtmp://host/live?user=U&pass=P")',
    app: 'live?user=U&pass=P',
    tcUrl: 'rtmp://host/live?user=U&pass=P',
    stream: 'cam1',
    path: 'live/cam1',
    query: 'user=U&pass=P',
    params: { user: 'U', pass: 'P' },
  },
  { name: 'key on the stream name (ffmpeg rtmp://host/live/cam1?key=K)', app: 'live', tcUrl: 'rtmp://host/live', stream: 'cam1?key=K', path: 'live/cam1', query: 'key=K', params: { key: 'K' } },
  { name: 'deeper path (ffmpeg puts extra segments in the app)', app: 'live/a', tcUrl: 'rtmp://host/live/a', stream: 'b', path: 'live/a/b', query: '', params: {} },
  { name: 'FMS type prefix on the name', app: 'live', tcUrl: 'rtmp://host/live', stream: 'flv:cam1', path: 'live/cam1', query: '', params: {} },
  { name: 'trailing slash on the app', app: 'live/', tcUrl: 'rtmp://host/live/', stream: 'cam1', path: 'live/cam1', query: '', params: {} },
];

for (const c of pathCases) {
  test(`session path: ${c.name}`, () => {
    for (const verb of ['publish', 'play'] as const) {
      const { s } = connected(c.app, c.tcUrl);
      s.push(cmd(0, 'createStream', 2, null), 0);
      const acts = s.push(cmd(1, verb, 3, null, c.stream), 0);
      const req = acts.find((a) => a.type === verb);
      assert.ok(req !== undefined && (req.type === 'publish' || req.type === 'play'), verb);
      assert.equal(req.path, c.path);
      assert.equal(req.query, c.query);
      assert.deepEqual({ ...req.params }, c.params);
    }
  });
}

test('session path: invalid names are refused with BadName and the connection closes', () => {
  for (const bad of ['', '../etc', 'a b', 'cam1/..', 'x//y']) {
    const { s, peer } = connected();
    s.push(cmd(0, 'createStream', 2, null), 0);
    const acts = peer.take(s.push(cmd(1, 'publish', 3, null, bad), 0));
    assert.deepEqual(acts.map((a) => a.type), ['close'], bad);
    assert.equal(code(peer.drain()[0]?.values[3] as Amf0Value), 'NetStream.Publish.BadName');
  }
  assert.ok(isValidPath('live/cam-1_x.y~z'));
  assert.ok(!isValidPath('live/ca:m'));
});

test('session: a refused publish (lead throws BusyError) gets Publish.BadName, then close', () => {
  const { s, peer } = connected();
  s.push(cmd(0, 'createStream', 2, null), 0);
  s.push(cmd(1, 'publish', 3, null, 'cam1', 'live'), 0);
  const acts = peer.take(s.resolve(1, new BusyError('path live/cam1 already has a publisher'), 0));
  assert.equal(acts.length, 1);
  assert.ok(acts[0]?.type === 'close' && acts[0].error instanceof BusyError);
  const st = peer.drain()[0]?.values[3];
  assert.ok(isAmf0Object(st));
  assert.equal(st['code'], 'NetStream.Publish.BadName');
  assert.equal(st['level'], 'error');
  assert.equal(st['description'], 'path live/cam1 already has a publisher');
  // media after a refusal is ignored
  assert.deepEqual(s.push({ csid: 6, type: 9, streamId: 1, timestamp: 0, payload: Uint8Array.of(0x17) }, 0), []);
});

test('session: play → StreamBegin, Play.Reset, Play.Start, |RtmpSampleAccess; NotFound → StreamNotFound', () => {
  const { s, peer } = connected();
  peer.take(s.push(cmd(0, 'createStream', 2, null), 0));
  const acts = peer.take(s.push(cmd(1, 'play', 3, null, 'cam1', -2000), 0));
  assert.ok(acts[0]?.type === 'play' && acts[0].path === 'live/cam1' && acts[0].start === -2000);
  peer.drain();
  peer.take(s.resolve(1, null, 0));
  const got = peer.drain();
  assert.deepEqual(got[0], { type: RtmpMessageType.userControl, streamId: 0, values: [UserControlEvent.streamBegin, 1] });
  assert.deepEqual(got.slice(1).map((g) => [g.type, g.streamId, g.values[0], code(g.values[3] as Amf0Value)]), [
    [20, 1, 'onStatus', 'NetStream.Play.Reset'],
    [20, 1, 'onStatus', 'NetStream.Play.Start'],
    [18, 1, '|RtmpSampleAccess', undefined],
  ]);
  assert.equal(s.isPlaying(1), true);
  // a publisher leaving: Stream EOF + UnpublishNotify
  peer.take(s.unpublishNotify(1));
  assert.deepEqual(peer.drain().map((g) => g.values[0]), [UserControlEvent.streamEof, 'onStatus']);
  // closeStream ends the play
  assert.deepEqual(s.push(cmd(1, 'closeStream', 0, null), 0), [{ type: 'unplay', streamId: 1 }]);

  const b = connected();
  b.s.push(cmd(0, 'createStream', 2, null), 0);
  b.s.push(cmd(1, 'play', 3, null, 'nope'), 0);
  const refused = b.peer.take(b.s.resolve(1, new NotFoundError('no stream live/nope'), 0));
  assert.equal(refused[0]?.type, 'close');
  assert.equal(code(b.peer.drain()[0]?.values[3] as Amf0Value), 'NetStream.Play.StreamNotFound');
});

test('session: FCPublish, releaseStream, getStreamLength, _checkbw, unknown commands', () => {
  const { s, peer } = connected();
  peer.take(s.push(cmd(0, 'releaseStream', 2, null, 'cam1'), 0));
  peer.take(s.push(cmd(0, 'FCPublish', 3, null, 'cam1'), 0));
  peer.take(s.push(cmd(0, 'getStreamLength', 4, null, 'cam1'), 0));
  peer.take(s.push(cmd(0, '_checkbw', 5, null), 0));
  peer.take(s.push(cmd(0, 'someVendorCall', 6, null), 0));
  peer.take(s.push(cmd(0, 'someNotification', 0, null), 0)); // no transaction id: no answer
  const got = peer.drain().map((g) => g.values);
  assert.deepEqual(got[0], ['_result', 2, null]);
  assert.equal(got[1]?.[0], 'onFCPublish');
  assert.equal(code(got[1]?.[3] as Amf0Value), 'NetStream.Publish.Start');
  assert.deepEqual(got[2], ['_result', 4, null, 0]);
  assert.deepEqual(got[3], ['_result', 5, null]);
  assert.equal(got[4]?.[0], '_error');
  assert.equal(got[4]?.[1], 6);
  assert.equal(code(got[4]?.[3] as Amf0Value), 'NetConnection.Call.Failed');
  assert.equal(got.length, 5);
});

test('session: deleteStream / closeStream of a publisher unpublish; FCUnpublish answers onFCUnpublish', () => {
  const { s, peer } = connected();
  s.push(cmd(0, 'createStream', 2, null), 0);
  s.push(cmd(1, 'publish', 3, null, 'cam1', 'live'), 0);
  s.resolve(1, null, 0);
  const video = { csid: 6, type: 9, streamId: 1, timestamp: 40, payload: Uint8Array.of(0x17, 1) };
  assert.deepEqual(s.push(video, 0), [{ type: 'media', kind: 'video', streamId: 1, timestamp: 40, body: video.payload }]);
  peer.take(s.push(cmd(0, 'FCUnpublish', 4, null, 'cam1'), 0));
  assert.equal(peer.drain()[0]?.values[0], 'onFCUnpublish');
  const acts = peer.take(s.push(cmd(0, 'deleteStream', 5, null, 1), 0));
  assert.deepEqual(acts, [{ type: 'unpublish', streamId: 1 }]);
  assert.deepEqual(s.push(video, 0), []);
  assert.equal(s.droppedMessages, 1);
  // a new stream can publish again on the same connection
  assert.deepEqual(s.push(cmd(0, 'createStream', 6, null), 0).length, 1);
});

test('session: commands before connect close the connection with a StateError', () => {
  const conn = new RtmpServerConnection(0);
  const c = new ChunkStreamWriter();
  const hs = new Uint8Array(1 + 1536 * 2);
  hs[0] = 3;
  conn.push(hs, 0);
  const acts = conn.push(c.write({ csid: 3, type: 20, streamId: 0, timestamp: 0, payload: encodeAmf0('createStream', 1, null) }), 1);
  assert.equal(acts.length, 1);
  assert.ok(acts[0]?.type === 'close' && acts[0].error instanceof StateError);
  assert.deepEqual(conn.push(Uint8Array.of(1, 2, 3), 2), []); // closed: ignores the rest
});

test('session: ping request → ping response; AMF3 command (type 17) connect works', () => {
  const { s, peer } = connected();
  peer.take(s.push({ ...pingRequestMessage(777), timestamp: 0, payload: pingRequestMessage(777).payload as Uint8Array }, 0));
  assert.deepEqual(peer.drain()[0]?.values, [UserControlEvent.pingResponse, 777]);
  const s3 = new RtmpSession();
  const payload = new Uint8Array([0, ...encodeAmf0('connect', 1, amf0Object({ app: 'live' }))]);
  const p3 = new Peer();
  p3.take(s3.push({ csid: 3, type: RtmpMessageType.commandAmf3, streamId: 0, timestamp: 0, payload }, 0));
  assert.equal(code(p3.drain()[3]?.values[3] as Amf0Value), 'NetConnection.Connect.Success');
  assert.equal(s3.app, 'live');
});

test('session: aggregate messages are split into their FLV tags', () => {
  const { s } = connected();
  s.push(cmd(0, 'createStream', 2, null), 0);
  s.push(cmd(1, 'publish', 3, null, 'cam1'), 0);
  s.resolve(1, null, 0);
  // two tags: audio at tag time 1000, video at 1040; back pointers after each
  const tag = (type: number, ts: number, body: number[]): number[] => [type, 0, 0, body.length, (ts >> 16) & 0xff, (ts >> 8) & 0xff, ts & 0xff, 0, 0, 0, 0, ...body, 0, 0, 0, 11 + body.length];
  const payload = Uint8Array.from([...tag(8, 1000, [0xaf, 1, 9]), ...tag(9, 1040, [0x27, 1])]);
  const acts = s.push({ csid: 6, type: RtmpMessageType.aggregate, streamId: 1, timestamp: 5000, payload }, 0);
  assert.deepEqual(acts.map((a) => (a.type === 'media' ? [a.kind, a.timestamp, [...a.body]] : a.type)), [
    ['audio', 5000, [0xaf, 1, 9]],
    ['video', 5040, [0x27, 1]],
  ]);
});

test('connection: acknowledgement after the client-declared window; read timeout for publishers only', () => {
  const conn = new RtmpServerConnection(1000, { readTimeoutMs: 5000 });
  assert.equal(conn.nextDeadline(), 6000); // a client that never speaks is timed out too
  const hs = new Uint8Array(1 + 1536 * 2);
  hs[0] = 3;
  conn.push(hs, 1000);
  const w = new ChunkStreamWriter();
  const bytes = [w.write(windowAckSizeMessage(500)), w.write({ csid: 3, type: 20, streamId: 0, timestamp: 0, payload: encodeAmf0('connect', 1, amf0Object({ app: 'live' })) })];
  const acts = [...conn.push(bytes[0] as Uint8Array, 1100), ...conn.push(bytes[1] as Uint8Array, 1200)];
  const peer = new Peer();
  peer.take(acts.filter((a) => a.type === 'send' && a.bytes.length !== 3073));
  const acks = peer.got.filter((g) => g.type === RtmpMessageType.acknowledgement);
  assert.equal(acks.length, 0); // window not reached yet
  const more = conn.push(new ChunkStreamWriter({ chunkSize: 128 }).write({ csid: 3, type: 20, streamId: 0, timestamp: 0, payload: encodeAmf0('_checkbw', 0, null, 'x'.repeat(400)) }), 1300);
  peer.take(more);
  const ack = peer.got.find((g) => g.type === RtmpMessageType.acknowledgement);
  assert.ok(ack !== undefined);
  assert.equal(ack.values[0], conn.reader.bytesReceived);
  assert.equal(conn.nextDeadline(), 6300);
  assert.deepEqual(conn.tick(6299), []);
  const t = conn.tick(6300);
  assert.equal(t[0]?.type, 'close');
});

test('connection property: random bytes after a valid handshake only ever give a close action', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.integer({ min: 1, max: 500 }), (bytes, step) => {
      const conn = new RtmpServerConnection(0);
      const hs = new Uint8Array(1 + 1536 * 2);
      hs[0] = 3;
      conn.push(hs, 0);
      for (let i = 0; i < bytes.length; i += step) {
        for (const a of conn.push(bytes.subarray(i, i + step), i)) {
          if (a.type === 'close') assert.ok(a.error === undefined || a.error instanceof StreamgateError);
        }
      }
    }),
    { numRuns: 500, interruptAfterTimeLimit: 5000, markInterruptAsFailure: false },
  );
});

// ---------------------------------------------------------------------------------------------------------
// Interop with the real ffmpeg: a 30-line socket owner around RtmpServerConnection (not server.ts).

const haveFfmpeg = spawnSync('ffmpeg', ['-version']).status === 0;

/** Minimal owner: publish/play accepted at once; frames of the publish kept to replay to players. */
function miniServer(onAction: (conn: RtmpServerConnection, sock: net.Socket, a: RtmpAction) => void): Promise<net.Server> {
  const server = net.createServer((sock) => {
    const conn = new RtmpServerConnection(Date.now());
    const run = (acts: RtmpAction[]): void => {
      for (const a of acts) {
        if (a.type === 'send') sock.write(a.bytes);
        else if (a.type === 'close') sock.end();
        else if (a.type === 'publish' || a.type === 'play') {
          run(conn.resolve(a.streamId, null, Date.now()));
          onAction(conn, sock, a);
        } else onAction(conn, sock, a);
      }
    };
    sock.on('data', (d) => run(conn.push(d, Date.now())));
    sock.on('error', () => sock.destroy());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

test('interop: ffmpeg publishes (digest handshake checked by ffmpeg), then ffmpeg plays the same media back', { skip: !haveFfmpeg, timeout: 60_000 }, async () => {
  const media: { kind: 'audio' | 'video' | 'data'; timestamp: number; body: Uint8Array }[] = [];
  let published = '';
  let played = '';
  const server = await miniServer((conn, sock, a) => {
    if (a.type === 'publish') published = `${a.path}?${a.query}`;
    if (a.type === 'media') media.push({ kind: a.kind, timestamp: a.timestamp, body: Uint8Array.from(a.body) });
    if (a.type === 'play') {
      played = a.path;
      // serialize once with the shared chunk size (as egress would), write the same bytes
      const parts = media.map((m) =>
        serializeMessage(
          {
            csid: m.kind === 'audio' ? RtmpCsid.audio : m.kind === 'video' ? RtmpCsid.video : RtmpCsid.data,
            type: m.kind === 'audio' ? 8 : m.kind === 'video' ? 9 : 18,
            streamId: a.streamId,
            timestamp: m.timestamp,
            payload: m.body,
          },
          conn.session.chunkSize,
        ),
      );
      for (const p of parts) sock.write(p);
    }
  });
  const port = (server.address() as net.AddressInfo).port;
  const run = (args: string[]): Promise<{ code: number | null; err: string; out: string }> =>
    new Promise((resolve) => {
      const p = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      let out = '';
      p.stderr.on('data', (d) => (err += String(d)));
      p.stdout.on('data', (d) => (out += String(d)));
      p.on('exit', (code) => resolve({ code, err, out }));
    });
  try {
    const pub = await run([
      '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-f', 'lavfi', '-i', 'sine',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-c:a', 'aac', '-t', '1',
      '-f', 'flv', `rtmp://127.0.0.1:${port}/live/cam1?key=K`,
    ]);
    assert.equal(pub.code, 0, pub.err);
    assert.equal(published, 'live/cam1?key=K');
    assert.ok(media.filter((m) => m.kind === 'video').length >= 20);
    assert.ok(media.some((m) => m.kind === 'data'));
    // the publish was 1 s long: a shorter probe than the default 5 s lets ffmpeg start on what it has
    const play = await run(['-analyzeduration', '500000', '-rw_timeout', '3000000', '-i', `rtmp://127.0.0.1:${port}/live/cam1`, '-t', '0.5', '-f', 'framecrc', '-']);
    assert.equal(played, 'live/cam1');
    assert.equal(play.code, 0, play.err);
    // framecrc lines are "stream, dts, pts, duration, size, crc": decoded video (0) and audio (1) frames
    const frames = play.out.split('\n').filter((l) => /^\d+,/.test(l));
    assert.ok(frames.filter((l) => l.startsWith('0,')).length >= 10, play.out);
    assert.ok(frames.some((l) => l.startsWith('1,')), play.out);
  } finally {
    server.close();
  }
});
