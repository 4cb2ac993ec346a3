/**
 * What the audio depacketizers share: the frame they return, their counters, sequence tracking and the joining of
 * fragments.
 */
import { seqDiff } from '../packet.js';

/** One audio frame out of a depacketizer. */
export interface AudioFrame {
  /** the raw frame (AAC raw_data_block, Opus packet, G.711 samples); a view unless it was reassembled; never empty */
  data: Uint8Array;
  /** RTP timestamp extended to 53 bits, ticks of the clock rate (the sample rate for AAC) */
  pts: number;
}


/** Counters shared by the audio depacketizers. Lost packets and partial AUs are routine and only counted. */
export interface AudioDepacketizerStats {
  packets: number;
  packetsLost: number;
  packetsLate: number;
  frames: number;
  /** fragmented AUs (or LATM elements) dropped because a fragment was lost or did not add up */
  framesDropped: number;
}

/** Fresh zeroed counters for a depacketizer. */
export const newStats = (): AudioDepacketizerStats => ({ packets: 0, packetsLost: 0, packetsLate: 0, frames: 0, framesDropped: 0 });

/** Tracks sequence numbers for a depacketizer: returns the gap before `seq` (0 = in order, -1 = late). */
export class SeqTracker {
  private expected = -1;

  gap(seq: number): number {
    if (this.expected < 0) {
      this.expected = (seq + 1) & 0xffff;
      return 0;
    }
    const d = seqDiff(seq, this.expected);
    if (d < 0) return -1;
    this.expected = (seq + 1) & 0xffff;
    return d;
  }
}

/**
 * Joins fragments once they are all there: the views are gathered and copied into one buffer of the known
 * total size at the end.
 */
export class Reassembly {
  parts: Uint8Array[] = [];
  size = 0;
  timestamp = 0;
  active = false;

  start(timestamp: number): void {
    this.parts = [];
    this.size = 0;
    this.timestamp = timestamp;
    this.active = true;
  }

  add(part: Uint8Array): void {
    this.parts.push(part);
    this.size += part.length;
  }

  join(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    this.reset();
    return out;
  }

  reset(): void {
    this.parts = [];
    this.size = 0;
    this.active = false;
  }
}
