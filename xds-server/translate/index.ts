// Model → Envoy resources. Pure and deterministic: the same Mesh always yields
// byte-identical resources, which is what lets versions be content hashes.
import { isIP } from 'node:net';
import type { Cluster, DurationMs, HttpMatch, Listener, Mesh, Retries, Route, RouteTarget } from '../model/types.ts';
import { toAny } from '../protos/index.ts';
import { protocolListener, wasmExtensionConfig, type FilterRef } from './filters.ts';
import { udpListener } from './udp.ts';
import { circuitBreakers, healthCheck, outlierDetection, withConnectionLimits } from './resilience.ts';
import { accessLogs, unroutedConnectionLogs } from './access-log.ts';
import { downstreamTlsSocket, tlsSecrets, upstreamTlsSecrets, upstreamTlsSocket, type TlsFileContents } from './tls.ts';
import type { EnvoyMessage, Resources, XdsFlavour } from '../model/resources.ts';

export { TYPE, TYPE_ORDER, type EnvoyMessage, type Resources, type ResourceType, type XdsFlavour } from '../model/resources.ts';
export { ADMIN_CLUSTER, filterConfiguration, type FilterRef, type WasmCode } from './filters.ts';
export type { TlsFileContents } from './tls.ts';

/** The Wasm filter serving each non-builtin protocol, by protocol name. */
export type FilterRefs = ReadonlyMap<string, FilterRef>;

/**
 * Where Envoy fetches the RDS and EDS that listeners and clusters refer to:
 * the ADS stream, or (for an Envoy bootstrapped with one stream per type) the
 * per-type services of the cluster its bootstrap names protoplane_xds.
 * (Envoy 1.40 rejects `self: {}` here: "Missing config source specifier".)
 */
export const XDS_CLUSTER = 'protoplane_xds';

function configSource(flavour: XdsFlavour): EnvoyMessage {
  if (flavour === 'ads') return { ads: {}, resource_api_version: 'V3' };
  return {
    resource_api_version: 'V3',
    api_config_source: {
      api_type: flavour === 'delta' ? 'DELTA_GRPC' : 'GRPC',
      transport_api_version: 'V3',
      grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER } }],
    },
  };
}

export function duration(ms: DurationMs): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: Math.round((ms % 1000) * 1e6) };
}

function socketAddress(host: string, port: number): EnvoyMessage {
  return { socket_address: { address: host, port_value: port } };
}

/** `tlsFiles`: the contents of every certificate, key and CA file the mesh names (see tls/listener-files.ts). */
export function translate(mesh: Mesh, flavour: XdsFlavour = 'ads', filters: FilterRefs = new Map(), tlsFiles: TlsFileContents = new Map()): Resources {
  const source = configSource(flavour);
  const retries = new Map(mesh.clusters.flatMap((c) => (c.retries ? [[c.name, c.retries] as const] : [])));
  const resources: Resources = { listeners: [], routes: [], clusters: [], endpoints: [], extensions: [], secrets: [] };
  // Listeners a filter's settings spawn (one per Kafka broker) follow their parent.
  for (const listener of mesh.listeners.flatMap((l) => [l, ...(l.generated ?? [])])) {
    if (listener.tls) resources.secrets.push(...tlsSecrets(listener, listener.tls, tlsFiles));
    switch (listener.protocol) {
      case 'http':
        resources.listeners.push(httpListener(listener, source));
        resources.routes.push(routeConfiguration(listener, retries));
        break;
      case 'auto':
        resources.listeners.push(autoListener(listener, source));
        resources.routes.push(routeConfiguration(listener, retries));
        break;
      case 'grpc':
        resources.listeners.push(apiListener(listener, source));
        resources.routes.push(routeConfiguration(listener));
        break;
      case 'tcp':
        resources.listeners.push(tcpListener(listener, source));
        break;
      case 'tls':
        resources.listeners.push(tlsPassthroughListener(listener));
        break;
      default: {
        if (listener.transport === 'udp') {
          // udp_proxy, no Wasm filter (translate/udp.ts)
          resources.listeners.push(udpListener(listener));
          break;
        }
        // The loader refuses protocols no filter serves; this is a bug guard.
        const filter = filters.get(listener.protocol);
        if (!filter) throw new Error(`listener ${listener.name}: no filter serves protocol ${listener.protocol}`);
        resources.listeners.push(protocolListener(listener, source));
        resources.extensions.push(wasmExtensionConfig(listener, filter));
      }
    }
  }
  // PROXY protocol is read before any other listener filter (it precedes every other byte).
  const models = mesh.listeners.flatMap((m) => [m, ...(m.generated ?? [])]);
  for (const l of resources.listeners) {
    const model = models.find((m) => m.name === l['name']);
    if (model?.proxyProtocol) l['listener_filters'] = [proxyProtocolListenerFilter(), ...((l['listener_filters'] as EnvoyMessage[] | undefined) ?? [])];
    // A connection no filter chain takes (a tls client with an unrouted SNI) gets a TCP line too.
    if (model?.accessLogs && model.transport !== 'udp') l['access_log'] = unroutedConnectionLogs(model);
  }
  // Connection limits (connections/s, max_connections) run first in every filter chain.
  const limitsOf = new Map(mesh.listeners.flatMap((m) => [m, ...(m.generated ?? [])]).map((m) => [m.name, m]));
  resources.listeners.forEach((l, i) => {
    const model = limitsOf.get(l['name'] as string);
    if (model) resources.listeners[i] = withConnectionLimits(l, model);
  });
  for (const cluster of mesh.clusters) {
    resources.clusters.push(clusterResource(cluster, source));
    if (cluster.tls) resources.secrets.push(...upstreamTlsSecrets(cluster, cluster.tls, tlsFiles));
    if (usesEds(cluster)) resources.endpoints.push(loadAssignment(cluster));
  }
  return resources;
}

