import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { LimitError, ParseError, StreamgateError } from '../../../src/errors.js';
import {
  canonicalHeaderName,
  createResponse,
  LIMIT_CONTENT_LENGTH,
  LIMIT_HEAD,
  LIMIT_HEADERS,
  LIMIT_URI,
  MAX_SIP_CONTENT_LENGTH,
  MAX_SIP_HEADERS,
  newBranch,
  newTag,
  parseCSeq,
  parseNameAddr,
  parseSipDatagram,
  parseSipUri,
  parseVia,
  requestIds,
  serializeNameAddr,
  serializeSipMessage,
  serializeVia,
  SipHeaders,
  SipStreamParser,
  type SipMessage,
  type SipRequest,
  type SipStreamItem,
} from '../../../src/signaling/sip/message.js';
import { parseSdp } from '../../../src/signaling/sdp/description.js';
import { pushInPieces } from '../../helpers/split-points.js';

const FIXTURES = new URL('../../../../test/fixtures/sip/', import.meta.url);
const load = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, FIXTURES)));
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const crlf = (lines: string[]): string => lines.join('\r\n');
const bodyText = (m: SipMessage): string => Buffer.from(m.body).toString('utf8');

/** Comparable form (headers as pairs, body as text). */
function plain(m: SipMessage): unknown {
  return { ...m, headers: m.headers.entries(), body: bodyText(m) };
}

const parseStream = (buf: Uint8Array, cuts: readonly number[] = []): SipStreamItem[] => pushInPieces(new SipStreamParser(), buf, cuts);

const plainItems = (items: SipStreamItem[]): unknown[] => items.map((i) => (i.kind === 'ping' ? i : plain(i.message)));

