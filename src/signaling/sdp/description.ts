/**
 * A typed SDP session description (RFC 8866) for RTSP and RTP: what DESCRIBE/ANNOUNCE carry and what we send.
 * sdp-transform does the line grammar at this edge only; nothing else in streamgate imports it. Its loose objects
 * are mapped into `SessionDescription`, where every fmtp value stays the raw string it was on the wire
 * (sdp-transform would turn `profile-level-id=640028` into the number 640028).
 *
 * Tolerates camera quirks: missing `c=`/`t=`/`s=` lines, `o=` lines sdp-transform's grammar rejects, static
 * payload types without `a=rtpmap`, and extra media (ONVIF metadata, back channels), which are kept but flagged
 * in `MediaDescription.role` so callers can skip them.
 */
import sdpTransform from 'sdp-transform';
import { LimitError, ParseError } from '../../errors.js';

const FORMAT = 'sdp';

/**
 * Largest SDP accepted, in bytes. A camera's DESCRIBE answer is 0.5–2 KB (see test/fixtures/sdp), an ONVIF one
 * with metadata and back channel ~3 KB; 64 KiB matches the WebRTC offer bound (negotiate.ts MAX_OFFER_BYTES).
 */
export const MAX_SDP_BYTES = 64 * 1024;
/** Most m= sections accepted: multi-sensor cameras announce up to 8 video streams plus audio and metadata. */
export const MAX_SDP_MEDIA = 32;
/** Most payload types per m= line: WebRTC offers list ~20; an RTSP camera 1–3. */
export const MAX_SDP_FORMATS = 64;

/** `o=` line (RFC 8866 §5.2); ids are strings because they may exceed 2^53. */
export interface SdpOrigin {
  username: string;
  sessionId: string;
  sessionVersion: string;
  netType: string;
  addressType: string;
  address: string;
}

/** `c=` line (RFC 8866 §5.7). */
export interface SdpConnection {
  /** 'IP4' or 'IP6' */
  addressType: string;
  /** may carry a multicast TTL suffix, e.g. `239.0.0.1/127` */
  address: string;
}

/** `b=` line (RFC 8866 §5.8). */
export interface SdpBandwidth {
  type: string;
  /** kbit/s for AS/CT, bit/s for TIAS */
  limit: number;
}

/** Direction attribute (RFC 8866 §6.7). */
export type SdpDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

/** An attribute this module does not model, kept for round trips: `a=key` or `a=key:value`. */
export interface SdpAttribute {
  key: string;
  value?: string;
}

/** One payload format of an m= line: `a=rtpmap` plus `a=fmtp`. */
export interface MediaFormat {
  payloadType: number;
  /** encoding name as written (`H264`, `MPEG4-GENERIC`, `opus`); '' for a dynamic type without rtpmap */
  encoding: string;
  /** RTP clock rate in Hz; 0 when unknown */
  clockRate: number;
  channels?: number;
  /** fmtp parameters: names lower-cased (they are case-insensitive, RFC 4855 §3), values exactly as written */
  fmtp: Record<string, string>;
}

/**
 * What a media section is for. `onvif-metadata` (`vnd.onvif.metadata`) and `backchannel` (an ONVIF audio back
 * channel: `a=sendonly` next to media that are not) are kept so the description round-trips, but readers skip them.
 */
export type MediaRole = 'media' | 'onvif-metadata' | 'backchannel';

/** One m= section. */
export interface MediaDescription {
  /** 'video', 'audio', 'application', ... */
  type: string;
  port: number;
  /** transport, e.g. 'RTP/AVP' */
  proto: string;
  /** in m= line order */
  formats: MediaFormat[];
  /** `a=control` (RFC 2326 C.1.1), relative or absolute */
  control?: string;
  direction?: SdpDirection;
  connection?: SdpConnection;
  bandwidth: SdpBandwidth[];
  /** other attributes, in order */
  attributes: SdpAttribute[];
  role: MediaRole;
}

