/**
 * Client side of an RTMP connection that plays a stream (for pulling `rtmp://` sources), sans-I/O:
 * handshake → connect → createStream → play → media, with acknowledgements, ping replies and deadlines.
 * The socket owner (client.ts) only moves bytes and carries out the returned actions.
 *
 * Command shapes follow what ffmpeg and librtmp send to FMS, nginx-rtmp, Wowza and mediamtx
 * (Adobe RTMP spec 1.0 §7.2.1.1 connect, §7.2.1.3 createStream, §7.2.2.1 play).
 */
import { AuthError, NotFoundError, StreamgateError, UnsupportedError } from '../../errors.js';
import { amf0Object, isAmf0Object, type Amf0Value } from '../../media/flv/amf0.js';
import {
  ChunkStreamReader,
  ChunkStreamWriter,
  RtmpMessageType,
  UserControlEvent,
  acknowledgementMessage,
  parseControlU32,
  parseUserControl,
  pingResponseMessage,
  userControlMessage,
  windowAckSizeMessage,
  type ChunkStreamReaderOptions,
  type RtmpMessage,
} from './chunk-stream.js';
import { ClientHandshake, type HandshakeOptions } from './handshake.js';
import { commandMessage, parseCommand, RtmpMediaDemuxer, type RtmpCommand, type RtmpMediaAction } from './messages.js';
import { RTMP_READ_TIMEOUT_MS, RTMP_WINDOW_ACK_SIZE } from './session.js';

/** Default port of rtmp:// URLs (Adobe RTMP spec 1.0 §1). */
export const RTMP_DEFAULT_PORT = 1935;
/**
 * How long the client waits from TCP connect to Play.Start: 10 s, mediamtx's default `sourceOnDemandStartTimeout`.
 * A server that keeps the connection alive (pings) but never starts the stream is given up on after this.
 */
export const RTMP_CLIENT_START_TIMEOUT_MS = 10_000;
/** Buffer length we ask for with Set Buffer Length (spec §7.1.7 event 3): 3 s, what ffmpeg sends. */
const CLIENT_BUFFER_MS = 3000;
/** Capabilities ffmpeg announces in connect; some servers refuse a connect without them. */
const FLASH_VER = 'LNX 9,0,124,2';
const AUDIO_CODECS = 4071;
const VIDEO_CODECS = 252;
/** Chunk stream ids ffmpeg uses for its commands: connect/createStream on 3, play on 8. */
const CSID_COMMAND = 3;
const CSID_PLAY = 8;
const TX_CONNECT = 1;
const TX_CREATE_STREAM = 2;

/** Where to connect and what to play, from an `rtmp://host[:port]/app/stream[?query]` URL. */
export interface RtmpClientTarget {
  host: string;
  port: number;
  /** NetConnection app, e.g. `live` (every segment but the last, as ffmpeg splits it) */
  app: string;
  /** `rtmp://host[:port]/app`, without credentials */
  tcUrl: string;
  /** stream name with its query, e.g. `cam1?user=u&pass=p` */
  playPath: string;
}

/**
 * Splits a pull URL. Credentials in the URL (`rtmp://u:p@host/…`) are sent as `?user=u&pass=p`, the way
 * streamgate (and mediamtx) take RTMP credentials; a query already naming `user` wins.
 * @throws UnsupportedError for other schemes (rtmps, rtmpe) and URLs without an app and a stream name
 */
