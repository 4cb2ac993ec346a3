/**
 * RTMP handshake, sans-I/O: bytes in → bytes out.
 *
 * Simple handshake (Adobe RTMP spec 1.0 §5.2): C0/S0 is the version byte 3, C1/S1 are 1536 bytes
 * (time, zero, random), C2/S2 echo the peer's C1/S1.
 *
 * Digest handshake (Flash Player 9+, not in the published spec; also sent by ffmpeg, librtmp/OBS and most
 * phone apps): bytes 4–7 of C1 hold a non-zero client version and C1 carries a 32-byte HMAC-SHA256 digest at
 * an offset derived from 4 bytes of one of two 764-byte blocks (scheme 0: offset bytes at 8, scheme 1: at
 * 772). The server answers with a digest in S1 and an S2 whose last 32 bytes are signed with a key derived
 * from the client's digest; Flash players and some apps refuse a server that does not.
 */
import { createHmac, randomFillSync } from 'node:crypto';
import { ParseError, UnsupportedError } from '../../errors.js';

/** Size of C1/S1/C2/S2 (spec §5.2.3). */
export const RTMP_HANDSHAKE_SIZE = 1536;
/** The only plain-RTMP version byte; 6, 8 and 9 are RTMPE variants. */
export const RTMP_VERSION = 3;

const DIGEST_LEN = 32;
/** Shared tail of both Adobe keys. */
const KEY_TAIL = Uint8Array.from([
  0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e, 0x57, 0x6e, 0xec,
  0x5d, 0x2d, 0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb, 0x31, 0xae,
]);
function key(text: string, withTail: boolean): Uint8Array {
  const t = new TextEncoder().encode(text);
  if (!withTail) return t;
  const k = new Uint8Array(t.length + KEY_TAIL.length);
  k.set(t);
  k.set(KEY_TAIL, t.length);
  return k;
}
/** 30-byte key of client (C1) digests; the 62-byte form signs C2. */
export const GENUINE_FP_KEY = key('Genuine Adobe Flash Player 001', false);
const GENUINE_FP_KEY_FULL = key('Genuine Adobe Flash Player 001', true);
/** 36-byte key of server (S1) digests; the 68-byte form signs S2. */
export const GENUINE_FMS_KEY = key('Genuine Adobe Flash Media Server 001', false);
const GENUINE_FMS_KEY_FULL = key('Genuine Adobe Flash Media Server 001', true);

/** Version we put in S1 bytes 4–7 in digest mode (what FMS 4.5 sends; clients only test it for non-zero). */
const SERVER_VERSION = [0x04, 0x05, 0x00, 0x01];
/** Version we put in C1 bytes 4–7 (Flash Player 9.0.124.2, as ffmpeg sends). */
const CLIENT_VERSION = [0x09, 0x00, 0x7c, 0x02];

/** Digest schemes: 0 = digest block first (offset bytes at 8), 1 = key block first (offset bytes at 772). */
export type DigestScheme = 0 | 1;

