/**
 * Bit- and byte-level readers shared by the codec parsers (H.264 SPS, AAC configs, FLV tags).
 * Every read is bounds-checked and throws `ParseError` instead of yielding `undefined`/`NaN`
 * (contrast werift's unchecked `rawPacket[offset]`; after mediacommon `pkg/bits`).
 */
import { ParseError } from '../errors.js';

/**
 * Longest exp-Golomb prefix we accept: 31 leading zeros encode values up to 2^32 - 2, which is the
 * widest `ue(v)` H.264 uses (ITU-T H.264 9.1: "values of ue(v) shall be in the range 0 to 2^32 - 2").
 */
export const MAX_EXP_GOLOMB_LEADING_ZEROS = 31;

/**
 * MSB-first bit reader over a byte array (the bit order of H.264 RBSPs, ADTS headers and
 * AudioSpecificConfig). It never copies the array.
 */
export class BitReader {
  private pos = 0; // bit position from the start of `buf`

  /**
   * @param buf bytes to read; kept by reference, not copied.
   * @param format name used in `ParseError`s, e.g. `'h264-sps'`.
   */
  constructor(
    private readonly buf: Uint8Array,
    readonly format = 'bits',
  ) {}

  /** Bits not yet read. */
  bitsLeft(): number {
    return this.buf.length * 8 - this.pos;
  }

  /** Bits read so far. */
  bitPosition(): number {
    return this.pos;
  }

  /** Throws a `ParseError` unless `n` more bits can be read. */
  ensure(n: number): void {
    if (n > this.bitsLeft()) {
      throw new ParseError(this.format, `need ${n} bits, ${this.bitsLeft()} left`, this.pos >>> 3);
    }
  }

  /** Reads `n` (0..32) bits as an unsigned integer. */
  readBits(n: number): number {
    if (!Number.isInteger(n) || n < 0 || n > 32) {
      throw new RangeError(`readBits(${n}): n must be an integer in 0..32`);
    }
    this.ensure(n);
    let v = 0;
    while (n > 0) {
      const byte = this.buf[this.pos >>> 3] as number;
      const bitInByte = this.pos & 7;
      const take = Math.min(8 - bitInByte, n);
      const bits = (byte >>> (8 - bitInByte - take)) & ((1 << take) - 1);
      // multiply instead of << so 32-bit values stay positive
      v = v * (1 << take) + bits;
      this.pos += take;
      n -= take;
    }
    return v;
  }

  /** Reads one bit (0 or 1). */
  readBit(): number {
    this.ensure(1);
    const byte = this.buf[this.pos >>> 3] as number;
    const bit = (byte >>> (7 - (this.pos & 7))) & 1;
    this.pos++;
    return bit;
  }

  /** Reads one bit as a boolean flag (`u(1)` in the specs). */
  readFlag(): boolean {
    return this.readBit() === 1;
  }

  /** Reads an unsigned exp-Golomb code, `ue(v)` (ITU-T H.264 9.1). */
  readUE(): number {
    let zeros = 0;
    while (this.readBit() === 0) {
      zeros++;
      if (zeros > MAX_EXP_GOLOMB_LEADING_ZEROS) {
        throw new ParseError(this.format, `exp-Golomb code with over ${MAX_EXP_GOLOMB_LEADING_ZEROS} leading zeros`, this.pos >>> 3);
      }
    }
    return 2 ** zeros - 1 + this.readBits(zeros);
  }

  /** Reads a signed exp-Golomb code, `se(v)` (ITU-T H.264 9.1.1): 1, -1, 2, -2, ... */
  readSE(): number {
    const k = this.readUE();
    if (k % 2 === 1) return (k + 1) / 2;
    return k === 0 ? 0 : -(k / 2); // not -0, which deepEqual tells apart from 0
  }

  /** Skips `n` bits. */
  skip(n: number): void {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`skip(${n}): n must be a non-negative integer`);
    this.ensure(n);
    this.pos += n;
  }

  /** Skips to the next byte boundary (no-op when aligned). */
  byteAlign(): void {
    this.pos = (this.pos + 7) & ~7;
  }
}

