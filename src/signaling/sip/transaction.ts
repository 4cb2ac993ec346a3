/**
 * SIP transactions (RFC 3261 §17, with the INVITE server "Accepted" state of RFC 6026 §7.1): retransmissions,
 * absorption of retransmitted requests, and the timers, all as data.
 *
 * Sans-I/O: each transaction is a state machine driven by `push(input, nowMs)` that returns actions (send this
 * message, hand that to the transaction user, give up); `nextDeadline()` says when it wants a `{type:'timer'}`
 * push. The caller owns the socket and the one real timer. A test steps the clock by hand.
 *
 * Timers (§17, Table 4), with T1 = 500 ms, T2 = 4 s, T4 = 5 s:
 * - INVITE client:   A (retransmit INVITE, T1 doubling, unreliable only), B (64·T1: give up), D (32 s: absorb
 *   retransmitted final responses; 0 over reliable transports)
 * - non-INVITE client: E (retransmit, T1 doubling to T2; T2 once a provisional came), F (64·T1: give up),
 *   K (T4: absorb retransmitted responses; 0 over reliable)
 * - INVITE server:   G (retransmit the final response, T1 doubling to T2, unreliable only), H (64·T1: no ACK
 *   came), I (T4: absorb ACK retransmissions; 0 over reliable), L (64·T1, RFC 6026: absorb INVITE
 *   retransmissions after a 2xx)
 * - non-INVITE server: J (64·T1: absorb request retransmissions; 0 over reliable)
 *
 * 2xx to INVITE: RFC 3261 §13.3.1.4 has the UAS core retransmit it until the ACK comes; here the server
 * transaction does it in its Accepted state with Timer G, over unreliable transports only (over TCP the 2xx
 * cannot be lost between us and the next hop), and reports Timer H as a timeout so the core ends the call.
 */
import { ParseError } from '../../errors.js';
import {
  BRANCH_MAGIC_COOKIE,
  parseCSeq,
  parseVia,
  SipHeaders,
  type SipMessage,
  type SipRequest,
  type SipResponse,
} from './message.js';

/** RTT estimate (§17.1.1.1): "T1 ... 500 ms default". */
export const T1_MS = 500;
/** Maximum retransmit interval for non-INVITE requests and INVITE responses (§17.1.2.2): 4 s. */
export const T2_MS = 4000;
/** Maximum duration a message remains in the network (§17.1.2.2): 5 s. */
export const T4_MS = 5000;
/** Timer B, F, H, J, L: 64·T1 = 32 s. */
export const TIMEOUT_MS = 64 * T1_MS;
/** Timer D: "at least 32 seconds for unreliable transports" (§17.1.1.2). */
export const TIMER_D_MS = 32_000;

/** What a transaction asks its owner to do. */
export type SipTxAction =
  /** transmit (or retransmit) a message on the transaction's transport flow */
  | { type: 'send'; message: SipMessage }
  /** server INVITE: the ACK for our 2xx reached us (the TU confirms the dialog) */
  | { type: 'ack'; request: SipRequest }
  /** client: a response for the TU (provisional or final; retransmissions are absorbed) */
  | { type: 'response'; response: SipResponse }
  /** a timer ran out: B/F (no final response to our request), H (no ACK for our final response) */
  | { type: 'timeout'; timer: 'B' | 'F' | 'H' }
  /** the transaction is over: forget it */
  | { type: 'terminated' };

/** Inputs of a server transaction. */
export type SipServerTxInput =
  /** a request that matched this transaction: a retransmission, an ACK (non-2xx, or the 2xx ACK the dialog routed here) */
  | { type: 'request'; request: SipRequest }
  /** the TU answers */
  | { type: 'respond'; response: SipResponse }
  | { type: 'timer' };

/** Inputs of a client transaction. */
export type SipClientTxInput = { type: 'response'; response: SipResponse } | { type: 'timer' };

/** Server transaction states (§17.2.1, §17.2.2; `accepted` from RFC 6026). */
export type SipServerTxState = 'trying' | 'proceeding' | 'completed' | 'accepted' | 'confirmed' | 'terminated';
/** Client transaction states (§17.1.1, §17.1.2). */
export type SipClientTxState = 'calling' | 'trying' | 'proceeding' | 'completed' | 'terminated';