function hmac(k: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac('sha256', k);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Offset of the 32-byte digest in a 1536-byte C1/S1 for `scheme`. */
export function digestOffset(block: Uint8Array, scheme: DigestScheme): number {
  const base = scheme === 0 ? 8 : 772;
  const sum = (block[base] as number) + (block[base + 1] as number) + (block[base + 2] as number) + (block[base + 3] as number);
  return (sum % 728) + base + 4;
}

/** HMAC-SHA256 over the block without the 32 digest bytes at `at`. */
function blockDigest(block: Uint8Array, at: number, k: Uint8Array): Uint8Array {
  return hmac(k, block.subarray(0, at), block.subarray(at + DIGEST_LEN));
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= (a[i] as number) ^ (b[i] as number);
  return d === 0;
}

/**
 * Finds a valid digest in a 1536-byte C1 (with {@link GENUINE_FP_KEY}) or S1 (with {@link GENUINE_FMS_KEY}),
 * trying scheme 0 then scheme 1.
 * @returns the scheme and a copy of the digest, or null when neither scheme validates
 */
export function findDigest(block: Uint8Array, k: Uint8Array): { scheme: DigestScheme; digest: Uint8Array } | null {
  for (const scheme of [0, 1] as const) {
    const at = digestOffset(block, scheme);
    const want = blockDigest(block, at, k);
    if (equal(want, block.subarray(at, at + DIGEST_LEN))) return { scheme, digest: want };
  }
  return null;
}

/** Writes the digest for `scheme` into a 1536-byte block in place. @returns the digest (a view into block). */
export function imprintDigest(block: Uint8Array, scheme: DigestScheme, k: Uint8Array): Uint8Array {
  const at = digestOffset(block, scheme);
  block.set(blockDigest(block, at, k), at);
  return block.subarray(at, at + DIGEST_LEN);
}

/** Signs a 1536-byte C2/S2 in place: its last 32 bytes become HMAC(HMAC(peerDigest, fullKey), rest). */
function signResponse(block: Uint8Array, peerDigest: Uint8Array, fullKey: Uint8Array): void {
  const k = hmac(fullKey, peerDigest);
  const end = RTMP_HANDSHAKE_SIZE - DIGEST_LEN;
  block.set(hmac(k, block.subarray(0, end)), end);
}

/** True when a 1536-byte S2/C2 is signed for `ourDigest` with the peer's full key. */
function verifyResponse(block: Uint8Array, ourDigest: Uint8Array, peerFullKey: Uint8Array): boolean {
  const k = hmac(peerFullKey, ourDigest);
  const end = RTMP_HANDSHAKE_SIZE - DIGEST_LEN;
  return equal(hmac(k, block.subarray(0, end)), block.subarray(end));
}

/** What one push() produced. */
export interface HandshakeResult {
  /** bytes to send to the peer now (empty when nothing) */
  output: Uint8Array;
  /** true once the handshake is complete; later bytes belong to the chunk stream */
  done: boolean;
  /** bytes after the handshake in this push (a view into the pushed chunk), empty unless done */
  leftover: Uint8Array;
}

/** Options shared by both sides; inject `random` and `uptimeMs` for deterministic tests. */
export interface HandshakeOptions {
  /** fills the buffer with random bytes (default: crypto.randomFillSync) */
  random?: (buf: Uint8Array) => void;
  /** value of the 4-byte time field of S1/C1 (default 0, allowed by the spec) */
  uptimeMs?: number;
}

const EMPTY: Uint8Array = new Uint8Array(0);

/** {@link HandshakeOptions} with their defaults: where both sides get random bytes and the time field from. */
class HandshakeEntropy {
  readonly random: (buf: Uint8Array) => void;
  private readonly uptimeMs: number;

  constructor(opts: HandshakeOptions) {
    this.random = opts.random ?? ((b) => randomFillSync(b));
    this.uptimeMs = opts.uptimeMs ?? 0;
  }

  /** Fills C1 or S1 (spec §5.2.3): the 4-byte time field, and random bytes after the 4-byte version the caller sets. */
  fillPacket(p: Uint8Array): void {
    this.random(p.subarray(8));
    new DataView(p.buffer, p.byteOffset, 8).setUint32(0, this.uptimeMs >>> 0);
  }
}

/** Accumulates exactly `n` bytes across pushes into one buffer allocated up front. */
class Gather {
  readonly buf: Uint8Array;
  have = 0;
  constructor(n: number) {
    this.buf = new Uint8Array(n);
  }
  /** Takes what it still needs from chunk; @returns the offset in chunk just past what it took. */
  take(chunk: Uint8Array, at: number): number {
    const n = Math.min(this.buf.length - this.have, chunk.length - at);
    this.buf.set(chunk.subarray(at, at + n), this.have);
    this.have += n;
    return at + n;
  }
  get full(): boolean {
    return this.have === this.buf.length;
  }
}

function checkVersion(v: number, who: string): void {
  if (v === RTMP_VERSION) return;
  if (v === 6 || v === 8 || v === 9) throw new UnsupportedError(`${who} asked for RTMPE (version ${v})`);
  throw new ParseError('rtmp handshake', `${who} version byte is ${v}, expected 3`, 0);
}

/**
 * Server side: waits for C0+C1, answers S0+S1+S2 (digest mode when C1 carries a valid client digest,
 * simple echo otherwise), then waits for C2. C2 is not checked: Flash, librtmp and ffmpeg sign it
 * differently and no server in use rejects it.
 */
export class ServerHandshake {
  private readonly c0c1 = new Gather(1 + RTMP_HANDSHAKE_SIZE);
  private readonly c2 = new Gather(RTMP_HANDSHAKE_SIZE);
  private state: 'c0c1' | 'c2' | 'done' = 'c0c1';
  /** Which handshake the client got, known after C1: 'digest' with its scheme, or 'simple'. */
  mode: 'simple' | 'digest' | null = null;
  scheme: DigestScheme | null = null;
  private readonly entropy: HandshakeEntropy;

  constructor(opts: HandshakeOptions = {}) {
    this.entropy = new HandshakeEntropy(opts);
  }

  /** True once C2 arrived. */
  get done(): boolean {
    return this.state === 'done';
  }

  /**
   * Feeds bytes from the client.
   * @returns output bytes (S0+S1+S2 once) and, when done, the leftover chunk-stream bytes as a view into chunk
   * @throws ParseError on a bad version byte, UnsupportedError for RTMPE
   */
  push(chunk: Uint8Array): HandshakeResult {
    let at = 0;
    let output = EMPTY;
    if (this.state === 'c0c1') {
      const first = this.c0c1.have === 0;
      at = this.c0c1.take(chunk, at);
      // reject a wrong version as soon as the first byte arrives instead of after 1537 bytes
      if (first && this.c0c1.have > 0) checkVersion(this.c0c1.buf[0] as number, 'client');
      if (!this.c0c1.full) return { output, done: false, leftover: EMPTY };
      output = this.answer(this.c0c1.buf.subarray(1));
      this.state = 'c2';
    }
    if (this.state === 'c2') {
      at = this.c2.take(chunk, at);
      if (!this.c2.full) return { output, done: false, leftover: EMPTY };
      this.state = 'done';
      return { output, done: true, leftover: chunk.subarray(at) };
    }
    return { output, done: true, leftover: chunk.subarray(at) };
  }

  private answer(c1: Uint8Array): Uint8Array {
    const out = new Uint8Array(1 + 2 * RTMP_HANDSHAKE_SIZE);
    out[0] = RTMP_VERSION;
    const s1 = out.subarray(1, 1 + RTMP_HANDSHAKE_SIZE);
    const s2 = out.subarray(1 + RTMP_HANDSHAKE_SIZE);
    this.entropy.fillPacket(s1);
    // a zero version in C1 means the client speaks the simple handshake only
    const clientVersion = (c1[4] as number) | (c1[5] as number) | (c1[6] as number) | (c1[7] as number);
    const found = clientVersion !== 0 ? findDigest(c1, GENUINE_FP_KEY) : null;
    if (found === null) {
      // simple: S1 version zero, S2 echoes C1 (lenient also when a non-zero version came without a valid digest)
      this.mode = 'simple';
      s2.set(c1);
      return out;
    }
    this.mode = 'digest';
    this.scheme = found.scheme;
    s1.set(SERVER_VERSION, 4);
    imprintDigest(s1, found.scheme, GENUINE_FMS_KEY);
    this.entropy.random(s2);
    signResponse(s2, found.digest, GENUINE_FMS_KEY_FULL);
    return out;
  }
}

/**
 * Client side (for pulling rtmp:// sources): start() gives C0+C1 with a scheme-0 client digest (as ffmpeg
 * and librtmp send); on S0+S1+S2 it answers C2, signed when S1 carries a valid server digest, an echo of S1
 * otherwise. The handshake is done once C2 is produced.
 */
export class ClientHandshake {
  private readonly s = new Gather(1 + 2 * RTMP_HANDSHAKE_SIZE);
  private readonly c1 = new Uint8Array(RTMP_HANDSHAKE_SIZE);
  private clientDigest: Uint8Array = EMPTY;
  private started = false;
  private finished = false;
  /** After S1: 'digest' when the server signed S1, else 'simple'. */
  mode: 'simple' | 'digest' | null = null;
  /** After S2 in digest mode: whether S2 was signed for our C1 digest (informational; not enforced). */
  s2Valid: boolean | null = null;
  private readonly entropy: HandshakeEntropy;

  constructor(opts: HandshakeOptions = {}) {
    this.entropy = new HandshakeEntropy(opts);
  }

  /** True once C2 was produced. */
  get done(): boolean {
    return this.finished;
  }

  /** C0+C1, to send right after connecting. Call once. */
  start(): Uint8Array {
    if (this.started) throw new ParseError('rtmp handshake', 'start() called twice');
    this.started = true;
    const out = new Uint8Array(1 + RTMP_HANDSHAKE_SIZE);
    out[0] = RTMP_VERSION;
    this.entropy.fillPacket(this.c1);
    this.c1.set(CLIENT_VERSION, 4);
    this.clientDigest = imprintDigest(this.c1, 0, GENUINE_FP_KEY); // a view into c1, which never changes again
    out.set(this.c1, 1);
    return out;
  }

  /**
   * Feeds bytes from the server.
   * @returns C2 once S0+S1+S2 arrived, with leftover chunk-stream bytes as a view into chunk
   */
  push(chunk: Uint8Array): HandshakeResult {
    if (this.finished) return { output: EMPTY, done: true, leftover: chunk };
    const first = this.s.have === 0;
    const at = this.s.take(chunk, 0);
    if (first && this.s.have > 0) checkVersion(this.s.buf[0] as number, 'server');
    if (!this.s.full) return { output: EMPTY, done: false, leftover: EMPTY };
    const s1 = this.s.buf.subarray(1, 1 + RTMP_HANDSHAKE_SIZE);
    const s2 = this.s.buf.subarray(1 + RTMP_HANDSHAKE_SIZE);
    const serverVersion = (s1[4] as number) | (s1[5] as number) | (s1[6] as number) | (s1[7] as number);
    const found = serverVersion !== 0 ? findDigest(s1, GENUINE_FMS_KEY) : null;
    const c2 = new Uint8Array(RTMP_HANDSHAKE_SIZE);
    if (found === null) {
      this.mode = 'simple';
      c2.set(s1);
    } else {
      this.mode = 'digest';
      this.s2Valid = verifyResponse(s2, this.clientDigest, GENUINE_FMS_KEY_FULL);
      this.entropy.random(c2);
      signResponse(c2, found.digest, GENUINE_FP_KEY_FULL);
    }
    this.finished = true;
    return { output: c2, done: true, leftover: chunk.subarray(at) };
  }
}

/** True when a 1536-byte C2 is signed for the server digest `s1Digest` (for tests and diagnostics). */
export function verifyClientResponse(c2: Uint8Array, s1Digest: Uint8Array): boolean {
  return verifyResponse(c2, s1Digest, GENUINE_FP_KEY_FULL);
}

/** True when a 1536-byte S2 is signed for the client digest `c1Digest`. */
export function verifyServerResponse(s2: Uint8Array, c1Digest: Uint8Array): boolean {
  return verifyResponse(s2, c1Digest, GENUINE_FMS_KEY_FULL);
}
