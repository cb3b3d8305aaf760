// `protoplane apply | get | rollback` against etcd. apply checks a mesh as
// `validate` does (YAML, schema, references, and each filter started in the
// in-process host with its exact settings) and writes it with the module of
// every filter it uses in ONE transaction that only succeeds if the mesh key
// is still at the revision read (or the one the caller expects): a refused
// config or a lost race leaves etcd untouched.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { FilterCatalog, type FilterFolders } from '../catalog/index.ts';
import { createMeshParser, formatConfigError, readMeshFile, type ConfigError, type MeshParser } from '../config/index.ts';
import { isBuiltinProtocol } from '../model/types.ts';
import type { Etcd3 } from 'etcd3';
import { parsedForRecord } from './parsed.ts';
import { MODULE_COPIES_DIR } from './serve.ts';
import { DEFAULT_ETCD_PREFIX, decodeMeshRecord, encodeMeshRecord, meshKey, moduleKey, withEtcd, type EtcdTarget, type MeshRecord, type ParsedMesh, type StoredFilter, type StoredManifest } from './store.ts';

export type { EtcdTarget } from './store.ts';

export type ApplyResult =
  /** Written at `revision` (or, `unchanged`, already there at it). */
  | { ok: true; revision: number; previous: number | null; unchanged: boolean; filters: StoredFilter[]; modulesWritten: number }
  /** The config was refused: file:line:col errors; etcd untouched. */
  | { ok: false; kind: 'invalid'; errors: ConfigError[] }
  /** The mesh key is not at the expected revision (someone else wrote): etcd untouched. */
  | { ok: false; kind: 'conflict'; expected: number; actual: number | null }
  /** Something else went wrong (etcd unreachable, a compacted revision, a missing module): etcd untouched. */
  | { ok: false; kind: 'error'; message: string };

export interface ApplyOptions {
  /** Write only if the mesh key's mod revision is this one (0: only if there is no mesh yet). Default: the revision read just before. */
  expectRevision?: number;
}

export interface ApplyFileOptions extends ApplyOptions {
  /** The filters folder to build, check with and store from (default: the repo's filters/), as validate does. */
  filters?: FilterFolders;
  /** Or filters already loaded (tests load them once). */
  catalog?: FilterCatalog;
}

/** Mesh text with the filters to check it with: from filters/ (apply) or from etcd (rollback). */
interface Candidate {
  yaml: string;
  source: string;
  catalog: FilterCatalog;
}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** Longest the checks wait for the read of the mesh's revision to come back before they start. */
const READ_HEAD_START_MS = 50;

/**
 * One parser per set of filter schemas, kept for the process: a parser
 * compiles its JSON Schema check on first use (~150 ms for the built-in
 * schema), which a process that applies more than once (a controller, the
 * fan-out bench, tests) need not pay each time. The last few are kept.
 */
const parsers = new Map<string, MeshParser>();

function parserFor(catalog: FilterCatalog): MeshParser {
  const protocols = catalog.protocolSchemas();
  const key = JSON.stringify(protocols);
  let parser = parsers.get(key);
  if (!parser) {
    parser = createMeshParser({ protocols });
    if (parsers.size >= 4) parsers.delete(parsers.keys().next().value!);
    parsers.set(key, parser);
  }
  return parser;
}

/** Parses and pre-flights a mesh with a catalog; on success, the stored form of every filter it uses. */
async function check(candidate: Candidate): Promise<{ ok: true; filters: StoredFilter[]; parsed?: ParsedMesh } | { ok: false; errors: ConfigError[] }> {
  const { catalog } = candidate;
  const result = parserFor(catalog)(candidate.yaml, candidate.source);
  if (!result.ok) return result;
  const problems = await catalog.check(result.mesh);
  if (problems.length > 0) return { ok: false, errors: problems.map((p) => result.error(['listeners', p.listener, 'protocol'], p.message)) };
  // Every filter a listener uses, generated listeners included (same set the replica will need).
  const protocols = new Set(result.mesh.listeners.flatMap((l) => [l, ...(l.generated ?? [])]).map((l) => l.protocol).filter((p) => !isBuiltinProtocol(p)));
  const filters: StoredFilter[] = [];
  for (const protocol of protocols) {
    const entry = catalog.byProtocol(protocol);
    if (!entry) return { ok: false, errors: [result.error(['listeners'], `no filter serves protocol "${protocol}"`)] };
    const { dir: _dir, ...manifest } = entry.manifest;
    // As stored (JSON drops absent fields), so that a record read back compares equal.
    filters.push({ name: entry.manifest.name, protocol, sha256: entry.sha256, manifest: JSON.parse(JSON.stringify(manifest)) as StoredManifest });
  }
  filters.sort((a, b) => a.name.localeCompare(b.name));
  return { ok: true, filters, parsed: parsedForRecord(result.mesh, filters) };
}

