// The validated, normalised mesh. Everything downstream of config/ sees only
// these types; positions and YAML details stay in config/.

/**
 * http | grpc | tcp | tls | auto are built in (grpc: an API listener for proxyless
 * gRPC clients, `xds:///NAME`, no port; auto: HTTP/1.1, h2c and opaque TCP on
 * one port, told apart by Envoy's http_inspector). Any other protocol (mqtt, kafka,
 * coap, or a dropped-in filter's) is served by the Wasm filter under
 * filters/ whose manifest declares it.
 */
export type BuiltinProtocol = 'http' | 'grpc' | 'tcp' | 'tls' | 'auto';
export type Protocol = string;
export const BUILTIN_PROTOCOLS: readonly BuiltinProtocol[] = ['http', 'grpc', 'tcp', 'tls', 'auto'];
export function isBuiltinProtocol(protocol: string): protocol is BuiltinProtocol {
  return (BUILTIN_PROTOCOLS as readonly string[]).includes(protocol);
}
export type LbPolicy = 'round_robin' | 'least_request' | 'random' | 'ring_hash';

/** Milliseconds. Durations in YAML ("150ms", "5s", "1m") are normalised here. */
export type DurationMs = number;

export interface HostPort {
  host: string;
  port: number;
}

export interface HttpMatch {
  kind: 'http';
  prefix?: string;
  path?: string;
  regex?: string;
  /** Exact-value header matches, in the order written. */
  headers: ReadonlyArray<{ name: string; value: string }>;
}

export interface SniMatch {
  kind: 'sni';
  sni: string;
}

/**
 * Match attributes of a protocol listener (client_id, topic, ...). Their
 * schema belongs to the filter that parses the protocol.
 */
export interface FilterMatch {
  kind: 'filter';
  attributes: Readonly<Record<string, unknown>>;
}

/**
 * A UDP protocol listener's route (Envoy's udp_proxy, no Wasm): the client's
 * source address within one of the ranges.
 */
export interface SourceMatch {
  kind: 'source';
  ranges: ReadonlyArray<{ address: string; prefixLen: number }>;
}

export type RouteMatch = HttpMatch | SniMatch | FilterMatch | SourceMatch;

export type RouteTarget =
  | { kind: 'cluster'; cluster: string }
  | { kind: 'weighted'; clusters: ReadonlyArray<{ name: string; weight: number }> };

export interface Route {
  /** Absent on a catch-all route (tcp, the default route of tls/protocol listeners). */
  match?: RouteMatch;
  target: RouteTarget;
  timeout?: DurationMs;
  /** http/auto routes: WebSocket upgrades allowed (Envoy's route upgrade_configs). */
  websocket?: true;
  /** http/auto routes: a stream with no bytes either way for this long is reset (Envoy's route idle_timeout). */
  idleTimeout?: DurationMs;
  /**
   * http/auto routes: the stream model instead of `timeout` — at most this long
   * from the request's first byte (0: no limit), or the client's gRPC deadline
   * (grpc-timeout) when it is shorter. Never together with `timeout`.
   */
  maxStreamDuration?: DurationMs;
}

export interface Listener {
  name: string;
  address: string;
  /** 0 for grpc listeners, which bind nothing. */
  port: number;
  protocol: Protocol;
  /**
   * 'udp': a datagram protocol listener (coap), served by Envoy's udp_proxy
   * without the Wasm filter; absent means TCP.
   */
  transport?: 'udp';
  /** udp_proxy's session idle timeout (UDP listeners only; Envoy's default is 1 minute). */
  idleTimeout?: DurationMs;
  routes: ReadonlyArray<Route>;
  /**
   * `protocol: auto` only: where connections that are not HTTP/1.x or h2c go
   * (tcp_proxy), and how long Envoy waits for the first bytes before sending
   * the connection there anyway.
   */
  detection?: { tcp: Route; timeout: DurationMs };
  /** Local rate limit: requests/s on http and auto listeners, connections/s on tcp and protocol ones (burst = the rate). */
  rateLimit?: { kind: 'requests' | 'connections'; perSecond: number };
  /** Open connections at most, per filter chain (Envoy's connection_limit network filter); more are closed at once. */
  maxConnections?: number;
  /** Accept a PROXY protocol v1 or v2 header first (Envoy's proxy_protocol listener filter). */
  proxyProtocol?: true;
  /** Where Envoy writes one line per request (http) or per connection (tcp, tls, protocol) or UDP session. */
  accessLogs?: ReadonlyArray<AccessLog>;
  /** TLS termination (http and tcp listeners); certificates reach Envoy over SDS. */
  tls?: DownstreamTls;
  /** Filter-owned settings (protocol listeners only). */
  filter?: Readonly<Record<string, unknown>>;
  /**
   * Listeners this one's filter settings spawn (the manifest's `item_listeners`,
   * e.g. one per Kafka broker): each on its own port, with one route, the same
   * protocol and settings plus the item's id. Translated and checked like this one.
   */
  generated?: ReadonlyArray<Listener>;
}

