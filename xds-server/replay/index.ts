// `protoplane replay`: runs a filter over a capture in the in-process host
// and reports, one JSON object per line, what it parsed and did — the same
// module, configuration and ABI as in Envoy, with every event visible.
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
      return { type: 'rewrite', direction: event.direction, start: event.start, length: event.length, ...describeBytes(event.data) };
    case 'release':
    case 'bypass':
      return { type: event.type, direction: event.direction, ...describeBytes(event.bytes) };
    case 'set_property':
      return { type: 'set_property', path: event.path, ...describeBytes(event.value) };
    default:
      return { ...event };
  }
}

export async function replay(options: ReplayOptions, emit: (line: ReplayLine) => void): Promise<Record<string, number>> {
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
        for (; seen < conn.events.length; seen++) emit({ conn: id, ...describe(conn.events[seen]!) });
      };
      emit({ conn: id, type: 'connection', client: conversation.client, server: conversation.server });
      flush();
      for (const segment of conversation.segments) {
        const step = options.chunkSize && options.chunkSize > 0 ? options.chunkSize : segment.data.length;
        for (let at = 0; at < segment.data.length; at += step) {
          const chunk = segment.data.subarray(at, at + step);
          const result = segment.direction === 'downstream' ? conn.downstream(chunk) : conn.upstream(chunk);
          flush();
          if (result.action === 'closed') break;
        }
      }
      if (!conn.closed) conn.close();
      flush();
    }
    const metrics = plugin.metrics();
    emit({ type: 'metrics', metrics });
    return metrics;
  } finally {
    plugin.close();
  }
}
