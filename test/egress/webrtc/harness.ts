/**
 * Helpers for WebRTC end-to-end tests: a network namespace for Chromium (it ignores loopback ICE candidates, so the
 * browser and the gateway talk over a veth pair with 10.x addresses), a headless Chromium inside it, and an ffmpeg
 * publisher that writes straight into the frame bus.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { makeFrame } from '../../../src/media/bus/frame.js';
import { DEFAULT_PATH_SETTINGS, PathRegistry, type PathPolicy } from '../../../src/media/bus/registry.js';
import type { Session } from '../../../src/media/bus/session.js';
import type { Stream } from '../../../src/media/bus/stream.js';
import { Track } from '../../../src/media/bus/track.js';
import { parseAdts, serializeAudioSpecificConfig } from '../../../src/media/codecs/aac.js';
import { isKeyframe, NalUnitType, nalType, splitAnnexB } from '../../../src/media/codecs/h264.js';
import { parseSps } from '../../../src/media/codecs/h264-sps.js';
import { startWebrtcServer, type RunningWebrtcServer, type WebrtcServerOptions } from '../../../src/signaling/whip-whep.js';
import { CHROMIUM_PATH, HEADLESS_CHROMIUM_ARGS } from '../../helpers/chromium.js';

/** True when this process may create network namespaces (root with `ip`) and Chromium is installed. */
export function canRunBrowserTests(): boolean {
  if (process.getuid?.() !== 0) return false;
  if (spawnSync('sh', ['-c', `command -v ip && command -v ffmpeg && test -x ${CHROMIUM_PATH}`]).status !== 0) return false;
  return true;
}

/** A network namespace joined to the root namespace by a veth pair. */
export interface Netns {
  name: string;
  /** address of the root-namespace end (where the gateway listens) */
  hostIp: string;
  /** address inside the namespace (Chromium's) */
  peerIp: string;
  /** IPv6 (ULA) address of the root-namespace end, with `createNetns({ ipv6: true })` */
  hostIp6?: string;
  /** IPv6 (ULA) address inside the namespace, with `createNetns({ ipv6: true })` */
  peerIp6?: string;
  /** a script that runs its arguments inside the namespace */
  exec: string;
  destroy(): void;
}

/** Options of `createNetns`. */
export interface NetnsOptions {
  /**
   * Also give the veth pair a ULA /64 (fd53:4747:…::1 and ::2, RFC 4193; not fd00::/64, which this machine's eth0
   * may use), added without duplicate address detection so the addresses are usable at once.
   */
  ipv6?: boolean;
}

