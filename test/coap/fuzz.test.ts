// The CI-sized fuzz run (the 1M-per-transport command is in docs/coap.md):
// no trap, and the VM's memory does not grow after warm-up.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fuzz } from './fuzz-core.ts';

describe('coap filter fuzz (CI size)', () => {
  for (const transport of ['tcp', 'udp'] as const) {
    it(`${transport}: 30,000 mutated and random inputs, no trap, flat VM memory`, async () => {
      const s = await fuzz(transport, 30_000, 7);
      assert.equal(s.inputs, 30_000);
      assert.ok(s.memoryBytes <= s.memoryAfterWarmup + 65536, `VM memory grew from ${s.memoryAfterWarmup} to ${s.memoryBytes}`);
      if (transport === 'tcp') assert.ok(s.closedByFilter > 1000, `malformed inputs closed (${s.closedByFilter})`);
    });
  }
});
