/** Path names and `~regex` path patterns: what is valid, what matches. */
import { errorMessage } from '../errors.js';

/** One path name segment: RFC 3986 unreserved characters. */
const PATH_SEGMENT = /^[A-Za-z0-9._~-]+$/;
/** Longest path name accepted (mediamtx has none; 1 KiB keeps URLs, file names and log lines sane). */
export const MAX_PATH_NAME_LENGTH = 1024;

/** True if `name` is a valid concrete path name: segments of `[A-Za-z0-9._~-]` joined by `/` (no `.`/`..`). */
export function isValidPathName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_PATH_NAME_LENGTH) return false;
  for (const seg of name.split('/')) {
    if (!PATH_SEGMENT.test(seg) || seg === '.' || seg === '..') return false;
  }
  return true;
}

const regexCache = new Map<string, RegExp>();

/** Compiles the regex of a `~regex` key (without the `~`), cached. Throws SyntaxError when invalid. */
export function pathRegex(key: string): RegExp {
  let re = regexCache.get(key);
  if (re === undefined) {
    re = new RegExp(key.slice(1));
    regexCache.set(key, re);
  }
  return re;
}

/** True if a path pattern (`name` or `~regex`, as in `paths` keys and auth permissions) matches `name`. */
export function pathPatternMatches(pattern: string, name: string): boolean {
  return pattern.startsWith('~') ? pathRegex(pattern).test(name) : pattern === name;
}

/** Why a `paths` key or permission path is invalid, or null. */
export function pathKeyProblem(key: string): string | null {
  if (key.startsWith('~')) {
    if (key.length === 1) return 'empty regular expression';
    try {
      pathRegex(key);
      return null;
    } catch (err) {
      return `invalid regular expression: ${errorMessage(err).replace(/^Invalid regular expression: /, '')}`;
    }
  }
  if (key === '__proto__') return 'reserved name';
  if (!isValidPathName(key)) {
    return 'invalid path name: use segments of A-Z a-z 0-9 . _ ~ - joined by /, or ~regex';
  }
  return null;
}
