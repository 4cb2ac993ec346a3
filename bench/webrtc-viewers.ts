/**
 * Benchmark viewers for bench/webrtc.ts, run in child processes (fork with IPC). Each viewer is a minimal WebRTC
 * receiver: one UDP socket, a recvonly offer (H.264 42e01f mode 1 + Opus), ICE as the controlling full agent
 * (checks with USE-CANDIDATE, answers the server's checks), a werift DTLS handshake in whichever role the answer
 * gives it, then it only counts the SRTP datagrams it receives (no decryption: counting costs the receiver almost
 * nothing, so the machine's CPU goes to the server being measured).
 *
 * Messages from the parent: { start: { url, count } }, { report: true }, { stop: true }.
 * Messages to the parent: { ready: n, failed: n }, { counts: [{ id, rtp }] }.
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { classes, DtlsClient, DtlsServer, Message, methods, parseMessage } from 'werift';
import { dtlsIdentity, type DtlsIdentity } from '../src/egress/webrtc/peer.js';
import { SRTP_AES128_CM_HMAC_SHA1_80 } from '../src/egress/webrtc/srtp.js';

interface Viewer {
  id: string;
  sock: Socket;
  rtp: number;
  connected: boolean;
  close(): void;
}

function offerSdp(ufrag: string, pwd: string, fingerprint: string, port: number): string {
  return [
    'v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0 1', 'a=msid-semantic: WMS',
    'm=video 9 UDP/TLS/RTP/SAVPF 108', 'c=IN IP4 0.0.0.0', 'a=rtcp:9 IN IP4 0.0.0.0',
    `a=ice-ufrag:${ufrag}`, `a=ice-pwd:${pwd}`, `a=fingerprint:${fingerprint}`, 'a=setup:actpass', 'a=mid:0',
    'a=recvonly', 'a=rtcp-mux', 'a=rtpmap:108 H264/90000', 'a=rtcp-fb:108 nack', 'a=rtcp-fb:108 nack pli',
    'a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
    `a=candidate:1 1 udp 2130706431 127.0.0.1 ${port} typ host`,
    'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', 'a=rtcp:9 IN IP4 0.0.0.0',
    `a=ice-ufrag:${ufrag}`, `a=ice-pwd:${pwd}`, `a=fingerprint:${fingerprint}`, 'a=setup:actpass', 'a=mid:1',
    'a=recvonly', 'a=rtcp-mux', 'a=rtpmap:111 opus/48000/2', 'a=fmtp:111 minptime=10;useinbandfec=1', '',
  ].join('\r\n');
}

function attr(sdp: string, name: string): string | undefined {
  const m = new RegExp(`^a=${name}:(.*)$`, 'm').exec(sdp);
  return m?.[1]?.trim();
}

async function startViewer(base: string, id: DtlsIdentity): Promise<Viewer> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const ufrag = randomBytes(4).toString('hex');
  const pwd = randomBytes(12).toString('hex');
  const res = await fetch(base, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offerSdp(ufrag, pwd, id.fingerprint, sock.address().port) });
  const answer = await res.text();
  if (res.status !== 201) {
    sock.close();
    throw new Error(`WHEP ${res.status}: ${answer.trim()}`);
  }
  const location = res.headers.get('location') ?? '';
  const rUfrag = attr(answer, 'ice-ufrag')!;
  const rPwd = attr(answer, 'ice-pwd')!;
  const setup = attr(answer, 'setup');
  const cands = [...answer.matchAll(/^a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host/gm)].map((m) => [m[1]!, Number(m[2])] as const);
  const cand = cands.find((c) => c[0] === '127.0.0.1') ?? cands[0];
  if (!cand) throw new Error('answer without a host candidate');
  const [host, port] = cand;
  const v: Viewer = { id: location, sock, rtp: 0, connected: false, close: () => undefined };
  const transport = {
    type: 'udp',
    address: { address: '127.0.0.1', port: sock.address().port, family: 'IPv4' },
    closed: false,
    onData: (_d: Buffer, _a: readonly [string, number]) => undefined as void,
    send: async (d: Buffer) => {
      sock.send(d, port, host);
    },
    close: async () => undefined,
  };
  let dtls: DtlsClient | DtlsServer | undefined;
  const check = (): void => {
    const m = new Message(methods.BINDING, classes.REQUEST);
    m.setAttribute('USERNAME', `${rUfrag}:${ufrag}`);
    m.setAttribute('PRIORITY', 1845501695);
    m.setAttribute('ICE-CONTROLLING', BigInt(`0x${randomBytes(8).toString('hex')}`));
    m.setAttribute('USE-CANDIDATE', null);
    m.addMessageIntegrity(Buffer.from(rPwd));
    m.addFingerprint();
    sock.send(m.bytes, port, host);
  };
  const connected = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('ICE/DTLS timeout')), 20_000);
    const startDtls = (): void => {
      if (dtls) return;
      const opts = {
        cert: id.certPem, key: id.keyPem, signatureHash: id.signatureHash, transport,
        srtpProfiles: [SRTP_AES128_CM_HMAC_SHA1_80] as (typeof SRTP_AES128_CM_HMAC_SHA1_80)[], extendedMasterSecret: true,
      };
      // the answer's setup is the server's role: passive → we are the DTLS client
      if (setup === 'passive') {
        const c = new DtlsClient(opts);
        dtls = c;
        c.onConnect.subscribe(() => {
          clearTimeout(timer);
          resolve();
        });
        // werift gives up after its retransmissions: a failed viewer, not a crash
        c.connect().catch((err: unknown) => {
          clearTimeout(timer);
          reject(err instanceof Error ? err : new Error(String(err)));
        });
      } else {
        const s = new DtlsServer({ ...opts, certificateRequest: true });
        dtls = s;
        s.onConnect.subscribe(() => {
          clearTimeout(timer);
          resolve();
        });
      }
    };
    sock.on('message', (buf, rinfo) => {
      const b0 = buf[0]!;
      if (b0 < 4) {
        const msg = parseMessage(buf);
        if (!msg) return;
        if (msg.messageClass === classes.REQUEST) {
          // the server's own check (werift is a full agent): answer it
          const r = new Message(methods.BINDING, classes.RESPONSE, msg.transactionId);
          r.setAttribute('XOR-MAPPED-ADDRESS', [rinfo.address, rinfo.port]);
          r.addMessageIntegrity(Buffer.from(pwd));
          r.addFingerprint();
          sock.send(r.bytes, rinfo.port, rinfo.address);
        } else if (msg.messageClass === classes.RESPONSE) startDtls();
      } else if (b0 >= 20 && b0 <= 63) transport.onData(buf, [rinfo.address, rinfo.port]);
      else if (b0 >= 128 && b0 <= 191) {
        const pt = buf[1]! & 0x7f;
        if (pt < 64 || pt > 95) v.rtp++;
      }
    });
    const checks = setInterval(() => (dtls ? clearInterval(checks) : check()), 50);
    check();
  });
  await connected;
  v.connected = true;
  // consent freshness (RFC 7675): a check every 5 s keeps the server's consent timer alive
  const consent = setInterval(check, 5000);
  v.close = () => {
    clearInterval(consent);
    if (location) void fetch(new URL(location, base), { method: 'DELETE' }).catch(() => undefined);
    try {
      dtls?.close();
    } catch {
      // already closed
    }
    sock.close();
  };
  return v;
}

const viewers: Viewer[] = [];

function send(m: object): void {
  if (process.connected) process.send?.(m);
}
// the parent died or was killed: nothing left to report to
process.on('disconnect', () => process.exit(0));
process.on('error', () => process.exit(0));

process.on('message', (msg: { start?: { url: string; count: number; concurrency: number }; report?: boolean; stop?: boolean }) => {
  void (async () => {
    if (msg.start) {
      const id = await dtlsIdentity();
      let failed = 0;
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < msg.start!.count) {
          next++;
          try {
            viewers.push(await startViewer(msg.start!.url, id));
          } catch (err) {
            failed++;
            send({ error: String(err) });
          }
        }
      };
      await Promise.all(Array.from({ length: msg.start.concurrency }, worker));
      send({ ready: viewers.length, failed });
    } else if (msg.report) {
      send({ counts: viewers.map((v) => ({ id: v.id, rtp: v.rtp })) });
    } else if (msg.stop) {
      for (const v of viewers) v.close();
      setTimeout(() => process.exit(0), 200);
    }
  })();
});
