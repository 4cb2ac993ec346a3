/**
 * FLV audio/video tag bodies as RTMP carries them (message type 8 = audio, 9 = video).
 * Specifications: Adobe FLV/F4V v10.1 E.4.2/E.4.3 (AUDIODATA, VIDEODATA, AVCVIDEOPACKET, AACAUDIODATA)
 * and Enhanced RTMP v2 (veovera), "ExVideoTagHeader" / "ExAudioTagHeader" (FourCC codecs).
 * Parsers return views into the body; serializers compute the size first and allocate once.
 */
import { ParseError, UnsupportedError } from '../../errors.js';
import { readInt24BE, writeUint24BE } from '../bytes.js';
import { avccSize, writeAvcc } from '../codecs/h264.js';

const FV = 'flv-video';
const FA = 'flv-audio';

/** Legacy FLV CodecID values (FLV spec E.4.3.1). */
export const FlvVideoCodec = { SorensonH263: 2, ScreenVideo: 3, Vp6: 4, Vp6Alpha: 5, ScreenVideo2: 6, Avc: 7 } as const;

/** FLV SoundFormat values (FLV spec E.4.2.1); 9 marks an Enhanced RTMP ExAudioTagHeader. */
export const FlvSoundFormat = { Pcm: 0, Adpcm: 1, Mp3: 2, PcmLe: 3, Nellymoser16k: 4, Nellymoser8k: 5, Nellymoser: 6, G711A: 7, G711U: 8, ExHeader: 9, Aac: 10, Speex: 11, Mp3_8k: 14, Device: 15 } as const;

/**
 * Frame type (FLV spec E.4.3.1): 1 keyframe, 2 inter frame, 3 disposable inter frame,
 * 4 generated keyframe, 5 video info/command frame.
 */
export type FlvFrameType = number;

/** Legacy AVC video tag (CodecID 7). */
export interface AvcVideoTag {
  kind: 'avc';
  frameType: FlvFrameType;
  /** AVCPacketType 0 / 1 / 2 */
  packetType: 'sequence' | 'nalu' | 'end';
  /** composition time offset in ms (pts - dts), signed */
  cts: number;
  /** `sequence`: AVCDecoderConfigurationRecord; `nalu`: AVCC NAL units; a view into the body */
  data: Uint8Array;
}

/** Enhanced RTMP packet types (ExVideoTagHeader VideoPacketType). */
export type EnhancedPacketType = 'sequenceStart' | 'codedFrames' | 'sequenceEnd' | 'codedFramesX' | 'metadata' | 'mpeg2tsSequenceStart';

const ENHANCED_PACKET_TYPES: readonly EnhancedPacketType[] = [
  'sequenceStart',
  'codedFrames',
  'sequenceEnd',
  'codedFramesX',
  'metadata',
  'mpeg2tsSequenceStart',
];

/** Enhanced RTMP video tag (isExHeader set): codec named by a FourCC such as 'hvc1', 'av01', 'vp09', 'avc1'. */
export interface EnhancedVideoTag {
  kind: 'enhanced';
  frameType: FlvFrameType;
  packetType: EnhancedPacketType;
  fourcc: string;
  /** composition time offset in ms; sent only with codedFrames of 'avc1'/'hvc1', else 0 */
  cts: number;
  /** codec configuration record, coded frames or AMF metadata; a view into the body */
  data: Uint8Array;
}

/** Enhanced RTMP command frame (frame type 5 with isExHeader): no payload but a VideoCommand byte. */
export interface VideoCommandTag {
  kind: 'command';
  /** 0 = start seek, 1 = end seek */
  command: number;
}

/** A legacy video tag of a codec other than AVC, reported so callers can refuse it with a log line. */
export interface OtherVideoTag {
  kind: 'other';
  frameType: FlvFrameType;
  codecId: number;
  data: Uint8Array;
}

/** A parsed video tag body. */
export type VideoTag = AvcVideoTag | EnhancedVideoTag | VideoCommandTag | OtherVideoTag;

