/**
 * SDP negotiation over real offers of browsers and OBS other than the Chromium we run here (Firefox, Safari, OBS 30
 * over libdatachannel). Where each offer came from: test/fixtures/sdp/README.md. The Chromium cases are in
 * negotiate.test.ts. Each answer is read back with our own SDP parser (description.ts, an independent code path from
 * the werift parse negotiate.ts uses) and checked line by line: codec and fmtp, direction, mids, BUNDLE, rtcp-mux,
 * ICE credentials, fingerprint, rejected sections.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ParseError, ProtocolError } from '../../../src/errors.js';
import { parseSdp, sdpAttribute, type MediaDescription } from '../../../src/signaling/sdp/description.js';
import {
  buildAnswer,
  negotiate,
  parseOffer,
  type AnswerParams,
  type Capabilities,
  type H264Capability,
  type Negotiation,
  type Offer,
} from '../../../src/signaling/sdp/negotiate.js';

const fixture = (name: string): string => readFileSync(new URL(`../../../../test/fixtures/sdp/${name}`, import.meta.url), 'utf8');

const FIREFOX = 'firefox-121-sendrecv-offer.sdp';
const SAFARI = 'safari-macos-offer.sdp';
const OBS = 'obs-30.0.2-whip-offer.sdp';

/**
 * The Firefox capture with the direction a WHEP player (`addTransceiver(kind, {direction: 'recvonly'})`) or a WHIP
 * publisher (`'sendonly'`) gives its transceivers. Firefox writes the direction once per m-section and a=msid only
 * for a section that sends; nothing else differs, so this is the only edit.
 */
function firefoxAs(direction: 'recvonly' | 'sendonly'): string {
  let sdp = fixture(FIREFOX).replace(/^a=sendrecv$/gm, `a=${direction}`);
  if (direction === 'recvonly') sdp = sdp.replace(/^a=msid:.*\n/gm, '');
  return sdp;
}

const HIGH: H264Capability = { profileIdc: 0x64, constraintFlags: 0x00, levelIdc: 0x1f };
const MAIN: H264Capability = { profileIdc: 0x4d, constraintFlags: 0x40, levelIdc: 0x28 };
const CONSTRAINED_BASELINE: H264Capability = { profileIdc: 0x42, constraintFlags: 0xc0, levelIdc: 0x1e };
const whep = (video: Capabilities['video'], audio = true): Capabilities => ({ role: 'send', video, audio });
const WHIP: Capabilities = { role: 'receive', video: 'any', audio: true };

const PARAMS: AnswerParams = {
  iceUfrag: 'sgUfrag1',
  icePwd: 'sgPassword0123456789abcd',
  fingerprint: 'sha-256 0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9',
  candidates: [{ address: '192.0.2.7', port: 8189 }],
  direction: 'sendonly',
  cname: 'streamgate',
  streamId: 'sg',
  sessionId: '1234567890',
};

interface Want {
  /** per offered m-section, in order: the chosen payload type or null (rejected) */
  pts: (number | null)[];
  /** fmtp the video answer must carry, exactly as offered (werift matches codecs on this string) */
  videoFmtp?: string;
  /** encoding name the answer writes for the audio codec */
  audioRtpmap?: string;
}

