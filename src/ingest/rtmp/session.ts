/**
 * Server side of an RTMP connection, sans-I/O: the NetConnection/NetStream command state machine
 * ({@link RtmpSession}: messages in → actions out) and {@link RtmpServerConnection}, which adds the handshake,
 * the chunk stream and acknowledgements so a socket owner only moves bytes and carries out actions.
 *
 * Command replies follow what OBS, ffmpeg, librtmp, VLC, Larix/phone apps and Flash expect from FMS and
 * nginx-rtmp (Adobe RTMP spec 1.0 §7.2 for the command shapes).
 */
import { StateError, StreamgateError, NotFoundError, errorMessage } from '../../errors.js';
import { amf0Object, isAmf0Object, type Amf0Object, type Amf0Value } from '../../media/flv/amf0.js';
import {
  ChunkStreamReader,
  ChunkStreamWriter,
  RtmpMessageType,
  UserControlEvent,
  acknowledgementMessage,
  parseUserControl,
  pingResponseMessage,
  serializeMessage,
  setPeerBandwidthMessage,
  streamBeginMessage,
  streamEofMessage,
  windowAckSizeMessage,
  type ChunkStreamReaderOptions,
  type RtmpMessage,
} from './chunk-stream.js';
import { ServerHandshake, type HandshakeOptions } from './handshake.js';
import { commandMessage, dataMessage, parseCommand, RtmpMediaDemuxer, type RtmpCommand, type RtmpMediaAction } from './messages.js';

/**
 * Chunk size we write with, announced right after connect: 4096, as OBS, ffmpeg and nginx-rtmp use. Every
 * session uses it, so media serialized once with `serializeMessage(msg, RTMP_OUT_CHUNK_SIZE)` can be written
 * to every player.
 */
export const RTMP_OUT_CHUNK_SIZE = 4096;
/** Window Acknowledgement Size and peer bandwidth we announce: 2.5 MB, as FMS, nginx-rtmp and ffmpeg do. */
export const RTMP_WINDOW_ACK_SIZE = 2_500_000;
/** Most NetStreams one connection may create: clients use one (two at most, after a failed play). */
export const RTMP_MAX_STREAMS_PER_CONNECTION = 8;
/**
 * How long a publisher (or a client that has not started publishing or playing) may stay silent before
 * the connection is closed: 10 s, mediamtx's default readTimeout. Players are exempt: they send nothing
 * while they watch.
 */
export const RTMP_READ_TIMEOUT_MS = 10_000;

/** Chunk stream ids we write on (the nginx-rtmp assignment, which players are used to). */
export const RtmpCsid = { control: 2, command: 3, status: 5, data: 5, audio: 6, video: 7 } as const;

/** The message stream a player plays on and a publisher publishes on, from the client's createStream. */
export interface RtmpStreamRequest {
  /** message stream id (from createStream; players get 1 unless they create several) */
  streamId: number;
  /** NetConnection app without its query, e.g. `live` */
  app: string;
  /** stream name without its query, e.g. `cam1` */
  streamName: string;
  /** `app/streamName`, e.g. `live/cam1` */
  path: string;
  /** query strings of tcUrl, app and stream name joined with `&` (later ones win in `params`), '' when none */
  query: string;
  /** the query as key → value (`user`, `pass`, `key`, …) */
  params: Record<string, string>;
  tcUrl: string;
}

/** What the session asks its owner to do. Carry them out in order. */
export type RtmpAction =
  /** write these bytes to the socket */
  | { type: 'send'; bytes: Uint8Array }
  /** the client asks to publish: check and attach, then call `resolve(streamId, error|null, nowMs)` */
  | ({ type: 'publish'; publishType: string } & RtmpStreamRequest)
  /** the client asks to play: check and attach, then call `resolve(streamId, error|null, nowMs)` */
  | ({ type: 'play'; start: number } & RtmpStreamRequest)
  /** audio, video or data from an accepted publisher (see {@link RtmpMediaAction}) */
  | RtmpMediaAction
  /** an accepted publisher stopped (closeStream, deleteStream); detach it */
  | { type: 'unpublish'; streamId: number }
  /** an accepted player stopped; detach it */
  | { type: 'unplay'; streamId: number }
  /** a player paused (true) or resumed (false) */
  | { type: 'pause'; streamId: number; paused: boolean }
  /** write pending sends, then end the socket; `error` is set when a protocol error caused it */
  | { type: 'close'; reason: string; error?: StreamgateError };

