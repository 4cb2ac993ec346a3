import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
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

/** The `- date:` line of a section: when the run began, to the second. */
export function dateLine(began: Date): string {
  return `- date: ${began.toISOString().replace(/\.\d+Z$/, 'Z')}`;
}

/** The `- machine:` line of a section: cores, CPU, kernel and the load when the run began, then `note`. */
export function machineLine(note: string): string {
  return `- machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), Linux ${release()}, load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')} (${note})`;
}

/** Prints a finished section and, if `write`, puts it in BENCHMARKS.md (see {@link writeBenchSection}). */
export function publishSection(name: string, section: string, write: boolean, header?: string): void {
  console.log(`\n${section}\n`);
  if (write) {
    writeBenchSection(name, section, header);
    console.log('written to BENCHMARKS.md');
  }
}