/** Hand-written messages in the styles real user agents send, each with what must come out. */
const cases: { name: string; bytes: Uint8Array; check: (m: SipMessage) => void }[] = [
  {
    name: 'sipp-3.6 INVITE over UDP (uac-pcmu-h264.xml)',
    bytes: load('sipp-udp-0-invite.bin'),
    check: (m) => {
      assert.equal(m.kind, 'request');
      const r = m as SipRequest;
      assert.equal(r.method, 'INVITE');
      assert.match(r.uri, /^sip:live~cam1@127\.0\.0\.1:\d+$/);
      assert.equal(r.headers.get('CSeq'), '1 INVITE');
      assert.equal(r.body.length, Number(r.headers.get('Content-Length')));
      const sdp = parseSdp(bodyText(r));
      assert.deepEqual(sdp.media.map((x) => x.type), ['audio', 'video']);
    },
  },
  {
    name: 'baresip-1.0.0 INVITE (empty Supported, comma Allow list, 5 video formats)',
    bytes: load('baresip-1.0.0-invite.bin'),
    check: (m) => {
      const r = m as SipRequest;
      assert.equal(r.method, 'INVITE');
      assert.equal(r.headers.get('Supported'), '');
      assert.deepEqual(r.headers.getList('Supported'), []);
      assert.ok(r.headers.getList('Allow').includes('CANCEL'));
      assert.equal(parseVia(r.headers.getList('Via')[0]!).params.rport, '');
      const sdp = parseSdp(bodyText(r));
      assert.deepEqual(sdp.media[1]!.formats.map((f) => f.encoding), ['H264', 'H264', 'H263', 'MP4V-ES', 'H265']);
    },
  },
  {
    name: "sipp-3.6 uas 200 OK ('Content-Length:   129', spaces before the value)",
    bytes: load('sipp-udp-2-200.bin'),
    check: (m) => {
      assert.equal(m.kind, 'response');
      if (m.kind !== 'response') return;
      assert.equal(m.status, 200);
      assert.equal(m.reason, 'OK');
      assert.equal(m.body.length, 129);
      assert.ok(bodyText(m).startsWith('v=0'));
    },
  },
  {
    name: 'compact forms (v f t i m l c k s) as PJSIP-based phones send them with use_compact_form',
    bytes: bytes(
      crlf([
        'OPTIONS sip:live~cam1@192.0.2.1 SIP/2.0',
        'v: SIP/2.0/UDP 192.0.2.9:5062;rport;branch=z9hG4bKPj1',
        'f: <sip:phone@192.0.2.9>;tag=a1',
        't: <sip:live~cam1@192.0.2.1>',
        'i: c1@192.0.2.9',
        'CSeq: 7 OPTIONS',
        'm: <sip:phone@192.0.2.9:5062>',
        'k: replaces, timer',
        's: probe',
        'c: text/plain',
        'l: 2',
        '',
        'hi',
      ]),
    ),
    check: (m) => {
      assert.deepEqual(
        m.headers.entries().map(([k]) => k),
        ['Via', 'From', 'To', 'Call-ID', 'CSeq', 'Contact', 'Supported', 'Subject', 'Content-Type', 'Content-Length'],
      );
      assert.deepEqual(m.headers.getList('k'), ['replaces', 'timer']);
      assert.equal(bodyText(m), 'hi');
      const ids = requestIds(m as SipRequest);
      assert.equal(ids.callId, 'c1@192.0.2.9');
      assert.equal(ids.from.params.tag, 'a1');
    },
  },
  {
    name: 'folded Subject and Via continuation lines (§7.3.1), tab and spaces',
    bytes: bytes(
      crlf([
        'BYE sip:streamgate@192.0.2.1:5060 SIP/2.0',
        'Via: SIP/2.0/TCP 192.0.2.9:5062',
        '   ;branch=z9hG4bK-fold',
        'Subject: one',
        '\ttwo',
        'From: <sip:a@b>;tag=1',
        'To: <sip:c@d>;tag=2',
        'Call-ID: x',
        'CSeq: 2 BYE',
        'Content-Length: 0',
        '',
        '',
      ]),
    ),
    check: (m) => {
      assert.equal(m.headers.get('Subject'), 'one two');
      assert.equal(parseVia(m.headers.get('Via')!).params.branch, 'z9hG4bK-fold');
    },
  },
  {
    name: 'LF-only line ends and a two-element Via list on one line',
    bytes: bytes(
      [
        'SIP/2.0 486 Busy Here',
        'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa, SIP/2.0/UDP 192.0.2.2:5070;branch=z9hG4bKb',
        'Via: SIP/2.0/UDP 192.0.2.3;branch=z9hG4bKc',
        'Content-Length: 0',
        '',
        '',
      ].join('\n'),
    ),
    check: (m) => {
      assert.equal(m.kind === 'response' && m.status, 486);
      assert.deepEqual(
        m.headers.getList('Via').map((v) => parseVia(v).params.branch),
        ['z9hG4bKa', 'z9hG4bKb', 'z9hG4bKc'],
      );
    },
  },
  {
    name: 'no Content-Length over UDP: the body is the rest of the datagram',
    bytes: bytes(crlf(['MESSAGE sip:x@y SIP/2.0', 'Via: SIP/2.0/UDP h;branch=z9hG4bK1', '', 'hello'])),
    check: (m) => assert.equal(bodyText(m), 'hello'),
  },
  {
    name: 'Content-Length shorter than the datagram cuts the body (§18.3)',
    bytes: bytes(crlf(['INFO sip:x@y SIP/2.0', 'Content-Length: 3', '', 'abcdef'])),
    check: (m) => assert.equal(bodyText(m), 'abc'),
  },
  {
    name: 'leading CRLF keep-alive glued before a request',
    bytes: bytes(crlf(['', '', 'OPTIONS sip:x@y SIP/2.0', 'l: 0', '', ''])),
    check: (m) => assert.equal(m.kind === 'request' && m.method, 'OPTIONS'),
  },
];

