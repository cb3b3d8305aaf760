// Gathers the fleet view: the replicas registered in etcd, then each one's
// /debug/sync over HTTP, in parallel, each bounded by a timeout (a replica
// that does not answer is listed as unreachable, never waited on for long).
import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { REPLICAS_DIR } from './registry.ts';
import { fleetView, parseReplicaRecord, type FleetView, type ReplicaRecord, type SyncReply } from './view.ts';

export interface CollectOptions {
  /** etcd client URLs, or a client to reuse. */
  etcd: readonly string[] | Etcd3;
  prefix: string;
  /** File holding the bearer token the replicas' /debug/* require (the fleet shares one). */
  adminTokenFile?: string;
  /** Per replica (default 3 s). */
  timeoutMs?: number;
}

export async function listReplicas(client: Etcd3, prefix: string): Promise<ReplicaRecord[]> {
  const values = await client.getAll().prefix(`${prefix}${REPLICAS_DIR}`).strings();
  return Object.values(values).flatMap((text) => parseReplicaRecord(text) ?? []);
}

function token(file: string | undefined): string | undefined {
  if (!file) return undefined;
  const text = readFileSync(file, 'utf8').trim();
  return text === '' ? undefined : text;
}

export async function fetchSync(admin: string, bearer: string | undefined, timeoutMs: number): Promise<SyncReply> {
  const response = await fetch(`http://${admin}/debug/sync?compact`, {
    headers: bearer ? { authorization: `Bearer ${bearer}` } : {},
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!response.ok) throw new Error(`${admin}/debug/sync: HTTP ${response.status}`);
  const body = (await response.json()) as Partial<SyncReply>;
  if (!Array.isArray(body.nodes)) throw new Error(`${admin}/debug/sync: not a sync view`);
  return { version: body.version ?? null, nodes: body.nodes };
}

/** Why a replica did not answer, in a few words (fetch hides the socket error in `cause`). */
function reason(error: unknown, admin: string, timeoutMs: number): string {
  if (!(error instanceof Error)) return String(error);
  if (error.name === 'TimeoutError') return `${admin}: no answer within ${timeoutMs} ms`;
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ? `${admin}: ${cause.code}` : error.message;
}

/** Reads the registrations and asks every replica; throws only when etcd cannot be read. */
export async function collectFleet(options: CollectOptions): Promise<FleetView> {
  const own = !(options.etcd instanceof Etcd3);
  const client = options.etcd instanceof Etcd3 ? options.etcd : new Etcd3({ hosts: [...options.etcd], dialTimeout: 2000 });
  try {
    const records = await listReplicas(client, options.prefix).catch((error: unknown) => {
      const where = options.etcd instanceof Etcd3 ? 'etcd' : `etcd ${options.etcd.join(',')}`;
      throw new Error(`cannot read ${options.prefix}${REPLICAS_DIR} from ${where}: ${error instanceof Error ? error.message : String(error)}`);
    });
    const bearer = token(options.adminTokenFile);
    const replies = new Map<string, SyncReply | Error>();
    await Promise.all(
      records.map(async (r) => {
        try {
          replies.set(r.id, await fetchSync(r.admin, bearer, options.timeoutMs ?? 3000));
        } catch (error) {
          replies.set(r.id, new Error(reason(error, r.admin, options.timeoutMs ?? 3000)));
        }
      }),
    );
    return fleetView(records, replies);
  } finally {
    if (own) client.close();
  }
}