/** json: protoplane's JSON fields (docs/config.md "Access logs"); text: Envoy's default format line. */
export type AccessLogFormat = 'json' | 'text';

/** An access log: Envoy's stdout or stderr, or a file (an absolute path on Envoy's machine). */
export type AccessLog =
  | { kind: 'stdout' | 'stderr'; format: AccessLogFormat }
  | { kind: 'file'; path: string; format: AccessLogFormat };

/** Absolute paths of one certificate chain and its key (PEM). */
export interface TlsCertificate {
  certFile: string;
  keyFile: string;
}

export type TlsVersion = '1.0' | '1.1' | '1.2' | '1.3';

export interface DownstreamTls {
  /** Envoy serves the one whose names match the client's SNI (the first when none does). */
  certificates: ReadonlyArray<TlsCertificate>;
  minVersion?: TlsVersion;
  /** ALPN offered; absent: h2 + http/1.1 on http listeners, none on tcp ones. */
  alpn?: ReadonlyArray<string>;
  /** mTLS: clients must present a certificate this CA (PEM file, absolute path) signed. */
  clientCa?: string;
  /** mTLS: and one of these SANs (URI when it has "://", else DNS), exact. */
  allowedSans?: ReadonlyArray<string>;
}

/**
 * Thresholds absent: Envoy's defaults as docs/config.md gives them (translate/resilience.ts).
 * tcp: `send`/`expect` are text, `sendHex`/`expectHex` bytes as hex (one of each pair).
 * http: `expectedStatuses` absent means 200 only (Envoy's default); ranges are inclusive.
 */
export type HealthCheck = (
  | { kind: 'tcp'; interval: DurationMs; timeout: DurationMs; send?: string; expect?: string; sendHex?: string; expectHex?: string }
  | { kind: 'http'; interval: DurationMs; timeout: DurationMs; path: string; expectedStatuses?: ReadonlyArray<{ from: number; to: number }> }
) & { unhealthyThreshold?: number; healthyThreshold?: number };

/** Envoy's outlier detection; absent fields are Envoy's defaults. */
export interface OutlierDetection {
  consecutive5xx?: number;
  /** Set: ejections on consecutive 502/503/504 are enforced (Envoy counts but does not enforce them by default). */
  consecutiveGatewayFailure?: number;
  interval?: DurationMs;
  baseEjectionTime?: DurationMs;
  maxEjectionPercent?: number;
}

/** Envoy's circuit breaker thresholds (default priority); absent fields are Envoy's defaults. */
export interface CircuitBreakers {
  maxConnections?: number;
  maxPendingRequests?: number;
  maxRequests?: number;
  maxRetries?: number;
}

export interface Cluster {
  name: string;
  endpoints: ReadonlyArray<HostPort>;
  lb: LbPolicy;
  http2: boolean;
  connectTimeout: DurationMs;
  healthCheck?: HealthCheck;
  /** Retries of HTTP requests routed to this cluster (Envoy's route retry_policy). */
  retries?: Retries;
  /** Send a PROXY protocol header of this version to the endpoints (the downstream's addresses). */
  proxyProtocol?: 'v1' | 'v2';
  /** TLS towards the endpoints; files reach Envoy over SDS like a listener's. */
  tls?: UpstreamTls;
  /** Passive health: endpoints that keep failing are ejected for a while. */
  outlierDetection?: OutlierDetection;
  circuitBreakers?: CircuitBreakers;
}

export interface UpstreamTls {
  /** SNI sent; with `ca`, also the DNS SAN the endpoint's certificate must carry. */
  sni?: string;
  /** PEM file (absolute path): endpoints must present a certificate it signed. Absent: not verified. */
  ca?: string;
  /** Client certificate for upstream mTLS. */
  certificate?: TlsCertificate;
  alpn?: ReadonlyArray<string>;
}

/** Envoy `retry_on` conditions protoplane accepts. */
export const RETRY_ON = ['5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-4xx', 'refused-stream'] as const;
export type RetryOn = (typeof RETRY_ON)[number];

export interface Retries {
  on: ReadonlyArray<RetryOn>;
  count: number;
  perTryTimeout?: DurationMs;
}

export interface Mesh {
  listeners: ReadonlyArray<Listener>;
  clusters: ReadonlyArray<Cluster>;
}
