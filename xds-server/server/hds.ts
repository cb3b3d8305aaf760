// The Health Discovery Service (envoy.service.health.v3): how protoplane sees
// the health of each endpoint as each Envoy sees it. An Envoy bootstrapped
// with `hds_config` opens StreamHealthCheck and introduces itself; protoplane
// answers with a HealthCheckSpecifier (every EDS cluster with a
// `health_check`, its endpoints and the same checks, derived from the served
// snapshot's translated clusters and endpoints: the server reads the cache,
// never the mesh) and sends it again whenever the config changes it. Envoy
// then runs those checks and reports every endpoint's health at the
// specifier's interval; the last report per node is what `/debug/health`
// shows.
//
// Why HDS: Envoy's own active health checks (the cluster's `health_checks`)
// decide where traffic goes, but their results stay inside Envoy (admin
// /clusters). HDS is the Envoy-native way for a control plane to receive
// per-endpoint results from the proxies themselves, from where they stand
// (their network view), without protoplane probing anything on its own. The
// cost: Envoy runs the HDS checks in addition to the cluster's, so each
// endpoint sees two probes per interval from each Envoy (docs/config.md).
import type { Logger } from 'pino';
import type { Snapshot, SnapshotCache } from '../cache/index.ts';
import { TYPE } from '../model/resources.ts';
import { decodeMessage, encodeMessage } from '../protos/index.ts';
import { Status, type BidiCall, type BidiHandlers } from './grpc.ts';
import { provesNodeId } from './stream.ts';

export const HDS_METHOD = '/envoy.service.health.v3.HealthDiscoveryService/StreamHealthCheck';
const REQUEST = 'envoy.service.health.v3.HealthCheckRequestOrEndpointHealthResponse';
const SPECIFIER = 'envoy.service.health.v3.HealthCheckSpecifier';

/** One endpoint's health as an Envoy last reported it (Envoy's HealthStatus name). */
export interface EndpointHealthView {
  address: string;
  health: string;
}

export interface NodeHealthView {
  id: string;
  cluster: string;
  stream: number;
  connected_at: string;
  /** When the last report came (null: none yet). */
  reported_at: string | null;
  /** Per checked cluster, its endpoints in the order the config lists them. */
  clusters: Record<string, EndpointHealthView[]>;
}

interface HdsStream {
  readonly id: number;
  readonly call: BidiCall;
  readonly connectedAt: number;
  node?: { id: string; cluster: string };
  reportedAt?: number;
  /** cluster → address → health, only for what the current specifier asks. */
  health: Map<string, Map<string, string>>;
}

type Json = Record<string, unknown>;
type EnvoyMessage = Json;

function duration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: Math.round((ms % 1000) * 1e6) };
}

// ── HDS: what protoplane asks each Envoy to health-check and report ─────────

/** How often Envoy reports when no cluster is checked (it still keeps the stream). */
const HDS_IDLE_REPORT_MS = 10_000;

/**
 * The HealthCheckSpecifier protoplane sends over HDS, derived purely from the
 * translated clusters and endpoint assignments: every EDS cluster with health
 * checks, its endpoints, the same checks, in clear. Clusters Envoy reaches
 * over TLS or with a PROXY header are left out (their checks would need the
 * cluster's transport socket, not verified over HDS), and so are DNS clusters
 * (HDS takes addresses, not names). Envoy reports every endpoint's health at
 * the shortest check interval.
 */
export function healthCheckSpecifier(clusters: readonly EnvoyMessage[], assignments: readonly EnvoyMessage[]): EnvoyMessage {
  const byName = new Map(assignments.map((a) => [a['cluster_name'] as string, a]));
  const checks: EnvoyMessage[] = [];
  let shortest = Infinity;
  for (const c of clusters) {
    const healthChecks = c['health_checks'] as EnvoyMessage[] | undefined;
    const assignment = byName.get(c['name'] as string);
    if (!healthChecks || c['type'] !== 'EDS' || c['transport_socket'] !== undefined || !assignment) continue;
    const endpoints = (assignment['endpoints'] as EnvoyMessage[]).flatMap((l) => (l['lb_endpoints'] as EnvoyMessage[]).map((e) => ({ address: (e['endpoint'] as EnvoyMessage)['address'] })));
    checks.push({ cluster_name: c['name'], health_checks: healthChecks, locality_endpoints: [{ locality: {}, endpoints }] });
    for (const h of healthChecks) {
      const i = h['interval'] as { seconds: number; nanos: number };
      shortest = Math.min(shortest, i.seconds * 1000 + i.nanos / 1e6);
    }
  }
  return { cluster_health_checks: checks, interval: duration(Number.isFinite(shortest) ? shortest : HDS_IDLE_REPORT_MS) };
}

function addressOf(endpoint: unknown): string | undefined {
  const socket = ((endpoint as Json | undefined)?.['address'] as Json | undefined)?.['socket_address'] as Json | undefined;
  if (typeof socket?.['address'] !== 'string') return undefined;
  const host = socket['address'].includes(':') ? `[${socket['address']}]` : socket['address'];
  return `${host}:${Number(socket['port_value'] ?? 0)}`;
}

export class HealthDiscovery {
  private readonly streams = new Set<HdsStream>();
  private nextId = 1;
  /** What is asked now: cluster → its endpoints' addresses, and the encoded specifier. */
  private asked = new Map<string, string[]>();
  private specifier: Uint8Array = encodeMessage(SPECIFIER, healthCheckSpecifier([], []));
  /**
   * A snapshot served while no Envoy was on HDS, not yet turned into a
   * specifier: derived when one introduces itself (or /debug/health asks),
   * so that a reload does not build and encode a specifier nobody reads.
   */
  private pending: Snapshot | undefined;
  private readonly stopWatching: () => void;

