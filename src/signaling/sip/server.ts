/**
 * The SIP listener (RFC 3261 §18): UDP and TCP on one port, the transaction tables, the one timer that drives
 * every transaction and call deadline, and the routing of requests to calls (§8.2, §12.2.2, §17.2.3). The only
 * SIP file that owns sockets and timers; everything it drives is sans-I/O (message.ts, transaction.ts) or
 * socket-free (dialog.ts).
 *
 * What a phone gets: INVITE `sip:live~cam1@host` → 100 Trying, then 200 OK with the SDP answer (or 401 with a
 * Digest challenge, 404 unknown path, 480 nobody publishing, 486 reader cap, 488 no usable media); ACK; RTP to
 * the offered ports; BYE from either side; CANCEL before the answer → 200 + 487; OPTIONS → 200.
 *
 * Responses over UDP go to the packet's source address and port (RFC 3581 symmetric response routing, which is
 * what phones behind NAT need), with `received`/`rport` added to the top Via when the client asked for rport.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Config } from '../../config.js';
import { errorMessage, LimitError, ParseError, StreamgateError } from '../../errors.js';
import { log, RateLimitedLog } from '../../log.js';
import { SipTranscoderPool } from '../../egress/sip/g711-transcoder.js';
import {
  ALLOWED_METHODS,
  dialogKey,
  KEEPALIVE_INTERVAL_MS,
  SIP_SERVER_NAME,
  SipCall,
  type SipCallEnv,
  type SipFlow,
  type SipPaths,
} from './dialog.js';
import {
  createResponse,
  newTag,
  parseSipDatagram,
  parseVia,
  requestIds,
  serializeSipMessage,
  serializeVia,
  SipHeaders,
  SipStreamParser,
  type SipMessage,
  type SipRequest,
  type SipRequestIds,
  type SipResponse,
} from './message.js';
import { SipClientTransaction, SipServerTransaction, transactionKey, type SipTxAction } from './transaction.js';

/**
 * Idle time after which a TCP connection that carries no call is closed. Phones keep theirs open with CRLF pings
 * (RFC 5626 §4.4.1: every 95–120 s) or REGISTER refreshes; 3 minutes lets them, and bounds abandoned sockets.
 */
export const TCP_IDLE_TIMEOUT_MS = 180_000;
/** Most simultaneous TCP connections: each holds at most MAX_SIP_MESSAGE_BYTES of parser state. */
export const MAX_TCP_CONNECTIONS = 1024;
/**
 * Most live server transactions. Each lives up to 32 s after its answer over UDP (Timer J/H/L), so this sustains
 * ~250 requests/s, far more than the phones one gateway serves; past it requests get a stateless 503 with
 * Retry-After (RFC 3261 §21.5.4) instead of growing memory (an entry holds the request, ~1–3 KB).
 */
export const MAX_SERVER_TRANSACTIONS = 8192;
/** Most remembered local-address probes (one per remote IP), so a flood of sources cannot grow the cache. */
const MAX_LOCAL_ADDRESS_CACHE = 4096;

/** Options of the SIP listener. */
export interface SipServerOptions {
  /** bind address; default all interfaces */
  host?: string;
  /** 0 picks a free port (tests) */
  port: number;
  registry: SipPaths;
  /** `paths.<p>.sip.extension` → path, read at each INVITE (config reloads) */
  extensions: () => ReadonlyMap<string, string>;
  /** the Digest challenge for a 401 on a path, or null when Digest cannot check it (→ 403); default: none (→ 403) */
  challenge?: (path: string, nowMs: number, stale: boolean) => string | null;
  /** shared audio transcoders; default a new pool */
  transcoders?: SipTranscoderPool;
  /** can AAC be transcoded; default: ffmpeg can run */
  transcodeAvailable?: () => boolean;
  /** silence from a phone before a keep-alive OPTIONS; default KEEPALIVE_INTERVAL_MS (tests shorten it) */
  keepaliveMs?: number;
}

/** A running SIP listener. */
export interface RunningSipServer {
  port: number;
  /** live calls, for tests and the shutdown */
  calls(): SipCall[];
  close(): Promise<void>;
}

