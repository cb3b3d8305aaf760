// The coap filter's fast path (forwardRun: runs of messages that need no
// verdict, taken only while the packet log is off) must decide exactly as
// the general path (onFrame), which alone runs with the packet log on. The
// same inputs go through one plugin of each in lockstep: every callback must
// forward the same bytes and close alike, and the counters must end equal.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coapModule } from './host.ts';
import { FUZZ_CONFIG, fuzzCases } from './fuzz-core.ts';
import { signalingFrames, tcpBytes } from './packets.ts';

async function pair(configuration: object) {
  const mod = await coapModule();
  const start = (log: boolean) => mod.instantiate({ name: 'coap', record: false, logLevel: 'critical', configuration: { ...configuration, log_packets: log } });
  return { general: await start(true), fast: await start(false) };
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
      assert.deepEqual(fast.metrics(), general.metrics());
      assert.ok((fast.metrics()['coap.requests.PUT'] ?? 0) >= 250);
      general.close();
      fast.close();
    });
  }
});
