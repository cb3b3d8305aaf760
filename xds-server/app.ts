// `protoplane serve`: config file → model → resources → snapshot → streams.
// A bad config (on start or on reload) is logged with file:line:col and the
// last good snapshot keeps being served.
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import { buildAdmin } from './admin/index.ts';
import { debounce, DEFAULT_DEBOUNCE, type DebounceOptions } from './debounce.ts';
import { ReadAhead } from './read-ahead.ts';
import { Encodings, SnapshotCache, type SnapshotSet } from './cache/index.ts';
import { snapshotsOf } from './snapshots.ts';
import { FilterCatalog, REPO_FILTERS, type CodeDelivery, type FilterFolders } from './catalog/index.ts';
import { createMeshParser, formatConfigError, parseMesh, readMeshFile, type ConfigError, type MeshParser } from './config/index.ts';
import type { Logger } from './log.ts';
import { Metrics } from './metrics.ts';
import { envoyProtos } from './protos/index.ts';
import type { PreflightLimits } from './catalog/preflight.ts';
import { XdsServer, type XdsLimits } from './server/index.ts';
import type { YamlLimits } from './config/source.ts';
import { watchTlsFiles } from './tls/files.ts';
import { readTlsFiles, tlsFilesOf, WatchedFiles } from './tls/listener-files.ts';
import { watchConfigFile } from './config/watch.ts';
import { ETCD_DEBOUNCE, etcdMeshInput, registerEtcdMetrics, type EtcdServeOptions } from './etcd/serve.ts';
import { fleetReader, joinFleet, type ReplicaOptions } from './fleet/index.ts';

