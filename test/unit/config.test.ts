// Config loader: node --import tsx --test test/unit/config.test.ts

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  createMeshParser,
  formatConfigError,
  loadMeshFile,
  parseMesh,
  type ConfigError,
} from '../../xds-server/config/index.ts';
import type { Mesh } from '../../xds-server/model/types.ts';

const FILE = 'mesh.yaml';

/** Strips the leading newline and the common indentation of a template literal. */
function yaml(text: string): string {
  const lines = text.replace(/^\n/, '').replace(/\n\s*$/, '\n').split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => l.match(/^ */)![0].length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

function errorsOf(text: string): string[] {
  const r = parseMesh(text, FILE);
  assert.equal(r.ok, false, 'expected the config to be rejected');
  return r.ok ? [] : r.errors.map(formatConfigError);
}

function meshOf(text: string): Mesh {
  const r = parseMesh(text, FILE);
  if (!r.ok) assert.fail(`expected a valid config, got:\n${r.errors.map(formatConfigError).join('\n')}`);
  return r.mesh;
}

/** A valid preamble: clusters a, b, c on 127.0.0.1. */
const CLUSTERS = yaml(`
  clusters:
    - { name: a, endpoints: [ 127.0.0.1:18080 ] }
    - { name: b, endpoints: [ 127.0.0.1:18081 ] }
    - { name: c, endpoints: [ 127.0.0.1:18082 ] }
`);

describe('formatConfigError', () => {
  it('formats file:line:col: message (at path)', () => {
    const e: ConfigError = { file: 'm.yaml', line: 3, col: 7, path: 'listeners[2].routes[0].cluster', message: 'boom' };
    assert.equal(formatConfigError(e), 'm.yaml:3:7: boom (at listeners[2].routes[0].cluster)');
  });
  it('omits the path when it is empty', () => {
    assert.equal(formatConfigError({ file: 'm.yaml', line: 1, col: 1, path: '', message: 'boom' }), 'm.yaml:1:1: boom');
  });
});

describe('YAML errors', () => {
  it('reports duplicate keys at the second key, with its path', () => {
    const text = yaml(`
      listeners:
        - name: web
          port: 10080
          name: web2
      clusters: []
      clusters: []
    `);
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:4:5: duplicate key "name" (at listeners[0].name)',
      'mesh.yaml:6:1: duplicate key "clusters" (at clusters)',
    ]);
  });

  it('reports a syntax error with its position', () => {
    const text = yaml(`
      listeners:
        - name: web
         port: 10080
    `);
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:3:1: invalid YAML: sequence item without - indicator (at listeners)',
    ]);
  });

  it('reports an unclosed flow sequence once, at its [', () => {
    assert.deepEqual(errorsOf('clusters: [\n'), [
      'mesh.yaml:1:11: invalid YAML: this [ is never closed: a ] is missing on this line or after it (at clusters)',
    ]);
  });

  it('reports an alias to an unknown anchor', () => {
    assert.deepEqual(errorsOf('clusters: *nope\n'), [
      'mesh.yaml:1:11: unknown alias "*nope" (an anchor must be defined before it is used) (at clusters)',
    ]);
  });

  it('rejects a file that is not a map', () => {
    assert.deepEqual(errorsOf('- a\n- b\n'), [
      'mesh.yaml:1:1: the mesh file must be a map with "listeners" and "clusters" (got a list)',
    ]);
  });

  it('refuses an empty, blank or comment-only file, and accepts an explicitly empty mesh', () => {
    assert.deepEqual(errorsOf(''), ['mesh.yaml:1:1: the config file is empty (0 bytes); refusing to serve it (write "listeners: []" for an explicitly empty mesh)']);
    assert.deepEqual(errorsOf(' \n\t\n'), ['mesh.yaml:1:1: the config file is only whitespace; refusing to serve it (write "listeners: []" for an explicitly empty mesh)']);
    assert.deepEqual(errorsOf('# nothing yet\n'), ['mesh.yaml:1:1: the config file is only comments; refusing to serve it (write "listeners: []" for an explicitly empty mesh)']);
    assert.deepEqual(meshOf('listeners: []\n'), { listeners: [], clusters: [] });
    assert.deepEqual(meshOf('listeners: []\nclusters: []\n'), { listeners: [], clusters: [] });
  });

  it('resolves anchors and merge keys, and ignores x- extension keys', () => {
    const text = yaml(`
      x-defaults: &defaults { lb: least_request, connect_timeout: 2s }
      clusters:
        - <<: *defaults
          name: a
          endpoints: [ 127.0.0.1:18080 ]
    `);
    assert.deepEqual(meshOf(text).clusters, [
      { name: 'a', endpoints: [{ host: '127.0.0.1', port: 18080 }], lb: 'least_request', http2: false, connectTimeout: 2000 },
    ]);
  });
});

