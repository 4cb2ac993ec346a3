/**
 * ICE-TCP and IPv6 end to end in headless Chromium (inside a network namespace, see harness.ts). The answers are
 * restricted to TCP or IPv6 candidates with the server's `iceAdvertise` test seam (there is no packet filter here to
 * block UDP or IPv4), so a connection can only succeed over the path under test; getStats() then shows which
 * candidate pair Chromium selected.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startWebrtcServer } from '../../../src/signaling/whip-whep.js';
import type { LeanViewer } from '../../../src/egress/webrtc/fanout.js';
import { browserTestEnv, canRunBrowserTests, launchTestChromium, openRegistry, pairStats, publishToBus, publishWhipFromPage, waitConnected, whepTestEnv } from './harness.js';

const skip = !canRunBrowserTests() && 'needs root (network namespaces), ffmpeg and /usr/bin/chromium';

test('WHEP over ICE-TCP only: Chromium plays through a passive TCP candidate on the ICE port', { skip, timeout: 90_000 }, async (t) => {
  const env = await whepTestEnv(t, 'live/tcp', { size: '1280x720', rate: 30, gop: 30 }, { iceAdvertise: { transports: ['tcp'] } });
  const { ns, srv } = env;
  assert.ok(srv.mux?.tcp, 'the ICE-TCP listener is bound');
  assert.equal(srv.mux.tcp.port, srv.mux.port, 'TCP on the same port number as UDP');
  const browser = await launchTestChromium(env);
  const page = await browser.newPage();
  await page.goto(`http://${ns.hostIp}:${srv.port}/live/tcp/`);
  await waitConnected(page);
  await new Promise((r) => setTimeout(r, 5000));
  const s = await pairStats(page);
  console.log(`# WHEP over ICE-TCP 5 s: ${JSON.stringify(s)} server tcp ${JSON.stringify(srv.mux.tcp.stats)}`);
  assert.equal(s.localProtocol, 'tcp');
  assert.equal(s.remoteProtocol, 'tcp');
  assert.equal(s.remoteAddress, ns.hostIp);
  assert.equal(s.remotePort, srv.mux.port);
  assert.ok(s.framesDecoded > 100, `framesDecoded ${s.framesDecoded}`);
  assert.equal(s.frameWidth, 1280);
  assert.ok(s.audioPackets > 50, `audio packets ${s.audioPackets}`);
  const viewer = [...srv.egress.sessions.values()][0] as LeanViewer;
  assert.equal(viewer.peer.link?.transport, 'tcp');
  assert.equal(viewer.peer.offloaded, false, 'TCP viewers are served from the main thread');
  assert.equal(srv.mux.tcp.stats.rejected, 0);
  await page.close({ runBeforeUnload: true });
  const end = Date.now() + 5000;
  while ((srv.egress.sessions.size > 0 || srv.mux.tcp.stats.open > 0) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  assert.equal(srv.egress.sessions.size, 0, 'DELETE ends the session');
  assert.equal(srv.mux.tcp.stats.open, 0, 'and its TCP connections close');
});

test('WHIP over ICE-TCP only: Chromium\'s fake camera publishes through the passive TCP candidate', { skip, timeout: 90_000 }, async (t) => {
  const env = browserTestEnv(t);
  const { ns, cleanup } = env;
  const registry = openRegistry();
  const srv = await startWebrtcServer({
    host: ns.hostIp, port: 0, icePort: 0, iceServers: [], additionalHosts: [], registry,
    iceAdvertise: { transports: ['tcp'] },
  });
  cleanup.push(() => srv.close());
  const origin = `http://${ns.hostIp}:${srv.port}`;
  // getUserMedia needs a secure context: treat the gateway's origin as one
  const browser = await launchTestChromium(env, [`--unsafely-treat-insecure-origin-as-secure=${origin}`]);
  const page = await browser.newPage();
  await page.goto(`${origin}/`);
  const status = await publishWhipFromPage(page, `${origin}/live/tcpwhip/whip`, { width: 640, height: 360 });
  assert.equal(status, 201);
  await waitConnected(page);
  const end = Date.now() + 10_000;
  while (!registry.paths.get('live/tcpwhip')?.stream.ready && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  const stream = registry.paths.get('live/tcpwhip')?.stream;
  assert.ok(stream?.ready, 'the published path comes up');
  assert.deepEqual(stream.tracks.map((tr) => tr.codec), ['h264', 'opus']);
  await new Promise((r) => setTimeout(r, 2000));
  const s = await pairStats(page);
  console.log(`# WHIP over ICE-TCP: ${JSON.stringify(s)} published ${stream.tracks[0]!.width}x${stream.tracks[0]!.height}`);
  assert.equal(s.localProtocol, 'tcp');
  assert.equal(s.remotePort, srv.mux!.port);
  assert.ok(s.framesEncoded > 30, `framesEncoded ${s.framesEncoded}`);
  assert.ok(stream.cachedFrames().length > 0, 'frames reached the bus');
});

test('IPv6: with only IPv6 candidates advertised (dual-stack default bind), Chromium plays over UDP/IPv6, then over ICE-TCP/IPv6', { skip, timeout: 120_000 }, async (t) => {
  const env = browserTestEnv(t, { ipv6: true });
  const { ns, cleanup } = env;
  const registry = openRegistry();
  const pub = await publishToBus(registry, 'live/v6', { size: '640x360', rate: 30, gop: 30, audio: false });
  cleanup.push(() => pub.stop());
  const browser = await launchTestChromium(env);
  for (const transport of ['udp', 'tcp'] as const) {
    // host unset: the production default (UDP on 0.0.0.0 and [::], TCP dual-stack on [::])
    const srv = await startWebrtcServer({
      port: 0, icePort: 0, iceServers: [], additionalHosts: [], registry,
      iceAdvertise: { families: [6], transports: [transport] },
    });
    try {
      const cands = srv.mux!.candidates();
      assert.ok(cands.some((c) => c.address === ns.hostIp6), `the veth's IPv6 address is a candidate: ${JSON.stringify(cands)}`);
      assert.ok(cands.every((c) => c.family === 6 && !/^fe80:/i.test(c.address)), 'no IPv4 and no link-local candidates');
      const page = await browser.newPage();
      // signaling over IPv4 HTTP; only the media path is IPv6
      await page.goto(`http://${ns.hostIp}:${srv.port}/live/v6/`);
      await waitConnected(page);
      await new Promise((r) => setTimeout(r, 5000));
      const s = await pairStats(page);
      console.log(`# WHEP over ${transport}/IPv6 5 s: ${JSON.stringify(s)}`);
      assert.equal(s.localProtocol, transport);
      assert.equal(s.localAddress, ns.peerIp6);
      assert.equal(s.remoteAddress, ns.hostIp6);
      assert.ok(s.framesDecoded > 100, `framesDecoded ${s.framesDecoded}`);
      const viewer = [...srv.egress.sessions.values()][0] as LeanViewer;
      assert.equal(viewer.peer.link?.family, 6);
      assert.equal(viewer.peer.offloaded, false, 'IPv6 viewers are served from the main thread');
      await page.close({ runBeforeUnload: true });
    } finally {
      await srv.close();
    }
  }
});

test('UDP and ICE-TCP both advertised (the default): the answer carries both, Chromium selects UDP', { skip, timeout: 90_000 }, async (t) => {
  const env = await whepTestEnv(t, 'live/both', { size: '640x360', rate: 30, gop: 30, audio: false });
  const { ns, srv } = env;
  const browser = await launchTestChromium(env);
  const page = await browser.newPage();
  await page.goto(`http://${ns.hostIp}:${srv.port}/live/both/`);
  await waitConnected(page);
  await new Promise((r) => setTimeout(r, 3000));
  const viewer = [...srv.egress.sessions.values()][0] as LeanViewer;
  assert.match(viewer.answer, new RegExp(`a=candidate:1 1 udp \\d+ ${ns.hostIp} ${srv.mux!.port} typ host\r\n`));
  assert.match(viewer.answer, new RegExp(`a=candidate:t1 1 tcp \\d+ ${ns.hostIp} ${srv.mux!.port} typ host tcptype passive\r\n`));
  const s = await pairStats(page);
  console.log(`# UDP+TCP advertised: ${JSON.stringify(s)}`);
  assert.equal(s.localProtocol, 'udp');
  assert.ok(s.framesDecoded > 50, `framesDecoded ${s.framesDecoded}`);
  assert.equal(viewer.peer.link?.transport, 'udp');
});
