import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { AuthError, BusyError, NotFoundError, StreamgateError } from '../../../src/errors.js';
import { parseRtpInfo, parseSessionHeader, parseTransport, RtspHeaders, RtspParser, type RtspRequest, type RtspResponse } from '../../../src/ingest/rtsp/message.js';
import { RtspServerSession, rtspStatusOf, splitRtspUrl, type RtspServerAction, type RtspServerState } from '../../../src/ingest/rtsp/session.js';

const FIXTURES = new URL('../../../../test/fixtures/rtsp/', import.meta.url);
const requestsOf = (name: string): RtspRequest[] =>
  new RtspParser().push(new Uint8Array(readFileSync(new URL(name, FIXTURES)))).flatMap((m) => (m.kind === 'request' ? [m] : []));

function req(method: string, url: string, headers: [string, string][] = [], body = ''): RtspRequest {
  return { kind: 'request', method, url, version: 'RTSP/1.0', headers: new RtspHeaders(headers), body: new TextEncoder().encode(body) };
}

/** The responses of `actions`, parsed back. */
function responses(actions: RtspServerAction[]): RtspResponse[] {
  return actions.flatMap((a) => (a.type === 'send' ? new RtspParser().push(a.bytes) : [])).flatMap((m) => (m.kind === 'response' ? [m] : []));
}

const session = (udp = true, sessionId = 'sess1234'): RtspServerSession =>
  new RtspServerSession({ sessionId, ...(udp ? { udpPorts: [8000, 8001] as [number, number] } : {}) }, 0);
/** Two media, as ffmpeg ANNOUNCEs them (controls trackID=0/1 like ours, so one request table fits both roles). */
const TWO_MEDIA_SDP =
  'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n' +
  'm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=0\r\n' +
  'm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210\r\na=control:trackID=1\r\n';

/** How far a test session goes: media 0 (of 2) SETUP, both SETUP, or both SETUP and PLAY/RECORD answered. */
type Stage = 'one' | 'both' | 'started';

/** A reader session on rtsp://h/x over UDP, up to `stage`. */
function reading(stage: Stage): RtspServerSession {
  const s = session();
  s.push(req('DESCRIBE', 'rtsp://h/x', [['CSeq', '1']]), 1);
  s.resolve({ ok: true, sdp: '', mediaCount: 2 }, 1);
  s.push(req('SETUP', 'rtsp://h/x/trackID=0', [['CSeq', '2'], ['Transport', 'RTP/AVP;unicast;client_port=5000-5001']]), 2);
  if (stage !== 'one') s.push(req('SETUP', 'rtsp://h/x/trackID=1', [['CSeq', '3'], ['Transport', 'RTP/AVP;unicast;client_port=5002-5003']]), 3);
  if (stage === 'started') {
    s.push(req('PLAY', 'rtsp://h/x', [['CSeq', '4']]), 4);
    s.resolve({ ok: true }, 4);
  }
  return s;
}

/** A publisher session on rtsp://h/x over TCP, up to `stage`. */
function publishing(stage: Stage): RtspServerSession {
  const s = session();
  s.push(req('ANNOUNCE', 'rtsp://h/x', [['CSeq', '1'], ['Content-Type', 'application/sdp']], TWO_MEDIA_SDP), 1);
  s.resolve({ ok: true }, 1);
  s.push(req('SETUP', 'rtsp://h/x/trackID=0', [['CSeq', '2'], ['Transport', 'RTP/AVP/TCP;unicast;interleaved=0-1;mode=record']]), 2);
  if (stage !== 'one') s.push(req('SETUP', 'rtsp://h/x/trackID=1', [['CSeq', '3'], ['Transport', 'RTP/AVP/TCP;unicast;interleaved=2-3;mode=record']]), 3);
  if (stage === 'started') {
    s.push(req('RECORD', 'rtsp://h/x', [['CSeq', '4']]), 4);
    s.resolve({ ok: true }, 4);
  }
  return s;
}

/** The session id the captured client used (our id must match it for the replay). */
const capturedId = (reqs: RtspRequest[]): string => parseSessionHeader(reqs.find((r) => r.headers.has('session'))?.headers.get('session') ?? 'x').id;

