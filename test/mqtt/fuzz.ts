// Fuzz run of the mqtt filter in the in-process host (bench-like: prints
// count, time and memory; exits non-zero on a trap).
//   node --import tsx test/mqtt/fuzz.ts [COUNT=1000000] [SEED=1] [CONFIG_JSON]
// CONFIG_JSON replaces the filter configuration (default FUZZ_CONFIG: routes,
// ACL, limits, topic metrics); '{}' runs it without an ACL, where split
// headers go on at once instead of being held back.
import { fuzz, FUZZ_CONFIG } from './fuzz-core.ts';

const count = Number(process.argv[2] ?? 1_000_000);
const seed = Number(process.argv[3] ?? 1);
const configuration: object = process.argv[4] ? (JSON.parse(process.argv[4]) as object) : FUZZ_CONFIG;
const mb = (n: number) => `${(n / 1048576).toFixed(2)} MiB`;

const stats = await fuzz(count, seed, (s) =>
  console.log(`  ${s.inputs.toLocaleString('en-US').padStart(11)} inputs  ${(s.ms / 1000).toFixed(1).padStart(6)} s  VM memory ${mb(s.memoryBytes)}`), configuration);
const rss = process.memoryUsage().rss;
console.log(`mqtt fuzz (${process.argv[4] ? `configuration ${process.argv[4]}` : 'FUZZ_CONFIG'}): ${stats.inputs.toLocaleString('en-US')} inputs (seed ${seed}) in ${(stats.ms / 1000).toFixed(1)} s ` +
  `(${Math.round(stats.inputs / (stats.ms / 1000)).toLocaleString('en-US')}/s), ${stats.closedByFilter.toLocaleString('en-US')} closed by the filter, ` +
  `0 traps; VM memory ${mb(stats.memoryBytes)} (max ${mb(stats.maxMemoryBytes)}), node rss ${mb(rss)}`);
