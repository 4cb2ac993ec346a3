/**
 * H.264 over RTP, RFC 6184 non-interleaved mode (packetization-mode 0 and 1): single NAL unit packets, STAP-A
 * aggregation and FU-A fragmentation, in both directions.
 *
 * The depacketizer returns NAL units as views into the packets it was given, except for FU-A fragments, which are
 * joined once into one buffer of the known size when the last fragment arrives.
 */
import { ParseError, UnsupportedError } from '../../errors.js';
import { MAX_ACCESS_UNIT_SIZE, MAX_NALUS_PER_ACCESS_UNIT, NalUnitType } from '../codecs/h264.js';
import {
  checkMtu,
  RTP_DEFAULT_MTU,
  RTP_HEADER_SIZE,
  RtpHeaderWriter,
  seqDiff,
  TimestampUnwrapper,
  type RtpPacket,
  type RtpStreamInit,
} from './packet.js';

const FORMAT = 'rtp-h264';

/** Clock rate of H.264 over RTP (RFC 6184 §8.2.1: "The clock rate ... MUST be 90000"). */
export const H264_CLOCK_RATE = 90000;

/**
 * Largest AU the depacketizer assembles; the codec module's bound (8 MiB, 2160p IDRs with headroom), so an RTP
 * source cannot grow memory further than an RTMP one.
 */
export const MAX_RTP_ACCESS_UNIT_SIZE = MAX_ACCESS_UNIT_SIZE;
/** Most NAL units per AU; the codec module's bound (one slice per macroblock row at 2160p plus headers). */
export const MAX_RTP_NALUS_PER_ACCESS_UNIT = MAX_NALUS_PER_ACCESS_UNIT;

/** One access unit (picture) out of the depacketizer. */
export interface H264AccessUnit {
  /** NAL units without start codes; views into the pushed packets, FU-A units in their own buffer; never empty */
  nalus: Uint8Array[];
  /** RTP timestamp of the AU, extended to 53 bits (monotonic across 32-bit wraps), 90 kHz ticks */
  pts: number;
  /** true when the AU holds an IDR slice */
  keyframe: boolean;
  /** the raw packets of this AU, when `push()` was given them (for RTP passthrough) */
  rtp?: Uint8Array[];
}

/**
 * Counters of the depacketizer. Dropped AUs are routine on lossy links and when joining mid-stream, so they are
 * counted here instead of logged per occurrence.
 */
export interface H264DepacketizerStats {
  packets: number;
  /** sequence numbers skipped over */
  packetsLost: number;
  /** packets older than the newest one (duplicates, reordering), ignored */
  packetsLate: number;
  accessUnits: number;
  /** AUs dropped because a packet of theirs was lost, a fragment's start or end was missing, or a packet was malformed */
  accessUnitsDropped: number;
  /** AUs dropped for crossing MAX_RTP_ACCESS_UNIT_SIZE or MAX_RTP_NALUS_PER_ACCESS_UNIT */
  accessUnitsOversized: number;
}

/*
 * RFC 6184 §5.3, the NAL unit header (first payload byte of every packet):
 *
 * +---------------+
 * |0|1|2|3|4|5|6|7|
 * +-+-+-+-+-+-+-+-+
 * |F|NRI|  Type   |
 * +---------------+
 *
 * Type 1-23: single NAL unit packet (§5.6), the payload is the NAL unit.
 * Type 24, STAP-A (§5.7.1): header, then repeated [16-bit NALU size][NAL unit].
 * Type 28, FU-A (§5.8): FU indicator (F, NRI, type 28), FU header, fragment:
 *
 * +---------------+
 * |0|1|2|3|4|5|6|7|
 * +-+-+-+-+-+-+-+-+
 * |S|E|R|  Type   |   S = start, E = end, Type = the fragmented NAL unit's type
 * +---------------+
 *
 * The NAL unit is rebuilt as (indicator & 0xe0 | type) followed by the fragments. The marker bit is set on the
 * last packet of an access unit (§5.1); packets of one AU share a timestamp.
 */

