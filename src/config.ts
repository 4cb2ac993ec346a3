/**
 * YAML configuration → typed, validated `Config` (after mediamtx `internal/conf`).
 *
 * Two phases: zod checks shapes, types, ranges and unknown keys; then `semanticIssues()` checks what spans keys
 * (path names, regexes, port clashes, credential pairs). Every issue names its key path (`listeners.rtmp.port`) and
 * the `line:column` of the YAML node it came from, so a user can jump straight to it.
 *
 * Durations in the typed `Config` are seconds (fractions allowed) unless the key name says otherwise
 * (`readerQueueMs`). In YAML a duration is a number of seconds or a string like `"10s"`, `"500ms"`, `"1m30s"`.
 */
// The code lives in src/config/ (one job per module); this file is the import surface everyone uses.
export type {
  LogLevel,
  ListenerConf,
  RtspListenerConf,
  HlsVariant,
  HlsListenerConf,
  IceServerConf,
  WebrtcListenerConf,
  ListenersConf,
  RtspTransport,
  PathConf,
  AuthAction,
  AuthPermission,
  AuthUser,
  AuthConf,
  Config,
  ConfigIssue,
} from './config/types.js';
export { parseDuration } from './config/schema.js';
export { MAX_PATH_NAME_LENGTH, isValidPathName, pathRegex, pathPatternMatches } from './config/path-names.js';
export { keyPath } from './config/yaml-location.js';
export { parseConfig, formatIssue, loadConfigFile, defaultConfig, formatConfigError } from './config/load.js';
export { defaultPathConf, resolvePathConf, listenerEnabled, type ResolvedPath } from './config/resolve.js';
