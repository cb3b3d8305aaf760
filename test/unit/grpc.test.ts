// gRPC routes and clusters (issue 21): route `idle_timeout` and
// `max_stream_duration` (streams) next to `timeout` (unary), checked with
// file:line:col and translated to Envoy's RouteAction; an `http2` cluster
// with `tls` offers ALPN h2 unless it names its own. Envoy 1.40 accepts it all.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatConfigError, parseMesh } from '../../xds-server/config/index.ts';
import { decodeMessage } from '../../xds-server/protos/index.ts';
import { translate } from '../../xds-server/translate/index.ts';
import { envoyValidates } from '../support/envoy-validate.ts';
import { selfSignedCert } from '../support/upstreams.ts';

const MESH = `listeners:
  - name: grpc
    port: 10080
    protocol: http
    routes:
      - { match: { path: /pkg.Svc/Get }, cluster: svc, timeout: 2s }
      - { match: { prefix: /pkg.Svc/Watch }, cluster: svc, idle_timeout: 5m, max_stream_duration: 0s }
      - { match: { prefix: /pkg.Svc/ }, cluster: svc-tls, max_stream_duration: 1h }
  - name: any
    port: 10081
    protocol: auto
    routes: [ { match: { prefix: / }, cluster: svc, idle_timeout: 30s } ]
    tcp: { cluster: svc }
clusters:
  - { name: svc, endpoints: [ 127.0.0.1:50051 ], http2: true }
  - name: svc-tls
    endpoints: [ 127.0.0.1:50052 ]
    http2: true
    tls: { sni: svc.example.com, ca: /certs/ca.crt }
  - name: svc-tls-own-alpn
    endpoints: [ 127.0.0.1:50053 ]
    http2: true
    tls: { sni: svc.example.com, ca: /certs/ca.crt, alpn: [ h2, grpc-exp ] }
  - name: web-tls
    endpoints: [ 127.0.0.1:50054 ]
    tls: { sni: svc.example.com, ca: /certs/ca.crt }
`;

type RouteAction = Record<string, unknown>;

function routeActions(resources: ReturnType<typeof translate>, index: number): RouteAction[] {
  const vhosts = resources.routes[index]!['virtual_hosts'] as Array<{ routes: Array<{ route: RouteAction }> }>;
  return vhosts[0]!.routes.map((r) => r.route);
}

/** The ALPN a cluster's UpstreamTlsContext offers. */
function alpnOf(resources: ReturnType<typeof translate>, cluster: string): unknown {
  const socket = resources.clusters.find((c) => c['name'] === cluster)!['transport_socket'] as { typed_config: { value: Uint8Array } };
  const context = decodeMessage('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', socket.typed_config.value);
  return (context['common_tls_context'] as { alpn_protocols?: string[] }).alpn_protocols;
}

describe('gRPC routes and clusters', () => {
  it('translates timeout, idle_timeout and max_stream_duration (with the client deadline capped by it)', () => {
    const r = parseMesh(MESH, 'mesh.yaml');
    if (!r.ok) assert.fail(r.errors.map(formatConfigError).join('\n'));
    const routes = r.mesh.listeners[0]!.routes;
    assert.equal(routes[0]!.timeout, 2000);
    assert.equal(routes[1]!.idleTimeout, 300_000);
    assert.equal(routes[1]!.maxStreamDuration, 0);
    assert.equal(routes[2]!.maxStreamDuration, 3_600_000);
    const files = new Map([['/certs/ca.crt', 'unused by translate']]);
    const resources = translate(r.mesh, 'ads', new Map(), files);
    const [unary, watch, rest] = routeActions(resources, 0);
    assert.deepEqual(unary!['timeout'], { seconds: 2, nanos: 0 });
    assert.equal(unary!['max_stream_duration'], undefined);
    assert.equal(unary!['idle_timeout'], undefined);
    assert.deepEqual(watch!['idle_timeout'], { seconds: 300, nanos: 0 });
    assert.deepEqual(watch!['max_stream_duration'], { max_stream_duration: { seconds: 0, nanos: 0 }, grpc_timeout_header_max: { seconds: 0, nanos: 0 } });
    assert.equal(watch!['timeout'], undefined);
    assert.deepEqual(rest!['max_stream_duration'], { max_stream_duration: { seconds: 3600, nanos: 0 }, grpc_timeout_header_max: { seconds: 3600, nanos: 0 } });
    assert.deepEqual(routeActions(resources, 1)[0]!['idle_timeout'], { seconds: 30, nanos: 0 });
  });

  it('offers ALPN h2 on an http2 cluster with tls, unless it names its own; none on an HTTP/1 cluster', async () => {
    const r = parseMesh(MESH, 'mesh.yaml');
    if (!r.ok) assert.fail(r.errors.map(formatConfigError).join('\n'));
    const { certPem } = await selfSignedCert('svc.example.com');
    const resources = translate(r.mesh, 'ads', new Map(), new Map([['/certs/ca.crt', certPem]]));
    assert.deepEqual(alpnOf(resources, 'svc-tls'), ['h2']);
    assert.deepEqual(alpnOf(resources, 'svc-tls-own-alpn'), ['h2', 'grpc-exp']);
    assert.equal(alpnOf(resources, 'web-tls'), undefined);
    const result = await envoyValidates(resources);
    assert.ok(result.ok, result.output);
  });

  it('refuses timeout together with max_stream_duration, at the timeout key', () => {
    const r = parseMesh(MESH.replace('cluster: svc, idle_timeout: 5m, max_stream_duration: 0s', 'cluster: svc, timeout: 1s, max_stream_duration: 0s'), 'mesh.yaml');
    assert.equal(r.ok, false);
    assert.deepEqual(r.ok ? [] : r.errors.map(formatConfigError), [
      'mesh.yaml:7:60: a route has "timeout" (request timeout, unary calls) or "max_stream_duration" (streams), not both: Envoy ignores "timeout" on a route with "max_stream_duration" (at listeners[0].routes[1].timeout)',
    ]);
  });

  it('refuses the stream keys on tcp routes and bad durations, with file:line:col', () => {
    const r = parseMesh(`listeners:
  - name: raw
    port: 10081
    protocol: tcp
    routes: [ { cluster: svc, max_stream_duration: 1m, idle_timeout: 1m } ]
clusters:
  - { name: svc, endpoints: [ 127.0.0.1:50051 ], http2: true }
`, 'mesh.yaml');
    assert.equal(r.ok, false);
    assert.deepEqual(r.ok ? [] : r.errors.map(formatConfigError), [
      'mesh.yaml:5:31: "max_stream_duration" applies only to routes of http and auto listeners (at listeners[0].routes[0].max_stream_duration)',
      'mesh.yaml:5:56: "idle_timeout" applies only to routes of http and auto listeners (at listeners[0].routes[0].idle_timeout)',
    ]);
    const bad = parseMesh(MESH.replace('idle_timeout: 5m', 'idle_timeout: 0s'), 'mesh.yaml');
    assert.equal(bad.ok, false);
    const errors = bad.ok ? [] : bad.errors.map(formatConfigError);
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0]!, /^mesh\.yaml:7:74: "0s" must be greater than 0 \(at listeners\[0\]\.routes\[1\]\.idle_timeout\)$/);
  });
});
