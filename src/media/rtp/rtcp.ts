/**
 * RTCP (RFC 3550 §6, RFC 4585 §6): SR, RR, SDES, BYE, PLI, FIR (RFC 5104 §4.3.1) and generic NACK; compound
 * packets; NTP time; per-source sender/receiver statistics (RFC 3550 §6.4, A.3, A.8) and the report interval
 * (§6.2, A.7). Pure: callers pass the clock in.
 *
 * Packet types this module does not interpret (APP, XR, REMB, TWCC, ...) are kept as `RtcpOther` with a view of
 * their bytes, so a compound packet round-trips.
 */
export * from './rtcp/types.js';
export * from './rtcp/parse.js';
export * from './rtcp/serialize.js';
export * from './rtcp/compound.js';
export * from './rtcp/nack.js';
export * from './rtcp/ntp.js';
export * from './rtcp/receiver-stats.js';
export * from './rtcp/sender-stats.js';
export * from './rtcp/interval.js';