/**
 * RFC 6184 depacketizer: `push(packet)` in arrival order, get complete access units back.
 *
 * Tolerates what real cameras do: a missing marker bit (an AU also ends when the timestamp changes), FU-A with
 * both start and end bits set (CostarHD, gortsplib issue 649), lost packets (the AU they belong to is dropped and
 * counted; after a gap the AU that the next packet belongs to is dropped too, since its head may be what was lost).
 * @see RFC 6184 §5.6–5.8
 */
export class H264Depacketizer {
  /** counters; read them for metrics */
  readonly stats: H264DepacketizerStats = {
    packets: 0,
    packetsLost: 0,
    packetsLate: 0,
    accessUnits: 0,
    accessUnitsDropped: 0,
    accessUnitsOversized: 0,
  };
  private readonly timestamps = new TimestampUnwrapper();
  private readonly ready: H264AccessUnit[] = [];
  private expectedSeq = -1;
  // the AU being assembled
  private open = false;
  private auTimestamp = 0;
  private nalus: Uint8Array[] = [];
  private rtp: Uint8Array[] = [];
  private auSize = 0;
  private broken = false;
  private oversized = false;
  // the FU-A being assembled
  private fragments: Uint8Array[] = [];
  private fragmentSize = 0;
  private fragmentHeader = -1; // rebuilt NAL header byte while a fragment is open

  /**
   * Feeds one packet.
   * @param raw the serialized packet, kept in `H264AccessUnit.rtp` for passthrough; omit to not keep packets.
   * @returns the next complete access unit, or null. One packet can complete two AUs (the previous one by a
   *   timestamp change, its own by its marker); the second comes from the next `push()` or `flush()`.
   * @throws ParseError for a malformed payload (empty, truncated STAP-A/FU-A, reserved NAL type) and
   *   UnsupportedError for interleaved-mode types (STAP-B, MTAP, FU-B); the AU it belongs to is dropped and the
   *   depacketizer stays usable.
   */
  push(pkt: RtpPacket, raw?: Uint8Array): H264AccessUnit | null {
    this.stats.packets++;
    if (this.expectedSeq >= 0) {
      const gap = seqDiff(pkt.sequenceNumber, this.expectedSeq);
      if (gap < 0) {
        this.stats.packetsLate++;
        return this.ready.shift() ?? null;
      }
      if (gap > 0) {
        this.stats.packetsLost += gap;
        if (this.open) {
          this.broken = true; // its middle or tail was lost
          if (pkt.timestamp !== this.auTimestamp) this.finish();
        }
        this.beginIfClosed(pkt.timestamp);
        this.broken = true; // its head may be what was lost
      }
    }
    this.expectedSeq = (pkt.sequenceNumber + 1) & 0xffff;

    if (this.open && pkt.timestamp !== this.auTimestamp) this.finish(); // missing marker bit
    this.beginIfClosed(pkt.timestamp);
    if (raw) this.rtp.push(raw);
    try {
      this.payload(pkt.payload);
    } catch (err) {
      this.broken = true;
      this.resetFragment();
      if (pkt.marker) this.finish();
      throw err;
    }
    if (pkt.marker) this.finish();
    return this.ready.shift() ?? null;
  }

  /**
   * Ends the stream: returns AUs still queued and the open one if it is complete (a sender that never sets the
   * marker bit leaves its last AU open).
   */
  flush(): H264AccessUnit[] {
    if (this.open) this.finish();
    return this.ready.splice(0);
  }

  private beginIfClosed(timestamp: number): void {
    if (this.open) return;
    this.open = true;
    this.auTimestamp = timestamp;
  }