const cases: { name: string; sdp: () => string; caps: Capabilities; want: Want | { status: number; reason: RegExp } }[] = [
  {
    name: 'firefox-121 sendrecv as WHEP, High stream → 126 (its only packetization-mode=1 H.264, 42e01f) + Opus 109',
    sdp: () => fixture(FIREFOX),
    caps: whep(HIGH),
    want: { pts: [109, 126], videoFmtp: 'profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1', audioRtpmap: 'opus/48000/2' },
  },
  {
    name: 'firefox-121 recvonly (WHEP player), Constrained Baseline stream → 126, never 97 (mode 0)',
    sdp: () => firefoxAs('recvonly'),
    caps: whep(CONSTRAINED_BASELINE),
    want: { pts: [109, 126], videoFmtp: 'profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1' },
  },
  {
    name: 'firefox-121 sendonly (WHIP publisher) → 126 + Opus 109',
    sdp: () => firefoxAs('sendonly'),
    caps: WHIP,
    want: { pts: [109, 126], videoFmtp: 'profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1' },
  },
  {
    name: 'firefox-121 sendonly offered to WHEP → 488 naming the direction',
    sdp: () => firefoxAs('sendonly'),
    caps: whep(HIGH),
    want: { status: 488, reason: /direction sendonly/ },
  },
  {
    name: 'firefox-121 recvonly offered to WHIP → 488 naming the direction',
    sdp: () => firefoxAs('recvonly'),
    caps: WHIP,
    want: { status: 488, reason: /direction recvonly/ },
  },
  {
    name: 'safari (H.264 640c1f before 42e01f before VP8) as WHEP, High stream → 96 (640c1f); data channel rejected',
    sdp: () => fixture(SAFARI),
    caps: whep(HIGH),
    want: { pts: [96, 111, null], videoFmtp: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f', audioRtpmap: 'opus/48000/2' },
  },
  {
    name: 'safari as WHEP, Constrained Baseline stream → 98 (42e01f, the exact profile)',
    sdp: () => fixture(SAFARI),
    caps: whep(CONSTRAINED_BASELINE),
    want: { pts: [98, 111, null], videoFmtp: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f' },
  },
  {
    name: 'safari as WHEP, Main stream → 96 (the lowest offered profile that decodes Main)',
    sdp: () => fixture(SAFARI),
    caps: whep(MAIN),
    want: { pts: [96, 111, null] },
  },
  {
    name: 'safari as WHEP, audio-only stream → video section rejected, Opus accepted',
    sdp: () => fixture(SAFARI),
    caps: whep(null),
    want: { pts: [null, 111, null] },
  },
  {
    name: 'safari as WHIP: its video is recvonly, so only its sendrecv audio is taken',
    sdp: () => fixture(SAFARI),
    caps: WHIP,
    want: { pts: [null, 111, null] },
  },
  {
    name: 'obs-30.0.2 WHIP (session-level ICE and fingerprint, OPUS in capitals) → Opus 111 + H.264 96',
    sdp: () => fixture(OBS),
    caps: WHIP,
    want: { pts: [111, 96], videoFmtp: 'profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1', audioRtpmap: 'opus/48000/2' },
  },
  {
    name: 'obs-30.0.2 offer sent to a WHEP endpoint → 488',
    sdp: () => fixture(OBS),
    caps: whep(HIGH),
    want: { status: 488, reason: /direction sendonly/ },
  },
];

/** Values of the attributes `key` of an answer section (those the parser does not model). */
function attrs(m: MediaDescription, key: string): string[] {
  return m.attributes.filter((a) => a.key === key).map((a) => a.value ?? '');
}

function checkAnswer(offer: Offer, neg: Negotiation, want: Want, direction: 'sendonly' | 'recvonly'): void {
  const text = buildAnswer(offer, neg, { ...PARAMS, direction });
  assert.ok(text.endsWith('\r\n') && !/[^\r]\n/.test(text), 'CRLF line ends');
  const answer = parseSdp(text);
  // rtpmap and fmtp are typed fields of the parser; their exact text is checked on the raw lines of each section
  const rawSections = text.split(/\r\n(?=m=)/).slice(1).map((sec) => sec.split('\r\n'));
  const raw = (i: number, key: string): string[] => rawSections[i]!.filter((l) => l.startsWith(`a=${key}:`)).map((l) => l.slice(key.length + 3));
  assert.equal(answer.media.length, offer.media.length, 'one m-section per offered one, same order');
  const accepted = offer.media.filter((_, i) => want.pts[i] !== null).map((m) => m.mid);
  assert.equal(sdpAttribute(answer.attributes, 'group'), `BUNDLE ${accepted.join(' ')}`);
  assert.ok(answer.attributes.some((a) => a.key === 'ice-lite'));
  answer.media.forEach((m, i) => {
    const offered = offer.media[i]!;
    assert.equal(m.type, offered.kind);
    assert.deepEqual(attrs(m, 'mid'), [offered.mid], `mid of section ${i}`);
    const pt = want.pts[i];
    if (pt === null || pt === undefined) {
      assert.equal(m.port, 0, `section ${i} rejected with port 0`);
      assert.equal(m.direction, 'inactive');
      return;
    }
    assert.equal(m.port, 9);
    assert.equal(m.proto, 'UDP/TLS/RTP/SAVPF');
    assert.deepEqual(m.formats.map((f) => f.payloadType), [pt], `section ${i}: only the chosen codec`);
    assert.equal(m.direction, direction);
    assert.deepEqual(attrs(m, 'rtcp-mux'), ['']);
    assert.deepEqual(attrs(m, 'ice-ufrag'), [PARAMS.iceUfrag]);
    assert.deepEqual(attrs(m, 'ice-pwd'), [PARAMS.icePwd]);
    assert.deepEqual(attrs(m, 'fingerprint'), [PARAMS.fingerprint]);
    assert.deepEqual(attrs(m, 'setup'), ['passive'], 'the offerer (actpass) becomes the DTLS client');
    assert.ok(attrs(m, 'candidate').some((c) => c.includes(' 192.0.2.7 8189 typ host')));
    const codec = offered.codecs.find((c) => c.payloadType === pt)!;
    const f = m.formats[0]!;
    assert.equal(f.clockRate, codec.clockRate);
    if (m.type === 'video') {
      assert.equal(f.encoding, 'H264');
      assert.equal(f.fmtp['packetization-mode'], '1');
      if (want.videoFmtp) assert.deepEqual(raw(i, 'fmtp'), [`${pt} ${want.videoFmtp}`], 'fmtp exactly as offered');
      assert.deepEqual(f.fmtp, codec.fmtp);
      // only feedback the offer has for that codec, and never transport-cc (we send no TWCC)
      for (const fb of attrs(m, 'rtcp-fb')) assert.ok(codec.rtcpFb.includes(fb.slice(String(pt).length + 1)), fb);
      assert.ok(!attrs(m, 'rtcp-fb').some((fb) => fb.includes('transport-cc')));
    } else {
      assert.equal(f.encoding.toLowerCase(), 'opus');
      assert.equal(f.clockRate, 48000);
      assert.equal(f.channels, 2);
      if (want.audioRtpmap) assert.deepEqual(raw(i, 'rtpmap'), [`${pt} ${want.audioRtpmap}`]);
    }
  });
}

describe('negotiate over Firefox, Safari and OBS offers', () => {
  for (const c of cases) {
    it(c.name, () => {
      const offer = parseOffer(c.sdp());
      if ('status' in c.want) {
        const w = c.want;
        assert.throws(() => negotiate(offer, c.caps), (e: unknown) => e instanceof ProtocolError && e.status === w.status && w.reason.test(e.message));
        return;
      }
      const neg = negotiate(offer, c.caps);
      assert.deepEqual(neg.media.map((m) => m.codec?.payloadType ?? null), c.want.pts);
      checkAnswer(offer, neg, c.want, c.caps.role === 'send' ? 'sendonly' : 'recvonly');
    });
  }

  it('reads ICE credentials and fingerprints wherever each sender puts them', () => {
    const ff = parseOffer(fixture(FIREFOX));
    // Firefox: fingerprint at session level, ICE per m-section
    assert.equal(ff.iceUfrag, '6c0579ea');
    assert.equal(ff.icePwd, '59efe498b762e472067fa5e134df8722');
    assert.deepEqual(ff.fingerprints, [{ algorithm: 'sha-256', value: '75:4F:CA:8F:4F:E4:CE:5E:67:42:D3:DA:0E:E1:87:2A:E5:E3:02:76:30:FC:AB:F0:B4:7E:24:71:18:38:9C:6E' }]);
    assert.deepEqual(ff.media.map((m) => [m.kind, m.mid, m.direction]), [['audio', '0', 'sendrecv'], ['video', '1', 'sendrecv']]);
    // OBS (libdatachannel): ICE and fingerprint at session level only
    const obs = parseOffer(fixture(OBS));
    assert.equal(obs.iceUfrag, 'v3f/');
    assert.equal(obs.icePwd, '4b+Ogzsq+Xx0AEkYvTvG/n');
    assert.equal(obs.fingerprints[0]?.value.slice(0, 8), '82:06:23');
    assert.deepEqual(obs.media.map((m) => [m.kind, m.mid, m.direction]), [['audio', '0', 'sendonly'], ['video', '1', 'sendonly']]);
    // OBS offers no transport-cc feedback and one H.264 profile
    const h264 = obs.media[1]!.codecs;
    assert.deepEqual(h264.map((c) => [c.name, c.fmtp['profile-level-id'], c.fmtp['packetization-mode']]), [['H264', '42e01f', '1']]);
    assert.deepEqual(h264[0]!.rtcpFb, ['nack', 'nack pli', 'goog-remb']);
    // Safari: everything per m-section, three sections (video, audio, data)
    const safari = parseOffer(fixture(SAFARI));
    assert.equal(safari.iceUfrag, 'tPim');
    assert.deepEqual(safari.media.map((m) => [m.kind, m.mid, m.direction]), [['video', '0', 'recvonly'], ['audio', '1', 'sendrecv'], ['application', '2', 'sendrecv']]);
    // Safari orders H.264 first, High before Constrained Baseline; Firefox orders VP8, VP9, then H.264
    assert.deepEqual(safari.media[0]!.codecs.filter((c) => c.name === 'H264' || c.name === 'VP8').map((c) => `${c.name}:${c.fmtp['profile-level-id'] ?? ''}`), ['H264:640c1f', 'H264:42e01f', 'VP8:']);
    assert.deepEqual(ff.media[1]!.codecs.filter((c) => c.name !== 'RTX').map((c) => c.name), ['VP8', 'VP9', 'H264', 'H264']);
  });

  it('CRLF (what browsers POST) and LF line ends give the same offer', () => {
    for (const f of [FIREFOX, SAFARI, OBS]) {
      const lf = fixture(f);
      assert.deepEqual(parseOffer(lf.replace(/\n/g, '\r\n')), parseOffer(lf), f);
    }
  });
});

describe('broken variants of the real offers', () => {
  const without = (sdp: string, re: RegExp): string => sdp.split('\n').filter((l) => !re.test(l)).join('\n');

  it('no H.264 at all (Firefox with its H.264 lines removed) → 488 for an H.264 stream, with the reason', () => {
    const sdp = without(fixture(FIREFOX), /^a=(rtpmap|fmtp|rtcp-fb):(126|127|97|98) /);
    const offer = parseOffer(sdp);
    assert.deepEqual(offer.media[1]!.codecs.map((c) => c.name), ['VP8', 'RTX', 'VP9', 'RTX']);
    assert.throws(
      () => negotiate(offer, whep(HIGH)),
      (e: unknown) => e instanceof ProtocolError && e.status === 488 && /cannot receive it/.test(e.message) && /no H\.264 with packetization-mode=1/.test(e.message),
    );
    // an audio-only stream still plays to it
    assert.deepEqual(negotiate(offer, whep(null)).media.map((m) => m.codec?.payloadType ?? null), [109, null]);
    // and a WHIP publisher offering no H.264 has its video section rejected, its audio taken
    assert.deepEqual(negotiate(offer, WHIP).media.map((m) => m.codec?.payloadType ?? null), [109, null]);
  });

  it('H.264 only in packetization-mode 0 (Firefox 97 without 126) → 488 naming packetization-mode=1', () => {
    const sdp = without(fixture(FIREFOX), /^a=(rtpmap|fmtp|rtcp-fb):(126|127) /);
    assert.throws(() => negotiate(parseOffer(sdp), whep(CONSTRAINED_BASELINE)), (e: unknown) => e instanceof ProtocolError && e.status === 488 && /packetization-mode=1/.test(e.message));
  });

  it('no Opus (OBS without its audio codec) → audio rejected for WHIP; 488 when nothing is left', () => {
    const noOpus = fixture(OBS).replace('a=rtpmap:111 OPUS/48000/2', 'a=rtpmap:111 PCMU/8000');
    const neg = negotiate(parseOffer(noOpus), WHIP);
    assert.deepEqual(neg.media.map((m) => [m.codec?.payloadType ?? null, m.reason ?? '']), [[null, 'no Opus/48000/2 offered'], [96, '']]);
    const nothing = without(noOpus, /^a=(rtpmap|fmtp|rtcp-fb):96 /);
    assert.throws(() => negotiate(parseOffer(nothing), WHIP), (e: unknown) => e instanceof ProtocolError && e.status === 488 && /no usable media/.test(e.message));
  });

  for (const [name, file, re, message] of [
    ['Firefox without a=fingerprint', FIREFOX, /^a=fingerprint:/, /fingerprint/],
    ['Safari without a=fingerprint (every section)', SAFARI, /^a=fingerprint:/, /fingerprint/],
    ['OBS without a=fingerprint', OBS, /^a=fingerprint:/, /fingerprint/],
    ['Firefox without ICE credentials', FIREFOX, /^a=ice-(ufrag|pwd):/, /ice-ufrag/],
    ['Safari without ICE credentials', SAFARI, /^a=ice-(ufrag|pwd):/, /ice-ufrag/],
    ['OBS without ICE credentials', OBS, /^a=ice-(ufrag|pwd):/, /ice-ufrag/],
    ['OBS without a=ice-pwd only', OBS, /^a=ice-pwd:/, /ice-pwd/],
  ] as const) {
    it(`${name} → ParseError (HTTP 400) saying what is missing`, () => {
      assert.throws(() => parseOffer(without(fixture(file), re)), (e: unknown) => e instanceof ParseError && message.test(e.message));
    });
  }

  it('a truncated offer (cut inside the first m-section) is still an offer or a ParseError, never a crash', () => {
    for (const f of [FIREFOX, SAFARI, OBS]) {
      const sdp = fixture(f);
      for (let cut = 0; cut < sdp.length; cut += 97) {
        try {
          negotiate(parseOffer(sdp.slice(0, cut)), WHIP);
        } catch (e) {
          assert.ok(e instanceof ParseError || e instanceof ProtocolError, `${f} cut at ${cut}: ${String(e)}`);
        }
      }
    }
  });
});
