import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createResponse, parseSipDatagram, SipHeaders, type SipRequest, type SipResponse } from '../../../src/signaling/sip/message.js';
import {
  ackFor,
  SipClientTransaction,
  SipServerTransaction,
  T1_MS,
  T2_MS,
  T4_MS,
  TIMEOUT_MS,
  TIMER_D_MS,
  transactionKey,
  type SipTxAction,
} from '../../../src/signaling/sip/transaction.js';

const FIXTURES = new URL('../../../../test/fixtures/sip/', import.meta.url);
const load = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, FIXTURES)));

const invite = parseSipDatagram(load('sipp-udp-0-invite.bin')) as SipRequest;
const bye = parseSipDatagram(load('sipp-udp-4-bye.bin')) as SipRequest;
const ack2xx = parseSipDatagram(load('sipp-udp-3-ack.bin')) as SipRequest;

/** The ACK a UAC sends for a non-2xx final response: same branch as the INVITE. */
function ackNon2xx(res: SipResponse): SipRequest {
  return ackFor(invite, res);
}

type Tx = { push(input: { type: 'timer' }, nowMs: number): SipTxAction[]; nextDeadline(): number | null };

/** Fires every deadline up to `untilMs` (a fake clock stepping from deadline to deadline); returns what happened when. */
function runUntil(tx: Tx, untilMs: number): { at: number; action: SipTxAction }[] {
  const out: { at: number; action: SipTxAction }[] = [];
  for (;;) {
    const d = tx.nextDeadline();
    if (d === null || d > untilMs) return out;
    for (const action of tx.push({ type: 'timer' }, d)) out.push({ at: d, action });
  }
}

const sends = (events: { at: number; action: SipTxAction }[]): number[] => events.filter((e) => e.action.type === 'send').map((e) => e.at);
const types = (actions: SipTxAction[]): string[] => actions.map((a) => a.type);

/** The retransmission times of Timer G/E from `start`: T1, doubling, capped at T2, before `end`. */
function doublingTimes(start: number, end: number, cap = T2_MS): number[] {
  const out: number[] = [];
  let interval = T1_MS;
  for (let t = start + T1_MS; t < end; ) {
    out.push(t);
    interval = Math.min(interval * 2, cap);
    t += interval;
  }
  return out;
}

describe('INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1)', () => {
  it('UDP: 100 Trying, then the 200 OK is retransmitted (Timer G: 0.5, 1, 2, 4, 4… s) until the ACK arrives', () => {
    const tx = new SipServerTransaction(invite, { reliable: false });
    assert.equal(tx.state, 'proceeding');
    assert.deepEqual(types(tx.push({ type: 'respond', response: createResponse(invite, 100) }, 0)), ['send']);
    assert.deepEqual(types(tx.push({ type: 'request', request: invite }, 50)), ['send'], 'a retransmitted INVITE gets the 100 again');
    const ok = createResponse(invite, 200, { toTag: 't' });
    assert.deepEqual(types(tx.push({ type: 'respond', response: ok }, 100)), ['send']);
    assert.equal(tx.state, 'accepted');
    assert.deepEqual(sends(runUntil(tx, 7000)), [600, 1600, 3600]);
    // the INVITE again (our 200 was lost): the 200 again
    assert.deepEqual(tx.push({ type: 'request', request: invite }, 7050), [{ type: 'send', message: ok }]);
    const acked = tx.push({ type: 'request', request: ack2xx }, 7100);
    assert.deepEqual(types(acked), ['ack']);
    assert.equal(tx.state, 'confirmed');
    // no more retransmissions; Timer L (64·T1 after the 200) ends it, absorbing stray INVITEs meanwhile
    assert.deepEqual(tx.push({ type: 'request', request: invite }, 8000), []);
    const rest = runUntil(tx, 60_000);
    assert.deepEqual(rest.map((e) => [e.at, e.action.type]), [[100 + TIMEOUT_MS, 'terminated']]);
  });

  it('UDP: no ACK for the 200 → retransmissions until Timer H (32 s), then timeout H', () => {
    const tx = new SipServerTransaction(invite, { reliable: false });
    tx.push({ type: 'respond', response: createResponse(invite, 200, { toTag: 't' }) }, 0);
    const events = runUntil(tx, 60_000);
    assert.deepEqual(sends(events), doublingTimes(0, TIMEOUT_MS));
    assert.deepEqual(events.slice(-2).map((e) => [e.at, e.action.type]), [
      [TIMEOUT_MS, 'timeout'],
      [TIMEOUT_MS, 'terminated'],
    ]);
    assert.equal(tx.state, 'terminated');
    assert.deepEqual(tx.push({ type: 'request', request: invite }, 40_000), []);
  });

  it('UDP: 486 → retransmitted until its ACK (same branch), then Timer I (T4) absorbs ACK copies', () => {
    const tx = new SipServerTransaction(invite, { reliable: false });
    const busy = createResponse(invite, 486, { toTag: 't' });
    tx.push({ type: 'respond', response: busy }, 0);
    assert.equal(tx.state, 'completed');
    assert.deepEqual(sends(runUntil(tx, 2000)), [500, 1500]);
    assert.deepEqual(tx.push({ type: 'request', request: ackNon2xx(busy) }, 2100), []);
    assert.equal(tx.state, 'confirmed');
    assert.equal(tx.nextDeadline(), 2100 + T4_MS);
    assert.deepEqual(tx.push({ type: 'request', request: ackNon2xx(busy) }, 2200), []);
    assert.deepEqual(runUntil(tx, 60_000).map((e) => [e.at, e.action.type]), [[2100 + T4_MS, 'terminated']]);
  });

  it('TCP: no retransmissions; an ACK for a 4xx ends it at once (Timer I = 0); no ACK → Timer H', () => {
    const a = new SipServerTransaction(invite, { reliable: true });
    const notFound = createResponse(invite, 404, { toTag: 't' });
    a.push({ type: 'respond', response: notFound }, 0);
    assert.equal(a.nextDeadline(), TIMEOUT_MS);
    assert.deepEqual(types(a.push({ type: 'request', request: ackNon2xx(notFound) }, 10)), ['terminated']);

    const b = new SipServerTransaction(invite, { reliable: true });
    b.push({ type: 'respond', response: createResponse(invite, 200, { toTag: 't' }) }, 0);
    const events = runUntil(b, 60_000);
    assert.deepEqual(sends(events), []);
    assert.deepEqual(events.map((e) => e.action.type), ['timeout', 'terminated']);
  });

  it('a response after the final one is ignored, except further 2xx (RFC 6026)', () => {
    const tx = new SipServerTransaction(invite, { reliable: false });
    tx.push({ type: 'respond', response: createResponse(invite, 200, { toTag: 't' }) }, 0);
    assert.deepEqual(tx.push({ type: 'respond', response: createResponse(invite, 487, { toTag: 't' }) }, 1), []);
    assert.deepEqual(types(tx.push({ type: 'respond', response: createResponse(invite, 200, { toTag: 't' }) }, 2)), ['send']);
  });
});

