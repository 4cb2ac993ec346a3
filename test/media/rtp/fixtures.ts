/**
 * Fixture loading for the RTP tests: captures in test/fixtures/rtp/*.bin are records of
 * [uint16 big-endian length][packet], written by test/fixtures/rtp/capture.mjs.
 */
import { readFileSync } from 'node:fs';

const FIXTURES = new URL('../../../../test/fixtures/', import.meta.url);

/** Raw bytes of `test/fixtures/<path>`. */
export function loadFixture(path: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(path, FIXTURES)));
}

/** Text of `test/fixtures/<path>`. */
export function loadText(path: string): string {
  return readFileSync(new URL(path, FIXTURES), 'utf8');
}

/** Packets of a capture file `test/fixtures/rtp/<name>`; each a view into the file's bytes. */
export function loadPackets(name: string): Uint8Array[] {
  const buf = loadFixture(`rtp/${name}`);
  const out: Uint8Array[] = [];
  let o = 0;
  while (o + 2 <= buf.length) {
    const len = ((buf[o] as number) << 8) | (buf[o + 1] as number);
    out.push(buf.subarray(o + 2, o + 2 + len));
    o += 2 + len;
  }
  return out;
}

/** Hex bytes; whitespace and `// comments` are ignored. */
export function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\/\/.*$/gm, '').replace(/\s+/g, ''), 'hex'));
}

/** Copies into a plain Uint8Array (Buffer and Uint8Array are not deep-equal). */
export function bytes(b: Uint8Array): Uint8Array {
  return Uint8Array.from(b);
}
