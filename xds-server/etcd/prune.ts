// `protoplane prune`: deletes the filter modules under <prefix>modules/ that
// no mesh still reachable needs. Reachable = the live mesh and the earlier
// revisions of the mesh key that `rollback --to` could still restore: etcd
// history not yet compacted, and at most `keepRevisions` mesh revisions
// (the live one included). Modules of older revisions are deleted; a
// rollback to one of those then fails naming the missing module.
//
// Two steps, so that a dry run is the first alone: planPrune reads, at one
// etcd revision, the mesh history and the module keys; commitPrune deletes
// the plan's modules in a transaction that succeeds only if the mesh key is
// still at the mod revision the plan read. Every writer of modules (apply,
// rollback) writes the mesh key in the same transaction, so an apply landing
// in between that re-references a module moves the mesh key and the delete
// is refused; an apply that read a module as present before the delete
// compares it in its own transaction and fails instead (apply.ts).
import { decodeMeshRecord, meshKey, moduleKey, modulesPrefix, withEtcd, type EtcdTarget } from './store.ts';

/** Mesh revisions whose modules are kept when --keep-revisions is not given (the live one included). */
export const DEFAULT_KEEP_REVISIONS = 10;

export interface PruneModule {
  sha256: string;
  bytes: number;
  /** Names of the filters this module was stored for, in the kept revisions (empty when no kept revision uses it). */
  filters: string[];
  /** The kept mesh revisions that use it, newest first (empty: it is deleted). */
  usedBy: number[];
}

export interface PrunePlan {
  prefix: string;
  /** The mesh key's mod revision when read: the delete happens only if it is still this. */
  meshRevision: number;
  /** The kept mesh revisions (mod revisions of the mesh key), newest first; the first is the live one. */
  keptRevisions: number[];
  /** Why the walk back through the mesh's history stopped. */
  historyEnd: 'keep-revisions' | 'compacted' | 'first-revision';
  keep: PruneModule[];
  remove: PruneModule[];
}

export type PruneResult =
  | { ok: true; deleted: PruneModule[] }
  /** The mesh key moved after the plan was read (someone applied or rolled back): the modules of `deleted` went before it moved (none with fewer than 64 to delete). */
  | { ok: false; kind: 'conflict'; expected: number; actual: number | null; deleted: PruneModule[] }
  | { ok: false; kind: 'error'; message: string };

const SHA256 = /^[0-9a-f]{64}$/;
// etcd refuses a transaction with more than --max-txn-ops (128 by default) compares or operations.
const DELETES_PER_TXN = 64;

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** Reads the mesh history and the stored modules; deletes nothing. */
export async function planPrune(target: EtcdTarget, keepRevisions = DEFAULT_KEEP_REVISIONS): Promise<{ ok: true; plan: PrunePlan } | { ok: false; message: string }> {
  if (!Number.isSafeInteger(keepRevisions) || keepRevisions < 1) return { ok: false, message: `keep-revisions must be 1 or more (the live mesh is always kept), got ${keepRevisions}` };
  try {
    return await withEtcd(target, async (client, prefix) => {
      const key = meshKey(prefix);
      const live = await client.get(key).exec();
      const kv = live.kvs[0];
      if (!kv) return { ok: false, message: `no mesh at ${key}: nothing to prune against, nothing was deleted` };
      const at = Number(live.header.revision);
      const meshRevision = Number(kv.mod_revision);
      // Replicas refuse a live value that is not a mesh record and keep serving an older revision: do not guess which.
      if (!decodeMeshRecord(kv.value.toString('utf8')).ok) return { ok: false, message: `${key} at revision ${meshRevision} is not a mesh record (replicas refuse it); fix it with apply or rollback first; nothing was deleted` };

      // sha256 -> kept revisions that use it, and the filter names it was stored for.
      const used = new Map<string, { revisions: number[]; filters: Set<string> }>();
      const keptRevisions: number[] = [];
      let historyEnd: PrunePlan['historyEnd'] = 'keep-revisions';
      let value = kv.value;
      let revision = meshRevision;
      for (;;) {
        keptRevisions.push(revision);
        const record = decodeMeshRecord(value.toString('utf8'));
        // A revision that is not a mesh record needs nothing (rollback refuses it anyway).
        for (const f of record.ok ? record.value.filters : []) {
          const entry = used.get(f.sha256) ?? { revisions: [], filters: new Set<string>() };
          if (entry.revisions.at(-1) !== revision) entry.revisions.push(revision);
          entry.filters.add(f.name);
          used.set(f.sha256, entry);
        }
        if (keptRevisions.length >= keepRevisions) break;
        let older;
        try {
          older = (await client.get(key).revision(revision - 1).exec()).kvs[0];
        } catch (error) {
          if (!/compacted/.test(messageOf(error))) throw error;
          historyEnd = 'compacted';
          break;
        }
        // No mesh before this revision (or it was deleted by hand: history before the delete is not walked).
        if (!older) {
          historyEnd = 'first-revision';
          break;
        }
        value = older.value;
        revision = Number(older.mod_revision);
      }

      // Keys that are not a sha256 are not protoplane's modules: left alone.
      const shas = (await client.getAll().prefix(modulesPrefix(prefix)).revision(at).keys())
        .map((k) => k.slice(modulesPrefix(prefix).length))
        .filter((sha) => SHA256.test(sha))
        .sort();
      const keep: PruneModule[] = [];
      const remove: PruneModule[] = [];
      for (const sha256 of shas) {
        // One module at a time: all of them in one range could pass gRPC's 4 MiB message limit.
        const bytes = (await client.get(moduleKey(prefix, sha256)).revision(at).buffer())?.length ?? 0;
        const use = used.get(sha256);
        if (use) keep.push({ sha256, bytes, filters: [...use.filters].sort(), usedBy: use.revisions });
        else remove.push({ sha256, bytes, filters: [], usedBy: [] });
      }
      return { ok: true, plan: { prefix, meshRevision, keptRevisions, historyEnd, keep, remove } };
    });
  } catch (error) {
    return { ok: false, message: `etcd (${target.endpoints.join(',')}): ${messageOf(error)}; nothing was deleted` };
  }
}