describe('schema errors', () => {
  it('points unknown keys at the key and names them', () => {
    const text = yaml(`
      listener: []
      listeners:
        - name: web
          port: 10080
          protocol: http
          routes:
            - match: { prefx: /api }
              cluster: a
              weight: 1
      clusters:
        - name: a
          endpoints: [ 127.0.0.1:18080 ]
          foo: bar
    `);
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:1:1: unknown key "listener" (did you mean "listeners"?) (at listener)',
      'mesh.yaml:7:18: unknown key "prefx" (did you mean "prefix"?) (at listeners[0].routes[0].match.prefx)',
      'mesh.yaml:9:9: unknown key "weight" (allowed: match, cluster, clusters, timeout, websocket, idle_timeout, max_stream_duration) (at listeners[0].routes[0].weight)',
      'mesh.yaml:13:5: unknown key "foo" (allowed: name, endpoints, lb, http2, connect_timeout, health_check, retries, tls, proxy_protocol, outlier_detection, circuit_breakers) (at clusters[0].foo)',
    ]);
  });

  it('reports wrong types at the value', () => {
    const text = yaml(`
      listeners:
        - name: web
          port: "10080"
          protocol: http
          routes:
            - match: { prefix: /, headers: { x-canary: 1 } }
              cluster: a
      clusters:
        - name: a
          endpoints: 127.0.0.1:18080
          http2: yes
        - name: b
          endpoints: [ 18081 ]
    `);
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:3:11: port must be an integer from 1 to 65535 (got "10080") (at listeners[0].port)',
      'mesh.yaml:6:50: header value must be a string; quote numbers and booleans, e.g. "1" (got 1) (at listeners[0].routes[0].match.headers.x-canary)',
      'mesh.yaml:10:16: must be a list (got "127.0.0.1:18080") (at clusters[0].endpoints)',
      'mesh.yaml:11:12: must be true or false (got "yes") (at clusters[0].http2)',
      'mesh.yaml:13:18: must be a "host:port" string, e.g. "127.0.0.1:8080" (got 18081) (at clusters[1].endpoints[0])',
    ]);
  });

  it('reports enums with the allowed values', () => {
    const text = yaml(`
      listeners:
        - { name: web, port: 10080, protocol: htp, routes: [ { cluster: a } ] }
      clusters:
        - { name: a, endpoints: [], lb: round-robin }
    `);
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:2:41: must be one of "http", "grpc", "tcp", "tls", "auto", "mqtt", "kafka", "coap" (got "htp"); did you mean "http"? (at listeners[0].protocol)',
      'mesh.yaml:4:35: must be one of "round_robin", "least_request", "random", "ring_hash" (got "round-robin"); did you mean "round_robin"? (at clusters[0].lb)',
    ]);
  });

  it('reports missing required keys at the map', () => {
    const text = yaml(`
      listeners:
        - name: web
          protocol: http
      clusters:
        - endpoints: []
    `);
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:2:5: listener is missing required key "port" (at listeners[0])',
      'mesh.yaml:2:5: listener is missing required key "routes" (at listeners[0])',
      'mesh.yaml:5:5: cluster is missing required key "name" (at clusters[0])',
    ]);
  });

  it('asks for exactly one route target', () => {
    const text = yaml(`
      listeners:
        - name: web
          port: 10080
          protocol: http
          routes:
            - match: { prefix: /a }
            - match: { prefix: /b }
              cluster: a
              clusters: { a: 1 }
            - match: { prefix: / }
              clusters: {}
    `) + CLUSTERS;
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:6:9: route needs "cluster" or "clusters" (at listeners[0].routes[0])',
      'mesh.yaml:7:9: route has "cluster" and "clusters"; use only one (at listeners[0].routes[1])',
      'mesh.yaml:11:19: weighted "clusters" needs at least one cluster (got an empty map) (at listeners[0].routes[2].clusters)',
    ]);
  });

  it('requires positive integer weights', () => {
    const text = yaml(`
      listeners:
        - name: web
          port: 10080
          protocol: http
          routes:
            - match: { prefix: / }
              clusters: { a: 0, b: 1.5, c: "10" }
    `) + CLUSTERS;
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:7:24: weight must be a positive integer (got 0) (at listeners[0].routes[0].clusters.a)',
      'mesh.yaml:7:30: weight must be a positive integer (got 1.5) (at listeners[0].routes[0].clusters.b)',
      'mesh.yaml:7:38: weight must be a positive integer (got "10") (at listeners[0].routes[0].clusters.c)',
    ]);
  });

  it('rejects a listener without routes', () => {
    const text = yaml(`
      listeners:
        - { name: web, port: 10080, protocol: http, routes: [] }
    `);
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:2:55: a listener needs at least one route (got an empty list) (at listeners[0].routes)',
    ]);
  });
});

