import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  contactFor,
  dialogKey,
  hostForHeader,
  pathFromUser,
  SipDialog,
  type SipFlow,
} from '../../../src/signaling/sip/dialog.js';
import { parseNameAddr, parseSipDatagram, parseVia, requestIds, type SipRequest } from '../../../src/signaling/sip/message.js';

const FIXTURES = new URL('../../../../test/fixtures/sip/', import.meta.url);
const load = (name: string) => parseSipDatagram(new Uint8Array(readFileSync(new URL(name, FIXTURES)))) as SipRequest;

const udpFlow: SipFlow = { transport: 'UDP', remoteAddress: '192.0.2.9', remotePort: 5062, localAddress: '192.0.2.1', localPort: 5060 };

describe('SIP dialogs', () => {
  it('maps the user part to a path: extension first, else ~ for /', () => {
    const ext = (u: string) => (u === '1001' ? 'live/cam1' : undefined);
    assert.equal(pathFromUser('live~cam1', ext), 'live/cam1');
    assert.equal(pathFromUser('a~b~c', ext), 'a/b/c');
    assert.equal(pathFromUser('cam', ext), 'cam');
    assert.equal(pathFromUser('1001', ext), 'live/cam1');
    assert.equal(pathFromUser('1002', ext), '1002');
    assert.equal(pathFromUser(undefined, ext), null);
    assert.equal(pathFromUser('', ext), null);
  });

  it('a dialog from the baresip INVITE: tags, remote target from Contact, and a BYE that swaps From/To (§12.2.1.1)', () => {
    const invite = load('baresip-1.0.0-invite.bin');
    const ids = requestIds(invite);
    const d = SipDialog.fromInvite(invite, ids, 'ourtag');
    assert.equal(d.key, dialogKey(ids.callId, 'ourtag', ids.from.params.tag!));
    assert.equal(d.remoteTarget, parseNameAddr(invite.headers.get('Contact')!).uri);
    assert.equal(d.state, 'early');

    const bye = d.createRequest('BYE', udpFlow, [['Reason', 'SIP;cause=200']]);
    assert.equal(bye.method, 'BYE');
    assert.equal(bye.uri, d.remoteTarget);
    assert.equal(parseNameAddr(bye.headers.get('From')!).params.tag, 'ourtag');
    assert.equal(parseNameAddr(bye.headers.get('From')!).uri, ids.to.uri);
    assert.equal(parseNameAddr(bye.headers.get('To')!).params.tag, ids.from.params.tag);
    assert.equal(bye.headers.get('Call-ID'), ids.callId);
    assert.equal(bye.headers.get('CSeq'), '2 BYE');
    const via = parseVia(bye.headers.get('Via')!);
    assert.deepEqual([via.transport, via.host, via.port, via.params.rport], ['UDP', '192.0.2.1', 5060, '']);
    assert.ok(via.params.branch!.startsWith('z9hG4bK'));
    assert.equal(bye.headers.get('Reason'), 'SIP;cause=200');
    assert.equal(d.createRequest('OPTIONS', udpFlow).headers.get('CSeq'), '3 OPTIONS', 'our CSeq grows');
  });

  it('keeps Record-Route as the route set, refuses out-of-order CSeq, takes a new target from a re-INVITE', () => {
    const text = [
      'INVITE sip:live~cam1@192.0.2.1 SIP/2.0',
      'Via: SIP/2.0/UDP 192.0.2.50;branch=z9hG4bKproxy',
      'Via: SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKphone',
      'Record-Route: <sip:192.0.2.50;lr>, <sip:192.0.2.51;lr>',
      'From: <sip:phone@example.org>;tag=p1',
      'To: <sip:live~cam1@192.0.2.1>',
      'Call-ID: rr-1',
      'CSeq: 10 INVITE',
      'Contact: <sip:phone@192.0.2.9:5062>',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    const invite = parseSipDatagram(new TextEncoder().encode(text)) as SipRequest;
    const d = SipDialog.fromInvite(invite, requestIds(invite), 'g1');
    assert.deepEqual(d.routeSet, ['<sip:192.0.2.50;lr>', '<sip:192.0.2.51;lr>']);
    assert.deepEqual(d.createRequest('BYE', udpFlow).headers.getAll('Route'), d.routeSet);
    assert.equal(d.acceptRemoteSeq(9), false);
    assert.equal(d.acceptRemoteSeq(11), true);
    const reinvite = parseSipDatagram(new TextEncoder().encode(text.replace('Contact: <sip:phone@192.0.2.9:5062>', 'Contact: <sip:phone@192.0.2.77:5070>'))) as SipRequest;
    d.refreshTarget(reinvite);
    assert.equal(d.remoteTarget, 'sip:phone@192.0.2.77:5070');
  });

  it('Contact and Via hosts: transport=tcp for TCP flows, brackets for IPv6', () => {
    assert.equal(contactFor(udpFlow), '<sip:streamgate@192.0.2.1:5060>');
    assert.equal(contactFor({ ...udpFlow, transport: 'TCP', localAddress: '2001:db8::1' }), '<sip:streamgate@[2001:db8::1]:5060;transport=tcp>');
    assert.equal(hostForHeader('2001:db8::1'), '[2001:db8::1]');
    assert.equal(hostForHeader('192.0.2.1'), '192.0.2.1');
  });
});
