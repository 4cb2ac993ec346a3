/** Questions the running gateway asks of a `Config`: which settings apply to a path, which listeners start. */
import type { Config, ListenerConf, PathConf } from './types.js';
import { pathSchema } from './schema.js';
import { isValidPathName, pathRegex } from './path-names.js';

/** Settings of a path with nothing configured. */
export function defaultPathConf(config?: Config): PathConf {
  const p = pathSchema.parse({});
  return { ...p, hls: { alwaysRemux: config?.listeners.hls.alwaysRemux ?? false } };
}

/** Result of `resolvePathConf`: the path, its settings and the `paths` key that matched (null: no `paths` key). */
export interface ResolvedPath {
  name: string;
  conf: PathConf;
  matchedKey: string | null;
}

/**
 * Finds the settings for a concrete path name: the exact `paths` entry first, then `~regex` entries in file order.
 * Without a `paths` key every valid name is allowed with defaults.
 * @returns null when the name is invalid or (with `paths` present) matches no entry: the path is not allowed.
 */
export function resolvePathConf(config: Config, pathName: string): ResolvedPath | null {
  if (!isValidPathName(pathName)) return null;
  const paths = config.paths;
  if (paths === undefined) return { name: pathName, conf: defaultPathConf(config), matchedKey: null };
  if (!pathName.startsWith('~') && Object.hasOwn(paths, pathName)) {
    const conf = paths[pathName];
    if (conf !== undefined) return { name: pathName, conf, matchedKey: pathName };
  }
  for (const [key, conf] of Object.entries(paths)) {
    if (key.startsWith('~') && pathRegex(key).test(pathName)) return { name: pathName, conf, matchedKey: key };
  }
  return null;
}

/** True if the listener should be started. */
export function listenerEnabled(l: ListenerConf): boolean {
  return l.enabled && l.port !== 0;
}
