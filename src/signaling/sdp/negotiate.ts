/**
 * WebRTC offer/answer negotiation as a pure function: (offer, what the gateway can do) → the codec per m-section,
 * or a ProtocolError whose status the HTTP layer sends back (400 bad SDP, 488 nothing usable).
 *
 * The offer is read into a narrow `Offer` view first (`parseOffer`), so `negotiate` only sees typed fields and its
 * tests can run over real browser offers (test/fixtures/webrtc/*.sdp).
 */
import { SessionDescription } from 'werift';
import { ParseError, ProtocolError } from '../../errors.js';

/**
 * Largest offer accepted. Chromium's recvonly offer for audio+video is ~6 KB, a simulcast publish offer with every
 * codec ~12 KB; 64 KiB leaves room for many candidates while bounding what a client can make us parse.
 */
export const MAX_OFFER_BYTES = 64 * 1024;
/** Most m-sections accepted; a WHEP/WHIP offer has 2 (audio, video), a bundle with data channel 3. */
export const MAX_OFFER_MEDIA = 16;

/** One payload format of an offered m-section. */
export interface OfferedCodec {
  payloadType: number;
  /** encoding name, upper case: 'H264', 'OPUS', 'VP8', 'RTX' ... */
  name: string;
  clockRate: number;
  channels?: number;
  /** `a=fmtp` parameters, names lower case */
  fmtp: Record<string, string>;
  /** `a=fmtp` exactly as offered (werift matches codecs on this string) */
  fmtpLine: string;
  /** `a=rtcp-fb` values, e.g. 'nack', 'nack pli', 'ccm fir', 'transport-cc' */
  rtcpFb: string[];
}

/** Media direction attribute, from the offerer's point of view. */
export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

/** One offered m-section. */
export interface OfferedMedia {
  kind: 'audio' | 'video' | 'application';
  mid: string;
  direction: Direction;
  codecs: OfferedCodec[];
  /** RFC 8285 header extensions: id → uri */
  extensions: { id: number; uri: string }[];
}

/** What negotiation needs of an offer. */
export interface Offer {
  media: OfferedMedia[];
  iceUfrag: string;
  icePwd: string;
  /** 'algorithm value' pairs, e.g. { algorithm: 'sha-256', value: 'AB:CD:…' } */
  fingerprints: { algorithm: string; value: string }[];
}

/**
 * Reads an SDP offer into the `Offer` view.
 * @throws ParseError (→ HTTP 400) when the text is not a usable WebRTC offer: no `v=0`, no m-line, no ICE
 *   credentials or DTLS fingerprint, or over MAX_OFFER_BYTES / MAX_OFFER_MEDIA.
 */
export function parseOffer(sdp: string): Offer {
  if (sdp.length > MAX_OFFER_BYTES) throw new ParseError('sdp', `offer is ${sdp.length} bytes, over the limit of ${MAX_OFFER_BYTES}`);
  if (!/^v=0\r?\n/.test(sdp)) throw new ParseError('sdp', 'offer does not start with "v=0"', 0);
  // checked before werift, whose parser throws a TypeError ("reading 'iceParams'") on a media section without them
  if (!/^a=ice-ufrag:\S/m.test(sdp) || !/^a=ice-pwd:\S/m.test(sdp)) throw new ParseError('sdp', 'offer has no a=ice-ufrag / a=ice-pwd');
  let desc: SessionDescription;
  try {
    desc = SessionDescription.parse(sdp);
  } catch (err) {
    throw new ParseError('sdp', err instanceof Error ? err.message : String(err));
  }
  if (desc.media.length === 0) throw new ParseError('sdp', 'offer has no m= line');
  if (desc.media.length > MAX_OFFER_MEDIA) throw new ParseError('sdp', `offer has ${desc.media.length} m= lines, over the limit of ${MAX_OFFER_MEDIA}`);
  const first = desc.media[0]!;
  const iceUfrag = first.iceParams?.usernameFragment ?? desc.iceUsernameFragment;
  const icePwd = first.iceParams?.password ?? desc.icePassword;
  if (!iceUfrag || !icePwd) throw new ParseError('sdp', 'offer has no a=ice-ufrag / a=ice-pwd');
  const fps = first.dtlsParams?.fingerprints.length ? first.dtlsParams.fingerprints : desc.dtlsFingerprints;
  if (fps.length === 0) throw new ParseError('sdp', 'offer has no a=fingerprint (DTLS-SRTP is required)');
  const media: OfferedMedia[] = desc.media.map((m, i) => {
    if (m.kind !== 'audio' && m.kind !== 'video' && m.kind !== 'application') {
      throw new ParseError('sdp', `m= line ${i} has unknown media '${String(m.kind)}'`);
    }
    return {
      kind: m.kind,
      mid: m.rtp.muxId ?? String(i),
      direction: m.direction ?? 'sendrecv',
      codecs: m.rtp.codecs.map((c) => {
        const [, name = ''] = c.mimeType.split('/');
        const fmtpLine = c.parameters ?? '';
        const codec: OfferedCodec = {
          payloadType: c.payloadType,
          name: name.toUpperCase(),
          clockRate: c.clockRate,
          fmtp: parseFmtp(fmtpLine),
          fmtpLine,
          rtcpFb: c.rtcpFeedback.map((f) => (f.parameter ? `${f.type} ${f.parameter}` : f.type)),
        };
        if (c.channels !== undefined) codec.channels = c.channels;
        return codec;
      }),
      extensions: m.rtp.headerExtensions.map((e) => ({ id: e.id, uri: e.uri })),
    };
  });
  return { media, iceUfrag, icePwd, fingerprints: fps.map((f) => ({ algorithm: f.algorithm, value: f.value })) };
}

