#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner.
// Usage: node scripts/run-tests.js [filter-substring ...]
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function collect(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) collect(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
let files = collect('dist/test', []).sort();
if (filters.length > 0) files = files.filter((f) => filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const env = { ...process.env, STREAMGATE_LOG_LEVEL: process.env.STREAMGATE_LOG_LEVEL ?? 'silent' };
// --test-force-exit: a file whose tests are done ends even if a socket or timer was left open (a CI run must
// never hang on one leaked handle); --test-timeout: no single test may run longer than 3 minutes.
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-force-exit', '--test-timeout=180000', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env,
});
process.exit(r.status ?? 1);
