import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { LimitError, ParseError, StreamgateError } from '../../../src/errors.js';
import {
  cseqOf,
  interleavedHeader,
  LIMIT_BODY,
  LIMIT_HEAD,
  LIMIT_HEADER_COUNT,
  LIMIT_HEADER_LINE,
  LIMIT_URL,
  MAX_HEADER_COUNT,
  parseRtpInfo,
  parseSessionHeader,
  parseTransport,
  parseTransports,
  RtspHeaders,
  RtspParser,
  serializeInterleaved,
  serializeRequest,
  serializeResponse,
  serializeRtpInfo,
  serializeSessionHeader,
  serializeTransport,
  type RtspMessage,
  type RtspTransport,
} from '../../../src/ingest/rtsp/message.js';
import { parseRtp } from '../../../src/media/rtp/packet.js';
import { parseRtcp } from '../../../src/media/rtp/rtcp.js';
import { pushInPieces } from '../../helpers/split-points.js';

const FIXTURES = new URL('../../../../test/fixtures/rtsp/', import.meta.url);
const load = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, FIXTURES)));
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

const captures = [
  'ffmpeg-publish-tcp.client.bin',
  'ffmpeg-publish-udp.client.bin',
  'gst-publish-tcp.client.bin',
  'ffprobe-read-gst-tcp.client.bin',
  'ffprobe-read-gst-tcp.server.bin',
];

/** Plain, comparable form of messages (views and copies compare by content). */
function plain(msgs: RtspMessage[]): unknown[] {
  return msgs.map((m) =>
    m.kind === 'interleaved'
      ? { kind: m.kind, channel: m.channel, data: Buffer.from(m.data).toString('base64') }
      : { ...m, headers: [...m.headers.entries()], body: Buffer.from(m.body).toString('latin1') },
  );
}

const parseAll = (buf: Uint8Array, cuts: readonly number[] = []): RtspMessage[] => pushInPieces(new RtspParser(), buf, cuts);

