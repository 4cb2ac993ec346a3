import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

/** True when a command is on PATH. */
export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** Options of a synthetic publisher. */
export interface PublishOptions {
  size?: string;
  rate?: number;
  /** keyframe interval in frames */
  gop?: number;
  /** seconds; omitted = until killed */
  duration?: number;
  sampleRate?: number;
  audio?: boolean;
  /** extra output args before the URL */
  extra?: string[];
  format?: 'flv' | 'rtsp';
}

/**
 * ffmpeg publishing a lavfi test pattern (H.264 baseline-free x264 + AAC) in real time to `url`.
 * The child is killed by the caller (`child.kill('SIGKILL')`).
 */
export function ffmpegPublish(url: string, o: PublishOptions = {}): ChildProcess {
  const size = o.size ?? '640x360';
  const rate = o.rate ?? 30;
  const args = ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${rate}`];
  if (o.audio !== false) args.push('-f', 'lavfi', '-i', `sine=frequency=1000:sample_rate=${o.sampleRate ?? 44100}`);
  if (o.duration !== undefined) args.push('-t', String(o.duration));
  args.push('-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', String(o.gop ?? rate));
  if (o.audio !== false) args.push('-c:a', 'aac', '-b:a', '64k');
  args.push(...(o.extra ?? []), '-f', o.format ?? 'flv', url);
  return spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Runs a command to completion, with a hard timeout; resolves with its output. */
export function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Stream description as ffprobe reports it. */
export interface ProbedStream {
  codec_type: string;
  codec_name: string;
  width?: number;
  height?: number;
  sample_rate?: string;
  channels?: number;
}

/** ffprobe -show_streams on a URL. */
export async function ffprobeStreams(url: string, extra: string[] = [], timeoutMs = 20_000): Promise<ProbedStream[]> {
  const r = await run('ffprobe', ['-v', 'error', ...extra, '-show_streams', '-of', 'json', url], timeoutMs);
  if (r.code !== 0) throw new Error(`ffprobe failed (${r.code}): ${r.stderr}`);
  return (JSON.parse(r.stdout) as { streams: ProbedStream[] }).streams;
}

/** Packets (per stream) read by ffprobe for `seconds`, with their timestamps. */
export async function ffprobePackets(url: string, seconds: number, extra: string[] = []): Promise<{ stream_index: number; pts_time?: string; dts_time?: string; flags: string }[]> {
  const r = await run('ffprobe', ['-v', 'error', ...extra, '-read_intervals', `%+${seconds}`, '-show_packets', '-show_entries', 'packet=stream_index,pts_time,dts_time,flags', '-of', 'json', url], (seconds + 20) * 1000);
  if (r.code !== 0) throw new Error(`ffprobe failed (${r.code}): ${r.stderr}`);
  return (JSON.parse(r.stdout) as { packets: { stream_index: number; pts_time?: string; dts_time?: string; flags: string }[] }).packets;
}

/** Polls `fn` until it returns a truthy value or the time is up. */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs = 10_000, stepMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