  private payload(p: Uint8Array): void {
    if (p.length === 0) throw new ParseError(FORMAT, 'empty payload', 0);
    const type = (p[0] as number) & 0x1f;
    if (type >= 1 && type <= 23) {
      if (this.fragmentHeader >= 0) this.loseFragment();
      this.addNalu(p);
      return;
    }
    switch (type) {
      case NalUnitType.StapA: {
        if (this.fragmentHeader >= 0) this.loseFragment();
        let o = 1;
        let count = 0;
        while (o < p.length) {
          if (o + 2 > p.length) throw new ParseError(FORMAT, 'STAP-A NALU size field truncated', o);
          const size = ((p[o] as number) << 8) | (p[o + 1] as number);
          // zero size: the rest is padding (seen from cameras that pad STAP-A to 4 bytes)
          if (size === 0) {
            if (count === 0) throw new ParseError(FORMAT, 'STAP-A with an empty first NAL unit', o);
            break;
          }
          if (o + 2 + size > p.length) throw new ParseError(FORMAT, `STAP-A NAL unit of ${size} bytes overruns the packet`, o);
          this.addNalu(p.subarray(o + 2, o + 2 + size));
          count++;
          o += 2 + size;
        }
        if (count === 0) throw new ParseError(FORMAT, 'STAP-A without NAL units', 1);
        return;
      }
      case NalUnitType.FuA: {
        if (p.length < 2) throw new ParseError(FORMAT, 'FU-A without FU header', 1);
        const fu = p[1] as number;
        const start = (fu & 0x80) !== 0;
        const end = (fu & 0x40) !== 0;
        const nalType = fu & 0x1f;
        if (nalType === 0 || nalType >= 24) throw new ParseError(FORMAT, `FU-A carries NAL type ${nalType}`, 1);
        const data = p.subarray(2);
        if (start) {
          if (this.fragmentHeader >= 0) this.loseFragment();
          this.fragmentHeader = ((p[0] as number) & 0xe0) | nalType;
        } else if (this.fragmentHeader < 0) {
          // a continuation whose start we never saw (joined mid-NAL or the start was lost): routine
          this.broken = true;
          return;
        }
        if (this.fragmentSize + data.length + this.auSize > MAX_RTP_ACCESS_UNIT_SIZE) {
          this.markOversized();
          return;
        }
        this.fragments.push(data);
        this.fragmentSize += data.length;
        if (end) {
          // join once: one allocation of the known size
          const nal = new Uint8Array(1 + this.fragmentSize);
          nal[0] = this.fragmentHeader;
          let o = 1;
          for (const f of this.fragments) {
            nal.set(f, o);
            o += f.length;
          }
          this.resetFragment();
          this.addNalu(nal);
        }
        return;
      }
      case NalUnitType.StapB:
      case NalUnitType.Mtap16:
      case NalUnitType.Mtap24:
      case NalUnitType.FuB:
        throw new UnsupportedError(`${FORMAT}: NAL type ${type} needs packetization-mode 2 (interleaved), not supported`);
      default:
        throw new ParseError(FORMAT, `reserved NAL unit type ${type}`, 0);
    }
  }

  private addNalu(nal: Uint8Array): void {
    if (this.oversized) return;
    if (this.nalus.length + 1 > MAX_RTP_NALUS_PER_ACCESS_UNIT || this.auSize + nal.length > MAX_RTP_ACCESS_UNIT_SIZE) {
      this.markOversized();
      return;
    }
    this.nalus.push(nal);
    this.auSize += nal.length;
  }

  private markOversized(): void {
    this.oversized = true;
    // release what was gathered so the rest of the AU costs no memory
    this.nalus = [];
    this.rtp = [];
    this.auSize = 0;
    this.resetFragment();
  }

  private loseFragment(): void {
    this.broken = true;
    this.resetFragment();
  }

  private resetFragment(): void {
    this.fragments = [];
    this.fragmentSize = 0;
    this.fragmentHeader = -1;
  }

