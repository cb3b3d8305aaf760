// A static Envoy 1.40 bootstrap with one MQTT listener: the listener filter
// set_filter_state (envoy.tcp_proxy.receive_before_connect), the mqtt Wasm
// network filter, and tcp_proxy (default cluster: the last one given).
// Without `wasmFile` the listener is plain tcp_proxy (for comparisons).
import { RECEIVE_BEFORE_CONNECT_YAML } from '../support/envoy.ts';

export interface MqttBootstrapOptions {
  adminPort: number;
  listenerPort: number;
  /** build/filters/mqtt.wasm; omit for plain tcp_proxy. */
  wasmFile?: string;
  filterConfig?: object;
  clusters: Array<{ name: string; port: number }>;
  /** Extra listeners (name, port, wasm or not) on the same clusters. */
  extraListeners?: Array<{ name: string; port: number; wasm: boolean; wasmFile?: string; filterName?: string; filterConfig?: object }>;
}

function listener(name: string, port: number, wasmFile: string | undefined, filterConfig: object, defaultCluster: string, filterName = 'mqtt'): string {
  const wasm = wasmFile === undefined ? '' : `
      - name: envoy.filters.network.wasm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm
          config:
            name: ${filterName}
            root_id: ${filterName}
            configuration:
              "@type": type.googleapis.com/google.protobuf.StringValue
              value: ${JSON.stringify(JSON.stringify(filterConfig))}
            vm_config:
              vm_id: ${filterName}
              runtime: envoy.wasm.runtime.v8
              code: { local: { filename: ${JSON.stringify(wasmFile)} } }`;
  const listenerFilters = wasmFile === undefined ? '' : `\n${RECEIVE_BEFORE_CONNECT_YAML}`;
  return `
  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: ${port} } }${listenerFilters}
    filter_chains:
    - filters:${wasm}
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: ${name}
          cluster: ${defaultCluster}`;
}

export function mqttBootstrap(opts: MqttBootstrapOptions): string {
  const defaultCluster = opts.clusters[opts.clusters.length - 1]!.name;
  const clusters = opts.clusters.map((c) => `
  - name: ${c.name}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: ${c.name}
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${c.port} } } } } ] } ]`).join('');
  const listeners = [listener('mqtt', opts.listenerPort, opts.wasmFile, opts.filterConfig ?? {}, defaultCluster)];
  for (const l of opts.extraListeners ?? []) {
    listeners.push(listener(l.name, l.port, l.wasm ? l.wasmFile ?? opts.wasmFile : undefined, l.filterConfig ?? opts.filterConfig ?? {}, defaultCluster, l.filterName));
  }
  return `
node: { id: mqtt-test, cluster: protoplane-test }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: ${opts.adminPort} } }
static_resources:
  listeners:${listeners.join('')}
  clusters:${clusters}
`;
}

/** The filter configuration of the Envoy end-to-end test: fleet-a-* to broker-a, secret/# denied. */
export const E2E_CONFIG = {
  routes: [{ match: { client_id: { prefix: 'fleet-a-' } }, cluster: 'broker-a' }, { cluster: 'broker-b' }],
  acl: {
    default: 'allow',
    publish: [{ topic: 'secret/#', action: 'deny' }],
    subscribe: [{ topic: 'secret/#', action: 'deny' }],
  },
  topic_metrics: ['rt/'],
};
