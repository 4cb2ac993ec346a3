/**
 * The RTSP pull source against a GStreamer gst-rtsp-server acting as an IP camera (python3-gi), pulled on demand
 * and read back over RTSP and RTMP, and asked for keyframes (RTCP PLI/FIR) over UDP and TCP. Unit cases for the URL
 * and Authorization helpers and an in-test camera receiving the PLI run everywhere.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { parseConfig, resolvePathConf } from '../../../src/config.js';
import { computeDigestResponse } from '../../../src/auth.js';
import { pathPolicy } from '../../../src/main.js';
import { sourceStarter } from '../../../src/sources.js';
import { DEFAULT_PATH_SETTINGS, PathRegistry } from '../../../src/media/bus/registry.js';
import { startRtmpServer, type RtmpServer } from '../../../src/ingest/rtmp/server.js';
import { RtmpPlaySink } from '../../../src/egress/rtmp/from-bus.js';
import { startRtspServer, type RtspServer } from '../../../src/ingest/rtsp/server.js';
import { rtspEgress } from '../../../src/egress/rtsp/from-bus.js';
import { authorizationFor, parseSourceUrl, rtspSourceStarter, startRtspSource, type RtspSourceTransport } from '../../../src/ingest/rtsp/client.js';
import { RtspParser } from '../../../src/ingest/rtsp/message.js';
import { isRfc3550Compound, parseRtcp, type RtcpPacket } from '../../../src/media/rtp/rtcp.js';
import { freePort, freeUdpPair } from '../../helpers/gateway.js';
import { ffprobeStreams, hasCommand, waitFor } from '../../helpers/media-tools.js';
import type { FrameSink } from '../../../src/media/bus/reader.js';
import type { Session } from '../../../src/media/bus/session.js';

const PYTHON = '/usr/bin/python3';
const HAVE_GST_SERVER =
  hasCommand('ffprobe') &&
  spawnSync(PYTHON, ['-c', "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"]).status === 0;

/**
 * Three gst-rtsp-servers in one process, like IP cameras: argv[1] serves /cam openly, argv[2] serves /cam behind
 * Digest auth (user cam, pass pw), both H.264 (15-frame GOP) + AAC; argv[3] serves /cam openly with a 600-frame
 * GOP (40 s at 15 fps), for keyframe requests.
 */
const GST_CAMERA = `
import sys, gi
gi.require_version('Gst', '1.0')
gi.require_version('GstRtsp', '1.0')
gi.require_version('GstRtspServer', '1.0')
from gi.repository import Gst, GstRtsp, GstRtspServer, GLib
Gst.init(None)
launch = ('( videotestsrc is-live=true ! video/x-raw,format=I420,width=320,height=180,framerate=15/1 ! '
          'x264enc tune=zerolatency bitrate=150 key-int-max=%d ! rtph264pay name=pay0 pt=96 '
          'audiotestsrc is-live=true ! audio/x-raw,rate=48000,channels=2 ! avenc_aac ! aacparse ! rtpmp4gpay name=pay1 pt=97 )')
def camera(port, secure, gop=15):
    server = GstRtspServer.RTSPServer()
    server.set_address('127.0.0.1')
    server.set_service(port)
    f = GstRtspServer.RTSPMediaFactory()
    f.set_launch(launch % gop)
    f.set_shared(True)
    if secure:
        perms = GstRtspServer.RTSPPermissions()
        perms.add_permission_for_role('cam', 'media.factory.access', True)
        perms.add_permission_for_role('cam', 'media.factory.construct', True)
        f.set_permissions(perms)
        auth = GstRtspServer.RTSPAuth()
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        token = GstRtspServer.RTSPToken()
        token.set_string('media.factory.role', 'cam')
        auth.add_digest('cam', 'pw', token)
        server.set_auth(auth)
    server.get_mount_points().add_factory('/cam', f)
    server.attach(None)
camera(sys.argv[1], False)
camera(sys.argv[2], True)
camera(sys.argv[3], False, 600)
print('ready', flush=True)
GLib.MainLoop().run()
`;

