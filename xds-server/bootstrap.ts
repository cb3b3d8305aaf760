// `protoplane bootstrap`: an Envoy bootstrap that takes everything from this
// server over ADS (SotW by default, Delta with --delta).
import { isIP } from 'node:net';
import { stringify } from 'yaml';
import { ADMIN_CLUSTER, XDS_CLUSTER } from './translate/index.ts';

export interface BootstrapOptions {
  /**
   * host:port of the xDS server, or of every replica: with several, the xDS
   * cluster lists them all and Envoy reconnects to a live one on its own
   * (docs/ha.md).
   */
  xds: string | readonly string[];
  nodeId: string;
  nodeCluster?: string;
  delta?: boolean;
  /** One stream per resource type (LDS, CDS, and RDS/EDS through them) instead of ADS. */
  perType?: boolean;
  adminPort?: number;
  adminAddress?: string;
  /**
   * host:port of protoplane's admin server, where Envoy fetches Wasm modules
   * when serve runs with --wasm-code remote. Without it the bootstrap has no
   * such cluster: inline and local code need no second address.
   */
  protoplaneAdmin?: string;
  /**
   * Report endpoint health to protoplane over HDS (its /debug/health); default
   * true. Envoy then also runs protoplane's health checks for HDS, beside the
   * clusters' own (docs/config.md, "Health checks").
   */
  hds?: boolean;
  /** mTLS to the xDS server: the CA that signed its certificate, and Envoy's own certificate and key (PEM file paths). */
  xdsTls?: { ca: string; cert: string; key: string };
}

/** UpstreamTlsContext for the xDS cluster: verify the server against `ca`, present `cert`; ALPN h2 (gRPC). */
function xdsTransportSocket(files: { ca: string; cert: string; key: string }): Record<string, unknown> {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      common_tls_context: {
        alpn_protocols: ['h2'],
        tls_certificates: [{ certificate_chain: { filename: files.cert }, private_key: { filename: files.key } }],
        validation_context: { trusted_ca: { filename: files.ca } },
      },
    },
  };
}

export function parseHostPort(value: string): { host: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(value);
  const port = match ? Number(match[2]) : NaN;
  if (!match || !(port >= 1 && port <= 65535)) throw new Error(`expected host:port, got "${value}"`);
  return { host: match[1]!, port };
}

function staticCluster(name: string, at: { host: string; port: number } | readonly { host: string; port: number }[], http2: boolean): Record<string, unknown> {
  const hosts = 'host' in at ? [at] : at;
  return {
    name,
    type: hosts.every((h) => isIP(h.host)) ? 'STATIC' : 'STRICT_DNS',
    connect_timeout: '1s',
    ...(http2
      ? {
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
        }
      : {}),
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: hosts.map((h) => ({ endpoint: { address: { socket_address: { address: h.host, port_value: h.port } } } })) }],
    },
  };
}

/**
 * What the xDS cluster adds when it lists several replicas (verified on stock
 * Envoy 1.40, test/ha/failover.test.ts): when the stream breaks, Envoy's next
 * attempt goes to the next replica (round robin), and a replica that refused
 * a connection is ejected at once (outlier detection on locally originated
 * connect failures: passive, so a fleet of Envoys does not probe every
 * replica) and left out for 30 s, so a dead replica is not tried again and
 * again while a live one is there. Envoy's reconnect back-off (0.5 s base,
 * jittered) stays as it is.
 */
const REPLICA_FAILOVER = {
  outlier_detection: {
    split_external_local_origin_errors: true,
    consecutive_local_origin_failure: 1,
    enforcing_consecutive_local_origin_failure: 100,
    consecutive_5xx: 1000000, // gRPC stream ends are not replica failures
    interval: '1s',
    base_ejection_time: '30s',
    max_ejection_percent: 100,
  },
};

export function bootstrapConfig(options: BootstrapOptions): Record<string, unknown> {
  const addresses = typeof options.xds === 'string' ? [options.xds] : options.xds;
  if (addresses.length === 0) throw new Error('expected at least one xDS address');
  const replicas = addresses.map(parseHostPort);
  // One address: exactly the cluster it always was.
  const xds = replicas.length === 1 ? replicas[0]! : replicas;
  const adsSource = () => ({ ads: {}, resource_api_version: 'V3' });
  const apiType = options.delta ? 'DELTA_GRPC' : 'GRPC';
  const grpcServices = () => [{ envoy_grpc: { cluster_name: XDS_CLUSTER } }];
  const dynamic = options.perType
    ? {
        cds_config: { resource_api_version: 'V3', api_config_source: { api_type: apiType, transport_api_version: 'V3', grpc_services: grpcServices() } },
        lds_config: { resource_api_version: 'V3', api_config_source: { api_type: apiType, transport_api_version: 'V3', grpc_services: grpcServices() } },
      }
    : {
        ads_config: {
          api_type: apiType,
          transport_api_version: 'V3',
          set_node_on_first_message_only: true,
          grpc_services: grpcServices(),
        },
        cds_config: adsSource(),
        lds_config: adsSource(),
      };
  return {
    node: { id: options.nodeId, cluster: options.nodeCluster ?? 'protoplane' },
    admin: {
      address: { socket_address: { address: options.adminAddress ?? '127.0.0.1', port_value: options.adminPort ?? 9901 } },
    },
    dynamic_resources: dynamic,
    ...(options.hds === false ? {} : { hds_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: grpcServices() } }),
    static_resources: {
      clusters: [
        {
          ...staticCluster(XDS_CLUSTER, xds, true),
          ...(replicas.length > 1 ? REPLICA_FAILOVER : {}),
          ...(options.xdsTls ? { transport_socket: xdsTransportSocket(options.xdsTls) } : {}),
        },
        ...(options.protoplaneAdmin ? [staticCluster(ADMIN_CLUSTER, parseHostPort(options.protoplaneAdmin), false)] : []),
      ],
    },
  };
}

export function bootstrapYaml(options: BootstrapOptions): string {
  return stringify(bootstrapConfig(options));
}
