/**
 * AAC framing: ADTS headers and the AudioSpecificConfig (ASC), with the sampling-frequency table.
 * Specification: ISO/IEC 14496-3:2019, 1.6.2.1 (AudioSpecificConfig), 4.4.1 (GASpecificConfig),
 * 1.A.2.2 (ADTS, adts_fixed_header/adts_variable_header). Parsers return views; serializers allocate once.
 */
import { ParseError, UnsupportedError } from '../../errors.js';
import { BitReader, BitWriter } from '../bytes.js';

/** Sampling frequencies by samplingFrequencyIndex (ISO/IEC 14496-3 Table 1.18); 13 and 14 are reserved, 15 is "explicit". */
export const AAC_SAMPLE_RATES: readonly number[] = [
  96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/** samplingFrequencyIndex meaning "a 24-bit frequency follows" (ASC only; forbidden in ADTS). */
export const EXPLICIT_SAMPLE_RATE_INDEX = 15;

/** Channels per channelConfiguration (ISO/IEC 14496-3 Table 1.19 and ISO/IEC 23001-8); 0 = in a PCE; -1 = reserved. */
const CHANNELS_BY_CONFIG: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 8, -1, -1, -1, 7, 8, 24, 8, -1];

/** Audio object types whose ASC continues with GASpecificConfig (1.6.2.1). */
const GA_OBJECT_TYPES = new Set([1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23]);

/** Audio object types used here by name (ISO/IEC 14496-3 Table 1.17). */
export const AacObjectType = { Main: 1, Lc: 2, Ssr: 3, Ltp: 4, Sbr: 5, Ps: 29 } as const;

/** sampleRateIndex for a frequency in the table, or -1. */
export function sampleRateIndexOf(sampleRate: number): number {
  return AAC_SAMPLE_RATES.indexOf(sampleRate);
}

/** A parsed AudioSpecificConfig. Optional fields are present only when signaled. */
export interface AudioSpecificConfig {
  /** audioObjectType as first signaled (2 = LC; 5/29 = explicit SBR/PS, with the core in `coreObjectType`) */
  objectType: number;
  /** samplingFrequencyIndex; 15 when the frequency is explicit */
  sampleRateIndex: number;
  /** core sampling frequency in Hz */
  sampleRate: number;
  channelConfig: number;
  /** channel count from channelConfig; 0 when a program_config_element defines them */
  channels: number;
  /** samples per frame per channel: 960 when frameLengthFlag is set, else 1024 */
  frameLength: 1024 | 960;
  dependsOnCoreCoder?: boolean;
  coreCoderDelay?: number;
  extensionFlag?: boolean;
  /** for objectType 5 or 29: the codec under SBR/PS */
  coreObjectType?: number;
  /** SBR output sampling frequency index (explicit hierarchical or backward-compatible signaling) */
  extensionSampleRateIndex?: number;
  extensionSampleRate?: number;
  /** backward-compatible SBR signaling (sync extension 0x2b7) */
  sbrPresentFlag?: boolean;
  psPresentFlag?: boolean;
}

function readObjectType(r: BitReader): number {
  const t = r.readBits(5);
  return t === 31 ? 32 + r.readBits(6) : t;
}

function readSampleRate(r: BitReader): { index: number; rate: number } {
  const index = r.readBits(4);
  if (index === EXPLICIT_SAMPLE_RATE_INDEX) {
    const rate = r.readBits(24);
    if (rate === 0) throw new ParseError('aac-asc', 'explicit sampling frequency of 0', r.bitPosition() >>> 3);
    return { index, rate };
  }
  const rate = AAC_SAMPLE_RATES[index];
  if (rate === undefined) throw new ParseError('aac-asc', `reserved samplingFrequencyIndex ${index}`, r.bitPosition() >>> 3);
  return { index, rate };
}

/**
 * Parses an AudioSpecificConfig (as in FLV AAC sequence headers, `esds`, SDP `config=`).
 * Reads through GASpecificConfig's first fields and the backward-compatible SBR/PS sync extensions;
 * a program_config_element (channelConfig 0) and error-resilience fields are not decoded.
 * @throws ParseError on truncation, reserved sampling-frequency index or reserved channel configuration.
 */
