import { spawnSync } from 'node:child_process';
import { log } from '../log.js';

let installed: boolean | undefined;
const warned = new Set<string>();

/**
 * True when an `ffmpeg` binary can be run. Probed once per process (the transcoders of every egress ask on each
 * new reader); callers log what the missing binary costs their readers (see {@link ffmpegInstalledOrWarn}).
 */
export function ffmpegInstalled(): boolean {
  if (installed === undefined) {
    installed = spawnSync('ffmpeg', ['-hide_banner', '-version'], { stdio: 'ignore', timeout: 5000 }).status === 0;
  }
  return installed;
}

/**
 * {@link ffmpegInstalled}, logging `warning` (what the missing binary costs some readers) the first time it is
 * false: once per process and per warning, so each egress says what its own readers lose.
 */
export function ffmpegInstalledOrWarn(warning: string): boolean {
  const ok = ffmpegInstalled();
  if (!ok && !warned.has(warning)) {
    warned.add(warning);
    log.warn(warning);
  }
  return ok;
}
