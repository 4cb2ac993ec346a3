/**
 * WHIP publish from a non-browser client that behaves like OBS 30's WHIP output (libdatachannel), end to end against
 * a whole gateway (WebRTC, RTSP, RTMP, HLS, API listeners):
 * - werift in this process is the client: a sendonly offer with H.264 (packetization-mode=1, 42e01f) and Opus, sent
 *   only once ICE gathering is complete (no trickle, no PATCH), then real media from ffmpeg (x264 baseline with a
 *   fixed 2 s keyint and libopus, over RTP into local UDP sockets, re-sent through the werift tracks). Like OBS it
 *   never answers the gateway's PLIs: keyframes come on the encoder's own schedule.
 * - the stream reads back over RTSP (H.264 + Opus), RTMP (H.264 + AAC from the Opus→AAC transcoder) and HLS (decodes
 *   without an error line); the API shows a webrtc publisher; DELETE on the Location ends it.
 * - auth like OBS: `Authorization: Bearer <stream key>` against a path with publish credentials.
 * - a trickle-ICE variant: the offer goes out before gathering completes and the candidates follow in PATCHes
 *   (`application/trickle-ice-sdpfrag`), which the gateway answers with 204.
 *
 * Everything stays on 127.0.0.1: the WebRTC listener binds it (so the answer's only candidate is 127.0.0.1), and
 * werift binds its sockets there and pairs only its 127.0.0.1 candidate (the machine's other addresses are left out
 * of the offer).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, type RTCIceCandidate } from 'werift';
import { parseConfig } from '../../src/config.js';
import { startGateway, type Gateway } from '../../src/main.js';
import { freePort, freeUdpPair } from '../helpers/gateway.js';
import { ffprobeStreams, hasCommand, run, waitFor } from '../helpers/media-tools.js';

const skip = !(hasCommand('ffmpeg') && hasCommand('ffprobe')) && 'needs ffmpeg and ffprobe';
const PATH = 'live/obs';
const SECURE_PATH = 'secure/obs';
const STREAM_KEY = 'obs-stream-key-7f3a';
/** OBS 30's payload types and fmtp (test/fixtures/sdp/obs-30.0.2-whip-offer.sdp). */
const H264_PT = 96;
const OPUS_PT = 111;
const H264_FMTP = 'profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1';
const OPUS_FMTP = 'minptime=10;maxaveragebitrate=96000;stereo=1;sprop-stereo=1;useinbandfec=1';

/** A werift peer that sends like OBS: sendonly H.264 + Opus, on 127.0.0.1 only, no STUN server. */
function obsLikePeer(): { pc: RTCPeerConnection; video: MediaStreamTrack; audio: MediaStreamTrack; plis: { n: number } } {
  const pc = new RTCPeerConnection({
    // werift's default iceServers name a public STUN server: nothing may leave this machine
    iceServers: [],
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
    iceFilterCandidatePair: (pair) => pair.localCandidate.host === '127.0.0.1' && pair.remoteCandidate.host === '127.0.0.1',
    bundlePolicy: 'max-bundle',
    headerExtensions: { audio: [], video: [] },
    codecs: {
      audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: OPUS_PT, parameters: OPUS_FMTP })],
      video: [
        new RTCRtpCodecParameters({
          mimeType: 'video/H264',
          clockRate: 90000,
          payloadType: H264_PT,
          parameters: H264_FMTP,
          rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'goog-remb' }],
        }),
      ],
    },
  });
  // OBS orders audio first (mid 0), then video (mid 1)
  const audio = new MediaStreamTrack({ kind: 'audio' });
  const video = new MediaStreamTrack({ kind: 'video' });
  pc.addTransceiver(audio, { direction: 'sendonly' });
  const vt = pc.addTransceiver(video, { direction: 'sendonly' });
  const plis = { n: 0 };
  // payload-specific feedback (PLI/FIR) is counted, never acted on: OBS answers it late or not at all
  vt.sender.onRtcp.subscribe((p) => {
    if (p.type === 206) plis.n++;
  });
  return { pc, video, audio, plis };
}

