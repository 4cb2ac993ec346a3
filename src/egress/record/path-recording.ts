/**
 * The bus sink of recording: `PathRecording` applies the {@link RecordingFragmenter}'s file actions to disk
 * through a bounded, serial write queue (see recorder.ts).
 */
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { nanoid } from 'nanoid';
import { errorMessage, LimitError } from '../../errors.js';
import { log } from '../../log.js';
import type { Frame } from '../../media/bus/frame.js';
import type { FrameSink } from '../../media/bus/reader.js';
import type { Session } from '../../media/bus/session.js';
import type { Stream } from '../../media/bus/stream.js';
import { recordingFileName } from './catalog.js';
import { RecordingFragmenter, type RecordAction, type RecordingFragmenterOptions } from './fragmenter.js';

// ---------------------------------------------------------------------------------------------------------------
// Limits

/**
 * Bytes queued for the disk before recording of the path is stopped as failed. 64 MiB ≈ 170 s of a 3 Mbit/s
 * stream: a disk that far behind is broken or full, and waiting longer only grows memory.
 */
export const RECORD_MAX_QUEUE_BYTES = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// The bus sink: applies actions to disk

/** The reader the registry gave the recording (narrow: what the sink calls back). */
export interface RecordingReader {
  readonly closed: boolean;
  close(reason: string): void;
}

/** A file the recorder finished (or is writing). */
export interface RecordedFile {
  file: string;
  startMs: number;
  bytes: number;
  durationMs: number;
}

/** Options of one path's recording. */
export interface PathRecordingOptions {
  path: string;
  /** the record root (`recordPath`): files go to `<root>/<path>/` */
  root: string;
  fragmenter?: Partial<RecordingFragmenterOptions>;
  maxQueueBytes?: number;
  /** called once when the recording ended and every byte is on disk (or it failed) */
  onDone?: (rec: PathRecording) => void;
}

type FileOp =
  | { kind: 'open'; startMs: number; init: Uint8Array; durationOffset: number }
  | { kind: 'write'; data: Uint8Array }
  | { kind: 'close'; durationMs: number };

/**
 * One path's recording: a `FrameSink` on the bus that turns frames into files. Disk writes run one at a time from
 * a queue bounded by `maxQueueBytes`; `bufferedBytes()` is always 0, so the bus never drops frames for the
 * recorder (a recording must not have holes). A disk error or a full queue stops this recording only: it is logged,
 * the open file is closed as it is, and the reader detaches; the stream and its other readers go on.
 */
export class PathRecording implements FrameSink {
  readonly session: Session;
  reader: RecordingReader | undefined;
  /** the file being written, and those finished, in order */
  readonly files: RecordedFile[] = [];
  closed = false;
  failed = false;
  /** resolves when the recording ended and its queue is drained */
  readonly done: Promise<void>;
  private readonly fragmenter: RecordingFragmenter;
  private readonly maxQueueBytes: number;
  private queue: FileOp[] = [];
  private queuedBytes = 0;
  private running = false;
  private fh: FileHandle | undefined;
  private current: RecordedFile | undefined;
  private durationOffset = -1;
  private lastStartMs = -Infinity;
  private resolveDone: () => void = () => undefined;

  constructor(private readonly opts: PathRecordingOptions) {
    this.fragmenter = new RecordingFragmenter(opts.fragmenter);
    this.maxQueueBytes = opts.maxQueueBytes ?? RECORD_MAX_QUEUE_BYTES;
    this.done = new Promise((r) => (this.resolveDone = r));
    const self = this;
    this.session = {
      id: `rec-${nanoid(10)}`,
      protocol: 'source',
      role: 'reader',
      path: opts.path,
      remoteAddr: 'recorder',
      state: 'recording',
      createdAt: Date.now(),
      bytesIn: 0,
      bytesOut: 0,
      stats: () => ({ ...self.fragmenter.stats, file: self.current?.file ?? null }),
      close(reason: string): void {
        if (self.reader && !self.reader.closed) self.reader.close(reason);
        else self.close(reason);
      },
    };
  }

  get path(): string {
    return this.opts.path;
  }

  /** The record root this recording writes under. */
  get root(): string {
    return this.opts.root;
  }

  /** Bus: the stream's tracks are known (or changed). */
  start(stream: Stream): void {
    if (this.closed) return;
    this.apply(() => this.fragmenter.start(stream.tracks));
  }

  /** Bus: one frame (kept by view until its fragment is built; see RecordingFragmenter.push). */
  writeFrame(frame: Frame): void {
    if (this.closed) return;
    // the wall-clock time the frame arrived, not now: the GOP cache replays frames up to a GOP old
    const wallMs = Date.now() - (performance.now() - frame.receivedAtMs);
    this.apply(() => this.fragmenter.push(frame, wallMs));
  }

  /** Always 0: the recorder bounds its own queue and never wants the bus to drop its frames. */
  bufferedBytes(): number {
    return 0;
  }