export function parseAudioSpecificConfig(buf: Uint8Array): AudioSpecificConfig {
  const r = new BitReader(buf, 'aac-asc');
  const objectType = readObjectType(r);
  if (objectType === 0) throw new ParseError('aac-asc', 'audioObjectType 0 (null object)', 0);
  const sr = readSampleRate(r);
  const channelConfig = r.readBits(4);
  const channels = CHANNELS_BY_CONFIG[channelConfig] as number;
  if (channels < 0) throw new ParseError('aac-asc', `reserved channelConfiguration ${channelConfig}`, r.bitPosition() >>> 3);
  const asc: AudioSpecificConfig = {
    objectType,
    sampleRateIndex: sr.index,
    sampleRate: sr.rate,
    channelConfig,
    channels,
    frameLength: 1024,
  };
  let core = objectType;
  if (objectType === AacObjectType.Sbr || objectType === AacObjectType.Ps) {
    const ext = readSampleRate(r);
    asc.extensionSampleRateIndex = ext.index;
    asc.extensionSampleRate = ext.rate;
    core = readObjectType(r);
    asc.coreObjectType = core;
  }
  if (!GA_OBJECT_TYPES.has(core)) return asc;
  asc.frameLength = r.readFlag() ? 960 : 1024;
  asc.dependsOnCoreCoder = r.readFlag();
  if (asc.dependsOnCoreCoder) asc.coreCoderDelay = r.readBits(14);
  asc.extensionFlag = r.readFlag();
  // what follows a PCE or ER fields is not decoded, so the sync extension is only looked for without them
  if (channelConfig === 0 || asc.extensionFlag || core === 6 || core === 20) return asc;
  if (objectType !== AacObjectType.Sbr && objectType !== AacObjectType.Ps && r.bitsLeft() >= 16) {
    if (r.readBits(11) === 0x2b7 && readObjectType(r) === AacObjectType.Sbr) {
      asc.sbrPresentFlag = r.readFlag();
      if (asc.sbrPresentFlag) {
        const ext = readSampleRate(r);
        asc.extensionSampleRateIndex = ext.index;
        asc.extensionSampleRate = ext.rate;
        if (r.bitsLeft() >= 12 && r.readBits(11) === 0x548) asc.psPresentFlag = r.readFlag();
      }
    }
  }
  return asc;
}

/** Fields {@link serializeAudioSpecificConfig} writes; `sampleRate` is read only for index 15. */
export type AudioSpecificConfigInit = Omit<AudioSpecificConfig, 'channels' | 'sampleRate' | 'frameLength'> &
  Partial<Pick<AudioSpecificConfig, 'sampleRate' | 'frameLength'>>;

function rateBits(index: number): number {
  return index === EXPLICIT_SAMPLE_RATE_INDEX ? 28 : 4;
}

function typeBits(t: number): number {
  return t >= 31 ? 11 : 5;
}

/**
 * Writes an AudioSpecificConfig in one allocation: the fields {@link parseAudioSpecificConfig} returns,
 * so parse∘serialize is the identity for what it decodes (e.g. ffmpeg's `12 10 56 e5 00`).
 * @throws ParseError for an object type, index or rate out of range.
 */
