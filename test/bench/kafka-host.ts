// Benchmark: the kafka filter's parse rate in the in-process host vs
// kafkajs's own protocol decoders on the same bytes. Prints numbers; asserts nothing.
//   node --import tsx test/bench/kafka-host.ts
//   BENCH_BASELINE=old-kafka.wasm ...   also runs another build of the filter (e.g. an
//                                      earlier commit's) in the same rounds, for before/after
//
// The bytes: the request/response pairs kafkajs 2.2.4 exchanged with a real
// Kafka 4.2.0 broker (test/kafka/fixtures/kafkajs-4.2.pcapng: ApiVersions v2,
// Metadata v6, Produce v7, Fetch v11, ListOffsets v3, FindCoordinator v2,
// JoinGroup v5, SyncGroup v3, OffsetFetch v4, OffsetCommit v5, LeaveGroup v3),
// repeated with fresh correlation ids. Rates are per CPU-second of this
// process (the machine may be shared). The filter frames both directions,
// matches each response to its request and walks every body it reads
// (everything but Fetch responses, which it frames and skips); kafkajs
// decodes the response bodies alone (it has no request decoders), which is
// what a client does with them. Both rates count responses.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { WasmFilterModule, type WasmPlugin } from '../../xds-server/wasm-host/index.ts';
import { fixture, frames, kafkaPlugin, streams } from '../kafka/filter-support.ts';

const require = createRequire(import.meta.url);
const DURATION_MS = Number(process.env.BENCH_MS ?? 7000);
const PAIRS_PER_CHUNK = 64;

interface Pair { request: Uint8Array; response: Uint8Array; key: number; version: number }

function pairs(): Pair[] {
  const out: Pair[] = [];
  for (const c of fixture('kafkajs-4.2')) {
    const s = streams(c);
    const reqs = frames(s.down);
    const resps = frames(s.up);
    for (const req of reqs) {
      const v = new DataView(req.buffer, req.byteOffset);
      const corr = v.getInt32(8);
      const resp = resps.find((r) => new DataView(r.buffer, r.byteOffset).getInt32(4) === corr);
      if (resp) out.push({ request: req, response: resp, key: v.getInt16(4), version: v.getInt16(6) });
    }
  }
  return out;
}

/** `count` copies of the pairs, correlation ids counting up from `first`: the request bytes and the response bytes. */
function batch(ps: Pair[], count: number, first: number): { down: Uint8Array; up: Uint8Array; responses: number; responseBytes: number } {
  const downs: Uint8Array[] = [];
  const ups: Uint8Array[] = [];
  let corr = first;
  let responseBytes = 0;
  for (let i = 0; i < count; i++) {
    const p = ps[i % ps.length]!;
    const req = Uint8Array.from(p.request);
    const resp = Uint8Array.from(p.response);
    new DataView(req.buffer).setInt32(8, corr);
    new DataView(resp.buffer).setInt32(4, corr);
    corr++;
    downs.push(req);
    ups.push(resp);
    responseBytes += resp.length;
  }
  const cat = (xs: Uint8Array[]) => { const o = new Uint8Array(xs.reduce((n, x) => n + x.length, 0)); let at = 0; for (const x of xs) { o.set(x, at); at += x.length; } return o; };
  return { down: cat(downs), up: cat(ups), responses: count, responseBytes };
}

/** CPU seconds this process used since `from` (the machine may be shared: wall time would count other processes' turns). */
function cpuSeconds(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1e6;
}

type Decode = (body: Buffer) => Promise<unknown>;
const KAFKAJS_DIRS: Record<number, string> = {
  0: 'produce', 1: 'fetch', 2: 'listOffsets', 3: 'metadata', 8: 'offsetCommit', 9: 'offsetFetch', 10: 'findCoordinator',
  11: 'joinGroup', 12: 'heartbeat', 13: 'leaveGroup', 14: 'syncGroup', 18: 'apiVersions',
};

function kafkajsDecoder(key: number, version: number): Decode {
  return (require(`kafkajs/src/protocol/requests/${KAFKAJS_DIRS[key]}/v${version}/response`) as { decode: Decode }).decode;
}

/** A case the bench runs in rounds: each call runs for `ms` and returns [responses, response bytes, CPU seconds]. */
type Runner = (ms: number) => Promise<[number, number, number]>;

const BASELINE = process.env.BENCH_BASELINE;