/** Creates a namespace with a /24 (and optionally an IPv6 /64) on a veth pair; `destroy()` removes both. */
export function createNetns(opts: NetnsOptions = {}): Netns {
  const id = Math.floor(Math.random() * 250) + 2;
  const tag = `${process.pid % 10000}x${id}`;
  const name = `sgw${tag}`;
  const a = `vsga${tag}`.slice(0, 15);
  const b = `vsgb${tag}`.slice(0, 15);
  const net = `10.${200 + (process.pid % 50)}.${id}`;
  const net6 = `fd53:4747:${(process.pid % 0xffff).toString(16)}:${id.toString(16)}`;
  const sh = (cmd: string): void => {
    const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  };
  sh(`ip netns add ${name}`);
  try {
    sh(`ip link add ${a} type veth peer name ${b}`);
    sh(`ip link set ${b} netns ${name}`);
    sh(`ip addr add ${net}.1/24 dev ${a} && ip link set ${a} up`);
    sh(`ip netns exec ${name} sh -c 'ip addr add ${net}.2/24 dev ${b} && ip link set ${b} up && ip link set lo up'`);
    if (opts.ipv6) {
      sh(`ip -6 addr add ${net6}::1/64 dev ${a} nodad`);
      sh(`ip netns exec ${name} ip -6 addr add ${net6}::2/64 dev ${b} nodad`);
    }
  } catch (err) {
    spawnSync('ip', ['netns', 'del', name]);
    spawnSync('ip', ['link', 'del', a]);
    throw err;
  }
  const dir = mkdtempSync(join(tmpdir(), 'sgw-'));
  const exec = join(dir, 'in-netns.sh');
  writeFileSync(exec, `#!/bin/sh\nexec ip netns exec ${name} "$@"\n`);
  chmodSync(exec, 0o755);
  const chromiumWrapper = join(dir, 'chromium');
  writeFileSync(chromiumWrapper, `#!/bin/sh\nexec ip netns exec ${name} ${CHROMIUM_PATH} "$@"\n`);
  chmodSync(chromiumWrapper, 0o755);
  return {
    name,
    hostIp: `${net}.1`,
    peerIp: `${net}.2`,
    ...(opts.ipv6 ? { hostIp6: `${net6}::1`, peerIp6: `${net6}::2` } : {}),
    exec,
    destroy() {
      spawnSync('ip', ['netns', 'del', name]);
      spawnSync('ip', ['link', 'del', a]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Headless Chromium inside `ns`, with the flags the brief asks for plus fake media devices. */
export async function launchChromium(ns: Netns, extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: join(ns.exec, '..', 'chromium'),
    args: [
      ...HEADLESS_CHROMIUM_ARGS,
      '--autoplay-policy=no-user-gesture-required',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      // host candidates as IPs, not mDNS names: the namespace has no mDNS responder
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      ...extraArgs,
    ],
    timeout: 20_000,
  });
}

/** A namespace for one test and its teardown list: what is pushed is undone in reverse order after the test. */
export interface BrowserTestEnv {
  ns: Netns;
  /** teardown steps; the namespace's removal is the first, so it runs last */
  cleanup: (() => unknown)[];
}

/** Creates the test's namespace and registers the teardown of everything pushed to `cleanup` with `t.after`. */
export function browserTestEnv(t: TestContext, opts: NetnsOptions = {}): BrowserTestEnv {
  const ns = createNetns(opts);
  const cleanup: (() => unknown)[] = [() => ns.destroy()];
  // node:test runs after-hooks in registration order; tear down in reverse (browser, server, publisher, netns)
  t.after(async () => {
    for (const f of cleanup.reverse()) await f();
  });
  return { ns, cleanup };
}

/** Headless Chromium in the test's namespace, closed by its teardown. */
export async function launchTestChromium(env: BrowserTestEnv, extraArgs: string[] = []): Promise<Browser> {
  const browser = await launchChromium(env.ns, extraArgs);
  env.cleanup.push(() => browser.close());
  return browser;
}

/** A WHEP test's gateway side: an open registry, an ffmpeg publisher on one path, a WebRTC server on the veth. */
export interface WhepTestEnv extends BrowserTestEnv {
  registry: PathRegistry;
  pub: BusPublisher;
  srv: RunningWebrtcServer;
}

/**
 * {@link browserTestEnv}, then ffmpeg publishing into `path` of a fresh {@link openRegistry} and a WebRTC server on
 * the namespace's host address (ephemeral ports, no ICE servers, `server` added to those options); both are torn
 * down after the test.
 */
export async function whepTestEnv(t: TestContext, path: string, publish: BusPublishOptions, server: Partial<WebrtcServerOptions> = {}): Promise<WhepTestEnv> {
  const env = browserTestEnv(t);
  const registry = openRegistry();
  const pub = await publishToBus(registry, path, publish);
  env.cleanup.push(() => pub.stop());
  const srv = await startWebrtcServer({ host: env.ns.hostIp, port: 0, icePort: 0, iceServers: [], additionalHosts: [], registry, ...server });
  env.cleanup.push(() => srv.close());
  return { ...env, registry, pub, srv };
}

/** Browser code that finds the page's peer connection: the player's `window.streamgate.pc`, else `window.pc`. */
const PAGE_PC = '(window.streamgate && window.streamgate.pc) || window.pc';

/** Waits until the page's peer connection is connected (so playback is measured from there). */
export async function waitConnected(page: Page, timeoutMs = 15_000): Promise<void> {
  await page.waitForFunction(`(() => { const pc = ${PAGE_PC}; return !!pc && pc.connectionState === 'connected'; })()`, undefined, { timeout: timeoutMs, polling: 100 });
}

/** Inbound RTP figures of a page that plays. */
export interface PlayStats {
  framesDecoded: number;
  frameWidth: number;
  audioSamples: number;
  audioPackets: number;
  jitterBufferDelayMs: number;
  /** audio minus video estimatedPlayoutTimestamp (the NTP time each plays out now), ms: the A/V sync offset */
  avOffsetMs: number;
}

/** Inbound RTP figures of the page's peer connection (see {@link waitConnected}). */
export async function playStats(page: Page): Promise<PlayStats> {
  // browser code as a string: this project compiles without the DOM lib
  return page.evaluate(`(async () => {
    const pc = ${PAGE_PC};
    const out = { framesDecoded: 0, frameWidth: 0, audioSamples: 0, audioPackets: 0, jitterBufferDelayMs: 0, avOffsetMs: NaN };
    let va, aa;
    if (!pc) return out;
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        out.framesDecoded = s.framesDecoded || 0;
        out.frameWidth = s.frameWidth || 0;
        if (s.jitterBufferEmittedCount > 0) out.jitterBufferDelayMs = (s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000;
        va = s.estimatedPlayoutTimestamp;
      } else if (s.kind === 'audio') {
        out.audioSamples = s.totalSamplesReceived || 0;
        out.audioPackets = s.packetsReceived || 0;
        aa = s.estimatedPlayoutTimestamp;
      }
    });
    if (va !== undefined && aa !== undefined) out.avOffsetMs = aa - va;
    return out;
  })()`) as Promise<PlayStats>;
}

/** The selected candidate pair of a page's peer connection, and its inbound/outbound figures. */
export interface PairStats {
  localProtocol: string;
  localAddress: string;
  remoteAddress: string;
  remotePort: number;
  remoteProtocol: string;
  framesDecoded: number;
  frameWidth: number;
  audioPackets: number;
  framesEncoded: number;
}

/** {@link PairStats} of the page's peer connection (see {@link waitConnected}). */
export async function pairStats(page: Page): Promise<PairStats> {
  // browser code as a string: this project compiles without the DOM lib
  return page.evaluate(`(async () => {
    const pc = ${PAGE_PC};
    const stats = await pc.getStats();
    const out = { localProtocol: '', localAddress: '', remoteAddress: '', remotePort: 0, remoteProtocol: '', framesDecoded: 0, frameWidth: 0, audioPackets: 0, framesEncoded: 0 };
    let pairId;
    stats.forEach((s) => { if (s.type === 'transport') pairId = s.selectedCandidatePairId; });
    let pair;
    stats.forEach((s) => { if (s.id === pairId) pair = s; });
    stats.forEach((s) => {
      if (pair && s.id === pair.localCandidateId) { out.localProtocol = s.protocol; out.localAddress = s.address; }
      if (pair && s.id === pair.remoteCandidateId) { out.remoteProtocol = s.protocol; out.remoteAddress = s.address; out.remotePort = s.port; }
      if (s.type === 'inbound-rtp' && s.kind === 'video') { out.framesDecoded = s.framesDecoded || 0; out.frameWidth = s.frameWidth || 0; }
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audioPackets = s.packetsReceived || 0;
      if (s.type === 'outbound-rtp' && s.kind === 'video') out.framesEncoded += s.framesEncoded || 0;
    });
    return out;
  })()`) as Promise<PairStats>;
}

/** Options of {@link publishWhipFromPage}. */
export interface WhipPageOptions {
  width: number;
  height: number;
  /** wait (at most 2 s) for ICE gathering to complete before the POST, so the offer carries every candidate */
  waitForGathering?: boolean;
  /** keep the session URL (the answer's Location) in `window.whipSession`, for a DELETE later */
  keepSession?: boolean;
}

/**
 * Publishes the page's fake camera and microphone (30 fps, both tracks sendonly) with one WHIP POST to `whipUrl`;
 * the peer connection is `window.pc`. @returns the POST's status
 */
export async function publishWhipFromPage(page: Page, whipUrl: string, o: WhipPageOptions): Promise<number> {
  return page.evaluate(`(async () => {
    const ms = await navigator.mediaDevices.getUserMedia({ video: { width: ${o.width}, height: ${o.height}, frameRate: 30 }, audio: true });
    const pc = new RTCPeerConnection();
    window.pc = pc;
    for (const tr of ms.getTracks()) pc.addTransceiver(tr, { direction: 'sendonly' });
    await pc.setLocalDescription(await pc.createOffer());${
      o.waitForGathering
        ? `
    await new Promise((r) => { if (pc.iceGatheringState === 'complete') r(); pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); setTimeout(r, 2000); });`
        : ''
    }
    const res = await fetch(${JSON.stringify(whipUrl)}, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });${
      o.keepSession
        ? `
    window.whipSession = new URL(res.headers.get('Location'), location.href).toString();`
        : ''
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    return res.status;
  })()`) as Promise<number>;
}

/** A registry where every path may be published and read. */
export function openRegistry(): PathRegistry {
  const policy: PathPolicy = {
    resolve: () => ({ ...DEFAULT_PATH_SETTINGS, publisherGraceMs: 0 }),
    authorize: async () => undefined,
  };
  return new PathRegistry(policy);
}

/** A publisher session for tests. */
export function testSession(role: 'publisher' | 'reader', onClose?: (reason: string) => void): Session {
  return {
    id: `test-${role}-${Math.random().toString(36).slice(2, 8)}`,
    protocol: 'rtmp',
    role,
    path: '',
    remoteAddr: '127.0.0.1:0',
    state: role === 'publisher' ? 'publish' : 'play',
    createdAt: Date.now(),
    bytesIn: 0,
    bytesOut: 0,
    close: (reason: string) => onClose?.(reason),
  };
}

/** Options of `publishToBus`. */
export interface BusPublishOptions {
  size?: string;
  rate?: number;
  gop?: number;
  audio?: boolean;
  /** x264 profile (baseline, main, high) */
  profile?: string;
  /** extra ffmpeg video args (e.g. B-frames) */
  videoArgs?: string[];
}

/** A running ffmpeg → bus publisher. */
export interface BusPublisher {
  stream: Stream;
  child: ChildProcess;
  framesWritten(): number;
  stop(): void;
}

/**
 * Runs ffmpeg (lavfi test pattern + sine, real time) writing Annex-B H.264 on stdout and ADTS on fd 3, and
 * publishes both into `path` of `registry` as frames: video pts = frame index · 90000/rate, audio dts = frame
 * index · 1024 (both start at 0, as ffmpeg starts both encoders together).
 */
export async function publishToBus(registry: PathRegistry, path: string, o: BusPublishOptions = {}): Promise<BusPublisher> {
  const rate = o.rate ?? 30;
  const withAudio = o.audio !== false;
  const args = ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', `testsrc2=size=${o.size ?? '1280x720'}:rate=${rate}`];
  if (withAudio) args.push('-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=48000');
  args.push(
    '-map', '0:v', '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-profile:v', o.profile ?? 'high',
    '-pix_fmt', 'yuv420p', '-g', String(o.gop ?? rate), '-bsf:v', 'h264_metadata=aud=insert', ...(o.videoArgs ?? []), '-f', 'h264', 'pipe:1',
  );
  if (withAudio) args.push('-map', '1:a', '-c:a', 'aac', '-b:a', '96k', '-ac', '2', '-f', 'adts', 'pipe:3');
  const child = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));

  const session = testSession('publisher', () => child.kill('SIGKILL'));
  registry.addSession(session);
  const stream = await registry.addPublisher(path, session, { protocol: 'rtmp', ip: '127.0.0.1' });
  const video = new Track({ codec: 'h264', clockRate: 90000 });
  const audio = new Track({ codec: 'aac', clockRate: 48000, sampleRate: 48000, channels: 2 });
  let tracks: Track[] | undefined;
  let vIndex = 0;
  let aIndex = 0;
  const pendingAudio: Uint8Array[] = [];

  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ffmpeg produced no keyframe: ${stderr}`)), 15_000);
    const maybeStart = (): void => {
      if (tracks || !video.sps || (withAudio && !audio.config)) return;
      tracks = stream.setTracks(withAudio ? [video, audio] : [video]);
      clearTimeout(timer);
      resolve();
    };

    // video: Annex-B, access units delimited by AUD NAL units
    let vbuf: Buffer = Buffer.alloc(0);
    let au: Uint8Array[] = [];
    let lastSps: Uint8Array | undefined;
    child.stdout!.on('data', (chunk: Buffer) => {
      vbuf = vbuf.byteLength ? Buffer.concat([vbuf, chunk]) : chunk;
      const lastStart = vbuf.lastIndexOf(Buffer.from([0, 0, 0, 1]));
      if (lastStart <= 0) return;
      const nalus = splitAnnexB(vbuf.subarray(0, lastStart)).map((n) => Uint8Array.from(n));
      vbuf = Buffer.from(vbuf.subarray(lastStart));
      for (const n of nalus) {
        const t = nalType(n);
        if (t === NalUnitType.AccessUnitDelimiter) {
          if (au.length > 0) emitVideo(au);
          au = [];
          continue;
        }
        if (t === NalUnitType.Sps) lastSps = n;
        if (t === NalUnitType.Pps && lastSps) {
          const sps = parseSps(lastSps);
          video.setH264Params(lastSps, n, { width: sps.width, height: sps.height });
          maybeStart();
        }
        au.push(n);
      }
    });
    const emitVideo = (nalus: Uint8Array[]): void => {
      if (!video.sps) return;
      maybeStart();
      if (!tracks) return;
      const pts = Math.round((vIndex++ * 90000) / rate);
      stream.write(makeFrame(tracks[0]!, pts, pts, isKeyframe(nalus), nalus));
    };

    // audio: ADTS frames on fd 3
    let abuf: Buffer = Buffer.alloc(0);
    const fd3 = child.stdio[3] as NodeJS.ReadableStream | null;
    fd3?.on('data', (chunk: Buffer) => {
      abuf = abuf.byteLength ? Buffer.concat([abuf, chunk]) : chunk;
      let off = 0;
      while (abuf.byteLength - off >= 7) {
        const len = ((abuf[off + 3]! & 3) << 11) | (abuf[off + 4]! << 3) | (abuf[off + 5]! >> 5);
        if (abuf.byteLength - off < len) break;
        const f = parseAdts(abuf, off);
        if (!audio.config) {
          audio.setAudioConfig(serializeAudioSpecificConfig({ objectType: f.objectType, sampleRateIndex: f.sampleRateIndex, channelConfig: f.channelConfig }), f.sampleRate, f.channels);
          maybeStart();
        }
        pendingAudio.push(Uint8Array.from(f.payload));
        off += len;
      }
      abuf = Buffer.from(abuf.subarray(off));
      if (!tracks) return;
      for (const p of pendingAudio.splice(0)) {
        const dts = aIndex++ * 1024;
        stream.write(makeFrame(tracks[1]!, dts, dts, true, [p]));
      }
    });
  });
  await ready;
  return {
    stream,
    child,
    framesWritten: () => vIndex,
    stop() {
      child.kill('SIGKILL');
      registry.removePublisher(session);
      registry.removeSession(session, 'test publisher stopped');
    },
  };
}
