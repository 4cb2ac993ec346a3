/**
 * Who may publish, read, play back recordings, use the API or scrape metrics (after mediamtx `internal/auth` and
 * gortsplib `pkg/auth`). Pure decisions over `Config`, plus HTTP Basic and Digest (RFC 7616 / RFC 2617, MD5 and
 * SHA-256, qop=auth or none) shared by RTSP, HTTP and SIP. The only I/O is `authorizeAsync` asking `auth.http.url`.
 *
 * Order of decision:
 *  1. The path sets credentials for the action (`publishUser`/`publishPass`, `readUser`/`readPass` for read and
 *     playback): they alone decide.
 *  2. No `auth` section: allowed.
 *  3. An `auth.users` entry grants the action on the path from the client's IP, and the credentials match
 *     (`user: any` needs none).
 *  4. Otherwise `auth.http` decides when set (`authorizeAsync` only), else refused.
 *
 * A stream key (`?key=K`) is a password without a user name.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { AuthError, errorMessage } from './errors.js';
import { pathPatternMatches, resolvePathConf, type AuthAction, type AuthUser, type Config, type PathConf } from './config.js';

/** The realm in every challenge. */
export const AUTH_REALM = 'streamgate';
/**
 * How long a Digest nonce stays valid. RTSP and SIP authenticate only while setting up a session, so a few
 * minutes cover a slow client; after that the client gets `stale=true` and retries without asking the user.
 */
export const NONCE_LIFETIME_MS = 5 * 60_000;
/** Longest Authorization header parsed (RTSP/SIP header lines are bounded well below by their own parsers too). */
export const MAX_AUTHORIZATION_LENGTH = 4096;

/** Digest credentials from an Authorization header, with the request method they must be verified against. */
export interface DigestCredentials {
  params: DigestParams;
  /** request method (`DESCRIBE`, `GET`, `INVITE`, …) */
  method: string;
  /** clock for the nonce expiry; default `Date.now()` */
  nowMs?: number;
  /** HMAC key of the nonces; default the process key */
  secret?: Uint8Array;
}

/** One access to decide. `pathConf` defaults to `resolvePathConf(config, path)`. */
export interface AuthRequest {
  action: AuthAction;
  path?: string;
  pathConf?: PathConf | null;
  user?: string;
  pass?: string;
  /** stream key (`?key=K`): a password without a user */
  key?: string;
  /** Digest instead of a plain password */
  digest?: DigestCredentials;
  ip?: string;
  /** for `auth.http`: `rtmp`, `rtsp`, `webrtc`, `hls`, `sip`, … */
  protocol?: string;
  /** for `auth.http`: the raw query string */
  query?: string;
}

/** A granted access: the user it was granted to (null when no credentials were needed). */
export interface AuthGrant {
  user: string | null;
}

type Decision = { kind: 'allow'; user: string | null } | { kind: 'deny'; reason: string } | { kind: 'askHttp' };

// ---------------------------------------------------------------------------------------------------------------
// Decisions

/**
 * Decides an access from the config alone (never contacts `auth.http`: with it set, use `authorizeAsync`).
 * @throws AuthError when refused
 */
export function authorize(config: Config, req: AuthRequest): AuthGrant {
  const d = decide(config, req);
  if (d.kind === 'allow') return { user: d.user };
  if (d.kind === 'deny') throw new AuthError(d.reason);
  throw new AuthError(`${req.action} on '${req.path ?? ''}' needs the external auth service (authorizeAsync)`);
}

/**
 * Like `authorize`, then asks `auth.http.url` when the config itself grants nothing: POST JSON
 * `{user, password, ip, action, path, protocol, query}`, 2xx = allowed; no answer within `auth.http.timeout` = refused.
 * @throws AuthError (rejects) when refused
 */
