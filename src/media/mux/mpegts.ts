/**
 * MPEG-2 Transport Stream muxer for H.264 + AAC, for legacy HLS players (RFC 8216bis §3.2): PAT/PMT, one PES per
 * access unit, PCR on the PCR PID, continuity counters, adaptation-field stuffing and the random access
 * indicator on keyframes. Each `mux()` call computes the size of its output first and allocates once.
 *
 * Specifications: ISO/IEC 13818-1 (2.4.3 transport packet, 2.4.3.4 adaptation field, 2.4.3.6 PES packet,
 * 2.4.4.3 PAT, 2.4.4.8 PMT, Annex A CRC-32), ISO/IEC 14496-10 Annex B (byte stream, 7.4.2.4 AUD),
 * ISO/IEC 14496-3 1.A.2 (ADTS).
 *
 * ```
 *  transport packet (188 bytes)
 *  +------+-----+------+------+---------------+-------------+----+-------------------+---------+
 *  | 0x47 | TEI | PUSI | prio | PID (13 bits) | scrambling  | AF | continuity (4 b)  | AF/data |
 *  +------+-----+------+------+---------------+-------------+----+-------------------+---------+
 * ```
 */
import { UnsupportedError } from '../../errors.js';
import { ADTS_HEADER_LENGTH, adtsHeader, parseAudioSpecificConfig, type AudioSpecificConfig } from '../codecs/aac.js';
import { NalUnitType, nalType } from '../codecs/h264.js';

/** Size of a transport packet. */
export const TS_PACKET_SIZE = 188;
/** PID of the program map table (as ffmpeg and most muxers use). */
export const PMT_PID = 0x1000;
/** PID of the H.264 elementary stream. */
export const VIDEO_PID = 0x100;
/** PID of the AAC elementary stream. */
export const AUDIO_PID = 0x101;
/** stream_type for H.264 (ISO/IEC 13818-1 Table 2-34). */
export const STREAM_TYPE_H264 = 0x1b;
/** stream_type for AAC in ADTS (ISO/IEC 13818-7 audio with ADTS transport syntax). */
export const STREAM_TYPE_AAC_ADTS = 0x0f;
/**
 * Added to every timestamp, in 90 kHz ticks: 1.4 s, what ffmpeg's mpegts muxer starts at, so that the PCR
 * (which runs {@link PCR_LEAD_TICKS} ahead of the DTS) never goes below zero.
 */
export const TS_TIMESTAMP_OFFSET = 126000;
/**
 * How far the PCR runs before the DTS of the access unit that carries it: 0.7 s, ffmpeg's default `muxdelay`.
 * Decoders buffer the frame for at most this long, well inside the T-STD buffer model for HLS bitrates.
 */
export const PCR_LEAD_TICKS = 63000;

/** One access unit to mux. */
export interface TsFrame {
  kind: 'video' | 'audio';
  /** decode time in 90 kHz ticks (before {@link TS_TIMESTAMP_OFFSET}) */
  dts: number;
  /** presentation time in 90 kHz ticks */
  pts: number;
  keyframe: boolean;
  /**
   * Video: the NAL units of the picture without start codes (an access unit delimiter is added, SPS/PPS are
   * added before keyframes that do not carry them, and AUDs already present are dropped). Audio: one raw AAC frame.
   */
  units: readonly Uint8Array[];
}

/** Tracks of the transport stream. At least one must be present. */
export interface TsTracks {
  video?: { sps: Uint8Array; pps: Uint8Array };
  /** AAC AudioSpecificConfig; must be expressible in ADTS (object type 1–4 or SBR/PS over one, indexed rate) */
  audio?: { config: Uint8Array };
}

/** CRC-32/MPEG-2 table: polynomial 0x04C11DB7, MSB first (ISO/IEC 13818-1 Annex A). */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32/MPEG-2 of `buf` (init 0xFFFFFFFF, no reflection, no final xor). */
export function crc32Mpeg2(buf: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of buf) crc = ((crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ b) & 0xff] as number)) >>> 0;
  return crc >>> 0;
}

/** Access unit delimiter NAL: primary_pic_type 7 (any slice type) + rbsp stop bit. */
const AUD_NAL = Uint8Array.of(0x09, 0xf0);
const START_CODE = Uint8Array.of(0, 0, 0, 1);

/** A PES packet described as pieces, to be written straight into transport packets. */
interface PesPlan {
  pid: number;
  pieces: Uint8Array[];
  length: number;
  /** PCR base to put in the first packet's adaptation field, or -1 */
  pcr: number;
  randomAccess: boolean;
}

