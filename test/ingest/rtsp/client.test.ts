/**
 * The RTSP pull source against a GStreamer gst-rtsp-server acting as an IP camera (python3-gi), pulled on demand
 * and read back over RTSP and RTMP. Unit cases for the URL and Authorization helpers run everywhere.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { parseConfig, resolvePathConf } from '../../../src/config.js';
import { computeDigestResponse } from '../../../src/auth.js';
import { pathPolicy } from '../../../src/main.js';
import { sourceStarter } from '../../../src/sources.js';
import { PathRegistry } from '../../../src/media/bus/registry.js';
import { startRtmpServer, type RtmpServer } from '../../../src/ingest/rtmp/server.js';
import { RtmpPlaySink } from '../../../src/egress/rtmp/from-bus.js';
import { startRtspServer, type RtspServer } from '../../../src/ingest/rtsp/server.js';
import { rtspEgress } from '../../../src/egress/rtsp/from-bus.js';
import { authorizationFor, parseSourceUrl, rtspSourceStarter, type RtspSourceTransport } from '../../../src/ingest/rtsp/client.js';
import { freePort, freeUdpPair } from '../../helpers/gateway.js';
import { ffprobeStreams, hasCommand, waitFor } from '../../helpers/media-tools.js';

const PYTHON = '/usr/bin/python3';
const HAVE_GST_SERVER =
  hasCommand('ffprobe') &&
  spawnSync(PYTHON, ['-c', "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"]).status === 0;

/**
 * Two gst-rtsp-servers in one process, like two IP cameras: argv[1] serves /cam openly, argv[2] serves /cam behind
 * Digest auth (user cam, pass pw). H.264 + AAC.
 */
const GST_CAMERA = `
import sys, gi
gi.require_version('Gst', '1.0')
gi.require_version('GstRtsp', '1.0')
gi.require_version('GstRtspServer', '1.0')
from gi.repository import Gst, GstRtsp, GstRtspServer, GLib
Gst.init(None)
launch = ('( videotestsrc is-live=true ! video/x-raw,format=I420,width=320,height=180,framerate=15/1 ! '
          'x264enc tune=zerolatency bitrate=150 key-int-max=15 ! rtph264pay name=pay0 pt=96 '
          'audiotestsrc is-live=true ! audio/x-raw,rate=48000,channels=2 ! avenc_aac ! aacparse ! rtpmp4gpay name=pay1 pt=97 )')
def camera(port, secure):
    server = GstRtspServer.RTSPServer()
    server.set_address('127.0.0.1')
    server.set_service(port)
    f = GstRtspServer.RTSPMediaFactory()
    f.set_launch(launch)
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
print('ready', flush=True)
GLib.MainLoop().run()
`;

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

describe('RTSP pull source against gst-rtsp-server as a camera', { skip: !HAVE_GST_SERVER && 'gst-rtsp-server (python3-gi) or ffprobe missing' }, () => {
  let gst: ChildProcess;
  let registry: PathRegistry;
  let rtsp: RtspServer;
  let rtmp: RtmpServer;

  before(async () => {
    const camPort = await freePort();
    const securePort = await freePort();
    gst = spawn(PYTHON, ['-c', GST_CAMERA, String(camPort), String(securePort)], { stdio: ['ignore', 'pipe', 'pipe'] });
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

  it('Digest credentials from the source URL answer the camera’s 401', async () => {
    const streams = await ffprobeStreams(`rtsp://127.0.0.1:${rtsp.port}/cam/secure`, ['-rtsp_transport', 'tcp']);
    assert.equal(streams.some((s) => s.codec_name === 'h264'), true);
  });
});
