// Prometheus metrics of the whole process, one registry per server instance
// so tests can run several servers side by side.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const COSTLY_PER_SCRAPE = ['nodejs_active_handles', 'nodejs_active_handles_total', 'nodejs_active_resources', 'nodejs_active_resources_total'];

export class Metrics {
  readonly registry = new Registry();
  readonly connectedStreams = new Gauge({
    name: 'protoplane_xds_connected_streams',
    help: 'xDS streams currently open',
    registers: [this.registry],
  });
  readonly connectedNodes = new Gauge({
    name: 'protoplane_xds_connected_nodes',
    help: 'Distinct node ids with at least one open xDS stream',
    registers: [this.registry],
  });
  readonly pushes = new Counter({
    name: 'protoplane_xds_pushes_total',
    help: 'DiscoveryResponses sent',
    labelNames: ['type'],
    registers: [this.registry],
    collect: () => this.flushCounts(),
  });
  readonly acks = new Counter({
    name: 'protoplane_xds_acks_total',
    help: 'Responses acknowledged by clients',
    labelNames: ['type'],
    registers: [this.registry],
    collect: () => this.flushCounts(),
  });
  readonly nacks = new Counter({
    name: 'protoplane_xds_nacks_total',
    help: 'Responses rejected by clients (requests carrying error_detail)',
    labelNames: ['type'],
    registers: [this.registry],
  });
  readonly staleRequests = new Counter({
    name: 'protoplane_xds_stale_requests_total',
    help: 'Requests ignored because their response_nonce was not the latest one sent',
    labelNames: ['type'],
    registers: [this.registry],
  });
  readonly rejectedRequests = new Counter({
    name: 'protoplane_xds_rejected_requests_total',
    help: 'xDS requests, streams and connections refused (or ignored, unknown_type) by reason; docs/security.md lists them',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly adminRefused = new Counter({
    name: 'protoplane_admin_refused_total',
    help: 'Admin requests and connections refused: too_many_connections (closed at accept), request_timeout (headers or request not whole in time: 408), timeout (idle mid-request), bad_request (malformed HTTP), unauthorized (no valid admin token)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly pushLatency = new Histogram({
    name: 'protoplane_xds_push_latency_seconds',
    help: 'From a new snapshot (or the request that needed it) to the client ACK',
    labelNames: ['type'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly configReloads = new Counter({
    name: 'protoplane_config_reloads_total',
    help: 'Config loads by result',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly snapshotVersion = new Gauge({
    name: 'protoplane_snapshot_info',
    help: 'The snapshot being served (value 1, version in a label)',
    labelNames: ['version'],
    registers: [this.registry],
  });

  private readonly perType = new Map<string, TypeMetrics>();

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      // These list every libuv handle and resource on each scrape (one object
      // or string per socket): ~35 ms of blocked event loop per scrape with
      // 10,000 Envoys connected. protoplane_xds_connected_streams and _nodes count what they
      // would, and process_open_fds stays.
      for (const name of COSTLY_PER_SCRAPE) this.registry.removeSingleMetric(name);
    }
  }

  /**
   * The per-message metrics of one xDS type (label "type" = its short name).
   * Every push and ACK of every stream records one, so pushes and ACKs are
   * plain numbers added to the counters when they are read (a scrape), and
   * the histogram's label set is resolved once.
   */
  forType(typeUrl: string): TypeMetrics {
    let m = this.perType.get(typeUrl);
    if (!m) {
      const type = typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
      m = { type, pushes: 0, acks: 0, pushLatency: this.pushLatency.labels({ type }) };
      this.perType.set(typeUrl, m);
    }
    return m;
  }

  private flushCounts(): void {
    for (const m of this.perType.values()) {
      if (m.pushes > 0) this.pushes.inc({ type: m.type }, m.pushes);
      if (m.acks > 0) this.acks.inc({ type: m.type }, m.acks);
      m.pushes = 0;
      m.acks = 0;
    }
  }
}

export interface TypeMetrics {
  readonly type: string;
  /** Not yet added to the pushes / acks counters. */
  pushes: number;
  acks: number;
  readonly pushLatency: Histogram.Internal<'type'>;
}
