import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import {
  ClientHandshake,
  GENUINE_FMS_KEY,
  GENUINE_FP_KEY,
  RTMP_HANDSHAKE_SIZE,
  ServerHandshake,
  digestOffset,
  findDigest,
  imprintDigest,
  verifyClientResponse,
  verifyServerResponse,
} from '../../../src/ingest/rtmp/handshake.js';
import { ParseError, StreamgateError, UnsupportedError } from '../../../src/errors.js';

const N = RTMP_HANDSHAKE_SIZE;
const capture = readFileSync(new URL('../../../../test/fixtures/rtmp/ffmpeg-publish.bin', import.meta.url));
/** Deterministic "random" for reproducible S1/S2. */
const counting = (b: Uint8Array): void => b.forEach((_, i) => (b[i] = (i * 7 + 3) & 0xff));

function c0c1(c1: Uint8Array): Uint8Array {
  const b = new Uint8Array(1 + N);
  b[0] = 3;
  b.set(c1, 1);
  return b;
}

/** Runs the server handshake over C0+C1 and a C2, returns S0+S1+S2. */
function serverAnswer(c1: Uint8Array, hs = new ServerHandshake({ random: counting })): { out: Uint8Array; hs: ServerHandshake } {
  const r = hs.push(c0c1(c1));
  assert.equal(r.done, false);
  assert.equal(r.output.length, 1 + 2 * N);
  return { out: r.output, hs };
}

test('handshake: simple C1 (zero version) gets S1 with zero version and S2 echoing C1', () => {
  const c1 = new Uint8Array(N);
  c1.fill(0x5a, 8);
  const { out, hs } = serverAnswer(c1);
  assert.equal(hs.mode, 'simple');
  assert.equal(out[0], 3);
  assert.deepEqual([...out.subarray(5, 9)], [0, 0, 0, 0]);
  assert.deepEqual(out.subarray(1 + N), c1);
  const r = hs.push(new Uint8Array(N));
  assert.equal(r.done, true);
  assert.equal(r.leftover.length, 0);
  assert.equal(hs.done, true);
});

test('handshake: digest C1, scheme 0, built by our client; S1 digest and S2 signature verify', () => {
  const client = new ClientHandshake({ random: counting });
  const cc = client.start();
  const c1 = cc.subarray(1);
  const found = findDigest(c1, GENUINE_FP_KEY);
  assert.equal(found?.scheme, 0);
  const { out, hs } = serverAnswer(c1);
  assert.equal(hs.mode, 'digest');
  assert.equal(hs.scheme, 0);
  const s1 = out.subarray(1, 1 + N);
  assert.notDeepEqual([...s1.subarray(4, 8)], [0, 0, 0, 0]);
  const sd = findDigest(s1, GENUINE_FMS_KEY);
  assert.equal(sd?.scheme, 0);
  assert.ok(verifyServerResponse(out.subarray(1 + N), (found as { digest: Uint8Array }).digest));
  // our client accepts it and signs C2 for the server digest
  const r = client.push(out);
  assert.equal(r.done, true);
  assert.equal(client.mode, 'digest');
  assert.equal(client.s2Valid, true);
  assert.ok(verifyClientResponse(r.output, (sd as { digest: Uint8Array }).digest));
  assert.equal(hs.push(r.output).done, true);
});

test('handshake: digest C1 at scheme 1 (Flash Player 10+ layout) is answered in scheme 1', () => {
  const c1 = new Uint8Array(N);
  counting(c1);
  c1.set([10, 0, 45, 2], 4);
  const at = digestOffset(c1, 1);
  assert.ok(at >= 776 && at + 32 <= N);
  imprintDigest(c1, 1, GENUINE_FP_KEY);
  assert.equal(findDigest(c1, GENUINE_FP_KEY)?.scheme, 1);
  const { out, hs } = serverAnswer(c1);
  assert.equal(hs.scheme, 1);
  const sd = findDigest(out.subarray(1, 1 + N), GENUINE_FMS_KEY);
  assert.equal(sd?.scheme, 1);
  assert.ok(verifyServerResponse(out.subarray(1 + N), c1.subarray(at, at + 32)));
});

