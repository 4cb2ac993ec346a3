/**
 * RTSP publisher or pulled camera → frame bus: RTP packets of the announced/described media in, Frames on a
 * Stream out (after mediamtx `stream/rtp_decoder.go` and gortsplib's format decoders).
 *
 * Each carried media gets a depacketizer (H.264 RFC 6184, AAC RFC 3640 / MP4A-LATM, Opus), its own RTCP
 * reception statistics, and a place on one common timeline: from the NTP time of the senders' SRs when every
 * track has one early, else from the arrival time of each track's first packet (mediamtx's approach).
 */
import { errorMessage, StreamgateError, UnsupportedError } from '../../errors.js';
import { RateLimitedLog, type Logger } from '../../log.js';
import { makeFrame, type Frame } from '../../media/bus/frame.js';
import type { Stream } from '../../media/bus/stream.js';
import { Track } from '../../media/bus/track.js';
import { parseAudioSpecificConfig } from '../../media/codecs/aac.js';
import { h264Dimensions } from '../../media/codecs/h264-profile.js';
import { parseSps } from '../../media/codecs/h264-sps.js';
import { NalUnitType, nalType } from '../../media/codecs/h264.js';
import {
  LatmDepacketizer,
  Mpeg4GenericDepacketizer,
  mpeg4GenericParams,
  SimpleAudioDepacketizer,
  type AudioFrame,
} from '../../media/rtp/audio.js';
import { DEFAULT_REORDER_DEPTH, H264Depacketizer, H264DtsEstimator, type H264AccessUnit } from '../../media/rtp/h264.js';
import { parseRtp, tsDiff, type RtpPacket } from '../../media/rtp/packet.js';
import {
  compoundReport,
  parseRtcp,
  RtcpReceiverStats,
  serializeRtcp,
  type RtcpPacket,
  type RtcpReportBlock,
  type ReceptionSummary,
} from '../../media/rtp/rtcp.js';
import { h264FmtpParams, hexFmtpValue, type MediaDescription, type MediaFormat } from '../../signaling/sdp/description.js';

/**
 * How long frames are held at the start waiting for every track's first SR (to align them on NTP time) before
 * falling back to arrival-time alignment. ffmpeg sends its first SR with the first packets; cameras within
 * ~2.5 s (RFC 3550 §6.2 initial interval); 1 s bounds the start-up delay this adds.
 */
export const ALIGN_WAIT_MS = 1000;
/**
 * How long frames are held waiting for in-band SPS/PPS when the SDP has no sprop-parameter-sets. Encoders repeat
 * them with every IDR, so one GOP is enough for sane streams; after this the stream starts without them.
 */
export const PARAMS_WAIT_MS = 5000;
/** Frames held before the stream starts: 5 s of 60 fps video plus audio. Past it the oldest are dropped. */
export const MAX_HELD_FRAMES = 600;

/** The bus codec of a payload format, or why it is not carried. */
export function busCodecOf(format: MediaFormat | undefined): 'h264' | 'aac' | 'opus' | { unsupported: string } {
  if (!format) return { unsupported: 'no payload format' };
  const enc = format.encoding.toUpperCase();
  if (enc === 'H264') {
    const mode = Number(format.fmtp['packetization-mode'] ?? '0');
    return mode === 0 || mode === 1 ? 'h264' : { unsupported: `H264 packetization-mode ${mode}` };
  }
  if (enc === 'MPEG4-GENERIC') {
    const mode = (format.fmtp['mode'] ?? '').toLowerCase();
    if (mode !== 'aac-hbr' && mode !== 'aac-lbr') return { unsupported: `mpeg4-generic mode ${format.fmtp['mode'] ?? '(none)'}` };
    return hexFmtpValue(format.fmtp, 'config') ? 'aac' : { unsupported: 'mpeg4-generic without config' };
  }
  if (enc === 'MP4A-LATM') {
    if ((format.fmtp['cpresent'] ?? '1') !== '0') return { unsupported: 'MP4A-LATM with in-band config (cpresent=1)' };
    return hexFmtpValue(format.fmtp, 'config') ? 'aac' : { unsupported: 'MP4A-LATM without config' };
  }
  if (enc === 'OPUS') return 'opus';
  return { unsupported: `${format.encoding}/${format.clockRate}` };
}

