// A replica's view of the mesh in etcd: the record under <prefix>mesh and the
// modules it names, read at one revision, kept fresh by a watch.
//
// A watch event carries the committed mesh, which is served as it is (no
// read before the reload starts); anything else (a delete, a (re)connect, the
// probe) reads with a linearizable get, so a replica always ends on the
// newest mesh, whatever it missed. etcd3's watcher resumes from the revision
// after the last one it saw when its stream breaks (a member lost); on each
// (re)connect and on a slow probe the mesh is read again, which also catches
// a watch that went silent (a member cut off from its quorum keeps a watch
// open and quiet). While no read succeeds the replica is "disconnected": it
// keeps the last good mesh, logs one line on loss and one on recovery, and
// /readyz says so.
import { createHash } from 'node:crypto';
import { isBrokenCircuitError } from 'cockatiel';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Logger } from '../log.ts';
import { connectEtcd, DEFAULT_ETCD_PREFIX, decodeMeshRecord, meshKey, moduleKey, type MeshRecord } from './store.ts';

export interface EtcdSourceOptions {
  endpoints: readonly string[];
  /** Key prefix (default /protoplane/). */
  prefix?: string;
  log: Logger;
  /** How often the mesh is read even without a watch event (default 2 s). */
  probeMs?: number;
}

/** The mesh as last read from etcd, with every module it names (sha256-checked). */
export interface EtcdMesh {
  /** mod_revision of <prefix>mesh: the revision `protoplane get` prints and `apply --expect-revision` takes. */
  revision: number;
  record: MeshRecord;
  /** Module bytes by sha256, one for each of record.filters. */
  modules: ReadonlyMap<string, Uint8Array>;
}

/** What a read found: a mesh, or why there is none to serve (no key yet, a bad value, a module missing). */
export type EtcdRead = { ok: true; mesh: EtcdMesh } | { ok: false; revision: number | null; reason: string };

export interface EtcdSourceStatus {
  kind: 'etcd';
  endpoints: readonly string[];
  prefix: string;
  /** False while etcd cannot be read: the last good mesh is served. */
  connected: boolean;
  /** When the current outage began (ISO), while disconnected. */
  disconnected_since: string | null;
  /** Why the last read failed, while disconnected. */
  error: string | null;
  /** mod_revision of the mesh last read (whether or not it was served). */
  revision: number | null;
  /** The etcd store revision of the last successful read. */
  store_revision: number | null;
}

export interface EtcdMeshSource {
  /** The last read; undefined until the first read finished. */
  current(): EtcdRead | undefined;
  status(): EtcdSourceStatus;
  /** Called after each read that found a newer mesh (or a new reason there is none). */
  onChange(listener: () => void): void;
  /** Reads the mesh now (also what the watch and the probe call); resolves when done, never rejects. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/**
 * Starts watching; resolves after the first read (succeeded or not), so a
 * server can load what is there before it listens.
 */
export async function watchEtcdMesh(options: EtcdSourceOptions): Promise<EtcdMeshSource> {
  const { log } = options;
  const prefix = options.prefix ?? DEFAULT_ETCD_PREFIX;
  const key = meshKey(prefix);
  const client: Etcd3 = connectEtcd(options.endpoints);
  const listeners: Array<() => void> = [];
  // Module bytes are immutable (content-addressed): kept across reads, trimmed to what the last mesh names.
  const moduleCache = new Map<string, Uint8Array>();
  let latest: EtcdRead | undefined;
  let storeRevision: number | null = null;
  let connected = true; // optimistic until a read fails: the first failure logs the outage
  let everConnected = false;
  let lostAt: number | undefined;
  let lastError: string | null = null;
  let closed = false;

  /** The module's bytes, or why they cannot be served (missing, or not what their key names). */
  const readModule = async (sha256: string, atRevision: number): Promise<Uint8Array | string> => {
    const cached = moduleCache.get(sha256);
    if (cached) return cached;
    const get = (revision?: number) => {
      const builder = client.get(moduleKey(prefix, sha256));
      if (revision !== undefined) builder.revision(revision);
      return builder.exec();
    };
    // Compacted in the instant since the mesh was read: modules never change, the newest state is as good.
    const res = await get(atRevision).catch((error: unknown) => (/compacted/.test(errorText(error)) ? get() : Promise.reject(error)));
    const value = res.kvs[0]?.value;
    if (!value) return 'which etcd does not hold';
    const bytes = new Uint8Array(value);
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== sha256) return `whose bytes have sha256 ${actual}`;
    moduleCache.set(sha256, bytes);
    return bytes;
  };