/** Transport facts a transaction needs. */
export interface SipTxOptions {
  /** TCP/TLS/SCTP: no retransmissions, zero-length absorb timers (§17.1.1.2, §17.2.1) */
  reliable: boolean;
}

/**
 * A server transaction (§17.2): created for a request that matched none; the request itself goes to the TU by
 * the caller (it is not an action). INVITE transactions start in `proceeding`, others in `trying`.
 */
export class SipServerTransaction {
  readonly isInvite: boolean;
  state: SipServerTxState;
  private lastResponse: SipResponse | undefined;
  /** absolute deadlines, ms */
  private timerG: number | undefined;
  private intervalG = T1_MS;
  private timerH: number | undefined;
  private timerI: number | undefined;
  private timerJ: number | undefined;
  private timerL: number | undefined;

  constructor(
    readonly request: SipRequest,
    readonly options: SipTxOptions,
  ) {
    this.isInvite = request.method === 'INVITE';
    this.state = this.isInvite ? 'proceeding' : 'trying';
  }

  /** The last response the TU sent, if any. */
  get response(): SipResponse | undefined {
    return this.lastResponse;
  }

  /** When the transaction needs a `{type:'timer'}` push; null when it waits for nothing. */
  nextDeadline(): number | null {
    let d: number | null = null;
    for (const t of [this.timerG, this.timerH, this.timerI, this.timerJ, this.timerL]) if (t !== undefined && (d === null || t < d)) d = t;
    return d;
  }

  push(input: SipServerTxInput, nowMs: number): SipTxAction[] {
    if (this.state === 'terminated') return [];
    switch (input.type) {
      case 'request':
        return this.isInvite ? this.inviteRequest(input.request, nowMs) : this.nonInviteRequest();
      case 'respond':
        return this.isInvite ? this.inviteRespond(input.response, nowMs) : this.nonInviteRespond(input.response, nowMs);
      case 'timer':
        return this.timers(nowMs);
    }
  }

  private resend(): SipTxAction[] {
    return this.lastResponse ? [{ type: 'send', message: this.lastResponse }] : [];
  }

  private inviteRequest(req: SipRequest, nowMs: number): SipTxAction[] {
    if (req.method === 'ACK') {
      if (this.state === 'completed') {
        // §17.2.1: ACK for a non-2xx final response
        this.state = 'confirmed';
        this.timerG = undefined;
        this.timerH = undefined;
        if (this.options.reliable) return this.terminate();
        this.timerI = nowMs + T4_MS;
        return [];
      }
      if (this.state === 'accepted') {
        // RFC 6026 §7.1: the ACK goes to the TU; retransmitted INVITEs are still absorbed until Timer L
        this.timerG = undefined;
        this.timerH = undefined;
        this.state = 'confirmed';
        return [{ type: 'ack', request: req }];
      }
      return []; // confirmed: ACK retransmissions are absorbed
    }
    // a retransmitted INVITE
    if (this.state === 'proceeding' || this.state === 'completed' || this.state === 'accepted') return this.resend();
    return [];
  }

  private inviteRespond(res: SipResponse, nowMs: number): SipTxAction[] {
    if (this.state === 'proceeding') {
      this.lastResponse = res;
      if (res.status < 200) return [{ type: 'send', message: res }];
      this.state = res.status < 300 ? 'accepted' : 'completed';
      if (!this.options.reliable) {
        this.intervalG = T1_MS;
        this.timerG = nowMs + T1_MS;
      }
      this.timerH = nowMs + TIMEOUT_MS;
      if (res.status < 300) this.timerL = nowMs + TIMEOUT_MS;
      return [{ type: 'send', message: res }];
    }
    if (this.state === 'accepted' && res.status >= 200 && res.status < 300) {
      // RFC 6026 §7.1: further 2xx from the TU are passed on
      this.lastResponse = res;
      return [{ type: 'send', message: res }];
    }
    return [];
  }

  private nonInviteRequest(): SipTxAction[] {
    // §17.2.2: absorbed in Trying, answered with the last response in Proceeding and Completed
    if (this.state === 'proceeding' || this.state === 'completed') return this.resend();
    return [];
  }