function fourccAt(body: Uint8Array, pos: number, format: string): string {
  if (pos + 4 > body.length) throw new ParseError(format, 'truncated FourCC', pos);
  return String.fromCharCode(body[pos] as number, body[pos + 1] as number, body[pos + 2] as number, body[pos + 3] as number);
}

/**
 * Parses a video tag body (an RTMP type-9 message payload).
 * @returns a tag whose `data` is a view into `body`.
 * @throws ParseError when truncated or with an unknown AVC/enhanced packet type; UnsupportedError for
 *   Enhanced RTMP v2 multitrack and ModEx packets.
 */
export function parseVideoTag(body: Uint8Array): VideoTag {
  const b0 = body[0];
  if (b0 === undefined) throw new ParseError(FV, 'empty video tag', 0);
  if (b0 & 0x80) {
    const frameType = (b0 >>> 4) & 0x07;
    const pt = b0 & 0x0f;
    if (pt === 6 || pt === 7) throw new UnsupportedError(`Enhanced RTMP ${pt === 6 ? 'multitrack' : 'ModEx'} video packet`);
    const packetType = ENHANCED_PACKET_TYPES[pt];
    if (packetType === undefined) throw new ParseError(FV, `unknown enhanced VideoPacketType ${pt}`, 0);
    if (frameType === 5 && packetType !== 'metadata') {
      const command = body[1];
      if (command === undefined) throw new ParseError(FV, 'truncated video command', 1);
      return { kind: 'command', command };
    }
    const fourcc = fourccAt(body, 1, FV);
    let pos = 5;
    let cts = 0;
    if (packetType === 'codedFrames' && (fourcc === 'avc1' || fourcc === 'hvc1')) {
      cts = readInt24BE(body, pos, FV);
      pos += 3;
    }
    return { kind: 'enhanced', frameType, packetType, fourcc, cts, data: body.subarray(pos) };
  }
  const frameType = b0 >>> 4;
  const codecId = b0 & 0x0f;
  if (codecId !== FlvVideoCodec.Avc) return { kind: 'other', frameType, codecId, data: body.subarray(1) };
  if (body.length < 5) throw new ParseError(FV, `AVC tag of ${body.length} bytes is shorter than 5`, 0);
  const apt = body[1] as number;
  if (apt > 2) throw new ParseError(FV, `unknown AVCPacketType ${apt}`, 1);
  const packetType = apt === 0 ? 'sequence' : apt === 1 ? 'nalu' : 'end';
  return { kind: 'avc', frameType, packetType, cts: readInt24BE(body, 2, FV), data: body.subarray(5) };
}

/** A parsed audio tag body. */
export interface AudioTag {
  /** SoundFormat (see {@link FlvSoundFormat}); only 10 (AAC) has `aacPacketType` */
  soundFormat: number;
  /** SoundRate 0..3 (5.5/11/22/44 kHz); meaningless for AAC, whose rate is in the ASC */
  soundRate: number;
  /** SoundSize: 0 = 8 bit, 1 = 16 bit */
  soundSize: number;
  /** SoundType: 0 = mono, 1 = stereo */
  soundType: number;
  /** for AAC: 0 = AudioSpecificConfig, 1 = raw frame */
  aacPacketType?: 'sequence' | 'raw';
  /** for an Enhanced RTMP ExAudioTagHeader (soundFormat 9): the codec FourCC, e.g. 'Opus' */
  fourcc?: string;
  /** AudioPacketType of an ExAudioTagHeader */
  audioPacketType?: number;
  /** ASC, raw AAC frame, or the codec data of other formats; a view into the body */
  data: Uint8Array;
}

/**
 * Parses an audio tag body (an RTMP type-8 message payload). Formats other than AAC come back with
 * their `soundFormat` so callers can refuse them.
 * @returns a tag whose `data` is a view into `body`.
 * @throws ParseError when truncated or with an unknown AACPacketType.
 */