/**
 * werift's complete offer laid out as OBS 30 (libdatachannel) lays out its own (test/fixtures/sdp/obs-30.0.2-whip-offer.sdp):
 * ICE credentials, fingerprint, setup and `ice-options:ice2,trickle` at session level only; the m-lines carry the
 * host candidate's port and address; the candidates (only 127.0.0.1: werift also lists the machine's other
 * interfaces, which it never pairs here) and `a=end-of-candidates` in the first m-section only.
 */
function obsShaped(sdp: string): string {
  const lines = sdp.split('\r\n').filter((l) => l !== '');
  const first = lines.findIndex((l) => l.startsWith('m='));
  const media = lines.slice(first);
  const pick = (name: string): string => {
    const l = media.find((x) => x.startsWith(`a=${name}:`));
    assert.ok(l, `werift's offer has a=${name}`);
    return l;
  };
  const cands = media.filter((l) => l.startsWith('a=candidate:') && / 127\.0\.0\.1 \d+ typ host/.test(l));
  const uniq = [...new Set(cands)];
  assert.ok(uniq.length > 0, 'werift gathered a 127.0.0.1 candidate');
  const port = uniq[0]!.split(' ')[5]!;
  const out = ['v=0', `o=rtc ${Date.now() % 2 ** 31} 0 IN IP4 127.0.0.1`, 's=-', 't=0 0', 'a=group:BUNDLE 0 1', 'a=group:LS 0 1',
    'a=msid-semantic:WMS *', 'a=setup:actpass', pick('ice-ufrag'), pick('ice-pwd'), 'a=ice-options:ice2,trickle', pick('fingerprint')];
  const notInMedia = /^a=(ice-ufrag|ice-pwd|ice-options|fingerprint|setup|rtcp|candidate):|^a=end-of-candidates$/;
  let section = -1;
  for (const l of media) {
    if (l.startsWith('m=')) {
      section++;
      out.push(l.replace(/^(m=\S+) \d+ /, `$1 ${port} `));
      continue;
    }
    if (notInMedia.test(l)) continue;
    if (l.startsWith('c=')) {
      out.push('c=IN IP4 127.0.0.1');
      continue;
    }
    out.push(l);
    if (l.startsWith('a=mid:') && section === 0) out.push(...uniq, 'a=end-of-candidates');
  }
  return `${out.join('\r\n')}\r\n`;
}

/** Waits until werift's ICE gathering is complete (OBS sends its offer only then). */
async function gatheringComplete(pc: RTCPeerConnection): Promise<void> {
  await waitFor(() => pc.iceGatheringState === 'complete', 10_000);
}

async function connected(pc: RTCPeerConnection, timeoutMs = 10_000): Promise<void> {
  await waitFor(() => {
    if (pc.connectionState === 'failed') throw new Error('werift peer failed');
    return pc.connectionState === 'connected';
  }, timeoutMs, 50);
}

/** A UDP socket on 127.0.0.1 whose datagrams (ffmpeg's RTP) go out through `track`. */
async function rtpInlet(track: MediaStreamTrack): Promise<{ sock: Socket; port: number; packets: { n: number } }> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const packets = { n: 0 };
  sock.on('message', (m) => {
    packets.n++;
    track.writeRtp(m);
  });
  return { sock, port: sock.address().port, packets };
}

