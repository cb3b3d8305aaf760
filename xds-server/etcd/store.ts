// The mesh in etcd: key layout, the stored record, and one way to connect.
//
//   <prefix>mesh              JSON MeshRecord: the YAML exactly as applied, the file it came
//                             from, and the filter modules it uses (name, protocol, sha256, manifest)
//   <prefix>modules/<sha256>  the .wasm bytes of one filter build, content-addressed
//
// `apply` writes the mesh and any module it names in one transaction; a
// replica reads the mesh and its modules at one revision, so it never sees a
// mesh without its modules. Only `protoplane prune` (etcd/prune.ts) deletes
// modules: those no mesh revision a rollback can still restore needs.
import { ConsecutiveBreaker, ExponentialBackoff, handleWhen, retry, circuitBreaker, type IBackoff } from 'cockatiel';
import { Etcd3, isRecoverableError } from 'etcd3';
import type { FilterManifest } from '../catalog/filters-dir.ts';
import { DEFAULT_ETCD_PREFIX, type Decoded } from './keys.ts';

// The names and flags, without the etcd client (the CLI parses them without loading it).
export { checkPrefix, DEFAULT_ETCD_PREFIX, meshKey, moduleKey, modulesPrefix, parseEtcdEndpoints, type Decoded } from './keys.ts';

/** A filter's manifest (filters/NAME/filter.json, as the catalog reads it) minus the folder it was built from. */
export type StoredManifest = Omit<FilterManifest, 'dir'>;

export interface StoredFilter {
  name: string;
  protocol: string;
  /** Hex sha256 of the module bytes, the key under <prefix>modules/. */
  sha256: string;
  manifest: StoredManifest;
}

export interface MeshRecord {
  /** The YAML text exactly as applied. */
  yaml: string;
  /** The file it was applied from (absolute): names errors, and is the base of relative paths in it (TLS files). */
  source: string;
  /** The modules of every filter the mesh uses, sorted by name. */
  filters: StoredFilter[];
  /** The mesh as apply parsed it, so replicas need not parse the YAML again (etcd/parsed.ts); absent when too large. */
  parsed?: ParsedMesh;
}

/** A parsed mesh and the parser that made it (a fingerprint: code, filter schemas, YAML limits). */
export interface ParsedMesh {
  parser: string;
  mesh: unknown;
}


const SHA256 = /^[0-9a-f]{64}$/;

export function encodeMeshRecord(record: MeshRecord): string {
  // Fixed field order, so the same apply writes the same bytes.
  return `${JSON.stringify({
    format: 1,
    source: record.source,
    filters: record.filters.map((f) => ({ name: f.name, protocol: f.protocol, sha256: f.sha256, manifest: f.manifest })),
    ...(record.parsed ? { parsed: { parser: record.parsed.parser, mesh: record.parsed.mesh } } : {}),
    yaml: record.yaml,
  })}\n`;
}

/** Pure: the value of <prefix>mesh, checked field by field. */
export function decodeMeshRecord(value: string): Decoded<MeshRecord> {
  let data: unknown;
  try {
    data = JSON.parse(value);
  } catch (error) {
    return { ok: false, reason: `not JSON (${(error as Error).message}); write it with protoplane apply` };
  }
  const rec = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  if (rec.format !== 1) return { ok: false, reason: `unknown format ${JSON.stringify(rec.format)} (this protoplane reads format 1)` };
  if (typeof rec.yaml !== 'string') return { ok: false, reason: '"yaml" must be a string' };
  if (typeof rec.source !== 'string' || rec.source === '') return { ok: false, reason: '"source" must be a non-empty string' };
  if (!Array.isArray(rec.filters)) return { ok: false, reason: '"filters" must be a list' };
  const filters: StoredFilter[] = [];
  for (const [i, f] of rec.filters.entries()) {
    const item = (typeof f === 'object' && f !== null ? f : {}) as Record<string, unknown>;
    const manifest = (typeof item.manifest === 'object' && item.manifest !== null ? item.manifest : undefined) as Record<string, unknown> | undefined;
    if (typeof item.name !== 'string' || typeof item.protocol !== 'string' || typeof item.sha256 !== 'string' || !SHA256.test(item.sha256) || !manifest) {
      return { ok: false, reason: `filters[${i}] must have name, protocol, sha256 (64 hex digits) and manifest` };
    }
    if (manifest.name !== item.name || manifest.protocol !== item.protocol || typeof manifest.entry !== 'string') {
      return { ok: false, reason: `filters[${i}].manifest must repeat name and protocol and have an entry` };
    }
    filters.push({ name: item.name, protocol: item.protocol, sha256: item.sha256, manifest: manifest as unknown as StoredManifest });
  }
  // A parsed form that is not one (hand-written, or another writer's) is left out: the YAML is parsed instead.
  const parsed = rec.parsed as Record<string, unknown> | undefined;
  const usable = typeof parsed === 'object' && parsed !== null && typeof parsed.parser === 'string' && typeof parsed.mesh === 'object' && parsed.mesh !== null;
  return { ok: true, value: { yaml: rec.yaml, source: rec.source, filters, ...(usable ? { parsed: { parser: parsed.parser as string, mesh: parsed.mesh } } : {}) } };
}

export interface EtcdConnectOptions {
  /** Deadline of each unary call (default 3 s): a cluster without quorum must fail a call, not hang it. */
  callTimeoutMs?: number;
}

/**
 * An etcd client for protoplane: calls have a deadline, a member that fails
 * is skipped for 1 s (etcd3's default is 5 s, which would hold a restarted
 * cluster out for that long), and a broken watch stream reconnects after
 * 100 ms growing to at most 2 s (default: up to 30 s).
 */
export function connectEtcd(endpoints: readonly string[], options: EtcdConnectOptions = {}): Etcd3 {
  const callTimeout = options.callTimeoutMs ?? 3000;
  return new Etcd3({
    hosts: [...endpoints],
    dialTimeout: Math.min(callTimeout, 2000),
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeout }),
    faultHandling: {
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
      global: retry(handleWhen(isRecoverableError), { maxAttempts: 3 }),
      // etcd3 types this as a backoff but passes its own default the same way: a factory it calls next() on.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }) as unknown as IBackoff<unknown>,
    },
  });
}

/** Where a command (apply, get, rollback, prune) finds the store. */
export interface EtcdTarget {
  endpoints: readonly string[];
  /** Key prefix (default /protoplane/). */
  prefix?: string;
}

/** Runs `fn` with a client of its own, closed when `fn` settles. */
export async function withEtcd<T>(target: EtcdTarget, fn: (client: Etcd3, prefix: string) => Promise<T>): Promise<T> {
  const client = connectEtcd(target.endpoints);
  try {
    return await fn(client, target.prefix ?? DEFAULT_ETCD_PREFIX);
  } finally {
    client.close();
  }
}