export async function authorizeAsync(config: Config, req: AuthRequest): Promise<AuthGrant> {
  const d = decide(config, req);
  if (d.kind === 'allow') return { user: d.user };
  if (d.kind === 'deny') throw new AuthError(d.reason);
  const http = config.auth?.http;
  if (http === undefined) throw new AuthError('refused');
  const body = JSON.stringify({
    user: req.user ?? req.digest?.params.username ?? '',
    password: req.pass ?? req.key ?? '',
    ip: req.ip ?? '',
    action: req.action,
    path: req.path ?? '',
    protocol: req.protocol ?? '',
    query: req.query ?? '',
  });
  let status: number;
  try {
    const res = await fetch(http.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(http.timeout * 1000),
    });
    status = res.status;
    await res.body?.cancel(); // frees the keep-alive socket; the body carries nothing we use
  } catch (err) {
    throw new AuthError(`auth service ${http.url} did not answer: ${errorMessage(err)}`);
  }
  if (status < 200 || status > 299) throw new AuthError(`auth service refused (HTTP ${status})`);
  return { user: req.user ?? req.digest?.params.username ?? null };
}

function decide(config: Config, req: AuthRequest): Decision {
  const pathConf = req.pathConf !== undefined ? req.pathConf : req.path !== undefined ? resolvePathConf(config, req.path)?.conf : null;
  const creds = pathConf ? pathCredentials(pathConf, req.action) : null;
  if (creds !== null) {
    return credentialsMatch(creds.user, creds.pass, req)
      ? { kind: 'allow', user: creds.user }
      : { kind: 'deny', reason: `wrong or missing credentials to ${req.action} '${req.path ?? ''}'` };
  }
  const auth = config.auth;
  if (auth === undefined) return { kind: 'allow', user: null };
  let granted = false;
  for (const u of auth.users) {
    if (!grants(u, req.action, req.path ?? '')) continue;
    granted = true;
    if (u.ips !== undefined && !ipAllowed(u, req.ip)) continue;
    if (u.user === 'any') return { kind: 'allow', user: null };
    if (u.pass !== undefined && credentialsMatch(u.user, u.pass, req)) return { kind: 'allow', user: u.user };
  }
  if (auth.http !== undefined) return { kind: 'askHttp' };
  return {
    kind: 'deny',
    reason: granted
      ? `wrong or missing credentials to ${req.action} '${req.path ?? ''}'`
      : `no user may ${req.action} '${req.path ?? ''}'`,
  };
}

/** The credentials a path itself requires for an action, or null when it requires none. */
export function pathCredentials(conf: PathConf, action: AuthAction): { user: string; pass: string } | null {
  if (action === 'publish' && conf.publishUser !== undefined && conf.publishPass !== undefined) {
    return { user: conf.publishUser, pass: conf.publishPass };
  }
  if ((action === 'read' || action === 'playback') && conf.readUser !== undefined && conf.readPass !== undefined) {
    return { user: conf.readUser, pass: conf.readPass };
  }
  return null;
}

function grants(u: AuthUser, action: AuthAction, path: string): boolean {
  return u.permissions.some(
    (p) =>
      p.action === action &&
      (p.path === undefined || action === 'api' || action === 'metrics' || pathPatternMatches(p.path, path)),
  );
}

/** Do the request's credentials (user + pass, stream key, or Digest) match the expected ones? */
function credentialsMatch(expectedUser: string, expectedPass: string, req: AuthRequest): boolean {
  if (req.digest !== undefined) {
    // Digest needs the plain password: a hashed one can only be checked against Basic/query credentials
    if (isHashedSecret(expectedPass) || !secretMatches(expectedUser, req.digest.params.username)) return false;
    const verifyOpts: DigestVerifyOptions = { method: req.digest.method, pass: expectedPass };
    if (req.digest.nowMs !== undefined) verifyOpts.nowMs = req.digest.nowMs;
    if (req.digest.secret !== undefined) verifyOpts.secret = req.digest.secret;
    return verifyDigest(req.digest.params, verifyOpts) === 'ok';
  }
  if (req.pass !== undefined) {
    return req.user !== undefined && secretMatches(expectedUser, req.user) && secretMatches(expectedPass, req.pass);
  }
  if (req.key !== undefined) return secretMatches(expectedPass, req.key);
  return false;
}

/** True for `sha256:<hex>` or `sha256:<base64>` secrets. */
export function isHashedSecret(expected: string): boolean {
  return expected.startsWith('sha256:');
}