  /**
   * One read of the mesh and its modules at one store revision; with `put`
   * (a watch event's key-value, committed at its mod revision), that mesh
   * without reading it again. Throws only when etcd cannot be reached.
   */
  const read = async (put?: IKeyValue): Promise<EtcdRead> => {
    let kv: IKeyValue | undefined = put;
    let store: number;
    if (put) {
      const revision = Number(put.mod_revision);
      // Watch events come in order, but a read may already have found this one or a later one.
      if (latest?.ok && revision <= latest.mesh.revision) return latest;
      // Its modules were written in the same transaction: read them as of that revision.
      store = revision;
      storeRevision = Math.max(storeRevision ?? 0, revision);
    } else {
      // Keys only first: a probe that finds nothing new does not move the whole mesh over the wire.
      const head = await client.kv.range({ key: Buffer.from(key), keys_only: true });
      const headKv = head.kvs[0];
      if (latest?.ok && headKv && Number(headKv.mod_revision) === latest.mesh.revision) {
        storeRevision = Number(head.header.revision);
        return latest; // nothing new; modules already held
      }
      const res = await client.get(key).exec();
      store = Number(res.header.revision);
      storeRevision = store;
      kv = res.kvs[0];
    }
    if (!kv) return { ok: false, revision: null, reason: `etcd has no mesh at ${key} yet (write one with protoplane apply)` };
    const revision = Number(kv.mod_revision);
    if (latest?.ok && latest.mesh.revision === revision) return latest;
    const decoded = decodeMeshRecord(kv.value.toString('utf8'));
    if (!decoded.ok) return { ok: false, revision, reason: `${key} at revision ${revision} is not a mesh record: ${decoded.reason}` };
    const modules = new Map<string, Uint8Array>();
    for (const filter of decoded.value.filters) {
      // At the store revision of the mesh read: the modules apply wrote with it, never a later state.
      const bytes = await readModule(filter.sha256, store);
      if (typeof bytes === 'string') {
        return { ok: false, revision, reason: `mesh revision ${revision} names module ${moduleKey(prefix, filter.sha256)} (filter ${filter.name}), ${bytes}; refusing to serve it` };
      }
      modules.set(filter.sha256, bytes);
    }
    for (const sha of moduleCache.keys()) if (!modules.has(sha)) moduleCache.delete(sha);
    return { ok: true, mesh: { revision, record: decoded.value, modules } };
  };

  const sameRead = (a: EtcdRead | undefined, b: EtcdRead): boolean =>
    a !== undefined && (a.ok && b.ok ? a.mesh.revision === b.mesh.revision : !a.ok && !b.ok && a.revision === b.revision && a.reason === b.reason);

