/**
 * The files a segmenter serves, by name: `init<gen>.mp4`, `seg<msn>.mp4|ts` (a segment is its parts) and, in the
 * low-latency variant, `part<id>.mp4`, where the preload-hinted part is 'pending' until complete (rfc8216bis 6.2.6).
 */
import { mediaExtension, type HlsVariant } from './segmenter-options.js';
import type { SegmentWindow } from './segment-window.js';

/** A served file: its bytes as chunks to write in order (a segment is its parts). */
export interface HlsFile {
  kind: 'init' | 'part' | 'segment';
  contentType: string;
  chunks: readonly Uint8Array[];
  byteLength: number;
}

/** Result of a file lookup. */
export type FileLookup =
  | { status: 'ok'; file: HlsFile }
  /** the preload-hinted part, not complete yet: hold the request until a 'part' event */
  | { status: 'pending' }
  | { status: 'not-found' };

const PART_RE = /^part(\d{1,15})\.(mp4|ts)$/;
const SEGMENT_RE = /^seg(\d{1,15})\.(mp4|ts)$/;
const INIT_RE = /^init(\d{1,9})\.mp4$/;

/** What a lookup needs besides the window. */
export interface FileContext {
  variant: HlsVariant;
  /** the stream has video (fMP4 content type video/mp4, else audio/mp4) */
  video: boolean;
  /** id of the preload-hinted part, or undefined once the stream ended */
  hintedPartId: number | undefined;
}

/**
 * Looks up `name` in `window`.
 * @returns chunks that are views of the retained parts and init segments (never copied)
 */
export function lookupFile(window: SegmentWindow, name: string, ctx: FileContext): FileLookup {
  const ext = mediaExtension(ctx.variant);
  let m = PART_RE.exec(name);
  if (m && m[2] === ext && ctx.variant === 'lowLatency') {
    const id = Number(m[1]);
    const part = window.parts.get(id);
    if (part) return { status: 'ok', file: makeFile('part', [part.data], ctx) };
    if (id === ctx.hintedPartId) return { status: 'pending' };
    return { status: 'not-found' };
  }
  m = SEGMENT_RE.exec(name);
  if (m && m[2] === ext) {
    const seg = window.segmentsByMsn.get(Number(m[1]));
    if (!seg) return { status: 'not-found' };
    return { status: 'ok', file: makeFile('segment', seg.parts.map((p) => p.data), ctx) };
  }
  m = INIT_RE.exec(name);
  if (m && ext === 'mp4') {
    const init = window.inits.get(Number(m[1]));
    if (init) return { status: 'ok', file: makeFile('init', [init], ctx) };
  }
  return { status: 'not-found' };
}

function makeFile(kind: HlsFile['kind'], chunks: Uint8Array[], ctx: FileContext): HlsFile {
  let byteLength = 0;
  for (const c of chunks) byteLength += c.byteLength;
  const contentType = ctx.variant === 'mpegts' ? 'video/mp2t' : ctx.video ? 'video/mp4' : 'audio/mp4';
  return { kind, contentType, chunks, byteLength };
}
