import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { digestAuthorization, digestChallenge, digestUsable, parseDigestChallenge } from '../../../src/auth.js';
import { parseConfig, resolvePathConf } from '../../../src/config.js';
import { pathPolicy } from '../../../src/main.js';
import { makeFrame } from '../../../src/media/bus/frame.js';
import { PathRegistry } from '../../../src/media/bus/registry.js';
import type { Session } from '../../../src/media/bus/session.js';
import type { Stream } from '../../../src/media/bus/stream.js';
import { Track } from '../../../src/media/bus/track.js';
import { nalType, splitAnnexB } from '../../../src/media/codecs/h264.js';
import { parseRtp } from '../../../src/media/rtp/packet.js';
import { parseSdp } from '../../../src/signaling/sdp/description.js';
import {
  parseNameAddr,
  parseSipDatagram,
  SipStreamParser,
  type SipMessage,
  type SipResponse,
} from '../../../src/signaling/sip/message.js';
import { sipExtensions, startSipServer, type RunningSipServer } from '../../../src/signaling/sip/server.js';

const config = parseConfig(
  `
paths:
  live/cam1: { sip: { extension: 1001 } }
  secure/cam: { readUser: viewer, readPass: secret }
  hashed/cam: { readUser: viewer, readPass: "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b" }
  slow/cam: { source: "rtsp://127.0.0.1:9/never", sourceOnDemand: true, sourceOnDemandStartTimeout: 2 }
  offline/cam: {}
`,
  'sip-test.yml',
);

const H264 = new URL('../../../../test/fixtures/h264/libx264-320x240-baseline.h264', import.meta.url);

/** A publisher that feeds H.264 (from the libx264 fixture, looped) and fake Opus frames into a path. */
async function publish(registry: PathRegistry, path: string): Promise<{ stop(): void; stream: Stream }> {
  const session: Session = {
    id: `pub-${path}`,
    protocol: 'rtmp',
    role: 'publisher',
    path: '',
    remoteAddr: '127.0.0.1:1',
    state: 'publish',
    createdAt: Date.now(),
    bytesIn: 0,
    bytesOut: 0,
    close: () => undefined,
  };
  registry.addSession(session);
  const stream = await registry.addPublisher(path, session, { protocol: 'rtmp', ip: '127.0.0.1' });
  const nalus = splitAnnexB(new Uint8Array(readFileSync(H264)));
  const sps = nalus.find((n) => nalType(n) === 7)!;
  const pps = nalus.find((n) => nalType(n) === 8)!;
  const pictures = nalus.filter((n) => nalType(n) === 5 || nalType(n) === 1);
  const video = new Track({ codec: 'h264', clockRate: 90000 });
  video.setH264Params(sps, pps, { width: 320, height: 240 });
  const opus = new Track({ codec: 'opus', clockRate: 48000, channels: 2 });
  const [v, a] = stream.setTracks([video, opus]) as [Track, Track];
  let n = 0;
  const timer = setInterval(() => {
    // 25 fps video, IDR every 10 frames; two 20 ms Opus frames per video frame
    const pic = pictures[n % pictures.length]!;
    const key = n % 10 === 0;
    stream.write(makeFrame(v, n * 3600, n * 3600, key, key ? [pictures[0]!] : [pic]));
    for (let k = 0; k < 2; k++) stream.write(makeFrame(a, (2 * n + k) * 960, (2 * n + k) * 960, true, [Uint8Array.of(0xfc, 0xff, 0xfe)]));
    n++;
  }, 40);
  return {
    stream,
    stop: () => {
      clearInterval(timer);
      registry.removePublisher(session);
      registry.removeSession(session, 'test over');
    },
  };
}

/** A minimal UAC over UDP: sends texts, collects every datagram it gets. */
class Phone {
  readonly sock = dgram.createSocket('udp4');
  readonly got: SipMessage[] = [];
  private waiters: (() => void)[] = [];
  port = 0;

  async open(): Promise<this> {
    await new Promise<void>((r) => this.sock.bind(0, '127.0.0.1', () => r()));
    this.port = this.sock.address().port;
    this.sock.on('message', (m) => {
      this.got.push(parseSipDatagram(m));
      for (const w of this.waiters.splice(0)) w();
    });
    return this;
  }

