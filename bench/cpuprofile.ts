import { existsSync, readFileSync, readdirSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { SourceMap } from 'node:module';
import { fileURLToPath } from 'node:url';
import { join, relative } from 'node:path';

/** Summary of a V8 `.cpuprofile` (what `node --cpu-prof` writes): where the samples fell, mapped back to .ts lines. */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
}

/** One function's share of the samples. */
export interface HotSpot {
  /** `name (file:line)` with TypeScript locations where a source map exists */
  where: string;
  selfPct: number;
  totalPct: number;
}

const maps = new Map<string, SourceMap | null>();

function sourceMapOf(file: string): SourceMap | null {
  let m = maps.get(file);
  if (m !== undefined) return m;
  m = null;
  try {
    if (existsSync(`${file}.map`)) m = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]);
  } catch {
    m = null;
  }
  maps.set(file, m);
  return m;
}

function locate(cf: ProfileNode['callFrame'], root: string): string {
  const name = cf.functionName || '(anonymous)';
  if (!cf.url) return name;
  let file = cf.url;
  if (file.startsWith('file://')) {
    file = fileURLToPath(file);
    const map = sourceMapOf(file);
    const entry = map?.findEntry(cf.lineNumber, cf.columnNumber);
    if (entry && 'originalSource' in entry && entry.originalSource) {
      const src = entry.originalSource.startsWith('file://') ? fileURLToPath(entry.originalSource) : entry.originalSource;
      return `${name} (${relative(root, src)}:${entry.originalLine + 1})`;
    }
    return `${name} (${relative(root, file)}:${cf.lineNumber + 1})`;
  }
  return `${name} (${file}:${cf.lineNumber + 1})`;
}

/** The functions with the most self time (samples in the function itself) and their inclusive share. */
export function hotSpots(profilePath: string, root: string, top = 20): HotSpot[] {
  const p = JSON.parse(readFileSync(profilePath, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const total = p.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
  const idle = p.nodes.filter((n) => n.callFrame.functionName === '(idle)').reduce((s, n) => s + (n.hitCount ?? 0), 0);
  const busy = Math.max(1, total - idle);
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  // inclusive time per node, then per function (a function counted once per stack, so recursion does not inflate it)
  const inclusive = new Map<number, number>();
  const visit = (id: number): number => {
    const n = byId.get(id)!;
    let t = n.hitCount ?? 0;
    for (const c of n.children ?? []) t += visit(c);
    inclusive.set(id, t);
    return t;
  };
  const root0 = p.nodes[0];
  if (root0) visit(root0.id);
  const walk = (id: number, onStack: Set<string>): void => {
    const n = byId.get(id)!;
    const key = locate(n.callFrame, root);
    self.set(key, (self.get(key) ?? 0) + (n.hitCount ?? 0));
    const fresh = !onStack.has(key);
    if (fresh) {
      incl.set(key, (incl.get(key) ?? 0) + inclusive.get(id)!);
      onStack.add(key);
    }
    for (const c of n.children ?? []) walk(c, onStack);
    if (fresh) onStack.delete(key);
  };
  if (root0) walk(root0.id, new Set());
  const skip = new Set(['(root)', '(idle)']);
  return [...self.entries()]
    .filter(([k]) => !skip.has(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, v]) => ({ where: k, selfPct: (100 * v) / busy, totalPct: (100 * (incl.get(k) ?? v)) / busy }));
}

/** {@link hotSpots} as report lines: `self% self total% total  where`. */
export function hotSpotLines(profilePath: string, root: string, top: number): string[] {
  return hotSpots(profilePath, root, top).map((h) => `${h.selfPct.toFixed(1).padStart(5)}% self ${h.totalPct.toFixed(1).padStart(5)}% total  ${h.where}`);
}

/**
 * Moves the profile a server wrote into `profDir` (if any) to the benchmarks' temporary directory as
 * `<name>-<time>.cpuprofile`, so it outlives the run's directory. @returns its new path
 */
export function keepCpuProfile(profDir: string | undefined, name: string): string | undefined {
  if (!profDir || !existsSync(profDir)) return undefined;
  const prof = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!prof) return undefined;
  const keep = join(tmpdir(), 'streamgate-bench', `${name}-${Date.now()}.cpuprofile`);
  renameSync(join(profDir, prof), keep);
  return keep;
}
