/**
 * Generic NACK FCI helpers (RFC 4585 §6.2.1): sequence numbers to and from PID/BLP pairs.
 */
import { seqDiff } from '../packet.js';
import type { RtcpNack } from './types.js';

/** The sequence numbers a generic NACK asks for, in FCI order (RFC 4585 §6.2.1). */
export function nackSequenceNumbers(nack: Pick<RtcpNack, 'pairs'>): number[] {
  const out: number[] = [];
  for (const { pid, blp } of nack.pairs) {
    out.push(pid);
    for (let bit = 0; bit < 16; bit++) if (blp & (1 << bit)) out.push((pid + bit + 1) & 0xffff);
  }
  return out;
}

/** Packs sequence numbers (any order, wrap-aware when sorted by the caller) into NACK FCI pairs. */
export function nackPairs(seqs: readonly number[]): RtcpNack['pairs'] {
  const pairs: RtcpNack['pairs'] = [];
  let cur: { pid: number; blp: number } | undefined;
  for (const seq of seqs) {
    const d = cur ? seqDiff(seq, cur.pid) : -1;
    if (cur && d >= 1 && d <= 16) {
      cur.blp |= 1 << (d - 1);
    } else if (!cur || d !== 0) {
      cur = { pid: seq & 0xffff, blp: 0 };
      pairs.push(cur);
    }
  }
  return pairs;
}
