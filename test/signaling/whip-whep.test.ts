import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { iceServersFor, linkHeader, route, startWebrtcServer, statusOf } from '../../src/signaling/whip-whep.js';
import { AuthError, BusyError, NotFoundError, ParseError, ProtocolError } from '../../src/errors.js';
import { openRegistry, publishToBus } from '../egress/webrtc/harness.js';
import { serializeRtcp } from '../../src/media/rtp/rtcp.js';

const fixture = (name: string): string => readFileSync(new URL(`../../../test/fixtures/webrtc/${name}`, import.meta.url), 'utf8');

test('route: WHEP/WHIP endpoints, sessions, page, ws, redirects', () => {
  assert.deepEqual(route('/live/cam1/whep'), { kind: 'whep', path: 'live/cam1' });
  assert.deepEqual(route('/live/cam1/whip'), { kind: 'whip', path: 'live/cam1' });
  assert.deepEqual(route('/live/cam1/ws'), { kind: 'ws', path: 'live/cam1' });
  assert.deepEqual(route('/live/cam1/'), { kind: 'page', path: 'live/cam1' });
  assert.deepEqual(route('/live/cam1'), { kind: 'redirect', location: '/live/cam1/' });
  const id = '0b8f3c8e-7a0e-4a57-9d0c-2f4a3e0f9a11';
  assert.deepEqual(route(`/live/cam1/whep/${id}`), { kind: 'session', path: 'live/cam1', endpoint: 'whep', id });
  for (const bad of ['/', '//whep', '/a//b/whep', '/a b/whep', '/%zz/whep', '/../x/whep', '/x/whep/not-an-id']) {
    const r = route(bad);
    assert.ok(r.kind === 'none' || (r.kind === 'redirect' && !bad.includes(' ')), `${bad} → ${JSON.stringify(r)}`);
  }
});

test('Link header and TURN REST credentials', () => {
  const servers = [{ urls: ['stun:stun.example.org:3478'] }, { urls: ['turn:turn.example.org:3478?transport=udp'] }];
  const withCreds = iceServersFor(servers, 'sekrit', 1_700_000_000);
  assert.equal(withCreds[0]!.username, undefined);
  assert.equal(withCreds[1]!.username, `${1_700_000_000 + 86400}:streamgate`);
  assert.match(withCreds[1]!.credential!, /^[A-Za-z0-9+/]+=*$/);
  assert.deepEqual(linkHeader(withCreds), [
    '<stun:stun.example.org:3478>; rel="ice-server"',
    `<turn:turn.example.org:3478?transport=udp>; rel="ice-server"; username="${withCreds[1]!.username}"; credential="${withCreds[1]!.credential}"; credential-type="password"`,
  ]);
});

test('statusOf maps errors to WHEP status codes', () => {
  assert.equal(statusOf(new ParseError('sdp', 'x')), 400);
  assert.equal(statusOf(new ProtocolError(488, 'x')), 406);
  assert.equal(statusOf(new NotFoundError('x')), 404);
  assert.equal(statusOf(new AuthError()), 401);
  assert.equal(statusOf(new BusyError('x')), 503);
  assert.equal(statusOf(new Error('bug')), 500);
});

