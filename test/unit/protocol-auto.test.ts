// `protocol: auto` (issue 21): schema and semantic errors with file:line:col,
// the normalised model, and a translation the real Envoy 1.40 accepts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatConfigError, parseMesh } from '../../xds-server/config/index.ts';
import type { Mesh } from '../../xds-server/model/types.ts';
import { translate } from '../../xds-server/translate/index.ts';
import { envoyValidates } from '../support/envoy-validate.ts';

const FILE = 'mesh.yaml';
const CLUSTERS = `clusters:
  - { name: web, endpoints: [ 127.0.0.1:18080 ] }
  - { name: echo, endpoints: [ 127.0.0.1:18081 ] }
`;

function errorsOf(text: string): string[] {
  const r = parseMesh(text, FILE);
  assert.equal(r.ok, false, 'expected the config to be rejected');
  return r.ok ? [] : r.errors.map(formatConfigError);
}

function meshOf(text: string): Mesh {
  const r = parseMesh(text, FILE);
  if (!r.ok) assert.fail(r.errors.map(formatConfigError).join('\n'));
  return r.mesh;
}

/** The fixed shape. */
const AUTO = `listeners:
  - name: any
    port: 10090
    protocol: auto
    routes:
      - match: { prefix: / }
        cluster: web
    tcp: { cluster: echo }
${CLUSTERS}`;

describe('protocol: auto', () => {
  it('normalises the fixed shape: HTTP routes, a tcp fallback and the 10s default detection timeout', () => {
    const l = meshOf(AUTO).listeners[0]!;
    assert.equal(l.protocol, 'auto');
    assert.deepEqual(l.routes, [{ match: { kind: 'http', prefix: '/', headers: [] }, target: { kind: 'cluster', cluster: 'web' } }]);
    assert.deepEqual(l.detection, { tcp: { target: { kind: 'cluster', cluster: 'echo' } }, timeout: 10_000 });
  });

  it('takes detection_timeout and a weighted fallback with an idle timeout', () => {
    const l = meshOf(AUTO.replace('tcp: { cluster: echo }', 'tcp: { clusters: { echo: 1, web: 3 }, timeout: 30s }\n    detection_timeout: 250ms')).listeners[0]!;
    assert.deepEqual(l.detection, {
      tcp: { target: { kind: 'weighted', clusters: [{ name: 'echo', weight: 1 }, { name: 'web', weight: 3 }] }, timeout: 30_000 },
      timeout: 250,
    });
  });

  it('names file:line:col for a missing fallback, an unknown cluster, a bad timeout and misplaced keys', () => {
    assert.deepEqual(errorsOf(AUTO.replace('    tcp: { cluster: echo }\n', '')), [
      'mesh.yaml:4:15: a "protocol: auto" listener needs "tcp: { cluster: NAME }" for connections that are not HTTP (at listeners[0].protocol)',
    ]);
    assert.deepEqual(errorsOf(AUTO.replace('cluster: echo }', 'cluster: ecko }')), [
      'mesh.yaml:8:21: cluster "ecko" is not defined (did you mean "echo"?) (at listeners[0].tcp.cluster)',
    ]);
    const bad = errorsOf(AUTO.replace('tcp: { cluster: echo }', 'tcp: { cluster: echo, match: { prefix: / } }\n    detection_timeout: 0s'));
    assert.equal(bad.length, 2, bad.join('\n'));
    assert.match(bad[0]!, /^mesh\.yaml:8:27: .*match.* \(at listeners\[0\]\.tcp\.match\)$/);
    assert.match(bad[1]!, /^mesh\.yaml:9:24: .* \(at listeners\[0\]\.detection_timeout\)$/);
    const onHttp = errorsOf(AUTO.replace('protocol: auto', 'protocol: http').replace('tcp: { cluster: echo }', 'tcp: { cluster: echo }\n    detection_timeout: 1s'));
    assert.deepEqual(onHttp, [
      'mesh.yaml:8:5: "tcp" is the fallback of "protocol: auto" listeners, not of http (at listeners[0].tcp)',
      'mesh.yaml:9:5: "detection_timeout" applies only to "protocol: auto" listeners (at listeners[0].detection_timeout)',
    ]);
  });

  it('checks its routes as http routes (a match is needed)', () => {
    const errors = errorsOf(AUTO.replace('- match: { prefix: / }\n        cluster: web', '- cluster: web'));
    assert.deepEqual(errors, ['mesh.yaml:6:9: http route needs a "match" with "prefix", "path" or "regex" (at listeners[0].routes[0])']);
  });

  it('translates to http_inspector, an HCM chain for http/1.x and h2c, and a tcp_proxy default chain that Envoy 1.40 accepts', async () => {
    const mesh = meshOf(AUTO.replace('tcp: { cluster: echo }', 'tcp: { cluster: echo, timeout: 30s }\n    detection_timeout: 2s'));
    const resources = translate(mesh);
    const listener = resources.listeners[0]!;
    assert.deepEqual(listener['listener_filters_timeout'], { seconds: 2, nanos: 0 });
    assert.equal(listener['continue_on_listener_filters_timeout'], true);
    const chains = listener['filter_chains'] as Array<Record<string, unknown>>;
    assert.deepEqual(chains[0]!['filter_chain_match'], { application_protocols: ['http/1.0', 'http/1.1', 'h2c'] });
    assert.equal((listener['default_filter_chain'] as { name: string }).name, 'tcp');
    assert.equal(resources.routes[0]!['name'], 'any');
    const result = await envoyValidates(resources);
    assert.ok(result.ok, result.output);
  });
});
