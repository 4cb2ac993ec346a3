/**
 * H.264 NAL unit framing: Annex-B byte streams, AVCC length-prefixed units, emulation prevention,
 * the AVCDecoderConfigurationRecord, and the RFC 6381 codec string.
 * Pure functions over `Uint8Array`; parsers return views (`subarray`), serializers allocate once.
 * Specifications: ITU-T Rec. H.264 (NAL syntax 7.3.1, byte stream Annex B), ISO/IEC 14496-15 5.3.3.1.
 */
import { LimitError, ParseError } from '../../errors.js';
import { readUint16BE, toHex, writeUint16BE } from '../bytes.js';
import { parseSps, removeEmulationPrevention } from './h264-sps.js';

/** Removes emulation prevention bytes (H.264 7.4.1); copies only when there are any. */
export { removeEmulationPrevention };

/** NAL unit types, ITU-T H.264 Table 7-1, plus the RTP aggregation/fragmentation types of RFC 6184 §5.2. */
export const NalUnitType = {
  NonIdrSlice: 1,
  DataPartitionA: 2,
  DataPartitionB: 3,
  DataPartitionC: 4,
  IdrSlice: 5,
  Sei: 6,
  Sps: 7,
  Pps: 8,
  AccessUnitDelimiter: 9,
  EndOfSequence: 10,
  EndOfStream: 11,
  FillerData: 12,
  SpsExtension: 13,
  PrefixNalUnit: 14,
  SubsetSps: 15,
  DepthParameterSet: 16,
  AuxiliarySlice: 19,
  SliceExtension: 20,
  SliceExtensionDepth: 21,
  StapA: 24,
  StapB: 25,
  Mtap16: 26,
  Mtap24: 27,
  FuA: 28,
  FuB: 29,
} as const;

/** One of the values of {@link NalUnitType}. */
export type NalUnitTypeValue = (typeof NalUnitType)[keyof typeof NalUnitType];

const nalNames = new Map<number, string>(Object.entries(NalUnitType).map(([k, v]) => [v, k]));

/** Name of a NAL unit type for logs, e.g. `'IdrSlice'`; `'Unspecified<n>'`/`'Reserved<n>'` otherwise. */
export function nalUnitTypeName(type: number): string {
  return nalNames.get(type) ?? (type === 0 || type >= 30 ? `Unspecified${type}` : `Reserved${type}`);
}

/** `nal_unit_type` of a NAL unit (low 5 bits of its first byte); the NAL unit must not be empty. */
export function nalType(nal: Uint8Array): number {
  return (nal[0] ?? 0) & 0x1f;
}

/**
 * Largest access unit we accept, in bytes. A 2160p IDR at 100 Mbit/s and 30 fps averages ~420 KB per
 * frame and an IDR is typically up to 10x that (~4 MB); 8 MiB leaves headroom while preventing RAM
 * exhaustion from a bogus length field. Same order as mediacommon's `h264.MaxAccessUnitSize`.
 */
export const MAX_ACCESS_UNIT_SIZE = 8 * 1024 * 1024;

/**
 * Largest number of NAL units in one access unit. An encoder that cuts one slice per macroblock row
 * makes 135 slices at 2160p (3840/16 = 240 wide, 2160/16 = 135 rows), plus AUD, SPS, PPS and a handful
 * of SEIs; 256 covers that with headroom and bounds the array we build per access unit.
 */
export const MAX_NALUS_PER_ACCESS_UNIT = 256;

/** Position of the first byte of the next `00 00 01` at or after `from`, or -1. */
function findStartCode(buf: Uint8Array, from: number): number {
  const n = buf.length;
  let i = from;
  while (i + 2 < n) {
    const b2 = buf[i + 2] as number;
    // a start code ends in 01: when byte i+2 is > 1 no start code can begin at i, i+1 or i+2
    if (b2 > 1) {
      i += 3;
    } else if (b2 === 1) {
      if (buf[i] === 0 && buf[i + 1] === 0) return i;
      i += 3;
    } else {
      i += 1;
    }
  }
  return -1;
}

