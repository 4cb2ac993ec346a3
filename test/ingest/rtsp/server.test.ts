/**
 * End-to-end RTSP on loopback with real clients: ffmpeg publishes over RTSP (TCP, UDP) and RTMP; ffprobe and
 * ffmpeg read over RTSP (TCP, UDP) and RTMP. Skipped when ffmpeg is not installed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import dgram from 'node:dgram';
import { spawn, type ChildProcess } from 'node:child_process';
import { parseConfig } from '../../../src/config.js';
import { pathPolicy } from '../../../src/main.js';
import { PathRegistry } from '../../../src/media/bus/registry.js';
import { startRtmpServer, type RtmpServer } from '../../../src/ingest/rtmp/server.js';
import { RtmpPlaySink } from '../../../src/egress/rtmp/from-bus.js';
import { startRtspServer, type RtspServer } from '../../../src/ingest/rtsp/server.js';
import { rtspEgress } from '../../../src/egress/rtsp/from-bus.js';
import { RtspParser, type RtspMessage, type RtspResponse } from '../../../src/ingest/rtsp/message.js';
import { isRfc3550Compound, parseRtcp, type RtcpPacket } from '../../../src/media/rtp/rtcp.js';
import { Reader } from '../../../src/media/bus/reader.js';
import type { Session } from '../../../src/media/bus/session.js';
import { freeUdpPair } from '../../helpers/gateway.js';
import { ffmpegPublish, ffprobeStreams, hasCommand, run, waitFor } from '../../helpers/media-tools.js';

const HAVE_FFMPEG = hasCommand('ffmpeg') && hasCommand('ffprobe');
const HAVE_GST = HAVE_FFMPEG && hasCommand('gst-launch-1.0');

const CONFIG = `
paths:
  secure/cam:
    readUser: viewer
    readPass: s3cret
  "~^.*$": {}
`;

interface Env {
  registry: PathRegistry;
  rtsp: RtspServer;
  rtmp: RtmpServer;
}

async function startEnv(): Promise<Env> {
  const config = parseConfig(CONFIG, 'test.yml');
  const registry = new PathRegistry(pathPolicy(config));
  const udp = await freeUdpPair();
  const rtsp = await startRtspServer({ host: '127.0.0.1', port: 0, rtpPort: udp, rtcpPort: udp + 1, paths: registry, egress: rtspEgress, readTimeoutMs: 10_000 });
  const rtmp = await startRtmpServer({ host: '127.0.0.1', port: 0, paths: registry, createPlaySink: (p) => new RtmpPlaySink(p), readTimeoutMs: 10_000 });
  return { registry, rtsp, rtmp };
}

const kill = (c: ChildProcess | undefined): void => {
  if (c && c.exitCode === null) c.kill('SIGKILL');
};

/** Decodes `seconds` of a URL with ffmpeg (`output`: options of the null output); returns decoded video frames and the error lines. */
async function decode(url: string, seconds: number, extra: string[], output: string[] = []): Promise<{ frames: number; errors: string }> {
  const r = await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-stats', ...extra, '-i', url, '-t', String(seconds), ...output, '-f', 'null', '-'], (seconds + 20) * 1000);
  const m = /frame=\s*(\d+)/g;
  let frames = 0;
  for (let x = m.exec(r.stderr); x; x = m.exec(r.stderr)) frames = Number(x[1]);
  const errors = r.stderr
    .split(/\r|\n/)
    .filter((l) => l.trim() !== '' && !/^frame=|^size=|^video:/.test(l.trim()))
    .join('\n');
  assert.equal(r.code, 0, r.stderr);
  return { frames, errors };
}