/**
 * Compares a given secret with the configured one (plain, `sha256:<hex>` or `sha256:<base64>` of the plain text)
 * in constant time.
 */
export function secretMatches(expected: string, given: string): boolean {
  const givenHash = sha256(given);
  if (isHashedSecret(expected)) {
    const enc = expected.slice(7);
    const want = /^[0-9a-fA-F]{64}$/.test(enc) ? Buffer.from(enc, 'hex') : Buffer.from(enc, 'base64');
    return want.length === 32 && timingSafeEqual(want, givenHash);
  }
  // hashing both sides keeps the comparison constant-time whatever the lengths
  return timingSafeEqual(sha256(expected), givenHash);
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

const blockLists = new WeakMap<AuthUser, BlockList>();

/** Is `ip` inside one of the user's `ips` (addresses or CIDR ranges)? IPv4-mapped IPv6 counts as IPv4. */
function ipAllowed(u: AuthUser, ip: string | undefined): boolean {
  if (ip === undefined) return false;
  let list = blockLists.get(u);
  if (list === undefined) {
    list = new BlockList();
    for (const entry of u.ips ?? []) {
      const [addr = '', bits] = entry.split('/');
      const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) list.addAddress(addr, type);
      else list.addSubnet(addr, Number(bits), type);
    }
    blockLists.set(u, list);
  }
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const addr = mapped?.[1] ?? ip;
  const family = isIP(addr);
  if (family === 0) return false;
  return list.check(addr, family === 6 ? 'ipv6' : 'ipv4');
}

/**
 * Can this access be authenticated with Digest? Only when every password that could apply is stored in plain
 * text and no external service decides (it needs the password itself). Otherwise offer Basic only.
 */
export function digestUsable(config: Config, action: AuthAction, pathConf: PathConf | null): boolean {
  const creds = pathConf ? pathCredentials(pathConf, action) : null;
  if (creds !== null) return !isHashedSecret(creds.pass);
  if (config.auth === undefined) return true;
  if (config.auth.http !== undefined) return false;
  return config.auth.users.every((u) => u.pass === undefined || !isHashedSecret(u.pass));
}

// ---------------------------------------------------------------------------------------------------------------
// Authorization header parsing

/** What an Authorization (or Proxy-Authorization) header carries. */
export type ParsedAuthorization =
  | { scheme: 'basic'; user: string; pass: string }
  | { scheme: 'digest'; params: DigestParams };

/** The parameters of a Digest Authorization header (RFC 7616 §3.4). */
export interface DigestParams {
  username: string;
  realm: string;
  nonce: string;
  uri: string;
  response: string;
  algorithm?: string;
  qop?: string;
  nc?: string;
  cnonce?: string;
  opaque?: string;
}

/** Parses `Basic …` or `Digest …`; null when absent, malformed, over the length limit or another scheme. */
export function parseAuthorization(header: string | undefined): ParsedAuthorization | null {
  if (header === undefined || header.length > MAX_AUTHORIZATION_LENGTH) return null;
  const m = /^\s*(\S+)\s+([\s\S]*)$/.exec(header);
  if (m === null) return null;
  const scheme = (m[1] ?? '').toLowerCase();
  const rest = m[2] ?? '';
  if (scheme === 'basic') {
    const b = parseBasicCredentials(rest);
    return b === null ? null : { scheme: 'basic', ...b };
  }
  if (scheme === 'digest') {
    const params = parseDigestParams(rest);
    return params === null ? null : { scheme: 'digest', params };
  }
  return null;
}

