import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, dirname, resolve } from 'node:path';

/** Source root, found from the compiled test's location (dist/test → ../../src). */
const SRC = resolve(dirname(new URL(import.meta.url).pathname), '../../src');

function files(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Relative import targets of a file, resolved to paths under src/. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)) {
    out.push(relative(SRC, resolve(dirname(file), m[1]!)));
  }
  return out;
}

const layerOf = (p: string): string => p.split('/')[0] ?? '';

test('media imports nothing above it; ingest and egress never import each other (STYLE.md §1)', () => {
  const violations: string[] = [];
  let edges = 0;
  for (const file of files(SRC)) {
    const rel = relative(SRC, file);
    const layer = layerOf(rel);
    for (const target of imports(file)) {
      edges++;
      const to = layerOf(target);
      const isRoot = !target.includes('/');
      if (layer === 'media' && (['ingest', 'egress', 'signaling'].includes(to) || (isRoot && !['errors.js', 'log.js'].includes(target)))) {
        violations.push(`${rel} → ${target}`);
      }
      if ((layer === 'ingest' && to === 'egress') || (layer === 'egress' && to === 'ingest')) violations.push(`${rel} → ${target}`);
      if (['ingest', 'egress', 'signaling', 'media'].includes(layer) && isRoot && !['errors.js', 'log.js', 'auth.js', 'config.js'].includes(target)) {
        violations.push(`${rel} → ${target} (the composition root is not imported from below)`);
      }
    }
  }
  assert.ok(edges > 100, `only ${edges} imports found: the scanner is broken`);
  assert.deepEqual(violations, []);
});

test('only signaling/sdp/description.ts imports sdp-transform (STYLE.md §16)', () => {
  const users = files(SRC)
    .filter((f) => /from\s+'sdp-transform'/.test(readFileSync(f, 'utf8')))
    .map((f) => relative(SRC, f));
  assert.ok(users.every((f) => f === 'signaling/sdp/description.ts'), users.join(', '));
});