  send(text: string, port: number): void {
    this.sock.send(Buffer.from(text), port, '127.0.0.1');
  }

  /** The next message (in arrival order) matching `pred`, removed from the queue. */
  async next(pred: (m: SipMessage) => boolean, timeoutMs = 4000): Promise<SipMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.got.findIndex(pred);
      if (i >= 0) return this.got.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching SIP message within ${timeoutMs} ms; got ${this.got.map(firstLine).join(' | ')}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  close(): void {
    this.sock.close();
  }
}

function firstLine(m: SipMessage): string {
  return m.kind === 'request' ? `${m.method} ${m.uri}` : `${m.status} ${m.reason} (${m.headers.get('CSeq')})`;
}

const status = (code: number, method = 'INVITE') => (m: SipMessage) => m.kind === 'response' && m.status === code && m.headers.get('CSeq')?.endsWith(method) === true;
/** A request from the gateway in the call `callId` (earlier calls' keep-alives may still be in flight). */
const request = (method: string, callId?: string) => (m: SipMessage) =>
  m.kind === 'request' && m.method === method && (callId === undefined || m.headers.get('Call-ID') === callId);

let seq = 0;

/** Identity of one call from the test phone. */
interface CallIds {
  callId: string;
  fromTag: string;
  branch: string;
  cseq: number;
  toTag?: string;
}

function newCall(): CallIds {
  seq++;
  return { callId: `test-${seq}-${Date.now()}`, fromTag: `ft${seq}`, branch: `z9hG4bK-test-${seq}`, cseq: 1 };
}

