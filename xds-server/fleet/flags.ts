// The serve flags that shape a replica's registration (--replica-id,
// --advertise-host, --replica-ttl), apart from the registry so that the CLI
// parses them without loading the etcd client.
import { parseDuration } from '../config/values.ts';

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
