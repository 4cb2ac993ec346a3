/**
 * WebSocket signaling at `ws://HOST:8889/<path>/ws`, for pages that want trickle ICE and live stats over one
 * channel. JSON text messages, validated into a typed union:
 *
 *   client → server  { type: 'offer', sdp }                 start viewing (one session per socket)
 *                    { type: 'candidate', candidate, sdpMid?, sdpMLineIndex? }   trickle ICE (candidate '' = end)
 *                    { type: 'bye' }                         end the session, keep the socket
 *   server → client  { type: 'answer', sdp, session }       the answer, with all server candidates in it
 *                    { type: 'stats', ... }                  every STATS_INTERVAL_MS while a session runs
 *                    { type: 'error', status, message }      a refused offer (same codes as WHEP) or a bad message
 *                    { type: 'closed', reason }              the session ended on the server side
 *
 * Closing the socket ends the session.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { errorMessage, ParseError } from '../errors.js';
import { log } from '../log.js';
import type { IceServer, ViewerSession, WebrtcEgress } from '../egress/webrtc/sfu.js';
import { MAX_OFFER_BYTES } from './sdp/negotiate.js';
import { accessOf, route, statusOf } from './whip-whep.js';

/** Stats push period: often enough for a live overlay, rare enough to cost nothing. */
export const STATS_INTERVAL_MS = 1000;
/** Largest message: an offer (MAX_OFFER_BYTES) plus JSON escaping. */
export const MAX_WS_MESSAGE_BYTES = 2 * MAX_OFFER_BYTES;
/** Candidates accepted per session over trickle; a browser sends a handful per interface. */
export const MAX_TRICKLE_CANDIDATES = 64;

/** A message from the client. */
export type ClientMessage =
  | { type: 'offer'; sdp: string }
  | { type: 'candidate'; candidate: string; sdpMid?: string; sdpMLineIndex?: number }
  | { type: 'bye' };

/** A message to the client. */
export type ServerMessage =
  | { type: 'answer'; sdp: string; session: string }
  | { type: 'stats'; [k: string]: unknown }
  | { type: 'error'; status: number; message: string }
  | { type: 'closed'; reason: string };

/**
 * Validates a client message.
 * @throws ParseError naming what is wrong
 */
export function parseClientMessage(text: string): ClientMessage {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new ParseError('ws-signaling', 'message is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ParseError('ws-signaling', 'message is not a JSON object');
  const o = v as Record<string, unknown>;
  switch (o.type) {
    case 'offer':
      if (typeof o.sdp !== 'string') throw new ParseError('ws-signaling', 'offer without a string "sdp"');
      return { type: 'offer', sdp: o.sdp };
    case 'candidate': {
      if (typeof o.candidate !== 'string') throw new ParseError('ws-signaling', 'candidate without a string "candidate"');
      const m: ClientMessage = { type: 'candidate', candidate: o.candidate };
      if (typeof o.sdpMid === 'string') m.sdpMid = o.sdpMid;
      if (typeof o.sdpMLineIndex === 'number' && Number.isInteger(o.sdpMLineIndex)) m.sdpMLineIndex = o.sdpMLineIndex;
      return m;
    }
    case 'bye':
      return { type: 'bye' };
    default:
      throw new ParseError('ws-signaling', `unknown message type ${JSON.stringify(o.type)}`);
  }
}

/** What the WebSocket handler needs from the WebRTC server. */
export interface WsSignalingDeps {
  egress: WebrtcEgress;
  iceServers: () => IceServer[];
}

/**
 * Serves WebSocket signaling on `server`'s upgrade requests for `/<path>/ws`; other upgrades are refused.
 * @returns close(), which drops every signaling socket (upgraded sockets are not closed by `server.close()`)
 */
export function attachWebsocketSignaling(server: Server, deps: WsSignalingDeps): { close(): void } {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_MESSAGE_BYTES });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const r = route(url.pathname);
    if (r.kind !== 'ws') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => serveSocket(ws, req, url, r.path, deps));
  });
  const close = (): void => {
    for (const c of wss.clients) c.terminate();
    wss.close();
  };
  server.on('close', close);
  return { close };
}

function serveSocket(ws: WebSocket, req: IncomingMessage, url: URL, path: string, deps: WsSignalingDeps): void {
  let session: ViewerSession | undefined;
  let pending = false;
  let candidates = 0;
  let statsTimer: NodeJS.Timeout | undefined;
  const send = (m: ServerMessage): void => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
  };
  const endSession = (reason: string): void => {
    clearInterval(statsTimer);
    statsTimer = undefined;
    const s = session;
    session = undefined;
    s?.close(reason);
  };
  send({ type: 'stats', iceServers: deps.iceServers() });
  ws.on('message', (data, isBinary) => {
    void (async () => {
      try {
        if (isBinary) throw new ParseError('ws-signaling', 'binary messages are not used');
        const msg = parseClientMessage(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8'));
        if (msg.type === 'offer') {
          if (session || pending) throw new ParseError('ws-signaling', 'one session per socket: send "bye" first');
          pending = true;
          try {
            const s = await deps.egress.createViewer(path, msg.sdp, accessOf(req, url));
            if (ws.readyState !== ws.OPEN) {
              s.close('signaling socket closed');
              return;
            }
            session = s;
            s.onClosed = ((prev) => (reason: string) => {
              prev?.(reason);
              if (session === s) {
                session = undefined;
                clearInterval(statsTimer);
                send({ type: 'closed', reason });
              }
            })(s.onClosed);
            send({ type: 'answer', sdp: s.answer, session: s.id });
            statsTimer = setInterval(() => send({ type: 'stats', session: s.id, ...s.stats() }), STATS_INTERVAL_MS);
            statsTimer.unref();
          } finally {
            pending = false;
          }
        } else if (msg.type === 'candidate') {
          if (!session) throw new ParseError('ws-signaling', 'candidate before an offer');
          if (msg.candidate === '') return;
          if (++candidates > MAX_TRICKLE_CANDIDATES) throw new ParseError('ws-signaling', `more than ${MAX_TRICKLE_CANDIDATES} candidates`);
          await session.addRemoteCandidate(msg.candidate);
        } else {
          endSession('bye from the client');
        }
      } catch (err) {
        const status = statusOf(err);
        if (status >= 500) log.error({ err, path }, 'webrtc ws: request failed');
        send({ type: 'error', status, message: errorMessage(err) });
      }
    })();
  });
  ws.on('close', () => endSession('signaling socket closed'));
  ws.on('error', () => endSession('signaling socket error'));
}
