import { spawnSync } from 'node:child_process';

let installed: boolean | undefined;

/**
 * True when an `ffmpeg` binary can be run. Probed once per process (the transcoders of every egress ask on each
 * new reader); callers log what the missing binary costs their readers.
 */
export function ffmpegInstalled(): boolean {
  if (installed === undefined) {
    installed = spawnSync('ffmpeg', ['-hide_banner', '-version'], { stdio: 'ignore', timeout: 5000 }).status === 0;
  }
  return installed;
}
