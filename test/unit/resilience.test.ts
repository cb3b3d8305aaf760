// Resilience and limits (issue 21, item 5): outlier_detection and
// circuit_breakers per cluster, health checks with text or hex payloads and
// expected statuses, max_connections per listener and connections/s on
// protocol listeners — the model, errors with file:line:col, the Envoy
// resources, and stock Envoy 1.40 accepting them (`envoy --mode validate`).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMeshParser, formatConfigError } from '../../xds-server/config/index.ts';
import type { Mesh } from '../../xds-server/model/types.ts';
import type { EnvoyMessage } from '../../xds-server/model/resources.ts';
import { translate } from '../../xds-server/translate/index.ts';
import { HealthDiscovery, healthCheckSpecifier } from '../../xds-server/server/hds.ts';
import { SnapshotCache } from '../../xds-server/cache/index.ts';
import { snapshotsOf } from '../../xds-server/snapshots.ts';
import { silentLogger } from '../../xds-server/log.ts';
import { encodeMessage, decodeMessage } from '../../xds-server/protos/index.ts';
import type { BidiCall } from '../../xds-server/server/grpc.ts';
import { envoyValidates } from '../support/envoy-validate.ts';

const parse = createMeshParser({ protocols: { mqtt: {} } });
const filters = new Map([['mqtt', { name: 'mqtt', code: { kind: 'local' as const, path: '/tmp/mqtt.wasm' } }]]);

const MESH = `listeners:
  - name: web
    port: 10080
    protocol: http
    max_connections: 100
    routes: [ { match: { prefix: / }, cluster: api } ]
  - name: raw
    port: 10081
    protocol: tcp
    max_connections: 2
    rate_limit: { connections_per_second: 5 }
    routes: [ { cluster: redis } ]
  - name: any
    port: 10082
    protocol: auto
    max_connections: 10
    routes: [ { match: { prefix: / }, cluster: api } ]
    tcp: { cluster: redis }
  - name: mqtt
    port: 11883
    protocol: mqtt
    rate_limit: { connections_per_second: 3 }
    max_connections: 50
    routes: [ { cluster: redis } ]
clusters:
  - name: api
    endpoints: [ 127.0.0.1:18080, 127.0.0.1:18081 ]
    outlier_detection: { consecutive_5xx: 3, interval: 1s, base_ejection_time: 30s, max_ejection_percent: 50 }
    circuit_breakers: { max_connections: 10, max_pending_requests: 5, max_requests: 20, max_retries: 2 }
    health_check:
      interval: 2s
      unhealthy_threshold: 3
      healthy_threshold: 2
      http: { path: /healthz, expected_statuses: [ 200, "204-299" ] }
  - name: redis
    endpoints: [ 127.0.0.1:16379 ]
    outlier_detection: { consecutive_gateway_failure: 2 }
    health_check: { interval: 500ms, timeout: 200ms, tcp: { send: "PING\\r\\n", expect: "+PONG" } }
  - name: binary
    endpoints: [ 127.0.0.1:16380 ]
    health_check: { interval: 1s, tcp: { send_hex: "0102FF", expect_hex: "ab" } }
`;

function meshOf(text: string): Mesh {
  const r = parse(text, 'mesh.yaml');
  if (!r.ok) assert.fail(r.errors.map(formatConfigError).join('\n'));
  return r.mesh;
}

function errorsOf(text: string): string[] {
  const r = parse(text, 'mesh.yaml');
  assert.equal(r.ok, false, 'expected the config to be rejected');
  return r.ok ? [] : r.errors.map(formatConfigError);
}

const cluster = (name: string) => translate(meshOf(MESH), 'ads', filters).clusters.find((c) => c['name'] === name)!;
const listener = (name: string) => translate(meshOf(MESH), 'ads', filters).listeners.find((l) => l['name'] === name)!;
const filterNames = (chain: EnvoyMessage): string[] => (chain['filters'] as EnvoyMessage[]).map((f) => f['name'] as string);

