import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ChunkStreamReader,
  RtmpMessageType,
  UserControlEvent,
  acknowledgementMessage,
  parseUserControl,
  pingResponseMessage,
  serializeMessage,
  setChunkSizeMessage,
  type RtmpOutMessage,
} from '../src/ingest/rtmp/chunk-stream.js';
import { amf0Object, decodeAmf0All, encodeAmf0, isAmf0Object, type Amf0Value } from '../src/media/flv/amf0.js';

/**
 * Media side of the HLS benchmark: a paced RTMP publisher that stamps every video frame with the wall clock at
 * which it was sent (an H.264 SEI user_data_unregistered message, which every server passes through unchanged),
 * and the readers of those stamps in fMP4 parts and MPEG-TS segments. A stamp found in a downloaded file says
 * exactly when its frame left the publisher, on this machine's clock, whatever the servers do to timestamps.
 */

/** Frames per second of the source. */
export const FPS = 30;
/** Keyframe interval in frames: 1 s GOPs, so streamgate's 1 s segments and nginx-rtmp's 1 s fragments cut alike. */
const GOP_FRAMES = 30;
/** Length of the encoded source; the publisher loops it with continuing timestamps. */
const SOURCE_SECONDS = 60;

/**
 * The SEI payload's UUID (16 bytes, ISO/IEC 14496-10 D.1.7): ASCII "streamgate-bench", so it has no zero byte and
 * the SEI never needs emulation prevention; it also reads as a marker when scanning raw bytes.
 */
export const STAMP_UUID = Buffer.from('streamgate-bench', 'ascii');
/** hls.js reports a user_data_unregistered UUID as 8-4-4-4-12 lowercase hex. */
export const STAMP_UUID_HLSJS = [
  STAMP_UUID.subarray(0, 4),
  STAMP_UUID.subarray(4, 6),
  STAMP_UUID.subarray(6, 8),
  STAMP_UUID.subarray(8, 10),
  STAMP_UUID.subarray(10, 16),
]
  .map((b) => b.toString('hex'))
  .join('-');

