// Checks that need more than one node: unique names and ports, route targets
// that exist, and the route rules of each listener protocol. Runs only on a
// file the schema accepted, so the shapes in raw.ts hold.

import type { ConfigError } from './errors.ts';
import type { RawListener, RawMesh, RawRoute } from './raw.ts';
import { isBuiltinProtocol } from '../model/types.ts';
import { formatPath, type Path, type YamlSource } from './source.ts';
import type { ItemListeners } from './schema.ts';
import { UDP_PROTOCOLS } from './schema.ts';
import { isIP } from 'node:net';
import { parseBindAddress, parseName } from './values.ts';
import { closest } from './validate.ts';
import { clusterResilienceProblems, listenerLimitProblems } from './resilience.ts';

const WILDCARDS = new Set(['0.0.0.0', '::']);
const HTTP_MATCH_KINDS = ['prefix', 'path', 'regex'] as const;

/**
 * Envoy matches `regex` with RE2. We only reject what cannot be a regular
 * expression at all: the pattern must compile as a JS RegExp after the two
 * RE2 spellings JS lacks are translated (a leading `(?i)`-style flag group and
 * `(?P<name>`). RE2-only restrictions (lookarounds, backreferences) are left
 * for Envoy to NACK.
 */
export function regexProblem(pattern: string): string | undefined {
  const js = pattern.replace(/^\(\?[imsU]+\)/, '').replace(/\(\?P</g, '(?<');
  try {
    new RegExp(js);
    return undefined;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    const reason = msg.slice(msg.lastIndexOf(': ') + 2);
    return reason === '' ? msg : reason.charAt(0).toLowerCase() + reason.slice(1);
  }
}

/** The name of the listener an item of a filter's settings spawns (see ItemListeners). */
export function itemListenerName(listener: string, spec: ItemListeners, id: string | number): string {
  return `${listener}-${spec.name}-${id}`;
}

/**
 * `filterProtocols`: the protocols a Wasm filter under filters/ serves; a
 * listener of another non-builtin protocol is rejected as not yet supported.
 * `itemListeners`: per protocol, the settings array whose items spawn listeners.
 */
export function checkSemantics(
  mesh: RawMesh,
  source: YamlSource,
  filterProtocols: ReadonlySet<string> = new Set(),
  itemListeners: ReadonlyMap<string, ItemListeners> = new Map(),
): ConfigError[] {
  const errors: ConfigError[] = [];
  const report = (path: Path, message: string, at: 'value' | 'key' = 'value'): void => {
    const { line, col } = source.locate(path, at);
    errors.push({ file: source.file, line, col, path: formatPath(path), message });
  };
  const lineOf = (path: Path): number => source.locate(path).line;

  const listeners = mesh.listeners ?? [];
  const clusters = mesh.clusters ?? [];

  // Unique cluster names.
  const clusterAt = new Map<string, number>();
  clusters.forEach((c, i) => {
    const first = clusterAt.get(c.name);
    if (first === undefined) clusterAt.set(c.name, i);
    else {
      report(
        ['clusters', i, 'name'],
        `duplicate cluster name "${c.name}" (first defined at line ${lineOf(['clusters', first, 'name'])})`,
      );
    }
  });
  const clusterNames = [...clusterAt.keys()];
  clusters.forEach((c, i) => clusterResilienceProblems(c).forEach(([path, message, where]) => report(['clusters', i, ...path], message, where)));
  const unknownCluster = (name: string): string => {
    const guess = closest(name, clusterNames);
    return `cluster "${name}" is not defined${guess !== undefined ? ` (did you mean "${guess}"?)` : ''}`;
  };

  // Unique listener names.
  const listenerAt = new Map<string, number>();
  listeners.forEach((l, i) => {
    const first = listenerAt.get(l.name);
    if (first === undefined) listenerAt.set(l.name, i);
    else {
      report(
        ['listeners', i, 'name'],
        `duplicate listener name "${l.name}" (first defined at line ${lineOf(['listeners', first, 'name'])})`,
      );
    }
  });

  // Unique ports: same port on the same address, or on a wildcard address.
  const bindAddress = (l: RawListener): string => {
    if (l.address === undefined) return '0.0.0.0';
    const r = parseBindAddress(l.address);
    return r.ok ? r.value.toLowerCase() : l.address;
  };
  /** `udp`: a UDP socket, which never clashes with a TCP one on the same port. */
  type Binding = { port: number; addr: string; path: Path; who: string; udp?: boolean };
  /** Per listener: the ports its filter's items spawn listeners on. */
  const spawnedBindings = new Map<number, Binding[]>();

  // Listeners spawned by items of a filter's settings (one per Kafka broker):
  // each item needs an id (unique), a free port and a defined cluster.
  listeners.forEach((l, i) => {
    const spec = itemListeners.get(l.protocol);
    const items = spec === undefined ? undefined : l.filter?.[spec.array];
    if (spec === undefined || !Array.isArray(items)) return;
    const idAt = new Map<string, number>();
    items.forEach((item: unknown, k) => {
      const at = (...rest: Path): Path => ['listeners', i, 'filter', spec.array, k, ...rest];
      const need = `"${spec.id}", "${spec.port}" and "${spec.cluster}"`;
      if (typeof item !== 'object' || item === null || Array.isArray(item)) {
        report(at(), `a ${spec.name} must be a map with ${need}`);
        return;
      }
      const rec = item as Record<string, unknown>;
      const id = rec[spec.id];
      const port = rec[spec.port];
      const cluster = rec[spec.cluster];
      if (id === undefined || port === undefined || cluster === undefined) {
        report(at(), `a ${spec.name} needs ${need}`);
        return;
      }
      if (typeof cluster !== 'string') report(at(spec.cluster), `"${spec.cluster}" must be a cluster name`);
      else if (!clusterAt.has(cluster)) report(at(spec.cluster), unknownCluster(cluster));
      const portOk = typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;
      if (!portOk) report(at(spec.port), 'port must be an integer from 1 to 65535');
      if (!(typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id)))) {
        report(at(spec.id), `"${spec.id}" must be a string or an integer`);
        return;
      }
      const first = idAt.get(String(id));
      if (first !== undefined) {
        report(at(spec.id), `duplicate ${spec.name} ${spec.id} ${JSON.stringify(id)} (first at line ${lineOf(['listeners', i, 'filter', spec.array, first, spec.id])})`);
        return;
      }
      idAt.set(String(id), k);
      const name = itemListenerName(l.name, spec, id);
      const named = parseName(name);
      if (!named.ok) {
        report(at(spec.id), `${spec.name} ${spec.id} ${JSON.stringify(id)} gives listener name "${name}", which ${named.reason}`);
        return;
      }
      const taken = listenerAt.get(name);
      if (taken !== undefined) {
        report(at(spec.id), `${spec.name} ${spec.id} ${JSON.stringify(id)} gives listener name "${name}", already used by the listener at line ${lineOf(['listeners', taken, 'name'])}`);
        return;
      }
      if (portOk) {
        const list = spawnedBindings.get(i) ?? [];
        list.push({ port, addr: bindAddress(l), path: at(spec.port), who: `${spec.name} ${id} of listener "${l.name}"` });
        spawnedBindings.set(i, list);
      }
    });
  });

  // In file order: a listener's own port, then the ones its items spawn.
  const bindings: Binding[] = listeners.flatMap((l, i) => [
    ...(l.port === undefined ? [] : [{ port: l.port, addr: bindAddress(l), path: ['listeners', i, 'port'], who: `listener "${l.name}"`, udp: l.transport === 'udp' }]),
    ...(spawnedBindings.get(i) ?? []),
  ]);
  bindings.forEach((b, i) => {
    for (let j = 0; j < i; j++) {
      const other = bindings[j]!;
      if (other.port === b.port && !other.udp === !b.udp && (b.addr === other.addr || WILDCARDS.has(b.addr) || WILDCARDS.has(other.addr))) {
        report(b.path, `port ${b.port} is already used by ${other.who} on ${other.addr} (line ${lineOf(other.path)})`);
        break;
      }
    }
  });

  listeners.forEach((l, i) => {
    const at = (...rest: Path): Path => ['listeners', i, ...rest];
    const isFilterProtocol = !isBuiltinProtocol(l.protocol);
    if (isFilterProtocol && !filterProtocols.has(l.protocol)) {
      report(at('protocol'), `protocol "${l.protocol}" is not yet supported (no filter under filters/ serves it)`);
    }
    if (l.protocol === 'grpc' && l.port !== undefined) {
      report(at('port'), 'a grpc listener binds no port (proxyless gRPC clients reach it as xds:///NAME)', 'key');
    }
    if (l.filter !== undefined && !isFilterProtocol) {
      report(at('filter'), `"filter" settings are only for protocol listeners (served by a Wasm filter), not ${l.protocol}`, 'key');
    }
    if (isFilterProtocol) {
      l.routes.forEach((r, j) => {
        if (r.clusters !== undefined) {
          report(at('routes', j, 'clusters'), 'a protocol listener route names one "cluster" (its filter picks the connection\'s cluster)', 'key');
        }
      });
      const last = l.routes[l.routes.length - 1];
      if (last && last.match !== undefined) {
        report(at('routes'), 'a protocol listener needs a default route: a last route without "match"');
      }
    }
    udpProblems(l).forEach(([path, message, where]) => report(at(...path), message, where));
    if (l.rate_limit?.requests_per_second !== undefined && l.protocol !== 'http' && l.protocol !== 'auto') {
      report(at('rate_limit', 'requests_per_second'), `"requests_per_second" is for http and auto listeners; a ${l.protocol} listener limits "connections_per_second"`, 'key');
    }
    // connections_per_second and max_connections (config/resilience.ts)
    listenerLimitProblems(l).forEach(([path, message, where]) => report(at(...path), message, where));
    // Protocol (Wasm filter) listeners over TCP too: the filter then sees the header's source as source.address.
    if (l.proxy_protocol === true && (l.protocol === 'grpc' || l.transport === 'udp')) {
      report(at('proxy_protocol'), `"proxy_protocol" is for listeners that accept TCP connections, not ${l.protocol === 'grpc' ? 'grpc API listeners' : 'UDP ones'}`, 'key');
    }
    if (l.access_log !== undefined && l.protocol === 'grpc') {
      report(at('access_log'), '"access_log" is for listeners Envoy serves; a grpc API listener runs in the gRPC client', 'key');
    }
    if (l.tls !== undefined) {
      if (l.protocol !== 'http' && l.protocol !== 'tcp') {
        report(at('tls'), `"tls" (termination) is for http and tcp listeners, not ${l.protocol}${l.protocol === 'tls' ? ' (protocol tls is passthrough by SNI)' : ''}`, 'key');
      }
      if (l.tls.allowed_sans !== undefined && l.tls.client_ca === undefined) {
        report(at('tls', 'allowed_sans'), '"allowed_sans" needs "client_ca" (the CA that signs client certificates)', 'key');
      }
    }
    // protocol: auto — HTTP routes plus a tcp fallback for everything else.
    if (l.protocol === 'auto') {
      if (l.tcp === undefined) {
        report(at('protocol'), 'a "protocol: auto" listener needs "tcp: { cluster: NAME }" for connections that are not HTTP');
      } else {
        if (l.tcp.cluster !== undefined && !clusterAt.has(l.tcp.cluster)) report(at('tcp', 'cluster'), unknownCluster(l.tcp.cluster));
        for (const name of Object.keys(l.tcp.clusters ?? {})) {
          if (!clusterAt.has(name)) report(at('tcp', 'clusters', name), unknownCluster(name), 'key');
        }
      }
    } else {
      if (l.tcp !== undefined) report(at('tcp'), `"tcp" is the fallback of "protocol: auto" listeners, not of ${l.protocol}`, 'key');
      if (l.detection_timeout !== undefined) {
        report(at('detection_timeout'), `"detection_timeout" applies only to "protocol: auto" listeners`, 'key');
      }
    }

    const sniAt = new Map<string, number>();
    l.routes.forEach((r: RawRoute, j) => {
      const rt = (...rest: Path): Path => at('routes', j, ...rest);

      // Targets.
      if (r.cluster !== undefined && !clusterAt.has(r.cluster)) {
        report(rt('cluster'), unknownCluster(r.cluster));
      }
      for (const name of Object.keys(r.clusters ?? {})) {
        if (!clusterAt.has(name)) report(rt('clusters', name), unknownCluster(name), 'key');
      }

      if (r.websocket !== undefined && l.protocol !== 'http' && l.protocol !== 'auto') {
        report(rt('websocket'), `"websocket" applies only to routes of http and auto listeners`, 'key');
      }
      if (r.timeout !== undefined && l.protocol !== 'http' && l.protocol !== 'auto') {
        report(rt('timeout'), `"timeout" applies only to routes of http listeners`, 'key');
      }
      for (const key of ['idle_timeout', 'max_stream_duration'] as const) {
        if (r[key] !== undefined && l.protocol !== 'http' && l.protocol !== 'auto') {
          report(rt(key), `"${key}" applies only to routes of http and auto listeners`, 'key');
        }
      }
      // Envoy ignores a route's timeout once it has max_stream_duration (its "new timeouts"):
      // refuse the pair rather than translate a timeout that would silently do nothing.
      if (r.timeout !== undefined && r.max_stream_duration !== undefined) {
        report(rt('timeout'), `a route has "timeout" (request timeout, unary calls) or "max_stream_duration" (streams), not both: Envoy ignores "timeout" on a route with "max_stream_duration"`, 'key');
      }

      switch (l.protocol) {
        case 'grpc':
        case 'auto':
        case 'http': {
          if (r.match === undefined) {
            report(rt(), `http route needs a "match" with "prefix", "path" or "regex"`);
            break;
          }
          const kinds = HTTP_MATCH_KINDS.filter((k) => r.match?.[k] !== undefined);
          if (kinds.length === 0) {
            report(rt('match'), `match needs one of "prefix", "path" or "regex"`);
          } else if (kinds.length > 1) {
            report(rt('match'), `match has ${kinds.map((k) => `"${k}"`).join(' and ')}; use only one`);
          }
          const regex = r.match['regex'];
          if (typeof regex === 'string') {
            const problem = regexProblem(regex);
            if (problem !== undefined) report(rt('match', 'regex'), `regex does not compile: ${problem}`);
          }
          break;
        }
        case 'tcp': {
          if (r.match !== undefined) {
            report(
              rt('match'),
              `a tcp route takes no "match" (a tcp listener sends every connection to its one route)`,
              'key',
            );
          }
          if (j === 1) {
            report(rt(), `a tcp listener has exactly one route (found ${l.routes.length})`);
          }
          break;
        }
        default: {
          // tls and protocol listeners: matched routes, then at most one default.
          if (r.match === undefined && j !== l.routes.length - 1) {
            report(rt(), `only the last route may leave out "match" (it is the default route)`);
          }
          const sni = r.match?.['sni'];
          if (l.protocol === 'tls' && typeof sni === 'string') {
            const first = sniAt.get(sni.toLowerCase());
            if (first === undefined) sniAt.set(sni.toLowerCase(), j);
            else {
              report(
                rt('match', 'sni'),
                `sni "${sni}" is already routed by routes[${first}] (line ${lineOf(at('routes', first, 'match', 'sni'))})`,
              );
            }
          }
        }
      }
    });
  });

  return errors;
}

