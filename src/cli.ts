/**
 * Command line: `streamgate [--config FILE]`, `streamgate check-config FILE`, `streamgate --help`.
 * Runs on import (bin/streamgate.js imports it). Exit status: 0 ok, 1 bad config or failed start, 2 bad usage.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, errorMessage } from './errors.js';
import { defaultConfig, formatConfigError, loadConfigFile, type Config } from './config.js';

/** Exit status for a command line we do not understand (as getopt-style tools do). */
const EXIT_USAGE = 2;
/** Exit status for a bad config or a gateway that failed to start. */
const EXIT_FAILURE = 1;

/** What the command line asks for. */
type Command =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'run'; configPath: string | undefined }
  | { kind: 'check'; file: string };

/** Parses argv (without node and script); a string is a usage error message. */
function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv): Command | string {
  let configPath: string | undefined;
  const positional: string[] = [];
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    } else if (a === '-h' || a === '--help') help = true;
    else if (a === '--version') version = true;
    else if (a === '-c' || a === '--config') {
      const v = argv[++i];
      if (v === undefined || v === '') return `${a} needs a FILE`;
      configPath = v;
    } else if (a.startsWith('--config=')) {
      configPath = a.slice('--config='.length);
      if (configPath === '') return '--config needs a FILE';
    } else if (a.startsWith('-') && a !== '-') return `unknown option: ${a}`;
    else positional.push(a);
  }
  if (help) return { kind: 'help' };
  if (version) return { kind: 'version' };
  const envPath = env['STREAMGATE_CONFIG'] !== '' ? env['STREAMGATE_CONFIG'] : undefined;
  const [command, ...rest] = positional;
  if (command === undefined) return { kind: 'run', configPath: configPath ?? envPath };
  if (command === 'check-config') {
    if (rest.length > 1) return `check-config takes one FILE, got ${rest.length}`;
    const file = rest[0] ?? configPath ?? envPath;
    if (file === undefined) return 'check-config needs a FILE';
    return { kind: 'check', file };
  }
  return `unknown command: ${command}`;
}

/** The usage text, with the default ports taken from the embedded defaults. */
export function usage(): string {
  const l = defaultConfig().listeners;
  return `streamgate: live-streaming gateway (RTMP, RTSP, WebRTC/WHIP in; RTMP, RTSP, HLS/LL-HLS, WebRTC/WHEP, SIP out)

Usage:
  streamgate [--config FILE]       run the gateway (embedded defaults when no config is named:
                                   every listener on, any path may be published and read, no auth)
  streamgate check-config FILE     validate FILE: prints OK, or one line per error on stderr as
                                   FILE:line:col: key: message (exit status 1)
  streamgate --help                show this text
  streamgate --version             show the version

Options:
  -c, --config FILE   YAML config file (see config/example.yml for every key)
  -h, --help          show this text

Environment:
  STREAMGATE_CONFIG     config file used when --config is not given
  STREAMGATE_LOG_LEVEL  log level: debug, info, warn, error, silent

Default ports (YAML listeners.<name>.port; 0 or enabled: false disables a listener):
  rtmp     ${l.rtmp.port}   TCP (publish and read)
  rtsp     ${l.rtsp.port}   TCP; RTP/RTCP over UDP ${l.rtsp.rtpPort}/${l.rtsp.rtcpPort}
  hls      ${l.hls.port}   HTTP (HLS, LL-HLS, player page)
  webrtc   ${l.webrtc.port}   HTTP (WHIP, WHEP, WebSocket, player page); ICE UDP+TCP ${l.webrtc.icePort}
  sip      ${l.sip.port}   UDP and TCP
  api      ${l.api.port}   HTTP (JSON control API)
  metrics  ${l.metrics.port}   HTTP (/metrics, Prometheus)

Signals: SIGTERM/SIGINT stop cleanly; SIGHUP reloads paths and auth.
Exit status: 0 ok, 1 bad config or failed start, 2 bad command line.
`;
}

function version(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  return typeof pkg === 'object' && pkg !== null && 'version' in pkg ? String(pkg.version) : 'unknown';
}

/** Runs the command line; resolves to the exit status (undefined: keep running, the gateway is up). */
async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number | undefined> {
  const cmd = parseArgs(argv, env);
  if (typeof cmd === 'string') {
    process.stderr.write(`streamgate: ${cmd}\n\n${usage()}`);
    return EXIT_USAGE;
  }
  switch (cmd.kind) {
    case 'help':
      process.stdout.write(usage());
      return 0;
    case 'version':
      process.stdout.write(`${version()}\n`);
      return 0;
    case 'check':
      try {
        loadConfigFile(cmd.file);
        process.stdout.write('OK\n');
        return 0;
      } catch (err) {
        process.stderr.write(`${formatConfigError(err)}\n`);
        return EXIT_FAILURE;
      }
    case 'run': {
      let config: Config;
      try {
        config = cmd.configPath === undefined ? defaultConfig() : loadConfigFile(cmd.configPath);
      } catch (err) {
        process.stderr.write(`${formatConfigError(err)}\n`);
        return EXIT_FAILURE;
      }
      // loaded only to run: check-config and --help must not start (or even load) the listeners
      const { runGateway } = await import('./main.js');
      try {
        const opts: { config: Config; configPath?: string } = { config };
        if (cmd.configPath !== undefined) opts.configPath = cmd.configPath;
        await runGateway(opts);
      } catch (err) {
        process.stderr.write(`streamgate: failed to start: ${err instanceof ConfigError ? formatConfigError(err) : errorMessage(err)}\n`);
        // listeners that did come up would keep the process alive (stderr is synchronous on pipes and files)
        process.exit(EXIT_FAILURE);
      }
      return undefined;
    }
  }
}

const status = await main(process.argv.slice(2), process.env);
if (status !== undefined) process.exitCode = status;