/** Malformed inputs and the error each must give. */
const bad: { name: string; bytes: Uint8Array; error: typeof ParseError | typeof LimitError; what?: string }[] = [
  { name: 'no blank line after the headers', bytes: bytes('OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n'), error: ParseError },
  { name: 'request line with 2 parts', bytes: bytes('OPTIONS sip:x@y\r\n\r\n'), error: ParseError },
  { name: 'SIP/3.0', bytes: bytes('OPTIONS sip:x@y SIP/3.0\r\n\r\n'), error: ParseError },
  { name: 'status 99', bytes: bytes('SIP/2.0 099 Low\r\n\r\n'), error: ParseError },
  { name: 'status 700', bytes: bytes('SIP/2.0 700 High\r\n\r\n'), error: ParseError },
  { name: 'method with a slash', bytes: bytes('INV/ITE sip:x@y SIP/2.0\r\n\r\n'), error: ParseError },
  { name: 'Request-URI without a scheme', bytes: bytes('INVITE live~cam1 SIP/2.0\r\n\r\n'), error: ParseError },
  { name: 'continuation line before any header', bytes: bytes('OPTIONS sip:x@y SIP/2.0\r\n  folded\r\n\r\n'), error: ParseError },
  { name: 'header line without a colon', bytes: bytes('OPTIONS sip:x@y SIP/2.0\r\nVia SIP/2.0/UDP h\r\n\r\n'), error: ParseError },
  { name: 'header name with a space', bytes: bytes('OPTIONS sip:x@y SIP/2.0\r\nCall ID: 1\r\n\r\n'), error: ParseError },
  { name: "Content-Length 'abc'", bytes: bytes('OPTIONS sip:x@y SIP/2.0\r\nContent-Length: abc\r\n\r\n'), error: ParseError },
  { name: 'Content-Length -1', bytes: bytes('OPTIONS sip:x@y SIP/2.0\r\nContent-Length: -1\r\n\r\n'), error: ParseError },
  { name: 'two different Content-Length', bytes: bytes('OPTIONS sip:x@y SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab'), error: ParseError },
  { name: 'Content-Length past the end of the datagram', bytes: bytes('OPTIONS sip:x@y SIP/2.0\r\nContent-Length: 10\r\n\r\nabc'), error: ParseError },
  {
    name: 'Content-Length over the limit',
    bytes: bytes(`OPTIONS sip:x@y SIP/2.0\r\nContent-Length: ${MAX_SIP_CONTENT_LENGTH + 1}\r\n\r\n`),
    error: LimitError,
    what: LIMIT_CONTENT_LENGTH,
  },
  {
    name: 'a 20 KiB header',
    bytes: bytes(`OPTIONS sip:x@y SIP/2.0\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`),
    error: LimitError,
    what: LIMIT_HEAD,
  },
  {
    name: 'one header too many',
    bytes: bytes(`OPTIONS sip:x@y SIP/2.0\r\n${'X: 1\r\n'.repeat(MAX_SIP_HEADERS + 1)}\r\n`),
    error: LimitError,
    what: LIMIT_HEADERS,
  },
  { name: 'a 3000-byte Request-URI', bytes: bytes(`OPTIONS sip:${'a'.repeat(3000)}@y SIP/2.0\r\n\r\n`), error: LimitError, what: LIMIT_URI },
];

