/**
 * SRTP protection of outgoing RTP (AES_CM_128_HMAC_SHA1_80, RFC 3711) for the fan-out hot path, in batches.
 *
 * Measured here (Node 20, 1200-byte packets), a fresh `createCipheriv('aes-128-ctr')` per packet costs ~5.4 µs and
 * a fresh `createHmac` ~3.2 µs — most of it object construction, not cryptography. So:
 * - the AES-CM keystream of every packet of a batch comes from ONE `update` of a long-lived AES-128-ECB cipher over
 *   the batch's counter blocks (RFC 3711 §4.1.1: keystream block j = AES(k_e, IV + j)), then XORed in: ~0.5 µs per
 *   packet instead of ~5.4;
 * - HMAC-SHA1 (RFC 2104) is computed as H(opad ‖ H(ipad ‖ m)) with the one-shot `crypto.hash`, the 64-byte ipad
 *   written in front of the packet inside its own output buffer (no concatenation): ~1.7 µs instead of ~3.2.
 *
 * Each packet is laid out in an output slab as `[ipad (64) | RTP header | encrypted payload | tag (10)]`; the caller
 * gets the view without the ipad.
 */
import * as nodeCrypto from 'node:crypto';
import { createCipheriv, createHmac, type Cipher } from 'node:crypto';

/** SHA-1 block size, the HMAC pad length (RFC 2104 §2). */
const SHA1_BLOCK = 64;
/** SHA-1 digest length. */
const SHA1_LENGTH = 20;
/** HMAC-SHA1 tag truncated to 80 bits (RFC 3711 §5.2). */
const TAG_LENGTH = 10;
/** AES block size. */
const BLOCK = 16;
/**
 * Counter blocks encrypted per `update` call at most: 4096 blocks = 64 KiB ≈ 54 full-size packets. A keyframe burst
 * for one viewer is split in such chunks, so the scratch buffer stays bounded.
 */
const MAX_BLOCKS_PER_CALL = 4096;

/** `crypto.hash` (Node ≥ 20.12); absent on older runtimes, where `createHmac` is used instead. */
const oneShotHash = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: 'binary') => string }).hash;

/** Counter blocks of the batch being protected; one per thread (protection is synchronous). */
const counters = new DataView(new ArrayBuffer(MAX_BLOCKS_PER_CALL * BLOCK));
const counterBytes = new Uint8Array(counters.buffer);

/**
 * Output slabs: every protected packet is carved from a 1 MiB ArrayBuffer (never reused; a slab is collected once
 * the kernel has taken all its packets). Node's own pool would allocate an 8 KiB ArrayBuffer per ~6 packets —
 * ~10 000 per second at 200 viewers, which kept the garbage collector busy — and a word view per packet for the XOR.
 */
const SLAB_BYTES = 1 << 20;

class Slab {
  readonly bytes: Buffer;
  readonly words: Int32Array;
  used = 0;

  constructor() {
    const ab = new ArrayBuffer(SLAB_BYTES);
    this.bytes = Buffer.from(ab);
    this.words = new Int32Array(ab);
  }
}

let slab = new Slab();

/** Offset of `len` free bytes (8-aligned) in the current slab, starting a new slab when it is full. */
function carve(len: number): number {
  const need = (len + 7) & ~7;
  if (slab.used + need > SLAB_BYTES) slab = new Slab();
  const at = slab.used;
  slab.used += need;
  return at;
}

/**
 * `dst[at..at+len) ^= ks[k..k+len)`, 32 bits at a time where both are 4-aligned (5× faster than a byte loop
 * over Buffers here); `k` is a multiple of 16.
 */
function xorInPlace(dst: Slab, at: number, len: number, ks: Buffer, ksWords: Int32Array | null, k: number): void {
  let j = 0;
  const buf = dst.bytes;
  if (ksWords && (at & 3) === 0) {
    const words = len >>> 2;
    const w = dst.words;
    const dw = at >>> 2;
    const kw = k >>> 2;
    for (; j < words; j++) w[dw + j]! ^= ksWords[kw + j]!;
    j = words << 2;
  }
  for (; j < len; j++) buf[at + j]! ^= ks[k + j]!;
}

/** Rollover counter state of one sent SSRC. */
interface SendState {
  roc: number;
  lastSeq: number;
}

