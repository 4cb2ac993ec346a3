/**
 * AAC over RTP as RFC 3640 `mpeg4-generic` (AAC-hbr and other AU-header layouts): depacketizer and packetizer.
 * Depacketized AUs are views into the packets, except AUs fragmented over several packets, which are joined once
 * into a buffer of the announced size.
 */
import { LimitError, ParseError, UnsupportedError } from '../../../errors.js';
import { BitReader, BitWriter } from '../../bytes.js';
import {
  checkMtu,
  RTP_DEFAULT_MTU,
  RTP_HEADER_SIZE,
  RtpHeaderWriter,
  TimestampUnwrapper,
  type RtpPacket,
  type RtpStreamInit,
} from '../packet.js';
import { newStats, Reassembly, SeqTracker, type AudioFrame } from './common.js';

/** AAC frames carry 1024 samples per channel (ISO/IEC 14496-3 4.5.1.1; 960 with frameLengthFlag). */
export const AAC_SAMPLES_PER_FRAME = 1024;

/** AU-header layout of an `mpeg4-generic` stream, from its SDP fmtp (RFC 3640 §4.1). */
export interface Mpeg4GenericParams {
  /** bits of AU-size */
  sizeLength: number;
  /** bits of AU-Index (first header) */
  indexLength: number;
  /** bits of AU-Index-delta (following headers) */
  indexDeltaLength: number;
}

/** The AAC-hbr mode (RFC 3640 §3.3.6): 13-bit sizes, 3-bit index and index-delta — what ffmpeg, GStreamer and cameras send. */
export const AAC_HBR: Readonly<Mpeg4GenericParams> = { sizeLength: 13, indexLength: 3, indexDeltaLength: 3 };

/** AU-size fields wider than 16 bits cannot occur: the AU-headers-length is itself 16 bits (RFC 3640 §3.2.1). */
const MAX_SIZE_LENGTH = 16;

/**
 * Reads the AU-header layout from `mpeg4-generic` fmtp parameters (names lower-case, values raw strings).
 * @throws UnsupportedError for layouts this depacketizer does not implement: CTS/DTS deltas, random access or
 *   stream-state flags, auxiliary data (none of which AAC-hbr senders use); ParseError for non-numeric values.
 */
export function mpeg4GenericParams(fmtp: Readonly<Record<string, string>>): Mpeg4GenericParams {
  const num = (key: string, fallback: number): number => {
    const v = fmtp[key];
    if (v === undefined || v === '') return fallback;
    if (!/^\d{1,3}$/.test(v.trim())) throw new ParseError('sdp-fmtp', `${key}=${v} is not a small integer`);
    return Number(v.trim());
  };
  for (const key of ['ctsdeltalength', 'dtsdeltalength', 'auxiliarydatasizelength', 'streamstateindication']) {
    if (num(key, 0) !== 0) throw new UnsupportedError(`mpeg4-generic ${key}=${fmtp[key]} is not supported`);
  }
  if (num('randomaccessindication', 0) !== 0) throw new UnsupportedError('mpeg4-generic randomAccessIndication=1 is not supported');
  const p = { sizeLength: num('sizelength', 0), indexLength: num('indexlength', 0), indexDeltaLength: num('indexdeltalength', 0) };
  if (p.sizeLength === 0 || p.sizeLength > MAX_SIZE_LENGTH) throw new UnsupportedError(`mpeg4-generic sizeLength=${p.sizeLength} is not supported`);
  if (p.indexLength > 16 || p.indexDeltaLength > 16) throw new UnsupportedError('mpeg4-generic index fields over 16 bits');
  return p;
}

/*
 * RFC 3640 §3.2.1, the payload:
 *
 * +---------+-----------+-----------+---------------+
 * | RTP     | AU Header | Auxiliary | Access Unit   |
 * | Header  | Section   | Section   | Data Section  |
 * +---------+-----------+-----------+---------------+
 *
 * AU Header Section:
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+- .. -+-+-+-+-+-+-+-+-+-+
 * |AU-headers-length|AU-header|AU-header|      |AU-header|padding|
 * |                 |   (1)   |   (2)   |      |   (n)   | bits  |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+- .. -+-+-+-+-+-+-+-+-+-+
 *
 * AU-headers-length: 16 bits, the length of the headers in bits. AU-header: AU-size (sizeLength bits) then
 * AU-Index (first) or AU-Index-delta (others). The AUs follow back to back. An AU bigger than one packet is sent
 * as fragments in consecutive packets with the same timestamp, each with one AU-header giving the whole AU's
 * size; the marker bit is set on the last fragment and on every packet of whole AUs (§3.2.3.2).
 */

/**
 * RFC 3640 `mpeg4-generic` depacketizer. AUs of one packet get consecutive presentation times
 * (`pts + i * samplesPerFrame`), as AAC-hbr without CTS-delta implies (§3.2.3.1).
 * @see RFC 3640 §3.2, §3.3.6
 */