describe('RtspParser on captured sessions', () => {
  it('ffmpeg 5.1 publishing over TCP: OPTIONS, ANNOUNCE+SDP, 2×SETUP, RECORD, then interleaved RTP/RTCP', () => {
    const msgs = parseAll(load('ffmpeg-publish-tcp.client.bin'));
    const reqs = msgs.filter((m) => m.kind === 'request');
    assert.deepEqual(reqs.slice(0, 5).map((r) => r.kind === 'request' && r.method), ['OPTIONS', 'ANNOUNCE', 'SETUP', 'SETUP', 'RECORD']);
    const announce = reqs[1];
    assert.ok(announce?.kind === 'request');
    assert.equal(announce.url.endsWith('/live/cam1'), true);
    assert.equal(announce.headers.get('content-type'), 'application/sdp');
    assert.equal(cseqOf(announce.headers), 2);
    assert.equal(announce.body.length, 509);
    assert.match(Buffer.from(announce.body).toString(), /^v=0\r\n/);
    const setup = reqs[2];
    assert.ok(setup?.kind === 'request');
    assert.deepEqual(parseTransports(setup.headers.get('transport') ?? ''), [
      { protocol: 'RTP/AVP', lowerTransport: 'TCP', delivery: 'unicast', interleaved: [0, 1], mode: 'record' },
    ]);
    const frames = msgs.filter((m) => m.kind === 'interleaved');
    assert.ok(frames.length > 50);
    assert.deepEqual([...new Set(frames.map((f) => f.kind === 'interleaved' && f.channel))].sort(), [0, 1, 2, 3]);
    for (const f of frames) {
      if (f.kind !== 'interleaved') continue;
      if (f.channel % 2 === 0) parseRtp(f.data);
      else parseRtcp(f.data);
    }
  });

  it('GStreamer 1.22 rtspclientsink over TCP: the same shape, LATM audio', () => {
    const msgs = parseAll(load('gst-publish-tcp.client.bin'));
    const methods = msgs.flatMap((m) => (m.kind === 'request' ? [m.method] : []));
    assert.deepEqual(methods.slice(0, 5), ['OPTIONS', 'ANNOUNCE', 'SETUP', 'SETUP', 'RECORD']);
    assert.ok(msgs.filter((m) => m.kind === 'interleaved').length > 50);
  });

  it('gst-rtsp-server answering ffprobe: responses with Content-Base, quoted mode, RTP-Info, then frames', () => {
    const msgs = parseAll(load('ffprobe-read-gst-tcp.server.bin'));
    const res = msgs.filter((m) => m.kind === 'response');
    assert.deepEqual(res.map((r) => r.kind === 'response' && r.status), [200, 200, 200, 200, 200]);
    const describe = res[1];
    assert.ok(describe?.kind === 'response');
    assert.match(describe.headers.get('content-base') ?? '', /^rtsp:\/\/127\.0\.0\.1:\d+\/cam\/$/);
    const setup = res[2];
    assert.ok(setup?.kind === 'response');
    const t = parseTransport(setup.headers.get('transport') ?? '');
    assert.equal(t.mode, 'play');
    assert.equal(typeof t.ssrc, 'number');
    assert.equal(parseSessionHeader(setup.headers.get('session') ?? '').id.length, 16);
    const play = res[4];
    assert.ok(play?.kind === 'response');
    const info = parseRtpInfo(play.headers.get('rtp-info') ?? '');
    assert.equal(info.length, 2);
    assert.ok(info.every((e) => e.seq !== undefined && e.rtptime !== undefined));
    assert.ok(msgs.filter((m) => m.kind === 'interleaved').length > 20);
  });

  for (const f of captures) {
    it(`every captured message re-serializes to its exact bytes (${f})`, () => {
      const buf = load(f);
      let reassembled = 0;
      for (const m of parseAll(buf)) {
        const bytes = m.kind === 'interleaved' ? serializeInterleaved(m.channel, m.data) : m.kind === 'request' ? serializeRequest(m) : serializeResponse(m);
        const at = Buffer.from(buf).indexOf(Buffer.from(bytes), reassembled);
        assert.equal(at, reassembled, `${m.kind} at ${reassembled}`);
        reassembled += bytes.length;
      }
      // a capture may end inside a frame (the recorder was stopped); everything parsed is accounted for
      assert.ok(buf.length - reassembled < 2000);
    });
  }

  it('split at every point (fast-check, time-boxed): same messages as one write', () => {
    const bufs = captures.map(load);
    const whole = bufs.map((b) => plain(parseAll(b)));
    fc.assert(
      fc.property(
        fc.nat(bufs.length - 1).chain((i) =>
          fc.tuple(fc.constant(i), fc.uniqueArray(fc.integer({ min: 1, max: (bufs[i] as Uint8Array).length - 1 }), { maxLength: 300 })),
        ),
        ([i, cuts]) => {
          assert.deepEqual(plain(parseAll(bufs[i] as Uint8Array, cuts)), whole[i]);
        },
      ),
      { numRuns: 300, interruptAfterTimeLimit: 8000 },
    );
  });

  it('one byte per push over the first 6 KB of each capture', () => {
    for (const f of captures) {
      const buf = load(f).subarray(0, 6000);
      const p = new RtspParser();
      const got: RtspMessage[] = [];
      for (let i = 0; i < buf.length; i++) got.push(...p.push(buf.subarray(i, i + 1)));
      assert.deepEqual(plain(got), plain(parseAll(buf)), f);
    }
  });

  it('frames in one chunk are views, not copies', () => {
    const buf = load('ffmpeg-publish-tcp.client.bin');
    const frame = new RtspParser().push(buf).find((m) => m.kind === 'interleaved');
    assert.ok(frame?.kind === 'interleaved');
    assert.equal(frame.data.buffer, buf.buffer);
  });
});