// ── listeners ──────────────────────────────────────────────────────────────

function listenerBase(listener: Listener): EnvoyMessage {
  return { name: listener.name, address: socketAddress(listener.address, listener.port) };
}

function httpConnectionManager(listener: Listener, source: EnvoyMessage) {
  return toAny(
    'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    {
      stat_prefix: listener.name,
      codec_type: 'AUTO',
      rds: { config_source: source, route_config_name: listener.name },
      // Envoy is the edge: the client is the connection's peer (or what a PROXY header restored),
      // never a client-sent x-forwarded-for; that peer is appended to x-forwarded-for for upstreams.
      ...(listener.protocol === 'grpc' ? {} : { use_remote_address: { value: true } }),
      ...(listener.accessLogs ? { access_log: accessLogs(listener, 'http') } : {}),
      http_filters: [
        ...(listener.rateLimit?.kind === 'requests' ? [httpRateLimitFilter(listener.name, listener.rateLimit.perSecond)] : []),
        { name: 'envoy.filters.http.router', typed_config: toAny('envoy.extensions.filters.http.router.v3.Router', {}) },
      ],
    },
  );
}

/** A filter chain, terminating TLS first when the listener has `tls`. */
function chain(listener: Listener, source: EnvoyMessage, filters: EnvoyMessage[]): EnvoyMessage {
  return listener.tls ? { filters, transport_socket: downstreamTlsSocket(listener, listener.tls, source) } : { filters };
}

function httpListener(listener: Listener, source: EnvoyMessage): EnvoyMessage {
  const hcm = httpConnectionManager(listener, source);
  return {
    ...listenerBase(listener),
    filter_chains: [chain(listener, source, [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }])],
  };
}

/** What Envoy's http_inspector reports for the HTTP it recognises (h2c: the HTTP/2 preface). */
const DETECTED_HTTP = ['http/1.0', 'http/1.1', 'h2c'];

/**
 * `protocol: auto`: http_inspector reads the first bytes; HTTP/1.x and h2c
 * take the chain with the HTTP connection manager, anything else (or a client
 * silent past the timeout) the default chain's tcp_proxy. No tls_inspector:
 * TLS bytes are not HTTP, so TLS goes to the tcp fallback as passthrough.
 */
function autoListener(listener: Listener, source: EnvoyMessage): EnvoyMessage {
  const detection = listener.detection;
  if (!detection) throw new Error(`listener ${listener.name}: protocol auto without a tcp fallback`);
  return {
    ...listenerBase(listener),
    listener_filters: [
      {
        name: 'envoy.filters.listener.http_inspector',
        typed_config: toAny('envoy.extensions.filters.listener.http_inspector.v3.HttpInspector', {}),
      },
    ],
    listener_filters_timeout: duration(detection.timeout),
    // Past the timeout the connection is served by the default (tcp) chain, not closed.
    continue_on_listener_filters_timeout: true,
    filter_chains: [
      {
        name: 'http',
        filter_chain_match: { application_protocols: DETECTED_HTTP },
        filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: httpConnectionManager(listener, source) }],
      },
    ],
    default_filter_chain: { name: 'tcp', filters: [tcpProxyFilter(listener.name, detection.tcp, accessLogs(listener, 'tcp'))] },
  };
}

/**
 * For proxyless gRPC clients (`xds:///NAME`): a listener with no socket, only
 * an HttpConnectionManager whose routes pick the cluster. Served only to
 * clients that ask for it by name (see cache/snapshot.ts): an Envoy's
 * wildcard LDS must never receive it.
 */