/** A raw RTSP reader over TCP: DESCRIBE, SETUP both tracks interleaved, PLAY; collects interleaved frames. */
async function rawReader(port: number, path: string, ms: number): Promise<{ responses: RtspMessage[]; frames: { channel: number; data: Uint8Array }[] }> {
  const sock = net.connect(port, '127.0.0.1');
  const parser = new RtspParser();
  const responses: RtspMessage[] = [];
  const frames: { channel: number; data: Uint8Array }[] = [];
  let waiter: (() => void) | undefined;
  sock.on('data', (d) => {
    for (const m of parser.push(d)) {
      if (m.kind === 'interleaved') frames.push({ channel: m.channel, data: Uint8Array.from(m.data) });
      else {
        responses.push(m);
        waiter?.();
      }
    }
  });
  await new Promise((r) => sock.once('connect', r));
  const url = `rtsp://127.0.0.1:${port}/${path}`;
  let cseq = 0;
  let session = '';
  const send = async (method: string, u: string, headers: string[] = []): Promise<RtspMessage> => {
    const n = responses.length;
    const extra = session ? [`Session: ${session}`] : [];
    sock.write(`${method} ${u} RTSP/1.0\r\nCSeq: ${++cseq}\r\n${[...headers, ...extra].map((h) => `${h}\r\n`).join('')}\r\n`);
    await new Promise<void>((r) => (waiter = () => responses.length > n && r()));
    return responses[n] as RtspMessage;
  };
  await send('DESCRIBE', url, ['Accept: application/sdp']);
  const s1 = await send('SETUP', `${url}/trackID=0`, ['Transport: RTP/AVP/TCP;unicast;interleaved=0-1']);
  session = (s1.kind === 'response' && s1.headers.get('session')?.split(';')[0]) || '';
  await send('SETUP', `${url}/trackID=1`, ['Transport: RTP/AVP/TCP;unicast;interleaved=2-3']);
  await send('PLAY', url);
  await new Promise((r) => setTimeout(r, ms));
  sock.destroy();
  return { responses, frames };
}

