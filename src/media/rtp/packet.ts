/**
 * RTP packets (RFC 3550 §5.1): header parse/serialize as views, 16-bit sequence and 32-bit timestamp wrap
 * arithmetic, and unwrappers that extend them to monotonic numbers.
 *
 * Parsing never copies: `payload`, `extension.data` are `subarray` views of the input.
 */
import { ParseError } from '../../errors.js';
import { readUint16BE, readUint32BE, writeUint16BE, writeUint32BE } from '../bytes.js';

const FORMAT = 'rtp';

/** The only RTP version in use (RFC 3550 §5.1: "This specification defines the version to be two (2)"). */
export const RTP_VERSION = 2;
/** Size of the fixed header, before CSRCs and extension (RFC 3550 §5.1). */
export const RTP_HEADER_SIZE = 12;
/** CC is a 4-bit field (RFC 3550 §5.1), so at most 15 CSRCs. */
export const RTP_MAX_CSRC = 15;
/** Payload types are 7 bits (RFC 3550 §5.1). */
export const RTP_MAX_PAYLOAD_TYPE = 127;

/** RTP header extension (RFC 3550 §5.3.1): a 16-bit profile-defined value and a whole number of 32-bit words. */
export interface RtpExtension {
  /** "defined by profile" field, e.g. 0xBEDE for RFC 8285 one-byte headers */
  profile: number;
  /** extension body, length a multiple of 4; a view of the parsed bytes */
  data: Uint8Array;
}

/** One RTP packet. Fields use the RFC 3550 names in camelCase. */
export interface RtpPacket {
  marker: boolean;
  /** 0..127 */
  payloadType: number;
  /** 0..65535 */
  sequenceNumber: number;
  /** 0..2^32-1, ticks of the payload format's clock rate */
  timestamp: number;
  /** 0..2^32-1 */
  ssrc: number;
  /** contributing sources, at most 15 */
  csrc: readonly number[];
  extension?: RtpExtension;
  /** view of the payload, padding removed */
  payload: Uint8Array;
  /** number of padding bytes at the end including the count byte (0 = P bit clear) */
  paddingSize: number;
}

/*
 * RFC 3550 §5.1, the fixed header:
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |V=2|P|X|  CC   |M|     PT      |       sequence number         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                           timestamp                           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |           synchronization source (SSRC) identifier            |
 * +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 * |            contributing source (CSRC) identifiers             |
 * |                             ....                              |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * §5.3.1, the header extension (when X=1), after the CSRCs:
 *
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |      defined by profile       |           length              |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                        header extension                       |
 * |                             ....                              |
 *
 * `length` counts 32-bit words of the extension body. With P=1 the last payload octet counts the padding octets,
 * itself included.
 */

/**
 * Parses one RTP packet.
 * @returns a packet whose `payload` and `extension.data` are views into `buf`.
 * @throws ParseError when the bytes are not a valid RTP packet (wrong version, truncated header, CSRC list,
 *   extension or padding longer than the packet).
 * @see RFC 3550 §5.1
 */
export function parseRtp(buf: Uint8Array): RtpPacket {
  if (buf.length < RTP_HEADER_SIZE) {
    throw new ParseError(FORMAT, `packet of ${buf.length} bytes is shorter than the ${RTP_HEADER_SIZE}-byte header`, 0);
  }
  const b0 = buf[0] as number;
  const b1 = buf[1] as number;
  const version = b0 >>> 6;
  if (version !== RTP_VERSION) throw new ParseError(FORMAT, `version ${version}, want 2`, 0);
  const hasPadding = (b0 & 0x20) !== 0;
  const hasExtension = (b0 & 0x10) !== 0;
  const csrcCount = b0 & 0x0f;
  let offset = RTP_HEADER_SIZE;
  if (offset + csrcCount * 4 > buf.length) {
    throw new ParseError(FORMAT, `CSRC list of ${csrcCount} entries overruns the packet`, offset);
  }
  const csrc: number[] = [];
  for (let i = 0; i < csrcCount; i++, offset += 4) csrc.push(readUint32BE(buf, offset, FORMAT));

  let extension: RtpExtension | undefined;
  if (hasExtension) {
    if (offset + 4 > buf.length) throw new ParseError(FORMAT, 'truncated header extension', offset);
    const profile = readUint16BE(buf, offset, FORMAT);
    const words = readUint16BE(buf, offset + 2, FORMAT);
    const start = offset + 4;
    const end = start + words * 4;
    if (end > buf.length) throw new ParseError(FORMAT, `header extension of ${words} words overruns the packet`, offset);
    extension = { profile, data: buf.subarray(start, end) };
    offset = end;
  }

  let end = buf.length;
  let paddingSize = 0;
  if (hasPadding) {
    paddingSize = buf[buf.length - 1] as number;
    // RFC 3550 §5.1: the count includes itself, so 0 is invalid
    if (paddingSize === 0 || end - paddingSize < offset) {
      throw new ParseError(FORMAT, `padding of ${paddingSize} bytes does not fit the packet`, buf.length - 1);
    }
    end -= paddingSize;
  }

  const packet: RtpPacket = {
    marker: (b1 & 0x80) !== 0,
    payloadType: b1 & 0x7f,
    sequenceNumber: readUint16BE(buf, 2, FORMAT),
    timestamp: readUint32BE(buf, 4, FORMAT),
    ssrc: readUint32BE(buf, 8, FORMAT),
    csrc,
    payload: buf.subarray(offset, end),
    paddingSize,
  };
  if (extension) packet.extension = extension;
  return packet;
}

