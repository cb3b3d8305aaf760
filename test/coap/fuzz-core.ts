// Fuzzing the coap filter in the in-process host: mutated and random CoAP
// over TCP (client and server streams, cut into random chunks) and over UDP
// (datagrams, "transport": "udp"). Nothing may trap and the VM's memory must
// stay flat.
import type { WasmPlugin } from '../../xds-server/wasm-host/index.ts';
import { rng } from '../support/random.ts';
import { coapModule } from './host.ts';
import { corpus, signalingFrames, tcpBytes, udpBytes } from './packets.ts';

export const FUZZ_CONFIG = {
  routes: [{ match: { path: { prefix: '/sensors' } }, cluster: 'a' }, { match: { host: { regex: 'act.*' } }, cluster: 'b' }, { cluster: 'c' }],
  policy: { rules: [{ path: { prefix: '/admin' }, action: 'deny' }, { methods: ['DELETE'], action: 'deny' }] },
  limits: { max_message_size: 4096, max_options: 12, max_token_length: 6 },
};

export type Transport = 'tcp' | 'udp';

function mutate(src: Buffer, r: () => number): Buffer {
  const b = Buffer.from(src);
  const kind = Math.floor(r() * 6);
  const n = 1 + Math.floor(r() * 4);
  if (b.length === 0) return b;
  if (kind <= 2) {
    for (let i = 0; i < n; i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    return b;
  }
  if (kind === 3) return b.subarray(0, Math.floor(r() * b.length));
  const at = Math.floor(r() * b.length);
  if (kind === 4) return Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: n * 3 }, () => Math.floor(r() * 256))), b.subarray(at)]);
  return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + n * 2))]);
}

function randomBytes(r: () => number, max: number): Buffer {
  return Buffer.from(Array.from({ length: Math.floor(r() * max) }, () => Math.floor(r() * 256)));
}

const messages = corpus();
const TCP_MSGS = [...signalingFrames().map((f) => f.bytes), ...messages.map(tcpBytes)];
const UDP_MSGS = messages.map(udpBytes);

function chunks(b: Buffer, r: () => number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < b.length; ) {
    const size = r() < 0.3 ? 1 + Math.floor(r() * 4) : 1 + Math.floor(r() * 300);
    out.push(b.subarray(at, at + size));
    at += size;
  }
  return out;
}

/** One input: steps of (direction, bytes); over TCP bytes are chunks of streams, over UDP whole datagrams. */
export interface FuzzCase { steps: Array<{ down: boolean; bytes: Buffer }>; }

export function* fuzzCases(transport: Transport, count: number, seed: number): Generator<FuzzCase> {
  const r = rng(seed);
  const pick = <T>(list: T[]) => list[Math.floor(r() * list.length)]!;
  for (let i = 0; i < count; i++) {
    const steps: FuzzCase['steps'] = [];
    const n = 1 + Math.floor(r() * 6);
    if (transport === 'udp') {
      for (let k = 0; k < n; k++) {
        const m = r();
        steps.push({ down: r() < 0.6, bytes: m < 0.2 ? randomBytes(r, 40) : m < 0.7 ? mutate(pick(UDP_MSGS), r) : pick(UDP_MSGS) });
      }
    } else {
      const build = () => Buffer.concat(Array.from({ length: n }, () => (r() < 0.5 ? mutate(pick(TCP_MSGS), r) : pick(TCP_MSGS))));
      const down = r() < 0.15 ? randomBytes(r, 64) : Buffer.concat([signalingFrames()[0]!.bytes, build()]);
      const up = r() < 0.5 ? build() : Buffer.alloc(0);
      const dc = chunks(down, r);
      const uc = chunks(up, r);
      let d = 0, u = 0;
      while (d < dc.length || u < uc.length) {
        if (d < dc.length && (u >= uc.length || r() < 0.6)) steps.push({ down: true, bytes: dc[d++]! });
        else steps.push({ down: false, bytes: uc[u++]! });
      }
    }
    yield { steps };
  }
}

export interface FuzzStats { inputs: number; ms: number; closedByFilter: number; memoryBytes: number; memoryAfterWarmup: number }

export function vmMemory(plugin: WasmPlugin): number {
  return (plugin.currentVm.instance.exports.memory as WebAssembly.Memory).buffer.byteLength;
}

/** Runs `count` inputs; throws at the first trap, naming the input. */
export async function fuzz(transport: Transport, count: number, seed = 1, onProgress?: (s: FuzzStats) => void): Promise<FuzzStats> {
  const plugin = await (await coapModule()).instantiate({
    name: 'coap', record: false, logLevel: 'critical',
    configuration: transport === 'udp' ? { ...FUZZ_CONFIG, transport: 'udp' } : FUZZ_CONFIG,
  });
  const stats: FuzzStats = { inputs: 0, ms: 0, closedByFilter: 0, memoryBytes: 0, memoryAfterWarmup: 0 };
  const start = performance.now();
  const warmup = Math.min(10_000, Math.floor(count / 10));
  try {
    for (const c of fuzzCases(transport, count, seed)) {
      const conn = plugin.newConnection();
      for (const s of c.steps) {
        if (!s.down && !conn.proceeded && transport === 'tcp') continue; // no server before tcp_proxy connects
        const res = s.down ? conn.downstream(s.bytes) : conn.upstream(s.bytes);
        if (plugin.failed !== undefined) {
          throw new Error(`${transport} input ${stats.inputs} (seed ${seed}) trapped the filter: ${plugin.failed}\n${c.steps.map((x) => `${x.down ? 'C' : 'S'} ${x.bytes.toString('hex')}`).join('\n')}`);
        }
        if (res.closed) break;
      }
      if (conn.closed?.reason === 'filter') stats.closedByFilter++;
      if (!conn.closed) conn.close();
      stats.inputs++;
      if (stats.inputs === warmup) stats.memoryAfterWarmup = vmMemory(plugin);
      if (onProgress && stats.inputs % 100_000 === 0) {
        stats.ms = performance.now() - start;
        stats.memoryBytes = vmMemory(plugin);
        onProgress(stats);
      }
    }
  } finally {
    stats.ms = performance.now() - start;
    stats.memoryBytes = vmMemory(plugin);
    plugin.close();
  }
  return stats;
}