describe('non-INVITE server transaction (§17.2.2)', () => {
  it('UDP: retransmissions absorbed in Trying, answered in Proceeding/Completed, Timer J = 32 s', () => {
    const tx = new SipServerTransaction(bye, { reliable: false });
    assert.equal(tx.state, 'trying');
    assert.deepEqual(tx.push({ type: 'request', request: bye }, 10), []);
    tx.push({ type: 'respond', response: createResponse(bye, 100) }, 20);
    assert.deepEqual(types(tx.push({ type: 'request', request: bye }, 30)), ['send']);
    const ok = createResponse(bye, 200);
    tx.push({ type: 'respond', response: ok }, 40);
    assert.equal(tx.state, 'completed');
    assert.deepEqual(tx.push({ type: 'request', request: bye }, 50), [{ type: 'send', message: ok }]);
    assert.deepEqual(runUntil(tx, 60_000).map((e) => [e.at, e.action.type]), [[40 + TIMEOUT_MS, 'terminated']]);
  });

  it('TCP: the final response ends it (Timer J = 0)', () => {
    const tx = new SipServerTransaction(bye, { reliable: true });
    assert.deepEqual(types(tx.push({ type: 'respond', response: createResponse(bye, 200) }, 0)), ['send', 'terminated']);
    assert.equal(tx.nextDeadline(), null);
  });
});