export function serializeAudioSpecificConfig(asc: AudioSpecificConfigInit): Uint8Array {
  const F = 'aac-asc';
  const explicitRate = (index: number, rate: number | undefined): void => {
    if (index > 15 || (index !== 15 && AAC_SAMPLE_RATES[index] === undefined)) throw new ParseError(F, `bad samplingFrequencyIndex ${index}`);
    if (index === 15 && (rate === undefined || rate < 1 || rate > 0xffffff)) throw new ParseError(F, `bad explicit sampling frequency ${rate}`);
  };
  if (asc.objectType < 1 || asc.objectType > 95) throw new ParseError(F, `bad audioObjectType ${asc.objectType}`);
  explicitRate(asc.sampleRateIndex, asc.sampleRate);
  if (asc.channelConfig < 0 || asc.channelConfig > 15) throw new ParseError(F, `bad channelConfiguration ${asc.channelConfig}`);
  const hier = asc.objectType === AacObjectType.Sbr || asc.objectType === AacObjectType.Ps;
  const core = hier ? (asc.coreObjectType ?? AacObjectType.Lc) : asc.objectType;
  const extIndex = asc.extensionSampleRateIndex ?? asc.sampleRateIndex;
  let bits = typeBits(asc.objectType) + rateBits(asc.sampleRateIndex) + 4;
  if (hier) {
    explicitRate(extIndex, asc.extensionSampleRate);
    bits += rateBits(extIndex) + typeBits(core);
  }
  const ga = GA_OBJECT_TYPES.has(core);
  if (ga) bits += 3 + (asc.dependsOnCoreCoder ? 14 : 0);
  const sync = ga && !hier && asc.sbrPresentFlag !== undefined;
  if (sync) {
    bits += 11 + 5 + 1;
    if (asc.sbrPresentFlag) {
      explicitRate(extIndex, asc.extensionSampleRate);
      bits += rateBits(extIndex) + (asc.psPresentFlag !== undefined ? 12 : 0);
    }
  }
  const w = new BitWriter(Math.ceil(bits / 8));
  const writeType = (t: number): void => (t >= 31 ? (w.writeBits(31, 5), w.writeBits(t - 32, 6)) : w.writeBits(t, 5));
  const writeRate = (index: number, rate: number | undefined): void => {
    w.writeBits(index, 4);
    if (index === EXPLICIT_SAMPLE_RATE_INDEX) w.writeBits(rate ?? 0, 24);
  };
  writeType(asc.objectType);
  writeRate(asc.sampleRateIndex, asc.sampleRate);
  w.writeBits(asc.channelConfig, 4);
  if (hier) {
    writeRate(extIndex, asc.extensionSampleRate);
    writeType(core);
  }
  if (ga) {
    w.writeBits(asc.frameLength === 960 ? 1 : 0, 1);
    w.writeBits(asc.dependsOnCoreCoder ? 1 : 0, 1);
    if (asc.dependsOnCoreCoder) w.writeBits(asc.coreCoderDelay ?? 0, 14);
    w.writeBits(asc.extensionFlag ? 1 : 0, 1);
  }
  if (sync) {
    w.writeBits(0x2b7, 11);
    w.writeBits(AacObjectType.Sbr, 5);
    w.writeBits(asc.sbrPresentFlag ? 1 : 0, 1);
    if (asc.sbrPresentFlag) {
      writeRate(extIndex, asc.extensionSampleRate);
      if (asc.psPresentFlag !== undefined) {
        w.writeBits(0x548, 11);
        w.writeBits(asc.psPresentFlag ? 1 : 0, 1);
      }
    }
  }
  return w.buf;
}

/** RFC 6381 codec string, e.g. `'mp4a.40.2'` for AAC-LC (HLS CODECS, MSE). */
export function aacCodecString(asc: Pick<AudioSpecificConfig, 'objectType'>): string {
  return `mp4a.40.${asc.objectType}`;
}

/** One ADTS frame (header fields plus the raw payload). */
export interface AdtsFrame {
  /** ID bit: 0 = MPEG-4, 1 = MPEG-2 */
  mpegVersion: 2 | 4;
  protectionAbsent: boolean;
  /** profile_ObjectType + 1, i.e. the MPEG-4 audioObjectType (2 = LC) */
  objectType: number;
  sampleRateIndex: number;
  sampleRate: number;
  channelConfig: number;
  channels: number;
  /** aac_frame_length: header, CRC and payload */
  frameLength: number;
  /** 7, or 9 with a CRC */
  headerLength: number;
  bufferFullness: number;
  /** raw_data_block() bytes; a view into the parsed buffer */
  payload: Uint8Array;
}

/** ADTS header size without CRC. */
export const ADTS_HEADER_LENGTH = 7;

/**
 * Parses the ADTS frame at `offset` of `buf` (ISO/IEC 14496-3 1.A.2.2).
 * @returns the frame; `payload` is a view into `buf`.
 * @throws ParseError on a missing syncword, a reserved index, a bad length or a truncated frame;
 *   UnsupportedError when the frame packs more than one raw_data_block (rare; no encoder we know makes it).
 */