describe('RTSP server end to end (ffmpeg, ffprobe)', { skip: !HAVE_FFMPEG && 'ffmpeg not installed' }, () => {
  let env: Env;
  const children: ChildProcess[] = [];
  before(async () => {
    env = await startEnv();
  });
  after(async () => {
    for (const c of children) kill(c);
    await env.rtsp.close();
    await env.rtmp.close();
  });

  const published = (path: string): Promise<boolean> =>
    waitFor(() => env.registry.paths.get(path)?.stream.ready === true, 15_000).then(() => true);

  it('ffmpeg publishes RTSP over TCP; ffprobe reads it over RTSP and over RTMP', async () => {
    const pub = ffmpegPublish(`rtsp://127.0.0.1:${env.rtsp.port}/live/tcp`, { format: 'rtsp', extra: ['-rtsp_transport', 'tcp'], size: '320x240', rate: 25 });
    children.push(pub);
    await published('live/tcp');
    const viaRtsp = await ffprobeStreams(`rtsp://127.0.0.1:${env.rtsp.port}/live/tcp`, ['-rtsp_transport', 'tcp']);
    assert.deepEqual(viaRtsp.map((s) => s.codec_name).sort(), ['aac', 'h264']);
    assert.equal(viaRtsp.find((s) => s.codec_name === 'h264')?.width, 320);
    const viaRtmp = await ffprobeStreams(`rtmp://127.0.0.1:${env.rtmp.port}/live/tcp`);
    assert.deepEqual(viaRtmp.map((s) => s.codec_name).sort(), ['aac', 'h264']);
    const session = [...env.registry.sessions.values()].find((s) => s.protocol === 'rtsp' && s.role === 'publisher');
    assert.ok(session);
    const stats = session.stats?.() as { tracks: { reception?: { packetsReceived: number } }[] };
    assert.ok(stats.tracks.every((t) => (t.reception?.packetsReceived ?? 0) > 0));
    kill(pub);
  });

  it('ffmpeg publishes RTSP over UDP; ffprobe reads it over RTSP/UDP', async () => {
    const pub = ffmpegPublish(`rtsp://127.0.0.1:${env.rtsp.port}/live/udp`, { format: 'rtsp', extra: ['-rtsp_transport', 'udp'], size: '320x240', rate: 25 });
    children.push(pub);
    await published('live/udp');
    const streams = await ffprobeStreams(`rtsp://127.0.0.1:${env.rtsp.port}/live/udp`, ['-rtsp_transport', 'udp']);
    assert.deepEqual(streams.map((s) => s.codec_name).sort(), ['aac', 'h264']);
    kill(pub);
  });

  it('ffmpeg publishes RTSP/UDP; an RTSP reader gets its packets passed through and decodes 5 s without errors', async () => {
    const pub = ffmpegPublish(`rtsp://127.0.0.1:${env.rtsp.port}/live/pass`, { format: 'rtsp', extra: ['-rtsp_transport', 'udp'], size: '640x360', rate: 25, gop: 25 });
    children.push(pub);
    await published('live/pass');
    const reading = decode(`rtsp://127.0.0.1:${env.rtsp.port}/live/pass`, 5, ['-rtsp_transport', 'tcp']);
    let video: { framesPassedThrough: number; framesPacketized: number } | undefined;
    await waitFor(() => {
      const reader = [...env.registry.sessions.values()].find((x) => x.protocol === 'rtsp' && x.role === 'reader' && x.path === 'live/pass');
      const tracks = (reader?.stats?.() as { tracks?: { media: number; framesPassedThrough: number; framesPacketized: number }[] } | undefined)?.tracks;
      video = tracks?.find((t) => t.media === 0);
      return (video?.framesPassedThrough ?? 0) > 50;
    }, 15_000);
    const r = await reading;
    assert.equal(r.errors, '', r.errors);
    assert.ok(r.frames >= 100, `${r.frames} frames decoded`);
    // ffmpeg puts SPS/PPS only in the SDP: its keyframes are packetized with them in front, the rest pass through
    assert.ok(video && video.framesPassedThrough > 10 * video.framesPacketized, JSON.stringify(video));
    kill(pub);
  });

  it('ffmpeg publishes RTMP; ffmpeg decodes 5 s over RTSP/TCP and RTSP/UDP without errors', async () => {
    const pub = ffmpegPublish(`rtmp://127.0.0.1:${env.rtmp.port}/live/rtmp`, { size: '320x240', rate: 25, gop: 25 });
    children.push(pub);
    await published('live/rtmp');
    for (const transport of ['tcp', 'udp']) {
      const r = await decode(`rtsp://127.0.0.1:${env.rtsp.port}/live/rtmp`, 5, ['-rtsp_transport', transport]);
      assert.equal(r.errors, '', `${transport}: ${r.errors}`);
      assert.ok(r.frames >= 100, `${transport}: ${r.frames} frames decoded`);
    }
  });

  it('ffmpeg publishes RTMP 1280x720 30 fps; ffmpeg decodes 5 s over RTSP/UDP with no error (the GOP-cache burst is paced)', async () => {
    // the reader joins 1.5 s into a 2 s GOP: ~1.5 s of 720p (~1.5 MB) come from the GOP cache at once, which
    // overflowed ffmpeg's UDP socket buffer before UDP readers were paced
    const pub = ffmpegPublish(`rtmp://127.0.0.1:${env.rtmp.port}/live/hd`, { size: '1280x720', rate: 30, gop: 60 });
    children.push(pub);
    await published('live/hd');
    await new Promise((r) => setTimeout(r, 1500));
    // -fps_mode vfr: the RTMP source's millisecond timestamps jitter by ±1/3 ms at 30 fps; with the null muxer's
    // default (passthrough into a 1/30 time base) a stream that starts half a frame after the audio rounds two
    // frames to one tick, and ffmpeg logs "non monotonically increasing dts", which is not a decoding error
    const r = await decode(`rtsp://127.0.0.1:${env.rtsp.port}/live/hd`, 5, ['-rtsp_transport', 'udp'], ['-fps_mode', 'vfr']);
    assert.equal(r.errors, '', r.errors);
    assert.ok(r.frames >= 140, `${r.frames} frames decoded`);
    kill(pub);
  });

  it('a reader gets compound RTCP starting with SR + SDES CNAME, and RTP on the SETUP channels', async () => {
    await published('live/rtmp');
    const { responses, frames } = await rawReader(env.rtsp.port, 'live/rtmp', 1500);
    assert.deepEqual(responses.map((r) => r.kind === 'response' && r.status), [200, 200, 200, 200]);
    const play = responses[3];
    assert.ok(play?.kind === 'response' && /seq=\d+/.test(play.headers.get('rtp-info') ?? ''));
    const rtcp = frames.filter((f) => f.channel % 2 === 1);
    assert.ok(rtcp.length >= 2, `${rtcp.length} RTCP packets`);
    for (const f of rtcp) {
      const packets = parseRtcp(f.data);
      assert.equal(packets[0]?.type, 'sr');
      assert.ok(isRfc3550Compound(packets));
    }
    assert.ok(frames.filter((f) => f.channel === 0).length > 10 && frames.filter((f) => f.channel === 2).length > 10);
  });

  it('credentials: 401 with Digest and Basic challenges, ffprobe with user:pass gets in (Digest)', async () => {
    const pub = ffmpegPublish(`rtsp://127.0.0.1:${env.rtsp.port}/secure/cam`, { format: 'rtsp', extra: ['-rtsp_transport', 'tcp'], size: '160x120', rate: 15, audio: false });
    children.push(pub);
    await published('secure/cam');
    const raw = await rawDescribe(env.rtsp.port, 'secure/cam');
    assert.equal(raw.status, 401);
    assert.deepEqual(raw.challenges.map((c) => c.split(' ')[0]), ['Digest', 'Basic']);
    await assert.rejects(ffprobeStreams(`rtsp://127.0.0.1:${env.rtsp.port}/secure/cam`, ['-rtsp_transport', 'tcp']));
    const ok = await ffprobeStreams(`rtsp://viewer:s3cret@127.0.0.1:${env.rtsp.port}/secure/cam`, ['-rtsp_transport', 'tcp']);
    assert.equal(ok[0]?.codec_name, 'h264');
    kill(pub);
  });
});