  /** Closes the open AU: queues it when whole, counts it as dropped otherwise. */
  private finish(): void {
    if (this.fragmentHeader >= 0) this.loseFragment(); // AU ended inside a fragment
    if (this.oversized) {
      this.stats.accessUnitsOversized++;
    } else if (this.broken) {
      this.stats.accessUnitsDropped++;
    } else if (this.nalus.length > 0) {
      let keyframe = false;
      for (const n of this.nalus) if (((n[0] as number) & 0x1f) === NalUnitType.IdrSlice) keyframe = true;
      const au: H264AccessUnit = { nalus: this.nalus, pts: this.timestamps.unwrap(this.auTimestamp), keyframe };
      if (this.rtp.length > 0) au.rtp = this.rtp;
      this.ready.push(au);
      this.stats.accessUnits++;
    }
    this.open = false;
    this.broken = false;
    this.oversized = false;
    this.nalus = [];
    this.rtp = [];
    this.auSize = 0;
  }
}

/** Payload type when none is given: the first dynamic one (RFC 3551 §6), what ffmpeg and GStreamer use for H.264. */
export const H264_DEFAULT_PAYLOAD_TYPE = 96;

/** Options of the packetizer; the stream fields are only needed for `packetize()`. */
export interface H264PacketizerInit extends Partial<RtpStreamInit> {
  /** largest RTP packet in bytes, header included; 1200..1450, default 1200 */
  mtu?: number;
}

/**
 * RFC 6184 packetization-mode 1 packetizer. NAL units that fit go alone (single NAL unit packet) or, when several
 * consecutive small ones fit together (SPS, PPS, SEI, AUD), in one STAP-A; larger ones are cut into FU-A
 * fragments. The marker bit goes on the last packet of the AU.
 */
export class H264Packetizer {
  /** largest packet, header included */
  readonly mtu: number;
  private readonly header: RtpHeaderWriter;

  constructor(init: H264PacketizerInit = {}) {
    this.mtu = checkMtu(init.mtu ?? RTP_DEFAULT_MTU);
    this.header = new RtpHeaderWriter({ ...init, payloadType: init.payloadType ?? H264_DEFAULT_PAYLOAD_TYPE });
  }

  /** The RTP stream state (SSRC, next sequence number, timestamp base). */
  get stream(): RtpHeaderWriter {
    return this.header;
  }

  /**
   * RTP payloads for one access unit, each at most `mtu - 12` bytes, in order; the last one carries the AU end.
   * Single NAL unit payloads are views of the input; STAP-A and FU-A payloads are new buffers (one per payload).
   * Empty NAL units are skipped. Lets several receivers share payloads and write only their own headers.
   */
  payloads(nalus: readonly Uint8Array[]): Uint8Array[] {
    const max = this.mtu - RTP_HEADER_SIZE;
    const out: Uint8Array[] = [];
    let i = 0;
    while (i < nalus.length) {
      const nal = nalus[i] as Uint8Array;
      if (nal.length === 0) {
        i++;
        continue;
      }
      if (nal.length > max) {
        this.fragment(nal, max, out);
        i++;
        continue;
      }
      // gather the following small units that fit one STAP-A with this one
      let j = i + 1;
      let size = 1 + 2 + nal.length;
      while (j < nalus.length) {
        const next = nalus[j] as Uint8Array;
        if (next.length === 0 || size + 2 + next.length > max) break;
        size += 2 + next.length;
        j++;
      }
      if (j - i === 1) {
        out.push(nal);
      } else {
        const stap = new Uint8Array(size);
        let f = 0;
        let nri = 0;
        let o = 1;
        for (let k = i; k < j; k++) {
          const n = nalus[k] as Uint8Array;
          if (n.length === 0) continue;
          const h = n[0] as number;
          f |= h & 0x80;
          nri = Math.max(nri, h & 0x60); // §5.7.1: NRI is the maximum of the aggregated units
          stap[o] = n.length >>> 8;
          stap[o + 1] = n.length & 0xff;
          stap.set(n, o + 2);
          o += 2 + n.length;
        }
        stap[0] = f | nri | NalUnitType.StapA;
        out.push(stap);
      }
      i = j;
    }
    return out;
  }

