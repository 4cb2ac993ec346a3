/** The codecs the frame bus carries. Every ingest normalizes into these. */
export type Codec = 'h264' | 'aac' | 'opus';

/** What the control API shows of a track. */
export interface TrackInfo {
  codec: Codec;
  clockRate: number;
  width?: number;
  height?: number;
  profile?: string;
  sampleRate?: number;
  channels?: number;
}

/** Parameters a track may be created with. */
export interface TrackInit {
  codec: Codec;
  /** RTP-style clock: 90000 for video, the sample rate for AAC, 48000 for Opus */
  clockRate: number;
  sampleRate?: number;
  channels?: number;
}

/** Derived description of an SPS that the track keeps; supplied by the caller to keep the bus codec-agnostic. */
export interface VideoDimensions {
  width: number;
  height: number;
  profile?: string;
}

/**
 * One elementary stream of a Stream. Parameter sets (H.264 SPS/PPS, AAC AudioSpecificConfig) are COPIED when set,
 * so they never pin a socket chunk; `version` increments each time they change, so egress knows to resend
 * sequence headers / init segments.
 */
export class Track {
  readonly codec: Codec;
  readonly clockRate: number;
  /** index in Stream.tracks, stable for the life of the stream */
  id = -1;
  sps: Uint8Array | undefined;
  pps: Uint8Array | undefined;
  /** AAC AudioSpecificConfig (copied) */
  config: Uint8Array | undefined;
  width: number | undefined;
  height: number | undefined;
  profile: string | undefined;
  sampleRate: number | undefined;
  channels: number | undefined;
  version = 0;

  constructor(init: TrackInit) {
    this.codec = init.codec;
    this.clockRate = init.clockRate;
    this.sampleRate = init.sampleRate;
    this.channels = init.channels;
  }

  get isVideo(): boolean {
    return this.codec === 'h264';
  }

  /**
   * Sets H.264 parameter sets when they differ from the current ones (in-band updates are common: OBS resends them
   * before every IDR). Returns true when something changed.
   */
  setH264Params(sps: Uint8Array, pps: Uint8Array, dims?: VideoDimensions): boolean {
    if (this.sps && this.pps && equalBytes(this.sps, sps) && equalBytes(this.pps, pps)) return false;
    this.sps = Uint8Array.from(sps);
    this.pps = Uint8Array.from(pps);
    if (dims) {
      this.width = dims.width;
      this.height = dims.height;
      this.profile = dims.profile;
    }
    this.version++;
    return true;
  }

  /** Sets the AAC AudioSpecificConfig; returns true when it changed. */
  setAudioConfig(config: Uint8Array, sampleRate: number, channels: number): boolean {
    if (this.config && equalBytes(this.config, config)) return false;
    this.config = Uint8Array.from(config);
    this.sampleRate = sampleRate;
    this.channels = channels;
    this.version++;
    return true;
  }

  /** True when a reader can start: video needs SPS+PPS, AAC needs its config. */
  get configured(): boolean {
    if (this.codec === 'h264') return this.sps !== undefined && this.pps !== undefined;
    if (this.codec === 'aac') return this.config !== undefined;
    return true;
  }

  /** Same codec and same parameters: a new publisher with this track can continue an old one seamlessly. */
  compatibleWith(other: Track): boolean {
    if (this.codec !== other.codec || this.clockRate !== other.clockRate) return false;
    if (this.codec === 'h264') return this.width === other.width && this.height === other.height;
    if (this.codec === 'aac') return this.sampleRate === other.sampleRate && this.channels === other.channels;
    return this.channels === other.channels;
  }

  info(): TrackInfo {
    const info: TrackInfo = { codec: this.codec, clockRate: this.clockRate };
    if (this.width !== undefined) info.width = this.width;
    if (this.height !== undefined) info.height = this.height;
    if (this.profile !== undefined) info.profile = this.profile;
    if (this.sampleRate !== undefined) info.sampleRate = this.sampleRate;
    if (this.channels !== undefined) info.channels = this.channels;
    return info;
  }
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
