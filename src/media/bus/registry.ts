import { AuthError, BusyError, NotFoundError, StreamgateError } from '../../errors.js';
import { log } from '../../log.js';
import { DEFAULT_READER_LIMITS, Reader, type FrameSink, type ReaderLimits } from './reader.js';
import type { Protocol, Session } from './session.js';
import { Stream } from './stream.js';

/** What the registry needs to know of a path's configuration (filled in from the YAML by main.ts). */
export interface PathSettings {
  /** readers stay attached this long after their publisher drops, waiting for it to come back */
  publisherGraceMs: number;
  gopCache: boolean;
  /** 0 = unlimited */
  maxReaders: number;
  /** a second publisher takes the path over instead of being refused */
  overridePublisher: boolean;
  /** pull URL (rtsp://, rtmp://) instead of waiting for a publisher */
  source?: string;
  sourceOnDemand: boolean;
  sourceOnDemandStartTimeoutMs: number;
  sourceOnDemandCloseAfterMs: number;
  readerLimits: ReaderLimits;
}

/** Default settings of a path that the config does not describe further. */
export const DEFAULT_PATH_SETTINGS: PathSettings = {
  publisherGraceMs: 10_000,
  gopCache: true,
  maxReaders: 0,
  overridePublisher: false,
  sourceOnDemand: false,
  sourceOnDemandStartTimeoutMs: 10_000,
  sourceOnDemandCloseAfterMs: 10_000,
  readerLimits: DEFAULT_READER_LIMITS,
};

/** Credentials and context of a publish/read request. */
export interface AccessRequest {
  action: 'publish' | 'read';
  path: string;
  protocol: Protocol;
  ip: string;
  user?: string;
  pass?: string;
  /** stream key (`?key=`) */
  key?: string;
  query?: string;
  /** Digest credentials (auth.ts `DigestCredentials`), passed through untouched to the policy that verifies them */
  digest?: unknown;
}

/** Narrow view of the configuration the registry uses; main.ts implements it over Config. */
export interface PathPolicy {
  /** Settings for a path name, or null when the config does not allow that path. */
  resolve(path: string): PathSettings | null;
  /** Resolves when allowed; rejects with AuthError otherwise. */
  authorize(req: AccessRequest): Promise<void>;
}

/** A running pull source (rtsp://, rtmp://) for a path. */
export interface SourceHandle {
  close(): void;
}

/** Starts pull sources; the source publishes into the registry with a session of protocol 'source'. */
export type SourceStarter = (path: string, url: string, registry: PathRegistry) => SourceHandle;

/** A path that has a publisher, readers, or a pull source. */
export class PathEntry {
  publisher: Session | undefined;
  readonly readers = new Set<Reader>();
  /** the gateway's own readers (recorder): not counted as viewers, not capped, never keep a source alive */
  readonly internalReaders = new Set<Reader>();
  graceTimer: NodeJS.Timeout | undefined;
  source: SourceHandle | undefined;
  sourceCloseTimer: NodeJS.Timeout | undefined;
  readonly stream: Stream;
  constructor(
    readonly name: string,
    public settings: PathSettings,
  ) {
    this.stream = new Stream(name, { gopCache: settings.gopCache });
  }
}

/** Byte totals of sessions that have ended, per protocol and path, so counters never go back. */
export interface ClosedTotals {
  bytesIn: number;
  bytesOut: number;
}

/**
 * Path → Stream, with one publisher and many readers per path, plus every session for the API and metrics.
 * Enforces the path policy (allowed names, credentials, one publisher, reader caps), keeps readers through a
 * publisher's grace time, and starts/stops pull sources.
 */
export class PathRegistry {
  readonly paths = new Map<string, PathEntry>();
  readonly sessions = new Map<string, Session>();
  readonly closedTotals = new Map<string, ClosedTotals>();
  framesDroppedClosed = 0;
  /** called after a publisher (or pull source) attached to a path, e.g. to start always-on HLS muxers */
  readonly publishListeners = new Set<(path: string) => void>();
  /**
   * Hooks of egresses whose one bus reader serves many clients (an HLS muxer and its players): each returns the
   * client sessions behind a reader, or undefined for readers that are not its own. See {@link sessionsOf}.
   */
  readonly readerClients = new Set<(reader: Reader) => readonly Session[] | undefined>();
  private startSource: SourceStarter | undefined;