/** Size of the header (fixed part, CSRCs and extension) that `serializeRtp` writes. */
export function rtpHeaderSize(p: Pick<RtpPacket, 'csrc' | 'extension'>): number {
  return RTP_HEADER_SIZE + p.csrc.length * 4 + (p.extension ? 4 + p.extension.data.length : 0);
}

/** Serialized size of `p`: header, payload and padding. */
export function rtpSize(p: RtpPacket): number {
  return rtpHeaderSize(p) + p.payload.length + p.paddingSize;
}

/**
 * Writes the RTP header of `p` (fixed part, CSRCs, extension) into `out` at `offset`.
 * @returns the offset just after the header, where the payload goes.
 * @throws RangeError on fields out of range (a programming error, not network input).
 */
export function writeRtpHeader(p: Omit<RtpPacket, 'payload'>, out: Uint8Array, offset = 0): number {
  if (p.csrc.length > RTP_MAX_CSRC) throw new RangeError(`${p.csrc.length} CSRCs, at most ${RTP_MAX_CSRC}`);
  if (p.payloadType < 0 || p.payloadType > RTP_MAX_PAYLOAD_TYPE) throw new RangeError(`payload type ${p.payloadType}`);
  if (p.extension && p.extension.data.length % 4 !== 0) {
    throw new RangeError(`header extension of ${p.extension.data.length} bytes is not a multiple of 4`);
  }
  if (p.paddingSize < 0 || p.paddingSize > 255) throw new RangeError(`padding of ${p.paddingSize} bytes`);
  out[offset] = (RTP_VERSION << 6) | (p.paddingSize > 0 ? 0x20 : 0) | (p.extension ? 0x10 : 0) | p.csrc.length;
  out[offset + 1] = (p.marker ? 0x80 : 0) | p.payloadType;
  writeUint16BE(out, offset + 2, p.sequenceNumber);
  writeUint32BE(out, offset + 4, p.timestamp);
  writeUint32BE(out, offset + 8, p.ssrc);
  let o = offset + RTP_HEADER_SIZE;
  for (const c of p.csrc) {
    writeUint32BE(out, o, c);
    o += 4;
  }
  if (p.extension) {
    writeUint16BE(out, o, p.extension.profile);
    writeUint16BE(out, o + 2, p.extension.data.length / 4);
    out.set(p.extension.data, o + 4);
    o += 4 + p.extension.data.length;
  }
  return o;
}

/**
 * Serializes `p` into one newly allocated buffer of `rtpSize(p)` bytes. Padding bytes are zero except the last,
 * which holds the count (RFC 3550 §5.1).
 */
