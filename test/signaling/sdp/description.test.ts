import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { LimitError, ParseError, StreamgateError } from '../../../src/errors.js';
import {
  aacFormat,
  buildSessionDescription,
  controlUrl,
  h264FmtpParams,
  h264Format,
  hexFmtpValue,
  MAX_SDP_BYTES,
  opusFormat,
  parseFmtp,
  parseSdp,
  sdpAttribute,
  serializeSdp,
} from '../../../src/signaling/sdp/description.js';

const FIXTURES = new URL('../../../../test/fixtures/sdp/', import.meta.url);
const load = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8');

const fixtures = [
  'ffmpeg-publish-tcp-announce.sdp',
  'ffmpeg-publish-udp-announce.sdp',
  'gst-publish-tcp-announce.sdp',
  'gst-rtsp-server-describe.sdp',
  'onvif-backchannel-handmade.sdp',
  'nvr-no-c-line-handmade.sdp',
  'fake-backchannel-odd-origin-handmade.sdp',
];

describe('parseSdp on real and camera-style descriptions', () => {
  it('ffmpeg 5.1 ANNOUNCE: H.264 + mpeg4-generic, fmtp values stay raw strings', () => {
    const d = parseSdp(load('ffmpeg-publish-tcp-announce.sdp'));
    assert.deepEqual(d.origin, { username: '-', sessionId: '0', sessionVersion: '0', netType: 'IN', addressType: 'IP4', address: '127.0.0.1' });
    assert.equal(d.name, 'No Name');
    assert.deepEqual(d.connection, { addressType: 'IP4', address: '127.0.0.1' });
    assert.deepEqual(d.attributes, [{ key: 'tool', value: 'libavformat LIBAVFORMAT_VERSION' }]);
    assert.equal(d.media.length, 2);
    const [v, a] = d.media;
    assert.deepEqual(v, {
      type: 'video',
      port: 0,
      proto: 'RTP/AVP',
      formats: [
        {
          payloadType: 96,
          encoding: 'H264',
          clockRate: 90000,
          fmtp: { 'packetization-mode': '1', 'sprop-parameter-sets': 'Z2QADKzZQUGfnwEQAAADABAAAAMB4PFCmWA=,aOvssiw=', 'profile-level-id': '64000C' },
        },
      ],
      control: 'streamid=0',
      bandwidth: [{ type: 'AS', limit: 150 }],
      attributes: [],
      role: 'media',
    });
    assert.deepEqual(a?.formats[0], {
      payloadType: 97,
      encoding: 'MPEG4-GENERIC',
      clockRate: 44100,
      channels: 1,
      fmtp: { 'profile-level-id': '1', mode: 'AAC-hbr', sizelength: '13', indexlength: '3', indexdeltalength: '3', config: '120856E500' },
    });
  });

  it('GStreamer 1.22 rtspclientsink ANNOUNCE: MP4A-LATM first, per-media c=0.0.0.0, a=ssrc kept', () => {
    const d = parseSdp(load('gst-publish-tcp-announce.sdp'));
    assert.equal(d.origin.sessionId, '1947146191');
    assert.equal(d.info, 'rtspclientsink');
    assert.equal(d.connection, undefined);
    assert.deepEqual(d.media.map((m) => [m.type, m.formats[0]?.encoding, m.control, m.connection?.address]), [
      ['audio', 'MP4A-LATM', 'stream=1', '0.0.0.0'],
      ['video', 'H264', 'stream=0', '0.0.0.0'],
    ]);
    assert.deepEqual(d.media[0]?.formats[0]?.fmtp, { cpresent: '0', config: '40002320adca00' });
    assert.equal(sdpAttribute(d.media[1]?.attributes ?? [], 'framerate'), '15');
    assert.match(sdpAttribute(d.media[1]?.attributes ?? [], 'ssrc') ?? '', /^3297151230 cname:/);
  });

  it('gst-rtsp-server DESCRIBE: a 20-digit o= session id survives exactly, session control *', () => {
    const d = parseSdp(load('gst-rtsp-server-describe.sdp'));
    assert.equal(d.origin.sessionId, '17462522200073275264');
    assert.equal(d.control, '*');
    assert.equal(sdpAttribute(d.attributes, 'range'), 'npt=now-');
    assert.equal(d.media[0]?.formats[0]?.fmtp['profile-level-id'], '42c00c');
    assert.equal(d.media[1]?.formats[0]?.channels, 2);
    assert.ok(serializeSdp(d).includes('o=- 17462522200073275264 1 IN IP4 127.0.0.1\r\n'));
  });

  it('hand-made ONVIF layout: profile-level-id=640028 stays a string; metadata and back channel are flagged', () => {
    const d = parseSdp(load('onvif-backchannel-handmade.sdp'));
    assert.equal(d.media[0]?.formats[0]?.fmtp['profile-level-id'], '640028');
    assert.deepEqual(d.media.map((m) => m.role), ['media', 'media', 'onvif-metadata', 'backchannel']);
    // static payload type 0 without a=rtpmap
    assert.deepEqual(d.media[1]?.formats[0], { payloadType: 0, encoding: 'PCMU', clockRate: 8000, channels: 1, fmtp: {} });
    const p = h264FmtpParams(d.media[0]?.formats[0]?.fmtp ?? {});
    assert.equal(p.profileLevelId, '640028');
    assert.deepEqual([...(p.sps ?? new Uint8Array()).subarray(0, 4)], [0x67, 0x64, 0x00, 0x28]);
  });

  it('hand-made NVR layout: no c= line anywhere, absolute control URLs with a query, vendor attributes', () => {
    const d = parseSdp(load('nvr-no-c-line-handmade.sdp'));
    assert.equal(d.connection, undefined);
    assert.equal(d.media[0]?.connection, undefined);
    assert.equal(d.origin.address, 'x.y.z.w');
    assert.equal(d.media[0]?.control, 'rtsp://192.0.2.11:554/Streaming/Channels/101/trackID=1?transportmode=unicast');
    assert.equal(d.media[0]?.formats[0]?.fmtp['profile-level-id'], '420029');
    assert.equal(sdpAttribute(d.media[0]?.attributes ?? [], 'Media_header')?.startsWith('MEDIAINFO='), true);
  });

  it('hand-made: o= line the grammar rejects, no s=/t=, all media sendonly (a fake back channel) → normal media', () => {
    const d = parseSdp(load('fake-backchannel-odd-origin-handmade.sdp'));
    assert.deepEqual(d.origin, { username: '-', sessionId: '1a2b3c', sessionVersion: 'IN', netType: 'IP4', addressType: 'IP4', address: '0.0.0.0' });
    assert.equal(d.name, '-');
    assert.deepEqual(d.timing, { start: 0, stop: 0 });
    assert.deepEqual(d.media.map((m) => m.role), ['media', 'media']);
    // payload 97 listed without rtpmap: unknown dynamic type
    assert.deepEqual(d.media[0]?.formats[1], { payloadType: 97, encoding: '', clockRate: 0, fmtp: {} });
  });

  for (const f of fixtures) {
    it(`round trip: parse → serialize → parse is the same description, and serialize is a fixed point (${f})`, () => {
      const d = parseSdp(load(f));
      const text = serializeSdp(d);
      assert.deepEqual(parseSdp(text), d);
      assert.equal(serializeSdp(parseSdp(text)), text);
    });
  }

  it('fuzz regression: "$&" in an o= field is written literally (String.replace patterns)', () => {
    const d = parseSdp('v=0\r\no=$&- 0 0 IN IP4 127.0.0.1\r\nm=video 0 RTP/AVP 96\r\n');
    assert.equal(d.origin.username, '$&-');
    assert.match(serializeSdp(d), /^v=0\r\no=\$&- 0 0 IN IP4 127\.0\.0\.1\r\n/);
  });

  it('canonical text round-trips byte for byte', () => {
    const text = [
      'v=0',
      'o=- 4242 1 IN IP4 192.0.2.1',
      's=streamgate',
      'c=IN IP4 0.0.0.0',
      't=0 0',
      'a=control:*',
      'a=tool:streamgate',
      'm=video 0 RTP/AVP 96',
      'b=AS:3000',
      'a=rtpmap:96 H264/90000',
      'a=fmtp:96 packetization-mode=1;profile-level-id=640028;sprop-parameter-sets=Z2QAKKzZQHgCJ+XARAAAAwAEAAADAMg8YMZY,aOvjyyLA',
      'a=control:trackID=0',
      'a=recvonly',
      'a=framerate:25',
      'm=audio 0 RTP/AVP 97',
      'a=rtpmap:97 MPEG4-GENERIC/48000/2',
      'a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190',
      'a=control:trackID=1',
      '',
    ].join('\r\n');
    assert.equal(serializeSdp(parseSdp(text)), text);
  });

  const malformed: { name: string; text: string; err: typeof ParseError | typeof LimitError }[] = [
    { name: 'empty', text: '', err: ParseError },
    { name: 'an RTSP response instead of SDP', text: 'RTSP/1.0 200 OK\r\n\r\n', err: ParseError },
    { name: 'm= with a port count the grammar rejects', text: 'v=0\r\nm=video 5000/2 RTP/AVP 96\r\n', err: ParseError },
    { name: `over ${MAX_SDP_BYTES} bytes`, text: `v=0\r\n${'a=x\r\n'.repeat(MAX_SDP_BYTES / 5 + 1)}`, err: LimitError },
    { name: '33 media sections', text: `v=0\r\n${'m=audio 0 RTP/AVP 0\r\n'.repeat(33)}`, err: LimitError },
    { name: '65 payload types', text: `v=0\r\nm=audio 0 RTP/AVP ${Array.from({ length: 65 }, (_, i) => i + 35).join(' ')}\r\n`, err: LimitError },
  ];
  for (const m of malformed) {
    it(`malformed: ${m.name} → ${m.err.name}`, () => {
      assert.throws(() => parseSdp(m.text), m.err);
    });
  }

  it('random lines and mutations of real SDPs: only StreamgateErrors; what parses re-serializes stably', () => {
    const seeds = fixtures.map(load);
    const lines = fc.array(
      fc.tuple(fc.constantFrom('v', 'o', 's', 'c', 't', 'm', 'a', 'b', 'i', 'x'), fc.string({ maxLength: 30 })).map(([k, v]) => `${k}=${v}`),
      { maxLength: 12 },
    );
    const mutated = fc.tuple(fc.constantFrom(...seeds), fc.nat(1000), fc.nat(1000), fc.string({ maxLength: 8 })).map(([s, a, b, ins]) => {
      const i = a % s.length;
      return s.slice(0, i) + ins + s.slice(i + (b % 20));
    });
    fc.assert(
      fc.property(fc.oneof(lines.map((l) => ['v=0', ...l].join('\r\n')), mutated), (text) => {
        let d;
        try {
          d = parseSdp(text);
        } catch (e) {
          if (!(e instanceof StreamgateError)) throw e;
          return;
        }
        const out = serializeSdp(d);
        assert.equal(serializeSdp(parseSdp(out)), out);
      }),
      { numRuns: 1500, interruptAfterTimeLimit: 5000 },
    );
  });
});