export function parseAudioTag(body: Uint8Array): AudioTag {
  const b0 = body[0];
  if (b0 === undefined) throw new ParseError(FA, 'empty audio tag', 0);
  const tag: AudioTag = {
    soundFormat: b0 >>> 4,
    soundRate: (b0 >>> 2) & 3,
    soundSize: (b0 >>> 1) & 1,
    soundType: b0 & 1,
    data: body.subarray(1),
  };
  if (tag.soundFormat === FlvSoundFormat.Aac) {
    const apt = body[1];
    if (apt === undefined) throw new ParseError(FA, 'AAC tag without AACPacketType', 1);
    if (apt > 1) throw new ParseError(FA, `unknown AACPacketType ${apt}`, 1);
    tag.aacPacketType = apt === 0 ? 'sequence' : 'raw';
    tag.data = body.subarray(2);
  } else if (tag.soundFormat === FlvSoundFormat.ExHeader) {
    tag.audioPacketType = b0 & 0x0f;
    tag.fourcc = fourccAt(body, 1, FA);
    tag.data = body.subarray(5);
  }
  return tag;
}

/** Size of the AVC video tag header: frame/codec byte, AVCPacketType, SI24 composition time. */
export const AVC_TAG_HEADER_LENGTH = 5;

function avcHeaderInto(out: Uint8Array, keyframe: boolean, packetType: number, cts: number): void {
  if (!Number.isInteger(cts) || cts < -0x800000 || cts > 0x7fffff) throw new RangeError(`composition time ${cts} does not fit SI24`);
  out[0] = (keyframe ? 0x10 : 0x20) | FlvVideoCodec.Avc;
  out[1] = packetType;
  writeUint24BE(out, 2, cts);
}

/** A complete AVC sequence-header tag body (keyframe, AVCPacketType 0, cts 0) around an avcC record. */
export function avcSequenceHeaderTag(avcConfigRecord: Uint8Array): Uint8Array {
  const out = new Uint8Array(AVC_TAG_HEADER_LENGTH + avcConfigRecord.length);
  avcHeaderInto(out, true, 0, 0);
  out.set(avcConfigRecord, AVC_TAG_HEADER_LENGTH);
  return out;
}

/**
 * The 5-byte header of an AVC NALU tag, to send in front of AVCC data.
 * @param cts composition time offset in ms (pts - dts), -2^23..2^23-1
 */
export function avcVideoTagHeader(keyframe: boolean, cts: number): Uint8Array {
  const out = new Uint8Array(AVC_TAG_HEADER_LENGTH);
  avcHeaderInto(out, keyframe, 1, cts);
  return out;
}

/**
 * A complete AVC NALU tag body: header plus the NAL units with 4-byte lengths, in one allocation.
 * @throws ParseError for an empty NAL unit (from the AVCC writer).
 */
export function avcVideoTag(keyframe: boolean, cts: number, nalus: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(AVC_TAG_HEADER_LENGTH + avccSize(nalus));
  avcHeaderInto(out, keyframe, 1, cts);
  writeAvcc(out, AVC_TAG_HEADER_LENGTH, nalus);
  return out;
}

/**
 * First byte of every AAC audio tag: SoundFormat 10, and rate 44 kHz / 16 bit / stereo, which the FLV
 * spec (E.4.2.1) says to set for AAC whatever the real values; decoders use the ASC (ffmpeg writes 0xAF too).
 */
export const AAC_TAG_BYTE0 = 0xaf;

/** A complete AAC sequence-header tag body (AACPacketType 0) around an AudioSpecificConfig. */
export function aacSequenceHeaderTag(asc: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + asc.length);
  out[0] = AAC_TAG_BYTE0;
  out[1] = 0;
  out.set(asc, 2);
  return out;
}

/** The 2-byte header of a raw AAC frame tag (`af 01`), to send in front of one raw AAC frame. */
export function aacAudioTagHeader(): Uint8Array {
  return Uint8Array.of(AAC_TAG_BYTE0, 1);
}

/** A complete raw AAC frame tag body in one allocation. */
export function aacAudioTag(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + frame.length);
  out[0] = AAC_TAG_BYTE0;
  out[1] = 1;
  out.set(frame, 2);
  return out;
}
