// Raw (validated) mesh -> model: defaults applied, durations in ms, endpoints
// split into host and port, routes into match + target. Runs only after the
// schema and semantic checks passed, so every parse here succeeds.

import type {
  Cluster,
  DurationMs,
  HealthCheck,
  HostPort,
  Listener,
  Mesh,
  Route,
  RouteMatch,
  RouteTarget,
} from '../model/types.ts';
import path from 'node:path';
import type { AccessLog, DownstreamTls, RetryOn, UpstreamTls } from '../model/types.ts';
import type { RawAccessLog, RawCluster, RawHealthCheck, RawListener, RawMesh, RawRoute, RawTls } from './raw.ts';
import { isBuiltinProtocol } from '../model/types.ts';
import type { ItemListeners } from './schema.ts';
import { itemListenerName, parseCidr } from './semantic.ts';
import { parseBindAddress, parseDuration, parseHostPort, type Parsed } from './values.ts';
import { circuitBreakersOf, healthCheckOf as resilientHealthCheckOf, outlierDetectionOf } from './resilience.ts';

export const DEFAULTS = {
  address: '0.0.0.0',
  lb: 'round_robin',
  http2: false,
  connectTimeoutMs: 5_000,
  healthCheckTimeoutMs: 1_000,
  /** protocol: auto: how long Envoy waits for a client's first bytes (Linkerd's default too). */
  detectionTimeoutMs: 10_000,
  retryOn: '5xx',
  retryCount: 1,
  accessLogFormat: 'json',
} as const;

function must<T>(r: Parsed<T>): T {
  if (!r.ok) throw new Error(`internal: value passed validation but does not parse: ${r.reason}`);
  return r.value;
}

const ms = (text: string): DurationMs => must(parseDuration(text));

function matchOf(l: RawListener, r: RawRoute): RouteMatch | undefined {
  const m = r.match;
  if (m === undefined) return undefined;
  if (l.protocol === 'http' || l.protocol === 'grpc' || l.protocol === 'auto') {
    const headers = m['headers'];
    const list =
      typeof headers === 'object' && headers !== null
        ? Object.entries(headers).map(([name, value]) => ({ name, value: String(value) }))
        : [];
    return {
      kind: 'http',
      ...(typeof m['prefix'] === 'string' ? { prefix: m['prefix'] } : {}),
      ...(typeof m['path'] === 'string' ? { path: m['path'] } : {}),
      ...(typeof m['regex'] === 'string' ? { regex: m['regex'] } : {}),
      headers: list,
    };
  }
  if (l.protocol === 'tls') return { kind: 'sni', sni: String(m['sni']) };
  if (l.transport === 'udp') {
    const source = m['source'];
    const ranges = (Array.isArray(source) ? source : [source]).map((r) => parseCidr(String(r))!);
    return { kind: 'source', ranges };
  }
  if (!isBuiltinProtocol(l.protocol)) return { kind: 'filter', attributes: { ...m } };
  return undefined;
}

function targetOf(r: RawRoute): RouteTarget {
  if (r.cluster !== undefined) return { kind: 'cluster', cluster: r.cluster };
  return {
    kind: 'weighted',
    clusters: Object.entries(r.clusters ?? {}).map(([name, weight]) => ({ name, weight })),
  };
}

function routeOf(l: RawListener, r: RawRoute): Route {
  const match = matchOf(l, r);
  const target = targetOf(r);
  const route: Route = match === undefined ? { target } : { match, target };
  const timed = r.timeout === undefined ? route : { ...route, timeout: ms(r.timeout) };
  const streamed = {
    ...timed,
    ...(r.idle_timeout !== undefined ? { idleTimeout: ms(r.idle_timeout) } : {}),
    ...(r.max_stream_duration !== undefined ? { maxStreamDuration: ms(r.max_stream_duration) } : {}),
  };
  return r.websocket === true ? { ...streamed, websocket: true } : streamed;
}

/** Certificate paths are relative to the mesh file's folder. */
function tlsOf(t: RawTls, baseDir: string): DownstreamTls {
  const abs = (file: string): string => path.resolve(baseDir, file);
  return {
    certificates: t.certificates.map((c) => ({ certFile: abs(c.cert), keyFile: abs(c.key) })),
    ...(t.min_version !== undefined ? { minVersion: t.min_version } : {}),
    ...(t.alpn !== undefined ? { alpn: [...t.alpn] } : {}),
    ...(t.client_ca !== undefined ? { clientCa: abs(t.client_ca) } : {}),
    ...(t.allowed_sans !== undefined ? { allowedSans: [...t.allowed_sans] } : {}),
  };
}

/** `stdout` and `/dev/stdout` are the same log; every form defaults to JSON. */
function accessLogsOf(raw: RawAccessLog | RawAccessLog[]): AccessLog[] {
  return (Array.isArray(raw) ? raw : [raw]).map((entry) => {
    const { path: to, format = DEFAULTS.accessLogFormat } = typeof entry === 'string' ? { path: entry } : entry;
    if (to === 'stdout' || to === '/dev/stdout') return { kind: 'stdout', format };
    if (to === 'stderr' || to === '/dev/stderr') return { kind: 'stderr', format };
    return { kind: 'file', path: to, format };
  });
}

