// Resilience options of clusters and listeners (issue 21, item 5): the schema
// fragments of `outlier_detection`, `circuit_breakers` and a health check's
// extras, and the checks that need more than one key. Kept apart from
// schema.ts/semantic.ts so those only gain one line each.
import type { Path } from './source.ts';
import type { RawCluster, RawHealthCheck, RawListener } from './raw.ts';
import { isBuiltinProtocol, type CircuitBreakers, type DurationMs, type HealthCheck, type OutlierDetection } from '../model/types.ts';
import { parseDuration } from './values.ts';

const MESSAGE = 'x-message';

const count = (min: number, max?: number): Record<string, unknown> => ({
  type: 'integer',
  minimum: min,
  ...(max === undefined ? {} : { maximum: max }),
  [MESSAGE]: max === undefined ? `must be an integer >= ${min}` : `must be an integer from ${min} to ${max}`,
});
const positiveDuration = { type: 'string', format: 'positive-duration' };

/** Envoy's outlier detection, the keys an Envoy (or Kuma) user knows. */
export const outlierDetectionSchema = {
  title: 'outlier_detection',
  type: 'object',
  additionalProperties: false,
  properties: {
    consecutive_5xx: count(1),
    consecutive_gateway_failure: count(1),
    interval: positiveDuration,
    base_ejection_time: positiveDuration,
    max_ejection_percent: count(0, 100),
  },
};

/** Envoy's circuit breaker thresholds (default priority). */
export const circuitBreakersSchema = {
  title: 'circuit_breakers',
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    max_connections: count(1),
    max_pending_requests: count(1),
    max_requests: count(1),
    max_retries: count(0),
  },
  [MESSAGE]: { minProperties: 'circuit_breakers needs at least one of max_connections, max_pending_requests, max_requests, max_retries' },
};

const hexBytes = {
  type: 'string',
  pattern: '^([0-9a-fA-F]{2})+$',
  [MESSAGE]: { pattern: 'must be hex bytes, two digits each, like "50494e470d0a"' },
};

/** Extra keys of `health_check`, and of its `tcp` and `http` maps. */
export const healthCheckProperties = {
  unhealthy_threshold: count(1),
  healthy_threshold: count(1),
};
export const tcpHealthCheckProperties = { send_hex: hexBytes, expect_hex: hexBytes };
export const httpHealthCheckProperties = {
  expected_statuses: {
    type: 'array',
    minItems: 1,
    items: {
      oneOf: [
        { type: 'integer', minimum: 100, maximum: 599 },
        { type: 'string', pattern: '^[1-5][0-9][0-9]-[1-5][0-9][0-9]$' },
      ],
      [MESSAGE]: 'must be a status code from 100 to 599, or an inclusive range like "200-299"',
    },
  },
};

/** Parses an inclusive "200-299" range; undefined when it is not one. */
export function statusRange(text: string): { from: number; to: number } | undefined {
  const m = /^([1-5][0-9][0-9])-([1-5][0-9][0-9])$/.exec(text);
  return m ? { from: Number(m[1]), to: Number(m[2]) } : undefined;
}

type Problem = [Path, string, 'value' | 'key'];

/** Checks of one cluster's resilience options; paths are relative to the cluster. */
export function clusterResilienceProblems(c: RawCluster): Problem[] {
  const out: Problem[] = [];
  const hc = c.health_check;
  if (hc?.tcp?.send !== undefined && hc.tcp.send_hex !== undefined) {
    out.push([['health_check', 'tcp', 'send_hex'], 'use "send" (text) or "send_hex" (bytes), not both', 'key']);
  }
  if (hc?.tcp?.expect !== undefined && hc.tcp.expect_hex !== undefined) {
    out.push([['health_check', 'tcp', 'expect_hex'], 'use "expect" (text) or "expect_hex" (bytes), not both', 'key']);
  }
  hc?.http?.expected_statuses?.forEach((s, i) => {
    const range = typeof s === 'string' ? statusRange(s) : undefined;
    if (range && range.from > range.to) {
      out.push([['health_check', 'http', 'expected_statuses', i], `range "${s}" is empty: its first status is above its last`, 'value']);
    }
  });
  return out;
}

