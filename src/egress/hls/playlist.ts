/**
 * Pure writers of HLS playlists: the multivariant playlist and live media playlists with the Low-Latency HLS
 * tags. Input is a plain description (built by the segmenter); output is the playlist text.
 *
 * Specification: draft-pantos-hls-rfc8216bis (4.4.3 media playlist tags, 4.4.4 segment tags, 4.4.5 media
 * metadata tags, 4.4.6 multivariant tags, 6.2.5.1 delta updates), Apple HLS authoring specification §14.
 */

/** One Partial Segment (EXT-X-PART). */
export interface PlaylistPart {
  uri: string;
  /** seconds; at most the part target */
  duration: number;
  /** starts with a keyframe: INDEPENDENT=YES */
  independent: boolean;
}

/**
 * One Media Segment. The last entry of a live low-latency playlist may be the segment still being built: it has
 * parts but no `uri` yet (only its EXT-X-PART lines are written).
 */
export interface PlaylistSegment {
  /** absent for the in-progress parent segment */
  uri?: string;
  /** seconds (EXTINF); for the in-progress segment, the sum of its parts so far */
  duration: number;
  /** URI of the initialization section (EXT-X-MAP), written when it differs from the previous segment's */
  mapUri?: string;
  /** wall-clock time of the segment's first sample, ms since the epoch (EXT-X-PROGRAM-DATE-TIME) */
  programDateTimeMs?: number;
  /** EXT-X-DISCONTINUITY before this segment (new encoding parameters) */
  discontinuity?: boolean;
  /** EXT-X-PART lines written before the segment's EXTINF; omit for segments outside the part window */
  parts?: readonly PlaylistPart[];
}

/** Low-Latency HLS parameters of a media playlist. */
export interface LowLatencyParams {
  /** PART-TARGET in seconds; constant for the life of the playlist */
  partTarget: number;
  /** URI of the next part (EXT-X-PRELOAD-HINT TYPE=PART), when known */
  preloadHintUri?: string;
}

/** Description of a live or finished media playlist. */
export interface MediaPlaylist {
  /** EXT-X-TARGETDURATION in whole seconds; constant for the life of the playlist */
  targetDuration: number;
  /** Media Sequence Number of `segments[0]`; never decreases */
  mediaSequence: number;
  /** EXT-X-DISCONTINUITY-SEQUENCE; written when not 0 */
  discontinuitySequence?: number;
  /** the server supports `_HLS_msn`/`_HLS_part` (CAN-BLOCK-RELOAD=YES) */
  canBlockReload?: boolean;
  /** when set, CAN-SKIP-UNTIL (seconds, raised to at least 6× the target duration) and delta updates */
  canSkipUntil?: number;
  lowLatency?: LowLatencyParams;
  /** oldest first */
  segments: readonly PlaylistSegment[];
  /** the stream ended: EXT-X-ENDLIST */
  endList?: boolean;
  /** EXT-X-INDEPENDENT-SEGMENTS: every segment starts with a keyframe */
  independentSegments?: boolean;
}

/** Options of {@link writeMediaPlaylist}. */
export interface WriteMediaOptions {
  /**
   * `_HLS_skip=YES`: write a Playlist Delta Update (6.2.5.1). Ignored when the playlist has no `canSkipUntil` or
   * has ended (6.2.5.1: "A Server MUST ignore the _HLS_skip directive if ...").
   */
  skip?: boolean;
  /** appended to every URI as a query string (e.g. `'s=abc'` for a session id); no leading `?` */
  uriQuery?: string;
}

/** Digits after the decimal point of durations: 10 µs resolution, as Apple's examples (`0.33334`). */
const DECIMALS = 5;
const SCALE = 10 ** DECIMALS;

/** A decimal-floating-point value rounded to {@link DECIMALS} digits. */
export function formatDecimal(seconds: number): string {
  return seconds.toFixed(DECIMALS);
}

