// The coap filter in the in-process host: start a plugin, feed byte chunks,
// read back what it forwarded, its packet log, counters and log lines.
import { execFileSync } from 'node:child_process';
import { WasmFilterModule, type WasmPlugin } from '../../xds-server/wasm-host/index.ts';
import { filterWasmPath } from '../../xds-server/catalog/index.ts';
import { REPO_ROOT } from '../support/envoy.ts';

let module: Promise<WasmFilterModule> | undefined;
/** build/filters/coap.wasm, built first if stale (only this filter: the tests do not depend on the others building). */
export function coapModule(): Promise<WasmFilterModule> {
  module ??= (async () => {
    execFileSync('bash', ['scripts/build-filters.sh', 'coap'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
    return WasmFilterModule.loadFile(filterWasmPath('coap'));
  })();
  return module;
}

export interface CoapPlugin {
  plugin: WasmPlugin;
  /** Packet-log objects, in order. */
  packets: Array<Record<string, unknown>>;
  /** Every log line, "level message". */
  logs: string[];
  /** The manual clock (ns): advance it, then plugin.tick(). */
  clock: { now: bigint };
}

export async function startCoap(configuration: object, opts: { record?: boolean; packetLog?: boolean } = {}): Promise<CoapPlugin> {
  const packets: Array<Record<string, unknown>> = [];
  const logs: string[] = [];
  const clock = { now: 1_000_000_000n };
  const plugin = await (await coapModule()).instantiate({
    name: 'coap',
    configuration: { log_packets: opts.packetLog ?? true, ...configuration },
    logLevel: 'debug',
    defaultCluster: 'tcp_proxy_default',
    record: opts.record ?? true,
    ticks: 'manual',
    clock: { realtimeNs: () => clock.now, monotonicNs: () => clock.now },
    onLog: (e) => {
      if (e.message.startsWith('packet ')) packets.push(JSON.parse(e.message.slice(7)));
      else logs.push(`${e.level} ${e.message}`);
    },
  });
  return { plugin, packets, logs, clock };
}
