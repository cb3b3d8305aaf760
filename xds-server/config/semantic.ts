// Checks that need more than one node: unique names and ports, route targets
// that exist, and the route rules of each listener protocol. Runs only on a
// file the schema accepted, so the shapes in raw.ts hold.

import type { ConfigError } from './errors.ts';
import type { RawListener, RawMesh, RawRoute } from './raw.ts';
import { isBuiltinProtocol } from '../model/types.ts';
import { formatPath, type Path, type YamlSource } from './source.ts';
import { parseBindAddress } from './values.ts';
import { closest } from './validate.ts';

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

/**
 * `filterProtocols`: the protocols a Wasm filter under filters/ serves; a
 * listener of another non-builtin protocol is rejected as not yet supported.
 */
export function checkSemantics(mesh: RawMesh, source: YamlSource, filterProtocols: ReadonlySet<string> = new Set()): ConfigError[] {
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
  listeners.forEach((l, i) => {
    if (l.port === undefined) return;
    const addr = bindAddress(l);
    for (let j = 0; j < i; j++) {
      const other = listeners[j]!;
      const otherAddr = bindAddress(other);
      if (
        other.port === l.port &&
        (addr === otherAddr || WILDCARDS.has(addr) || WILDCARDS.has(otherAddr))
      ) {
        report(
          ['listeners', i, 'port'],
          `port ${l.port} is already used by listener "${other.name}" on ${otherAddr} (line ${lineOf(['listeners', j, 'port'])})`,
        );
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

      if (r.timeout !== undefined && l.protocol !== 'http') {
        report(rt('timeout'), `"timeout" applies only to routes of http listeners`, 'key');
      }

      switch (l.protocol) {
        case 'grpc':
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
