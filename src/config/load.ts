/** YAML text or file → validated `Config`, or a `ConfigError` listing every issue with its line:column. */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError, errorMessage } from '../errors.js';
import type { Config, ConfigIssue, PathConf } from './types.js';
import { configSchema, type SchemaOut } from './schema.js';
import { issueMessage, yamlMessage } from './messages.js';
import { pathKeyIssues, semanticIssues, type RawIssue } from './checks.js';
import { keyPath, offsetOf } from './yaml-location.js';
import { knownKeys, suggest } from './did-you-mean.js';

/**
 * Parses and validates YAML text. `sourceName` (a file name) prefixes every message.
 * @throws ConfigError listing every issue with its key path and line:column; its message is `formatConfigError` text.
 */
export function parseConfig(text: string, sourceName = '<config>'): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const pos = (offset: number | undefined) => {
    if (offset === undefined) return {};
    const p = lineCounter.linePos(offset);
    return { line: Math.max(1, p.line), col: p.col };
  };
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e): ConfigIssue => ({ key: '', ...pos(e.pos[0]), message: yamlMessage(e.message) }));
    throw configError(sourceName, issues);
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw configError(sourceName, [{ key: '', message: errorMessage(err) }]);
  }
  const result = configSchema.safeParse(raw, { reportInput: true });
  const rawIssues: RawIssue[] = pathKeyIssues(raw);
  if (!result.success) {
    for (const iss of result.error.issues) {
      const path = iss.path.filter((p): p is string | number => typeof p !== 'symbol');
      if (iss.code === 'unrecognized_keys') {
        const known = knownKeys(path);
        for (const k of iss.keys) {
          const hint = suggest(k, known);
          const message = `unknown key ${JSON.stringify(k)}${hint === null ? '' : ` (did you mean ${JSON.stringify(hint)}?)`}`;
          rawIssues.push({ path: [...path, k], message, atKey: true });
        }
      } else rawIssues.push({ path, message: issueMessage(iss) });
    }
  } else if (rawIssues.length === 0) {
    rawIssues.push(...semanticIssues(result.data));
  }
  if (rawIssues.length > 0 || !result.success) {
    const issues = rawIssues.map((r): ConfigIssue => ({
      key: keyPath(r.path),
      ...pos(offsetOf(doc, r.path, r.atKey === true)),
      message: r.message,
    }));
    issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
    throw configError(sourceName, issues);
  }
  return finish(result.data);
}

/** Fills what zod cannot: per-path `hls.alwaysRemux` inherits the listener's setting. */
function finish(c: SchemaOut): Config {
  const { paths, ...rest } = c;
  const config: Config = rest;
  if (paths !== undefined) {
    const out: Record<string, PathConf> = {};
    for (const [k, p] of Object.entries(paths)) {
      out[k] = { ...p, hls: { alwaysRemux: p.hls.alwaysRemux ?? c.listeners.hls.alwaysRemux } };
    }
    config.paths = out;
  }
  return config;
}

function configError(sourceName: string, issues: ConfigIssue[]): ConfigError {
  const lines = issues.map((i) => formatIssue(sourceName, i));
  return new ConfigError(lines.join('\n'), issues);
}

/** `FILE:line:col: key: message` (parts that are unknown are left out). */
export function formatIssue(sourceName: string, i: ConfigIssue): string {
  const where = i.line !== undefined ? `${sourceName}:${i.line}:${i.col ?? 1}` : sourceName;
  return i.key === '' ? `${where}: ${i.message}` : `${where}: ${i.key}: ${i.message}`;
}

/** Reads and parses a YAML config file. @throws ConfigError (also when the file cannot be read) */
export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw configError(path, [{ key: '', message: `cannot read: ${errorMessage(err)}` }]);
  }
  return parseConfig(text, path);
}

/** The embedded defaults (what `config/default.yml` spells out): every listener on, every path open, no auth. */
export function defaultConfig(): Config {
  return parseConfig('', '<default>');
}

/** Human-readable text for a config error (one `FILE:line:col: key: message` line per issue), or any error. */
export function formatConfigError(err: unknown): string {
  return err instanceof ConfigError ? err.message : errorMessage(err);
}
