// Protocol listeners: a Wasm network filter (delivered through ECDS) in
// front of tcp_proxy. The filter reads the connection's first bytes and
// picks the upstream cluster by setting envoy.tcp_proxy.cluster; the three
// parts that needs are described in ../shared/DESIGN.md (verified on 1.40).
import type { Listener } from '../model/types.ts';
import { toAny, TYPE_PREFIX } from '../protos/index.ts';
import type { EnvoyMessage } from '../model/resources.ts';
import { accessLogs } from './access-log.ts';

/**
 * How Envoy gets a filter's module: its bytes inline in the ECDS resource,
 * fetched from protoplane's admin server with its sha256, or a local file.
 */
export type WasmCode =
  | { kind: 'inline'; bytes: Uint8Array }
  | { kind: 'remote'; url: string; sha256: string }
  | { kind: 'local'; path: string };

export interface FilterRef {
  /** The filter's name (filters/NAME/filter.json). */
  name: string;
  code: WasmCode;
}

/** The cluster of Envoy's bootstrap that reaches protoplane's admin server (module downloads). */
export const ADMIN_CLUSTER = 'protoplane_admin';

export const WASM_FILTER_TYPE = `${TYPE_PREFIX}envoy.extensions.filters.network.wasm.v3.Wasm`;

/** The ECDS resource name of a listener's filter. */
export function extensionConfigName(listener: Listener): string {
  return `protoplane.wasm.${listener.name}`;
}

/**
 * What the filter receives in proxy_on_configure: its `filter:` settings, and
 * the listener's routes as { match?, cluster } in order (the last one, with
 * no match, is the default).
 */
export function filterConfiguration(listener: Listener): Record<string, unknown> {
  return {
    ...(listener.filter ?? {}),
    // the in-process host's only hint that the filter sees datagrams (Envoy never runs it on UDP)
    ...(listener.transport === 'udp' ? { transport: 'udp' } : {}),
    routes: listener.routes.map((route) => ({
      ...(route.match?.kind === 'filter' ? { match: route.match.attributes } : {}), // source ranges are udp_proxy's
      cluster: route.target.kind === 'cluster' ? route.target.cluster : route.target.clusters[0]?.name,
    })),
  };
}

function defaultCluster(listener: Listener): string {
  const fallback = listener.routes.find((r) => r.match === undefined) ?? listener.routes[listener.routes.length - 1];
  if (!fallback || fallback.target.kind !== 'cluster') throw new Error(`listener ${listener.name}: no default route`);
  return fallback.target.cluster;
}

export function protocolListener(listener: Listener, source: EnvoyMessage): EnvoyMessage {
  return {
    name: listener.name,
    address: { socket_address: { address: listener.address, port_value: listener.port } },
    listener_filters: [
      {
        // tcp_proxy stops reading the downstream until it connects; this lets
        // the Wasm filter see the first bytes before a cluster is chosen.
        name: 'envoy.filters.listener.set_filter_state',
        typed_config: toAny('envoy.extensions.filters.listener.set_filter_state.v3.Config', {
          on_accept: [
            {
              object_key: 'envoy.tcp_proxy.receive_before_connect',
              factory_key: 'envoy.bool',
              format_string: { text_format_source: { inline_string: 'true' } },
            },
          ],
        }),
      },
    ],
    filter_chains: [
      {
        filters: [
          {
            name: extensionConfigName(listener),
            config_discovery: { config_source: source, type_urls: [WASM_FILTER_TYPE] },
          },
          {
            name: 'envoy.filters.network.tcp_proxy',
            typed_config: toAny('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', {
              stat_prefix: listener.name,
              cluster: defaultCluster(listener),
              // one line per connection, naming the cluster the filter picked
              ...(listener.accessLogs ? { access_log: accessLogs(listener, 'tcp') } : {}),
            }),
          },
        ],
      },
    ],
  };
}

function codeSource(code: WasmCode): EnvoyMessage {
  // Inline bytes and local files hot-swap: a new ECDS version starts the new module for new connections.
  if (code.kind === 'inline') return { local: { inline_bytes: code.bytes } };
  if (code.kind === 'local') return { local: { filename: code.path } };
  return {
    remote: {
      http_uri: { uri: code.url, cluster: ADMIN_CLUSTER, timeout: { seconds: 10 } },
      sha256: code.sha256,
      retry_policy: { num_retries: { value: 5 } },
    },
  };
}

const extensionConfigs = new WeakMap<Listener, WeakMap<FilterRef, EnvoyMessage>>();

/**
 * The ECDS resource: the Wasm filter config for one listener. The same
 * object for the same listener and filter, so the snapshot of every xDS
 * flavour shares one encoding of it (with inline code it carries the module).
 */
export function wasmExtensionConfig(listener: Listener, filter: FilterRef): EnvoyMessage {
  let byFilter = extensionConfigs.get(listener);
  if (!byFilter) extensionConfigs.set(listener, (byFilter = new WeakMap()));
  let config = byFilter.get(filter);
  if (!config) byFilter.set(filter, (config = buildExtensionConfig(listener, filter)));
  return config;
}

function buildExtensionConfig(listener: Listener, filter: FilterRef): EnvoyMessage {
  const wasm = toAny('envoy.extensions.filters.network.wasm.v3.Wasm', {
    config: {
      name: filter.name,
      root_id: filter.name,
      vm_config: {
        vm_id: filter.name,
        runtime: 'envoy.wasm.runtime.v8',
        code: codeSource(filter.code),
      },
      configuration: toAny('google.protobuf.StringValue', { value: JSON.stringify(filterConfiguration(listener)) }),
    },
  });
  return { name: extensionConfigName(listener), typed_config: wasm };
}