function listenerOf(l: RawListener, itemListeners: ReadonlyMap<string, ItemListeners>, baseDir: string): Listener {
  const out: Listener = {
    name: l.name,
    address: l.address === undefined ? DEFAULTS.address : must(parseBindAddress(l.address)),
    port: l.port ?? 0,
    protocol: l.protocol,
    routes: l.routes.map((r) => routeOf(l, r)),
    ...(l.transport === 'udp' ? { transport: 'udp' as const } : {}),
    ...(l.idle_timeout !== undefined ? { idleTimeout: ms(l.idle_timeout) } : {}),
    ...(l.protocol === 'auto' && l.tcp !== undefined
      ? {
          detection: {
            tcp: { target: targetOf(l.tcp), ...(l.tcp.timeout !== undefined ? { timeout: ms(l.tcp.timeout) } : {}) },
            timeout: l.detection_timeout === undefined ? DEFAULTS.detectionTimeoutMs : ms(l.detection_timeout),
          },
        }
      : {}),
    ...(l.tls !== undefined ? { tls: tlsOf(l.tls, baseDir) } : {}),
    ...(l.proxy_protocol === true ? { proxyProtocol: true as const } : {}),
    ...(l.access_log !== undefined ? { accessLogs: accessLogsOf(l.access_log) } : {}),
    ...(l.rate_limit?.requests_per_second !== undefined ? { rateLimit: { kind: 'requests' as const, perSecond: l.rate_limit.requests_per_second } } : {}),
    ...(l.rate_limit?.connections_per_second !== undefined ? { rateLimit: { kind: 'connections' as const, perSecond: l.rate_limit.connections_per_second } } : {}),
    ...(l.max_connections !== undefined ? { maxConnections: l.max_connections } : {}),
  };
  if (l.filter === undefined) return out;
  const filter = { ...l.filter };
  const spec = itemListeners.get(l.protocol);
  const items = spec === undefined ? undefined : filter[spec.array];
  if (spec === undefined || !Array.isArray(items) || items.length === 0) return { ...out, filter };
  // Semantic checks made each item a map with a valid id, port and defined cluster.
  const generated = (items as Array<Record<string, unknown>>).map((item): Listener => {
    const id = item[spec.id] as string | number;
    return {
      name: itemListenerName(l.name, spec, id),
      address: out.address,
      port: item[spec.port] as number,
      protocol: l.protocol,
      routes: [{ target: { kind: 'cluster', cluster: item[spec.cluster] as string } }],
      filter: { ...filter, [spec.setting]: id },
      // the same clients reach every item's port the way they reach the parent's
      ...(out.proxyProtocol ? { proxyProtocol: true as const } : {}),
      ...(out.accessLogs ? { accessLogs: out.accessLogs } : {}),
      // and the parent's connection limits hold on each of them
      ...(out.rateLimit ? { rateLimit: out.rateLimit } : {}),
      ...(out.maxConnections !== undefined ? { maxConnections: out.maxConnections } : {}),
    };
  });
  return { ...out, filter, generated };
}

function healthCheckOf(h: RawHealthCheck): HealthCheck {
  return resilientHealthCheckOf(h, DEFAULTS.healthCheckTimeoutMs);
}

function upstreamTlsOf(t: NonNullable<RawCluster['tls']>, baseDir: string): UpstreamTls {
  const abs = (file: string): string => path.resolve(baseDir, file);
  return {
    ...(t.sni !== undefined ? { sni: t.sni } : {}),
    ...(t.ca !== undefined ? { ca: abs(t.ca) } : {}),
    ...(t.cert !== undefined && t.key !== undefined ? { certificate: { certFile: abs(t.cert), keyFile: abs(t.key) } } : {}),
    ...(t.alpn !== undefined ? { alpn: [...t.alpn] } : {}),
  };
}

function clusterOf(c: RawCluster, baseDir: string): Cluster {
  const endpoints: HostPort[] = c.endpoints.map((e) => must(parseHostPort(e)));
  const out: Cluster = {
    name: c.name,
    endpoints,
    lb: c.lb ?? DEFAULTS.lb,
    http2: c.http2 ?? DEFAULTS.http2,
    connectTimeout: c.connect_timeout === undefined ? DEFAULTS.connectTimeoutMs : ms(c.connect_timeout),
  };
  const withHc = c.health_check === undefined ? out : { ...out, healthCheck: healthCheckOf(c.health_check) };
  const withTls = c.tls === undefined ? withHc : { ...withHc, tls: upstreamTlsOf(c.tls, baseDir) };
  const withPp = c.proxy_protocol === undefined ? withTls : { ...withTls, proxyProtocol: c.proxy_protocol };
  const withOd = c.outlier_detection === undefined ? withPp : { ...withPp, outlierDetection: outlierDetectionOf(c.outlier_detection) };
  const checked = c.circuit_breakers === undefined ? withOd : { ...withOd, circuitBreakers: circuitBreakersOf(c.circuit_breakers) };
  if (c.retries === undefined) return checked;
  const on = c.retries.on ?? DEFAULTS.retryOn;
  return {
    ...checked,
    retries: {
      // The schema allowed only RETRY_ON values.
      on: (Array.isArray(on) ? on : [on]) as RetryOn[],
      count: c.retries.count ?? DEFAULTS.retryCount,
      ...(c.retries.per_try_timeout !== undefined ? { perTryTimeout: ms(c.retries.per_try_timeout) } : {}),
    },
  };
}

/** `itemListeners`: per protocol, the settings array whose items spawn listeners (see ItemListeners). */
/** `baseDir`: the mesh file's folder, which relative certificate paths start from. */
export function normalise(raw: RawMesh, itemListeners: ReadonlyMap<string, ItemListeners> = new Map(), baseDir = '.'): Mesh {
  return {
    listeners: (raw.listeners ?? []).map((l) => listenerOf(l, itemListeners, baseDir)),
    clusters: (raw.clusters ?? []).map((c) => clusterOf(c, baseDir)),
  };
}
