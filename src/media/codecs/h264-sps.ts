/**
 * H.264 sequence parameter set parser: profile, level, picture size after cropping, frame rate.
 * Specification: ITU-T Rec. H.264 (08/2021), 7.3.2.1.1 (SPS syntax), E.1.1 (VUI), E.1.2 (HRD).
 * Field names follow the spec in camelCase.
 */
import { LimitError, ParseError } from '../../errors.js';
import { BitReader } from '../bytes.js';

const F = 'h264-sps';

/**
 * Largest picture in macroblocks: MaxFS of level 6.2, the highest level (ITU-T H.264 Table A-1);
 * 8192x4320 is 138240 MBs. It bounds what a bogus pic_width/height field can make callers allocate.
 */
export const MAX_FRAME_SIZE_IN_MBS = 139264;

/** profile_idc values whose SPS carries chroma_format_idc and bit depths (7.3.2.1.1). */
const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** Hypothetical reference decoder parameters, E.1.2. */
export interface HrdParameters {
  cpbCntMinus1: number;
  bitRateScale: number;
  cpbSizeScale: number;
  bitRateValueMinus1: number[];
  cpbSizeValueMinus1: number[];
  cbrFlag: boolean[];
  initialCpbRemovalDelayLengthMinus1: number;
  cpbRemovalDelayLengthMinus1: number;
  dpbOutputDelayLengthMinus1: number;
  timeOffsetLength: number;
}

/** Video usability information, E.1.1. Absent optional groups are undefined. */
export interface Vui {
  aspectRatioIdc?: number;
  /** only with aspectRatioIdc 255 (Extended_SAR) */
  sarWidth?: number;
  sarHeight?: number;
  overscanAppropriateFlag?: boolean;
  videoFormat?: number;
  videoFullRangeFlag?: boolean;
  colourPrimaries?: number;
  transferCharacteristics?: number;
  matrixCoefficients?: number;
  chromaSampleLocTypeTopField?: number;
  chromaSampleLocTypeBottomField?: number;
  numUnitsInTick?: number;
  timeScale?: number;
  fixedFrameRateFlag?: boolean;
  nalHrd?: HrdParameters;
  vclHrd?: HrdParameters;
  lowDelayHrdFlag?: boolean;
  picStructPresentFlag: boolean;
  motionVectorsOverPicBoundariesFlag?: boolean;
  maxBytesPerPicDenom?: number;
  maxBitsPerMbDenom?: number;
  log2MaxMvLengthHorizontal?: number;
  log2MaxMvLengthVertical?: number;
  maxNumReorderFrames?: number;
  maxDecFrameBuffering?: number;
}

/** A parsed sequence parameter set, with the derived picture size and frame rate. */
export interface Sps {
  nalRefIdc: number;
  profileIdc: number;
  /** the byte after profile_idc: constraint_set0..5 flags (MSB first) and reserved_zero_2bits */
  constraintSetFlags: number;
  levelIdc: number;
  seqParameterSetId: number;
  /** 1 (4:2:0) unless a high profile says otherwise */
  chromaFormatIdc: number;
  separateColourPlaneFlag: boolean;
  bitDepthLumaMinus8: number;
  bitDepthChromaMinus8: number;
  qpprimeYZeroTransformBypassFlag: boolean;
  seqScalingMatrixPresentFlag: boolean;
  /** one per list (8, or 12 for 4:4:4) when the matrix is present, else empty */
  seqScalingListPresentFlag: boolean[];
  /** the decoded list (16 or 64 values) for each present, non-default list; empty otherwise */
  scalingLists: number[][];
  /** useDefaultScalingMatrixFlag of each list */
  useDefaultScalingMatrixFlag: boolean[];
  log2MaxFrameNumMinus4: number;
  picOrderCntType: number;
  log2MaxPicOrderCntLsbMinus4?: number;
  deltaPicOrderAlwaysZeroFlag?: boolean;
  offsetForNonRefPic?: number;
  offsetForTopToBottomField?: number;
  offsetForRefFrame?: number[];
  maxNumRefFrames: number;
  gapsInFrameNumValueAllowedFlag: boolean;
  picWidthInMbsMinus1: number;
  picHeightInMapUnitsMinus1: number;
  frameMbsOnlyFlag: boolean;
  mbAdaptiveFrameFieldFlag: boolean;
  direct8x8InferenceFlag: boolean;
  frameCropLeftOffset: number;
  frameCropRightOffset: number;
  frameCropTopOffset: number;
  frameCropBottomOffset: number;
  /** undefined when vui_parameters_present_flag is 0, or when the VUI is truncated (see parseSps) */
  vui?: Vui;
  /** luma width in pixels after frame cropping */
  width: number;
  /** luma height of a frame in pixels (both fields when interlaced) after frame cropping */
  height: number;
  /** frames per second, time_scale / (2 * num_units_in_tick) (E.2.1), when the VUI has timing info */
  fps?: number;
}