describe('resilience options: model', () => {
  it('keeps only what was written (absent keys are Envoy defaults) and turns ranges inclusive', () => {
    const mesh = meshOf(MESH);
    const [api, redis, binary] = mesh.clusters;
    assert.deepEqual(api!.outlierDetection, { consecutive5xx: 3, interval: 1000, baseEjectionTime: 30_000, maxEjectionPercent: 50 });
    assert.deepEqual(api!.circuitBreakers, { maxConnections: 10, maxPendingRequests: 5, maxRequests: 20, maxRetries: 2 });
    assert.deepEqual(api!.healthCheck, {
      kind: 'http', interval: 2000, timeout: 1000, unhealthyThreshold: 3, healthyThreshold: 2, path: '/healthz',
      expectedStatuses: [{ from: 200, to: 200 }, { from: 204, to: 299 }],
    });
    assert.deepEqual(redis!.outlierDetection, { consecutiveGatewayFailure: 2 });
    assert.deepEqual(redis!.healthCheck, { kind: 'tcp', interval: 500, timeout: 200, send: 'PING\r\n', expect: '+PONG' });
    assert.deepEqual(binary!.healthCheck, { kind: 'tcp', interval: 1000, timeout: 1000, sendHex: '0102ff', expectHex: 'ab' });
    assert.deepEqual(mesh.listeners.map((l) => [l.name, l.maxConnections, l.rateLimit]), [
      ['web', 100, undefined],
      ['raw', 2, { kind: 'connections', perSecond: 5 }],
      ['any', 10, undefined],
      ['mqtt', 50, { kind: 'connections', perSecond: 3 }],
    ]);
  });
});

describe('resilience options: errors name file:line:col', () => {
  it('refuses bad values and misplaced keys', () => {
    const bad = MESH
      .replace('consecutive_5xx: 3', 'consecutive_5xx: 0')
      .replace('max_ejection_percent: 50', 'max_ejection_percent: 101')
      .replace('max_retries: 2', 'max_retry: 2')
      .replace('"204-299"', '"299-204"');
    assert.deepEqual(errorsOf(bad), [
      'mesh.yaml:28:43: must be an integer >= 1 (got 0) (at clusters[0].outlier_detection.consecutive_5xx)',
      'mesh.yaml:28:107: must be an integer from 0 to 100 (got 101) (at clusters[0].outlier_detection.max_ejection_percent)',
      'mesh.yaml:29:89: unknown key "max_retry" (allowed: max_connections, max_pending_requests, max_requests, max_retries) (at clusters[0].circuit_breakers.max_retry)',
    ]);
    // the empty range is a semantic check: it runs once the structure is right
    assert.deepEqual(errorsOf(MESH.replace('"204-299"', '"299-204"')), [
      'mesh.yaml:34:57: range "299-204" is empty: its first status is above its last (at clusters[0].health_check.http.expected_statuses[1])',
    ]);
  });

  it('refuses hex that is not bytes, and text and hex together', () => {
    assert.deepEqual(errorsOf(MESH.replace('send_hex: "0102FF"', 'send_hex: "0102F"')), [
      'mesh.yaml:41:52: must be hex bytes, two digits each, like "50494e470d0a" (got "0102F") (at clusters[2].health_check.tcp.send_hex)',
    ]);
    assert.deepEqual(errorsOf(MESH.replace('send_hex: "0102FF"', 'send: "x", send_hex: "0102FF"')), [
      'mesh.yaml:41:53: use "send" (text) or "send_hex" (bytes), not both (at clusters[2].health_check.tcp.send_hex)',
    ]);
    assert.deepEqual(errorsOf(MESH.replace('expected_statuses: [ 200, "204-299" ]', 'expected_statuses: [ 600 ]')), [
      'mesh.yaml:34:52: must be a status code from 100 to 599, or an inclusive range like "200-299" (at clusters[0].health_check.http.expected_statuses[0])',
    ]);
  });

  it('puts connection limits only where there are connections', () => {
    const grpc = `listeners:
  - name: g
    protocol: grpc
    max_connections: 5
    routes: [ { match: { prefix: / }, cluster: c } ]
  - name: w
    port: 10080
    protocol: http
    rate_limit: { connections_per_second: 5 }
    routes: [ { match: { prefix: / }, cluster: c } ]
  - name: m
    port: 11883
    protocol: mqtt
    max_connections: 0
    routes: [ { cluster: c } ]
clusters: [ { name: c, endpoints: [] } ]
`;
    assert.deepEqual(errorsOf(grpc), ['mesh.yaml:14:22: must be an integer >= 1 (got 0) (at listeners[2].max_connections)']);
    assert.deepEqual(errorsOf(grpc.replace('max_connections: 0', 'max_connections: 1')), [
      'mesh.yaml:4:5: "max_connections" is for listeners that accept TCP connections; a grpc API listener accepts no connections (at listeners[0].max_connections)',
      'mesh.yaml:9:19: "connections_per_second" is for tcp and protocol (filter) listeners; use "requests_per_second" (at listeners[1].rate_limit.connections_per_second)',
    ]);
  });
});

