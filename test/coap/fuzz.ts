// Fuzz run of the coap filter in the in-process host (prints count, time and
// VM memory; exits non-zero on a trap). The 1M-per-transport run of docs/coap.md:
//   node --import tsx test/coap/fuzz.ts [COUNT=1000000] [SEED=1] [tcp|udp|both]
import { fuzz, type Transport } from './fuzz-core.ts';

const count = Number(process.argv[2] ?? 1_000_000);
const seed = Number(process.argv[3] ?? 1);
const which = process.argv[4] ?? 'both';
const transports: Transport[] = which === 'both' ? ['tcp', 'udp'] : [which as Transport];
const mb = (n: number) => `${(n / 1048576).toFixed(2)} MiB`;

for (const t of transports) {
  const s = await fuzz(t, count, seed, (p) =>
    console.log(`  ${t} ${p.inputs.toLocaleString('en-US').padStart(11)} inputs  ${(p.ms / 1000).toFixed(1).padStart(6)} s  VM memory ${mb(p.memoryBytes)}`));
  console.log(`coap fuzz over ${t}: ${s.inputs.toLocaleString('en-US')} inputs (seed ${seed}) in ${(s.ms / 1000).toFixed(1)} s ` +
    `(${Math.round(s.inputs / (s.ms / 1000)).toLocaleString('en-US')}/s), ${s.closedByFilter.toLocaleString('en-US')} closed by the filter, 0 traps; ` +
    `VM memory ${mb(s.memoryBytes)} (after warm-up ${mb(s.memoryAfterWarmup)})`);
}
