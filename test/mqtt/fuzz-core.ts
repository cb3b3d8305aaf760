// Fuzzing the mqtt filter in the in-process host: random bytes and mutated
// valid conversations, cut into random chunks, one connection per input.
// Nothing may trap, and the VM's memory must stay bounded.
import { connectPacket, corpus, gen, type Pkt, type Version } from './packets.ts';
import { mqttModule } from './replay.ts';
import { rng } from '../support/random.ts';
import type { DataResult, FilterConnection, WasmPlugin } from '../../xds-server/wasm-host/index.ts';

export const FUZZ_CONFIG = {
  routes: [{ match: { client_id: { regex: '^f[a-z]*-[0-9]+$' } }, cluster: 'a' }, { cluster: 'b' }],
  acl: {
    default: 'allow',
    publish: [{ topic: 'sensors/+/cmd', action: 'deny' }, { topic: 'secret/#', action: 'deny' }],
    subscribe: [{ topic: 'secret/#', action: 'deny' }],
  },
  limits: { max_topic_levels: 16, max_client_id_length: 64, max_header_bytes: 4096, max_pending: 8 },
  topic_metrics: ['sensors/', 'secret/'],
};

interface Seeds {
  down: Buffer[];
  up: Buffer[];
}

function seedStreams(): Seeds {
  const down: Buffer[] = [];
  const up: Buffer[] = [];
  for (const version of [3, 4, 5] as Version[]) {
    const c = corpus(version);
    down.push(Buffer.concat(c.down.map((p) => gen(p, version))));
    up.push(Buffer.concat(c.up.map((p) => gen(p, version))));
    // refusal paths: denied publishes and subscriptions, then the broker's answers
    down.push(Buffer.concat([
      gen(connectPacket(version, 'fz-1'), version),
      gen({ cmd: 'publish', topic: 'secret/a', payload: Buffer.from('x'), qos: 1, messageId: 1 }, version),
      gen({ cmd: 'publish', topic: 'secret/b', payload: Buffer.from('x'), qos: 2, messageId: 2 }, version),
      gen({ cmd: 'pubrel', messageId: 2 }, version),
      gen({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'secret/#', qos: 1 }, { topic: 'a', qos: 0 }] }, version),
      gen({ cmd: 'subscribe', messageId: 4, subscriptions: [{ topic: 'secret/x', qos: 1 }] }, version),
      gen({ cmd: 'pingreq' }, version),
    ]));
    up.push(Buffer.concat([
      gen(version === 5 ? { cmd: 'connack', reasonCode: 0, sessionPresent: false } : { cmd: 'connack', returnCode: 0, sessionPresent: false }, version),
      gen({ cmd: 'pingresp' }, version), gen({ cmd: 'pingresp' }, version),
      gen({ cmd: 'suback', messageId: 3, granted: [0] }, version),
      gen({ cmd: 'pingresp' }, version), gen({ cmd: 'pingresp' }, version), gen({ cmd: 'pingresp' }, version),
    ]));
  }
  for (const version of [3, 4, 5] as Version[]) down.push(publishRun(version));
  return { down, up };
}

/**
 * A run of PUBLISHes of every shape the filter's fast path takes or declines:
 * plain, metric and denied topics, non-ASCII, deep, one- and two-byte
 * lengths, QoS 0-2, and in 5.0 with and without properties.
 */
function publishRun(version: Version): Buffer {
  const topics = ['sensors/1/temp', 'a', 'abcdefgh', 'abcdefghi', 'secret/x', 'sensors/9/cmd', 'ü/π', 'a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q', 'x/y'];
  const packets: Buffer[] = [gen(connectPacket(version, 'fz-2'), version)];
  let id = 1;
  for (let i = 0; i < 24; i++) {
    const qos = i % 3;
    const p: Record<string, unknown> = { cmd: 'publish', topic: topics[i % topics.length], payload: Buffer.alloc([0, 1, 40, 130, 300][i % 5]!, i), qos, retain: i % 4 === 0, dup: false };
    if (qos > 0) p.messageId = id++;
    if (version === 5 && i % 4 === 1) p.properties = { contentType: 'text/plain' };
    packets.push(gen(p as Pkt, version));
  }
  return Buffer.concat(packets);
}

function mutate(src: Buffer, r: () => number): Buffer {
  const b = Buffer.from(src);
  const kind = Math.floor(r() * 6);
  const n = 1 + Math.floor(r() * 4);
  if (kind <= 2) {
    for (let i = 0; i < n; i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256); // byte flips
    return b;
  }
  if (kind === 3) return b.subarray(0, Math.floor(r() * b.length)); // truncate
  if (kind === 4) {
    const at = Math.floor(r() * b.length); // insert random bytes
    const extra = Buffer.from(Array.from({ length: n * 3 }, () => Math.floor(r() * 256)));
    return Buffer.concat([b.subarray(0, at), extra, b.subarray(at)]);
  }
  const at = Math.floor(r() * b.length); // delete a run
  return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + n * 2))]);
}