test('handshake: the real ffmpeg 5.1 C1 (version 9.0.124.2) validates at scheme 0', () => {
  assert.equal(capture[0], 3);
  const c1 = capture.subarray(1, 1 + N);
  assert.deepEqual([...c1.subarray(4, 8)], [9, 0, 124, 2]);
  const found = findDigest(c1, GENUINE_FP_KEY);
  assert.equal(found?.scheme, 0);
  const { out, hs } = serverAnswer(c1);
  assert.equal(hs.mode, 'digest');
  assert.ok(verifyServerResponse(out.subarray(1 + N), (found as { digest: Uint8Array }).digest));
});

test('handshake: a non-zero version with a broken digest falls back to the simple echo', () => {
  const c1 = Uint8Array.from(capture.subarray(1, 1 + N));
  c1[digestOffset(c1, 0)] ^= 0xff;
  const { out, hs } = serverAnswer(c1);
  assert.equal(hs.mode, 'simple');
  assert.deepEqual(out.subarray(1 + N), c1);
});

test('handshake: the ffmpeg capture split at every byte gives the same output and leftover', () => {
  const whole = new ServerHandshake({ random: counting }).push(capture);
  assert.equal(whole.done, true);
  assert.equal(whole.leftover.length, capture.length - (1 + 2 * N));
  const hs = new ServerHandshake({ random: counting });
  const outs: Uint8Array[] = [];
  let leftover: Uint8Array | null = null;
  const head = capture.subarray(0, 1 + 2 * N + 10);
  for (let i = 0; i < head.length; i++) {
    const r = hs.push(head.subarray(i, i + 1));
    if (r.output.length > 0) outs.push(r.output);
    if (r.done && leftover === null) leftover = r.leftover;
    else if (r.done) assert.deepEqual(r.leftover, head.subarray(i, i + 1));
  }
  assert.equal(outs.length, 1);
  assert.deepEqual(outs[0], whole.output);
  assert.equal(leftover?.length, 0); // done on the last C2 byte, nothing after it in that push
  assert.equal(hs.done, true);
});

test('handshake: C2 and the first chunk in one push leave the chunk as a view', () => {
  const hs = new ServerHandshake();
  hs.push(capture.subarray(0, 1 + N));
  const rest = capture.subarray(1 + N, 1 + 2 * N + 100);
  const r = hs.push(rest);
  assert.equal(r.done, true);
  assert.equal(r.leftover.length, 100);
  assert.equal(r.leftover.buffer, rest.buffer);
  assert.equal(r.leftover[0], 0x03); // fmt 0, csid 3: the connect command
});

test('handshake: version bytes are checked on the first byte', () => {
  assert.throws(() => new ServerHandshake().push(Uint8Array.of(6)), UnsupportedError); // RTMPE
  assert.throws(() => new ServerHandshake().push(Uint8Array.of(0x47, 0x45, 0x54)), ParseError); // "GET": HTTP on :1935
  assert.throws(() => new ClientHandshake().push(Uint8Array.of(0)), ParseError);
});

test('handshake client: a simple server (zero S1 version) gets S1 echoed as C2', () => {
  const client = new ClientHandshake();
  client.start();
  const s = new Uint8Array(1 + 2 * N);
  s[0] = 3;
  counting(s.subarray(9, 1 + N));
  const r = client.push(Uint8Array.from([...s, 0xaa, 0xbb]));
  assert.equal(client.mode, 'simple');
  assert.deepEqual(r.output, s.subarray(1, 1 + N));
  assert.deepEqual([...r.leftover], [0xaa, 0xbb]);
});

test('handshake property: random input never throws anything but StreamgateError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 4000 }), fc.boolean(), (bytes, versionOk) => {
      if (versionOk) bytes[0] = 3;
      for (const hs of [new ServerHandshake(), new ClientHandshake()]) {
        try {
          hs.push(bytes);
        } catch (e) {
          if (!(e instanceof StreamgateError)) throw e;
        }
      }
    }),
    { numRuns: 300 },
  );
});