/** `a=fmtp` parameter list → lower-case names → values. */
export function parseFmtp(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of line.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    out[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim();
  }
  return out;
}

/** The H.264 stream the gateway would send, from its SPS (profile_idc, constraint_set flags byte, level_idc). */
export interface H264Capability {
  profileIdc: number;
  constraintFlags: number;
  levelIdc: number;
}

/** What the gateway offers for one session. */
export interface Capabilities {
  /** 'send': the gateway sends media (WHEP); 'receive': the gateway receives (WHIP). */
  role: 'send' | 'receive';
  /** H.264 to send (from the stream's SPS), or `'any'` for WHIP (accept any profile with packetization-mode=1) */
  video: H264Capability | 'any' | null;
  /** Opus can be sent/received */
  audio: boolean;
}

/** The outcome for one m-section. `codec` null: the section is rejected (port 0 in the answer). */
export interface NegotiatedMedia {
  kind: OfferedMedia['kind'];
  mid: string;
  codec: OfferedCodec | null;
  /** why the section was rejected, for logs */
  reason?: string;
}

/** Negotiation result, one entry per offered m-section, in order. */
export interface Negotiation {
  media: NegotiatedMedia[];
  video: NegotiatedMedia | undefined;
  audio: NegotiatedMedia | undefined;
}

/**
 * Profiles in the order a decoder of the first can decode the second: a High 4:4:4 decoder (f4) decodes High (64),
 * High decodes Main (4d), Main decodes Constrained Baseline (42 with constraint_set1). ITU-T H.264 Annex A.2.
 */
const PROFILE_RANK: Record<number, number> = { 0x42: 1, 0x4d: 2, 0x58: 2, 0x64: 3, 0x6e: 4, 0x7a: 5, 0xf4: 6 };

/**
 * Chooses, per offered m-section, the codec to use.
 * - Video: H.264 with packetization-mode=1 (RFC 6184 §6.2: non-interleaved mode, needed for FU-A/STAP-A). When
 *   sending, the offered profile equal to the stream's is preferred, then the lowest offered profile that can decode
 *   it (rank ≥ the stream's), then the highest offered one (Chromium's software decoder decodes every profile; the
 *   negotiated value only picks the decoder).
 * - Audio: Opus/48000/2 (RFC 7587).
 * @throws ProtocolError(488) when no m-section can be used, with a reason naming what is missing.
 */
export function negotiate(offer: Offer, caps: Capabilities): Negotiation {
  const wantDir: Direction[] = caps.role === 'send' ? ['recvonly', 'sendrecv'] : ['sendonly', 'sendrecv'];
  let video: NegotiatedMedia | undefined;
  let audio: NegotiatedMedia | undefined;
  const reasons: string[] = [];
  const media = offer.media.map((m): NegotiatedMedia => {
    const out: NegotiatedMedia = { kind: m.kind, mid: m.mid, codec: null };
    const reject = (reason: string): NegotiatedMedia => {
      out.reason = reason;
      reasons.push(`${m.kind} (mid ${m.mid}): ${reason}`);
      return out;
    };
    if (m.kind === 'application') return reject('data channels are not used');
    if (!wantDir.includes(m.direction)) return reject(`direction ${m.direction} (need ${wantDir.join(' or ')})`);
    if (m.kind === 'video') {
      if (video) return reject('only one video section is used');
      if (caps.video === null) return reject('the stream has no video');
      const codec = pickH264(m.codecs, caps.video);
      if (!codec) return reject('no H.264 with packetization-mode=1 offered');
      out.codec = codec;
      video = out;
      return out;
    }
    if (audio) return reject('only one audio section is used');
    if (!caps.audio) return reject('the stream has no audio that can be sent as Opus');
    const opus = m.codecs.find((c) => c.name === 'OPUS' && c.clockRate === 48000 && (c.channels ?? 2) === 2);
    if (!opus) return reject('no Opus/48000/2 offered');
    out.codec = opus;
    audio = out;
    return out;
  });
  if (!video && !audio) throw new ProtocolError(488, `no usable media in the offer: ${reasons.join('; ')}`);
  // a stream with video must not silently become audio-only for a browser that cannot take H.264
  if (caps.role === 'send' && caps.video !== null && !video) {
    throw new ProtocolError(488, `the stream is H.264 video and the offer cannot receive it: ${reasons.join('; ')}`);
  }
  return { media, video, audio };
}

