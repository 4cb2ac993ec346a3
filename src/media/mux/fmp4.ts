/**
 * Fragmented MP4 (CMAF-style) muxer for H.264, AAC and Opus: the initialization segment (`ftyp` + `moov`) and
 * media fragments (`moof` + `mdat`), as HLS (RFC 8216bis §3.3) and MSE consume them.
 *
 * Time: every track's timescale is its clock rate (90000 for video, the sample rate for audio), so frame
 * timestamps from the bus go into `tfdt`/`trun` without conversion.
 *
 * Specifications: ISO/IEC 14496-12 (ISOBMFF boxes: 4.3 ftyp, 8.2.2 mvhd, 8.3.2 tkhd, 8.4.2 mdhd, 8.4.3 hdlr,
 * 8.8 movie fragments), ISO/IEC 14496-15 5.3.4 (avc1/avcC), ISO/IEC 14496-14 5.6 (esds), "Encapsulation of Opus
 * in ISO Base Media File Format" 4.3 (Opus/dOps).
 */
import { LimitError, UnsupportedError } from '../../errors.js';
import { serializeAvcConfig } from '../codecs/h264.js';

/** Video track of an init segment. `sps`/`pps` are single NAL units without start codes. */
export interface Fmp4VideoTrack {
  kind: 'video';
  codec: 'h264';
  /** track_ID, ≥ 1 */
  id: number;
  /** ticks per second; 90000 for bus video */
  timescale: number;
  width: number;
  height: number;
  sps: Uint8Array;
  pps: Uint8Array;
}

/** AAC track of an init segment. */
export interface Fmp4AacTrack {
  kind: 'audio';
  codec: 'aac';
  id: number;
  /** ticks per second: the sample rate */
  timescale: number;
  sampleRate: number;
  channels: number;
  /** AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), written into esds as DecoderSpecificInfo */
  config: Uint8Array;
}

/** Opus track of an init segment (channel mapping family 0: mono or stereo). */
export interface Fmp4OpusTrack {
  kind: 'audio';
  codec: 'opus';
  id: number;
  /** ticks per second: 48000 (Opus always runs at 48 kHz) */
  timescale: number;
  channels: number;
  /** priming samples (at 48 kHz) to drop when playback starts; {@link OPUS_DEFAULT_PRE_SKIP} when not given */
  preSkip?: number;
  /** sample rate of the encoder input, informational; 48000 when unknown */
  inputSampleRate?: number;
}

/**
 * PreSkip written when the source does not say (RTP, RFC 7587, carries no pre-skip): 312 samples (6.5 ms), the
 * lookahead libopus reports at 48 kHz, which is the encoder of Chromium, Firefox, Safari and OBS. The same value
 * MediaMTX writes for WebRTC and RTSP sources; ffmpeg reads it as the stream's initial padding.
 */
export const OPUS_DEFAULT_PRE_SKIP = 312;

/** Any track of an init segment. */
export type Fmp4Track = Fmp4VideoTrack | Fmp4AacTrack | Fmp4OpusTrack;

/** sample_flags of a sync sample: sample_depends_on = 2 (depends on no other sample), not a non-sync sample. */
export const SAMPLE_FLAGS_SYNC = 0x02000000;
/** sample_flags of a non-sync sample: sample_depends_on = 1 (depends on others), sample_is_non_sync_sample = 1. */
export const SAMPLE_FLAGS_NON_SYNC = 0x01010000;

/** One sample of a fragment. */
export interface Fmp4Sample {
  /** ticks of the track timescale until the next sample's decode time */
  duration: number;
  /** {@link SAMPLE_FLAGS_SYNC} or {@link SAMPLE_FLAGS_NON_SYNC} (ISO/IEC 14496-12 8.8.3.1) */
  flags: number;
  /** pts − dts in ticks; signed (trun version 1) */
  compositionOffset: number;
  /**
   * The sample's bytes, as views. With `lengthPrefixed` (H.264): NAL units without start codes, each written
   * with a 4-byte length prefix (AVCC). Otherwise the pieces are written back to back (audio: one raw frame).
   */
  units: readonly Uint8Array[];
}

/** One track's run of samples in a fragment. */
export interface Fmp4FragmentTrack {
  trackId: number;
  /** decode time of the first sample, in ticks of the track timescale (tfdt, 64-bit) */
  baseMediaDecodeTime: number;
  /** true for H.264: write each unit with a 4-byte length prefix */
  lengthPrefixed: boolean;
  samples: readonly Fmp4Sample[];
}