describe('RtspParser limits and malformed input', () => {
  it('a 1 MB header line → LimitError on the first 64 KiB, before it is buffered whole', () => {
    const p = new RtspParser();
    p.push(text('OPTIONS rtsp://h/ RTSP/1.0\r\nX-Junk: '));
    const chunk = new Uint8Array(64 * 1024).fill(0x61);
    assert.throws(
      () => p.push(chunk),
      (e: unknown) => e instanceof LimitError && e.what === LIMIT_HEADER_LINE,
    );
  });

  it('a request line without end (1 MB) → LimitError', () => {
    assert.throws(
      () => new RtspParser().push(text(`DESCRIBE rtsp://h/${'a'.repeat(1 << 20)}`)),
      (e: unknown) => e instanceof LimitError && e.what === LIMIT_HEADER_LINE,
    );
  });

  it('URL over 2048 → LimitError (a server answers 414)', () => {
    assert.throws(
      () => new RtspParser().push(text(`DESCRIBE rtsp://h/${'a'.repeat(3000)} RTSP/1.0\r\nCSeq: 1\r\n\r\n`)),
      (e: unknown) => e instanceof LimitError && e.what === LIMIT_URL,
    );
  });

  it(`${MAX_HEADER_COUNT + 1} headers → LimitError`, () => {
    const head = `OPTIONS * RTSP/1.0\r\n${'X: 1\r\n'.repeat(MAX_HEADER_COUNT + 1)}\r\n`;
    assert.throws(() => new RtspParser().push(text(head)), (e: unknown) => e instanceof LimitError && e.what === LIMIT_HEADER_COUNT);
    const ok = `OPTIONS * RTSP/1.0\r\n${'X: 1\r\n'.repeat(MAX_HEADER_COUNT)}\r\n`;
    assert.equal(new RtspParser().push(text(ok)).length, 1);
  });

  it('head over 16 KiB in lines under the line limit → LimitError', () => {
    const head = `OPTIONS * RTSP/1.0\r\n${`X: ${'b'.repeat(4000)}\r\n`.repeat(5)}\r\n`;
    assert.throws(() => new RtspParser().push(text(head)), (e: unknown) => e instanceof LimitError && e.what === LIMIT_HEAD);
  });

  it('Content-Length over 64 KiB → LimitError (413)', () => {
    assert.throws(
      () => new RtspParser().push(text('ANNOUNCE rtsp://h/x RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 100000\r\n\r\n')),
      (e: unknown) => e instanceof LimitError && e.what === LIMIT_BODY,
    );
  });

  const malformed: { name: string; bytes: string }[] = [
    { name: 'binary garbage', bytes: '\u0000\u0001\u0002' },
    { name: 'HTTP request', bytes: 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' },
    { name: 'two-token request line', bytes: 'OPTIONS rtsp://h/\r\n\r\n' },
    { name: 'header without colon', bytes: 'OPTIONS * RTSP/1.0\r\nCSeq 1\r\n\r\n' },
    { name: 'continuation before any header', bytes: 'OPTIONS * RTSP/1.0\r\n  x\r\n\r\n' },
    { name: 'Content-Length not a number', bytes: 'ANNOUNCE * RTSP/1.0\r\nContent-Length: 1e3\r\n\r\n' },
    { name: 'two different Content-Lengths', bytes: 'ANNOUNCE * RTSP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n' },
    { name: 'status line with a 2-digit code', bytes: 'RTSP/1.0 20 OK\r\n\r\n' },
  ];
  for (const m of malformed) {
    it(`malformed: ${m.name} → ParseError`, () => {
      assert.throws(() => new RtspParser().push(Buffer.from(m.bytes, 'latin1')), ParseError);
    });
  }

  it('tolerates bare LF, CRLF keepalives between messages, folded headers, a response without reason', () => {
    const msgs = new RtspParser().push(text('\r\n\r\nGET_PARAMETER rtsp://h/x RTSP/1.0\nCSeq: 7\nX-Long: a\n  b\n\nRTSP/1.0 200\r\nCSeq: 7\r\n\r\n'));
    assert.equal(msgs.length, 2);
    const [req, res] = msgs;
    assert.ok(req?.kind === 'request' && res?.kind === 'response');
    assert.equal(req.headers.get('x-long'), 'a b');
    assert.equal(cseqOf(req.headers), 7);
    assert.equal(res.reason, '');
  });

  it('random bytes and mutated captures: only StreamgateErrors (fast-check, time-boxed)', () => {
    const seed = load('ffprobe-read-gst-tcp.client.bin');
    const mutated = fc.tuple(fc.nat(seed.length - 1), fc.integer({ min: 0, max: 255 }), fc.nat(seed.length)).map(([at, v, cut]) => {
      const b = Uint8Array.from(seed.subarray(0, Math.max(cut, 1)));
      if (at < b.length) b[at] = v;
      return b;
    });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated), fc.nat(50), (buf, cut) => {
        const p = new RtspParser();
        try {
          p.push(buf.subarray(0, cut));
          p.push(buf.subarray(cut));
        } catch (e) {
          if (!(e instanceof StreamgateError)) throw e;
        }
      }),
      { numRuns: 2000, interruptAfterTimeLimit: 4000 },
    );
  });
});