/** ffmpeg encoding like OBS's defaults: x264 baseline, no B-frames, keyframe every 2 s at 30 fps; libopus 48 kHz stereo. */
function ffmpegRtp(videoPort: number, audioPort: number): ChildProcess {
  const args = [
    '-hide_banner', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30',
    '-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=48000',
    '-map', '0:v', '-c:v', 'libx264', '-profile:v', 'baseline', '-preset', 'ultrafast', '-tune', 'zerolatency',
    '-pix_fmt', 'yuv420p', '-bf', '0', '-g', '60', '-keyint_min', '60', '-sc_threshold', '0', '-b:v', '1M',
    '-payload_type', String(H264_PT), '-f', 'rtp', `rtp://127.0.0.1:${videoPort}?pkt_size=1200`,
    '-map', '1:a', '-c:a', 'libopus', '-ac', '2', '-b:a', '96k',
    '-payload_type', String(OPUS_PT), '-f', 'rtp', `rtp://127.0.0.1:${audioPort}?pkt_size=1200`,
  ];
  return spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

interface SessionJson {
  protocol: string;
  role: string;
  path: string | null;
  state: string;
}

interface PathJson {
  ready: boolean;
  source: { type: string; id: string | null } | null;
  tracks: { codec: string }[];
}

describe('WHIP from an OBS-like client (werift): complete offer, Bearer key, and a trickle variant', { skip, timeout: 120_000 }, () => {
  let gw: Gateway;
  let whipBase: string;
  let apiBase: string;
  const cleanup: (() => unknown)[] = [];

  before(async () => {
    const rtp = await freeUdpPair();
    const p = { rtmp: await freePort(), rtsp: await freePort(), hls: await freePort(), webrtc: await freePort(), ice: await freePort(), api: await freePort() };
    // like test/helpers/gateway.ts startTestGateway, but the WebRTC listener binds 127.0.0.1 so that the answer's
    // only host candidate is 127.0.0.1 (unbound, it would announce every non-internal address of the machine)
    const yaml = [
      'listeners:',
      `  rtmp: { port: ${p.rtmp}, host: 127.0.0.1 }`,
      `  rtsp: { port: ${p.rtsp}, host: 127.0.0.1, rtpPort: ${rtp}, rtcpPort: ${rtp + 1} }`,
      `  hls: { port: ${p.hls}, host: 127.0.0.1 }`,
      `  webrtc: { port: ${p.webrtc}, host: 127.0.0.1, icePort: ${p.ice} }`,
      '  sip: { enabled: false }',
      `  api: { port: ${p.api}, host: 127.0.0.1 }`,
      '  metrics: { enabled: false }',
      'paths:',
      `  ${PATH}: {}`,
      `  ${SECURE_PATH}: { publishUser: obs, publishPass: ${STREAM_KEY} }`,
      '',
    ].join('\n');
    gw = await startGateway({ config: parseConfig(yaml, 'whip-obs-like.yml'), handleSignals: false });
    cleanup.push(() => gw.close());
    whipBase = `http://127.0.0.1:${gw.ports.webrtc}`;
    apiBase = `http://127.0.0.1:${gw.ports.api}`;
  });

  after(async () => {
    for (const f of cleanup.reverse()) await f();
  });

  it('publishes H.264 + Opus with all candidates in the offer; RTSP, RTMP (AAC), HLS and the API see it; DELETE ends it', async () => {
    const { pc, video, audio, plis } = obsLikePeer();
    const local: (() => unknown)[] = [() => pc.close()];
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gatheringComplete(pc);
      const offer = obsShaped(pc.localDescription!.sdp);
      // the shape of OBS's offer: credentials only at session level, both sections sendonly, OBS's H.264 fmtp
      const sessionPart = offer.slice(0, offer.indexOf('m='));
      const mediaPart = offer.slice(offer.indexOf('m='));
      assert.match(sessionPart, /^a=ice-ufrag:/m);
      assert.match(sessionPart, /^a=fingerprint:sha-256 /m);
      assert.doesNotMatch(mediaPart, /^a=(ice-ufrag|ice-pwd|fingerprint|setup):/m);
      assert.equal((offer.match(/^a=sendonly/gm) ?? []).length, 2);
      assert.match(offer, /^a=fmtp:96 profile-level-id=42e01f;packetization-mode=1/m);

      const res = await fetch(`${whipBase}/${PATH}/whip`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer });
      const answer = await res.text();
      assert.equal(res.status, 201, answer);
      assert.equal(res.headers.get('content-type'), 'application/sdp');
      const location = res.headers.get('location') ?? '';
      assert.match(location, new RegExp(`^/${PATH}/whip/[0-9a-f-]{36}$`));
      // the answer carries exactly one host candidate: the address the listener binds
      const cands = answer.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:'));
      console.log(`# answer candidates: ${cands.map((l) => l.split(' ').slice(2, 8).join(' ')).join(' | ')}`);
      assert.ok(cands.length > 0 && cands.every((l) => / 127\.0\.0\.1 \d+ typ host/.test(l)), cands.join('\n'));
      assert.match(answer, /^a=recvonly/m);
      assert.match(answer, /^a=ice-lite/m);
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      await connected(pc);

      const v = await rtpInlet(video);
      const a = await rtpInlet(audio);
      local.push(() => v.sock.close(), () => a.sock.close());
      const ff = ffmpegRtp(v.port, a.port);
      let ffErr = '';
      ff.stderr?.on('data', (d: Buffer) => (ffErr += d.toString()));
      local.push(() => ff.kill('SIGKILL'));
      const started = Date.now();

      await waitFor(() => gw.registry.paths.get(PATH)?.stream.ready, 10_000);
      assert.deepEqual(gw.registry.paths.get(PATH)!.stream.tracks.map((t) => t.codec).sort(), ['h264', 'opus']);

      const api = await fetch(`${apiBase}/v1/paths/${PATH}`);
      assert.equal(api.status, 200);
      const pj = (await api.json()) as PathJson;
      assert.equal(pj.ready, true);
      assert.equal(pj.source?.type, 'webrtcPublisher', JSON.stringify(pj));
      assert.equal(pj.source?.id, location.split('/').pop());
      assert.deepEqual(pj.tracks.map((t) => t.codec).sort(), ['h264', 'opus']);

      const readers = await Promise.all([
        ffprobeStreams(`rtsp://127.0.0.1:${gw.ports.rtsp}/${PATH}`, ['-rtsp_transport', 'tcp']),
        ffprobeStreams(`rtmp://127.0.0.1:${gw.ports.rtmp}/${PATH}`, [], 25_000),
        run('ffmpeg', ['-v', 'error', '-i', `http://127.0.0.1:${gw.ports.hls}/${PATH}/index.m3u8`, '-t', '5', '-f', 'null', '-'], 40_000),
      ]);
      const [rtsp, rtmp, hls] = readers;
      const brief = (s: typeof rtsp): string => JSON.stringify(s.map((x) => [x.codec_name, x.width ?? x.sample_rate]));
      console.log(`# rtsp ${brief(rtsp)} rtmp ${brief(rtmp)}; ${v.packets.n} video / ${a.packets.n} audio RTP sent, ${plis.n} keyframe requests ignored, ${Date.now() - started} ms`);
      assert.deepEqual(rtsp.map((s) => s.codec_name).sort(), ['h264', 'opus']);
      assert.equal(rtsp.find((s) => s.codec_name === 'h264')?.width, 640);
      assert.deepEqual(rtmp.map((s) => s.codec_name).sort(), ['aac', 'h264']);
      assert.equal(hls.code, 0, hls.stderr);
      assert.equal(hls.stderr.trim(), '', 'HLS decodes without an error line');
      assert.equal(ffErr.trim(), '', 'the ffmpeg encoder ran cleanly');

      const del = await fetch(`${whipBase}${location}`, { method: 'DELETE' });
      assert.equal(del.status, 200);
      await waitFor(() => !gw.registry.paths.get(PATH)?.stream.ready, 5000);
      const after = await fetch(`${apiBase}/v1/paths/${PATH}`);
      if (after.status === 200) {
        const aj = (await after.json()) as PathJson;
        assert.equal(aj.ready, false);
        assert.equal(aj.source, null);
      } else {
        assert.equal(after.status, 404);
      }
      assert.equal((await fetch(`${whipBase}${location}`, { method: 'DELETE' })).status, 404, 'the resource is gone');
    } finally {
      for (const f of local.reverse()) await f();
    }
  });

  it('publish credentials: no Authorization or a wrong Bearer token → 401; Bearer <stream key> → 201 and connects', async () => {
    const { pc } = obsLikePeer();
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gatheringComplete(pc);
      const offer = obsShaped(pc.localDescription!.sdp);
      const post = (auth?: string): Promise<Response> =>
        fetch(`${whipBase}/${SECURE_PATH}/whip`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/sdp', ...(auth ? { Authorization: auth } : {}) },
          body: offer,
        });
      const none = await post();
      assert.equal(none.status, 401, await none.text());
      const wrong = await post('Bearer not-the-key');
      assert.equal(wrong.status, 401, await wrong.text());
      assert.equal(gw.registry.paths.get(SECURE_PATH)?.stream.ready ?? false, false);

      const ok = await post(`Bearer ${STREAM_KEY}`);
      const answer = await ok.text();
      assert.equal(ok.status, 201, answer);
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      await connected(pc);
      // the session turns to 'publish' once DTLS is up (the gateway's side of "connected")
      const location = ok.headers.get('location')!;
      const id = location.split('/').pop()!;
      await waitFor(async () => ((await (await fetch(`${apiBase}/v1/sessions/${id}`)).json()) as SessionJson).state === 'publish', 5000);
      const s = (await (await fetch(`${apiBase}/v1/sessions/${id}`)).json()) as SessionJson;
      assert.deepEqual([s.protocol, s.role, s.path], ['webrtc', 'publisher', SECURE_PATH]);
      assert.equal((await fetch(`${whipBase}${location}`, { method: 'DELETE' })).status, 200);
    } finally {
      await pc.close();
    }
  });

  it('trickle ICE: offer sent before gathering completes, candidates PATCHed (204), the session connects', async () => {
    const { pc } = obsLikePeer();
    try {
      const offer = await pc.createOffer();
      // the offer as it stands before gathering: no candidates yet (any already there are taken out: they trickle)
      const early = offer.sdp
        .split('\r\n')
        .filter((l) => !l.startsWith('a=candidate:') && l !== 'a=end-of-candidates')
        .join('\r\n');
      const candidates: RTCIceCandidate[] = [];
      let gathered = false;
      pc.onIceCandidate.subscribe((c) => {
        if (c) candidates.push(c);
        else gathered = true;
      });
      const res = await fetch(`${whipBase}/${PATH}/whip`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: early });
      const answer = await res.text();
      assert.equal(res.status, 201, answer);
      assert.equal(res.headers.get('accept-patch'), 'application/trickle-ice-sdpfrag');
      const location = res.headers.get('location')!;
      const etag = res.headers.get('etag')!;
      await pc.setLocalDescription(offer);
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      await waitFor(() => gathered || pc.iceGatheringState === 'complete', 10_000);

      const ufrag = /^a=ice-ufrag:(.*)$/m.exec(pc.localDescription!.sdp)![1]!.trim();
      const pwd = /^a=ice-pwd:(.*)$/m.exec(pc.localDescription!.sdp)![1]!.trim();
      const loop = candidates.filter((c) => / 127\.0\.0\.1 \d+ typ /.test(c.candidate ?? ''));
      assert.ok(loop.length > 0, 'werift gathered a 127.0.0.1 candidate');
      // RFC 8840 sdpfrag: ICE credentials, then per m-line its mid and candidates (bundled: the first m-line's)
      const frag = [`a=ice-ufrag:${ufrag}`, `a=ice-pwd:${pwd}`, `m=audio 9 UDP/TLS/RTP/SAVPF ${OPUS_PT}`, 'a=mid:0',
        ...loop.map((c) => `a=${c.candidate}`), 'a=end-of-candidates', ''].join('\r\n');
      const patch = await fetch(`${whipBase}${location}`, {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': etag },
        body: frag,
      });
      assert.equal(patch.status, 204, await patch.text());
      await connected(pc);
      const id = location.split('/').pop()!;
      await waitFor(async () => ((await (await fetch(`${apiBase}/v1/sessions/${id}`)).json()) as SessionJson).state === 'publish', 5000);
      const unknown = await fetch(`${whipBase}/${PATH}/whip/00000000-0000-0000-0000-000000000000`, {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/trickle-ice-sdpfrag' },
        body: frag,
      });
      assert.equal(unknown.status, 404);
      assert.equal((await fetch(`${whipBase}${location}`, { method: 'DELETE' })).status, 200);
    } finally {
      await pc.close();
    }
  });
});
