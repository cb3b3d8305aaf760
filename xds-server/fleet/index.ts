// A replica in a fleet served from etcd: it registers itself (registry.ts),
// and its admin server answers /fleet.json for the whole fleet (collect.ts).
// The serve flags that shape its registration live here too.
import os from 'node:os';
import type { SnapshotCache } from '../cache/index.ts';
import { DEFAULT_ETCD_PREFIX } from '../etcd/store.ts';
import type { Logger } from '../log.ts';
import type { StreamInfo } from '../server/index.ts';
import { collectFleet } from './collect.ts';
import { registerReplica, type Registration } from './registry.ts';
import type { ReplicaOptions } from './flags.ts';
import type { FleetView } from './view.ts';

export { collectFleet } from './collect.ts';
export { REPLICA_FLAGS, replicaOptionsOf, type ReplicaOptions } from './flags.ts';
export { fleetTable, type FleetView } from './view.ts';

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