describe('RTSP server end to end (GStreamer)', { skip: !HAVE_GST && 'gst-launch-1.0 not installed' }, () => {
  let env: Env;
  const children: ChildProcess[] = [];
  before(async () => {
    env = await startEnv();
  });
  after(async () => {
    for (const c of children) kill(c);
    await env.rtsp.close();
    await env.rtmp.close();
  });

  it('rtspclientsink publishes (LATM audio + H.264 over TCP); ffprobe reads it over RTSP; rtspsrc decodes it over UDP and TCP', async () => {
    const pub = spawn('gst-launch-1.0', [
      '-q',
      'videotestsrc', 'is-live=true', '!', 'video/x-raw,format=I420,width=320,height=180,framerate=15/1', '!',
      'x264enc', 'tune=zerolatency', 'bitrate=200', 'key-int-max=15', '!', 'h264parse', '!', 's.sink_0',
      'audiotestsrc', 'is-live=true', '!', 'audio/x-raw,rate=48000,channels=2', '!', 'avenc_aac', '!', 'aacparse', '!', 's.sink_1',
      'rtspclientsink', 'name=s', `location=rtsp://127.0.0.1:${env.rtsp.port}/live/gst`, 'protocols=tcp',
    ], { stdio: 'ignore' });
    children.push(pub);
    await waitFor(() => env.registry.paths.get('live/gst')?.stream.ready === true, 15_000);
    const streams = await ffprobeStreams(`rtsp://127.0.0.1:${env.rtsp.port}/live/gst`, ['-rtsp_transport', 'tcp']);
    assert.deepEqual(streams.map((s) => s.codec_name).sort(), ['aac', 'h264']);
    for (const protocols of ['udp', 'tcp']) {
      // 45 decoded video frames (3 s at 15 fps), then EOS: exit code 0 only if decoding went through
      const r = await run('gst-launch-1.0', [
        '-q', 'rtspsrc', `location=rtsp://127.0.0.1:${env.rtsp.port}/live/gst`, `protocols=${protocols}`, '!',
        'rtph264depay', '!', 'h264parse', '!', 'avdec_h264', '!', 'fakesink', 'num-buffers=45',
      ], 30_000);
      // On a loaded machine rtspsrc sometimes fails its own PAUSE/TEARDOWN while the pipeline shuts down after EOS
      // ("Could not send message. (Received end-of-file)" from gst_rtspsrc_pause): the 45 frames were decoded by
      // then. Any other error (depayloading, parsing, decoding) still fails the test.
      const shutdownOnly = r.code !== 0 && /gst_rtspsrc_(pause|close|try_send)/.test(r.stderr) && !/depay|parse|avdec|decod/i.test(r.stderr);
      assert.ok(r.code === 0 || shutdownOnly, `${protocols}: exit ${r.code}: ${r.stderr}`);
    }
    kill(pub);
  });

  it('rtspclientsink over UDP with a 600-frame GOP answers a bus keyframe request with an IDR within 2 s', async () => {
    // key-int-max=600 at 30 fps: left alone, the next keyframe would come 20 s after the first
    const pub = spawn('gst-launch-1.0', [
      '-q',
      'videotestsrc', 'is-live=true', '!', 'video/x-raw,format=I420,width=320,height=180,framerate=30/1', '!',
      'x264enc', 'tune=zerolatency', 'bitrate=300', 'key-int-max=600', '!', 'video/x-h264,profile=baseline', '!',
      'rtspclientsink', `location=rtsp://127.0.0.1:${env.rtsp.port}/live/gop`, 'protocols=udp',
    ], { stdio: 'ignore' });
    children.push(pub);
    await waitFor(() => env.registry.paths.get('live/gop')?.stream.ready === true, 15_000);
    const stream = env.registry.paths.get('live/gop')!.stream;
    const keyframesAt: number[] = [];
    const reader = new Reader(idleSession('kf'), {
      start() {},
      writeFrame: (f) => void (f.track.isVideo && f.keyframe && keyframesAt.push(performance.now())),
      bufferedBytes: () => 0,
      close() {},
    });
    stream.addReader(reader); // starts with the cached GOP: its keyframe first
    await new Promise((r) => setTimeout(r, 1500));
    const before = keyframesAt.length;
    for (let i = 0; i < 2; i++) {
      const askedAt = performance.now();
      assert.equal(env.registry.requestKeyframe('live/gop', 'test'), true);
      const at = (await waitFor(() => keyframesAt.find((t) => t > askedAt), 2000)) as number;
      assert.ok(at - askedAt < 2000, `keyframe ${Math.round(at - askedAt)} ms after the request`);
      await new Promise((r) => setTimeout(r, 600)); // past the bus interval
    }
    assert.equal(keyframesAt.length, before + 2, 'one keyframe per request (GStreamer answers PLI + FIR with one)');
    stream.removeReader(reader);
    kill(pub);
    // Over TCP, rtspclientsink (1.22) drops interleaved data from the server ("ignoring data message"): the same
    // request reaches it but never its RTP session, so no keyframe follows. Not tested: nothing of ours to check.
  });
});