export function parseRtmpUrl(url: string): RtmpClientTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UnsupportedError(`'${url}' is not a URL`);
  }
  if (u.protocol !== 'rtmp:') throw new UnsupportedError(`'${u.protocol}//' sources are not supported (only rtmp://)`);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (host === '') throw new UnsupportedError('rtmp:// source URL has no host');
  const segments = u.pathname.replace(/^\/+/, '').split('/');
  const stream = segments.pop() ?? '';
  const app = segments.join('/');
  if (app === '' || stream === '') throw new UnsupportedError(`rtmp:// source URL needs an app and a stream name (rtmp://host/app/stream), got '${u.pathname}'`);
  const params = new URLSearchParams(u.search);
  if (u.username !== '' && !params.has('user')) {
    params.set('user', decodeURIComponent(u.username));
    params.set('pass', decodeURIComponent(u.password));
  }
  const query = params.toString();
  return {
    host,
    port: u.port === '' ? RTMP_DEFAULT_PORT : Number(u.port),
    app,
    tcUrl: `rtmp://${u.host}/${app}`,
    playPath: query === '' ? stream : `${stream}?${query}`,
  };
}

/** Where a client connection is. */
export type RtmpClientState = 'handshake' | 'connect' | 'createStream' | 'play' | 'playing' | 'closed';

/** What the client connection asks its owner to do. Carry them out in order. */
export type RtmpClientAction =
  /** write these bytes to the socket */
  | { type: 'send'; bytes: Uint8Array }
  /** the server answered NetStream.Play.Start: publish into the bus now */
  | { type: 'playing' }
  /** audio, video or data of the played stream (see {@link RtmpMediaAction}) */
  | RtmpMediaAction
  /** end the socket; `error` is set when the server refused or broke the protocol */
  | { type: 'close'; reason: string; error?: StreamgateError };

/** Options of an {@link RtmpClientConnection}. */
export interface RtmpClientConnectionOptions {
  handshake?: HandshakeOptions;
  reader?: ChunkStreamReaderOptions;
  /** close when the server sends nothing for this long (default {@link RTMP_READ_TIMEOUT_MS}) */
  readTimeoutMs?: number;
  /** close when Play.Start has not come this long after the start (default {@link RTMP_CLIENT_START_TIMEOUT_MS}) */
  startTimeoutMs?: number;
}

/** The `code` and `description` of an onStatus / _result / _error info object. */
function statusOf(v: Amf0Value): { level: string; code: string; description: string } {
  if (!isAmf0Object(v)) return { level: '', code: '', description: '' };
  const s = (x: Amf0Value): string => (typeof x === 'string' ? x : '');
  return { level: s(v['level']), code: s(v['code']), description: s(v['description']) };
}

/**
 * One client connection that plays `target.playPath`. `start()` gives C0+C1; feed every socket chunk to
 * `push(bytes, nowMs)`; call `tick(nowMs)` at `nextDeadline()`. Errors from the server (refusals, malformed
 * chunks) come back as a `close` action, never as a throw.
 */
export class RtmpClientConnection {
  state: RtmpClientState = 'handshake';
  /** message stream id the server gave us (0 until createStream answered) */
  streamId = 0;
  readonly reader: ChunkStreamReader;
  private readonly handshake: ClientHandshake;
  private readonly writer = new ChunkStreamWriter();
  /** media is accepted on our stream once play was sent (some servers start it just before Play.Start) */
  private readonly demuxer = new RtmpMediaDemuxer((streamId) => (this.state === 'play' || this.state === 'playing') && streamId === this.streamId);
  private readonly readTimeoutMs: number;
  private readonly startDeadlineMs: number;
  private lastInputMs: number;
  private sentWindowAckSize = 0;
  private started = false;

  /** `nowMs`: when the TCP connection was opened (the deadlines count from there). */
  constructor(
    readonly target: RtmpClientTarget,
    nowMs: number,
    opts: RtmpClientConnectionOptions = {},
  ) {
    this.handshake = new ClientHandshake(opts.handshake);
    this.reader = new ChunkStreamReader(opts.reader);
    this.readTimeoutMs = opts.readTimeoutMs ?? RTMP_READ_TIMEOUT_MS;
    this.startDeadlineMs = nowMs + (opts.startTimeoutMs ?? RTMP_CLIENT_START_TIMEOUT_MS);
    this.lastInputMs = nowMs;
  }

