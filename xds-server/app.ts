// `protoplane serve`: config file → model → resources → snapshot → streams.
// A bad config (on start or on reload) is logged with file:line:col and the
// last good snapshot keeps being served.
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { buildAdmin } from './admin/index.ts';
import { debounce, DEFAULT_DEBOUNCE, type DebounceOptions } from './debounce.ts';
import { SnapshotCache, snapshotsOf } from './cache/index.ts';
import { FilterCatalog, type CodeDelivery } from './catalog/index.ts';
import { createMeshParser, formatConfigError, loadMeshFile, parseMesh, type ConfigError, type MeshParser } from './config/index.ts';
import type { Logger } from './log.ts';
import { Metrics } from './metrics.ts';
import { XdsServer } from './server/index.ts';
import { FILTERS_DIR } from './wasm-host/index.ts';

export interface ServeOptions {
  configPath: string;
  xdsPort: number;
  adminPort: number;
  host?: string;
  log: Logger;
  /** Quiet period before a changed file is reloaded, and the longest wait (default 100 ms, 10 s). */
  debounce?: DebounceOptions;
  keepaliveMs?: number;
  /** GOAWAY after this long (0: never); the connection's streams end maxStreamAgeGraceMs later (default 30 s). */
  maxStreamAgeMs?: number;
  maxStreamAgeGraceMs?: number;
  processMetrics?: boolean;
  /** How Envoy gets Wasm modules: fetched from /filters/NAME.wasm with sha256 (default), or a local file path. */
  wasmCode?: CodeDelivery;
  /** Also reload when files under filters/ change (a new or rebuilt filter). Default true. */
  watchFilters?: boolean;
}

export interface Protoplane {
  readonly xdsPort: number;
  readonly adminPort: number;
  readonly cache: SnapshotCache;
  readonly metrics: Metrics;
  readonly filters: () => FilterCatalog;
  /** Loads the config file again; resolves to true when a new config was installed or nothing changed. */
  reload(): Promise<boolean>;
  close(): Promise<void>;
}

export async function serve(options: ServeOptions): Promise<Protoplane> {
  const { log } = options;
  const cache = new SnapshotCache();
  const metrics = new Metrics({ processMetrics: options.processMetrics });
  let lastErrors: string[] | undefined;
  // `latest`: the filters as last built (their schemas parse the config);
  // `catalog`: the filters of the config being served (their bytes are served).
  let latest = { catalog: FilterCatalog.EMPTY, parser: parseMesh as MeshParser };
  let catalog = FilterCatalog.EMPTY;
  // Filters are rebuilt and reloaded only when something under filters/ changed.
  let filtersDirty = true;

  const reject = (errors: ConfigError[]): false => {
    lastErrors = errors.map(formatConfigError);
    metrics.configReloads.inc({ result: 'rejected' });
    for (const line of lastErrors) log.error(line);
    log.error({ served: cache.snapshot?.version ?? null }, 'config rejected; still serving the last good config');
    return false;
  };

  const reload = async (): Promise<boolean> => {
    if (filtersDirty) {
      filtersDirty = false;
      try {
        const loaded = await FilterCatalog.load();
        latest = { catalog: loaded, parser: createMeshParser({ protocols: loaded.protocolSchemas() }) };
      } catch (error) {
        filtersDirty = true;
        return reject([{ file: FILTERS_DIR, line: 1, col: 1, path: '', message: (error as Error).message }]);
      }
    }
    const nextCatalog = latest.catalog;
    const result = await loadMeshFile(options.configPath, latest.parser);
    if (!result.ok) return reject(result.errors);
    // A filter that fails to load or refuses its settings never reaches Envoy.
    const problems = await nextCatalog.check(result.mesh);
    if (problems.length > 0) {
      return reject(problems.map((p) => result.error(['listeners', p.listener, 'protocol'], p.message)));
    }
    catalog = nextCatalog;
    let snapshotVersion: string;
    try {
      const snapshot = snapshotsOf(result.mesh, catalog.refs(options.wasmCode ?? 'remote'));
      snapshotVersion = snapshot.version;
      const changed = cache.set(snapshot);
      if (changed) {
        metrics.snapshotVersion.reset();
        metrics.snapshotVersion.set({ version: snapshot.version }, 1);
      }
      metrics.configReloads.inc({ result: changed ? 'applied' : 'unchanged' });
      log.info({ version: snapshotVersion, changed }, changed ? 'config applied' : 'config unchanged');
    } catch (error) {
      // Translation failing on a validated model is our bug, not the user's; still keep serving.
      lastErrors = [`${options.configPath}: internal error translating config: ${(error as Error).message}`];
      metrics.configReloads.inc({ result: 'rejected' });
      log.error({ err: error }, 'translation failed; still serving the last good config');
      return false;
    }
    lastErrors = undefined;
    return true;
  };

  await reload();

  const xds = new XdsServer({ cache, metrics, log, keepaliveMs: options.keepaliveMs, maxStreamAgeMs: options.maxStreamAgeMs, maxStreamAgeGraceMs: options.maxStreamAgeGraceMs });
  const xdsPort = await xds.listen(options.xdsPort, options.host);
  const admin = buildAdmin({
    cache,
    metrics,
    streams: () => xds.openStreams,
    lastConfigError: () => lastErrors,
    filters: () => catalog,
    ready: () => cache.snapshot !== undefined,
  });
  await admin.listen({ port: options.adminPort, host: options.host ?? '0.0.0.0' });
  const adminPort = (admin.server.address() as AddressInfo).port;
  log.info({ xdsPort, adminPort, config: options.configPath }, 'protoplane serving');

  const changes = debounce(() => void reload(), options.debounce ?? DEFAULT_DEBOUNCE);
  const stopWatching = watchFile(options.configPath, changes.trigger);
  // A new filter folder or an edited filter source rebuilds and reloads.
  const filterWatch =
    options.watchFilters === false
      ? undefined
      : fs.watch(FILTERS_DIR, { recursive: true }, () => {
          filtersDirty = true;
          changes.trigger();
        });

  return {
    xdsPort,
    adminPort,
    cache,
    metrics,
    filters: () => catalog,
    reload,
    async close() {
      changes.cancel();
      stopWatching();
      filterWatch?.close();
      xds.forceClose();
      await admin.close();
    },
  };
}

/**
 * Watches the directory rather than the file: editors save by writing a new
 * file and renaming it over the old one, which ends a watch on the file.
 */
function watchFile(file: string, onChange: () => void): () => void {
  const dir = path.dirname(path.resolve(file));
  const base = path.basename(file);
  const watcher = fs.watch(dir, (_event, name) => {
    if (name !== null && name !== base) return;
    onChange();
  });
  return () => watcher.close();
}