/**
 * MSB-first bit writer into a buffer of a size computed beforehand (serializers size first, then
 * allocate once). Writing past the end throws a RangeError: that is a bug in the size computation.
 */
export class BitWriter {
  private pos = 0;
  /** The output; `bytes` long, zero-filled. */
  readonly buf: Uint8Array;

  constructor(bytes: number) {
    this.buf = new Uint8Array(bytes);
  }

  /** Writes the low `n` (0..32) bits of `value`, most significant first. */
  writeBits(value: number, n: number): void {
    if (this.pos + n > this.buf.length * 8) throw new RangeError(`BitWriter overflow writing ${n} bits`);
    for (let i = n - 1; i >= 0; i--) {
      // Math.floor instead of >>> so bit 31 of values up to 2^32-1 is read right
      const bit = Math.floor(value / 2 ** i) & 1;
      if (bit) this.buf[this.pos >>> 3] = (this.buf[this.pos >>> 3] as number) | (0x80 >>> (this.pos & 7));
      this.pos++;
    }
  }

  /** Bits written so far. */
  bitPosition(): number {
    return this.pos;
  }
}

function checkRange(buf: Uint8Array, offset: number, n: number, format: string): void {
  if (offset < 0 || offset + n > buf.length) {
    throw new ParseError(format, `need ${n} bytes at ${offset}, have ${buf.length}`, offset);
  }
}

/** Reads a big-endian uint16 at `offset`; throws `ParseError` when out of range. */
export function readUint16BE(buf: Uint8Array, offset: number, format = 'bytes'): number {
  checkRange(buf, offset, 2, format);
  return ((buf[offset] as number) << 8) | (buf[offset + 1] as number);
}

/** Reads a big-endian uint24 at `offset` (FLV/RTMP sizes and timestamps). */
export function readUint24BE(buf: Uint8Array, offset: number, format = 'bytes'): number {
  checkRange(buf, offset, 3, format);
  return ((buf[offset] as number) << 16) | ((buf[offset + 1] as number) << 8) | (buf[offset + 2] as number);
}

/** Reads a big-endian signed int24 at `offset` (FLV composition time). */
export function readInt24BE(buf: Uint8Array, offset: number, format = 'bytes'): number {
  const v = readUint24BE(buf, offset, format);
  return v & 0x800000 ? v - 0x1000000 : v;
}

/** Reads a big-endian uint32 at `offset`. */
export function readUint32BE(buf: Uint8Array, offset: number, format = 'bytes'): number {
  checkRange(buf, offset, 4, format);
  return (
    (buf[offset] as number) * 0x1000000 +
    (((buf[offset + 1] as number) << 16) | ((buf[offset + 2] as number) << 8) | (buf[offset + 3] as number))
  );
}

/** Writes `value` as a big-endian uint16 at `offset`. */
export function writeUint16BE(buf: Uint8Array, offset: number, value: number): void {
  buf[offset] = (value >>> 8) & 0xff;
  buf[offset + 1] = value & 0xff;
}

/** Writes the low 24 bits of `value` big-endian at `offset` (negative int24 values wrap as two's complement). */
export function writeUint24BE(buf: Uint8Array, offset: number, value: number): void {
  buf[offset] = (value >>> 16) & 0xff;
  buf[offset + 1] = (value >>> 8) & 0xff;
  buf[offset + 2] = value & 0xff;
}

/** Writes `value` as a big-endian uint32 at `offset`. */
export function writeUint32BE(buf: Uint8Array, offset: number, value: number): void {
  buf[offset] = (value >>> 24) & 0xff;
  buf[offset + 1] = (value >>> 16) & 0xff;
  buf[offset + 2] = (value >>> 8) & 0xff;
  buf[offset + 3] = value & 0xff;
}

/** Lower-case hex of `buf`, for logs and codec strings. */
export function toHex(buf: Uint8Array): string {
  let s = '';
  for (const b of buf) s += b.toString(16).padStart(2, '0');
  return s;
}