/** Media of a description the bus can carry: role 'media' and a supported first payload format. */
export function carriedMedia(media: readonly MediaDescription[]): boolean[] {
  return media.map((m) => m.role === 'media' && typeof busCodecOf(m.formats[0]) === 'string');
}

/** One queued output of a depacketizer, before it is placed on the common timeline. */
interface Pending {
  track: IngestTrack;
  extPts: number;
  keyframe: boolean;
  au: Uint8Array[];
  rtp?: Uint8Array[];
  receivedAtMs: number;
}

/** Per carried media: its Track, depacketizer, statistics and timeline offset. */
interface IngestTrack {
  index: number;
  track: Track;
  clockRate: number;
  h264?: { depacketizer: H264Depacketizer; dts: H264DtsEstimator };
  audio?: { push(pkt: RtpPacket): AudioFrame[] | AudioFrame | null };
  stats?: RtcpReceiverStats;
  /** first extended RTP timestamp and its arrival (ms) */
  first?: { extTs: number; arrivalMs: number };
  lastExtTs?: number;
  sr?: { unixMs: number; rtpTimestamp: number };
  /** extended ticks subtracted to get the common timeline, once decided */
  base?: number;
  packetsIn: number;
  errors: number;
  /** SSRC of the newest RTP packet: what a PLI/FIR must name (a sender that restarts may pick a new one) */
  ssrc?: number;
  /** FIR command sequence number of the last request (RFC 5104 §4.3.1.1: one more per new request) */
  firSeq: number;
}

/**
 * Frames from RTP for one publishing session (ANNOUNCE/RECORD) or pulled camera (DESCRIBE/PLAY).
 * Call `pushRtp`/`pushRtcp` with each packet of media `index` (its position in the SDP); `tick` lets held frames go
 * when nothing else arrives. Errors in one packet are counted and logged (rate-limited), never thrown.
 */
export class RtspToBus {
  /** per SDP media: carried by the bus */
  readonly carried: boolean[];
  private readonly tracks: (IngestTrack | undefined)[];
  private readonly held: Pending[] = [];
  private started = false;
  private firstArrivalMs = -1;
  private readonly warn: RateLimitedLog;
  private heldDropped = 0;

  /**
   * @param stream the path's stream (from `addPublisher`)
   * @param media the SDP media, in order
   * @param setupMedia indices of the media the peer SETUP (default all): the others are not waited for
   */
  constructor(
    private readonly stream: Stream,
    media: readonly MediaDescription[],
    private readonly log: Logger,
    setupMedia?: readonly number[],
  ) {
    this.warn = new RateLimitedLog(log);
    this.carried = carriedMedia(media).map((c, i) => c && (setupMedia === undefined || setupMedia.includes(i)));
    this.tracks = media.map((m, index) => (this.carried[index] ? this.makeTrack(index, m) : undefined));
    media.forEach((m, i) => {
      if (!this.carried[i]) {
        const why = m.role !== 'media' ? m.role : setupMedia && !setupMedia.includes(i) ? 'not SETUP' : busCodecOf(m.formats[0]);
        log.info({ media: i, type: m.type, reason: typeof why === 'string' ? why : why.unsupported }, 'RTSP media not carried: its packets are dropped');
      }
    });
    if (!this.tracks.some((t) => t !== undefined)) throw new UnsupportedError('no media in the SDP can be carried (H.264, AAC, Opus)');
  }