/**
 * Stateful MPEG-TS muxer: keeps the continuity counters of every PID across calls, so consecutive `mux()` outputs
 * (parts of one HLS segment, or consecutive segments) concatenate into one valid stream.
 */
export class TsMuxer {
  private readonly cc = new Map<number, number>();
  private readonly asc: AudioSpecificConfig | undefined;
  private readonly pat: Uint8Array;
  private readonly pmt: Uint8Array;
  /** PID that carries the PCR: video when present, else audio (ISO/IEC 13818-1 2.4.4.9) */
  readonly pcrPid: number;

  /**
   * @throws UnsupportedError when there is no track, or the AAC config cannot be carried in ADTS.
   * @throws ParseError when the AudioSpecificConfig does not parse.
   */
  constructor(private readonly tracks: TsTracks) {
    if (!tracks.video && !tracks.audio) throw new UnsupportedError('MPEG-TS without tracks');
    if (tracks.audio) {
      const asc = parseAudioSpecificConfig(tracks.audio.config);
      // HE-AAC (explicit SBR/PS signaling) travels in ADTS as its core codec; decoders find SBR implicitly
      const objectType = (asc.objectType === 5 || asc.objectType === 29) && asc.coreObjectType !== undefined ? asc.coreObjectType : asc.objectType;
      if (objectType < 1 || objectType > 4 || asc.sampleRateIndex > 12) {
        throw new UnsupportedError(`AAC object type ${asc.objectType} / sample rate index ${asc.sampleRateIndex} cannot be carried in ADTS`);
      }
      this.asc = { ...asc, objectType };
    }
    this.pcrPid = tracks.video ? VIDEO_PID : AUDIO_PID;
    this.pat = patSection();
    this.pmt = pmtSection(this.pcrPid, tracks);
  }

  /**
   * Muxes `frames` into transport packets, optionally preceded by a PAT and a PMT (each HLS segment starts with
   * them so it can be decoded alone). Timestamps are written modulo 2^33 after adding {@link TS_TIMESTAMP_OFFSET}.
   * @returns a new buffer holding whole 188-byte packets.
   */
  mux(frames: readonly TsFrame[], withTables: boolean): Uint8Array {
    const plans = frames.map((f) => (f.kind === 'video' ? this.videoPes(f) : this.audioPes(f)));
    let packets = withTables ? 2 : 0;
    for (const p of plans) packets += packetCount(p);
    const out = new Uint8Array(packets * TS_PACKET_SIZE);
    let pos = 0;
    if (withTables) {
      pos = this.writeSection(out, pos, 0, this.pat);
      pos = this.writeSection(out, pos, PMT_PID, this.pmt);
    }
    for (const p of plans) pos = this.writePes(out, pos, p);
    return out;
  }

  private nextCc(pid: number): number {
    const v = ((this.cc.get(pid) ?? -1) + 1) & 0x0f;
    this.cc.set(pid, v);
    return v;
  }

  private videoPes(f: TsFrame): PesPlan {
    if (!this.tracks.video) throw new UnsupportedError('video frame for a TS without a video track');
    let hasSps = false;
    let hasPps = false;
    for (const u of f.units) {
      const t = nalType(u);
      if (t === NalUnitType.Sps) hasSps = true;
      else if (t === NalUnitType.Pps) hasPps = true;
    }
    const pieces: Uint8Array[] = [];
    let payload = 0;
    const add = (nal: Uint8Array): void => {
      pieces.push(START_CODE, nal);
      payload += START_CODE.length + nal.byteLength;
    };
    const header = pesHeader(0xe0, f.pts, f.dts, 0); // length 0: unbounded, allowed for video only
    pieces.push(header);
    add(AUD_NAL);
    if (f.keyframe && !hasSps) add(this.tracks.video.sps);
    if (f.keyframe && !hasPps) add(this.tracks.video.pps);
    for (const u of f.units) if (u.byteLength > 0 && nalType(u) !== NalUnitType.AccessUnitDelimiter) add(u);
    const pcr = this.pcrPid === VIDEO_PID ? Math.max(0, f.dts + TS_TIMESTAMP_OFFSET - PCR_LEAD_TICKS) : -1;
    return { pid: VIDEO_PID, pieces, length: header.byteLength + payload, pcr, randomAccess: f.keyframe };
  }