test('WHEP HTTP: OPTIONS, 404 unknown path, 400 bad SDP, 406 no usable codec, 415, 405, page', async (t) => {
  const registry = openRegistry();
  const srv = await startWebrtcServer({
    host: '127.0.0.1', port: 0, icePort: 0, registry, additionalHosts: [],
    iceServers: [{ urls: ['stun:stun.example.org:3478'] }],
  });
  t.after(() => srv.close());
  const base = `http://127.0.0.1:${srv.port}`;
  const post = (path: string, body: string, ct = 'application/sdp'): Promise<Response> =>
    fetch(`${base}/${path}`, { method: 'POST', headers: { 'Content-Type': ct }, body });

  const opt = await fetch(`${base}/live/cam1/whep`, { method: 'OPTIONS' });
  assert.equal(opt.status, 204);
  assert.equal(opt.headers.get('access-control-allow-origin'), '*');
  assert.equal(opt.headers.get('link'), '<stun:stun.example.org:3478>; rel="ice-server"');

  const offer = fixture('chromium-156-whep-offer.sdp');
  const r404 = await post('nobody/here/whep', offer);
  assert.equal(r404.status, 404);
  assert.match(await r404.text(), /no one is publishing/);

  const pub = await publishToBus(registry, 'live/cam1', { size: '320x240', audio: false });
  t.after(() => pub.stop());

  const r400 = await post('live/cam1/whep', 'v=0\r\nthis is not sdp\r\n');
  assert.equal(r400.status, 400);
  assert.match(await r400.text(), /sdp/);

  const r406 = await post('live/cam1/whep', fixture('chromium-156-audio-only-offer.sdp'));
  assert.equal(r406.status, 406);
  assert.match(await r406.text(), /no usable media/);

  assert.equal((await post('live/cam1/whep', offer, 'text/plain')).status, 415);
  assert.equal((await fetch(`${base}/live/cam1/whep`)).status, 405);
  assert.equal((await fetch(`${base}/live/cam1/whep/0b8f3c8e-7a0e-4a57-9d0c-2f4a3e0f9a11`, { method: 'DELETE' })).status, 404);

  const page = await fetch(`${base}/live/cam1/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<video[^>]*autoplay/);
  const redirect = await fetch(`${base}/live/cam1`, { redirect: 'manual' });
  assert.equal(redirect.status, 301);
  assert.equal(redirect.headers.get('location'), '/live/cam1/');

  // a valid offer: 201 + answer + Location; DELETE ends it
  const ok = await post('live/cam1/whep', offer);
  assert.equal(ok.status, 201);
  assert.equal(ok.headers.get('content-type'), 'application/sdp');
  const answer = await ok.text();
  assert.match(answer, /a=setup:(active|passive)/);
  assert.match(answer, /a=candidate:/);
  const h264 = /a=fmtp:(\d+) .*packetization-mode=1/.exec(answer);
  assert.ok(h264, 'answer has H.264 packetization-mode=1');
  const location = ok.headers.get('location')!;
  assert.match(location, /^\/live\/cam1\/whep\/[0-9a-f-]{36}$/);
  assert.equal(srv.egress.sessions.size, 1);
  assert.equal(registry.sessions.size, 2); // publisher + viewer
  // the viewer's PLI reaches the path's publisher through the bus, whatever kind it is (here the test's own)
  const asked: string[] = [];
  const stream = registry.paths.get('live/cam1')!.stream;
  stream.setKeyframeHandler((reason) => asked.push(reason));
  const viewer = srv.egress.sessions.get(location.split('/').pop()!) as unknown as { peer: { onRtcp?: (b: Buffer) => void } };
  viewer.peer.onRtcp!(Buffer.from(serializeRtcp([{ type: 'pli', senderSsrc: 1, mediaSsrc: 2 }])));
  assert.deepEqual(asked, ['webrtc viewer PLI/FIR']);
  assert.deepEqual(stream.keyframeRequests, { requested: 1, passedUp: 1, unserved: 0 });
  // PATCH (RFC 9725 §4.3): trickle fragments 204, an ICE restart 200 with new credentials and a new ETag, wrong type
  // 415, stale ETag 412
  const ufrag = /^a=ice-ufrag:(\S+)/m.exec(offer)![1]!;
  const patch = (body: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${base}${location}`, { method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', ...headers }, body });
  const frag = (u: string): string => `a=ice-ufrag:${u}\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 10.0.0.9 50000 typ host\r\n`;
  const etag0 = ok.headers.get('etag')!;
  assert.equal((await patch(frag(ufrag), { 'If-Match': etag0 })).status, 204);
  assert.equal((await patch(frag(ufrag))).status, 204, 'If-Match is optional for trickle');
  assert.equal((await patch(frag(ufrag), { 'Content-Type': 'application/sdp' })).status, 415);
  assert.equal((await patch(frag(ufrag), { 'If-Match': '"not-this-one"' })).status, 412);
  const oldLocal = { ufrag: /^a=ice-ufrag:(\S+)/m.exec(answer)![1]!, pwd: /^a=ice-pwd:(\S+)/m.exec(answer)![1]! };
  const restart = await patch(frag('newufrag'), { 'If-Match': '*' });
  assert.equal(restart.status, 200);
  assert.equal(restart.headers.get('content-type'), 'application/trickle-ice-sdpfrag');
  const etag1 = restart.headers.get('etag')!;
  assert.notEqual(etag1, etag0, 'a restart changes the entity tag');
  const restartFrag = await restart.text();
  const newLocal = { ufrag: /^a=ice-ufrag:(\S+)/m.exec(restartFrag)![1]!, pwd: /^a=ice-pwd:(\S+)/m.exec(restartFrag)![1]! };
  assert.notEqual(newLocal.ufrag, oldLocal.ufrag);
  assert.match(restartFrag, /^a=ice-lite\r\n/);
  assert.match(restartFrag, /^a=group:BUNDLE /m);
  assert.match(restartFrag, /^m=\S+ 9 UDP\/TLS\/RTP\/SAVPF \d+\r\na=mid:\S+\r\na=candidate:1 1 udp \d+ 127\.0\.0\.1 \d+ typ host/m);
  assert.match(restartFrag, /a=end-of-candidates\r\n$/);
  assert.equal((await patch(frag('newufrag'), { 'If-Match': etag0 })).status, 412, 'the old ETag is stale');
  assert.equal((await patch(frag('newufrag'), { 'If-Match': etag1 })).status, 204, 'trickle with the new ufrag');
  // the ICE port answers checks with the new credentials only
  const { createSocket } = await import('node:dgram');
  const { bindingRequest } = await import('../helpers/stun.js');
  const udp = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  const replies: Buffer[] = [];
  udp.on('message', (m) => replies.push(m));
  const icePort = srv.mux!.port;
  udp.send(bindingRequest(`${oldLocal.ufrag}:newufrag`, oldLocal.pwd, false, 100), icePort, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(replies.length, 0, 'the old ufrag is no longer answered');
  udp.send(bindingRequest(`${newLocal.ufrag}:newufrag`, newLocal.pwd, false, 100), icePort, '127.0.0.1');
  const until = Date.now() + 2000;
  while (replies.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  udp.close();
  assert.equal(replies.length, 1);
  assert.equal(replies[0]!.readUInt16BE(0), 0x0101, 'Binding success with the new credentials');
  const del = await fetch(`${base}${location}`, { method: 'DELETE' });
  assert.equal(del.status, 200);
  assert.equal(srv.egress.sessions.size, 0);
  assert.equal(registry.sessions.size, 1);
});

test('WHEP: a thousand sessions that never complete ICE are timed out and freed', async (t) => {
  const registry = openRegistry();
  const srv = await startWebrtcServer({ host: '127.0.0.1', port: 0, icePort: 0, registry, additionalHosts: [], iceServers: [], connectTimeoutMs: 1500 });
  t.after(() => srv.close());
  const pub = await publishToBus(registry, 'live/idle', { size: '320x240', audio: false });
  t.after(() => pub.stop());
  const offer = fixture('chromium-156-whep-offer.sdp');
  const n = 1000;
  const rs = await Promise.all(
    Array.from({ length: n }, () => fetch(`http://127.0.0.1:${srv.port}/live/idle/whep`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer })),
  );
  assert.deepEqual(rs.map((r) => r.status), Array(n).fill(201));
  const end = Date.now() + 10_000;
  while (srv.egress.sessions.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  assert.equal(srv.egress.sessions.size, 0);
  assert.equal(registry.sessions.size, 1, 'only the publisher is left');
  assert.equal(srv.mux?.stats.peers, 0, 'no ICE peer left on the shared port');
});

test('WHEP: a stream with B-frames is refused with 406 and the reason (Chromium shows only its keyframes)', async (t) => {
  const { Track } = await import('../../src/media/bus/track.js');
  const { NalUnitType, nalType, splitAnnexB } = await import('../../src/media/codecs/h264.js');
  const registry = openRegistry();
  const srv = await startWebrtcServer({ host: '127.0.0.1', port: 0, icePort: 0, registry, additionalHosts: [], iceServers: [] });
  t.after(() => srv.close());
  // x264 High with its default B-frames: the SPS says max_num_reorder_frames = 2
  const h264 = readFileSync(new URL('../../../test/fixtures/h264/libx264-1280x720-high.h264', import.meta.url));
  const nalus = splitAnnexB(h264.subarray(0, 4000));
  const track = new Track({ codec: 'h264', clockRate: 90000 });
  track.setH264Params(nalus.find((n) => nalType(n) === NalUnitType.Sps)!, nalus.find((n) => nalType(n) === NalUnitType.Pps)!, { width: 1280, height: 720 });
  const pubSession = { id: 'p', protocol: 'rtmp' as const, role: 'publisher' as const, path: '', remoteAddr: '', state: 'publish', createdAt: 0, bytesIn: 0, bytesOut: 0, close: () => undefined };
  const stream = await registry.addPublisher('live/bframes', pubSession, { protocol: 'rtmp', ip: '127.0.0.1' });
  stream.setTracks([track]);
  const r = await fetch(`http://127.0.0.1:${srv.port}/live/bframes/whep`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: fixture('chromium-156-whep-offer.sdp') });
  assert.equal(r.status, 406);
  assert.match(await r.text(), /B-frames/);
  registry.removePublisher(pubSession);
});

test('accessOf: query credentials, Basic, and OBS-style Bearer token (the stream key)', async () => {
  const { accessOf } = await import('../../src/signaling/whip-whep.js');
  const req = (authorization?: string): Parameters<typeof accessOf>[0] =>
    ({ headers: authorization ? { authorization } : {}, socket: { remoteAddress: '127.0.0.1' } }) as unknown as Parameters<typeof accessOf>[0];
  const u = (q = ''): URL => new URL(`http://h/live/cam1/whip${q}`);
  assert.equal(accessOf(req('Bearer s3cret'), u()).key, 's3cret');
  assert.equal(accessOf(req('bearer  s3cret '), u()).key, 's3cret');
  assert.equal(accessOf(req('Bearer other'), u('?key=fromquery')).key, 'fromquery', 'the query wins');
  const basic = accessOf(req(`Basic ${Buffer.from('pub:pw').toString('base64')}`), u());
  assert.deepEqual([basic.user, basic.pass, basic.key], ['pub', 'pw', undefined]);
  const q = accessOf(req(), u('?user=a&pass=b'));
  assert.deepEqual([q.user, q.pass], ['a', 'b']);
});
