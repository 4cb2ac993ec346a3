/**
 * SIP dialogs and calls of the user agent server (RFC 3261 §12–§15): the INVITE that asks for a path, the
 * answer, the ACK, re-INVITEs, and the BYE from either side.
 *
 * - `pathFromUser` maps the Request-URI user part to a path: a configured `sip.extension`, else the user with
 *   `~` for `/` (`sip:live~cam1@host` reads `live/cam1`).
 * - `SipDialog` holds the dialog state (§12.1.1: Call-ID, tags, remote target, route set, CSeq numbers) and
 *   builds in-dialog requests (BYE, keep-alive OPTIONS).
 * - `SipCall` is one call: it answers the INVITE (401 Digest challenge, 404/480/486/488, or 200 with the SDP
 *   answer), attaches the egress RTP sender to the path as a reader, and is the session the API shows.
 *
 * No sockets and no timers here: responses go out through the transaction the server gave the call, requests
 * through `SipCallEnv.request`, and the keep-alive deadline is data the server arms a timer for.
 */
import { nanoid } from 'nanoid';
import { isIP } from 'node:net';
import { checkNonce, credentialsFromHeader, type DigestCredentials } from '../../auth.js';
import { AuthError, BusyError, errorMessage, NotFoundError, ProtocolError, StreamgateError } from '../../errors.js';
import { log as rootLog, type Logger } from '../../log.js';
import type { Reader, FrameSink } from '../../media/bus/reader.js';
import type { AccessRequest, PathSettings } from '../../media/bus/registry.js';
import type { Role, Session } from '../../media/bus/session.js';
import type { Stream } from '../../media/bus/stream.js';
import { openRtpPair, SipRtpSender, type RtpSocketPair, type SipMediaTarget } from '../../egress/sip/rtp-sender.js';
import { SipTranscoderPool } from '../../egress/sip/g711-transcoder.js';
import { parseSdp, type SessionDescription } from '../sdp/description.js';
import {
  createResponse,
  newBranch,
  parseNameAddr,
  parseSipUri,
  serializeNameAddr,
  serializeVia,
  SipHeaders,
  type SipRequest,
  type SipRequestIds,
  type SipResponse,
} from './message.js';
import { negotiateSipOffer, serializeSipAnswer, type SipMediaPlan, type SipSourceCaps } from './sdp.js';

/** Methods we answer (the Allow header, §20.5). */
export const ALLOWED_METHODS = 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO';
/** What we put in Server / User-Agent. */
export const SIP_SERVER_NAME = 'streamgate';
/**
 * A call with no sign of life from the phone (no SIP request, no RTP/RTCP) for this long gets an in-dialog
 * OPTIONS; no answer (Timer F, 32 s) or 481 ends it. 30 s is the refresh many SIP ALGs need for UDP bindings,
 * and phones that vanish without BYE stop costing an encoder within a minute.
 */
export const KEEPALIVE_INTERVAL_MS = 30_000;

/** What a SIP call needs of the path registry (narrow, STYLE.md §14; the real PathRegistry fits). */
export interface SipPaths {
  settingsOf(path: string): PathSettings;
  waitReady(path: string, req: Omit<AccessRequest, 'action' | 'path'>, timeoutMs?: number): Promise<Stream>;
  addReader(path: string, session: Session, sink: FrameSink, req: Omit<AccessRequest, 'action' | 'path'>, opts?: { catchUp?: boolean }): Promise<Reader>;
  removeReader(reader: Reader): void;
  addSession(session: Session): void;
  removeSession(session: Session, reason: string): void;
}

/** The transport flow a call's INVITE came on: where responses and our requests go. */
export interface SipFlow {
  readonly transport: 'UDP' | 'TCP';
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** our address as the peer reaches it (SDP c=, Contact, Via) */
  readonly localAddress: string;
  readonly localPort: number;
}