  private audioPes(f: TsFrame): PesPlan {
    const asc = this.asc;
    if (!asc) throw new UnsupportedError('audio frame for a TS without an audio track');
    let raw = 0;
    for (const u of f.units) raw += u.byteLength;
    const adts = adtsHeader(asc, raw);
    const header = pesHeader(0xc0, f.pts, f.pts, ADTS_HEADER_LENGTH + raw);
    const pcr = this.pcrPid === AUDIO_PID ? Math.max(0, f.dts + TS_TIMESTAMP_OFFSET - PCR_LEAD_TICKS) : -1;
    return {
      pid: AUDIO_PID,
      pieces: [header, adts, ...f.units],
      length: header.byteLength + ADTS_HEADER_LENGTH + raw,
      pcr,
      randomAccess: this.pcrPid === AUDIO_PID,
    };
  }

  /** Writes a PSI section (PAT or PMT) as one packet with pointer_field 0 and 0xFF fill. */
  private writeSection(out: Uint8Array, pos: number, pid: number, section: Uint8Array): number {
    out[pos] = 0x47;
    out[pos + 1] = 0x40 | ((pid >>> 8) & 0x1f); // payload_unit_start_indicator
    out[pos + 2] = pid & 0xff;
    out[pos + 3] = 0x10 | this.nextCc(pid); // payload only
    out[pos + 4] = 0; // pointer_field
    out.set(section, pos + 5);
    out.fill(0xff, pos + 5 + section.byteLength, pos + TS_PACKET_SIZE);
    return pos + TS_PACKET_SIZE;
  }

  /** Splits one PES into transport packets; the last packet is padded with adaptation-field stuffing. */
  private writePes(out: Uint8Array, pos: number, p: PesPlan): number {
    let remaining = p.length;
    let piece = 0;
    let pieceOff = 0;
    let first = true;
    while (remaining > 0) {
      const hasPcr = first && p.pcr >= 0;
      const hasFlags = first && (hasPcr || p.randomAccess);
      // adaptation field bytes we must write: length byte + flags byte (+ 6 PCR bytes)
      const afMin = hasFlags ? 2 + (hasPcr ? 6 : 0) : 0;
      const capacity = TS_PACKET_SIZE - 4 - afMin;
      const take = Math.min(capacity, remaining);
      const stuffing = capacity - take;
      const afLen = afMin + stuffing; // total adaptation field bytes including its length byte
      out[pos] = 0x47;
      out[pos + 1] = (first ? 0x40 : 0) | ((p.pid >>> 8) & 0x1f);
      out[pos + 2] = p.pid & 0xff;
      out[pos + 3] = (afLen > 0 ? 0x30 : 0x10) | this.nextCc(p.pid);
      let o = pos + 4;
      if (afLen > 0) {
        out[o] = afLen - 1; // adaptation_field_length excludes itself
        if (afLen > 1) {
          out[o + 1] = (p.randomAccess && first ? 0x40 : 0) | (hasPcr ? 0x10 : 0);
          let a = o + 2;
          if (hasPcr) {
            writePcr(out, a, p.pcr);
            a += 6;
          }
          out.fill(0xff, a, o + afLen);
        }
        o += afLen;
      }
      // copy `take` bytes from the pieces
      let left = take;
      while (left > 0) {
        const src = p.pieces[piece] as Uint8Array;
        const n = Math.min(left, src.byteLength - pieceOff);
        out.set(n === src.byteLength && pieceOff === 0 ? src : src.subarray(pieceOff, pieceOff + n), o);
        o += n;
        left -= n;
        pieceOff += n;
        if (pieceOff === src.byteLength) {
          piece++;
          pieceOff = 0;
        }
      }
      remaining -= take;
      pos += TS_PACKET_SIZE;
      first = false;
    }
    return pos;
  }
}

/** Transport packets a PES needs (must match `writePes`). */
function packetCount(p: PesPlan): number {
  const afFirst = p.pcr >= 0 || p.randomAccess ? 2 + (p.pcr >= 0 ? 6 : 0) : 0;
  const firstCap = TS_PACKET_SIZE - 4 - afFirst;
  if (p.length <= firstCap) return 1;
  return 1 + Math.ceil((p.length - firstCap) / (TS_PACKET_SIZE - 4));
}

/** Writes a 33-bit PCR base with a zero extension (6 bytes). */
function writePcr(out: Uint8Array, o: number, base: number): void {
  const b = base % 2 ** 33;
  out[o] = Math.floor(b / 2 ** 25) & 0xff;
  out[o + 1] = Math.floor(b / 2 ** 17) & 0xff;
  out[o + 2] = Math.floor(b / 2 ** 9) & 0xff;
  out[o + 3] = Math.floor(b / 2 ** 1) & 0xff;
  out[o + 4] = ((b % 2) << 7) | 0x7e; // 6 reserved bits, extension bit 8
  out[o + 5] = 0; // extension low byte
}

