import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PathRegistry, DEFAULT_PATH_SETTINGS, type PathPolicy, type PathSettings } from '../../../src/media/bus/registry.js';
import { AuthError, BusyError, NotFoundError } from '../../../src/errors.js';
import { Track } from '../../../src/media/bus/track.js';
import { makeFrame } from '../../../src/media/bus/frame.js';
import type { FrameSink } from '../../../src/media/bus/reader.js';
import type { Session } from '../../../src/media/bus/session.js';

function session(id: string, role: 'publisher' | 'reader'): Session & { closedWith?: string } {
  const s: Session & { closedWith?: string } = {
    id, protocol: 'rtmp', role, path: '', remoteAddr: '127.0.0.1:9', state: '', createdAt: Date.now(), bytesIn: 0, bytesOut: 0,
    close(reason) { s.closedWith = reason; },
  };
  return s;
}

function sink(): FrameSink & { n: number; closed?: string } {
  const k: FrameSink & { n: number; closed?: string } = {
    n: 0,
    start() {},
    writeFrame() { k.n++; },
    bufferedBytes: () => 0,
    close(reason) { k.closed = reason; },
  };
  return k;
}

const open: PathPolicy = { resolve: () => DEFAULT_PATH_SETTINGS, authorize: async () => {} };
const req = { protocol: 'rtmp' as const, ip: '127.0.0.1' };

function videoTrack(): Track {
  const v = new Track({ codec: 'h264', clockRate: 90000 });
  v.setH264Params(new Uint8Array([0x67]), new Uint8Array([0x68]), { width: 2, height: 2 });
  return v;
}

test('one publisher per path; a second is refused unless the path allows takeover', async () => {
  const reg = new PathRegistry(open);
  await reg.addPublisher('live/a', session('p1', 'publisher'), req);
  await assert.rejects(reg.addPublisher('live/a', session('p2', 'publisher'), req), BusyError);
  const over: PathPolicy = { resolve: () => ({ ...DEFAULT_PATH_SETTINGS, overridePublisher: true }), authorize: async () => {} };
  const reg2 = new PathRegistry(over);
  const p1 = session('p1', 'publisher');
  await reg2.addPublisher('live/a', p1, req);
  await reg2.addPublisher('live/a', session('p2', 'publisher'), req);
  assert.match(p1.closedWith ?? '', /took the path over/);
});

test('reading a path nobody publishes is NotFound; unknown paths and bad credentials are refused', async () => {
  const reg = new PathRegistry({
    resolve: (p) => (p.startsWith('live/') ? DEFAULT_PATH_SETTINGS : null),
    authorize: async (r) => {
      if (r.action === 'publish' && r.pass !== 'secret') throw new AuthError('bad credentials');
    },
  });
  await assert.rejects(reg.addReader('live/x', session('r', 'reader'), sink(), req), NotFoundError);
  await assert.rejects(reg.addPublisher('other/x', session('p', 'publisher'), req), NotFoundError);
  await assert.rejects(reg.addPublisher('live/x', session('p', 'publisher'), req), AuthError);
  await reg.addPublisher('live/x', session('p', 'publisher'), { ...req, pass: 'secret' });
});

test('readers stay attached through the grace time and continue with the returning publisher', async () => {
  const settings: PathSettings = { ...DEFAULT_PATH_SETTINGS, publisherGraceMs: 200 };
  const reg = new PathRegistry({ resolve: () => settings, authorize: async () => {} });
  const p1 = session('p1', 'publisher');
  let stream = await reg.addPublisher('live/g', p1, req);
  let [v] = stream.setTracks([videoTrack()]);
  stream.write(makeFrame(v!, 0, 0, true, [new Uint8Array(5)]));
  const k = sink();
  await reg.addReader('live/g', session('r', 'reader'), k, req);
  assert.equal(k.n, 1);
  reg.removePublisher(p1);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(k.closed, undefined);
  stream = await reg.addPublisher('live/g', session('p2', 'publisher'), req);
  [v] = stream.setTracks([videoTrack()]);
  stream.write(makeFrame(v!, 0, 0, true, [new Uint8Array(5)]));
  assert.equal(k.n, 2);
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(k.closed, undefined, 'grace timer was cancelled');
});

test('readers are closed when the grace time runs out', async () => {
  const settings: PathSettings = { ...DEFAULT_PATH_SETTINGS, publisherGraceMs: 30 };
  const reg = new PathRegistry({ resolve: () => settings, authorize: async () => {} });
  const p1 = session('p1', 'publisher');
  const stream = await reg.addPublisher('live/h', p1, req);
  stream.setTracks([videoTrack()]);
  const k = sink();
  await reg.addReader('live/h', session('r', 'reader'), k, req);
  reg.removePublisher(p1);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(k.closed, 'publisher gone');
  assert.equal(reg.paths.size, 0);
});