/** A flow plus the way to write on it. */
interface Flow extends SipFlow {
  write(bytes: Uint8Array): boolean;
}

interface ServerTxEntry {
  tx: SipServerTransaction;
  flow: Flow;
  key: string;
  call?: SipCall;
}

interface ClientTxEntry {
  tx: SipClientTransaction;
  flow: Flow;
  key: string;
  resolve: (res: SipResponse | null) => void;
  settled: boolean;
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

function plainAddress(address: string | undefined): string {
  return (address ?? '').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');
}

class SipServer {
  readonly serverTxs = new Map<string, ServerTxEntry>();
  readonly clientTxs = new Map<string, ClientTxEntry>();
  readonly dialogs = new Map<string, SipCall>();
  /** the INVITE transaction (initial or re-INVITE) whose 2xx is waiting for its ACK, per call */
  readonly inviteTxOf = new Map<SipCall, ServerTxEntry>();
  private readonly connections = new Set<net.Socket>();
  private readonly localCache = new Map<string, Promise<string>>();
  private readonly warn = new RateLimitedLog(log);
  private readonly transcoders: SipTranscoderPool;
  private readonly env: SipCallEnv;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private closing = false;
  udp!: dgram.Socket;
  tcp!: net.Server;
  port = 0;

  constructor(private readonly opts: SipServerOptions) {
    this.transcoders = opts.transcoders ?? new SipTranscoderPool();
    const transcodeAvailable = opts.transcodeAvailable ?? (() => SipTranscoderPool.available());
    const challenge = opts.challenge ?? (() => null);
    this.env = {
      registry: opts.registry,
      transcoders: this.transcoders,
      extensionPath: (user) => opts.extensions().get(user),
      challenge,
      mediaHost: opts.host,
      transcodeAvailable,
      request: (flow, req) => this.request(flow as Flow, req),
      ended: (call) => {
        if (this.dialogs.get(call.dialog.key) === call) this.dialogs.delete(call.dialog.key);
        this.inviteTxOf.delete(call);
      },
      now: () => Date.now(),
      keepaliveMs: opts.keepaliveMs ?? KEEPALIVE_INTERVAL_MS,
    };
  }

  // ------------------------------------------------------------------------------------------------------------
  // Sockets

  async listen(): Promise<void> {
    const host = this.opts.host;
    const family = host !== undefined && net.isIP(host) === 6 ? 'udp6' : 'udp4';
    // UDP and TCP share the port: with port 0, take UDP's and retry when TCP cannot have it
    for (let attempt = 0; ; attempt++) {
      const udp = dgram.createSocket({ type: family });
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind({ port: this.opts.port, ...(host ? { address: host } : {}) }, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      const port = udp.address().port;
      const tcp = net.createServer((socket) => this.onConnection(socket));
      const ok = await new Promise<boolean>((resolve, reject) => {
        tcp.once('error', (err: NodeJS.ErrnoException) => {
          if (err.code === 'EADDRINUSE' && this.opts.port === 0 && attempt < 20) resolve(false);
          else reject(err);
        });
        tcp.listen({ port, ...(host ? { host } : {}) }, () => resolve(true));
      }).catch((err: unknown) => {
        udp.close();
        throw err;
      });
      if (!ok) {
        udp.close();
        continue;
      }
      this.udp = udp;
      this.tcp = tcp;
      this.port = port;
      break;
    }
    this.udp.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo));
    this.udp.on('error', (err) => this.warn.warn({ err: err.message }, 'SIP UDP socket error'));
    this.tcp.on('error', (err) => this.warn.warn({ err: err.message }, 'SIP TCP listener error'));
  }

  /** Our address as seen from `remote`: the bind address, loopback for loopback, else what routing picks. */
  private localAddressFor(remote: string): Promise<string> {
    const host = this.opts.host;
    if (host && host !== '0.0.0.0' && host !== '::') return Promise.resolve(host);
    if (isLoopback(remote)) return Promise.resolve(net.isIP(remote) === 6 && remote === '::1' ? '::1' : '127.0.0.1');
    let p = this.localCache.get(remote);
    if (p) return p;
    // a connected UDP socket makes the kernel pick the source address for that destination; nothing is sent
    p = new Promise<string>((resolve) => {
      const s = dgram.createSocket(net.isIP(remote) === 6 ? 'udp6' : 'udp4');
      s.on('error', () => resolve('0.0.0.0'));
      s.connect(9, remote, () => {
        let a = '0.0.0.0';
        try {
          a = plainAddress(s.address().address);
        } catch {
          // keep the fallback
        }
        s.close();
        resolve(a);
      });
    });
    if (this.localCache.size >= MAX_LOCAL_ADDRESS_CACHE) this.localCache.clear();
    this.localCache.set(remote, p);
    return p;
  }