async function filterRunner(settings: object, ps: Pair[], wasm?: string): Promise<Runner> {
  // the host records nothing (as in Envoy)
  const plugin: WasmPlugin = wasm
    ? await (await WasmFilterModule.load(readFileSync(wasm), 'kafka')).instantiate({ configuration: settings, logLevel: 'info', defaultCluster: 'kafka-all', record: false })
    : await kafkaPlugin(settings, 'info', false);
  const conn = plugin.newConnection();
  // correlation ids may repeat across rounds: only the order of a connection's in-flight requests matters
  const batches = Array.from({ length: 16 }, (_, i) => batch(ps, PAIRS_PER_CHUNK, 1 + i * PAIRS_PER_CHUNK));
  let i = 0;
  return async (ms) => {
    let responses = 0;
    let bytes = 0;
    const cpu0 = process.cpuUsage();
    const deadline = performance.now() + ms;
    while (performance.now() < deadline) {
      const b = batches[i++ % batches.length]!;
      conn.downstream(b.down);
      conn.upstream(b.up);
      responses += b.responses;
      bytes += b.responseBytes;
    }
    if (conn.closed) throw new Error('the filter closed the bench connection');
    return [responses, bytes, cpuSeconds(cpu0)];
  };
}

function kafkajsRunner(ps: Pair[]): Runner {
  const work = ps.map((p) => ({ decode: kafkajsDecoder(p.key, p.version), body: Buffer.from(p.response.subarray(8)), size: p.response.length }));
  return async (ms) => {
    let responses = 0;
    let bytes = 0;
    const cpu0 = process.cpuUsage();
    const deadline = performance.now() + ms;
    while (performance.now() < deadline) {
      for (const w of work) {
        await w.decode(w.body);
        bytes += w.size;
      }
      responses += work.length;
    }
    return [responses, bytes, cpuSeconds(cpu0)];
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const ps = pairs();
const byKey = new Map<string, number>();
for (const p of ps) byKey.set(`${p.key}v${p.version}`, (byKey.get(`${p.key}v${p.version}`) ?? 0) + 1);
console.log(`kafka host bench (node ${process.version}, ${DURATION_MS} ms per case in rounds): ${ps.length} request/response pairs from kafkajs-4.2 (${[...byKey].map(([k, n]) => `${k}×${n}`).join(' ')})\n`);
const FULL = {
  advertise: 'envoy.example',
  brokers: [{ id: 1, port: 19101, cluster: 'k1' }, { id: 2, port: 19102, cluster: 'k2' }],
  acl: { default: 'allow', produce: [{ topic: { prefix: 'secret.' }, action: 'deny' }] },
  topic_metrics: ['orders.'],
};
const runners: [string, Runner][] = [
  ['kafkajs 2.2.4 response decoders (await decode(body))', kafkajsRunner(ps)],
  ['kafka filter, no settings (frames, walks, counts)', await filterRunner({}, ps)],
  ['kafka filter, rewriting + ACL + topic metrics', await filterRunner(FULL, ps)],
];
if (BASELINE) {
  runners.push(['baseline build, no settings', await filterRunner({}, ps, BASELINE)]);
  runners.push(['baseline build, rewriting + ACL + topic metrics', await filterRunner(FULL, ps, BASELINE)]);
}
// warm-up, then ROUNDS rounds that run the cases one after another, so each round compares them under the same machine load
for (const [, run] of runners) await run(300);
const ROUNDS = 7;
const rates: number[][] = runners.map(() => []);
const mbs: number[][] = runners.map(() => []);
for (let r = 0; r < ROUNDS; r++) {
  for (let c = 0; c < runners.length; c++) {
    const [responses, bytes, s] = await runners[c]![1](DURATION_MS / ROUNDS);
    rates[c]!.push(responses / s);
    mbs[c]!.push(bytes / s / 1e6);
  }
}
for (let c = 0; c < runners.length; c++) {
  console.log(`${runners[c]![0].padEnd(56)} ${Math.round(median(rates[c]!)).toLocaleString('en-US').padStart(10)} responses per CPU-second  ${median(mbs[c]!).toFixed(1).padStart(6)} MB/CPU-s (median of ${ROUNDS} rounds)`);
}
const ratio = (c: number) => median(rates[c]!.map((x, r) => x / rates[0]![r]!));
console.log(`\nfilter / kafkajs (median of per-round ratios): ${ratio(1).toFixed(1)}× without settings, ${ratio(2).toFixed(1)}× with rewriting, ACL and metrics (goal ≥ 5×)`);
if (BASELINE) console.log(`baseline (${BASELINE}) / kafkajs: ${ratio(3).toFixed(1)}× without settings, ${ratio(4).toFixed(1)}× with rewriting, ACL and metrics`);