/** Checks of one listener's connection limits; paths are relative to the listener. */
export function listenerLimitProblems(l: RawListener): Problem[] {
  const out: Problem[] = [];
  if (l.max_connections !== undefined && (l.protocol === 'grpc' || l.transport === 'udp')) {
    const why = l.protocol === 'grpc' ? 'a grpc API listener accepts no connections' : 'a UDP listener has no connections';
    out.push([['max_connections'], `"max_connections" is for listeners that accept TCP connections; ${why}`, 'key']);
  }
  const perSecond = l.rate_limit?.connections_per_second;
  if (perSecond !== undefined) {
    const filterProtocol = !isBuiltinProtocol(l.protocol);
    if (filterProtocol && l.transport === 'udp') {
      out.push([['rate_limit', 'connections_per_second'], '"connections_per_second" is for TCP listeners; a UDP listener has no connections', 'key']);
    } else if (l.protocol !== 'tcp' && !filterProtocol) {
      const hint = l.protocol === 'http' || l.protocol === 'auto' ? '; use "requests_per_second"' : '';
      out.push([['rate_limit', 'connections_per_second'], `"connections_per_second" is for tcp and protocol (filter) listeners${hint}`, 'key']);
    }
  }
  return out;
}

// ── normalising (runs only on a file the checks accepted) ──────────────────

const ms = (text: string): DurationMs => {
  const r = parseDuration(text);
  if (!r.ok) throw new Error(`internal: value passed validation but does not parse: ${r.reason}`);
  return r.value;
};

/** Only the keys written: absent ones stay Envoy's defaults (docs/config.md lists them). */
export function outlierDetectionOf(o: NonNullable<RawCluster['outlier_detection']>): OutlierDetection {
  return {
    ...(o.consecutive_5xx !== undefined ? { consecutive5xx: o.consecutive_5xx } : {}),
    ...(o.consecutive_gateway_failure !== undefined ? { consecutiveGatewayFailure: o.consecutive_gateway_failure } : {}),
    ...(o.interval !== undefined ? { interval: ms(o.interval) } : {}),
    ...(o.base_ejection_time !== undefined ? { baseEjectionTime: ms(o.base_ejection_time) } : {}),
    ...(o.max_ejection_percent !== undefined ? { maxEjectionPercent: o.max_ejection_percent } : {}),
  };
}

export function circuitBreakersOf(b: NonNullable<RawCluster['circuit_breakers']>): CircuitBreakers {
  return {
    ...(b.max_connections !== undefined ? { maxConnections: b.max_connections } : {}),
    ...(b.max_pending_requests !== undefined ? { maxPendingRequests: b.max_pending_requests } : {}),
    ...(b.max_requests !== undefined ? { maxRequests: b.max_requests } : {}),
    ...(b.max_retries !== undefined ? { maxRetries: b.max_retries } : {}),
  };
}

export function healthCheckOf(h: RawHealthCheck, defaultTimeoutMs: DurationMs): HealthCheck {
  const common = {
    interval: ms(h.interval),
    timeout: h.timeout === undefined ? defaultTimeoutMs : ms(h.timeout),
    ...(h.unhealthy_threshold !== undefined ? { unhealthyThreshold: h.unhealthy_threshold } : {}),
    ...(h.healthy_threshold !== undefined ? { healthyThreshold: h.healthy_threshold } : {}),
  };
  if (h.http) {
    const statuses = h.http.expected_statuses?.map((s) => (typeof s === 'number' ? { from: s, to: s } : statusRange(s)!));
    return { kind: 'http', ...common, path: h.http.path, ...(statuses ? { expectedStatuses: statuses } : {}) };
  }
  const t = h.tcp ?? {};
  return {
    kind: 'tcp',
    ...common,
    ...(t.send !== undefined ? { send: t.send } : {}),
    ...(t.expect !== undefined ? { expect: t.expect } : {}),
    ...(t.send_hex !== undefined ? { sendHex: t.send_hex.toLowerCase() } : {}),
    ...(t.expect_hex !== undefined ? { expectHex: t.expect_hex.toLowerCase() } : {}),
  };
}
