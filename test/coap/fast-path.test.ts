// The coap filter's fast path (forwardRun: runs of messages that need no
// verdict, taken only while the packet log is off) must decide exactly as
// the general path (onFrame), which alone runs with the packet log on. The
// same inputs go through one plugin of each in lockstep: every callback must
// forward the same bytes and close alike, and the counters must end equal.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coapModule } from './host.ts';
import { FUZZ_CONFIG, fuzzCases, type FuzzCase } from './fuzz-core.ts';
import { signalingFrames, tcpBytes } from './packets.ts';
import { rng } from '../support/random.ts';

async function pair(configuration: object) {
  const mod = await coapModule();
  const start = (log: boolean) => mod.instantiate({ name: 'coap', record: false, logLevel: 'critical', configuration: { ...configuration, log_packets: log } });
  return { general: await start(true), fast: await start(false) };
}

/**
 * Runs of look-alike messages (same length bytes and option headers, other
 * tokens, values and codes: what fastscan.ts checks with vector compares
 * instead of an option walk), broken by messages that differ in one header
 * byte (an option's delta or length, the token length, a payload marker, a
 * signaling code, an Observe option), then randomly mutated, in chunks of up
 * to 16 KB so the look-alike loop runs over hundreds of messages. With
 * `vary`, payload lengths differ from message to message (the runs read each
 * length), now and then past the one-byte length form (Len 14), down to
 * none (no payload marker) or, rewritten, ending right after the payload marker.
 */
function lookAlikeCases(count: number, seed: number, vary = false): FuzzCase[] {
  const r = rng(seed);
  const codes = ['PUT', 'POST', 'GET', 'DELETE'] as const;
  const cases: FuzzCase[] = [];
  for (let n = 0; n < count; n++) {
    const parts: Buffer[] = [signalingFrames()[0]!.bytes];
    for (let i = 0; i < 600; i++) {
      const odd = r() < 0.04;
      const variant = odd ? Math.floor(r() * 8) : -1;
      const digit = String.fromCharCode(0x30 + (i % 10));
      // variants 0..3 keep the message's length and first 16 bytes and differ in an option
      // header or the payload marker after them: only the second vector compare sees them
      const last = variant === 0 ? [{ name: 'Content-Format' as const, value: Buffer.alloc(0) }] // header 0x10, marker a byte earlier
        : variant === 1 ? [{ name: 13, value: Buffer.from([0]) }] // an unknown critical option
        : variant === 2 ? [{ name: 'Block1' as const, value: Buffer.from([0x1e]) }] // counted
        : variant === 3 ? [{ name: 'Size1' as const, value: Buffer.alloc(0) }] // extended delta
        : [{ name: 'Content-Format' as const, value: Buffer.from([0]) }];
      const fixed = variant === 0 ? 41 : variant === 2 ? 39 : variant === 3 ? 40 : variant === 4 ? 0 : 40;
      const payload = !vary || variant === 4 ? fixed : r() < 0.03 ? 250 + Math.floor(r() * 30) : r() < 0.02 ? 0 : fixed + Math.floor(r() * 9) - 4;
      const message = tcpBytes({
        code: variant === 5 ? codes[Math.floor(r() * 4)]! : i % 11 === 0 ? 'POST' : 'PUT',
        token: Buffer.from([i & 255, 7, 2, 3].slice(0, variant === 6 ? 3 : 4)),
        options: [
          ...(variant === 7 ? [{ name: 'Observe' as const, value: Buffer.from([0]) }] : []),
          { name: 'Uri-Path', value: Buffer.from('sensors') },
          { name: 'Uri-Path', value: Buffer.from(digit) },
          ...last,
        ],
        payload: Buffer.alloc(payload, 0x41 + (i % 20)),
      });
      // now and then a length rewritten to end the frame right after its payload marker (malformed:
      // no payload) or one byte later (a valid, shorter message): the run must read each length
      if (vary && message[0]! >> 4 === 13 && r() < 0.01) message[1] = Math.floor(r() * 2);
      parts.push(message);
      if (odd && r() < 0.1) parts.push(signalingFrames()[1]!.bytes);
    }
    const stream = Buffer.concat(parts);
    for (let k = Math.floor(r() * 4); k > 0; k--) stream[Math.floor(r() * stream.length)] = Math.floor(r() * 256);
    const steps: FuzzCase['steps'] = [];
    for (let at = 0; at < stream.length; ) {
      const size = 1 + Math.floor(r() * (r() < 0.5 ? 16384 : 700));
      steps.push({ down: true, bytes: stream.subarray(at, at + size) });
      at += size;
    }
    cases.push({ steps });
  }
  return cases;
}