describe('RtspServerSession with ffmpeg 5.1 publishing (captured requests)', () => {
  for (const [capture, transport] of [
    ['ffmpeg-publish-tcp.client.bin', 'tcp'],
    ['ffmpeg-publish-udp.client.bin', 'udp'],
    ['gst-publish-tcp.client.bin', 'tcp'],
  ] as const) {
    it(`${capture}: OPTIONS, ANNOUNCE → announce action, SETUP ×2, RECORD → record action`, () => {
      const reqs = requestsOf(capture);
      const s = session(true, capturedId(reqs));
      const sent: RtspResponse[] = [];
      let n = 0;
      for (const r of reqs) {
        const actions = s.push(r, ++n);
        sent.push(...responses(actions));
        for (const a of actions) {
          if (a.type === 'announce') {
            assert.match(a.request.path, /^live\/(cam1|gst)$/);
            assert.equal(a.description.media.length, 2);
            sent.push(...responses(s.resolve({ ok: true }, ++n)));
          }
          if (a.type === 'record') {
            assert.equal(a.tracks.length, 2);
            assert.ok(a.tracks.every((t) => t.transport.kind === transport));
            sent.push(...responses(s.resolve({ ok: true }, ++n)));
          }
        }
      }
      assert.deepEqual(sent.slice(0, 5).map((r) => r.status), [200, 200, 200, 200, 200]);
      assert.equal(s.state, reqs.some((r) => r.method === 'TEARDOWN') ? 'initial' : 'record');
      const setup = sent[2] as RtspResponse;
      assert.equal(setup.headers.get('session'), `${capturedId(reqs)};timeout=60`);
      const t = parseTransport(setup.headers.get('transport') ?? '');
      assert.equal(t.mode, 'record');
      if (transport === 'udp') assert.deepEqual(t.serverPort, [8000, 8001]);
      else assert.deepEqual(t.interleaved, [0, 1]);
      // CSeq echoed on every response
      assert.deepEqual(sent.map((r) => r.headers.get('cseq')), reqs.slice(0, sent.length).map((r) => r.headers.get('cseq')));
    });
  }

  it('interleaved channels map back to media (GStreamer SETUPs media 0 with stream=1)', () => {
    const reqs = requestsOf('gst-publish-tcp.client.bin');
    const s = session(true, capturedId(reqs));
    let n = 0;
    for (const r of reqs) {
      for (const a of s.push(r, ++n)) if (a.type === 'announce' || a.type === 'record') s.resolve({ ok: true }, ++n);
    }
    assert.deepEqual(s.channelTarget(0), { media: 0, rtcp: false });
    assert.deepEqual(s.channelTarget(3), { media: 1, rtcp: true });
    assert.equal(s.channelTarget(4), undefined);
  });
});