/** A whole description. */
export interface SessionDescription {
  origin: SdpOrigin;
  /** `s=`, '-' when absent */
  name: string;
  /** `i=` */
  info?: string;
  connection?: SdpConnection;
  bandwidth: SdpBandwidth[];
  /** `t=` start and stop (NTP seconds; 0 0 = unbounded) */
  timing: { start: number; stop: number };
  /** session-level `a=control`, '*' or a URL */
  control?: string;
  direction?: SdpDirection;
  attributes: SdpAttribute[];
  media: MediaDescription[];
}

/** Attribute names that have typed fields; all others go to `attributes`. */
const MODELED = new Set(['rtpmap', 'fmtp', 'control', 'sendrecv', 'sendonly', 'recvonly', 'inactive']);

/** Static payload types of RFC 3551 §6 Table 4/5 that cameras send without a=rtpmap. */
const STATIC_PAYLOAD_TYPES: ReadonlyMap<number, { encoding: string; clockRate: number; channels?: number }> = new Map([
  [0, { encoding: 'PCMU', clockRate: 8000, channels: 1 }],
  [3, { encoding: 'GSM', clockRate: 8000, channels: 1 }],
  [8, { encoding: 'PCMA', clockRate: 8000, channels: 1 }],
  [9, { encoding: 'G722', clockRate: 8000, channels: 1 }],
  [10, { encoding: 'L16', clockRate: 44100, channels: 2 }],
  [11, { encoding: 'L16', clockRate: 44100, channels: 1 }],
  [14, { encoding: 'MPA', clockRate: 90000 }],
  [26, { encoding: 'JPEG', clockRate: 90000 }],
  [32, { encoding: 'MPV', clockRate: 90000 }],
  [33, { encoding: 'MP2T', clockRate: 90000 }],
]);

/**
 * Parses fmtp parameters `a=b;c=d` (`; ` also accepted) into a map with lower-case names and raw values.
 * A value may contain `=` (base64 padding in sprop-parameter-sets). Parameters without `=` get ''.
 */
export function parseFmtp(config: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of config.split(';')) {
    const p = part.trim();
    if (p === '') continue;
    const eq = p.indexOf('=');
    if (eq < 0) out[p.toLowerCase()] = '';
    else out[p.slice(0, eq).trim().toLowerCase()] = p.slice(eq + 1).trim();
  }
  return out;
}

/** Writes fmtp parameters back as `a=b;c=d`. */
export function serializeFmtp(fmtp: Readonly<Record<string, string>>): string {
  return Object.entries(fmtp)
    .map(([k, v]) => (v === '' ? k : `${k}=${v}`))
    .join(';');
}

const LINE = /^([a-z])=(.*)$/;

/** Raw lines per section (index 0 = session, i + 1 = media i), as sdp-transform splits them. */
function rawSections(text: string): string[][] {
  const sections: string[][] = [[]];
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (!LINE.test(line)) continue;
    if (line.startsWith('m=')) sections.push([]);
    (sections[sections.length - 1] as string[]).push(line);
  }
  return sections;
}

function extraAttributes(lines: readonly string[]): SdpAttribute[] {
  const out: SdpAttribute[] = [];
  for (const line of lines) {
    if (!line.startsWith('a=')) continue;
    const body = line.slice(2);
    const colon = body.indexOf(':');
    const key = colon < 0 ? body : body.slice(0, colon);
    if (MODELED.has(key)) continue;
    out.push(colon < 0 ? { key } : { key, value: body.slice(colon + 1) });
  }
  return out;
}

