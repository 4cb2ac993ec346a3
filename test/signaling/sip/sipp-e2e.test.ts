/**
 * End to end with SIPp as the phone: ffmpeg publishes H.264 + AAC (1 kHz tone) over RTMP, SIPp calls the path
 * with the scenarios in test/fixtures/sip, and Node UDP sockets stand in for the phone's media ports (passed to
 * SIPp with `-key audio_port/video_port`, so they are what the SDP offer names). We check the RTP and RTCP that
 * arrive: payload types from the offer, consecutive sequence numbers, increasing timestamps, a decodable H.264
 * stream, a 1 kHz tone in the PCMU, and sender reports on the next ports.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gateway } from '../../../src/main.js';
import { joinAnnexB } from '../../../src/media/codecs/h264.js';
import { H264Depacketizer } from '../../../src/media/rtp/h264.js';
import { parseRtp, type RtpPacket } from '../../../src/media/rtp/packet.js';
import { parseRtcp } from '../../../src/media/rtp/rtcp.js';
import { freePort, freeUdpPair, startTestGateway } from '../../helpers/gateway.js';
import { hasCommand, run, waitFor } from '../../helpers/media-tools.js';

const SCENARIOS = new URL('../../../../test/fixtures/sip/', import.meta.url).pathname;
const haveTools = hasCommand('sipp') && hasCommand('ffmpeg') && hasCommand('ffprobe');

/** A phone's RTP/RTCP port pair, recording what arrives. */
async function mediaPair(): Promise<{ port: number; rtp: Buffer[]; rtcp: Buffer[]; close(): void }> {
  const port = await freeUdpPair();
  const rtp: Buffer[] = [];
  const rtcp: Buffer[] = [];
  // default-size receive buffers, as a phone has: the paced start-up burst must not overflow them
  const socks = [0, 1].map(() => dgram.createSocket({ type: 'udp4' }));
  await Promise.all(socks.map((s, i) => new Promise<void>((r) => s.bind(port + i, '127.0.0.1', () => r()))));
  socks[0]!.on('message', (m) => rtp.push(m));
  socks[1]!.on('message', (m) => rtcp.push(m));
  return { port, rtp, rtcp, close: () => socks.forEach((s) => s.close()) };
}

/** Runs one SIPp UAC call; resolves with its exit code and output. */
async function sipp(scenario: string, sipPort: number, service: string, audio: number, video: number, extra: string[] = [], timeoutS = 30) {
  const args = [
    '-sf', join(SCENARIOS, scenario), '-m', '1', '-s', service, `127.0.0.1:${sipPort}`,
    '-i', '127.0.0.1', '-p', String(await freePort()), '-mi', '127.0.0.1',
    '-key', 'audio_port', String(audio), '-key', 'video_port', String(video),
    '-d', '3000', '-nostdin', '-timeout', `${timeoutS}s`, '-timeout_error', ...extra,
  ];
  return run('sipp', args, 40_000);
}

/** μ-law byte → linear sample (ITU-T G.711 §3). */
function ulawToLinear(u: number): number {
  const v = ~u & 0xff;
  const t = (((v & 0x0f) << 3) + 0x84) << ((v >> 4) & 7);
  return v & 0x80 ? 0x84 - t : t - 0x84;
}

function checkSequence(packets: RtpPacket[], what: string): void {
  assert.ok(packets.length > 0, `${what}: no packets`);
  const ssrc = packets[0]!.ssrc;
  for (let i = 1; i < packets.length; i++) {
    const a = packets[i - 1]!;
    const b = packets[i]!;
    assert.equal(b.ssrc, ssrc, `${what}: one SSRC`);
    assert.equal(b.sequenceNumber, (a.sequenceNumber + 1) & 0xffff, `${what}: sequence numbers follow each other at ${i}: ${packets.slice(Math.max(0, i - 3), i + 3).map((p) => `${p.sequenceNumber}/${p.timestamp}/${p.payload.length}`).join(' ')}`);
    const dt = (b.timestamp - a.timestamp) >>> 0;
    assert.ok(dt < 0x8000_0000, `${what}: timestamps never go back (at ${i}: ${a.timestamp} → ${b.timestamp})`);
  }
  assert.ok(((packets.at(-1)!.timestamp - packets[0]!.timestamp) >>> 0) > 0, `${what}: timestamps advance`);
}