function checkMax(name: string, v: number, max: number, r: BitReader): number {
  if (v > max) throw new ParseError(F, `${name} ${v} is over ${max}`, r.bitPosition() >>> 3);
  return v;
}

/** scaling_list() of 7.3.2.1.1.1: delta-coded values; a first next_scale of 0 means "use the default". */
function readScalingList(r: BitReader, size: number): { list: number[]; useDefault: boolean } {
  const list: number[] = [];
  let lastScale = 8;
  let nextScale = 8;
  let useDefault = false;
  for (let j = 0; j < size; j++) {
    if (nextScale !== 0) {
      const deltaScale = r.readSE();
      if (deltaScale < -128 || deltaScale > 127) throw new ParseError(F, `delta_scale ${deltaScale} out of range`, r.bitPosition() >>> 3);
      nextScale = (lastScale + deltaScale + 256) % 256;
      useDefault = j === 0 && nextScale === 0;
    }
    const scale = nextScale === 0 ? lastScale : nextScale;
    list.push(scale);
    lastScale = scale;
  }
  return { list: useDefault ? [] : list, useDefault };
}

function readHrd(r: BitReader): HrdParameters {
  const cpbCntMinus1 = checkMax('cpb_cnt_minus1', r.readUE(), 31, r);
  const hrd: HrdParameters = {
    cpbCntMinus1,
    bitRateScale: r.readBits(4),
    cpbSizeScale: r.readBits(4),
    bitRateValueMinus1: [],
    cpbSizeValueMinus1: [],
    cbrFlag: [],
    initialCpbRemovalDelayLengthMinus1: 0,
    cpbRemovalDelayLengthMinus1: 0,
    dpbOutputDelayLengthMinus1: 0,
    timeOffsetLength: 0,
  };
  for (let i = 0; i <= cpbCntMinus1; i++) {
    hrd.bitRateValueMinus1.push(r.readUE());
    hrd.cpbSizeValueMinus1.push(r.readUE());
    hrd.cbrFlag.push(r.readFlag());
  }
  hrd.initialCpbRemovalDelayLengthMinus1 = r.readBits(5);
  hrd.cpbRemovalDelayLengthMinus1 = r.readBits(5);
  hrd.dpbOutputDelayLengthMinus1 = r.readBits(5);
  hrd.timeOffsetLength = r.readBits(5);
  return hrd;
}

function readVui(r: BitReader): Vui {
  const vui: Vui = { picStructPresentFlag: false };
  if (r.readFlag()) {
    vui.aspectRatioIdc = r.readBits(8);
    if (vui.aspectRatioIdc === 255) {
      vui.sarWidth = r.readBits(16);
      vui.sarHeight = r.readBits(16);
    }
  }
  if (r.readFlag()) vui.overscanAppropriateFlag = r.readFlag();
  if (r.readFlag()) {
    vui.videoFormat = r.readBits(3);
    vui.videoFullRangeFlag = r.readFlag();
    if (r.readFlag()) {
      vui.colourPrimaries = r.readBits(8);
      vui.transferCharacteristics = r.readBits(8);
      vui.matrixCoefficients = r.readBits(8);
    }
  }
  if (r.readFlag()) {
    vui.chromaSampleLocTypeTopField = r.readUE();
    vui.chromaSampleLocTypeBottomField = r.readUE();
  }
  if (r.readFlag()) {
    vui.numUnitsInTick = r.readBits(32);
    vui.timeScale = r.readBits(32);
    vui.fixedFrameRateFlag = r.readFlag();
  }
  if (r.readFlag()) vui.nalHrd = readHrd(r);
  if (r.readFlag()) vui.vclHrd = readHrd(r);
  if (vui.nalHrd !== undefined || vui.vclHrd !== undefined) vui.lowDelayHrdFlag = r.readFlag();
  vui.picStructPresentFlag = r.readFlag();
  if (r.readFlag()) {
    vui.motionVectorsOverPicBoundariesFlag = r.readFlag();
    vui.maxBytesPerPicDenom = r.readUE();
    vui.maxBitsPerMbDenom = r.readUE();
    vui.log2MaxMvLengthHorizontal = r.readUE();
    vui.log2MaxMvLengthVertical = r.readUE();
    vui.maxNumReorderFrames = r.readUE();
    vui.maxDecFrameBuffering = r.readUE();
  }
  return vui;
}

