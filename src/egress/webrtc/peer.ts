/**
 * The gateway's own WebRTC transport for one peer: ICE-lite on the shared ICE port (udp-mux.ts: UDP over IPv4 or
 * IPv6, or ICE-TCP), DTLS from werift's state machine (server role, client certificate checked against the offer's
 * a=fingerprint), and SRTP from srtp.ts. Media is sent with `sendRtp` (one protect + one send per packet, nothing
 * else per viewer) through the link of the nominated candidate pair.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import {
  CipherContext,
  DtlsServer,
  HashAlgorithm,
  NamedCurveAlgorithm,
  RTCCertificate,
  SignatureAlgorithm,
} from 'werift';
import { log } from '../../log.js';
import { SrtpContext, SRTP_AES128_CM_HMAC_SHA1_80, SRTP_MASTER_KEY_LENGTH, SRTP_MASTER_SALT_LENGTH } from './srtp.js';
import type { SendPool } from './send-pool.js';
import type { IceLink, MuxPeer, UdpMux } from './udp-mux.js';

/** The gateway's DTLS identity, shared by all peers of a process (one ECDSA P-256 key, like browsers use). */
export interface DtlsIdentity {
  certPem: string;
  keyPem: string;
  signatureHash: Awaited<ReturnType<typeof CipherContext.createSelfSignedCertificateWithKey>>['signatureHash'];
  /** 'sha-256 AB:CD:…' for a=fingerprint */
  fingerprint: string;
}

let identity: Promise<DtlsIdentity> | undefined;

/** Creates (once) the self-signed certificate the DTLS server presents. */
export function dtlsIdentity(): Promise<DtlsIdentity> {
  identity ??= (async () => {
    const { certPem, keyPem, signatureHash } = await CipherContext.createSelfSignedCertificateWithKey(
      { signature: SignatureAlgorithm.ecdsa_3, hash: HashAlgorithm.sha256_4 },
      NamedCurveAlgorithm.secp256r1_23,
    );
    const cert = new RTCCertificate(keyPem, certPem, signatureHash);
    const fp = cert.getFingerprints()[0]!;
    return { certPem, keyPem: cert.privateKey, signatureHash, fingerprint: `${fp.algorithm} ${fp.value}` };
  })();
  return identity;
}

/** ICE ufrag/pwd: 8 and 24 base64url characters (RFC 8839 §5.4 asks for ≥ 4 and ≥ 22, with ≥ 24/128 bits of randomness). */
export function iceCredentials(): { ufrag: string; pwd: string } {
  return { ufrag: randomBytes(6).toString('base64url'), pwd: randomBytes(18).toString('base64url') };
}

/** Peer states. */
export type PeerState = 'new' | 'checking' | 'dtls' | 'connected' | 'closed';

/** One ICE-lite + DTLS-SRTP peer on the shared mux. */
export class LeanPeer implements MuxPeer {
  /** local ICE credentials (changed by an ICE restart) */
  localUfrag: string;
  localPwd: string;
  state: PeerState = 'new';
  /** the link of the nominated pair (before any nomination: the first checked one), where everything is sent */
  link: IceLink | undefined;
  /** the nominated remote address (the link's) */
  address = '';
  port = 0;
  /** RTP packets dropped because the link refused them (an ICE-TCP viewer over its queue bound) */
  rtpDropped = 0;
  private srtp: SrtpContext | undefined;
  private dtls: DtlsServer | undefined;
  /** werift's Transport interface over the mux: DTLS records in and out for this peer only */
  private readonly transport: {
    type: string;
    address: AddressInfo;
    closed: boolean;
    onData: (data: Buffer, addr: readonly [string, number]) => void;
    send: (data: Buffer) => Promise<void>;
    close: () => Promise<void>;
  };
  packetsSent = 0;
  bytesSent = 0;
  bytesReceived = 0;
  /** decrypted RTCP from the peer */
  onRtcp: ((plain: Buffer) => void) | undefined;
  /** decrypted RTP from the peer (WHIP) */
  onRtp: ((plain: Buffer) => void) | undefined;
  onConnected: (() => void) | undefined;
  onClosed: ((reason: string) => void) | undefined;

  /** where RTP goes once DTLS is up, when send threads are used */
  private offload: { worker: number; id: number } | undefined;

  constructor(
    private readonly mux: UdpMux,
    private readonly id: DtlsIdentity,
    /** fingerprints from the offer: the client certificate must match one */
    private readonly remoteFingerprints: { algorithm: string; value: string }[],
    /** send threads for RTP (viewers); undefined: RTP is protected and sent on this thread */
    private readonly pool?: SendPool,
  ) {
    const c = iceCredentials();
    this.localUfrag = c.ufrag;
    this.localPwd = c.pwd;
    this.transport = {
      type: 'udp',
      address: { address: '0.0.0.0', port: mux.port, family: 'IPv4' },
      closed: false,
      onData: () => undefined,
      send: async (data: Buffer) => {
        this.link?.send(data);
      },
      close: async () => undefined,
    };
    mux.add(this);
  }

  /** True for links the send threads can serve: their sockets are IPv4 UDP on the ICE port. */
  private static offloadable(link: IceLink): boolean {
    return link.transport === 'udp' && link.family === 4;
  }

  /**
   * ICE restart (RFC 8445 §9) asked by the client: new local credentials, registered on the mux in place of the old
   * ones. The nominated link, DTLS and SRTP stay; media keeps flowing until the client's checks with the new
   * credentials nominate a (possibly new) pair.
   */
  restartIce(): { ufrag: string; pwd: string } {
    const old = this.localUfrag;
    const c = iceCredentials();
    this.localUfrag = c.ufrag;
    this.localPwd = c.pwd;
    this.mux.rekey(this, old);
    return c;
  }