describe('SIP readers with SIPp (e2e)', { skip: haveTools ? false : 'sipp, ffmpeg or ffprobe missing' }, () => {
  let gw: Gateway;
  let publisher: ChildProcess;

  before(async () => {
    gw = await startTestGateway(
      `
paths:
  live/cam1: { sip: { extension: 1001 } }
  secure/cam: { readUser: viewer, readPass: secret }
`,
      ['rtmp', 'sip'],
    );
    // one encode, published to both paths (tee): H.264 baseline 640x360 + AAC 44.1 kHz 1 kHz tone
    const rtmp = `rtmp://127.0.0.1:${gw.ports.rtmp}`;
    publisher = spawn(
      'ffmpeg',
      [
        '-hide_banner', '-loglevel', 'error', '-re',
        '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=44100',
        '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-profile:v', 'baseline', '-pix_fmt', 'yuv420p', '-g', '25',
        // the tee muxer needs global headers for FLV's AVC/AAC sequence headers
        '-c:a', 'aac', '-b:a', '64k', '-map', '0:v', '-map', '1:a', '-flags', '+global_header',
        '-f', 'tee', `[f=flv]${rtmp}/live/cam1|[f=flv]${rtmp}/secure/cam`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    await waitFor(() => gw.registry.paths.get('live/cam1')?.stream.ready && gw.registry.paths.get('secure/cam')?.stream.ready, 15_000);
  });

  after(async () => {
    publisher?.kill('SIGKILL');
    await gw?.close();
  });

  it('INVITE sip:live~cam1 offering PCMU + H.264: RTP with the offered payload types, SR on the next ports, BYE', async () => {
    const audio = await mediaPair();
    const video = await mediaPair();
    try {
      const r = await sipp('uac-pcmu-h264.xml', gw.ports.sip!, 'live~cam1', audio.port, video.port);
      assert.equal(r.code, 0, `SIPp failed:\n${r.stdout.slice(-1500)}\n${r.stderr.slice(-500)}`);
      await new Promise((res) => setTimeout(res, 200));

      const a = audio.rtp.map((b) => parseRtp(b));
      const v = video.rtp.map((b) => parseRtp(b));
      assert.ok(a.every((p) => p.payloadType === 0 && p.payload.length === 160 && !p.marker), 'PCMU, 20 ms per packet');
      assert.ok(v.every((p) => p.payloadType === 99), 'H.264 under the offered payload type 99');
      checkSequence(a, 'audio');
      checkSequence(v, 'video');
      // ~3 s of 20 ms packets (transcoder start-up eats a little)
      assert.ok(a.length > 100, `${a.length} audio packets`);
      for (let i = 1; i < a.length; i++) assert.equal((a[i]!.timestamp - a[i - 1]!.timestamp) >>> 0, 160, 'PCMU timestamps step by 160');

      // the tone: 1 kHz at 8 kHz has 2000 zero crossings per second
      const samples = a.slice(10).flatMap((p) => [...p.payload].map(ulawToLinear));
      let crossings = 0;
      for (let i = 1; i < samples.length; i++) if ((samples[i - 1]! < 0) !== (samples[i]! < 0)) crossings++;
      const hz = (crossings / 2) * (8000 / samples.length);
      assert.ok(Math.abs(hz - 1000) < 50, `tone at ${hz.toFixed(0)} Hz`);

      // video decodes: depacketize, write Annex-B, let ffprobe count the frames
      const depacketizer = new H264Depacketizer();
      const aus: Uint8Array[] = [];
      for (const p of v) {
        const au = depacketizer.push(p);
        if (au) aus.push(joinAnnexB(au.nalus));
      }
      const file = join(mkdtempSync(join(tmpdir(), 'sip-e2e-')), 'video.h264');
      writeFileSync(file, Buffer.concat(aus));
      const probe = await run('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'json', '-f', 'h264', file]);
      const stream = (JSON.parse(probe.stdout) as { streams: { codec_name: string; width: number; height: number; nb_read_frames: string }[] }).streams[0]!;
      assert.deepEqual([stream.codec_name, stream.width, stream.height], ['h264', 640, 360]);
      assert.ok(Number(stream.nb_read_frames) >= 50, `${stream.nb_read_frames} frames decoded`);
      assert.equal(probe.stderr.trim(), '', 'no decoder errors');

      // RTCP sender reports on RTP port + 1, about the SSRC of the stream
      for (const [pair, packets] of [[audio, a], [video, v]] as const) {
        const srs = pair.rtcp.flatMap((b) => parseRtcp(b)).filter((p) => p.type === 'sr');
        assert.ok(srs.length >= 1, 'at least one SR');
        assert.ok(srs.every((sr) => sr.type === 'sr' && sr.ssrc === packets[0]!.ssrc));
      }
      // the session is gone after SIPp's BYE
      await waitFor(() => ![...gw.registry.sessions.values()].some((s) => s.protocol === 'sip'), 3000);
    } finally {
      audio.close();
      video.close();
    }
  });

  it('a path with read credentials: 401 Digest challenge, SIPp answers it, the call gets media', async () => {
    const audio = await mediaPair();
    const video = await mediaPair();
    try {
      const r = await sipp('uac-auth.xml', gw.ports.sip!, 'secure~cam', audio.port, video.port, ['-au', 'viewer', '-ap', 'secret']);
      assert.equal(r.code, 0, `SIPp failed:\n${r.stdout.slice(-1500)}\n${r.stderr.slice(-500)}`);
      assert.ok(video.rtp.length > 20 && audio.rtp.length > 20);
      const wrong = await sipp('uac-auth.xml', gw.ports.sip!, 'secure~cam', audio.port, video.port, ['-au', 'viewer', '-ap', 'nope'], 4);
      assert.notEqual(wrong.code, 0, 'a wrong password does not get a call');
    } finally {
      audio.close();
      video.close();
    }
  });

  it('SIP over TCP (sipp -t t1): the same call on one connection', async () => {
    const audio = await mediaPair();
    const video = await mediaPair();
    try {
      const r = await sipp('uac-pcmu-h264.xml', gw.ports.sip!, 'live~cam1', audio.port, video.port, ['-t', 't1', '-d', '1000']);
      assert.equal(r.code, 0, r.stdout.slice(-800));
      assert.ok(video.rtp.length > 20 && audio.rtp.length > 20, `${video.rtp.length} video, ${audio.rtp.length} audio packets`);
    } finally {
      audio.close();
      video.close();
    }
  });

  it('an extension and OPTIONS: sip:1001 reads live/cam1; OPTIONS gets 200; an unknown path gets 404', async () => {
    const audio = await mediaPair();
    const video = await mediaPair();
    try {
      const r = await sipp('uac-pcmu-h264.xml', gw.ports.sip!, '1001', audio.port, video.port, ['-d', '500']);
      assert.equal(r.code, 0, r.stdout.slice(-800));
      assert.ok(video.rtp.length > 0);
      const o = await run('sipp', ['-sf', join(SCENARIOS, 'uac-options.xml'), '-m', '1', '-s', 'live~cam1', `127.0.0.1:${gw.ports.sip}`, '-i', '127.0.0.1', '-p', String(await freePort()), '-nostdin', '-timeout', '10s', '-timeout_error'], 20_000);
      assert.equal(o.code, 0, o.stdout.slice(-800));
      const nf = await sipp('uac-pcmu-h264.xml', gw.ports.sip!, 'nobody~here', audio.port, video.port);
      assert.notEqual(nf.code, 0);
      assert.match(nf.stdout + nf.stderr, /404/);
    } finally {
      audio.close();
      video.close();
    }
  });
});
