import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buildAnswer, negotiate, parseOffer, parseProfileLevelId, type Capabilities } from '../../../src/signaling/sdp/negotiate.js';
import { ParseError, ProtocolError } from '../../../src/errors.js';

const fixture = (name: string): string => readFileSync(new URL(`../../../../test/fixtures/webrtc/${name}`, import.meta.url), 'utf8');

const high = { profileIdc: 0x64, constraintFlags: 0, levelIdc: 0x1f };
const cb = { profileIdc: 0x42, constraintFlags: 0xc0, levelIdc: 0x1e };
const send = (video: Capabilities['video'], audio = true): Capabilities => ({ role: 'send', video, audio });

const cases: { name: string; sdp: string; caps: Capabilities; want: { video?: string | null; audio?: number | null } | { status: number } }[] = [
  { name: 'chromium-156 whep, High stream → High 4:4:4 (lowest offered profile that decodes High)', sdp: 'chromium-156-whep-offer.sdp', caps: send(high), want: { video: 'f4001f', audio: 111 } },
  { name: 'chromium-156 whep, Constrained Baseline stream → exact 42e01f', sdp: 'chromium-156-whep-offer.sdp', caps: send(cb), want: { video: '42e01f', audio: 111 } },
  { name: 'chromium-156 whep, Main stream → 4d001f', sdp: 'chromium-156-whep-offer.sdp', caps: send({ profileIdc: 0x4d, constraintFlags: 0x40, levelIdc: 0x28 }), want: { video: '4d001f', audio: 111 } },
  { name: 'chromium-156 whep, video-only stream → audio rejected', sdp: 'chromium-156-whep-offer.sdp', caps: send(high, false), want: { video: 'f4001f', audio: null } },
  { name: 'chromium-156 audio-only offer, video stream → 488', sdp: 'chromium-156-audio-only-offer.sdp', caps: send(high), want: { status: 488 } },
  { name: 'chromium-156 audio-only offer, audio-only stream → Opus', sdp: 'chromium-156-audio-only-offer.sdp', caps: send(null), want: { audio: 111 } },
  { name: 'chromium-156 whip offer (sendonly) as a WHEP offer → 488', sdp: 'chromium-156-whip-offer.sdp', caps: send(high), want: { status: 488 } },
  { name: 'chromium-156 whip offer, receive role → first H.264 mode 1 + Opus', sdp: 'chromium-156-whip-offer.sdp', caps: { role: 'receive', video: 'any', audio: true }, want: { video: '42001f', audio: 111 } },
];

for (const c of cases) {
  test(`negotiate: ${c.name}`, () => {
    const offer = parseOffer(fixture(c.sdp));
    if ('status' in c.want) {
      assert.throws(() => negotiate(offer, c.caps), (e: unknown) => e instanceof ProtocolError && e.status === (c.want as { status: number }).status);
      return;
    }
    const n = negotiate(offer, c.caps);
    assert.equal(n.media.length, offer.media.length);
    if (c.want.video !== undefined) assert.equal(n.video?.codec?.fmtp['profile-level-id'] ?? null, c.want.video);
    if (c.want.video) assert.equal(n.video?.codec?.fmtp['packetization-mode'], '1');
    if (c.want.audio !== undefined) assert.equal(n.audio?.codec?.payloadType ?? null, c.want.audio);
  });
}

test('parseOffer: reads ICE credentials, fingerprint and mids of a real offer', () => {
  const o = parseOffer(fixture('chromium-156-whep-offer.sdp'));
  assert.deepEqual(o.media.map((m) => [m.kind, m.mid, m.direction]), [['video', '0', 'recvonly'], ['audio', '1', 'recvonly']]);
  assert.ok(o.iceUfrag.length >= 4);
  assert.equal(o.fingerprints[0]?.algorithm, 'sha-256');
});

const bad: [string, string][] = [
  ['empty body', ''],
  ['not SDP', 'hello world'],
  ['no m= line', 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n'],
  ['no ICE credentials', 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n'],
  ['no fingerprint', 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:abcd\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\na=rtpmap:96 H264/90000\r\n'],
  ['over the size limit', `v=0\r\n${'a=x\r\n'.repeat(20000)}`],
];
for (const [name, sdp] of bad) {
  test(`parseOffer refuses ${name} with ParseError`, () => {
    assert.throws(() => parseOffer(sdp), ParseError);
  });
}

test('parseProfileLevelId', () => {
  assert.deepEqual(parseProfileLevelId('42e01f'), [0x42, 0xe0, 0x1f]);
  assert.equal(parseProfileLevelId('42e0'), null);
  assert.equal(parseProfileLevelId(undefined), null);
});

test('buildAnswer: UDP host candidates, then passive ICE-TCP ones (RFC 6544) below every UDP priority, IPv6 as is', () => {
  const offer = parseOffer(fixture('chromium-156-whep-offer.sdp'));
  const neg = negotiate(offer, send(high));
  const answer = buildAnswer(offer, neg, {
    iceUfrag: 'abcd', icePwd: 'p'.repeat(24), fingerprint: 'sha-256 AA:BB', direction: 'sendonly', cname: 'c', streamId: 's', sessionId: '1',
    candidates: [
      { address: '192.0.2.1', port: 8189 },
      { address: 'fd53::1', port: 8189, transport: 'udp' },
      { address: '192.0.2.1', port: 8189, transport: 'tcp' },
      { address: 'fd53::1', port: 8189, transport: 'tcp' },
    ],
  });
  const video = answer.split('m=audio')[0]!;
  const lines = video.split('\r\n').filter((l) => l.startsWith('a=candidate:'));
  assert.deepEqual(lines.map((l) => l.replace(/ \d{6,} /, ' P ')), [
    'a=candidate:1 1 udp P 192.0.2.1 8189 typ host',
    'a=candidate:2 1 udp P fd53::1 8189 typ host',
    'a=candidate:t1 1 tcp P 192.0.2.1 8189 typ host tcptype passive',
    'a=candidate:t2 1 tcp P fd53::1 8189 typ host tcptype passive',
  ]);
  const prio = lines.map((l) => Number(l.split(' ')[3]));
  assert.ok(prio[0]! > prio[1]! && prio[1]! > prio[2]! && prio[2]! > prio[3]!, prio.join(' > '));
  // RFC 8445 §5.1.2.1: type preference 126 (host) in the top byte for both transports, component 1
  assert.ok(prio.every((p) => Math.floor(p / 2 ** 24) === 126 && p % 256 === 255));
  assert.equal(answer.match(/a=end-of-candidates/g)?.length, 2, 'one per m-section');
});
