import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './servers.js';

/** BENCHMARKS.md: each benchmark owns one marked section of it, and the tool versions its header names. */

/**
 * Replaces the block between `<!-- bench:<name>:start -->` and `<!-- bench:<name>:end -->` of BENCHMARKS.md with
 * `body` (appends it when there is none), so benchmarks run separately never erase each other's results.
 * @param header the file's text when it does not exist yet
 */
export function writeBenchSection(name: string, body: string, header = '# Benchmarks\n'): void {
  const file = join(REPO_ROOT, 'BENCHMARKS.md');
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const block = `${start}\n${body}\n${end}`;
  // read right before writing: other benchmarks write their own sections of the same file
  let text = existsSync(file) ? readFileSync(file, 'utf8') : header;
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a >= 0 && b > a) text = text.slice(0, a) + block + text.slice(b + end.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, text);
}

/** The first line a tool prints about its version (`nginx -v` writes to stderr, `ffmpeg -version` to stdout). */
export function toolVersion(cmd: string, args: string[]): string {
  try {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0]!.replace(/ Copyright.*/, '').trim() || `${cmd}: not found`;
  } catch {
    return `${cmd}: not found`;
  }
}
