import http from 'node:http';

/**
 * Load generator of the HLS benchmark, run as its own process (`fork`): N LL-HLS clients that behave like hls.js
 * in low-latency mode — a session from the multivariant playlist, then forever: a blocking reload of the media
 * playlist for the next part (`_HLS_msn`/`_HLS_part`, delta updates with `_HLS_skip=YES`), then a download of every
 * part it lists that the client does not have yet. Keep-alive sockets through node:http (cheaper per request
 * than fetch, so the client process steals less CPU from the server on a small machine).
 *
 * Messages from the parent: `start`, `mark` (the measurement window begins), `collect` (answers with the window's
 * figures), `stop`.
 */

/** What the parent sends. */
export type ToLoad =
  | { type: 'start'; base: string; clients: number; rampMs: number }
  | { type: 'mark' }
  | { type: 'collect' }
  | { type: 'stop' };

/** The figures of one measurement window. */
export interface LoadWindow {
  clients: number;
  /** clients that have a session and loop */
  running: number;
  playlistRequests: number;
  partRequests: number;
  /** answers other than 200, and network errors, by kind */
  errors: Record<string, number>;
  /** clients that started over after an error */
  restarts: number;
  bytes: number;
  /** [part id, wall-clock ms when the client had it completely], flattened pairs */
  parts: number[];
}

/** What the child sends. */
export type FromLoad = { type: 'started' } | { type: 'window'; window: LoadWindow } | { type: 'stopped' };

/** A client that fails waits this long before it starts over (hls.js retries after ~1 s as well). */
const RETRY_MS = 500;
/** A request unanswered this long is an error (a blocking reload waits at most 3 target durations, then 503). */
const REQUEST_TIMEOUT_MS = 10_000;

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 4096 });
let stopping = false;

let win: LoadWindow = emptyWindow(0);
function emptyWindow(clients: number): LoadWindow {
  return { clients, running: 0, playlistRequests: 0, partRequests: 0, errors: {}, restarts: 0, bytes: 0, parts: [] };
}
let running = 0;
let measuring = false;

function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

function countError(kind: string): void {
  win.errors[kind] = (win.errors[kind] ?? 0) + 1;
}

/** GET, resolving with the status and, when `text`, the body as a string (otherwise only counted). */
function get(url: string, text: boolean): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (text) chunks.push(c);
      });
      res.on('end', () => {
        win.bytes += n;
        resolve({ status: res.statusCode ?? 0, body: text ? Buffer.concat(chunks).toString('utf8') : '' });
      });
      res.on('error', reject);
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** The parts a media playlist lists, and the position of the next part (for `_HLS_msn`/`_HLS_part`). */
export function parseLlhls(text: string): { parts: { id: number; uri: string }[]; nextMsn: number; nextPart: number } {
  const parts: { id: number; uri: string }[] = [];
  let msn = 0;
  let index = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) msn = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-SKIP:')) msn += Number(/SKIPPED-SEGMENTS=(\d+)/.exec(line)?.[1] ?? 0);
    else if (line.startsWith('#EXT-X-PART:')) {
      const uri = /URI="([^"]+)"/.exec(line)?.[1];
      const id = uri ? Number(/^part(\d+)\./.exec(uri)?.[1]) : NaN;
      if (uri && Number.isFinite(id)) parts.push({ id, uri });
      index++;
    } else if (line !== '' && !line.startsWith('#')) {
      msn++;
      index = 0;
    }
  }
  return { parts, nextMsn: msn, nextPart: index };
}

async function client(base: string): Promise<void> {
  while (!stopping) {
    let counted = false;
    try {
      const multi = await get(`${base}/index.m3u8`, true);
      if (multi.status !== 200) throw new Error(`multivariant ${multi.status}`);
      const mediaUri = /^stream\.m3u8\?\S+$/m.exec(multi.body)?.[0];
      if (!mediaUri) throw new Error('no media playlist URI');
      let r = await get(`${base}/${mediaUri}`, true);
      if (r.status !== 200) throw new Error(`playlist ${r.status}`);
      let pl = parseLlhls(r.body);
      // like hls.js: start about three parts behind the live edge (PART-HOLD-BACK)
      let have = (pl.parts[Math.max(0, pl.parts.length - 3)]?.id ?? 0) - 1;
      running++;
      counted = true;
      while (!stopping) {
        for (const p of pl.parts) {
          if (p.id <= have) continue;
          win.partRequests++;
          const part = await get(`${base}/${p.uri}`, false);
          if (part.status !== 200) {
            countError(`part ${part.status}`);
            continue;
          }
          if (measuring) win.parts.push(p.id, wallMs());
          have = p.id;
        }
        win.playlistRequests++;
        r = await get(`${base}/${mediaUri}&_HLS_msn=${pl.nextMsn}&_HLS_part=${pl.nextPart}&_HLS_skip=YES`, true);
        if (r.status !== 200) throw new Error(`playlist ${r.status}`);
        pl = parseLlhls(r.body);
      }
    } catch (err) {
      if (stopping) break;
      countError(err instanceof Error ? err.message.replace(/\d{4,}/g, 'N') : String(err));
      win.restarts++;
      await new Promise((res) => setTimeout(res, RETRY_MS));
    } finally {
      if (counted) running--;
    }
  }
}

process.on('message', (msg: ToLoad) => {
  const send = (m: FromLoad): void => {
    process.send?.(m);
  };
  if (msg.type === 'start') {
    win = emptyWindow(msg.clients);
    for (let i = 0; i < msg.clients; i++) {
      setTimeout(() => void client(msg.base), (i * msg.rampMs) / msg.clients);
    }
    send({ type: 'started' });
  } else if (msg.type === 'mark') {
    win = emptyWindow(win.clients);
    measuring = true;
  } else if (msg.type === 'collect') {
    measuring = false;
    win.running = running;
    send({ type: 'window', window: win });
  } else {
    stopping = true;
    agent.destroy();
    send({ type: 'stopped' });
    setTimeout(() => process.exit(0), 100);
  }
});
