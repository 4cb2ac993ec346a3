/**
 * Audio over RTP:
 * - AAC as RFC 3640 `mpeg4-generic` (AAC-hbr and other AU-header layouts): depacketizer and packetizer;
 * - AAC as RFC 3016 `MP4A-LATM` with `cpresent=0` (out-of-band StreamMuxConfig in the SDP `config`): depacketizer;
 * - one-frame-per-packet payloads (Opus RFC 7587, G.711 RFC 3551): both directions.
 *
 * Depacketizers return frames as views into the packets, except AUs fragmented over several packets, which are
 * joined once into a buffer of the announced size.
 */
export type { AudioDepacketizerStats, AudioFrame } from './audio/common.js';
export * from './audio/mpeg4-generic.js';
export * from './audio/latm.js';
export * from './audio/simple.js';