/** A BYE we send, with its own branch. */
function ourRequest(method: string): SipRequest {
  const h = new SipHeaders([
    ['Via', 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours1;rport'],
    ['From', '<sip:live~cam1@127.0.0.1>;tag=gw'],
    ['To', '<sip:sipp@127.0.0.1>;tag=ph'],
    ['Call-ID', 'c1'],
    ['CSeq', `2 ${method}`],
  ]);
  return { kind: 'request', method, uri: 'sip:sipp@127.0.0.1:5062', headers: h, body: new Uint8Array(0) };
}

function responseTo(req: SipRequest, status: number): SipResponse {
  return createResponse(req, status);
}

describe('non-INVITE client transaction (§17.1.2)', () => {
  it('UDP: Timer E retransmits at 0.5, 1, 2, 4, 4… s; Timer F gives up at 32 s', () => {
    const req = ourRequest('BYE');
    const tx = new SipClientTransaction(req, { reliable: false });
    assert.deepEqual(tx.start(0), [{ type: 'send', message: req }]);
    const events = runUntil(tx, 60_000);
    assert.deepEqual(sends(events), doublingTimes(0, TIMEOUT_MS));
    assert.deepEqual(events.slice(-2).map((e) => e.action), [{ type: 'timeout', timer: 'F' }, { type: 'terminated' }]);
  });

  it('UDP: a provisional switches Timer E to T2; the final response goes to the TU once, then Timer K (T4)', () => {
    const req = ourRequest('OPTIONS');
    const tx = new SipClientTransaction(req, { reliable: false });
    tx.start(0);
    assert.deepEqual(sends(runUntil(tx, 600)), [500]);
    assert.deepEqual(types(tx.push({ type: 'response', response: responseTo(req, 100) }, 700)), ['response']);
    assert.equal(tx.state, 'proceeding');
    assert.deepEqual(sends(runUntil(tx, 10_000)), [1500, 5500, 9500]);
    const ok = responseTo(req, 200);
    assert.deepEqual(tx.push({ type: 'response', response: ok }, 10_000), [{ type: 'response', response: ok }]);
    assert.equal(tx.state, 'completed');
    assert.deepEqual(tx.push({ type: 'response', response: ok }, 10_100), [], 'retransmitted 200 absorbed');
    assert.deepEqual(runUntil(tx, 60_000).map((e) => [e.at, e.action.type]), [[10_000 + T4_MS, 'terminated']]);
  });

  it('TCP: no retransmissions, the final response ends it', () => {
    const req = ourRequest('BYE');
    const tx = new SipClientTransaction(req, { reliable: true });
    tx.start(0);
    assert.equal(tx.nextDeadline(), TIMEOUT_MS);
    assert.deepEqual(types(tx.push({ type: 'response', response: responseTo(req, 481) }, 5)), ['response', 'terminated']);
  });
});

describe('INVITE client transaction (§17.1.1)', () => {
  it('UDP: Timer A doubles without cap (0.5, 1, 2, 4, 8, 16 s) until Timer B (32 s)', () => {
    const req = ourRequest('INVITE');
    const tx = new SipClientTransaction(req, { reliable: false });
    tx.start(0);
    const events = runUntil(tx, 60_000);
    assert.deepEqual(sends(events), [500, 1500, 3500, 7500, 15500, 31500]);
    assert.deepEqual(events.slice(-2).map((e) => e.action), [{ type: 'timeout', timer: 'B' }, { type: 'terminated' }]);
  });

  it('UDP: 180 stops Timer A; a 486 is ACKed (same branch), retransmitted 486s get the ACK again, Timer D ends it', () => {
    const req = ourRequest('INVITE');
    const tx = new SipClientTransaction(req, { reliable: false });
    tx.start(0);
    tx.push({ type: 'response', response: responseTo(req, 180) }, 100);
    assert.equal(tx.nextDeadline(), TIMEOUT_MS, 'only Timer B is left');
    const busy = createResponse(req, 486, { toTag: 'x' });
    const actions = tx.push({ type: 'response', response: busy }, 200);
    assert.deepEqual(types(actions), ['response', 'send']);
    const ack = (actions[1] as { message: SipRequest }).message;
    assert.equal(ack.method, 'ACK');
    assert.equal(ack.headers.get('CSeq'), '2 ACK');
    assert.equal(ack.headers.get('Via'), req.headers.get('Via'));
    assert.equal(ack.headers.get('To'), busy.headers.get('To'));
    assert.deepEqual(tx.push({ type: 'response', response: busy }, 300), [{ type: 'send', message: ack }]);
    assert.deepEqual(runUntil(tx, 60_000).map((e) => [e.at, e.action.type]), [[200 + TIMER_D_MS, 'terminated']]);
  });

  it('a 2xx ends the INVITE transaction at once (its ACK belongs to the TU)', () => {
    const req = ourRequest('INVITE');
    const tx = new SipClientTransaction(req, { reliable: false });
    tx.start(0);
    assert.deepEqual(types(tx.push({ type: 'response', response: responseTo(req, 200) }, 10)), ['response', 'terminated']);
  });
});

describe('transaction matching (§17.1.3, §17.2.3)', () => {
  it('INVITE and its non-2xx ACK share a key; the 2xx ACK (new branch) and CANCEL do not', () => {
    const busy = createResponse(invite, 486, { toTag: 't' });
    assert.equal(transactionKey(ackNon2xx(busy)), transactionKey(invite));
    assert.notEqual(transactionKey(ack2xx), transactionKey(invite));
    const cancel: SipRequest = { ...invite, method: 'CANCEL', headers: new SipHeaders(invite.headers.entries()) };
    cancel.headers.set('CSeq', '1 CANCEL');
    assert.notEqual(transactionKey(cancel), transactionKey(invite));
    assert.equal(transactionKey(cancel, 'INVITE'), transactionKey(invite));
  });

  it('responses match client transactions by branch and CSeq method', () => {
    const req = ourRequest('BYE');
    const key = transactionKey({ kind: 'response', status: 0, reason: '', headers: req.headers, body: req.body });
    assert.equal(transactionKey(responseTo(req, 200)), key);
    assert.notEqual(transactionKey(responseTo(ourRequest('OPTIONS'), 200)), key);
  });

  it('RFC 2543 requests (no magic cookie) match on Call-ID, CSeq, From tag and Via', () => {
    const old = parseSipDatagram(
      new TextEncoder().encode(
        'INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9\r\nFrom: <sip:a@h>;tag=77\r\nTo: <sip:b@h>\r\nCall-ID: old\r\nCSeq: 5 INVITE\r\n\r\n',
      ),
    );
    assert.equal(transactionKey(old), '2543|old|5|77|SIP/2.0/UDP 192.0.2.9|INVITE');
  });
});