/** Options of an {@link RtmpSession}. */
export interface RtmpSessionOptions {
  /** outgoing chunk size, default {@link RTMP_OUT_CHUNK_SIZE} */
  chunkSize?: number;
  /** window acknowledgement size and peer bandwidth we announce, default {@link RTMP_WINDOW_ACK_SIZE} */
  windowAckSize?: number;
  maxStreams?: number;
}

type StreamState = 'idle' | 'publish-pending' | 'publishing' | 'play-pending' | 'playing';

interface NetStream {
  state: StreamState;
  request: RtmpStreamRequest | null;
}

/** A path segment per INTERFACE.md: `[A-Za-z0-9._~-]+`, and not `.` or `..` (paths name recording folders). */
const SEGMENT = /^[A-Za-z0-9._~-]+$/;

/** True when `path` is a valid stream path (`live/cam1`). */
export function isValidPath(path: string): boolean {
  if (path === '') return false;
  for (const s of path.split('/')) {
    if (!SEGMENT.test(s) || s === '.' || s === '..') return false;
  }
  return true;
}

/** Splits `name?query` into its two parts. */
function splitQuery(s: string): [string, string] {
  const q = s.indexOf('?');
  return q < 0 ? [s, ''] : [s.slice(0, q), s.slice(q + 1)];
}

/** The query of an rtmp:// URL (tcUrl), '' when none or when it does not parse. */
function urlQuery(tcUrl: string): string {
  return splitQuery(tcUrl)[1];
}

/** The app of a tcUrl `rtmp://host[:port]/app[?q]`, for clients that leave out `app` in connect. */
function appFromTcUrl(tcUrl: string): string {
  const m = /^[a-z0-9+]+:\/\/[^/]*\/([^?]*)/i.exec(tcUrl);
  return m?.[1] ?? '';
}

/** Builds the request for a publish/play of `rawName` on this connection; null when the path is invalid. */
function streamRequest(streamId: number, appRaw: string, tcUrl: string, rawName: string): RtmpStreamRequest | null {
  const [appPart, appQuery] = splitQuery(appRaw);
  let [name, nameQuery] = splitQuery(rawName);
  // FMS-style type prefixes some players add ("flv:cam1", "mp4:cam1")
  if (/^(flv|mp4):/.test(name)) name = name.slice(4);
  const app = appPart.replace(/^\/+|\/+$/g, '');
  const streamName = name.replace(/^\/+|\/+$/g, '');
  const path = app === '' ? streamName : streamName === '' ? app : `${app}/${streamName}`;
  if (streamName === '' || !isValidPath(path)) return null;
  // OBS repeats the app's query in tcUrl: keep each distinct part once
  const parts = new Set([urlQuery(tcUrl), appQuery, nameQuery].filter((q) => q !== ''));
  const query = [...parts].join('&');
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of new URLSearchParams(query)) params[k] = v;
  return { streamId, app, streamName, path, query, params, tcUrl };
}

/**
 * onStatus codes of a refused publish or play: the stream id is busy, or the path is invalid (what FMS and
 * nginx-rtmp answer; OBS and ffmpeg show the code).
 */
const REFUSAL_CODES = {
  publish: { busy: 'NetStream.Publish.BadName', invalid: 'NetStream.Publish.BadName' },
  play: { busy: 'NetStream.Play.Failed', invalid: 'NetStream.Play.StreamNotFound' },
} as const;

/** Status info object of onStatus / _result / _error. */
function info(level: 'status' | 'error' | 'warning', code: string, description: string, extra: Record<string, Amf0Value> = {}): Amf0Object {
  return amf0Object({ level, code, description, ...extra });
}

/**
 * The command state machine of one server-side RTMP connection. Feed it every message from the
 * {@link ChunkStreamReader}; it never touches a socket or a clock. Publish and play requests come out as
 * actions and wait for {@link RtmpSession.resolve}, so the owner can check credentials asynchronously.
 */
export class RtmpSession {
  /** Set by connect. */
  app = '';
  tcUrl = '';
  connected = false;
  private readonly writer: ChunkStreamWriter;
  private readonly outChunkSize: number;
  private readonly windowAckSize: number;
  private readonly maxStreams: number;
  private readonly streams = new Map<number, NetStream>();
  private readonly demuxer = new RtmpMediaDemuxer((streamId) => this.isPublishing(streamId), { dropClearDataFrame: true });
  private nextStreamId = 1;
  private closed = false;