  /** MuxPeer: a verified connectivity check. */
  onCheck(link: IceLink, nominated: boolean): void {
    if (this.state === 'closed') return;
    if (this.state === 'new') this.state = 'checking';
    // ICE-lite follows the controlling agent: the latest nominated pair wins (RFC 8445 §8.1.1); before any
    // nomination the first checked link is used so DTLS can start
    if ((nominated || !this.link || this.link.closed) && link !== this.link) {
      this.link = link;
      this.address = link.address;
      this.port = link.port;
      if (this.offload) {
        if (LeanPeer.offloadable(link)) this.pool?.move(this.offload, link.address, link.port);
        else {
          // TCP and IPv6 links are served from this thread; this thread's context takes over RTP protection
          this.pool?.remove(this.offload);
          this.offload = undefined;
        }
      }
    }
    if (!this.dtls) this.startDtls();
  }

  private startDtls(): void {
    this.state = 'dtls';
    const dtls = new DtlsServer({
      cert: this.id.certPem,
      key: this.id.keyPem,
      signatureHash: this.id.signatureHash,
      transport: this.transport,
      srtpProfiles: [SRTP_AES128_CM_HMAC_SHA1_80],
      extendedMasterSecret: true,
      certificateRequest: true,
    });
    this.dtls = dtls;
    dtls.onConnect.subscribe(() => this.dtlsConnected());
    dtls.onError.subscribe((err) => this.close(`DTLS error: ${err.message}`));
    dtls.onClose.subscribe(() => this.close('DTLS closed by the peer'));
  }

  private dtlsConnected(): void {
    const dtls = this.dtls;
    if (!dtls || this.state === 'closed') return;
    const cert = dtls.remoteCertificate;
    if (!cert || !this.fingerprintMatches(cert)) {
      this.close('DTLS client certificate does not match the offer fingerprint');
      return;
    }
    const k = dtls.extractSessionKeys(SRTP_MASTER_KEY_LENGTH, SRTP_MASTER_SALT_LENGTH);
    this.srtp = new SrtpContext(k.localKey, k.localSalt, k.remoteKey, k.remoteSalt);
    // RTP protection moves to a send thread (its own context, same keys); RTCP stays on this thread's context
    if (this.pool && this.link && LeanPeer.offloadable(this.link)) {
      this.offload = this.pool.add([k.localKey, k.localSalt, k.remoteKey, k.remoteSalt], this.address, this.port);
    }
    this.state = 'connected';
    this.onConnected?.();
  }

  private fingerprintMatches(der: Buffer): boolean {
    for (const f of this.remoteFingerprints) {
      const alg = f.algorithm.toLowerCase().replace('-', '');
      if (alg !== 'sha256' && alg !== 'sha384' && alg !== 'sha512' && alg !== 'sha1') continue;
      const hex = createHash(alg).update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
      if (hex === f.value.toUpperCase()) return true;
    }
    return false;
  }

  /** MuxPeer: DTLS, SRTP or SRTCP from a link bound to this peer. */
  onDatagram(buf: Buffer, link: IceLink): void {
    this.bytesReceived += buf.byteLength;
    const b0 = buf[0]!;
    if (b0 >= 20 && b0 <= 63) {
      this.transport.onData(buf, [link.address, link.port]);
      return;
    }
    const srtp = this.srtp;
    if (!srtp) return;
    // RFC 5761 §4: payload types 64–95 (the second byte without the marker bit) are RTCP packet types 192–223
    const pt = buf[1]! & 0x7f;
    if (pt >= 64 && pt <= 95) {
      const plain = srtp.unprotectRtcp(buf);
      if (plain) this.onRtcp?.(plain);
    } else {
      const plain = srtp.unprotectRtp(buf);
      if (plain) this.onRtp?.(plain);
    }
  }

  /** True when this peer's RTP goes through a send thread (which measures its own send latency). */
  get offloaded(): boolean {
    return this.offload !== undefined;
  }

  /** MuxPeer: nothing heard for the consent timeout. */
  onTimeout(): void {
    this.close('ICE consent expired (no checks or media from the peer)');
  }

  /**
   * Protects and sends one RTP packet (with this peer's payload type / a replaced timestamp when ≥ 0); dropped
   * before DTLS completes, and counted in `rtpDropped` when the link refuses it (ICE-TCP back-pressure).
   */
  sendRtp(plain: Uint8Array, payloadType = -1, timestamp = -1, receivedAtEpochMs = 0): void {
    const srtp = this.srtp;
    if (!srtp || this.state !== 'connected') return;
    if (this.offload) {
      this.pool!.send(this.offload, plain, payloadType, timestamp, receivedAtEpochMs);
      // this thread's context follows the rollover counters, so it can take over if the link moves to TCP/IPv6
      srtp.noteRtpSent(plain);
      this.packetsSent++;
      this.bytesSent += plain.byteLength + 10;
      return;
    }
    const out = srtp.protectRtp(plain, payloadType, timestamp);
    if (!this.link?.send(out)) {
      this.rtpDropped++;
      return;
    }
    this.packetsSent++;
    this.bytesSent += out.byteLength;
  }

  /** Protects and sends one compound RTCP packet. */
  sendRtcp(plain: Uint8Array): void {
    const srtp = this.srtp;
    if (!srtp || this.state !== 'connected') return;
    const out = srtp.protectRtcp(plain);
    if (this.link?.send(out)) this.bytesSent += out.byteLength;
  }

  /** Ends the peer. Idempotent. */
  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.mux.remove(this);
    if (this.offload) this.pool?.remove(this.offload);
    try {
      this.dtls?.close();
    } catch (err) {
      log.debug({ err }, 'dtls close');
    }
    this.onClosed?.(reason);
  }
}
