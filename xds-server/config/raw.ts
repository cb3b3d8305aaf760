// The shape of a mesh file after the schema accepted it (before defaults and
// normalisation). Only semantic.ts and normalise.ts see these types.

import type { LbPolicy, Protocol } from '../model/types.ts';

export interface RawRoute {
  match?: Record<string, unknown>;
  cluster?: string;
  clusters?: Record<string, number>;
  timeout?: string;
  websocket?: boolean;
  idle_timeout?: string;
  max_stream_duration?: string;
}

export interface RawListener {
  name: string;
  address?: string;
  port?: number;
  protocol: Protocol;
  transport?: 'tcp' | 'udp';
  idle_timeout?: string;
  routes: RawRoute[];
  filter?: Record<string, unknown>;
  /** protocol: auto only */
  tcp?: RawRoute;
  detection_timeout?: string;
  tls?: RawTls;
  proxy_protocol?: boolean;
  access_log?: RawAccessLog | RawAccessLog[];
  rate_limit?: { requests_per_second?: number; connections_per_second?: number };
  max_connections?: number;
}

/** "stdout", "stderr", an absolute path, or { path, format }. */
export type RawAccessLog = string | { path: string; format?: 'json' | 'text' };

export interface RawTls {
  certificates: Array<{ cert: string; key: string }>;
  min_version?: '1.0' | '1.1' | '1.2' | '1.3';
  alpn?: string[];
  client_ca?: string;
  allowed_sans?: string[];
}

export interface RawHealthCheck {
  interval: string;
  timeout?: string;
  unhealthy_threshold?: number;
  healthy_threshold?: number;
  tcp?: { send?: string; expect?: string; send_hex?: string; expect_hex?: string };
  http?: { path: string; expected_statuses?: Array<number | string> };
}

export interface RawCluster {
  name: string;
  endpoints: string[];
  lb?: LbPolicy;
  http2?: boolean;
  connect_timeout?: string;
  health_check?: RawHealthCheck;
  retries?: { on?: string | string[]; count?: number; per_try_timeout?: string };
  tls?: { sni?: string; ca?: string; cert?: string; key?: string; alpn?: string[] };
  proxy_protocol?: 'v1' | 'v2';
  outlier_detection?: {
    consecutive_5xx?: number;
    consecutive_gateway_failure?: number;
    interval?: string;
    base_ejection_time?: string;
    max_ejection_percent?: number;
  };
  circuit_breakers?: { max_connections?: number; max_pending_requests?: number; max_requests?: number; max_retries?: number };
}

export interface RawMesh {
  listeners?: RawListener[];
  clusters?: RawCluster[];
}