/** What the server provides to its calls. */
export interface SipCallEnv {
  registry: SipPaths;
  transcoders: SipTranscoderPool;
  /** `sip.extension` → path (read at each INVITE: a config reload may change it) */
  extensionPath(user: string): string | undefined;
  /**
   * The WWW-Authenticate value for a 401 on `path`, or null when Digest cannot verify the path's credentials
   * (hashed passwords, an external auth service): the call is then refused with 403.
   */
  challenge(path: string, nowMs: number, stale: boolean): string | null;
  /** bind address of the RTP sockets (undefined: all interfaces) */
  mediaHost: string | undefined;
  /** can AAC be transcoded (ffmpeg present) */
  transcodeAvailable(): boolean;
  /** sends a request in a dialog through a client transaction; resolves with its final response, null on timeout */
  request(flow: SipFlow, req: SipRequest): Promise<SipResponse | null>;
  /** the call is over: forget its dialog */
  ended(call: SipCall): void;
  now(): number;
  /** silence before a keep-alive OPTIONS (default KEEPALIVE_INTERVAL_MS) */
  keepaliveMs: number;
}

/**
 * The path a Request-URI user part asks for: a configured extension first, else `~` → `/` (INTERFACE.md).
 * @returns null when there is no user part
 */
export function pathFromUser(user: string | undefined, extensionPath: (user: string) => string | undefined): string | null {
  if (user === undefined || user === '') return null;
  return extensionPath(user) ?? user.replace(/~/g, '/');
}

/** Dialog id (§12): Call-ID + local tag + remote tag. */
export function dialogKey(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}|${localTag}|${remoteTag}`;
}

/** Dialog state (§12.1.1), as the UAS. */
export class SipDialog {
  state: 'early' | 'confirmed' | 'terminated' = 'early';
  /** our CSeq space for requests we send in the dialog (§12.1.1: any start value < 2^31) */
  localSeq = 1;
  remoteSeq: number;
  /** the Contact URI of the phone: where in-dialog requests are addressed */
  remoteTarget: string;
  readonly routeSet: string[];

  private constructor(
    readonly callId: string,
    readonly localTag: string,
    readonly remoteTag: string,
    /** our identity: the INVITE's To, with our tag */
    readonly local: string,
    /** the phone's identity: the INVITE's From, with its tag */
    readonly remote: string,
    remoteTarget: string,
    routeSet: string[],
    remoteSeq: number,
  ) {
    this.remoteTarget = remoteTarget;
    this.routeSet = routeSet;
    this.remoteSeq = remoteSeq;
  }

  /** The dialog an INVITE creates on our 2xx (§12.1.1): route set from Record-Route in order, target from Contact. */
  static fromInvite(req: SipRequest, ids: SipRequestIds, localTag: string): SipDialog {
    const contact = req.headers.getList('Contact')[0];
    let target = req.uri;
    if (contact !== undefined) {
      try {
        target = parseNameAddr(contact).uri;
      } catch {
        // a Contact we cannot read: requests go to the INVITE's Request-URI's sender anyway (the flow)
      }
    }
    const local = serializeNameAddr({ ...ids.to, params: { ...ids.to.params, tag: localTag } });
    return new SipDialog(
      ids.callId,
      localTag,
      ids.from.params.tag ?? '',
      local,
      serializeNameAddr(ids.from),
      target,
      req.headers.getList('Record-Route'),
      ids.cseq.seq,
    );
  }

  get key(): string {
    return dialogKey(this.callId, this.localTag, this.remoteTag);
  }

  /**
   * Checks a request's CSeq against the last one (§12.2.2): lower means out of order (answer 500).
   * @returns false when out of order
   */
  acceptRemoteSeq(seq: number): boolean {
    if (seq < this.remoteSeq) return false;
    this.remoteSeq = seq;
    return true;
  }

  /** Takes a new target from a re-INVITE's Contact (§12.2.2: target refresh). */
  refreshTarget(req: SipRequest): void {
    const contact = req.headers.getList('Contact')[0];
    if (contact === undefined) return;
    try {
      this.remoteTarget = parseNameAddr(contact).uri;
    } catch {
      // keep the old target
    }
  }

  /**
   * An in-dialog request (§12.2.1.1): Request-URI = remote target, Route = route set (loose routing), From/To
   * swapped from the INVITE, our next CSeq, a fresh branch in a Via with `rport` (RFC 3581).
   */
  createRequest(method: string, flow: SipFlow, extra: readonly (readonly [string, string])[] = []): SipRequest {
    this.localSeq++;
    const h = new SipHeaders();
    h.add('Via', serializeVia({ transport: flow.transport, host: hostForHeader(flow.localAddress), port: flow.localPort, params: { branch: newBranch(), rport: '' } }));
    h.add('Max-Forwards', '70');
    h.add('From', this.local);
    h.add('To', this.remote);
    h.add('Call-ID', this.callId);
    h.add('CSeq', `${this.localSeq} ${method}`);
    for (const r of this.routeSet) h.add('Route', r);
    h.add('User-Agent', SIP_SERVER_NAME);
    for (const [k, v] of extra) h.add(k, v);
    return { kind: 'request', method, uri: this.remoteTarget, headers: h, body: new Uint8Array(0) };
  }
}

/** `[v6]` for IPv6 literals in Via/Contact, the address itself otherwise. */
export function hostForHeader(address: string): string {
  return isIP(address) === 6 ? `[${address}]` : address;
}

/** Our Contact for a flow (§8.1.1.8): where the phone sends ACK, BYE and re-INVITEs. */
export function contactFor(flow: SipFlow): string {
  const transport = flow.transport === 'TCP' ? ';transport=tcp' : '';
  return `<sip:${SIP_SERVER_NAME}@${hostForHeader(flow.localAddress)}:${flow.localPort}${transport}>`;
}

/** Extra headers of a response. */
type Headers = readonly (readonly [string, string])[];

/** Sends a final or provisional response through the INVITE's server transaction. */
export type Respond = (res: SipResponse) => void;

/** Call states as the API shows them. */
export type SipCallState = 'inviting' | 'answered' | 'play' | 'ended';

/** Warning (§20.43) for a 488: code 305 "Incompatible media format". */
function warning(text: string): [string, string] {
  return ['Warning', `305 ${SIP_SERVER_NAME} "${text.replace(/["\\]/g, "'").slice(0, 300)}"`];
}

