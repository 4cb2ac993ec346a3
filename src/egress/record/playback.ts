/**
 * Playback of recordings over HTTP: `GET|HEAD /v1/recordings/<path>/<file>.mp4`, mounted by the API server.
 * Single byte ranges are honoured (`206` + `Content-Range`, RFC 9110 §14), so players and `<video>` can seek; a
 * file still being written is served as it is at request time (its complete fragments play).
 *
 * Safety: the request names a path and a file; both are validated against the path-name rules and the recording
 * file-name pattern before anything touches the file system (catalog.ts `locate`), so `..`, absolute paths and
 * encoded separators never reach it. Credentials: the `playback` action of auth.ts (HTTP Basic, or `?user=&pass=`).
 */
import { open } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basicChallenge, parseAuthorization } from '../../auth.js';
import { AuthError, errorMessage } from '../../errors.js';
import { log } from '../../log.js';

/** Who asks to play a recording back. */
export interface PlaybackAccess {
  path: string;
  ip: string;
  user?: string;
  pass?: string;
}

/** Options of {@link createPlaybackHandler}. */
export interface PlaybackOptions {
  /** The file for `<path>/<name>`, or null when there is none (catalog.ts `RecordingCatalog.locate`). */
  locate(path: string, name: string): string | null;
  /** Resolves when allowed; rejects with AuthError otherwise. Absent: everyone may play back. */
  authorize?(access: PlaybackAccess): Promise<void>;
}

/**
 * Answers one playback request. `subpath` is what follows `/v1/recordings/` (`live/cam1/2024-…mp4`).
 * Never throws; errors become 4xx/5xx answers.
 */
export type PlaybackHandler = (req: IncomingMessage, res: ServerResponse, subpath: string) => void;

/** An inclusive byte range of a file. */
export interface ByteRange {
  start: number;
  end: number;
}

/** Longest number accepted in a Range header: 15 digits stay below 2^53 (no precision loss). */
const MAX_RANGE_DIGITS = 15;
const RANGE_SPEC = /^(\d*)-(\d*)$/;

/**
 * Interprets a `Range` header for a file of `size` bytes (RFC 9110 §14.1.2, §14.2).
 * @returns the range to serve; `'unsatisfiable'` for a valid range outside the file (416); null to ignore the
 *   header and serve the whole file (absent, another unit, malformed, or several ranges: a server MAY ignore it)
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | null {
  if (header === undefined) return null;
  const eq = header.indexOf('=');
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return null;
  const spec = header.slice(eq + 1).trim();
  if (spec.includes(',')) return null;
  const m = RANGE_SPEC.exec(spec);
  if (!m) return null;
  const [, a = '', b = ''] = m;
  if (a.length > MAX_RANGE_DIGITS || b.length > MAX_RANGE_DIGITS || (a === '' && b === '')) return null;
  if (a === '') {
    // suffix range: the last b bytes
    const n = Number(b);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  if (b !== '' && Number(b) < start) return null; // last-pos before first-pos: invalid, ignored
  if (start >= size) return 'unsatisfiable';
  return { start, end: b === '' ? size - 1 : Math.min(Number(b), size - 1) };
}

/** Headers every playback answer carries: any origin may play (the API is CORS-open too), and see ranges. */
const COMMON_HEADERS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Expose-Headers': 'Content-Range, Content-Length, Accept-Ranges',
  'X-Content-Type-Options': 'nosniff',
} as const;

function sendError(res: ServerResponse, status: number, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: message });
  res.writeHead(status, {
    ...COMMON_HEADERS,
    ...extra,
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** The request's credentials: HTTP Basic, else `?user=&pass=` (as HLS readers pass them). */
function credentials(req: IncomingMessage): { user?: string; pass?: string } {
  const a = parseAuthorization(req.headers.authorization);
  if (a?.scheme === 'basic') return { user: a.user, pass: a.pass };
  const q = new URL(req.url ?? '/', 'http://x').searchParams;
  const out: { user?: string; pass?: string } = {};
  const user = q.get('user');
  const pass = q.get('pass');
  if (user !== null) out.user = user;
  if (pass !== null) out.pass = pass;
  return out;
}

/** Builds the handler the API server mounts at `/v1/recordings/*`. */
export function createPlaybackHandler(opts: PlaybackOptions): PlaybackHandler {
  const serve = async (req: IncomingMessage, res: ServerResponse, subpath: string): Promise<void> => {
    const slash = subpath.lastIndexOf('/');
    const path = slash > 0 ? subpath.slice(0, slash) : '';
    const name = subpath.slice(slash + 1);
    if (opts.authorize) {
      const access: PlaybackAccess = { path, ip: (req.socket.remoteAddress ?? '?').replace(/^::ffff:/, ''), ...credentials(req) };
      try {
        await opts.authorize(access);
      } catch (err) {
        if (err instanceof AuthError) {
          sendError(res, 401, 'playback not allowed', { 'WWW-Authenticate': basicChallenge() });
          return;
        }
        throw err;
      }
    }
    const file = path === '' ? null : opts.locate(path, name);
    if (file === null) {
      sendError(res, 404, 'recording not found');
      return;
    }
    const fh = await open(file, 'r');
    let handedOff = false;
    try {
      const st = await fh.stat();
      const size = st.size;
      const range = parseRange(req.headers.range, size);
      if (range === 'unsatisfiable') {
        sendError(res, 416, 'range not satisfiable', { 'Content-Range': `bytes */${size}` });
        return;
      }
      const headers: Record<string, string | number> = {
        ...COMMON_HEADERS,
        'Content-Type': 'video/mp4',
        'Accept-Ranges': 'bytes',
        // a recording in progress grows: caches must revalidate
        'Cache-Control': 'no-cache',
        'Last-Modified': st.mtime.toUTCString(),
      };
      const start = range?.start ?? 0;
      const end = range?.end ?? size - 1;
      headers['Content-Length'] = size === 0 ? 0 : end - start + 1;
      if (range) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
      res.writeHead(range ? 206 : 200, headers);
      if (req.method === 'HEAD' || size === 0) {
        res.end();
        return;
      }
      // the stream owns the handle from here and closes it when done or destroyed
      const stream = fh.createReadStream({ start, end, autoClose: true });
      handedOff = true;
      stream.on('error', (err) => {
        log.warn({ file, err: errorMessage(err) }, 'playback: read failed');
        res.destroy();
      });
      res.on('close', () => stream.destroy());
      stream.pipe(res);
    } finally {
      if (!handedOff) await fh.close();
    }
  };

  return (req, res, subpath) => {
    serve(req, res, subpath).catch((err: unknown) => {
      log.error({ url: req.url, err: errorMessage(err) }, 'playback: request failed');
      sendError(res, 500, 'internal error');
    });
  };
}
