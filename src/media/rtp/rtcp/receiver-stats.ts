/**
 * Reception statistics of one incoming RTP source (RFC 3550 §6.4.1, A.1, A.3, A.8): loss, jitter, last SR.
 * Pure: callers pass the clock in.
 */
import { SeqUnwrapper } from '../packet.js';
import { ntpMiddle32, ntpToUnixMs } from './ntp.js';
import type { RtcpReportBlock, RtcpSenderReport } from './types.js';

/** RFC 3550 A.1: a jump of more than this many sequence numbers ahead is treated as a restart candidate. */
export const RTP_MAX_DROPOUT = 3000;
/** RFC 3550 A.1: a packet this far behind the highest is a late one, further back a restart candidate. */
export const RTP_MAX_MISORDER = 100;

/** What a receiver knows about one incoming source, for the API and for sync. */
export interface ReceptionSummary {
  packetsReceived: number;
  /** cumulative lost (expected - received); negative with duplicates */
  packetsLost: number;
  /** interarrival jitter in milliseconds */
  jitterMs: number;
  /** latest SR's NTP time in Unix ms and its RTP timestamp, for audio/video alignment */
  lastSr?: { unixMs: number; rtpTimestamp: number; receivedAtMs: number };
}

/**
 * Reception statistics for one incoming RTP source (RFC 3550 §6.4.1, A.1, A.3, A.8): feed every RTP packet and
 * every SR of that source; ask for a report block when an RR/SR is due.
 *
 * Differences from A.1: no probation (the source is known from SDP/SETUP, so its first packet counts).
 * Times are milliseconds of one clock the caller chooses (e.g. `Date.now()`); the clock must not jump.
 */
export class RtcpReceiverStats {
  private readonly seqs = new SeqUnwrapper();
  private baseSeq = -1;
  private maxExt = -1;
  private badSeq = -1;
  private received = 0;
  private expectedPrior = 0;
  private receivedPrior = 0;
  private lastTransit = Number.NaN;
  private jitterTicks = 0;
  private lastSrMiddle = 0;
  private lastSrAtMs = 0;
  private sr: ReceptionSummary['lastSr'];

  /**
   * @param ssrc the source's SSRC, written into report blocks
   * @param clockRate RTP clock of the source's payload format (for jitter)
   */
  constructor(
    readonly ssrc: number,
    readonly clockRate: number,
  ) {}

  /**
   * Records one RTP packet of this source.
   * @returns false when the packet was not counted (a big jump ahead waiting for confirmation, RFC 3550 A.1).
   */
  onRtp(sequenceNumber: number, rtpTimestamp: number, arrivalMs: number): boolean {
    if (this.baseSeq < 0) {
      this.restart(sequenceNumber);
    } else {
      const highest = this.maxExt & 0xffff;
      const udelta = (sequenceNumber - highest) & 0xffff;
      if (udelta >= RTP_MAX_DROPOUT && udelta <= 0x10000 - RTP_MAX_MISORDER) {
        // a big jump: the sender restarted, or a stray packet; restart only if the next one follows it (A.1)
        if (sequenceNumber !== this.badSeq) {
          this.badSeq = (sequenceNumber + 1) & 0xffff;
          return false;
        }
        this.restart(sequenceNumber);
      } else {
        const ext = this.seqs.unwrap(sequenceNumber);
        if (ext > this.maxExt) this.maxExt = ext;
      }
    }
    this.received++;

    // A.8: transit time difference in timestamp units, smoothed with gain 1/16
    const arrival = (arrivalMs * this.clockRate) / 1000;
    const transit = arrival - rtpTimestamp;
    if (!Number.isNaN(this.lastTransit)) {
      let d = transit - this.lastTransit;
      // timestamps wrap at 2^32: take the shortest distance
      if (d > 0x8000_0000) d -= 0x1_0000_0000;
      else if (d < -0x8000_0000) d += 0x1_0000_0000;
      this.jitterTicks += (Math.abs(d) - this.jitterTicks) / 16;
    }
    this.lastTransit = transit;
    return true;
  }

  private restart(seq: number): void {
    this.seqs.reset(seq);
    this.baseSeq = seq;
    this.maxExt = seq;
    this.badSeq = -1;
    this.received = 0;
    this.expectedPrior = 0;
    this.receivedPrior = 0;
  }

  /** Records an SR of this source (for LSR/DLSR and for NTP↔RTP alignment). */
  onSenderReport(sr: Pick<RtcpSenderReport, 'ntpSec' | 'ntpFrac' | 'rtpTimestamp'>, arrivalMs: number): void {
    this.lastSrMiddle = ntpMiddle32(sr.ntpSec, sr.ntpFrac);
    this.lastSrAtMs = arrivalMs;
    this.sr = { unixMs: ntpToUnixMs(sr.ntpSec, sr.ntpFrac), rtpTimestamp: sr.rtpTimestamp, receivedAtMs: arrivalMs };
  }

  private expected(): number {
    return this.maxExt - this.baseSeq + 1;
  }

  /**
   * A report block for this source, and the start of a new reporting interval (fraction lost is measured
   * between two calls, RFC 3550 A.3).
   * @returns null before the first RTP packet.
   */
  reportBlock(nowMs: number): RtcpReportBlock | null {
    if (this.baseSeq < 0) return null;
    const expected = this.expected();
    const expectedInterval = expected - this.expectedPrior;
    const receivedInterval = this.received - this.receivedPrior;
    const lostInterval = expectedInterval - receivedInterval;
    this.expectedPrior = expected;
    this.receivedPrior = this.received;
    const fractionLost = expectedInterval <= 0 || lostInterval <= 0 ? 0 : Math.min(255, Math.floor((lostInterval * 256) / expectedInterval));
    return {
      ssrc: this.ssrc,
      fractionLost,
      cumulativeLost: Math.max(-0x800000, Math.min(0x7fffff, expected - this.received)),
      highestSequence: this.maxExt >>> 0,
      jitter: Math.floor(this.jitterTicks) >>> 0,
      lastSr: this.lastSrMiddle,
      delaySinceLastSr: this.lastSrMiddle === 0 ? 0 : Math.max(0, Math.round(((nowMs - this.lastSrAtMs) * 65536) / 1000)) >>> 0,
    };
  }

  /** Current totals, for the API. */
  summary(): ReceptionSummary {
    const s: ReceptionSummary = {
      packetsReceived: this.received,
      packetsLost: this.baseSeq < 0 ? 0 : this.expected() - this.received,
      jitterMs: (this.jitterTicks * 1000) / this.clockRate,
    };
    if (this.sr) s.lastSr = this.sr;
    return s;
  }
}