/** Writes a checked mesh with compare-and-swap on the mesh key's mod revision. */
async function write(client: Etcd3, prefix: string, candidate: Candidate, options: ApplyOptions): Promise<ApplyResult> {
  const key = meshKey(prefix);
  // The revision to compare against is read first (a write that lands during the checks then makes
  // this one a conflict, as it should). Connecting and reading need the event loop, which the checks'
  // parsing holds: started beside them, the read began only once they ended (+10–35 ms on the
  // fan-out bench's 1,000 clusters). So it gets a head start, bounded so that an etcd that is slow
  // or away does not hold back what the checks have to say.
  const reading = client.get(key).exec();
  reading.catch(() => {}); // awaited below, unless the checks refuse first
  await Promise.race([reading.catch(() => {}), new Promise((resolve) => setTimeout(resolve, READ_HEAD_START_MS).unref())]);
  const checked = await check(candidate);
  if (!checked.ok) return { ok: false, kind: 'invalid', errors: checked.errors };
  const record: MeshRecord = { yaml: candidate.yaml, source: candidate.source, filters: checked.filters, parsed: checked.parsed };
  const value = encodeMeshRecord(record);
  const current = (await reading).kvs[0];
  const actual = current ? Number(current.mod_revision) : 0;
  const expected = options.expectRevision ?? actual;
  // (An expected revision that is already stale is left to the transaction's compare: one place decides.)
  if (expected === actual && current && current.value.toString('utf8') === value) {
    return { ok: true, revision: actual, previous: actual, unchanged: true, filters: checked.filters, modulesWritten: 0 };
  }
  const bytesOf = new Map([...candidate.catalog.entries.values()].map((e) => [e.sha256, e.bytes]));
  // Modules already stored are compared (still there), the others written: never a mesh without its modules.
  const exists = await Promise.all(checked.filters.map((f) => client.get(moduleKey(prefix, f.sha256)).exists()));
  const stored = new Set(checked.filters.filter((_, i) => exists[i]).map((f) => f.sha256));
  let txn = client.if(key, 'Mod', '==', expected);
  for (const sha of stored) txn = txn.and(moduleKey(prefix, sha), 'Version', '>', 0);
  const puts = [client.put(key).value(value)];
  for (const f of checked.filters) {
    if (stored.has(f.sha256)) continue;
    const bytes = bytesOf.get(f.sha256);
    if (!bytes) return { ok: false, kind: 'error', message: `no bytes for module ${f.sha256} (filter ${f.name})` };
    puts.push(client.put(moduleKey(prefix, f.sha256)).value(Buffer.from(bytes)));
  }
  const res = await txn.then(...puts).else(client.get(key)).commit();
  if (res.succeeded) {
    return { ok: true, revision: Number(res.header.revision), previous: current ? actual : null, unchanged: false, filters: checked.filters, modulesWritten: puts.length - 1 };
  }
  const now = res.responses[0]?.response_range?.kvs[0];
  const nowRevision = now ? Number(now.mod_revision) : null;
  if ((nowRevision ?? 0) === expected) {
    return { ok: false, kind: 'error', message: 'a stored filter module was deleted while applying; nothing was written, run apply again' };
  }
  return { ok: false, kind: 'conflict', expected, actual: nowRevision };
}

/** Validates a mesh file with the filters (built if needed) and writes it with the modules it uses. */
export async function applyMeshFile(file: string, target: EtcdTarget, options: ApplyFileOptions = {}): Promise<ApplyResult> {
  const read = await readMeshFile(file);
  if (!read.ok) return { ok: false, kind: 'invalid', errors: read.errors };
  const catalog = options.catalog ?? (await FilterCatalog.load(options.filters));
  // Stored absolute: errors on replicas name it, and relative paths in it (TLS files) resolve as here.
  const source = path.resolve(file);
  try {
    return await withEtcd(target, (client, prefix) => write(client, prefix, { yaml: read.text, source, catalog }, options));
  } catch (error) {
    return { ok: false, kind: 'error', message: `etcd (${target.endpoints.join(',')}): ${messageOf(error)}` };
  }
}