export function serializeRtp(p: RtpPacket): Uint8Array {
  const out = new Uint8Array(rtpSize(p));
  const o = writeRtpHeader(p, out, 0);
  out.set(p.payload, o);
  if (p.paddingSize > 0) out[out.length - 1] = p.paddingSize;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Wrap-around arithmetic (RFC 3550 §A.1 uses the same modular comparisons).

/** Signed distance `a - b` between two 16-bit sequence numbers, in -32768..32767. */
export function seqDiff(a: number, b: number): number {
  return (((a - b) & 0xffff) << 16) >> 16;
}

/** True when sequence number `a` comes before `b` modulo 2^16. */
export function seqLess(a: number, b: number): boolean {
  return seqDiff(a, b) < 0;
}

/** `seq + n` modulo 2^16. */
export function seqAdd(seq: number, n: number): number {
  return (seq + n) & 0xffff;
}

/** Signed distance `a - b` between two 32-bit RTP timestamps, in -2^31..2^31-1. */
export function tsDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** `ts + n` modulo 2^32 (n may be any safe integer, also negative). */
export function tsAdd(ts: number, n: number): number {
  return ((ts + (n % 0x1_0000_0000)) % 0x1_0000_0000 + 0x1_0000_0000) % 0x1_0000_0000;
}

/**
 * Extends 16-bit RTP sequence numbers to a monotonic count of wraps (like RFC 3550's `cycles` + `max_seq`).
 * A packet that arrives late (before the highest seen) gets its own, smaller extended number, also across a wrap.
 * The first value passed is returned unchanged.
 */
export class SeqUnwrapper {
  private last = -1; // last extended value returned as the highest

  /** Returns the extended sequence number of `seq` (0..65535); packets older than the first may get negative ones. */
  unwrap(seq: number): number {
    if (this.last < 0) {
      this.last = seq;
      return seq;
    }
    const ext = this.last + seqDiff(seq, this.last & 0xffff);
    if (ext > this.last) this.last = ext;
    return ext;
  }

  /** Highest extended sequence number seen, or -1 before the first. */
  get highest(): number {
    return this.last;
  }

  /** Starts over as if `seq` were the first value (a source restart, RFC 3550 A.1). */
  reset(seq: number): void {
    this.last = seq & 0xffff;
  }
}

/**
 * Extends 32-bit RTP timestamps to monotonic ticks (a 90 kHz clock wraps every 13.25 h). Late packets get their own
 * smaller value. The first value passed is returned unchanged; all numbers stay exact doubles (< 2^53).
 */
export class TimestampUnwrapper {
  private last = -1;
  private lastExt = 0;

  /** Returns the extended timestamp of `ts` (0..2^32-1). */
  unwrap(ts: number): number {
    if (this.last < 0) {
      this.last = ts;
      this.lastExt = ts;
      return ts;
    }
    const ext = this.lastExt + tsDiff(ts, this.last);
    if (ext > this.lastExt) {
      this.lastExt = ext;
      this.last = ts;
    }
    return ext;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Shared by the packetizers.

/** Initial values of an outgoing RTP stream; each is random when omitted (RFC 3550 §5.1: "SHOULD be random"). */
export interface RtpStreamInit {
  payloadType: number;
  ssrc?: number;
  initialSequenceNumber?: number;
  initialTimestamp?: number;
}

/** Uniform random 32-bit value from the platform's CSPRNG (RFC 3550 §8.1 wants SSRCs hard to predict). */
export function randomUint32(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0] as number;
}

/**
 * The header state of one outgoing RTP stream: SSRC, next sequence number, and the mapping from media ticks to
 * RTP timestamps (`initialTimestamp + pts` modulo 2^32). Packetizers use it to write each header directly into
 * the packet's single buffer.
 */
export class RtpHeaderWriter {
  readonly payloadType: number;
  readonly ssrc: number;
  readonly initialTimestamp: number;
  private seq: number;

  constructor(init: RtpStreamInit) {
    if (!Number.isInteger(init.payloadType) || init.payloadType < 0 || init.payloadType > RTP_MAX_PAYLOAD_TYPE) {
      throw new RangeError(`payload type ${init.payloadType}`);
    }
    this.payloadType = init.payloadType;
    this.ssrc = (init.ssrc ?? randomUint32()) >>> 0;
    this.seq = (init.initialSequenceNumber ?? randomUint32()) & 0xffff;
    this.initialTimestamp = (init.initialTimestamp ?? randomUint32()) >>> 0;
  }

  /** Sequence number the next packet gets. */
  get nextSequenceNumber(): number {
    return this.seq;
  }

  /** RTP timestamp for a media time in ticks. */
  rtpTimestamp(pts: number): number {
    return tsAdd(this.initialTimestamp, Math.round(pts));
  }

  /**
   * Allocates one packet buffer of `RTP_HEADER_SIZE + payloadSize` bytes and writes the header into it, taking the
   * next sequence number. The caller writes the payload at offset `RTP_HEADER_SIZE`.
   */
  allocate(payloadSize: number, marker: boolean, timestamp: number): Uint8Array {
    const out = new Uint8Array(RTP_HEADER_SIZE + payloadSize);
    out[0] = RTP_VERSION << 6;
    out[1] = (marker ? 0x80 : 0) | this.payloadType;
    writeUint16BE(out, 2, this.seq);
    writeUint32BE(out, 4, timestamp);
    writeUint32BE(out, 8, this.ssrc);
    this.seq = (this.seq + 1) & 0xffff;
    return out;
  }
}

/** Smallest and largest MTU the packetizers accept: 1200 keeps clear of any tunnel/VPN overhead on a 1280-byte
 * IPv6 minimum path (RFC 8200 §5), 1450 fits Ethernet's 1500 minus IP/UDP and some encapsulation. */
export const RTP_MIN_MTU = 1200;
/** See RTP_MIN_MTU. */
export const RTP_MAX_MTU = 1450;
/** Default packet size: the common choice of WebRTC stacks (libwebrtc, pion) that every path carries. */
export const RTP_DEFAULT_MTU = 1200;

/** Checks a packetizer MTU (bytes of the whole RTP packet) against RTP_MIN_MTU..RTP_MAX_MTU. */
export function checkMtu(mtu: number): number {
  if (!Number.isInteger(mtu) || mtu < RTP_MIN_MTU || mtu > RTP_MAX_MTU) {
    throw new RangeError(`MTU ${mtu} is outside ${RTP_MIN_MTU}..${RTP_MAX_MTU}`);
  }
  return mtu;
}