/** `o=` from the raw line when sdp-transform's grammar (digits only, all six fields) rejects it. */
function lenientOrigin(lines: readonly string[]): SdpOrigin {
  const raw = lines.find((l) => l.startsWith('o='))?.slice(2).trim().split(/\s+/) ?? [];
  return {
    username: raw[0] ?? '-',
    sessionId: raw[1] ?? '0',
    sessionVersion: raw[2] ?? '0',
    netType: raw[3] ?? 'IN',
    addressType: raw[4] ?? 'IP4',
    address: raw[5] ?? '0.0.0.0',
  };
}

function connectionOf(c: { version: number; ip: string } | undefined): SdpConnection | undefined {
  return c ? { addressType: `IP${c.version}`, address: String(c.ip) } : undefined;
}

function bandwidthOf(b: { type: string; limit: number | string }[] | undefined): SdpBandwidth[] {
  return (b ?? []).map((x) => ({ type: String(x.type), limit: Number(x.limit) }));
}

/** The last exact direction attribute of a section (sdp-transform's pattern also matches `a=recvonlyX`). */
function directionOf(lines: readonly string[]): SdpDirection | undefined {
  let dir: SdpDirection | undefined;
  for (const l of lines) {
    const m = /^a=(sendrecv|sendonly|recvonly|inactive)$/.exec(l);
    if (m) dir = m[1] as SdpDirection;
  }
  return dir;
}

/**
 * Parses an SDP text (LF or CRLF line ends, leading blank lines tolerated).
 * @throws ParseError when there is no `v=` line or an m= line is unreadable; LimitError over MAX_SDP_BYTES,
 *   MAX_SDP_MEDIA or MAX_SDP_FORMATS.
 */
export function parseSdp(text: string): SessionDescription {
  if (text.length > MAX_SDP_BYTES) throw new LimitError('SDP bytes', MAX_SDP_BYTES, text.length);
  const trimmed = text.replace(/^\uFEFF/, '').trimStart();
  if (!trimmed.startsWith('v=')) throw new ParseError(FORMAT, 'does not start with a v= line', 0);
  const raw = rawSections(trimmed);
  if (raw.length - 1 > MAX_SDP_MEDIA) throw new LimitError('SDP media sections', MAX_SDP_MEDIA, raw.length - 1);
  const s = sdpTransform.parse(trimmed);
  if (s.media.length !== raw.length - 1) throw new ParseError(FORMAT, 'unreadable m= line');

  const o = s.origin;
  const origin: SdpOrigin = o
    ? {
        username: String(o.username),
        sessionId: String(o.sessionId),
        sessionVersion: String(o.sessionVersion),
        netType: String(o.netType),
        addressType: `IP${o.ipVer}`,
        address: String(o.address),
      }
    : lenientOrigin(raw[0] as string[]);

  const desc: SessionDescription = {
    origin,
    name: s.name === undefined || String(s.name) === '' ? '-' : String(s.name),
    bandwidth: bandwidthOf(s.bandwidth),
    timing: s.timing ? { start: Number(s.timing.start), stop: Number(s.timing.stop) } : { start: 0, stop: 0 },
    attributes: extraAttributes(raw[0] as string[]),
    media: [],
  };
  if (s.description !== undefined) desc.info = String(s.description);
  const conn = connectionOf(s.connection);
  if (conn) desc.connection = conn;
  if (s.control !== undefined) desc.control = String(s.control);
  const dir = directionOf(raw[0] as string[]);
  if (dir) desc.direction = dir;

  s.media.forEach((m, i) => {
    // sdp-transform leaves a media without type when its grammar rejects the m= line (e.g. `5000/2` port counts)
    if (m.type === undefined || m.protocol === undefined) throw new ParseError(FORMAT, `unreadable m= line in media ${i}`);
    const payloads = String(m.payloads ?? '')
      .split(/\s+/)
      .filter((t) => /^\d{1,3}$/.test(t))
      .map(Number)
      .filter((pt) => pt <= 127);
    if (payloads.length > MAX_SDP_FORMATS) throw new LimitError('SDP payload types per media', MAX_SDP_FORMATS, payloads.length);
    const formats: MediaFormat[] = payloads.map((pt) => {
      // an rtpmap whose encoding the grammar could not read (e.g. two spaces) counts as absent
      const map = m.rtp.find((r) => Number(r.payload) === pt && String(r.codec ?? '') !== '');
      const fmtpLine = m.fmtp.find((f) => Number(f.payload) === pt);
      const fmtp = fmtpLine ? parseFmtp(String(fmtpLine.config)) : {};
      if (map) {
        const f: MediaFormat = { payloadType: pt, encoding: String(map.codec), clockRate: Number(map.rate ?? 0), fmtp };
        if (map.encoding !== undefined && String(map.encoding) !== '') f.channels = Number(map.encoding);
        return f;
      }
      const st = STATIC_PAYLOAD_TYPES.get(pt);
      return st ? { payloadType: pt, ...st, fmtp } : { payloadType: pt, encoding: '', clockRate: 0, fmtp };
    });
    const md: MediaDescription = {
      type: String(m.type),
      port: Number(m.port),
      proto: String(m.protocol),
      formats,
      bandwidth: bandwidthOf(m.bandwidth),
      attributes: extraAttributes(raw[i + 1] as string[]),
      role: 'media',
    };
    if (m.control !== undefined) md.control = String(m.control);
    const mdir = directionOf(raw[i + 1] as string[]);
    if (mdir) md.direction = mdir;
    const mconn = connectionOf(m.connection);
    if (mconn) md.connection = mconn;
    desc.media.push(md);
  });
  classifyRoles(desc);
  return desc;
}

