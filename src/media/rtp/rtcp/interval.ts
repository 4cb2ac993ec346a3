/**
 * The RTCP report interval (RFC 3550 §6.2, A.7). Pure: randomness is injected.
 */
/** RFC 3550 §6.2: "the RECOMMENDED value for a fixed minimum interval is 5 seconds". */
export const RTCP_MIN_INTERVAL_MS = 5000;
/** RFC 3550 A.7: the randomization in [0.5, 1.5] biases the mean; dividing by e - 3/2 compensates. */
const RTCP_COMPENSATION = Math.E - 1.5;

/** Inputs of the RTCP interval computation (RFC 3550 A.7 `rtcp_interval`). */
export interface RtcpIntervalInput {
  /** session members, ourselves included */
  members: number;
  /** members that sent RTP recently, ourselves included if we did */
  senders: number;
  /** RTCP bandwidth in octets per second (RFC 3550 §6.2: 5% of the session bandwidth) */
  rtcpBandwidth: number;
  /** whether we sent RTP since the last two reports */
  weSent: boolean;
  /** average compound RTCP packet size in octets, including UDP/IP overhead */
  avgRtcpSize: number;
  /** true before our first report: the minimum is halved */
  initial: boolean;
  /** uniform random in [0, 1); injected so tests are deterministic */
  random: () => number;
}

/**
 * Milliseconds until the next RTCP report (RFC 3550 §6.2, A.7): bandwidth share for senders (25%) and receivers
 * (75%), a 5 s minimum (2.5 s before the first report), randomized by [0.5, 1.5] and compensated by e - 3/2.
 */
export function rtcpIntervalMs(i: RtcpIntervalInput): number {
  const minMs = i.initial ? RTCP_MIN_INTERVAL_MS / 2 : RTCP_MIN_INTERVAL_MS;
  let n = i.members;
  let bw = i.rtcpBandwidth;
  if (i.senders <= i.members * 0.25) {
    if (i.weSent) {
      bw *= 0.25;
      n = i.senders;
    } else {
      bw *= 0.75;
      n -= i.senders;
    }
  }
  let t = bw > 0 ? ((i.avgRtcpSize * n) / bw) * 1000 : minMs;
  if (t < minMs) t = minMs;
  return (t * (i.random() + 0.5)) / RTCP_COMPENSATION;
}
