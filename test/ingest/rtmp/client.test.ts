import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import fc from 'fast-check';
import { NotFoundError, StreamgateError } from '../../../src/errors.js';
import { amf0EcmaArray, amf0Object, encodeAmf0 } from '../../../src/media/flv/amf0.js';
import {
  ChunkStreamReader,
  RtmpMessageType,
  UserControlEvent,
  parseUserControl,
  pingRequestMessage,
  serializeMessage,
  type RtmpMessage,
  type RtmpOutMessage,
} from '../../../src/ingest/rtmp/chunk-stream.js';
import { RTMP_HANDSHAKE_SIZE, ServerHandshake } from '../../../src/ingest/rtmp/handshake.js';
import { RtmpServerConnection, type RtmpAction } from '../../../src/ingest/rtmp/session.js';
import {
  RTMP_DEFAULT_PORT,
  RtmpClientConnection,
  parseRtmpUrl,
  type RtmpClientAction,
  type RtmpClientTarget,
} from '../../../src/ingest/rtmp/client-session.js';
import { startRtmpSource, type RtmpSourcePaths } from '../../../src/ingest/rtmp/client.js';
import type { Session } from '../../../src/media/bus/session.js';
import type { Gateway } from '../../../src/main.js';
import { startTestGateway } from '../../helpers/gateway.js';
import { ffmpegPublish, ffprobeStreams, hasCommand, waitFor } from '../../helpers/media-tools.js';

// ---------------------------------------------------------------------------------------------------------
// URLs

const urlCases: { name: string; url: string; want: RtmpClientTarget }[] = [
  {
    name: 'app/stream, default port',
    url: 'rtmp://origin.example/live/cam1',
    want: { host: 'origin.example', port: RTMP_DEFAULT_PORT, app: 'live', tcUrl: 'rtmp://origin.example/live', playPath: 'cam1' },
  },
  {
    name: 'explicit port and query kept on the stream name',
    url: 'rtmp://10.0.0.5:19350/live/cam1?key=abc',
    want: { host: '10.0.0.5', port: 19350, app: 'live', tcUrl: 'rtmp://10.0.0.5:19350/live', playPath: 'cam1?key=abc' },
  },
  {
    name: 'deeper path: extra segments go to the app (as ffmpeg splits it)',
    url: 'rtmp://h/live/a/b',
    want: { host: 'h', port: RTMP_DEFAULT_PORT, app: 'live/a', tcUrl: 'rtmp://h/live/a', playPath: 'b' },
  },
  {
    name: 'credentials in the URL become ?user=&pass= and leave the tcUrl',
    url: 'rtmp://viewer:p%40ss@h:1936/secure/cam',
    want: { host: 'h', port: 1936, app: 'secure', tcUrl: 'rtmp://h:1936/secure', playPath: 'cam?user=viewer&pass=p%40ss' },
  },
  {
    name: 'IPv6 literal',
    url: 'rtmp://[::1]:1935/live/x',
    want: { host: '::1', port: 1935, app: 'live', tcUrl: 'rtmp://[::1]:1935/live', playPath: 'x' },
  },
];

for (const c of urlCases) {
  test(`parseRtmpUrl: ${c.name}`, () => {
    assert.deepEqual(parseRtmpUrl(c.url), c.want);
  });
}

test('parseRtmpUrl: refuses rtmps://, a missing stream name and garbage with UnsupportedError', () => {
  for (const url of ['rtmps://h/live/x', 'rtmp://h/live', 'rtmp://h/live/', 'rtmp://h/', 'not a url']) {
    assert.throws(() => parseRtmpUrl(url), (e: unknown) => e instanceof StreamgateError && e.code === 'SG_UNSUPPORTED', url);
  }
});

// ---------------------------------------------------------------------------------------------------------
// The sans-I/O client against the sans-I/O server, bytes pumped in memory