  constructor(opts: RtmpSessionOptions = {}) {
    // fmt-0 headers only: the owner may interleave media serialized once for all players on other csids
    this.writer = new ChunkStreamWriter({ absolute: true });
    this.outChunkSize = opts.chunkSize ?? RTMP_OUT_CHUNK_SIZE;
    this.windowAckSize = opts.windowAckSize ?? RTMP_WINDOW_ACK_SIZE;
    this.maxStreams = opts.maxStreams ?? RTMP_MAX_STREAMS_PER_CONNECTION;
  }

  /** The chunk size our messages are written with (128 until connect, then {@link RTMP_OUT_CHUNK_SIZE}). */
  get chunkSize(): number {
    return this.writer.chunkSize;
  }

  /** Audio/video/data messages dropped because their stream was not publishing (routine, counted). */
  get droppedMessages(): number {
    return this.demuxer.droppedMessages;
  }

  /** Data messages whose AMF0 did not parse (dropped, counted; the publish goes on). */
  get badDataMessages(): number {
    return this.demuxer.badDataMessages;
  }

  /** The request of a publishing or playing stream, or null. */
  request(streamId: number): RtmpStreamRequest | null {
    return this.streams.get(streamId)?.request ?? null;
  }

  /** True while `streamId` is an accepted player. */
  isPlaying(streamId: number): boolean {
    return this.streams.get(streamId)?.state === 'playing';
  }

  /** True while `streamId` is an accepted publisher. */
  isPublishing(streamId: number): boolean {
    return this.streams.get(streamId)?.state === 'publishing';
  }

  /**
   * Handles one message from the client.
   * @throws ParseError for a command that is not AMF0, StateError for a stream command before connect
   */
  push(msg: RtmpMessage, nowMs: number): RtmpAction[] {
    void nowMs; // replies carry timestamp 0; the clock matters to the connection's read timeout
    const out: RtmpAction[] = [];
    if (this.closed || this.demuxer.push(msg, out)) return out;
    switch (msg.type) {
      case RtmpMessageType.commandAmf0:
      case RtmpMessageType.commandAmf3:
        this.command(msg.streamId, parseCommand(msg), out);
        break;
      case RtmpMessageType.userControl: {
        const uc = parseUserControl(msg.payload);
        if (uc.event === UserControlEvent.pingRequest) this.send(out, this.writer.write(pingResponseMessage(uc.value)));
        break;
      }
      default:
        // protocol control (applied by the reader), shared objects: nothing to answer
        break;
    }
    return out;
  }

  /**
   * Answers a pending publish or play: `error` null accepts (Publish.Start, or StreamBegin + Play.Reset +
   * Play.Start + |RtmpSampleAccess), otherwise refuses with Publish.BadName / Play.StreamNotFound /
   * Play.Failed carrying the error's message, then closes the connection (OBS and ffmpeg give up anyway).
   */
  resolve(streamId: number, error: unknown, nowMs: number): RtmpAction[] {
    void nowMs;
    const out: RtmpAction[] = [];
    const ns = this.streams.get(streamId);
    if (this.closed || ns === undefined || ns.request === null) return out;
    const name = ns.request.streamName;
    if (ns.state === 'publish-pending') {
      if (error === null || error === undefined) {
        ns.state = 'publishing';
        this.status(out, streamId, info('status', 'NetStream.Publish.Start', `${name} is now published.`, { details: name }));
      } else {
        ns.state = 'idle';
        ns.request = null;
        this.status(out, streamId, info('error', 'NetStream.Publish.BadName', errorMessage(error), { details: name }));
        this.close(out, `publish refused: ${errorMessage(error)}`, error);
      }
    } else if (ns.state === 'play-pending') {
      if (error === null || error === undefined) {
        ns.state = 'playing';
        this.send(out, this.writer.write(streamBeginMessage(streamId)));
        this.status(out, streamId, info('status', 'NetStream.Play.Reset', `Playing and resetting ${name}.`, { details: name }));
        this.status(out, streamId, info('status', 'NetStream.Play.Start', `Started playing ${name}.`, { details: name }));
        // no NetStream.Data.Start data message: ffmpeg (and so ffplay) would open a data stream for it and
        // wait out its probe time for packets that never come
        this.send(out, this.writer.write(dataMessage(RtmpCsid.data, streamId, '|RtmpSampleAccess', true, true)));
      } else {
        ns.state = 'idle';
        ns.request = null;
        const code = error instanceof NotFoundError ? 'NetStream.Play.StreamNotFound' : 'NetStream.Play.Failed';
        this.status(out, streamId, info('error', code, errorMessage(error), { details: name }));
        this.close(out, `play refused: ${errorMessage(error)}`, error);
      }
    }
    return out;
  }

