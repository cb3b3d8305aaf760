// Fuzz run of the kafka filter in the in-process host (prints count, time and
// memory; exits non-zero on a trap). docs/kafka.md has the figures.
//   node --import tsx test/kafka/fuzz.ts [COUNT=1000000] [SEED=1]
import { fuzz } from './fuzz-core.ts';

const count = Number(process.argv[2] ?? 1_000_000);
const seed = Number(process.argv[3] ?? 1);
const mb = (n: number) => `${(n / 1048576).toFixed(2)} MiB`;
const stats = await fuzz(count, seed, (s) =>
  console.log(`  ${s.inputs.toLocaleString('en-US').padStart(11)} inputs  ${(s.ms / 1000).toFixed(1).padStart(6)} s  VM memory ${mb(s.memoryBytes)}`));
console.log(`kafka fuzz: ${stats.inputs.toLocaleString('en-US')} inputs (seed ${seed}) in ${(stats.ms / 1000).toFixed(1)} s ` +
  `(${Math.round(stats.inputs / (stats.ms / 1000)).toLocaleString('en-US')}/s), ${stats.closedByFilter.toLocaleString('en-US')} closed by the filter, ` +
  `0 traps; VM memory ${mb(stats.firstMemoryBytes)} after 1,024 inputs, ${mb(stats.memoryBytes)} at the end (max ${mb(stats.maxMemoryBytes)}), node rss ${mb(process.memoryUsage().rss)}`);
