/**
 * SDP offer/answer for SIP readers (RFC 3264 over the typed `SessionDescription` of signaling/sdp/description.ts):
 * a pure function from a phone's offer and what the path can give to a per-section plan, and the answer text.
 *
 * What we send: H.264 (RFC 6184 packetization-mode 1, or 0 when that is all the phone takes) as the path has
 * it, and one audio format chosen in the offer's order of preference (RFC 3264 §6.1) among PCMU/PCMA (RFC 3551 §4.5.14, transcoded from AAC) and Opus
 * (RFC 7587, passed through from Opus paths or transcoded from AAC). We only send: each accepted section is
 * answered `sendonly` (or `inactive` when the phone does not want to receive, RFC 3264 §6.1). SRTP profiles are
 * refused (port 0); when no section can be served the whole offer gets 488 Not Acceptable Here.
 */
import { isIP } from 'node:net';
import { ProtocolError } from '../../errors.js';
import {
  h264Format,
  opusFormat,
  sdpAttribute,
  serializeSdp,
  type MediaDescription,
  type MediaFormat,
  type SdpAttribute,
  type SdpDirection,
  type SessionDescription,
} from '../sdp/description.js';

/** Audio codecs a SIP reader can get. */
export type SipAudioCodec = 'pcmu' | 'pcma' | 'opus';

/** What the path's stream offers, and whether AAC can be transcoded (ffmpeg present). */
export interface SipSourceCaps {
  /** the stream has an H.264 track */
  video?: { sps?: Uint8Array | undefined; pps?: Uint8Array | undefined };
  /** the stream's audio track */
  audio?: { codec: 'aac' | 'opus'; channels?: number | undefined };
  /** AAC can be transcoded to G.711 / Opus */
  transcode: boolean;
}

/** Where the phone wants one medium. */
export interface SipRemoteMedia {
  address: string;
  rtpPort: number;
  /** RTCP destination: `a=rtcp` (RFC 3605), the RTP port with `a=rtcp-mux` (RFC 5761), else RTP port + 1 */
  rtcpAddress: string;
  rtcpPort: number;
  rtcpMux: boolean;
}

/** An accepted section of the offer. */
export interface SipAcceptedMedia {
  kind: 'video' | 'audio';
  codec: 'h264' | SipAudioCodec;
  /** the format we answer with, under the offerer's payload type */
  format: MediaFormat;
  /** false when the phone does not want media now (sendonly/inactive offer, or hold with c=0.0.0.0) */
  send: boolean;
  remote: SipRemoteMedia;
}

/** The plan for one m= section of the offer, in offer order. */
export interface SipMediaPlan {
  index: number;
  type: string;
  /** null: refused (answered with port 0) */
  accepted: SipAcceptedMedia | null;
  /** why it was refused, for logs and the Warning header */
  reason?: string;
}

/** Transports we can send on: plain RTP; AVPF feedback is optional for us (RFC 4585 §3.5). */
const PLAIN_RTP = new Set(['RTP/AVP', 'RTP/AVPF']);

/** Sample rate of G.711 (RFC 3551 §4.5.14). */
export const G711_CLOCK_RATE = 8000;
/** Packet duration we send G.711 with: 20 ms, the RFC 3551 §4.5 default for frame-less codecs. */
export const G711_PTIME_MS = 20;

function offerDirection(offer: SessionDescription, m: MediaDescription): SdpDirection {
  return m.direction ?? offer.direction ?? 'sendrecv';
}

/** The phone's address and ports for a section; null when it has no usable connection address. */
export function remoteMediaOf(offer: SessionDescription, m: MediaDescription): SipRemoteMedia | null {
  const conn = m.connection ?? offer.connection;
  if (!conn) return null;
  const address = conn.address.split('/')[0] ?? '';
  if (isIP(address) === 0) return null;
  const rtcpMux = m.attributes.some((a) => a.key === 'rtcp-mux');
  let rtcpPort = rtcpMux ? m.port : m.port + 1;
  let rtcpAddress = address;
  const rtcp = sdpAttribute(m.attributes, 'rtcp');
  if (!rtcpMux && rtcp !== undefined) {
    // RFC 3605: a=rtcp:port [nettype addrtype address]
    const r = /^(\d{1,5})(?:\s+IN\s+IP[46]\s+(\S+))?\s*$/i.exec(rtcp);
    if (r) {
      rtcpPort = Number(r[1]);
      if (r[2] !== undefined && isIP(r[2]) !== 0) rtcpAddress = r[2];
    }
  }
  return { address, rtpPort: m.port, rtcpAddress, rtcpPort, rtcpMux };
}

