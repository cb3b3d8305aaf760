// `protoplane replay` over the UDP flows of a capture, for filters whose
// protocol has a datagram transport (coap): one in-process connection per
// flow (as udp_proxy keeps one session per client address and port), each
// datagram one data callback, the filter configured with "transport": "udp".
import type { WasmFilterModule } from '../wasm-host/index.ts';
import type { UdpFlow } from './capture.ts';
import { messageLine, packetOf, type ReplayLine } from './index.ts';

export interface DatagramReplayOptions {
  module: WasmFilterModule;
  filterName: string;
  /** The filter's configuration; "transport": "udp" is added. */
  configuration: Record<string, unknown>;
  flows: readonly UdpFlow[];
  /** Connection numbers continue after the TCP conversations'. */
  firstConn: number;
  /** Also print each datagram's callback and the filter's other log lines, and the metrics. */
  trace?: boolean;
}

export async function replayDatagrams(options: DatagramReplayOptions, emit: (line: ReplayLine) => void): Promise<Record<string, number>> {
  const plugin = await options.module.instantiate({
    name: options.filterName,
    rootId: options.filterName,
    vmId: `${options.filterName}-udp`,
    configuration: { ...options.configuration, transport: 'udp' },
    logLevel: 'debug',
  });
  try {
    for (const [index, flow] of options.flows.entries()) {
      const id = options.firstConn + index;
      const conn = plugin.newConnection({ sourceAddress: flow.client, destinationAddress: flow.server });
      let seen = 0;
      const flush = () => {
        for (; seen < conn.events.length; seen++) {
          const event = conn.events[seen]!;
          const packet = event.type === 'log' ? packetOf(event.message) : undefined;
          if (packet) emit(messageLine(id, packet));
          else if (options.trace && event.type === 'log') emit({ conn: id, event: 'log', level: event.level, message: event.message });
          else if (options.trace && event.type === 'data') emit({ conn: id, event: 'datagram', direction: event.direction, bytes: event.size, action: event.action });
        }
      };
      if (options.trace) emit({ conn: id, event: 'udp_flow', client: flow.client, server: flow.server });
      for (const d of flow.datagrams) {
        if (d.direction === 'downstream') conn.downstream(d.data);
        else conn.upstream(d.data);
        flush();
        if (conn.closed) break;
      }
      if (!conn.closed) conn.close();
      flush();
    }
    const metrics = plugin.metrics();
    if (options.trace) emit({ event: 'metrics', transport: 'udp', metrics });
    return metrics;
  } finally {
    plugin.close();
  }
}