describe('durations', () => {
  it('rejects bare numbers and garbage', () => {
    const text = yaml(`
      listeners:
        - name: web
          port: 10080
          protocol: http
          routes:
            - { match: { prefix: /a }, cluster: a, timeout: 5 }
            - { match: { prefix: /b }, cluster: a, timeout: "5" }
            - { match: { prefix: /c }, cluster: a, timeout: 5 seconds }
            - { match: { prefix: / }, cluster: a, timeout: 1.5ms }
      clusters:
        - name: a
          endpoints: []
          connect_timeout: 0s
          health_check: { interval: 5S, tcp: {} }
    `);
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:6:55: must be a duration with a unit, like "5s" or "5ms" (got 5) (at listeners[0].routes[0].timeout)',
      'mesh.yaml:7:55: "5" has no unit; write e.g. "5s" or "5ms" (at listeners[0].routes[1].timeout)',
      'mesh.yaml:8:55: "5 seconds" must be a duration with a unit, like "150ms", "5s", "1.5s", "2m" or "1h" (at listeners[0].routes[2].timeout)',
      'mesh.yaml:9:54: "1.5ms" must be a whole number of milliseconds (at listeners[0].routes[3].timeout)',
      'mesh.yaml:13:22: "0s" must be greater than 0 (at clusters[0].connect_timeout)',
      'mesh.yaml:14:31: "5S" must be a duration with a unit, like "150ms", "5s", "1.5s", "2m" or "1h" (at clusters[0].health_check.interval)',
    ]);
  });

  it('normalises 150ms, 5s, 1.5s, 2m and 1h to milliseconds', () => {
    const text = yaml(`
      listeners:
        - name: web
          port: 10080
          protocol: http
          routes:
            - { match: { prefix: /a }, cluster: a, timeout: 150ms }
            - { match: { prefix: /b }, cluster: a, timeout: 1.5s }
            - { match: { prefix: /c }, cluster: a, timeout: 2m }
            - { match: { prefix: /d }, cluster: a, timeout: 1h }
            - { match: { prefix: / }, cluster: a, timeout: 0s }
      clusters:
        - { name: a, endpoints: [], connect_timeout: 5s, health_check: { interval: 0.25s, tcp: {} } }
    `);
    const mesh = meshOf(text);
    assert.deepEqual(
      mesh.listeners[0]!.routes.map((r) => r.timeout),
      [150, 1500, 120_000, 3_600_000, 0],
    );
    assert.equal(mesh.clusters[0]!.connectTimeout, 5000);
    assert.deepEqual(mesh.clusters[0]!.healthCheck, { kind: 'tcp', interval: 250, timeout: 1000 });
  });
});