  private nonInviteRespond(res: SipResponse, nowMs: number): SipTxAction[] {
    if (this.state !== 'trying' && this.state !== 'proceeding') return [];
    this.lastResponse = res;
    if (res.status < 200) {
      this.state = 'proceeding';
      return [{ type: 'send', message: res }];
    }
    this.state = 'completed';
    const out: SipTxAction[] = [{ type: 'send', message: res }];
    if (this.options.reliable) return [...out, ...this.terminate()];
    this.timerJ = nowMs + TIMEOUT_MS;
    return out;
  }

  private timers(nowMs: number): SipTxAction[] {
    const out: SipTxAction[] = [];
    if (this.timerH !== undefined && nowMs >= this.timerH) {
      // no ACK: the UAC is gone (§17.2.1); for a 2xx the TU ends the dialog (§13.3.1.4)
      out.push({ type: 'timeout', timer: 'H' });
      return [...out, ...this.terminate()];
    }
    if (this.timerG !== undefined && nowMs >= this.timerG) {
      this.intervalG = Math.min(this.intervalG * 2, T2_MS);
      this.timerG = nowMs + this.intervalG;
      out.push(...this.resend());
    }
    for (const t of [this.timerI, this.timerJ, this.timerL]) {
      if (t !== undefined && nowMs >= t) return [...out, ...this.terminate()];
    }
    return out;
  }

  private terminate(): SipTxAction[] {
    this.state = 'terminated';
    this.timerG = this.timerH = this.timerI = this.timerJ = this.timerL = undefined;
    return [{ type: 'terminated' }];
  }
}

/**
 * A client transaction (§17.1): INVITE (Timers A, B, D; the ACK for a non-2xx final response is generated here,
 * §17.1.1.3) or non-INVITE (Timers E, F, K). Call `start()` once for the first send.
 */
export class SipClientTransaction {
  readonly isInvite: boolean;
  state: SipClientTxState;
  private timerRetransmit: number | undefined;
  private interval = T1_MS;
  private timerTimeout: number | undefined;
  private timerAbsorb: number | undefined;
  private ack: SipRequest | undefined;

  constructor(
    readonly request: SipRequest,
    readonly options: SipTxOptions,
  ) {
    this.isInvite = request.method === 'INVITE';
    this.state = this.isInvite ? 'calling' : 'trying';
  }

  /** Sends the request and starts the timers. */
  start(nowMs: number): SipTxAction[] {
    if (!this.options.reliable) this.timerRetransmit = nowMs + T1_MS;
    this.timerTimeout = nowMs + TIMEOUT_MS;
    return [{ type: 'send', message: this.request }];
  }

  nextDeadline(): number | null {
    let d: number | null = null;
    for (const t of [this.timerRetransmit, this.timerTimeout, this.timerAbsorb]) if (t !== undefined && (d === null || t < d)) d = t;
    return d;
  }

  push(input: SipClientTxInput, nowMs: number): SipTxAction[] {
    if (this.state === 'terminated') return [];
    if (input.type === 'timer') return this.timers(nowMs);
    const res = input.response;
    if (this.state === 'completed') {
      // retransmitted final response: an INVITE transaction answers it with the ACK again (§17.1.1.2)
      return this.isInvite && this.ack && res.status >= 300 ? [{ type: 'send', message: this.ack }] : [];
    }
    if (res.status < 200) {
      if (this.state === 'calling') {
        // §17.1.1.2: a provisional response stops INVITE retransmissions
        this.timerRetransmit = undefined;
      }
      if (this.state === 'trying' && this.timerRetransmit !== undefined) {
        // §17.1.2.2: in Proceeding, E fires every T2
        this.interval = T2_MS;
      }
      this.state = 'proceeding';
      return [{ type: 'response', response: res }];
    }
    this.timerRetransmit = undefined;
    this.timerTimeout = undefined;
    const out: SipTxAction[] = [{ type: 'response', response: res }];
    if (this.isInvite && res.status < 300) {
      // §17.1.1.2: a 2xx ends the INVITE transaction; its ACK is the TU's (a transaction of its own)
      return [...out, ...this.terminate()];
    }
    if (this.isInvite) {
      this.ack = ackFor(this.request, res);
      out.push({ type: 'send', message: this.ack });
    }
    this.state = 'completed';
    if (this.options.reliable) return [...out, ...this.terminate()];
    this.timerAbsorb = nowMs + (this.isInvite ? TIMER_D_MS : T4_MS);
    return out;
  }

