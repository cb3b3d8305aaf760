// A replica says it is alive: `<prefix>replicas/<id>` holds its addresses,
// connected-node count and the version it serves, bound to an etcd lease so
// the key vanishes within the TTL of the replica's death (kill -9 included).
// The per-node sync state is not written to etcd: it changes on every push
// and ACK and grows with the fleet (10,000 nodes × types is megabytes, over
// etcd's 1.5 MiB value limit), so `protoplane status` fetches it from each
// replica's /debug/sync instead, as istioctl asks each istiod (docs/ha.md).
import os from 'node:os';
import { Etcd3, type Lease } from 'etcd3';
import type { Logger } from '../log.ts';
import type { ReplicaRecord } from './view.ts';

export const REPLICAS_DIR = 'replicas/';

const WRITE_DEADLINE_MS = 3000;

export function replicaKey(prefix: string, id: string): string {
  return `${prefix}${REPLICAS_DIR}${id}`;
}

export interface RegistrationOptions {
  /** etcd client URLs. */
  endpoints: readonly string[];
  /** Key prefix shared with the config (default /protoplane/). */
  prefix: string;
  id: string;
  /** host:port Envoy dials, and of the admin server. */
  xds: string;
  admin: string;
  /** Counted anew on each refresh. */
  counts: () => { nodes: number; streams: number; version: string | null };
  /** Lease TTL in seconds (default 10): how long a dead replica's key outlives it. */
  ttlSeconds?: number;
  /** How often the counts are checked and, when changed, written (default 2 s). */
  refreshMs?: number;
  log: Logger;
}

export interface Registration {
  /** The record as last written (or about to be). */
  record(): ReplicaRecord;
  /** Revokes the lease (the key goes at once) and closes the client. */
  close(): Promise<void>;
}

/** Registers the replica and keeps the record fresh; never throws on etcd being away (it retries, and logs once per outage). */
export function registerReplica(options: RegistrationOptions): Registration {
  const { log } = options;
  const client = new Etcd3({ hosts: [...options.endpoints], dialTimeout: 2000 });
  const key = replicaKey(options.prefix, options.id);
  const ttl = Math.max(1, Math.round(options.ttlSeconds ?? 10));
  const startedAt = new Date().toISOString();
  const current = (): ReplicaRecord => ({
    id: options.id,
    xds: options.xds,
    admin: options.admin,
    ...options.counts(),
    started_at: startedAt,
    hostname: os.hostname(),
    pid: process.pid,
  });
  let written: string | undefined;
  let lease: Lease | undefined;
  let closed = false;
  let failing = false;
  let writing: Promise<void> | undefined;

  const newLease = (): Lease => {
    const next = client.lease(ttl);
    next.on('lost', (error) => {
      if (closed || lease !== next) return;
      // etcd was away for longer than the TTL (or the lease was revoked): the key is gone; grant a new lease and write it again.
      log.warn({ err: error, key }, 'replica registration lost its etcd lease; registering again');
      lease = undefined;
      written = undefined;
    });
    // grant() failures also end as 'lost'; keep the rejection from going unhandled.
    next.grant().catch(() => {});
    return next;
  };

  const write = async (): Promise<void> => {
    if (closed) return;
    const value = JSON.stringify(current());
    if (value === written && lease) return;
    try {
      lease ??= newLease();
      // Bounded, so that a write into an outage fails (and is retried by the next tick) instead of hanging.
      await lease.put(key).value(value).options({ deadline: Date.now() + WRITE_DEADLINE_MS });
      written = value;
      if (failing) log.info({ key }, 'replica registered in etcd again');
      failing = false;
    } catch (error) {
      if (!failing) log.warn({ err: error, key }, 'cannot register the replica in etcd; retrying (xDS keeps being served)');
      failing = true;
      // Start over with a new lease next time; this one stops its keepalives and expires.
      lease?.release();
      lease = undefined;
    }
  };
  // One write at a time; a tick that finds one in flight skips.
  const tick = () => {
    writing ??= write().finally(() => {
      writing = undefined;
    });
  };
  tick();
  const timer = setInterval(tick, options.refreshMs ?? 2000);
  timer.unref();

  return {
    record: current,
    async close() {
      closed = true;
      clearInterval(timer);
      await writing;
      // Gone at once on a clean stop, not only after the TTL (unless etcd is away: then the TTL does it).
      await lease?.revoke({ deadline: Date.now() + WRITE_DEADLINE_MS }).catch(() => {});
      client.close();
    },
  };
}