describe('addresses', () => {
  it('rejects bad endpoints with the reason', () => {
    const text = yaml(`
      clusters:
        - name: a
          endpoints:
            - 127.0.0.1
            - 127.0.0.1:0
            - 127.0.0.1:65536
            - ::1:8080
            - "[::1]"
            - "[example.com]:80"
            - 999.1.1.1:80
            - bad_host!:80
            - "127.0.0.1:http"
    `);
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:4:9: "127.0.0.1" is missing the port (write host:port, e.g. 127.0.0.1:8080, [::1]:8080 or api.internal:8080) (at clusters[0].endpoints[0])',
      'mesh.yaml:5:9: "127.0.0.1:0" has port 0, which is not in 1..65535 (at clusters[0].endpoints[1])',
      'mesh.yaml:6:9: "127.0.0.1:65536" has port 65536, which is not in 1..65535 (at clusters[0].endpoints[2])',
      'mesh.yaml:7:9: "::1:8080" needs brackets around an IPv6 address, e.g. [::1]:8080 (at clusters[0].endpoints[3])',
      'mesh.yaml:8:9: "[::1]" is missing the port (write host:port, e.g. 127.0.0.1:8080, [::1]:8080 or api.internal:8080) (at clusters[0].endpoints[4])',
      'mesh.yaml:9:9: "[example.com]:80" has "example.com" in brackets, which is not an IPv6 address (at clusters[0].endpoints[5])',
      'mesh.yaml:10:9: "999.1.1.1:80" has host "999.1.1.1", which is not an IP address or DNS name (at clusters[0].endpoints[6])',
      'mesh.yaml:11:9: "bad_host!:80" has host "bad_host!", which is not an IP address or DNS name (at clusters[0].endpoints[7])',
      'mesh.yaml:12:9: "127.0.0.1:http" has port "http", which is not a number from 1 to 65535 (at clusters[0].endpoints[8])',
    ]);
  });

  it('splits IPv4, [IPv6] and DNS endpoints into host and port', () => {
    const text = yaml(`
      clusters:
        - name: a
          endpoints: [ 127.0.0.1:18080, "[::1]:18081", "[2001:db8::1]:443", api.internal:8080, localhost:1 ]
    `);
    assert.deepEqual(meshOf(text).clusters[0]!.endpoints, [
      { host: '127.0.0.1', port: 18080 },
      { host: '::1', port: 18081 },
      { host: '2001:db8::1', port: 443 },
      { host: 'api.internal', port: 8080 },
      { host: 'localhost', port: 1 },
    ]);
  });

  it('accepts IP listener addresses only', () => {
    const text = yaml(`
      listeners:
        - { name: a, address: localhost, port: 10080, protocol: tcp, routes: [ { cluster: a } ] }
        - { name: b, address: "[::1]", port: 10081, protocol: tcp, routes: [ { cluster: a } ] }
        - { name: c, address: 0, port: 10082, protocol: tcp, routes: [ { cluster: a } ] }
    `) + CLUSTERS;
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:2:25: "localhost" must be an IP address like 0.0.0.0, 127.0.0.1 or :: (a listener binds to an IP, not a host name) (at listeners[0].address)',
      'mesh.yaml:4:25: must be an IP address string like "0.0.0.0" or "::" (got 0) (at listeners[2].address)',
    ]);
  });
});