  constructor(
    cache: SnapshotCache,
    private readonly log: Logger,
    /** With mTLS to xDS: a node must prove its id with its client certificate, as on every xDS stream. */
    private readonly requireProvenNodeId = false,
  ) {
    if (cache.snapshot) this.update(cache.snapshot);
    this.stopWatching = cache.onChange((s) => this.update(s));
  }

  /** The gRPC method handler (register it as HDS_METHOD). */
  readonly handle = (call: BidiCall): BidiHandlers => {
    const stream: HdsStream = { id: this.nextId++, call, connectedAt: Date.now(), health: new Map() };
    this.streams.add(stream);
    return {
      onMessage: (bytes) => this.onMessage(stream, bytes),
      onClose: (reason) => {
        this.streams.delete(stream);
        this.log.debug({ hds: stream.id, node: stream.node?.id, reason }, 'HDS stream closed');
      },
    };
  };

  /** Every introduced node's last report, for /debug/health. */
  view(): { nodes: NodeHealthView[] } {
    this.derivePending();
    const nodes = [...this.streams].flatMap((s): NodeHealthView[] => {
      if (!s.node) return [];
      const clusters = Object.fromEntries(
        [...this.asked].map(([cluster, addresses]) => [
          cluster,
          addresses.map((address) => ({ address, health: s.health.get(cluster)?.get(address) ?? 'UNKNOWN' })),
        ]),
      );
      return [{
        id: s.node.id,
        cluster: s.node.cluster,
        stream: s.id,
        connected_at: new Date(s.connectedAt).toISOString(),
        reported_at: s.reportedAt === undefined ? null : new Date(s.reportedAt).toISOString(),
        clusters,
      }];
    });
    return { nodes };
  }

  close(): void {
    this.stopWatching();
  }

  private update(snapshot: Snapshot): void {
    if (![...this.streams].some((s) => s.node)) {
      this.pending = snapshot;
      return;
    }
    this.pending = undefined;
    if (!this.derive(snapshot)) return;
    for (const s of this.streams) {
      if (!s.node) continue;
      s.health = new Map();
      s.call.write(this.specifier);
    }
  }

  private derivePending(): void {
    const pending = this.pending;
    this.pending = undefined;
    if (pending) this.derive(pending);
  }

  /** The specifier and what it asks, from a snapshot; whether they changed. */
  private derive(snapshot: Snapshot): boolean {
    const messages = (type: string) => [...snapshot.of(type as never).entries.values()].map((e) => e.message);
    const spec = healthCheckSpecifier(messages(TYPE.cluster), messages(TYPE.endpoint));
    const bytes = encodeMessage(SPECIFIER, spec);
    if (Buffer.compare(Buffer.from(bytes), Buffer.from(this.specifier)) === 0) return false;
    this.specifier = bytes;
    this.asked = new Map(
      (spec['cluster_health_checks'] as Json[]).map((c) => [
        c['cluster_name'] as string,
        ((c['locality_endpoints'] as Json[])[0]!['endpoints'] as Json[]).map((e) => addressOf(e)!),
      ]),
    );
    return true;
  }

  private onMessage(stream: HdsStream, bytes: Buffer): void {
    let message: Json;
    try {
      message = decodeMessage(REQUEST, bytes);
    } catch (error) {
      const reason = `not a decodable HDS message: ${error instanceof Error ? error.message : String(error)}`;
      this.log.warn({ hds: stream.id, node: stream.node?.id }, reason);
      stream.call.end(Status.INTERNAL, reason);
      return;
    }
    const request = message['health_check_request'] as Json | undefined;
    if (request) {
      const node = (request['node'] as Json | undefined) ?? {};
      const id = typeof node['id'] === 'string' ? node['id'] : '';
      if (this.requireProvenNodeId && !provesNodeId(stream.call.peerNames ?? [], id)) {
        stream.call.end(Status.PERMISSION_DENIED, `node id "${id}" is not proven by the client certificate`);
        return;
      }
      const first = stream.node === undefined;
      stream.node = { id, cluster: typeof node['cluster'] === 'string' ? node['cluster'] : '' };
      if (first) this.log.debug({ hds: stream.id, node: id }, 'HDS stream opened');
      this.derivePending();
      stream.call.write(this.specifier);
      return;
    }
    const response = message['endpoint_health_response'] as Json | undefined;
    if (!response || !stream.node) return;
    // Keep only what was asked: a report cannot grow the table.
    const health = new Map<string, Map<string, string>>();
    for (const cluster of (response['cluster_endpoints_health'] as Json[] | undefined) ?? []) {
      const name = cluster['cluster_name'] as string;
      const asked = this.asked.get(name);
      if (!asked) continue;
      const byAddress = new Map<string, string>();
      for (const locality of (cluster['locality_endpoints_health'] as Json[] | undefined) ?? []) {
        for (const e of (locality['endpoints_health'] as Json[] | undefined) ?? []) {
          const address = addressOf(e['endpoint']);
          if (address !== undefined && asked.includes(address)) byAddress.set(address, String(e['health_status'] ?? 'UNKNOWN'));
        }
      }
      health.set(name, byAddress);
    }
    stream.health = health;
    stream.reportedAt = Date.now();
  }
}
