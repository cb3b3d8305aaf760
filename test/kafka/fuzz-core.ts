// Fuzzing the kafka filter in the in-process host: the recorded real
// conversations (both directions), mutated byte-wise and frame-wise (bodies
// rewritten under intact size prefixes, so the generated walkers meet lying
// counts and lengths), random bytes, cut into random chunks and interleaved,
// one connection per input. Nothing may trap; the VM's memory must stay flat.
import { rng } from '../support/random.ts';
import type { FilterConnection, WasmPlugin } from '../../xds-server/wasm-host/index.ts';
import { FIXTURE_NAMES, fixture, frames, kafkaPlugin, streams } from './filter-support.ts';

/** Every path of the filter: rewriting, ACLs (refusals by placeholder, cut topics), metrics, a denied key, oversize requests answered. */
export const FUZZ_SETTINGS = {
  advertise: 'envoy.example',
  brokers: [{ id: 1, port: 19101, cluster: 'k1' }],
  acl: {
    default: 'allow',
    produce: [{ topic: { prefix: 'secret.' }, action: 'deny' }, { client_id: { regex: 'evil-[0-9]+' }, action: 'deny' }],
    fetch: [{ topic: { prefix: 'orders.e' }, action: 'deny' }],
    deny_api_keys: ['DeleteTopics', 'FindCoordinator'],
  },
  topic_metrics: ['orders.'],
  limits: { max_in_flight: 64, max_request_bytes: 155, max_response_bytes: 65536 }, // some recorded Produce requests (127-163 bytes) go over: answered in windows
};

interface Seed { down: Buffer; up: Buffer }

function seeds(): Seed[] {
  const out: Seed[] = [];
  for (const name of FIXTURE_NAMES) {
    for (const c of fixture(name)) {
      const s = streams(c);
      out.push({ down: Buffer.from(s.down), up: Buffer.from(s.up) });
    }
  }
  return out;
}

function mutateBytes(src: Buffer, r: () => number): Buffer {
  const b = Buffer.from(src);
  if (b.length === 0) return b;
  const kind = Math.floor(r() * 6);
  const n = 1 + Math.floor(r() * 4);
  if (kind <= 2) {
    for (let i = 0; i < n; i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    return b;
  }
  if (kind === 3) return b.subarray(0, Math.floor(r() * b.length));
  const at = Math.floor(r() * b.length);
  if (kind === 4) return Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: n * 3 }, () => Math.floor(r() * 256))), b.subarray(at)]);
  return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + n * 2))]);
}

/** Mutates the bodies of some frames, keeping every size prefix true: the walkers see bad bodies, not bad framing. */
function mutateFrames(src: Buffer, r: () => number): Buffer {
  const parts = frames(src).map((f) => Buffer.from(f));
  const torn = src.subarray(parts.reduce((n, f) => n + f.length, 0));
  const out: Buffer[] = [];
  for (const f of parts) {
    if (r() < 0.3 && f.length > 12) {
      const body = f.subarray(4);
      const skip = 8; // keep key, version and correlation id (or the response's correlation id) mostly
      const m = r() < 0.8 ? Buffer.concat([body.subarray(0, skip), mutateBytes(body.subarray(skip), r)]) : mutateBytes(body, r);
      const size = Buffer.alloc(4);
      size.writeInt32BE(m.length);
      out.push(size, m);
    } else out.push(f);
  }
  out.push(torn);
  return Buffer.concat(out);
}

function chunks(b: Buffer, r: () => number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < b.length) {
    const size = r() < 0.3 ? 1 + Math.floor(r() * 4) : 1 + Math.floor(r() * 300);
    out.push(b.subarray(at, at + size));
    at += size;
  }
  return out;
}

export interface FuzzCase { down: Buffer; up: Buffer; downChunks: Buffer[]; upChunks: Buffer[]; draws: number[] }