/**
 * Flags ONVIF metadata and back-channel sections. A back channel is `sendonly` in a description where other
 * media are not: cameras that mark everything `sendonly` (their own point of view) send normal media
 * (gortsplib: "issue mediamtx/5074 (fake back channel)").
 */
function classifyRoles(desc: SessionDescription): void {
  const notSendonly = desc.media.some((m) => (m.direction ?? desc.direction) !== 'sendonly');
  for (const m of desc.media) {
    if (m.formats.some((f) => f.encoding.toLowerCase() === 'vnd.onvif.metadata')) m.role = 'onvif-metadata';
    else if ((m.direction ?? desc.direction) === 'sendonly' && notSendonly) m.role = 'backchannel';
    else m.role = 'media';
  }
}

type TransformMedia = sdpTransform.MediaDescription;

const ipVersion = (addressType: string): number => (addressType.toUpperCase() === 'IP6' ? 6 : 4);

/**
 * Writes a description as SDP text with CRLF line ends, in RFC 8866 order (attributes: rtpmap, fmtp, control,
 * direction, then the others in their order). `parseSdp(serializeSdp(d))` deep-equals `d`.
 */
export function serializeSdp(d: SessionDescription): string {
  const media: TransformMedia[] = d.media.map((m) => {
    const tm: TransformMedia = {
      type: m.type,
      port: m.port,
      protocol: m.proto,
      payloads: m.formats.map((f) => f.payloadType).join(' '),
      rtp: m.formats
        .filter((f) => f.encoding !== '')
        .map((f) => {
          const r: TransformMedia['rtp'][number] = { payload: f.payloadType, codec: f.encoding, rate: f.clockRate };
          if (f.channels !== undefined) r.encoding = f.channels;
          return r;
        }),
      fmtp: m.formats.filter((f) => Object.keys(f.fmtp).length > 0).map((f) => ({ payload: f.payloadType, config: serializeFmtp(f.fmtp) })),
    };
    if (m.connection) tm.connection = { version: ipVersion(m.connection.addressType), ip: m.connection.address };
    if (m.bandwidth.length > 0) tm.bandwidth = m.bandwidth.map((b) => ({ type: b.type as 'AS', limit: b.limit }));
    if (m.control !== undefined) tm.control = m.control;
    if (m.direction) tm.direction = m.direction;
    if (m.attributes.length > 0) tm.invalid = m.attributes.map(attributeLine);
    return tm;
  });
  const s: sdpTransform.SessionDescription = {
    version: 0,
    origin: {
      username: d.origin.username,
      sessionId: d.origin.sessionId,
      sessionVersion: 0,
      netType: d.origin.netType,
      ipVer: ipVersion(d.origin.addressType),
      address: d.origin.address,
    },
    name: d.name,
    timing: { start: d.timing.start, stop: d.timing.stop },
    media,
  };
  if (d.info !== undefined) s.description = d.info;
  if (d.connection) s.connection = { version: ipVersion(d.connection.addressType), ip: d.connection.address };
  if (d.bandwidth.length > 0) s.bandwidth = d.bandwidth.map((b) => ({ type: b.type as 'AS', limit: b.limit }));
  if (d.control !== undefined) s.control = d.control;
  if (d.direction) s.direction = d.direction;
  if (d.attributes.length > 0) s.invalid = d.attributes.map(attributeLine);
  // sdp-transform writes the session version with %d, which would round ids over 2^53: write o= ourselves
  const o = d.origin;
  return sdpTransform
    .write(s)
    .replace(/^o=.*$/m, () => `o=${o.username} ${o.sessionId} ${o.sessionVersion} ${o.netType} ${o.addressType} ${o.address}`);
}