describe('SDP helpers', () => {
  it('parseFmtp: "; " separators, "=" inside base64 values, case-insensitive names', () => {
    assert.deepEqual(parseFmtp('packetization-mode=1; sprop-parameter-sets=Z0I=,aM4=; Profile-Level-Id=42e01f'), {
      'packetization-mode': '1',
      'sprop-parameter-sets': 'Z0I=,aM4=',
      'profile-level-id': '42e01f',
    });
    assert.deepEqual(parseFmtp('sizeLength=13;indexLength=3; flag'), { sizelength: '13', indexlength: '3', flag: '' });
  });

  it('controlUrl: ffmpeg, GStreamer Content-Base, absolute, "*", and query-string bases', () => {
    assert.equal(controlUrl('rtsp://h/live/cam1', 'streamid=0'), 'rtsp://h/live/cam1/streamid=0');
    assert.equal(controlUrl('rtsp://h:8554/cam/', 'stream=1'), 'rtsp://h:8554/cam/stream=1');
    assert.equal(controlUrl('rtsp://h/cam/', 'rtsp://other/x/trackID=1'), 'rtsp://other/x/trackID=1');
    assert.equal(controlUrl('rtsp://h/cam', '*'), 'rtsp://h/cam');
    assert.equal(controlUrl('rtsp://h/cam', undefined), 'rtsp://h/cam');
    assert.equal(controlUrl('rtsp://h/s?x=1', 'trackID=1'), 'rtsp://h/s?x=1/trackID=1'); // what ffmpeg requests too
  });

  it('h264FmtpParams: SPS/PPS by NAL type, bad base64 skipped, profile-level-id only when 6 hex digits', () => {
    const p = h264FmtpParams({ 'sprop-parameter-sets': 'aOvjyyLA, Z2QAKKzZQHgCJ+XARAAAAwAEAAADAMg8YMZY ,***,', 'profile-level-id': '640028x' });
    assert.equal(p.packetizationMode, 0);
    assert.equal(p.profileLevelId, undefined);
    assert.equal(p.sps?.[0], 0x67);
    assert.equal(p.pps?.[0], 0x68);
    assert.deepEqual(hexFmtpValue({ config: '1190' }, 'config'), Uint8Array.from([0x11, 0x90]));
    assert.equal(hexFmtpValue({ config: '119' }, 'config'), undefined);
    assert.equal(hexFmtpValue({}, 'config'), undefined);
  });

  it('builders: the DESCRIBE answer we send for H.264 + AAC, exactly', () => {
    const sps = Uint8Array.from(Buffer.from('Z2QAKKzZQHgCJ+XARAAAAwAEAAADAMg8YMZY', 'base64'));
    const pps = Uint8Array.from(Buffer.from('aOvjyyLA', 'base64'));
    const d = buildSessionDescription({
      name: 'live/cam1',
      sessionId: '123',
      tool: 'streamgate',
      media: [
        { type: 'video', format: h264Format(96, { sps, pps }), control: 'trackID=0' },
        { type: 'audio', format: aacFormat(97, { config: Uint8Array.from([0x11, 0x90]), sampleRate: 48000, channels: 2 }), control: 'trackID=1' },
      ],
    });
    assert.equal(
      serializeSdp(d),
      [
        'v=0',
        'o=- 123 0 IN IP4 127.0.0.1',
        's=live/cam1',
        'c=IN IP4 0.0.0.0',
        't=0 0',
        'a=control:*',
        'a=tool:streamgate',
        'm=video 0 RTP/AVP 96',
        'a=rtpmap:96 H264/90000',
        'a=fmtp:96 packetization-mode=1;profile-level-id=640028;sprop-parameter-sets=Z2QAKKzZQHgCJ+XARAAAAwAEAAADAMg8YMZY,aOvjyyLA',
        'a=control:trackID=0',
        'm=audio 0 RTP/AVP 97',
        'a=rtpmap:97 MPEG4-GENERIC/48000/2',
        'a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190',
        'a=control:trackID=1',
        '',
      ].join('\r\n'),
    );
    assert.deepEqual(parseSdp(serializeSdp(d)), d);
  });

  it('builders: Opus is always opus/48000/2, sprop-stereo for stereo sources', () => {
    assert.deepEqual(opusFormat(111), { payloadType: 111, encoding: 'opus', clockRate: 48000, channels: 2, fmtp: { 'sprop-stereo': '1' } });
    assert.deepEqual(opusFormat(111, { channels: 1 }).fmtp, {});
    assert.deepEqual(h264Format(96), { payloadType: 96, encoding: 'H264', clockRate: 90000, fmtp: { 'packetization-mode': '1' } });
  });
});
