// `protoplane bootstrap`: an Envoy bootstrap that takes everything from this
// server over ADS (SotW by default, Delta with --delta).
import { isIP } from 'node:net';
import { stringify } from 'yaml';
import { ADMIN_CLUSTER, XDS_CLUSTER } from './translate/index.ts';

export interface BootstrapOptions {
  xds: string; // host:port of the xDS server
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

function staticCluster(name: string, at: { host: string; port: number }, http2: boolean): Record<string, unknown> {
  return {
    name,
    type: isIP(at.host) ? 'STATIC' : 'STRICT_DNS',
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
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: at.host, port_value: at.port } } } }] }],
    },
  };
}

export function bootstrapConfig(options: BootstrapOptions): Record<string, unknown> {
  const xds = parseHostPort(options.xds);
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
    static_resources: {
      clusters: [
        { ...staticCluster(XDS_CLUSTER, xds, true), ...(options.xdsTls ? { transport_socket: xdsTransportSocket(options.xdsTls) } : {}) },
        ...(options.protoplaneAdmin ? [staticCluster(ADMIN_CLUSTER, parseHostPort(options.protoplaneAdmin), false)] : []),
      ],
    },
  };
}

export function bootstrapYaml(options: BootstrapOptions): string {
  return stringify(bootstrapConfig(options));
}
