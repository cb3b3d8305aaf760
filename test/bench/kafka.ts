// Benchmark of the kafka filter in stock Envoy 1.40. Prints numbers; asserts nothing.
//   node --import tsx test/bench/kafka.ts
//   BENCH_RECORDS=200000 BENCH_ROUNDS=5 BENCH_PIN=1 BENCH_PERF=1 node --import tsx test/bench/kafka.ts
//
// Kafka 4.2's own producer perf tool (org.apache.kafka.tools.ProducerPerformance,
// 1 KB records, acks=1, no compression, no throughput cap) produces through
// one Envoy (1 worker) to a one-broker Kafka 4.2, three ways, in interleaved
// rounds whose order turns each round:
//  - plain tcp_proxy;
//  - the read-only floor: filters/passthrough with {"read": true}, a Wasm
//    filter that copies each buffer into the VM and looks at nothing (what any
//    parsing filter pays for the ABI);
//  - the kafka filter with the issue's contract configuration (a bootstrap
//    listener and a generated per-broker listener, address rewriting, an ACL
//    rule, topic metrics).
// Every client connection goes through Envoy in each case: the broker has one
// listener per case, and the two without the filter advertise their own Envoy
// port (the filter's advertises a name nobody resolves, and the filter rewrites it).
// Printed per run: records/s, MB/s and Envoy's worker CPU per record (exact
// ns from schedstat, test/bench/envoy-worker.ts). Then per case: the best rate,
// the median of each round's ratio to plain in the same round, the median
// worker CPU per record; and the filter's worker CPU over the floor per record
// and per Produce request (requests counted by the filter's
// request.produce.* stats, so records per request are the filter runs').
// Throughput rounds swing with whatever else the machine runs; the CPU per
// record is the steadier figure. BENCH_PIN=1 puts Envoy's threads on CPU 0
// and the broker, the producer JVMs and this process on CPU 1 (taskset).
// BENCH_PERF=1 samples the worker with Linux perf during each run (cpu-clock,
// 4999 Hz) and prints the time in V8's generated code per record: the Wasm
// filters and V8's wrappers for their host calls, apart from Envoy's C++ and
// the kernel, where other jobs' load moves the totals most.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureFiltersBuilt, filterWasmPath } from '../../xds-server/catalog/index.ts';
import { freePort, RECEIVE_BEFORE_CONNECT_YAML, startEnvoy } from '../support/envoy.ts';
import { runKafkaTool, startKafka } from '../kafka/brokers.ts';
import { EnvoyWorker } from './envoy-worker.ts';