/** Client ⇄ server in memory; records what each side produced. The server's play is resolved by `onPlay`. */
class Pair {
  readonly client: RtmpClientConnection;
  readonly server = new RtmpServerConnection(0, { readTimeoutMs: 60_000 });
  clientActions: RtmpClientAction[] = [];
  serverActions: RtmpAction[] = [];
  /** messages the client sent, after the handshake */
  sent: RtmpMessage[] = [];
  private readonly spy = new ChunkStreamReader();
  private handshakeLeft = 2 * RTMP_HANDSHAKE_SIZE + 1;
  now = 0;

  constructor(
    url: string,
    private readonly onPlay: (a: Extract<RtmpAction, { type: 'play' }>) => unknown = () => null,
  ) {
    this.client = new RtmpClientConnection(parseRtmpUrl(url), 0, { readTimeoutMs: 5000, startTimeoutMs: 8000 });
    this.fromClient(this.client.start());
  }

  /** Sends a message from the server side, chunked with the server's current chunk size. */
  serverSends(msg: RtmpOutMessage): void {
    this.toClient(serializeMessage(msg, this.server.session.chunkSize));
  }

  toClient(bytes: Uint8Array): void {
    this.fromClient(this.client.push(bytes, this.now));
  }

  private fromClient(actions: RtmpClientAction[]): void {
    for (const a of actions) {
      this.clientActions.push(a);
      if (a.type !== 'send') continue;
      let b = a.bytes;
      if (this.handshakeLeft > 0) {
        const skip = Math.min(this.handshakeLeft, b.length);
        this.handshakeLeft -= skip;
        b = b.subarray(skip);
      }
      this.sent.push(...this.spy.push(b));
      this.fromServer(this.server.push(a.bytes, this.now));
    }
  }

  private fromServer(actions: RtmpAction[]): void {
    for (const a of actions) {
      this.serverActions.push(a);
      if (a.type === 'send') this.toClient(a.bytes);
      else if (a.type === 'play') this.fromServer(this.server.resolve(a.streamId, this.onPlay(a), this.now));
    }
  }

  of<T extends RtmpClientAction['type']>(type: T): Extract<RtmpClientAction, { type: T }>[] {
    return this.clientActions.filter((a): a is Extract<RtmpClientAction, { type: T }> => a.type === type);
  }
}

test('client ⇄ server: handshake, connect, createStream, play with the query → playing on stream 1', () => {
  let playReq: Extract<RtmpAction, { type: 'play' }> | undefined;
  const p = new Pair('rtmp://u:secret@127.0.0.1/live/cam1?x=1', (a) => {
    playReq = a;
    return null;
  });
  assert.equal(p.client.state, 'playing');
  assert.equal(p.client.streamId, 1);
  assert.equal(p.of('playing').length, 1);
  assert.equal(p.of('close').length, 0);
  assert.equal(playReq?.path, 'live/cam1');
  assert.equal(playReq?.params['user'], 'u');
  assert.equal(playReq?.params['pass'], 'secret');
  assert.equal(playReq?.params['x'], '1');
  // the client told the server its window and its buffer length, as ffmpeg does
  const commands = p.sent.filter((m) => m.type === RtmpMessageType.commandAmf0).length;
  assert.equal(commands, 3, 'connect, createStream, play');
  assert.ok(p.sent.some((m) => m.type === RtmpMessageType.windowAckSize));
  const ucs = p.sent.filter((m) => m.type === RtmpMessageType.userControl).map((m) => parseUserControl(m.payload));
  assert.deepEqual(ucs, [{ event: UserControlEvent.setBufferLength, value: 1, bufferMs: 3000 }]);
});