describe('resilience options: translation', () => {
  it('gives a cluster outlier_detection, circuit_breakers and health_checks', () => {
    const api = cluster('api');
    assert.deepEqual(api['outlier_detection'], {
      consecutive_5xx: { value: 3 }, interval: { seconds: 1, nanos: 0 }, base_ejection_time: { seconds: 30, nanos: 0 }, max_ejection_percent: { value: 50 },
    });
    assert.deepEqual(api['circuit_breakers'], {
      thresholds: [{ priority: 'DEFAULT', max_connections: { value: 10 }, max_pending_requests: { value: 5 }, max_requests: { value: 20 }, max_retries: { value: 2 } }],
    });
    assert.deepEqual(api['health_checks'], [{
      timeout: { seconds: 1, nanos: 0 }, interval: { seconds: 2, nanos: 0 }, no_traffic_interval: { seconds: 2, nanos: 0 },
      unhealthy_threshold: { value: 3 }, healthy_threshold: { value: 2 },
      http_health_check: { path: '/healthz', expected_statuses: [{ start: 200, end: 201 }, { start: 204, end: 300 }] },
    }]);
    // naming the gateway-failure detector enforces it (Envoy only counts it by default)
    assert.deepEqual(cluster('redis')['outlier_detection'], { consecutive_gateway_failure: { value: 2 }, enforcing_consecutive_gateway_failure: { value: 100 } });
    const tcpCheck = (name: string) => ((cluster(name)['health_checks'] as EnvoyMessage[])[0]!['tcp_health_check']);
    assert.deepEqual(tcpCheck('redis'), { send: { text: Buffer.from('PING\r\n').toString('hex') }, receive: [{ text: Buffer.from('+PONG').toString('hex') }] });
    assert.deepEqual(tcpCheck('binary'), { send: { text: '0102ff' }, receive: [{ text: 'ab' }] });
  });

  it('puts the connection limits first in every filter chain, before tcp_proxy, the HCM or the Wasm filter', () => {
    assert.deepEqual(filterNames((listener('raw')['filter_chains'] as EnvoyMessage[])[0]!), [
      'envoy.filters.network.local_ratelimit', 'envoy.filters.network.connection_limit', 'envoy.filters.network.tcp_proxy',
    ]);
    assert.deepEqual(filterNames((listener('web')['filter_chains'] as EnvoyMessage[])[0]!), [
      'envoy.filters.network.connection_limit', 'envoy.filters.network.http_connection_manager',
    ]);
    const auto = listener('any');
    assert.deepEqual(filterNames((auto['filter_chains'] as EnvoyMessage[])[0]!)[0], 'envoy.filters.network.connection_limit');
    assert.deepEqual(filterNames(auto['default_filter_chain'] as EnvoyMessage)[0], 'envoy.filters.network.connection_limit');
    const mqtt = filterNames((listener('mqtt')['filter_chains'] as EnvoyMessage[])[0]!);
    assert.deepEqual(mqtt.slice(0, 2), ['envoy.filters.network.local_ratelimit', 'envoy.filters.network.connection_limit']);
    assert.ok(mqtt.indexOf('envoy.filters.network.connection_limit') < mqtt.findIndex((n) => n !== 'envoy.filters.network.local_ratelimit' && n !== 'envoy.filters.network.connection_limit'));
  });

  it('is accepted by stock Envoy (envoy --mode validate)', async () => {
    const r = await envoyValidates(translate(meshOf(MESH), 'ads', filters));
    assert.ok(r.ok, r.output);
  });
});

