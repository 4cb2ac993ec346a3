import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import {
  AMF0_CLASS_NAME,
  AMF0_ECMA_ARRAY,
  AMF0_MAX_DEPTH,
  AMF0_MAX_ELEMENTS,
  AMF0_MAX_STRING_BYTES,
  amf0EcmaArray,
  amf0Object,
  amf0Size,
  decodeAmf0,
  decodeAmf0All,
  encodeAmf0,
  isAmf0Object,
  type Amf0Value,
} from '../../../src/media/flv/amf0.js';
import { LimitError, ParseError, StreamgateError, UnsupportedError } from '../../../src/errors.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Canonical encodings: decode(bytes) deep-equals value, encode(value) gives the bytes back. */
const cases: { name: string; value: Amf0Value; bytes: string }[] = [
  { name: 'number 1.0', value: 1, bytes: '00 3ff0000000000000' },
  { name: 'number -0.5', value: -0.5, bytes: '00 bfe0000000000000' },
  { name: 'boolean true', value: true, bytes: '01 01' },
  { name: 'boolean false', value: false, bytes: '01 00' },
  { name: 'string "live"', value: 'live', bytes: '02 0004 6c697665' },
  { name: 'empty string', value: '', bytes: '02 0000' },
  { name: 'utf-8 string "é"', value: 'é', bytes: '02 0002 c3a9' },
  { name: 'null', value: null, bytes: '05' },
  { name: 'undefined', value: undefined, bytes: '06' },
  { name: 'date 0 (time zone 0)', value: new Date(0), bytes: '0b 0000000000000000 0000' },
  { name: 'strict array [1, "a"]', value: [1, 'a'], bytes: '0a 00000002 00 3ff0000000000000 02 0001 61' },
  {
    name: 'object {app:"live"}',
    value: amf0Object({ app: 'live' }),
    bytes: '03 0003 617070 02 0004 6c697665 000009',
  },
  {
    name: 'ECMA array {width:640}',
    value: amf0EcmaArray({ width: 640 }),
    bytes: '08 00000001 0005 7769647468 00 4084000000000000 000009',
  },
  {
    name: 'nested object {a:{b:null}}',
    value: amf0Object({ a: amf0Object({ b: null }) }),
    bytes: '03 0001 61 03 0001 62 05 000009 000009',
  },
];

for (const c of cases) {
  test(`amf0 round trip: ${c.name}`, () => {
    const bytes = hex(c.bytes);
    const d = decodeAmf0(bytes);
    assert.deepEqual(d.value, c.value);
    assert.equal(d.offset, bytes.length);
    const enc = encodeAmf0(c.value);
    assert.equal(toHex(enc), toHex(bytes));
    assert.equal(amf0Size(c.value), bytes.length);
  });
}

test('amf0: ECMA array and typed object markers survive a round trip', () => {
  const ecma = decodeAmf0(hex('08 00000001 0005 7769647468 00 4084000000000000 000009')).value;
  assert.ok(isAmf0Object(ecma));
  assert.equal(ecma[AMF0_ECMA_ARRAY], true);
  assert.equal(ecma['width'], 640);
  // typed object 0x10: class name "Pt", {x: 1}
  const typed = hex('10 0002 5074 0001 78 00 3ff0000000000000 000009');
  const t = decodeAmf0(typed).value;
  assert.ok(isAmf0Object(t));
  assert.equal(t[AMF0_CLASS_NAME], 'Pt');
  assert.equal(toHex(encodeAmf0(t)), toHex(typed));
});

test('amf0: the ECMA array count is advisory (ffmpeg writes the real count, others write 0)', () => {
  const v = decodeAmf0(hex('08 00000000 0001 61 01 01 000009')).value;
  assert.ok(isAmf0Object(v));
  assert.equal(v['a'], true);
});

test('amf0: long strings are chosen by length and decode as strings', () => {
  const s = 'x'.repeat(70000);
  const enc = encodeAmf0(s);
  assert.equal(enc[0], 0x0c);
  assert.equal(enc.length, 5 + 70000);
  assert.equal(decodeAmf0(enc).value, s);
  // a short long-string (some encoders emit them) decodes too
  assert.equal(decodeAmf0(hex('0c 00000002 6869')).value, 'hi');
});