/** Input of {@link fragment}. */
export interface Fmp4Fragment {
  /** mfhd sequence_number: starts at 1, increases by one per fragment of the stream */
  sequenceNumber: number;
  /** tracks without samples are left out of the fragment */
  tracks: readonly Fmp4FragmentTrack[];
}

/**
 * Largest fragment we build. The mdat size is a 32-bit field (we never write the 64-bit form); a part or segment
 * this big means a broken publisher, and refusing it keeps the HLS memory bound meaningful.
 */
export const MAX_FRAGMENT_BYTES = 0x7fffffff;

/**
 * Writes big-endian fields into a buffer, or only counts them when built without one (the first pass of a
 * two-pass, size-first serialization). Box sizes are patched in `end()`.
 */
class BoxWriter {
  pos = 0;
  private readonly view: DataView | undefined;

  constructor(private readonly buf: Uint8Array | undefined) {
    this.view = buf ? new DataView(buf.buffer, buf.byteOffset, buf.byteLength) : undefined;
  }

  u8(v: number): void {
    if (this.view) this.view.setUint8(this.pos, v);
    this.pos += 1;
  }
  u16(v: number): void {
    if (this.view) this.view.setUint16(this.pos, v);
    this.pos += 2;
  }
  i16(v: number): void {
    if (this.view) this.view.setInt16(this.pos, v);
    this.pos += 2;
  }
  u24(v: number): void {
    if (this.view) {
      this.view.setUint8(this.pos, (v >>> 16) & 0xff);
      this.view.setUint16(this.pos + 1, v & 0xffff);
    }
    this.pos += 3;
  }
  u32(v: number): void {
    if (this.view) this.view.setUint32(this.pos, v >>> 0);
    this.pos += 4;
  }
  i32(v: number): void {
    if (this.view) this.view.setInt32(this.pos, v);
    this.pos += 4;
  }
  /** A non-negative integer up to 2^53 as a 64-bit field. */
  u64(v: number): void {
    if (this.view) {
      this.view.setUint32(this.pos, Math.floor(v / 0x100000000));
      this.view.setUint32(this.pos + 4, v >>> 0);
    }
    this.pos += 8;
  }
  zeros(n: number): void {
    // a fresh Uint8Array is already zeroed
    this.pos += n;
  }
  bytes(b: Uint8Array): void {
    if (this.buf) this.buf.set(b, this.pos);
    this.pos += b.byteLength;
  }
  fourcc(s: string): void {
    for (let i = 0; i < 4; i++) this.u8(s.charCodeAt(i));
  }
  /** Starts a box; returns its offset for `end()`. */
  begin(type: string): number {
    const start = this.pos;
    this.u32(0);
    this.fourcc(type);
    return start;
  }
  /** Starts a full box (version + flags). */
  beginFull(type: string, version: number, flags: number): number {
    const start = this.begin(type);
    this.u8(version);
    this.u24(flags);
    return start;
  }
  end(start: number): void {
    if (this.view) this.view.setUint32(start, this.pos - start);
  }
}

/** Runs `write` twice: once to count, once into a buffer of exactly that size. */
function twoPass(write: (w: BoxWriter) => void): Uint8Array {
  const counter = new BoxWriter(undefined);
  write(counter);
  const out = new Uint8Array(counter.pos);
  const w = new BoxWriter(out);
  write(w);
  return out;
}

/** The unity matrix of mvhd/tkhd (ISO/IEC 14496-12 8.2.2.3), 16.16 and 2.30 fixed point. */
const UNITY_MATRIX = [0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000];

function writeMatrix(w: BoxWriter): void {
  for (const v of UNITY_MATRIX) w.u32(v);
}

/** ISO 639-2/T 'und' packed as three 5-bit letters (mdhd language). */
const LANGUAGE_UND = ((('u'.charCodeAt(0) - 0x60) << 10) | (('n'.charCodeAt(0) - 0x60) << 5) | ('d'.charCodeAt(0) - 0x60)) & 0x7fff;

/**
 * Builds the initialization segment (`ftyp` + `moov`) for `tracks`, in one allocation.
 * @throws UnsupportedError for an Opus track with more than 2 channels (needs a channel mapping table).
 * @throws ParseError when an H.264 SPS cannot be parsed into an avcC record.
 */