  private onDatagram(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closing) return;
    // keep-alives (CRLF or CRLFCRLF, RFC 5626 §3.5.1; some phones send a single space or zero bytes)
    if (msg.length <= 4 && msg.every((b) => b === 0x0d || b === 0x0a || b === 0x20 || b === 0x00)) return;
    let parsed: SipMessage;
    try {
      parsed = parseSipDatagram(msg);
    } catch (err) {
      this.badInput(err, `${rinfo.address}:${rinfo.port}`, 'UDP');
      return;
    }
    const remoteAddress = plainAddress(rinfo.address);
    void this.localAddressFor(remoteAddress).then((localAddress) => {
      if (this.closing) return;
      const flow: Flow = {
        transport: 'UDP',
        remoteAddress,
        remotePort: rinfo.port,
        localAddress,
        localPort: this.port,
        write: (bytes) => {
          if (this.closing) return false;
          this.udp.send(bytes, rinfo.port, rinfo.address, (err) => {
            if (err) this.warn.warn({ err: err.message, remote: `${rinfo.address}:${rinfo.port}` }, 'SIP UDP send failed');
          });
          return true;
        },
      };
      this.dispatch(parsed, flow, msg.length);
    });
  }

  private onConnection(socket: net.Socket): void {
    if (this.closing || this.connections.size >= MAX_TCP_CONNECTIONS) {
      this.warn.warn({ remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'SIP TCP connection refused: too many connections');
      socket.destroy();
      return;
    }
    this.connections.add(socket);
    const parser = new SipStreamParser();
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const flow: Flow = {
      transport: 'TCP',
      remoteAddress: plainAddress(socket.remoteAddress),
      remotePort: socket.remotePort ?? 0,
      localAddress: plainAddress(socket.localAddress),
      localPort: socket.localPort ?? this.port,
      write: (bytes) => {
        if (socket.destroyed || !socket.writable) return false;
        socket.write(bytes);
        return true;
      },
    };
    socket.setNoDelay(true);
    socket.setTimeout(TCP_IDLE_TIMEOUT_MS);
    socket.on('timeout', () => {
      const inUse = [...this.dialogs.values()].some((c) => c.flow === flow);
      if (!inUse) socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      let items;
      try {
        items = parser.push(chunk);
      } catch (err) {
        this.badInput(err, remote, 'TCP');
        socket.destroy();
        return;
      }
      for (const item of items) {
        if (item.kind === 'ping') flow.write(Buffer.from('\r\n')); // RFC 5626 §3.5.1 pong
        else this.dispatch(item.message, flow, item.message.body.length);
      }
    });
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => this.connections.delete(socket));
  }

  private badInput(err: unknown, remote: string, transport: string): void {
    if (err instanceof ParseError || err instanceof LimitError) {
      this.warn.warn({ remote, transport, code: err.code, err: err.message }, 'bad SIP message dropped');
      return;
    }
    log.error({ remote, transport, err: errorMessage(err) }, 'SIP message handling failed');
  }

  // ------------------------------------------------------------------------------------------------------------
  // Routing

  private dispatch(msg: SipMessage, flow: Flow, size: number): void {
    try {
      if (msg.kind === 'request') this.onRequest(msg, flow, size);
      else this.onResponse(msg);
    } catch (err) {
      if (err instanceof StreamgateError) this.badInput(err, `${flow.remoteAddress}:${flow.remotePort}`, flow.transport);
      else log.error({ err: errorMessage(err), stack: err instanceof Error ? err.stack : undefined }, 'SIP dispatch failed');
    }
    this.reschedule();
  }

  private send(flow: Flow, msg: SipMessage, call?: SipCall): void {
    const bytes = serializeSipMessage(msg);
    if (flow.write(bytes) && call) call.sipBytesOut += bytes.length;
  }

  /** Answers without a transaction (a request we could not read well enough to keep state for). */
  private stateless(req: SipRequest, flow: Flow, status: number, reason?: string, headers: [string, string][] = []): void {
    if (req.method === 'ACK') return; // never answer an ACK (§17.2.1)
    try {
      if (req.headers.getList('Via').length === 0) return;
      const res = createResponse(req, status, { toTag: newTag(), headers: [['Server', SIP_SERVER_NAME], ...headers], ...(reason ? { reason } : {}) });
      this.send(flow, res);
    } catch {
      // nothing we can answer to
    }
  }

  /** RFC 3581 §4 / RFC 3261 §18.2.1: note where a UDP request really came from in its top Via. */
  private markReceived(req: SipRequest, flow: Flow): void {
    if (flow.transport !== 'UDP') return;
    const entries = req.headers.entries();
    const first = entries.findIndex(([k]) => k === 'Via');
    if (first < 0) return;
    // the first Via line may hold several comma-separated Vias: only its first one is ours to mark
    const [top, ...rest] = new SipHeaders([entries[first]!]).getList('Via');
    if (top === undefined) return;
    const via = parseVia(top);
    const wantsRport = via.params.rport !== undefined;
    if (via.host.replace(/^\[|\]$/g, '') === flow.remoteAddress && !wantsRport) return;
    via.params.received = flow.remoteAddress;
    if (wantsRport) via.params.rport = String(flow.remotePort);
    entries[first] = ['Via', [serializeVia(via), ...rest].join(', ')];
    req.headers = new SipHeaders(entries);
  }

  private onRequest(req: SipRequest, flow: Flow, size: number): void {
    let ids: SipRequestIds;
    try {
      ids = requestIds(req);
    } catch (err) {
      this.badInput(err, `${flow.remoteAddress}:${flow.remotePort}`, flow.transport);
      this.stateless(req, flow, 400, err instanceof StreamgateError ? err.message.slice(0, 100).replace(/[\r\n]/g, ' ') : undefined);
      return;
    }
    this.markReceived(req, flow);
    const key = transactionKey(req);
    const now = Date.now();

    if (req.method === 'ACK') {
      const entry = this.serverTxs.get(key);
      if (entry) return this.runServer(entry, entry.tx.push({ type: 'request', request: req }, now));
      // the ACK for a 2xx is its own transaction (§17.1.1.3): the dialog takes it
      const call = this.dialogs.get(dialogKey(ids.callId, ids.to.params.tag ?? '', ids.from.params.tag ?? ''));
      if (!call) return;
      call.sipBytesIn += size;
      const inv = this.inviteTxOf.get(call);
      if (inv) this.runServer(inv, inv.tx.push({ type: 'request', request: req }, now));
      else call.onAck();
      return;
    }

    const existing = this.serverTxs.get(key);
    if (existing) {
      if (existing.call) existing.call.sipBytesIn += size;
      return this.runServer(existing, existing.tx.push({ type: 'request', request: req }, now));
    }
    if (this.serverTxs.size >= MAX_SERVER_TRANSACTIONS) {
      this.warn.warn({ remote: `${flow.remoteAddress}:${flow.remotePort}`, limit: MAX_SERVER_TRANSACTIONS }, 'too many SIP transactions: answering 503');
      this.stateless(req, flow, 503, undefined, [['Retry-After', '5']]);
      return;
    }
    const entry: ServerTxEntry = { tx: new SipServerTransaction(req, { reliable: flow.transport === 'TCP' }), flow, key };
    this.serverTxs.set(key, entry);
    const reply = (res: SipResponse) => this.runServer(entry, entry.tx.push({ type: 'respond', response: res }, Date.now()));
    const simple = (status: number, headers: [string, string][] = []) =>
      reply(createResponse(req, status, { toTag: ids.to.params.tag === undefined ? newTag() : undefined, headers: [['Server', SIP_SERVER_NAME], ...headers] }));

    if (req.method === 'CANCEL') {
      // §9.2: the CANCEL matches the INVITE by branch; it gets its own 200, the INVITE a 487
      const inv = this.serverTxs.get(transactionKey(req, 'INVITE'));
      if (!inv) return simple(481);
      simple(200);
      inv.call?.onCancel();
      return;
    }
    if (req.method === 'INVITE') {
      reply(createResponse(req, 100, { headers: [['Server', SIP_SERVER_NAME]] }));
    }

    const toTag = ids.to.params.tag;
    if (toTag !== undefined) {
      const call = this.dialogs.get(dialogKey(ids.callId, toTag, ids.from.params.tag ?? ''));
      if (!call) return simple(481);
      entry.call = call;
      call.sipBytesIn += size;
      call.touch();
      if (!call.dialog.acceptRemoteSeq(ids.cseq.seq)) return simple(500, [['Retry-After', '1']]);
      switch (req.method) {
        case 'INVITE': {
          const pending = this.inviteTxOf.get(call);
          if (!call.established || (pending && pending.tx.state === 'proceeding')) return simple(500, [['Retry-After', '1']]);
          this.inviteTxOf.set(call, entry);
          call.onReinvite(req, reply);
          return;
        }
        case 'BYE':
          reply(call.onBye(req));
          return;
        case 'OPTIONS':
          return simple(200, [['Allow', ALLOWED_METHODS], ['Accept', 'application/sdp']]);
        case 'INFO':
          // e.g. picture_fast_update (RFC 5168): we cannot ask the publisher for a keyframe; accepted and ignored
          return simple(200);
        default:
          return this.unsupported(req, simple);
      }
    }

    switch (req.method) {
      case 'INVITE':
        this.newCall(req, ids, flow, entry);
        return;
      case 'OPTIONS':
        return simple(200, [['Allow', ALLOWED_METHODS], ['Accept', 'application/sdp']]);
      case 'BYE':
      case 'INFO':
        return simple(481);
      default:
        return this.unsupported(req, simple);
    }
  }

  /** 405 for methods we know and do not serve (we are no registrar), 501 for the rest (§8.2.1). */
  private unsupported(req: SipRequest, simple: (status: number, headers?: [string, string][]) => void): void {
    const known = ['REGISTER', 'SUBSCRIBE', 'NOTIFY', 'MESSAGE', 'PUBLISH', 'REFER', 'UPDATE', 'PRACK'];
    if (known.includes(req.method)) simple(405, [['Allow', ALLOWED_METHODS]]);
    else simple(501, [['Allow', ALLOWED_METHODS]]);
  }

  private newCall(req: SipRequest, ids: SipRequestIds, flow: Flow, entry: ServerTxEntry): void {
    const call = new SipCall(req, ids, flow, this.env, (res) => this.runServer(entry, entry.tx.push({ type: 'respond', response: res }, Date.now())), newTag());
    entry.call = call;
    this.dialogs.set(call.dialog.key, call);
    this.inviteTxOf.set(call, entry);
    void call.handleInvite().finally(() => this.reschedule());
  }

  private runServer(entry: ServerTxEntry, actions: SipTxAction[]): void {
    for (const a of actions) {
      switch (a.type) {
        case 'send':
          this.send(entry.flow, a.message, entry.call);
          break;
        case 'ack':
          entry.call?.onAck();
          break;
        case 'timeout':
          if (entry.call && entry.tx.response && entry.tx.response.status < 300) entry.call.onAckTimeout();
          break;
        case 'terminated':
          if (this.serverTxs.get(entry.key) === entry) this.serverTxs.delete(entry.key);
          if (entry.call && this.inviteTxOf.get(entry.call) === entry) this.inviteTxOf.delete(entry.call);
          break;
        default:
          break;
      }
    }
    this.reschedule();
  }

  private onResponse(res: SipResponse): void {
    const entry = this.clientTxs.get(transactionKey(res));
    if (!entry) return; // a stray or late response (§17.1.3: dropped)
    this.runClient(entry, entry.tx.push({ type: 'response', response: res }, Date.now()));
  }

  /** Sends `req` through a new client transaction on `flow`; resolves with the final response, null on timeout. */
  private request(flow: Flow, req: SipRequest): Promise<SipResponse | null> {
    return new Promise((resolve) => {
      if (this.closing && flow.transport === 'TCP') {
        resolve(null);
        return;
      }
      const tx = new SipClientTransaction(req, { reliable: flow.transport === 'TCP' });
      const key = transactionKey({ kind: 'response', status: 0, reason: '', headers: req.headers, body: req.body });
      const entry: ClientTxEntry = { tx, flow, key, resolve, settled: false };
      this.clientTxs.set(key, entry);
      this.runClient(entry, tx.start(Date.now()));
    });
  }

  private runClient(entry: ClientTxEntry, actions: SipTxAction[]): void {
    const settle = (res: SipResponse | null) => {
      if (entry.settled) return;
      entry.settled = true;
      entry.resolve(res);
    };
    for (const a of actions) {
      if (a.type === 'send') {
        if (!entry.flow.write(serializeSipMessage(a.message))) settle(null);
      } else if (a.type === 'response' && a.response.status >= 200) settle(a.response);
      else if (a.type === 'timeout') settle(null);
      else if (a.type === 'terminated') {
        settle(null);
        if (this.clientTxs.get(entry.key) === entry) this.clientTxs.delete(entry.key);
      }
    }
    this.reschedule();
  }

  // ------------------------------------------------------------------------------------------------------------
  // The one timer

  private reschedule(): void {
    if (this.closing) return;
    let min = Infinity;
    for (const e of this.serverTxs.values()) {
      const d = e.tx.nextDeadline();
      if (d !== null && d < min) min = d;
    }
    for (const e of this.clientTxs.values()) {
      const d = e.tx.nextDeadline();
      if (d !== null && d < min) min = d;
    }
    for (const c of this.dialogs.values()) {
      const d = c.nextDeadline();
      if (d !== null && d < min) min = d;
    }
    if (min === Infinity) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.timerAt = Infinity;
      return;
    }
    if (this.timer && this.timerAt <= min) return;
    clearTimeout(this.timer);
    this.timerAt = min;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, min - Date.now()));
    this.timer.unref();
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = Date.now();
    for (const e of [...this.serverTxs.values()]) {
      const d = e.tx.nextDeadline();
      if (d !== null && d <= now) this.runServer(e, e.tx.push({ type: 'timer' }, now));
    }
    for (const e of [...this.clientTxs.values()]) {
      const d = e.tx.nextDeadline();
      if (d !== null && d <= now) this.runClient(e, e.tx.push({ type: 'timer' }, now));
    }
    for (const c of [...this.dialogs.values()]) {
      const d = c.nextDeadline();
      if (d !== null && d <= now) c.tick(now);
    }
    this.reschedule();
  }

  // ------------------------------------------------------------------------------------------------------------

  calls(): SipCall[] {
    return [...new Set(this.dialogs.values())];
  }

  async close(): Promise<void> {
    // hang up first (BYE goes out on the still-open sockets), then stop
    for (const c of this.calls()) c.close('server shutting down');
    this.closing = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const e of this.clientTxs.values()) if (!e.settled) {
      e.settled = true;
      e.resolve(null);
    }
    this.clientTxs.clear();
    this.serverTxs.clear();
    this.transcoders.closeAll();
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (const s of this.connections) s.destroy();
    await Promise.all([
      new Promise<void>((resolve) => this.tcp.close(() => resolve())),
      new Promise<void>((resolve) => this.udp.close(() => resolve())),
    ]);
  }
}

/**
 * `paths.<p>.sip.extension` → path name, for the exact path names of the config (a `~regex` entry names no one
 * path an extension could call).
 */
export function sipExtensions(config: Config): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, conf] of Object.entries(config.paths ?? {})) {
    const ext = conf.sip.extension;
    if (ext !== undefined && !name.startsWith('~')) out.set(ext, name);
  }
  return out;
}

/**
 * Starts the SIP listener on UDP and TCP `port` (the same number for both).
 * @throws when a socket cannot be bound
 */
export async function startSipServer(opts: SipServerOptions): Promise<RunningSipServer> {
  const server = new SipServer(opts);
  await server.listen();
  log.debug({ port: server.port }, 'SIP listener bound (UDP and TCP)');
  return {
    port: server.port,
    calls: () => server.calls(),
    close: () => server.close(),
  };
}
