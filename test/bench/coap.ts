// Benchmark of the coap filter. Prints numbers; asserts nothing.
//   node --import tsx test/bench/coap.ts                 (host + Envoy)
//   BENCH_ENVOY=0 node --import tsx test/bench/coap.ts   (host only; BENCH_HOST=0: Envoy only)
//
// 1. Parse rate: the same CoAP messages (PUT /sensors/N, 4-byte token,
//    Content-Format, 64 B or 1 KB payload) through the coap filter in the
//    in-process host as an RFC 8323 stream in 16 KB chunks, through the pure
//    parser alone (filters/coap/probe.ts, no host), and through npm
//    coap-packet's parse() as datagrams (it has no TCP framing), in one run.
//    Neighbouring messages look alike (same length and option headers) except
//    where the path's number gains a digit; BENCH_VARY=1 makes every length
//    differ from the last one's.
// 2. Through stock Envoy 1.40 on loopback: one connection streams those
//    messages over TCP from tcpblast to its sink (test/bench/peers), Envoy
//    with the coap filter beside plain tcp_proxy and two floors of the
//    passthrough filter: read-only (copies each buffer into the VM, looks at
//    nothing) and frame walk (also walks the RFC 8323 frames: length, code,
//    token, skip; the least any CoAP-framed filter can do), in BENCH_ROUNDS
//    (9) interleaved rounds after a warm-up run each. Printed: the worker's
//    CPU per message (schedstat, envoy-worker.ts), and the medians of each
//    round's throughput ratios to plain and of the filter's to each floor.
//    BENCH_PIN=1 pins Envoy to CPU 1 and tcpblast to CPU 0.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import coapPacket from 'coap-packet';
import { filterWasmPath } from '../../xds-server/catalog/index.ts';
import { freePort, startEnvoy } from '../support/envoy.ts';
import { mqttBootstrap } from '../mqtt/envoy-mqtt.ts';
import { coapModule } from '../coap/host.ts';
import { coapProbe } from '../coap/probe.ts';
import { signalingFrames, tcpBytes, udpBytes } from '../coap/packets.ts';
import { buildPeers, peerBinary } from './go-peers.ts';
import { EnvoyWorker } from './envoy-worker.ts';

