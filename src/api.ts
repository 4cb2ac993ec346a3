import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from 'find-my-way';
import { errorMessage } from './errors.js';
import { log } from './log.js';
import { redactUrl, type PathEntry, type PathRegistry } from './media/bus/registry.js';
import type { Reader } from './media/bus/reader.js';
import type { Protocol, Role, Session } from './media/bus/session.js';
import type { Codec } from './media/bus/track.js';
import type { KeyframeRequestCounts } from './media/bus/stream.js';
import { closeServer, listen, startBitrateSampler, type BitrateSampler, type RunningServer } from './metrics.js';

/** One recorded segment, as the recorder reports it. */
export interface RecordingSegment {
  /** ISO 8601 start time */
  start: string;
  durationMs?: number;
  bytes?: number;
  /** where a player fetches it (playable URL) */
  url?: string;
}

/** Recorded segments of one path (`GET /v1/recordings`). */
export interface RecordingInfo {
  path: string;
  segments: RecordingSegment[];
}

/** Options of the control API listener. */
export interface ApiServerOptions {
  host?: string;
  port: number;
  registry: PathRegistry;
  /** true when every listener is up (`GET /health`) */
  isHealthy: () => boolean;
  /** recorded segments per path; absent = recording not available (empty list) */
  recordings?: () => RecordingInfo[];
  /** serves `GET|HEAD /v1/recordings/<path>/<file>.mp4` (egress/record/playback.ts); absent = 404 */
  playback?: (req: IncomingMessage, res: ServerResponse, subpath: string) => void;
  /** bitrate sampling period; tests shorten it */
  bitrateIntervalMs?: number;
}

/** Where a path's stream comes from, in `GET /v1/paths`. */
export interface PathSourceJson {
  /** `<protocol>Publisher` for a pushing client, `<scheme>Source` for a pull source (rtspSource, rtmpSource) */
  type: string;
  /** session id, null while a pull source is configured but not connected */
  id: string | null;
  remoteAddr: string | null;
  /** pull URL with the password replaced by *** */
  url?: string;
}

/** A track of a path, in `GET /v1/paths`. */
export interface TrackJson {
  codec: Codec;
  width: number | null;
  height: number | null;
  profile: string | null;
  sampleRate: number | null;
  channels: number | null;
}

/** One path of `GET /v1/paths`. */
export interface PathJson {
  name: string;
  source: PathSourceJson | null;
  ready: boolean;
  tracks: TrackJson[];
  readerCount: number;
  readers: { id: string; protocol: Protocol; remoteAddr: string }[];
  /** media payload bytes that entered the stream (all publishers of this path since it appeared) */
  bytesIn: number;
  /** media payload bytes delivered to the readers attached now */
  bytesOut: number;
  /** media bits per second entering the stream, over the last second */
  bitrateIn: number;
  /** sum of the attached readers' session bitrates */
  bitrateOut: number;
  /** readers' keyframe requests (WebRTC/RTSP PLI, FIR): made, passed up to the publisher (≤ 2/s), unserved (RTMP publisher, none) */
  keyframeRequests: KeyframeRequestCounts;
}

/** One session of `GET /v1/sessions`. */
export interface SessionJson {
  id: string;
  protocol: Protocol;
  role: Role;
  path: string | null;
  remoteAddr: string;
  state: string;
  createdAt: string;
  bytesIn: number;
  bytesOut: number;
  bitrateIn: number;
  bitrateOut: number;
  stats: Record<string, unknown>;
}

/**
 * Describes a path for the API. `sessionsOf` (the registry's) names the clients behind a reader that serves many
 * (an HLS muxer): they are listed, with their bytes and bitrates, instead of the reader.
 */
