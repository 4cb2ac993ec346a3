import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import {
  authorize,
  authorizeAsync,
  basicChallenge,
  checkNonce,
  computeDigestResponse,
  createNonce,
  credentialsFromHeader,
  digestAuthorization,
  digestChallenge,
  digestUsable,
  NONCE_LIFETIME_MS,
  parseAuthorization,
  parseAuthParams,
  parseDigestChallenge,
  secretMatches,
  verifyDigest,
  type AuthRequest,
} from '../src/auth.js';
import { parseConfig, resolvePathConf, type Config } from '../src/config.js';
import { AuthError } from '../src/errors.js';

const sha256Hex = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const sha256B64 = (s: string) => `sha256:${createHash('sha256').update(s).digest('base64')}`;

function allowed(config: Config, req: AuthRequest): boolean {
  try {
    authorize(config, req);
    return true;
  } catch (err) {
    assert.ok(err instanceof AuthError, String(err));
    assert.equal(err.code, 'SG_AUTH');
    return false;
  }
}

/** RFC 2617 §3.5: the Authorization header a client sends for GET /dir/index.html as Mufasa. */
const RFC2617_AUTHORIZATION =
  'Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", ' +
  'uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", ' +
  'response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"';

describe('Digest against the RFC examples', () => {
  it('RFC 2617 §3.5 (MD5, qop=auth): parse, compute, verify', () => {
    const a = parseAuthorization(RFC2617_AUTHORIZATION);
    assert.ok(a !== null && a.scheme === 'digest');
    assert.deepEqual(a.params, {
      username: 'Mufasa',
      realm: 'testrealm@host.com',
      nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093',
      uri: '/dir/index.html',
      qop: 'auth',
      nc: '00000001',
      cnonce: '0a4f113b',
      response: '6629fae49393a05397450978507c4ef1',
      opaque: '5ccc069c403ebaf9f0171e9517f40e41',
    });
    const verify = { method: 'GET', realm: 'testrealm@host.com', checkNonce: false };
    assert.equal(verifyDigest(a.params, { ...verify, pass: 'Circle Of Life' }), 'ok');
    assert.equal(verifyDigest(a.params, { ...verify, pass: 'circle of life' }), 'bad');
    assert.equal(verifyDigest(a.params, { ...verify, method: 'POST', pass: 'Circle Of Life' }), 'bad');
    assert.equal(verifyDigest(a.params, { ...verify, realm: 'streamgate', pass: 'Circle Of Life' }), 'bad');
    // the nonce is not one of ours: with the nonce check on, even the right password fails
    assert.equal(verifyDigest(a.params, { method: 'GET', realm: 'testrealm@host.com', pass: 'Circle Of Life' }), 'bad');
  });

  it('RFC 2617 §3.5 challenge answered by our client side gives the RFC response', () => {
    const ch = parseDigestChallenge(
      'Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
    );
    assert.ok(ch !== null);
    assert.equal(ch.qop, 'auth');
    const header = digestAuthorization(ch, { user: 'Mufasa', pass: 'Circle Of Life', method: 'GET', uri: '/dir/index.html', cnonce: '0a4f113b' });
    assert.match(header ?? '', /response="6629fae49393a05397450978507c4ef1"/);
    assert.match(header ?? '', /opaque="5ccc069c403ebaf9f0171e9517f40e41"/);
  });

  it('RFC 7616 §3.9.1 (MD5 and SHA-256)', () => {
    const base = {
      username: 'Mufasa',
      realm: 'http-auth@example.org',
      pass: 'Circle of Life',
      method: 'GET',
      uri: '/dir/index.html',
      nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
      qop: 'auth',
      nc: '00000001',
      cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
    };
    assert.equal(computeDigestResponse({ ...base, algorithm: 'MD5' }), '8ca523f5e9506fed4657c9700eebdbec');
    assert.equal(computeDigestResponse({ ...base, algorithm: 'SHA-256' }), '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
    assert.equal(computeDigestResponse({ ...base, algorithm: 'SHA-512-256' }), null);
    assert.equal(computeDigestResponse({ ...base, qop: 'auth-int' }), null);
  });
});

describe('nonces and challenges', () => {
  const secret = new Uint8Array(32).fill(7);

  it('a nonce is ok until it expires, then stale; tampered or foreign nonces are invalid', () => {
    const n = createNonce(1_000_000, secret);
    assert.equal(checkNonce(n, 1_000_000, secret), 'ok');
    assert.equal(checkNonce(n, 1_000_000 + NONCE_LIFETIME_MS - 1, secret), 'ok');
    assert.equal(checkNonce(n, 1_000_000 + NONCE_LIFETIME_MS, secret), 'stale');
    assert.equal(checkNonce(n, 1_000_000, new Uint8Array(32)), 'invalid');
    const flipped = (n[0] === 'A' ? 'B' : 'A') + n.slice(1);
    assert.equal(checkNonce(flipped, 1_000_000, secret), 'invalid');
    assert.equal(checkNonce('dcd98b7102dd2f0e8b11d0f600bfb0c093', 1_000_000, secret), 'invalid');
    assert.notEqual(createNonce(1_000_000, secret), n);
  });

  it('challenge → client answer → verify, with and without qop, MD5 and SHA-256; stale after expiry', () => {
    for (const qop of [true, false]) {
      for (const algorithm of ['MD5', 'SHA-256'] as const) {
        const header = digestChallenge({ nowMs: 5000, qop, algorithm, secret });
        assert.match(header, /^Digest realm="streamgate", nonce="[A-Za-z0-9_-]{43}"/);
        const ch = parseDigestChallenge(header);
        assert.ok(ch !== null);
        assert.equal(ch.qop, qop ? 'auth' : undefined);
        const answer = digestAuthorization(ch, { user: 'viewer', pass: 'pw', method: 'DESCRIBE', uri: 'rtsp://127.0.0.1:8554/live/cam1' });
        const parsed = parseAuthorization(answer ?? '');
        assert.ok(parsed !== null && parsed.scheme === 'digest');
        assert.equal(verifyDigest(parsed.params, { method: 'DESCRIBE', pass: 'pw', nowMs: 6000, secret }), 'ok');
        assert.equal(verifyDigest(parsed.params, { method: 'DESCRIBE', pass: 'wrong', nowMs: 6000, secret }), 'bad');
        assert.equal(verifyDigest(parsed.params, { method: 'DESCRIBE', pass: 'pw', nowMs: 5000 + NONCE_LIFETIME_MS, secret }), 'stale');
      }
    }
    assert.match(digestChallenge({ nowMs: 0, stale: true, secret }), /, stale=true$/);
    assert.equal(basicChallenge(), 'Basic realm="streamgate"');
  });
});

describe('header parsing', () => {
  it('Basic', () => {
    const b64 = Buffer.from('user:pa:ss').toString('base64');
    assert.deepEqual(parseAuthorization(`Basic ${b64}`), { scheme: 'basic', user: 'user', pass: 'pa:ss' });
    assert.deepEqual(parseAuthorization(`basic   ${b64}  `), { scheme: 'basic', user: 'user', pass: 'pa:ss' });
    assert.equal(parseAuthorization(`Basic ${Buffer.from('nocolon').toString('base64')}`), null);
    assert.equal(parseAuthorization('Basic !!!'), null);
    assert.equal(parseAuthorization('Bearer abc'), null);
    assert.equal(parseAuthorization(undefined), null);
    assert.equal(parseAuthorization(`Basic ${'A'.repeat(5000)}`), null);
    assert.deepEqual(credentialsFromHeader(`Basic ${b64}`, 'GET'), { user: 'user', pass: 'pa:ss' });
    assert.deepEqual(credentialsFromHeader('Bearer x', 'GET'), {});
  });

  it('auth-params: quoted strings with escapes and commas, tokens, case-insensitive names', () => {
    const p = parseAuthParams('Realm="a\\"b, c", nonce=xyz,qop="auth",  algorithm=MD5');
    assert.deepEqual([...(p ?? new Map())], [
      ['realm', 'a"b, c'],
      ['nonce', 'xyz'],
      ['qop', 'auth'],
      ['algorithm', 'MD5'],
    ]);
    for (const bad of ['realm="open', 'realm', '=x', 'a=b c=d', 'a=1, a=2']) assert.equal(parseAuthParams(bad), null, bad);
    // Digest needs username, realm, nonce, uri and response
    assert.equal(parseAuthorization('Digest username="a", realm="b", nonce="c", uri="/"'), null);
  });

  it('never throws on arbitrary headers (fast-check, time-boxed)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.constantFrom('Digest ', 'Basic ').chain((s) => fc.string().map((t) => s + t))), (h) => {
        parseAuthorization(h);
        parseDigestChallenge(h);
      }),
      { numRuns: 500, interruptAfterTimeLimit: 2000 },
    );
  });
});

