import { parseConfig } from '../../src/config.js';
import { startGateway, type Gateway } from '../../src/main.js';

/**
 * Starts a real gateway in this process with every listener on an ephemeral port (port 0 would disable a listener
 * in the YAML, so tests bind to fresh free ports instead). `extraYaml` is appended to the generated config.
 */
export async function startTestGateway(extraYaml = '', enabled: string[] = ['rtmp', 'rtsp', 'hls', 'webrtc', 'api', 'metrics']): Promise<Gateway> {
  const names = ['rtmp', 'rtsp', 'hls', 'webrtc', 'sip', 'api', 'metrics'];
  const lines = ['listeners:'];
  for (const n of names) {
    if (!enabled.includes(n)) {
      lines.push(`  ${n}: { enabled: false }`);
      continue;
    }
    const port = await freePort();
    if (n === 'rtsp') {
      const rtp = await freeUdpPair();
      lines.push(`  rtsp: { port: ${port}, host: 127.0.0.1, rtpPort: ${rtp}, rtcpPort: ${rtp + 1} }`);
    } else if (n === 'webrtc') {
      lines.push(`  webrtc: { port: ${port}, icePort: ${await freePort()} }`);
    } else {
      lines.push(`  ${n}: { port: ${port}, host: 127.0.0.1 }`);
    }
  }
  const config = parseConfig(`${lines.join('\n')}\n${extraYaml}`, 'test.yml');
  return startGateway({ config, handleSignals: false });
}

/** A TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** An even UDP port whose successor is free too (RTP/RTCP pair). */
export async function freeUdpPair(): Promise<number> {
  const dgram = await import('node:dgram');
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20000 + 2 * Math.floor(Math.random() * 15000);
    const ok = await Promise.all([port, port + 1].map((p) => new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(p, '127.0.0.1', () => s.close(() => resolve(true)));
    })));
    if (ok.every(Boolean)) return port;
  }
  throw new Error('no free UDP port pair');
}