/** profile-level-id (RFC 6184 §8.1) → [profile_idc, constraint flags, level_idc], or null when malformed. */
export function parseProfileLevelId(v: string | undefined): [number, number, number] | null {
  if (v === undefined || !/^[0-9a-fA-F]{6}$/.test(v)) return null;
  const n = parseInt(v, 16);
  return [n >> 16, (n >> 8) & 0xff, n & 0xff];
}

function pickH264(codecs: OfferedCodec[], want: H264Capability | 'any'): OfferedCodec | null {
  const candidates = codecs.filter((c) => c.name === 'H264' && c.clockRate === 90000 && c.fmtp['packetization-mode'] === '1');
  if (candidates.length === 0) return null;
  if (want === 'any') return candidates[0]!;
  const wantRank = PROFILE_RANK[want.profileIdc] ?? 3;
  let exact: OfferedCodec | null = null;
  let covering: { c: OfferedCodec; rank: number } | null = null;
  let highest: { c: OfferedCodec; rank: number } | null = null;
  for (const c of candidates) {
    const pli = parseProfileLevelId(c.fmtp['profile-level-id']) ?? [0x42, 0xe0, 0x1f];
    const rank = PROFILE_RANK[pli[0]] ?? 0;
    if (!exact && pli[0] === want.profileIdc && (want.profileIdc !== 0x42 || (pli[1] & 0x40) === (want.constraintFlags & 0x40))) exact = c;
    if (rank >= wantRank && (!covering || rank < covering.rank)) covering = { c, rank };
    if (!highest || rank > highest.rank) highest = { c, rank };
  }
  return exact ?? covering?.c ?? highest!.c;
}

/** What the answer needs besides the negotiation. */
export interface AnswerParams {
  iceUfrag: string;
  icePwd: string;
  /** 'sha-256 AB:CD:…' */
  fingerprint: string;
  /** host candidates on the shared ICE port: one per address and transport (default 'udp'), UDP first */
  candidates: { address: string; port: number; transport?: 'udp' | 'tcp' }[];
  /** 'sendonly' for WHEP (the gateway sends), 'recvonly' for WHIP */
  direction: 'sendonly' | 'recvonly';
  /** SSRC the gateway sends on, per accepted mid (WHEP) */
  ssrcs?: Map<string, number>;
  cname: string;
  /** a=msid stream id */
  streamId: string;
  sessionId: string;
}

/** ICE candidate priority of a host candidate (RFC 8445 §5.1.2.1): type preference 126, component 1. */
export function hostPriority(localPreference: number): number {
  return 126 * 2 ** 24 + localPreference * 2 ** 8 + (256 - 1);
}

/**
 * Local preference of a passive ICE-TCP host candidate (RFC 6544 §4.2): 2^13 · direction-pref (passive: 4 for a
 * host candidate) + other-pref (8191 down, one per address). At most 40959, below every UDP candidate's
 * 65535 − k, so peers that reach both prefer UDP (TCP adds head-of-line blocking to real-time media).
 */
export function tcpPassiveLocalPreference(index: number): number {
  return 2 ** 13 * 4 + Math.max(0, 8191 - index);
}

/**
 * Writes the SDP answer of an ICE-lite, DTLS-passive, BUNDLEd, rtcp-mux peer (RFC 8829 §5.3, RFC 8843): one
 * m-section per offered one, rejected ones with port 0, accepted ones with the chosen codec only.
 */