/**
 * One SIP call reading one path: the Session of the API (protocol `sip`, role reader).
 *
 * Lifecycle: `invite()` answers the initial INVITE; `onAck()` confirms; `onReinvite()` / `onBye()` /
 * `onCancel()` come from the phone; `close()` (API kick, shutdown, the bus ending the reader) hangs up with a BYE.
 */
export class SipCall implements Session {
  readonly id = nanoid(12);
  readonly protocol = 'sip' as const;
  role: Role = 'reader';
  path = '';
  readonly remoteAddr: string;
  state: SipCallState = 'inviting';
  readonly createdAt = Date.now();
  /** our To tag: on every response to the INVITE, the dialog's local tag */
  readonly localTag: string;
  readonly dialog: SipDialog;
  /** SIP bytes of this call, counted by the server */
  sipBytesIn = 0;
  sipBytesOut = 0;
  /** Unix ms of the last sign of life from the phone */
  lastActivityMs: number;
  private keepaliveInFlight = false;
  private readonly log: Logger;
  private registered = false;
  private reader: Reader | undefined;
  private sender: SipRtpSender | undefined;
  private pairs: RtpSocketPair[] = [];
  private plans: SipMediaPlan[] = [];
  private stream: Stream | undefined;
  private lastSenderBytesIn = 0;
  private sessionId = String(Date.now());
  private sessionVersion = 0;
  private answer: Uint8Array | undefined;
  private access: Omit<AccessRequest, 'action' | 'path'> & { digest?: DigestCredentials } = { protocol: 'sip', ip: '' };
  private finalSent = false;
  private cancelled = false;
  private over = false;

  constructor(
    readonly invite: SipRequest,
    readonly ids: SipRequestIds,
    readonly flow: SipFlow,
    private readonly env: SipCallEnv,
    private readonly respondInvite: Respond,
    localTag: string,
  ) {
    this.localTag = localTag;
    this.remoteAddr = `${hostForHeader(flow.remoteAddress)}:${flow.remotePort}`;
    this.dialog = SipDialog.fromInvite(invite, ids, localTag);
    this.lastActivityMs = env.now();
    this.log = rootLog.child({ session: this.id, protocol: 'sip', remote: this.remoteAddr, callId: ids.callId });
  }

