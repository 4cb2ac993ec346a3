/**
 * End to end in headless Chromium, inside a network namespace the test creates: ffmpeg publishes H.264 + AAC into
 * the bus, the player page plays it over WHEP (and a page script over the WebSocket channel); getStats() must show
 * decoded 1280-wide video and received audio.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { startWebrtcServer } from '../../src/signaling/whip-whep.js';
import { startRtspServer } from '../../src/ingest/rtsp/server.js';
import { rtspEgress } from '../../src/egress/rtsp/from-bus.js';
import { ffmpegPublish, ffprobeStreams, waitFor } from '../helpers/media-tools.js';
import { startTestGateway } from '../helpers/gateway.js';
import { browserTestEnv, canRunBrowserTests, launchTestChromium, openRegistry, playStats, publishToBus, publishWhipFromPage, waitConnected, whepTestEnv } from '../egress/webrtc/harness.js';

const skip = !canRunBrowserTests() && 'needs root (network namespaces), ffmpeg and /usr/bin/chromium';

test('WHEP in Chromium: player page plays H.264 1280x720 + Opus (from AAC) for 8 s; DELETE on leave', { skip, timeout: 90_000 }, async (t) => {
  const env = await whepTestEnv(t, 'live/cam1', { size: '1280x720', rate: 30, gop: 30 });
  const { ns, srv } = env;
  const browser = await launchTestChromium(env);
  const page = await browser.newPage();
  await page.goto(`http://${ns.hostIp}:${srv.port}/live/cam1/`);
  await waitConnected(page);
  await new Promise((r) => setTimeout(r, 8000));
  const s = await playStats(page);
  console.log(`# WHEP 8 s: ${JSON.stringify(s)}`);
  assert.ok(s.framesDecoded > 150, `framesDecoded ${s.framesDecoded}`);
  assert.equal(s.frameWidth, 1280);
  assert.ok(s.audioSamples > 48000 * 4, `audio samples ${s.audioSamples}`);
  // lip sync: within ITU-R BT.1359's acceptability window (audio at most 185 ms late, 90 ms early); measured
  // here −12…−21 ms at 640x360 after 4–24 s, down to −96 ms at 720p on a loaded machine
  assert.ok(s.avOffsetMs > -185 && s.avOffsetMs < 90, `A/V offset ${s.avOffsetMs} ms`);
  assert.equal(srv.egress.sessions.size, 1);
  await page.close({ runBeforeUnload: true });
  const end = Date.now() + 5000;
  while (srv.egress.sessions.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  assert.equal(srv.egress.sessions.size, 0, 'the page DELETEs its session when it goes away');
});

test('WebSocket signaling in Chromium: plays, gets stats messages, bye ends the session', { skip, timeout: 90_000 }, async (t) => {
  const env = await whepTestEnv(t, 'live/ws', { size: '1280x720', rate: 30, gop: 30 });
  const { ns, srv } = env;
  const browser = await launchTestChromium(env);
  const page = await browser.newPage();
  // a bare page (not the player, which would open its own WHEP session)
  await page.setContent('<html><body><video id="video" autoplay muted playsinline></video></body></html>');
  const wsUrl = `ws://${ns.hostIp}:${srv.port}/live/ws/ws`;
  await page.evaluate(`(async () => {
    const pc = new RTCPeerConnection();
    window.pc = pc;
    window.msgs = [];
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    // play through the page's video element so audio is pulled (totalSamplesReceived counts decoded audio)
    const ms = new MediaStream();
    document.getElementById('video').srcObject = ms;
    pc.ontrack = (e) => ms.addTrack(e.track);
    const ws = new WebSocket(${JSON.stringify(wsUrl)});
    window.ws = ws;
    await new Promise((r) => (ws.onopen = r));
    ws.onmessage = async (e) => {
      const m = JSON.parse(e.data);
      window.msgs.push(m);
      if (m.type === 'answer') await pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
    };
    pc.onicecandidate = (e) => {
      if (e.candidate) ws.send(JSON.stringify({ type: 'candidate', candidate: e.candidate.candidate, sdpMid: e.candidate.sdpMid, sdpMLineIndex: e.candidate.sdpMLineIndex }));
    };
    await pc.setLocalDescription(await pc.createOffer());
    // trickle: the offer goes out before gathering ends; candidates follow
    ws.send(JSON.stringify({ type: 'offer', sdp: pc.localDescription.sdp }));
  })()`);
  await waitConnected(page);
  await new Promise((r) => setTimeout(r, 8000));
  const s = await playStats(page);
  console.log(`# WebSocket 8 s: ${JSON.stringify(s)}`);
  assert.ok(s.framesDecoded > 150, `framesDecoded ${s.framesDecoded}`);
  assert.equal(s.frameWidth, 1280);
  assert.ok(s.audioSamples > 0, 'audio received');
  const types = (await page.evaluate('window.msgs.map((m) => m.type)')) as string[];
  assert.ok(types.includes('answer'));
  assert.ok(types.filter((x) => x === 'stats').length >= 5, `stats messages: ${types.join(',')}`);
  await page.evaluate(`window.ws.send(JSON.stringify({ type: 'bye' }))`);
  const end = Date.now() + 3000;
  while (srv.egress.sessions.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  assert.equal(srv.egress.sessions.size, 0);
});

test('WHIP from Chromium\'s fake camera, read back over RTSP (ffprobe) and over WHEP in a second page', { skip, timeout: 90_000 }, async (t) => {
  const env = browserTestEnv(t);
  const { ns, cleanup } = env;
  const registry = openRegistry();
  const srv = await startWebrtcServer({ host: ns.hostIp, port: 0, icePort: 0, iceServers: [], additionalHosts: [], registry });
  cleanup.push(() => srv.close());
  const origin = `http://${ns.hostIp}:${srv.port}`;
  // getUserMedia needs a secure context: treat the gateway's origin as one
  const browser = await launchTestChromium(env, [`--unsafely-treat-insecure-origin-as-secure=${origin}`]);
  const pubPage = await browser.newPage();
  // any document of the gateway's origin will do (the 404 text page): it only runs the publisher script
  await pubPage.goto(`${origin}/`);
  const whipUrl = `${origin}/live/whip/whip`;
  const status = await publishWhipFromPage(pubPage, whipUrl, { width: 1280, height: 720, waitForGathering: true, keepSession: true });
  assert.equal(status, 201);
  await waitConnected(pubPage);
  // the path comes up when the first keyframe with SPS/PPS arrives
  const end = Date.now() + 10_000;
  while (!registry.paths.get('live/whip')?.stream.ready && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  const stream = registry.paths.get('live/whip')!.stream;
  assert.deepEqual(stream.tracks.map((tr) => tr.codec), ['h264', 'opus']);
  const rtsp = await startRtspServer({ host: '127.0.0.1', port: 0, paths: registry, egress: rtspEgress, readTimeoutMs: 10_000 });
  cleanup.push(() => rtsp.close());
  const probed = await ffprobeStreams(`rtsp://127.0.0.1:${rtsp.port}/live/whip`, ['-rtsp_transport', 'tcp']);
  assert.deepEqual(probed.map((p) => p.codec_name).sort(), ['h264', 'opus']);
  const viewer = await browser.newPage();
  await viewer.goto(`${origin}/live/whip/`);
  await waitConnected(viewer);
  await new Promise((r) => setTimeout(r, 5000));
  const s = await playStats(viewer);
  console.log(`# WHIP→WHEP 5 s: ${JSON.stringify(s)} published ${stream.tracks[0]!.width}x${stream.tracks[0]!.height}`);
  assert.ok(s.framesDecoded > 60, `framesDecoded ${s.framesDecoded}`);
  assert.ok(s.frameWidth > 0);
  assert.ok(s.audioPackets > 100, `audio packets ${s.audioPackets}`);
  // DELETE ends the publish session
  await pubPage.evaluate('fetch(window.whipSession, { method: "DELETE" }).then((r) => r.status)');
  const end2 = Date.now() + 3000;
  while (registry.paths.get('live/whip')?.publisher && Date.now() < end2) await new Promise((r) => setTimeout(r, 100));
  assert.equal(registry.paths.get('live/whip')?.publisher, undefined);
});

test('WHEP through a TURN relay (coturn, iceTransportPolicy relay, REST credentials from turnSecret)', { skip: skip || (spawnSync('sh', ['-c', 'command -v turnserver']).status !== 0 && 'coturn not installed'), timeout: 90_000 }, async (t) => {
  const env = browserTestEnv(t);
  const { ns, cleanup } = env;
  const turnPort = 20000 + Math.floor(Math.random() * 20000);
  const secret = 'turn-test-secret';
  const turn = spawn('turnserver', [
    '-n', '--listening-ip', ns.hostIp, '--listening-port', String(turnPort), '--relay-ip', ns.hostIp,
    '--min-port', String(turnPort + 1), '--max-port', String(turnPort + 200),
    '--use-auth-secret', '--static-auth-secret', secret, '--realm', 'streamgate',
    '--no-tls', '--no-dtls', '--no-cli', '--allow-loopback-peers', '--no-stdout-log', '--log-file', '/dev/null',
  ], { stdio: 'ignore' });
  cleanup.push(() => turn.kill('SIGKILL'));
  const registry = openRegistry();
  const pub = await publishToBus(registry, 'live/turn', { size: '1280x720', rate: 30, gop: 30 });
  cleanup.push(() => pub.stop());
  const srv = await startWebrtcServer({
    host: ns.hostIp, port: 0, icePort: 0, additionalHosts: [], registry,
    iceServers: [{ urls: [`turn:${ns.hostIp}:${turnPort}?transport=udp`] }], turnSecret: secret,
  });
  cleanup.push(() => srv.close());
  const browser = await launchTestChromium(env);
  const page = await browser.newPage();
  await page.goto(`http://${ns.hostIp}:${srv.port}/live/turn/?relay=1`);
  await waitConnected(page, 20_000);
  await new Promise((r) => setTimeout(r, 5000));
  const s = await playStats(page);
  const candidateType = await page.evaluate(`(async () => {
    const stats = await window.streamgate.pc.getStats();
    let pairId; stats.forEach((x) => { if (x.type === 'transport') pairId = x.selectedCandidatePairId; });
    let localId; stats.forEach((x) => { if (x.id === pairId) localId = x.localCandidateId; });
    let type; stats.forEach((x) => { if (x.id === localId) type = x.candidateType; });
    return type;
  })()`);
  console.log(`# TURN 5 s: ${JSON.stringify(s)} local candidate ${String(candidateType)}`);
  assert.equal(candidateType, 'relay');
  assert.ok(s.framesDecoded > 90, `framesDecoded ${s.framesDecoded}`);
  assert.equal(s.frameWidth, 1280);
});

test('the whole gateway: ffmpeg publishes RTMP (H.264 + AAC), Chromium plays it over WHEP from the player page', { skip, timeout: 90_000 }, async (t) => {
  const env = browserTestEnv(t);
  const { ns, cleanup } = env;
  const gw = await startTestGateway('', ['rtmp', 'webrtc']);
  cleanup.push(() => gw.close());
  const ff = ffmpegPublish(`rtmp://127.0.0.1:${gw.ports.rtmp}/live/cam1`, { size: '1280x720', rate: 30, gop: 30 });
  cleanup.push(() => ff.kill('SIGKILL'));
  await waitFor(() => gw.registry.paths.get('live/cam1')?.stream.ready, 15_000);
  const browser = await launchTestChromium(env);
  const page = await browser.newPage();
  // the WebRTC listener binds every interface; the browser reaches it on the veth address
  await page.goto(`http://${ns.hostIp}:${gw.ports.webrtc}/live/cam1/`);
  await waitConnected(page);
  await new Promise((r) => setTimeout(r, 8000));
  const s = await playStats(page);
  console.log(`# RTMP→WHEP 8 s: ${JSON.stringify(s)}`);
  assert.ok(s.framesDecoded > 150, `framesDecoded ${s.framesDecoded}`);
  assert.equal(s.frameWidth, 1280);
  assert.ok(s.audioSamples > 48000 * 4, `audio samples ${s.audioSamples}`);
});

test('ICE restart from Chromium over WHEP PATCH (RFC 9725 §4.3.2): new credentials, playback goes on', { skip, timeout: 90_000 }, async (t) => {
  const env = await whepTestEnv(t, 'live/restart', { size: '640x360', rate: 30, gop: 30 });
  const { ns, srv } = env;
  const browser = await launchTestChromium(env);
  const page = await browser.newPage();
  await page.goto(`http://${ns.hostIp}:${srv.port}/live/restart/`);
  await waitConnected(page);
  await new Promise((r) => setTimeout(r, 2000));
  const before = await playStats(page);
  // what a WHEP client does for pc.restartIce(): a new offer, its credentials PATCHed, the answer's applied
  const r = (await page.evaluate(`(async () => {
    const pc = window.streamgate.pc;
    const oldRemote = /a=ice-ufrag:(\\S+)/.exec(pc.remoteDescription.sdp)[1];
    pc.restartIce();
    const offer = await pc.createOffer({ iceRestart: true });
    await pc.setLocalDescription(offer);
    const sdp = pc.localDescription.sdp;
    const ufrag = /a=ice-ufrag:(\\S+)/.exec(sdp)[1];
    const pwd = /a=ice-pwd:(\\S+)/.exec(sdp)[1];
    const mline = /^m=[^\\r\\n]*/m.exec(sdp)[0];
    const mid = /a=mid:(\\S+)/.exec(sdp)[1];
    const frag = 'a=ice-ufrag:' + ufrag + '\\r\\na=ice-pwd:' + pwd + '\\r\\n' + mline + '\\r\\na=mid:' + mid + '\\r\\n';
    const res = await fetch(window.streamgate.session, { method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': '*' }, body: frag });
    const text = await res.text();
    if (res.status !== 200) return { status: res.status, text };
    const nu = /a=ice-ufrag:(\\S+)/.exec(text)[1];
    const np = /a=ice-pwd:(\\S+)/.exec(text)[1];
    const remote = pc.remoteDescription.sdp.replace(/a=ice-ufrag:\\S+/g, 'a=ice-ufrag:' + nu).replace(/a=ice-pwd:\\S+/g, 'a=ice-pwd:' + np);
    await pc.setRemoteDescription({ type: 'answer', sdp: remote });
    return { status: res.status, oldRemote, newRemote: nu };
  })()`)) as { status: number; text?: string; oldRemote?: string; newRemote?: string };
  assert.equal(r.status, 200, r.text);
  assert.notEqual(r.newRemote, r.oldRemote);
  const viewer = [...srv.egress.sessions.values()][0] as unknown as { peer: { localUfrag: string } };
  assert.equal(viewer.peer.localUfrag, r.newRemote, 'the server uses the new credentials');
  // Chromium runs checks with the new credentials and stays connected; frames keep coming
  const answered0 = srv.mux!.stats.stunAnswered;
  await new Promise((res) => setTimeout(res, 4000));
  const state = await page.evaluate(`window.streamgate.pc.iceConnectionState`);
  assert.ok(state === 'connected' || state === 'completed', `ICE state after the restart: ${String(state)}`);
  assert.ok(srv.mux!.stats.stunAnswered > answered0, 'checks with the new ufrag answered');
  const after = await playStats(page);
  console.log(`# ICE restart: frames ${before.framesDecoded} → ${after.framesDecoded}`);
  assert.ok(after.framesDecoded - before.framesDecoded > 60, `frames decoded after the restart: ${after.framesDecoded - before.framesDecoded}`);
});
