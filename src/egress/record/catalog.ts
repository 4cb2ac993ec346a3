/**
 * The recordings on disk (`GET /v1/recordings`): every `<recordPath>/<path>/<start>.mp4` the recorder wrote, with
 * its start time (from the file name), duration (from the file's movie fragments) and size.
 *
 * Durations come from the files themselves, not from an index, so recordings of an earlier run, a crashed run or a
 * file still being written are all listed the same way. Only the `moov` (timescales) and the `moof` boxes (tfdt,
 * trun) are read, never the media; a growing file is parsed incrementally from where the last listing stopped.
 *
 * Specification: ISO/IEC 14496-12 4.2 (box header, largesize), 8.4.2 (mdhd), 8.3.2 (tkhd), 8.8.3 (trex),
 * 8.8.7 (tfhd), 8.8.8 (trun), 8.8.12 (tfdt).
 */
import { closeSync, fstatSync, openSync, readSync, readdirSync, type Dirent } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { isValidPathName } from '../../config.js';
import { ParseError } from '../../errors.js';

/** One recorded file, as `GET /v1/recordings` lists it (fits api.ts `RecordingSegment`). */
export interface RecordingSegmentInfo {
  /** ISO 8601 wall-clock time of the first frame (UTC) */
  start: string;
  /** media time covered by the complete fragments on disk */
  durationMs: number;
  /** file size now */
  bytes: number;
  /** where a player fetches it: relative to the API origin (`/v1/recordings/<path>/<file>`) */
  url: string;
}

/** The recordings of one path (fits api.ts `RecordingInfo`). */
export interface RecordingPathInfo {
  path: string;
  segments: RecordingSegmentInfo[];
}

/** URL prefix the playback handler is mounted at (api.ts routes `/v1/recordings/*` to it). */
export const PLAYBACK_URL_PREFIX = '/v1/recordings/';

/**
 * File names: the UTC start time to the millisecond, `YYYY-MM-DD_HH-MM-SS-mmm.mp4` (mediamtx's default
 * `%Y-%m-%d_%H-%M-%S-%f` pattern, but in UTC so a name means one instant across time zones and DST changes).
 * A `-N` suffix separates two files that would start in the same millisecond.
 */
const FILE_NAME = /^(\d{4})-(\d{2})-(\d{2})_(\d{2})-(\d{2})-(\d{2})-(\d{3})(?:-(\d{1,3}))?\.mp4$/;

/** Directories below a record root that can be a path name: one per path segment (path names are short). */
const MAX_PATH_DEPTH = 16;
/**
 * Largest `moov` or `moof` read to find timings. Ours are a few KB (a moof has 16 bytes per sample: 5 s of 60 fps
 * video + audio is ~10 KB); a bigger one is not a recording of ours and is skipped rather than read into memory.
 */
export const MAX_INDEX_BOX_BYTES = 4 * 1024 * 1024;

/** `YYYY-MM-DD_HH-MM-SS-mmm.mp4` (UTC) for a start time, with `-N` when `attempt` > 0. */
export function recordingFileName(startMs: number, attempt = 0): string {
  const d = new Date(startMs);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const stamp =
    `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}_` +
    `${p(d.getUTCHours())}-${p(d.getUTCMinutes())}-${p(d.getUTCSeconds())}-${p(d.getUTCMilliseconds(), 3)}`;
  return attempt > 0 ? `${stamp}-${attempt}.mp4` : `${stamp}.mp4`;
}

/** The start time (ms since the epoch) a recording file name encodes, or null when it is not one of ours. */
export function parseRecordingFileName(name: string): number | null {
  const m = FILE_NAME.exec(name);
  if (!m) return null;
  const [y, mo, d, h, mi, s, ms] = m.slice(1, 8).map(Number) as [number, number, number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  const back = new Date(t);
  // reject names like 2024-02-31 that Date.UTC would roll over into March
  if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) return null;
  return t;
}

// ---------------------------------------------------------------------------------------------------------------
// Box parsing (pure)

/** A box header: `size` includes the header; `headerSize` is 8, or 16 with a 64-bit largesize. */
export interface BoxHeader {
  type: string;
  size: number;
  headerSize: number;
}

/**
 * Reads a box header at `offset` of `buf`. `size` 0 ("to the end of the file") is returned as `remaining`.
 * @returns null when fewer header bytes than needed are available
 * @throws ParseError on a size smaller than its header
 */