describe('semantic checks', () => {
  it('rejects duplicate listener and cluster names', () => {
    const text = yaml(`
      listeners:
        - { name: web, port: 10080, protocol: tcp, routes: [ { cluster: a } ] }
        - { name: web, port: 10081, protocol: tcp, routes: [ { cluster: a } ] }
      clusters:
        - { name: a, endpoints: [] }
        - { name: b, endpoints: [] }
        - { name: a, endpoints: [] }
    `);
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:3:13: duplicate listener name "web" (first defined at line 2) (at listeners[1].name)',
      'mesh.yaml:7:13: duplicate cluster name "a" (first defined at line 5) (at clusters[2].name)',
    ]);
  });

  it('rejects routes naming a missing cluster, in cluster and in clusters', () => {
    const text = yaml(`
      listeners:
        - name: web
          port: 10080
          protocol: http
          routes:
            - match: { prefix: /api }
              cluster: api-v3
            - match: { prefix: / }
              clusters: { a: 90, bb: 10 }
    `) + CLUSTERS;
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:7:18: cluster "api-v3" is not defined (at listeners[0].routes[0].cluster)',
      'mesh.yaml:9:28: cluster "bb" is not defined (did you mean "b"?) (at listeners[0].routes[1].clusters.bb)',
    ]);
  });

  it('rejects duplicate ports on the same or a wildcard address', () => {
    const text = yaml(`
      listeners:
        - { name: l1, port: 10080, protocol: tcp, routes: [ { cluster: a } ] }
        - { name: l2, port: 10080, address: 127.0.0.1, protocol: tcp, routes: [ { cluster: a } ] }
        - { name: l3, port: 10090, address: 127.0.0.1, protocol: tcp, routes: [ { cluster: a } ] }
        - { name: l4, port: 10090, address: 127.0.0.2, protocol: tcp, routes: [ { cluster: a } ] }
        - { name: l5, port: 10090, address: 127.0.0.2, protocol: tcp, routes: [ { cluster: a } ] }
        - { name: l6, port: 10090, address: "::", protocol: tcp, routes: [ { cluster: a } ] }
    `) + CLUSTERS;
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:3:23: port 10080 is already used by listener "l1" on 0.0.0.0 (line 2) (at listeners[1].port)',
      'mesh.yaml:6:23: port 10090 is already used by listener "l4" on 127.0.0.2 (line 5) (at listeners[4].port)',
      'mesh.yaml:7:23: port 10090 is already used by listener "l3" on 127.0.0.1 (line 4) (at listeners[5].port)',
    ]);
  });

  it('rejects mqtt, kafka and coap listeners as not yet supported', () => {
    const text = yaml(`
      listeners:
        - name: mqtt
          port: 11883
          protocol: mqtt
          filter: { max_packet: 1024 }
          routes:
            - match: { client_id: { prefix: fleet-a- } }
              cluster: a
            - cluster: b
        - { name: k, port: 19092, protocol: kafka, routes: [ { cluster: a } ] }
    `) + CLUSTERS;
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:4:15: protocol "mqtt" is not yet supported (no filter under filters/ serves it) (at listeners[0].protocol)',
      'mesh.yaml:10:39: protocol "kafka" is not yet supported (no filter under filters/ serves it) (at listeners[1].protocol)',
    ]);
  });

  it('checks http matches: exactly one of prefix, path, regex; regexes compile', () => {
    const text = yaml(`
      listeners:
        - name: web
          port: 10080
          protocol: http
          filter: {}
          routes:
            - cluster: a
            - match: { headers: { x-a: "1" } }
              cluster: a
            - match: { prefix: /, path: /x }
              cluster: a
            - match: { regex: "^/(a" }
              cluster: a
            - match: { regex: "(?i)^/(?P<v>v[0-9]+)/(?=x)(?!y)" }
              cluster: a
    `) + CLUSTERS;
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:5:5: "filter" settings are only for protocol listeners (served by a Wasm filter), not http (at listeners[0].filter)',
      'mesh.yaml:7:9: http route needs a "match" with "prefix", "path" or "regex" (at listeners[0].routes[0])',
      'mesh.yaml:8:16: match needs one of "prefix", "path" or "regex" (at listeners[0].routes[1].match)',
      'mesh.yaml:10:16: match has "prefix" and "path"; use only one (at listeners[0].routes[2].match)',
      'mesh.yaml:12:25: regex does not compile: unterminated group (at listeners[0].routes[3].match.regex)',
    ]);
  });

  it('checks tcp listeners: one route, no match, no timeout', () => {
    const text = yaml(`
      listeners:
        - name: raw
          port: 10081
          protocol: tcp
          routes:
            - { match: {}, cluster: a, timeout: 1s }
            - { cluster: b }
    `) + CLUSTERS;
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:6:11: a tcp route takes no "match" (a tcp listener sends every connection to its one route) (at listeners[0].routes[0].match)',
      'mesh.yaml:6:34: "timeout" applies only to routes of http listeners (at listeners[0].routes[0].timeout)',
      'mesh.yaml:7:9: a tcp listener has exactly one route (found 2) (at listeners[0].routes[1])',
    ]);
  });

  it('checks tls listeners: sni-only matches, one default route, last', () => {
    const schemaErrors = yaml(`
      listeners:
        - name: tls
          port: 10443
          protocol: tls
          routes:
            - { match: { sni: a.example.com, prefix: / }, cluster: a }
            - { match: { sni: "10.0.0.1" }, cluster: a }
    `) + CLUSTERS;
    assert.deepEqual(errorsOf(schemaErrors), [
      'mesh.yaml:6:40: unknown key "prefix" (allowed: sni) (at listeners[0].routes[0].match.prefix)',
      'mesh.yaml:7:25: "10.0.0.1" must be a server name like "a.example.com" or "*.example.com" (at listeners[0].routes[1].match.sni)',
    ]);
    const semanticErrors = yaml(`
      listeners:
        - name: tls
          port: 10443
          protocol: tls
          routes:
            - { cluster: c }
            - { match: { sni: "*.example.com" }, cluster: a }
            - { match: { sni: "*.Example.com" }, cluster: b }
            - { cluster: c }
    `) + CLUSTERS;
    assert.deepEqual(errorsOf(semanticErrors), [
      'mesh.yaml:6:9: only the last route may leave out "match" (it is the default route) (at listeners[0].routes[0])',
      'mesh.yaml:8:25: sni "*.Example.com" is already routed by routes[1] (line 7) (at listeners[0].routes[2].match.sni)',
    ]);
  });
});