/** A session for in-test readers. */
function idleSession(id: string): Session {
  return { id, protocol: 'rtsp', role: 'reader', path: '', remoteAddr: '', state: '', createdAt: 0, bytesIn: 0, bytesOut: 0, close() {} };
}

/** One RTP packet (V=2, PT 96) carrying a non-IDR H.264 slice NAL unit from `ssrc`. */
function videoRtp(ssrc: number, seq: number): Buffer {
  const b = Buffer.alloc(14);
  b[0] = 0x80;
  b[1] = 96;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(seq * 3000, 4);
  b.writeUInt32BE(ssrc, 8);
  b[12] = 0x41; // NAL header: nal_ref_idc 2, type 1 (non-IDR slice)
  b[13] = 0x9a;
  return b;
}

/** The packets of the first compound RTCP packet with a PLI in it, from a list of received RTCP payloads. */
function withPli(rtcp: readonly Uint8Array[]): RtcpPacket[] | undefined {
  for (const raw of rtcp) {
    const packets = parseRtcp(raw);
    if (packets.some((p) => p.type === 'pli')) return packets;
  }
  return undefined;
}

describe('RTSP server: keyframe requests reach raw publishers as RTCP', () => {
  let env: Env;
  before(async () => {
    env = await startEnv();
  });
  after(async () => {
    await env.rtsp.close();
    await env.rtmp.close();
  });

  const SDP =
    'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n' +
    'm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210\r\na=control:streamid=0\r\n' +
    'm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:streamid=1\r\n';

  /**
   * Publishes `path` (audio media 0, video media 1) with a raw client, sends one video RTP packet from `ssrc`, asks
   * the bus for a keyframe and returns the compound RTCP packet with the PLI the publisher got.
   */
  async function publishAndAsk(path: string, transport: 'tcp' | 'udp', ssrc: number): Promise<{ packets: RtcpPacket[]; fromPort?: number }> {
    const sock = net.connect(env.rtsp.port, '127.0.0.1');
    const parser = new RtspParser();
    const waiting: ((r: RtspResponse) => void)[] = [];
    const rtcp: Uint8Array[] = [];
    sock.on('data', (d) => {
      for (const m of parser.push(d)) {
        if (m.kind === 'response') waiting.shift()?.(m);
        else if (m.kind === 'interleaved' && m.channel === 3) rtcp.push(Uint8Array.from(m.data));
      }
    });
    sock.on('error', () => {});
    await new Promise((r) => sock.once('connect', r));
    let cseq = 0;
    let session = '';
    const send = (method: string, url: string, headers: string[] = [], body = ''): Promise<RtspResponse> => {
      const lines = [`${method} ${url} RTSP/1.0`, `CSeq: ${++cseq}`, ...headers];
      if (session) lines.push(`Session: ${session}`);
      if (body) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
      sock.write(`${lines.join('\r\n')}\r\n\r\n${body}`);
      return new Promise((resolve) => waiting.push(resolve));
    };
    let udp: { rtp: dgram.Socket; rtcp: dgram.Socket } | undefined;
    let fromPort: number | undefined;
    try {
      const url = `rtsp://127.0.0.1:${env.rtsp.port}/${path}`;
      assert.equal((await send('ANNOUNCE', url, ['Content-Type: application/sdp'], SDP)).status, 200);
      let videoTransport = 'RTP/AVP/TCP;unicast;interleaved=2-3;mode=record';
      if (transport === 'udp') {
        const base = await freeUdpPair();
        const bind = async (port: number): Promise<dgram.Socket> => {
          const sk = dgram.createSocket('udp4');
          await new Promise<void>((r) => sk.bind(port, '127.0.0.1', () => r()));
          return sk;
        };
        udp = { rtp: await bind(base), rtcp: await bind(base + 1) };
        udp.rtcp.on('message', (m, rinfo) => {
          rtcp.push(Uint8Array.from(m));
          fromPort = rinfo.port;
        });
        videoTransport = `RTP/AVP;unicast;client_port=${base}-${base + 1};mode=record`;
      }
      const setup = await send('SETUP', `${url}/streamid=1`, [`Transport: ${videoTransport}`]);
      assert.equal(setup.status, 200);
      session = setup.headers.get('session')?.split(';')[0] ?? '';
      assert.equal((await send('RECORD', url)).status, 200);
      const packet = videoRtp(ssrc, 1);
      if (udp) udp.rtp.send(packet, env.rtsp.rtpPort, '127.0.0.1');
      else sock.write(Buffer.concat([Buffer.from([0x24, 2, 0, packet.length]), packet]));
      const pub = env.registry.paths.get(path)?.publisher;
      await waitFor(() => ((pub?.stats?.().tracks as { packets: number }[] | undefined)?.[0]?.packets ?? 0) > 0, 3000);
      assert.equal(env.registry.requestKeyframe(path, 'test'), true);
      const packets = (await waitFor(() => withPli(rtcp), 3000)) as RtcpPacket[];
      assert.equal(pub?.stats?.().keyframeRequestsSent, 1);
      assert.deepEqual(env.registry.paths.get(path)?.stream.keyframeRequests, { requested: 1, passedUp: 1, unserved: 0 });
      return fromPort === undefined ? { packets } : { packets, fromPort };
    } finally {
      sock.destroy();
      udp?.rtp.close();
      udp?.rtcp.close();
    }
  }

  const check = (packets: RtcpPacket[], ssrc: number): void => {
    assert.ok(isRfc3550Compound(packets), 'RR first, SDES CNAME (RFC 3550 §6.1)');
    assert.deepEqual(packets.map((p) => p.type), ['rr', 'sdes', 'pli', 'fir']);
    const rr = packets[0] as Extract<RtcpPacket, { type: 'rr' }>;
    assert.deepEqual(packets[2], { type: 'pli', senderSsrc: rr.ssrc, mediaSsrc: ssrc });
    assert.deepEqual(packets[3], { type: 'fir', senderSsrc: rr.ssrc, mediaSsrc: 0, entries: [{ ssrc, seqNr: 1 }] });
  };

  it('over TCP interleaved: RR + SDES + PLI + FIR on the video media’s RTCP channel, naming its SSRC', async () => {
    const { packets } = await publishAndAsk('live/kf-tcp', 'tcp', 0x11223344);
    check(packets, 0x11223344);
  });

  it('over UDP: the same compound packet from our RTCP port to the publisher’s RTCP port', async () => {
    const { packets, fromPort } = await publishAndAsk('live/kf-udp', 'udp', 0xdeadbeef);
    check(packets, 0xdeadbeef);
    assert.equal(fromPort, env.rtsp.rtcpPort);
  });
});