export function pathJson(entry: PathEntry, sampler: BitrateSampler, sessionsOf: (r: Reader) => readonly Session[] = (r) => [r.session]): PathJson {
  const readers: PathJson['readers'] = [];
  let bytesOut = 0;
  let bitrateOut = 0;
  for (const r of entry.readers) {
    const clients = sessionsOf(r);
    const own = clients.length === 1 && clients[0] === r.session;
    for (const s of clients) {
      readers.push({ id: s.id, protocol: s.protocol, remoteAddr: s.remoteAddr });
      bytesOut += own ? r.bytesSent : s.bytesOut;
      bitrateOut += sampler.session(s.id).bitrateOut;
    }
  }
  return {
    name: entry.name,
    source: sourceJson(entry),
    ready: entry.stream.ready,
    tracks: entry.stream.tracks.map((t) => ({
      codec: t.codec,
      width: t.width ?? null,
      height: t.height ?? null,
      profile: t.profile ?? null,
      sampleRate: t.sampleRate ?? null,
      channels: t.channels ?? null,
    })),
    readerCount: readers.length,
    readers,
    bytesIn: entry.stream.bytesIn,
    bytesOut,
    bitrateIn: sampler.stream(entry.stream),
    bitrateOut,
    keyframeRequests: { ...entry.stream.keyframeRequests },
  };
}

function sourceJson(entry: PathEntry): PathSourceJson | null {
  const pub = entry.publisher;
  const url = entry.settings.source;
  if (pub && pub.protocol !== 'source') {
    return { type: `${pub.protocol}Publisher`, id: pub.id, remoteAddr: pub.remoteAddr };
  }
  if (pub || url) {
    const pullUrl = url ?? pub!.remoteAddr;
    const out: PathSourceJson = {
      type: `${sourceScheme(pullUrl)}Source`,
      id: pub?.id ?? null,
      remoteAddr: pub ? redactUrl(pub.remoteAddr) : null,
    };
    out.url = redactUrl(pullUrl);
    return out;
  }
  return null;
}

function sourceScheme(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*):/i.exec(url);
  // rtsps:// and rtmps:// are the same kinds of source as their plain forms
  return m ? m[1]!.toLowerCase().replace(/s$/, '') : 'unknown';
}

/** Describes a session for the API. */
export function sessionJson(s: Session, sampler: BitrateSampler): SessionJson {
  const rates = sampler.session(s.id);
  let stats: Record<string, unknown> = {};
  if (s.stats) {
    try {
      stats = s.stats();
    } catch (err) {
      stats = { error: errorMessage(err) };
    }
  }
  return {
    id: s.id,
    protocol: s.protocol,
    role: s.role,
    path: s.path === '' ? null : s.path,
    remoteAddr: s.protocol === 'source' ? redactUrl(s.remoteAddr) : s.remoteAddr,
    state: s.state,
    createdAt: new Date(s.createdAt).toISOString(),
    bytesIn: s.bytesIn,
    bytesOut: s.bytesOut,
    bitrateIn: rates.bitrateIn,
    bitrateOut: rates.bitrateOut,
    stats,
  };
}

type Handler = (req: IncomingMessage, res: ServerResponse, params: Record<string, string | undefined>) => void;

/** Methods a route answers; HEAD follows GET, OPTIONS is the CORS preflight. */
type Route = Partial<Record<'GET' | 'DELETE', Handler>>;

const CORS_HEADERS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, HEAD, DELETE, OPTIONS',
  'Access-Control-Allow-Headers': 'Content-Type, Authorization',
  'Access-Control-Max-Age': '600',
} as const;