function checkCount(count: number): void {
  if (count > MAX_NALUS_PER_ACCESS_UNIT) {
    throw new LimitError('h264 NAL units per access unit', MAX_NALUS_PER_ACCESS_UNIT, count);
  }
}

function checkSize(size: number): void {
  if (size > MAX_ACCESS_UNIT_SIZE) throw new LimitError('h264 access unit bytes', MAX_ACCESS_UNIT_SIZE, size);
}

/**
 * Splits an Annex-B byte stream (ITU-T H.264 Annex B) into NAL units. Accepts 3- and 4-byte start codes,
 * leading zero bytes and trailing_zero_8bits; skips empty NAL units (consecutive start codes).
 * @returns views into `buf`, each at least one byte long; valid while `buf` is.
 * @throws ParseError when `buf` does not begin with a start code or holds no NAL unit; LimitError past
 *   {@link MAX_ACCESS_UNIT_SIZE} or {@link MAX_NALUS_PER_ACCESS_UNIT}.
 */
export function splitAnnexB(buf: Uint8Array): Uint8Array[] {
  checkSize(buf.length);
  const first = findStartCode(buf, 0);
  if (first < 0) throw new ParseError('h264-annexb', 'no start code', 0);
  for (let i = 0; i < first; i++) {
    if (buf[i] !== 0) throw new ParseError('h264-annexb', 'data before the first start code', i);
  }
  const out: Uint8Array[] = [];
  let start = first + 3;
  for (;;) {
    const next = findStartCode(buf, start);
    let end = next < 0 ? buf.length : next;
    // zeros before a start code belong to it (4-byte form) or are trailing_zero_8bits; a NAL unit never
    // ends in 0x00 because rbsp_trailing_bits end in a 1 bit (H.264 7.4.1)
    while (end > start && buf[end - 1] === 0) end--;
    if (end > start) {
      out.push(buf.subarray(start, end));
      checkCount(out.length);
    }
    if (next < 0) break;
    start = next + 3;
  }
  if (out.length === 0) throw new ParseError('h264-annexb', 'no NAL units', 0);
  return out;
}

function checkNalus(nalus: readonly Uint8Array[], format: string): number {
  checkCount(nalus.length);
  let size = 0;
  for (const nal of nalus) {
    if (nal.length === 0) throw new ParseError(format, 'empty NAL unit');
    size += nal.length;
  }
  return size;
}

/** Bytes {@link joinAnnexB} writes for `nalus`. */
export function annexBSize(nalus: readonly Uint8Array[]): number {
  return checkNalus(nalus, 'h264-annexb') + 4 * nalus.length;
}

/**
 * Writes NAL units as an Annex-B byte stream with 4-byte start codes, in one allocation.
 * @throws ParseError for an empty NAL unit; LimitError for too many NAL units.
 */
export function joinAnnexB(nalus: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(annexBSize(nalus));
  let pos = 0;
  for (const nal of nalus) {
    out[pos + 3] = 1; // 00 00 00 01
    out.set(nal, pos + 4);
    pos += 4 + nal.length;
  }
  return out;
}

function checkLengthSize(lengthSize: number): void {
  if (lengthSize !== 1 && lengthSize !== 2 && lengthSize !== 4) {
    // ISO/IEC 14496-15 5.3.3.1.2: lengthSizeMinusOne is 0, 1 or 3
    throw new ParseError('h264-avcc', `NAL length size ${lengthSize} is not 1, 2 or 4`);
  }
}

/**
 * Splits AVCC data (each NAL unit prefixed by its big-endian length, as in FLV/MP4 samples).
 * Zero-length units are skipped.
 * @param lengthSize bytes per length prefix: 1, 2 or 4 (`lengthSizeMinusOne + 1` of the avcC record).
 * @returns views into `buf`; valid while `buf` is.
 * @throws ParseError when a length runs past the end; LimitError past the access-unit limits.
 */