function apiListener(listener: Listener, source: EnvoyMessage): EnvoyMessage {
  return { name: listener.name, api_listener: { api_listener: httpConnectionManager(listener, source) } };
}

/** tcp_proxy towards a route's target; a route timeout becomes the idle timeout. `logs`: one line per connection. */
function tcpProxyFilter(statPrefix: string, route: Route, logs: EnvoyMessage[] = []): EnvoyMessage {
  const config: EnvoyMessage = { stat_prefix: statPrefix, ...tcpTarget(route.target) };
  if (route.timeout !== undefined) config.idle_timeout = duration(route.timeout);
  if (logs.length > 0) config.access_log = logs;
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typed_config: toAny('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', config),
  };
}

function tcpTarget(target: RouteTarget): EnvoyMessage {
  if (target.kind === 'cluster') return { cluster: target.cluster };
  return { weighted_clusters: { clusters: target.clusters.map((c) => ({ name: c.name, weight: c.weight })) } };
}

/** Burst = rate: a bucket of `perSecond` tokens refilled every second. */
function tokenBucket(perSecond: number): EnvoyMessage {
  return { max_tokens: perSecond, tokens_per_fill: { value: perSecond }, fill_interval: { seconds: 1, nanos: 0 } };
}

/** Requests over the rate get 429 from Envoy. */
function httpRateLimitFilter(statPrefix: string, perSecond: number): EnvoyMessage {
  const always = { default_value: { numerator: 100, denominator: 'HUNDRED' }, runtime_key: `protoplane.${statPrefix}.rate_limit` };
  return {
    name: 'envoy.filters.http.local_ratelimit',
    typed_config: toAny('envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit', {
      stat_prefix: statPrefix,
      token_bucket: tokenBucket(perSecond),
      filter_enabled: always,
      filter_enforced: always,
    }),
  };
}

function tcpListener(listener: Listener, source: EnvoyMessage): EnvoyMessage {
  const route = listener.routes[0];
  if (!route) throw new Error(`listener ${listener.name}: tcp listener without a route`);
  return { ...listenerBase(listener), filter_chains: [chain(listener, source, [tcpProxyFilter(listener.name, route, accessLogs(listener, 'tcp'))])] };
}

function tlsPassthroughListener(listener: Listener): EnvoyMessage {
  const resource: EnvoyMessage = {
    ...listenerBase(listener),
    listener_filters: [
      {
        name: 'envoy.filters.listener.tls_inspector',
        typed_config: toAny('envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector', {}),
      },
    ],
    filter_chains: [],
  };
  const chains: EnvoyMessage[] = [];
  for (const route of listener.routes) {
    if (route.match?.kind === 'sni') {
      chains.push({
        name: route.match.sni,
        filter_chain_match: { server_names: [route.match.sni] },
        filters: [tcpProxyFilter(listener.name, route, accessLogs(listener, 'tcp'))],
      });
    } else {
      resource.default_filter_chain = { name: 'default', filters: [tcpProxyFilter(listener.name, route, accessLogs(listener, 'tcp'))] };
    }
  }
  resource.filter_chains = chains;
  return resource;
}

function proxyProtocolListenerFilter(): EnvoyMessage {
  return {
    name: 'envoy.filters.listener.proxy_protocol',
    typed_config: toAny('envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol', {}),
  };
}

/** Wraps the cluster's transport (TLS, or plain) so the header goes first, in clear. */
function upstreamProxyProtocolSocket(version: 'v1' | 'v2', inner: EnvoyMessage | undefined): EnvoyMessage {
  const transport = inner ?? {
    name: 'envoy.transport_sockets.raw_buffer',
    typed_config: toAny('envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer', {}),
  };
  return {
    name: 'envoy.transport_sockets.upstream_proxy_protocol',
    typed_config: toAny('envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport', {
      config: { version: version === 'v1' ? 'V1' : 'V2' },
      transport_socket: transport,
    }),
  };
}

// ── routes ─────────────────────────────────────────────────────────────────

/** Clusters' retries by name (HTTP routes only: gRPC API listeners retry on gRPC status codes, not these). */
type RetriesByCluster = ReadonlyMap<string, Retries>;

function routeConfiguration(listener: Listener, retries: RetriesByCluster = new Map()): EnvoyMessage {
  return {
    name: listener.name,
    virtual_hosts: [{ name: listener.name, domains: ['*'], routes: listener.routes.map((r) => httpRoute(r, retries)) }],
  };
}

/**
 * A route retries as its cluster says; a weighted route only when every
 * cluster of the split declares the same retries (Envoy has one policy per
 * route, and the retry may land on any cluster of the split).
 */
