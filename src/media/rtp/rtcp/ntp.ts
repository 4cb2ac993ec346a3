/**
 * NTP time (RFC 3550 §4: seconds since 1900-01-01 as 32.32 fixed point) and its conversions to Unix time.
 */
/** Seconds from the NTP epoch (1900) to the Unix epoch (1970): 70 years with 17 leap days. */
export const NTP_UNIX_OFFSET_SEC = 2_208_988_800;

/** Converts Unix milliseconds to an NTP timestamp. */
export function ntpFromUnixMs(unixMs: number): { ntpSec: number; ntpFrac: number } {
  const totalSec = Math.floor(unixMs / 1000);
  const fracMs = unixMs - totalSec * 1000;
  let ntpFrac = Math.round((fracMs / 1000) * 0x1_0000_0000);
  let ntpSec = totalSec + NTP_UNIX_OFFSET_SEC;
  if (ntpFrac >= 0x1_0000_0000) {
    ntpFrac -= 0x1_0000_0000;
    ntpSec++;
  }
  return { ntpSec: ntpSec >>> 0, ntpFrac };
}

/** Converts an NTP timestamp to Unix milliseconds (era 0, i.e. until 2036). */
export function ntpToUnixMs(ntpSec: number, ntpFrac: number): number {
  return (ntpSec - NTP_UNIX_OFFSET_SEC) * 1000 + (ntpFrac / 0x1_0000_0000) * 1000;
}

/** The middle 32 bits of an NTP timestamp (16.16 seconds), as LSR and RTT use them (RFC 3550 §6.4.1). */
export function ntpMiddle32(ntpSec: number, ntpFrac: number): number {
  return (((ntpSec & 0xffff) << 16) | (ntpFrac >>> 16)) >>> 0;
}
