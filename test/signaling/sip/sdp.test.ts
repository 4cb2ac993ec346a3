import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ProtocolError } from '../../../src/errors.js';
import { parseSdp } from '../../../src/signaling/sdp/description.js';
import { parseSipDatagram } from '../../../src/signaling/sip/message.js';
import {
  buildSipAnswer,
  negotiateSipOffer,
  remoteMediaOf,
  serializeSipAnswer,
  type SipSourceCaps,
} from '../../../src/signaling/sip/sdp.js';

const FIXTURES = new URL('../../../../test/fixtures/sip/', import.meta.url);
const offerFrom = (file: string) => parseSdp(Buffer.from(parseSipDatagram(new Uint8Array(readFileSync(new URL(file, FIXTURES)))).body).toString());
const sdp = (lines: string[]) => parseSdp(`${lines.join('\r\n')}\r\n`);

/** SPS/PPS of ffmpeg's libx264 640x360 constrained baseline (the e2e publisher). */
const SPS = Uint8Array.from(Buffer.from('Z0LAHtoCgL/lwEQAAAMABAAAAwDyPFi6gA==', 'base64'));
const PPS = Uint8Array.from(Buffer.from('aM4PyA==', 'base64'));
/** An RTMP path: H.264 + AAC, ffmpeg present. */
const rtmpPath: SipSourceCaps = { video: { sps: SPS, pps: PPS }, audio: { codec: 'aac', channels: 1 }, transcode: true };

const linphoneStyle = sdp([
  'v=0',
  'o=viewer 3010 1183 IN IP4 192.0.2.20',
  's=Talk',
  'c=IN IP4 192.0.2.20',
  't=0 0',
  'a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics',
  'm=audio 7078 RTP/AVP 96 97 98 0 8 101',
  'a=rtpmap:96 opus/48000/2',
  'a=fmtp:96 useinbandfec=1',
  'a=rtpmap:97 speex/16000',
  'a=rtpmap:98 speex/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=rtcp:7079',
  'a=rtcp-fb:* trr-int 1000',
  'm=video 9078 RTP/AVP 96 97',
  'a=rtpmap:96 VP8/90000',
  'a=rtpmap:97 H264/90000',
  'a=fmtp:97 profile-level-id=42801F;packetization-mode=1',
  'a=rtcp:9079',
  'a=rtcp-fb:* nack pli',
]);

const zoiperStyle = sdp([
  'v=0',
  'o=Z 0 1 IN IP4 192.0.2.30',
  's=Z',
  'c=IN IP4 192.0.2.30',
  't=0 0',
  'm=audio 8000 RTP/AVP 8 0 3 101',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-16',
  'a=sendrecv',
  'a=rtcp-mux',
]);

