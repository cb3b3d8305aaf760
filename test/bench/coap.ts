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
//    with the coap filter beside plain tcp_proxy and the passthrough filter's
//    read-only floor (copies each buffer into the VM, looks at nothing), in
//    interleaved rounds; the median of each round's ratio to plain.
import { spawn, type ChildProcess } from 'node:child_process';
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

const DURATION_MS = Number(process.env.BENCH_MS ?? 1500);
const ENVOY_MS = Number(process.env.BENCH_ENVOY_MS ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
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
  stop(): void { this.child.stdin!.end('QUIT\n'); }
}

/** CPU seconds (user + system) one thread of `pid` has used (Linux /proc, ticks of 1/100 s). */
function threadCpuSeconds(pid: number, tid: string): number {
  const fields = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Envoy's one worker thread. */
function workerThread(pid: number): string {
  const tid = fs.readdirSync(`/proc/${pid}/task`).find((t) => fs.readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim() === 'wrk:worker_0');
  if (tid === undefined) throw new Error(`Envoy ${pid} has no wrk:worker_0 thread`);
  return tid;
}

async function envoyBench(): Promise<void> {
  console.log(`\nstock Envoy 1.40 (1 worker), one connection streaming CoAP over TCP from tcpblast to its sink, ${ENVOY_MS} ms per run, ${ROUNDS} interleaved rounds`);
  await coapModule();
  const blaster = await Blaster.start();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coap-bench-'));
  const [plain, filter, floor, adminPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const envoy = await startEnvoy({
    bootstrapYaml: mqttBootstrap({
      adminPort, listenerPort: plain, clusters: [{ name: 'sink', port: blaster.sinkPort }],
      extraListeners: [
        { name: 'coap', port: filter, wasm: true, wasmFile: filterWasmPath('coap'), filterName: 'coap', filterConfig: { routes: [{ match: { path: { prefix: '/sensors' } }, cluster: 'sink' }, { cluster: 'sink' }] } },
        { name: 'read-floor', port: floor, wasm: true, wasmFile: filterWasmPath('passthrough'), filterName: 'read_floor', filterConfig: { read: true } },
      ],
    }),
    adminPort,
    logLevel: 'warn',
  });
  try {
    await envoy.waitForListener('coap');
    const worker = workerThread(envoy.pid);
    const prefix = path.join(dir, 'prefix.bin');
    fs.writeFileSync(prefix, Buffer.concat([signalingFrames()[0]!.bytes, tcpBytes(message(0, 0))]));
    const cases = [['plain tcp_proxy', plain], ['coap filter + tcp_proxy', filter], ['read-only Wasm floor + tcp_proxy', floor]] as const;
    for (const payload of PAYLOADS) {
      const stream = path.join(dir, `stream-${payload}.bin`);
      fs.writeFileSync(stream, streams(payload, 4 << 20).tcp);
      const ratios: Record<string, number[]> = {};
      const best: Record<string, number> = {};
      // the worker's CPU per message: what the filter adds, steadier than throughput on a shared machine
      const cpuNs: Record<string, number[]> = {};
      const messageBytes = tcpBytes(message(VARY ? 3 : 1, payload)).length; // with VARY, message 3 has the mean length
      for (let round = 0; round < ROUNDS; round++) {
        const got: Record<string, number> = {};
        for (const [label, port] of [...cases.slice(round % 3), ...cases.slice(0, round % 3)]) {
          const before = threadCpuSeconds(envoy.pid, worker);
          const r = await blaster.run(port, prefix, stream, ENVOY_MS);
          const cpu = threadCpuSeconds(envoy.pid, worker) - before;
          got[label] = r.bytes / r.seconds / 1e6;
          best[label] = Math.max(best[label] ?? 0, got[label]!);
          (cpuNs[label] ??= []).push((cpu * 1e9) / (r.bytes / messageBytes));
          await new Promise((r) => setTimeout(r, 200));
        }
        for (const [label] of cases) (ratios[label] ??= []).push(got[label]! / got['plain tcp_proxy']!);
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
      for (const [label] of cases) {
        console.log(`  ${payload} B payloads, ${label.padEnd(34)} best ${best[label]!.toFixed(1).padStart(7)} MB/s, median of per-round ratio to plain ${(median(ratios[label]!) * 100).toFixed(0)}% (${ratios[label]!.map((x) => (x * 100).toFixed(0)).join(' ')}), ` +
          `worker CPU per message ${median(cpuNs[label]!).toFixed(0)} ns (median)`);
      }
      const gap = (median(ratios['read-only Wasm floor + tcp_proxy']!) - median(ratios['coap filter + tcp_proxy']!)) * 100;
      console.log(`  ${payload} B payloads: the coap filter is ${gap.toFixed(1)} points below the read-only floor; it adds ${(median(cpuNs['coap filter + tcp_proxy']!) - median(cpuNs['read-only Wasm floor + tcp_proxy']!)).toFixed(0)} ns of worker CPU per message over it`);
    }
    const stats = await envoy.stats();
    console.log(`  filter counted ${stats.get('wasmcustom.coap.requests.PUT')?.toLocaleString('en-US')} PUTs, closed ${stats.get('wasmcustom.coap.closed_by_filter') ?? 0} connections`);
  } finally {
    blaster.stop();
    await envoy.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env.BENCH_HOST !== '0') await hostBench();
if (process.env.BENCH_ENVOY !== '0') await envoyBench();