test('client: audio, video, metadata and aggregate messages of the played stream become media actions', () => {
  const p = new Pair('rtmp://h/live/cam1');
  const video = Uint8Array.of(0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65);
  p.serverSends({ csid: 7, type: RtmpMessageType.video, streamId: 1, timestamp: 40, payload: video });
  p.serverSends({ csid: 6, type: RtmpMessageType.audio, streamId: 1, timestamp: 41, payload: Uint8Array.of(0xaf, 1, 9) });
  p.serverSends({
    csid: 4,
    type: RtmpMessageType.dataAmf0,
    streamId: 1,
    timestamp: 0,
    payload: encodeAmf0('@setDataFrame', 'onMetaData', amf0EcmaArray({ width: 320 })),
  });
  // media of another message stream is not ours
  p.serverSends({ csid: 6, type: RtmpMessageType.audio, streamId: 2, timestamp: 41, payload: Uint8Array.of(0xaf, 1, 9) });
  // an aggregate of two FLV tags, timestamps 1000 and 1020, relative to the message's 500
  const tag = (type: number, ts: number, body: number[]): number[] => [type, 0, 0, body.length, (ts >> 16) & 0xff, (ts >> 8) & 0xff, ts & 0xff, 0, 0, 0, 0, ...body, 0, 0, 0, 11 + body.length];
  const agg = Uint8Array.from([...tag(8, 1000, [0xaf, 1, 1]), ...tag(9, 1020, [0x27, 1, 0, 0, 0])]);
  p.serverSends({ csid: 6, type: RtmpMessageType.aggregate, streamId: 1, timestamp: 500, payload: agg });

  const media = p.of('media');
  // the server's own |RtmpSampleAccess (sent with Play.Start) is a data message of the stream too
  assert.deepEqual(
    media.map((m) => [m.kind === 'data' ? m.name : m.kind, m.timestamp]),
    [['|RtmpSampleAccess', 0], ['video', 40], ['audio', 41], ['onMetaData', 0], ['audio', 500], ['video', 520]],
  );
  assert.deepEqual([...media[1]!.body], [...video]);
  const data = media[3]!;
  assert.ok(data.kind === 'data' && data.name === 'onMetaData');
  assert.equal(p.client.droppedMessages, 1);
});

test('client: answers pings and acknowledges the server-announced window (2.5 MB)', () => {
  const p = new Pair('rtmp://h/live/cam1');
  p.serverSends(pingRequestMessage(123456));
  const pong = p.sent.filter((m) => m.type === RtmpMessageType.userControl).map((m) => parseUserControl(m.payload)).at(-1);
  assert.deepEqual(pong, { event: UserControlEvent.pingResponse, value: 123456 });
  const body = new Uint8Array(1024 * 1024);
  body[0] = 0x27;
  for (let i = 0; i < 3; i++) p.serverSends({ csid: 7, type: RtmpMessageType.video, streamId: 1, timestamp: 40 * i, payload: body });
  const acks = p.sent.filter((m) => m.type === RtmpMessageType.acknowledgement);
  assert.equal(acks.length, 1);
  const seq = new DataView(acks[0]!.payload.buffer, acks[0]!.payload.byteOffset).getUint32(0);
  assert.ok(seq >= 2_500_000 && seq <= p.client.reader.bytesReceived, `ack ${seq}`);
});

test('client: StreamNotFound closes with NotFoundError; UnpublishNotify closes without an error', () => {
  const refused = new Pair('rtmp://h/live/nobody', () => new NotFoundError("no one is publishing to path 'live/nobody'"));
  const close = refused.of('close');
  assert.equal(close.length, 1);
  assert.ok(close[0]!.error instanceof NotFoundError, String(close[0]!.error));
  assert.match(close[0]!.reason, /StreamNotFound/);
  assert.equal(refused.of('playing').length, 0);

  const ended = new Pair('rtmp://h/live/cam1');
  for (const a of ended.server.session.unpublishNotify(1)) if (a.type === 'send') ended.toClient(a.bytes);
  const c = ended.of('close');
  assert.equal(c.length, 1);
  assert.equal(c[0]!.error, undefined);
  assert.match(c[0]!.reason, /UnpublishNotify/);
  assert.equal(ended.client.nextDeadline(), null);
});