/** Deletes the plan's modules, each transaction only if the mesh key is still at the plan's mod revision. */
export async function commitPrune(target: EtcdTarget, plan: PrunePlan): Promise<PruneResult> {
  const deleted: PruneModule[] = [];
  try {
    return await withEtcd(target, async (client) => {
      const key = meshKey(plan.prefix);
      for (let i = 0; i < plan.remove.length; i += DELETES_PER_TXN) {
        const batch = plan.remove.slice(i, i + DELETES_PER_TXN);
        const res = await client
          .if(key, 'Mod', '==', plan.meshRevision)
          .then(...batch.map((m) => client.delete().key(moduleKey(plan.prefix, m.sha256))))
          .else(client.get(key))
          .commit();
        if (!res.succeeded) {
          const now = res.responses[0]?.response_range?.kvs[0];
          return { ok: false, kind: 'conflict', expected: plan.meshRevision, actual: now ? Number(now.mod_revision) : null, deleted };
        }
        deleted.push(...batch);
      }
      return { ok: true, deleted };
    });
  } catch (error) {
    return { ok: false, kind: 'error', message: `etcd (${target.endpoints.join(',')}): ${messageOf(error)}${deleted.length > 0 ? ` (after deleting ${deleted.length} module(s))` : '; nothing was deleted'}` };
  }
}

const HISTORY_END: Record<PrunePlan['historyEnd'], string> = {
  'keep-revisions': 'older ones are beyond --keep-revisions',
  compacted: 'older ones are compacted away in etcd',
  'first-revision': 'there is none older',
};

/** What prune prints: stdout lines, and stderr lines when it failed. Without a result: a dry run. */
export function describePrune(plan: PrunePlan, result?: PruneResult): { out: string[]; err: string[] } {
  const total = (ms: PruneModule[]) => ms.reduce((n, m) => n + m.bytes, 0);
  const out = [`mesh revisions kept: ${plan.keptRevisions.join(', ')} (${plan.keptRevisions.length}; ${HISTORY_END[plan.historyEnd]})`];
  for (const m of plan.keep) out.push(`kept     ${m.sha256}  ${m.bytes} bytes  ${m.filters.join(',')}, used by mesh revision ${m.usedBy.join(', ')}`);
  const deleted = result ? (result.ok || result.kind === 'conflict' ? result.deleted : []) : [];
  const verb = result ? 'deleted ' : 'would delete';
  for (const m of result ? deleted : plan.remove) out.push(`${verb} ${m.sha256}  ${m.bytes} bytes`);
  const kept = `kept ${plan.keep.length} (${total(plan.keep)} bytes)`;
  if (!result) return { out: [...out, `dry run: would delete ${plan.remove.length} module(s) (${total(plan.remove)} bytes), ${kept}; nothing was deleted`], err: [] };
  if (result.ok) return { out: [...out, `pruned: deleted ${deleted.length} module(s) (${total(deleted)} bytes), ${kept}`], err: [] };
  if (result.kind === 'error') return { out, err: [result.message] };
  const rest = deleted.length === 0 ? 'nothing was deleted' : `only the ${deleted.length} module(s) above were deleted`;
  return {
    out,
    err: [
      `conflict: ${meshKey(plan.prefix)} moved from revision ${plan.meshRevision} to ${result.actual === null ? 'no revision (the mesh was deleted)' : `revision ${result.actual}`} while pruning (someone applied or rolled back in between); ${rest}; run prune again`,
    ],
  };
}
