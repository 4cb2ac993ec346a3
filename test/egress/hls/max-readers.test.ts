/**
 * `maxReaders` with HLS: every HLS viewer counts as one reader of the path (not the muxer as one), so a path capped
 * at 2 takes one HLS viewer and one RTMP player, and refuses the next of either kind (503 / BusyError).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHlsServer } from '../../../src/egress/hls/server.js';
import { BusyError } from '../../../src/errors.js';
import { DEFAULT_PATH_SETTINGS, PathRegistry } from '../../../src/media/bus/registry.js';
import { publishToBus, testSession } from '../webrtc/harness.js';
import { hasCommand, waitFor } from '../../helpers/media-tools.js';
import { TEST_HLS_SERVER } from '../../helpers/hls.js';

test('HLS viewers count against maxReaders one by one; the one too many gets 503', { skip: !hasCommand('ffmpeg') && 'ffmpeg not installed', timeout: 60_000 }, async (t) => {
  const registry = new PathRegistry({ resolve: () => ({ ...DEFAULT_PATH_SETTINGS, maxReaders: 2 }), authorize: async () => undefined });
  const pub = await publishToBus(registry, 'live/cap', { size: '320x240', rate: 30, gop: 15, audio: false });
  t.after(() => pub.stop());
  const hls = await startHlsServer({ ...TEST_HLS_SERVER, paths: registry });
  t.after(() => hls.close());
  const url = `http://127.0.0.1:${hls.port}/live/cap/index.m3u8`;
  await waitFor(() => registry.paths.get('live/cap')?.stream.ready, 15_000);
  const first = await fetch(url);
  assert.equal(first.status, 200, 'the first HLS viewer');
  await first.text();
  assert.equal(registry.readerCount('live/cap'), 1, 'the muxer counts as its one viewer');
  await registry.addReader('live/cap', testSession('reader'), { start() {}, writeFrame() {}, bufferedBytes: () => 0, close() {} }, { protocol: 'rtmp', ip: '127.0.0.1' });
  assert.equal(registry.readerCount('live/cap'), 2);
  const second = await fetch(url);
  assert.equal(second.status, 503, 'a second HLS viewer is one reader too many');
  assert.match(await second.text(), /limit of 2 readers/);
  await assert.rejects(
    registry.addReader('live/cap', testSession('reader'), { start() {}, writeFrame() {}, bufferedBytes: () => 0, close() {} }, { protocol: 'rtmp', ip: '127.0.0.1' }),
    BusyError,
  );
});
