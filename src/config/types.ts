/** Shapes of the validated configuration (see `../config.ts` for how YAML becomes one). */

/** Log verbosity. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** One listening socket. `port: 0` or `enabled: false` disables it. */
export interface ListenerConf {
  enabled: boolean;
  /** 1..65535; 0 disables the listener */
  port: number;
  /** bind address; absent = all interfaces */
  host?: string;
}

/** RTSP listener: TCP `port`, plus the UDP pair for RTP/RTCP (RTP even, RTCP = RTP + 1, RFC 3550 §11). */
export interface RtspListenerConf extends ListenerConf {
  rtpPort: number;
  rtcpPort: number;
}

/** HLS flavour: LL-HLS (fMP4 parts), plain fMP4 segments, or MPEG-TS segments. */
export type HlsVariant = 'lowLatency' | 'fmp4' | 'mpegts';

/** HLS / LL-HLS listener and muxer settings. */
export interface HlsListenerConf extends ListenerConf {
  variant: HlsVariant;
  /** target segment length, seconds (segments are cut at the first keyframe after it) */
  segmentDuration: number;
  /** LL-HLS part length, seconds */
  partDuration: number;
  /** segments kept in the playlist */
  segmentCount: number;
  /** seconds a muxer lives without readers before it is closed */
  muxerCloseAfter: number;
  /** run the HLS muxer even when no one reads */
  alwaysRemux: boolean;
}

/** An ICE server offered to WebRTC clients. `urls` is always an array here. */
export interface IceServerConf {
  urls: string[];
  username?: string;
  credential?: string;
}

/** WebRTC listener (WHIP/WHEP/WebSocket HTTP on `port`, ICE on UDP+TCP `icePort`). */
export interface WebrtcListenerConf extends ListenerConf {
  icePort: number;
  iceServers: IceServerConf[];
  /** extra host addresses/names announced as ICE candidates (e.g. a public IP behind NAT) */
  additionalHosts: string[];
  /** shared secret for time-limited TURN credentials (coturn `use-auth-secret`) */
  turnSecret?: string;
}

/** Every listener. */
export interface ListenersConf {
  rtmp: ListenerConf;
  rtsp: RtspListenerConf;
  hls: HlsListenerConf;
  webrtc: WebrtcListenerConf;
  sip: ListenerConf;
  api: ListenerConf;
  metrics: ListenerConf;
}

/** How the RTSP client pulls a source. */
export type RtspTransport = 'automatic' | 'udp' | 'tcp';

/** Settings of one path (or of every path a `~regex` entry matches), defaults filled in. */
export interface PathConf {
  /** `'publisher'` (wait for a client to publish) or an `rtsp://`, `rtsps://`, `rtmp://` URL to pull */
  source: string;
  /** pull the source only while someone reads */
  sourceOnDemand: boolean;
  /** seconds to wait for an on-demand source to become ready */
  sourceOnDemandStartTimeout: number;
  /** seconds an on-demand source stays up after the last reader left */
  sourceOnDemandCloseAfter: number;
  rtspTransport: RtspTransport;
  /** write the stream to disk */
  record: boolean;
  /** directory recordings of this path go under */
  recordPath: string;
  /** seconds of media per recording file; a new file starts at the next keyframe after it (MediaMTX's key) */
  recordSegmentDuration: number;
  publishUser?: string;
  /** plain, or `sha256:<hex>` / `sha256:<base64>` */
  publishPass?: string;
  readUser?: string;
  /** plain, or `sha256:<hex>` / `sha256:<base64>` */
  readPass?: string;
  /** a second publisher takes the path over instead of being refused */
  overridePublisher: boolean;
  /** seconds readers stay attached after the publisher dropped, waiting for it to come back */
  publisherGrace: number;
  /** keep the last GOP so new readers start at a keyframe at once */
  gopCache: boolean;
  /** 0 = unlimited */
  maxReaders: number;
  sip: { extension?: string };
  /** `alwaysRemux` inherits `listeners.hls.alwaysRemux` when not set on the path */
  hls: { alwaysRemux: boolean };
}

/** What a user may be allowed to do. */
export type AuthAction = 'publish' | 'read' | 'playback' | 'api' | 'metrics';

/** One grant: an action, on every path or on one (`name` or `~regex`). */
export interface AuthPermission {
  action: AuthAction;
  path?: string;
}

/** One user of `auth.users`. `user: any` matches everyone without credentials. */
export interface AuthUser {
  user: string;
  /** plain, or `sha256:<hex>` / `sha256:<base64>`; absent only for `any` */
  pass?: string;
  /** allowed client addresses: IPs or CIDR ranges; absent = any address */
  ips?: string[];
  permissions: AuthPermission[];
}

/** `auth`: internal users and/or an external HTTP service. */
export interface AuthConf {
  users: AuthUser[];
  http?: {
    url: string;
    /** seconds to wait for the service; no answer = refused */
    timeout: number;
  };
}

/** The whole validated configuration. */
export interface Config {
  logLevel: LogLevel;
  /** seconds a peer may stay silent before its session is closed */
  readTimeout: number;
  /** seconds a write to a peer may stay blocked before its session is closed */
  writeTimeout: number;
  /** bytes queued per reader before it starts dropping frames up to the next keyframe */
  readerQueueBytes: number;
  /** milliseconds of media queued per reader before it starts dropping */
  readerQueueMs: number;
  listeners: ListenersConf;
  /** absent: every path is allowed with default settings */
  paths?: Record<string, PathConf>;
  /** absent: no authentication */
  auth?: AuthConf;
}

/** One problem found in a config file; `line`/`col` are 1-based. */
export interface ConfigIssue {
  key: string;
  line?: number;
  col?: number;
  message: string;
}