  private fragment(nal: Uint8Array, max: number, out: Uint8Array[]): void {
    const h = nal[0] as number;
    const indicator = (h & 0xe0) | NalUnitType.FuA;
    const type = h & 0x1f;
    const chunk = max - 2;
    for (let o = 1; o < nal.length; o += chunk) {
      const end = Math.min(nal.length, o + chunk);
      const p = new Uint8Array(2 + end - o);
      p[0] = indicator;
      p[1] = (o === 1 ? 0x80 : 0) | (end === nal.length ? 0x40 : 0) | type;
      p.set(nal.subarray(o, end), 2);
      out.push(p);
    }
  }

  /**
   * Serialized RTP packets for one access unit at media time `pts` (90 kHz ticks; RTP timestamp = initial
   * timestamp + pts). Each packet is one buffer, header written in front of its payload.
   */
  packetize(nalus: readonly Uint8Array[], pts: number): Uint8Array[] {
    const payloads = this.payloads(nalus);
    const ts = this.header.rtpTimestamp(pts);
    const packets: Uint8Array[] = [];
    for (let k = 0; k < payloads.length; k++) {
      const p = payloads[k] as Uint8Array;
      const buf = this.header.allocate(p.length, k === payloads.length - 1, ts);
      buf.set(p, RTP_HEADER_SIZE);
      packets.push(buf);
    }
    return packets;
  }
}

/**
 * Reorder depth assumed when the SPS does not state `max_num_reorder_frames` (VUI bitstream_restriction):
 * x264's default B-pyramid needs 2; a larger value only delays DTS more, a smaller one breaks DTS ≤ PTS.
 */
export const DEFAULT_REORDER_DEPTH = 2;
/** Frame duration assumed for the first frames, before the stream shows its own: 30 fps at 90 kHz. */
export const DEFAULT_FRAME_TICKS = 3000;

/**
 * Decode timestamps for H.264 received over RTP, which carries presentation times only (RFC 6184 §5.1).
 *
 * With a reorder depth R, the frame decoded i-th is never shown before the (i-R)-th smallest presentation time,
 * so DTS(i) = that value: monotonic and ≤ PTS without parsing slice headers. Frames are given in decode order;
 * the first R get DTS extrapolated backwards from the first PTS. R comes from the SPS (`maxNumReorderFrames`),
 * 0 for Baseline, else DEFAULT_REORDER_DEPTH.
 */
export class H264DtsEstimator {
  private depth: number;
  private readonly heap: number[] = []; // min-heap of presentation times not yet used as a DTS
  private index = 0;
  private first = 0;
  private lastDts = -Infinity;

  /** @param reorderDepth max_num_reorder_frames of the stream's SPS, when known */
  constructor(reorderDepth: number = DEFAULT_REORDER_DEPTH) {
    this.depth = Math.max(0, Math.min(16, reorderDepth));
  }

  /** Sets the reorder depth from a new SPS; takes effect for a stream that has not started. */
  setReorderDepth(depth: number): void {
    if (this.index === 0) this.depth = Math.max(0, Math.min(16, depth));
  }

  /** The DTS of the next access unit in decode order, whose presentation time is `pts` (any unit, integers). */
  next(pts: number): number {
    if (this.index === 0) this.first = pts;
    this.push(pts);
    let dts: number;
    if (this.heap.length > this.depth) {
      dts = this.pop();
    } else {
      dts = this.first - (this.depth - this.index) * DEFAULT_FRAME_TICKS;
    }
    this.index++;
    // keep DTS strictly increasing even when the input breaks the reorder-depth promise
    if (dts <= this.lastDts) dts = this.lastDts + 1;
    if (dts > pts) dts = Math.max(this.lastDts + 1, pts);
    this.lastDts = dts;
    return dts;
  }

  private push(v: number): void {
    const h = this.heap;
    h.push(v);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((h[p] as number) <= v) break;
      h[i] = h[p] as number;
      i = p;
    }
    h[i] = v;
  }

  private pop(): number {
    const h = this.heap;
    const top = h[0] as number;
    const last = h.pop() as number;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && (h[r] as number) < (h[l] as number) ? r : l;
        if ((h[c] as number) >= last) break;
        h[i] = h[c] as number;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
