// Runs the mqtt filter over recorded MQTT bytes in the in-process host and
// returns what it parsed: one JSON object per packet, from the filter's own
// packet log (plugin configuration `log_packets: true` makes the filter log
// `packet {...}` at debug level for every packet it parses, the SDK's
// packet-log convention; see docs/mqtt.md). Records keep the name `dir` for
// the log's `direction`. Reusable by a replay CLI: replayMqtt(steps, options).
import { type Clock, type FilterConnection, type WasmFilterModule, type WasmPlugin } from '../../xds-server/wasm-host/index.ts';
import { loadFilter } from '../../xds-server/catalog/index.ts';

export type Dir = 'downstream' | 'upstream';

/** One chunk of a conversation: client -> proxy (downstream) or broker -> proxy (upstream). */
export interface ReplayStep {
  dir: Dir;
  bytes: Uint8Array;
  endOfStream?: boolean;
}

/** A parsed packet as the filter reports it (fields depend on the type; see docs/mqtt.md). */
export interface MqttPacketRecord {
  dir: Dir;
  type: string;
  length: number;
  decision: 'forward' | 'drop' | 'refuse' | 'rewrite' | 'refusal' | 'close';
  [field: string]: unknown;
}

export interface ReplayResult {
  packets: MqttPacketRecord[];
  /** Bytes the filter passed on, per direction (after rewrites). */
  forwarded: Record<Dir, Uint8Array>;
  /** Set when the filter closed the connection. */
  closed?: { reason: string; message?: string };
  /** The cluster tcp_proxy would connect to. */
  cluster?: string;
  /** Every log line of the connection (packet lines excluded). */
  logs: string[];
  metrics: Record<string, number>;
}

export const PACKET_LOG_PREFIX = 'packet ';

let cachedModule: Promise<WasmFilterModule> | undefined;

/** The built filter (build/filters/mqtt.wasm; built on demand). */
export function mqttModule(): Promise<WasmFilterModule> {
  cachedModule ??= loadFilter('mqtt');
  return cachedModule;
}

/** Starts a plugin with the packet log on; `packets` collects parsed packets of every connection. */
export async function startMqttPlugin(configuration: object = {}, extra: { defaultCluster?: string; clock?: Clock } = {}): Promise<{
  plugin: WasmPlugin;
  packets: Map<number, MqttPacketRecord[]>;
  logs: Map<number, string[]>;
}> {
  const packets = new Map<number, MqttPacketRecord[]>();
  const logs = new Map<number, string[]>();
  const plugin = await (await mqttModule()).instantiate({
    name: 'mqtt',
    configuration: { ...configuration, log_packets: true },
    logLevel: 'debug',
    defaultCluster: extra.defaultCluster ?? 'tcp_proxy_default',
    ...(extra.clock ? { clock: extra.clock } : {}),
    record: false,
    onLog: (entry) => {
      const id = entry.connectionId ?? 0;
      if (entry.message.startsWith(PACKET_LOG_PREFIX)) {
        const list = packets.get(id) ?? [];
        const { direction, ...fields } = JSON.parse(entry.message.slice(PACKET_LOG_PREFIX.length)) as { direction: Dir } & Record<string, unknown>;
        list.push({ dir: direction, ...fields } as MqttPacketRecord);
        packets.set(id, list);
      } else {
        const list = logs.get(id) ?? [];
        list.push(`${entry.level} ${entry.message}`);
        logs.set(id, list);
      }
    },
  });
  return { plugin, packets, logs };
}


/**
 * Replays a conversation through a fresh plugin: each step is one data
 * callback. Returns the parsed packets in order, what was forwarded, and how
 * the connection ended. The connection is closed by the client at the end.
 */
export async function replayMqtt(steps: ReplayStep[], options: { configuration?: object; defaultCluster?: string } = {}): Promise<ReplayResult> {
  const { plugin, packets, logs } = await startMqttPlugin(options.configuration ?? {}, { defaultCluster: options.defaultCluster });
  const conn = plugin.newConnection();
  const forwarded: Record<Dir, Uint8Array[]> = { downstream: [], upstream: [] };
  for (const step of steps) {
    const r = step.dir === 'downstream' ? conn.downstream(step.bytes, step.endOfStream ?? false) : conn.upstream(step.bytes, step.endOfStream ?? false);
    if (r.forwarded.length > 0) forwarded[step.dir].push(r.forwarded);
    if (r.action === 'closed') break;
  }
  const closed = conn.closed ? { ...conn.closed } : undefined;
  const cluster = conn.upstreamCluster;
  if (!conn.closed) conn.close();
  const result: ReplayResult = {
    packets: packets.get(conn.id) ?? [],
    forwarded: { downstream: Buffer.concat(forwarded.downstream), upstream: Buffer.concat(forwarded.upstream) },
    closed,
    cluster,
    logs: logs.get(conn.id) ?? [],
    metrics: plugin.metrics(),
  };
  plugin.close();
  return result;
}

/** Feeds one direction's chunks to an open connection and collects what was forwarded. */
export function feed(conn: FilterConnection, dir: Dir, chunks: Uint8Array[]): Uint8Array {
  const out: Uint8Array[] = [];
  for (const c of chunks) {
    const r = dir === 'downstream' ? conn.downstream(c) : conn.upstream(c);
    if (r.forwarded.length > 0) out.push(r.forwarded);
  }
  return Buffer.concat(out);
}

export { splitAt } from '../support/bytes.ts';
