// A replica in a fleet served from etcd: it registers itself (registry.ts),
// and its admin server answers /fleet.json for the whole fleet (collect.ts).
// The serve flags that shape its registration live here too.
import os from 'node:os';
import type { SnapshotCache } from '../cache/index.ts';
import { parseDuration } from '../config/values.ts';
import { DEFAULT_ETCD_PREFIX } from '../etcd/store.ts';
import type { Logger } from '../log.ts';
import type { StreamInfo } from '../server/index.ts';
import { collectFleet } from './collect.ts';
import { registerReplica, type Registration } from './registry.ts';
import type { FleetView } from './view.ts';

export { collectFleet } from './collect.ts';
export { fleetTable, type FleetView } from './view.ts';

export interface ReplicaOptions {
  /** Its name in the fleet (default HOSTNAME-XDSPORT: stable across restarts, so a restarted replica replaces its own key). */
  id?: string;
  /** The host other machines reach it by (default: the address it listens on, or the host name when that is a wildcard). */
  advertiseHost?: string;
  /** Lease TTL (default 10 s): how long a dead replica stays listed. */
  ttlSeconds?: number;
}

export const REPLICA_FLAGS = {
  'replica-id': { type: 'string' },
  'advertise-host': { type: 'string' },
  'replica-ttl': { type: 'string' },
} as const;

/** The replica flags of `serve`; they mean something only with --etcd (a usage error otherwise). */
export function replicaOptionsOf(values: Record<string, unknown>, fail: (message: string) => never): ReplicaOptions {
  const given = Object.keys(REPLICA_FLAGS).filter((flag) => values[flag] !== undefined);
  if (given.length > 0 && values.etcd === undefined) fail(`${given.map((f) => `--${f}`).join(', ')}: only with --etcd (a replica registers itself in etcd)`);
  const id = values['replica-id'] as string | undefined;
  if (id !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._:-]*$/.test(id)) fail(`--replica-id: letters, digits and . _ : - only, got "${id}"`);
  const ttl = values['replica-ttl'] as string | undefined;
  let ttlSeconds: number | undefined;
  if (ttl !== undefined) {
    const parsed = parseDuration(ttl);
    if (!parsed.ok) fail(`--replica-ttl: ${parsed.reason}`);
    if (parsed.value < 1000) fail('--replica-ttl: at least 1s (etcd leases count whole seconds)');
    ttlSeconds = Math.round(parsed.value / 1000);
  }
  return { id, advertiseHost: values['advertise-host'] as string | undefined, ttlSeconds };
}

const isWildcard = (host: string) => host === '0.0.0.0' || host === '::' || host === '';

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export interface FleetMemberOptions {
  etcd: { endpoints: readonly string[]; prefix?: string };
  replica?: ReplicaOptions;
  xds: { host: string; port: number };
  admin: { host: string; port: number };
  streams: () => readonly StreamInfo[];
  cache: SnapshotCache;
  log: Logger;
}

/** Registers this replica; close() deregisters it. */
export function joinFleet(options: FleetMemberOptions): Registration {
  const advertise = (listening: string) => options.replica?.advertiseHost ?? (isWildcard(listening) ? os.hostname() : listening);
  return registerReplica({
    endpoints: options.etcd.endpoints,
    prefix: options.etcd.prefix ?? DEFAULT_ETCD_PREFIX,
    id: options.replica?.id ?? `${os.hostname()}-${options.xds.port}`,
    xds: hostPort(advertise(options.xds.host), options.xds.port),
    admin: hostPort(advertise(options.admin.host), options.admin.port),
    ttlSeconds: options.replica?.ttlSeconds,
    log: options.log,
    counts: () => {
      const streams = options.streams();
      const nodes = new Set<string>();
      for (const s of streams) if (s.node) nodes.add(s.node.id);
      return { nodes: nodes.size, streams: streams.length, version: options.cache.snapshot?.version ?? null };
    },
  });
}

/** /fleet.json: asks etcd and every replica each time (the fleet's /debug/* share one token file). */
export function fleetReader(etcd: { endpoints: readonly string[]; prefix?: string }, adminTokenFile?: string): () => Promise<FleetView> {
  return () => collectFleet({ etcd: etcd.endpoints, prefix: etcd.prefix ?? DEFAULT_ETCD_PREFIX, adminTokenFile });
}
