/**
 * Typed errors with stable codes. Codes are API: logs, metrics and tests match on them.
 * Hot-path decoders return `null` for "need more data" instead of throwing (see STYLE.md §9).
 */
export type ErrorCode =
  | 'SG_PARSE' // bytes that do not follow the format
  | 'SG_LIMIT' // a bound from the network was crossed (see each parser's named limits)
  | 'SG_STATE' // a message that is not allowed in the current protocol state
  | 'SG_PROTOCOL' // a request the peer must get a status code for
  | 'SG_AUTH' // missing or wrong credentials
  | 'SG_NOT_FOUND' // unknown path / session
  | 'SG_BUSY' // path already has a publisher, or a cap was reached
  | 'SG_UNSUPPORTED' // a valid input we do not handle (codec, transport)
  | 'SG_CONFIG' // bad configuration
  | 'SG_TIMEOUT'; // the peer stayed silent too long

/** Base class of every error streamgate throws on purpose. */
export class StreamgateError extends Error {
  readonly code: ErrorCode;
  /** true when the session that hit it must close */
  readonly fatal: boolean;
  constructor(code: ErrorCode, message: string, fatal = true) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.fatal = fatal;
  }
}

/** Input bytes that do not follow their format. `offset` is where parsing gave up. */
export class ParseError extends StreamgateError {
  constructor(readonly format: string, message: string, readonly offset = -1) {
    super('SG_PARSE', `${format}: ${message}${offset >= 0 ? ` (at byte ${offset})` : ''}`);
  }
}

/** A bound on network input was crossed. */
export class LimitError extends StreamgateError {
  constructor(readonly what: string, readonly limit: number, readonly actual: number) {
    super('SG_LIMIT', `${what} is ${actual}, over the limit of ${limit}`);
  }
}

/** A message arrived in a state that does not allow it. */
export class StateError extends StreamgateError {
  constructor(readonly state: string, readonly allowed: readonly string[], what: string) {
    super('SG_STATE', `${what} not allowed in state '${state}' (allowed in: ${allowed.join(', ')})`);
  }
}

/** A request to answer with a protocol status code (RTSP/SIP/HTTP). */
export class ProtocolError extends StreamgateError {
  constructor(readonly status: number, message: string, fatal = false) {
    super('SG_PROTOCOL', message, fatal);
  }
}

export class AuthError extends StreamgateError {
  constructor(message = 'authentication failed') {
    super('SG_AUTH', message);
  }
}

export class NotFoundError extends StreamgateError {
  constructor(message: string) {
    super('SG_NOT_FOUND', message);
  }
}

export class BusyError extends StreamgateError {
  constructor(message: string) {
    super('SG_BUSY', message);
  }
}

export class UnsupportedError extends StreamgateError {
  constructor(message: string) {
    super('SG_UNSUPPORTED', message);
  }
}

/** A config error, with the key and its position in the YAML file when known. */
export class ConfigError extends StreamgateError {
  constructor(
    message: string,
    readonly issues: readonly { key: string; line?: number; col?: number; message: string }[] = [],
  ) {
    super('SG_CONFIG', message);
  }
}

/** Message of any thrown value, for logs. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