export function splitAvcc(buf: Uint8Array, lengthSize = 4): Uint8Array[] {
  checkLengthSize(lengthSize);
  checkSize(buf.length);
  const out: Uint8Array[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (pos + lengthSize > buf.length) {
      throw new ParseError('h264-avcc', `truncated NAL length (${buf.length - pos} of ${lengthSize} bytes)`, pos);
    }
    let len = 0;
    for (let i = 0; i < lengthSize; i++) len = len * 256 + (buf[pos + i] as number);
    pos += lengthSize;
    if (len > buf.length - pos) {
      throw new ParseError('h264-avcc', `NAL length ${len} exceeds the ${buf.length - pos} bytes left`, pos - lengthSize);
    }
    if (len > 0) {
      out.push(buf.subarray(pos, pos + len));
      checkCount(out.length);
    }
    pos += len;
  }
  if (out.length === 0) throw new ParseError('h264-avcc', 'no NAL units', 0);
  return out;
}

/** Bytes {@link joinAvcc} writes for `nalus`. */
export function avccSize(nalus: readonly Uint8Array[], lengthSize = 4): number {
  checkLengthSize(lengthSize);
  return checkNalus(nalus, 'h264-avcc') + lengthSize * nalus.length;
}

/**
 * Writes NAL units length-prefixed (AVCC), in one allocation.
 * @throws ParseError for an empty NAL unit or one too long for `lengthSize`.
 */
export function joinAvcc(nalus: readonly Uint8Array[], lengthSize = 4): Uint8Array {
  const out = new Uint8Array(avccSize(nalus, lengthSize));
  writeAvcc(out, 0, nalus, lengthSize);
  return out;
}

/**
 * Writes NAL units length-prefixed into `out` at `offset` (for callers that put a header in front,
 * such as FLV tags); `out` must have {@link avccSize} bytes free there.
 * @returns the offset after the last byte written.
 * @throws ParseError for an empty NAL unit or one too long for `lengthSize`.
 */
export function writeAvcc(out: Uint8Array, offset: number, nalus: readonly Uint8Array[], lengthSize = 4): number {
  checkLengthSize(lengthSize);
  const max = 2 ** (8 * lengthSize) - 1;
  let pos = offset;
  for (const nal of nalus) {
    if (nal.length === 0) throw new ParseError('h264-avcc', 'empty NAL unit');
    if (nal.length > max) throw new ParseError('h264-avcc', `NAL unit of ${nal.length} bytes does not fit ${lengthSize}-byte length`);
    let len = nal.length;
    for (let i = lengthSize - 1; i >= 0; i--) {
      out[pos + i] = len & 0xff;
      len = Math.floor(len / 256);
    }
    out.set(nal, pos + lengthSize);
    pos += lengthSize + nal.length;
  }
  return pos;
}

/** True when the access unit holds an IDR slice (a random access point). */
export function isKeyframe(nalus: readonly Uint8Array[]): boolean {
  for (const nal of nalus) if (nalType(nal) === NalUnitType.IdrSlice) return true;
  return false;
}

/** The parsed AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1), as carried in FLV and `avcC`. */
export interface AvcConfig {
  /** AVCProfileIndication: profile_idc of the SPS */
  profileIdc: number;
  /** profile_compatibility: the constraint_set flags byte of the SPS */
  profileCompat: number;
  /** AVCLevelIndication: level_idc of the SPS */
  levelIdc: number;
  /** bytes of each NAL length prefix in the samples (lengthSizeMinusOne + 1): 1, 2 or 4 */
  lengthSize: number;
  /** views into the parsed buffer */
  sps: Uint8Array[];
  /** views into the parsed buffer */
  pps: Uint8Array[];
}

/**
 * Parses an AVCDecoderConfigurationRecord. Trailing high-profile fields (chroma format, bit depths,
 * SPS extensions) are not returned; they repeat what the SPS says.
 * @returns parameter sets as views into `buf`.
 * @throws ParseError on a wrong version, truncation or an empty parameter set.
 */