function randomBytes(r: () => number, max: number): Buffer {
  const len = Math.floor(r() * max);
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = Math.floor(r() * 256);
  // often make it look like a CONNECT so the frame loop after it is reached
  if (len > 0 && r() < 0.5) b[0] = 0x10;
  return b;
}

function chunks(b: Buffer, r: () => number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < b.length) {
    const size = r() < 0.3 ? 1 + Math.floor(r() * 4) : 1 + Math.floor(r() * 200);
    out.push(b.subarray(at, at + size));
    at += size;
  }
  return out;
}

/** One fuzz input: what each side sends, in chunks, and the random draws that interleave them. */
export interface FuzzCase {
  down: Buffer;
  up: Buffer | undefined;
  downChunks: Buffer[];
  upChunks: Buffer[];
  /** Draws for the interleaving (one per step) and the final end-of-stream decision. */
  draws: number[];
  endOfStream: boolean;
}

/** The inputs of a run: deterministic for a seed. */
export function* fuzzCases(count: number, seed: number): Generator<FuzzCase> {
  const seeds = seedStreams();
  const r = rng(seed);
  for (let i = 0; i < count; i++) {
    const pick = Math.floor(r() * seeds.down.length);
    const mode = r();
    let down: Buffer;
    let up: Buffer | undefined;
    if (mode < 0.25) {
      down = randomBytes(r, 64);
    } else {
      down = mutate(seeds.down[pick]!, r);
      if (mode < 0.6 && pick < seeds.up.length) up = r() < 0.5 ? mutate(seeds.up[pick]!, r) : seeds.up[pick]!;
    }
    const downChunks = chunks(down, r);
    const upChunks = up ? chunks(up, r) : [];
    const draws = Array.from({ length: downChunks.length + upChunks.length }, () => r());
    yield { down, up, downChunks, upChunks, draws, endOfStream: r() < 0.3 };
  }
}

/**
 * Feeds one case to one or more connections in lockstep (the first one's
 * state picks each step; upstream data only flows once tcp_proxy took over).
 * `onStep` sees each step's results, for differential tests.
 */
export function drive(conns: FilterConnection[], c: FuzzCase, onStep?: (results: DataResult[]) => void): void {
  const lead = conns[0]!;
  let d = 0, u = 0, step = 0;
  while ((d < c.downChunks.length || u < c.upChunks.length) && !lead.closed) {
    const draw = c.draws[step++] ?? 0;
    let results: DataResult[];
    if (d < c.downChunks.length && (u >= c.upChunks.length || !lead.proceeded || draw < 0.5)) {
      const chunk = c.downChunks[d++]!;
      results = conns.map((conn) => conn.downstream(chunk));
    } else if (u < c.upChunks.length && lead.proceeded) {
      const chunk = c.upChunks[u++]!;
      results = conns.map((conn) => conn.upstream(chunk));
    } else break;
    onStep?.(results);
  }
  if (!lead.closed && c.endOfStream) onStep?.(conns.map((conn) => conn.downstream(new Uint8Array(0), true)));
}

export interface FuzzStats {
  inputs: number;
  ms: number;
  closedByFilter: number;
  memoryBytes: number;
  maxMemoryBytes: number;
  traps: number;
}

export async function startFuzzPlugin(configuration: object = FUZZ_CONFIG, record = false): Promise<WasmPlugin> {
  return (await mqttModule()).instantiate({ name: 'mqtt', configuration, record });
}

function vmMemory(plugin: WasmPlugin): number {
  return (plugin.currentVm.instance.exports.memory as WebAssembly.Memory).buffer.byteLength;
}

/** Runs `count` inputs; throws at the first trap, with the input that caused it. */
export async function fuzz(count: number, seed = 1, onProgress?: (s: FuzzStats) => void, configuration: object = FUZZ_CONFIG): Promise<FuzzStats> {
  const plugin = await startFuzzPlugin(configuration);
  const stats: FuzzStats = { inputs: 0, ms: 0, closedByFilter: 0, memoryBytes: 0, maxMemoryBytes: 0, traps: 0 };
  const start = performance.now();
  let i = 0;
  for (const c of fuzzCases(count, seed)) {
    const conn = plugin.newConnection();
    try {
      drive([conn], c);
    } finally {
      if (plugin.failed !== undefined) {
        stats.traps++;
        throw new Error(`input ${i} (seed ${seed}) trapped the filter: ${plugin.failed}\ndown=${c.down.toString('hex')}\nup=${c.up?.toString('hex') ?? ''}`);
      }
    }
    if (conn.closed?.reason === 'filter') stats.closedByFilter++;
    if (!conn.closed) conn.close();
    stats.inputs++;
    i++;
    if ((i & 1023) === 0) {
      stats.memoryBytes = vmMemory(plugin);
      stats.maxMemoryBytes = Math.max(stats.maxMemoryBytes, stats.memoryBytes);
      if (onProgress && (i & 0xffff) === 0) onProgress({ ...stats, ms: performance.now() - start });
    }
  }
  stats.memoryBytes = vmMemory(plugin);
  stats.maxMemoryBytes = Math.max(stats.maxMemoryBytes, stats.memoryBytes);
  stats.ms = performance.now() - start;
  plugin.close();
  return stats;
}
