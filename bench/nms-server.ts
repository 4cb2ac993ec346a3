import { createRequire } from 'node:module';
import { join } from 'node:path';

/**
 * Runs Node-Media-Server 4 (the Node.js peer the RTMP benchmark compares against) on a loopback port:
 * `node dist/bench/nms-server.js PORT DATA_DIR`. RTMP only: no HTTP-FLV, no admin console, no recording;
 * logging at warn like streamgate in the same benchmark.
 */

interface NmsConfig {
  bind: string;
  rtmp: { port: number };
  store: { path: string };
  webadmin: { enable: boolean };
}

interface NmsInstance {
  run(): Promise<void>;
  stop(): Promise<void>;
}

const require = createRequire(import.meta.url);
const NodeMediaServer = require('node-media-server') as new (config: NmsConfig, configPath: string) => NmsInstance;
const nmsLogger = require('node-media-server/src/core/logger.js') as { level: string };

const port = Number(process.argv[2]);
const dir = process.argv[3];
if (!Number.isInteger(port) || port <= 0 || !dir) {
  console.error('usage: node dist/bench/nms-server.js PORT DATA_DIR');
  process.exit(2);
}

const nms = new NodeMediaServer({ bind: '127.0.0.1', rtmp: { port }, store: { path: dir }, webadmin: { enable: false } }, join(dir, 'nms.json'));
// the constructor forces "debug" (a console line per connection); the others run at warn too
nmsLogger.level = 'warn';
void nms.run();

const stop = () => void nms.stop().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