/** A reader session for in-test sinks. */
function readerSession(): Session {
  return { id: 'kf-reader', protocol: 'rtsp', role: 'reader', path: '', remoteAddr: '127.0.0.1:1', state: 'play', createdAt: Date.now(), bytesIn: 0, bytesOut: 0, close() {} };
}

describe('RTSP client helpers', () => {
  it('parseSourceUrl strips credentials from the request URL', () => {
    assert.deepEqual(parseSourceUrl('rtsp://admin:p%40ss@192.0.2.10/Streaming/Channels/101?transportmode=unicast'), {
      requestUrl: 'rtsp://192.0.2.10/Streaming/Channels/101?transportmode=unicast',
      host: '192.0.2.10',
      port: 554,
      user: 'admin',
      pass: 'p@ss',
    });
    assert.throws(() => parseSourceUrl('http://x/'));
    assert.throws(() => parseSourceUrl('not a url'));
  });

  it('authorizationFor: RFC 2617 Digest without qop, with qop=auth, and Basic', () => {
    const challenge = 'Digest realm="IP Camera", nonce="abc123", algorithm="MD5"';
    const value = authorizationFor([challenge], 'admin', 'secret', 'DESCRIBE', 'rtsp://cam/live') ?? '';
    const response = computeDigestResponse({ username: 'admin', realm: 'IP Camera', pass: 'secret', method: 'DESCRIBE', uri: 'rtsp://cam/live', nonce: 'abc123', algorithm: 'MD5' });
    assert.ok(value.startsWith('Digest username="admin", realm="IP Camera", nonce="abc123", uri="rtsp://cam/live"'));
    assert.ok(value.includes(`response="${response}"`));
    const withQop = authorizationFor(['Digest realm="r", nonce="n", qop="auth,auth-int"'], 'u', 'p', 'SETUP', 'rtsp://c/x') ?? '';
    assert.match(withQop, /qop=auth, nc=00000001, cnonce="[0-9a-f]{16}"/);
    assert.equal(authorizationFor(['Basic realm="x"'], 'u', 'p', 'DESCRIBE', 'rtsp://c'), `Basic ${Buffer.from('u:p').toString('base64')}`);
    assert.equal(authorizationFor(['Bearer x'], 'u', 'p', 'DESCRIBE', 'rtsp://c'), null);
  });
});