  private makeTrack(index: number, m: MediaDescription): IngestTrack {
    const f = m.formats[0] as MediaFormat;
    const codec = busCodecOf(f);
    if (codec === 'h264') {
      const track = new Track({ codec: 'h264', clockRate: 90000 });
      const p = h264FmtpParams(f.fmtp);
      let depth = DEFAULT_REORDER_DEPTH;
      if (p.sps && p.pps) {
        track.setH264Params(p.sps, p.pps, h264Dimensions(p.sps));
        depth = reorderDepth(p.sps);
      }
      const h264 = { depacketizer: new H264Depacketizer(), dts: new H264DtsEstimator(depth) };
      return { index, track, clockRate: 90000, h264, packetsIn: 0, errors: 0, firSeq: 0 };
    }
    if (codec === 'aac') {
      const config = hexFmtpValue(f.fmtp, 'config') as Uint8Array;
      if (f.encoding.toUpperCase() === 'MP4A-LATM') {
        const d = new LatmDepacketizer(config);
        const clockRate = f.clockRate || d.config.sampleRate;
        const track = new Track({ codec: 'aac', clockRate, sampleRate: d.config.sampleRate, channels: d.config.channels });
        track.setAudioConfig(d.config.audioSpecificConfig, d.config.sampleRate, d.config.channels || 2);
        return { index, track, clockRate, audio: d, packetsIn: 0, errors: 0, firSeq: 0 };
      }
      const asc = parseAudioSpecificConfig(config);
      const clockRate = f.clockRate || asc.sampleRate;
      const track = new Track({ codec: 'aac', clockRate, sampleRate: asc.sampleRate, channels: asc.channels });
      track.setAudioConfig(config, asc.sampleRate, asc.channels || f.channels || 2);
      const audio = new Mpeg4GenericDepacketizer(mpeg4GenericParams(f.fmtp), asc.frameLength);
      return { index, track, clockRate, audio, packetsIn: 0, errors: 0, firSeq: 0 };
    }
    // Opus over RTP always runs a 48 kHz clock (RFC 7587 §4.1)
    const track = new Track({ codec: 'opus', clockRate: 48000, sampleRate: 48000, channels: f.channels ?? 2 });
    return { index, track, clockRate: 48000, audio: new SimpleAudioDepacketizer(), packetsIn: 0, errors: 0, firSeq: 0 };
  }

  /** One RTP packet of media `index`; `raw` is kept by reference in the frames (passthrough). */
  pushRtp(index: number, raw: Uint8Array, nowMs: number): void {
    const t = this.tracks[index];
    if (!t) return;
    t.packetsIn++;
    try {
      const pkt = parseRtp(raw);
      t.ssrc = pkt.ssrc;
      t.stats ??= new RtcpReceiverStats(pkt.ssrc, t.clockRate);
      t.stats.onRtp(pkt.sequenceNumber, pkt.timestamp, nowMs);
      if (this.firstArrivalMs < 0) this.firstArrivalMs = nowMs;
      if (t.h264) {
        const au = t.h264.depacketizer.push(pkt, raw);
        if (au) this.onAccessUnit(t, au, nowMs);
      } else if (t.audio) {
        const out = t.audio.push(pkt);
        if (out) for (const a of Array.isArray(out) ? out : [out]) this.queue({ track: t, extPts: a.pts, keyframe: true, au: [a.data], receivedAtMs: nowMs });
      }
    } catch (err) {
      t.errors++;
      if (!(err instanceof StreamgateError)) throw err;
      this.warn.warn({ media: index, err: err.message, code: err.code }, 'bad RTP packet dropped', nowMs);
    }
    this.maybeStart(nowMs);
  }

  /** One RTCP compound packet about media `index` (SRs align the tracks and feed the RRs). */
  pushRtcp(index: number, raw: Uint8Array, nowMs: number): void {
    const t = this.tracks[index];
    if (!t) return;
    try {
      for (const p of parseRtcp(raw)) {
        if (p.type !== 'sr') continue;
        t.stats ??= new RtcpReceiverStats(p.ssrc, t.clockRate);
        t.stats.onSenderReport(p, nowMs);
        t.sr = { unixMs: t.stats.summary().lastSr?.unixMs ?? 0, rtpTimestamp: p.rtpTimestamp };
      }
    } catch (err) {
      if (!(err instanceof StreamgateError)) throw err;
      this.warn.warn({ media: index, err: err.message }, 'bad RTCP packet dropped', nowMs);
    }
    this.maybeStart(nowMs);
  }

