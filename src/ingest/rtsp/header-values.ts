/**
 * RTSP 1.0 header values (RFC 2326 §12): CSeq, Session, Transport and RTP-Info parsing and formatting.
 */
import { ParseError } from '../../errors.js';
import { FORMAT, type RtspHeaders } from './message-types.js';

/** CSeq (RFC 2326 §12.17) as a non-negative integer, or undefined when missing or malformed. */
export function cseqOf(headers: RtspHeaders): number | undefined {
  const v = headers.get('cseq');
  if (v === undefined || !/^\d{1,10}$/.test(v.trim())) return undefined;
  const n = Number(v.trim());
  return n <= 0xffffffff ? n : undefined;
}

/** Session header (RFC 2326 §12.37). */
export interface RtspSessionHeader {
  id: string;
  /** seconds; the server's keepalive deadline (default 60 when absent) */
  timeoutSec?: number;
}

/** Longest session id we accept: RFC 2326 §3.4 allows 8+ chars; gst uses 16, cameras up to ~40. */
export const MAX_SESSION_ID_LENGTH = 256;

/**
 * Parses `Session: id[;timeout=n]`.
 * @throws ParseError for an empty or over-long id or a non-numeric timeout.
 */
export function parseSessionHeader(value: string): RtspSessionHeader {
  const [idPart, ...params] = value.split(';');
  const id = (idPart ?? '').trim();
  if (id === '' || id.length > MAX_SESSION_ID_LENGTH || /\s/.test(id)) throw new ParseError(FORMAT, `invalid session id '${id.slice(0, 40)}'`);
  const out: RtspSessionHeader = { id };
  for (const p of params) {
    const [k, v] = p.split('=').map((s) => s.trim());
    if (k?.toLowerCase() === 'timeout') {
      if (!v || !/^\d{1,6}$/.test(v)) throw new ParseError(FORMAT, `invalid session timeout '${v ?? ''}'`);
      out.timeoutSec = Number(v);
    }
  }
  return out;
}

/** Writes a Session header value. */
export function serializeSessionHeader(s: RtspSessionHeader): string {
  return s.timeoutSec === undefined ? s.id : `${s.id};timeout=${s.timeoutSec}`;
}

/** One transport specification of a Transport header (RFC 2326 §12.39). */
export interface RtspTransport {
  /** transport protocol and profile, e.g. 'RTP/AVP' */
  protocol: string;
  lowerTransport: 'UDP' | 'TCP';
  delivery?: 'unicast' | 'multicast';
  destination?: string;
  source?: string;
  /** RTP and RTCP channels of TCP interleaving */
  interleaved?: [number, number];
  clientPort?: [number, number];
  serverPort?: [number, number];
  /** multicast ports */
  port?: [number, number];
  ttl?: number;
  ssrc?: number;
  /** 'play' (default) or 'record' (or 'receive', an RFC 2326 draft spelling of record), lower case, unquoted */
  mode?: string;
  /** parameters not listed above, in order */
  extra?: [string, string | undefined][];
}

function range(key: string, v: string | undefined, max: number): [number, number] {
  const m = v ? /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(v) : null;
  if (!m) throw new ParseError(FORMAT, `invalid ${key}=${v ?? ''}`);
  const a = Number(m[1]);
  const b = m[2] === undefined ? a + 1 : Number(m[2]);
  if (a > max || b > max) throw new ParseError(FORMAT, `${key}=${v ?? ''} out of range`);
  return [a, b];
}

/**
 * Parses one transport specification, e.g. `RTP/AVP/TCP;unicast;interleaved=0-1;mode=record`.
 * @throws ParseError for a malformed protocol, port or channel range.
 */