export function* fuzzCases(count: number, seed: number): Generator<FuzzCase> {
  const all = seeds();
  const r = rng(seed);
  for (let i = 0; i < count; i++) {
    const s = all[Math.floor(r() * all.length)]!;
    const mode = r();
    let down: Buffer;
    let up: Buffer;
    if (mode < 0.1) {
      down = Buffer.from(Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256)));
      up = Buffer.from(Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256)));
    } else if (mode < 0.55) {
      down = mutateFrames(s.down, r);
      up = r() < 0.5 ? mutateFrames(s.up, r) : s.up;
    } else if (mode < 0.8) {
      down = r() < 0.5 ? mutateBytes(s.down, r) : s.down;
      up = mutateBytes(s.up, r);
    } else {
      down = mutateBytes(s.down, r);
      up = s.up;
    }
    const downChunks = chunks(down, r);
    const upChunks = chunks(up, r);
    yield { down, up, downChunks, upChunks, draws: Array.from({ length: downChunks.length + upChunks.length }, () => r()) };
  }
}

/** Interleaves the two directions (the client's bytes first: a broker answers requests). */
export function drive(conn: FilterConnection, c: FuzzCase): void {
  let d = 0, u = 0, step = 0;
  while ((d < c.downChunks.length || u < c.upChunks.length) && !conn.closed) {
    const draw = c.draws[step++] ?? 0;
    // answers mostly after their requests (as a broker sends them), sometimes early
    const behind = d / Math.max(1, c.downChunks.length) < u / Math.max(1, c.upChunks.length);
    if (d < c.downChunks.length && (u >= c.upChunks.length || draw < (behind ? 0.95 : 0.4))) conn.downstream(c.downChunks[d++]!);
    else if (u < c.upChunks.length) conn.upstream(c.upChunks[u++]!);
  }
}

export interface FuzzStats { inputs: number; ms: number; closedByFilter: number; memoryBytes: number; firstMemoryBytes: number; maxMemoryBytes: number }

function vmMemory(plugin: WasmPlugin): number {
  return (plugin.currentVm.instance.exports.memory as WebAssembly.Memory).buffer.byteLength;
}

/** Runs `count` inputs; throws at the first trap with the input that caused it. */
export async function fuzz(count: number, seed = 1, onProgress?: (s: FuzzStats) => void): Promise<FuzzStats> {
  // the host records nothing (it would keep every connection of the run)
  const plugin = await kafkaPlugin(FUZZ_SETTINGS, 'info', false);
  const stats: FuzzStats = { inputs: 0, ms: 0, closedByFilter: 0, memoryBytes: 0, firstMemoryBytes: 0, maxMemoryBytes: 0 };
  const start = performance.now();
  for (const c of fuzzCases(count, seed)) {
    const conn = plugin.newConnection();
    drive(conn, c);
    if (plugin.failed !== undefined) {
      throw new Error(`input ${stats.inputs} (seed ${seed}) trapped the filter: ${plugin.failed}\ndown=${c.down.toString('hex')}\nup=${c.up.toString('hex')}`);
    }
    if (conn.closed?.reason === 'filter') stats.closedByFilter++;
    if (!conn.closed) conn.close();
    stats.inputs++;
    if ((stats.inputs & 1023) === 0) {
      stats.memoryBytes = vmMemory(plugin);
      if (stats.firstMemoryBytes === 0) stats.firstMemoryBytes = stats.memoryBytes;
      stats.maxMemoryBytes = Math.max(stats.maxMemoryBytes, stats.memoryBytes);
      if (onProgress && (stats.inputs & 0xffff) === 0) onProgress({ ...stats, ms: performance.now() - start });
    }
  }
  stats.memoryBytes = vmMemory(plugin);
  stats.maxMemoryBytes = Math.max(stats.maxMemoryBytes, stats.memoryBytes);
  stats.ms = performance.now() - start;
  plugin.close();
  return stats;
}
