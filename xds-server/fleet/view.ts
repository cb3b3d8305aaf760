// The fleet-wide sync view (`protoplane status`, `/fleet.json`): every
// replica registered in etcd, and every Envoy node connected to one, with per
// type the version sent and ACKed and the last NACK — what `istioctl
// proxy-status` shows for istiod. Pure: the records and replies in, the view
// (and its table) out.
import type { NodeStatus, TypeStatus } from '../admin/status.ts';

/** What a replica writes under `<prefix>replicas/<id>` (bound to its lease, so it vanishes when the replica dies). */
export interface ReplicaRecord {
  id: string;
  /** host:port Envoy dials for xDS. */
  xds: string;
  /** host:port of the replica's admin HTTP server (where its /debug/sync is). */
  admin: string;
  /** Distinct node ids with an open xDS stream, and the streams. */
  nodes: number;
  streams: number;
  /** The snapshot version served, or null before a config is loaded. */
  version: string | null;
  started_at: string;
  hostname: string;
  pid: number;
}

/** A replica's `/debug/sync`: the nodes connected to it, every one (not paged). */
export interface SyncReply {
  version: string | null;
  nodes: NodeStatus[];
}

export interface FleetReplica extends ReplicaRecord {
  /** Whether its /debug/sync answered; when not, `error` says why and its nodes are missing from `nodes`. */
  reachable: boolean;
  error: string | null;
}

export interface FleetNode extends NodeStatus {
  replica: string;
}

export interface FleetView {
  generated_at: string;
  replicas: FleetReplica[];
  /** Every reachable replica serves the same snapshot version. */
  versions_agree: boolean;
  node_counts: { connected: number; in_sync: number; out_of_sync: number };
  /** Ordered by node id, then replica. A node with streams on two replicas (during a failover) is listed once per replica. */
  nodes: FleetNode[];
}

/** Parses a registration value; undefined for anything that is not one (a foreign key under the prefix). */
export function parseReplicaRecord(text: string): ReplicaRecord | undefined {
  try {
    const value = JSON.parse(text) as Partial<ReplicaRecord>;
    if (typeof value.id !== 'string' || typeof value.xds !== 'string' || typeof value.admin !== 'string') return undefined;
    return {
      id: value.id,
      xds: value.xds,
      admin: value.admin,
      nodes: typeof value.nodes === 'number' ? value.nodes : 0,
      streams: typeof value.streams === 'number' ? value.streams : 0,
      version: typeof value.version === 'string' ? value.version : null,
      started_at: typeof value.started_at === 'string' ? value.started_at : '',
      hostname: typeof value.hostname === 'string' ? value.hostname : '',
      pid: typeof value.pid === 'number' ? value.pid : 0,
    };
  } catch {
    return undefined;
  }
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function fleetView(records: readonly ReplicaRecord[], replies: ReadonlyMap<string, SyncReply | Error>, now = Date.now()): FleetView {
  const replicas = [...records].sort((a, b) => byText(a.id, b.id)).map((r): FleetReplica => {
    const reply = replies.get(r.id);
    if (reply === undefined) return { ...r, reachable: false, error: 'not asked' };
    if (reply instanceof Error) return { ...r, reachable: false, error: reply.message };
    // What the replica says now beats the count it last wrote to etcd.
    return { ...r, version: reply.version, nodes: reply.nodes.length, reachable: true, error: null };
  });
  const nodes: FleetNode[] = [];
  for (const r of replicas) {
    const reply = replies.get(r.id);
    if (!reply || reply instanceof Error) continue;
    for (const node of reply.nodes) nodes.push({ ...node, replica: r.id });
  }
  nodes.sort((a, b) => byText(a.id, b.id) || byText(a.replica, b.replica));
  const versions = new Set(replicas.filter((r) => r.reachable).map((r) => r.version));
  const inSync = nodes.filter((n) => n.in_sync).length;
  return {
    generated_at: new Date(now).toISOString(),
    replicas,
    versions_agree: versions.size <= 1,
    node_counts: { connected: nodes.length, in_sync: inSync, out_of_sync: nodes.length - inSync },
    nodes,
  };
}

/** The xDS service names people know the types by (istioctl's columns). */
const TYPE_COLUMNS: ReadonlyArray<[string, string]> = [
  ['Cluster', 'CDS'],
  ['Listener', 'LDS'],
  ['ClusterLoadAssignment', 'EDS'],
  ['RouteConfiguration', 'RDS'],
  ['Secret', 'SDS'],
  ['TypedExtensionConfig', 'ECDS'],
];

const short = (version: string | null) => (version === null ? '-' : version.slice(0, 8));

/** One cell: SYNCED v, STALE (sent v, acked w), NACKED v, or NOT SENT — istioctl's words. */
export function typeCell(t: TypeStatus | undefined): string {
  if (!t) return '';
  if (t.last_nack && t.last_nack.version === t.version_sent) return `NACKED ${short(t.version_sent)}`;
  if (t.version_sent === null && t.version_acked === null) return 'NOT SENT';
  if (t.in_sync) return `SYNCED ${short(t.version_acked ?? t.version_sent)}`;
  return `STALE ${short(t.version_acked)}→${short(t.version_sent)}`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}

/** `protoplane status`: replicas, then one row per connected node; NACK messages below the table. */
export function fleetTable(view: FleetView): string {
  const lines: string[] = [];
  const replicaRows = view.replicas.map((r) => [r.id, r.xds, r.admin, r.reachable ? String(r.nodes) : '?', short(r.version), r.reachable ? 'ok' : `UNREACHABLE: ${r.error}`]);
  lines.push(...table([['REPLICA', 'XDS', 'ADMIN', 'NODES', 'VERSION', 'STATE'], ...replicaRows]));
  if (view.replicas.length === 0) lines.push('(no replica registered)');
  else if (!view.versions_agree) lines.push('replicas serve different versions (one is catching up, or their configs differ)');
  lines.push('');
  const present = TYPE_COLUMNS.filter(([type]) => view.nodes.some((n) => n.types.some((t) => t.type === type)));
  const header = ['NODE', 'CLUSTER', 'REPLICA', 'TRANSPORT', ...present.map(([, name]) => name)];
  const nodeRows = view.nodes.map((n) => [
    n.id,
    n.cluster ?? '-',
    n.replica,
    n.transport,
    ...present.map(([type]) => typeCell(n.types.find((t) => t.type === type))),
  ]);
  lines.push(...table([header, ...nodeRows]));
  if (view.nodes.length === 0) lines.push('(no Envoy connected)');
  const nacks = view.nodes.flatMap((n) => n.types.filter((t) => t.last_nack).map((t) => `${n.id} @ ${n.replica} ${t.type} ${short(t.last_nack!.version)}: ${t.last_nack!.message}`));
  if (nacks.length > 0) lines.push('', 'last NACKs:', ...nacks.map((l) => `  ${l}`));
  return `${lines.join('\n')}\n`;
}
