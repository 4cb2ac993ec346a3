/**
 * AAC over RTP as RFC 3016 `MP4A-LATM` with `cpresent=0` (out-of-band StreamMuxConfig in the SDP `config`):
 * StreamMuxConfig parser and depacketizer. Frames are views into the packets, except elements fragmented over
 * several packets, which are joined once.
 */
import { LimitError, ParseError, UnsupportedError } from '../../../errors.js';
import { BitReader, BitWriter } from '../../bytes.js';
import { parseAudioSpecificConfig } from '../../codecs/aac.js';
import { TimestampUnwrapper, type RtpPacket } from '../packet.js';
import { newStats, Reassembly, SeqTracker, type AudioFrame } from './common.js';

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
