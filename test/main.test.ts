import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config.js';
import { startGateway } from '../src/main.js';
import type { Session } from '../src/media/bus/session.js';
import { freePort } from './helpers/gateway.js';

function fakePublisher(id: string): Session & { closedWith?: string } {
  const s: Session & { closedWith?: string } = {
    id, protocol: 'rtmp', role: 'publisher', path: '', remoteAddr: '127.0.0.1:1', state: 'publish', createdAt: Date.now(), bytesIn: 0, bytesOut: 0,
    close(reason) { s.closedWith = reason; },
  };
  return s;
}

const LISTENERS_OFF = `listeners:
  rtmp: { enabled: false }
  rtsp: { enabled: false }
  hls: { enabled: false }
  webrtc: { enabled: false }
  sip: { enabled: false }
  metrics: { enabled: false }
`;

test('health is 200 with every listener up; reload keeps unaffected paths and closes changed ones', async () => {
  const apiPort = await freePort();
  const yaml = (grace: string) => `${LISTENERS_OFF}  api: { port: ${apiPort}, host: 127.0.0.1 }
paths:
  live/a: {}
  live/b: { publisherGrace: ${grace} }
`;
  const gw = await startGateway({ config: parseConfig(yaml('5s'), 'a.yml'), handleSignals: false });
  try {
    const health = await fetch(`http://127.0.0.1:${apiPort}/health`);
    assert.equal(health.status, 200);
    const a = fakePublisher('a');
    const b = fakePublisher('b');
    await gw.registry.addPublisher('live/a', a, { protocol: 'rtmp', ip: '127.0.0.1' });
    await gw.registry.addPublisher('live/b', b, { protocol: 'rtmp', ip: '127.0.0.1' });
    await assert.rejects(gw.registry.addPublisher('live/c', fakePublisher('c'), { protocol: 'rtmp', ip: '127.0.0.1' }), /not configured/);
    gw.reload(parseConfig(yaml('9s'), 'a.yml'));
    assert.equal(a.closedWith, undefined, 'live/a is unaffected and keeps its publisher');
    assert.equal(b.closedWith, 'path configuration changed');
  } finally {
    await gw.close();
  }
});

test('the CLI reloads on SIGHUP and exits 0 on SIGTERM', { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-main-'));
  const file = join(dir, 'sg.yml');
  const apiPort = await freePort();
  writeFileSync(file, `${LISTENERS_OFF}  api: { port: ${apiPort}, host: 127.0.0.1 }\n`);
  const child = spawn(process.execPath, ['dist/src/cli.js', '--config', file], {
    env: { ...process.env, STREAMGATE_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const waitLog = async (text: string) => {
    const end = Date.now() + 10_000;
    while (!out.includes(text)) {
      if (Date.now() > end) throw new Error(`no '${text}' in log:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await waitLog('streamgate started');
  child.kill('SIGHUP');
  await waitLog('configuration reloaded');
  const code = await new Promise<number | null>((resolve) => {
    child.once('exit', (c) => resolve(c));
    child.kill('SIGTERM');
  });
  assert.equal(code, 0);
});