describe('error reporting', () => {
  it('reports every error of a file together, sorted by line and column', () => {
    // clusters come before listeners in this file, but the schema (and ajv)
    // visits listeners first: the result must still be sorted by position.
    const text = yaml(`
      clusters:
        - { name: a, endpoints: [ "127.0.0.1" ], lb: fastest }
        - { name: b, endpoints: [], connect_timeout: 3 }
      listeners:
        - { name: web, port: 0, protocol: http, routes: [ { match: { prefix: / }, cluster: a, retries: 3 } ] }
        - { name: raw, protocol: tcp, routes: [ { cluster: b } ] }
    `);
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:2:29: "127.0.0.1" is missing the port (write host:port, e.g. 127.0.0.1:8080, [::1]:8080 or api.internal:8080) (at clusters[0].endpoints[0])',
      'mesh.yaml:2:48: must be one of "round_robin", "least_request", "random", "ring_hash" (got "fastest") (at clusters[0].lb)',
      'mesh.yaml:3:48: must be a duration with a unit, like "3s" or "3ms" (got 3) (at clusters[1].connect_timeout)',
      'mesh.yaml:5:24: port must be an integer from 1 to 65535 (got 0) (at listeners[0].port)',
      'mesh.yaml:5:89: unknown key "retries" (allowed: match, cluster, clusters, timeout, websocket, idle_timeout, max_stream_duration) (at listeners[0].routes[0].retries)',
      'mesh.yaml:6:5: listener is missing required key "port" (at listeners[1])',
    ]);
  });

  it('never throws on odd input', () => {
    for (const text of ['~', '42', '"just a string"', '[[[]]]', 'listeners: ~', '{a: {b: {c: [1, {d: 2}]}}}', '\t- x', ': :']) {
      const r = parseMesh(text, FILE);
      assert.equal(r.ok, false, text);
      if (!r.ok) {
        assert.ok(r.errors.length > 0, text);
        for (const e of r.errors) assert.ok(e.line >= 1 && e.col >= 1, formatConfigError(e));
      }
    }
  });
});

