/**
 * RTCP packet types, wire constants and the parsed packet structures (RFC 3550 §6, RFC 4585 §6, RFC 5104 §4.3.1).
 */
/** RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1). */
export const RTCP_SR = 200;
/** Receiver report. */
export const RTCP_RR = 201;
/** Source description. */
export const RTCP_SDES = 202;
/** Goodbye. */
export const RTCP_BYE = 203;
/** Application-defined. */
export const RTCP_APP = 204;
/** Transport-layer feedback (RFC 4585 §6.2): FMT 1 = generic NACK. */
export const RTCP_RTPFB = 205;
/** Payload-specific feedback (RFC 4585 §6.3): FMT 1 = PLI, FMT 4 = FIR (RFC 5104). */
export const RTCP_PSFB = 206;

/** SDES item types (RFC 3550 §6.5). */
export const SDES_CNAME = 1;

/** Size of one report block (RFC 3550 §6.4.1). */
export const RTCP_REPORT_BLOCK_SIZE = 24;
/** RC is 5 bits (RFC 3550 §6.4.1), so one SR/RR carries at most 31 report blocks. */
export const RTCP_MAX_REPORT_BLOCKS = 31;
/** An SDES item's length is one octet (RFC 3550 §6.5). */
export const SDES_MAX_TEXT_BYTES = 255;

/*
 * Common header of every RTCP packet (RFC 3550 §6.4.1):
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |V=2|P|  RC/FMT |      PT       |             length            |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * `length` is the packet size in 32-bit words minus one. SR body:
 *
 * |                         SSRC of sender                        |
 * |              NTP timestamp, most significant word             |
 * |             NTP timestamp, least significant word             |
 * |                         RTP timestamp                         |
 * |                     sender's packet count                     |
 * |                      sender's octet count                     |
 * +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 * |                 SSRC_1 (SSRC of first source)                 |  report block, RC times
 * | fraction lost |       cumulative number of packets lost       |
 * |           extended highest sequence number received           |
 * |                      interarrival jitter                      |
 * |                         last SR (LSR)                         |
 * |                   delay since last SR (DLSR)                  |
 * +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 * |                  profile-specific extensions                  |
 *
 * RR is the same without the five sender-info words. Feedback (RFC 4585 §6.1) is
 * header + SSRC of packet sender + SSRC of media source + FCI.
 */

/** One reception report block (RFC 3550 §6.4.1). */
export interface RtcpReportBlock {
  /** SSRC of the source this block reports on */
  ssrc: number;
  /** lost fraction since the previous report, fixed point /256 */
  fractionLost: number;
  /** cumulative packets lost, signed 24-bit (duplicates can make it negative) */
  cumulativeLost: number;
  /** extended highest sequence number received (cycles << 16 | max seq) */
  highestSequence: number;
  /** interarrival jitter in timestamp units */
  jitter: number;
  /** middle 32 bits of the NTP timestamp of the last SR received, 0 if none */
  lastSr: number;
  /** delay since that SR, in 1/65536 s */
  delaySinceLastSr: number;
}

/** Sender report (RFC 3550 §6.4.1). */
export interface RtcpSenderReport {
  type: 'sr';
  ssrc: number;
  /** NTP timestamp, seconds since 1900 */
  ntpSec: number;
  /** NTP timestamp, fraction of a second in 1/2^32 */
  ntpFrac: number;
  /** the same instant in the RTP timestamp units of this source */
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  reports: RtcpReportBlock[];
  /** profile-specific extension words after the report blocks; a view */
  extension?: Uint8Array;
}

/** Receiver report (RFC 3550 §6.4.2). */
export interface RtcpReceiverReport {
  type: 'rr';
  ssrc: number;
  reports: RtcpReportBlock[];
  extension?: Uint8Array;
}

/** One SDES item; `text` is UTF-8 on the wire (RFC 3550 §6.5). */
export interface RtcpSdesItem {
  type: number;
  text: string;
}

/** SDES chunk: items of one source. */
export interface RtcpSdesChunk {
  ssrc: number;
  items: RtcpSdesItem[];
}

/** Source description (RFC 3550 §6.5). */
export interface RtcpSdes {
  type: 'sdes';
  chunks: RtcpSdesChunk[];
}

/** Goodbye (RFC 3550 §6.6). */
export interface RtcpBye {
  type: 'bye';
  ssrcs: number[];
  reason?: string;
}

/** Picture loss indication (RFC 4585 §6.3.1): PSFB FMT 1, no FCI. */
export interface RtcpPli {
  type: 'pli';
  senderSsrc: number;
  mediaSsrc: number;
}

/** Full intra request (RFC 5104 §4.3.1): PSFB FMT 4; media SSRC is 0, the FCI names the sources. */
export interface RtcpFir {
  type: 'fir';
  senderSsrc: number;
  mediaSsrc: number;
  entries: { ssrc: number; seqNr: number }[];
}

/** Generic NACK (RFC 4585 §6.2.1): RTPFB FMT 1; each pair names `pid` and a bitmask of the 16 following seqs. */
export interface RtcpNack {
  type: 'nack';
  senderSsrc: number;
  mediaSsrc: number;
  pairs: { pid: number; blp: number }[];
}

/** Any other packet (APP, XR, REMB, TWCC, ...), skipped but kept for round trips. */
export interface RtcpOther {
  type: 'other';
  packetType: number;
  /** the 5-bit RC/FMT/subtype field */
  count: number;
  /** the whole packet, header included; a view */
  raw: Uint8Array;
}

/** One packet of a compound RTCP packet. */
export type RtcpPacket = RtcpSenderReport | RtcpReceiverReport | RtcpSdes | RtcpBye | RtcpPli | RtcpFir | RtcpNack | RtcpOther;
