/**
 * Feeds the AAC frames of a bus track to ffmpeg as ADTS (`-f aac` on stdin): the bus carries raw frames with the
 * AudioSpecificConfig on the track, and a raw stream has no framing, so each frame gets a 7-byte ADTS header.
 */
import { ParseError } from '../../errors.js';
import type { Frame } from '../../media/bus/frame.js';
import type { Track } from '../../media/bus/track.js';
import { adtsHeader, parseAudioSpecificConfig, type AudioSpecificConfig } from '../../media/codecs/aac.js';

/** Turns the frames of one AAC track into ADTS, recording each frame's dts on the transcoder's timeline. */
export class AdtsInput {
  private asc: AudioSpecificConfig | undefined;
  private ascVersion = -1;

  constructor(
    private readonly track: Track,
    /** told the dts of every frame encoded, in order */
    private readonly timeline: { push(dts: number): void },
  ) {}

  /**
   * @returns the ADTS header and the raw frame (a view of `frame.au[0]`), or null for a frame without one
   * @throws ParseError when the track has no AudioSpecificConfig or one ADTS cannot carry
   */
  encode(frame: Frame): Uint8Array[] | null {
    const raw = frame.au[0];
    if (!raw) return null;
    const header = adtsHeader(this.config(), raw.byteLength);
    this.timeline.push(frame.dts);
    return [header, raw];
  }

  /** The track's AudioSpecificConfig, parsed once per version. */
  private config(): AudioSpecificConfig {
    if (!this.asc || this.ascVersion !== this.track.version) {
      if (!this.track.config) throw new ParseError('aac', 'track has no AudioSpecificConfig');
      this.asc = parseAudioSpecificConfig(this.track.config);
      this.ascVersion = this.track.version;
    }
    return this.asc;
  }
}