describe('HDS: what protoplane asks Envoy to check and report', () => {
  it('lists every EDS cluster with a health check, its endpoints and checks; reports at the shortest interval', () => {
    const withTls = MESH.replace('  - name: binary\n', '  - name: binary\n    tls: { sni: b.example.com }\n');
    const r = translate(meshOf(withTls), 'ads', filters);
    const spec = healthCheckSpecifier(r.clusters, r.endpoints);
    const checks = spec['cluster_health_checks'] as EnvoyMessage[];
    // binary speaks TLS to its endpoints: left out (HDS checks run in clear)
    assert.deepEqual(checks.map((c) => c['cluster_name']), ['api', 'redis']);
    assert.deepEqual(checks[0]!['locality_endpoints'], [{
      locality: {},
      endpoints: [18080, 18081].map((port) => ({ address: { socket_address: { address: '127.0.0.1', port_value: port } } })),
    }]);
    assert.deepEqual(checks[0]!['health_checks'], cluster('api')['health_checks']);
    assert.deepEqual(spec['interval'], { seconds: 0, nanos: 500_000_000 });
    assert.deepEqual(healthCheckSpecifier([], []), { cluster_health_checks: [], interval: { seconds: 10, nanos: 0 } });
  });
});

/**
 * A recorded gRPC call standing in for Envoy's HDS stream, for the stream's
 * edge cases (undecodable bytes, unasked clusters, an unproven node id);
 * test/e2e/health-checks.test.ts runs the same service against stock Envoy.
 */
function recordedCall(peerNames?: string[]) {
  const written: Array<Record<string, unknown>> = [];
  const ended: Array<{ code?: number; message?: string }> = [];
  const call: BidiCall = {
    path: '/envoy.service.health.v3.HealthDiscoveryService/StreamHealthCheck',
    connection: 1,
    peerNames,
    write: (m) => { written.push(decodeMessage('envoy.service.health.v3.HealthCheckSpecifier', m)); return true; },
    onDrain: () => undefined,
    end: (code, message) => { ended.push({ code, message }); },
    abort: () => undefined,
  };
  return { call, written, ended };
}

const hdsMessage = (m: Record<string, unknown>) => Buffer.from(encodeMessage('envoy.service.health.v3.HealthCheckRequestOrEndpointHealthResponse', m));
const hello = (id: string) => hdsMessage({ health_check_request: { node: { id, cluster: 'c' }, capability: { health_check_protocols: ['HTTP', 'TCP'] } } });
const at = (port: number) => ({ address: { socket_address: { address: '127.0.0.1', port_value: port } } });