  get bytesIn(): number {
    return this.sipBytesIn + (this.sender?.bytesIn ?? 0);
  }

  get bytesOut(): number {
    return this.sipBytesOut + (this.sender?.bytesOut ?? 0);
  }

  /** For the API: what is sent where. */
  stats(): Record<string, unknown> {
    return { callId: this.ids.callId, transport: this.flow.transport, media: this.sender?.stats() ?? [] };
  }

  /** The call has a final response and a dialog (accepted, playing) */
  get established(): boolean {
    return this.state === 'answered' || this.state === 'play';
  }

  private respond(status: number, opts: { headers?: Headers; body?: Uint8Array; reason?: string } = {}): void {
    if (this.finalSent && status >= 200) return;
    if (status >= 200) this.finalSent = true;
    const headers: (readonly [string, string])[] = [['Server', SIP_SERVER_NAME]];
    if (status >= 200 && status < 300) headers.push(['Contact', contactFor(this.flow)]);
    headers.push(...(opts.headers ?? []));
    const resOpts: Parameters<typeof createResponse>[2] = { toTag: this.localTag, headers };
    if (opts.body) resOpts.body = opts.body;
    if (opts.reason !== undefined) resOpts.reason = opts.reason;
    this.respondInvite(createResponse(this.invite, status, resOpts));
  }

  /** Refuses the INVITE with `status` and ends the call (no dialog). */
  private refuse(status: number, why: string, headers: Headers = []): void {
    this.log.info({ status, path: this.path || undefined, reason: why }, 'SIP INVITE refused');
    this.respond(status, { headers });
    this.end(why, false);
  }