describe('RtspServerSession reading (ffprobe 5.1 requests captured against gst-rtsp-server)', () => {
  it('DESCRIBE → describe action → SDP with Content-Base; SETUP trackID=N; PLAY with RTP-Info', () => {
    const out: RtspResponse[] = [];
    // ffprobe asked gst for stream=N controls; replay it against our own control names
    const reqs = requestsOf('ffprobe-read-gst-tcp.client.bin').map((r) => ({ ...r, url: r.url.replace(/\/stream=(\d)$/, '/trackID=$1') }));
    const s = session(true, capturedId(reqs));
    let n = 0;
    for (const r of reqs) {
      for (const a of s.push(r, ++n)) {
        if (a.type === 'describe') {
          assert.equal(a.request.path, 'cam');
          out.push(...responses([a]), ...responses(s.resolve({ ok: true, sdp: 'v=0\r\n', mediaCount: 2 }, ++n)));
        } else if (a.type === 'play') {
          out.push(...responses(s.resolve({ ok: true, rtpInfo: [{ media: 0, seq: 100, rtptime: 5000 }, { media: 1, seq: 7 }] }, ++n)));
        } else out.push(...responses([a]));
      }
    }
    assert.deepEqual(out.map((r) => r.status), [200, 200, 200, 200, 200]);
    assert.match(out[1]?.headers.get('content-base') ?? '', /\/cam\/$/);
    assert.equal(new TextDecoder().decode(out[1]?.body), 'v=0\r\n');
    const info = parseRtpInfo(out[4]?.headers.get('rtp-info') ?? '');
    assert.deepEqual(info.map((e) => [e.url.replace(/^rtsp:\/\/[^/]+/, ''), e.seq, e.rtptime]), [
      ['/cam/trackID=0', 100, 5000],
      ['/cam/trackID=1', 7, undefined],
    ]);
    assert.equal(s.state, 'play');
    assert.equal(s.nextDeadline(), null, 'TCP play sessions live as long as the connection');
  });

  it('SETUP without DESCRIBE looks the path up first', () => {
    const s = session();
    const a = s.push(req('SETUP', 'rtsp://h/live/cam1/trackID=1', [['CSeq', '1'], ['Transport', 'RTP/AVP;unicast;client_port=5000-5001']]), 1);
    assert.equal(a[0]?.type, 'describe');
    assert.equal(a[0]?.type === 'describe' && a[0].request.path, 'live/cam1');
    const [res] = responses(s.resolve({ ok: true, sdp: '', mediaCount: 2 }, 2));
    assert.equal(res?.status, 200);
    assert.deepEqual(s.tracks, [{ media: 1, transport: { kind: 'udp', clientPorts: [5000, 5001] } }]);
  });
});

