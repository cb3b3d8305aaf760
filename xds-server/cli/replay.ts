// `protoplane replay --filter NAME [--config FILE] [--chunk N] CAPTURE`
import { readFile } from 'node:fs/promises';
import { FilterCatalog } from '../catalog/index.ts';
import { formatConfigError, loadMeshFile } from '../config/index.ts';
import { readConversations, replay } from '../replay/index.ts';
import { filterConfiguration } from '../translate/index.ts';

export interface ReplayArgs {
  filter: string;
  /** The filter's configuration as JSON, or a mesh YAML whose first listener of the filter's protocol supplies it. */
  config?: string;
  capture: string;
  chunk?: number;
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
  const configuration = await configurationFrom(catalog, entry.manifest.protocol, args.config);
  const conversations = readConversations(new Uint8Array(await readFile(args.capture)));
  await replay(
    { module: entry.module, filterName: entry.manifest.name, configuration, conversations, chunkSize: args.chunk },
    (line) => process.stdout.write(`${JSON.stringify(line)}\n`),
  );
  return 0;
}