/** Feeds every case to both plugins step by step: the same bytes forwarded, the same closes and actions. */
function lockstep(general: Awaited<ReturnType<typeof pair>>['general'], fast: Awaited<ReturnType<typeof pair>>['fast'], cases: FuzzCase[]): void {
  for (const [n, c] of cases.entries()) {
    const a = general.newConnection();
    const b = fast.newConnection();
    for (const [k, s] of c.steps.entries()) {
      if (!s.down && !a.proceeded) continue;
      const ra = s.down ? a.downstream(s.bytes) : a.upstream(s.bytes);
      const rb = s.down ? b.downstream(s.bytes) : b.upstream(s.bytes);
      const where = `input ${n} step ${k}`;
      assert.equal(Buffer.from(rb.forwarded).toString('hex'), Buffer.from(ra.forwarded).toString('hex'), `${where}: forwarded`);
      assert.equal(rb.closed?.reason, ra.closed?.reason, `${where}: closed`);
      assert.equal(rb.action, ra.action, `${where}: action`);
      if (ra.closed) break;
    }
    if (!a.closed) a.close();
    if (!b.closed) b.close();
  }
}

describe('coap fast path', () => {
  for (const [label, configuration] of [['no policy', { routes: FUZZ_CONFIG.routes, limits: FUZZ_CONFIG.limits }], ['with a policy', FUZZ_CONFIG]] as const) {
    it(`decides as the general path on 5,000 fuzz inputs and a clean stream (${label})`, async () => {
      const { general, fast } = await pair(configuration);
      const clean = Buffer.concat([signalingFrames()[0]!.bytes, ...Array.from({ length: 300 }, (_, i) => tcpBytes({
        code: i % 7 === 0 ? 'DELETE' : 'PUT', token: Buffer.from([i & 255]), payload: Buffer.alloc(i % 90, 0x61),
        options: [{ name: 'Uri-Path', value: Buffer.from(i % 5 === 0 ? 'admin' : 'sensors') }, ...(i % 3 === 0 ? [{ name: 'Block1' as const, value: Buffer.from([0x1e]) }] : [])],
      }))]);
      const cases = [...fuzzCases('tcp', 5000, 11)];
      cases.unshift({ steps: Array.from({ length: Math.ceil(clean.length / 61) }, (_, k) => ({ down: true, bytes: clean.subarray(k * 61, (k + 1) * 61) })) });
      lockstep(general, fast, cases);
      assert.deepEqual(fast.metrics(), general.metrics());
      assert.ok((fast.metrics()['coap.requests.PUT'] ?? 0) >= 250);
      general.close();
      fast.close();
    });
  }

  // the default limits (64 options): the look-alike messages' 13 bytes of
  // options are over FUZZ_CONFIG's max_options of 12, which keeps every one
  // of them out of the hot loop
  it('decides as the general path on look-alike runs, of one length and of varying lengths', async () => {
    const { general, fast } = await pair({ routes: FUZZ_CONFIG.routes });
    lockstep(general, fast, [...lookAlikeCases(40, 5), ...lookAlikeCases(60, 6, true)]);
    assert.deepEqual(fast.metrics(), general.metrics());
    assert.ok((fast.metrics()['coap.requests.PUT'] ?? 0) >= 10_000);
    general.close();
    fast.close();
  });
});