  // One read at a time; a request while one runs makes one more run after it: a full read, unless
  // only watch events came meanwhile (then the newest event's mesh).
  let running: Promise<void> | undefined;
  let again = false;
  let pendingPut: IKeyValue | undefined;
  const readOnce = async (put?: IKeyValue): Promise<void> => {
    try {
      const result = await read(put);
      if (!connected) {
        const seconds = ((Date.now() - (lostAt ?? Date.now())) / 1000).toFixed(1);
        log.info({ etcd: options.endpoints, revision: result.ok ? result.mesh.revision : result.revision, storeRevision }, `etcd reachable again after ${seconds}s; catching up`);
      }
      connected = true;
      everConnected = true;
      lostAt = undefined;
      lastError = null;
      if (!sameRead(latest, result)) {
        latest = result;
        if (result.ok) log.info({ revision: result.mesh.revision, storeRevision }, 'mesh read from etcd');
        else log.error({ etcd: options.endpoints, revision: result.revision }, result.reason);
        for (const listener of listeners) listener();
      }
    } catch (error) {
      // An open circuit breaker only says an earlier call failed: keep that call's reason.
      if (!(isBrokenCircuitError(error) && lastError)) lastError = errorText(error);
      if (connected) {
        connected = false;
        lostAt = Date.now();
        const served = latest?.ok ? `still serving mesh revision ${latest.mesh.revision}` : 'no mesh read yet, so nothing is served';
        log.error({ etcd: options.endpoints, err: lastError }, `etcd unreachable; ${served} and retrying`);
      }
      if (latest === undefined) {
        latest = { ok: false, revision: null, reason: `cannot read ${key} from etcd (${options.endpoints.join(',')}): ${lastError}` };
        for (const listener of listeners) listener();
      }
    }
  };
  const refresh = (put?: IKeyValue): Promise<void> => {
    if (closed) return Promise.resolve();
    if (running) {
      // A full read asked for wins over events (it finds the newest anyway).
      if (!again || pendingPut) pendingPut = put;
      again = true;
      return running;
    }
    running = (async () => {
      let next = put;
      do {
        again = false;
        pendingPut = undefined;
        await readOnce(next);
        next = pendingPut;
      } while (again && !closed);
      running = undefined;
    })();
    return running;
  };

  await refresh();

  // The watch starts after the first read, at the revision that read saw.
  let watcher: Watcher | undefined;
  const startWatch = (): void => {
    if (closed) return;
    const builder = client.watch().key(key);
    if (storeRevision !== null) builder.startRevision(String(storeRevision + 1));
    // watcher(), not create(): the handlers are on before it attaches, so close() can always detach it.
    const w = builder.watcher();
    watcher = w;
    w.on('put', (kv) => void refresh(kv));
    w.on('delete', () => void refresh());
    // (Re)connected (etcd3 resumes the watch after the last revision it saw): read in case anything was missed.
    w.on('connected', () => void refresh());
    // A broken stream: read now, so that an outage is seen (and logged) at once rather than at the next probe.
    // After close(), a watcher still attached (its cancel did not finish) would make etcd3 reconnect forever
    // on the closed client: etcd3 is idle when it says 'disconnected', so cancelling now detaches it for good.
    w.on('disconnected', () => void (closed ? w.cancel().catch(() => {}) : refresh()));
    w.on('error', (error: Error) => {
      // e.g. the start revision was compacted: read the newest mesh and watch again from there.
      log.warn({ err: errorText(error) }, 'etcd watch ended; reading the mesh and watching again');
      if (watcher === w) watcher = undefined;
      void w.cancel().catch(() => {});
      void refresh().then(() => setTimeout(startWatch, 200).unref());
    });
  };
  startWatch();
  const probe = setInterval(() => void refresh(), options.probeMs ?? 2000);
  probe.unref();

  return {
    current: () => latest,
    status: () => ({
      kind: 'etcd',
      endpoints: options.endpoints,
      prefix,
      connected: connected && everConnected,
      disconnected_since: connected && everConnected ? null : new Date(lostAt ?? Date.now()).toISOString(),
      error: connected ? null : lastError,
      revision: latest?.ok ? latest.mesh.revision : (latest?.revision ?? null),
      store_revision: storeRevision,
    }),
    onChange: (listener) => void listeners.push(listener),
    refresh,
    async close() {
      closed = true;
      clearInterval(probe);
      // A cancel waits for etcd's answer; a member that is going away may never give it (see 'disconnected' above).
      await Promise.race([watcher?.cancel().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
      await running;
      client.close();
    },
  };
}