export type GetResult = { ok: true; revision: number; record: MeshRecord } | { ok: false; message: string };

/** The mesh as it is now, or as of store revision `revision`. */
export async function getMesh(target: EtcdTarget, revision?: number): Promise<GetResult> {
  try {
    return await withEtcd(target, (client, prefix) => readRecord(client, prefix, revision));
  } catch (error) {
    return { ok: false, message: `etcd (${target.endpoints.join(',')}): ${messageOf(error)}` };
  }
}

async function readRecord(client: Etcd3, prefix: string, revision?: number): Promise<GetResult> {
  const key = meshKey(prefix);
  let kv;
  try {
    const get = client.get(key);
    if (revision !== undefined) get.revision(revision);
    kv = (await get.exec()).kvs[0];
  } catch (error) {
    const message = messageOf(error);
    if (/compacted/.test(message)) return { ok: false, message: `revision ${revision} has been compacted away in etcd; only later revisions can be read` };
    if (/future revision/.test(message)) return { ok: false, message: `revision ${revision} is newer than etcd's current revision` };
    throw error;
  }
  if (!kv) return { ok: false, message: revision === undefined ? `no mesh at ${key} yet (write one with protoplane apply)` : `no mesh at ${key} as of revision ${revision}` };
  const decoded = decodeMeshRecord(kv.value.toString('utf8'));
  if (!decoded.ok) return { ok: false, message: `${key} at revision ${kv.mod_revision} is not a mesh record: ${decoded.reason}` };
  return { ok: true, revision: Number(kv.mod_revision), record: decoded.value };
}

/**
 * Restores the mesh as it was at store revision `to`, with the modules it
 * used then, through the same checks and compare-and-swap as apply. A module
 * no longer in etcd (`protoplane prune` deleted it) refuses the rollback.
 */
export async function rollbackMesh(target: EtcdTarget, to: number, options: ApplyOptions = {}): Promise<ApplyResult & { from?: number }> {
  try {
    return await withEtcd(target, async (client, prefix) => {
      const old = await readRecord(client, prefix, to);
      if (!old.ok) return { ok: false, kind: 'error', message: old.message };
      const modules = [];
      for (const f of old.record.filters) {
        const bytes = await client.get(moduleKey(prefix, f.sha256)).buffer();
        if (!bytes) return { ok: false, kind: 'error', message: `the mesh of revision ${old.revision} needs module ${moduleKey(prefix, f.sha256)} (filter ${f.name}), which etcd no longer holds (protoplane prune deletes the modules of mesh revisions older than the ones it keeps)` };
        const sha = createHash('sha256').update(bytes).digest('hex');
        if (sha !== f.sha256) return { ok: false, kind: 'error', message: `${moduleKey(prefix, f.sha256)} holds bytes with sha256 ${sha}` };
        modules.push({ manifest: { ...f.manifest, dir: moduleKey(prefix, f.sha256) }, bytes: new Uint8Array(bytes) });
      }
      const catalog = await FilterCatalog.fromModules(modules, MODULE_COPIES_DIR);
      const result = await write(client, prefix, { yaml: old.record.yaml, source: old.record.source, catalog }, options);
      return { ...result, from: old.revision };
    });
  } catch (error) {
    return { ok: false, kind: 'error', message: `etcd (${target.endpoints.join(',')}): ${messageOf(error)}` };
  }
}

/** The lines a failed apply prints (stderr). */
export function describeFailure(result: Exclude<ApplyResult, { ok: true }>, prefix = DEFAULT_ETCD_PREFIX): string[] {
  switch (result.kind) {
    case 'invalid':
      return [...result.errors.map(formatConfigError), 'refused: nothing was written to etcd'];
    case 'conflict':
      return [
        `conflict: expected ${meshKey(prefix)} at revision ${result.expected}, but it is at ${result.actual === null ? 'no revision (there is no mesh)' : `revision ${result.actual}`}: someone else applied in between; nothing was written (get the live mesh with protoplane get, then apply again, or pass --expect-revision ${result.actual ?? 0})`,
      ];
    case 'error':
      return [`${result.message}; nothing was written`];
  }
}