test('client: a rejected connect closes with an AuthError', () => {
  const client = new RtmpClientConnection(parseRtmpUrl('rtmp://h/live/cam1'), 0);
  const hs = new ServerHandshake();
  const c0c1 = client.start()[0]!;
  assert.equal(c0c1.type, 'send');
  const s = hs.push(c0c1.type === 'send' ? c0c1.bytes : new Uint8Array(0)).output;
  assert.equal(client.push(s, 1)[0]?.type, 'send'); // C2 (then connect)
  const reply = serializeMessage(
    {
      csid: 3,
      type: RtmpMessageType.commandAmf0,
      streamId: 0,
      timestamp: 0,
      payload: encodeAmf0('_error', 1, null, amf0Object({ level: 'error', code: 'NetConnection.Connect.Rejected', description: 'bad key' })),
    },
    128,
  );
  const out = client.push(reply, 2);
  assert.equal(out.length, 1);
  const c = out[0]!;
  assert.ok(c.type === 'close' && c.error?.code === 'SG_AUTH' && /Rejected \(bad key\)/.test(c.reason), JSON.stringify(c));
});

test('client deadlines: start timeout before Play.Start, then read timeout while playing', () => {
  const client = new RtmpClientConnection(parseRtmpUrl('rtmp://h/live/cam1'), 1000, { readTimeoutMs: 3000, startTimeoutMs: 2000 });
  client.start();
  assert.equal(client.nextDeadline(), 3000);
  assert.deepEqual(client.tick(2999), []);
  const out = client.tick(3000);
  assert.ok(out[0]?.type === 'close' && out[0].error?.code === 'SG_TIMEOUT' && /did not start/.test(out[0].reason));

  const p = new Pair('rtmp://h/live/cam1');
  p.now = 100;
  p.toClient(serializeMessage(pingRequestMessage(1), 4096));
  assert.equal(p.client.nextDeadline(), 5100);
  const t = p.client.tick(5100);
  assert.ok(t[0]?.type === 'close' && /no data from the server for 5000 ms/.test(t[0].reason));
  assert.deepEqual(p.client.tick(9000), [], 'closed once');
});

test('client property: any bytes from a server after the handshake give actions or one close, never a throw', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 600 }), { minLength: 1, maxLength: 8 }), (chunks) => {
      const client = new RtmpClientConnection(parseRtmpUrl('rtmp://h/live/cam1'), 0);
      const first = client.start()[0]!;
      const s = new ServerHandshake().push(first.type === 'send' ? first.bytes : new Uint8Array(0)).output;
      client.push(s, 0);
      let closes = 0;
      for (const c of chunks) {
        for (const a of client.push(c, 0)) {
          if (a.type !== 'close') continue;
          closes++;
          assert.ok(a.error === undefined || a.error instanceof StreamgateError);
        }
      }
      assert.ok(closes <= 1);
    }),
    { numRuns: 300 },
  );
});

test('client: a server version byte other than 3 closes at once', () => {
  const client = new RtmpClientConnection(parseRtmpUrl('rtmp://h/live/cam1'), 0);
  client.start();
  const out = client.push(Uint8Array.of(6), 0);
  assert.ok(out[0]?.type === 'close' && out[0].error?.code === 'SG_UNSUPPORTED');
  const bad = new RtmpClientConnection(parseRtmpUrl('rtmp://h/live/cam1'), 0);
  bad.start();
  const out2 = bad.push(randomBytes(64).fill(0x47, 0, 1), 0);
  assert.ok(out2[0]?.type === 'close' && out2[0].error?.code === 'SG_PARSE');
});

// ---------------------------------------------------------------------------------------------------------
// The source against fakes: reconnect with backoff, and close()

/** A registry that records what the source did to it. */
function fakePaths(): RtmpSourcePaths & { events: string[]; sessions: Set<Session> } {
  const sessions = new Set<Session>();
  const events: string[] = [];
  return {
    events,
    sessions,
    addSession: (s) => void sessions.add(s),
    removeSession: (s, reason) => {
      sessions.delete(s);
      events.push(`removeSession: ${reason}`);
    },
    addPublisher: () => Promise.reject(new Error('not expected')),
    removePublisher: () => void events.push('removePublisher'),
  };
}