/** The dashboard runs only its own inline script and talks only to this origin. */
const DASHBOARD_CSP =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'";

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v));
  res.writeHead(status, {
    ...CORS_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function allowOf(route: Route): string {
  const methods = Object.keys(route);
  if (route.GET) methods.push('HEAD');
  methods.push('OPTIONS');
  return methods.join(', ');
}

/**
 * Starts the JSON control API and the dashboard (INTERFACE.md "Control API"):
 * `GET /health`, `GET /v1/paths`, `GET /v1/paths/{path}` (the path may contain `/`, or be URL-encoded),
 * `GET /v1/sessions`, `GET|DELETE /v1/sessions/{id}`, `GET /v1/recordings`, and the dashboard at `/` and
 * `/dashboard`. Every answer is JSON with CORS headers; unknown routes 404, wrong methods 405 with `Allow`,
 * undecodable URLs 400. Reads the registry at request time; never mutates it except for a kick.
 */
export async function startApiServer(opts: ApiServerOptions): Promise<RunningServer> {
  const { registry } = opts;
  const bitrates = startBitrateSampler(registry, opts.bitrateIntervalMs);
  const sampler = bitrates.sampler;
  const routes = Router({
    ignoreTrailingSlash: true,
    ignoreDuplicateSlashes: true,
    // makes find() return a store-less handle for undecodable URLs, answered with 400 below
    onBadUrl: () => undefined,
  });

  const add = (path: string, route: Route): void => {
    // routes are looked up as GET and the method dispatched here, so a wrong method can answer 405
    routes.on('GET', path, () => undefined, route);
  };

  const dashboard: Handler = (_req, res) => {
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'Content-Security-Policy': DASHBOARD_CSP,
      'X-Content-Type-Options': 'nosniff',
      'Content-Length': Buffer.byteLength(DASHBOARD_HTML),
    });
    res.end(DASHBOARD_HTML);
  };
  add('/', { GET: dashboard });
  add('/dashboard', { GET: dashboard });

  add('/health', {
    GET: (_req, res) => {
      const ok = opts.isHealthy();
      sendJson(res, ok ? 200 : 503, { status: ok ? 'ok' : 'unavailable' });
    },
  });

  add('/v1/paths', {
    GET: (_req, res) => {
      const items = [...registry.paths.values()]
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        .map((e) => pathJson(e, sampler, (r) => registry.sessionsOf(r)));
      sendJson(res, 200, { items });
    },
  });

  add('/v1/paths/*', {
    GET: (_req, res, params) => {
      const name = params['*'] ?? '';
      const entry = registry.paths.get(name);
      if (!entry) sendJson(res, 404, { error: `path '${name}' not found` });
      else sendJson(res, 200, pathJson(entry, sampler, (r) => registry.sessionsOf(r)));
    },
  });

  add('/v1/sessions', {
    GET: (_req, res) => {
      sendJson(res, 200, { items: [...registry.sessions.values()].map((s) => sessionJson(s, sampler)) });
    },
  });

  add('/v1/sessions/:id', {
    GET: (_req, res, params) => {
      const s = registry.sessions.get(params['id'] ?? '');
      if (!s) sendJson(res, 404, { error: `session '${params['id'] ?? ''}' not found` });
      else sendJson(res, 200, sessionJson(s, sampler));
    },
    DELETE: (req, res, params) => {
      const id = params['id'] ?? '';
      const s = registry.sessions.get(id);
      if (!s) {
        sendJson(res, 404, { error: `session '${id}' not found` });
        return;
      }
      log.info(
        { session: id, protocol: s.protocol, path: s.path || undefined, by: req.socket.remoteAddress },
        'session kicked by API',
      );
      s.close('kicked by API');
      sendJson(res, 200, { id, kicked: true });
    },
  });

  add('/v1/recordings', {
    GET: (_req, res) => {
      sendJson(res, 200, { items: opts.recordings ? opts.recordings() : [] });
    },
  });

  add('/v1/recordings/*', {
    GET: (req, res, params) => {
      if (opts.playback) opts.playback(req, res, params['*'] ?? '');
      else sendJson(res, 404, { error: 'recording not found' });
    },
  });

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const found = routes.find('GET', req.url ?? '/');
    if (!found) {
      sendJson(res, 404, { error: 'not found' });
      return;
    }
    const route = found.store as Route | null;
    if (!route) {
      // find-my-way hands back a handle without a store for URLs it cannot decode (bad %-escapes)
      sendJson(res, 400, { error: 'malformed URL' });
      return;
    }
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    if (method === 'OPTIONS') {
      res.writeHead(204, { ...CORS_HEADERS, Allow: allowOf(route) }).end();
      return;
    }
    const h = method === 'GET' || method === 'DELETE' ? route[method] : undefined;
    if (!h) {
      res.setHeader('Allow', allowOf(route));
      sendJson(res, 405, { error: `method ${req.method ?? ''} not allowed` });
      return;
    }
    h(req, res, found.params);
  };

  const server = createServer((req, res) => {
    req.resume(); // request bodies are never read; drain them so keep-alive connections stay usable
    try {
      handle(req, res);
    } catch (err) {
      log.error({ err: errorMessage(err), url: req.url, method: req.method }, 'api: request failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    }
  });
  try {
    await listen(server, opts.port, opts.host);
  } catch (err) {
    bitrates.stop();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  log.info({ host: opts.host ?? '0.0.0.0', port }, 'api listener up');
  return {
    server,
    port,
    close: () => {
      bitrates.stop();
      return closeServer(server);
    },
  };
}

/**
 * The dashboard: one self-contained page (no external scripts, styles or fonts) that polls `/v1/paths` and
 * `/v1/sessions` every second and can kick a session. Text from the API is set with textContent only.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamgate</title>
<style>
  :root { color-scheme: light dark; --fg: #1d2330; --muted: #6b7385; --bg: #f5f6f8; --card: #fff; --line: #e3e6ec;
          --ok: #1a7f37; --bad: #c62828; --accent: #2f5bd3; }
  @media (prefers-color-scheme: dark) {
    :root { --fg: #e6e9ef; --muted: #98a0b3; --bg: #14171c; --card: #1c2027; --line: #2c323c; --ok: #4cc26b;
            --bad: #ef6b6b; --accent: #7a9cff; }
  }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
         background: var(--bg); }
  header { display: flex; align-items: center; gap: 16px; padding: 14px 24px; background: var(--card);
           border-bottom: 1px solid var(--line); }
  header h1 { margin: 0; font-size: 18px; letter-spacing: .02em; }
  .pill { padding: 2px 10px; border-radius: 999px; font-size: 12px; font-weight: 600; color: #fff; background: var(--muted); }
  .pill.ok { background: var(--ok); } .pill.bad { background: var(--bad); }
  #updated { margin-left: auto; color: var(--muted); font-size: 12px; }
  main { padding: 20px 24px; max-width: 1500px; }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; margin-bottom: 20px; overflow-x: auto; }
  section h2 { margin: 0; padding: 12px 16px; font-size: 15px; border-bottom: 1px solid var(--line); }
  section h2 .count { color: var(--muted); font-weight: normal; }
  table { width: 100%; border-collapse: collapse; }
  th, td { padding: 7px 10px; text-align: left; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); font-weight: 600; }
  td.act { padding: 4px 10px 4px 4px; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr:last-child td { border-bottom: 0; }
  .empty td { color: var(--muted); text-align: center; padding: 18px; }
  .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
  .yes { color: var(--ok); font-weight: 600; } .no { color: var(--bad); font-weight: 600; }
  .tag { display: inline-block; padding: 0 6px; margin-right: 4px; border: 1px solid var(--line); border-radius: 4px; font-size: 12px; }
  button.kick { font: inherit; font-size: 12px; padding: 3px 10px; border-radius: 5px; border: 1px solid var(--bad);
                color: var(--bad); background: transparent; cursor: pointer; }
  button.kick:hover { background: var(--bad); color: #fff; }
  button.kick:disabled { opacity: .5; cursor: default; }
  #error { display: none; margin: 0 0 16px; padding: 10px 14px; border-radius: 6px; background: var(--bad); color: #fff; }
</style>
</head>
<body>
<header>
  <h1>streamgate</h1>
  <span id="health" class="pill">…</span>
  <span id="updated"></span>
</header>
<main>
  <div id="error"></div>
  <section>
    <h2>Paths <span class="count" id="path-count"></span></h2>
    <table id="paths">
      <thead><tr><th>Path</th><th>Source</th><th>Ready</th><th>Tracks</th><th class="num">Readers</th>
        <th class="num">Bitrate in</th><th class="num">Bitrate out</th><th class="num">Bytes in</th><th class="num">Bytes out</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Sessions <span class="count" id="session-count"></span></h2>
    <table id="sessions">
      <thead><tr><th>ID</th><th>Protocol</th><th>Role</th><th>Path</th><th>Remote address</th><th>State</th><th class="num">Age</th>
        <th class="num">Bytes in</th><th class="num">Bytes out</th><th class="num">Bitrate in</th><th class="num">Bitrate out</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
<script>
"use strict";
var POLL_MS = 1000;
function el(tag, text, cls) {
  var e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function bytes(n) {
  var u = ["B", "KB", "MB", "GB", "TB"], i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)) + " " + u[i];
}
function bits(n) {
  var u = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s"], i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)) + " " + u[i];
}
function age(iso) {
  var s = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
  var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + (s % 60) + "s";
}
function track(t) {
  var parts = [t.codec.toUpperCase()];
  if (t.width && t.height) parts.push(t.width + "x" + t.height);
  if (t.profile) parts.push(t.profile);
  if (t.sampleRate) parts.push((t.sampleRate / 1000) + " kHz");
  if (t.channels) parts.push(t.channels === 1 ? "mono" : t.channels === 2 ? "stereo" : t.channels + " ch");
  return parts.join(" ");
}
function source(s) {
  if (!s) return "—";
  return s.type + (s.url ? " " + s.url : s.remoteAddr ? " " + s.remoteAddr : "");
}
function fill(tbody, rows, cols, emptyText) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    var tr = el("tr", null, "empty"), td = el("td", emptyText);
    td.colSpan = cols;
    tr.appendChild(td);
    tbody.appendChild(tr);
    return;
  }
  rows.forEach(function (r) { tbody.appendChild(r); });
}
function cell(tr, text, cls) { var td = el("td", text, cls); tr.appendChild(td); return td; }
function renderPaths(items) {
  document.getElementById("path-count").textContent = "(" + items.length + ")";
  fill(document.querySelector("#paths tbody"), items.map(function (p) {
    var tr = el("tr");
    tr.dataset.path = p.name;
    cell(tr, p.name, "mono");
    cell(tr, source(p.source), "mono");
    cell(tr, p.ready ? "yes" : "no", p.ready ? "yes" : "no");
    var td = cell(tr, null);
    if (p.tracks.length === 0) td.textContent = "—";
    p.tracks.forEach(function (t) { td.appendChild(el("span", track(t), "tag")); });
    cell(tr, p.readerCount, "num");
    cell(tr, bits(p.bitrateIn), "num");
    cell(tr, bits(p.bitrateOut), "num");
    cell(tr, bytes(p.bytesIn), "num");
    cell(tr, bytes(p.bytesOut), "num");
    return tr;
  }), 9, "No active paths. Publish with OBS or ffmpeg to rtmp://HOST:1935/live/cam1.");
}
function renderSessions(items) {
  document.getElementById("session-count").textContent = "(" + items.length + ")";
  fill(document.querySelector("#sessions tbody"), items.map(function (s) {
    var tr = el("tr");
    tr.dataset.sessionId = s.id;
    cell(tr, s.id, "mono");
    cell(tr, s.protocol);
    cell(tr, s.role);
    cell(tr, s.path === null ? "—" : s.path, "mono");
    cell(tr, s.remoteAddr, "mono");
    cell(tr, s.state);
    cell(tr, age(s.createdAt), "num");
    cell(tr, bytes(s.bytesIn), "num");
    cell(tr, bytes(s.bytesOut), "num");
    cell(tr, bits(s.bitrateIn), "num");
    cell(tr, bits(s.bitrateOut), "num");
    var b = el("button", "kick", "kick");
    b.type = "button";
    b.title = "Close this session";
    b.addEventListener("click", function () { kick(s.id, b); });
    cell(tr, null, "act").appendChild(b);
    return tr;
  }), 12, "No sessions connected.");
}
function showError(msg) {
  var e = document.getElementById("error");
  e.textContent = msg || "";
  e.style.display = msg ? "block" : "none";
}
function getJson(url) {
  return fetch(url, { cache: "no-store" }).then(function (r) {
    return r.json().then(function (body) {
      if (!r.ok && url !== "/health") throw new Error(url + ": HTTP " + r.status + (body.error ? " " + body.error : ""));
      return body;
    });
  });
}
function kick(id, button) {
  button.disabled = true;
  button.textContent = "kicking…";
  fetch("/v1/sessions/" + encodeURIComponent(id), { method: "DELETE" }).then(function (r) {
    if (!r.ok && r.status !== 404) throw new Error("kick " + id + ": HTTP " + r.status);
    return poll(false);
  }).catch(function (err) { showError(String(err.message || err)); button.disabled = false; button.textContent = "kick"; });
}
var timer = null;
function poll(reschedule) {
  return Promise.all([getJson("/v1/paths"), getJson("/v1/sessions"), getJson("/health")]).then(function (r) {
    renderPaths(r[0].items);
    renderSessions(r[1].items);
    var h = document.getElementById("health");
    h.textContent = r[2].status === "ok" ? "healthy" : "unhealthy";
    h.className = "pill " + (r[2].status === "ok" ? "ok" : "bad");
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    showError("");
  }).catch(function (err) {
    showError("Cannot reach the API: " + (err.message || err));
    var h = document.getElementById("health");
    h.textContent = "offline";
    h.className = "pill bad";
  }).then(function () {
    if (reschedule !== false) timer = setTimeout(poll, POLL_MS);
  });
}
poll();
</script>
</body>
</html>
`;