export function parseAdts(buf: Uint8Array, offset = 0): AdtsFrame {
  const F = 'aac-adts';
  if (buf.length - offset < ADTS_HEADER_LENGTH) throw new ParseError(F, `${buf.length - offset} bytes, shorter than a header`, offset);
  const r = new BitReader(buf.subarray(offset, offset + ADTS_HEADER_LENGTH), F);
  if (r.readBits(12) !== 0xfff) throw new ParseError(F, 'no syncword', offset);
  const mpegVersion = r.readBit() === 1 ? 2 : 4;
  if (r.readBits(2) !== 0) throw new ParseError(F, 'layer is not 0', offset + 1);
  const protectionAbsent = r.readFlag();
  const objectType = r.readBits(2) + 1;
  const sampleRateIndex = r.readBits(4);
  const sampleRate = AAC_SAMPLE_RATES[sampleRateIndex];
  if (sampleRate === undefined) throw new ParseError(F, `reserved sampling_frequency_index ${sampleRateIndex}`, offset + 2);
  r.skip(1); // private_bit
  const channelConfig = r.readBits(3);
  r.skip(4); // original_copy, home, copyright_identification_bit, copyright_identification_start
  const frameLength = r.readBits(13);
  const bufferFullness = r.readBits(11);
  const blocks = r.readBits(2) + 1;
  const headerLength = protectionAbsent ? ADTS_HEADER_LENGTH : ADTS_HEADER_LENGTH + 2;
  if (frameLength <= headerLength) throw new ParseError(F, `aac_frame_length ${frameLength} leaves no payload`, offset + 3);
  if (frameLength > buf.length - offset) {
    throw new ParseError(F, `aac_frame_length ${frameLength} runs past the ${buf.length - offset} bytes left`, offset + 3);
  }
  if (blocks !== 1) throw new UnsupportedError(`ADTS frame with ${blocks} raw data blocks`);
  return {
    mpegVersion,
    protectionAbsent,
    objectType,
    sampleRateIndex,
    sampleRate,
    channelConfig,
    channels: CHANNELS_BY_CONFIG[channelConfig] as number,
    frameLength,
    headerLength,
    bufferFullness,
    payload: buf.subarray(offset + headerLength, offset + frameLength),
  };
}

/**
 * Splits back-to-back ADTS frames (an `.aac` stream, an MPEG-TS PES payload).
 * @returns frames whose payloads are views into `buf`.
 * @throws what {@link parseAdts} throws, for the first bad frame.
 */
export function splitAdtsFrames(buf: Uint8Array): AdtsFrame[] {
  const frames: AdtsFrame[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const frame = parseAdts(buf, pos);
    frames.push(frame);
    pos += frame.frameLength;
  }
  return frames;
}

/** Largest payload one ADTS frame can carry: aac_frame_length is 13 bits. */
export const MAX_ADTS_PAYLOAD = 0x1fff - ADTS_HEADER_LENGTH;

/**
 * A 7-byte ADTS header (MPEG-4, no CRC, buffer fullness 0x7FF = VBR, as ffmpeg writes) to put in front
 * of one raw AAC frame of `payloadLength` bytes.
 * @throws ParseError when the config cannot be expressed in ADTS (object type > 4, index > 12,
 *   channelConfig > 7) or the payload is too long.
 */
export function adtsHeader(
  config: Pick<AudioSpecificConfig, 'objectType' | 'sampleRateIndex' | 'channelConfig'>,
  payloadLength: number,
): Uint8Array {
  const F = 'aac-adts';
  const { objectType, sampleRateIndex, channelConfig } = config;
  if (objectType < 1 || objectType > 4) throw new ParseError(F, `audioObjectType ${objectType} does not fit ADTS`);
  if (AAC_SAMPLE_RATES[sampleRateIndex] === undefined) throw new ParseError(F, `samplingFrequencyIndex ${sampleRateIndex} does not fit ADTS`);
  if (channelConfig < 0 || channelConfig > 7) throw new ParseError(F, `channelConfiguration ${channelConfig} does not fit ADTS`);
  if (payloadLength < 1 || payloadLength > MAX_ADTS_PAYLOAD) throw new ParseError(F, `payload of ${payloadLength} bytes does not fit ADTS`);
  const frameLength = ADTS_HEADER_LENGTH + payloadLength;
  const w = new BitWriter(ADTS_HEADER_LENGTH);
  w.writeBits(0xfff, 12);
  w.writeBits(0, 1); // ID: MPEG-4
  w.writeBits(0, 2); // layer
  w.writeBits(1, 1); // protection_absent
  w.writeBits(objectType - 1, 2);
  w.writeBits(sampleRateIndex, 4);
  w.writeBits(0, 1); // private_bit
  w.writeBits(channelConfig, 3);
  w.writeBits(0, 4); // original_copy, home, copyright bits
  w.writeBits(frameLength, 13);
  w.writeBits(0x7ff, 11);
  w.writeBits(0, 2); // one raw_data_block
  return w.buf;
}