/**
 * `transport: udp` (coap): Envoy's udp_proxy serves it, with no Wasm filter
 * (proxy-wasm has no UDP hooks), so no filter settings; routes match the
 * client's source range; `idle_timeout` is udp_proxy's session timeout.
 */
function udpProblems(l: RawListener): Array<[Path, string, 'value' | 'key']> {
  const out: Array<[Path, string, 'value' | 'key']> = [];
  if (l.transport !== 'udp') {
    if (l.idle_timeout !== undefined) out.push([['idle_timeout'], '"idle_timeout" applies only to "transport: udp" listeners (udp_proxy sessions)', 'key']);
    return out;
  }
  if (!UDP_PROTOCOLS.includes(l.protocol)) {
    out.push([['transport'], `protocol ${l.protocol} has no UDP transport (only ${UDP_PROTOCOLS.join(', ')})`, 'value']);
    return out;
  }
  if (l.filter !== undefined) {
    out.push([['filter'], 'a "transport: udp" listener runs no Wasm filter in Envoy (proxy-wasm has no UDP hooks), so it takes no "filter" settings', 'key']);
  }
  l.routes.forEach((r, j) => {
    const source = r.match?.['source'];
    const ranges = typeof source === 'string' ? [source] : Array.isArray(source) ? source : [];
    ranges.forEach((range, k) => {
      if (typeof range === 'string' && parseCidr(range) === undefined) {
        out.push([['routes', j, 'match', 'source', ...(typeof source === 'string' ? [] : [k])], `"${range}" is not a CIDR range like "10.0.0.0/8" or "::1/128"`, 'value']);
      }
    });
  });
  return out;
}

/** "10.0.0.0/8" → address and prefix length; a bare address is a /32 (/128). */
export function parseCidr(text: string): { address: string; prefixLen: number } | undefined {
  const [address = '', len, extra] = text.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (len === undefined) return { address, prefixLen: max };
  if (!/^[0-9]{1,3}$/.test(len) || Number(len) > max) return undefined;
  return { address, prefixLen: Number(len) };
}