describe('SIP offer/answer (RFC 3264)', () => {
  it('sipp-3.6 offer (PCMU, PCMA, telephone-event; H.264 pm1 as PT 99): PCMU + H.264 under the offered PTs', () => {
    const offer = offerFrom('sipp-udp-0-invite.bin');
    const plans = negotiateSipOffer(offer, rtmpPath);
    assert.deepEqual(
      plans.map((p) => [p.type, p.accepted?.codec, p.accepted?.format.payloadType, p.accepted?.send]),
      [
        ['audio', 'pcmu', 0, true],
        ['video', 'h264', 99, true],
      ],
    );
    assert.deepEqual(plans[0]!.accepted!.remote, { address: '127.0.0.1', rtpPort: 40000, rtcpAddress: '127.0.0.1', rtcpPort: 40001, rtcpMux: false });
    const answer = parseSdp(serializeSipAnswer(offer, plans, { address: '127.0.0.1', ports: [50000, 50002], sessionId: '7', sessionVersion: 0 }));
    assert.deepEqual(
      answer.media.map((m) => [m.type, m.port, m.proto, m.formats.map((f) => `${f.payloadType} ${f.encoding}/${f.clockRate}`), m.direction]),
      [
        ['audio', 50000, 'RTP/AVP', ['0 PCMU/8000'], 'sendonly'],
        ['video', 50002, 'RTP/AVP', ['99 H264/90000'], 'sendonly'],
      ],
    );
    assert.equal(answer.media[1]!.formats[0]!.fmtp['packetization-mode'], '1');
    assert.equal(answer.media[1]!.formats[0]!.fmtp['profile-level-id'], '42C01E', 'the profile we send, from our SPS');
    assert.ok(answer.media[1]!.formats[0]!.fmtp['sprop-parameter-sets']);
    assert.deepEqual(answer.connection, { addressType: 'IP4', address: '127.0.0.1' });
    assert.equal(answer.media[0]!.attributes.find((a) => a.key === 'ptime')?.value, '20');
  });

  it('baresip-1.0.0 offer (H.264 pm0 PT 96 listed before pm1 PT 97): pm1 wins', () => {
    const plans = negotiateSipOffer(offerFrom('baresip-1.0.0-invite.bin'), rtmpPath);
    assert.deepEqual(plans.map((p) => [p.accepted?.codec, p.accepted?.format.payloadType]), [
      ['pcmu', 0],
      ['h264', 97],
    ]);
  });

  it('an offer with H.264 packetization-mode 0 only is served in mode 0', () => {
    const offer = sdp(['v=0', 'o=- 1 1 IN IP4 192.0.2.5', 's=-', 'c=IN IP4 192.0.2.5', 't=0 0', 'm=video 5004 RTP/AVP 96', 'a=rtpmap:96 H264/90000', 'a=fmtp:96 profile-level-id=42e01f']);
    const [plan] = negotiateSipOffer(offer, rtmpPath);
    assert.equal(plan!.accepted!.format.fmtp['packetization-mode'], '0');
  });

  it('Linphone-style offer: Opus first in the offer, so AAC is transcoded to Opus; a=rtcp ports are honoured; VP8 skipped', () => {
    const plans = negotiateSipOffer(linphoneStyle, rtmpPath);
    assert.equal(plans[0]!.accepted!.codec, 'opus');
    assert.equal(plans[0]!.accepted!.format.encoding, 'opus');
    assert.equal(plans[0]!.accepted!.format.channels, 2);
    assert.equal(plans[0]!.accepted!.remote.rtcpPort, 7079);
    assert.equal(plans[1]!.accepted!.format.payloadType, 97);
  });

  it('Zoiper-style audio-only offer (PCMA first, rtcp-mux) on a path with video: PCMA, rtcp-mux echoed', () => {
    const plans = negotiateSipOffer(zoiperStyle, rtmpPath);
    assert.equal(plans.length, 1);
    assert.equal(plans[0]!.accepted!.codec, 'pcma');
    assert.deepEqual(plans[0]!.accepted!.remote, { address: '192.0.2.30', rtpPort: 8000, rtcpAddress: '192.0.2.30', rtcpPort: 8000, rtcpMux: true });
    const answer = buildSipAnswer(zoiperStyle, plans, { address: '192.0.2.1', ports: [50000], sessionId: '1', sessionVersion: 0 });
    assert.ok(answer.media[0]!.attributes.some((a) => a.key === 'rtcp-mux'));
  });

  it('an Opus path passes Opus through, and refuses G.711-only audio (no Opus → G.711 transcoder)', () => {
    const opusPath: SipSourceCaps = { video: { sps: SPS, pps: PPS }, audio: { codec: 'opus', channels: 2 }, transcode: true };
    assert.equal(negotiateSipOffer(linphoneStyle, opusPath)[0]!.accepted!.codec, 'opus');
    const plans = negotiateSipOffer(offerFrom('sipp-udp-0-invite.bin'), opusPath);
    assert.equal(plans[0]!.accepted, null);
    assert.match(plans[0]!.reason!, /Opus/);
    assert.equal(plans[1]!.accepted!.codec, 'h264');
  });

  it('without ffmpeg an AAC path gives video only, or 488 to an audio-only offer (the reason names ffmpeg)', () => {
    const noFfmpeg: SipSourceCaps = { ...rtmpPath, transcode: false };
    const plans = negotiateSipOffer(offerFrom('sipp-udp-0-invite.bin'), noFfmpeg);
    assert.deepEqual(plans.map((p) => p.accepted?.codec ?? null), [null, 'h264']);
    assert.throws(
      () => negotiateSipOffer(zoiperStyle, noFfmpeg),
      (err: unknown) => err instanceof ProtocolError && err.status === 488 && /ffmpeg/.test(err.message),
    );
  });

  it('488 for SRTP-only (RTP/SAVP with a=crypto), WebRTC-style (UDP/TLS/RTP/SAVPF) and codec-less offers', () => {
    const srtp = sdp(['v=0', 'o=- 1 1 IN IP4 192.0.2.5', 's=-', 'c=IN IP4 192.0.2.5', 't=0 0', 'm=audio 4000 RTP/SAVP 0', 'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz']);
    const webrtc = sdp(['v=0', 'o=- 1 1 IN IP4 0.0.0.0', 's=-', 't=0 0', 'm=video 9 UDP/TLS/RTP/SAVPF 96', 'c=IN IP4 0.0.0.0', 'a=rtpmap:96 H264/90000', 'a=fmtp:96 packetization-mode=1']);
    const g729 = sdp(['v=0', 'o=- 1 1 IN IP4 192.0.2.5', 's=-', 'c=IN IP4 192.0.2.5', 't=0 0', 'm=audio 4000 RTP/AVP 18', 'a=rtpmap:18 G729/8000']);
    for (const [name, offer] of [['srtp', srtp], ['webrtc', webrtc], ['g729', g729]] as const) {
      assert.throws(() => negotiateSipOffer(offer, rtmpPath), (err: unknown) => err instanceof ProtocolError && err.status === 488, name);
    }
    assert.throws(() => negotiateSipOffer(sdp(['v=0', 'o=- 1 1 IN IP4 192.0.2.5', 's=-', 't=0 0']), rtmpPath), /no media/);
  });

  it('refused sections are answered with port 0 and one offered format; a second video section is refused', () => {
    const offer = sdp([
      'v=0',
      'o=- 1 1 IN IP4 192.0.2.5',
      's=-',
      'c=IN IP4 192.0.2.5',
      't=0 0',
      'm=video 5000 RTP/AVP 97',
      'a=rtpmap:97 H264/90000',
      'a=fmtp:97 packetization-mode=1',
      'm=video 5002 RTP/AVP 97',
      'a=rtpmap:97 H264/90000',
      'a=fmtp:97 packetization-mode=1',
      'a=content:slides',
      'm=application 5004 UDP/BFCP *',
    ]);
    const plans = negotiateSipOffer(offer, rtmpPath);
    assert.deepEqual(plans.map((p) => p.accepted !== null), [true, false, false]);
    const answer = buildSipAnswer(offer, plans, { address: '192.0.2.1', ports: [6000, 0, 0], sessionId: '1', sessionVersion: 0 });
    assert.deepEqual(answer.media.map((m) => [m.port, m.formats.length, m.direction]), [
      [6000, 1, 'sendonly'],
      [0, 1, undefined],
      [0, 0, undefined],
    ]);
  });

  it('hold: a sendonly offer or c=0.0.0.0 is answered inactive and nothing is sent', () => {
    const hold = sdp(['v=0', 'o=- 1 2 IN IP4 192.0.2.5', 's=-', 'c=IN IP4 192.0.2.5', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'a=sendonly']);
    const old = sdp(['v=0', 'o=- 1 2 IN IP4 192.0.2.5', 's=-', 'c=IN IP4 0.0.0.0', 't=0 0', 'm=audio 4000 RTP/AVP 0']);
    for (const offer of [hold, old]) {
      const plans = negotiateSipOffer(offer, rtmpPath);
      assert.equal(plans[0]!.accepted!.send, false);
      assert.equal(buildSipAnswer(offer, plans, { address: '192.0.2.1', ports: [6000], sessionId: '1', sessionVersion: 1 }).media[0]!.direction, 'inactive');
    }
  });

  it('IPv6 offers get an IP6 answer; an offer without any c= line has no usable address', () => {
    const v6 = sdp(['v=0', 'o=- 1 1 IN IP6 2001:db8::5', 's=-', 'c=IN IP6 2001:db8::5', 't=0 0', 'm=audio 4000 RTP/AVP 0']);
    const plans = negotiateSipOffer(v6, rtmpPath);
    assert.equal(plans[0]!.accepted!.remote.address, '2001:db8::5');
    assert.equal(buildSipAnswer(v6, plans, { address: '2001:db8::1', ports: [6000], sessionId: '1', sessionVersion: 0 }).connection?.addressType, 'IP6');
    const none = sdp(['v=0', 'o=- 1 1 IN IP4 192.0.2.5', 's=-', 't=0 0', 'm=audio 4000 RTP/AVP 0']);
    assert.equal(remoteMediaOf(none, none.media[0]!), null);
    assert.throws(() => negotiateSipOffer(none, rtmpPath), /no usable connection address/);
  });
});