/** Wall clock in ms with sub-ms resolution, comparable across processes of this machine. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Encodes the publisher source once (cached in the temp directory across runs). */
export function prepareHlsSource(): string {
  const dir = join(tmpdir(), 'streamgate-bench');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `hls-testsrc2-640x360-${FPS}fps-gop${GOP_FRAMES}-1M-${SOURCE_SECONDS}s.flv`);
  if (existsSync(file)) return file;
  const tmp = `${file}.${process.pid}.tmp`;
  execFileSync(
    'ffmpeg',
    [
      ...['-hide_banner', '-loglevel', 'error', '-y'],
      ...['-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=${FPS}`],
      ...['-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=44100'],
      ...['-t', String(SOURCE_SECONDS)],
      // no B-frames: decode order is display order, so a stamp's time is its frame's display time
      ...['-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-bf', '0', '-pix_fmt', 'yuv420p'],
      ...['-b:v', '1M', '-maxrate', '1M', '-bufsize', '1M'],
      ...['-g', String(GOP_FRAMES), '-keyint_min', String(GOP_FRAMES), '-sc_threshold', '0'],
      ...['-c:a', 'aac', '-b:a', '96k', '-ac', '2'],
      ...['-f', 'flv', tmp],
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  renameSync(tmp, file);
  return file;
}

/** One FLV tag of the source. */
interface FlvTag {
  type: number;
  timestamp: number;
  body: Buffer;
}

/** Reads every tag of an FLV file (Adobe FLV spec E.2-E.4). */
function readFlv(file: string): FlvTag[] {
  const buf = readFileSync(file);
  if (buf.toString('latin1', 0, 3) !== 'FLV') throw new Error(`${file}: not an FLV file`);
  let o = buf.readUInt32BE(5) + 4; // header, then PreviousTagSize0
  const tags: FlvTag[] = [];
  while (o + 11 <= buf.length) {
    const type = buf[o]! & 0x1f;
    const size = buf.readUIntBE(o + 1, 3);
    const timestamp = buf.readUIntBE(o + 4, 3) | (buf[o + 7]! << 24);
    if (o + 11 + size > buf.length) break;
    tags.push({ type, timestamp, body: buf.subarray(o + 11, o + 11 + size) });
    o += 11 + size + 4;
  }
  return tags;
}

/** An SEI NAL unit carrying `text` after {@link STAMP_UUID}, with its 4-byte AVCC length prefix. */
export function stampNal(text: string): Buffer {
  const payload = Buffer.from(text, 'ascii'); // digits and '.': no zero byte, no emulation prevention needed
  const size = STAMP_UUID.length + payload.length;
  const nal = Buffer.allocUnsafe(4 + 3 + size + 1);
  nal.writeUInt32BE(3 + size + 1, 0);
  nal[4] = 0x06; // nal_unit_type 6: SEI
  nal[5] = 5; // payloadType: user_data_unregistered
  nal[6] = size; // payloadSize (< 255)
  STAMP_UUID.copy(nal, 7);
  payload.copy(nal, 7 + STAMP_UUID.length);
  nal[nal.length - 1] = 0x80; // rbsp_trailing_bits
  return nal;
}

/**
 * The stamps (send times, ms) found in a file, in order. Works on fMP4 parts and segments, and on MPEG-TS once
 * {@link tsElementaryStreams} undid the packetization.
 */
export function findStamps(bytes: Uint8Array): number[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  let i = buf.indexOf(STAMP_UUID);
  while (i >= 0) {
    const start = i + STAMP_UUID.length;
    let end = start;
    while (end < buf.length && end - start < 32 && buf[end] !== 0x80) end++;
    const v = Number(buf.toString('ascii', start, end));
    if (Number.isFinite(v)) out.push(v);
    i = buf.indexOf(STAMP_UUID, end);
  }
  return out;
}

/** The payloads of an MPEG-TS file's packets joined per PID, so PES data split across packets is contiguous. */
export function tsElementaryStreams(ts: Uint8Array): Buffer[] {
  const perPid = new Map<number, Buffer[]>();
  for (let o = 0; o + 188 <= ts.length; o += 188) {
    if (ts[o] !== 0x47) continue;
    const pid = ((ts[o + 1]! & 0x1f) << 8) | ts[o + 2]!;
    const afc = (ts[o + 3]! >> 4) & 3;
    if (!(afc & 1)) continue; // no payload
    const start = o + 4 + (afc & 2 ? 1 + ts[o + 4]! : 0);
    if (start >= o + 188) continue;
    let list = perPid.get(pid);
    if (!list) perPid.set(pid, (list = []));
    list.push(Buffer.from(ts.buffer, ts.byteOffset + start, o + 188 - start));
  }
  return [...perPid.values()].map((l) => Buffer.concat(l));
}

/** One publishing connection. */
class RtmpPublishConnection {
  private readonly socket: net.Socket;
  private readonly reader = new ChunkStreamReader();
  private handshaken = false;
  private pending = Buffer.alloc(0);
  private readonly waiters: { match: (v: Amf0Value[]) => boolean; resolve: (v: Amf0Value[]) => void; reject: (e: Error) => void }[] = [];
  streamId = 0;
  error: Error | null = null;
  closed = false;
  static readonly CHUNK_SIZE = 4096;

  constructor(
    readonly port: number,
    readonly label: string,
  ) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.socket.setNoDelay(true);
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.socket.on('error', (e) => this.fail(e));
    this.socket.on('close', () => {
      this.closed = true;
      this.fail(new Error(`${label}: RTMP connection closed`));
    });
  }

  /** Handshake, connect, createStream, publish. */
  async open(app: string, stream: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    // simple handshake (C1 version bytes zero): every server accepts it
    const c1 = Buffer.alloc(1536);
    for (let i = 8; i < c1.length; i++) c1[i] = (i * 7919) & 0xff;
    this.socket.write(Buffer.concat([Buffer.of(3), c1]));
    await this.until(() => this.handshaken);
    this.send(setChunkSizeMessage(RtmpPublishConnection.CHUNK_SIZE));
    const tcUrl = `rtmp://127.0.0.1:${this.port}/${app}`;
    this.command(0, 'connect', 1, amf0Object({ app, type: 'nonprivate', flashVer: 'FMLE/3.0 (compatible; streamgate-bench)', tcUrl }));
    await this.reply((v) => v[0] === '_result' && v[1] === 1);
    this.command(0, 'createStream', 2, null);
    const created = await this.reply((v) => v[0] === '_result' && v[1] === 2);
    this.streamId = typeof created[3] === 'number' ? created[3] : 1;
    this.command(this.streamId, 'publish', 3, null, stream, 'live');
    const status = await this.reply((v) => v[0] === 'onStatus');
    const info = status[3];
    const code = isAmf0Object(info) ? info['code'] : undefined;
    if (code !== 'NetStream.Publish.Start') throw new Error(`${this.label}: publish refused (${String(code)})`);
  }

  /** Writes one FLV tag as an RTMP message on the publishing stream. */
  writeTag(type: number, timestamp: number, payload: readonly Uint8Array[]): void {
    if (this.closed) return;
    const csid = type === 9 ? 6 : type === 8 ? 4 : 5;
    this.send({ csid, type, streamId: this.streamId, timestamp, payload });
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private send(msg: RtmpOutMessage): void {
    this.socket.write(serializeMessage(msg, msg.type === RtmpMessageType.setChunkSize ? 128 : RtmpPublishConnection.CHUNK_SIZE));
  }

  private command(streamId: number, name: string, txn: number, ...args: Amf0Value[]): void {
    this.send({ csid: streamId === 0 ? 3 : 8, type: RtmpMessageType.commandAmf0, streamId, timestamp: 0, payload: encodeAmf0(name, txn, ...args) });
  }

  private reply(match: (v: Amf0Value[]) => boolean): Promise<Amf0Value[]> {
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.label}: no RTMP reply in 10 s`)), 10_000);
      this.waiters.push({
        match,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  private async until(cond: () => boolean): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!cond()) {
      if (this.error) throw this.error;
      if (Date.now() > deadline) throw new Error(`${this.label}: RTMP handshake timed out`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  private onData(d: Buffer): void {
    if (!this.handshaken) {
      this.pending = Buffer.concat([this.pending, d]);
      if (this.pending.length < 1 + 2 * 1536) return;
      this.socket.write(this.pending.subarray(1, 1 + 1536)); // C2 echoes S1
      const rest = this.pending.subarray(1 + 2 * 1536);
      this.pending = Buffer.alloc(0);
      this.handshaken = true;
      if (rest.length === 0) return;
      d = rest;
    }
    try {
      for (const m of this.reader.push(d)) {
        if (m.type === RtmpMessageType.userControl) {
          const uc = parseUserControl(m.payload);
          if (uc.event === UserControlEvent.pingRequest) this.send(pingResponseMessage(uc.value));
        } else if (m.type === RtmpMessageType.commandAmf0) {
          const values = decodeAmf0All(m.payload);
          const i = this.waiters.findIndex((w) => w.match(values));
          if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(values);
        }
      }
      const ack = this.reader.takeAcknowledgement();
      if (ack !== null) this.send(acknowledgementMessage(ack));
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private fail(e: Error): void {
    this.error ??= e;
    for (const w of this.waiters.splice(0)) w.reject(e);
  }
}

/** A running publisher. */
export interface StampingPublisher {
  /** video frames sent so far */
  readonly framesSent: number;
  /** connections that failed, with their error */
  errors(): string[];
  stop(): void;
}

/**
 * Publishes `source` in real time to every target at once (the same bytes at the same moment), looping it with
 * continuing timestamps. Each video frame gets an SEI stamp with the wall clock of its sending.
 */
export async function startStampingPublisher(source: string, targets: { label: string; port: number; app: string; stream: string }[]): Promise<StampingPublisher> {
  const tags = readFlv(source);
  const media = tags.filter((t) => t.type === 8 || t.type === 9);
  const script = tags.find((t) => t.type === 18);
  const isConfig = (t: FlvTag): boolean => t.body[1] === 0; // AVC sequence header / AAC AudioSpecificConfig
  const configs = media.filter(isConfig);
  // frames only: AVC end-of-sequence (AVCPacketType 2) would end the stream at every loop
  const frames = media.filter((t) => !isConfig(t) && !(t.type === 9 && t.body[1] === 2));
  const loopMs = (frames[frames.length - 1]?.timestamp ?? 0) + Math.round(1000 / FPS);
  const conns = targets.map((t) => new RtmpPublishConnection(t.port, t.label));
  await Promise.all(conns.map((c, i) => c.open(targets[i]!.app, targets[i]!.stream)));
  const live = () => conns.filter((c) => !c.closed);
  if (script) {
    const body = Buffer.concat([Buffer.from(encodeAmf0('@setDataFrame')), script.body]);
    for (const c of live()) c.writeTag(18, 0, [body]);
  }
  for (const t of configs) for (const c of live()) c.writeTag(t.type, 0, [t.body]);

  let framesSent = 0;
  let stopped = false;
  let index = 0;
  let loop = 0;
  const start = performance.now() + 50;
  const tick = (): void => {
    if (stopped) return;
    for (;;) {
      const t = frames[index]!;
      const ts = t.timestamp + loop * loopMs;
      const wait = start + ts - performance.now();
      if (wait > 0.5) {
        setTimeout(tick, Math.max(1, Math.floor(wait)));
        return;
      }
      let payload: Uint8Array[];
      if (t.type === 9 && t.body[1] === 1) {
        // the stamp goes first in the access unit, after the 5-byte AVC video tag header
        payload = [t.body.subarray(0, 5), stampNal(wallMs().toFixed(3)), t.body.subarray(5)];
        framesSent++;
      } else {
        payload = [t.body];
      }
      for (const c of live()) c.writeTag(t.type, ts, payload);
      index++;
      if (index === frames.length) {
        index = 0;
        loop++;
      }
    }
  };
  tick();
  return {
    get framesSent() {
      return framesSent;
    },
    errors: () => conns.filter((c) => c.error).map((c) => `${c.label}: ${c.error!.message}`),
    stop() {
      stopped = true;
      for (const c of conns) c.close();
    },
  };
}