describe('normalisation', () => {
  it('normalises the DESIGN.md example (minus the mqtt listener) to the model', () => {
    // The DESIGN.md example, with the mqtt listener left out and the clusters
    // it refers to (api-v2, echo, a) added so that it is valid.
    const text = yaml(`
      listeners:
        - name: web                      # unique; becomes the Envoy listener name
          port: 10080                    # address defaults to 0.0.0.0
          protocol: http                 # http | tcp | tls | mqtt | kafka | coap
          routes:
            - match: { prefix: /api, headers: { x-canary: "1" } }   # prefix | path | regex, exact headers
              cluster: api-v2
              timeout: 5s
            - match: { prefix: / }
              clusters: { api-v1: 90, api-v2: 10 }                  # weighted split
        - name: raw
          port: 10081
          protocol: tcp
          routes: [ { cluster: echo } ]
        - name: passthrough
          port: 10443
          protocol: tls                  # TLS passthrough, routed by SNI (tls_inspector)
          routes: [ { match: { sni: a.example.com }, cluster: a } ]
      clusters:
        - name: api-v1
          endpoints: [ 127.0.0.1:18080 ]       # host:port; EDS carries them
          lb: round_robin                      # round_robin | least_request | random | ring_hash
          http2: false                         # true for gRPC / h2c upstreams
          connect_timeout: 1s
          health_check: { interval: 5s, tcp: { send: "PING\\r\\n", expect: "+PONG" } }   # or http: { path: /healthz }
        - name: api-v2
          endpoints: [ 127.0.0.1:18081 ]
          health_check: { interval: 10s, timeout: 2s, http: { path: /healthz } }
        - name: echo
          endpoints: [ "[::1]:18082" ]
          http2: true
        - name: a
          endpoints: [ a.internal:8443 ]
          lb: ring_hash
    `);
    const expected: Mesh = {
      listeners: [
        {
          name: 'web',
          address: '0.0.0.0',
          port: 10080,
          protocol: 'http',
          routes: [
            {
              match: { kind: 'http', prefix: '/api', headers: [{ name: 'x-canary', value: '1' }] },
              target: { kind: 'cluster', cluster: 'api-v2' },
              timeout: 5000,
            },
            {
              match: { kind: 'http', prefix: '/', headers: [] },
              target: {
                kind: 'weighted',
                clusters: [
                  { name: 'api-v1', weight: 90 },
                  { name: 'api-v2', weight: 10 },
                ],
              },
            },
          ],
        },
        {
          name: 'raw',
          address: '0.0.0.0',
          port: 10081,
          protocol: 'tcp',
          routes: [{ target: { kind: 'cluster', cluster: 'echo' } }],
        },
        {
          name: 'passthrough',
          address: '0.0.0.0',
          port: 10443,
          protocol: 'tls',
          routes: [{ match: { kind: 'sni', sni: 'a.example.com' }, target: { kind: 'cluster', cluster: 'a' } }],
        },
      ],
      clusters: [
        {
          name: 'api-v1',
          endpoints: [{ host: '127.0.0.1', port: 18080 }],
          lb: 'round_robin',
          http2: false,
          connectTimeout: 1000,
          healthCheck: { kind: 'tcp', interval: 5000, timeout: 1000, send: 'PING\r\n', expect: '+PONG' },
        },
        {
          name: 'api-v2',
          endpoints: [{ host: '127.0.0.1', port: 18081 }],
          lb: 'round_robin',
          http2: false,
          connectTimeout: 5000,
          healthCheck: { kind: 'http', interval: 10_000, timeout: 2000, path: '/healthz' },
        },
        {
          name: 'echo',
          endpoints: [{ host: '::1', port: 18082 }],
          lb: 'round_robin',
          http2: true,
          connectTimeout: 5000,
        },
        {
          name: 'a',
          endpoints: [{ host: 'a.internal', port: 8443 }],
          lb: 'ring_hash',
          http2: false,
          connectTimeout: 5000,
        },
      ],
    };
    assert.deepEqual(meshOf(text), expected);
  });

  it('keeps an explicit listener address, path and regex matches, and a tls default route', () => {
    const text = yaml(`
      listeners:
        - name: web
          address: "[::]"
          port: 10080
          protocol: http
          routes:
            - { match: { path: /exact }, cluster: a }
            - { match: { regex: "^/v[0-9]+/" }, cluster: b }
        - name: tls
          address: 127.0.0.1
          port: 10443
          protocol: tls
          routes:
            - { match: { sni: "*.example.com" }, cluster: a }
            - { cluster: b }
    `) + CLUSTERS;
    const mesh = meshOf(text);
    assert.equal(mesh.listeners[0]!.address, '::');
    assert.deepEqual(mesh.listeners[0]!.routes.map((r) => r.match), [
      { kind: 'http', path: '/exact', headers: [] },
      { kind: 'http', regex: '^/v[0-9]+/', headers: [] },
    ]);
    assert.equal(mesh.listeners[1]!.address, '127.0.0.1');
    assert.deepEqual(mesh.listeners[1]!.routes, [
      { match: { kind: 'sni', sni: '*.example.com' }, target: { kind: 'cluster', cluster: 'a' } },
      { target: { kind: 'cluster', cluster: 'b' } },
    ]);
  });
});

describe('protocol filter schemas', () => {
  it('validates route match attributes with a plugged-in filter schema', () => {
    const parse = createMeshParser({
      protocols: {
        mqtt: {
          match: {
            type: 'object',
            additionalProperties: false,
            properties: { client_id: { type: 'object' }, topic: { type: 'string' } },
          },
        },
      },
    });
    const text = yaml(`
      listeners:
        - name: mqtt
          port: 11883
          protocol: mqtt
          routes:
            - match: { client_id: { prefix: a- }, topik: x }
              cluster: a
    `) + CLUSTERS;
    const r = parse(text, FILE);
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.deepEqual(r.errors.map(formatConfigError), [
        'mesh.yaml:6:45: unknown key "topik" (did you mean "topic"?) (at listeners[0].routes[0].match.topik)',
      ]);
    }
  });
});

