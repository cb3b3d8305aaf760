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
import { WasmFilterModule } from '../wasm-host/index.ts';
import { buildFilters, filterWasmPath, listFilters, REPO_FILTERS, type FilterFolders, type FilterManifest } from './filters-dir.ts';
export { buildFilters, ensureFiltersBuilt, FILTER_BUILD_DIR, FILTERS_DIR, filterFolders, filterWasmPath, listFilters, loadFilter, REPO_FILTERS, REPO_ROOT, type FilterFolders, type FilterManifest } from './filters-dir.ts';
import { DEFAULT_PREFLIGHT, preflight, type PreflightLimits, type PreflightRequest } from './preflight.ts';


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
  private constructor(
    readonly entries: ReadonlyMap<string, CatalogEntry>,
    /** Filter folders that do not build, list or load, by folder name, with the reason: left out, reported, never blocking. */
    readonly broken: ReadonlyMap<string, string> = new Map(),
  ) {}

  static readonly EMPTY = new FilterCatalog(new Map());

  /** Builds what changed and loads every filter; throws with the reason (compile error, bad manifest, bad module). */
  static async load(folders: FilterFolders = REPO_FILTERS): Promise<FilterCatalog> {
    // A broken folder (bad filter.json, a compile error, garbage .wasm) is left
    // out and reported: a config whose listeners do not use it still loads.
    const broken = new Map<string, string>();
    let buildOutput = '';
    await buildFilters(folders).catch((error: Error) => (buildOutput = error.message));
    const manifests = listFilters(folders.sources, (folder, reason) => broken.set(path.basename(folder), reason));
    // the build goes on past a broken filter and ends with "build-filters: failed: filters/X/filter.json ..."
    const failed = /build-filters: failed: (.*)/.exec(buildOutput)?.[1]?.split(' ') ?? [];
    for (const manifest of failed) {
      const folder = path.basename(path.dirname(manifest));
      if (!broken.has(folder)) broken.set(folder, `does not build: ${buildOutput.split('\n').filter((l) => l.includes(folder) || /ERROR/.test(l)).slice(0, 5).join('; ')}`);
    }
    if (buildOutput && failed.length === 0) throw new Error(buildOutput); // not one filter's fault (e.g. no compiler)
    const entries = new Map<string, CatalogEntry>();
    const byProtocol = new Map<string, string>();
    for (const manifest of manifests) {
      if (broken.has(path.basename(manifest.dir))) continue;
      if (!isBuiltinProtocol(manifest.protocol)) {
        const other = byProtocol.get(manifest.protocol);
        if (other) {
          broken.set(path.basename(manifest.dir), `serves protocol "${manifest.protocol}", which filter ${other} already serves`);
          continue;
        }
        byProtocol.set(manifest.protocol, manifest.name);
      }
      let bytes: Uint8Array;
      let module: WasmFilterModule;
      try {
        bytes = new Uint8Array(await readFile(filterWasmPath(manifest.name, folders)));
        module = await WasmFilterModule.load(bytes, manifest.name);
      } catch (error) {
        broken.set(path.basename(manifest.dir), (error as Error).message);
        continue;
      }
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const contentPath = path.join(folders.builds, 'by-sha256', `${manifest.name}-${sha256.slice(0, 16)}.wasm`);
      await mkdir(path.dirname(contentPath), { recursive: true });
      await writeFile(contentPath, bytes);
      entries.set(manifest.name, { manifest, bytes, sha256, module, contentPath });
    }
    return new FilterCatalog(entries, broken);
  }

  byProtocol(protocol: string): CatalogEntry | undefined {
    for (const entry of this.entries.values()) if (entry.manifest.protocol === protocol) return entry;
    return undefined;
  }

  /**
   * Filters from module bytes fetched elsewhere (a replica serving from etcd,
   * docs/ha.md): nothing is built or listed; each module is loaded from its
   * bytes and copied by content into `contentDir`/by-sha256 for local delivery.
   * Throws naming the filter whose module does not load.
   */
  static async fromModules(modules: ReadonlyArray<{ manifest: FilterManifest; bytes: Uint8Array }>, contentDir: string): Promise<FilterCatalog> {
    const entries = new Map<string, CatalogEntry>();
    for (const { manifest, bytes } of modules) {
      let module: WasmFilterModule;
      try {
        module = await WasmFilterModule.load(bytes, manifest.name);
      } catch (error) {
        throw new Error(`filter ${manifest.name}: ${(error as Error).message}`);
      }
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const contentPath = path.join(contentDir, 'by-sha256', `${manifest.name}-${sha256.slice(0, 16)}.wasm`);
      await mkdir(path.dirname(contentPath), { recursive: true });
      await writeFile(contentPath, bytes);
      entries.set(manifest.name, { manifest, bytes, sha256, module, contentPath });
    }
    return new FilterCatalog(entries);
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
  async check(mesh: Mesh, limits: PreflightLimits = DEFAULT_PREFLIGHT): Promise<FilterProblem[]> {
    const problems: FilterProblem[] = [];
    // A generated listener (e.g. one per Kafka broker) is checked with its own configuration, reported at its parent.
    const all = mesh.listeners.flatMap((listener, index) => [listener, ...(listener.generated ?? [])].map((l) => [index, l] as const));
    const started: Array<{ index: number; own: boolean; listener: string; entry: CatalogEntry }> = [];
    const requests: PreflightRequest[] = [];
    for (const [index, listener] of all) {
      if (isBuiltinProtocol(listener.protocol)) continue;
      const entry = this.byProtocol(listener.protocol);
      const own = listener === mesh.listeners[index];
      if (!entry) {
        if (own) problems.push({ listener: index, message: `no filter serves protocol "${listener.protocol}"` });
        continue;
      }
      started.push({ index, own, listener: listener.name, entry });
      requests.push({ name: entry.manifest.name, sha256: entry.sha256, bytes: entry.bytes, configuration: filterConfiguration(listener) });
    }
    // Off the main thread, with time and memory limits: a guest's onConfigure may loop (docs/security.md).
    const errors = requests.length === 0 ? [] : await preflight(requests, limits);
    errors.forEach((error, n) => {
      if (error === undefined) return;
      const { index, own, listener, entry } = started[n]!;
      problems.push({
        listener: index,
        message: `filter ${entry.manifest.name} refused ${own ? "this listener's configuration" : `the configuration of listener "${listener}" that this one generates`}: ${error}`,
      });
    });
    return problems;
  }
}
