// `protoplane replay`: runs a filter over a capture in the in-process host
// and reports, one JSON object per line, what it parsed and did — the same
// module, configuration and ABI as in Envoy.
//
// By default a line per protocol message the filter parsed, its fields at
// the top level beside the connection number:
//   {"conn":1,"direction":"downstream","type":"connect","client_id":"a",...}
// from the SDK's packet-log convention (a debug log line `packet {JSON}`,
// filters/sdk/stream/packet-log.ts; a filter opts in by declaring the
// `log_packets` setting in its manifest, and replay turns it on). With
// `trace`, those lines come interleaved with every ABI-level event (data
// callbacks, rewrites, releases, routing, closes, logs) and the metrics; an
// event line names its kind in `event` (a protocol's own `type` field, such
// as CoAP's CON/NON, never clashes with it), a message line has no `event`.
import type { ConnectionEvent, WasmFilterModule } from '../wasm-host/index.ts';
import type { TcpConversation } from './capture.ts';

export { readConversations, isCapture, type TcpConversation, type Segment } from './capture.ts';

export interface ReplayOptions {
  module: WasmFilterModule;
  filterName: string;
  configuration: Record<string, unknown> | string;
  conversations: readonly TcpConversation[];
  /** Split every segment into chunks of at most this many bytes (a filter must not care). */
  chunkSize?: number;
  /** Also print ABI-level events, the filter's other log lines and the metrics (always on for filters without a packet log). */
  trace?: boolean;
}

/** The packet-log line prefix (PACKET_LOG_PREFIX in filters/sdk/stream/packet-log.ts). */
export const PACKET_LOG_PREFIX = 'packet ';

/** The structured object of a packet-log line, or undefined for any other line. */
export function packetOf(message: string): Record<string, unknown> | undefined {
  if (!message.startsWith(PACKET_LOG_PREFIX + '{')) return undefined;
  try {
    const v: unknown = JSON.parse(message.slice(PACKET_LOG_PREFIX.length));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a filter's manifest declares the packet-log setting (`log_packets` in its settings schema). */
export function hasPacketLog(settingsSchema: Record<string, unknown> | undefined): boolean {
  const props = settingsSchema?.properties;
  return typeof props === 'object' && props !== null && 'log_packets' in props;
}

/** The configuration with the packet log turned on (unless it says otherwise). */
export function withPacketLog(configuration: Record<string, unknown> | string): Record<string, unknown> {
  const config = typeof configuration === 'string' ? (configuration.trim() === '' ? {} : (JSON.parse(configuration) as unknown)) : configuration;
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new Error('the filter configuration must be a JSON object');
  return { log_packets: true, ...(config as Record<string, unknown>) };
}

export type ReplayLine = Record<string, unknown>;

const printable = /^[\x20-\x7e\r\n\t]*$/;

function describeBytes(bytes: Uint8Array): Record<string, unknown> {
  const text = Buffer.from(bytes).toString('latin1');
  return printable.test(text) && bytes.length <= 200 ? { bytes: bytes.length, text } : { bytes: bytes.length };
}

/** One event as a JSON-friendly object: byte payloads become their length (and text when short and printable). */
function describe(event: ConnectionEvent): ReplayLine {
  switch (event.type) {
    case 'rewrite':
      return { event: 'rewrite', direction: event.direction, start: event.start, length: event.length, ...describeBytes(event.data) };
    case 'release':
    case 'bypass':
      return { event: event.type, direction: event.direction, ...describeBytes(event.bytes) };
    case 'set_property':
      return { event: 'set_property', path: event.path, ...describeBytes(event.value) };
    default: {
      const { type, ...rest } = event;
      return { event: type, ...rest };
    }
  }
}

/** A parsed message's line: the connection number, then the filter's own fields at the top level. */
export function messageLine(conn: number, packet: Record<string, unknown>): ReplayLine {
  return { conn, ...packet };
}

export async function replay(options: ReplayOptions, emit: (line: ReplayLine) => void): Promise<Record<string, number>> {
  const trace = options.trace ?? false;
  const plugin = await options.module.instantiate({
    name: options.filterName,
    rootId: options.filterName,
    vmId: options.filterName,
    configuration: options.configuration,
    logLevel: 'debug',
  });
  try {
    for (const [index, conversation] of options.conversations.entries()) {
      const conn = plugin.newConnection({
        ...(conversation.client.includes(':') ? { sourceAddress: conversation.client } : {}),
        ...(conversation.server.includes(':') ? { destinationAddress: conversation.server } : {}),
      });
      const id = index + 1;
      let seen = 0;
      const flush = () => {
        for (; seen < conn.events.length; seen++) {
          const event = conn.events[seen]!;
          const packet = event.type === 'log' ? packetOf(event.message) : undefined;
          if (packet) emit(messageLine(id, packet));
          else if (trace) emit({ conn: id, ...describe(event) });
        }
      };
      if (trace) emit({ conn: id, event: 'connection', client: conversation.client, server: conversation.server });
      flush();
      for (const segment of conversation.segments) {
        const step = options.chunkSize && options.chunkSize > 0 ? options.chunkSize : segment.data.length;
        for (let at = 0; at < segment.data.length; at += step) {
          const chunk = segment.data.subarray(at, at + step);
          const result = segment.direction === 'downstream' ? conn.downstream(chunk) : conn.upstream(chunk);
          flush();
          if (result.action === 'closed' || conn.closed) break;
        }
        if (conn.closed) break;
      }
      if (!conn.closed) conn.close();
      flush();
    }
    const metrics = plugin.metrics();
    if (trace) emit({ event: 'metrics', metrics });
    return metrics;
  } finally {
    plugin.close();
  }
}