describe('files', () => {
  it('validates envoy-configs/mesh.example.yaml', async () => {
    const file = fileURLToPath(new URL('../../envoy-configs/mesh.example.yaml', import.meta.url));
    const r = await loadMeshFile(file);
    if (!r.ok) assert.fail(r.errors.map(formatConfigError).join('\n'));
    assert.deepEqual(
      r.mesh.listeners.map((l) => [l.name, l.protocol, l.port]),
      [
        ['web', 'http', 10080],
        ['raw', 'tcp', 10081],
        ['passthrough', 'tls', 10443],
      ],
    );
    const web = r.mesh.listeners[0]!;
    assert.deepEqual(web.routes[0]!.match, {
      kind: 'http',
      prefix: '/api',
      headers: [{ name: 'x-canary', value: '1' }],
    });
    assert.deepEqual(web.routes[1]!.target, {
      kind: 'weighted',
      clusters: [
        { name: 'api-v1', weight: 90 },
        { name: 'api-v2', weight: 10 },
      ],
    });
    assert.ok(r.mesh.clusters.every((c) => c.endpoints.every((e) => e.host === '127.0.0.1' && e.port >= 18080)));
  });

  it('reports an unreadable file as one error at 1:1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'protoplane-config-'));
    try {
      const missing = join(dir, 'missing.yaml');
      assert.deepEqual(await loadMeshFile(missing), {
        ok: false,
        errors: [{ file: missing, line: 1, col: 1, path: '', message: 'cannot read config file: no such file' }],
      });
      const bad = join(dir, 'bad.yaml');
      await writeFile(bad, 'listeners:\n  - name: web\n    bogus: 1\n');
      const r = await loadMeshFile(bad);
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.deepEqual(r.errors.map(formatConfigError), [
          `${bad}:2:5: listener is missing required key "port" (at listeners[0])`,
          `${bad}:2:5: listener is missing required key "protocol" (at listeners[0])`,
          `${bad}:2:5: listener is missing required key "routes" (at listeners[0])`,
          `${bad}:3:5: unknown key "bogus" (allowed: name, address, port, protocol, routes, filter, transport, idle_timeout, tcp, detection_timeout, tls, max_connections, proxy_protocol, access_log, rate_limit) (at listeners[0].bogus)`,
        ]);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('grpc API listeners', () => {
  it('take http routes and no port', () => {
    const mesh = meshOf(
      yaml(`
        listeners:
          - name: greeter
            protocol: grpc
            routes: [ { match: { prefix: /, headers: { x-v: "2" } }, cluster: b }, { match: { prefix: / }, cluster: a } ]
      `) + CLUSTERS,
    );
    assert.equal(mesh.listeners[0]!.protocol, 'grpc');
    assert.equal(mesh.listeners[0]!.port, 0);
    assert.deepEqual(mesh.listeners[0]!.routes[0]!.match, { kind: 'http', prefix: '/', headers: [{ name: 'x-v', value: '2' }] });
  });

  it('reject a port, and other listeners still need one', () => {
    assert.deepEqual(
      errorsOf(
        yaml(`
          listeners:
            - { name: greeter, protocol: grpc, port: 9000, routes: [ { match: { prefix: / }, cluster: a } ] }
            - { name: web, protocol: http, routes: [ { match: { prefix: / }, cluster: a } ] }
        `) + CLUSTERS,
      ),
      ['mesh.yaml:3:5: listener is missing required key "port" (at listeners[1])'],
    );
    assert.deepEqual(
      errorsOf(
        yaml(`
          listeners:
            - { name: greeter, protocol: grpc, port: 9000, routes: [ { match: { prefix: / }, cluster: a } ] }
        `) + CLUSTERS,
      ),
      ['mesh.yaml:2:38: a grpc listener binds no port (proxyless gRPC clients reach it as xds:///NAME) (at listeners[0].port)'],
    );
  });
});