test('source: an unreachable origin is retried with doubling pauses; close() stops it and ends its session', async () => {
  const net = await import('node:net');
  // a port nobody listens on: bind, note the port, close
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const paths = fakePaths();
  const handle = startRtmpSource('relay/x', `rtmp://127.0.0.1:${port}/live/x`, paths, { minBackoffMs: 50, maxBackoffMs: 200 });
  const session = [...paths.sessions][0]!;
  assert.equal(session.protocol, 'source');
  assert.equal(session.remoteAddr, `rtmp://127.0.0.1:${port}/live/x`);
  // 50 + 100 + 200 + 200 ms of pauses: at least 4 attempts within ~1.5 s
  await waitFor(() => (session.stats?.() as { attempts: number }).attempts >= 5 && session.state === 'waiting', 3000);
  assert.match(String(session.stats?.()['lastError']), /ECONNREFUSED/);
  handle.close();
  const attempts = (session.stats?.() as { attempts: number }).attempts;
  await new Promise((r) => setTimeout(r, 400));
  assert.equal((session.stats?.() as { attempts: number }).attempts, attempts, 'no attempt after close()');
  assert.equal(paths.sessions.size, 0);
  assert.deepEqual(paths.events, ['removeSession: source stopped']);
});

// ---------------------------------------------------------------------------------------------------------
// End to end: gateway A has an ffmpeg publisher, gateway B pulls from it

const haveFfmpeg = hasCommand('ffmpeg') && hasCommand('ffprobe');

interface ApiPath {
  name: string;
  ready: boolean;
  source: { type: string; id: string | null } | null;
  readerCount: number;
  tracks: { codec: string; width: number | null; height: number | null; sampleRate: number | null }[];
}

async function apiPaths(gw: Gateway): Promise<ApiPath[]> {
  const r = await fetch(`http://127.0.0.1:${gw.ports['api']}/v1/paths`);
  return ((await r.json()) as { items: ApiPath[] }).items;
}