/** Decodes the base64 `user:pass` of HTTP Basic (RFC 7617); null when malformed. */
export function parseBasicCredentials(token: string): { user: string; pass: string } | null {
  const t = token.trim();
  if (!/^[A-Za-z0-9+/]+=*$/.test(t)) return null;
  const text = Buffer.from(t, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return null;
  return { user: text.slice(0, colon), pass: text.slice(colon + 1) };
}

/** Splits `a=b, c="d, e"` auth-params (RFC 7235 §2.1) into a map with lowercase names; null when malformed. */
export function parseAuthParams(s: string): Map<string, string> | null {
  const out = new Map<string, string>();
  let i = 0;
  const skipWs = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === ',')) i++;
  };
  skipWs();
  while (i < s.length) {
    const nameMatch = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+/.exec(s.slice(i));
    if (nameMatch === null) return null;
    const name = nameMatch[0].toLowerCase();
    i += nameMatch[0].length;
    while (s[i] === ' ' || s[i] === '\t') i++;
    if (s[i] !== '=') return null;
    i++;
    while (s[i] === ' ' || s[i] === '\t') i++;
    let value = '';
    if (s[i] === '"') {
      i++;
      let closed = false;
      while (i < s.length) {
        const ch = s[i];
        if (ch === '\\' && i + 1 < s.length) {
          value += s[i + 1];
          i += 2;
        } else if (ch === '"') {
          i++;
          closed = true;
          break;
        } else {
          value += ch;
          i++;
        }
      }
      if (!closed) return null;
    } else {
      const tok = /^[^\s,]*/.exec(s.slice(i))?.[0] ?? '';
      value = tok;
      i += tok.length;
    }
    if (out.has(name)) return null;
    out.set(name, value);
    while (s[i] === ' ' || s[i] === '\t') i++;
    if (i < s.length && s[i] !== ',') return null;
    skipWs();
  }
  return out;
}

