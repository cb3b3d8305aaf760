// Micro-benchmark of the mqtt filter's PUBLISH scan (filters/mqtt/fastpath.ts)
// on its own: no host, no copy, the bytes already in the VM's memory. Prints
// ns per packet (median and lowest of interleaved rounds); asserts nothing.
//   node --no-liftoff --import tsx test/bench/mqtt-scan.ts [OTHER.wasm ...]
// --no-liftoff because Envoy's proxy-wasm runs TurboFan code only. Extra
// arguments are other builds of filters/mqtt/bench-scan.ts (e.g. of an older
// commit), measured in the same rounds for an A/B comparison.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import mqttPacket from 'mqtt-packet';

const ROOT = path.resolve(import.meta.dirname, '../..');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 30);
const STREAM_BYTES = 1 << 20; // about what Envoy hands over per callback

interface ScanExports {
  memory: WebAssembly.Memory;
  bufferPointer(): number;
  prefixPointer(): number;
  setup(prefixLen: number, v5: number): void;
  scanRounds(len: number, rounds: number): number;
}

function build(): string {
  const out = path.join(ROOT, '.cache/bench-bin/mqtt-scan.wasm');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  execFileSync(path.join(ROOT, 'node_modules/.bin/asc'), ['filters/mqtt/bench-scan.ts', '--config', 'filters/mqtt/bench-scan.asconfig.json', '--target', 'release', '-o', out], { cwd: ROOT, stdio: 'inherit' });
  return out;
}

async function load(file: string): Promise<ScanExports> {
  const { instance } = await WebAssembly.instantiate(fs.readFileSync(file), { env: { abort: () => { throw new Error(`${file}: abort`); } } });
  return instance.exports as unknown as ScanExports;
}

function stream(payload: number, qos: 0 | 1, version: 4 | 5): { bytes: Buffer; frames: number } {
  const frames: Buffer[] = [];
  let size = 0;
  for (let i = 0; size < STREAM_BYTES; i++) {
    const f = mqttPacket.generate({ cmd: 'publish', topic: `sensors/${i % 100}/temp`, payload: Buffer.alloc(payload, 0x41), qos, messageId: qos > 0 ? (i % 65535) + 1 : undefined, retain: false, dup: false }, { protocolVersion: version });
    frames.push(f);
    size += f.length;
  }
  return { bytes: Buffer.concat(frames), frames: frames.length };
}

const files = [build(), ...process.argv.slice(2)];
const modules = await Promise.all(files.map(load));
const cases: Array<{ label: string; payload: number; qos: 0 | 1; version: 4 | 5; prefix: string }> = [
  { label: '64 B, QoS 0, 3.1.1, topic metrics ("sensors/")', payload: 64, qos: 0, version: 4, prefix: 'sensors/' },
  { label: '64 B, QoS 0, 3.1.1, no topic metrics', payload: 64, qos: 0, version: 4, prefix: '' },
  { label: '64 B, QoS 1, 3.1.1, topic metrics (general loop)', payload: 64, qos: 1, version: 4, prefix: 'sensors/' },
  { label: '64 B, QoS 0, 5.0, topic metrics (general loop)', payload: 64, qos: 0, version: 5, prefix: 'sensors/' },
  { label: '4 KB, QoS 0, 3.1.1, topic metrics (general loop)', payload: 4096, qos: 0, version: 4, prefix: 'sensors/' },
];
console.log(`mqtt PUBLISH scan alone (node ${process.version}), ~1 MiB streams, median (lowest) ns per packet of ${ROUNDS} interleaved rounds`);
for (const c of cases) {
  const { bytes, frames } = stream(c.payload, c.qos, c.version);
  const times = modules.map(() => [] as number[]);
  for (const [i, m] of modules.entries()) {
    const memory = new Uint8Array(m.memory.buffer);
    memory.set(bytes, m.bufferPointer());
    memory.fill(0, m.bufferPointer() + bytes.length, m.bufferPointer() + bytes.length + 64);
    memory.set(Buffer.from(c.prefix), m.prefixPointer());
    m.setup(c.prefix.length, c.version === 5 ? 1 : 0);
    const passed = m.scanRounds(bytes.length, 1);
    // the last packet or two sit within 21 bytes of the end, where the scan leaves them to the general path
    if (passed < frames - 2) throw new Error(`${files[i]}: the scan passed ${passed} of ${frames} packets (${c.label})`);
  }
  const repeats = Math.max(1, Math.round((20 * STREAM_BYTES) / bytes.length));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, m] of modules.entries()) {
      const start = process.hrtime.bigint();
      const passed = m.scanRounds(bytes.length, repeats);
      times[i]!.push(Number(process.hrtime.bigint() - start) / passed);
    }
  }
  console.log(`  ${c.label}`);
  for (const [i, t] of times.entries()) {
    const sorted = [...t].sort((a, b) => a - b);
    console.log(`    ${path.basename(files[i]!).padEnd(24)} ${sorted[sorted.length >> 1]!.toFixed(2).padStart(6)} (${sorted[0]!.toFixed(2)}) ns per packet`);
  }
}