function offerSdp(audioPort: number, videoPort: number, extra: string[] = []): string {
  return [
    'v=0',
    'o=phone 1 1 IN IP4 127.0.0.1',
    's=-',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${audioPort} RTP/AVP 111 0`,
    'a=rtpmap:111 opus/48000/2',
    'a=rtpmap:0 PCMU/8000',
    ...extra,
    `m=video ${videoPort} RTP/AVP 102`,
    'a=rtpmap:102 H264/90000',
    'a=fmtp:102 packetization-mode=1;profile-level-id=42e01f',
    ...extra,
    '',
  ].join('\r\n');
}

function message(o: {
  method: string;
  uri: string;
  ids: CallIds;
  port: number;
  transport?: string;
  cseqMethod?: string;
  body?: string;
  headers?: string[];
}): string {
  const body = o.body ?? '';
  return [
    `${o.method} ${o.uri} SIP/2.0`,
    `Via: SIP/2.0/${o.transport ?? 'UDP'} 127.0.0.1:${o.port};branch=${o.ids.branch};rport`,
    `From: "Test Phone" <sip:phone@127.0.0.1:${o.port}>;tag=${o.ids.fromTag}`,
    `To: <${o.uri}>${o.ids.toTag ? `;tag=${o.ids.toTag}` : ''}`,
    `Call-ID: ${o.ids.callId}`,
    `CSeq: ${o.ids.cseq} ${o.cseqMethod ?? o.method}`,
    `Contact: <sip:phone@127.0.0.1:${o.port}>`,
    'Max-Forwards: 70',
    ...(o.headers ?? []),
    ...(body ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

async function udpSink(): Promise<{ sock: dgram.Socket; port: number; packets: Buffer[] }> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const packets: Buffer[] = [];
  sock.on('message', (m) => packets.push(m));
  return { sock, port: sock.address().port, packets };
}

/** A small seeded PRNG so the garbage is the same on every run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function until(fn: () => boolean, timeoutMs = 4000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('SIP server (UDP and TCP on 127.0.0.1, real registry)', () => {
  let registry: PathRegistry;
  let server: RunningSipServer;
  let phone: Phone;
  let pubs: { stop(): void }[];
  const uri = (user: string) => `sip:${user}@127.0.0.1:${server.port}`;

  before(async () => {
    registry = new PathRegistry(pathPolicy(config), () => ({ close: () => undefined }));
    server = await startSipServer({
      host: '127.0.0.1',
      port: 0,
      registry,
      extensions: () => sipExtensions(config),
      challenge: (path, nowMs, stale) =>
        digestUsable(config, 'read', resolvePathConf(config, path)?.conf ?? null) ? digestChallenge({ nowMs, stale }) : null,
      transcodeAvailable: () => false,
      keepaliveMs: 400,
    });
    pubs = [await publish(registry, 'live/cam1'), await publish(registry, 'secure/cam')];
    phone = await new Phone().open();
  });

  after(async () => {
    for (const p of pubs) p.stop();
    phone.close();
    await server.close();
  });

  /** INVITE → 100 → 200; returns the 200 and the call ids with the To tag. */
  async function call(user: string, audio: number, video: number, headers: string[] = []): Promise<{ ok: SipResponse; ids: CallIds }> {
    const ids = newCall();
    phone.send(message({ method: 'INVITE', uri: uri(user), ids, port: phone.port, body: offerSdp(audio, video), headers }), server.port);
    const ok = (await phone.next(status(200))) as SipResponse;
    ids.toTag = parseNameAddr(ok.headers.get('To')!).params.tag!;
    return { ok, ids };
  }

  function ack(ids: CallIds): void {
    phone.send(message({ method: 'ACK', uri: uri('streamgate'), ids: { ...ids, branch: `${ids.branch}-ack` }, port: phone.port }), server.port);
  }

  it('OPTIONS outside a dialog → 200 with Allow and Accept (probe / keep-alive)', async () => {
    phone.send(message({ method: 'OPTIONS', uri: uri('anything'), ids: newCall(), port: phone.port }), server.port);
    const res = await phone.next(status(200, 'OPTIONS'));
    assert.match(res.headers.get('Allow')!, /INVITE, ACK, CANCEL, BYE, OPTIONS/);
    assert.equal(res.headers.get('Accept'), 'application/sdp');
    assert.ok(parseNameAddr(res.headers.get('To')!).params.tag, 'final responses carry a To tag');
  });

  it('a path the config does not have → 100 Trying, 404; the 404 is retransmitted until its ACK', async () => {
    const ids = newCall();
    phone.send(message({ method: 'INVITE', uri: uri('nope~cam'), ids, port: phone.port, body: offerSdp(4000, 4002) }), server.port);
    await phone.next(status(100));
    const res = await phone.next(status(404));
    await phone.next(status(404), 1500); // Timer G: again after 500 ms
    // the ACK for a non-2xx has the INVITE's branch
    phone.send(message({ method: 'ACK', uri: uri('nope~cam'), ids: { ...ids, toTag: parseNameAddr(res.headers.get('To')!).params.tag! }, port: phone.port }), server.port);
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(phone.got.filter(status(404)).length, 0, 'no retransmission after the ACK');
  });

  it('a configured path nobody publishes → 480; an offer we cannot serve → 488 with a Warning', async () => {
    phone.send(message({ method: 'INVITE', uri: uri('offline~cam'), ids: newCall(), port: phone.port, body: offerSdp(4000, 4002) }), server.port);
    await phone.next(status(480));
    const g729 = ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 4000 RTP/AVP 18', 'a=rtpmap:18 G729/8000', ''].join('\r\n');
    phone.send(message({ method: 'INVITE', uri: uri('live~cam1'), ids: newCall(), port: phone.port, body: g729 }), server.port);
    const res = await phone.next(status(488));
    assert.match(res.headers.get('Warning')!, /^305 streamgate "m=audio: the path has Opus audio and the offer has no Opus"$/);
    phone.send(message({ method: 'INVITE', uri: uri('live~cam1'), ids: newCall(), port: phone.port }), server.port);
    await phone.next(status(488)); // no SDP offer
  });

  it('live path: 200 with the SDP answer, retransmitted until the ACK; RTP flows; BYE ends the session', async () => {
    const a = await udpSink();
    const v = await udpSink();
    const { ok, ids } = await call('live~cam1', a.port, v.port);
    assert.match(ok.headers.get('Contact')!, /^<sip:streamgate@127\.0\.0\.1:\d+>$/);
    assert.equal(ok.headers.get('Content-Type'), 'application/sdp');
    const answer = parseSdp(Buffer.from(ok.body).toString());
    assert.deepEqual(answer.media.map((m) => [m.formats[0]!.payloadType, m.direction]), [
      [111, 'sendonly'],
      [102, 'sendonly'],
    ]);
    await phone.next(status(200), 1500); // Timer G retransmission: no ACK yet
    ack(ids);
    await until(() => a.packets.length > 10 && v.packets.length > 10);
    const vp = v.packets.map((p) => parseRtp(p));
    assert.ok(vp.every((p) => p.payloadType === 102));
    for (let i = 1; i < vp.length; i++) assert.equal(vp[i]!.sequenceNumber, (vp[i - 1]!.sequenceNumber + 1) & 0xffff);
    assert.ok(a.packets.map((p) => parseRtp(p)).every((p) => p.payloadType === 111 && p.payload.length === 3));
    const session = [...registry.sessions.values()].find((s) => s.protocol === 'sip');
    assert.ok(session);
    assert.equal(session.path, 'live/cam1');
    await until(() => session.state === 'play', 2000);
    assert.ok(session.bytesOut > 0);

    ids.cseq++;
    phone.send(message({ method: 'BYE', uri: uri('streamgate'), ids: { ...ids, branch: `${ids.branch}-bye` }, port: phone.port }), server.port);
    await phone.next(status(200, 'BYE'));
    await until(() => ![...registry.sessions.values()].some((s) => s.protocol === 'sip'));
    const count = v.packets.length;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(v.packets.length, count, 'no RTP after BYE');
    a.sock.close();
    v.sock.close();
    assert.equal(server.calls().length, 0);
  });

  it('Digest: 401 with a challenge, then 200 with the right password; a wrong one gets 401 again', async () => {
    const ids = newCall();
    phone.send(message({ method: 'INVITE', uri: uri('secure~cam'), ids, port: phone.port, body: offerSdp(4000, 4002) }), server.port);
    const challenged = await phone.next(status(401));
    const ch = parseDigestChallenge(challenged.headers.get('WWW-Authenticate')!)!;
    assert.equal(ch.realm, 'streamgate');
    assert.equal(ch.qop, 'auth');
    const authz = (pass: string) => digestAuthorization(ch, { user: 'viewer', pass, method: 'INVITE', uri: uri('secure~cam') })!;
    const retry = (pass: string) => {
      ids.cseq++;
      ids.branch = `${ids.branch}x`;
      phone.send(message({ method: 'INVITE', uri: uri('secure~cam'), ids, port: phone.port, body: offerSdp(4000, 4002), headers: [`Authorization: ${authz(pass)}`] }), server.port);
    };
    retry('wrong');
    await phone.next(status(401));
    retry('secret');
    const ok = await phone.next(status(200));
    const toTag = parseNameAddr(ok.headers.get('To')!).params.tag!;
    ack({ ...ids, toTag });
    ids.cseq++;
    phone.send(message({ method: 'BYE', uri: uri('streamgate'), ids: { ...ids, toTag, branch: `${ids.branch}-bye` }, port: phone.port }), server.port);
    await phone.next(status(200, 'BYE'));
  });

  it('a path whose password is stored hashed cannot be checked with Digest → 403', async () => {
    phone.send(message({ method: 'INVITE', uri: uri('hashed~cam'), ids: newCall(), port: phone.port, body: offerSdp(4000, 4002) }), server.port);
    await phone.next(status(403));
  });

  it('CANCEL while the path is still starting → 200 for the CANCEL, 487 for the INVITE', async () => {
    const ids = newCall();
    phone.send(message({ method: 'INVITE', uri: uri('slow~cam'), ids, port: phone.port, body: offerSdp(4000, 4002) }), server.port);
    await phone.next(status(100));
    phone.send(message({ method: 'CANCEL', uri: uri('slow~cam'), ids, port: phone.port }), server.port);
    await phone.next(status(200, 'CANCEL'));
    const terminated = await phone.next(status(487));
    assert.ok(parseNameAddr(terminated.headers.get('To')!).params.tag);
    // a CANCEL for an INVITE nobody knows → 481
    phone.send(message({ method: 'CANCEL', uri: uri('slow~cam'), ids: newCall(), port: phone.port }), server.port);
    await phone.next(status(481, 'CANCEL'));
  });

  it('re-INVITE: hold (sendonly → inactive, no RTP), resume, and a codec change refused with 488', async () => {
    const v = await udpSink();
    const v2 = await udpSink();
    const { ids } = await call('live~cam1', 4000, v.port);
    ack(ids);
    await until(() => v.packets.length > 5);
    const reinvite = (body: string) => {
      ids.cseq++;
      ids.branch = `${ids.branch}r`;
      phone.send(message({ method: 'INVITE', uri: uri('streamgate'), ids, port: phone.port, body }), server.port);
    };
    reinvite(offerSdp(4000, v.port, ['a=sendonly']));
    const held = (await phone.next(status(200))) as SipResponse;
    assert.deepEqual(parseSdp(Buffer.from(held.body).toString()).media.map((m) => m.direction), ['inactive', 'inactive']);
    assert.equal(parseSdp(Buffer.from(held.body).toString()).origin.sessionVersion, '1');
    ack(ids);
    await new Promise((r) => setTimeout(r, 150));
    const before = v.packets.length;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(v.packets.length, before, 'nothing sent on hold');
    // resume toward another port
    reinvite(offerSdp(4000, v2.port));
    await phone.next(status(200));
    ack(ids);
    await until(() => v2.packets.length > 5);
    // PCMU only (the call sends Opus): refused, the call goes on
    reinvite(['v=0', 'o=- 1 3 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'm=video 4002 RTP/AVP 102', 'a=rtpmap:102 H264/90000', 'a=fmtp:102 packetization-mode=1', ''].join('\r\n'));
    await phone.next(status(488));
    const n = v2.packets.length;
    await until(() => v2.packets.length > n + 5);
    ids.cseq++;
    phone.send(message({ method: 'BYE', uri: uri('streamgate'), ids: { ...ids, branch: `${ids.branch}-bye` }, port: phone.port }), server.port);
    await phone.next(status(200, 'BYE'));
    v.sock.close();
    v2.sock.close();
  });

  it('hang-up from our side: an API kick sends BYE to the phone', async () => {
    const { ids } = await call('live~cam1', 4000, 4002);
    ack(ids);
    await until(() => server.calls().some((c) => c.state === 'play'));
    const session = [...registry.sessions.values()].find((s) => s.protocol === 'sip')!;
    session.close('kicked by the API');
    const bye = await phone.next(request('BYE', ids.callId));
    assert.equal(parseNameAddr(bye.headers.get('From')!).params.tag, ids.toTag);
    assert.equal(parseNameAddr(bye.headers.get('To')!).params.tag, ids.fromTag);
    assert.equal(bye.headers.get('Call-ID'), ids.callId);
    assert.match(bye.headers.get('CSeq')!, /^\d+ BYE$/);
    assert.equal(bye.kind === 'request' && bye.uri, `sip:phone@127.0.0.1:${phone.port}`, 'sent to the Contact');
  });

  it('keep-alive: a silent phone gets an in-dialog OPTIONS; no answer ends the call with a BYE', async () => {
    const { ids } = await call('live~cam1', 4000, 4002);
    ack(ids);
    const options = await phone.next(request('OPTIONS', ids.callId), 3000);
    assert.equal(options.headers.get('Call-ID'), ids.callId);
    // not answered: Timer F would take 32 s; answer 481 instead, as a phone that forgot the call does
    const res = [
      'SIP/2.0 481 Call/Transaction Does Not Exist',
      ...options.headers.entries().filter(([k]) => ['Via', 'From', 'To', 'Call-ID', 'CSeq'].includes(k)).map(([k, v]) => `${k}: ${v}`),
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    phone.send(res, server.port);
    await phone.next(request('BYE', ids.callId));
    await until(() => server.calls().length === 0);
  });

  it('an extension (paths.live/cam1.sip.extension: 1001) calls its path', async () => {
    const { ok, ids } = await call('1001', 4000, 4002);
    assert.equal(ok.status, 200);
    ack(ids);
    await until(() => [...registry.sessions.values()].some((s) => s.protocol === 'sip' && s.path === 'live/cam1'));
    ids.cseq++;
    phone.send(message({ method: 'BYE', uri: uri('streamgate'), ids: { ...ids, branch: `${ids.branch}-bye` }, port: phone.port }), server.port);
    await phone.next(status(200, 'BYE'));
  });

  it('in-dialog requests without a dialog → 481; REGISTER → 405; Require: 100rel → 420; sips:/tel: → 416; garbage is dropped', async () => {
    phone.send(message({ method: 'BYE', uri: uri('streamgate'), ids: { ...newCall(), toTag: 'gone' }, port: phone.port }), server.port);
    await phone.next(status(481, 'BYE'));
    phone.send(message({ method: 'REGISTER', uri: `sip:127.0.0.1:${server.port}`, ids: newCall(), port: phone.port }), server.port);
    const reg = await phone.next(status(405, 'REGISTER'));
    assert.ok(reg.headers.get('Allow'));
    phone.send(message({ method: 'INVITE', uri: uri('live~cam1'), ids: newCall(), port: phone.port, body: offerSdp(4000, 4002), headers: ['Require: 100rel'] }), server.port);
    const bad = await phone.next(status(420));
    assert.equal(bad.headers.get('Unsupported'), '100rel');
    phone.send(message({ method: 'INVITE', uri: `sips:live~cam1@127.0.0.1:${server.port}`, ids: newCall(), port: phone.port, body: offerSdp(4000, 4002) }), server.port);
    await phone.next(status(416));
    phone.send(message({ method: 'INVITE', uri: 'tel:+15550001', ids: newCall(), port: phone.port, body: offerSdp(4000, 4002) }), server.port);
    await phone.next(status(416));
    phone.send('\x00\xff garbage \r\n\r\n', server.port);
    phone.send('INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKq\r\nContent-Length: 0\r\n\r\n', server.port);
    phone.send(message({ method: 'OPTIONS', uri: uri('x'), ids: newCall(), port: phone.port }), server.port);
    await phone.next(status(200, 'OPTIONS'));
  });

  it('survives mutated INVITEs and random bytes over UDP and TCP, and answers afterwards', async () => {
    const seed = Buffer.from(message({ method: 'INVITE', uri: uri('nope~cam'), ids: newCall(), port: phone.port, body: offerSdp(4000, 4002) }));
    const rnd = mulberry32(7);
    for (let i = 0; i < 400; i++) {
      const b = Buffer.from(seed);
      for (let k = 0; k < 1 + (i % 4); k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      phone.sock.send(i % 10 === 0 ? Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 600) }, () => Math.floor(rnd() * 256))) : b.subarray(0, 1 + Math.floor(rnd() * b.length)), server.port, '127.0.0.1');
    }
    for (let c = 0; c < 5; c++) {
      const sock = net.connect(server.port, '127.0.0.1');
      sock.on('error', () => undefined);
      await new Promise<void>((r) => sock.once('connect', () => r()));
      sock.write(Buffer.from(Array.from({ length: 3000 }, () => Math.floor(rnd() * 256))));
      sock.end();
    }
    await new Promise((r) => setTimeout(r, 300));
    phone.got.length = 0;
    phone.send(message({ method: 'OPTIONS', uri: uri('x'), ids: newCall(), port: phone.port }), server.port);
    await phone.next(status(200, 'OPTIONS'));
    assert.equal(server.calls().length, 0, 'no call from garbage');
  });

  it('TCP: an INVITE written one byte at a time is answered on the connection; Contact says transport=tcp; BYE over TCP', async () => {
    const sock = net.connect(server.port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const parser = new SipStreamParser();
    const got: SipMessage[] = [];
    sock.on('data', (d) => {
      for (const i of parser.push(d)) if (i.kind === 'message') got.push(i.message);
    });
    const local = sock.localPort!;
    const ids = newCall();
    const text = Buffer.from(message({ method: 'INVITE', uri: uri('live~cam1'), ids, port: local, transport: 'TCP', body: offerSdp(4000, 4002) }));
    for (let i = 0; i < text.length; i += 97) sock.write(text.subarray(i, i + 97));
    await until(() => got.some(status(200)));
    const ok = got.find(status(200))!;
    assert.match(ok.headers.get('Contact')!, /;transport=tcp>$/);
    ids.toTag = parseNameAddr(ok.headers.get('To')!).params.tag!;
    sock.write(message({ method: 'ACK', uri: uri('streamgate'), ids: { ...ids, branch: 'z9hG4bK-tcp-ack' }, port: local, transport: 'TCP' }));
    sock.write('\r\n\r\n'); // keep-alive ping → pong
    ids.cseq++;
    sock.write(message({ method: 'BYE', uri: uri('streamgate'), ids: { ...ids, branch: 'z9hG4bK-tcp-bye' }, port: local, transport: 'TCP' }));
    await until(() => got.some(status(200, 'BYE')));
    assert.equal(got.filter(status(200)).length, 1, 'no 200 retransmission over TCP');
    sock.destroy();
  });
});