  /** Media messages of other streams or before play (routine, counted). */
  get droppedMessages(): number {
    return this.demuxer.droppedMessages;
  }

  /** Data messages whose AMF0 did not parse (dropped, counted). */
  get badDataMessages(): number {
    return this.demuxer.badDataMessages;
  }

  /** C0+C1, to send once the socket is connected. */
  start(): RtmpClientAction[] {
    if (this.started) return [];
    this.started = true;
    return [{ type: 'send', bytes: this.handshake.start() }];
  }

  /** Feeds bytes from the server. */
  push(bytes: Uint8Array, nowMs: number): RtmpClientAction[] {
    const out: RtmpClientAction[] = [];
    if (this.state === 'closed') return out;
    this.lastInputMs = nowMs;
    try {
      let rest = bytes;
      if (this.state === 'handshake') {
        const r = this.handshake.push(bytes);
        if (!r.done) return out;
        this.send(out, r.output);
        this.state = 'connect';
        this.connect(out);
        rest = r.leftover;
      }
      for (const msg of this.reader.push(rest)) {
        this.message(msg, out);
        if (this.isClosed()) return out;
      }
      const ack = this.reader.takeAcknowledgement();
      if (ack !== null) this.send(out, this.writer.write(acknowledgementMessage(ack)));
    } catch (e) {
      if (!(e instanceof StreamgateError)) throw e;
      this.close(out, e.message, e);
    }
    return out;
  }

  /** When the connection must be checked next (same clock as push), or null once closed. */
  nextDeadline(): number | null {
    if (this.state === 'closed') return null;
    const idle = this.lastInputMs + this.readTimeoutMs;
    return this.state === 'playing' ? idle : Math.min(idle, this.startDeadlineMs);
  }

  /** Closes the connection when a deadline has passed. */
  tick(nowMs: number): RtmpClientAction[] {
    const out: RtmpClientAction[] = [];
    if (this.state === 'closed') return out;
    if (nowMs >= this.lastInputMs + this.readTimeoutMs) {
      this.close(out, `no data from the server for ${this.readTimeoutMs} ms`, new StreamgateError('SG_TIMEOUT', 'read timeout'));
    } else if (this.state !== 'playing' && nowMs >= this.startDeadlineMs) {
      this.close(out, `the server did not start the stream in time (state '${this.state}')`, new StreamgateError('SG_TIMEOUT', 'start timeout'));
    }
    return out;
  }

  /** A method, not a field test: TypeScript would keep the narrowing of `state` across message(). */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private send(out: RtmpClientAction[], bytes: Uint8Array): void {
    out.push({ type: 'send', bytes });
  }

  private close(out: RtmpClientAction[], reason: string, error?: StreamgateError): void {
    this.state = 'closed';
    out.push(error ? { type: 'close', reason, error } : { type: 'close', reason });
  }

  private invoke(out: RtmpClientAction[], csid: number, streamId: number, ...values: Amf0Value[]): void {
    this.send(out, this.writer.write(commandMessage(csid, streamId, ...values)));
  }

  private connect(out: RtmpClientAction[]): void {
    const t = this.target;
    this.invoke(
      out,
      CSID_COMMAND,
      0,
      'connect',
      TX_CONNECT,
      amf0Object({
        app: t.app,
        flashVer: FLASH_VER,
        tcUrl: t.tcUrl,
        fpad: false,
        capabilities: 15,
        audioCodecs: AUDIO_CODECS,
        videoCodecs: VIDEO_CODECS,
        videoFunction: 1,
      }),
    );
  }