describe('pull source end to end (two gateways)', { skip: !haveFfmpeg, timeout: 90_000 }, () => {
  let a: Gateway;
  let b: Gateway;
  let pub: ChildProcess | undefined;
  const children: ChildProcess[] = [];
  const publish = (): ChildProcess => {
    const c = ffmpegPublish(`rtmp://127.0.0.1:${a.ports['rtmp']}/live/src`, { size: '320x240', sampleRate: 48000, gop: 30 });
    children.push(c);
    return c;
  };

  before(async () => {
    // A drops its readers as soon as its publisher goes (grace 0), so B sees the origin go away
    a = await startTestGateway('paths:\n  live/src: { publisherGrace: 0 }\n', ['rtmp', 'api']);
    pub = publish();
    await waitFor(() => a.registry.paths.get('live/src')?.stream.ready, 15_000);
    const origin = `rtmp://127.0.0.1:${a.ports['rtmp']}/live/src`;
    b = await startTestGateway(
      [
        'paths:',
        `  relay/cam: { source: "${origin}", publisherGrace: 8 }`,
        `  ondemand/cam: { source: "${origin}", sourceOnDemand: true, sourceOnDemandCloseAfter: 1 }`,
      ].join('\n'),
      ['rtmp', 'api'],
    );
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await b?.close();
    await a?.close();
  });

  test('an always-on source is pulled at start; ffprobe on B sees h264 320x240 + aac 48 kHz', async () => {
    await waitFor(() => b.registry.paths.get('relay/cam')?.stream.ready, 10_000);
    const streams = await ffprobeStreams(`rtmp://127.0.0.1:${b.ports['rtmp']}/relay/cam`);
    const v = streams.find((s) => s.codec_type === 'video');
    const au = streams.find((s) => s.codec_type === 'audio');
    assert.equal(v?.codec_name, 'h264');
    assert.equal(v?.width, 320);
    assert.equal(v?.height, 240);
    assert.equal(au?.codec_name, 'aac');
    assert.equal(au?.sample_rate, '48000');
    const relay = (await apiPaths(b)).find((p) => p.name === 'relay/cam');
    assert.equal(relay?.source?.type, 'rtmpSource');
    assert.ok(relay?.source?.id, 'the source session is the publisher');
    assert.deepEqual(relay?.tracks.map((t) => t.codec), ['h264', 'aac']);
  });

  test('kicking the source session (DELETE /v1/sessions/{id}) drops its connection; it reconnects', async () => {
    await waitFor(() => b.registry.paths.get('relay/cam')?.stream.ready, 10_000);
    const source = b.registry.paths.get('relay/cam')!.publisher!;
    const connects = (source.stats?.() as { connects: number }).connects;
    const del = await fetch(`http://127.0.0.1:${b.ports['api']}/v1/sessions/${source.id}`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    assert.equal(b.registry.paths.get('relay/cam')?.publisher, undefined, 'detached at once');
    await waitFor(() => (source.stats?.() as { connects: number }).connects > connects && b.registry.paths.get('relay/cam')?.stream.ready, 8000);
    assert.equal(b.registry.paths.get('relay/cam')?.publisher, source, 'the same source session publishes again');
    assert.equal(b.registry.sessions.get(source.id), source);
  });

  test('sourceOnDemand: started by the first reader, stopped after the last one left', async () => {
    const readersOnA = (): number => a.registry.paths.get('live/src')?.readers.size ?? 0;
    const before = readersOnA();
    assert.equal((await apiPaths(b)).find((p) => p.name === 'ondemand/cam'), undefined, 'not pulled before a reader');
    const t0 = Date.now();
    const streams = await ffprobeStreams(`rtmp://127.0.0.1:${b.ports['rtmp']}/ondemand/cam`);
    assert.deepEqual(streams.map((s) => s.codec_name).sort(), ['aac', 'h264']);
    assert.ok(Date.now() - t0 < 8000, `first reader served in ${Date.now() - t0} ms`);
    // the reader left: the source stays sourceOnDemandCloseAfter (1 s), then B stops pulling from A
    assert.equal(readersOnA(), before + 1, 'B is still pulling right after the reader left');
    await waitFor(() => readersOnA() === before, 6000);
    await waitFor(async () => (await apiPaths(b)).find((p) => p.name === 'ondemand/cam') === undefined, 3000);
    assert.equal([...b.registry.sessions.values()].filter((s) => s.path === 'ondemand/cam').length, 0, 'source session ended');
  });

  test('the origin publisher goes away and comes back: B reconnects, and its reader stays attached', async () => {
    const rtmpB = `rtmp://127.0.0.1:${b.ports['rtmp']}/relay/cam`;
    const source = b.registry.paths.get('relay/cam')!.publisher!;
    const connectsBefore = (source.stats?.() as { connects: number }).connects;
    // a reader on B, counting the video frames it receives
    const { spawn } = await import('node:child_process');
    const reader = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', rtmpB, '-map', '0:v', '-c', 'copy', '-f', 'framecrc', '-'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(reader);
    let frames = 0;
    reader.stdout!.on('data', (d: Buffer) => (frames += d.toString().split('\n').filter((l) => /^0,/.test(l)).length));
    await waitFor(() => frames > 15, 10_000);

    pub!.kill('SIGKILL');
    await waitFor(() => !b.registry.paths.get('relay/cam')?.stream.ready, 5000);
    const atDrop = frames;
    await new Promise((r) => setTimeout(r, 1500));
    pub = publish();
    await waitFor(() => b.registry.paths.get('relay/cam')?.stream.ready, 15_000);
    assert.ok((source.stats?.() as { connects: number; attempts: number }).connects > connectsBefore, 'a new connection played');
    assert.ok((source.stats?.() as { attempts: number }).attempts >= 2);
    // the same reader keeps getting frames from the new connection
    await waitFor(() => frames > atDrop + 30, 10_000);
    assert.equal(reader.exitCode, null, 'reader still running');
    reader.kill('SIGKILL');
  });
});