describe('RTSP pull source: keyframe requests to a camera', () => {
  it('an in-test camera over TCP gets RR + SDES + PLI + FIR on the video RTCP channel, naming its SSRC', async () => {
    const SSRC = 0x0badcafe;
    const rtcp: Uint8Array[] = [];
    const camera = net.createServer((sock) => {
      const parser = new RtspParser();
      sock.on('error', () => {});
      sock.on('data', (d) => {
        for (const m of parser.push(d)) {
          if (m.kind === 'interleaved') {
            if (m.channel === 1) rtcp.push(Uint8Array.from(m.data));
            continue;
          }
          if (m.kind !== 'request') continue;
          const cseq = m.headers.get('cseq') ?? '0';
          const sdp = 'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:track1\r\n';
          const head = [`RTSP/1.0 200 OK`, `CSeq: ${cseq}`, 'Session: 12345678'];
          if (m.method === 'DESCRIBE') head.push('Content-Type: application/sdp', `Content-Base: ${m.url}/`, `Content-Length: ${sdp.length}`);
          if (m.method === 'SETUP') head.push(`Transport: ${m.headers.get('transport') ?? ''}`);
          sock.write(`${head.join('\r\n')}\r\n\r\n${m.method === 'DESCRIBE' ? sdp : ''}`);
          if (m.method === 'PLAY') {
            // one non-IDR slice from SSRC: enough for the source to know whom a PLI names
            const rtp = Buffer.from([0x80, 96, 0, 1, 0, 0, 0, 0, 0x0b, 0xad, 0xca, 0xfe, 0x41, 0x9a]);
            sock.write(Buffer.concat([Buffer.from([0x24, 0, 0, rtp.length]), rtp]));
          }
        }
      });
    });
    await new Promise<void>((r) => camera.listen(0, '127.0.0.1', () => r()));
    const port = (camera.address() as net.AddressInfo).port;
    const registry = new PathRegistry({ resolve: () => DEFAULT_PATH_SETTINGS, authorize: async () => {} });
    const handle = startRtspSource('cam/raw', `rtsp://127.0.0.1:${port}/stream`, registry, { transport: 'tcp' });
    try {
      const src = (): Session | undefined => registry.paths.get('cam/raw')?.publisher;
      await waitFor(() => ((src()?.stats?.().tracks as { packets: number }[] | undefined)?.[0]?.packets ?? 0) > 0, 5000);
      assert.equal(registry.requestKeyframe('cam/raw', 'test'), true);
      const withPli = (): RtcpPacket[] | undefined => rtcp.map((b) => parseRtcp(b)).find((ps) => ps.some((p) => p.type === 'pli'));
      const packets = (await waitFor(withPli, 3000)) as RtcpPacket[];
      assert.ok(isRfc3550Compound(packets));
      assert.deepEqual(packets.map((p) => p.type), ['rr', 'sdes', 'pli', 'fir']);
      const ours = (packets[0] as Extract<RtcpPacket, { type: 'rr' }>).ssrc;
      assert.deepEqual(packets[2], { type: 'pli', senderSsrc: ours, mediaSsrc: SSRC });
      assert.deepEqual(packets[3], { type: 'fir', senderSsrc: ours, mediaSsrc: 0, entries: [{ ssrc: SSRC, seqNr: 1 }] });
      assert.equal((src()?.stats?.() as { keyframeRequestsSent: number }).keyframeRequestsSent, 1);
    } finally {
      handle.close();
      camera.close();
    }
  });
});