function attributeLine(a: SdpAttribute): { value: string } {
  return { value: a.value === undefined ? a.key : `${a.key}:${a.value}` };
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers for RTSP

/** The value of the first other attribute named `key`, e.g. `range` or `framerate`. */
export function sdpAttribute(attrs: readonly SdpAttribute[], key: string): string | undefined {
  return attrs.find((a) => a.key === key)?.value;
}

/**
 * The URL a media section is SETUP with (RFC 2326 C.1.1): an absolute `a=control` as is; `*`, none, or a
 * relative one appended to the base (Content-Base or the DESCRIBE URL) with one `/` between, as ffmpeg, VLC
 * and GStreamer do (not RFC 3986 resolution, which would drop the base's last segment).
 */
export function controlUrl(base: string, control: string | undefined): string {
  if (control === undefined || control === '' || control === '*') return base;
  if (/^rtsps?:\/\//i.test(control)) return control;
  return base.endsWith('/') ? base + control : `${base}/${control}`;
}

/** H.264 parameters from an fmtp (RFC 6184 §8.1). */
export interface H264FmtpParams {
  packetizationMode: number;
  /** hex string of 3 bytes, as written */
  profileLevelId?: string;
  /** parameter sets from sprop-parameter-sets, decoded; SPS first when present */
  sps?: Uint8Array;
  pps?: Uint8Array;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Reads packetization-mode, profile-level-id and sprop-parameter-sets. Bad base64 entries are skipped (cameras
 * send stray whitespace and empty entries); the SPS/PPS are told apart by their NAL type, not their order.
 */
export function h264FmtpParams(fmtp: Readonly<Record<string, string>>): H264FmtpParams {
  const p: H264FmtpParams = { packetizationMode: Number(fmtp['packetization-mode'] ?? '0') || 0 };
  const pli = fmtp['profile-level-id'];
  if (pli !== undefined && /^[0-9a-fA-F]{6}$/.test(pli)) p.profileLevelId = pli;
  for (const part of (fmtp['sprop-parameter-sets'] ?? '').split(',')) {
    const b64 = part.trim();
    if (b64 === '' || !BASE64.test(b64)) continue;
    const nal = Uint8Array.from(Buffer.from(b64, 'base64'));
    if (nal.length === 0) continue;
    const type = (nal[0] as number) & 0x1f;
    if (type === 7 && !p.sps) p.sps = nal;
    else if (type === 8 && !p.pps) p.pps = nal;
  }
  return p;
}

/** Decodes a hex fmtp value (AAC `config`); undefined when absent or not hex. */
export function hexFmtpValue(fmtp: Readonly<Record<string, string>>, key: string): Uint8Array | undefined {
  const v = fmtp[key];
  if (v === undefined || v.length === 0 || v.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(v)) return undefined;
  return Uint8Array.from(Buffer.from(v, 'hex'));
}

// ---------------------------------------------------------------------------------------------------------------
// Builders for the descriptions we send

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const base64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

/**
 * H.264 format (RFC 6184 §8.1): packetization-mode 1, profile-level-id from SPS bytes 1–3, and
 * sprop-parameter-sets when the parameter sets are known.
 */
export function h264Format(payloadType: number, params: { sps?: Uint8Array | undefined; pps?: Uint8Array | undefined } = {}): MediaFormat {
  const fmtp: Record<string, string> = { 'packetization-mode': '1' };
  if (params.sps && params.sps.length >= 4) fmtp['profile-level-id'] = hex(params.sps.subarray(1, 4)).toUpperCase();
  if (params.sps && params.pps) fmtp['sprop-parameter-sets'] = `${base64(params.sps)},${base64(params.pps)}`;
  return { payloadType, encoding: 'H264', clockRate: 90000, fmtp };
}

/**
 * AAC format as RFC 3640 `mpeg4-generic` AAC-hbr (§3.3.6): clock = sample rate, `config` = the
 * AudioSpecificConfig in hex.
 */
export function aacFormat(payloadType: number, params: { config: Uint8Array; sampleRate: number; channels: number }): MediaFormat {
  return {
    payloadType,
    encoding: 'MPEG4-GENERIC',
    clockRate: params.sampleRate,
    channels: params.channels,
    fmtp: {
      streamtype: '5',
      'profile-level-id': '1',
      mode: 'AAC-hbr',
      sizelength: '13',
      indexlength: '3',
      indexdeltalength: '3',
      config: hex(params.config),
    },
  };
}

/** Opus format (RFC 7587 §7): always `opus/48000/2`; `sprop-stereo=1` for stereo sources. */
export function opusFormat(payloadType: number, params: { channels?: number } = {}): MediaFormat {
  const fmtp: Record<string, string> = {};
  if ((params.channels ?? 2) >= 2) fmtp['sprop-stereo'] = '1';
  return { payloadType, encoding: 'opus', clockRate: 48000, channels: 2, fmtp };
}

/** One media section of `buildSessionDescription`. */
export interface MediaInit {
  type: 'video' | 'audio';
  format: MediaFormat;
  /** `a=control`, e.g. `trackID=0` */
  control: string;
}

/**
 * A description for RTSP DESCRIBE answers and ANNOUNCE requests: `o=- <id> <version> IN IP4 <address>`,
 * `c=IN IP4 0.0.0.0` (RTSP does not use it), session control `*`, one section per track with port 0.
 */
export function buildSessionDescription(init: {
  name: string;
  media: readonly MediaInit[];
  sessionId?: string;
  address?: string;
  tool?: string;
}): SessionDescription {
  const desc: SessionDescription = {
    origin: {
      username: '-',
      sessionId: init.sessionId ?? '0',
      sessionVersion: '0',
      netType: 'IN',
      addressType: 'IP4',
      address: init.address ?? '127.0.0.1',
    },
    name: init.name === '' ? '-' : init.name,
    connection: { addressType: 'IP4', address: '0.0.0.0' },
    bandwidth: [],
    timing: { start: 0, stop: 0 },
    control: '*',
    attributes: init.tool ? [{ key: 'tool', value: init.tool }] : [],
    media: init.media.map((m) => ({
      type: m.type,
      port: 0,
      proto: 'RTP/AVP',
      formats: [m.format],
      control: m.control,
      bandwidth: [],
      attributes: [],
      role: 'media' as const,
    })),
  };
  return desc;
}