export function readBoxHeader(buf: Uint8Array, offset: number, remaining = buf.byteLength - offset): BoxHeader | null {
  if (buf.byteLength - offset < 8) return null;
  const dv = new DataView(buf.buffer, buf.byteOffset + offset, buf.byteLength - offset);
  let size = dv.getUint32(0);
  const type = String.fromCharCode(buf[offset + 4]!, buf[offset + 5]!, buf[offset + 6]!, buf[offset + 7]!);
  let headerSize = 8;
  if (size === 1) {
    if (buf.byteLength - offset < 16) return null;
    size = dv.getUint32(8) * 0x100000000 + dv.getUint32(12);
    headerSize = 16;
  } else if (size === 0) {
    size = remaining;
  }
  if (size < headerSize) throw new ParseError('mp4', `box '${type}' has size ${size}`, offset);
  return { type, size, headerSize };
}

/** Children of a container box's payload: [type, payload view] pairs. */
function children(payload: Uint8Array): [string, Uint8Array][] {
  const out: [string, Uint8Array][] = [];
  let pos = 0;
  while (pos + 8 <= payload.byteLength) {
    const h = readBoxHeader(payload, pos, payload.byteLength - pos);
    if (h === null || pos + h.size > payload.byteLength) throw new ParseError('mp4', `box '${h?.type ?? '?'}' overruns its parent`, pos);
    out.push([h.type, payload.subarray(pos + h.headerSize, pos + h.size)]);
    pos += h.size;
  }
  return out;
}