describe('RTSP pull source against gst-rtsp-server as a camera', { skip: !HAVE_GST_SERVER && 'gst-rtsp-server (python3-gi) or ffprobe missing' }, () => {
  let gst: ChildProcess;
  let registry: PathRegistry;
  let rtsp: RtspServer;
  let rtmp: RtmpServer;

  before(async () => {
    const camPort = await freePort();
    const securePort = await freePort();
    const gopPort = await freePort();
    gst = spawn(PYTHON, ['-c', GST_CAMERA, String(camPort), String(securePort), String(gopPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      gst.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      gst.once('exit', (code) => reject(new Error(`gst-rtsp-server exited ${code}`)));
    });
    const config = parseConfig(
      `
paths:
  cam/open:
    source: rtsp://127.0.0.1:${camPort}/cam
    sourceOnDemand: true
    sourceOnDemandCloseAfter: 1s
  cam/tcp:
    source: rtsp://127.0.0.1:${camPort}/cam
    sourceOnDemand: true
    rtspTransport: tcp
  cam/secure:
    source: rtsp://cam:pw@127.0.0.1:${securePort}/cam
    sourceOnDemand: true
  cam/gop-udp:
    source: rtsp://127.0.0.1:${gopPort}/cam
    sourceOnDemand: true
    rtspTransport: udp
  cam/gop-tcp:
    source: rtsp://127.0.0.1:${gopPort}/cam
    sourceOnDemand: true
    rtspTransport: tcp
`,
      'test.yml',
    );
    registry = new PathRegistry(pathPolicy(config));
    const transportOf = (path: string): RtspSourceTransport => resolvePathConf(config, path)?.conf.rtspTransport ?? 'automatic';
    registry.setSourceStarter(sourceStarter({ rtsp: rtspSourceStarter({ transportOf }) }));
    const udp = await freeUdpPair();
    rtsp = await startRtspServer({ host: '127.0.0.1', port: 0, rtpPort: udp, rtcpPort: udp + 1, paths: registry, egress: rtspEgress, readTimeoutMs: 10_000 });
    rtmp = await startRtmpServer({ host: '127.0.0.1', port: 0, paths: registry, createPlaySink: (p) => new RtmpPlaySink(p), readTimeoutMs: 10_000 });
  });

  after(async () => {
    registry.closeAll('test over');
    await rtsp.close();
    await rtmp.close();
    gst.kill('SIGKILL');
  });

  const source = (path: string) => [...registry.sessions.values()].find((s) => s.protocol === 'source' && s.path === path);

  it('on demand over UDP (automatic): readable over RTSP and RTMP; stops after the last reader', async () => {
    const viaRtsp = await ffprobeStreams(`rtsp://127.0.0.1:${rtsp.port}/cam/open`, ['-rtsp_transport', 'tcp']);
    assert.deepEqual(viaRtsp.map((s) => s.codec_name).sort(), ['aac', 'h264']);
    assert.equal(viaRtsp.find((s) => s.codec_name === 'h264')?.width, 320);
    const viaRtmp = await ffprobeStreams(`rtmp://127.0.0.1:${rtmp.port}/cam/open`);
    assert.deepEqual(viaRtmp.map((s) => s.codec_name).sort(), ['aac', 'h264']);
    const stats = source('cam/open')?.stats?.() as { transport: string; tracks: { reception?: { packetsReceived: number } }[] };
    assert.equal(stats.transport, 'udp');
    assert.ok(stats.tracks.every((t) => (t.reception?.packetsReceived ?? 0) > 0));
    await waitFor(() => source('cam/open') === undefined, 8000); // sourceOnDemandCloseAfter 1s
  });

  it('rtspTransport: tcp pulls over interleaved TCP', async () => {
    const streams = await ffprobeStreams(`rtsp://127.0.0.1:${rtsp.port}/cam/tcp`, ['-rtsp_transport', 'udp']);
    assert.deepEqual(streams.map((s) => s.codec_name).sort(), ['aac', 'h264']);
    assert.equal((source('cam/tcp')?.stats?.() as { transport: string }).transport, 'tcp');
  });

  for (const transport of ['udp', 'tcp'] as const) {
    it(`a bus keyframe request reaches the camera as RTCP PLI/FIR over ${transport.toUpperCase()}: an IDR long before its 40 s GOP ends`, async () => {
      const path = `cam/gop-${transport}`;
      const keyframesAt: number[] = [];
      const sink: FrameSink = { start() {}, writeFrame: (f) => void (f.track.isVideo && f.keyframe && keyframesAt.push(performance.now())), bufferedBytes: () => 0, close() {} };
      const reader = await registry.addReader(path, readerSession(), sink, { protocol: 'rtsp', ip: '127.0.0.1' });
      try {
        await waitFor(() => keyframesAt.length > 0, 15_000); // the camera's first keyframe
        await new Promise((r) => setTimeout(r, 1000));
        const before = keyframesAt.length;
        const askedAt = performance.now();
        assert.equal(registry.requestKeyframe(path, 'test'), true);
        const at = (await waitFor(() => keyframesAt.find((t) => t > askedAt), 3000)) as number;
        assert.ok(at - askedAt < 3000);
        assert.equal(keyframesAt.length, before + 1);
        assert.equal((source(path)?.stats?.() as { keyframeRequestsSent: number }).keyframeRequestsSent, 1);
      } finally {
        registry.removeReader(reader);
      }
    });
  }

  it('Digest credentials from the source URL answer the camera’s 401', async () => {
    const streams = await ffprobeStreams(`rtsp://127.0.0.1:${rtsp.port}/cam/secure`, ['-rtsp_transport', 'tcp']);
    assert.equal(streams.some((s) => s.codec_name === 'h264'), true);
  });
});
