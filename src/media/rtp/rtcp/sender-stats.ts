/**
 * Sender statistics of one outgoing RTP source (RFC 3550 §6.4.1): SR contents and the digest of the receivers'
 * report blocks, round trip included. Pure: callers pass the clock in.
 */
import { ntpFromUnixMs, ntpMiddle32 } from './ntp.js';
import type { RtcpReportBlock, RtcpSenderReport } from './types.js';

/** What a sender learns from the receiver reports about its stream, for the API. */
export interface RemoteReception {
  /** fraction lost in the last interval, 0..1 */
  fractionLost: number;
  packetsLost: number;
  jitterMs: number;
  /** round trip from LSR/DLSR (RFC 3550 §6.4.1), undefined until a report echoes one of our SRs */
  rttMs?: number;
  highestSequence: number;
}

/**
 * Sender side of one outgoing RTP source: counts packets/octets, produces SRs whose RTP timestamp is the
 * current NTP instant mapped onto the stream's RTP clock (extrapolated from the last packet sent), and digests
 * the RRs readers send about it.
 *
 * `nowMs` arguments are Unix milliseconds (they become the NTP timestamp); pass `Date.now()` or a fake clock.
 */
export class RtcpSenderStats {
  private packets = 0;
  private octets = 0;
  private lastRtpTimestamp = 0;
  private lastSentAtMs = Number.NaN;
  private remote: RemoteReception | undefined;

  /**
   * @param ssrc our SSRC
   * @param clockRate RTP clock of the payload format
   */
  constructor(
    readonly ssrc: number,
    readonly clockRate: number,
  ) {}

  /**
   * Records RTP packets sent: their (last) timestamp and payload size (octet count excludes headers, §6.4.1).
   * @param count packets of one frame sent together (same timestamp), 1 by default
   */
  onRtpSent(rtpTimestamp: number, payloadBytes: number, nowMs: number, count = 1): void {
    this.packets = (this.packets + count) >>> 0;
    this.octets = (this.octets + payloadBytes) >>> 0;
    this.lastRtpTimestamp = rtpTimestamp >>> 0;
    this.lastSentAtMs = nowMs;
  }

  /** Packets sent so far (wraps at 2^32 like the SR field). */
  get packetCount(): number {
    return this.packets;
  }

  /**
   * A sender report for `nowMs`, or null before the first packet (RFC 3550 §6.4: a participant that has not
   * sent sends RR instead).
   */
  senderReport(nowMs: number, reports: RtcpReportBlock[] = []): RtcpSenderReport | null {
    if (Number.isNaN(this.lastSentAtMs)) return null;
    const { ntpSec, ntpFrac } = ntpFromUnixMs(nowMs);
    const elapsedTicks = Math.round(((nowMs - this.lastSentAtMs) * this.clockRate) / 1000);
    return {
      type: 'sr',
      ssrc: this.ssrc,
      ntpSec,
      ntpFrac,
      rtpTimestamp: (this.lastRtpTimestamp + elapsedTicks) >>> 0,
      packetCount: this.packets,
      octetCount: this.octets,
      reports,
    };
  }

  /** Digests a report block about our SSRC that arrived at `nowMs`; computes the round trip when possible. */
  onReportBlock(block: RtcpReportBlock, nowMs: number): RemoteReception {
    const r: RemoteReception = {
      fractionLost: block.fractionLost / 256,
      packetsLost: block.cumulativeLost,
      jitterMs: (block.jitter * 1000) / this.clockRate,
      highestSequence: block.highestSequence,
    };
    if (block.lastSr !== 0) {
      const { ntpSec, ntpFrac } = ntpFromUnixMs(nowMs);
      // RFC 3550 §6.4.1: RTT = A - LSR - DLSR, all in 1/65536 s, modulo 2^32
      const rtt = (ntpMiddle32(ntpSec, ntpFrac) - block.lastSr - block.delaySinceLastSr) >>> 0;
      // a value over half the range means clocks or the echo are off: leave RTT unknown
      if (rtt < 0x8000_0000) r.rttMs = (rtt * 1000) / 65536;
    } else if (this.remote?.rttMs !== undefined) {
      r.rttMs = this.remote.rttMs;
    }
    this.remote = r;
    return r;
  }

  /** The latest digest of the readers' reports, if any came. */
  get remoteReception(): RemoteReception | undefined {
    return this.remote;
  }
}