describe('authorize', () => {
  it('no auth section and no path credentials: everything is allowed', () => {
    const c = parseConfig('');
    for (const action of ['publish', 'read', 'playback', 'api', 'metrics'] as const) {
      assert.deepEqual(authorize(c, { action, path: 'live/x' }), { user: null });
    }
  });

  it('path credentials: user+pass, stream key, plain or sha256 hex/base64', () => {
    const c = parseConfig(`paths:
  plain: { publishUser: pub, publishPass: secret }
  hex: { publishUser: pub, publishPass: "${sha256Hex('secret')}", readUser: v, readPass: "${sha256B64('view')}" }
`);
    for (const path of ['plain', 'hex']) {
      assert.equal(allowed(c, { action: 'publish', path, user: 'pub', pass: 'secret' }), true, path);
      assert.equal(allowed(c, { action: 'publish', path, key: 'secret' }), true, path);
      assert.equal(allowed(c, { action: 'publish', path, user: 'pub', pass: 'wrong' }), false, path);
      assert.equal(allowed(c, { action: 'publish', path, user: 'other', pass: 'secret' }), false, path);
      assert.equal(allowed(c, { action: 'publish', path, key: 'wrong' }), false, path);
      assert.equal(allowed(c, { action: 'publish', path }), false, path);
    }
    assert.equal(allowed(c, { action: 'read', path: 'plain' }), true);
    assert.equal(allowed(c, { action: 'read', path: 'hex' }), false);
    assert.equal(allowed(c, { action: 'read', path: 'hex', user: 'v', pass: 'view' }), true);
    assert.equal(allowed(c, { action: 'playback', path: 'hex', user: 'v', pass: 'view' }), true);
    assert.deepEqual(authorize(c, { action: 'publish', path: 'hex', user: 'pub', pass: 'secret' }), { user: 'pub' });
    // pathConf passed in wins over resolving again
    assert.equal(allowed(c, { action: 'publish', path: 'x', pathConf: resolvePathConf(c, 'plain')?.conf ?? null }), false);
  });

  it('secretMatches: plain, sha256 hex, sha256 base64, malformed hashes never match', () => {
    assert.equal(secretMatches('abc', 'abc'), true);
    assert.equal(secretMatches('abc', 'abcd'), false);
    assert.equal(secretMatches(sha256Hex('abc'), 'abc'), true);
    assert.equal(secretMatches(sha256B64('abc'), 'abc'), true);
    assert.equal(secretMatches('sha256:', ''), false);
    assert.equal(secretMatches('sha256:abcd', 'abc'), false);
  });

  it('auth.users: permissions per action and path pattern, `any`, ips', () => {
    const c = parseConfig(`auth:
  users:
    - { user: obs, pass: "${sha256Hex('obspw')}", permissions: [{ action: publish, path: "~^live/" }, { action: publish, path: exact/one }] }
    - { user: any, permissions: [{ action: read }] }
    - { user: any, ips: [127.0.0.1, "::1", 10.0.0.0/8], permissions: [{ action: api }, { action: metrics, path: ignored }] }
    - { user: admin, pass: adminpw, ips: [192.168.1.0/24], permissions: [{ action: api }] }
`);
    assert.equal(allowed(c, { action: 'publish', path: 'live/cam1', user: 'obs', pass: 'obspw' }), true);
    assert.equal(allowed(c, { action: 'publish', path: 'live/cam1', key: 'obspw' }), true);
    assert.equal(allowed(c, { action: 'publish', path: 'exact/one', user: 'obs', pass: 'obspw' }), true);
    assert.equal(allowed(c, { action: 'publish', path: 'exact/one/two', user: 'obs', pass: 'obspw' }), false);
    assert.equal(allowed(c, { action: 'publish', path: 'vod/x', user: 'obs', pass: 'obspw' }), false);
    assert.equal(allowed(c, { action: 'publish', path: 'live/cam1', user: 'obs', pass: 'nope' }), false);
    assert.equal(allowed(c, { action: 'publish', path: 'live/cam1' }), false);
    assert.equal(allowed(c, { action: 'read', path: 'anything/at/all' }), true);
    assert.equal(allowed(c, { action: 'playback', path: 'live/cam1' }), false);
    assert.equal(allowed(c, { action: 'api', ip: '127.0.0.1' }), true);
    assert.equal(allowed(c, { action: 'api', ip: '::ffff:127.0.0.1' }), true);
    assert.equal(allowed(c, { action: 'api', ip: '::1' }), true);
    assert.equal(allowed(c, { action: 'metrics', ip: '10.20.30.40' }), true);
    assert.equal(allowed(c, { action: 'api', ip: '192.0.2.1' }), false);
    assert.equal(allowed(c, { action: 'api' }), false);
    assert.equal(allowed(c, { action: 'api', ip: '192.168.1.9', user: 'admin', pass: 'adminpw' }), true);
    assert.equal(allowed(c, { action: 'api', ip: '192.168.2.9', user: 'admin', pass: 'adminpw' }), false);
    assert.throws(() => authorize(c, { action: 'playback', path: 'x' }), /no user may playback 'x'/);
  });

  it('path credentials decide alone, even with auth.users present', () => {
    const c = parseConfig(`paths:
  secure: { readUser: v, readPass: p }
  open: {}
auth:
  users:
    - { user: any, permissions: [{ action: read }] }
`);
    assert.equal(allowed(c, { action: 'read', path: 'open' }), true);
    assert.equal(allowed(c, { action: 'read', path: 'secure' }), false);
    assert.equal(allowed(c, { action: 'read', path: 'secure', user: 'v', pass: 'p' }), true);
  });

  it('Digest credentials through authorize; hashed passwords cannot be checked with Digest', () => {
    const secret = new Uint8Array(32).fill(1);
    const c = parseConfig(`paths:
  plain: { readUser: v, readPass: pw }
  hashed: { readUser: v, readPass: "${sha256Hex('pw')}" }
`);
    const ch = parseDigestChallenge(digestChallenge({ nowMs: 0, secret }));
    assert.ok(ch !== null);
    const digestFor = (pass: string, user = 'v') => {
      const h = digestAuthorization(ch, { user, pass, method: 'PLAY', uri: 'rtsp://h/plain' }) ?? '';
      const creds = credentialsFromHeader(h, 'PLAY', 1000);
      assert.ok(creds.digest !== undefined);
      creds.digest.secret = secret;
      return creds;
    };
    assert.equal(allowed(c, { action: 'read', path: 'plain', ...digestFor('pw') }), true);
    assert.equal(allowed(c, { action: 'read', path: 'plain', ...digestFor('nope') }), false);
    assert.equal(allowed(c, { action: 'read', path: 'plain', ...digestFor('pw', 'x') }), false);
    assert.equal(allowed(c, { action: 'read', path: 'hashed', ...digestFor('pw') }), false);
    assert.equal(digestUsable(c, 'read', resolvePathConf(c, 'plain')?.conf ?? null), true);
    assert.equal(digestUsable(c, 'read', resolvePathConf(c, 'hashed')?.conf ?? null), false);
  });
});

