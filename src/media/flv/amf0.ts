/**
 * AMF0 (Action Message Format 0): the value encoding of RTMP command/data messages and FLV script tags.
 * Spec: Adobe "Action Message Format -- AMF 0" (2007). The AMF3 switch marker (0x11) is followed by one
 * AMF3 value (Adobe "AMF 3 Specification", 2013), which {@link decodeAmf0} decodes for the common types.
 *
 * Values are plain JavaScript values (see {@link Amf0Value}). Decoded objects use a null prototype so that a
 * key such as `__proto__` from the network is an ordinary property. Encoders size first and allocate once.
 */
import { LimitError, ParseError, UnsupportedError } from '../../errors.js';

/**
 * Deepest nesting of objects/arrays accepted while decoding or encoding. Real RTMP commands nest 2 levels
 * (command object → nothing deeper); onMetaData from Wowza/flvtool2 nests 3–4 (keyframes → times array).
 * 32 leaves ample room and bounds recursion on hostile input.
 */
export const AMF0_MAX_DEPTH = 32;
/**
 * Longest string (bytes of UTF-8) accepted from a long string (0x0C) or XML document (0x0F). Short strings
 * are capped at 65535 by their 16-bit length. 1 MiB covers XMP packets some encoders put in onMetaData
 * (a few KiB) with a wide margin while a 4-byte length field could claim 4 GiB.
 */
export const AMF0_MAX_STRING_BYTES = 1024 * 1024;
/**
 * Most values (of any kind, at any depth) decoded from one buffer. A flvtool2 onMetaData `keyframes` index
 * for a 2-hour file with a keyframe every 2 s holds ~7200 numbers; 65536 leaves margin and bounds the memory
 * a 1-byte-per-value input (nulls) can turn into JS slots.
 */
export const AMF0_MAX_ELEMENTS = 65536;

/** AMF0 type markers (spec §2.1). */
export const Amf0Marker = {
  number: 0x00,
  boolean: 0x01,
  string: 0x02,
  object: 0x03,
  movieclip: 0x04,
  null: 0x05,
  undefined: 0x06,
  reference: 0x07,
  ecmaArray: 0x08,
  objectEnd: 0x09,
  strictArray: 0x0a,
  date: 0x0b,
  longString: 0x0c,
  unsupported: 0x0d,
  recordset: 0x0e,
  xmlDocument: 0x0f,
  typedObject: 0x10,
  avmplus: 0x11,
} as const;

/** Symbol set to `true` on objects that were (or should be) encoded as an ECMA array (0x08). */
export const AMF0_ECMA_ARRAY: unique symbol = Symbol('amf0.ecmaArray');
/** Symbol holding the class name of a typed object (0x10) or of an AMF3 object with a class name. */
export const AMF0_CLASS_NAME: unique symbol = Symbol('amf0.className');

/**
 * An anonymous object (0x03), an ECMA array (0x08, marked with {@link AMF0_ECMA_ARRAY}) or a typed object
 * (0x10, marked with {@link AMF0_CLASS_NAME}). Property order is preserved (except integer-like keys, which
 * JavaScript orders first).
 */
export interface Amf0Object {
  [key: string]: Amf0Value;
  [AMF0_ECMA_ARRAY]?: true;
  [AMF0_CLASS_NAME]?: string;
}

/**
 * Every AMF0 value: number, boolean, string (short or long, chosen by length on encode), null, undefined,
 * Date (time zone field ignored, as the spec says), strict array (0x0A), or {@link Amf0Object}.
 */
export type Amf0Value = number | boolean | string | null | undefined | Date | Amf0Value[] | Amf0Object;

/** A decoded value and the offset just past it. */
export interface Amf0Decoded {
  value: Amf0Value;
  offset: number;
}

/** Creates an object to encode as an ECMA array (0x08), e.g. for onMetaData. */
export function amf0EcmaArray(props: Record<string, Amf0Value>): Amf0Object {
  const o = amf0Object(props);
  o[AMF0_ECMA_ARRAY] = true;
  return o;
}

/** Creates a null-prototype {@link Amf0Object} holding a copy of `props`. */
export function amf0Object(props: Record<string, Amf0Value> = {}): Amf0Object {
  const o = Object.create(null) as Amf0Object;
  for (const k of Object.keys(props)) o[k] = props[k];
  return o;
}