describe('serializers', () => {
  it('request and response: Content-Length from the body, default reason phrases', () => {
    const sdp = text('v=0\r\n');
    const req = serializeRequest({ method: 'ANNOUNCE', url: 'rtsp://h/live', headers: new RtspHeaders([['CSeq', '2'], ['Content-Type', 'application/sdp']]), body: sdp });
    assert.equal(Buffer.from(req).toString(), 'ANNOUNCE rtsp://h/live RTSP/1.0\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n');
    const res = serializeResponse({ status: 461, headers: new RtspHeaders({ CSeq: '3' }) });
    assert.equal(Buffer.from(res).toString(), 'RTSP/1.0 461 Unsupported Transport\r\nCSeq: 3\r\n\r\n');
    assert.throws(() => serializeResponse({ status: 200, headers: new RtspHeaders({ CSeq: '1\r\nX: injected' }) }), RangeError);
    const [back] = new RtspParser().push(req);
    assert.ok(back?.kind === 'request');
    assert.deepEqual(back.body, sdp);
  });

  it('interleaved frames', () => {
    assert.deepEqual(interleavedHeader(3, 0x1234), Uint8Array.of(0x24, 3, 0x12, 0x34));
    assert.deepEqual(serializeInterleaved(0, Uint8Array.of(9, 9)), Uint8Array.of(0x24, 0, 0, 2, 9, 9));
    assert.throws(() => interleavedHeader(256, 0), RangeError);
    assert.throws(() => interleavedHeader(0, 70000), RangeError);
  });
});

