// The mqtt filter's fast path (runs of PUBLISHes whose only outcome is
// "forward") must decide exactly as its general path. The general path alone
// runs when the packet log is on (`log_packets: true`), so the same inputs
// go through two plugins, one with each, in lockstep: every callback must
// forward the same bytes, pause and close alike, and the counters and the
// close log lines must end up equal.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { drive, FUZZ_CONFIG, fuzzCases } from './fuzz-core.ts';
import { mqttModule } from './replay.ts';
import type { DataResult, WasmPlugin } from '../../xds-server/wasm-host/index.ts';

async function start(configuration: object, closeLines: string[]): Promise<WasmPlugin> {
  return (await mqttModule()).instantiate({
    name: 'mqtt',
    configuration,
    record: false,
    logLevel: 'info',
    onLog: (e) => { if (e.message.startsWith('mqtt: connection closed')) closeLines.push(e.message); },
  });
}

function same(a: DataResult, b: DataResult, where: string): void {
  assert.equal(b.action, a.action, `${where}: action`);
  assert.equal(b.closed?.reason, a.closed?.reason, `${where}: closed`);
  assert.equal(b.buffered, a.buffered, `${where}: bytes held`);
  assert.ok(Buffer.from(b.forwarded).equals(Buffer.from(a.forwarded)), `${where}: forwarded bytes differ\n general ${Buffer.from(a.forwarded).toString('hex')}\n fast    ${Buffer.from(b.forwarded).toString('hex')}`);
}

const CONFIGS: Array<[string, object]> = [
  ['ACL, limits and topic metrics', FUZZ_CONFIG],
  ['defaults', {}],
  ['tight limits', { limits: { max_topic_length: 9, max_topic_levels: 3, max_packet_size: 200 }, topic_metrics: ['a'] }],
  // no ACL: split headers go on at once; alternating prefixes end and start runs of topic counts
  ['topic metrics without an ACL', { topic_metrics: ['sensors/', 'a', 'x/', 'abcdefgh'] }],
];

describe('mqtt filter: fast path agrees with the general path', () => {
  for (const [label, configuration] of CONFIGS) {
    it(`${label}: 6,000 random and mutated inputs decide alike`, { timeout: 120_000 }, async () => {
      const generalLines: string[] = [];
      const fastLines: string[] = [];
      const general = await start({ ...configuration, log_packets: true }, generalLines);
      const fast = await start(configuration, fastLines);
      let steps = 0;
      let publishes = 0;
      let i = 0;
      for (const c of fuzzCases(6_000, 0xfa57 + label.length)) {
        const a = general.newConnection();
        const b = fast.newConnection();
        drive([a, b], c, ([ra, rb]) => { steps++; same(ra!, rb!, `input ${i} step ${steps} (down=${c.down.toString('hex')})`); });
        if (!a.closed) a.close();
        if (!b.closed) b.close();
        i++;
      }
      assert.equal(general.failed, undefined);
      assert.equal(fast.failed, undefined);
      const ma = general.metrics();
      const mb = fast.metrics();
      assert.deepEqual(mb, ma);
      publishes = ma['mqtt.downstream.publish'] ?? 0;
      assert.ok(publishes > 2_000, `the inputs carry PUBLISHes (${publishes})`);
      assert.deepEqual(fastLines, generalLines);
      assert.ok(generalLines.length >= 6_000);
      general.close();
      fast.close();
    });
  }
});
