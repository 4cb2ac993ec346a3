/**
 * The SDP of a stream for an RTSP DESCRIBE: one media per bus track, with the payload types our packets carry.
 */
import type { Stream } from '../../media/bus/stream.js';
import type { Track } from '../../media/bus/track.js';
import {
  aacFormat,
  buildSessionDescription,
  h264Format,
  opusFormat,
  serializeSdp,
  type MediaFormat,
  type MediaInit,
} from '../../signaling/sdp/description.js';

/** Payload types in our SDP: the first dynamic ones (RFC 3551 §6), as ffmpeg and GStreamer number them. */
export const VIDEO_PAYLOAD_TYPE = 96;
/** See VIDEO_PAYLOAD_TYPE. */
export const AUDIO_PAYLOAD_TYPE = 97;

/** The payload format a track is sent with. */
export function formatOf(track: Track): MediaFormat {
  switch (track.codec) {
    case 'h264':
      return h264Format(VIDEO_PAYLOAD_TYPE, { sps: track.sps, pps: track.pps });
    case 'aac':
      return aacFormat(AUDIO_PAYLOAD_TYPE, {
        config: track.config ?? new Uint8Array(0),
        sampleRate: track.clockRate,
        channels: track.channels ?? 2,
      });
    case 'opus':
      return opusFormat(AUDIO_PAYLOAD_TYPE, { channels: track.channels ?? 2 });
  }
}

/**
 * The SDP a DESCRIBE answer carries for `stream`: media i is track i, control `trackID=i`.
 * @param name session name (`s=`), the path
 */
export function describeStream(stream: Stream, name: string): { sdp: string; mediaCount: number } {
  const media: MediaInit[] = stream.tracks.map((t, i) => ({
    type: t.isVideo ? 'video' : 'audio',
    format: formatOf(t),
    control: `trackID=${i}`,
  }));
  const desc = buildSessionDescription({ name, media, sessionId: String(Date.now()), tool: 'streamgate' });
  return { sdp: serializeSdp(desc), mediaCount: media.length };
}
