/** Feeding stream parsers in pieces, for split-point properties (STYLE.md §5). */

/** A stream parser: bytes in, whatever it completed out. */
export interface StreamParser<T> {
  push(chunk: Uint8Array): T[];
}

/**
 * Feeds `buf` to `parser` cut at the offsets `cuts` (any order, duplicates allowed) and collects everything it
 * returns; with no cuts, one write. The result must not depend on the cuts.
 */
export function pushInPieces<T>(parser: StreamParser<T>, buf: Uint8Array, cuts: readonly number[] = []): T[] {
  const out: T[] = [];
  let prev = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    out.push(...parser.push(buf.subarray(prev, c)));
    prev = c;
  }
  out.push(...parser.push(buf.subarray(prev)));
  return out;
}