export function parseTransport(spec: string): RtspTransport {
  const [proto, ...params] = spec.split(';').map((s) => s.trim());
  const parts = (proto ?? '').split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[A-Za-z0-9.-]+$/.test(p))) {
    throw new ParseError(FORMAT, `invalid transport protocol '${(proto ?? '').slice(0, 40)}'`);
  }
  const lower = (parts[2] ?? 'UDP').toUpperCase();
  if (lower !== 'UDP' && lower !== 'TCP') throw new ParseError(FORMAT, `invalid lower transport '${lower}'`);
  const t: RtspTransport = { protocol: `${(parts[0] as string).toUpperCase()}/${(parts[1] as string).toUpperCase()}`, lowerTransport: lower };
  for (const p of params) {
    if (p === '') continue;
    const eq = p.indexOf('=');
    const key = (eq < 0 ? p : p.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? undefined : p.slice(eq + 1).trim();
    switch (key) {
      case 'unicast':
      case 'multicast':
        t.delivery = key;
        break;
      case 'destination':
        if (value !== undefined) t.destination = value;
        break;
      case 'source':
        if (value !== undefined) t.source = value;
        break;
      case 'interleaved':
        t.interleaved = range(key, value, 255);
        break;
      case 'client_port':
        t.clientPort = range(key, value, 65535);
        break;
      case 'server_port':
        t.serverPort = range(key, value, 65535);
        break;
      case 'port':
        t.port = range(key, value, 65535);
        break;
      case 'ttl':
        if (!value || !/^\d{1,3}$/.test(value)) throw new ParseError(FORMAT, `invalid ttl=${value ?? ''}`);
        t.ttl = Number(value);
        break;
      case 'ssrc':
        if (!value || !/^[0-9A-Fa-f]{1,8}$/.test(value)) throw new ParseError(FORMAT, `invalid ssrc=${value ?? ''}`);
        t.ssrc = parseInt(value, 16);
        break;
      case 'mode':
        t.mode = (value ?? '').replace(/^"|"$/g, '').toLowerCase();
        break;
      default:
        (t.extra ??= []).push([key, value]);
    }
  }
  return t;
}

/**
 * Parses a Transport header: the client's comma-separated alternatives in order of preference.
 * @throws ParseError when any alternative is malformed or the header is empty.
 */
export function parseTransports(value: string): RtspTransport[] {
  const specs = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (specs.length === 0) throw new ParseError(FORMAT, 'empty Transport header');
  return specs.map(parseTransport);
}

/** Writes a transport specification in a canonical order (UDP is implied, as RFC 2326 §12.39 allows). */
export function serializeTransport(t: RtspTransport): string {
  const parts = [t.lowerTransport === 'TCP' ? `${t.protocol}/TCP` : t.protocol];
  if (t.delivery) parts.push(t.delivery);
  if (t.destination !== undefined) parts.push(`destination=${t.destination}`);
  if (t.source !== undefined) parts.push(`source=${t.source}`);
  if (t.interleaved) parts.push(`interleaved=${t.interleaved[0]}-${t.interleaved[1]}`);
  if (t.clientPort) parts.push(`client_port=${t.clientPort[0]}-${t.clientPort[1]}`);
  if (t.serverPort) parts.push(`server_port=${t.serverPort[0]}-${t.serverPort[1]}`);
  if (t.port) parts.push(`port=${t.port[0]}-${t.port[1]}`);
  if (t.ttl !== undefined) parts.push(`ttl=${t.ttl}`);
  if (t.ssrc !== undefined) parts.push(`ssrc=${(t.ssrc >>> 0).toString(16).toUpperCase().padStart(8, '0')}`);
  if (t.mode !== undefined) parts.push(`mode=${t.mode}`);
  for (const [k, v] of t.extra ?? []) parts.push(v === undefined ? k : `${k}=${v}`);
  return parts.join(';');
}

/** One entry of an RTP-Info header (RFC 2326 §12.33). */
export interface RtpInfoEntry {
  url: string;
  seq?: number;
  rtptime?: number;
}

/**
 * Parses RTP-Info. Entries are split on commas that start a new `url=`, since URLs may contain commas.
 * @throws ParseError for an entry without url or with non-numeric seq/rtptime.
 */
export function parseRtpInfo(value: string): RtpInfoEntry[] {
  const entries: RtpInfoEntry[] = [];
  for (const raw of value.split(/,\s*(?=url=)/i)) {
    const e: Partial<RtpInfoEntry> = {};
    for (const p of raw.split(';')) {
      const eq = p.indexOf('=');
      if (eq < 0) continue;
      const k = p.slice(0, eq).trim().toLowerCase();
      const v = p.slice(eq + 1).trim();
      if (k === 'url') e.url = v.replace(/^"|"$/g, '');
      else if (k === 'seq' || k === 'rtptime') {
        if (!/^\d{1,10}$/.test(v) || Number(v) > 0xffffffff) throw new ParseError(FORMAT, `invalid RTP-Info ${k}=${v}`);
        e[k] = Number(v);
      }
    }
    if (e.url === undefined) throw new ParseError(FORMAT, 'RTP-Info entry without url');
    entries.push(e as RtpInfoEntry);
  }
  return entries;
}

/** Writes an RTP-Info header value. */
export function serializeRtpInfo(entries: readonly RtpInfoEntry[]): string {
  return entries
    .map((e) => {
      let s = `url=${e.url}`;
      if (e.seq !== undefined) s += `;seq=${e.seq}`;
      if (e.rtptime !== undefined) s += `;rtptime=${e.rtptime}`;
      return s;
    })
    .join(',');
}