function retryPolicy(target: RouteTarget, retries: RetriesByCluster): EnvoyMessage | undefined {
  const names = target.kind === 'cluster' ? [target.cluster] : target.clusters.map((c) => c.name);
  const policies = names.map((n) => retries.get(n));
  const first = policies[0];
  if (first === undefined || policies.some((p) => JSON.stringify(p) !== JSON.stringify(first))) return undefined;
  const policy: EnvoyMessage = { retry_on: first.on.join(','), num_retries: { value: first.count } };
  if (first.perTryTimeout !== undefined) policy.per_try_timeout = duration(first.perTryTimeout);
  return policy;
}

function httpRouteMatch(match: HttpMatch | undefined): EnvoyMessage {
  const result: EnvoyMessage = {};
  if (match?.path !== undefined) result.path = match.path;
  else if (match?.regex !== undefined) result.safe_regex = { regex: match.regex };
  else result.prefix = match?.prefix ?? '/';
  if (match && match.headers.length > 0) {
    result.headers = match.headers.map((h) => ({ name: h.name, string_match: { exact: h.value } }));
  }
  return result;
}

function httpRoute(route: Route, retries: RetriesByCluster): EnvoyMessage {
  const action: EnvoyMessage =
    route.target.kind === 'cluster'
      ? { cluster: route.target.cluster }
      : {
          weighted_clusters: {
            clusters: route.target.clusters.map((c) => ({ name: c.name, weight: { value: c.weight } })),
          },
        };
  if (route.timeout !== undefined) action.timeout = duration(route.timeout);
  if (route.idleTimeout !== undefined) action.idle_timeout = duration(route.idleTimeout);
  if (route.maxStreamDuration !== undefined) {
    // A client's grpc-timeout header (its deadline) wins when shorter; 0 = no cap on it.
    action.max_stream_duration = { max_stream_duration: duration(route.maxStreamDuration), grpc_timeout_header_max: duration(route.maxStreamDuration) };
  }
  // Per route: Envoy lets a route enable an upgrade the connection manager does not list.
  if (route.websocket) action.upgrade_configs = [{ upgrade_type: 'websocket' }];
  const retry = retryPolicy(route.target, retries);
  if (retry) action.retry_policy = retry;
  return { match: httpRouteMatch(route.match?.kind === 'http' ? route.match : undefined), route: action };
}

// ── clusters and endpoints ─────────────────────────────────────────────────

const LB_POLICY: Record<Cluster['lb'], string> = {
  round_robin: 'ROUND_ROBIN',
  least_request: 'LEAST_REQUEST',
  random: 'RANDOM',
  ring_hash: 'RING_HASH',
};

/** EDS needs IP endpoints; a cluster naming hosts is resolved by Envoy (STRICT_DNS). */
export function usesEds(cluster: Cluster): boolean {
  return cluster.endpoints.every((e) => isIP(e.host) !== 0);
}

function clusterResource(cluster: Cluster, source: EnvoyMessage): EnvoyMessage {
  const resource: EnvoyMessage = {
    name: cluster.name,
    connect_timeout: duration(cluster.connectTimeout),
    lb_policy: LB_POLICY[cluster.lb],
  };
  if (usesEds(cluster)) {
    resource.type = 'EDS';
    resource.eds_cluster_config = { eds_config: source };
  } else {
    resource.type = 'STRICT_DNS';
    resource.load_assignment = loadAssignment(cluster);
  }
  if (cluster.http2) {
    resource.typed_extension_protocol_options = {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': toAny(
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        { explicit_http_config: { http2_protocol_options: {} } },
      ),
    };
  }
  if (cluster.healthCheck) resource.health_checks = [healthCheck(cluster.healthCheck, cluster.http2)];
  if (cluster.outlierDetection) resource.outlier_detection = outlierDetection(cluster.outlierDetection);
  if (cluster.circuitBreakers) resource.circuit_breakers = circuitBreakers(cluster.circuitBreakers);
  const inner = cluster.tls ? upstreamTlsSocket(cluster, cluster.tls, source) : undefined;
  if (cluster.proxyProtocol) resource.transport_socket = upstreamProxyProtocolSocket(cluster.proxyProtocol, inner);
  else if (inner) resource.transport_socket = inner;
  return resource;
}

function loadAssignment(cluster: Cluster): EnvoyMessage {
  return {
    cluster_name: cluster.name,
    endpoints: [
      {
        // gRPC's xDS client rejects an assignment without a locality and skips
        // localities of weight 0; Envoy ignores both unless locality-weighted LB is on.
        locality: {},
        load_balancing_weight: { value: 1 },
        lb_endpoints: cluster.endpoints.map((e) => ({ endpoint: { address: socketAddress(e.host, e.port) } })),
      },
    ],
  };
}