/** Length of the RTP header (fixed part, CSRCs, extension) of a packet, or -1 when truncated. */
export function rtpHeaderLength(p: Uint8Array): number {
  if (p.byteLength < 12) return -1;
  let n = 12 + (p[0]! & 0x0f) * 4;
  if (p[0]! & 0x10) {
    if (p.byteLength < n + 4) return -1;
    n += 4 + ((p[n + 2]! << 8) | p[n + 3]!) * 4;
  }
  return n > p.byteLength ? -1 : n;
}

/** The zero-length output for a packet that could not be protected (truncated header). */
const NOTHING = Buffer.alloc(0);

/** Batched SRTP protection for one sending direction (one per peer; not thread-safe). */
export class RtpProtector {
  private readonly ecb: Cipher;
  private readonly ipad = Buffer.alloc(SHA1_BLOCK, 0x36);
  /** opad followed by room for the inner digest */
  private readonly outer = Buffer.alloc(SHA1_BLOCK + SHA1_LENGTH, 0x5c);
  private readonly state = new Map<number, SendState>();
  // per-packet scratch of the current batch
  private readonly rocs: number[] = [];
  private readonly headers: number[] = [];

  /**
   * @param key the SRTP session encryption key (16 bytes)
   * @param salt the SRTP session salt (14 bytes)
   * @param authKey the SRTP session authentication key (20 bytes)
   */
  constructor(
    key: Uint8Array,
    private readonly salt: Uint8Array,
    private readonly authKey: Uint8Array,
  ) {
    this.ecb = createCipheriv('aes-128-ecb', key, null);
    this.ecb.setAutoPadding(false);
    for (let i = 0; i < authKey.byteLength; i++) {
      this.ipad[i]! ^= authKey[i]!;
      this.outer[i]! ^= authKey[i]!;
    }
  }

  /**
   * Protects `packets[from..to)`. For each packet i, `payloadTypes[i]` ≥ 0 replaces the header's payload type and
   * `timestamps[i]` ≥ 0 the RTP timestamp (the input is never modified). `out[i]` receives the SRTP packet, a view
   * of a new buffer — or an empty array when the RTP header is truncated.
   */
  protect(packets: readonly Uint8Array[], payloadTypes: readonly number[], timestamps: readonly number[], from: number, to: number, out: Buffer[]): void {
    let start = from;
    while (start < to) {
      // pass 1: counter blocks of as many packets as fit in one cipher call
      let blocks = 0;
      let end = start;
      for (; end < to; end++) {
        const p = packets[end]!;
        const hl = rtpHeaderLength(p);
        const nb = hl < 0 ? 0 : Math.ceil((p.byteLength - hl) / BLOCK);
        if (blocks + nb > MAX_BLOCKS_PER_CALL && end > start) break;
        this.headers[end - from] = hl;
        if (hl < 0) continue;
        this.rocs[end - from] = this.fillCounters(p, blocks, Math.min(nb, MAX_BLOCKS_PER_CALL));
        blocks += Math.min(nb, MAX_BLOCKS_PER_CALL);
      }
      const keystream = this.ecb.update(counterBytes.subarray(0, blocks * BLOCK));
      // a word view of the keystream for the XOR (cipher output is normally 8-aligned; if not, bytes are XORed)
      const ksWords = (keystream.byteOffset & 3) === 0 ? new Int32Array(keystream.buffer, keystream.byteOffset, keystream.byteLength >>> 2) : null;
      // pass 2: one buffer per packet, encrypted, authenticated
      let k = 0;
      for (let i = start; i < end; i++) {
        const hl = this.headers[i - from]!;
        const p = packets[i]!;
        if (hl < 0 || p.byteLength - hl > MAX_BLOCKS_PER_CALL * BLOCK) {
          out[i] = NOTHING; // a truncated header, or a payload longer than any UDP datagram
          continue;
        }
        out[i] = this.seal(p, hl, payloadTypes[i]!, timestamps[i]!, this.rocs[i - from]!, keystream, ksWords, k);
        k += Math.ceil((p.byteLength - hl) / BLOCK) * BLOCK;
      }
      start = end;
    }
  }

