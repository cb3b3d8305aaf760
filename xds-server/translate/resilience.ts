// Resilience and limits (issue 21, item 5), translated purely: a cluster's
// health checks, outlier detection and circuit breakers, and the network
// filters that limit a listener's connections (connection_limit, and the
// connections/s local_ratelimit), placed first in every filter chain so a
// refused connection never reaches tcp_proxy, the HTTP connection manager or
// a Wasm filter.
import type { CircuitBreakers, DurationMs, HealthCheck, Listener, OutlierDetection } from '../model/types.ts';
import type { EnvoyMessage } from '../model/resources.ts';
import { toAny } from '../protos/index.ts';

/** Defaults protoplane sets where Envoy has none (docs/config.md, "Health checks"). */
export const HEALTH_CHECK_DEFAULTS = { unhealthyThreshold: 2, healthyThreshold: 1 } as const;

function duration(ms: DurationMs): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: Math.round((ms % 1000) * 1e6) };
}

const hexOf = (text: string): string => Buffer.from(text, 'utf8').toString('hex');

/**
 * Envoy's HealthCheck. `no_traffic_interval` is the check interval: Envoy's
 * default (60 s) would apply to a cluster no request has reached yet, and to
 * every cluster Envoy checks for HDS (they carry no traffic), so a failure
 * there would show a minute late.
 */
export function healthCheck(check: HealthCheck, http2 = false): EnvoyMessage {
  const base: EnvoyMessage = {
    timeout: duration(check.timeout),
    interval: duration(check.interval),
    no_traffic_interval: duration(check.interval),
    unhealthy_threshold: { value: check.unhealthyThreshold ?? HEALTH_CHECK_DEFAULTS.unhealthyThreshold },
    healthy_threshold: { value: check.healthyThreshold ?? HEALTH_CHECK_DEFAULTS.healthyThreshold },
  };
  if (check.kind === 'http') {
    const http: EnvoyMessage = { path: check.path };
    // Envoy's ranges end exclusively; ours are inclusive.
    if (check.expectedStatuses) http.expected_statuses = check.expectedStatuses.map((r) => ({ start: r.from, end: r.to + 1 }));
    if (http2) http.codec_client_type = 'HTTP2';
    return { ...base, http_health_check: http };
  }
  const tcp: EnvoyMessage = {};
  const send = check.sendHex ?? (check.send !== undefined ? hexOf(check.send) : undefined);
  const expect = check.expectHex ?? (check.expect !== undefined ? hexOf(check.expect) : undefined);
  if (send !== undefined) tcp.send = { text: send };
  if (expect !== undefined) tcp.receive = [{ text: expect }];
  return { ...base, tcp_health_check: tcp };
}

/**
 * Envoy's OutlierDetection with only the fields the user wrote. Naming
 * `consecutive_gateway_failure` also enforces it: Envoy counts gateway
 * failures by default but ejects on them only when told to.
 */
export function outlierDetection(o: OutlierDetection): EnvoyMessage {
  const out: EnvoyMessage = {};
  if (o.consecutive5xx !== undefined) out.consecutive_5xx = { value: o.consecutive5xx };
  if (o.consecutiveGatewayFailure !== undefined) {
    out.consecutive_gateway_failure = { value: o.consecutiveGatewayFailure };
    out.enforcing_consecutive_gateway_failure = { value: 100 };
  }
  if (o.interval !== undefined) out.interval = duration(o.interval);
  if (o.baseEjectionTime !== undefined) out.base_ejection_time = duration(o.baseEjectionTime);
  if (o.maxEjectionPercent !== undefined) out.max_ejection_percent = { value: o.maxEjectionPercent };
  return out;
}

/** Thresholds of the default priority (protoplane has no priorities); absent ones are Envoy's defaults. */
export function circuitBreakers(b: CircuitBreakers): EnvoyMessage {
  const t: EnvoyMessage = { priority: 'DEFAULT' };
  if (b.maxConnections !== undefined) t.max_connections = { value: b.maxConnections };
  if (b.maxPendingRequests !== undefined) t.max_pending_requests = { value: b.maxPendingRequests };
  if (b.maxRequests !== undefined) t.max_requests = { value: b.maxRequests };
  if (b.maxRetries !== undefined) t.max_retries = { value: b.maxRetries };
  return { thresholds: [t] };
}

/** Burst = rate: a bucket of `perSecond` tokens refilled every second. */
function tokenBucket(perSecond: number): EnvoyMessage {
  return { max_tokens: perSecond, tokens_per_fill: { value: perSecond }, fill_interval: { seconds: 1, nanos: 0 } };
}

/** Network filters that refuse a listener's connections over its limits, in the order they run. */
export function connectionLimitFilters(listener: Listener): EnvoyMessage[] {
  const filters: EnvoyMessage[] = [];
  if (listener.rateLimit?.kind === 'connections') {
    // Connections over the rate are closed at once.
    filters.push({
      name: 'envoy.filters.network.local_ratelimit',
      typed_config: toAny('envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit', {
        stat_prefix: listener.name,
        token_bucket: tokenBucket(listener.rateLimit.perSecond),
      }),
    });
  }
  if (listener.maxConnections !== undefined) {
    // Counts the connections this filter chain holds open; one over is closed at once (no delay).
    filters.push({
      name: 'envoy.filters.network.connection_limit',
      typed_config: toAny('envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit', {
        stat_prefix: listener.name,
        max_connections: { value: listener.maxConnections },
      }),
    });
  }
  return filters;
}

/** Puts the connection limits first in every filter chain of a translated (TCP) listener. */
export function withConnectionLimits(resource: EnvoyMessage, listener: Listener): EnvoyMessage {
  const limits = connectionLimitFilters(listener);
  if (limits.length === 0 || resource['api_listener'] !== undefined) return resource;
  const limited = (chain: EnvoyMessage): EnvoyMessage => ({ ...chain, filters: [...limits, ...((chain['filters'] as EnvoyMessage[] | undefined) ?? [])] });
  const out: EnvoyMessage = { ...resource };
  if (Array.isArray(resource['filter_chains'])) out['filter_chains'] = (resource['filter_chains'] as EnvoyMessage[]).map(limited);
  if (resource['default_filter_chain'] !== undefined) out['default_filter_chain'] = limited(resource['default_filter_chain'] as EnvoyMessage);
  return out;
}