  constructor(
    private policy: PathPolicy,
    startSource?: SourceStarter,
  ) {
    this.startSource = startSource;
  }

  setSourceStarter(s: SourceStarter): void {
    this.startSource = s;
  }

  /** Registers a session for the API/metrics and logs its start. */
  addSession(session: Session): void {
    this.sessions.set(session.id, session);
    log.info(
      { session: session.id, protocol: session.protocol, role: session.role, path: session.path || undefined, remote: redactUrl(session.remoteAddr) },
      'session started',
    );
  }

  /** Forgets a session, keeps its byte counts in the totals and logs its end with the reason. */
  removeSession(session: Session, reason: string): void {
    if (!this.sessions.delete(session.id)) return;
    const key = `${session.protocol}|${session.path}`;
    const t = this.closedTotals.get(key) ?? { bytesIn: 0, bytesOut: 0 };
    t.bytesIn += session.bytesIn;
    t.bytesOut += session.bytesOut;
    this.closedTotals.set(key, t);
    log.info(
      {
        session: session.id,
        protocol: session.protocol,
        role: session.role,
        path: session.path || undefined,
        remote: redactUrl(session.remoteAddr),
        bytesIn: session.bytesIn,
        bytesOut: session.bytesOut,
        durationMs: Date.now() - session.createdAt,
        reason,
      },
      'session ended',
    );
  }

  /** Settings of a path, or NotFoundError when the config does not allow it. */
  settingsOf(path: string): PathSettings {
    const s = this.policy.resolve(path);
    if (!s) throw new NotFoundError(`path '${path}' is not configured`);
    return s;
  }

  /**
   * Makes `session` the publisher of `path`.
   * @throws NotFoundError (path not allowed), AuthError, BusyError (already published and no override)
   */
  async addPublisher(path: string, session: Session, req: Omit<AccessRequest, 'action' | 'path'>): Promise<Stream> {
    const settings = this.settingsOf(path);
    if (settings.source && session.protocol !== 'source') {
      throw new BusyError(`path '${path}' takes its stream from ${redactUrl(settings.source)}, not from publishers`);
    }
    if (session.protocol !== 'source') await this.policy.authorize({ ...req, action: 'publish', path });
    const entry = this.entry(path, settings);
    if (entry.publisher && entry.publisher !== session) {
      if (!settings.overridePublisher) throw new BusyError(`path '${path}' already has a publisher (${entry.publisher.id})`);
      const old = entry.publisher;
      entry.publisher = undefined;
      old.close('another publisher took the path over');
    }
    if (entry.graceTimer) {
      clearTimeout(entry.graceTimer);
      entry.graceTimer = undefined;
    }
    entry.publisher = session;
    session.path = path;
    // its keyframe requests reach this publisher only while it is the path's publisher
    const kf = session.requestKeyframe;
    entry.stream.setKeyframeHandler(kf ? (reason) => kf.call(session, reason) : undefined);
    for (const l of this.publishListeners) {
      try {
        l(path);
      } catch (err) {
        log.error({ path, err: err instanceof Error ? err.message : String(err) }, 'publish listener failed');
      }
    }
    return entry.stream;
  }

  /** The publisher left: readers wait for it during the grace time, then close. */
  removePublisher(session: Session): void {
    const entry = this.paths.get(session.path);
    if (!entry || entry.publisher !== session) return;
    entry.publisher = undefined;
    entry.stream.publisherGone();
    const grace = entry.settings.publisherGraceMs;
    if (entry.readers.size + entry.internalReaders.size > 0 && grace > 0) {
      entry.graceTimer = setTimeout(() => {
        entry.graceTimer = undefined;
        if (!entry.publisher) this.closeReaders(entry, 'publisher gone');
        this.maybeForget(entry);
      }, grace);
      entry.graceTimer.unref();
    } else {
      this.closeReaders(entry, 'publisher gone');
    }
    this.maybeForget(entry);
  }