describe('SIP datagram parser', () => {
  for (const c of cases) {
    it(c.name, () => c.check(parseSipDatagram(c.bytes)));
  }

  for (const b of bad) {
    it(`refuses: ${b.name}`, () => {
      assert.throws(
        () => parseSipDatagram(b.bytes),
        (err: unknown) => err instanceof b.error && (b.what === undefined || (err as LimitError).what === b.what),
      );
    });
  }

  it('parse → serialize → parse gives the same message for every case and capture', () => {
    const all = [...cases.map((c) => c.bytes), ...readdirSync(FIXTURES).filter((f) => f.startsWith('sipp-udp')).map(load)];
    for (const b of all) {
      const m = parseSipDatagram(b);
      const again = parseSipDatagram(serializeSipMessage(m));
      // the serializer always writes Content-Length (a datagram may leave it out)
      again.headers.delete('Content-Length');
      m.headers.delete('Content-Length');
      assert.deepEqual(plain(again), plain(m));
    }
  });

  it('serializes SIPp requests back to the same bytes (canonical names, Content-Length last)', () => {
    for (const f of ['sipp-udp-0-invite.bin', 'sipp-udp-3-ack.bin', 'sipp-udp-4-bye.bin']) {
      // SIPp pads [len] with spaces ('Content-Length:   352'); we write one space
      const want = Buffer.from(load(f)).toString('latin1').replace(/Content-Length: +/, 'Content-Length: ');
      assert.equal(Buffer.from(serializeSipMessage(parseSipDatagram(load(f)))).toString('latin1'), want, f);
    }
  });

  it('never throws anything but a StreamgateError on mutated captures and random bytes', () => {
    const seeds = [...cases.map((c) => c.bytes), ...bad.map((b) => b.bytes).filter((b) => b.length < 4096)];
    const mutated = fc
      .tuple(fc.nat(seeds.length - 1), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat())
      .map(([i, at, v, cut]) => {
        const s = seeds[i]!;
        const out = Uint8Array.from(s);
        out[at % out.length] = v;
        return out.subarray(0, 1 + (cut % out.length));
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutated), (buf) => {
        try {
          parseSipDatagram(buf);
        } catch (err) {
          if (!(err instanceof StreamgateError)) throw err;
        }
      }),
      { numRuns: 3000, interruptAfterTimeLimit: 4000 },
    );
  });
});

describe('SIP stream parser (TCP)', () => {
  const client = load('sipp-tcp.client.bin');
  const server = load('sipp-tcp.server.bin');

  it('reads the SIPp TCP session: INVITE, ACK, BYE from the client; 180, 200, 200 from the server', () => {
    const c = parseStream(client).map((i) => (i.kind === 'message' && i.message.kind === 'request' ? i.message.method : '?'));
    assert.deepEqual(c, ['INVITE', 'ACK', 'BYE']);
    const s = parseStream(server).map((i) => (i.kind === 'message' && i.message.kind === 'response' ? i.message.status : 0));
    assert.deepEqual(s, [180, 200, 200]);
  });

  it('gives the same messages for every single split point of both captures', () => {
    for (const buf of [client, server]) {
      const whole = plainItems(parseStream(buf));
      for (let cut = 1; cut < buf.length; cut++) assert.deepEqual(plainItems(parseStream(buf, [cut])), whole, `cut at ${cut}`);
    }
  });

  it('gives the same messages one byte at a time', () => {
    const whole = plainItems(parseStream(client));
    const cuts = Array.from({ length: client.length - 1 }, (_, i) => i + 1);
    assert.deepEqual(plainItems(parseStream(client, cuts)), whole);
  });

  it('gives the same messages for random split points (time-boxed)', () => {
    const joined = new Uint8Array([...client, ...bytes('\r\n\r\n'), ...server]);
    const whole = plainItems(parseStream(joined));
    assert.equal(whole.filter((i) => (i as { kind: string }).kind === 'ping').length, 1);
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: joined.length - 1 }), { maxLength: 200 }), (cuts) => {
        assert.deepEqual(plainItems(parseStream(joined, cuts)), whole);
      }),
      { numRuns: 400, interruptAfterTimeLimit: process.env.CI ? 20_000 : 6000 },
    );
  });

  it('answers CRLFCRLF keep-alives (RFC 5626 §3.5.1) and ignores a lone CRLF pong, also split', () => {
    const items = parseStream(bytes('\r\n\r\n\r\nOPTIONS sip:x@y SIP/2.0\r\nl: 0\r\n\r\n\r\n\r\n'), [1, 2, 3, 5]);
    assert.deepEqual(
      items.map((i) => i.kind),
      ['ping', 'message', 'ping'],
    );
  });

  it('takes a message without Content-Length as bodiless', () => {
    const items = parseStream(bytes('OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\nOPTIONS sip:z@y SIP/2.0\r\n\r\n'));
    assert.equal(items.length, 2);
  });

  it('waits for the whole body', () => {
    const p = new SipStreamParser();
    assert.deepEqual(p.push(bytes('INFO sip:x@y SIP/2.0\r\nContent-Length: 5\r\n\r\nab')), []);
    assert.equal(p.pendingBytes > 0, true);
    const items = p.push(bytes('cde'));
    assert.equal(items.length, 1);
    assert.equal(items[0]!.kind === 'message' && bodyText(items[0].message), 'abcde');
    assert.equal(p.pendingBytes, 0);
  });

  it('refuses a head that never ends (LimitError) and a CR without LF between messages', () => {
    const p = new SipStreamParser();
    assert.throws(() => {
      for (let i = 0; i < 40; i++) p.push(bytes(`X-Filler-${i}: ${'a'.repeat(500)}\r\n`));
    }, LimitError);
    assert.throws(() => new SipStreamParser().push(bytes('\rX')), ParseError);
  });

  it('never throws anything but a StreamgateError on random bytes at random splits', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.uniqueArray(fc.nat(400), { maxLength: 10 }), (buf, cuts) => {
        try {
          parseStream(buf, cuts.filter((c) => c > 0 && c < buf.length));
        } catch (err) {
          if (!(err instanceof StreamgateError)) throw err;
        }
      }),
      { numRuns: 2000, interruptAfterTimeLimit: 4000 },
    );
  });
});