  /** Lets held frames go once the waits are over, when no packet arrives to do it. */
  tick(nowMs: number): void {
    this.maybeStart(nowMs);
  }

  /** Report blocks for an RR about every media with packets (clients send them to cameras). */
  reportBlocks(nowMs: number): { index: number; block: RtcpReportBlock }[] {
    const out: { index: number; block: RtcpReportBlock }[] = [];
    for (const t of this.tracks) {
      const b = t?.stats?.reportBlock(nowMs);
      if (t && b) out.push({ index: t.index, block: b });
    }
    return out;
  }

  /**
   * RTCP asking the sender for a keyframe, one compound packet per video media that has sent RTP: an RR (no report
   * block: the periodic RRs keep their intervals) and SDES CNAME first as RFC 3550 §6.1 wants, then a PLI
   * (RFC 4585 §6.3.1) and a FIR (RFC 5104 §4.3.1, the next command sequence number) naming the SSRC seen in its RTP.
   * Both, because senders on RTSP's plain RTP/AVP profile honour one or the other. GStreamer (1.22) honours both:
   * rtpsession turns each into a force-key-unit event and GstVideoEncoder answers the pair with one keyframe.
   * @param ourSsrc the SSRC of our RRs
   */
  keyframeRequests(ourSsrc: number, cname: string): { index: number; packet: Uint8Array }[] {
    const out: { index: number; packet: Uint8Array }[] = [];
    for (const t of this.tracks) {
      if (!t?.h264 || t.ssrc === undefined) continue;
      t.firSeq = (t.firSeq + 1) & 0xff;
      const feedback: RtcpPacket[] = [
        { type: 'pli', senderSsrc: ourSsrc, mediaSsrc: t.ssrc },
        // FIR: the media source field is unused and set to 0 (RFC 5104 §4.3.1.2); the FCI names the sender
        { type: 'fir', senderSsrc: ourSsrc, mediaSsrc: 0, entries: [{ ssrc: t.ssrc, seqNr: t.firSeq }] },
      ];
      out.push({ index: t.index, packet: serializeRtcp(compoundReport({ type: 'rr', ssrc: ourSsrc, reports: [] }, cname, feedback)) });
    }
    return out;
  }

  /** Reception figures per carried media, for the API. */
  stats(): { media: number; codec: string; packets: number; errors: number; reception?: ReceptionSummary }[] {
    return this.tracks.flatMap((t) => {
      if (!t) return [];
      const s: { media: number; codec: string; packets: number; errors: number; reception?: ReceptionSummary } = {
        media: t.index,
        codec: t.track.codec,
        packets: t.packetsIn,
        errors: t.errors,
      };
      if (t.stats) s.reception = t.stats.summary();
      return [s];
    });
  }

  /** The Tracks on the stream, once started (for tests and logs). */
  get busTracks(): Track[] {
    return this.started ? this.stream.tracks : [];
  }

  private onAccessUnit(t: IngestTrack, au: H264AccessUnit, nowMs: number): void {
    let sps: Uint8Array | undefined;
    let pps: Uint8Array | undefined;
    for (const n of au.nalus) {
      const type = nalType(n);
      if (type === NalUnitType.Sps) sps = n;
      else if (type === NalUnitType.Pps) pps = n;
    }
    if (sps && pps && t.track.setH264Params(sps, pps, h264Dimensions(sps))) t.h264?.dts.setReorderDepth(reorderDepth(sps));
    const p: Pending = { track: t, extPts: au.pts, keyframe: au.keyframe, au: au.nalus, receivedAtMs: nowMs };
    if (au.rtp) p.rtp = au.rtp;
    this.queue(p);
  }

