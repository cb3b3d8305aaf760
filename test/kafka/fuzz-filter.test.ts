// The CI-sized fuzz run of the kafka filter (the 1,000,000-input run is
// `node --import tsx test/kafka/fuzz.ts`, figures in docs/kafka.md).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fuzz } from './fuzz-core.ts';

describe('kafka filter fuzz', () => {
  it('20,000 mutated real conversations and random inputs: no trap, VM memory flat', { timeout: 120_000 }, async () => {
    const stats = await fuzz(20_000, 7);
    assert.equal(stats.inputs, 20_000);
    // some inputs survive whole, most end with a close by the filter (a mutated frame)
    assert.ok(stats.closedByFilter > 1000 && stats.closedByFilter < 20_000, `closed ${stats.closedByFilter}`);
    assert.ok(stats.memoryBytes <= 4 * stats.firstMemoryBytes, `VM memory grew from ${stats.firstMemoryBytes} to ${stats.memoryBytes}`);
  });
});