test('amf0: "__proto__" from the network is an ordinary key', () => {
  const v = decodeAmf0(hex('03 0009 5f5f70726f746f5f5f 01 01 000009')).value;
  assert.ok(isAmf0Object(v));
  assert.equal(Object.getPrototypeOf(v), null);
  assert.equal(v['__proto__'], true);
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('amf0: references (0x07) point at earlier objects', () => {
  // [ {a:1}, ref 1 ] : strict array is ref 0, the object ref 1
  const v = decodeAmf0(hex('0a 00000002 03 0001 61 00 3ff0000000000000 000009 07 0001')).value;
  assert.ok(Array.isArray(v));
  assert.equal(v[0], v[1]);
  assert.throws(() => decodeAmf0(hex('07 0000')), ParseError);
});

test('amf0: decodeAmf0All on the connect command ffmpeg sent (from the capture)', () => {
  // the connect payload spans one 128-byte chunk boundary in the capture; this is the reassembled body
  const body = encodeAmf0(
    'connect',
    1,
    amf0Object({ app: 'live', type: 'nonprivate', flashVer: 'FMLE/3.0 (compatible; Lavf59.27.100)', tcUrl: 'rtmp://127.0.0.1:43727/live' }),
  );
  const cap = readFileSync(new URL('../../../../test/fixtures/rtmp/ffmpeg-publish.bin', import.meta.url));
  // first chunk after C0+C1+C2: 12-byte fmt-0 header, 128 payload bytes, a 1-byte fmt-3 header, the rest
  const start = 1 + 1536 + 1536 + 12;
  const wire = Buffer.concat([cap.subarray(start, start + 128), cap.subarray(start + 129, start + 129 + body.length - 128)]);
  assert.equal(toHex(wire), toHex(body));
  const values = decodeAmf0All(wire);
  assert.equal(values[0], 'connect');
  assert.equal(values[1], 1);
  const obj = values[2];
  assert.ok(isAmf0Object(obj));
  assert.equal(obj['app'], 'live');
  assert.equal(obj['tcUrl'], 'rtmp://127.0.0.1:43727/live');
});

test('amf0: AMF3 values after the avmplus marker (0x11)', () => {
  const amf3: [string, Amf0Value][] = [
    ['11 00', undefined],
    ['11 01', null],
    ['11 02', false],
    ['11 03', true],
    ['11 04 7f', 127],
    ['11 04 8100', 128],
    ['11 04 ffffffff', -1], // 29-bit two's complement
    ['11 04 c0808000', -(1 << 28)],
    ['11 05 3ff8000000000000', 1.5],
    ['11 06 0b 68656c6c6f', 'hello'],
    ['11 09 05 01 04 01 06 03 61', [1, 'a']], // dense array of 2: empty assoc part, int 1, string "a"
  ];
  for (const [bytes, want] of amf3) {
    const b = hex(bytes);
    const d = decodeAmf0(b);
    assert.deepEqual(d.value, want, bytes);
    assert.equal(d.offset, b.length, bytes);
  }
  // anonymous dynamic object {app:"live", n: 3}: 0x0b = inline object, inline traits, dynamic, 0 sealed
  const obj = decodeAmf0(hex('11 0a 0b 01 07 617070 06 09 6c697665 03 6e 04 03 01')).value;
  assert.deepEqual(obj, amf0Object({ app: 'live', n: 3 }));
  // array of two objects of class "C" with sealed members x, y; the second reuses the traits by reference (0x01)
  const arr = decodeAmf0(hex('11 09 05 01 0a 23 03 43 03 78 03 79 04 01 04 02 0a 01 04 05 04 06')).value;
  assert.ok(Array.isArray(arr) && arr.length === 2);
  const [a, b] = arr;
  assert.ok(isAmf0Object(a) && isAmf0Object(b));
  assert.equal(a[AMF0_CLASS_NAME], 'C');
  assert.equal(b[AMF0_CLASS_NAME], 'C');
  assert.deepEqual(Object.fromEntries(Object.entries(a)), { x: 1, y: 2 });
  assert.deepEqual(Object.fromEntries(Object.entries(b)), { x: 5, y: 6 });
  // a string reference: ["ab", "ab"] where the second is reference 0 (0x00)
  assert.deepEqual(decodeAmf0(hex('11 09 05 01 06 05 6162 06 00')).value, ['ab', 'ab']);
  // an AMF3 command body: connect, tx 1, then the object switched to AMF3
  const cmd = decodeAmf0All(hex('02 0007 636f6e6e656374 00 3ff0000000000000 11 0a 0b 01 07 617070 06 09 6c697665 01'));
  assert.deepEqual(cmd, ['connect', 1, amf0Object({ app: 'live' })]);
  assert.throws(() => decodeAmf0(hex('11 0c 03 00')), UnsupportedError); // ByteArray
});

test('amf0: the AMF3 traits table is per switch', () => {
  // second value references traits 0, which does not exist in its own (fresh) table
  assert.throws(() => decodeAmf0All(hex('11 0a 23 03 43 03 78 03 79 04 01 04 02' + '11 0a 01 04 05 04 06')), ParseError);
});

test('amf0 limits: nesting depth', () => {
  const deep = (n: number): Uint8Array => hex('0a00000001'.repeat(n) + '05');
  assert.deepEqual(decodeAmf0(deep(AMF0_MAX_DEPTH)).offset, deep(AMF0_MAX_DEPTH).length);
  assert.throws(() => decodeAmf0(deep(AMF0_MAX_DEPTH + 1)), LimitError);
  // encoding a cyclic object stops at the depth limit instead of recursing forever
  const cyc = amf0Object({});
  cyc['self'] = cyc;
  assert.throws(() => encodeAmf0(cyc), LimitError);
});

test('amf0 limits: string length and element count', () => {
  const big = new Uint8Array(5 + AMF0_MAX_STRING_BYTES + 1);
  big[0] = 0x0c;
  new DataView(big.buffer).setUint32(1, AMF0_MAX_STRING_BYTES + 1);
  assert.throws(() => decodeAmf0(big), (e) => e instanceof LimitError && e.what === 'amf0 string bytes');
  const n = AMF0_MAX_ELEMENTS + 1;
  const many = new Uint8Array(5 + n).fill(0x05);
  many[0] = 0x0a;
  new DataView(many.buffer).setUint32(1, n);
  assert.throws(() => decodeAmf0(many), (e) => e instanceof LimitError && e.what === 'amf0 element count');
});

test('amf0 malformed: truncations, reserved markers, lying counts', () => {
  const bad: [string, string][] = [
    ['empty', ''],
    ['number cut short', '00 3ff0'],
    ['string longer than the buffer', '02 0010 61'],
    ['object without end', '03 0001 61 05'],
    ['object end outside an object', '09'],
    ['movieclip (reserved)', '04'],
    ['recordset (reserved)', '0e'],
    ['marker 0x20', '20'],
    ['strict array claiming 4 billion elements', '0a ffffffff 05'],
    ['date without time zone', '0b 0000000000000000'],
  ];
  for (const [name, bytes] of bad) {
    assert.throws(() => decodeAmf0(hex(bytes)), ParseError, name);
  }
});

/** Arbitrary AMF0 values whose canonical encoding round-trips to a deep-equal value. */
const arbValue: fc.Arbitrary<Amf0Value> = fc.letrec<{ v: Amf0Value }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.double({ noNaN: true }).filter((x) => !Object.is(x, -0)),
    fc.boolean(),
    fc.string(),
    fc.constant(null),
    fc.constant(undefined),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.string({ minLength: 1 }), tie('v'), { maxKeys: 4 }).map((o) => amf0Object(o)),
    fc.dictionary(fc.string({ minLength: 1 }), tie('v'), { maxKeys: 4 }).map((o) => amf0EcmaArray(o)),
  ),
})).v;

test('amf0 property: decode(encode(v)) deep-equals v and re-encodes to the same bytes', () => {
  fc.assert(
    fc.property(fc.array(arbValue, { maxLength: 4 }), (values) => {
      const enc = encodeAmf0(...values);
      const back = decodeAmf0All(enc);
      assert.deepEqual(back, values);
      assert.equal(toHex(encodeAmf0(...back)), toHex(enc));
    }),
    { numRuns: 300 },
  );
});

test('amf0 property: random and mutated bytes throw only StreamgateError', () => {
  const seeds = cases.map((c) => hex(c.bytes));
  const mutated = fc
    .tuple(fc.constantFrom(...seeds), fc.nat(), fc.integer({ min: 0, max: 255 }))
    .map(([b, i, v]) => {
      const c = b.slice();
      if (c.length > 0) c[i % c.length] = v;
      return c;
    });
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutated), (bytes) => {
      try {
        decodeAmf0All(bytes);
      } catch (e) {
        if (!(e instanceof StreamgateError)) throw e;
      }
    }),
    { numRuns: 3000 },
  );
});