describe('HDS stream', () => {
  it('answers a node with the specifier, keeps only asked-for reports, and resends on a config change', () => {
    const cache = new SnapshotCache();
    cache.set(snapshotsOf(meshOf(MESH), filters));
    const hds = new HealthDiscovery(cache, silentLogger());
    const { call, written } = recordedCall();
    const stream = hds.handle(call);
    stream.onMessage(hello('envoy-1'));
    assert.deepEqual((written[0]!['cluster_health_checks'] as Array<Record<string, unknown>>).map((c) => c['cluster_name']), ['api', 'redis', 'binary']);
    stream.onMessage(hdsMessage({
      endpoint_health_response: {
        cluster_endpoints_health: [
          { cluster_name: 'api', locality_endpoints_health: [{ locality: {}, endpoints_health: [
            { endpoint: at(18080), health_status: 'HEALTHY' }, { endpoint: at(18081), health_status: 'UNHEALTHY' }, { endpoint: at(9), health_status: 'HEALTHY' },
          ] }] },
          { cluster_name: 'not-asked', locality_endpoints_health: [{ locality: {}, endpoints_health: [{ endpoint: at(1), health_status: 'HEALTHY' }] }] },
        ],
      },
    }));
    const node = hds.view().nodes[0]!;
    assert.equal(node.id, 'envoy-1');
    assert.deepEqual(node.clusters['api'], [{ address: '127.0.0.1:18080', health: 'HEALTHY' }, { address: '127.0.0.1:18081', health: 'UNHEALTHY' }]);
    assert.deepEqual(node.clusters['redis'], [{ address: '127.0.0.1:16379', health: 'UNKNOWN' }]);
    assert.equal(node.clusters['not-asked'], undefined);
    // a config without the api cluster's check: a new specifier, and the view follows
    cache.set(snapshotsOf(meshOf(MESH.replace(/    health_check:\n      interval: 2s[\s\S]*?expected_statuses: \[ 200, "204-299" \] }\n/, '')), filters));
    assert.equal(written.length, 2);
    assert.deepEqual(Object.keys(hds.view().nodes[0]!.clusters), ['redis', 'binary']);
    stream.onClose('test over');
    assert.deepEqual(hds.view().nodes, []);
    hds.close();
  });

  it('with no node on HDS, a change is turned into a specifier only when one says hello (the newest config, not the first)', () => {
    const cache = new SnapshotCache();
    cache.set(snapshotsOf(meshOf(MESH), filters));
    const hds = new HealthDiscovery(cache, silentLogger());
    const { call, written } = recordedCall();
    const stream = hds.handle(call); // a stream, but no node yet
    cache.set(snapshotsOf(meshOf(MESH.replace(/    health_check:\n      interval: 2s[\s\S]*?expected_statuses: \[ 200, "204-299" \] }\n/, '')), filters));
    assert.equal(written.length, 0);
    stream.onMessage(hello('envoy-1'));
    assert.equal(written.length, 1);
    assert.deepEqual((written[0]!['cluster_health_checks'] as Array<Record<string, unknown>>).map((c) => c['cluster_name']), ['redis', 'binary']);
    assert.deepEqual(Object.keys(hds.view().nodes[0]!.clusters), ['redis', 'binary']);
    hds.close();
  });

  it('ends a stream that sends bytes that are not HDS, or claims a node id its certificate does not prove', () => {
    const cache = new SnapshotCache();
    cache.set(snapshotsOf(meshOf(MESH), filters));
    const open = new HealthDiscovery(cache, silentLogger());
    const junk = recordedCall();
    open.handle(junk.call).onMessage(Buffer.from([0xff, 0xff, 0xff]));
    assert.equal(junk.ended[0]?.code, 13);
    const strict = new HealthDiscovery(cache, silentLogger(), true);
    const liar = recordedCall(['DNS:envoy-2']);
    strict.handle(liar.call).onMessage(hello('envoy-1'));
    assert.equal(liar.ended[0]?.code, 7);
    assert.equal(liar.written.length, 0);
    const honest = recordedCall(['DNS:envoy-1']);
    strict.handle(honest.call).onMessage(hello('envoy-1'));
    assert.equal(honest.written.length, 1);
    open.close();
    strict.close();
  });
});