/** `v` rounded UP to {@link DECIMALS} digits, so a written minimum is never below its exact value. */
function formatCeil(v: number): string {
  return (Math.ceil(v * SCALE - 1e-6) / SCALE).toFixed(DECIMALS);
}

/** A quoted-string attribute value: `"` and line breaks cannot appear in it (4.2). */
function quoted(s: string): string {
  if (/["\r\n]/.test(s)) throw new RangeError(`attribute value ${JSON.stringify(s)} cannot be a quoted-string`);
  return `"${s}"`;
}

function withQuery(uri: string, query: string | undefined): string {
  if (!query) return uri;
  return `${uri}${uri.includes('?') ? '&' : '?'}${query}`;
}

/**
 * The smallest EXT-X-VERSION the playlist needs (6.2.1: "SHOULD NOT be greater than what is required"):
 * 3 for decimal EXTINF, 6 for EXT-X-MAP without I-frames-only, 9 for EXT-X-SKIP (8).
 */
function requiredVersion(p: MediaPlaylist, skipping: boolean): number {
  if (skipping) return 9;
  if (p.segments.some((s) => s.mapUri !== undefined)) return 6;
  return 3;
}

/** How many leading complete segments a delta update replaces with EXT-X-SKIP (6.2.5.1, 4.4.3.8). */
export function skippedSegmentCount(p: MediaPlaylist, skipBoundary: number): number {
  // "Media Segments that are further from the end of the last (Parent) Media Segment in the Playlist than the
  // Skip Boundary": distance from a segment's start to the end of the last complete segment.
  const complete = p.segments.filter((s) => s.uri !== undefined);
  let end = 0;
  for (const s of complete) end += s.duration;
  let start = 0;
  let n = 0;
  for (const s of complete) {
    if (end - start > skipBoundary + 1e-9) n++;
    else break;
    start += s.duration;
  }
  return n;
}

/** CAN-SKIP-UNTIL actually advertised: at least six Target Durations (4.4.3.8). */
function skipBoundaryOf(p: MediaPlaylist): number | undefined {
  return p.canSkipUntil === undefined ? undefined : Math.max(p.canSkipUntil, 6 * p.targetDuration);
}

/**
 * Writes a media playlist. Parts are written for the segments that carry them; PART-HOLD-BACK is three times the
 * (written) part target, CAN-SKIP-UNTIL at least six target durations.
 * @throws RangeError when a URI cannot be quoted.
 */
export function writeMediaPlaylist(p: MediaPlaylist, opts: WriteMediaOptions = {}): string {
  const q = opts.uriQuery;
  const skipBoundary = skipBoundaryOf(p);
  const skipped = opts.skip && skipBoundary !== undefined && !p.endList ? skippedSegmentCount(p, skipBoundary) : 0;
  const lines: string[] = ['#EXTM3U', `#EXT-X-VERSION:${requiredVersion(p, skipped > 0)}`];
  lines.push(`#EXT-X-TARGETDURATION:${p.targetDuration}`);
  if (p.independentSegments) lines.push('#EXT-X-INDEPENDENT-SEGMENTS');
  if (p.canBlockReload || skipBoundary !== undefined || p.lowLatency) {
    const attrs: string[] = [];
    if (p.canBlockReload) attrs.push('CAN-BLOCK-RELOAD=YES');
    if (skipBoundary !== undefined) attrs.push(`CAN-SKIP-UNTIL=${formatDecimal(skipBoundary)}`);
    if (p.lowLatency) {
      // Apple HLS authoring spec 14.3: PART-HOLD-BACK at least three times the Part Target Duration
      const target = Number(formatDecimal(p.lowLatency.partTarget));
      attrs.push(`PART-HOLD-BACK=${formatCeil(3 * target)}`);
    }
    lines.push(`#EXT-X-SERVER-CONTROL:${attrs.join(',')}`);
  }
  if (p.lowLatency) lines.push(`#EXT-X-PART-INF:PART-TARGET=${formatDecimal(p.lowLatency.partTarget)}`);
  lines.push(`#EXT-X-MEDIA-SEQUENCE:${p.mediaSequence}`);
  if (p.discontinuitySequence) lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${p.discontinuitySequence}`);
  if (skipped > 0) lines.push(`#EXT-X-SKIP:SKIPPED-SEGMENTS=${skipped}`);

  let lastMap: string | undefined;
  for (let i = 0; i < p.segments.length; i++) {
    const s = p.segments[i] as PlaylistSegment;
    if (i < skipped) {
      if (s.mapUri !== undefined) lastMap = s.mapUri;
      continue;
    }
    if (s.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
    // a delta update keeps the client's earlier EXT-X-MAP; a MAP is written only where it changes
    if (s.mapUri !== undefined && s.mapUri !== lastMap) {
      lines.push(`#EXT-X-MAP:URI=${quoted(withQuery(s.mapUri, q))}`);
      lastMap = s.mapUri;
    }
    if (s.programDateTimeMs !== undefined) lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(s.programDateTimeMs).toISOString()}`);
    for (const part of s.parts ?? []) {
      let line = `#EXT-X-PART:DURATION=${formatDecimal(part.duration)},URI=${quoted(withQuery(part.uri, q))}`;
      if (part.independent) line += ',INDEPENDENT=YES';
      lines.push(line);
    }
    if (s.uri !== undefined) {
      lines.push(`#EXTINF:${formatDecimal(s.duration)},`);
      lines.push(withQuery(s.uri, q));
    }
  }
  if (p.lowLatency?.preloadHintUri !== undefined && !p.endList) {
    lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI=${quoted(withQuery(p.lowLatency.preloadHintUri, q))}`);
  }
  if (p.endList) lines.push('#EXT-X-ENDLIST');
  return lines.join('\n') + '\n';
}

/** One variant stream of a multivariant playlist (EXT-X-STREAM-INF, 4.4.6.2). */
export interface PlaylistVariant {
  uri: string;
  /** peak segment bit rate, bits per second */
  bandwidth: number;
  /** average segment bit rate, bits per second */
  averageBandwidth?: number;
  /** RFC 6381 codec strings, e.g. `['avc1.64001f', 'mp4a.40.2']` */
  codecs: readonly string[];
  resolution?: { width: number; height: number };
  /** frames per second of the video */
  frameRate?: number;
}

/** Description of a multivariant playlist. */
export interface MultivariantPlaylist {
  variants: readonly PlaylistVariant[];
  /** EXT-X-INDEPENDENT-SEGMENTS: every segment of every variant starts with a keyframe */
  independentSegments?: boolean;
}

/**
 * Writes a multivariant playlist.
 * @throws RangeError when a URI or codec list cannot be quoted.
 */
export function writeMultivariantPlaylist(p: MultivariantPlaylist, opts: { uriQuery?: string } = {}): string {
  const lines = ['#EXTM3U'];
  if (p.independentSegments) lines.push('#EXT-X-INDEPENDENT-SEGMENTS');
  for (const v of p.variants) {
    const attrs = [`BANDWIDTH=${Math.max(1, Math.round(v.bandwidth))}`];
    if (v.averageBandwidth !== undefined) attrs.push(`AVERAGE-BANDWIDTH=${Math.max(1, Math.round(v.averageBandwidth))}`);
    if (v.codecs.length > 0) attrs.push(`CODECS=${quoted(v.codecs.join(','))}`);
    if (v.resolution) attrs.push(`RESOLUTION=${v.resolution.width}x${v.resolution.height}`);
    if (v.frameRate !== undefined && v.frameRate > 0) attrs.push(`FRAME-RATE=${v.frameRate.toFixed(3)}`);
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`);
    lines.push(withQuery(v.uri, opts.uriQuery));
  }
  return lines.join('\n') + '\n';
}
