// UDP protocol listeners (coap with `transport: udp`): Envoy's udp_proxy,
// with no Wasm filter (proxy-wasm has no UDP hooks, proxy-wasm/spec#31, and
// stock Envoy 1.40's UDP session filters are dynamic_forward_proxy,
// http_capsule and ext_authz). Routes become udp_proxy's matcher: the first
// route whose source ranges hold for the client's address picks the
// cluster; the route without a match is on_no_match.
import type { Listener, Route } from '../model/types.ts';
import { toAny } from '../protos/index.ts';
import type { EnvoyMessage } from '../model/resources.ts';
import { accessLogs } from './access-log.ts';

function routeAction(cluster: string): EnvoyMessage {
  return {
    action: {
      name: 'route',
      typed_config: toAny('envoy.extensions.filters.udp.udp_proxy.v3.Route', { cluster }),
    },
  };
}

function clusterOf(route: Route, listener: Listener): string {
  if (route.target.kind !== 'cluster') throw new Error(`listener ${listener.name}: a udp route names one cluster`);
  return route.target.cluster;
}

function matcher(listener: Listener): EnvoyMessage {
  const matchers: EnvoyMessage[] = [];
  let fallback: EnvoyMessage | undefined;
  listener.routes.forEach((route, i) => {
    if (route.match?.kind !== 'source') {
      fallback ??= routeAction(clusterOf(route, listener));
      return;
    }
    matchers.push({
      predicate: {
        single_predicate: {
          input: {
            name: 'envoy.matching.inputs.source_ip',
            typed_config: toAny('envoy.extensions.matching.common_inputs.network.v3.SourceIPInput', {}),
          },
          custom_match: {
            name: 'envoy.matching.matchers.ip',
            typed_config: toAny('envoy.extensions.matching.input_matchers.ip.v3.Ip', {
              cidr_ranges: route.match.ranges.map((r) => ({ address_prefix: r.address, prefix_len: { value: r.prefixLen } })),
              stat_prefix: `${listener.name}_route_${i}`,
            }),
          },
        },
      },
      on_match: routeAction(clusterOf(route, listener)),
    });
  });
  return {
    ...(matchers.length > 0 ? { matcher_list: { matchers } } : {}),
    ...(fallback ? { on_no_match: fallback } : {}),
  };
}

export function udpListener(listener: Listener): EnvoyMessage {
  const config: EnvoyMessage = { stat_prefix: listener.name, matcher: matcher(listener) };
  // one line per session, when it ends (idle_timeout after its last datagram)
  if (listener.accessLogs) config.access_log = accessLogs(listener, 'udp');
  if (listener.idleTimeout !== undefined) {
    config.idle_timeout = { seconds: Math.floor(listener.idleTimeout / 1000), nanos: Math.round((listener.idleTimeout % 1000) * 1e6) };
  }
  return {
    name: listener.name,
    address: { socket_address: { protocol: 'UDP', address: listener.address, port_value: listener.port } },
    udp_listener_config: {},
    listener_filters: [
      {
        name: 'envoy.filters.udp_listener.udp_proxy',
        typed_config: toAny('envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig', config),
      },
    ],
  };
}