function parseDigestParams(s: string): DigestParams | null {
  const p = parseAuthParams(s);
  if (p === null) return null;
  const username = p.get('username');
  const realm = p.get('realm');
  const nonce = p.get('nonce');
  const uri = p.get('uri');
  const response = p.get('response');
  if (username === undefined || realm === undefined || nonce === undefined || uri === undefined || response === undefined) {
    return null;
  }
  const out: DigestParams = { username, realm, nonce, uri, response };
  for (const k of ['algorithm', 'qop', 'nc', 'cnonce', 'opaque'] as const) {
    const v = p.get(k);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/**
 * Credentials carried by an Authorization header, ready to spread into an `AuthRequest`
 * (`{user, pass}` for Basic, `{digest}` for Digest, `{}` when absent or unusable).
 */
export function credentialsFromHeader(
  header: string | undefined,
  method: string,
  nowMs?: number,
): Pick<AuthRequest, 'user' | 'pass' | 'digest'> {
  const a = parseAuthorization(header);
  if (a === null) return {};
  if (a.scheme === 'basic') return { user: a.user, pass: a.pass };
  const digest: DigestCredentials = { params: a.params, method };
  if (nowMs !== undefined) digest.nowMs = nowMs;
  return { digest };
}

// ---------------------------------------------------------------------------------------------------------------
// Challenges and nonces

/** HMAC key of the nonces this process issues: nonces need no server-side state and die with the process. */
const processSecret = randomBytes(32);

/**
 * A nonce that proves itself: base64url of 8-byte expiry (ms, big-endian) ‖ 8 random bytes ‖ the first 16 bytes
 * of HMAC-SHA256(secret, expiry ‖ random). No table of issued nonces is kept; replays are bounded by the lifetime.
 */
export function createNonce(nowMs: number, secret: Uint8Array = processSecret, lifetimeMs = NONCE_LIFETIME_MS): string {
  const head = Buffer.alloc(16);
  head.writeBigUInt64BE(BigInt(Math.floor(nowMs + lifetimeMs)), 0);
  randomBytes(8).copy(head, 8);
  const mac = createHmac('sha256', secret).update(head).digest().subarray(0, 16);
  return Buffer.concat([head, mac]).toString('base64url');
}

/** Checks a nonce from `createNonce`: `'ok'`, `'stale'` (ours but expired) or `'invalid'`. */
export function checkNonce(nonce: string, nowMs: number, secret: Uint8Array = processSecret): 'ok' | 'stale' | 'invalid' {
  if (!/^[A-Za-z0-9_-]{43}$/.test(nonce)) return 'invalid';
  const raw = Buffer.from(nonce, 'base64url');
  if (raw.length !== 32) return 'invalid';
  const head = raw.subarray(0, 16);
  const mac = createHmac('sha256', secret).update(head).digest().subarray(0, 16);
  if (!timingSafeEqual(mac, raw.subarray(16))) return 'invalid';
  return Number(head.readBigUInt64BE(0)) > nowMs ? 'ok' : 'stale';
}

/** Options of a Digest challenge. */
export interface DigestChallengeOptions {
  nowMs: number;
  realm?: string;
  /** offer `qop="auth"` (default true); RTSP servers often leave it out for old live555-based clients */
  qop?: boolean;
  /** the client's nonce expired: it may retry without asking the user (RFC 7616 §3.3) */
  stale?: boolean;
  algorithm?: 'MD5' | 'SHA-256';
  secret?: Uint8Array;
}

/** Value of a `WWW-Authenticate` (RTSP/HTTP) or SIP challenge header offering Digest with a fresh nonce. */
export function digestChallenge(opts: DigestChallengeOptions): string {
  const parts = [
    `realm="${opts.realm ?? AUTH_REALM}"`,
    `nonce="${createNonce(opts.nowMs, opts.secret)}"`,
  ];
  if (opts.qop !== false) parts.push('qop="auth"');
  parts.push(`algorithm=${opts.algorithm ?? 'MD5'}`);
  if (opts.stale === true) parts.push('stale=true');
  return `Digest ${parts.join(', ')}`;
}

/** Value of a `WWW-Authenticate` header offering Basic. */
export function basicChallenge(realm = AUTH_REALM): string {
  return `Basic realm="${realm}"`;
}

// ---------------------------------------------------------------------------------------------------------------
// Digest computation and verification

/** Inputs of a Digest response (RFC 7616 §3.4.1). */
export interface DigestInputs {
  username: string;
  realm: string;
  pass: string;
  method: string;
  uri: string;
  nonce: string;
  algorithm?: string;
  qop?: string;
  nc?: string;
  cnonce?: string;
}

function hashFor(algorithm: string | undefined): ((s: string) => string) | null {
  const a = (algorithm ?? 'MD5').toUpperCase();
  const base = a.endsWith('-SESS') ? a.slice(0, -5) : a;
  const name = base === 'MD5' ? 'md5' : base === 'SHA-256' ? 'sha256' : null;
  if (name === null) return null;
  return (s) => createHash(name).update(s, 'utf8').digest('hex');
}

/**
 * The `response` value: H(H(A1):nonce:nc:cnonce:qop:H(A2)) with qop=auth, or H(H(A1):nonce:H(A2)) without
 * (RFC 2617 §3.2.2.1); `-sess` algorithms hash A1 with the nonces. Null for an unsupported algorithm or qop.
 */
export function computeDigestResponse(d: DigestInputs): string | null {
  const h = hashFor(d.algorithm);
  if (h === null) return null;
  let ha1 = h(`${d.username}:${d.realm}:${d.pass}`);
  if ((d.algorithm ?? '').toUpperCase().endsWith('-SESS')) ha1 = h(`${ha1}:${d.nonce}:${d.cnonce ?? ''}`);
  const ha2 = h(`${d.method}:${d.uri}`);
  if (d.qop === undefined) return h(`${ha1}:${d.nonce}:${ha2}`);
  if (d.qop !== 'auth' || d.nc === undefined || d.cnonce === undefined) return null;
  return h(`${ha1}:${d.nonce}:${d.nc}:${d.cnonce}:${d.qop}:${ha2}`);
}

/** Options of `verifyDigest`. */
export interface DigestVerifyOptions {
  method: string;
  /** the plain password */
  pass: string;
  /** expected realm (default `AUTH_REALM`) */
  realm?: string;
  nowMs?: number;
  secret?: Uint8Array;
  /** check that the nonce is one of ours and not expired (default true) */
  checkNonce?: boolean;
}

/**
 * Verifies Digest parameters against the plain password: `'ok'`, `'stale'` (right password, expired nonce: answer
 * with a new challenge carrying `stale=true`) or `'bad'`.
 */
export function verifyDigest(p: DigestParams, o: DigestVerifyOptions): 'ok' | 'stale' | 'bad' {
  if (p.realm !== (o.realm ?? AUTH_REALM)) return 'bad';
  const inputs: DigestInputs = { username: p.username, realm: p.realm, pass: o.pass, method: o.method, uri: p.uri, nonce: p.nonce };
  if (p.algorithm !== undefined) inputs.algorithm = p.algorithm;
  if (p.qop !== undefined) inputs.qop = p.qop;
  if (p.nc !== undefined) inputs.nc = p.nc;
  if (p.cnonce !== undefined) inputs.cnonce = p.cnonce;
  const want = computeDigestResponse(inputs);
  if (want === null) return 'bad';
  const got = Buffer.from(p.response.toLowerCase(), 'utf8');
  if (got.length !== want.length || !timingSafeEqual(got, Buffer.from(want, 'utf8'))) return 'bad';
  if (o.checkNonce === false) return 'ok';
  const n = checkNonce(p.nonce, o.nowMs ?? Date.now(), o.secret);
  return n === 'ok' ? 'ok' : n === 'stale' ? 'stale' : 'bad';
}

/** A Digest challenge as a client sees it (`WWW-Authenticate: Digest …`). */
export interface DigestChallenge {
  realm: string;
  nonce: string;
  qop?: string;
  algorithm?: string;
  opaque?: string;
  stale: boolean;
}

/** Parses a `WWW-Authenticate: Digest …` value (for pull clients answering a camera); null otherwise. */
export function parseDigestChallenge(header: string): DigestChallenge | null {
  if (header.length > MAX_AUTHORIZATION_LENGTH) return null;
  const m = /^\s*digest\s+([\s\S]*)$/i.exec(header);
  if (m === null) return null;
  const p = parseAuthParams(m[1] ?? '');
  const realm = p?.get('realm');
  const nonce = p?.get('nonce');
  if (p === null || realm === undefined || nonce === undefined) return null;
  const out: DigestChallenge = { realm, nonce, stale: (p.get('stale') ?? '').toLowerCase() === 'true' };
  const qop = p.get('qop');
  // a server may offer "auth,auth-int": we only do auth
  if (qop !== undefined && qop.split(',').some((q) => q.trim() === 'auth')) out.qop = 'auth';
  const algorithm = p.get('algorithm');
  if (algorithm !== undefined) out.algorithm = algorithm;
  const opaque = p.get('opaque');
  if (opaque !== undefined) out.opaque = opaque;
  return out;
}

/**
 * The `Authorization` header value answering a Digest challenge (client side: pulling from a camera that asks).
 * @returns null when the challenge's algorithm is not supported
 */
export function digestAuthorization(
  ch: DigestChallenge,
  c: { user: string; pass: string; method: string; uri: string; nc?: number; cnonce?: string },
): string | null {
  const nc = (c.nc ?? 1).toString(16).padStart(8, '0');
  const cnonce = c.cnonce ?? randomBytes(8).toString('hex');
  const inputs: DigestInputs = { username: c.user, realm: ch.realm, pass: c.pass, method: c.method, uri: c.uri, nonce: ch.nonce };
  if (ch.algorithm !== undefined) inputs.algorithm = ch.algorithm;
  if (ch.qop !== undefined) {
    inputs.qop = ch.qop;
    inputs.nc = nc;
    inputs.cnonce = cnonce;
  }
  const response = computeDigestResponse(inputs);
  if (response === null) return null;
  const q = (s: string) => `"${s.replace(/(["\\])/g, '\\$1')}"`;
  const parts = [`username=${q(c.user)}`, `realm=${q(ch.realm)}`, `nonce=${q(ch.nonce)}`, `uri=${q(c.uri)}`, `response=${q(response)}`];
  if (ch.algorithm !== undefined) parts.push(`algorithm=${ch.algorithm}`);
  if (ch.opaque !== undefined) parts.push(`opaque=${q(ch.opaque)}`);
  if (ch.qop !== undefined) parts.push(`qop=${ch.qop}`, `nc=${nc}`, `cnonce=${q(cnonce)}`);
  return `Digest ${parts.join(', ')}`;
}