/** DESCRIBE without credentials; the status and WWW-Authenticate values. */
async function rawDescribe(port: number, path: string): Promise<{ status: number; challenges: string[] }> {
  const r = await exchange(port, `DESCRIBE rtsp://127.0.0.1:${port}/${path} RTSP/1.0\r\nCSeq: 1\r\n\r\n`);
  const res = r.find((m) => m.kind === 'response');
  assert.ok(res?.kind === 'response');
  return { status: res.status, challenges: res.headers.getAll('www-authenticate') };
}

/** Writes bytes, collects what comes back until the server closes or 1 s passes. */
async function exchange(port: number, bytes: string | Uint8Array, waitMs = 1000): Promise<RtspMessage[]> {
  const sock = net.connect(port, '127.0.0.1');
  const parser = new RtspParser();
  const out: RtspMessage[] = [];
  let closed = false;
  sock.on('data', (d) => out.push(...parser.push(d)));
  sock.on('error', () => {});
  sock.on('close', () => (closed = true));
  await new Promise((r) => sock.once('connect', r));
  sock.write(bytes);
  const end = Date.now() + waitMs;
  while (!closed && Date.now() < end && out.length === 0) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 50));
  sock.destroy();
  return out;
}

describe('RTSP server bad input', () => {
  let env: Env;
  before(async () => {
    env = await startEnv();
  });
  after(async () => {
    await env.rtsp.close();
    await env.rtmp.close();
  });

  it('a 1 MB header line → 400 and the connection closes; the server keeps serving', async () => {
    const sock = net.connect(env.rtsp.port, '127.0.0.1');
    const got: Buffer[] = [];
    sock.on('data', (d) => got.push(d));
    sock.on('error', () => {});
    await new Promise((r) => sock.once('connect', r));
    sock.write(`OPTIONS rtsp://127.0.0.1/x RTSP/1.0\r\nX-Junk: ${'a'.repeat(1 << 20)}\r\n\r\n`);
    await new Promise((r) => sock.once('close', r));
    assert.match(Buffer.concat(got).toString(), /^RTSP\/1\.0 400 /);
    const ok = await exchange(env.rtsp.port, 'OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n');
    assert.equal(ok[0]?.kind === 'response' && ok[0].status, 200);
  });

  it('garbage bytes → 400 and close; unknown path → 404; wrong CSeq → 400', async () => {
    const g = await exchange(env.rtsp.port, Uint8Array.of(0, 1, 2, 3));
    assert.equal(g[0]?.kind === 'response' && g[0].status, 400);
    const nf = await exchange(env.rtsp.port, 'DESCRIBE rtsp://127.0.0.1/nobody/here RTSP/1.0\r\nCSeq: 1\r\n\r\n');
    assert.equal(nf[0]?.kind === 'response' && nf[0].status, 404);
    const bad = await exchange(env.rtsp.port, 'OPTIONS * RTSP/1.0\r\nCSeq: abc\r\n\r\n');
    assert.equal(bad[0]?.kind === 'response' && bad[0].status, 400);
  });

  it('a publisher PAUSEs and RECORDs again on the same stream; PAUSE before RECORD → 455; SETUP of the aggregate → 459', async () => {
    const c = await rtspClient(env.rtsp.port);
    const url = `rtsp://127.0.0.1:${env.rtsp.port}/live/pausing`;
    const sdp =
      'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n' +
      'm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:streamid=0\r\n' +
      'm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210\r\na=control:streamid=1\r\n';
    assert.equal((await c.send('ANNOUNCE', url, ['Content-Type: application/sdp'], sdp)).status, 200);
    assert.equal((await c.send('SETUP', url, ['Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record'])).status, 459);
    const setup = await c.send('SETUP', `${url}/streamid=0`, ['Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record']);
    assert.equal(setup.status, 200);
    assert.match(setup.headers.get('session') ?? '', /;timeout=60$/);
    c.session = setup.headers.get('session')?.split(';')[0] ?? '';
    assert.equal((await c.send('SETUP', `${url}/streamid=1`, ['Transport: RTP/AVP/TCP;unicast;interleaved=2-3;mode=record'])).status, 200);
    const early = await c.send('PAUSE', url);
    assert.equal(early.status, 455);
    assert.match(early.headers.get('allow') ?? '', /RECORD/);
    assert.equal((await c.send('RECORD', url)).status, 200);
    const session = [...env.registry.sessions.values()].find((x) => x.protocol === 'rtsp' && x.path === 'live/pausing');
    assert.equal(session?.state, 'record');
    assert.equal((await c.send('PAUSE', url)).status, 200);
    assert.equal(session?.state, 'preRecord');
    assert.equal((await c.send('GET_PARAMETER', url)).status, 200);
    assert.equal((await c.send('RECORD', url)).status, 200);
    assert.equal(session?.state, 'record');
    assert.equal(env.registry.paths.get('live/pausing')?.publisher, session, 'still the publisher of its path');
    c.close();
  });

  it('interleaved frames for unknown channels and UDP from unknown addresses are dropped and counted', async () => {
    const r = await exchange(env.rtsp.port, Buffer.concat([Buffer.from([0x24, 9, 0, 2, 1, 2]), Buffer.from('OPTIONS * RTSP/1.0\r\nCSeq: 5\r\n\r\n')]));
    assert.equal(r[0]?.kind === 'response' && r[0].status, 200);
    const s = dgram.createSocket('udp4');
    await new Promise<void>((res) => s.send(Buffer.from([0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]), env.rtsp.rtpPort, '127.0.0.1', () => res()));
    await waitFor(() => env.rtsp.unknownUdpPackets > 0, 2000);
    s.close();
  });
});

/** A raw RTSP client on one TCP connection: requests in order, each resolving with its response. */
async function rtspClient(port: number): Promise<{
  session: string;
  send(method: string, url: string, headers?: string[], body?: string): Promise<RtspResponse>;
  close(): void;
}> {
  const sock = net.connect(port, '127.0.0.1');
  const parser = new RtspParser();
  const waiting: ((r: RtspResponse) => void)[] = [];
  sock.on('data', (d) => {
    for (const m of parser.push(d)) if (m.kind === 'response') waiting.shift()?.(m);
  });
  sock.on('error', () => {});
  await new Promise((r) => sock.once('connect', r));
  let cseq = 0;
  const client = {
    session: '',
    send(method: string, url: string, headers: string[] = [], body = ''): Promise<RtspResponse> {
      const lines = [`${method} ${url} RTSP/1.0`, `CSeq: ${++cseq}`, ...headers];
      if (client.session) lines.push(`Session: ${client.session}`);
      if (body) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
      sock.write(`${lines.join('\r\n')}\r\n\r\n${body}`);
      return new Promise((resolve) => waiting.push(resolve));
    },
    close: () => sock.destroy(),
  };
  return client;
}