export function buildAnswer(offer: Offer, neg: Negotiation, p: AnswerParams): string {
  const L: string[] = ['v=0', `o=- ${p.sessionId} 2 IN IP4 127.0.0.1`, 's=streamgate', 't=0 0', 'a=ice-lite'];
  const bundled = neg.media.filter((m) => m.codec).map((m) => m.mid);
  if (bundled.length > 0) L.push(`a=group:BUNDLE ${bundled.join(' ')}`);
  L.push('a=msid-semantic: WMS *');
  neg.media.forEach((m, i) => {
    const offered = offer.media[i]!;
    const proto = m.kind === 'application' ? 'UDP/DTLS/SCTP webrtc-datachannel' : 'UDP/TLS/RTP/SAVPF';
    if (!m.codec) {
      const fmt = m.kind === 'application' ? '' : ` ${offered.codecs[0]?.payloadType ?? 0}`;
      L.push(`m=${m.kind} 0 ${proto}${fmt}`, 'c=IN IP4 0.0.0.0', `a=mid:${m.mid}`, 'a=inactive');
      return;
    }
    const c = m.codec;
    L.push(`m=${m.kind} 9 ${proto} ${c.payloadType}`, 'c=IN IP4 0.0.0.0', 'a=rtcp:9 IN IP4 0.0.0.0');
    L.push(`a=ice-ufrag:${p.iceUfrag}`, `a=ice-pwd:${p.icePwd}`, `a=fingerprint:${p.fingerprint}`, 'a=setup:passive');
    L.push(`a=mid:${m.mid}`, `a=${p.direction}`, 'a=rtcp-mux');
    const enc = `${c.name === 'OPUS' ? 'opus' : c.name}/${c.clockRate}${c.channels !== undefined ? `/${c.channels}` : ''}`;
    L.push(`a=rtpmap:${c.payloadType} ${enc}`);
    if (m.kind === 'video') {
      for (const fb of ['nack', 'nack pli', 'ccm fir']) if (c.rtcpFb.includes(fb)) L.push(`a=rtcp-fb:${c.payloadType} ${fb}`);
    }
    if (c.fmtpLine) L.push(`a=fmtp:${c.payloadType} ${c.fmtpLine}`);
    const ssrc = p.ssrcs?.get(m.mid);
    if (ssrc !== undefined && p.direction === 'sendonly') {
      L.push(`a=msid:${p.streamId} ${p.streamId}-${m.kind}`, `a=ssrc:${ssrc} cname:${p.cname}`, `a=ssrc:${ssrc} msid:${p.streamId} ${p.streamId}-${m.kind}`);
    }
    L.push(...candidateLines(p.candidates), 'a=end-of-candidates');
  });
  return `${L.join('\r\n')}\r\n`;
}

/**
 * `a=candidate` lines of the host candidates; foundations differ per transport and address (RFC 8445 §5.1.1.3):
 * "1", "2"… for UDP, "t1", "t2"… for TCP.
 */
export function candidateLines(candidates: AnswerParams['candidates']): string[] {
  const out: string[] = [];
  let udp = 0;
  let tcp = 0;
  for (const cand of candidates) {
    if (cand.transport === 'tcp') {
      const k = tcp++;
      out.push(`a=candidate:t${k + 1} 1 tcp ${hostPriority(tcpPassiveLocalPreference(k))} ${cand.address} ${cand.port} typ host tcptype passive`);
    } else {
      const k = udp++;
      out.push(`a=candidate:${k + 1} 1 udp ${hostPriority(65535 - k)} ${cand.address} ${cand.port} typ host`);
    }
  }
  return out;
}

/** The first `a=ice-ufrag` of an SDP or SDP fragment (RFC 8839 §5.4), without parsing the rest. */
export function iceUfragOf(sdp: string): string | undefined {
  return /^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1];
}

/**
 * The answer to an ICE restart PATCH (RFC 9725 §4.3.2, an RFC 8840 SDP fragment): the new ICE credentials, the
 * BUNDLE group and the first bundled media section of the `answer` with our candidates.
 * @returns the fragment, or null when `answer` has no media section to name
 */
export function iceRestartFragment(answer: string, ufrag: string, pwd: string, candidates: AnswerParams['candidates']): string | null {
  const group = /^a=group:BUNDLE .*$/m.exec(answer)?.[0];
  const firstBundled = group?.split(' ')[1];
  // media sections: "m=" line and its a=mid
  for (const section of answer.split(/\r?\n(?=m=)/).slice(1)) {
    const m = /^m=\S+ (\d+) \S+ .*$/m.exec(section);
    const mid = /^a=mid:(\S+)/m.exec(section)?.[1];
    if (!m || m[1] === '0' || mid === undefined || (firstBundled !== undefined && mid !== firstBundled)) continue;
    const mline = m[0];
    const L = ['a=ice-lite', `a=ice-ufrag:${ufrag}`, `a=ice-pwd:${pwd}`];
    if (group) L.push(group);
    L.push(mline, `a=mid:${mid}`, ...candidateLines(candidates), 'a=end-of-candidates');
    return `${L.join('\r\n')}\r\n`;
  }
  return null;
}