test('reader cap', async () => {
  const reg = new PathRegistry({ resolve: () => ({ ...DEFAULT_PATH_SETTINGS, maxReaders: 1 }), authorize: async () => {} });
  const stream = await reg.addPublisher('live/c', session('p', 'publisher'), req);
  stream.setTracks([videoTrack()]);
  await reg.addReader('live/c', session('r1', 'reader'), sink(), req);
  await assert.rejects(reg.addReader('live/c', session('r2', 'reader'), sink(), req), BusyError);
});

test('reader cap counts the clients behind a shared reader (HLS viewers of one muxer) one by one', async () => {
  const reg = new PathRegistry({ resolve: () => ({ ...DEFAULT_PATH_SETTINGS, maxReaders: 3 }), authorize: async () => {} });
  const stream = await reg.addPublisher('live/h', session('p', 'publisher'), req);
  stream.setTracks([videoTrack()]);
  const muxer = await reg.addReader('live/h', session('hls-muxer', 'reader'), sink(), req);
  const clients = [session('v1', 'reader'), session('v2', 'reader')];
  reg.readerClients.add((r) => (r === muxer ? clients : undefined));
  assert.equal(reg.readerCount('live/h'), 2, 'the muxer counts as its two viewers');
  reg.assertReaderRoom('live/h');
  await reg.addReader('live/h', session('r1', 'reader'), sink(), req);
  assert.equal(reg.readerCount('live/h'), 3);
  assert.throws(() => reg.assertReaderRoom('live/h'), BusyError);
  await assert.rejects(reg.addReader('live/h', session('r2', 'reader'), sink(), req), BusyError);
  clients.pop();
  reg.assertReaderRoom('live/h');
});

test('on-demand source starts with the first reader and stops after the last', async () => {
  const settings: PathSettings = { ...DEFAULT_PATH_SETTINGS, source: 'rtmp://127.0.0.1/x', sourceOnDemand: true, sourceOnDemandCloseAfterMs: 20 };
  let started = 0;
  let stopped = 0;
  const reg = new PathRegistry({ resolve: () => settings, authorize: async () => {} }, () => {
    started++;
    return { close: () => void stopped++ };
  });
  const r = await reg.addReader('cam', session('r', 'reader'), sink(), req);
  assert.equal(started, 1);
  reg.removeReader(r);
  await new Promise((res) => setTimeout(res, 60));
  assert.equal(stopped, 1);
});

test('config reload closes only paths whose settings changed', async () => {
  let grace = 1000;
  const policy = (): PathPolicy => ({
    resolve: (p) => (p === 'live/b' ? { ...DEFAULT_PATH_SETTINGS, publisherGraceMs: grace } : DEFAULT_PATH_SETTINGS),
    authorize: async () => {},
  });
  const reg = new PathRegistry(policy());
  const pa = session('pa', 'publisher');
  const pb = session('pb', 'publisher');
  await reg.addPublisher('live/a', pa, req);
  await reg.addPublisher('live/b', pb, req);
  grace = 2000;
  reg.reload(policy());
  assert.equal(pa.closedWith, undefined);
  assert.equal(pb.closedWith, 'path configuration changed');
});

test('keyframe requests reach the current publisher only; replaced, gone and RTMP-like publishers get none', async () => {
  const over: PathPolicy = { resolve: () => ({ ...DEFAULT_PATH_SETTINGS, overridePublisher: true, publisherGraceMs: 0 }), authorize: async () => {} };
  const reg = new PathRegistry(over);
  const asked: string[] = [];
  const capable = (id: string): Session => Object.assign(session(id, 'publisher'), { requestKeyframe: (reason: string) => void asked.push(`${id}: ${reason}`) });
  assert.equal(reg.requestKeyframe('live/k', 'nobody publishes'), false, 'unknown path');
  const p1 = capable('p1');
  const stream = await reg.addPublisher('live/k', p1, req);
  assert.equal(reg.requestKeyframe('live/k', 'pli'), true);
  assert.equal(reg.requestKeyframe('live/k', 'pli again'), false, 'rate-limited');
  await reg.addPublisher('live/k', capable('p2'), req);
  assert.equal(reg.requestKeyframe('live/k', 'fir'), true, 'the new publisher is asked at once');
  assert.deepEqual(asked, ['p1: pli', 'p2: fir']);
  const rtmp = session('p3', 'publisher'); // no requestKeyframe: cannot act
  await reg.addPublisher('live/k', rtmp, req);
  assert.equal(reg.requestKeyframe('live/k', 'pli'), false);
  assert.deepEqual(stream.keyframeRequests, { requested: 4, passedUp: 2, unserved: 1 });
  reg.removePublisher(rtmp);
  assert.equal(reg.requestKeyframe('live/k', 'pli'), false, 'path forgotten with its publisher');
});