function isUnspecified(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

/** The H.264 packetization mode of a format (RFC 6184 §8.1: absent means 0), or null when not H.264 we can send. */
function h264Mode(f: MediaFormat): 0 | 1 | null {
  if (f.encoding.toUpperCase() !== 'H264' || f.clockRate !== 90000) return null;
  const mode = (f.fmtp['packetization-mode'] ?? '0').trim();
  return mode === '1' ? 1 : mode === '0' ? 0 : null;
}

function audioCodecOf(f: MediaFormat): SipAudioCodec | null {
  const enc = f.encoding.toUpperCase();
  if (enc === 'PCMU' && f.clockRate === G711_CLOCK_RATE) return 'pcmu';
  if (enc === 'PCMA' && f.clockRate === G711_CLOCK_RATE) return 'pcma';
  if (enc === 'OPUS' && f.clockRate === 48000) return 'opus';
  return null;
}

/** Can the source feed `codec`? */
function audioPossible(codec: SipAudioCodec, caps: SipSourceCaps): boolean {
  const a = caps.audio;
  if (!a) return false;
  if (a.codec === 'opus') return codec === 'opus'; // Opus → G.711 would need a decoder fed with Ogg: not done
  return caps.transcode;
}

/**
 * Decides, for each m= section of a SIP offer, what we send there (RFC 3264 §6).
 * @throws ProtocolError(488) when no section can be served (message lists each section's reason)
 */
export function negotiateSipOffer(offer: SessionDescription, caps: SipSourceCaps): SipMediaPlan[] {
  let videoTaken = false;
  let audioTaken = false;
  const plans = offer.media.map((m, index): SipMediaPlan => {
    const refuse = (reason: string): SipMediaPlan => ({ index, type: m.type, accepted: null, reason });
    if (m.port === 0) return refuse('refused by the offer (port 0)');
    if (!PLAIN_RTP.has(m.proto.toUpperCase())) return refuse(`transport ${m.proto} is not supported (plain RTP/AVP only)`);
    const remote = remoteMediaOf(offer, m);
    if (!remote) return refuse('no usable connection address');
    const dir = offerDirection(offer, m);
    const send = (dir === 'sendrecv' || dir === 'recvonly') && !isUnspecified(remote.address);
    if (m.type === 'video') {
      if (videoTaken) return refuse('a second video section');
      if (!caps.video) return refuse('the path has no video');
      // mode 1 (FU-A/STAP-A) first; mode 0 (one NAL unit per packet, IP-fragmented when large) is what older
      // video phones and baresip's first H.264 entry offer
      const f = m.formats.find((x) => h264Mode(x) === 1) ?? m.formats.find((x) => h264Mode(x) === 0);
      if (!f) return refuse('no H.264 (packetization-mode 0 or 1) offered');
      videoTaken = true;
      const format = h264Format(f.payloadType, caps.video);
      if (h264Mode(f) === 0) format.fmtp['packetization-mode'] = '0';
      return { index, type: m.type, accepted: { kind: 'video', codec: 'h264', format, send, remote } };
    }
    if (m.type === 'audio') {
      if (audioTaken) return refuse('a second audio section');
      if (!caps.audio) return refuse('the path has no audio');
      for (const f of m.formats) {
        const codec = audioCodecOf(f);
        if (codec === null || !audioPossible(codec, caps)) continue;
        audioTaken = true;
        const format: MediaFormat =
          codec === 'opus'
            ? opusFormat(f.payloadType, { channels: caps.audio.channels ?? 2 })
            : { payloadType: f.payloadType, encoding: codec === 'pcmu' ? 'PCMU' : 'PCMA', clockRate: G711_CLOCK_RATE, fmtp: {} };
        return { index, type: m.type, accepted: { kind: 'audio', codec, format, send, remote } };
      }
      if (caps.audio.codec === 'aac' && !caps.transcode) return refuse('AAC audio needs ffmpeg to be transcoded, and ffmpeg is not available');
      if (caps.audio.codec === 'opus') return refuse('the path has Opus audio and the offer has no Opus');
      return refuse('no PCMU, PCMA or Opus offered');
    }
    return refuse(`media type ${m.type} is not supported`);
  });
  if (!plans.some((p) => p.accepted)) {
    const why = plans.map((p) => `m=${p.type}: ${p.reason ?? 'refused'}`).join('; ');
    throw new ProtocolError(488, plans.length === 0 ? 'the offer has no media' : why);
  }
  return plans;
}

/** Our side of the answer. */
export interface SipAnswerLocal {
  /** the address the phone reaches our RTP sockets at (c= line) */
  address: string;
  /** our RTP port per plan (same order); ignored for refused sections */
  ports: readonly number[];
  sessionId: string;
  /** incremented when a re-INVITE changes the answer (RFC 3264 §8) */
  sessionVersion: number;
}

/**
 * The answer (RFC 3264 §6): one section per offered section in the same order, refused ones with port 0 and
 * the first offered format; accepted ones with the single format we send, `sendonly` or `inactive`,
 * `a=rtcp-mux` echoed when offered, `a=ptime:20` for G.711.
 */
export function buildSipAnswer(offer: SessionDescription, plans: readonly SipMediaPlan[], local: SipAnswerLocal): SessionDescription {
  const addressType = isIP(local.address) === 6 ? 'IP6' : 'IP4';
  const media = offer.media.map((m, i): MediaDescription => {
    const plan = plans[i];
    const a = plan?.accepted;
    if (!a) {
      const first = m.formats[0];
      return {
        type: m.type,
        port: 0,
        proto: m.proto,
        formats: first ? [{ ...first, fmtp: {} }] : [],
        bandwidth: [],
        attributes: [],
        role: 'media',
      };
    }
    const attributes: SdpAttribute[] = [];
    if (a.codec === 'pcmu' || a.codec === 'pcma') attributes.push({ key: 'ptime', value: String(G711_PTIME_MS) });
    if (a.remote.rtcpMux) attributes.push({ key: 'rtcp-mux' });
    return {
      type: m.type,
      port: local.ports[i] ?? 0,
      proto: m.proto,
      formats: [a.format],
      direction: a.send ? 'sendonly' : 'inactive',
      bandwidth: [],
      attributes,
      role: 'media',
    };
  });
  return {
    origin: {
      username: 'streamgate',
      sessionId: local.sessionId,
      sessionVersion: String(local.sessionVersion),
      netType: 'IN',
      addressType,
      address: local.address,
    },
    name: 'streamgate',
    connection: { addressType, address: local.address },
    bandwidth: [],
    timing: { start: 0, stop: 0 },
    attributes: [],
    media,
  };
}

/** `buildSipAnswer` as text. */
export function serializeSipAnswer(offer: SessionDescription, plans: readonly SipMediaPlan[], local: SipAnswerLocal): string {
  return serializeSdp(buildSipAnswer(offer, plans, local));
}