describe('authorizeAsync with auth.http', () => {
  /** A local auth service answering with `status` (or never, for status 0); records what it got. */
  async function withService(
    status: number,
    fn: (url: string, got: { body: unknown; contentType?: string | undefined }[]) => Promise<void>,
  ): Promise<void> {
    const got: { body: unknown; contentType?: string | undefined }[] = [];
    const server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        got.push({ body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown, contentType: req.headers['content-type'] });
        if (status !== 0) res.writeHead(status).end('ignored');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      await fn(`http://127.0.0.1:${port}/auth`, got);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }

  const config = (url: string) =>
    parseConfig(`auth:
  users:
    - { user: any, permissions: [{ action: read }] }
  http: { url: "${url}", timeout: 300ms }
`);

  it('2xx allows and receives {user, password, ip, action, path, protocol, query}', async () => {
    await withService(204, async (url, got) => {
      const c = config(url);
      const req: AuthRequest = { action: 'publish', path: 'live/a', user: 'u', pass: 'p', ip: '127.0.0.1', protocol: 'rtmp', query: 'user=u&pass=p' };
      assert.deepEqual(await authorizeAsync(c, req), { user: 'u' });
      assert.deepEqual(got, [
        {
          contentType: 'application/json',
          body: { user: 'u', password: 'p', ip: '127.0.0.1', action: 'publish', path: 'live/a', protocol: 'rtmp', query: 'user=u&pass=p' },
        },
      ]);
      // what the users grant is not asked
      assert.deepEqual(await authorizeAsync(c, { action: 'read', path: 'live/a' }), { user: null });
      assert.equal(got.length, 1);
      // the synchronous variant never asks
      assert.throws(() => authorize(c, req), AuthError);
    });
  });

  it('a non-2xx answer refuses', async () => {
    await withService(401, async (url) => {
      await assert.rejects(authorizeAsync(config(url), { action: 'publish', path: 'live/a', key: 'k' }), /refused \(HTTP 401\)/);
    });
  });

  it('no answer within the timeout refuses', async () => {
    await withService(0, async (url) => {
      const t0 = Date.now();
      await assert.rejects(authorizeAsync(config(url), { action: 'publish', path: 'live/a' }), AuthError);
      assert.ok(Date.now() - t0 < 3000);
    });
  });

  it('an unreachable service refuses', async () => {
    await assert.rejects(authorizeAsync(config('http://127.0.0.1:9/auth'), { action: 'publish', path: 'x' }), /did not answer/);
  });
});