describe('SIP header values', () => {
  it('canonicalizes names: compact forms, Call-ID, CSeq, WWW-Authenticate, unknown ones', () => {
    assert.equal(canonicalHeaderName('i'), 'Call-ID');
    assert.equal(canonicalHeaderName('CALL-ID'), 'Call-ID');
    assert.equal(canonicalHeaderName('cseq'), 'CSeq');
    assert.equal(canonicalHeaderName('www-authenticate'), 'WWW-Authenticate');
    assert.equal(canonicalHeaderName('x-custom-thing'), 'X-Custom-Thing');
    assert.equal(canonicalHeaderName('L'), 'Content-Length');
  });

  it('parses and writes Via: IPv6 host, port, flag and quoted params', () => {
    const v = parseVia('SIP/2.0/udp [2001:db8::9]:5062;branch=z9hG4bK77;rport;received="192.0.2.4"');
    assert.deepEqual(v, { transport: 'UDP', host: '[2001:db8::9]', port: 5062, params: { branch: 'z9hG4bK77', rport: '', received: '192.0.2.4' } });
    assert.equal(serializeVia(v), 'SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bK77;rport;received=192.0.2.4');
    assert.throws(() => parseVia('SIP/2.0 host'), ParseError);
    assert.throws(() => parseVia('SIP/2.0/UDP host:70000'), ParseError);
  });

  it('parses name-addr and addr-spec forms (display names with quotes, params outside <>)', () => {
    assert.deepEqual(parseNameAddr('"Lobby \\"A\\"" <sip:lobby@192.0.2.9;transport=tcp>;tag=9f'), {
      display: 'Lobby "A"',
      uri: 'sip:lobby@192.0.2.9;transport=tcp',
      params: { tag: '9f' },
    });
    assert.deepEqual(parseNameAddr('Bob <sip:bob@h>'), { display: 'Bob', uri: 'sip:bob@h', params: {} });
    assert.deepEqual(parseNameAddr('sip:bob@h;tag=1'), { uri: 'sip:bob@h', params: { tag: '1' } });
    assert.equal(serializeNameAddr({ display: 'A "B"', uri: 'sip:a@h', params: { tag: 'x' } }), '"A \\"B\\"" <sip:a@h>;tag=x');
    assert.throws(() => parseNameAddr('<sip:a@h'), ParseError);
    assert.throws(() => parseNameAddr('not an address'), ParseError);
  });

  it('parses SIP URIs: escaped user, password, IPv6, params; other schemes give null', () => {
    assert.deepEqual(parseSipUri('sip:live%7Ecam1@192.0.2.1:5060;transport=tcp?subject=x'), {
      scheme: 'sip',
      user: 'live~cam1',
      host: '192.0.2.1',
      port: 5060,
      params: { transport: 'tcp' },
    });
    assert.deepEqual(parseSipUri('SIPS:1001:secret@[2001:db8::1]'), { scheme: 'sips', user: '1001', host: '[2001:db8::1]', params: {} });
    assert.deepEqual(parseSipUri('sip:gateway.example'), { scheme: 'sip', host: 'gateway.example', params: {} });
    assert.equal(parseSipUri('tel:+15551234'), null);
    assert.throws(() => parseSipUri('sip:a@'), ParseError);
    assert.throws(() => parseSipUri('sip:%zz@h'), ParseError);
  });

  it('parses CSeq and refuses bad ones', () => {
    assert.deepEqual(parseCSeq(' 4915  INVITE '), { seq: 4915, method: 'INVITE' });
    assert.throws(() => parseCSeq('INVITE 1'), ParseError);
    assert.throws(() => parseCSeq('99999999999 INVITE'), ParseError);
  });

  it('requestIds names what is missing and checks the CSeq method', () => {
    const base = ['Via: SIP/2.0/UDP h;branch=z9hG4bK1', 'From: <sip:a@h>;tag=1', 'To: <sip:b@h>', 'Call-ID: c', 'CSeq: 1 INVITE'];
    const make = (lines: string[]) => parseSipDatagram(bytes(crlf(['INVITE sip:b@h SIP/2.0', ...lines, '', '']))) as SipRequest;
    assert.equal(requestIds(make(base)).cseq.seq, 1);
    for (let i = 0; i < base.length; i++) {
      assert.throws(() => requestIds(make(base.filter((_, j) => j !== i))), ParseError, base[i]);
    }
    assert.throws(() => requestIds(make([...base.slice(0, 4), 'CSeq: 1 BYE'])), /differs/);
  });

  it('createResponse copies Via/From/To/Call-ID/CSeq in order and adds the To tag except on 100', () => {
    const req = parseSipDatagram(load('sipp-udp-0-invite.bin')) as SipRequest;
    const trying = createResponse(req, 100);
    assert.equal(trying.reason, 'Trying');
    assert.equal(trying.headers.get('To'), req.headers.get('To'));
    const ok = createResponse(req, 200, { toTag: 'abc', headers: [['Contact', '<sip:g@h>']] });
    assert.deepEqual(ok.headers.entries().map(([k]) => k), ['Via', 'From', 'To', 'Call-ID', 'CSeq', 'Contact']);
    assert.equal(parseNameAddr(ok.headers.get('To')!).params.tag, 'abc');
    const text = Buffer.from(serializeSipMessage(ok)).toString();
    assert.ok(text.startsWith('SIP/2.0 200 OK\r\n'));
    assert.ok(text.endsWith('Content-Length: 0\r\n\r\n'));
  });

  it('SipHeaders.set replaces every line, delete removes them; tags and branches are unique', () => {
    const h = new SipHeaders([
      ['Route', '<sip:a>'],
      ['route', '<sip:b>'],
    ]);
    h.set('Route', '<sip:c>');
    assert.deepEqual(h.getAll('Route'), ['<sip:c>']);
    h.delete('ROUTE');
    assert.equal(h.size, 0);
    assert.notEqual(newTag(), newTag());
    assert.ok(newBranch().startsWith('z9hG4bK'));
  });
});
