import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ParseError, StreamgateError } from '../../src/errors.js';
import {
  BitReader,
  BitWriter,
  readInt24BE,
  readUint16BE,
  readUint24BE,
  readUint32BE,
  toHex,
  writeUint16BE,
  writeUint24BE,
  writeUint32BE,
} from '../../src/media/bytes.js';

describe('BitReader', () => {
  it('reads MSB-first across byte boundaries', () => {
    const r = new BitReader(Uint8Array.of(0b10110011, 0b01010101, 0xff, 0x00, 0x12, 0x34));
    assert.equal(r.readBit(), 1);
    assert.equal(r.readBits(3), 0b011);
    assert.equal(r.readBits(8), 0b00110101);
    assert.equal(r.bitsLeft(), 36);
    assert.equal(r.readFlag(), false);
    r.skip(3);
    assert.equal(r.readBits(32), 0xff001234);
    assert.equal(r.bitsLeft(), 0);
  });

  it('reads 32-bit values as unsigned', () => {
    assert.equal(new BitReader(Uint8Array.of(0xff, 0xff, 0xff, 0xff)).readBits(32), 0xffffffff);
  });

  // ITU-T H.264 Table 9-2 / 9-3
  const golomb: { bits: string; ue: number; se: number }[] = [
    { bits: '1', ue: 0, se: 0 },
    { bits: '010', ue: 1, se: 1 },
    { bits: '011', ue: 2, se: -1 },
    { bits: '00100', ue: 3, se: 2 },
    { bits: '00111', ue: 6, se: -3 },
    { bits: '0001000', ue: 7, se: 4 },
    { bits: `${'0'.repeat(31)}1${'1'.repeat(31)}`, ue: 2 ** 32 - 2, se: -(2 ** 31 - 1) },
  ];
  const fromBits = (bits: string): Uint8Array => {
    const padded = bits + '0'.repeat((8 - (bits.length % 8)) % 8);
    return Uint8Array.from(padded.match(/.{8}/g) ?? [], (b) => parseInt(b, 2));
  };
  for (const g of golomb) {
    it(`exp-Golomb ${g.bits.length > 12 ? `${g.bits.length} bits` : g.bits} = ue ${g.ue}, se ${g.se}`, () => {
      assert.equal(new BitReader(fromBits(g.bits)).readUE(), g.ue);
      assert.equal(new BitReader(fromBits(g.bits)).readSE(), g.se);
    });
  }

  const malformed: { name: string; read: (r: BitReader) => unknown; bytes: Uint8Array }[] = [
    { name: 'readBit on zero-length input', read: (r) => r.readBit(), bytes: new Uint8Array(0) },
    { name: 'readBits past the end', read: (r) => r.readBits(9), bytes: Uint8Array.of(0xff) },
    { name: 'readUE with no terminating 1', read: (r) => r.readUE(), bytes: Uint8Array.of(0, 0) },
    { name: 'readUE with a truncated suffix', read: (r) => r.readUE(), bytes: Uint8Array.of(0b00000001) },
    { name: 'readUE with 32 leading zeros', read: (r) => r.readUE(), bytes: Uint8Array.of(0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff) },
    { name: 'skip past the end', read: (r) => r.skip(17), bytes: Uint8Array.of(0, 0) },
  ];
  for (const m of malformed) {
    it(`throws ParseError: ${m.name}`, () => {
      const r = new BitReader(m.bytes, 'test-format');
      assert.throws(
        () => m.read(r),
        (e: unknown) => e instanceof ParseError && e.format === 'test-format',
      );
    });
  }

  it('rejects bit counts outside 0..32 as a programming error', () => {
    assert.throws(() => new BitReader(new Uint8Array(8)).readBits(33), RangeError);
  });

  it('byteAlign moves to the next byte boundary', () => {
    const r = new BitReader(Uint8Array.of(0xff, 0x80));
    r.readBit();
    r.byteAlign();
    assert.equal(r.bitPosition(), 8);
    r.byteAlign();
    assert.equal(r.bitPosition(), 8);
    assert.equal(r.readBit(), 1);
  });

  it('random bytes: readUE/readSE/readBits throw only StreamgateError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), fc.array(fc.integer({ min: 0, max: 34 }), { maxLength: 12 }), (b, ops) => {
        const r = new BitReader(b);
        try {
          for (const op of ops) {
            if (op === 33) r.readUE();
            else if (op === 34) r.readSE();
            else assert.ok(r.readBits(op) < 2 ** op);
          }
        } catch (e) {
          if (!(e instanceof StreamgateError)) throw e;
        }
        assert.ok(r.bitsLeft() >= 0);
      }),
      { numRuns: 2000, interruptAfterTimeLimit: 3000 },
    );
  });
});

describe('BitWriter', () => {
  it('round trips through BitReader', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 32 }), fc.nat()), { maxLength: 20 }), (fields) => {
        const values = fields.map(([n, v]) => [n, v % 2 ** n] as const);
        const bits = values.reduce((s, [n]) => s + n, 0);
        const w = new BitWriter(Math.ceil(bits / 8));
        for (const [n, v] of values) w.writeBits(v, n);
        assert.equal(w.bitPosition(), bits);
        const r = new BitReader(w.buf);
        for (const [n, v] of values) assert.equal(r.readBits(n), v);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses to write past the computed size', () => {
    const w = new BitWriter(1);
    w.writeBits(0x7f, 7);
    assert.throws(() => w.writeBits(3, 2), RangeError);
  });
});

describe('byte helpers', () => {
  it('read and write big-endian integers', () => {
    const b = new Uint8Array(10);
    writeUint16BE(b, 0, 0xbeef);
    writeUint24BE(b, 2, 0xabcdef);
    writeUint32BE(b, 5, 0xfedcba98);
    assert.equal(toHex(b), 'beefabcdeffedcba9800');
    assert.equal(readUint16BE(b, 0), 0xbeef);
    assert.equal(readUint24BE(b, 2), 0xabcdef);
    assert.equal(readInt24BE(b, 2), 0xabcdef - 0x1000000);
    assert.equal(readUint32BE(b, 5), 0xfedcba98);
  });

  it('writeUint24BE stores negative SI24 as two’s complement', () => {
    const b = new Uint8Array(3);
    writeUint24BE(b, 0, -33);
    assert.equal(readInt24BE(b, 0), -33);
  });

  it('bounds-check reads, including negative offsets', () => {
    const b = Uint8Array.of(1, 2, 3);
    assert.throws(() => readUint16BE(b, 2, 'x'), ParseError);
    assert.throws(() => readUint24BE(b, 1), ParseError);
    assert.throws(() => readUint32BE(b, 0), ParseError);
    assert.throws(() => readUint16BE(b, -1), ParseError);
  });
});
