import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The WebRTC player page (player.html next to this file in the source tree). It is read once from `src/` (the
 * compiled module lives in `dist/src/egress/webrtc/`, tsc does not copy .html files).
 */
const template = readFileSync(fileURLToPath(new URL('../../../../src/egress/webrtc/player.html', import.meta.url)), 'utf8');

/** Escapes text for an HTML text node or attribute. */
function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The player page for `path` (already validated against the path grammar, escaped anyway). */
export function playerPage(path: string): string {
  return template.replaceAll('{{PATH}}', escapeHtml(path));
}