  private queue(p: Pending): void {
    p.track.lastExtTs = p.extPts;
    p.track.first ??= { extTs: p.extPts, arrivalMs: p.receivedAtMs };
    if (this.started) {
      this.write(p);
      return;
    }
    this.held.push(p);
    if (this.held.length > MAX_HELD_FRAMES) {
      this.held.shift();
      this.heldDropped++;
    }
  }

  private maybeStart(nowMs: number): void {
    if (this.started || this.firstArrivalMs < 0) return;
    const active = this.tracks.filter((t): t is IngestTrack => t !== undefined);
    const waited = nowMs - this.firstArrivalMs;
    const withFrames = active.filter((t) => t.first !== undefined);
    if (withFrames.length === 0) return;
    const allSr = active.every((t) => t.sr !== undefined && t.first !== undefined);
    if (!allSr && active.length > 1 && waited < ALIGN_WAIT_MS) return;
    const paramsOk = active.every((t) => t.track.configured);
    if (!paramsOk && waited < PARAMS_WAIT_MS) return;
    this.align(withFrames, allSr);
    // tracks that sent nothing yet are aligned on arrival when their first frame comes
    const tracks = active.map((t) => t.track);
    const canonical = this.stream.setTracks(tracks);
    active.forEach((t, i) => {
      const c = canonical[i] as Track;
      // a returning publisher continues on the stream's existing Track objects
      if (c !== t.track) t.track = c;
    });
    this.started = true;
    this.log.info(
      { tracks: canonical.map((t) => t.info()), alignment: allSr ? 'rtcp-sr' : 'arrival', heldDropped: this.heldDropped || undefined },
      'stream ready',
    );
    const held = this.held.splice(0);
    for (const p of held) this.write(p);
  }

  /** Decides each track's base so that all share one timeline starting near 0. */
  private align(tracks: IngestTrack[], bySr: boolean): void {
    if (bySr) {
      // NTP time (Unix ms) of each track's first frame, from its SR
      const ntpOf = (t: IngestTrack): number => {
        const sr = t.sr as { unixMs: number; rtpTimestamp: number };
        const first = (t.first as { extTs: number }).extTs;
        return sr.unixMs + (tsDiff(first % 0x1_0000_0000, sr.rtpTimestamp) * 1000) / t.clockRate;
      };
      const t0 = Math.min(...tracks.map(ntpOf));
      for (const t of tracks) t.base = (t.first as { extTs: number }).extTs - Math.round(((ntpOf(t) - t0) * t.clockRate) / 1000);
    } else {
      const t0 = Math.min(...tracks.map((t) => (t.first as { arrivalMs: number }).arrivalMs));
      for (const t of tracks) this.alignOnArrival(t, t0);
    }
  }

  private alignOnArrival(t: IngestTrack, t0: number): void {
    const f = t.first as { extTs: number; arrivalMs: number };
    t.base = f.extTs - Math.round(((f.arrivalMs - t0) * t.clockRate) / 1000);
  }

  private write(p: Pending): void {
    const t = p.track;
    if (t.base === undefined) this.alignOnArrival(t, this.firstArrivalMs);
    const pts = p.extPts - (t.base as number);
    const dts = t.h264 ? t.h264.dts.next(pts) : pts;
    const frame: Frame = makeFrame(t.track, dts, pts, p.keyframe, p.au, p.receivedAtMs);
    if (p.rtp) frame.rtp = p.rtp;
    try {
      this.stream.write(frame);
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'stream write failed');
    }
  }
}

/** max_num_reorder_frames of an SPS; 0 for Baseline without VUI, the default when unknown. */
function reorderDepth(sps: Uint8Array): number {
  try {
    const s = parseSps(sps);
    if (s.vui?.maxNumReorderFrames !== undefined) return s.vui.maxNumReorderFrames;
    return s.profileIdc === 66 ? 0 : DEFAULT_REORDER_DEPTH;
  } catch (err) {
    if (err instanceof StreamgateError) return DEFAULT_REORDER_DEPTH;
    throw err;
  }
}