  /**
   * Attaches a reader to `path`. The sink is started as soon as the stream's tracks are known — at once with
   * the GOP cache when the stream is live, later when a pull source or a returning publisher brings it up.
   * @throws NotFoundError (not allowed, or nobody publishing), AuthError, BusyError (reader cap)
   */
  async addReader(
    path: string,
    session: Session,
    sink: FrameSink,
    req: Omit<AccessRequest, 'action' | 'path'>,
    opts: { catchUp?: boolean; internal?: boolean } = {},
  ): Promise<Reader> {
    const settings = this.settingsOf(path);
    const internal = opts.internal === true;
    if (!internal) await this.policy.authorize({ ...req, action: 'read', path });
    const existing = this.paths.get(path);
    const live = existing !== undefined && (existing.publisher !== undefined || existing.graceTimer !== undefined);
    if (!live && !settings.source) throw new NotFoundError(`no one is publishing to path '${path}'`);
    const entry = this.entry(path, settings);
    if (!internal) this.assertReaderRoom(path);
    session.path = path;
    const reader = new Reader(session, sink, settings.readerLimits);
    reader.catchUp = opts.catchUp === true;
    reader.onClose = () => this.detachReader(entry, reader);
    (internal ? entry.internalReaders : entry.readers).add(reader);
    if (entry.sourceCloseTimer) {
      clearTimeout(entry.sourceCloseTimer);
      entry.sourceCloseTimer = undefined;
    }
    this.ensureSource(entry);
    entry.stream.addReader(reader);
    if (!entry.stream.ready) {
      // a reader of a path that is not up yet (on-demand source starting, publisher in its grace time) waits,
      // but not forever
      const limit = entry.graceTimer ? settings.publisherGraceMs : settings.sourceOnDemandStartTimeoutMs;
      setTimeout(() => {
        if (!reader.closed && !entry.stream.ready) reader.close(`path '${path}' did not become ready within ${limit} ms`);
      }, limit).unref();
    }
    return reader;
  }

