import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root: tests run from dist/test/. */
const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/src/cli.js');
const fixture = (name: string) => join(root, 'test/fixtures/config', name);

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; `untilStdout` (with `thenSignal`) signals the process once stdout matches. */
function run(
  args: string[],
  opts: { env?: Record<string, string>; untilStdout?: RegExp; thenSignal?: NodeJS.Signals; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    if (opts.env?.['STREAMGATE_CONFIG'] === undefined) delete env['STREAMGATE_CONFIG'];
    const child = spawn(process.execPath, [cli, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let signalled = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out: ${args.join(' ')}\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 15_000);
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString('utf8');
      if (!signalled && opts.untilStdout?.test(stdout) === true) {
        signalled = true;
        child.kill(opts.thenSignal ?? 'SIGTERM');
      }
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('streamgate check-config', () => {
  it('prints OK and exits 0 for a good file, and for config/default.yml and config/example.yml', async () => {
    for (const file of [fixture('good.yml'), join(root, 'config/default.yml'), join(root, 'config/example.yml')]) {
      const r = await run(['check-config', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'OK\n');
      assert.equal(r.stderr, '');
    }
  });

  const broken: { file: string; want: string[] }[] = [
    { file: 'unknown-key.yml', want: ['4:5: listeners.rtmp.prot: unknown key "prot" (did you mean "port"?)'] },
    { file: 'wrong-type.yml', want: ['4:14: listeners.rtsp.rtpPort: expected an integer, got string "eight thousand"'] },
    { file: 'bad-port.yml', want: ['2:16: listeners.hls.port: must be between 0 and 65535'] },
    { file: 'bad-regex.yml', want: ['3:3: paths["~^live/(cam"]: invalid regular expression: /^live/(cam/: Unterminated group'] },
    { file: 'bad-path-name.yml', want: ['4:3: paths["live//cam2"]: invalid path name'] },
    {
      file: 'several-errors.yml',
      want: [
        '1:11: logLevel: expected one of "debug", "info", "warn", "error"',
        '4:11: listeners.api.port: must be between 0 and 65535',
        '9:5: paths["secure/cam"].readTimeout: unknown key "readTimeout"',
      ],
    },
  ];
  for (const b of broken) {
    it(`${b.file}: FILE:line:col: key: message, exit 1`, async () => {
      const file = fixture(b.file);
      const r = await run(['check-config', file]);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, b.want.length, r.stderr);
      b.want.forEach((w, i) => assert.ok(lines[i]?.startsWith(`${file}:${w}`), `line ${i}: ${lines[i]}\nwant: ${file}:${w}`));
    });
  }

  it('YAML syntax error: FILE:line:col: message, exit 1', async () => {
    const file = fixture('syntax-error.yml');
    const r = await run(['check-config', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:3: \\S`));
  });

  it('a missing file: exit 1 naming it', async () => {
    const r = await run(['check-config', fixture('does-not-exist.yml')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /does-not-exist\.yml: cannot read: /);
  });

  it('takes the file from --config or STREAMGATE_CONFIG; without any: usage error, exit 2', async () => {
    const viaFlag = await run(['check-config', '--config', fixture('bad-port.yml')]);
    assert.equal(viaFlag.code, 1);
    assert.match(viaFlag.stderr, /bad-port\.yml:2:16: listeners\.hls\.port/);
    const viaEnv = await run(['check-config'], { env: { STREAMGATE_CONFIG: fixture('good.yml') } });
    assert.equal(viaEnv.code, 0);
    assert.equal(viaEnv.stdout, 'OK\n');
    const none = await run(['check-config']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /check-config needs a FILE/);
  });
});

describe('streamgate command line', () => {
  it('--help and -h print usage with commands, default ports and environment, exit 0', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await run([flag]);
      assert.equal(r.code, 0);
      assert.equal(r.stderr, '');
      for (const want of ['--config FILE', 'check-config FILE', '--help', 'STREAMGATE_CONFIG', 'STREAMGATE_LOG_LEVEL']) {
        assert.ok(r.stdout.includes(want), `usage lacks ${want}`);
      }
      for (const [name, port] of [
        ['rtmp', 1935],
        ['rtsp', 8554],
        ['hls', 8888],
        ['webrtc', 8889],
        ['sip', 5060],
        ['api', 9997],
        ['metrics', 9998],
      ] as const) {
        assert.match(r.stdout, new RegExp(`^  ${name} +${port} `, 'm'));
      }
      assert.match(r.stdout, /8000\/8001/);
      assert.match(r.stdout, /8189/);
    }
  });

  it('unknown options and commands: usage on stderr, exit 2', async () => {
    for (const [args, msg] of [
      [['--bogus'], /unknown option: --bogus/],
      [['-x'], /unknown option: -x/],
      [['serve'], /unknown command: serve/],
      [['--config'], /--config needs a FILE/],
      [['check-config', 'a.yml', 'b.yml'], /takes one FILE/],
    ] as const) {
      const r = await run([...args]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, msg);
      assert.match(r.stderr, /Usage:/);
      assert.equal(r.stdout, '');
    }
  });

  it('--version prints the package version', async () => {
    const r = await run(['--version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^\d+\.\d+\.\d+/);
  });

  it('refuses to start with a bad config (from --config or STREAMGATE_CONFIG): exit 1, the errors printed', async () => {
    const a = await run(['--config', fixture('unknown-key.yml')]);
    assert.equal(a.code, 1);
    assert.match(a.stderr, /unknown-key\.yml:4:5: listeners\.rtmp\.prot: unknown key/);
    const b = await run([], { env: { STREAMGATE_CONFIG: fixture('bad-regex.yml') } });
    assert.equal(b.code, 1);
    assert.match(b.stderr, /bad-regex\.yml:3:3: /);
  });

  it('starts the gateway with a good config and exits 0 on SIGTERM', async () => {
    // every listener disabled: no port clashes with anything else on the machine
    const dir = mkdtempSync(join(tmpdir(), 'streamgate-cli-'));
    const file = join(dir, 'off.yml');
    const names = ['rtmp', 'rtsp', 'hls', 'webrtc', 'sip', 'api', 'metrics'];
    writeFileSync(file, `logLevel: info\nlisteners:\n${names.map((n) => `  ${n}: { port: 0 }`).join('\n')}\n`);
    // the test runner sets STREAMGATE_LOG_LEVEL=silent, which overrides logLevel: ask for the log lines
    const r = await run(['--config', file], { env: { STREAMGATE_LOG_LEVEL: 'info' }, untilStdout: /started/, thenSignal: 'SIGTERM' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /started/);
  });
});
