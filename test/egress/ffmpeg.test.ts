import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { ffmpegInstalled, ffmpegInstalledOrWarn } from '../../src/egress/ffmpeg.js';
import { log } from '../../src/log.js';

// this file runs in a process of its own: with no PATH, the (cached) probe finds no ffmpeg
test('without ffmpeg, each warning is logged once per process; the probe runs once', () => {
  const path = process.env.PATH;
  process.env.PATH = '';
  try {
    const warn = mock.method(log, 'warn', () => undefined);
    assert.equal(ffmpegInstalledOrWarn('RTMP readers lose audio'), false);
    assert.equal(ffmpegInstalledOrWarn('RTMP readers lose audio'), false);
    assert.equal(ffmpegInstalledOrWarn('SIP readers lose audio'), false);
    assert.deepEqual(warn.mock.calls.map((c) => c.arguments), [['RTMP readers lose audio'], ['SIP readers lose audio']]);
    process.env.PATH = path;
    assert.equal(ffmpegInstalled(), false, 'cached: not probed again');
    warn.mock.restore();
  } finally {
    process.env.PATH = path;
  }
});
