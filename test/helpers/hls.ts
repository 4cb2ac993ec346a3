import { createRequire } from 'node:module';
import type { HlsServerOptions } from '../../src/egress/hls/server.js';

/** Reading HLS playlists with m3u8-parser (an independent parser), and the HLS server settings the tests share. */

/** One LL-HLS part as m3u8-parser reports it. */
export interface ParsedPart {
  uri: string;
  duration: number;
  independent?: boolean;
}

/** The fields of m3u8-parser's manifest the tests read. */
export interface ParsedManifest {
  targetDuration: number;
  mediaSequence: number;
  segments: { uri: string; duration: number; map?: { uri: string }; parts?: ParsedPart[] }[];
  partInf?: { partTarget: number };
  serverControl?: { canBlockReload?: boolean; partHoldBack?: number; canSkipUntil?: number };
  preloadSegment?: { parts?: ParsedPart[]; preloadHints?: { uri: string }[] };
  playlists?: { uri: string; attributes: Record<string, unknown> }[];
  skip?: { skippedSegments: number };
}

const require = createRequire(import.meta.url);
const { Parser } = require('m3u8-parser') as { Parser: new () => { push(s: string): void; end(): void; manifest: ParsedManifest } };

/** A playlist's text parsed by m3u8-parser. */
export function parseM3u8(text: string): ParsedManifest {
  const p = new Parser();
  p.push(text);
  p.end();
  return p.manifest;
}

/** An LL-HLS server on an ephemeral loopback port: 1 s segments of 200 ms parts, 7 listed, muxers kept a minute. */
export const TEST_HLS_SERVER: Omit<HlsServerOptions, 'paths'> = {
  host: '127.0.0.1',
  port: 0,
  variant: 'lowLatency',
  segmentMinDurationMs: 1000,
  partDurationMs: 200,
  segmentCount: 7,
  muxerCloseAfterMs: 60_000,
};