export class Mpeg4GenericDepacketizer {
  /** counters for metrics */
  readonly stats = newStats();
  private readonly params: Mpeg4GenericParams;
  private readonly seqs = new SeqTracker();
  private readonly timestamps = new TimestampUnwrapper();
  private readonly fragment = new Reassembly();
  private fragmentTotal = 0;
  /** timestamp of an AU whose fragment was lost: its remaining fragments are skipped */
  private discardTimestamp = -1;

  /**
   * @param params AU-header layout (from `mpeg4GenericParams(fmtp)`), default AAC-hbr
   * @param samplesPerFrame AU duration in clock ticks; 1024 for AAC (960 with frameLengthFlag)
   */
  constructor(
    params: Mpeg4GenericParams = AAC_HBR,
    readonly samplesPerFrame = AAC_SAMPLES_PER_FRAME,
  ) {
    this.params = { ...params };
  }

  /**
   * Feeds one packet.
   * @returns the AUs it completes (views into the packet, or a joined buffer for fragmented AUs), or null.
   * @throws ParseError for AU headers or sizes that do not fit the packet; UnsupportedError for interleaving
   *   (non-zero AU-Index); a fragment in progress is dropped.
   */
  push(pkt: RtpPacket): AudioFrame[] | null {
    this.stats.packets++;
    const gap = this.seqs.gap(pkt.sequenceNumber);
    if (gap < 0) {
      this.stats.packetsLate++;
      return null;
    }
    if (gap > 0) {
      this.stats.packetsLost += gap;
      if (this.fragment.active) this.discardTimestamp = this.fragment.timestamp;
      this.dropFragment();
    }
    if (this.discardTimestamp >= 0) {
      if (pkt.timestamp === this.discardTimestamp) return null;
      this.discardTimestamp = -1;
    }
    try {
      return this.payload(pkt);
    } catch (err) {
      this.dropFragment();
      throw err;
    }
  }

  private dropFragment(): void {
    if (this.fragment.active) {
      this.stats.framesDropped++;
      this.fragment.reset();
    }
  }

  private payload(pkt: RtpPacket): AudioFrame[] | null {
    const p = pkt.payload;
    const F = 'rtp-mpeg4-generic';
    if (p.length < 2) throw new ParseError(F, 'payload shorter than AU-headers-length', 0);
    const headerBits = ((p[0] as number) << 8) | (p[1] as number);
    const headerBytes = Math.ceil(headerBits / 8);
    if (2 + headerBytes > p.length) throw new ParseError(F, `AU headers of ${headerBits} bits overrun the packet`, 0);
    const { sizeLength, indexLength, indexDeltaLength } = this.params;
    const r = new BitReader(p.subarray(2, 2 + headerBytes), F);
    const sizes: number[] = [];
    let read = 0;
    while (read < headerBits) {
      const bits = sizeLength + (sizes.length === 0 ? indexLength : indexDeltaLength);
      if (read + bits > headerBits) throw new ParseError(F, `AU-headers-length ${headerBits} is not a whole number of headers`, 0);
      const size = r.readBits(sizeLength);
      const index = r.readBits(sizes.length === 0 ? indexLength : indexDeltaLength);
      if (index !== 0) throw new UnsupportedError(`${F}: interleaved AUs (AU-Index ${index}) are not supported`);
      sizes.push(size);
      read += bits;
    }
    if (sizes.length === 0) throw new ParseError(F, 'packet without AU headers', 0);
    const data = p.subarray(2 + headerBytes);

    // a fragment: one AU header whose size exceeds the data (RFC 3640 §3.2.3.2)
    if (sizes.length === 1 && ((sizes[0] as number) > data.length || this.fragment.active)) {
      const total = sizes[0] as number;
      if (this.fragment.active && (this.fragment.timestamp !== pkt.timestamp || this.fragmentTotal !== total)) {
        this.dropFragment(); // a new AU started before the old one ended
      }
      if (!this.fragment.active) {
        if (data.length === total) return this.frames([data], pkt.timestamp); // whole AU after a dropped fragment
        this.fragment.start(pkt.timestamp);
        this.fragmentTotal = total;
      }
      if (this.fragment.size + data.length > total) {
        this.dropFragment();
        throw new ParseError(F, `fragments add up to more than the AU size ${total}`, 2 + headerBytes);
      }
      this.fragment.add(data);
      if (this.fragment.size < total) {
        if (pkt.marker) {
          this.dropFragment(); // the sender ended the AU early
        }
        return null;
      }
      const ts = this.fragment.timestamp;
      return this.frames([this.fragment.join()], ts);
    }

    this.dropFragment();
    const frames: Uint8Array[] = [];
    let o = 0;
    for (const size of sizes) {
      if (o + size > data.length) throw new ParseError(F, `AU of ${size} bytes overruns the packet`, 2 + headerBytes + o);
      if (size > 0) frames.push(data.subarray(o, o + size));
      o += size;
    }
    return this.frames(frames, pkt.timestamp);
  }