/** Writes a 33-bit PTS/DTS with its 4-bit prefix and marker bits (ISO/IEC 13818-1 2.4.3.7). */
function writeTimestamp(out: Uint8Array, o: number, prefix: number, ts: number): void {
  const t = ts % 2 ** 33;
  out[o] = (prefix << 4) | ((Math.floor(t / 2 ** 30) & 0x07) << 1) | 1;
  const mid = Math.floor(t / 2 ** 15) & 0x7fff;
  out[o + 1] = mid >>> 7;
  out[o + 2] = ((mid & 0x7f) << 1) | 1;
  const low = t & 0x7fff;
  out[o + 3] = low >>> 7;
  out[o + 4] = ((low & 0x7f) << 1) | 1;
}

/**
 * A PES header with PTS (and DTS when it differs). `payloadLength` is the elementary stream bytes that follow;
 * 0 writes PES_packet_length 0 (unbounded, video only) — also used when the length does not fit 16 bits.
 */
function pesHeader(streamId: number, pts: number, dts: number, payloadLength: number): Uint8Array {
  const withDts = pts !== dts;
  const hdrData = withDts ? 10 : 5;
  const h = new Uint8Array(9 + hdrData);
  h[2] = 1; // packet_start_code_prefix 00 00 01
  h[3] = streamId;
  const pesLen = payloadLength === 0 ? 0 : 3 + hdrData + payloadLength;
  const len = pesLen > 0xffff ? 0 : pesLen;
  h[4] = len >>> 8;
  h[5] = len & 0xff;
  h[6] = 0x80; // '10' marker, no scrambling, no priority, no alignment flag, no copyright, original
  h[7] = withDts ? 0xc0 : 0x80; // PTS_DTS_flags
  h[8] = hdrData;
  writeTimestamp(h, 9, withDts ? 0x3 : 0x2, pts + TS_TIMESTAMP_OFFSET);
  if (withDts) writeTimestamp(h, 14, 0x1, dts + TS_TIMESTAMP_OFFSET);
  return h;
}

/** The program association table: program 1 → PMT_PID (ISO/IEC 13818-1 2.4.4.3). */
function patSection(): Uint8Array {
  const s = new Uint8Array(16);
  s[0] = 0x00; // table_id
  const sectionLength = 13; // bytes after section_length: 5 header + 4 program + 4 CRC
  s[1] = 0xb0 | (sectionLength >>> 8); // section_syntax_indicator, '0', reserved
  s[2] = sectionLength & 0xff;
  s[3] = 0;
  s[4] = 1; // transport_stream_id 1
  s[5] = 0xc1; // reserved, version 0, current_next_indicator
  s[6] = 0; // section_number
  s[7] = 0; // last_section_number
  s[8] = 0;
  s[9] = 1; // program_number 1
  s[10] = 0xe0 | (PMT_PID >>> 8);
  s[11] = PMT_PID & 0xff;
  writeCrc(s);
  return s;
}

/** The program map table of program 1 (ISO/IEC 13818-1 2.4.4.8). */
function pmtSection(pcrPid: number, tracks: TsTracks): Uint8Array {
  const streams: [number, number][] = [];
  if (tracks.video) streams.push([STREAM_TYPE_H264, VIDEO_PID]);
  if (tracks.audio) streams.push([STREAM_TYPE_AAC_ADTS, AUDIO_PID]);
  const sectionLength = 9 + 5 * streams.length + 4;
  const s = new Uint8Array(3 + sectionLength);
  s[0] = 0x02; // table_id
  s[1] = 0xb0 | (sectionLength >>> 8);
  s[2] = sectionLength & 0xff;
  s[3] = 0;
  s[4] = 1; // program_number
  s[5] = 0xc1; // version 0, current
  s[6] = 0;
  s[7] = 0;
  s[8] = 0xe0 | (pcrPid >>> 8);
  s[9] = pcrPid & 0xff;
  s[10] = 0xf0; // program_info_length 0
  s[11] = 0;
  let o = 12;
  for (const [type, pid] of streams) {
    s[o] = type;
    s[o + 1] = 0xe0 | (pid >>> 8);
    s[o + 2] = pid & 0xff;
    s[o + 3] = 0xf0; // ES_info_length 0
    s[o + 4] = 0;
    o += 5;
  }
  writeCrc(s);
  return s;
}

function writeCrc(s: Uint8Array): void {
  const crc = crc32Mpeg2(s.subarray(0, s.byteLength - 4));
  const o = s.byteLength - 4;
  s[o] = crc >>> 24;
  s[o + 1] = (crc >>> 16) & 0xff;
  s[o + 2] = (crc >>> 8) & 0xff;
  s[o + 3] = crc & 0xff;
}
