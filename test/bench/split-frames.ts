// Benchmark: what a frame split across buffer callbacks costs the framed-stream
// layer, against the same frames delivered whole. The kafka filter in the
// in-process host is fed a producer stream (kafkajs's Produce v7 request from
// test/kafka/fixtures/kafkajs-4.2.pcapng, its record batch padded to ~64 KB
// — the filter reads batch heads only — repeated with fresh correlation ids,
// each answered by the recorded response) whole and in 16/8/4/1 KB callbacks.
// Also the read-only floor: the passthrough filter on the same bytes.
// Prints µs per Produce request (median of rounds, CPU time of this process); asserts nothing.
//   node --import tsx test/bench/split-frames.ts
//   BENCH_BASELINE=old-kafka.wasm ...   also runs another build of the kafka filter (before/after)
import { readFileSync } from 'node:fs';
import { WasmFilterModule, type WasmPlugin } from '../../xds-server/wasm-host/index.ts';
import { filterWasmPath } from '../../xds-server/catalog/index.ts';
import { kafkaPlugin } from '../kafka/filter-support.ts';
import { padded, producePair } from '../filters/kafka-big-produce.ts';

const FRAME_BYTES = Number(process.env.BENCH_FRAME ?? 65536);
const REQUESTS = 64;
const ROUNDS = 7;
const CHUNKS = [0, 16384, 8192, 4096, 1024];

function stream(pair: { request: Uint8Array; response: Uint8Array }): { down: Uint8Array[]; up: Uint8Array[] } {
  const big = padded(pair.request, Math.max(0, FRAME_BYTES - pair.request.length));
  const down: Uint8Array[] = [];
  const up: Uint8Array[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const q = Uint8Array.from(big);
    const r = Uint8Array.from(pair.response);
    new DataView(q.buffer).setInt32(8, 1 + i);
    new DataView(r.buffer).setInt32(4, 1 + i);
    down.push(q);
    up.push(r);
  }
  return { down, up };
}

function pieces(frame: Uint8Array, chunk: number): Uint8Array[] {
  if (chunk <= 0) return [frame];
  const out: Uint8Array[] = [];
  for (let i = 0; i < frame.length; i += chunk) out.push(frame.subarray(i, i + chunk));
  return out;
}

function cpuMicros(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return d.user + d.system;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const pair = producePair();
const { down, up } = stream(pair);
// the request stream, cut per chunk size in advance (the cutting is not measured); a 1 KB cut of a frame can straddle frames only at frame ends
const cut = CHUNKS.map((c) => down.map((f) => pieces(f, c)));

async function plugin(name: string, wasm?: string): Promise<WasmPlugin> {
  if (name === 'kafka' && !wasm) return kafkaPlugin({}, 'info', false);
  const bytes = readFileSync(wasm ?? filterWasmPath(name));
  return (await WasmFilterModule.load(bytes, name)).instantiate({ configuration: {}, logLevel: 'info', defaultCluster: 'c', record: false });
}

/** µs of CPU per request for one pass of the stream over a fresh connection. */
function pass(p: WasmPlugin, chunkIndex: number): number {
  const conn = p.newConnection();
  const reqs = cut[chunkIndex]!;
  const t0 = process.cpuUsage();
  let forwarded = 0;
  for (let i = 0; i < reqs.length; i++) {
    for (const piece of reqs[i]!) {
      const r = conn.downstream(piece);
      forwarded += r.forwarded.length;
      if (r.closed) throw new Error(`the filter closed the connection: ${JSON.stringify(r.closed)}`);
    }
    conn.upstream(up[i]!);
  }
  const us = cpuMicros(t0);
  const expected = down.reduce((n, f) => n + f.length, 0);
  if (forwarded !== expected) throw new Error(`forwarded ${forwarded} bytes of ${expected}`);
  conn.close();
  return us / reqs.length;
}

const cases: [string, WasmPlugin][] = [
  ['kafka filter', await plugin('kafka')],
  ['passthrough (read-only floor)', await plugin('passthrough')],
];
if (process.env.BENCH_BASELINE) cases.push([`baseline ${process.env.BENCH_BASELINE}`, await plugin('kafka', process.env.BENCH_BASELINE)]);
console.log(`split-frames bench (node ${process.version}): ${REQUESTS} Produce v7 requests of ${down[0]!.length} B per pass, each answered; µs of CPU per request, median of ${ROUNDS} rounds\n`);
for (const [, p] of cases) for (let c = 0; c < CHUNKS.length; c++) pass(p, c); // warm-up
const results = cases.map(() => CHUNKS.map(() => [] as number[]));
for (let r = 0; r < ROUNDS; r++) for (let k = 0; k < cases.length; k++) for (let c = 0; c < CHUNKS.length; c++) results[k]![c]!.push(pass(cases[k]![1], c));
console.log(`${''.padEnd(36)}${CHUNKS.map((c) => (c === 0 ? 'whole' : `${c / 1024} KB`).padStart(10)).join('')}`);
for (let k = 0; k < cases.length; k++) console.log(`${cases[k]![0].padEnd(36)}${results[k]!.map((xs) => median(xs).toFixed(1).padStart(10)).join('')}`);