  private frames(datas: Uint8Array[], timestamp: number): AudioFrame[] | null {
    if (datas.length === 0) return null;
    const pts = this.timestamps.unwrap(timestamp);
    this.stats.frames += datas.length;
    return datas.map((data, i) => ({ data, pts: pts + i * this.samplesPerFrame }));
  }
}

/** Options of the `mpeg4-generic` packetizer. */
export interface Mpeg4GenericPacketizerInit extends RtpStreamInit {
  /** largest RTP packet in bytes, header included; 1200..1450, default 1200 */
  mtu?: number;
  /** AU-header layout; default AAC-hbr */
  params?: Mpeg4GenericParams;
  /** AU duration in ticks, default 1024 */
  samplesPerFrame?: number;
}

/**
 * RFC 3640 `mpeg4-generic` packetizer: packs as many whole AUs as fit in one packet (AU-Index and deltas 0),
 * fragments an AU that does not fit alone. Every packet is one buffer with its header in front.
 */
export class Mpeg4GenericPacketizer {
  readonly mtu: number;
  readonly samplesPerFrame: number;
  private readonly header: RtpHeaderWriter;
  private readonly params: Mpeg4GenericParams;

  constructor(init: Mpeg4GenericPacketizerInit) {
    this.mtu = checkMtu(init.mtu ?? RTP_DEFAULT_MTU);
    this.header = new RtpHeaderWriter(init);
    this.params = { ...(init.params ?? AAC_HBR) };
    this.samplesPerFrame = init.samplesPerFrame ?? AAC_SAMPLES_PER_FRAME;
  }

  /** The RTP stream state (SSRC, next sequence number, timestamp base). */
  get stream(): RtpHeaderWriter {
    return this.header;
  }

  private headerBits(count: number): number {
    return this.params.sizeLength + this.params.indexLength + (count - 1) * (this.params.sizeLength + this.params.indexDeltaLength);
  }

  /**
   * Packets for consecutive AUs, the first presented at `pts` (ticks), the others `samplesPerFrame` apart.
   * @throws LimitError for an AU larger than the AU-size field can state (8191 bytes with AAC-hbr).
   */
  packetize(frames: readonly Uint8Array[], pts: number): Uint8Array[] {
    const maxSize = 2 ** this.params.sizeLength - 1;
    const room = this.mtu - RTP_HEADER_SIZE;
    const out: Uint8Array[] = [];
    let i = 0;
    while (i < frames.length) {
      const first = frames[i] as Uint8Array;
      if (first.length > maxSize) throw new LimitError('mpeg4-generic AU bytes', maxSize, first.length);
      const ts = this.header.rtpTimestamp(pts + i * this.samplesPerFrame);
      const oneHeader = 2 + Math.ceil(this.headerBits(1) / 8);
      if (oneHeader + first.length > room) {
        // fragment: every packet repeats the AU header with the whole size
        const chunk = room - oneHeader;
        for (let o = 0; o < first.length; o += chunk) {
          const end = Math.min(first.length, o + chunk);
          out.push(this.write([first], first.subarray(o, end), end === first.length, ts, first.length));
        }
        i++;
        continue;
      }
      let j = i + 1;
      let dataSize = first.length;
      while (j < frames.length) {
        const next = frames[j] as Uint8Array;
        if (next.length > maxSize) break;
        if (2 + Math.ceil(this.headerBits(j - i + 1) / 8) + dataSize + next.length > room) break;
        dataSize += next.length;
        j++;
      }
      out.push(this.write(frames.slice(i, j), undefined, true, ts, -1));
      i = j;
    }
    return out;
  }

  /** Writes one packet: AU headers for `aus` (or one header of `fragmentOf` bytes) then the data. */
  private write(aus: readonly Uint8Array[], fragment: Uint8Array | undefined, marker: boolean, ts: number, fragmentOf: number): Uint8Array {
    const bits = this.headerBits(aus.length);
    const headerBytes = Math.ceil(bits / 8);
    let dataSize = 0;
    if (fragment) dataSize = fragment.length;
    else for (const a of aus) dataSize += a.length;
    const pkt = this.header.allocate(2 + headerBytes + dataSize, marker, ts);
    pkt[RTP_HEADER_SIZE] = bits >>> 8;
    pkt[RTP_HEADER_SIZE + 1] = bits & 0xff;
    const w = new BitWriter(headerBytes);
    aus.forEach((a, k) => {
      w.writeBits(fragmentOf >= 0 ? fragmentOf : a.length, this.params.sizeLength);
      w.writeBits(0, k === 0 ? this.params.indexLength : this.params.indexDeltaLength);
    });
    pkt.set(w.buf, RTP_HEADER_SIZE + 2);
    let o = RTP_HEADER_SIZE + 2 + headerBytes;
    if (fragment) {
      pkt.set(fragment, o);
    } else {
      for (const a of aus) {
        pkt.set(a, o);
        o += a.length;
      }
    }
    return pkt;
  }
}