const DURATION_MS = Number(process.env.BENCH_MS ?? 1500);
const ENVOY_MS = Number(process.env.BENCH_ENVOY_MS ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const PAYLOADS = (process.env.BENCH_PAYLOADS ?? '64,1024').split(',').map(Number);
const CHUNK = 16 * 1024;
/** BENCH_VARY=1: payloads vary by 0..6 bytes from message to message, so no two neighbours look alike (fastscan.ts's look-alike runs never start). */
const VARY = process.env.BENCH_VARY === '1';

function message(i: number, payload: number) {
  return {
    code: 'PUT', messageId: i & 0xffff, token: Buffer.from([1, 2, 3, i & 0xff]),
    options: [{ name: 'Uri-Path' as const, value: Buffer.from('sensors') }, { name: 'Uri-Path' as const, value: Buffer.from(String(i % 100)) }, { name: 'Content-Format' as const, value: Buffer.from([0]) }],
    payload: Buffer.alloc(payload + (VARY ? i % 7 : 0), 0x41),
  };
}

function streams(payload: number, total: number): { tcp: Buffer; datagrams: Buffer[] } {
  const tcp: Buffer[] = [];
  const datagrams: Buffer[] = [];
  let size = 0;
  for (let i = 0; size < total; i++) {
    const m = message(i, payload);
    const f = tcpBytes(m);
    tcp.push(f);
    datagrams.push(udpBytes(m));
    size += f.length;
  }
  return { tcp: Buffer.concat(tcp), datagrams };
}

function rate(label: string, frames: number, pass: () => void): number {
  const warm = performance.now() + 200;
  while (performance.now() < warm) pass();
  let runs = 0;
  const start = performance.now();
  while (performance.now() - start < DURATION_MS) { pass(); runs++; }
  const perSec = (runs * frames) / ((performance.now() - start) / 1000);
  console.log(`  ${label.padEnd(44)} ${Math.round(perSec).toLocaleString('en-US').padStart(12)} messages/s`);
  return perSec;
}

async function hostBench(): Promise<void> {
  const module = await coapModule();
  const probe = await coapProbe();
  console.log(`parse rate, ${DURATION_MS} ms per case (node ${process.version})`);
  for (const payload of PAYLOADS) {
    const { tcp, datagrams } = streams(payload, (1 << 20) - 4096); // the probe holds up to 1 MiB
    const frames = datagrams.length;
    const chunks: Buffer[] = [];
    for (let at = 0; at < tcp.length; at += CHUNK) chunks.push(tcp.subarray(at, at + CHUNK));
    const plugin = await module.instantiate({ name: 'coap', record: false, logLevel: 'warn', configuration: { routes: [{ cluster: 'sink' }] } });
    const conn = plugin.newConnection();
    conn.downstream(Buffer.concat([signalingFrames()[0]!.bytes, tcpBytes(message(0, 0))]));
    console.log(` ${payload} B payloads (${(tcp.length / frames).toFixed(0)} B per TCP message, ${frames} messages per MiB)`);
    const filter = rate('coap filter in the host (TCP, 16 KB chunks)', frames, () => { for (const c of chunks) conn.downstream(c); });
    probe.load(tcp);
    const pure = rate('coap parser alone (probe, TCP frames)', frames, () => { if (Number(probe.exports.parseTcpRounds(tcp.length, 1)) !== frames) throw new Error('probe'); });
    const npm = rate('npm coap-packet parse() (datagrams)', frames, () => { for (const d of datagrams) coapPacket.parse(d); });
    console.log(`  filter in the host / coap-packet: ${(filter / npm).toFixed(1)}x; parser alone / coap-packet: ${(pure / npm).toFixed(1)}x`);
    plugin.close();
  }
}

/** tcpblast: sendfile() out, splice() into /dev/null, so Envoy is what is measured (see bench/mqtt.ts). */
class Blaster {
  private constructor(private readonly child: ChildProcess, private readonly lines: AsyncIterator<string>, readonly sinkPort: number) {}
  static async start(): Promise<Blaster> {
    buildPeers((line) => console.log(`  ${line}`));
    const child = spawn(peerBinary('tcpblast'), [], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const port = /^LISTEN (\d+)$/.exec(((await lines.next()).value as string | undefined) ?? '')?.[1];
    if (port === undefined) throw new Error('tcpblast did not start');
    return new Blaster(child, lines, Number(port));
  }
  /** Bytes the sink got, and over how many seconds. */
  async run(port: number, prefix: string, stream: string, ms: number): Promise<{ bytes: number; seconds: number }> {
    this.child.stdin!.write(`RUN ${port} ${prefix} ${stream} ${ms}\n`);
    const line = ((await this.lines.next()).value as string | undefined) ?? 'FAIL tcpblast exited';
    const m = /^RESULT (\d+) ([\d.]+)$/.exec(line);
    if (!m) throw new Error(`tcpblast: ${line}`);
    return { bytes: Number(m[1]), seconds: Number(m[2]) };
  }
  get pid(): number { return this.child.pid!; }
  stop(): void { this.child.stdin!.end('QUIT\n'); }
}

/** BENCH_BASELINE=FILE.wasm: another build of the coap filter as a fifth case, in the same rounds (before/after a change). */
const BASELINE = process.env.BENCH_BASELINE;
/** BENCH_PIN=1: Envoy (all its threads) on CPU 1, tcpblast on CPU 0 (taskset), so the two stop trading cores mid-run. */
const PIN = process.env.BENCH_PIN === '1';

function pin(pid: number, cpu: number): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const pct = (x: number) => `${(x * 100).toFixed(0)}%`;

async function envoyBench(): Promise<void> {
  console.log(`\nstock Envoy 1.40 (1 worker), one connection streaming CoAP over TCP from tcpblast to its sink, ${ENVOY_MS} ms per run, ` +
    `${ROUNDS} interleaved rounds after one warm-up run per case${PIN ? ', Envoy pinned to CPU 1 and tcpblast to CPU 0' : ''}${VARY ? ', lengths varying (BENCH_VARY=1)' : ''}`);
  await coapModule();
  const blaster = await Blaster.start();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coap-bench-'));
  const [plain, filter, readFloor, walkFloor, baseline, adminPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const coapConfig = { routes: [{ match: { path: { prefix: '/sensors' } }, cluster: 'sink' }, { cluster: 'sink' }] };
  const envoy = await startEnvoy({
    bootstrapYaml: mqttBootstrap({
      adminPort, listenerPort: plain, clusters: [{ name: 'sink', port: blaster.sinkPort }],
      extraListeners: [
        { name: 'coap', port: filter, wasm: true, wasmFile: filterWasmPath('coap'), filterName: 'coap', filterConfig: coapConfig },
        ...(BASELINE ? [{ name: 'coap-baseline', port: baseline, wasm: true, wasmFile: path.resolve(BASELINE), filterName: 'coap_baseline', filterConfig: coapConfig }] : []),
        // the copy floor: each buffer read into the VM, nothing looked at
        { name: 'read-floor', port: readFloor, wasm: true, wasmFile: filterWasmPath('passthrough'), filterName: 'read_floor', filterConfig: { read: true } },
        // the framing floor: each buffer read and walked as RFC 8323 frames (length, code, token, skip), one counter per buffer, no checks
        { name: 'walk-floor', port: walkFloor, wasm: true, wasmFile: filterWasmPath('passthrough'), filterName: 'walk_floor', filterConfig: { read: true, walk: 'coap' } },
      ],
    }),
    adminPort,
    logLevel: 'warn',
  });
  try {
    await envoy.waitForListener('walk-floor');
    if (PIN) { pin(envoy.pid, 1); pin(blaster.pid, 0); }
    const worker = EnvoyWorker.of(envoy.pid);
    const prefix = path.join(dir, 'prefix.bin');
    fs.writeFileSync(prefix, Buffer.concat([signalingFrames()[0]!.bytes, tcpBytes(message(0, 0))]));
    const PLAIN = 'plain tcp_proxy';
    const FILTER = 'coap filter';
    const READ = 'read-only floor';
    const WALK = 'frame-walk floor';
    const BASE = 'coap baseline';
    const cases: Array<readonly [string, number]> = [[PLAIN, plain], [FILTER, filter], [READ, readFloor], [WALK, walkFloor], ...(BASELINE ? [[BASE, baseline] as const] : [])];
    if (BASELINE) console.log(`  coap baseline: ${BASELINE}`);
    for (const payload of PAYLOADS) {
      const stream = path.join(dir, `stream-${payload}.bin`);
      const { tcp, datagrams } = streams(payload, 4 << 20);
      fs.writeFileSync(stream, tcp);
      const messageBytes = tcp.length / datagrams.length;
      const run = (port: number) => worker.measure(() => blaster.run(port, prefix, stream, ENVOY_MS));
      // warm-up: V8 compiles the Wasm in tiers; no round should get the baseline tier
      for (const [, port] of cases) await run(port);
      const mbps: Record<string, number[]> = {};
      // the worker's CPU (user + system) per message: what a saturated worker pays, steadier than throughput on 2 shared cores
      const cpuNs: Record<string, number[]> = {};
      // its user-space part (stat's 10 ms ticks): where a filter's own code lands; the kernel's copies swing most
      const userNs: Record<string, number[]> = {};
      for (let round = 0; round < ROUNDS; round++) {
        // the order turns each round: the load generator and other work share the machine
        for (const [label, port] of [...cases.slice(round % cases.length), ...cases.slice(0, round % cases.length)]) {
          const { result: { bytes, seconds }, cpuNs: ns, userSeconds } = await run(port);
          (mbps[label] ??= []).push(bytes / seconds / 1e6);
          (cpuNs[label] ??= []).push(ns / (bytes / messageBytes));
          (userNs[label] ??= []).push((userSeconds * 1e9) / (bytes / messageBytes));
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      // per round: a case's throughput over another's in the same round (neighbouring runs share the machine's mood)
      const ratios = (a: string, b: string) => mbps[a]!.map((x, i) => x / mbps[b]![i]!);
      const cpu = (label: string) => median(cpuNs[label]!);
      console.log(` ${payload} B payloads (${messageBytes.toFixed(1)} B per message on the wire)`);
      for (const [label] of cases) {
        const r = ratios(label, PLAIN);
        console.log(`  ${label.padEnd(17)} worker CPU ${cpu(label).toFixed(1).padStart(6)} ns/msg (median; rounds ${cpuNs[label]!.map((x) => x.toFixed(0)).join(' ')}), user ${median(userNs[label]!).toFixed(1)} ns/msg, ` +
          `best ${Math.max(...mbps[label]!).toFixed(0).padStart(5)} MB/s, throughput / plain ${pct(median(r))} (rounds ${r.map(pct).join(' ')})`);
      }
      for (const other of [READ, WALK, ...(BASELINE ? [BASE] : [])]) {
        const r = ratios(FILTER, other);
        console.log(`  coap filter vs ${other}: ${(cpu(FILTER) - cpu(other)).toFixed(1)} ns/msg of worker CPU over it (user ${(median(userNs[FILTER]!) - median(userNs[other]!)).toFixed(1)}); ` +
          `throughput / its ${pct(median(r))} (rounds ${r.map(pct).join(' ')}); throughput to plain (medians) ${pct(median(ratios(FILTER, PLAIN)))} against its ${pct(median(ratios(other, PLAIN)))}; ` +
          `a saturated worker (plain's CPU over each): filter ${pct(cpu(PLAIN) / cpu(FILTER))}, ${other} ${pct(cpu(PLAIN) / cpu(other))}`);
      }
    }
    const stats = await envoy.stats();
    console.log(`  coap filter counted ${stats.get('wasmcustom.coap.requests.PUT')?.toLocaleString('en-US')} PUTs, closed ${stats.get('wasmcustom.coap.closed_by_filter') ?? 0} connections; ` +
      `walk floor counted ${stats.get('wasmcustom.passthrough.frames')?.toLocaleString('en-US')} frames`);
  } finally {
    blaster.stop();
    await envoy.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env.BENCH_HOST !== '0') await hostBench();
if (process.env.BENCH_ENVOY !== '0') await envoyBench();