export interface ServeOptions {
  /** The mesh file; or, with `etcd`, none (exactly one of the two). */
  configPath?: string;
  /** Serve the mesh and its filter modules from etcd (docs/ha.md) instead of a file and filters/. */
  etcd?: EtcdServeOptions;
  /** With etcd: how this replica registers itself in the fleet (docs/ha.md). */
  replica?: ReplicaOptions;
  xdsPort: number;
  adminPort: number;
  /** Where xDS listens (default 127.0.0.1: reachable from this machine only). */
  host?: string;
  /** Where the admin server listens (default 127.0.0.1). */
  adminHost?: string;
  /** A file holding the bearer token /debug/* requires (re-read when it changes). */
  adminTokenFile?: string;
  /** Most admin connections at once (default 64), and how long one request may take to arrive and be answered (default 10 s). */
  adminMaxConnections?: number;
  adminTimeoutMs?: number;
  /** Serve xDS over TLS (re-read when the files change); with a client CA, node ids must be proven by client certificates. */
  xdsTls?: { certFile: string; keyFile: string; clientCaFile?: string };
  /** What one xDS client may cost (docs/security.md). */
  xdsLimits?: Partial<XdsLimits>;
  /** Time and memory limits of the filter pre-flight (default DEFAULT_PREFLIGHT: 2 s, 64 MiB heap, 256 MiB module memory). */
  preflight?: PreflightLimits;
  /** Bounds on the mesh file (size, YAML aliases). */
  configLimits?: Partial<YamlLimits>;
  log: Logger;
  /** Quiet period before a changed file (mesh, TLS files, filters/) is reloaded, and the longest wait (default 100 ms, 10 s); an etcd change is not held (ETCD_DEBOUNCE). */
  debounce?: DebounceOptions;
  keepaliveMs?: number;
  /** GOAWAY after this long (0: never); the connection's streams end maxStreamAgeGraceMs later (default 30 s). */
  maxStreamAgeMs?: number;
  maxStreamAgeGraceMs?: number;
  processMetrics?: boolean;
  /** How Envoy gets Wasm modules: inline in ECDS (default), fetched from /filters/NAME.wasm with sha256, or a local file path. */
  wasmCode?: CodeDelivery;
  /** Also reload when files under filters/ change (a new or rebuilt filter). Default true. */
  watchFilters?: boolean;
  /** The filters folder and its builds (default: the repo's filters/ and build/filters/). */
  filters?: FilterFolders;
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

/** Filters as built, and the config parser that knows their schemas. */
interface FilterSet {
  catalog: FilterCatalog;
  parser: MeshParser;
}

/** A config read, checked and translated, not yet served. */
type Prepared =
  | { ok: true; snapshot: SnapshotSet; filters: FilterSet }
  | { ok: false; errors: ConfigError[]; filters?: FilterSet }
  | { ok: false; internal: Error; filters: FilterSet };

export async function serve(options: ServeOptions): Promise<Protoplane> {
  const { log } = options;
  if ((options.configPath === undefined) === (options.etcd === undefined)) throw new Error('serve: give either a config file or etcd endpoints');
  // The Envoy API, parsed now: the first request must not wait for it (the CLI's other commands never load it).
  envoyProtos();
  // From etcd, the mesh and its filter modules come from there: nothing under filters/ is built or watched.
  const etcd = options.etcd ? await etcdMeshInput(options.etcd, log, options.configLimits) : undefined;
  const configName = etcd?.name ?? options.configPath!;
  const filterFolders = options.filters ?? REPO_FILTERS;
  const cache = new SnapshotCache();
  // What the last reloads encoded: a reload encodes only the resources that came out different.
  const encodings = new Encodings();
  const metrics = new Metrics({ processMetrics: options.processMetrics });
  if (etcd) registerEtcdMetrics(metrics.registry, etcd);
  let lastErrors: string[] | undefined;
  // `latest`: the filters as last built (their schemas parse the config);
  // `catalog`: the filters of the config being served (their bytes are served).
  let latest: FilterSet = { catalog: FilterCatalog.EMPTY, parser: options.configLimits ? createMeshParser({ yamlLimits: options.configLimits }) : parseMesh };
  let catalog = FilterCatalog.EMPTY;
  // Filters are rebuilt and reloaded only when something under filters/ changed.
  let filtersDirty = true;
  let filterChanges = 0;
  // Certificate files of TLS listeners: a change reloads like a config edit (set up below).
  let onTlsFileChange = (): void => {};
  const tlsFileWatch = new WatchedFiles(() => onTlsFileChange());

  const reject = (errors: ConfigError[]): false => {
    lastErrors = errors.map(formatConfigError);
    metrics.configReloads.inc({ result: 'rejected' });
    for (const line of lastErrors) log.error(line);
    const served = cache.snapshot?.version;
    if (served) log.error({ served }, 'config rejected; still serving the last good config');
    else log.error('config rejected; no config has been loaded yet, so nothing is served and /readyz says not ready');
    return false;
  };

  /**
   * The half of a reload with no effects: read, parse, validate, translate.
   * `filters` is the filter set it parsed with; it is installed with the snapshot.
   * Aborted (the file changed again) after reading, it stops before the costly part.
   */
  const prepare = async (signal?: AbortSignal): Promise<Prepared> => {
    let filters = latest;
    if (filtersDirty && !etcd) {
      try {
        const loaded = await FilterCatalog.load(filterFolders);
        for (const [folder, reason] of loaded.broken) {
          log.warn({ filter: folder }, `filters/${folder} is broken and left out (listeners using it are refused): ${reason}`);
        }
        filters = { catalog: loaded, parser: createMeshParser({ protocols: loaded.protocolSchemas(), yamlLimits: options.configLimits }) };
      } catch (error) {
        return { ok: false, errors: [{ file: filterFolders.sources, line: 1, col: 1, path: '', message: (error as Error).message }] };
      }
    }
    // From etcd: the text, the file it was applied from, and the filters of its modules.
    const read = etcd ? await etcd.read() : { file: configName, filters, ...(await readMeshFile(configName)) };
    signal?.throwIfAborted();
    if (read.ok) filters = read.filters;
    const result = read.ok ? filters.parser(read.text, read.file) : read;
    if (!result.ok) {
      // a listener naming a broken filter's protocol fails as an unknown protocol: say why it is unknown
      const broken = [...filters.catalog.broken].map(([folder, reason]): ConfigError => ({ file: `filters/${folder}`, line: 1, col: 1, path: '', message: `this filter is broken and left out: ${reason}` }));
      return { ok: false, errors: [...result.errors, ...broken], filters };
    }
    // A filter that fails to load or refuses its settings never reaches Envoy.
    const problems = await filters.catalog.check(result.mesh, options.preflight);
    if (problems.length > 0) {
      return { ok: false, errors: problems.map((p) => result.error(['listeners', p.listener, 'protocol'], p.message)), filters };
    }
    // Watched even when they fail to load, so that fixing a file reloads (prepare()'s one effect).
    tlsFileWatch.set(tlsFilesOf(result.mesh));
    const tlsFiles = await readTlsFiles(result.mesh, (p, message) => result.error(p, message));
    if (!tlsFiles.ok) return { ok: false, errors: tlsFiles.errors, filters };
    try {
      return { ok: true, snapshot: snapshotsOf(result.mesh, filters.catalog.refs(options.wasmCode ?? 'inline'), tlsFiles.files, encodings), filters };
    } catch (error) {
      return { ok: false, internal: error as Error, filters };
    }
  };

  /** The other half: serve what prepare() built, or log why not and keep the last good config. */
  const install = (prepared: Prepared, filtersGeneration: number): boolean => {
    if (prepared.filters) {
      latest = prepared.filters;
      // Filters that changed again while this reload ran get loaded by the next one.
      if (filtersGeneration === filterChanges) filtersDirty = false;
    }
    if ('internal' in prepared) {
      // Translation failing on a validated model is our bug, not the user's; still keep serving.
      lastErrors = [`${configName}: internal error translating config: ${prepared.internal.message}`];
      metrics.configReloads.inc({ result: 'rejected' });
      log.error({ err: prepared.internal }, `translation failed; ${stillServing(cache)}`);
      return false;
    }
    if (!prepared.ok) return reject(prepared.errors);
    catalog = prepared.filters.catalog;
    const { snapshot } = prepared;
    const changed = cache.set(snapshot);
    if (changed) {
      metrics.snapshotVersion.reset();
      metrics.snapshotVersion.set({ version: snapshot.version }, 1);
    }
    metrics.configReloads.inc({ result: changed ? 'applied' : 'unchanged' });
    log.info({ version: snapshot.version, changed }, changed ? 'config applied' : 'config unchanged');
    lastErrors = undefined;
    return true;
  };

  const reload = async (): Promise<boolean> => {
    const filtersGeneration = filterChanges;
    return install(await prepare(), filtersGeneration);
  };

  // While the debounce waits for the quiet period, the changed file is
  // already being read and translated; when the period ends, that result is
  // installed if nothing changed since it started reading. A change of
  // filters/ is not read ahead: building filters has effects of its own.
  const readAhead = new ReadAhead(prepare);
  const applyChanges = async (): Promise<void> => {
    const filtersGeneration = filterChanges;
    try {
      const ahead = filtersDirty ? undefined : await readAhead.result();
      install(ahead ?? (await prepare()), filtersGeneration);
    } catch (error) {
      // prepare() turns every user error into a result; this is our bug: keep serving.
      lastErrors = [`${configName}: internal error while reloading: ${(error as Error).message}`];
      metrics.configReloads.inc({ result: 'rejected' });
      log.error({ err: error }, `reload failed; ${stillServing(cache)}`);
    }
  };

  await reload();

  const tls = options.xdsTls && watchTlsFiles(options.xdsTls, log, (files) => xds.setTls(files));
  const xds = new XdsServer({
    cache,
    metrics,
    log,
    keepaliveMs: options.keepaliveMs,
    maxStreamAgeMs: options.maxStreamAgeMs,
    maxStreamAgeGraceMs: options.maxStreamAgeGraceMs,
    limits: options.xdsLimits,
    tls: tls?.files,
  });
  // Before any client: V8 sees the push path's change branches now rather than at the first change (server/rehearsal.ts).
  const rehearsalStart = performance.now();
  await xds.rehearse().then(
    () => log.debug({ ms: Math.round(performance.now() - rehearsalStart) }, 'push path rehearsed'),
    (error: unknown) => log.warn({ err: error }, 'the push path rehearsal failed (a bug: please report it); serving anyway'),
  );
  // Loopback unless told otherwise; with mTLS every client proves who it is, so every address.
  const xdsHost = options.host ?? (tls?.files.ca ? '0.0.0.0' : '127.0.0.1');
  const xdsPort = await xds.listen(options.xdsPort, xdsHost);
  if (!isLoopback(xdsHost) && !tls) {
    log.warn({ host: xdsHost }, 'xDS is served in plaintext on a non-loopback address: anyone who can reach it reads the whole mesh and can claim any node id; see docs/security.md');
  } else if (!isLoopback(xdsHost) && !tls?.files.ca) {
    log.warn({ host: xdsHost }, 'xDS is served over TLS without --xds-client-ca: anyone who can reach it reads the whole mesh and can claim any node id; see docs/security.md');
  }
  const admin = buildAdmin({
    cache,
    metrics,
    streams: () => xds.openStreams,
    health: () => xds.health.view(),
    lastConfigError: () => lastErrors,
    filters: () => catalog,
    ready: () => cache.snapshot !== undefined,
    configPath: configName,
    configSource: etcd?.status,
    guard: { tokenFile: options.adminTokenFile, maxConnections: options.adminMaxConnections, timeoutMs: options.adminTimeoutMs, log },
    fleet: options.etcd ? fleetReader(options.etcd, options.adminTokenFile) : undefined,
  });
  try {
    await admin.listen({ port: options.adminPort, host: options.adminHost ?? '127.0.0.1' });
  } catch (error) {
    // (the caller gets no handle to close what is already listening)
    xds.forceClose();
    tls?.stop();
    tlsFileWatch.close();
    await etcd?.close();
    throw error;
  }
  const adminPort = (admin.server.address() as AddressInfo).port;
  // Serving from etcd: say so under <prefix>replicas/ (lease-bound, so a dead replica drops out).
  const registration = options.etcd
    ? joinFleet({
        etcd: options.etcd,
        replica: options.replica,
        xds: { host: xdsHost, port: xdsPort },
        admin: { host: options.adminHost ?? '127.0.0.1', port: adminPort },
        streams: () => xds.openStreams,
        cache,
        log,
      })
    : undefined;
  log.info({ xdsPort, adminPort, config: configName }, 'protoplane serving');

  const changes = debounce(() => void applyChanges(), options.debounce ?? DEFAULT_DEBOUNCE);
  // An etcd change is one whole, committed mesh: no burst of partial writes to wait out (etcd/serve.ts).
  // `debounce` (--debounce) is the quiet period of a changed file; it does not hold an etcd change.
  const meshChanges = etcd ? debounce(() => void applyChanges(), ETCD_DEBOUNCE) : changes;
  const watchConfig = (onChange: () => void): (() => void) => (etcd ? etcd.watch(onChange) : watchConfigFile(configName, log, onChange));
  const stopWatching = watchConfig(() => {
    meshChanges.trigger();
    if (!filtersDirty) readAhead.changed();
  });
  onTlsFileChange = () => {
    changes.trigger();
    if (!filtersDirty) readAhead.changed();
  };
  // A new filter folder or an edited filter source rebuilds and reloads.
  const filtersChanged = () => {
    filtersDirty = true;
    filterChanges += 1;
    changes.trigger();
  };
  const filterWatch = options.watchFilters === false || etcd ? undefined : fs.watch(filterFolders.sources, { recursive: true }, filtersChanged);
  // Node's recursive watch reports a folder that vanished while it was being
  // listed (a filter folder removed right after it was made) as an 'error'
  // event, which would end the process if nobody listened. Something changed:
  // rebuild.
  filterWatch?.on('error', (error) => {
    log.warn({ err: error }, 'watching filters/ hit a folder that changed under it; reloading the filters');
    filtersChanged();
  });

  return {
    xdsPort,
    adminPort,
    cache,
    metrics,
    filters: () => catalog,
    reload,
    async close() {
      await registration?.close();
      changes.cancel();
      meshChanges.cancel();
      stopWatching();
      await etcd?.close();
      tlsFileWatch.close();
      tls?.stop();
      filterWatch?.close();
      xds.forceClose();
      await admin.close();
    },
  };
}

/** What is served after a refusal: only claim a last good config when there is one. */
function stillServing(cache: SnapshotCache): string {
  return cache.snapshot ? 'still serving the last good config' : 'no config has been loaded yet, so nothing is served and /readyz says not ready';
}

/** 127.0.0.0/8, ::1, localhost: reachable from this machine only. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