  /** Tells a player its publisher left: Stream EOF + onStatus Play.UnpublishNotify (players then wait or stop). */
  unpublishNotify(streamId: number): RtmpAction[] {
    const out: RtmpAction[] = [];
    if (!this.isPlaying(streamId)) return out;
    this.send(out, this.writer.write(streamEofMessage(streamId)));
    this.status(out, streamId, info('status', 'NetStream.Play.UnpublishNotify', 'The stream was unpublished.'));
    return out;
  }

  /** Tells a player a publisher (re)started: Stream Begin + onStatus Play.PublishNotify. */
  publishNotify(streamId: number): RtmpAction[] {
    const out: RtmpAction[] = [];
    if (!this.isPlaying(streamId)) return out;
    this.send(out, this.writer.write(streamBeginMessage(streamId)));
    this.status(out, streamId, info('status', 'NetStream.Play.PublishNotify', 'The stream was published.'));
    return out;
  }

  private send(out: RtmpAction[], bytes: Uint8Array): void {
    out.push({ type: 'send', bytes });
  }

  private close(out: RtmpAction[], reason: string, error?: unknown): void {
    this.closed = true;
    if (error instanceof StreamgateError) out.push({ type: 'close', reason, error });
    else out.push({ type: 'close', reason });
  }

  private invoke(out: RtmpAction[], csid: number, streamId: number, ...values: Amf0Value[]): void {
    this.send(out, this.writer.write(commandMessage(csid, streamId, ...values)));
  }

  private status(out: RtmpAction[], streamId: number, obj: Amf0Object): void {
    this.invoke(out, RtmpCsid.status, streamId, 'onStatus', 0, null, obj);
  }

  private command(streamId: number, { name, tx, values: v }: RtmpCommand, out: RtmpAction[]): void {
    if (name !== 'connect' && !this.connected && !name.startsWith('_') && name !== 'onStatus') {
      throw new StateError('before connect', ['connected'], `command '${name}'`);
    }
    switch (name) {
      case 'connect':
        this.connect(tx, v[2], out);
        return;
      case 'createStream': {
        if (this.streams.size >= this.maxStreams) {
          this.invoke(out, RtmpCsid.command, 0, '_error', tx, null, info('error', 'NetConnection.Call.Failed', 'Too many streams.'));
          return;
        }
        while (this.streams.has(this.nextStreamId)) this.nextStreamId++;
        const id = this.nextStreamId++;
        this.streams.set(id, { state: 'idle', request: null });
        this.invoke(out, RtmpCsid.command, 0, '_result', tx, null, id);
        return;
      }
      case 'releaseStream':
      case '_checkbw':
        if (tx > 0) this.invoke(out, RtmpCsid.command, 0, '_result', tx, null);
        return;
      case 'getStreamLength':
        if (tx > 0) this.invoke(out, RtmpCsid.command, 0, '_result', tx, null, 0);
        return;
      case 'FCPublish':
        this.invoke(out, RtmpCsid.command, 0, 'onFCPublish', 0, null, info('status', 'NetStream.Publish.Start', String(v[3] ?? '')));
        return;
      case 'FCUnpublish':
        this.invoke(out, RtmpCsid.command, 0, 'onFCUnpublish', 0, null, info('status', 'NetStream.Unpublish.Success', String(v[3] ?? '')));
        return;
      case 'FCSubscribe':
        this.invoke(out, RtmpCsid.command, 0, 'onFCSubscribe', 0, null, info('status', 'NetStream.Play.Start', String(v[3] ?? '')));
        return;
      case 'publish':
      case 'play':
        this.streamCommand(name, streamId, tx, v, out);
        return;
      case 'deleteStream': {
        const id = typeof v[3] === 'number' ? v[3] : streamId;
        this.stop(id, out);
        this.streams.delete(id);
        return;
      }
      case 'closeStream':
        this.stop(streamId, out);
        return;
      case 'pause': {
        if (!this.isPlaying(streamId)) return;
        const paused = v[3] !== false;
        out.push({ type: 'pause', streamId, paused });
        const code = paused ? 'NetStream.Pause.Notify' : 'NetStream.Unpause.Notify';
        this.status(out, streamId, info('status', code, paused ? 'Paused.' : 'Unpaused.'));
        return;
      }
      case 'receiveAudio':
      case 'receiveVideo':
      case '_result':
      case '_error':
      case 'onStatus':
      case 'onBWDone':
        return; // answers to our calls and player toggles we do not act on
      default:
        if (tx > 0) {
          this.invoke(out, RtmpCsid.command, 0, '_error', tx, null, info('error', 'NetConnection.Call.Failed', `Method not found (${name}).`));
        }
    }
  }