/**
 * Parses an SPS NAL unit (header byte included, emulation prevention still in place).
 * A VUI that runs past the end of the NAL unit leaves `vui` and `fps` undefined instead of failing:
 * the picture size does not depend on it, and some cameras send a truncated VUI.
 * @throws ParseError when the NAL unit is not an SPS, is truncated before the VUI, or has out-of-range
 *   fields; LimitError for a picture over {@link MAX_FRAME_SIZE_IN_MBS}.
 */
export function parseSps(nal: Uint8Array): Sps {
  if (nal.length < 4) throw new ParseError(F, `SPS of ${nal.length} bytes is shorter than 4`, 0);
  const header = nal[0] as number;
  if ((header & 0x1f) !== 7) throw new ParseError(F, `nal_unit_type ${header & 0x1f} is not 7`, 0);
  if (header & 0x80) throw new ParseError(F, 'forbidden_zero_bit is set', 0);
  const r = new BitReader(removeEmulationPrevention(nal.subarray(1)), F);
  const profileIdc = r.readBits(8);
  const sps: Sps = {
    nalRefIdc: (header >>> 5) & 3,
    profileIdc,
    constraintSetFlags: r.readBits(8),
    levelIdc: r.readBits(8),
    seqParameterSetId: checkMax('seq_parameter_set_id', r.readUE(), 31, r),
    chromaFormatIdc: 1,
    separateColourPlaneFlag: false,
    bitDepthLumaMinus8: 0,
    bitDepthChromaMinus8: 0,
    qpprimeYZeroTransformBypassFlag: false,
    seqScalingMatrixPresentFlag: false,
    seqScalingListPresentFlag: [],
    scalingLists: [],
    useDefaultScalingMatrixFlag: [],
    log2MaxFrameNumMinus4: 0,
    picOrderCntType: 0,
    maxNumRefFrames: 0,
    gapsInFrameNumValueAllowedFlag: false,
    picWidthInMbsMinus1: 0,
    picHeightInMapUnitsMinus1: 0,
    frameMbsOnlyFlag: true,
    mbAdaptiveFrameFieldFlag: false,
    direct8x8InferenceFlag: false,
    frameCropLeftOffset: 0,
    frameCropRightOffset: 0,
    frameCropTopOffset: 0,
    frameCropBottomOffset: 0,
    width: 0,
    height: 0,
  };
  if (HIGH_PROFILES.has(profileIdc)) {
    sps.chromaFormatIdc = checkMax('chroma_format_idc', r.readUE(), 3, r);
    if (sps.chromaFormatIdc === 3) sps.separateColourPlaneFlag = r.readFlag();
    sps.bitDepthLumaMinus8 = checkMax('bit_depth_luma_minus8', r.readUE(), 6, r);
    sps.bitDepthChromaMinus8 = checkMax('bit_depth_chroma_minus8', r.readUE(), 6, r);
    sps.qpprimeYZeroTransformBypassFlag = r.readFlag();
    sps.seqScalingMatrixPresentFlag = r.readFlag();
    if (sps.seqScalingMatrixPresentFlag) {
      const lists = sps.chromaFormatIdc !== 3 ? 8 : 12;
      for (let i = 0; i < lists; i++) {
        const present = r.readFlag();
        sps.seqScalingListPresentFlag.push(present);
        const { list, useDefault } = present ? readScalingList(r, i < 6 ? 16 : 64) : { list: [], useDefault: false };
        sps.scalingLists.push(list);
        sps.useDefaultScalingMatrixFlag.push(useDefault);
      }
    }
  }
  sps.log2MaxFrameNumMinus4 = checkMax('log2_max_frame_num_minus4', r.readUE(), 12, r);
  sps.picOrderCntType = checkMax('pic_order_cnt_type', r.readUE(), 2, r);
  if (sps.picOrderCntType === 0) {
    sps.log2MaxPicOrderCntLsbMinus4 = checkMax('log2_max_pic_order_cnt_lsb_minus4', r.readUE(), 12, r);
  } else if (sps.picOrderCntType === 1) {
    sps.deltaPicOrderAlwaysZeroFlag = r.readFlag();
    sps.offsetForNonRefPic = r.readSE();
    sps.offsetForTopToBottomField = r.readSE();
    const n = checkMax('num_ref_frames_in_pic_order_cnt_cycle', r.readUE(), 255, r);
    sps.offsetForRefFrame = [];
    for (let i = 0; i < n; i++) sps.offsetForRefFrame.push(r.readSE());
  }
  sps.maxNumRefFrames = r.readUE();
  sps.gapsInFrameNumValueAllowedFlag = r.readFlag();
  sps.picWidthInMbsMinus1 = r.readUE();
  sps.picHeightInMapUnitsMinus1 = r.readUE();
  sps.frameMbsOnlyFlag = r.readFlag();
  if (!sps.frameMbsOnlyFlag) sps.mbAdaptiveFrameFieldFlag = r.readFlag();
  sps.direct8x8InferenceFlag = r.readFlag();
  if (r.readFlag()) {
    sps.frameCropLeftOffset = r.readUE();
    sps.frameCropRightOffset = r.readUE();
    sps.frameCropTopOffset = r.readUE();
    sps.frameCropBottomOffset = r.readUE();
  }
  const vuiPresent = r.readFlag();

  const widthMbs = sps.picWidthInMbsMinus1 + 1;
  const heightMbs = (sps.frameMbsOnlyFlag ? 1 : 2) * (sps.picHeightInMapUnitsMinus1 + 1);
  if (widthMbs * heightMbs > MAX_FRAME_SIZE_IN_MBS) {
    throw new LimitError('h264 frame size in macroblocks', MAX_FRAME_SIZE_IN_MBS, widthMbs * heightMbs);
  }
  // cropping units, 7.4.2.1.1 (Table 6-1 gives SubWidthC/SubHeightC)
  const chromaArrayType = sps.separateColourPlaneFlag ? 0 : sps.chromaFormatIdc;
  const subWidthC = chromaArrayType === 3 ? 1 : 2;
  const subHeightC = chromaArrayType === 1 ? 2 : 1;
  const fieldFactor = sps.frameMbsOnlyFlag ? 1 : 2;
  const cropUnitX = chromaArrayType === 0 ? 1 : subWidthC;
  const cropUnitY = (chromaArrayType === 0 ? 1 : subHeightC) * fieldFactor;
  sps.width = widthMbs * 16 - cropUnitX * (sps.frameCropLeftOffset + sps.frameCropRightOffset);
  sps.height = heightMbs * 16 - cropUnitY * (sps.frameCropTopOffset + sps.frameCropBottomOffset);
  if (sps.width <= 0 || sps.height <= 0) {
    throw new ParseError(F, `frame cropping leaves a ${sps.width}x${sps.height} picture`, 0);
  }

  if (vuiPresent) {
    try {
      sps.vui = readVui(r);
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
    }
    const t = sps.vui;
    if (t?.numUnitsInTick !== undefined && t.timeScale !== undefined && t.numUnitsInTick > 0 && t.timeScale > 0) {
      sps.fps = t.timeScale / (2 * t.numUnitsInTick);
    }
  }
  return sps;
}

/**
 * Removes emulation_prevention_three_byte (the 03 in `00 00 03`, H.264 7.4.1) to get the RBSP.
 * Re-exported by `h264.ts`; it lives here so this module needs nothing from `h264.ts`.
 * @returns `nal` itself when it has none (no copy), else a new array.
 */
export function removeEmulationPrevention(nal: Uint8Array): Uint8Array {
  let count = 0;
  for (let i = 2; i < nal.length; i++) {
    if (nal[i] === 3 && nal[i - 1] === 0 && nal[i - 2] === 0) {
      count++;
      i += 2; // the two bytes after an 03 start a fresh zero count
    }
  }
  if (count === 0) return nal;
  const out = new Uint8Array(nal.length - count);
  let o = 0;
  let from = 0;
  for (let i = 2; i < nal.length; i++) {
    if (nal[i] === 3 && nal[i - 1] === 0 && nal[i - 2] === 0) {
      out.set(nal.subarray(from, i), o);
      o += i - from;
      from = i + 1;
      i += 2;
    }
  }
  out.set(nal.subarray(from), o);
  return out;
}
