// Admin HTTP server (Fastify): health, readiness, Prometheus metrics and the
// debug views of what each connected node was sent and acknowledged.
import Fastify, { type FastifyInstance } from 'fastify';
import type { FilterCatalog } from '../catalog/index.ts';
import type { SnapshotCache } from '../cache/index.ts';
import type { Metrics } from '../metrics.ts';
import type { EtcdSourceStatus } from '../etcd/source.ts';
import { decodeMessage, TYPE_PREFIX } from '../protos/index.ts';
import { shortType, type StreamInfo } from '../server/index.ts';
import { isCompact, registerStatusPage, sendJson } from './status-page.ts';
import { adminServerOptions, guardAdmin, pageOf, RefusalLog, type AdminGuardOptions } from './guard.ts';
import { statusView } from './status.ts';
import type { FleetView } from '../fleet/view.ts';

export interface AdminOptions {
  cache: SnapshotCache;
  metrics: Metrics;
  streams: () => readonly StreamInfo[];
  /** Per node, per health-checked cluster: each endpoint's health as that Envoy reported it over HDS (server/hds.ts). */
  health?: () => unknown;
  /** The last config load problem, shown while the previous good config keeps being served. */
  lastConfigError: () => string[] | undefined;
  ready: () => boolean;
  filters: () => FilterCatalog;
  /** The mesh file served, shown on the status page. */
  configPath?: string;
  /** Serving from etcd: whether it is reachable and what was read (on /readyz). */
  configSource?: () => EtcdSourceStatus;
  /** Connection cap, timeouts, the admin token and where refusals are logged (docs/security.md). */
  guard?: Omit<AdminGuardOptions, 'metrics'>;
  /** Serving from etcd: the whole fleet's sync view for /fleet.json (docs/ha.md). */
  fleet?: () => Promise<FleetView>;
}

export function nodesView(streams: readonly StreamInfo[]): unknown {
  return {
    nodes: streams.map((s) => ({
      id: s.node?.id ?? null,
      cluster: s.node?.cluster ?? null,
      user_agent: s.node?.userAgent ?? null,
      stream: s.id,
      connection: s.connection ?? null,
      variant: s.variant,
      group: s.group ?? null,
      connected_at: new Date(s.connectedAt).toISOString(),
      types: Object.fromEntries(
        [...s.types.values()].map((t) => [
          shortType(t.typeUrl),
          {
            type_url: t.typeUrl,
            // the first 100 names (a subscription may hold thousands); subscribed_count has them all
            subscribed: [...(t.wildcard ? ['*'] : []), ...t.subscription.sorted.slice(0, 100)],
            subscribed_count: t.subscription.sorted.length,
            version_sent: t.sentVersion ?? null,
            nonce: t.sentNonce ?? null,
            version_acked: t.ackedVersion ?? null,
            last_nack: t.nacked
              ? { version: t.nacked.version, message: t.nacked.message, at: new Date(t.nacked.at).toISOString() }
              : null,
          },
        ]),
      ),
    })),
  };
}

/** Replaces encoded Any values by their decoded message, like Envoy's own config dump. */
function readable(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(readable);
  if (value === null || typeof value !== 'object') return value;
  const record = value as Record<string, unknown>;
  if (typeof record.type_url === 'string' && record.value instanceof Uint8Array) {
    const typeName = record.type_url.slice(TYPE_PREFIX.length);
    return { '@type': record.type_url, ...(readable(decodeMessage(typeName, record.value)) as object) };
  }
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, readable(v)]));
}

export function configDump(streams: readonly StreamInfo[], nodeId: string): unknown {
  const mine = streams.filter((s) => s.node?.id === nodeId);
  return {
    node: nodeId,
    streams: mine.map((s) => ({
      stream: s.id,
      types: Object.fromEntries(
        [...s.types.values()].map((t) => [
          shortType(t.typeUrl),
          { version: t.sentVersion ?? null, resources: t.held().map((e) => readable(e.message)) },
        ]),
      ),
    })),
  };
}

export function buildAdmin(options: AdminOptions): FastifyInstance {
  const guard = { ...options.guard, metrics: options.metrics };
  const refusals = new RefusalLog(guard.log, guard.logIntervalMs);
  const app = Fastify({ logger: false, ...adminServerOptions(guard, refusals) });
  guardAdmin(app, guard, refusals);
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const ready = options.ready();
    // etcd unreachable: still ready, since the last good config is served and
    // pulling every replica out of a load balancer at once helps nobody; but
    // degraded, with the reason (docs/ha.md).
    const source = options.configSource?.();
    return reply.code(ready ? 200 : 503).send({
      ready,
      snapshot: options.cache.snapshot?.version ?? null,
      config_errors: options.lastConfigError() ?? [],
      ...(source ? { degraded: !source.connected, config_source: source } : {}),
    });
  });
  app.get('/metrics', async (_request, reply) => {
    const body = await options.metrics.registry.metrics();
    return reply.type(options.metrics.registry.contentType).send(body);
  });
  registerStatusPage(app, options);
  // Pretty by default (people read it with curl); ?compact for one line.
  // Paged (?limit=, ?offset=): with thousands of streams one reply would be huge.
  app.get('/debug/nodes', async (request, reply) => {
    const { items, page } = pageOf(options.streams(), request.query);
    return sendJson(reply, { ...(nodesView(items) as object), page }, isCompact(request.query));
  });
  app.get('/debug/health', async (request, reply) => {
    if (!options.health) return reply.code(404).send({ error: 'no health view on this server' });
    return sendJson(reply, options.health(), isCompact(request.query));
  });
  // Every node connected here, not paged: what `protoplane status` and /fleet.json gather from each replica.
  app.get('/debug/sync', async (request, reply) => {
    const view = statusView(options, Date.now(), Infinity);
    return sendJson(reply, { version: view.config.version, nodes: view.nodes }, isCompact(request.query));
  });
  app.get('/fleet.json', async (request, reply) => {
    if (!options.fleet) return reply.code(404).send({ error: 'no fleet: this server does not run with --etcd' });
    try {
      return sendJson(reply, await options.fleet(), isCompact(request.query));
    } catch (error) {
      return reply.code(503).send({ error: `cannot read the fleet from etcd: ${(error as Error).message}` });
    }
  });
  app.get('/debug/filters', async () => ({
    filters: [...options.filters().entries.values()].map((e) => ({
      name: e.manifest.name,
      protocol: e.manifest.protocol,
      sha256: e.sha256,
      bytes: e.bytes.length,
      url: `/filters/${e.manifest.name}.wasm`,
    })),
    config_errors: options.lastConfigError() ?? [],
  }));
  // Module bytes for Envoy's remote fetch (it checks the sha256 in the filter config).
  app.get<{ Params: { file: string } }>('/filters/:file', async (request, reply) => {
    const match = /^([a-z0-9][a-z0-9_-]*)\.wasm$/.exec(request.params.file);
    const entry = match ? options.filters().entries.get(match[1]!) : undefined;
    if (!entry) return reply.code(404).send({ error: `no filter ${request.params.file}` });
    return reply
      .type('application/wasm')
      .header('x-protoplane-sha256', entry.sha256)
      .header('etag', `"${entry.sha256}"`)
      .send(Buffer.from(entry.bytes));
  });
  app.get<{ Querystring: { node?: string } }>('/debug/config_dump', async (request, reply) => {
    const node = request.query.node;
    if (!node) return reply.code(400).send({ error: 'pass ?node=ID' });
    return configDump(options.streams(), node);
  });
  return app;
}
