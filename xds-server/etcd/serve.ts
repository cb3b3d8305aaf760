// `serve --etcd`: the mesh text and the filters it uses, as the server's
// reload reads them, from etcd instead of a file and filters/. Modules come
// from etcd as bytes (nothing is built here), are pre-flighted like built
// ones, and their manifests give the config loader the same schemas, so the
// same YAML gives the same snapshot versions as from a file.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Gauge, type Registry } from 'prom-client';
import { FilterCatalog } from '../catalog/index.ts';
import { createMeshParser, type ConfigError, type MeshParser } from '../config/index.ts';
import type { YamlLimits } from '../config/source.ts';
import type { DebounceOptions } from '../debounce.ts';
import type { Logger } from '../log.ts';
import { withStoredParse } from './parsed.ts';
import { watchEtcdMesh, type EtcdMesh, type EtcdSourceStatus } from './source.ts';
import { DEFAULT_ETCD_PREFIX, meshKey, moduleKey } from './store.ts';

export interface EtcdServeOptions {
  /** etcd client URLs. */
  endpoints: readonly string[];
  /** Key prefix (default /protoplane/). */
  prefix?: string;
  /** How often the mesh is read even without a watch event (default 2 s). */
  probeMs?: number;
}

export type EtcdMeshRead =
  | { ok: true; text: string; file: string; revision: number; filters: { catalog: FilterCatalog; parser: MeshParser } }
  | { ok: false; errors: ConfigError[] };

export interface EtcdMeshInput {
  /** What the config is called in logs and on the status page: `etcd:<prefix>mesh`. */
  readonly name: string;
  /** The newest mesh read, with its filters loaded; or why it cannot be served. */
  read(): Promise<EtcdMeshRead>;
  /** Calls onChange after each read that found something new; returns a function that stops calling it. */
  watch(onChange: () => void): () => void;
  /** Whether etcd is reachable and what was read last (for /readyz). */
  status(): EtcdSourceStatus;
  close(): Promise<void>;
}

/**
 * A file is debounced (editors write in bursts); a mesh read from etcd is
 * complete and committed, so its reload starts at once (quietMs 0: the next
 * macrotask). A newer revision seen while one reloads still supersedes it
 * (the read-ahead aborts and restarts), so a burst of applies does not queue
 * reloads. On the fan-out bench this was ~0.1 s of every replica's reload.
 */
export const ETCD_DEBOUNCE: DebounceOptions = { quietMs: 0, maxMs: 10_000 };

/** Where modules from etcd get their content-named copies (for `--wasm-code local`): beside those of built filters. */
export const MODULE_COPIES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../build/filters');

type Manifests = Parameters<typeof FilterCatalog.fromModules>[0];

/** Connects, reads the mesh once (resolving either way) and keeps watching. */
export async function etcdMeshInput(options: EtcdServeOptions, log: Logger, yamlLimits?: Partial<YamlLimits>): Promise<EtcdMeshInput> {
  const prefix = options.prefix ?? DEFAULT_ETCD_PREFIX;
  const name = `etcd:${meshKey(prefix)}`;
  const source = await watchEtcdMesh({ endpoints: options.endpoints, prefix, log, probeMs: options.probeMs });
  // Loading and pre-flighting modules is the costly part: once per set of modules and manifests.
  let loaded: { key: string; filters: { catalog: FilterCatalog; parser: MeshParser } } | undefined;
  let stopped = false;
  let listener: (() => void) | undefined;
  source.onChange(() => {
    if (!stopped) listener?.();
  });

  const filtersOf = async (mesh: EtcdMesh): Promise<{ catalog: FilterCatalog; parser: MeshParser }> => {
    const key = JSON.stringify(mesh.record.filters);
    if (loaded?.key === key) return loaded.filters;
    const modules: Manifests = mesh.record.filters.map((f) => ({
      manifest: { ...f.manifest, dir: moduleKey(prefix, f.sha256) },
      bytes: mesh.modules.get(f.sha256)!,
    }));
    const catalog = await FilterCatalog.fromModules(modules, MODULE_COPIES_DIR);
    const filters = { catalog, parser: createMeshParser({ protocols: catalog.protocolSchemas(), yamlLimits }) };
    loaded = { key, filters };
    return filters;
  };

  return {
    name,
    async read() {
      const current = source.current();
      if (!current || !current.ok) {
        const reason = current ? current.reason : 'the mesh has not been read from etcd yet';
        return { ok: false, errors: [{ file: name, line: 1, col: 1, path: '', message: reason }] };
      }
      const { mesh } = current;
      try {
        const { catalog, parser } = await filtersOf(mesh);
        // The mesh as apply parsed it, when this replica's parser would make the same: no second parse.
        const filters = { catalog, parser: withStoredParse(mesh.record, parser, yamlLimits) };
        return { ok: true, text: mesh.record.yaml, file: mesh.record.source, revision: mesh.revision, filters };
      } catch (error) {
        const message = `mesh revision ${mesh.revision}: a filter module from etcd does not load: ${(error as Error).message}`;
        return { ok: false, errors: [{ file: name, line: 1, col: 1, path: '', message }] };
      }
    },
    watch(onChange) {
      listener = onChange;
      return () => {
        listener = undefined;
      };
    },
    status: () => source.status(),
    async close() {
      stopped = true;
      await source.close();
    },
  };
}

/** protoplane_etcd_connected (1/0) and protoplane_etcd_mesh_revision, read from the source at each scrape. */
export function registerEtcdMetrics(registry: Registry, input: Pick<EtcdMeshInput, 'status'>): void {
  new Gauge({
    name: 'protoplane_etcd_connected',
    help: '1 while etcd answers reads, 0 while the last good config is served without it (docs/ha.md)',
    registers: [registry],
    collect() {
      this.set(input.status().connected ? 1 : 0);
    },
  });
  new Gauge({
    name: 'protoplane_etcd_mesh_revision',
    help: 'etcd mod revision of the mesh last read (0: none yet)',
    registers: [registry],
    collect() {
      this.set(input.status().revision ?? 0);
    },
  });
}