describe('header values', () => {
  const transports: { name: string; value: string; want: RtspTransport; canonical?: string }[] = [
    {
      name: 'ffmpeg TCP record',
      value: 'RTP/AVP/TCP;unicast;interleaved=2-3;mode=record',
      want: { protocol: 'RTP/AVP', lowerTransport: 'TCP', delivery: 'unicast', interleaved: [2, 3], mode: 'record' },
    },
    {
      name: 'ffmpeg UDP client ports',
      value: 'RTP/AVP/UDP;unicast;client_port=5000-5001;mode=record',
      want: { protocol: 'RTP/AVP', lowerTransport: 'UDP', delivery: 'unicast', clientPort: [5000, 5001], mode: 'record' },
      canonical: 'RTP/AVP;unicast;client_port=5000-5001;mode=record',
    },
    {
      name: 'gst-rtsp-server answer: ssrc and quoted mode',
      value: 'RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=A0C4A714;mode="PLAY"',
      want: { protocol: 'RTP/AVP', lowerTransport: 'TCP', delivery: 'unicast', interleaved: [0, 1], ssrc: 0xa0c4a714, mode: 'play' },
      canonical: 'RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=A0C4A714;mode=play',
    },
    {
      name: 'server answer with both port pairs and a source',
      value: 'RTP/AVP;unicast;source=192.0.2.1;client_port=6970-6971;server_port=8000-8001',
      want: { protocol: 'RTP/AVP', lowerTransport: 'UDP', delivery: 'unicast', source: '192.0.2.1', clientPort: [6970, 6971], serverPort: [8000, 8001] },
    },
    {
      name: 'multicast with ttl and an unknown parameter kept',
      value: 'RTP/AVP;multicast;destination=239.0.0.1;port=5000-5001;ttl=16;x-foo=1',
      want: { protocol: 'RTP/AVP', lowerTransport: 'UDP', delivery: 'multicast', destination: '239.0.0.1', port: [5000, 5001], ttl: 16, extra: [['x-foo', '1']] },
    },
    {
      name: 'single client port (RTP only) implies the pair',
      value: 'RTP/AVP;unicast;client_port=5000',
      want: { protocol: 'RTP/AVP', lowerTransport: 'UDP', delivery: 'unicast', clientPort: [5000, 5001] },
      canonical: 'RTP/AVP;unicast;client_port=5000-5001',
    },
  ];
  for (const t of transports) {
    it(`Transport: ${t.name}`, () => {
      const parsed = parseTransport(t.value);
      assert.deepEqual(parsed, t.want);
      const out = serializeTransport(parsed);
      assert.equal(out, t.canonical ?? t.value);
      assert.deepEqual(parseTransport(out), parsed);
    });
  }

  it('Transport: alternatives in preference order; malformed ones → ParseError', () => {
    const alts = parseTransports('RTP/AVP;unicast;client_port=5000-5001, RTP/AVP/TCP;unicast;interleaved=0-1');
    assert.deepEqual(alts.map((a) => a.lowerTransport), ['UDP', 'TCP']);
    for (const bad of ['', 'RTP', 'RTP/AVP/SCTP', 'RTP/AVP;client_port=abc', 'RTP/AVP;client_port=70000-70001', 'RTP/AVP/TCP;interleaved=0-300', 'RTP/AVP;ssrc=xyz', 'RTP/AVP;ttl=']) {
      assert.throws(() => parseTransports(bad), ParseError, bad);
    }
  });

  it('Session: id with timeout, gst-style ids, malformed', () => {
    assert.deepEqual(parseSessionHeader('12345678;timeout=60'), { id: '12345678', timeoutSec: 60 });
    assert.deepEqual(parseSessionHeader('i5+MY8yQ.MbFBu.A'), { id: 'i5+MY8yQ.MbFBu.A' });
    assert.equal(serializeSessionHeader({ id: 'abc', timeoutSec: 60 }), 'abc;timeout=60');
    assert.throws(() => parseSessionHeader(''), ParseError);
    assert.throws(() => parseSessionHeader('a b'), ParseError);
    assert.throws(() => parseSessionHeader('abc;timeout=x'), ParseError);
    assert.throws(() => parseSessionHeader('x'.repeat(300)), ParseError);
  });

  it('RTP-Info: gst-rtsp-server value round-trips; URLs with commas; malformed', () => {
    const v = 'url=rtsp://127.0.0.1:46189/cam/stream=0;seq=2175;rtptime=2947896034,url=rtsp://127.0.0.1:46189/cam/stream=1;seq=27440;rtptime=2205699640';
    const info = parseRtpInfo(v.replace(',', ', '));
    assert.deepEqual(info[1], { url: 'rtsp://127.0.0.1:46189/cam/stream=1', seq: 27440, rtptime: 2205699640 });
    assert.equal(serializeRtpInfo(info), v);
    assert.deepEqual(parseRtpInfo('url=rtsp://h/a,b;seq=1'), [{ url: 'rtsp://h/a,b', seq: 1 }]);
    assert.throws(() => parseRtpInfo('seq=1'), ParseError);
    assert.throws(() => parseRtpInfo('url=x;seq=-1'), ParseError);
  });

  it('CSeq and RtspHeaders', () => {
    const h = new RtspHeaders([['CSeq', ' 12 '], ['WWW-Authenticate', 'Digest realm="x"'], ['www-authenticate', 'Basic realm="x"']]);
    assert.equal(cseqOf(h), 12);
    assert.deepEqual(h.getAll('WWW-Authenticate'), ['Digest realm="x"', 'Basic realm="x"']);
    h.set('www-authenticate', 'Basic realm="y"');
    assert.deepEqual(h.entries(), [['CSeq', ' 12 '], ['www-authenticate', 'Basic realm="y"']]);
    h.delete('cseq');
    assert.equal(h.size, 1);
    assert.equal(cseqOf(new RtspHeaders({ CSeq: 'x' })), undefined);
    assert.equal(cseqOf(new RtspHeaders()), undefined);
  });
});