  private connect(tx: number, cmdObj: Amf0Value, out: RtmpAction[]): void {
    if (this.connected) {
      this.invoke(out, RtmpCsid.command, 0, '_error', tx, null, info('error', 'NetConnection.Call.Failed', 'Already connected.'));
      return;
    }
    const obj = isAmf0Object(cmdObj) ? cmdObj : amf0Object();
    this.tcUrl = typeof obj['tcUrl'] === 'string' ? obj['tcUrl'] : '';
    this.app = typeof obj['app'] === 'string' ? obj['app'] : appFromTcUrl(this.tcUrl);
    this.connected = true;
    const objectEncoding = typeof obj['objectEncoding'] === 'number' ? obj['objectEncoding'] : 0;
    this.send(out, this.writer.write(windowAckSizeMessage(this.windowAckSize)));
    this.send(out, this.writer.write(setPeerBandwidthMessage(this.windowAckSize, 2)));
    this.send(out, this.writer.setChunkSize(this.outChunkSize));
    this.invoke(
      out,
      RtmpCsid.command,
      0,
      '_result',
      tx,
      amf0Object({ fmsVer: 'FMS/3,0,1,123', capabilities: 31 }),
      info('status', 'NetConnection.Connect.Success', 'Connection succeeded.', { objectEncoding }),
    );
    // FMS sends onBWDone after connect; some librtmp-based clients wait for it before createStream
    this.invoke(out, RtmpCsid.command, 0, 'onBWDone', 0, null);
  }

  private netStream(streamId: number, out: RtmpAction[], tx: number): NetStream | null {
    let ns = this.streams.get(streamId);
    if (ns === undefined) {
      // lenient: some encoders publish on a stream id they never created; stream 0 is the NetConnection
      if (streamId === 0 || this.streams.size >= this.maxStreams) {
        if (tx > 0) this.invoke(out, RtmpCsid.command, 0, '_error', tx, null, info('error', 'NetConnection.Call.Failed', 'No such stream.'));
        return null;
      }
      ns = { state: 'idle', request: null };
      this.streams.set(streamId, ns);
    }
    return ns;
  }

  /** publish/play: checks the NetStream and the path, then hands the request to the owner as an action. */
  private streamCommand(kind: 'publish' | 'play', streamId: number, tx: number, v: Amf0Value[], out: RtmpAction[]): void {
    const ns = this.netStream(streamId, out, tx);
    if (ns === null) return;
    const raw = typeof v[3] === 'string' ? v[3] : '';
    const refusal = REFUSAL_CODES[kind];
    if (ns.state !== 'idle') {
      this.status(out, streamId, info('error', refusal.busy, 'Stream is already in use.', { details: raw }));
      return;
    }
    const req = streamRequest(streamId, this.app, this.tcUrl, raw);
    if (req === null) {
      this.status(out, streamId, info('error', refusal.invalid, `Invalid stream path '${this.app}/${raw}'.`, { details: raw }));
      this.close(out, `invalid ${kind} path '${this.app}/${raw}'`);
      return;
    }
    ns.request = req;
    if (kind === 'publish') {
      ns.state = 'publish-pending';
      out.push({ type: 'publish', publishType: typeof v[4] === 'string' ? v[4] : 'live', ...req });
    } else {
      ns.state = 'play-pending';
      out.push({ type: 'play', start: typeof v[4] === 'number' ? v[4] : -2, ...req });
    }
  }

  /** closeStream/deleteStream: ends a publish or play on the stream (the NetStream itself stays for closeStream). */
  private stop(streamId: number, out: RtmpAction[]): void {
    const ns = this.streams.get(streamId);
    if (ns === undefined) return;
    const was = ns.state;
    ns.state = 'idle';
    ns.request = null;
    if (was === 'publishing') {
      out.push({ type: 'unpublish', streamId });
      this.status(out, streamId, info('status', 'NetStream.Unpublish.Success', 'Stream is now unpublished.'));
    } else if (was === 'playing') {
      out.push({ type: 'unplay', streamId });
    }
    // a pending request that is later resolved finds the stream idle and does nothing
  }

