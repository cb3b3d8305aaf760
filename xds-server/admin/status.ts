// What the status page at the admin root shows, as one JSON document
// (/status.json): each connected Envoy and whether it has ACKed everything it
// was sent, the last NACK with Envoy's own words, the config being served and
// why the last edit was refused, and the filters loaded.
import type { FilterCatalog } from '../catalog/index.ts';
import type { SnapshotCache } from '../cache/index.ts';
import { shortType, type StreamInfo } from '../server/index.ts';

export interface StatusSources {
  cache: SnapshotCache;
  streams: () => readonly StreamInfo[];
  lastConfigError: () => string[] | undefined;
  filters: () => FilterCatalog;
  /** The mesh file served, when known. */
  configPath?: string;
}

export interface TypeStatus {
  type: string;
  stream: number;
  version_sent: string | null;
  version_acked: string | null;
  /** Everything sent was ACKed. */
  in_sync: boolean;
  last_nack: { version: string; message: string; at: string } | null;
}

export interface NodeStatus {
  id: string;
  cluster: string | null;
  user_agent: string | null;
  /** "SotW" or "Delta", and "ADS" or "per-type"; one entry per distinct stream kind. */
  transport: string;
  connected_at: string;
  in_sync: boolean;
  types: TypeStatus[];
}

export interface StatusView {
  generated_at: string;
  config: { file: string | null; version: string | null; errors: string[] };
  /** Every connected node counted; `nodes` lists at most MAX_NODES_SHOWN, out-of-sync ones first. */
  node_counts: { connected: number; in_sync: number; out_of_sync: number; shown: number };
  nodes: NodeStatus[];
  filters: Array<{ name: string; protocol: string; sha256: string; bytes: number; errors: string[] }>;
}

/** A page polled every second must stay small with thousands of Envoys: the rest are counted, not listed. */
export const MAX_NODES_SHOWN = 100;

function transportOf(s: StreamInfo): string {
  return `${s.variant === 'delta' ? 'Delta' : 'SotW'} ${s.transport === 'ads' ? 'ADS' : 'per-type'}`;
}

export function statusView(sources: StatusSources, now = Date.now(), maxNodes = MAX_NODES_SHOWN): StatusView {
  const errors = sources.lastConfigError() ?? [];
  const byNode = new Map<string, StreamInfo[]>();
  for (const stream of sources.streams()) {
    // A stream that has not said who it is yet has nothing to show.
    if (!stream.node) continue;
    const list = byNode.get(stream.node.id) ?? [];
    list.push(stream);
    byNode.set(stream.node.id, list);
  }
  const all = [...byNode.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, streams]): NodeStatus => {
      const types = streams.flatMap((s) =>
        [...s.types.values()].map(
          (t): TypeStatus => ({
            type: shortType(t.typeUrl),
            stream: s.id,
            version_sent: t.sentVersion ?? null,
            version_acked: t.ackedVersion ?? null,
            in_sync: t.sentVersion === undefined || t.ackedVersion === t.sentVersion,
            last_nack: t.nacked ? { version: t.nacked.version, message: t.nacked.message, at: new Date(t.nacked.at).toISOString() } : null,
          }),
        ),
      );
      const first = streams[0]!;
      return {
        id,
        cluster: first.node?.cluster ?? null,
        user_agent: first.node?.userAgent ?? null,
        transport: [...new Set(streams.map(transportOf))].join(', '),
        connected_at: new Date(Math.min(...streams.map((s) => s.connectedAt))).toISOString(),
        in_sync: types.every((t) => t.in_sync),
        types,
      };
    });
  const outOfSync = all.filter((n) => !n.in_sync);
  const nodes = [...outOfSync, ...all.filter((n) => n.in_sync)].slice(0, maxNodes);
  const filters = [...sources.filters().entries.values()].map((e) => ({
    name: e.manifest.name,
    protocol: e.manifest.protocol,
    sha256: e.sha256,
    bytes: e.bytes.length,
    // A filter's refusals of its settings are config errors that name it.
    errors: errors.filter((line) => line.includes(`filter ${e.manifest.name} `)),
  }));
  return {
    generated_at: new Date(now).toISOString(),
    config: { file: sources.configPath ?? null, version: sources.cache.snapshot?.version ?? null, errors },
    node_counts: { connected: all.length, in_sync: all.length - outOfSync.length, out_of_sync: outOfSync.length, shown: nodes.length },
    nodes,
    filters,
  };
}