  private timers(nowMs: number): SipTxAction[] {
    if (this.timerTimeout !== undefined && nowMs >= this.timerTimeout) {
      return [{ type: 'timeout', timer: this.isInvite ? 'B' : 'F' }, ...this.terminate()];
    }
    if (this.timerAbsorb !== undefined && nowMs >= this.timerAbsorb) return this.terminate();
    if (this.timerRetransmit !== undefined && nowMs >= this.timerRetransmit) {
      // A doubles without bound (B ends it first); E doubles up to T2
      this.interval = this.isInvite ? this.interval * 2 : Math.min(this.interval * 2, T2_MS);
      this.timerRetransmit = nowMs + this.interval;
      return [{ type: 'send', message: this.request }];
    }
    return [];
  }

  private terminate(): SipTxAction[] {
    this.state = 'terminated';
    this.timerRetransmit = this.timerTimeout = this.timerAbsorb = undefined;
    return [{ type: 'terminated' }];
  }
}

/**
 * The ACK for a non-2xx final response to `invite` (§17.1.1.3): same Request-URI, Call-ID, From, top Via and
 * Route; To from the response (it carries the tag); CSeq number of the INVITE with method ACK.
 */
export function ackFor(invite: SipRequest, res: SipResponse): SipRequest {
  const h = new SipHeaders();
  const via = invite.headers.getList('Via')[0];
  if (via !== undefined) h.add('Via', via);
  const from = invite.headers.get('From');
  if (from !== undefined) h.add('From', from);
  const to = res.headers.get('To') ?? invite.headers.get('To');
  if (to !== undefined) h.add('To', to);
  const callId = invite.headers.get('Call-ID');
  if (callId !== undefined) h.add('Call-ID', callId);
  const cseq = invite.headers.get('CSeq');
  if (cseq !== undefined) h.add('CSeq', `${parseCSeq(cseq).seq} ACK`);
  for (const r of invite.headers.getAll('Route')) h.add('Route', r);
  h.add('Max-Forwards', '70');
  return { kind: 'request', method: 'ACK', uri: invite.uri, headers: h, body: new Uint8Array(0) };
}

/**
 * The key that matches a message to its transaction (§17.2.3 for requests, §17.1.3 for responses): top Via
 * branch + sent-by + method, where ACK matches the INVITE (CANCEL has its own transaction). Requests without the
 * magic cookie (RFC 2543 clients) fall back to Call-ID + CSeq number + From tag + the whole top Via.
 * `method` overrides the method part: a CANCEL looks up its INVITE with `transactionKey(cancel, 'INVITE')`.
 * @throws ParseError when the Via, CSeq (or, for the fallback, Call-ID and From) cannot be read
 */
export function transactionKey(msg: SipMessage, method?: string): string {
  const viaValue = msg.headers.getList('Via')[0];
  const cseqValue = msg.headers.get('CSeq');
  if (viaValue === undefined || cseqValue === undefined) throw new ParseError('sip', 'no Via or CSeq to match a transaction');
  const via = parseVia(viaValue);
  const cseq = parseCSeq(cseqValue);
  const own = msg.kind === 'request' ? msg.method : cseq.method;
  const key = method ?? (own === 'ACK' ? 'INVITE' : own);
  const branch = via.params.branch ?? '';
  if (branch.startsWith(BRANCH_MAGIC_COOKIE)) {
    // responses match on branch + method only (§17.1.3): the sent-by is ours
    return msg.kind === 'request' ? `${branch}|${via.host.toLowerCase()}:${via.port ?? ''}|${key}` : `${branch}|${key}`;
  }
  const from = msg.headers.get('From') ?? '';
  const tag = /;\s*tag\s*=\s*([^;\s]+)/i.exec(from)?.[1] ?? '';
  return `2543|${msg.headers.get('Call-ID') ?? ''}|${cseq.seq}|${tag}|${viaValue.trim()}|${key}`;
}
