/** "did you mean" hints for unknown keys: the keys the schema allows at a path, and the closest one. */
import type { z } from 'zod';
import { configSchema } from './schema.js';

/** The parts of zod's schema definitions walked to list the keys allowed at a path. */
interface SchemaDef {
  type: string;
  in?: z.core.$ZodType;
  out?: z.core.$ZodType;
  innerType?: z.core.$ZodType;
  shape?: Record<string, z.core.$ZodType>;
  valueType?: z.core.$ZodType;
  element?: z.core.$ZodType;
}

function defOf(t: z.core.$ZodType): SchemaDef {
  return t._zod.def as unknown as SchemaDef;
}

/** Keys the schema allows at `path` (for "did you mean" hints). */
export function knownKeys(path: readonly (string | number)[]): string[] {
  let t: z.core.$ZodType | undefined = configSchema;
  let i = 0;
  for (let guard = 0; t !== undefined && guard < 100; guard++) {
    const d = defOf(t);
    if (d.type === 'pipe') t = d.out?._zod.def.type === 'transform' ? d.in : d.out;
    else if (d.innerType !== undefined) t = d.innerType;
    else if (i === path.length) return d.type === 'object' ? Object.keys(d.shape ?? {}) : [];
    else if (d.type === 'object') t = d.shape?.[String(path[i++])];
    else if (d.type === 'record') (t = d.valueType), i++;
    else if (d.type === 'array') (t = d.element), i++;
    else return [];
  }
  return [];
}

/** The known key closest to a typo (case-insensitive equal, or within 2 edits), or null. */
export function suggest(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDist = 3;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : editDistance(k, key);
    if (d < bestDist) (best = k), (bestDist = d);
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 3;
}
