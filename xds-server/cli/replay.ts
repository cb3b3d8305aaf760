// `protoplane replay --filter NAME [--config FILE] [--chunk N] [--trace] CAPTURE`
import { readFile } from 'node:fs/promises';
import { FilterCatalog } from '../catalog/index.ts';
import { formatConfigError, loadMeshFile } from '../config/index.ts';
import { hasPacketLog, readConversations, replay, withPacketLog } from '../replay/index.ts';
import { filterConfiguration } from '../translate/index.ts';
import { UDP_PROTOCOLS } from '../config/schema.ts';
import { readDatagrams } from '../replay/capture.ts';
import { replayDatagrams } from '../replay/datagrams.ts';

export interface ReplayArgs {
  filter: string;
  /** The filter's configuration as JSON, or a mesh YAML whose first listener of the filter's protocol supplies it. */
  config?: string;
  capture: string;
  chunk?: number;
  /** Every ABI-level event too (the only output for a filter without a packet log). */
  trace?: boolean;
}

async function configurationFrom(catalog: FilterCatalog, protocol: string, file: string | undefined): Promise<Record<string, unknown> | string> {
  if (!file) return {};
  if (file.endsWith('.json')) return await readFile(file, 'utf8');
  const result = await loadMeshFile(file, { protocols: catalog.protocolSchemas() });
  if (!result.ok) throw new Error(result.errors.map(formatConfigError).join('\n'));
  const listener = result.mesh.listeners.find((l) => l.protocol === protocol);
  if (!listener) throw new Error(`${file}: no listener of protocol "${protocol}"`);
  return filterConfiguration(listener);
}

export async function replayCommand(args: ReplayArgs): Promise<number> {
  const catalog = await FilterCatalog.load();
  const entry = catalog.entries.get(args.filter);
  if (!entry) {
    process.stderr.write(`replay: no filter "${args.filter}" (have: ${[...catalog.entries.keys()].join(', ')})\n`);
    return 1;
  }
  const configured = await configurationFrom(catalog, entry.manifest.protocol, args.config);
  // The filter's parsed messages need its packet log (a setting the manifest declares); without one, show the ABI events.
  const packets = hasPacketLog(entry.manifest.settings);
  if (!packets && !args.trace) process.stderr.write(`replay: filter "${args.filter}" has no packet log (no log_packets setting): showing ABI events (--trace)\n`);
  const configuration = packets ? withPacketLog(configured) : configured;
  const captured = new Uint8Array(await readFile(args.capture));
  const conversations = readConversations(captured);
  await replay(
    {
      module: entry.module, filterName: entry.manifest.name, configuration, conversations, chunkSize: args.chunk,
      trace: args.trace === true || !packets,
    },
    (line) => process.stdout.write(`${JSON.stringify(line)}\n`),
  );
  // Datagram protocols (coap): the capture's UDP flows too, through the filter configured for UDP.
  if (UDP_PROTOCOLS.includes(entry.manifest.protocol)) {
    const flows = readDatagrams(captured);
    const base = typeof configuration === 'string' ? withPacketLog(configuration) : configuration;
    await replayDatagrams(
      { module: entry.module, filterName: entry.manifest.name, configuration: base, flows, firstConn: conversations.length + 1, trace: args.trace === true || !packets },
      (line) => process.stdout.write(`${JSON.stringify(line)}\n`),
    );
  }
  return 0;
}