  private message(msg: RtmpMessage, out: RtmpClientAction[]): void {
    if (this.demuxer.push(msg, out)) return;
    switch (msg.type) {
      case RtmpMessageType.commandAmf0:
      case RtmpMessageType.commandAmf3:
        this.command(parseCommand(msg), out);
        return;
      case RtmpMessageType.userControl: {
        const uc = parseUserControl(msg.payload);
        if (uc.event === UserControlEvent.pingRequest) this.send(out, this.writer.write(pingResponseMessage(uc.value)));
        return; // Stream Begin/EOF/Dry: the onStatus that comes with them says what happened
      }
      case RtmpMessageType.setPeerBandwidth: {
        // spec §5.4.5: answer with a Window Acknowledgement Size when it differs from the last one we sent
        const size = parseControlU32(msg.payload);
        if (size > 0 && size !== this.sentWindowAckSize) {
          this.sentWindowAckSize = size;
          this.send(out, this.writer.write(windowAckSizeMessage(size)));
        }
        return;
      }
      default:
        return; // chunk size, window ack size, abort: applied by the reader; shared objects: not used
    }
  }

  private command({ name, tx, values }: RtmpCommand, out: RtmpClientAction[]): void {
    if (name === '_result' || name === '_error') {
      this.answer(name === '_result', tx, values, out);
      return;
    }
    if (name === 'onStatus') {
      this.onStatus(statusOf(values[3]), out);
      return;
    }
    // onBWDone, onFCSubscribe, _onbwcheck, …: nothing to do for a player
  }

  private answer(ok: boolean, tx: number, v: Amf0Value[], out: RtmpClientAction[]): void {
    if (tx === TX_CONNECT && this.state === 'connect') {
      const st = statusOf(v[3]);
      if (!ok || st.code !== 'NetConnection.Connect.Success') {
        const why = `connect refused: ${st.code || 'no status'}${st.description ? ` (${st.description})` : ''}`;
        this.close(out, why, st.code === 'NetConnection.Connect.Rejected' ? new AuthError(why) : new StreamgateError('SG_PROTOCOL', why));
        return;
      }
      if (this.sentWindowAckSize === 0) {
        this.sentWindowAckSize = RTMP_WINDOW_ACK_SIZE;
        this.send(out, this.writer.write(windowAckSizeMessage(RTMP_WINDOW_ACK_SIZE)));
      }
      this.state = 'createStream';
      this.invoke(out, CSID_COMMAND, 0, 'createStream', TX_CREATE_STREAM, null);
      return;
    }
    if (tx === TX_CREATE_STREAM && this.state === 'createStream') {
      const id = v[3];
      if (!ok || typeof id !== 'number' || !Number.isInteger(id) || id <= 0) {
        const why = `createStream refused: ${statusOf(v[3]).description || 'no stream id'}`;
        this.close(out, why, new StreamgateError('SG_PROTOCOL', why));
        return;
      }
      this.streamId = id;
      this.state = 'play';
      // play's transaction id is 0: the answer comes as onStatus, not _result (spec §7.2.2.1)
      this.invoke(out, CSID_PLAY, id, 'play', 0, null, this.target.playPath, -2);
      this.send(out, this.writer.write(userControlMessage(UserControlEvent.setBufferLength, id, CLIENT_BUFFER_MS)));
    }
  }

  private onStatus(st: { level: string; code: string; description: string }, out: RtmpClientAction[]): void {
    const detail = `${st.code}${st.description ? ` (${st.description})` : ''}`;
    switch (st.code) {
      case 'NetStream.Play.Start':
        if (this.state === 'play') {
          this.state = 'playing';
          out.push({ type: 'playing' });
        }
        return;
      case 'NetStream.Play.StreamNotFound':
        this.close(out, `stream not found: ${detail}`, new NotFoundError(`upstream: ${detail}`));
        return;
      case 'NetStream.Play.UnpublishNotify':
      case 'NetStream.Play.Stop':
      case 'NetStream.Play.Complete':
      case 'NetConnection.Connect.Closed':
        this.close(out, `upstream stream ended: ${detail}`);
        return;
      default:
        if (st.level === 'error') this.close(out, `upstream error: ${detail}`, new StreamgateError('SG_PROTOCOL', `upstream: ${detail}`));
    }
  }
}