export function initSegment(tracks: readonly Fmp4Track[]): Uint8Array {
  if (tracks.length === 0) throw new UnsupportedError('fMP4 init segment without tracks');
  for (const t of tracks) {
    if (t.codec === 'opus' && (t.channels < 1 || t.channels > 2)) {
      throw new UnsupportedError(`Opus with ${t.channels} channels (only mapping family 0: 1 or 2 channels)`);
    }
  }
  // avcC records are built once, outside the two passes
  const avcc = new Map<number, Uint8Array>();
  for (const t of tracks) if (t.codec === 'h264') avcc.set(t.id, serializeAvcConfig([t.sps], [t.pps]));
  const nextTrackId = Math.max(...tracks.map((t) => t.id)) + 1;

  return twoPass((w) => {
    // ftyp: CMAF-compatible brands; iso5 allows default-base-is-moof, iso6 the 64-bit tfdt of version 1
    const ftyp = w.begin('ftyp');
    w.fourcc('iso5');
    w.u32(512); // minor_version
    for (const brand of ['iso5', 'iso6', 'mp41']) w.fourcc(brand);
    w.end(ftyp);

    const moov = w.begin('moov');
    const mvhd = w.beginFull('mvhd', 0, 0);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(1000); // timescale of the (empty) movie duration
    w.u32(0); // duration: unknown, live
    w.u32(0x00010000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(2 + 8); // reserved
    writeMatrix(w);
    w.zeros(24); // pre_defined
    w.u32(nextTrackId);
    w.end(mvhd);

    for (const t of tracks) writeTrak(w, t, avcc.get(t.id));

    const mvex = w.begin('mvex');
    for (const t of tracks) {
      const trex = w.beginFull('trex', 0, 0);
      w.u32(t.id);
      w.u32(1); // default_sample_description_index
      w.u32(0); // default_sample_duration: every trun carries durations
      w.u32(0); // default_sample_size
      w.u32(0); // default_sample_flags
      w.end(trex);
    }
    w.end(mvex);
    w.end(moov);
  });
}

function writeTrak(w: BoxWriter, t: Fmp4Track, avcc: Uint8Array | undefined): void {
  const video = t.kind === 'video';
  const trak = w.begin('trak');

  const tkhd = w.beginFull('tkhd', 0, 0x000003); // track_enabled | track_in_movie
  w.u32(0); // creation_time
  w.u32(0); // modification_time
  w.u32(t.id);
  w.u32(0); // reserved
  w.u32(0); // duration
  w.zeros(8); // reserved
  w.u16(0); // layer
  w.u16(0); // alternate_group
  w.u16(video ? 0 : 0x0100); // volume: 1.0 for audio
  w.u16(0); // reserved
  writeMatrix(w);
  w.u32(video ? t.width * 0x10000 : 0); // width, 16.16
  w.u32(video ? t.height * 0x10000 : 0); // height, 16.16
  w.end(tkhd);

  const mdia = w.begin('mdia');
  const mdhd = w.beginFull('mdhd', 0, 0);
  w.u32(0); // creation_time
  w.u32(0); // modification_time
  w.u32(t.timescale);
  w.u32(0); // duration
  w.u16(LANGUAGE_UND);
  w.u16(0); // pre_defined
  w.end(mdhd);

  const hdlr = w.beginFull('hdlr', 0, 0);
  w.u32(0); // pre_defined
  w.fourcc(video ? 'vide' : 'soun');
  w.zeros(12); // reserved
  for (const c of video ? 'VideoHandler' : 'SoundHandler') w.u8(c.charCodeAt(0));
  w.u8(0); // name terminator
  w.end(hdlr);

  const minf = w.begin('minf');
  if (video) {
    const vmhd = w.beginFull('vmhd', 0, 1); // flags = 1 as the spec requires
    w.u16(0); // graphicsmode: copy
    w.zeros(6); // opcolor
    w.end(vmhd);
  } else {
    const smhd = w.beginFull('smhd', 0, 0);
    w.i16(0); // balance: centre
    w.u16(0); // reserved
    w.end(smhd);
  }
  const dinf = w.begin('dinf');
  const dref = w.beginFull('dref', 0, 0);
  w.u32(1); // entry_count
  const url = w.beginFull('url ', 0, 1); // flags 1: media data is in this file
  w.end(url);
  w.end(dref);
  w.end(dinf);

  const stbl = w.begin('stbl');
  const stsd = w.beginFull('stsd', 0, 0);
  w.u32(1); // entry_count
  if (t.codec === 'h264') writeAvc1(w, t, avcc as Uint8Array);
  else if (t.codec === 'aac') writeMp4a(w, t);
  else writeOpus(w, t);
  w.end(stsd);
  // empty sample tables: samples live in the fragments
  for (const type of ['stts', 'stsc', 'stco']) {
    const b = w.beginFull(type, 0, 0);
    w.u32(0); // entry_count
    w.end(b);
  }
  const stsz = w.beginFull('stsz', 0, 0);
  w.u32(0); // sample_size
  w.u32(0); // sample_count
  w.end(stsz);
  w.end(stbl);
  w.end(minf);
  w.end(mdia);
  w.end(trak);
}

function writeAvc1(w: BoxWriter, t: Fmp4VideoTrack, avcc: Uint8Array): void {
  const avc1 = w.begin('avc1');
  w.zeros(6); // reserved
  w.u16(1); // data_reference_index
  w.u16(0); // pre_defined
  w.u16(0); // reserved
  w.zeros(12); // pre_defined
  w.u16(t.width);
  w.u16(t.height);
  w.u32(0x00480000); // horizresolution 72 dpi
  w.u32(0x00480000); // vertresolution 72 dpi
  w.u32(0); // reserved
  w.u16(1); // frame_count
  w.zeros(32); // compressorname (empty Pascal string)
  w.u16(0x0018); // depth: colour, no alpha
  w.i16(-1); // pre_defined
  const box = w.begin('avcC');
  w.bytes(avcc);
  w.end(box);
  w.end(avc1);
}

/** Writes the common AudioSampleEntry fields (ISO/IEC 14496-12 12.2.3). */
function writeAudioSampleEntryFields(w: BoxWriter, channels: number, sampleRate: number): void {
  w.zeros(6); // reserved
  w.u16(1); // data_reference_index
  w.zeros(8); // reserved
  w.u16(channels);
  w.u16(16); // samplesize
  w.u16(0); // pre_defined
  w.u16(0); // reserved
  // 16.16 fixed point; rates above 65535 Hz do not fit and are given by the decoder config instead
  w.u32(sampleRate <= 0xffff ? sampleRate * 0x10000 : 0);
}

/**
 * Size of an MPEG-4 descriptor length field (ISO/IEC 14496-1 8.3.3, 7 bits per byte). Always the 4-byte form, as
 * ffmpeg writes it: some parsers (mp4frag, older players) read esds fields at fixed offsets.
 */
function descriptorLengthSize(len: number): number {
  if (len >= 0x10000000) throw new UnsupportedError(`descriptor of ${len} bytes`);
  return 4;
}

function writeDescriptorHeader(w: BoxWriter, tag: number, len: number): void {
  w.u8(tag);
  const n = descriptorLengthSize(len);
  for (let i = n - 1; i >= 0; i--) w.u8(((len >>> (7 * i)) & 0x7f) | (i > 0 ? 0x80 : 0));
}

function writeMp4a(w: BoxWriter, t: Fmp4AacTrack): void {
  const mp4a = w.begin('mp4a');
  writeAudioSampleEntryFields(w, t.channels, t.sampleRate);
  const esds = w.beginFull('esds', 0, 0);
  const dsiLen = t.config.byteLength;
  const decLen = 13 + 1 + descriptorLengthSize(dsiLen) + dsiLen;
  const slLen = 1;
  const esLen = 3 + 1 + descriptorLengthSize(decLen) + decLen + 1 + descriptorLengthSize(slLen) + slLen;
  writeDescriptorHeader(w, 0x03, esLen); // ES_Descriptor
  w.u16(t.id); // ES_ID
  w.u8(0); // no stream dependence, URL or OCR stream
  writeDescriptorHeader(w, 0x04, decLen); // DecoderConfigDescriptor
  w.u8(0x40); // objectTypeIndication: Audio ISO/IEC 14496-3
  w.u8((0x05 << 2) | 1); // streamType audio, upStream 0, reserved 1
  w.u24(0); // bufferSizeDB
  w.u32(0); // maxBitrate: unknown
  w.u32(0); // avgBitrate: unknown (variable)
  writeDescriptorHeader(w, 0x05, dsiLen); // DecoderSpecificInfo
  w.bytes(t.config);
  writeDescriptorHeader(w, 0x06, slLen); // SLConfigDescriptor
  w.u8(2); // predefined: reserved for MP4 files
  w.end(esds);
  w.end(mp4a);
}

function writeOpus(w: BoxWriter, t: Fmp4OpusTrack): void {
  const opus = w.begin('Opus');
  writeAudioSampleEntryFields(w, t.channels, 48000);
  const dops = w.begin('dOps');
  w.u8(0); // Version
  w.u8(t.channels); // OutputChannelCount
  w.u16(t.preSkip ?? OPUS_DEFAULT_PRE_SKIP); // PreSkip
  w.u32(t.inputSampleRate ?? 48000); // InputSampleRate: informative
  w.i16(0); // OutputGain
  w.u8(0); // ChannelMappingFamily 0: mono/stereo, no mapping table
  w.end(dops);
  w.end(opus);
}

/** Bytes a sample takes in the mdat. */
export function sampleSize(sample: Fmp4Sample, lengthPrefixed: boolean): number {
  let n = 0;
  for (const u of sample.units) n += u.byteLength + (lengthPrefixed ? 4 : 0);
  return n;
}

/** moof size: mfhd 16; per traf: 8 + tfhd 16 + tfdt(v1) 20 + trun 20 + 16 per sample. */
function moofSize(tracks: readonly Fmp4FragmentTrack[]): number {
  let n = 8 + 16;
  for (const t of tracks) if (t.samples.length > 0) n += 64 + 16 * t.samples.length;
  return n;
}

/** Total size of the fragment {@link fragment} builds. */
export function fragmentSize(f: Fmp4Fragment): number {
  let n = moofSize(f.tracks) + 8;
  for (const t of f.tracks) for (const s of t.samples) n += sampleSize(s, t.lengthPrefixed);
  return n;
}

/** tfhd flags: default-base-is-moof (data offsets count from the moof start). */
const TFHD_DEFAULT_BASE_IS_MOOF = 0x020000;
/** trun flags: data-offset, sample-duration, sample-size, sample-flags, sample-composition-time-offset present. */
const TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800;

/**
 * Builds one media fragment (`moof` + `mdat`) in a single allocation: sizes are computed first, then every
 * sample's bytes are copied once into the mdat (H.264 NAL units get their 4-byte AVCC length on the way).
 * Tracks with no samples are skipped. The result owns its bytes; the inputs' views may be released after.
 * @throws LimitError when the fragment would exceed {@link MAX_FRAGMENT_BYTES}.
 * @throws UnsupportedError when no track has samples.
 */
export function fragment(f: Fmp4Fragment): Uint8Array {
  const tracks = f.tracks.filter((t) => t.samples.length > 0);
  if (tracks.length === 0) throw new UnsupportedError('fMP4 fragment without samples');
  const moof = moofSize(tracks);
  const dataSizes = tracks.map((t) => {
    let n = 0;
    for (const s of t.samples) n += sampleSize(s, t.lengthPrefixed);
    return n;
  });
  const mdatPayload = dataSizes.reduce((a, b) => a + b, 0);
  const total = moof + 8 + mdatPayload;
  if (total > MAX_FRAGMENT_BYTES) throw new LimitError('fMP4 fragment bytes', MAX_FRAGMENT_BYTES, total);

  const out = new Uint8Array(total);
  const w = new BoxWriter(out);
  const moofStart = w.begin('moof');
  const mfhd = w.beginFull('mfhd', 0, 0);
  w.u32(f.sequenceNumber);
  w.end(mfhd);
  let dataOffset = moof + 8; // first mdat payload byte, relative to the moof start
  tracks.forEach((t, i) => {
    const traf = w.begin('traf');
    const tfhd = w.beginFull('tfhd', 0, TFHD_DEFAULT_BASE_IS_MOOF);
    w.u32(t.trackId);
    w.end(tfhd);
    const tfdt = w.beginFull('tfdt', 1, 0);
    w.u64(t.baseMediaDecodeTime);
    w.end(tfdt);
    const trun = w.beginFull('trun', 1, TRUN_FLAGS); // version 1: signed composition offsets
    w.u32(t.samples.length);
    w.i32(dataOffset);
    for (const s of t.samples) {
      w.u32(s.duration);
      w.u32(sampleSize(s, t.lengthPrefixed));
      w.u32(s.flags);
      w.i32(s.compositionOffset);
    }
    w.end(trun);
    w.end(traf);
    dataOffset += dataSizes[i] as number;
  });
  w.end(moofStart);

  const mdat = w.begin('mdat');
  for (const t of tracks) {
    for (const s of t.samples) {
      for (const u of s.units) {
        if (t.lengthPrefixed) w.u32(u.byteLength);
        w.bytes(u);
      }
    }
  }
  w.end(mdat);
  return out;
}