  /**
   * Answers the initial INVITE: path, credentials, stream, SDP, media sockets, reader, then 200 OK.
   * Resolves when the final response was sent (never rejects: every failure becomes a response).
   */
  async handleInvite(): Promise<void> {
    try {
      await this.answerInvite();
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'SIP INVITE failed');
      if (!this.finalSent) this.respond(500);
      this.end(`internal error: ${errorMessage(err)}`, false);
    }
  }

  private async answerInvite(): Promise<void> {
    const req = this.invite;
    const uri = parseSipUri(req.uri);
    if (uri === null) return this.refuse(416, `unsupported URI scheme in ${req.uri}`);
    // sips: asks for TLS end to end (RFC 3261 §26.2.2), which this listener does not offer
    if (uri.scheme === 'sips') return this.refuse(416, 'sips: needs TLS, which this listener does not offer');
    const path = pathFromUser(uri.user, this.env.extensionPath);
    if (path === null) return this.refuse(404, 'no user part in the Request-URI: nothing names a path');
    this.path = path;
    try {
      this.env.registry.settingsOf(path);
    } catch (err) {
      if (err instanceof NotFoundError) return this.refuse(404, err.message);
      throw err;
    }
    const require = req.headers.getList('Require');
    if (require.length > 0) return this.refuse(420, `unsupported extensions ${require.join(', ')}`, [['Unsupported', require.join(', ')]]);

    let offer: SessionDescription | null;
    try {
      offer = this.offerOf(req);
    } catch (err) {
      if (err instanceof ProtocolError) return this.refuse(err.status, err.message, err.status === 415 ? [['Accept', 'application/sdp']] : []);
      throw err;
    }
    if (offer === null) {
      // RFC 3261 §13.2.1 allows an INVITE without offer (we would offer in the 2xx); we take offers only
      return this.refuse(488, 'INVITE without SDP offer (delayed offer is not supported)', [warning('an SDP offer is required in the INVITE')]);
    }

    const now = this.env.now();
    const authorization = req.headers.get('Authorization');
    this.access = { protocol: 'sip', ip: this.flow.remoteAddress, ...credentialsFromHeader(authorization, 'INVITE', now) };
    let stream: Stream;
    try {
      stream = await this.env.registry.waitReady(path, this.access);
    } catch (err) {
      if (this.aborted) return;
      return this.refuseAccess(err, path);
    }
    if (this.aborted) return;
    this.stream = stream;

    const caps = this.capsOf(stream);
    try {
      this.plans = negotiateSipOffer(offer, caps);
    } catch (err) {
      if (err instanceof ProtocolError) return this.refuse(err.status, err.message, [warning(err.message)]);
      throw err;
    }
    for (const p of this.plans) if (!p.accepted && p.reason) this.log.info({ path, media: p.type, reason: p.reason }, 'SIP media section refused');

    const media: { target: SipMediaTarget; pair: RtpSocketPair }[] = [];
    const ports: number[] = [];
    for (const p of this.plans) {
      if (!p.accepted) {
        ports.push(0);
        continue;
      }
      const pair = await openRtpPair(this.env.mediaHost, isIP(p.accepted.remote.address) === 6 ? 6 : 4);
      if (this.aborted) {
        pair.close();
        return;
      }
      this.pairs.push(pair);
      ports.push(pair.port);
      media.push({ target: targetOf(p), pair });
    }
    if (this.aborted) {
      this.releaseMedia();
      return;
    }
    this.sender = new SipRtpSender({
      path,
      media,
      transcoders: this.env.transcoders,
      onEnd: (reason) => this.hangup(reason),
    });
    this.env.registry.addSession(this);
    this.registered = true;
    let reader: Reader;
    try {
      reader = await this.env.registry.addReader(path, this, this.sender, this.access, { catchUp: true });
    } catch (err) {
      if (this.aborted) return;
      return this.refuseAccess(err, path);
    }
    if (this.aborted) {
      // cancelled or hung up while the reader was being added: end() ran before it existed
      reader.close('call ended while starting');
      this.env.registry.removeReader(reader);
      return;
    }
    this.reader = reader;

    this.answer = Buffer.from(
      serializeSipAnswer(offer, this.plans, { address: this.flow.localAddress, ports, sessionId: this.sessionId, sessionVersion: this.sessionVersion }),
    );
    this.state = 'answered';
    this.respond(200, { headers: [['Allow', ALLOWED_METHODS], ['Content-Type', 'application/sdp']], body: this.answer });
    this.sender.activate();
    this.log.info(
      { path, media: this.plans.filter((p) => p.accepted).map((p) => `${p.type}:${p.accepted?.codec}/${p.accepted?.format.payloadType}`) },
      'SIP call answered',
    );
  }

  /** CANCEL or hang-up while an await was pending: the INVITE is already answered or the call gone. */
  private get aborted(): boolean {
    return this.cancelled || this.over;
  }

  private refuseAccess(err: unknown, path: string): void {
    if (err instanceof AuthError) {
      const nowMs = this.env.now();
      const nonce = this.access.digest?.params.nonce;
      const stale = nonce !== undefined && checkNonce(nonce, nowMs) === 'stale';
      const challenge = this.env.challenge(path, nowMs, stale);
      if (challenge === null) return this.refuse(403, `${err.message} (Digest cannot check this path's credentials)`);
      if (this.access.digest !== undefined) this.log.info({ path, user: this.access.digest.params.username }, 'SIP credentials refused');
      this.respond(401, { headers: [['WWW-Authenticate', challenge]] });
      return this.end('authentication required', false);
    }
    if (err instanceof NotFoundError) return this.refuse(480, err.message);
    if (err instanceof BusyError) return this.refuse(486, err.message);
    if (err instanceof StreamgateError) return this.refuse(500, err.message);
    throw err;
  }

  /** The SDP offer of a request, null when it has no body. */
  private offerOf(req: SipRequest): SessionDescription | null {
    if (req.body.length === 0) return null;
    const type = (req.headers.get('Content-Type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/sdp') throw new ProtocolError(415, `body of type '${type}' (only application/sdp)`);
    const encoding = req.headers.getList('Content-Encoding');
    if (encoding.some((e) => e.toLowerCase() !== 'identity')) throw new ProtocolError(415, `Content-Encoding ${encoding.join(', ')}`);
    try {
      return parseSdp(Buffer.from(req.body.buffer, req.body.byteOffset, req.body.length).toString('utf8'));
    } catch (err) {
      throw new ProtocolError(400, `unreadable SDP: ${errorMessage(err)}`);
    }
  }

  private capsOf(stream: Stream): SipSourceCaps {
    const caps: SipSourceCaps = { transcode: false };
    const video = stream.tracks.find((t) => t.codec === 'h264');
    if (video) caps.video = { sps: video.sps, pps: video.pps };
    const audio = stream.tracks.find((t) => !t.isVideo);
    if (audio && (audio.codec === 'aac' || audio.codec === 'opus')) {
      caps.audio = { codec: audio.codec, channels: audio.channels };
      if (audio.codec === 'aac') caps.transcode = this.env.transcodeAvailable();
    }
    return caps;
  }

  /** CANCEL before the final response (§9.2): 487 for the INVITE. Returns false when it came too late. */
  onCancel(): boolean {
    if (this.finalSent) return false;
    this.cancelled = true;
    this.respond(487);
    this.log.info({ path: this.path || undefined }, 'SIP INVITE cancelled');
    this.end('cancelled by the caller', false);
    return true;
  }

  /** The ACK for our 2xx reached us: the dialog is confirmed. */
  onAck(): void {
    this.touch();
    if (this.state !== 'answered') return;
    this.dialog.state = 'confirmed';
    this.state = 'play';
  }

  /** Our 2xx got no ACK within Timer H (§13.3.1.4): "the session SHOULD be terminated" with a BYE. */
  onAckTimeout(): void {
    this.hangup('no ACK for the 200 OK');
  }

  /** BYE from the phone (§15.1.2): 200 and the end. */
  onBye(req: SipRequest): SipResponse {
    this.log.info({ path: this.path }, 'SIP call ended by the phone');
    this.end('BYE from the phone', false);
    return createResponse(req, 200, { headers: [['Server', SIP_SERVER_NAME]] });
  }

  /**
   * A re-INVITE (§14.2): a new offer from the phone (new address/port, hold/resume, session refresh). It is
   * negotiated like the first one, but must keep the call's codecs; otherwise 488 and the session stays as it
   * was. Without a body, our current answer is sent again as the offer (the ACK's answer is not needed: we
   * keep sending what we send).
   */
  onReinvite(req: SipRequest, respond: Respond): void {
    this.touch();
    this.dialog.refreshTarget(req);
    const reply = (status: number, opts: { headers?: Headers; body?: Uint8Array } = {}) => {
      const headers: (readonly [string, string])[] = [['Server', SIP_SERVER_NAME]];
      if (status >= 200 && status < 300) headers.push(['Contact', contactFor(this.flow)]);
      headers.push(...(opts.headers ?? []));
      const o: Parameters<typeof createResponse>[2] = { headers };
      if (opts.body) o.body = opts.body;
      respond(createResponse(req, status, o));
    };
    if (!this.sender || !this.answer || !this.established) return reply(491);
    let offer: SessionDescription | null;
    try {
      offer = this.offerOf(req);
    } catch (err) {
      if (err instanceof ProtocolError) return reply(err.status, { headers: err.status === 415 ? [['Accept', 'application/sdp']] : [] });
      throw err;
    }
    if (offer === null) {
      return reply(200, { headers: [['Content-Type', 'application/sdp']], body: this.answer });
    }
    const stream = this.stream;
    let plans: SipMediaPlan[];
    try {
      if (!stream) throw new ProtocolError(488, 'the stream is not available');
      plans = negotiateSipOffer(offer, this.capsOf(stream));
    } catch (err) {
      if (err instanceof ProtocolError) return reply(err.status, { headers: [warning(err.message)] });
      throw err;
    }
    // same media, same codecs, in the same sections: only destinations, payload types and directions may change
    const same =
      plans.length === this.plans.length &&
      plans.every((p, i) => (p.accepted === null) === (this.plans[i]!.accepted === null) && (p.accepted === null || p.accepted.codec === this.plans[i]!.accepted!.codec));
    if (!same) return reply(488, { headers: [warning('a re-INVITE cannot change the media of the call')] });
    this.plans = plans;
    this.sender.update(plans.flatMap((p) => (p.accepted ? [targetOf(p)] : [])));
    this.sessionVersion++;
    this.answer = Buffer.from(
      serializeSipAnswer(offer, plans, { address: this.flow.localAddress, ports: this.portsByPlan(), sessionId: this.sessionId, sessionVersion: this.sessionVersion }),
    );
    this.log.info({ path: this.path, sending: plans.filter((p) => p.accepted?.send).map((p) => p.type) }, 'SIP re-INVITE answered');
    reply(200, { headers: [['Content-Type', 'application/sdp']], body: this.answer });
  }

  private portsByPlan(): number[] {
    const ports = this.sender?.ports ?? [];
    let k = 0;
    return this.plans.map((p) => (p.accepted ? (ports[k++] ?? 0) : 0));
  }

  /** Any request from the phone in the dialog, or media/RTCP from it, shows it is alive. */
  touch(): void {
    this.lastActivityMs = this.env.now();
  }

  /** When the server should call `tick()`; null when the call does not need one. */
  nextDeadline(): number | null {
    if (this.over || !this.established) return null;
    return this.lastActivityMs + this.env.keepaliveMs;
  }

  /** Keep-alive: media from the phone counts as life; otherwise an in-dialog OPTIONS asks. */
  tick(nowMs: number): void {
    if (this.over || !this.established) return;
    const mediaIn = this.sender?.bytesIn ?? 0;
    if (mediaIn !== this.lastSenderBytesIn) {
      this.lastSenderBytesIn = mediaIn;
      this.lastActivityMs = nowMs;
      return;
    }
    if (nowMs < this.lastActivityMs + this.env.keepaliveMs || this.keepaliveInFlight) return;
    this.keepaliveInFlight = true;
    this.lastActivityMs = nowMs;
    const req = this.dialog.createRequest('OPTIONS', this.flow, [['Accept', 'application/sdp']]);
    void this.env.request(this.flow, req).then((res) => {
      this.keepaliveInFlight = false;
      if (this.over) return;
      if (res === null) this.hangup('no answer to a keep-alive OPTIONS');
      else if (res.status === 481 || res.status === 408) this.hangup(`keep-alive OPTIONS answered ${res.status}`);
      else this.touch();
    });
  }

  /** Session.close: API kick, config reload, shutdown. */
  close(reason: string): void {
    this.hangup(reason);
  }

  /** Ends the call from our side: BYE when a dialog exists, else a final error response. */
  hangup(reason: string): void {
    if (this.over) return;
    if (!this.finalSent) {
      this.respond(480, { reason: 'Temporarily Unavailable' });
      this.end(reason, false);
      return;
    }
    this.end(reason, this.established);
  }

  /** Tears everything down once; sends BYE when asked. */
  private end(reason: string, sendBye: boolean): void {
    if (this.over) return;
    this.over = true;
    const wasEstablished = this.established;
    this.state = 'ended';
    this.dialog.state = 'terminated';
    if (sendBye && wasEstablished) {
      const bye = this.dialog.createRequest('BYE', this.flow, [['Reason', `SIP;cause=200;text="${reason.replace(/["\\]/g, "'").slice(0, 100)}"`]]);
      this.log.info({ path: this.path, reason }, 'SIP call ended: sending BYE');
      void this.env.request(this.flow, bye).then((res) => {
        if (res === null) this.log.info('the phone did not answer our BYE');
      });
    }
    const reader = this.reader;
    this.reader = undefined;
    if (reader) {
      reader.close(reason);
      this.env.registry.removeReader(reader);
    }
    this.sender?.close(reason);
    this.releaseMedia();
    if (this.registered) this.env.registry.removeSession(this, reason);
    this.env.ended(this);
  }

  private releaseMedia(): void {
    // the sender closes its own pairs (after its RTCP BYE); pairs of a sender never made are closed here
    if (!this.sender) for (const p of this.pairs) p.close();
  }
}

function targetOf(p: SipMediaPlan): SipMediaTarget {
  const a = p.accepted!;
  const t: SipMediaTarget = {
    kind: a.kind,
    codec: a.codec,
    payloadType: a.format.payloadType,
    send: a.send,
    address: a.remote.address,
    rtpPort: a.remote.rtpPort,
    rtcpAddress: a.remote.rtcpAddress,
    rtcpPort: a.remote.rtcpPort,
    rtcpMux: a.remote.rtcpMux,
  };
  if (a.codec === 'h264') t.h264Mode = a.format.fmtp['packetization-mode'] === '0' ? 0 : 1;
  return t;
}