function need(b: Uint8Array, n: number, what: string): DataView {
  if (b.byteLength < n) throw new ParseError('mp4', `${what} is ${b.byteLength} bytes, needs ${n}`);
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** What the `moov` says about each track: its timescale and the trex default sample duration. */
export interface MovieTrackInfo {
  timescale: number;
  defaultSampleDuration: number;
}

/**
 * Parses a `moov` payload into track_ID → timescale (mdhd) and default sample duration (trex).
 * @throws ParseError on truncated boxes
 */
export function parseMoovTracks(moov: Uint8Array): Map<number, MovieTrackInfo> {
  const out = new Map<number, MovieTrackInfo>();
  const trex = new Map<number, number>();
  for (const [type, body] of children(moov)) {
    if (type === 'trak') {
      let id = -1;
      let timescale = 0;
      for (const [t, b] of children(body)) {
        if (t === 'tkhd') {
          const dv = need(b, 4, 'tkhd');
          const version = dv.getUint8(0);
          // version 1 has 64-bit creation/modification times before track_ID
          const at = version === 1 ? 20 : 12;
          id = need(b, at + 4, 'tkhd').getUint32(at);
        } else if (t === 'mdia') {
          for (const [mt, mb] of children(b)) {
            if (mt !== 'mdhd') continue;
            const version = need(mb, 4, 'mdhd').getUint8(0);
            const at = version === 1 ? 20 : 12;
            timescale = need(mb, at + 4, 'mdhd').getUint32(at);
          }
        }
      }
      if (id >= 0 && timescale > 0) out.set(id, { timescale, defaultSampleDuration: 0 });
    } else if (type === 'mvex') {
      for (const [t, b] of children(body)) {
        if (t !== 'trex') continue;
        const dv = need(b, 24, 'trex');
        trex.set(dv.getUint32(4), dv.getUint32(12));
      }
    }
  }
  for (const [id, d] of trex) {
    const info = out.get(id);
    if (info) info.defaultSampleDuration = d;
  }
  return out;
}

/** One track's run in a movie fragment: its decode time span in the track's timescale. */
export interface FragmentRun {
  trackId: number;
  /** tfdt baseMediaDecodeTime */
  start: number;
  /** start + the sum of the sample durations */
  end: number;
}

const TFHD_DEFAULT_DURATION = 0x000008;
const TRUN_DATA_OFFSET = 0x000001;
const TRUN_FIRST_SAMPLE_FLAGS = 0x000004;
const TRUN_DURATION = 0x000100;
const TRUN_SIZE = 0x000200;
const TRUN_FLAGS = 0x000400;
const TRUN_CTS = 0x000800;

/**
 * Parses a `moof` payload into per-track decode time spans (tfdt + trun durations; tfhd, then the trex default
 * from `defaults`, when a trun carries no durations). Trafs without tfdt are skipped: their start is unknown.
 * @throws ParseError on truncated boxes
 */
export function parseMoofRuns(moof: Uint8Array, defaults: ReadonlyMap<number, MovieTrackInfo>): FragmentRun[] {
  const out: FragmentRun[] = [];
  for (const [type, traf] of children(moof)) {
    if (type !== 'traf') continue;
    let trackId = -1;
    let tfhdDuration = 0;
    let start: number | undefined;
    let total = 0;
    for (const [t, b] of children(traf)) {
      if (t === 'tfhd') {
        const dv = need(b, 8, 'tfhd');
        const flags = dv.getUint32(0) & 0xffffff;
        trackId = dv.getUint32(4);
        if (flags & TFHD_DEFAULT_DURATION) {
          // optional fields before it: base_data_offset (8, flag 0x1), sample_description_index (4, flag 0x2)
          const at = 8 + (flags & 0x1 ? 8 : 0) + (flags & 0x2 ? 4 : 0);
          tfhdDuration = need(b, at + 4, 'tfhd').getUint32(at);
        }
      } else if (t === 'tfdt') {
        const dv = need(b, 8, 'tfdt');
        start = dv.getUint8(0) === 1 ? need(b, 12, 'tfdt').getUint32(4) * 0x100000000 + dv.getUint32(8) : dv.getUint32(4);
      } else if (t === 'trun') {
        const dv = need(b, 8, 'trun');
        const flags = dv.getUint32(0) & 0xffffff;
        const count = dv.getUint32(4);
        let pos = 8 + (flags & TRUN_DATA_OFFSET ? 4 : 0) + (flags & TRUN_FIRST_SAMPLE_FLAGS ? 4 : 0);
        const per = (flags & TRUN_DURATION ? 4 : 0) + (flags & TRUN_SIZE ? 4 : 0) + (flags & TRUN_FLAGS ? 4 : 0) + (flags & TRUN_CTS ? 4 : 0);
        if (flags & TRUN_DURATION) {
          need(b, pos + per * count, 'trun');
          for (let i = 0; i < count; i++, pos += per) total += dv.getUint32(pos);
        } else {
          const d = tfhdDuration || (defaults.get(trackId)?.defaultSampleDuration ?? 0);
          total += d * count;
        }
      }
    }
    if (trackId >= 0 && start !== undefined) out.push({ trackId, start, end: start + total });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Incremental file scan (sync I/O: the API's recordings callback is synchronous)

/** What is known of one file; kept between listings so a growing file is only parsed from where it stopped. */
interface FileScan {
  /** bytes parsed: the start of the first box not yet complete */
  offset: number;
  size: number;
  mtimeMs: number;
  tracks: Map<number, MovieTrackInfo>;
  /** per track: earliest start, latest end (track timescale) */
  spans: Map<number, { start: number; end: number }>;
  /** runs of the last moof, counted once its mdat is complete (a crash can cut the mdat short) */
  pendingRuns: FragmentRun[];
  /** a box could not be parsed: stop at it (the duration covers what came before) */
  broken: boolean;
}

function newScan(): FileScan {
  return { offset: 0, size: 0, mtimeMs: 0, tracks: new Map(), spans: new Map(), pendingRuns: [], broken: false };
}

/** Parses the boxes of `fd` that were completed since the last scan. */
function advance(scan: FileScan, fd: number, size: number): void {
  const header = new Uint8Array(16);
  while (!scan.broken && scan.offset + 8 <= size) {
    const n = readSync(fd, header, 0, 16, scan.offset);
    let h: BoxHeader | null;
    try {
      h = readBoxHeader(header.subarray(0, n), 0, size - scan.offset);
    } catch {
      scan.broken = true;
      return;
    }
    if (h === null || scan.offset + h.size > size) return; // box still being written (or cut by a crash)
    if ((h.type === 'moov' || h.type === 'moof') && h.size - h.headerSize <= MAX_INDEX_BOX_BYTES) {
      const body = new Uint8Array(h.size - h.headerSize);
      readSync(fd, body, 0, body.byteLength, scan.offset + h.headerSize);
      try {
        if (h.type === 'moov') scan.tracks = parseMoovTracks(body);
        else scan.pendingRuns = parseMoofRuns(body, scan.tracks);
      } catch {
        scan.broken = true;
        return;
      }
    } else if (h.type === 'mdat') {
      for (const r of scan.pendingRuns) {
        const s = scan.spans.get(r.trackId);
        if (!s) scan.spans.set(r.trackId, { start: r.start, end: r.end });
        else {
          s.start = Math.min(s.start, r.start);
          s.end = Math.max(s.end, r.end);
        }
      }
      scan.pendingRuns = [];
    }
    scan.offset += h.size;
  }
}

/** Longest track span in milliseconds. */
function durationOf(scan: FileScan): number {
  let ms = 0;
  for (const [id, s] of scan.spans) {
    const ts = scan.tracks.get(id)?.timescale;
    if (ts) ms = Math.max(ms, ((s.end - s.start) * 1000) / ts);
  }
  return Math.round(ms);
}

/**
 * Lists recordings from disk. `roots` are the record directories to look in (every `recordPath` in use); a path's
 * files are `<root>/<path>/<name>.mp4`. Results are cached per file by size and mtime.
 * Not safe against a root that holds millions of files: each listing reads every directory under the roots.
 */
export class RecordingCatalog {
  private readonly scans = new Map<string, FileScan>();

  constructor(
    private readonly roots: () => Iterable<string>,
    private readonly urlPrefix = PLAYBACK_URL_PREFIX,
  ) {}

  /** Every path with at least one recording, sorted by name; segments sorted by start time. */
  list(): RecordingPathInfo[] {
    const byPath = new Map<string, RecordingSegmentInfo[]>();
    const seen = new Set<string>();
    for (const root of this.uniqueRoots()) {
      for (const { path, dir } of pathDirs(root)) {
        for (const name of safeReaddir(dir)) {
          if (!name.isFile()) continue;
          const startMs = parseRecordingFileName(name.name);
          if (startMs === null) continue;
          const file = join(dir, name.name);
          const info = this.fileInfo(file);
          if (info === null) continue;
          seen.add(file);
          let list = byPath.get(path);
          if (!list) byPath.set(path, (list = []));
          // the same path under two roots lists both; the URL then serves the first root's file of that name
          list.push({
            start: new Date(startMs).toISOString(),
            durationMs: info.durationMs,
            bytes: info.bytes,
            url: `${this.urlPrefix}${path}/${name.name}`,
          });
        }
      }
    }
    for (const f of this.scans.keys()) if (!seen.has(f)) this.scans.delete(f);
    return [...byPath.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([path, segments]) => ({ path, segments: segments.sort(bySegmentOrder) }));
  }

  /**
   * The file on disk for a playback URL's `<path>/<name>`, or null when there is none. Both parts are validated
   * (path name rules, the recording name pattern) before they touch the file system, so `..`, absolute paths,
   * encoded separators and NUL bytes never reach it.
   */
  locate(path: string, name: string): string | null {
    if (!isValidPathName(path) || parseRecordingFileName(name) === null) return null;
    for (const root of this.uniqueRoots()) {
      const base = resolve(root);
      const file = resolve(base, ...path.split('/'), name);
      if (!file.startsWith(base + sep)) continue;
      try {
        const fd = openSync(file, 'r');
        try {
          if (fstatSync(fd).isFile()) return file;
        } finally {
          closeSync(fd);
        }
      } catch {
        // not under this root
      }
    }
    return null;
  }

  /** Duration and size of one file (parsing only what was appended since the last call); null if unreadable. */
  fileInfo(file: string): { durationMs: number; bytes: number } | null {
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      return null;
    }
    try {
      const st = fstatSync(fd);
      let scan = this.scans.get(file);
      if (!scan || st.size < scan.size || (st.size === scan.size && st.mtimeMs !== scan.mtimeMs)) {
        scan = newScan();
        this.scans.set(file, scan);
      }
      if (st.size !== scan.size || st.mtimeMs !== scan.mtimeMs) {
        advance(scan, fd, st.size);
        scan.size = st.size;
        scan.mtimeMs = st.mtimeMs;
      }
      return { durationMs: durationOf(scan), bytes: st.size };
    } catch {
      return null;
    } finally {
      closeSync(fd);
    }
  }

  private uniqueRoots(): string[] {
    return [...new Set([...this.roots()].map((r) => resolve(r)))];
  }
}

/** By start time; files of the same millisecond by name (`-N` suffixes in creation order). */
function bySegmentOrder(a: RecordingSegmentInfo, b: RecordingSegmentInfo): number {
  if (a.start !== b.start) return a.start < b.start ? -1 : 1;
  return a.url.length - b.url.length || (a.url < b.url ? -1 : a.url > b.url ? 1 : 0);
}

function safeReaddir(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

/** Every directory under `root` whose relative name is a valid path name (depth-first, bounded depth). */
function pathDirs(root: string): { path: string; dir: string }[] {
  const out: { path: string; dir: string }[] = [];
  const walk = (dir: string, path: string, depth: number): void => {
    if (depth > MAX_PATH_DEPTH) return;
    for (const e of safeReaddir(dir)) {
      if (!e.isDirectory()) continue;
      const p = path === '' ? e.name : `${path}/${e.name}`;
      if (!isValidPathName(p)) continue;
      out.push({ path: p, dir: join(dir, e.name) });
      walk(join(dir, e.name), p, depth + 1);
    }
  };
  walk(root, '', 1);
  return out;
}