  /**
   * Records that `p` was sent without protecting it here (another context protected it): this context's rollover
   * counters stay right, so it can take over the SSRC later without a wrong ROC (RFC 3711 §3.3.1).
   */
  noteSent(p: Uint8Array): void {
    if (p.byteLength >= 12) this.rocOf(p);
  }

  /** The packet's rollover counter, advancing this SSRC's state (RFC 3711 §3.3.1 for a sender). */
  private rocOf(p: Uint8Array): number {
    const seq = (p[2]! << 8) | p[3]!;
    const ssrc = ((p[8]! << 24) | (p[9]! << 16) | (p[10]! << 8) | p[11]!) >>> 0;
    let st = this.state.get(ssrc);
    if (!st) this.state.set(ssrc, (st = { roc: 0, lastSeq: seq }));
    else if (seq < st.lastSeq && st.lastSeq - seq > 0x8000) {
      st.roc = (st.roc + 1) >>> 0; // the 16-bit sequence number wrapped
      st.lastSeq = seq;
    } else if (seq > st.lastSeq && seq - st.lastSeq < 0x8000) st.lastSeq = seq;
    // a retransmission of a packet sent before the wrap uses the ROC it had then
    return seq > st.lastSeq && seq - st.lastSeq >= 0x8000 ? (st.roc - 1) >>> 0 : st.roc;
  }

  /** Writes the counter blocks of `p` at block `at`; returns the packet's rollover counter. */
  private fillCounters(p: Uint8Array, at: number, nb: number): number {
    const seq = (p[2]! << 8) | p[3]!;
    const ssrc = ((p[8]! << 24) | (p[9]! << 16) | (p[10]! << 8) | p[11]!) >>> 0;
    const roc = this.rocOf(p);
    // IV = (salt · 2^16) XOR (ssrc · 2^64) XOR (index · 2^16), index = ROC · 2^16 + SEQ (RFC 3711 §4.1.1)
    const s = this.salt;
    const w0 = ((s[0]! << 24) | (s[1]! << 16) | (s[2]! << 8) | s[3]!) | 0;
    const w1 = (((s[4]! << 24) | (s[5]! << 16) | (s[6]! << 8) | s[7]!) ^ ssrc) | 0;
    const w2 = (((s[8]! << 24) | (s[9]! << 16) | (s[10]! << 8) | s[11]!) ^ roc) | 0;
    const hi = (((s[12]! << 8) | s[13]!) ^ seq) << 16;
    for (let j = 0; j < nb; j++) {
      const o = (at + j) * BLOCK;
      counters.setInt32(o, w0);
      counters.setInt32(o + 4, w1);
      counters.setInt32(o + 8, w2);
      counters.setInt32(o + 12, hi | j);
    }
    return roc;
  }

  /** Builds one SRTP packet: header (patched), payload XOR keystream, HMAC tag over header ‖ payload ‖ ROC. */
  private seal(p: Uint8Array, hl: number, payloadType: number, timestamp: number, roc: number, ks: Buffer, ksWords: Int32Array | null, k: number): Buffer {
    const n = p.byteLength;
    const o = carve(SHA1_BLOCK + n + TAG_LENGTH);
    const s = slab;
    const buf = s.bytes;
    buf.set(this.ipad, o);
    buf.set(p, o + SHA1_BLOCK);
    const h = o + SHA1_BLOCK;
    if (payloadType >= 0) buf[h + 1] = (buf[h + 1]! & 0x80) | payloadType;
    if (timestamp >= 0) buf.writeUInt32BE(timestamp >>> 0, h + 4);
    xorInPlace(s, h + hl, n - hl, ks, ksWords, k);
    const end = h + n;
    buf.writeUInt32BE(roc, end);
    if (oneShotHash) {
      this.outer.write(oneShotHash('sha1', new Uint8Array(buf.buffer, o, SHA1_BLOCK + n + 4), 'binary'), SHA1_BLOCK, SHA1_LENGTH, 'binary');
      buf.write(oneShotHash('sha1', this.outer, 'binary'), end, TAG_LENGTH, 'binary');
    } else {
      createHmac('sha1', this.authKey).update(buf.subarray(h, end + 4)).digest().copy(buf, end, 0, TAG_LENGTH);
    }
    return Buffer.from(buf.buffer, h, n + TAG_LENGTH);
  }
}
