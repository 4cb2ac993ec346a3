import { parseSps } from './h264-sps.js';
import { StreamgateError } from '../../errors.js';

/** profile_idc → name (ITU-T H.264 Annex A.2). */
const PROFILE_NAMES: Record<number, string> = {
  66: 'Baseline',
  77: 'Main',
  88: 'Extended',
  100: 'High',
  110: 'High 10',
  122: 'High 4:2:2',
  244: 'High 4:4:4 Predictive',
  44: 'CAVLC 4:4:4 Intra',
};

/** Picture size and profile name of an SPS, as a Track keeps them; undefined when the SPS does not parse. */
export function h264Dimensions(sps: Uint8Array): { width: number; height: number; profile: string } | undefined {
  try {
    const s = parseSps(sps);
    const constrainedBaseline = s.profileIdc === 66 && (s.constraintSetFlags & 0x40) !== 0;
    const profile = constrainedBaseline ? 'Constrained Baseline' : (PROFILE_NAMES[s.profileIdc] ?? `profile ${s.profileIdc}`);
    return { width: s.width, height: s.height, profile };
  } catch (err) {
    if (err instanceof StreamgateError) return undefined;
    throw err;
  }
}
