import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import {
  defaultConfig,
  formatConfigError,
  isValidPathName,
  keyPath,
  loadConfigFile,
  parseConfig,
  parseDuration,
  resolvePathConf,
  listenerEnabled,
  type Config,
} from '../src/config.js';
import { ConfigError } from '../src/errors.js';

/** Repository root: tests run from dist/test/. */
const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = (name: string) => `${root}test/fixtures/config/${name}`;

/** Parses and expects a ConfigError; returns its issues. */
function issuesOf(yaml: string): ConfigError['issues'] {
  try {
    parseConfig(yaml, 't.yml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'SG_CONFIG');
    return err.issues;
  }
  assert.fail('config was accepted');
}

describe('config defaults', () => {
  it('defaultConfig() equals config/default.yml', () => {
    assert.deepEqual(loadConfigFile(`${root}config/default.yml`), defaultConfig());
  });

  it('an empty file gives the defaults: every listener on its INTERFACE.md port, no paths, no auth', () => {
    const c = parseConfig('', 'empty.yml');
    assert.deepEqual(c, defaultConfig());
    const ports = Object.fromEntries(Object.entries(c.listeners).map(([k, v]) => [k, v.port]));
    assert.deepEqual(ports, { rtmp: 1935, rtsp: 8554, hls: 8888, webrtc: 8889, sip: 5060, api: 9997, metrics: 9998 });
    assert.equal(c.listeners.rtsp.rtpPort, 8000);
    assert.equal(c.listeners.rtsp.rtcpPort, 8001);
    assert.equal(c.listeners.webrtc.icePort, 8189);
    assert.deepEqual(
      { ...c.listeners.hls, enabled: undefined, port: undefined },
      {
        enabled: undefined,
        port: undefined,
        variant: 'lowLatency',
        segmentDuration: 1,
        partDuration: 0.2,
        segmentCount: 7,
        muxerCloseAfter: 60,
        alwaysRemux: false,
      },
    );
    assert.equal(c.paths, undefined);
    assert.equal(c.auth, undefined);
    assert.equal(c.readerQueueBytes, 4 * 1024 * 1024);
  });

  it('config/example.yml is valid and documents every top-level and listener key', () => {
    const c = loadConfigFile(`${root}config/example.yml`);
    const text = readFileSync(`${root}config/example.yml`, 'utf8');
    const d = defaultConfig();
    for (const k of Object.keys(d)) assert.match(text, new RegExp(`^${k}:`, 'm'), `example.yml lacks ${k}`);
    for (const [name, l] of Object.entries(d.listeners)) {
      for (const k of Object.keys(l)) assert.match(text, new RegExp(`\\b${k}:`), `example.yml lacks listeners.${name}.${k}`);
    }
    assert.ok(c.paths !== undefined && c.auth !== undefined);
  });

  it('accepts the config sample of INTERFACE.md', () => {
    const c = parseConfig(
      `listeners:
  rtmp:    { port: 1935 }
  rtsp:    { port: 8554, rtpPort: 8000, rtcpPort: 8001 }
  hls:     { port: 8888 }
  webrtc:  { port: 8889, icePort: 8189, iceServers: [{ urls: "stun:stun.example.org:3478" }] }
  sip:     { port: 5060 }
  api:     { port: 9997 }
  metrics: { port: 9998 }
paths:
  live/cam1:
    source: rtsp://192.0.2.10:554/stream1
    sourceOnDemand: true
    record: true
  secure/cam:
    publishUser: pub
    publishPass: secret
    readUser: viewer
    readPass: "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
  "~^live/.*$": {}
auth:
  users:
    - { user: obs, pass: "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b", permissions: [{ action: publish, path: "~^live/" }] }
    - { user: any, permissions: [{ action: read }] }
  http: { url: "http://127.0.0.1:9000/auth" }
`,
      'interface.yml',
    );
    assert.deepEqual(c.listeners.webrtc.iceServers, [{ urls: ['stun:stun.example.org:3478'] }]);
    assert.equal(c.paths?.['live/cam1']?.source, 'rtsp://192.0.2.10:554/stream1');
    assert.equal(c.paths?.['live/cam1']?.sourceOnDemand, true);
    assert.equal(c.auth?.users.length, 2);
    assert.equal(c.auth?.http?.timeout, 5);
  });
});

describe('config values', () => {
  it('durations: numbers are seconds, strings carry units', () => {
    const cases: [string, number | null][] = [
      ['10s', 10],
      ['500ms', 0.5],
      ['1m30s', 90],
      ['1.5h', 5400],
      ['0s', 0],
      ['10', null],
      ['s', null],
      ['10 s', null],
      ['-1s', null],
      ['', null],
    ];
    for (const [text, want] of cases) assert.equal(parseDuration(text), want, text);
    const c = parseConfig('readTimeout: 2500ms\nwriteTimeout: 3\nlisteners: { hls: { partDuration: 0.5, segmentDuration: 2s } }');
    assert.equal(c.readTimeout, 2.5);
    assert.equal(c.writeTimeout, 3);
    assert.equal(c.listeners.hls.partDuration, 0.5);
    assert.equal(c.listeners.hls.segmentDuration, 2);
    assert.equal(parseConfig('readerQueueMs: 2s').readerQueueMs, 2000);
    assert.equal(parseConfig('readerQueueMs: 750').readerQueueMs, 750);
  });

  it('empty sections mean defaults; yes/no are booleans (mediamtx.yml style)', () => {
    const c = parseConfig('listeners:\n  rtmp:\n  hls: { alwaysRemux: yes }\npaths:\n  cam:\n  cam2: { record: no, gopCache: no }\n');
    assert.equal(c.listeners.rtmp.port, 1935);
    assert.equal(c.listeners.hls.alwaysRemux, true);
    assert.equal(c.paths?.['cam']?.source, 'publisher');
    assert.equal(c.paths?.['cam2']?.gopCache, false);
    // per-path hls.alwaysRemux inherits the listener's
    assert.equal(c.paths?.['cam']?.hls.alwaysRemux, true);
    assert.equal(parseConfig('paths: { cam: { hls: { alwaysRemux: false } } }\nlisteners: { hls: { alwaysRemux: true } }').paths?.['cam']?.hls.alwaysRemux, false);
  });

  it('iceServers urls may be a string or a list; sip.extension may be written as a number', () => {
    const c = parseConfig(`listeners:
  webrtc:
    iceServers:
      - urls: stun:127.0.0.1:3478
      - { urls: [turn:127.0.0.1:3478, "turn:127.0.0.1:3478?transport=tcp"], username: u, credential: p }
paths:
  live/cam1: { sip: { extension: 1001 } }
  live/cam2: { sip: { extension: "0042" } }
`);
    assert.deepEqual(c.listeners.webrtc.iceServers, [
      { urls: ['stun:127.0.0.1:3478'] },
      { urls: ['turn:127.0.0.1:3478', 'turn:127.0.0.1:3478?transport=tcp'], username: 'u', credential: 'p' },
    ]);
    assert.equal(c.paths?.['live/cam1']?.sip.extension, '1001');
    assert.equal(c.paths?.['live/cam2']?.sip.extension, '0042');
  });

  it('port 0 or enabled: false disables a listener', () => {
    const c = parseConfig('listeners: { rtmp: { port: 0 }, sip: { enabled: false }, api: { host: 127.0.0.1 } }');
    assert.equal(listenerEnabled(c.listeners.rtmp), false);
    assert.equal(listenerEnabled(c.listeners.sip), false);
    assert.equal(listenerEnabled(c.listeners.api), true);
    assert.equal(c.listeners.api.host, '127.0.0.1');
  });

  it('key paths: identifiers dotted, indexes and odd names bracketed', () => {
    assert.equal(keyPath(['listeners', 'rtmp', 'port']), 'listeners.rtmp.port');
    assert.equal(keyPath(['auth', 'users', 0, 'pass']), 'auth.users[0].pass');
    assert.equal(keyPath(['paths', 'live/cam1', 'source']), 'paths["live/cam1"].source');
  });
});

describe('config errors name the key and its line:column', () => {
  const cases: { name: string; yaml: string; key: string; line: number; col: number; msg: RegExp }[] = [
    { name: 'unknown top-level key', yaml: 'logLevel: info\nloglevel: debug\n', key: 'loglevel', line: 2, col: 1, msg: /unknown key "loglevel" \(did you mean "logLevel"\?\)/ },
    { name: 'unknown listener key points at the key', yaml: 'listeners:\n  rtmp:\n    port: 1935\n    prot: 1\n', key: 'listeners.rtmp.prot', line: 4, col: 5, msg: /unknown key "prot" \(did you mean "port"\?\)/ },
    { name: 'unknown listener', yaml: 'listeners:\n  srt: { port: 8890 }\n', key: 'listeners.srt', line: 2, col: 3, msg: /unknown key "srt"/ },
    { name: 'unknown path key', yaml: 'paths:\n  cam:\n    sorce: publisher\n', key: 'paths.cam.sorce', line: 3, col: 5, msg: /did you mean "source"/ },
    { name: 'wrong type: string port', yaml: 'listeners:\n  rtsp: { port: "8554" }\n', key: 'listeners.rtsp.port', line: 2, col: 17, msg: /expected an integer, got string "8554"/ },
    { name: 'wrong type: list for a section', yaml: 'listeners:\n  hls: [8888]\n', key: 'listeners.hls', line: 2, col: 8, msg: /expected a mapping, got a list/ },
    { name: 'wrong type: number for a boolean', yaml: 'paths:\n  cam: { record: 1 }\n', key: 'paths.cam.record', line: 2, col: 18, msg: /true or false/ },
    { name: 'empty value points at the key', yaml: 'listeners:\n  rtmp:\n    port:\n', key: 'listeners.rtmp.port', line: 3, col: 5, msg: /got null/ },
    { name: 'port out of range', yaml: 'listeners:\n  rtmp:\n    port: 65536\n', key: 'listeners.rtmp.port', line: 3, col: 11, msg: /between 0 and 65535/ },
    { name: 'negative port', yaml: 'listeners: { api: { port: -1 } }', key: 'listeners.api.port', line: 1, col: 27, msg: /between 0 and 65535/ },
    { name: 'fractional port', yaml: 'listeners: { api: { port: 80.5 } }', key: 'listeners.api.port', line: 1, col: 27, msg: /integer/ },
    { name: 'bad enum', yaml: 'logLevel: verbose\n', key: 'logLevel', line: 1, col: 11, msg: /one of "debug", "info", "warn", "error"/ },
    { name: 'bad hls variant', yaml: 'listeners:\n  hls:\n    variant: dash\n', key: 'listeners.hls.variant', line: 3, col: 14, msg: /"lowLatency", "fmp4", "mpegts"/ },
    { name: 'bad duration', yaml: 'readTimeout: soon\n', key: 'readTimeout', line: 1, col: 14, msg: /duration/ },
    { name: 'zero timeout', yaml: 'readTimeout: 0\n', key: 'readTimeout', line: 1, col: 14, msg: /> 0/ },
    { name: 'bad regex key', yaml: 'paths:\n  "~^live/(": {}\n', key: 'paths["~^live/("]', line: 2, col: 3, msg: /invalid regular expression/ },
    { name: 'bad path name: space', yaml: 'paths:\n  cam: {}\n  bad name: {}\n', key: 'paths["bad name"]', line: 3, col: 3, msg: /invalid path name/ },
    { name: 'bad path name: empty segment', yaml: 'paths:\n  live//x: {}\n', key: 'paths["live//x"]', line: 2, col: 3, msg: /invalid path name/ },
    { name: 'bad path name: dot-dot', yaml: 'paths:\n  live/../etc: {}\n', key: 'paths["live/../etc"]', line: 2, col: 3, msg: /invalid path name/ },
    { name: 'bad path name: trailing slash', yaml: 'paths:\n  live/: {}\n', key: 'paths["live/"]', line: 2, col: 3, msg: /invalid path name/ },
    { name: 'reserved name', yaml: 'paths:\n  __proto__: { record: true }\n', key: 'paths.__proto__', line: 2, col: 3, msg: /reserved/ },
    { name: 'bad source scheme', yaml: 'paths:\n  cam:\n    source: http://192.0.2.1/x\n', key: 'paths.cam.source', line: 3, col: 13, msg: /rtsp:\/\/, rtsps:\/\/ or rtmp:\/\// },
    { name: 'source on a regex path', yaml: 'paths:\n  "~^cam":\n    source: rtsp://192.0.2.1/x\n', key: 'paths["~^cam"].source', line: 3, col: 13, msg: /regex path cannot pull/ },
    { name: 'sourceOnDemand without a source', yaml: 'paths:\n  cam:\n    sourceOnDemand: true\n', key: 'paths.cam.sourceOnDemand', line: 3, col: 21, msg: /needs a source/ },
    { name: 'user without pass', yaml: 'paths:\n  cam:\n    publishUser: a\n', key: 'paths.cam.publishUser', line: 3, col: 18, msg: /needs publishPass/ },
    { name: 'duplicate sip extension', yaml: 'paths:\n  a: { sip: { extension: "1" } }\n  b: { sip: { extension: "1" } }\n', key: 'paths.b.sip.extension', line: 3, col: 26, msg: /already used by a/ },
    { name: 'non-digit sip extension', yaml: 'paths:\n  a: { sip: { extension: "12a" } }\n', key: 'paths.a.sip.extension', line: 2, col: 26, msg: /digits/ },
    { name: 'odd rtpPort', yaml: 'listeners:\n  rtsp: { rtpPort: 8001, rtcpPort: 8002 }\n', key: 'listeners.rtsp.rtpPort', line: 2, col: 20, msg: /even/ },
    { name: 'rtcpPort not rtpPort+1', yaml: 'listeners:\n  rtsp: { rtcpPort: 9000 }\n', key: 'listeners.rtsp.rtcpPort', line: 2, col: 21, msg: /rtpPort \+ 1/ },
    { name: 'TCP port clash', yaml: 'listeners:\n  hls: { port: 9000 }\n  api: { port: 9000 }\n', key: 'listeners.api.port', line: 3, col: 16, msg: /TCP port 9000 is already used by listeners.hls.port/ },
    { name: 'UDP port clash', yaml: 'listeners:\n  webrtc: { icePort: 8000 }\n', key: 'listeners.webrtc.icePort', line: 2, col: 22, msg: /UDP port 8000 is already used by listeners.rtsp.rtpPort/ },
    { name: 'bad auth action', yaml: 'auth:\n  users:\n    - user: any\n      permissions: [{ action: write }]\n', key: 'auth.users[0].permissions[0].action', line: 4, col: 31, msg: /"publish", "read"/ },
    { name: 'bad auth regex', yaml: 'auth:\n  users:\n    - user: any\n      permissions: [{ action: read, path: "~(" }]\n', key: 'auth.users[0].permissions[0].path', line: 4, col: 43, msg: /invalid regular expression/ },
    { name: 'bad ip range', yaml: 'auth:\n  users:\n    - user: any\n      ips: [10.0.0.0/33]\n      permissions: []\n', key: 'auth.users[0].ips[0]', line: 4, col: 13, msg: /IP address or CIDR/ },
    { name: 'user without pass', yaml: 'auth:\n  users:\n    - user: obs\n      permissions: []\n', key: 'auth.users[0]', line: 3, col: 7, msg: /needs pass/ },
    { name: 'any with pass', yaml: 'auth:\n  users:\n    - { user: any, pass: x, permissions: [] }\n', key: 'auth.users[0].pass', line: 3, col: 26, msg: /no credentials/ },
    { name: 'missing required key', yaml: 'auth:\n  users:\n    - user: any\n', key: 'auth.users[0].permissions', line: 3, col: 7, msg: /is required/ },
    { name: 'bad http auth url', yaml: 'auth:\n  http: { url: "ftp://x" }\n', key: 'auth.http.url', line: 2, col: 16, msg: /http:\/\/ or https:\/\// },
    { name: 'root is a list', yaml: '- a\n- b\n', key: '', line: 1, col: 1, msg: /expected a mapping, got a list/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const issues = issuesOf(c.yaml);
      const hit = issues.find((i) => i.key === c.key);
      assert.ok(hit, `no issue for ${c.key}: ${JSON.stringify(issues)}`);
      assert.equal(`${hit.line}:${hit.col}`, `${c.line}:${c.col}`, JSON.stringify(hit));
      assert.match(hit.message, c.msg);
    });
  }

  it('YAML syntax errors carry line:column', () => {
    const issues = issuesOf('listeners:\n  rtmp:\n    port: [1935\n  rtsp:\n    port: 8554\n');
    assert.equal(issues[0]?.key, '');
    assert.equal(issues[0]?.line, 4);
    assert.equal(issues[0]?.col, 3);
    const dup = issuesOf('logLevel: info\nlogLevel: warn\n');
    assert.equal(dup[0]?.line, 2);
    assert.match(dup[0]?.message ?? '', /unique/);
    const tab = issuesOf('listeners:\n\trtmp: {}\n');
    assert.equal(tab[0]?.line, 2);
  });

  it('reports every problem, in file order, and formats them as FILE:line:col: key: message', () => {
    try {
      loadConfigFile(fixture('several-errors.yml'));
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(
        formatConfigError(err).split('\n').map((l) => l.replace(/^.*several-errors\.yml:/, '').replace(/: [^:]*$/, '')),
        ['1:11: logLevel', '4:11: listeners.api.port', '9:5: paths["secure/cam"].readTimeout'],
      );
    }
  });

  it('a missing file is a ConfigError naming the file', () => {
    assert.throws(() => loadConfigFile(fixture('nope.yml')), (err: unknown) => {
      return err instanceof ConfigError && /nope\.yml: cannot read/.test(err.message);
    });
  });

  it('anchors and aliases resolve; an alias bomb is refused, not expanded', () => {
    const c = parseConfig('x-common: &c { record: true }\n'.replace('x-common: ', 'paths:\n  a: ') + '  b: *c\n');
    assert.equal(c.paths?.['b']?.record, true);
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (let i = 0; i < 9; i++) bomb.push(`${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(9).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`);
    assert.throws(() => parseConfig(bomb.join('\n')), ConfigError);
  });

  it('never throws anything but ConfigError, whatever the text (fast-check, time-boxed)', () => {
    const yamlish = fc.array(
      fc.constantFrom('listeners:', 'paths:', '  rtmp:', '    port: ', '1935', '"x"', '[', ']', '{', '}', ': ', '\n', '  ', '- ', '~^a(', 'live/cam', '&a ', '*a', '\t', 'yes', 'null'),
      { maxLength: 40 },
    );
    fc.assert(
      fc.property(fc.oneof(fc.string(), yamlish.map((a) => a.join(''))), (text) => {
        try {
          parseConfig(text);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          for (const i of err.issues) assert.ok(i.line === undefined || (i.line >= 1 && (i.col ?? 1) >= 1));
        }
      }),
      { numRuns: 300, interruptAfterTimeLimit: 3000 },
    );
  });
});

describe('resolvePathConf', () => {
  it('without a paths key every valid path is allowed with defaults', () => {
    const c = defaultConfig();
    const r = resolvePathConf(c, 'live/cam1');
    assert.equal(r?.name, 'live/cam1');
    assert.equal(r?.matchedKey, null);
    assert.equal(r?.conf.source, 'publisher');
    assert.equal(r?.conf.gopCache, true);
    assert.equal(r?.conf.publisherGrace, 10);
    assert.equal(resolvePathConf(c, 'live/../x'), null);
    assert.equal(resolvePathConf(c, ''), null);
    assert.equal(resolvePathConf(c, 'a b'), null);
  });

  it('exact names first, then regexes in file order; anything else is not allowed', () => {
    const c: Config = parseConfig(`paths:
  "~^live/":
    maxReaders: 1
  "~^live/special$":
    maxReaders: 2
  live/special:
    maxReaders: 3
`);
    assert.equal(resolvePathConf(c, 'live/special')?.conf.maxReaders, 3);
    assert.equal(resolvePathConf(c, 'live/special')?.matchedKey, 'live/special');
    assert.equal(resolvePathConf(c, 'live/other')?.matchedKey, '~^live/');
    assert.equal(resolvePathConf(c, 'vod/x'), null);
    assert.equal(resolvePathConf(c, 'constructor'), null);
    assert.equal(resolvePathConf(c, '__proto__'), null);
  });

  it('an empty paths key allows nothing', () => {
    assert.equal(resolvePathConf(parseConfig('paths:\n'), 'live/x'), null);
    assert.equal(resolvePathConf(parseConfig('paths: {}'), 'live/x'), null);
  });

  it('path names: segments of unreserved characters joined by /', () => {
    for (const ok of ['live', 'live/cam1', 'a.b_c~d-e/F9', '~x']) assert.equal(isValidPathName(ok), true, ok);
    for (const bad of ['', '/live', 'live/', 'a//b', 'a/./b', '..', 'a b', 'a?b', 'a%20b', 'ü', 'x'.repeat(1025)]) {
      assert.equal(isValidPathName(bad), false, bad);
    }
  });
});
