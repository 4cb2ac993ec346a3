/** Cross-key checks (phase 2): path names, regexes, port clashes, credential pairs, addresses. */
import { isIP } from 'node:net';
import type { SchemaOut } from './schema.js';
import { pathKeyProblem } from './path-names.js';
import { keyPath } from './yaml-location.js';

/** A problem before it is given a position: the key path it belongs to. */
export interface RawIssue {
  path: (string | number)[];
  message: string;
  /** point at the key itself, not at its value */
  atKey?: boolean;
}

/** Path names are checked on the raw keys (zod's record would turn `__proto__` into a prototype change). */
export function pathKeyIssues(raw: unknown): RawIssue[] {
  const out: RawIssue[] = [];
  const rawPaths = isRecord(raw) && isRecord(raw['paths']) ? Object.keys(raw['paths']) : [];
  for (const key of rawPaths) {
    const problem = pathKeyProblem(key);
    if (problem !== null) out.push({ path: ['paths', key], message: problem, atKey: true });
  }
  return out;
}

/** Checks that need the whole, well-typed config. */
export function semanticIssues(c: SchemaOut): RawIssue[] {
  const out: RawIssue[] = [];
  const l = c.listeners;
  const extensions = new Map<string, string>();
  for (const [key, p] of Object.entries(c.paths ?? {})) {
    if (key.startsWith('~') && p.source !== 'publisher') {
      out.push({ path: ['paths', key, 'source'], message: 'a ~regex path cannot pull a source; name the path exactly' });
    }
    if (p.sourceOnDemand && p.source === 'publisher') {
      out.push({ path: ['paths', key, 'sourceOnDemand'], message: "needs a source URL (source is 'publisher')" });
    }
    for (const [u, pw] of [
      ['publishUser', 'publishPass'],
      ['readUser', 'readPass'],
    ] as const) {
      if ((p[u] === undefined) !== (p[pw] === undefined)) {
        const missing = p[u] === undefined ? u : pw;
        out.push({ path: ['paths', key, p[u] === undefined ? pw : u], message: `needs ${missing} too` });
      }
    }
    const ext = p.sip.extension;
    if (ext !== undefined) {
      const other = extensions.get(ext);
      if (other !== undefined) {
        out.push({ path: ['paths', key, 'sip', 'extension'], message: `extension ${ext} is already used by ${other}` });
      } else extensions.set(ext, key);
    }
  }

  const rtsp = l.rtsp;
  if (rtsp.rtpPort !== 0 && rtsp.rtpPort % 2 !== 0) {
    out.push({ path: ['listeners', 'rtsp', 'rtpPort'], message: 'must be even (RFC 3550 §11)' });
  }
  if (rtsp.rtpPort !== 0 && rtsp.rtcpPort !== rtsp.rtpPort + 1) {
    out.push({ path: ['listeners', 'rtsp', 'rtcpPort'], message: `must be rtpPort + 1 (${rtsp.rtpPort + 1})` });
  }
  if (l.hls.partDuration > l.hls.segmentDuration) {
    out.push({ path: ['listeners', 'hls', 'partDuration'], message: 'must not exceed segmentDuration' });
  }
  out.push(...portClashes(c));

  c.auth?.users.forEach((u, i) => {
    if (u.user === 'any' && u.pass !== undefined) {
      out.push({ path: ['auth', 'users', i, 'pass'], message: "user 'any' means no credentials; remove pass" });
    }
    if (u.user !== 'any' && u.pass === undefined) {
      out.push({ path: ['auth', 'users', i], message: "needs pass (or use user 'any')" });
    }
    u.ips?.forEach((ip, j) => {
      if (!isIpOrCidr(ip)) out.push({ path: ['auth', 'users', i, 'ips', j], message: 'expected an IP address or CIDR range' });
    });
    u.permissions.forEach((perm, j) => {
      if (perm.path === undefined) return;
      const problem = pathKeyProblem(perm.path);
      if (problem !== null) out.push({ path: ['auth', 'users', i, 'permissions', j, 'path'], message: problem });
    });
  });
  return out;
}

/** Two enabled listeners on the same port and protocol cannot both bind. */
function portClashes(c: SchemaOut): RawIssue[] {
  const l = c.listeners;
  const on = (x: { enabled: boolean; port: number }) => x.enabled && x.port !== 0;
  type Use = { path: (string | number)[]; port: number; host: string };
  const tcp: Use[] = [];
  const udp: Use[] = [];
  for (const name of ['rtmp', 'rtsp', 'hls', 'webrtc', 'sip', 'api', 'metrics'] as const) {
    const x = l[name];
    if (on(x)) tcp.push({ path: ['listeners', name, 'port'], port: x.port, host: x.host ?? '' });
  }
  if (on(l.sip)) udp.push({ path: ['listeners', 'sip', 'port'], port: l.sip.port, host: l.sip.host ?? '' });
  if (on(l.rtsp)) {
    for (const k of ['rtpPort', 'rtcpPort'] as const) {
      if (l.rtsp[k] !== 0) udp.push({ path: ['listeners', 'rtsp', k], port: l.rtsp[k], host: l.rtsp.host ?? '' });
    }
  }
  if (on(l.webrtc) && l.webrtc.icePort !== 0) {
    const u = { path: ['listeners', 'webrtc', 'icePort'], port: l.webrtc.icePort, host: l.webrtc.host ?? '' };
    tcp.push(u);
    udp.push(u);
  }
  const out: RawIssue[] = [];
  for (const [proto, uses] of [
    ['TCP', tcp],
    ['UDP', udp],
  ] as const) {
    const seen: Use[] = [];
    for (const u of uses) {
      // an empty host binds every interface, so it clashes with any host on the same port
      const other = seen.find((s) => s.port === u.port && (s.host === '' || u.host === '' || s.host === u.host));
      if (other !== undefined) {
        out.push({ path: u.path, message: `${proto} port ${u.port} is already used by ${keyPath(other.path)}` });
      } else seen.push(u);
    }
  }
  return out;
}

function isIpOrCidr(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash < 0) return isIP(s) !== 0;
  const family = isIP(s.slice(0, slash));
  const bits = s.slice(slash + 1);
  if (family === 0 || !/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
