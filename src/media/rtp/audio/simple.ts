/**
 * One frame per packet: Opus (RFC 7587 §4.2), G.711 PCMU/PCMA (RFC 3551 §4.5.14). Both directions.
 */
import { LimitError } from '../../../errors.js';
import { checkMtu, RTP_DEFAULT_MTU, RTP_HEADER_SIZE, RtpHeaderWriter, TimestampUnwrapper, type RtpPacket, type RtpStreamInit } from '../packet.js';
import { newStats, SeqTracker, type AudioFrame } from './common.js';

/** Depacketizer for payload formats where each packet's payload is exactly one frame. */
export class SimpleAudioDepacketizer {
  /** counters for metrics */
  readonly stats = newStats();
  private readonly seqs = new SeqTracker();
  private readonly timestamps = new TimestampUnwrapper();

  /** @returns the frame (a view of the payload), or null for late or empty packets */
  push(pkt: RtpPacket): AudioFrame | null {
    this.stats.packets++;
    const gap = this.seqs.gap(pkt.sequenceNumber);
    if (gap < 0) {
      this.stats.packetsLate++;
      return null;
    }
    this.stats.packetsLost += gap;
    if (pkt.payload.length === 0) return null;
    this.stats.frames++;
    return { data: pkt.payload, pts: this.timestamps.unwrap(pkt.timestamp) };
  }
}

/** Options of the one-frame packetizer. */
export interface SimpleAudioPacketizerInit extends RtpStreamInit {
  /** largest RTP packet in bytes, header included; 1200..1450, default 1200 */
  mtu?: number;
}

/** Packetizer for payload formats where each packet carries exactly one frame (marker bit clear). */
export class SimpleAudioPacketizer {
  readonly mtu: number;
  private readonly header: RtpHeaderWriter;

  constructor(init: SimpleAudioPacketizerInit) {
    this.mtu = checkMtu(init.mtu ?? RTP_DEFAULT_MTU);
    this.header = new RtpHeaderWriter(init);
  }

  /** The RTP stream state (SSRC, next sequence number, timestamp base). */
  get stream(): RtpHeaderWriter {
    return this.header;
  }

  /**
   * One packet holding `frame`, timestamped `pts` ticks after the initial timestamp.
   * @throws LimitError when the frame does not fit the MTU (an Opus packet is at most 1275 bytes, RFC 6716 §3.2.1,
   *   so only unusually large G.711 frames hit this).
   */
  packetize(frame: Uint8Array, pts: number): Uint8Array {
    const room = this.mtu - RTP_HEADER_SIZE;
    if (frame.length > room) throw new LimitError('audio frame bytes', room, frame.length);
    const pkt = this.header.allocate(frame.length, false, this.header.rtpTimestamp(pts));
    pkt.set(frame, RTP_HEADER_SIZE);
    return pkt;
  }
}
