// Running the kafka filter in the in-process host over recorded real client
// traffic (test/kafka/fixtures/*.pcapng, made by record-fixtures.ts): each
// TCP conversation is one connection, its segments fed in capture order.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { readConversations, type TcpConversation } from '../../xds-server/replay/index.ts';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { WasmFilterModule, type WasmPlugin, type FilterConnection } from '../../xds-server/wasm-host/index.ts';
import { filterWasmPath } from '../../xds-server/catalog/index.ts';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

export const FIXTURES = path.join(path.dirname(new URL(import.meta.url).pathname), 'fixtures');
export const FIXTURE_NAMES = ['kcat-4.2', 'kafkajs-4.2', 'java-4.2', 'kcat-old-3.9'] as const;

export function fixture(name: string): TcpConversation[] {
  return readConversations(new Uint8Array(readFileSync(path.join(FIXTURES, `${name}.pcapng`))));
}

/** Every whole frame of a byte stream: [size][size bytes]... (a capture may end inside the last one: it is left out). */
export function frames(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  while (at < bytes.length) {
    if (bytes.length - at < 4) break;
    const size = view.getInt32(at);
    if (size < 0) throw new Error(`negative frame size at ${at}`);
    if (at + 4 + size > bytes.length) break;
    out.push(bytes.subarray(at, at + 4 + size));
    at += 4 + size;
  }
  return out;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** The downstream and upstream bytes of a conversation. */
export function streams(c: TcpConversation): { down: Uint8Array; up: Uint8Array } {
  return {
    down: concat(c.segments.filter((s) => s.direction === 'downstream').map((s) => s.data)),
    up: concat(c.segments.filter((s) => s.direction === 'upstream').map((s) => s.data)),
  };
}

export interface Run {
  plugin: WasmPlugin;
  conn: FilterConnection;
  /** What the filter let through each way. */
  down: Uint8Array;
  up: Uint8Array;
  packets: Record<string, unknown>[];
}

let kafkaModule: Promise<WasmFilterModule> | undefined;

/** Builds (if stale) and loads the kafka filter alone: another filter's state (or a test's deliberately broken one) does not matter here. */
async function buildKafka(): Promise<WasmFilterModule> {
  const wasm = filterWasmPath('kafka');
  await run('bash', [path.join(ROOT, 'scripts/build-filters.sh'), 'kafka'], { cwd: ROOT, maxBuffer: 16 << 20 }).catch((err: { stderr?: string; message: string }) => {
    const why = err.stderr || err.message;
    // the script reads every manifest first: a test elsewhere may have a deliberately broken filter folder
    // in the shared tree for a moment; a kafka.wasm newer than every kafka and SDK source is then still this build
    if (/filters\/(kafka|sdk)\b/.test(why) || !builtAfterSources(wasm)) throw new Error(`building the kafka filter failed:\n${why}`);
  });
  return WasmFilterModule.load(readFileSync(wasm), 'kafka');
}

function builtAfterSources(wasm: string): boolean {
  if (!existsSync(wasm)) return false;
  const built = statSync(wasm).mtimeMs;
  const newest = (dir: string): number => readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
    const p = path.join(dir, e.name);
    return Math.max(m, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }, 0);
  return built >= Math.max(newest(path.join(ROOT, 'filters/kafka')), newest(path.join(ROOT, 'filters/sdk')), statSync(path.join(ROOT, 'asconfig.json')).mtimeMs);
}

/** The kafka filter (built once per process) with these settings. */
export async function kafkaPlugin(settings: object = {}, logLevel: 'debug' | 'info' = 'info', record = true): Promise<WasmPlugin> {
  kafkaModule ??= buildKafka();
  return (await kafkaModule).instantiate({ configuration: settings, logLevel, defaultCluster: 'kafka-all', record });
}

/** The parsed-packet objects the filter logged (log_packets on, debug level). */
export function packetLog(plugin: WasmPlugin): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const entry of plugin.record.logs) {
    const m = /^packet (\{.*\})$/.exec(entry.message);
    if (m) out.push(JSON.parse(m[1]!) as Record<string, unknown>);
  }
  return out;
}

/**
 * Feeds a conversation through one connection: segments in capture order,
 * each cut into `chunk`-byte pieces (0: whole segments).
 */
export function feed(conn: FilterConnection, c: TcpConversation, chunk = 0): { down: Uint8Array; up: Uint8Array } {
  const down: Uint8Array[] = [];
  const up: Uint8Array[] = [];
  for (const seg of c.segments) {
    const pieces: Uint8Array[] = [];
    if (chunk <= 0) pieces.push(seg.data);
    else for (let i = 0; i < seg.data.length; i += chunk) pieces.push(seg.data.subarray(i, i + chunk));
    for (const piece of pieces) {
      const r = seg.direction === 'downstream' ? conn.downstream(piece) : conn.upstream(piece);
      if (r.closed) throw new Error(`the filter closed the connection: ${JSON.stringify(r.closed)}`);
      (seg.direction === 'downstream' ? down : up).push(r.forwarded);
    }
  }
  return { down: concat(down), up: concat(up) };
}
