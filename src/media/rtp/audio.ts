/**
 * Audio over RTP:
 * - AAC as RFC 3640 `mpeg4-generic` (AAC-hbr and other AU-header layouts): depacketizer and packetizer;
 * - AAC as RFC 3016 `MP4A-LATM` with `cpresent=0` (out-of-band StreamMuxConfig in the SDP `config`): depacketizer;
 * - one-frame-per-packet payloads (Opus RFC 7587, G.711 RFC 3551): both directions.
 *
 * Depacketizers return frames as views into the packets, except AUs fragmented over several packets, which are
 * joined once into a buffer of the announced size.
 */
import { LimitError, ParseError, UnsupportedError } from '../../errors.js';
import { BitReader, BitWriter } from '../bytes.js';
import { parseAudioSpecificConfig } from '../codecs/aac.js';
import {
  checkMtu,
  RTP_DEFAULT_MTU,
  RTP_HEADER_SIZE,
  RtpHeaderWriter,
  seqDiff,
  TimestampUnwrapper,
  type RtpPacket,
  type RtpStreamInit,
} from './packet.js';

/** One audio frame out of a depacketizer. */
export interface AudioFrame {
  /** the raw frame (AAC raw_data_block, Opus packet, G.711 samples); a view unless it was reassembled; never empty */
  data: Uint8Array;
  /** RTP timestamp extended to 53 bits, ticks of the clock rate (the sample rate for AAC) */
  pts: number;
}

/** AAC frames carry 1024 samples per channel (ISO/IEC 14496-3 4.5.1.1; 960 with frameLengthFlag). */
export const AAC_SAMPLES_PER_FRAME = 1024;

/** Counters shared by the audio depacketizers. Lost packets and partial AUs are routine and only counted. */
export interface AudioDepacketizerStats {
  packets: number;
  packetsLost: number;
  packetsLate: number;
  frames: number;
  /** fragmented AUs (or LATM elements) dropped because a fragment was lost or did not add up */
  framesDropped: number;
}

const newStats = (): AudioDepacketizerStats => ({ packets: 0, packetsLost: 0, packetsLate: 0, frames: 0, framesDropped: 0 });