describe('RtspServerSession errors', () => {
  const status = (actions: RtspServerAction[]): number | undefined => responses(actions)[0]?.status;

  it('no CSeq → 400 without CSeq; RTSP/2.0 → 505; Require → 551; unknown method → 501', () => {
    const s = session();
    const [r] = responses(s.push(req('OPTIONS', '*'), 1));
    assert.equal(r?.status, 400);
    assert.equal(r?.headers.get('cseq'), undefined);
    assert.equal(status(s.push({ ...req('OPTIONS', '*', [['CSeq', '1']]), version: 'RTSP/2.0' }, 1)), 505);
    const [u] = responses(s.push(req('DESCRIBE', 'rtsp://h/x', [['CSeq', '2'], ['Require', 'www.onvif.org/ver20/backchannel']]), 1));
    assert.equal(u?.status, 551);
    assert.equal(u?.headers.get('unsupported'), 'www.onvif.org/ver20/backchannel');
    assert.equal(status(s.push(req('REDIRECT', 'rtsp://h/x', [['CSeq', '3']]), 1)), 501);
  });

  it('wrong session id → 454; PLAY before SETUP → 455 with Allow; RECORD in prePlay → 455', () => {
    const s = session();
    assert.equal(status(s.push(req('PLAY', 'rtsp://h/x', [['CSeq', '1'], ['Session', 'nope']]), 1)), 454);
    const [r] = responses(s.push(req('PLAY', 'rtsp://h/x', [['CSeq', '2']]), 1));
    assert.equal(r?.status, 455);
    assert.match(r?.headers.get('allow') ?? '', /DESCRIBE/);
  });

  it('transports: multicast, SAVP and UDP when UDP is off → 461; mixing TCP and UDP → 461', () => {
    const s = session(false);
    s.push(req('DESCRIBE', 'rtsp://h/x', [['CSeq', '1']]), 1);
    s.resolve({ ok: true, sdp: '', mediaCount: 2 }, 1);
    const setup = (cseq: number, media: number, t: string): number | undefined =>
      status(s.push(req('SETUP', `rtsp://h/x/trackID=${media}`, [['CSeq', String(cseq)], ['Transport', t]]), 2));
    assert.equal(setup(2, 0, 'RTP/AVP;multicast;destination=239.0.0.1'), 461);
    assert.equal(setup(3, 0, 'RTP/SAVP/TCP;unicast;interleaved=0-1'), 461);
    assert.equal(setup(4, 0, 'RTP/AVP;unicast;client_port=5000-5001'), 461);
    assert.equal(setup(5, 0, 'RTP/AVP;unicast;client_port=5000-5001, RTP/AVP/TCP;unicast'), 200); // falls back to TCP
    assert.deepEqual(s.tracks[0]?.transport, { kind: 'tcp', channels: [0, 1] });
    assert.equal(setup(6, 1, 'RTP/AVP/TCP;unicast;interleaved=0-1'), 461); // channels taken
    assert.equal(setup(7, 1, 'RTP/AVP/TCP;unicast;interleaved=2-3'), 200);
    assert.equal(setup(8, 1, 'RTP/AVP/TCP;unicast;interleaved=4-5'), 455); // already SETUP
    assert.equal(setup(9, 5, 'RTP/AVP/TCP;unicast'), 404); // no such media
    assert.equal(setup(10, 0, 'garbage'), 455); // media 0 already set: state checks run before Transport parsing
  });

  it('path step failures map to status codes; 401 carries the challenges', () => {
    const s = session();
    s.push(req('DESCRIBE', 'rtsp://h/x', [['CSeq', '1']]), 1);
    const [r] = responses(s.resolve({ ok: false, error: new AuthError(), challenges: ['Digest realm="streamgate"', 'Basic realm="streamgate"'] }, 2));
    assert.equal(r?.status, 401);
    assert.deepEqual(r?.headers.getAll('www-authenticate'), ['Digest realm="streamgate"', 'Basic realm="streamgate"']);
    assert.equal(rtspStatusOf(new NotFoundError('x')), 404);
    assert.equal(rtspStatusOf(new BusyError('x')), 503);
    assert.equal(rtspStatusOf(new Error('bug')), 500);
  });

  it('ANNOUNCE with a non-SDP body → 415; invalid SDP → 400; invalid path → 400', () => {
    const s = session();
    assert.equal(status(s.push(req('ANNOUNCE', 'rtsp://h/x', [['CSeq', '1'], ['Content-Type', 'text/plain']], 'hi'), 1)), 415);
    assert.equal(status(s.push(req('ANNOUNCE', 'rtsp://h/x', [['CSeq', '2'], ['Content-Type', 'application/sdp']], 'nope'), 1)), 400);
    assert.equal(status(s.push(req('DESCRIBE', 'rtsp://h/a%20b', [['CSeq', '3']]), 1)), 400);
    assert.equal(status(s.push(req('DESCRIBE', 'http://h/x', [['CSeq', '4']]), 1)), 400);
  });

  it('requests during a pending step wait, then run in order; a flood closes', () => {
    const s = session();
    s.push(req('DESCRIBE', 'rtsp://h/x', [['CSeq', '1']]), 1);
    assert.deepEqual(s.push(req('OPTIONS', '*', [['CSeq', '2']]), 1), []);
    const out = responses(s.resolve({ ok: true, sdp: '', mediaCount: 1 }, 2));
    assert.deepEqual(out.map((r) => r.headers.get('cseq')), ['1', '2']);
    s.push(req('DESCRIBE', 'rtsp://h/x', [['CSeq', '3']]), 3);
    let closed: RtspServerAction | undefined;
    for (let i = 0; i < 20 && !closed; i++) closed = s.push(req('OPTIONS', '*', [['CSeq', String(10 + i)]]), 3).find((a) => a.type === 'close');
    assert.ok(closed?.type === 'close' && closed.error instanceof StreamgateError);
  });

  it('timeouts: UDP sessions after 60 s without request or RTCP; publishers after the read timeout', () => {
    const s = new RtspServerSession({ sessionId: 's', udpPorts: [8000, 8001], readTimeoutMs: 10_000 }, 0);
    s.push(req('DESCRIBE', 'rtsp://h/x', [['CSeq', '1']]), 0);
    s.resolve({ ok: true, sdp: '', mediaCount: 1 }, 0);
    s.push(req('SETUP', 'rtsp://h/x/trackID=0', [['CSeq', '2'], ['Transport', 'RTP/AVP;unicast;client_port=5000-5001']]), 0);
    s.push(req('PLAY', 'rtsp://h/x', [['CSeq', '3'], ['Session', 's']]), 0);
    s.resolve({ ok: true }, 0);
    assert.equal(s.nextDeadline(), 60_000);
    s.touch(30_000); // an RTCP receiver report
    assert.deepEqual(s.tick(60_000), []);
    assert.equal(s.tick(90_000)[0]?.type, 'close');

    const p = new RtspServerSession({ sessionId: 'p', readTimeoutMs: 10_000 }, 0);
    const sdp = 'v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:streamid=0\r\n';
    p.push(req('ANNOUNCE', 'rtsp://h/x', [['CSeq', '1'], ['Content-Type', 'application/sdp']], sdp), 0);
    p.resolve({ ok: true }, 0);
    p.push(req('SETUP', 'rtsp://h/x/streamid=0', [['CSeq', '2'], ['Transport', 'RTP/AVP/TCP;unicast;interleaved=0-1;mode=record']]), 0);
    p.push(req('RECORD', 'rtsp://h/x', [['CSeq', '3'], ['Session', 'p']]), 0);
    p.resolve({ ok: true }, 0);
    assert.equal(p.state, 'record');
    p.touch(5000);
    assert.equal(p.nextDeadline(), 15_000);
    assert.equal(p.tick(15_000)[0]?.type, 'close');
  });

  it('RFC 2326 A.1 state table: requests a state does not allow → 455 with the Allow of that state', () => {
    // every state reached the way clients reach it; then each request, on a fresh session in that state
    const states: Record<RtspServerState, () => RtspServerSession> = {
      initial: () => session(),
      prePlay: () => reading('one'),
      play: () => reading('started'),
      preRecord: () => publishing('one'),
      record: () => publishing('started'),
    };
    const requests: Record<string, (cseq: string) => RtspRequest> = {
      PLAY: (c) => req('PLAY', 'rtsp://h/x', [['CSeq', c]]),
      PAUSE: (c) => req('PAUSE', 'rtsp://h/x', [['CSeq', c]]),
      RECORD: (c) => req('RECORD', 'rtsp://h/x', [['CSeq', c]]),
      'SETUP trackID=1': (c) => req('SETUP', 'rtsp://h/x/trackID=1', [['CSeq', c], ['Transport', 'RTP/AVP;unicast;client_port=5002-5003']]),
      ANNOUNCE: (c) => req('ANNOUNCE', 'rtsp://h/x', [['CSeq', c], ['Content-Type', 'application/sdp']], TWO_MEDIA_SDP),
      TEARDOWN: (c) => req('TEARDOWN', 'rtsp://h/x', [['CSeq', c]]),
    };
    // the status, or the path step the request starts (the shell answers it)
    const want: Record<RtspServerState, Record<string, number | string>> = {
      initial: { PLAY: 455, PAUSE: 455, RECORD: 455, 'SETUP trackID=1': 'describe', ANNOUNCE: 'announce', TEARDOWN: 200 },
      prePlay: { PLAY: 'play', PAUSE: 455, RECORD: 455, 'SETUP trackID=1': 200, ANNOUNCE: 455, TEARDOWN: 200 },
      play: { PLAY: 200, PAUSE: 200, RECORD: 455, 'SETUP trackID=1': 455, ANNOUNCE: 455, TEARDOWN: 200 },
      preRecord: { PLAY: 455, PAUSE: 455, RECORD: 'record', 'SETUP trackID=1': 455, ANNOUNCE: 455, TEARDOWN: 200 },
      record: { PLAY: 455, PAUSE: 200, RECORD: 200, 'SETUP trackID=1': 455, ANNOUNCE: 455, TEARDOWN: 200 },
    };
    const allow: Record<RtspServerState, string[]> = {
      initial: ['DESCRIBE', 'ANNOUNCE', 'SETUP'],
      prePlay: ['DESCRIBE', 'SETUP', 'PLAY'],
      play: ['PLAY', 'PAUSE'],
      preRecord: ['SETUP', 'RECORD'],
      record: ['RECORD', 'PAUSE'],
    };
    for (const state of Object.keys(states) as RtspServerState[]) {
      for (const [name, make] of Object.entries(requests)) {
        const s = states[state]();
        assert.equal(s.state, state);
        const actions = s.push(make('50'), 10);
        const step = actions.find((a) => a.type !== 'send');
        const r = responses(actions)[0];
        const got = r ? r.status : step?.type;
        // preRecord + SETUP trackID=1 is 455 because this Transport has no mode=record (the next test)
        assert.equal(got, want[state][name], `${state} + ${name}`);
        if (r?.status === 455) {
          assert.deepEqual(r.headers.get('allow')?.split(', '), ['OPTIONS', 'GET_PARAMETER', 'SET_PARAMETER', 'TEARDOWN', ...allow[state]], `${state} + ${name}: Allow`);
        }
      }
    }
    // PAUSE goes back to the ready state of its kind; PLAY/RECORD resume from there
    const p = reading('started');
    p.push(req('PAUSE', 'rtsp://h/x', [['CSeq', '9']]), 10);
    assert.equal(p.state, 'prePlay');
    assert.equal(p.push(req('PLAY', 'rtsp://h/x', [['CSeq', '10']]), 10)[0]?.type, 'play');
    const r = publishing('started');
    r.push(req('PAUSE', 'rtsp://h/x', [['CSeq', '9']]), 10);
    assert.equal(r.state, 'preRecord');
    assert.equal(r.push(req('RECORD', 'rtsp://h/x', [['CSeq', '10']]), 10)[0]?.type, 'record');
  });

  it('SETUP whose Transport mode does not fit the session → 455: mode=record after DESCRIBE, mode=play after ANNOUNCE', () => {
    const s = session();
    s.push(req('DESCRIBE', 'rtsp://h/x', [['CSeq', '1']]), 1);
    s.resolve({ ok: true, sdp: '', mediaCount: 2 }, 1);
    const rec = responses(s.push(req('SETUP', 'rtsp://h/x/trackID=0', [['CSeq', '2'], ['Transport', 'RTP/AVP/TCP;unicast;interleaved=0-1;mode=record']]), 2))[0];
    assert.equal(rec?.status, 455);
    const p = publishing('one');
    const play = responses(p.push(req('SETUP', 'rtsp://h/x/trackID=1', [['CSeq', '3'], ['Transport', 'RTP/AVP/TCP;unicast;interleaved=2-3;mode="PLAY"']]), 3))[0];
    assert.equal(play?.status, 455);
    const ok = responses(p.push(req('SETUP', 'rtsp://h/x/trackID=1', [['CSeq', '4'], ['Transport', 'RTP/AVP/TCP;unicast;interleaved=2-3;mode=record']]), 4))[0];
    assert.equal(ok?.status, 200);
  });

  it('459: SETUP of the aggregate URL when the session has two media; a one-media session may use it', () => {
    const s = session();
    s.push(req('DESCRIBE', 'rtsp://h/live/cam1', [['CSeq', '1']]), 1);
    s.resolve({ ok: true, sdp: '', mediaCount: 2 }, 1);
    for (const url of ['rtsp://h/live/cam1', 'rtsp://h:8554/live/cam1/']) {
      const [r] = responses(s.push(req('SETUP', url, [['CSeq', '2'], ['Transport', 'RTP/AVP/TCP;unicast']]), 2));
      assert.equal(r?.status, 459, url);
    }
    assert.equal(s.state, 'initial', 'nothing was SETUP');
    const one = session();
    one.push(req('DESCRIBE', 'rtsp://h/live/cam1', [['CSeq', '1']]), 1);
    one.resolve({ ok: true, sdp: '', mediaCount: 1 }, 1);
    const [r] = responses(one.push(req('SETUP', 'rtsp://h/live/cam1', [['CSeq', '2'], ['Transport', 'RTP/AVP/TCP;unicast']]), 2));
    assert.equal(r?.status, 200);
    // ANNOUNCEd media without a=control all answer to the aggregate URL: the first one is meant (unchanged)
    const p = session();
    p.push(req('ANNOUNCE', 'rtsp://h/x', [['CSeq', '1'], ['Content-Type', 'application/sdp']], TWO_MEDIA_SDP.replace(/a=control:.*\r\n/g, '')), 1);
    p.resolve({ ok: true }, 1);
    assert.equal(responses(p.push(req('SETUP', 'rtsp://h/x', [['CSeq', '2'], ['Transport', 'RTP/AVP/TCP;unicast;mode=record']]), 2))[0]?.status, 200);
  });

  it('460: PLAY, PAUSE and RECORD of one media URL when two are SETUP; the aggregate URL works', () => {
    const s = reading('both');
    const [r] = responses(s.push(req('PLAY', 'rtsp://h/x/trackID=1', [['CSeq', '5']]), 5));
    assert.equal(r?.status, 460);
    assert.equal(s.push(req('PLAY', 'rtsp://h/x/', [['CSeq', '6']]), 6)[0]?.type, 'play');
    s.resolve({ ok: true }, 6);
    assert.equal(responses(s.push(req('PAUSE', 'rtsp://h/x/trackID=0', [['CSeq', '7']]), 7))[0]?.status, 460);
    const p = publishing('both');
    assert.equal(responses(p.push(req('RECORD', 'rtsp://h/x/trackID=0', [['CSeq', '5']]), 5))[0]?.status, 460);
    // one media SETUP: its URL and the aggregate are the same session
    const one = session();
    one.push(req('DESCRIBE', 'rtsp://h/x', [['CSeq', '1']]), 1);
    one.resolve({ ok: true, sdp: '', mediaCount: 2 }, 1);
    one.push(req('SETUP', 'rtsp://h/x/trackID=0', [['CSeq', '2'], ['Transport', 'RTP/AVP/TCP;unicast']]), 2);
    assert.equal(one.push(req('PLAY', 'rtsp://h/x/trackID=0', [['CSeq', '3']]), 3)[0]?.type, 'play');
  });

  it('GET_PARAMETER and OPTIONS keepalives reset the session timeout, which every Session header announces', () => {
    const s = new RtspServerSession({ sessionId: 'k', udpPorts: [8000, 8001], sessionTimeoutSec: 30 }, 0);
    s.push(req('DESCRIBE', 'rtsp://h/x', [['CSeq', '1']]), 0);
    s.resolve({ ok: true, sdp: '', mediaCount: 1 }, 0);
    const setup = responses(s.push(req('SETUP', 'rtsp://h/x/trackID=0', [['CSeq', '2'], ['Transport', 'RTP/AVP;unicast;client_port=5000-5001']]), 0))[0];
    assert.equal(setup?.headers.get('session'), 'k;timeout=30');
    s.push(req('PLAY', 'rtsp://h/x', [['CSeq', '3'], ['Session', 'k']]), 0);
    const play = responses(s.resolve({ ok: true }, 0))[0];
    assert.equal(play?.headers.get('session'), 'k;timeout=30');
    assert.equal(s.nextDeadline(), 30_000);
    // ffmpeg sends GET_PARAMETER every timeout/2, VLC OPTIONS; neither sends RTCP here
    let t = 0;
    for (const method of ['GET_PARAMETER', 'OPTIONS', 'GET_PARAMETER', 'OPTIONS']) {
      t += 25_000;
      assert.deepEqual(s.tick(t), [], `alive at ${t} ms`);
      const [r] = responses(s.push(req(method, 'rtsp://h/x', [['CSeq', String(t)], ['Session', 'k']]), t));
      assert.equal(r?.status, 200);
      assert.equal(r?.headers.get('session'), 'k;timeout=30');
      assert.equal(s.nextDeadline(), t + 30_000);
    }
    assert.deepEqual(s.tick(t + 29_999), []);
    const [closed] = s.tick(t + 30_000);
    assert.equal(closed?.type === 'close' && closed.reason, 'session timed out: no request or RTCP for 30 s');
  });

  it('splitRtspUrl', () => {
    assert.deepEqual(splitRtspUrl('rtsp://u:p@h:8554/live/cam1/?key=1'), { path: 'live/cam1', query: 'key=1', pathname: '/live/cam1/' });
    assert.equal(splitRtspUrl('http://h/x'), null);
    assert.equal(splitRtspUrl('rtsp://h/%zz'), null);
  });
});