  /** Bus or shutdown: finish the open file; `done` resolves when it is on disk. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.session.state = 'closed';
    if (!this.failed) {
      try {
        this.enqueue(this.fragmenter.finish());
      } catch (err) {
        this.fail(err);
      }
    }
    log.info({ path: this.opts.path, reason, files: this.files.length }, 'recording stopped');
    this.pump();
  }

  private apply(step: () => RecordAction[]): void {
    if (this.failed) return;
    try {
      this.enqueue(step());
    } catch (err) {
      this.fail(err);
    }
  }

  private enqueue(actions: RecordAction[]): void {
    for (const a of actions) {
      if (this.failed) return;
      if (a.type === 'write') {
        if (this.queuedBytes + a.data.byteLength > this.maxQueueBytes) {
          throw new LimitError('recording bytes waiting for the disk', this.maxQueueBytes, this.queuedBytes + a.data.byteLength);
        }
        this.queuedBytes += a.data.byteLength;
        this.queue.push({ kind: 'write', data: a.data });
      } else if (a.type === 'open') {
        this.queuedBytes += a.init.byteLength;
        this.queue.push({ kind: 'open', startMs: a.startMs, init: a.init, durationOffset: a.durationOffset });
      } else {
        this.queue.push({ kind: 'close', durationMs: a.durationMs });
      }
    }
    this.pump();
  }

  /** Runs queued file operations one at a time. */
  private pump(): void {
    if (this.running) return;
    if (this.queue.length === 0 || this.failed) {
      if (this.closed) this.settle();
      return;
    }
    this.running = true;
    const op = this.queue.shift() as FileOp;
    this.exec(op).then(
      () => {
        this.running = false;
        if (op.kind === 'write') this.queuedBytes -= op.data.byteLength;
        else if (op.kind === 'open') this.queuedBytes -= op.init.byteLength;
        this.pump();
      },
      (err: unknown) => {
        this.running = false;
        this.fail(err);
        this.pump();
      },
    );
  }

  private async exec(op: FileOp): Promise<void> {
    if (op.kind === 'open') {
      const dir = join(this.opts.root, ...this.opts.path.split('/'));
      await mkdir(dir, { recursive: true });
      // names are unique per millisecond; a clash (two files in one ms, a clock set back) gets a -N suffix
      const startMs = Math.max(op.startMs, this.lastStartMs + 1);
      this.lastStartMs = startMs;
      let file = '';
      for (let attempt = 0; ; attempt++) {
        file = join(dir, recordingFileName(startMs, attempt));
        try {
          this.fh = await open(file, 'wx');
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 999) throw err;
        }
      }
      this.current = { file, startMs, bytes: 0, durationMs: 0 };
      this.files.push(this.current);
      this.durationOffset = op.durationOffset;
      await this.writeAll(op.init);
      log.info({ path: this.opts.path, file }, 'recording file started');
    } else if (op.kind === 'write') {
      await this.writeAll(op.data);
    } else {
      const fh = this.fh;
      const cur = this.current;
      this.fh = undefined;
      this.current = undefined;
      if (!fh || !cur) return;
      cur.durationMs = op.durationMs;
      try {
        if (this.durationOffset >= 0) {
          const b = new Uint8Array(4);
          new DataView(b.buffer).setUint32(0, Math.min(op.durationMs, 0xffffffff));
          await fh.write(b, 0, 4, this.durationOffset);
        }
      } finally {
        await fh.close();
      }
      log.info({ path: this.opts.path, file: cur.file, durationMs: cur.durationMs, bytes: cur.bytes }, 'recording file finished');
    }
  }

  private async writeAll(data: Uint8Array): Promise<void> {
    const fh = this.fh;
    const cur = this.current;
    if (!fh || !cur) return;
    let off = 0;
    while (off < data.byteLength) {
      const { bytesWritten } = await fh.write(data, off, data.byteLength - off, cur.bytes + off);
      off += bytesWritten;
    }
    cur.bytes += data.byteLength;
    this.session.bytesOut += data.byteLength;
  }

  /** A disk error (or a full queue): stop this path's recording, keep what is on disk. */
  private fail(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.queue = [];
    this.queuedBytes = 0;
    log.error(
      { path: this.opts.path, file: this.current?.file, err: errorMessage(err) },
      'recording failed: stopped for this path (the stream goes on)',
    );
    const fh = this.fh;
    this.fh = undefined;
    this.current = undefined;
    void fh?.close().catch(() => undefined);
    if (this.reader && !this.reader.closed) this.reader.close(`recording failed: ${errorMessage(err)}`);
    else this.close(`recording failed: ${errorMessage(err)}`);
  }

  private settle(): void {
    if (this.running) return;
    this.session.state = 'closed';
    this.resolveDone();
    const cb = this.opts.onDone;
    this.opts.onDone = undefined;
    cb?.(this);
  }
}