/** Tracks sequence numbers for a depacketizer: returns the gap before `seq` (0 = in order, -1 = late). */
class SeqTracker {
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
class Reassembly {
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

// ---------------------------------------------------------------------------------------------------------------
// RFC 3640 mpeg4-generic

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

// ---------------------------------------------------------------------------------------------------------------
// RFC 3016 MP4A-LATM

/** The parts of a StreamMuxConfig (ISO/IEC 14496-3 1.7.3.1) a single-program, single-layer stream uses. */
export interface StreamMuxConfig {
  audioMuxVersion: number;
  /** subframes per AudioMuxElement, minus one */
  numSubFrames: number;
  /** the AudioSpecificConfig inside, copied into its own byte-aligned buffer */
  audioSpecificConfig: Uint8Array;
  /** core sampling frequency of the ASC (for HE-AAC the SBR output rate is twice this) */
  sampleRate: number;
  channels: number;
  /** 1024 or 960 */
  samplesPerFrame: number;
  /** bits of other data after the payloads of each AudioMuxElement */
  otherDataLenBits: number;
}

/** Reads LatmGetValue() (1.7.3.1): 1-4 bytes, count first. */
function latmGetValue(r: BitReader): number {
  const bytes = r.readBits(2) + 1;
  return r.readBits(8 * bytes);
}

/** AOTs whose ASC continues with a GASpecificConfig that we can measure (ISO/IEC 14496-3 Table 1.17). */
const LATM_GA_OBJECT_TYPES = new Set([1, 2, 3, 4]);

/**
 * Reads an AudioSpecificConfig in place to learn its length in bits (needed with audioMuxVersion 0, where the
 * ASC is not length-prefixed). Covers AAC Main/LC/SSR/LTP, explicit SBR/PS over them, and the backward-compatible
 * SBR/PS sync extensions (0x2b7, 0x548) that avenc_aac and ffmpeg append (ISO/IEC 14496-3 1.6.2.1).
 */
function measureAsc(buf: Uint8Array, r: BitReader): void {
  const F = 'latm-config';
  const readAot = (): number => {
    const t = r.readBits(5);
    return t === 31 ? 32 + r.readBits(6) : t;
  };
  const readRate = (): void => {
    if (r.readBits(4) === 15) r.skip(24);
  };
  const peek = (bits: number): number => {
    const p = new BitReader(buf, F);
    p.skip(r.bitPosition());
    return p.readBits(bits);
  };
  const firstAot = readAot();
  let aot = firstAot;
  readRate();
  const channelConfig = r.readBits(4);
  if (aot === 5 || aot === 29) {
    readRate();
    aot = readAot();
  }
  if (!LATM_GA_OBJECT_TYPES.has(aot)) throw new UnsupportedError(`${F}: audio object type ${aot} in LATM`);
  if (channelConfig === 0) throw new UnsupportedError(`${F}: program_config_element in LATM`);
  r.skip(1); // frameLengthFlag
  if (r.readFlag()) r.skip(14); // dependsOnCoreCoder → coreCoderDelay
  if (r.readFlag()) throw new UnsupportedError(`${F}: GASpecificConfig extensionFlag`);
  if (firstAot !== 5 && firstAot !== 29 && r.bitsLeft() >= 16 && peek(11) === 0x2b7) {
    r.skip(11);
    if (readAot() === 5 && r.readFlag()) {
      readRate();
      if (r.bitsLeft() >= 12 && peek(11) === 0x548) r.skip(12);
    }
  }
}

/** Copies `bits` bits starting at bit `from` of `buf` into a new byte-aligned buffer. */
function copyBits(buf: Uint8Array, from: number, bits: number): Uint8Array {
  const r = new BitReader(buf, 'latm-config');
  r.skip(from);
  const w = new BitWriter(Math.ceil(bits / 8));
  let left = bits;
  while (left > 0) {
    const n = Math.min(8, left);
    w.writeBits(r.readBits(n), n);
    left -= n;
  }
  return w.buf;
}

/**
 * Parses the StreamMuxConfig of an MP4A-LATM stream (the hex `config` of its SDP fmtp when `cpresent=0`).
 * @throws ParseError on truncation; UnsupportedError for several programs/layers, frame length types other than
 *   0 (variable-length AAC), or streams whose subframes are not time-aligned.
 * @see ISO/IEC 14496-3 1.7.3.1, RFC 3016 §4.1
 */
export function parseStreamMuxConfig(buf: Uint8Array): StreamMuxConfig {
  const F = 'latm-config';
  const r = new BitReader(buf, F);
  const audioMuxVersion = r.readBits(1);
  if (audioMuxVersion === 1) {
    if (r.readBits(1) !== 0) throw new UnsupportedError(`${F}: audioMuxVersionA 1`);
    latmGetValue(r); // taraBufferFullness
  }
  if (r.readBits(1) !== 1) throw new UnsupportedError(`${F}: allStreamsSameTimeFraming 0`);
  const numSubFrames = r.readBits(6);
  if (r.readBits(4) !== 0) throw new UnsupportedError(`${F}: more than one program`);
  if (r.readBits(3) !== 0) throw new UnsupportedError(`${F}: more than one layer`);
  let ascStart = r.bitPosition();
  let ascBits: number;
  if (audioMuxVersion === 1) {
    ascBits = latmGetValue(r);
    ascStart = r.bitPosition();
    r.skip(ascBits);
  } else {
    measureAsc(buf, r);
    ascBits = r.bitPosition() - ascStart;
  }
  const audioSpecificConfig = copyBits(buf, ascStart, ascBits);
  const frameLengthType = r.readBits(3);
  if (frameLengthType !== 0) throw new UnsupportedError(`${F}: frameLengthType ${frameLengthType}`);
  // GStreamer 1.22 rtpmp4apay cuts the config after frameLengthType when the ASC carries a sync extension
  // ("40002320adca00"): missing trailing fields read as absent
  if (r.bitsLeft() >= 8) r.skip(8); // latmBufferFullness
  let otherDataLenBits = 0;
  if (r.bitsLeft() > 0 && r.readFlag()) {
    if (audioMuxVersion === 1) {
      otherDataLenBits = latmGetValue(r);
    } else {
      let esc: boolean;
      do {
        esc = r.readFlag();
        otherDataLenBits = otherDataLenBits * 256 + r.readBits(8);
      } while (esc && otherDataLenBits < 2 ** 24);
    }
  }
  if (r.bitsLeft() > 0 && r.readFlag()) r.skip(8); // crcCheckSum
  const asc = parseAudioSpecificConfig(audioSpecificConfig);
  return {
    audioMuxVersion,
    numSubFrames,
    audioSpecificConfig,
    sampleRate: asc.sampleRate,
    channels: asc.channels,
    samplesPerFrame: asc.frameLength,
    otherDataLenBits,
  };
}

/**
 * Largest AudioMuxElement reassembled from fragments. An AAC frame is at most 6144 bits per channel
 * (ISO/IEC 14496-3 4.5.3.2), 6 KiB for 8 channels; 64 subframes of that is ~400 KiB, so 512 KiB bounds a
 * stream that never sets the marker bit without cutting off any valid element.
 */
export const MAX_LATM_ELEMENT_SIZE = 512 * 1024;

/**
 * RFC 3016 MP4A-LATM depacketizer for `cpresent=0` streams: the payload of packets up to the marker bit is a
 * sequence of AudioMuxElements (muxConfigPresent = 0), each with numSubFrames+1 length-prefixed AAC frames.
 * @see RFC 3016 §4, ISO/IEC 14496-3 1.7.3
 */
export class LatmDepacketizer {
  /** counters for metrics */
  readonly stats = newStats();
  /** the stream's configuration, from the SDP `config` */
  readonly config: StreamMuxConfig;
  private readonly seqs = new SeqTracker();
  private readonly timestamps = new TimestampUnwrapper();
  private readonly pending = new Reassembly();

