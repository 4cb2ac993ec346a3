/**
 * The wiring of recording: `startRecorder` attaches a {@link PathRecording} to every recording path when it gets a
 * publisher (see recorder.ts).
 */
import { resolve } from 'node:path';
import type { Config } from '../../config.js';
import { resolvePathConf } from '../../config.js';
import { errorMessage } from '../../errors.js';
import { log } from '../../log.js';
import type { FrameSink } from '../../media/bus/reader.js';
import type { AccessRequest } from '../../media/bus/registry.js';
import type { Session } from '../../media/bus/session.js';
import { RecordingCatalog, type RecordingPathInfo } from './catalog.js';
import type { RecordingFragmenterOptions } from './fragmenter.js';
import { PathRecording, type PathRecordingOptions, type RecordingReader } from './path-recording.js';
import { createPlaybackHandler, type PlaybackHandler } from './playback.js';
import { authorizeAsync, type AuthRequest } from '../../auth.js';

// ---------------------------------------------------------------------------------------------------------------
// The recorder: one PathRecording per recording path with a publisher

/**
 * What the recorder needs of the registry (PathRegistry fits): to hear of publishers, to see which paths are live,
 * and to attach readers.
 */
export interface RecorderPaths {
  readonly publishListeners: Set<(path: string) => void>;
  readonly paths: ReadonlyMap<string, { readonly publisher: Session | undefined }>;
  addReader(
    path: string,
    session: Session,
    sink: FrameSink,
    req: Omit<AccessRequest, 'action' | 'path'>,
    opts?: { internal?: boolean },
  ): Promise<RecordingReader>;
}

/** Options of {@link startRecorder}. */
export interface RecorderOptions {
  registry: RecorderPaths;
  /** the live config (read at each publish, so a reload applies to the next publisher) */
  config: () => Config;
  /** file length for every path (tests); default: the path's `recordSegmentDuration` */
  segmentDurationMs?: number;
  /** fragment length; default {@link RECORD_FRAGMENT_DURATION_MS} */
  fragmentDurationMs?: number;
  maxQueueBytes?: number;
}

/** A running recorder. */
export interface Recorder {
  /** Recordings on disk per path, for `GET /v1/recordings` (api.ts `recordings` option). */
  catalog(): RecordingPathInfo[];
  /** Serves `GET /v1/recordings/<path>/<file>.mp4` (api.ts `playback` option). */
  playback: PlaybackHandler;
  /** Paths being recorded now. */
  active(): ReadonlyMap<string, PathRecording>;
  /** After a config reload: stops recordings whose path no longer records, starts those that now do. */
  reload(): void;
  /** Shutdown: stops listening, finishes every open file; resolves when all of them are on disk. */
  closeAll(): Promise<void>;
}

/**
 * Starts recording: every path whose config says `record: true` is recorded from the moment a publisher (or pull
 * source) attaches until the path's readers are closed (publisher gone after its grace time, shutdown).
 *
 * The recorder attaches as an internal reader (`addReader(..., { internal: true })`): it skips read credentials
 * and `maxReaders`, is not listed as a viewer and does not keep an on-demand source alive.
 */
export function startRecorder(opts: RecorderOptions): Recorder {
  const { registry } = opts;
  const active = new Map<string, PathRecording>();
  const finishing = new Set<Promise<void>>();
  /** roots this process wrote to, listed even after the config stops naming them */
  const usedRoots = new Set<string>();
  let stopped = false;

  const confOf = (path: string) => resolvePathConf(opts.config(), path)?.conf;

  const roots = (): string[] => {
    const out = new Set(usedRoots);
    for (const p of Object.values(opts.config().paths ?? {})) if (p.record) out.add(resolve(p.recordPath));
    return [...out];
  };
  const catalog = new RecordingCatalog(roots);

  const begin = (path: string): void => {
    if (stopped) return;
    const conf = confOf(path);
    if (!conf?.record) return;
    const running = active.get(path);
    if (running && !running.closed) return; // a publisher came back within its grace time: same recording
    const root = resolve(conf.recordPath);
    usedRoots.add(root);
    const fragmenter: Partial<RecordingFragmenterOptions> = {};
    fragmenter.segmentDurationMs = opts.segmentDurationMs ?? conf.recordSegmentDuration * 1000;
    if (opts.fragmentDurationMs !== undefined) fragmenter.fragmentDurationMs = opts.fragmentDurationMs;
    const recOpts: PathRecordingOptions = {
      path,
      root,
      fragmenter,
      onDone: (r) => {
        if (active.get(path) === r) active.delete(path);
      },
    };
    if (opts.maxQueueBytes !== undefined) recOpts.maxQueueBytes = opts.maxQueueBytes;
    const rec = new PathRecording(recOpts);
    active.set(path, rec);
    const done = rec.done.then(() => {
      finishing.delete(done);
    });
    finishing.add(done);
    log.info({ path, root }, 'recording started');
    registry.addReader(path, rec.session, rec, { protocol: 'source', ip: '127.0.0.1' }, { internal: true }).then(
      (reader) => {
        rec.reader = reader;
        if (reader.closed) rec.close('reader closed');
        // stopped (shutdown, reload, disk error) while the registry was still attaching it
        else if (rec.closed) reader.close('recording stopped');
      },
      (err: unknown) => {
        log.error({ path, err: errorMessage(err) }, 'recording refused by the path registry: not recorded');
        rec.close('not attached');
      },
    );
  };

  const onPublish = (path: string): void => begin(path);
  registry.publishListeners.add(onPublish);
  // paths already live when the recorder starts
  for (const [name, entry] of registry.paths) if (entry.publisher) begin(name);

  const playback = createPlaybackHandler({
    locate: (path, name) => catalog.locate(path, name),
    authorize: async (req) => {
      const r: AuthRequest = { action: 'playback', path: req.path, ip: req.ip, protocol: 'http' };
      if (req.user !== undefined) r.user = req.user;
      if (req.pass !== undefined) r.pass = req.pass;
      await authorizeAsync(opts.config(), r);
    },
  });

  return {
    catalog: () => catalog.list(),
    playback,
    active: () => active,
    reload() {
      for (const [path, rec] of active) {
        const conf = confOf(path);
        if (!conf?.record || resolve(conf.recordPath) !== rec.root) {
          rec.session.close('recording disabled by a config reload');
        }
      }
      for (const [name, entry] of registry.paths) if (entry.publisher) begin(name);
    },
    async closeAll() {
      stopped = true;
      registry.publishListeners.delete(onPublish);
      for (const rec of [...active.values()]) rec.session.close('server shutting down');
      await Promise.all([...finishing]);
    },
  };
}