  /**
   * Waits until `path` has tracks (starting an on-demand source if needed), for protocols that must describe
   * the stream before reading it (RTSP DESCRIBE, WebRTC offers, HLS init segments).
   * @throws NotFoundError when nobody publishes and no source comes up within the start timeout
   */
  async waitReady(path: string, req: Omit<AccessRequest, 'action' | 'path'>, timeoutMs?: number): Promise<Stream> {
    const settings = this.settingsOf(path);
    await this.policy.authorize({ ...req, action: 'read', path });
    const existing = this.paths.get(path);
    if (existing?.stream.ready) return existing.stream;
    const live = existing !== undefined && (existing.publisher !== undefined || existing.graceTimer !== undefined);
    if (!live && !settings.source) throw new NotFoundError(`no one is publishing to path '${path}'`);
    const entry = this.entry(path, settings);
    this.ensureSource(entry);
    const limit = timeoutMs ?? settings.sourceOnDemandStartTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        entry.stream.whenReady(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new NotFoundError(`path '${path}' did not become ready within ${limit} ms`)), limit);
          timer.unref();
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (entry.readers.size === 0) this.scheduleSourceClose(entry);
    }
    return entry.stream;
  }

  /**
   * A reader of `path` needs a keyframe: asks the path's publisher through its Stream (see
   * `Stream.requestKeyframe`: counted, rate-limited per path, dropped when the publisher cannot act).
   * @returns true when the request was passed up to the publisher
   */
  requestKeyframe(path: string, reason: string): boolean {
    return this.paths.get(path)?.stream.requestKeyframe(reason) ?? false;
  }

  /** Detaches a reader (its session ended). */
  removeReader(reader: Reader): void {
    const entry = this.paths.get(reader.session.path);
    if (entry) this.detachReader(entry, reader);
  }

  /** Closes every session of a path whose settings changed or that is no longer allowed (config reload). */
  reload(policy: PathPolicy): void {
    this.policy = policy;
    for (const entry of [...this.paths.values()]) {
      const next = policy.resolve(entry.name);
      if (next && JSON.stringify(next) === JSON.stringify(entry.settings)) continue;
      log.info({ path: entry.name }, next ? 'path settings changed: restarting it' : 'path removed from config: closing it');
      this.closePath(entry, 'path configuration changed');
      if (next) {
        entry.settings = next;
        if (next.source && !next.sourceOnDemand) this.ensureSource(entry);
      }
    }
  }

  /** Starts always-on pull sources (paths with `source` and no `sourceOnDemand`); exact path names only. */
  startStaticSources(names: Iterable<string>): void {
    for (const name of names) {
      const settings = this.policy.resolve(name);
      if (settings?.source && !settings.sourceOnDemand) this.ensureSource(this.entry(name, settings));
    }
  }

  /** Closes every path and session (shutdown). */
  closeAll(reason: string): void {
    for (const entry of [...this.paths.values()]) this.closePath(entry, reason);
    for (const s of [...this.sessions.values()]) s.close(reason);
  }

  /**
   * Readers of a path as its `maxReaders` counts them: every client behind a shared reader (the HLS viewers of one
   * muxer) is one reader, like every RTMP or WebRTC player.
   */
  readerCount(path: string): number {
    const entry = this.paths.get(path);
    if (!entry) return 0;
    let n = 0;
    for (const r of entry.readers) n += this.sessionsOf(r).length;
    return n;
  }

  /**
   * @throws BusyError when one more reader would pass the path's `maxReaders` (0: no limit)
   */
  assertReaderRoom(path: string): void {
    const max = this.settingsOf(path).maxReaders;
    if (max > 0 && this.readerCount(path) >= max) throw new BusyError(`path '${path}' has reached its limit of ${max} readers`);
  }

  /**
   * The sessions that read a path through `reader`, for the API's reader lists: the clients a `readerClients` hook
   * names (possibly none), else the reader's own session.
   */
  sessionsOf(reader: Reader): readonly Session[] {
    for (const hook of this.readerClients) {
      const clients = hook(reader);
      if (clients) return clients;
    }
    return [reader.session];
  }

  /** Sum of frames dropped for slow readers, live and ended. */
  framesDropped(): number {
    let n = this.framesDroppedClosed;
    for (const e of this.paths.values()) for (const r of e.readers) n += r.framesDropped;
    return n;
  }

  private closePath(entry: PathEntry, reason: string): void {
    // detach the publisher before its session closes, so removePublisher() does not start a grace timer
    const publisher = entry.publisher;
    entry.publisher = undefined;
    entry.stream.publisherGone();
    const source = entry.source;
    entry.source = undefined;
    source?.close();
    publisher?.close(reason);
    if (entry.graceTimer) clearTimeout(entry.graceTimer);
    entry.graceTimer = undefined;
    if (entry.sourceCloseTimer) clearTimeout(entry.sourceCloseTimer);
    entry.sourceCloseTimer = undefined;
    this.closeReaders(entry, reason);
    this.maybeForget(entry);
  }

  private entry(path: string, settings: PathSettings): PathEntry {
    let e = this.paths.get(path);
    if (!e) {
      e = new PathEntry(path, settings);
      this.paths.set(path, e);
    }
    return e;
  }

  private ensureSource(entry: PathEntry): void {
    const url = entry.settings.source;
    if (!url || entry.source || !this.startSource) return;
    log.info({ path: entry.name, source: redactUrl(url) }, 'starting pull source');
    entry.source = this.startSource(entry.name, url, this);
  }

  private scheduleSourceClose(entry: PathEntry): void {
    if (!entry.source || !entry.settings.sourceOnDemand || entry.sourceCloseTimer) return;
    entry.sourceCloseTimer = setTimeout(() => {
      entry.sourceCloseTimer = undefined;
      if (entry.readers.size > 0) return;
      log.info({ path: entry.name }, 'no readers left: stopping on-demand source');
      entry.source?.close();
      entry.source = undefined;
      this.maybeForget(entry);
    }, entry.settings.sourceOnDemandCloseAfterMs);
    entry.sourceCloseTimer.unref();
  }

  private detachReader(entry: PathEntry, reader: Reader): void {
    if (!entry.readers.delete(reader) && !entry.internalReaders.delete(reader)) return;
    this.framesDroppedClosed += reader.framesDropped;
    entry.stream.removeReader(reader);
    if (entry.readers.size === 0) this.scheduleSourceClose(entry);
    this.maybeForget(entry);
  }

  private closeReaders(entry: PathEntry, reason: string): void {
    for (const r of [...entry.readers, ...entry.internalReaders]) r.close(reason);
  }

  private maybeForget(entry: PathEntry): void {
    if (entry.publisher || entry.readers.size > 0 || entry.internalReaders.size > 0 || entry.graceTimer || entry.source) return;
    if (this.paths.get(entry.name) === entry) this.paths.delete(entry.name);
  }
}

/** A URL for logs: credentials removed. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

/** True for errors the registry throws for a refused request (vs. a bug). */
export function isRefusal(err: unknown): err is StreamgateError {
  return err instanceof NotFoundError || err instanceof AuthError || err instanceof BusyError;
}