/** True for objects, ECMA arrays and typed objects (not arrays, dates or null). */
export function isAmf0Object(v: Amf0Value): v is Amf0Object {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

const FORMAT = 'amf0';
const utf8 = new TextDecoder('utf-8');
const utf8Enc = new TextEncoder();

/** Decoding state shared by one decode call: element budget and the reference tables. */
class Decoder {
  elements = 0;
  /** AMF0 complex objects in order of appearance, for the reference marker (0x07). */
  readonly refs: Amf0Value[] = [];
  private readonly view: DataView;
  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  need(offset: number, n: number): void {
    if (offset + n > this.buf.length) {
      throw new ParseError(FORMAT, `need ${n} bytes, ${this.buf.length - offset} left`, offset);
    }
  }

  count(): void {
    if (++this.elements > AMF0_MAX_ELEMENTS) throw new LimitError('amf0 element count', AMF0_MAX_ELEMENTS, this.elements);
  }

  u8(o: number): number {
    this.need(o, 1);
    return this.buf[o] as number;
  }
  u16(o: number): number {
    this.need(o, 2);
    return this.view.getUint16(o);
  }
  u32(o: number): number {
    this.need(o, 4);
    return this.view.getUint32(o);
  }
  f64(o: number): number {
    this.need(o, 8);
    return this.view.getFloat64(o);
  }
  str(o: number, len: number): string {
    if (len > AMF0_MAX_STRING_BYTES) throw new LimitError('amf0 string bytes', AMF0_MAX_STRING_BYTES, len);
    this.need(o, len);
    return utf8.decode(this.buf.subarray(o, o + len));
  }

  value(o: number, depth: number): Amf0Decoded {
    this.count();
    const marker = this.u8(o);
    o++;
    switch (marker) {
      case Amf0Marker.number:
        return { value: this.f64(o), offset: o + 8 };
      case Amf0Marker.boolean:
        return { value: this.u8(o) !== 0, offset: o + 1 };
      case Amf0Marker.string: {
        const len = this.u16(o);
        return { value: this.str(o + 2, len), offset: o + 2 + len };
      }
      case Amf0Marker.longString:
      case Amf0Marker.xmlDocument: {
        const len = this.u32(o);
        return { value: this.str(o + 4, len), offset: o + 4 + len };
      }
      case Amf0Marker.null:
        return { value: null, offset: o };
      case Amf0Marker.undefined:
      case Amf0Marker.unsupported:
        return { value: undefined, offset: o };
      case Amf0Marker.date: {
        // 8-byte ms since epoch, then a 2-byte time zone that the spec says to ignore (should be 0)
        const ms = this.f64(o);
        this.need(o + 8, 2);
        return { value: new Date(ms), offset: o + 10 };
      }
      case Amf0Marker.object:
      case Amf0Marker.ecmaArray:
      case Amf0Marker.typedObject:
        return this.object(marker, o, depth);
      case Amf0Marker.strictArray: {
        this.depth(depth);
        const n = this.u32(o);
        o += 4;
        // each element takes at least one byte: a count beyond the remaining bytes is a lie
        if (n > this.buf.length - o) throw new ParseError(FORMAT, `strict array claims ${n} elements`, o - 4);
        const arr: Amf0Value[] = [];
        this.refs.push(arr);
        for (let i = 0; i < n; i++) {
          const d = this.value(o, depth + 1);
          arr.push(d.value);
          o = d.offset;
        }
        return { value: arr, offset: o };
      }
      case Amf0Marker.reference: {
        const idx = this.u16(o);
        if (idx >= this.refs.length) throw new ParseError(FORMAT, `reference ${idx} to an unknown object`, o);
        return { value: this.refs[idx], offset: o + 2 };
      }
      case Amf0Marker.avmplus:
        // each switch to AMF3 starts fresh AMF3 reference tables
        return new Amf3Decoder(this).value(o, depth);
      case Amf0Marker.objectEnd:
        throw new ParseError(FORMAT, 'object end marker outside an object', o - 1);
      default:
        // 0x04 movieclip and 0x0E recordset are reserved; anything above 0x11 is not AMF0
        throw new ParseError(FORMAT, `unknown or reserved marker 0x${marker.toString(16)}`, o - 1);
    }
  }

  depth(depth: number): void {
    if (depth >= AMF0_MAX_DEPTH) throw new LimitError('amf0 nesting depth', AMF0_MAX_DEPTH, depth + 1);
  }

  private object(marker: number, o: number, depth: number): Amf0Decoded {
    this.depth(depth);
    const obj = Object.create(null) as Amf0Object;
    this.refs.push(obj);
    if (marker === Amf0Marker.typedObject) {
      const len = this.u16(o);
      obj[AMF0_CLASS_NAME] = this.str(o + 2, len);
      o += 2 + len;
    } else if (marker === Amf0Marker.ecmaArray) {
      // the count is advisory (encoders get it wrong); the object-end marker terminates the array
      this.u32(o);
      o += 4;
      obj[AMF0_ECMA_ARRAY] = true;
    }
    for (;;) {
      const klen = this.u16(o);
      if (klen === 0 && this.u8(o + 2) === Amf0Marker.objectEnd) return { value: obj, offset: o + 3 };
      const key = this.str(o + 2, klen);
      o += 2 + klen;
      const d = this.value(o, depth + 1);
      obj[key] = d.value;
      o = d.offset;
    }
  }
}

/** Decoder for the AMF3 value that follows an AMF0 avmplus marker (0x11). */
class Amf3Decoder {
  private readonly strings: string[] = [];
  private readonly objects: Amf0Value[] = [];
  private readonly traits: { className: string; dynamic: boolean; sealed: string[] }[] = [];
  constructor(private readonly d: Decoder) {}

  /** U29: 1–4 bytes, 7 bits each for the first three, 8 bits in the fourth. */
  private u29(o: number): { v: number; offset: number } {
    let v = 0;
    for (let i = 0; i < 3; i++) {
      const b = this.d.u8(o++);
      v = (v << 7) | (b & 0x7f);
      if ((b & 0x80) === 0) return { v, offset: o };
    }
    const b = this.d.u8(o++);
    return { v: ((v << 8) | b) >>> 0, offset: o };
  }

  private string(o: number): { v: string; offset: number } {
    const h = this.u29(o);
    if ((h.v & 1) === 0) {
      const s = this.strings[h.v >>> 1];
      if (s === undefined) throw new ParseError('amf3', `string reference ${h.v >>> 1} unknown`, o);
      return { v: s, offset: h.offset };
    }
    const len = h.v >>> 1;
    const s = this.d.str(h.offset, len);
    if (len > 0) this.strings.push(s); // the empty string is never added to the table (spec §1.3.2)
    return { v: s, offset: h.offset + len };
  }

  value(o: number, depth: number): Amf0Decoded {
    this.d.count();
    const marker = this.d.u8(o);
    o++;
    switch (marker) {
      case 0x00: // undefined
        return { value: undefined, offset: o };
      case 0x01: // null
        return { value: null, offset: o };
      case 0x02:
        return { value: false, offset: o };
      case 0x03:
        return { value: true, offset: o };
      case 0x04: {
        // 29-bit two's complement integer
        const h = this.u29(o);
        return { value: h.v & 0x10000000 ? h.v - 0x20000000 : h.v, offset: h.offset };
      }
      case 0x05:
        return { value: this.d.f64(o), offset: o + 8 };
      case 0x06:
      case 0x07: // XMLDocument
      case 0x0b: {
        // XML: like a string but the reference lives in the object table
        if (marker === 0x06) {
          const s = this.string(o);
          return { value: s.v, offset: s.offset };
        }
        return this.refOr(o, (len, at) => {
          const s = this.d.str(at, len);
          this.objects.push(s);
          return { value: s, offset: at + len };
        });
      }
      case 0x08:
        return this.refOr(o, (_n, at) => {
          const date = new Date(this.d.f64(at));
          this.objects.push(date);
          return { value: date, offset: at + 8 };
        });
      case 0x09:
        return this.refOr(o, (dense, at) => this.array(dense, at, depth));
      case 0x0a:
        return this.object(o, depth);
      default:
        // ByteArray, vectors and Dictionary never appear in RTMP commands from publishers or players
        throw new UnsupportedError(`amf3 marker 0x${marker.toString(16)} is not supported`);
    }
  }

  /** Reads a U29 that is either an object reference (low bit 0) or an inline header (value >> 1). */
  private refOr(o: number, inline: (n: number, at: number) => Amf0Decoded): Amf0Decoded {
    const h = this.u29(o);
    if ((h.v & 1) === 0) {
      const idx = h.v >>> 1;
      if (idx >= this.objects.length) throw new ParseError('amf3', `object reference ${idx} unknown`, o);
      return { value: this.objects[idx], offset: h.offset };
    }
    return inline(h.v >>> 1, h.offset);
  }

  private array(dense: number, o: number, depth: number): Amf0Decoded {
    this.d.depth(depth);
    if (dense > this.d.buf.length - o) throw new ParseError('amf3', `array claims ${dense} elements`, o);
    const assoc = Object.create(null) as Amf0Object;
    let hasAssoc = false;
    const arr: Amf0Value[] = [];
    this.objects.push(arr);
    for (;;) {
      const k = this.string(o);
      o = k.offset;
      if (k.v === '') break;
      const d = this.value(o, depth + 1);
      assoc[k.v] = d.value;
      hasAssoc = true;
      o = d.offset;
    }
    for (let i = 0; i < dense; i++) {
      const d = this.value(o, depth + 1);
      arr.push(d.value);
      o = d.offset;
    }
    if (!hasAssoc) return { value: arr, offset: o };
    // mixed arrays become an ECMA-array-like object: dense part under keys "0".."n-1"
    arr.forEach((v, i) => (assoc[String(i)] = v));
    assoc[AMF0_ECMA_ARRAY] = true;
    return { value: assoc, offset: o };
  }

  private object(o: number, depth: number): Amf0Decoded {
    this.d.depth(depth);
    const h = this.u29(o);
    if ((h.v & 1) === 0) {
      const idx = h.v >>> 1;
      if (idx >= this.objects.length) throw new ParseError('amf3', `object reference ${idx} unknown`, o);
      return { value: this.objects[idx], offset: h.offset };
    }
    o = h.offset;
    let t: { className: string; dynamic: boolean; sealed: string[] };
    if ((h.v & 2) === 0) {
      const tr = this.traits[h.v >>> 2];
      if (tr === undefined) throw new ParseError('amf3', `traits reference ${h.v >>> 2} unknown`, o);
      t = tr;
    } else {
      if ((h.v & 4) !== 0) throw new UnsupportedError('amf3 externalizable objects are not supported');
      const dynamic = (h.v & 8) !== 0;
      const sealedCount = h.v >>> 4;
      if (sealedCount > this.d.buf.length - o) throw new ParseError('amf3', `traits claim ${sealedCount} members`, o);
      const cn = this.string(o);
      o = cn.offset;
      const sealed: string[] = [];
      for (let i = 0; i < sealedCount; i++) {
        const s = this.string(o);
        sealed.push(s.v);
        o = s.offset;
      }
      t = { className: cn.v, dynamic, sealed };
      this.traits.push(t);
    }
    const obj = Object.create(null) as Amf0Object;
    if (t.className !== '') obj[AMF0_CLASS_NAME] = t.className;
    this.objects.push(obj);
    for (const name of t.sealed) {
      const d = this.value(o, depth + 1);
      obj[name] = d.value;
      o = d.offset;
    }
    if (t.dynamic) {
      for (;;) {
        const k = this.string(o);
        o = k.offset;
        if (k.v === '') break;
        const d = this.value(o, depth + 1);
        obj[k.v] = d.value;
        o = d.offset;
      }
    }
    return { value: obj, offset: o };
  }
}

/**
 * Decodes one AMF0 value at `offset`.
 * @throws ParseError on truncated or malformed input, LimitError past the named limits,
 *   UnsupportedError for AMF3 types RTMP peers do not send (ByteArray, vectors, externalizable objects).
 */
export function decodeAmf0(buf: Uint8Array, offset = 0): Amf0Decoded {
  return new Decoder(buf).value(offset, 0);
}

/**
 * Decodes every value in `buf` (an RTMP command or data message body: name, transaction id, objects …).
 * AMF0 references (0x07) may point to objects of earlier values in the same buffer.
 */
export function decodeAmf0All(buf: Uint8Array): Amf0Value[] {
  const d = new Decoder(buf);
  const out: Amf0Value[] = [];
  let o = 0;
  while (o < buf.length) {
    const r = d.value(o, 0);
    out.push(r.value);
    o = r.offset;
  }
  return out;
}

/** Encoding pass: computes sizes (with the UTF-8 bytes of each string cached) and checks depth/cycles. */
class Sizer {
  /** UTF-8 bytes of strings, in the order the writer will need them. */
  readonly strings: Uint8Array[] = [];

  str(s: string): number {
    const b = utf8Enc.encode(s);
    this.strings.push(b);
    return b.length;
  }

  size(v: Amf0Value, depth: number): number {
    if (depth > AMF0_MAX_DEPTH) throw new LimitError('amf0 nesting depth', AMF0_MAX_DEPTH, depth);
    if (v === null || v === undefined) return 1;
    switch (typeof v) {
      case 'number':
        return 9;
      case 'boolean':
        return 2;
      case 'string': {
        const n = this.str(v);
        return n > 0xffff ? 5 + n : 3 + n;
      }
      default:
        break;
    }
    if (v instanceof Date) return 11;
    if (Array.isArray(v)) {
      let n = 5;
      for (const e of v) n += this.size(e, depth + 1);
      return n;
    }
    let n = 1 + 3; // marker + empty key + object end
    if (v[AMF0_ECMA_ARRAY] === true) n += 4;
    else if (v[AMF0_CLASS_NAME] !== undefined) n += 2 + this.key(v[AMF0_CLASS_NAME]);
    for (const k of Object.keys(v)) {
      n += 2 + this.key(k) + this.size(v[k], depth + 1);
    }
    return n;
  }

  private key(k: string): number {
    const n = this.str(k);
    if (n > 0xffff) throw new LimitError('amf0 property name bytes', 0xffff, n);
    return n;
  }
}

class Writer {
  o = 0;
  private s = 0;
  private readonly view: DataView;
  constructor(
    readonly buf: Uint8Array,
    private readonly strings: Uint8Array[],
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private nextString(): Uint8Array {
    return this.strings[this.s++] as Uint8Array;
  }

  private rawString(b: Uint8Array): void {
    this.view.setUint16(this.o, b.length);
    this.buf.set(b, this.o + 2);
    this.o += 2 + b.length;
  }

  write(v: Amf0Value): void {
    const b = this.buf;
    if (v === null) {
      b[this.o++] = Amf0Marker.null;
      return;
    }
    if (v === undefined) {
      b[this.o++] = Amf0Marker.undefined;
      return;
    }
    if (typeof v === 'number') {
      b[this.o++] = Amf0Marker.number;
      this.view.setFloat64(this.o, v);
      this.o += 8;
      return;
    }
    if (typeof v === 'boolean') {
      b[this.o++] = Amf0Marker.boolean;
      b[this.o++] = v ? 1 : 0;
      return;
    }
    if (typeof v === 'string') {
      const s = this.nextString();
      if (s.length > 0xffff) {
        b[this.o++] = Amf0Marker.longString;
        this.view.setUint32(this.o, s.length);
        b.set(s, this.o + 4);
        this.o += 4 + s.length;
      } else {
        b[this.o++] = Amf0Marker.string;
        this.rawString(s);
      }
      return;
    }
    if (v instanceof Date) {
      b[this.o++] = Amf0Marker.date;
      this.view.setFloat64(this.o, v.getTime());
      this.view.setInt16(this.o + 8, 0);
      this.o += 10;
      return;
    }
    if (Array.isArray(v)) {
      b[this.o++] = Amf0Marker.strictArray;
      this.view.setUint32(this.o, v.length);
      this.o += 4;
      for (const e of v) this.write(e);
      return;
    }
    const keys = Object.keys(v);
    if (v[AMF0_ECMA_ARRAY] === true) {
      b[this.o++] = Amf0Marker.ecmaArray;
      this.view.setUint32(this.o, keys.length);
      this.o += 4;
    } else if (v[AMF0_CLASS_NAME] !== undefined) {
      b[this.o++] = Amf0Marker.typedObject;
      this.rawString(this.nextString());
    } else {
      b[this.o++] = Amf0Marker.object;
    }
    for (const k of keys) {
      this.rawString(this.nextString());
      this.write(v[k]);
    }
    b[this.o++] = 0;
    b[this.o++] = 0;
    b[this.o++] = Amf0Marker.objectEnd;
  }
}

/** Number of bytes {@link encodeAmf0} would produce for `values`. */
export function amf0Size(...values: Amf0Value[]): number {
  const s = new Sizer();
  let n = 0;
  for (const v of values) n += s.size(v, 0);
  return n;
}

/**
 * Encodes values one after another (a command is `encodeAmf0(name, txId, cmdObj, ...args)`), sizing first
 * and allocating once. Strings over 65535 UTF-8 bytes become long strings. Objects marked with
 * {@link AMF0_ECMA_ARRAY} become ECMA arrays, with {@link AMF0_CLASS_NAME} typed objects.
 * @throws LimitError past {@link AMF0_MAX_DEPTH} (which also catches cyclic objects)
 */
export function encodeAmf0(...values: Amf0Value[]): Uint8Array {
  const s = new Sizer();
  let n = 0;
  for (const v of values) n += s.size(v, 0);
  const w = new Writer(new Uint8Array(n), s.strings);
  for (const v of values) w.write(v);
  return w.buf;
}