const RECORDS = Number(process.env.BENCH_RECORDS ?? 200_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PIN = process.env.BENCH_PIN === '1';
const PERF = process.env.BENCH_PERF === '1';
const PERF_HZ = 4999;
const RECORD_SIZE = 1024;
const TOPIC = 'orders.bench';

interface Listener {
  name: string;
  port: number;
  cluster: string;
  wasm?: { file: string; name: string; config: object };
}

function listenerYaml(l: Listener): string {
  const wasm = l.wasm === undefined ? '' : `
      - name: envoy.filters.network.wasm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm
          config:
            name: ${l.wasm.name}
            root_id: ${l.wasm.name}
            configuration:
              "@type": type.googleapis.com/google.protobuf.StringValue
              value: ${JSON.stringify(JSON.stringify(l.wasm.config))}
            vm_config:
              vm_id: ${l.wasm.name}
              runtime: envoy.wasm.runtime.v8
              code: { local: { filename: ${JSON.stringify(l.wasm.file)} } }`;
  return `
  - name: ${l.name}
    address: { socket_address: { address: 127.0.0.1, port_value: ${l.port} } }${l.wasm === undefined ? '' : `\n${RECEIVE_BEFORE_CONNECT_YAML}`}
    filter_chains:
    - filters:${wasm}
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: ${l.name}
          cluster: ${l.cluster}`;
}

function clusterYaml(name: string, port: number): string {
  return `
  - name: ${name}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: ${name}
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } } ] } ]`;
}

/** Pins every thread of `pid` to `cpus` (taskset -a: threads started later inherit it too). */
function pin(pid: number, cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/**
 * CPU seconds thread `tid` spent in V8's generated code ("[JIT]" in perf's
 * report: the Wasm modules and V8's wrappers around their host calls) while
 * `run` ran, from perf's cpu-clock samples. Envoy's binary is stripped, so the
 * JIT share is what can be told apart from Envoy's C++ and the kernel.
 */
async function jitSeconds<T>(tid: string, dir: string, run: () => Promise<T>): Promise<{ result: T; jit: number }> {
  const file = path.join(dir, `perf-${Date.now()}.data`);
  const rec = spawn('perf', ['record', '-q', '-F', String(PERF_HZ), '-t', tid, '-o', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  rec.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => rec.on('exit', resolve));
  await sleep(700); // perf attaches
  const result = await run();
  rec.kill('SIGINT');
  if ((await exited) !== 0 && !fs.existsSync(file)) throw new Error(`perf record failed: ${err}`);
  const report = execFileSync('perf', ['report', '-i', file, '-n', '--sort', 'dso', '--stdio'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  fs.rmSync(file, { force: true });
  const jit = /^\s*[\d.]+%\s+(\d+)\s+\[JIT\]/m.exec(report);
  return { result, jit: jit ? Number(jit[1]) / PERF_HZ : 0 };
}

/**
 * The run's summary, "200000 records sent, 41288.2 records/sec (40.32 MB/sec), ... latency ..." → records/s and MB/s.
 * It is the last such line: a run longer than 5 s also prints one per 5 s window before it (the first
 * window of a slow start can say 0 records/s).
 */
function parsePerf(stdout: string, records: number): { recordsPerSec: number; mbPerSec: number } {
  const lines = [...stdout.matchAll(/(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\)/g)];
  const m = lines[lines.length - 1];
  if (m === undefined || Number(m[1]) !== records) throw new Error(`ProducerPerformance printed no summary of ${records} records:\n${stdout.slice(-2000)}`);
  return { recordsPerSec: Number(m[2]), mbPerSec: Number(m[3]) };
}

const envoyPorts = { plain: await freePort(), floor: await freePort(), bootstrap: await freePort(), broker: await freePort() };
console.log('building filters, starting Kafka 4.2 (one broker) and Envoy 1.40 (1 worker) ...');
// children inherit this process's CPUs: the broker and the producers land on CPU 1, Envoy is moved to CPU 0 below
if (PIN) pin(process.pid, '1');
await ensureFiltersBuilt();
const cluster = await startKafka({
  brokers: 1,
  extraListeners: [
    { name: 'VIA_PLAIN', advertise: () => `127.0.0.1:${envoyPorts.plain}` },
    { name: 'VIA_FLOOR', advertise: () => `127.0.0.1:${envoyPorts.floor}` },
  ],
  // Keep the disk use of many 100 MB runs small.
  properties: { 'log.segment.bytes': 16 * 1024 * 1024, 'log.retention.bytes': 32 * 1024 * 1024, 'log.retention.check.interval.ms': 2000 },
});
const broker = cluster.brokers[0]!;
const kafkaSettings = {
  advertise: '127.0.0.1',
  brokers: [{ id: broker.id, port: envoyPorts.broker, cluster: 'via_filter' }],
  acl: { default: 'allow', produce: [{ topic: { prefix: 'secret.' }, action: 'deny' }] },
  topic_metrics: ['orders.'],
};
const listeners: Listener[] = [
  { name: 'plain', port: envoyPorts.plain, cluster: 'via_plain' },
  { name: 'read_floor', port: envoyPorts.floor, cluster: 'via_floor', wasm: { file: filterWasmPath('passthrough'), name: 'read_floor', config: { read: true } } },
  { name: 'kafka', port: envoyPorts.bootstrap, cluster: 'via_filter', wasm: { file: filterWasmPath('kafka'), name: 'kafka', config: { ...kafkaSettings, routes: [{ cluster: 'via_filter' }] } } },
  {
    name: 'kafka_broker_1', port: envoyPorts.broker, cluster: 'via_filter',
    wasm: { file: filterWasmPath('kafka'), name: 'kafka', config: { ...kafkaSettings, listener_broker_id: broker.id, routes: [{ cluster: 'via_filter' }] } },
  },
];
const adminPort = await freePort();
const envoy = await startEnvoy({
  bootstrapYaml: `
node: { id: kafka-bench, cluster: protoplane-bench }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: ${adminPort} } }
static_resources:
  listeners:${listeners.map(listenerYaml).join('')}
  clusters:${clusterYaml('via_plain', broker.extraPorts['VIA_PLAIN']!)}${clusterYaml('via_floor', broker.extraPorts['VIA_FLOOR']!)}${clusterYaml('via_filter', broker.port)}
`,
  adminPort,
  logLevel: 'warn',
});
if (PIN) pin(envoy.pid, '0');

try {
  for (const l of listeners) await envoy.waitForListener(l.name);
  await cluster.createTopic(TOPIC, 1);
  const worker = EnvoyWorker.of(envoy.pid);
  const PLAIN = 'plain tcp_proxy';
  const FLOOR = 'read-only Wasm floor';
  const FILTER = 'kafka filter';
  const cases = [[PLAIN, envoyPorts.plain], [FLOOR, envoyPorts.floor], [FILTER, envoyPorts.bootstrap]] as const;
  const perf = async (port: number) => {
    const r = await runKafkaTool('4.2.0', 'org.apache.kafka.tools.ProducerPerformance', [
      '--topic', TOPIC, '--num-records', String(RECORDS), '--record-size', String(RECORD_SIZE), '--throughput', '-1',
      '--producer-props', `bootstrap.servers=127.0.0.1:${port}`, 'acks=1', 'linger.ms=5', 'batch.size=65536', 'compression.type=none',
    ], { timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`ProducerPerformance via :${port} exited ${r.code}:\n${r.stderr.slice(-2000)}`);
    return parsePerf(r.stdout, RECORDS);
  };
  /** Produce requests the kafka filter has counted (wasmcustom.kafka.request.produce.v*). */
  const produceRequests = async () => [...await envoy.stats()].filter(([k]) => k.startsWith('wasmcustom.kafka.request.produce.')).reduce((n, [, v]) => n + v, 0);
  console.log(`ProducerPerformance: ${RECORDS.toLocaleString('en-US')} records of ${RECORD_SIZE} B per run, acks=1, linger.ms=5, batch.size=65536, ` +
    `${ROUNDS} interleaved rounds (+1 warm-up run each)`);
  console.log(PERF ? `perf samples Envoy's worker at ${PERF_HZ} Hz during each run (BENCH_PERF=1)` : 'no perf sampling (BENCH_PERF=1 samples the worker)');
  console.log(PIN ? `pinned (taskset): Envoy's threads to CPU 0; the broker JVM, the producer JVMs and this process to CPU 1 (of ${os.cpus().length})` : 'not pinned (BENCH_PIN=1 pins)');
  for (const [, port] of cases) await perf(port); // JIT, connections, topic metadata: not measured
  const best: Record<string, { recordsPerSec: number; mbPerSec: number }> = {};
  const ratios: Record<string, number[]> = {};
  const cpuNsPerRecord: Record<string, number[]> = {};
  const userNsPerRecord: Record<string, number[]> = {};
  const jitNsPerRecord: Record<string, number[]> = {};
  const perfDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-bench-perf-'));
  const requestsPerRun: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const mb: Record<string, number> = {};
    for (const [label, port] of [...cases.slice(round % cases.length), ...cases.slice(0, round % cases.length)]) {
      const requests0 = label === FILTER ? await produceRequests() : 0;
      const { result: { result: rate, jit }, cpuNs, userSeconds } = await worker.measure(() =>
        PERF ? jitSeconds(worker.tid, perfDir, () => perf(port)) : perf(port).then((result) => ({ result, jit: 0 })));
      if (PERF) (jitNsPerRecord[label] ??= []).push((jit * 1e9) / RECORDS);
      const requests = label === FILTER ? await produceRequests() - requests0 : 0;
      if (label === FILTER) requestsPerRun.push(requests);
      mb[label] = rate.mbPerSec;
      if (rate.mbPerSec > (best[label]?.mbPerSec ?? 0)) best[label] = rate;
      (cpuNsPerRecord[label] ??= []).push(cpuNs / RECORDS);
      (userNsPerRecord[label] ??= []).push((userSeconds * 1e9) / RECORDS);
      console.log(`  round ${round + 1}: ${label.padEnd(22)} ${rate.recordsPerSec.toFixed(0).padStart(8)} records/s ${rate.mbPerSec.toFixed(2).padStart(7)} MB/s  ` +
        `worker ${(cpuNs / RECORDS).toFixed(0).padStart(6)} ns/record (user ${((userSeconds * 1e9) / RECORDS).toFixed(0).padStart(5)}${PERF ? `, V8 code ${((jit * 1e9) / RECORDS).toFixed(0).padStart(4)}` : ''})${label === FILTER ? `  (${requests} Produce requests, ${(RECORDS / requests).toFixed(1)} records each)` : ''}`);
      await sleep(300);
    }
    for (const [label] of cases) (ratios[label] ??= []).push(mb[label]! / mb[PLAIN]!);
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const ns = (x: number) => x.toFixed(0).padStart(5);
  console.log('\nbest of the rounds, the median of each round\'s ratio to plain in that round, and the median worker CPU per record:');
  for (const [label] of cases) {
    const r = [...ratios[label]!].sort((a, b) => a - b);
    const cpu = [...cpuNsPerRecord[label]!].sort((a, b) => a - b);
    console.log(`  ${label.padEnd(22)} ${best[label]!.recordsPerSec.toFixed(0).padStart(8)} records/s ${best[label]!.mbPerSec.toFixed(2).padStart(7)} MB/s   ` +
      `vs plain ${pct(median(r)).padStart(6)} (rounds: ${r.map(pct).join(' ')})   worker CPU ${ns(median(cpu))} ns/record (rounds: ${cpu.map((x) => x.toFixed(0)).join(' ')}), ` +
      `user ${ns(median(userNsPerRecord[label]!))}`);
  }
  const filter = median(ratios[FILTER]!);
  const floor = median(ratios[FLOOR]!);
  const points = (filter - floor) * 100;
  console.log(`  kafka filter vs read-only floor: ${Math.abs(points).toFixed(1)} points ${points >= 0 ? 'above' : 'below'} it (goal: no more than 3 below); vs plain: ${pct(filter)} (goal: >= 95%)`);
  const recordsPerRequest = RECORDS / median(requestsPerRun);
  const perRequest = (nsPerRecord: number) => `${(nsPerRecord * recordsPerRequest / 1000).toFixed(1)} µs`;
  // each round's difference between two cases run minutes apart at most: the machine's load moves both.
  // User-space CPU (the filter's code and Envoy's host calls) is counted in 10 ms ticks, so it steps by
  // 10 ms / records; the kernel's share (reads, writes, scheduling) is where other jobs' load shows most.
  console.log(`worker CPU of one case over another, per record: the median of the rounds' differences (each round's in brackets); ` +
    `per Produce request at ${recordsPerRequest.toFixed(1)} records each (median of the filter runs); user space alone in ${(1e7 / RECORDS).toFixed(0)} ns steps:`);
  for (const [a, b] of [[FLOOR, PLAIN], [FILTER, FLOOR], [FILTER, PLAIN]] as const) {
    const d = cpuNsPerRecord[a]!.map((x, i) => x - cpuNsPerRecord[b]![i]!);
    const u = userNsPerRecord[a]!.map((x, i) => x - userNsPerRecord[b]![i]!);
    console.log(`  ${`${a} over ${b}:`.padEnd(40)} ${ns(median(d))} ns/record = ${perRequest(median(d)).padStart(8)} per Produce request  (${d.map((x) => x.toFixed(0)).join(' ')});` +
      `  user ${ns(median(u))} ns/record = ${perRequest(median(u)).padStart(8)}  (${u.map((x) => x.toFixed(0)).join(' ')})`);
  }
  if (PERF) {
    console.log('time in V8\'s generated code (Wasm and its host-call wrappers), perf samples, per record (medians; rounds in brackets) and per Produce request:');
    for (const [label] of cases) {
      const j = jitNsPerRecord[label]!;
      console.log(`  ${label.padEnd(22)} ${ns(median(j))} ns/record = ${perRequest(median(j)).padStart(8)} per Produce request  (${j.map((x) => x.toFixed(0)).join(' ')})`);
    }
    const d = jitNsPerRecord[FILTER]!.map((x, i) => x - jitNsPerRecord[FLOOR]![i]!);
    console.log(`  kafka filter over floor:  ${ns(median(d))} ns/record = ${perRequest(median(d)).padStart(8)} per Produce request  (${d.map((x) => x.toFixed(0)).join(' ')})`);
  }
  fs.rmSync(perfDir, { recursive: true, force: true });
  const stats = await envoy.stats();
  const show = (re: RegExp) => [...stats].filter(([k, v]) => re.test(k) && v > 0).map(([k, v]) => `${k}=${v}`).join(' ');
  console.log(`  (${show(/^wasmcustom\.kafka\.(request\.produce|brokers\.rewritten|closed|refused)/)})`);
} finally {
  await envoy.stop();
  await cluster.stop();
}
