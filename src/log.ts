import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The process logger. JSON lines on stdout (pino); level from STREAMGATE_LOG_LEVEL (default info).
 * Tests set STREAMGATE_LOG_LEVEL=silent or warn.
 */
export const log: Logger = pino({
  level: process.env.STREAMGATE_LOG_LEVEL ?? 'info',
  base: { name: 'streamgate' },
  timestamp: pino.stdTimeFunctions.isoTime,
});

/**
 * Logs at most one line per `intervalMs` for a recurring event, with the count of suppressed ones
 * (after mediamtx errordumper): a flood of bad packets must not flood the log.
 */
export class RateLimitedLog {
  private last = -Infinity;
  private suppressed = 0;
  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 5000,
  ) {}

  warn(obj: Record<string, unknown>, msg: string, nowMs = Date.now()): void {
    if (nowMs - this.last < this.intervalMs) {
      this.suppressed++;
      return;
    }
    this.last = nowMs;
    const extra = this.suppressed > 0 ? { suppressed: this.suppressed } : {};
    this.suppressed = 0;
    this.logger.warn({ ...obj, ...extra }, msg);
  }
}
