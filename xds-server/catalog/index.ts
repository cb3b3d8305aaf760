// The Wasm filters under filters/: discovered from their manifests, built,
// and loaded once per config reload. A filter's protocol becomes a listener
// protocol, its schemas plug into the config loader, and before any config
// reaches Envoy each protocol listener's filter is started in the in-process
// host with the exact configuration Envoy would get; a module that fails to
// load or refuses its configuration stops that config.
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ProtocolSchema } from '../config/index.ts';
import { isBuiltinProtocol, type Mesh } from '../model/types.ts';
import { filterConfiguration, type FilterRef, type FilterRefs } from '../translate/index.ts';
import { buildFilters, FILTER_BUILD_DIR, filterWasmPath, listFilters, WasmFilterModule, type FilterManifest } from '../wasm-host/index.ts';

export interface CatalogEntry {
  readonly manifest: FilterManifest;
  readonly bytes: Uint8Array;
  readonly sha256: string;
  readonly module: WasmFilterModule;
  /** A copy of the module named by its content, so a new build is a new path (local delivery). */
  readonly contentPath: string;
}

export interface FilterProblem {
  /** Index into mesh.listeners. */
  listener: number;
  message: string;
}

/**
 * How Envoy gets module bytes: inline in ECDS (the default: hot-swaps, no
 * second address), from protoplane's admin server (with sha256; for modules
 * too large to inline), or from the build folder on this machine.
 */
export type CodeDelivery = 'inline' | 'remote' | 'local';

export class FilterCatalog {
  private constructor(readonly entries: ReadonlyMap<string, CatalogEntry>) {}

  static readonly EMPTY = new FilterCatalog(new Map());

  /** Builds what changed and loads every filter; throws with the reason (compile error, bad manifest, bad module). */
  static async load(): Promise<FilterCatalog> {
    await buildFilters();
    const entries = new Map<string, CatalogEntry>();
    const byProtocol = new Map<string, string>();
    for (const manifest of listFilters()) {
      if (!isBuiltinProtocol(manifest.protocol)) {
        const other = byProtocol.get(manifest.protocol);
        if (other) throw new Error(`filters ${other} and ${manifest.name} both serve protocol "${manifest.protocol}"`);
        byProtocol.set(manifest.protocol, manifest.name);
      }
      const bytes = new Uint8Array(await readFile(filterWasmPath(manifest.name)));
      const module = await WasmFilterModule.load(bytes, manifest.name);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const contentPath = path.join(FILTER_BUILD_DIR, 'by-sha256', `${manifest.name}-${sha256.slice(0, 16)}.wasm`);
      await mkdir(path.dirname(contentPath), { recursive: true });
      await writeFile(contentPath, bytes);
      entries.set(manifest.name, { manifest, bytes, sha256, module, contentPath });
    }
    return new FilterCatalog(entries);
  }

  byProtocol(protocol: string): CatalogEntry | undefined {
    for (const entry of this.entries.values()) if (entry.manifest.protocol === protocol) return entry;
    return undefined;
  }

  /** The schemas each filter protocol plugs into the config loader. */
  protocolSchemas(): Record<string, ProtocolSchema> {
    const out: Record<string, ProtocolSchema> = {};
    for (const { manifest } of this.entries.values()) {
      if (isBuiltinProtocol(manifest.protocol)) continue;
      out[manifest.protocol] = {
        ...(manifest.match ? { match: manifest.match } : {}),
        ...(manifest.settings ? { filter: manifest.settings } : {}),
        ...(manifest.itemListeners ? { itemListeners: manifest.itemListeners } : {}),
      };
    }
    return out;
  }

  /** What translation needs to reference each protocol's module. */
  refs(delivery: CodeDelivery): FilterRefs {
    // One map per catalog and delivery: the same refs give the same ECDS objects, encoded once.
    const known = this.refsByDelivery.get(delivery);
    if (known) return known;
    const refs = new Map<string, FilterRef>();
    for (const { manifest, bytes, sha256, contentPath } of this.entries.values()) {
      if (isBuiltinProtocol(manifest.protocol)) continue;
      refs.set(manifest.protocol, {
        name: manifest.name,
        code:
          delivery === 'inline'
            ? { kind: 'inline', bytes }
            : delivery === 'local'
              ? { kind: 'local', path: contentPath }
              : { kind: 'remote', url: `http://protoplane-admin/filters/${manifest.name}.wasm?sha256=${sha256}`, sha256 },
      });
    }
    this.refsByDelivery.set(delivery, refs);
    return refs;
  }

  private readonly refsByDelivery = new Map<CodeDelivery, FilterRefs>();

  /** Starts each protocol listener's filter with its configuration, as Envoy would; returns who refused. */
  async check(mesh: Mesh): Promise<FilterProblem[]> {
    const problems: FilterProblem[] = [];
    // A generated listener (e.g. one per Kafka broker) is checked with its own configuration, reported at its parent.
    const all = mesh.listeners.flatMap((listener, index) => [listener, ...(listener.generated ?? [])].map((l) => [index, l] as const));
    for (const [index, listener] of all) {
      if (isBuiltinProtocol(listener.protocol)) continue;
      const entry = this.byProtocol(listener.protocol);
      const own = listener === mesh.listeners[index];
      if (!entry) {
        if (own) problems.push({ listener: index, message: `no filter serves protocol "${listener.protocol}"` });
        continue;
      }
      try {
        const plugin = await entry.module.instantiate({
          name: entry.manifest.name,
          rootId: entry.manifest.name,
          vmId: entry.manifest.name,
          configuration: filterConfiguration(listener),
          logLevel: 'warn',
        });
        plugin.close();
      } catch (error) {
        problems.push({
          listener: index,
          message: `filter ${entry.manifest.name} refused ${own ? "this listener's configuration" : `the configuration of listener "${listener.name}" that this one generates`}: ${error instanceof Error ? error.message : String(error)}`,
        });
      }
    }
    return problems;
  }
}