  /** Marks the session closed (after a 'close' action from elsewhere); later input is ignored. */
  markClosed(): void {
    this.closed = true;
  }

  /** Streams that are publishing or playing, for the owner to detach when the socket goes away. */
  activeStreams(): { streamId: number; state: 'publishing' | 'playing' | 'publish-pending' | 'play-pending' }[] {
    const list: { streamId: number; state: 'publishing' | 'playing' | 'publish-pending' | 'play-pending' }[] = [];
    for (const [streamId, ns] of this.streams) if (ns.state !== 'idle') list.push({ streamId, state: ns.state });
    return list;
  }
}

/** Options of an {@link RtmpServerConnection}. */
export interface RtmpServerConnectionOptions extends RtmpSessionOptions {
  handshake?: HandshakeOptions;
  reader?: ChunkStreamReaderOptions;
  /** see {@link RTMP_READ_TIMEOUT_MS} */
  readTimeoutMs?: number;
}

/**
 * One accepted TCP connection: handshake → chunk stream → {@link RtmpSession}, plus acknowledgements and the
 * read timeout. The owner calls `push(bytes, nowMs)` for socket data, `resolve()` after checking a
 * publish/play, `tick(nowMs)` at `nextDeadline()`, and carries out the returned actions in order. Protocol
 * errors from the peer come back as a `close` action carrying the error, never as a throw.
 */
export class RtmpServerConnection {
  readonly session: RtmpSession;
  readonly handshake: ServerHandshake;
  readonly reader: ChunkStreamReader;
  private readonly readTimeoutMs: number;
  private lastInputMs: number;
  private closed = false;

  /** `nowMs`: when the socket was accepted (the read timeout also covers a client that never speaks). */
  constructor(nowMs: number, opts: RtmpServerConnectionOptions = {}) {
    this.lastInputMs = nowMs;
    this.session = new RtmpSession(opts);
    this.handshake = new ServerHandshake(opts.handshake);
    this.reader = new ChunkStreamReader(opts.reader);
    this.readTimeoutMs = opts.readTimeoutMs ?? RTMP_READ_TIMEOUT_MS;
  }

  /** Feeds socket bytes. */
  push(bytes: Uint8Array, nowMs: number): RtmpAction[] {
    const out: RtmpAction[] = [];
    if (this.closed) return out;
    this.lastInputMs = nowMs;
    try {
      let rest = bytes;
      if (!this.handshake.done) {
        const r = this.handshake.push(bytes);
        if (r.output.length > 0) out.push({ type: 'send', bytes: r.output });
        if (!r.done) return out;
        rest = r.leftover;
      }
      for (const msg of this.reader.push(rest)) {
        for (const a of this.session.push(msg, nowMs)) {
          out.push(a);
          if (a.type === 'close') this.closed = true;
        }
        if (this.closed) return out;
      }
      const ack = this.reader.takeAcknowledgement();
      if (ack !== null) out.push({ type: 'send', bytes: this.writeControl(ack) });
    } catch (e) {
      if (!(e instanceof StreamgateError)) throw e;
      this.closed = true;
      this.session.markClosed();
      out.push({ type: 'close', reason: e.message, error: e });
    }
    return out;
  }

  /** Answers a pending publish/play, see {@link RtmpSession.resolve}. */
  resolve(streamId: number, error: unknown, nowMs: number): RtmpAction[] {
    if (this.closed) return [];
    const out = this.session.resolve(streamId, error, nowMs);
    if (out.some((a) => a.type === 'close')) this.closed = true;
    return out;
  }

  /**
   * When the connection must be checked next (ms, same clock as push), or null when nothing is pending:
   * only players are exempt from the read timeout.
   */
  nextDeadline(): number | null {
    if (this.closed) return null;
    const active = this.session.activeStreams();
    if (active.length > 0 && active.every((s) => s.state === 'playing' || s.state === 'play-pending')) return null;
    return this.lastInputMs + this.readTimeoutMs;
  }

  /** Closes the connection when the deadline has passed. */
  tick(nowMs: number): RtmpAction[] {
    const d = this.nextDeadline();
    if (d === null || nowMs < d) return [];
    this.closed = true;
    this.session.markClosed();
    return [{ type: 'close', reason: `no data for ${this.readTimeoutMs} ms` }];
  }

  private writeControl(sequence: number): Uint8Array {
    return serializeMessage(acknowledgementMessage(sequence), this.session.chunkSize);
  }
}
