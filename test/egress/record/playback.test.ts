import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordingCatalog, recordingFileName } from '../../../src/egress/record/catalog.js';
import { createPlaybackHandler, parseRange } from '../../../src/egress/record/playback.js';
import { startApiServer } from '../../../src/api.js';
import { AuthError } from '../../../src/errors.js';
import { PathRegistry } from '../../../src/media/bus/registry.js';
import type { RunningServer } from '../../../src/metrics.js';

describe('parseRange (RFC 9110 §14.1.2)', () => {
  const size = 1000;
  const cases: { header: string | undefined; want: ReturnType<typeof parseRange> }[] = [
    { header: undefined, want: null },
    { header: 'bytes=0-99', want: { start: 0, end: 99 } },
    { header: 'bytes=500-', want: { start: 500, end: 999 } },
    { header: 'bytes=900-5000', want: { start: 900, end: 999 } },
    { header: 'bytes=-100', want: { start: 900, end: 999 } },
    { header: 'bytes=-5000', want: { start: 0, end: 999 } },
    { header: 'Bytes = 10-19', want: { start: 10, end: 19 } },
    { header: 'bytes=1000-', want: 'unsatisfiable' },
    { header: 'bytes=-0', want: 'unsatisfiable' },
    { header: 'bytes=20-10', want: null }, // invalid: ignored
    { header: 'bytes=0-1,5-6', want: null }, // several ranges: served whole
    { header: 'items=0-1', want: null },
    { header: 'bytes=-', want: null },
    { header: 'bytes=a-b', want: null },
    { header: 'bytes=1234567890123456-', want: null }, // past 2^53: not trusted
  ];
  for (const c of cases) {
    it(`${String(c.header)} → ${JSON.stringify(c.want)}`, () => assert.deepEqual(parseRange(c.header, size), c.want));
  }
  it('an empty file satisfies no range', () => {
    assert.equal(parseRange('bytes=0-', 0), 'unsatisfiable');
    assert.equal(parseRange('bytes=-1', 0), 'unsatisfiable');
  });
});

/** A raw HTTP request (no URL normalization by the client, unlike fetch). */
function raw(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('playback over the API server', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'sg-rec-play-'));
  const root = join(tmp, 'recordings');
  const name = recordingFileName(Date.UTC(2026, 2, 3, 4, 5, 6, 7));
  const content = Buffer.alloc(5000);
  for (let i = 0; i < content.length; i++) content[i] = i % 251;
  mkdirSync(join(root, 'live', 'cam1'), { recursive: true });
  writeFileSync(join(root, 'live', 'cam1', name), content);
  // a secret next to the root that traversal must not reach
  writeFileSync(join(tmp, 'secret.mp4'), 'secret');
  let api: RunningServer;
  const allowed = new Set(['live/cam1']);

  before(async () => {
    const catalog = new RecordingCatalog(() => [root]);
    const playback = createPlaybackHandler({
      locate: (p, n) => catalog.locate(p, n),
      authorize: async (a) => {
        if (!allowed.has(a.path) && !(a.user === 'u' && a.pass === 'p')) throw new AuthError('no');
      },
    });
    const registry = new PathRegistry({ resolve: () => null, authorize: async () => undefined });
    api = await startApiServer({ port: 0, host: '127.0.0.1', registry, isHealthy: () => true, recordings: () => catalog.list(), playback });
  });
  after(async () => {
    await api.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('lists the recording, and its URL downloads the whole file', async () => {
    const list = (await (await fetch(`http://127.0.0.1:${api.port}/v1/recordings`)).json()) as { items: { path: string; segments: { url: string; bytes: number }[] }[] };
    assert.equal(list.items[0]!.path, 'live/cam1');
    const seg = list.items[0]!.segments[0]!;
    assert.equal(seg.bytes, content.length);
    const r = await raw(api.port, seg.url);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'video/mp4');
    assert.equal(r.headers['accept-ranges'], 'bytes');
    assert.equal(r.headers['content-length'], String(content.length));
    assert.ok(r.body.equals(content));
  });

  it('answers a Range request with 206 and exactly those bytes', async () => {
    const url = `/v1/recordings/live/cam1/${name}`;
    const r = await raw(api.port, url, { Range: 'bytes=100-199' });
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], `bytes 100-199/${content.length}`);
    assert.ok(r.body.equals(content.subarray(100, 200)));
    const tail = await raw(api.port, url, { Range: 'bytes=-10' });
    assert.equal(tail.status, 206);
    assert.ok(tail.body.equals(content.subarray(content.length - 10)));
    const bad = await raw(api.port, url, { Range: 'bytes=9000-' });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers['content-range'], `bytes */${content.length}`);
    const head = await raw(api.port, url, { Range: 'bytes=0-9' }, 'HEAD');
    assert.equal(head.status, 206);
    assert.equal(head.headers['content-length'], '10');
    assert.equal(head.body.length, 0);
  });

  it('never serves anything outside the recordings (traversal, other names)', async () => {
    for (const p of [
      `/v1/recordings/live/cam1/../../../secret.mp4`,
      `/v1/recordings/live/cam1/..%2F..%2F..%2Fsecret.mp4`,
      `/v1/recordings/..%2Fsecret.mp4`,
      `/v1/recordings/live/cam1/%2e%2e/cam1/${name}`,
      `/v1/recordings/live/cam1`,
      `/v1/recordings/live/cam1/`,
      `/v1/recordings/${encodeURIComponent(join(root, 'live', 'cam1'))}/${name}`,
      `/v1/recordings/live/cam1/${name}%00`,
    ]) {
      const r = await raw(api.port, p);
      assert.ok(r.status === 404 || r.status === 400 || r.status === 401, `${p}: ${r.status}`);
      assert.ok(!r.body.toString().includes('secret'), p);
    }
  });

  it('asks for credentials where playback is not open', async () => {
    mkdirSync(join(root, 'private'), { recursive: true });
    writeFileSync(join(root, 'private', name), content);
    const url = `/v1/recordings/private/${name}`;
    const r = await raw(api.port, url);
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate']), /^Basic /);
    const ok = await raw(api.port, url, { Authorization: `Basic ${Buffer.from('u:p').toString('base64')}` });
    assert.equal(ok.status, 200);
    const q = await raw(api.port, `${url}?user=u&pass=p`);
    assert.equal(q.status, 200);
  });
});