export function parseAvcConfig(buf: Uint8Array): AvcConfig {
  const F = 'h264-avcc-config';
  if (buf.length < 7) throw new ParseError(F, `record of ${buf.length} bytes is shorter than 7`, 0);
  if (buf[0] !== 1) throw new ParseError(F, `configurationVersion ${buf[0]} is not 1`, 0);
  const lengthSize = ((buf[4] as number) & 0x03) + 1;
  if (lengthSize === 3) throw new ParseError(F, 'lengthSizeMinusOne of 2 is not allowed', 4);
  let pos = 5;
  const readSets = (count: number): Uint8Array[] => {
    const sets: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const len = readUint16BE(buf, pos, F);
      pos += 2;
      if (len === 0) throw new ParseError(F, 'empty parameter set', pos - 2);
      if (pos + len > buf.length) throw new ParseError(F, `parameter set of ${len} bytes runs past the end`, pos - 2);
      sets.push(buf.subarray(pos, pos + len));
      pos += len;
    }
    return sets;
  };
  const sps = readSets((buf[pos++] as number) & 0x1f);
  if (pos >= buf.length) throw new ParseError(F, 'missing numOfPictureParameterSets', pos);
  const pps = readSets(buf[pos++] as number);
  return { profileIdc: buf[1] as number, profileCompat: buf[2] as number, levelIdc: buf[3] as number, lengthSize, sps, pps };
}

/** profile_idc values after which the record carries chroma format and bit depths (ISO/IEC 14496-15 5.3.3.1.2). */
const AVCC_EXT_PROFILES = new Set([100, 110, 122, 144]);

/**
 * Writes an AVCDecoderConfigurationRecord (version 1) for the given parameter sets, in one allocation.
 * Profile, compatibility and level come from the first SPS. For High profiles the trailer with
 * chroma_format_idc and bit depths (taken from the parsed first SPS) is written, as ffmpeg does.
 * @throws ParseError when there is no SPS, the first SPS does not parse, or a set is empty/too big.
 */
export function serializeAvcConfig(sps: readonly Uint8Array[], pps: readonly Uint8Array[], lengthSize = 4): Uint8Array {
  const F = 'h264-avcc-config';
  checkLengthSize(lengthSize);
  const first = sps[0];
  if (first === undefined || first.length < 4) throw new ParseError(F, 'need an SPS of at least 4 bytes');
  if (sps.length > 31) throw new ParseError(F, `${sps.length} SPS do not fit 5 bits`);
  if (pps.length > 255) throw new ParseError(F, `${pps.length} PPS do not fit 8 bits`);
  const ext = AVCC_EXT_PROFILES.has(first[1] as number) ? parseSps(first) : undefined;
  let size = ext === undefined ? 7 : 11;
  for (const set of [...sps, ...pps]) {
    if (set.length === 0 || set.length > 0xffff) throw new ParseError(F, `parameter set of ${set.length} bytes`);
    size += 2 + set.length;
  }
  const out = new Uint8Array(size);
  out[0] = 1;
  out[1] = first[1] as number;
  out[2] = first[2] as number;
  out[3] = first[3] as number;
  out[4] = 0xfc | (lengthSize - 1); // 6 reserved bits set
  out[5] = 0xe0 | sps.length; // 3 reserved bits set
  let pos = 6;
  const writeSets = (sets: readonly Uint8Array[]): void => {
    for (const set of sets) {
      writeUint16BE(out, pos, set.length);
      out.set(set, pos + 2);
      pos += 2 + set.length;
    }
  };
  writeSets(sps);
  out[pos++] = pps.length;
  writeSets(pps);
  if (ext !== undefined) {
    out[pos] = 0xfc | ext.chromaFormatIdc; // 6 reserved bits set
    out[pos + 1] = 0xf8 | ext.bitDepthLumaMinus8; // 5 reserved bits set
    out[pos + 2] = 0xf8 | ext.bitDepthChromaMinus8;
    out[pos + 3] = 0; // numOfSequenceParameterSetExt
  }
  return out;
}

/**
 * RFC 6381 codec string of an SPS NAL unit, e.g. `'avc1.64001f'` (profile_idc, constraint flags,
 * level_idc as hex). The 6 hex digits are also SDP's `profile-level-id` (RFC 6184 §8.1).
 * @throws ParseError when the SPS is shorter than 4 bytes.
 */
export function h264CodecString(sps: Uint8Array): string {
  if (sps.length < 4) throw new ParseError('h264-sps', `SPS of ${sps.length} bytes is shorter than 4`, 0);
  return `avc1.${toHex(sps.subarray(1, 4))}`;
}