  /** @param config the StreamMuxConfig bytes (SDP fmtp `config`, hex-decoded) */
  constructor(config: Uint8Array) {
    this.config = parseStreamMuxConfig(config);
  }

  /**
   * Feeds one packet.
   * @returns the frames of the AudioMuxElements completed by this packet's marker bit, or null.
   * @throws ParseError when the elements' lengths do not add up; the data is dropped.
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
      this.drop();
    }
    if (this.pending.active && this.pending.timestamp !== pkt.timestamp) this.drop(); // the marker was lost
    if (!pkt.marker || this.pending.active) {
      if (!this.pending.active) this.pending.start(pkt.timestamp);
      if (this.pending.size + pkt.payload.length > MAX_LATM_ELEMENT_SIZE) {
        this.drop();
        throw new LimitError('MP4A-LATM element bytes', MAX_LATM_ELEMENT_SIZE, this.pending.size + pkt.payload.length);
      }
      this.pending.add(pkt.payload);
      if (!pkt.marker) return null;
      return this.elements(this.pending.join(), pkt.timestamp);
    }
    return this.elements(pkt.payload, pkt.timestamp);
  }

  private drop(): void {
    if (this.pending.active) {
      this.stats.framesDropped++;
      this.pending.reset();
    }
  }

  private elements(buf: Uint8Array, timestamp: number): AudioFrame[] | null {
    const F = 'rtp-latm';
    const frames: Uint8Array[] = [];
    let o = 0;
    const otherBytes = Math.ceil(this.config.otherDataLenBits / 8);
    while (o < buf.length) {
      for (let s = 0; s <= this.config.numSubFrames; s++) {
        // PayloadLengthInfo: bytes of 255 continue the length (1.7.3.2)
        let len = 0;
        let b: number;
        do {
          if (o >= buf.length) throw new ParseError(F, 'PayloadLengthInfo truncated', o);
          b = buf[o++] as number;
          len += b;
        } while (b === 255);
        if (o + len > buf.length) throw new ParseError(F, `payload of ${len} bytes overruns the element`, o);
        if (len > 0) frames.push(buf.subarray(o, o + len));
        o += len;
      }
      o += otherBytes;
    }
    if (frames.length === 0) return null;
    const pts = this.timestamps.unwrap(timestamp);
    this.stats.frames += frames.length;
    return frames.map((data, i) => ({ data, pts: pts + i * this.config.samplesPerFrame }));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// One frame per packet: Opus (RFC 7587 §4.2), G.711 PCMU/PCMA (RFC 3551 §4.5.14)

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
