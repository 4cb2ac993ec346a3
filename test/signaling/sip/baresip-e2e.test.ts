/**
 * Interop with a real softphone: baresip 1.0 (Debian `baresip-core` + `baresip-ffmpeg` for H.264) dials a path,
 * decodes the H.264 we send (its snapshot module saves a received picture), receives the PCMU transcoded from
 * AAC, and hangs up with BYE. Skipped when baresip or its avcodec module is not installed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gateway } from '../../../src/main.js';
import { startTestGateway } from '../../helpers/gateway.js';
import { ffmpegPublish, hasCommand, run, waitFor } from '../../helpers/media-tools.js';

const MODULES = '/usr/lib/baresip/modules';
const haveBaresip = hasCommand('baresip') && existsSync(join(MODULES, 'avcodec.so')) && hasCommand('ffmpeg') && hasCommand('ffprobe');

/** baresip's end-of-call table: `packets:  <tx>  <rx>` under the `audio` and `video` headings. */
function receivedPackets(output: string, media: 'audio' | 'video'): number {
  const m = new RegExp(`^${media}\\s+Transmit:\\s+Receive:\\s*\\npackets:\\s+\\d+\\s+(\\d+)`, 'm').exec(output);
  return m ? Number(m[1]) : 0;
}

describe('SIP reader with baresip (e2e)', { skip: haveBaresip ? false : 'baresip with the avcodec module (baresip-ffmpeg) not installed' }, () => {
  let gw: Gateway;
  let publisher: ChildProcess;

  before(async () => {
    gw = await startTestGateway('', ['rtmp', 'sip']);
    publisher = ffmpegPublish(`rtmp://127.0.0.1:${gw.ports.rtmp}/live/cam1`, { size: '640x360', rate: 25, gop: 25 });
    await waitFor(() => gw.registry.paths.get('live/cam1')?.stream.ready, 15_000);
  });

  after(async () => {
    publisher?.kill('SIGKILL');
    await gw?.close();
  });

  it('dials sip:live~cam1, decodes our H.264, receives PCMU, hangs up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baresip-e2e-'));
    const silence = join(dir, 'silence.wav');
    await run('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'anullsrc=r=8000:cl=mono', '-t', '20', '-c:a', 'pcm_s16le', silence]);
    writeFileSync(
      join(dir, 'config'),
      [
        'poll_method epoll',
        'net_interface 127.0.0.1', // SIP and media on loopback only
        `audio_source aufile,${silence}`,
        'audio_player aufile,/dev/null',
        'audio_alert aufile,/dev/null',
        'ausrc_srate 8000',
        'auplay_srate 8000',
        'video_source fakevideo,nil',
        'video_display fakevideo,nil',
        'rtp_stats yes',
        `module_path ${MODULES}`,
        'module stdio.so',
        'module g711.so',
        'module aufile.so',
        'module avcodec.so',
        'module fakevideo.so',
        'module snapshot.so',
        'module_app account.so',
        'module_app menu.so',
        '',
      ].join('\n'),
    );
    writeFileSync(join(dir, 'accounts'), '<sip:viewer@127.0.0.1>;regint=0;audio_codecs=PCMU,PCMA\n');
    const snapshot = join(dir, 'received.png');
    const bs = spawn('baresip', ['-f', dir, '-e', `/dial sip:live~cam1@127.0.0.1:${gw.ports.sip}`, '-t', '6'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    bs.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    bs.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const snap = setTimeout(() => bs.stdin!.write(`/snapshot_recv ${snapshot}\n`), 3500);
    const killer = setTimeout(() => bs.kill('SIGKILL'), 20_000);
    const code = await new Promise<number | null>((r) => bs.on('close', r));
    clearTimeout(snap);
    clearTimeout(killer);
    assert.equal(code, 0, out.slice(-2000));
    assert.match(out, /Call with sip:live~cam1@127\.0\.0\.1:\d+ terminated/);
    const video = receivedPackets(out, 'video');
    const audio = receivedPackets(out, 'audio');
    assert.ok(video > 300, `baresip received ${video} video packets`);
    assert.ok(audio > 100, `baresip received ${audio} audio packets`);
    const probe = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', snapshot]);
    assert.equal(probe.stdout.trim(), '640,360', 'a decoded picture of the published size');
    await waitFor(() => ![...gw.registry.sessions.values()].some((s) => s.protocol === 'sip'), 3000);
  });
});
