// Per-cluster retries (issue 21): schema errors with file:line:col, the model,
// and the route retry_policy Envoy 1.40 accepts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatConfigError, parseMesh } from '../../xds-server/config/index.ts';
import type { Mesh } from '../../xds-server/model/types.ts';
import { translate } from '../../xds-server/translate/index.ts';
import { envoyValidates } from '../support/envoy-validate.ts';

const MESH = `listeners:
  - name: web
    port: 10080
    protocol: http
    routes:
      - match: { prefix: /split }
        clusters: { api: 1, other: 1 }
      - match: { prefix: / }
        cluster: api
clusters:
  - name: api
    endpoints: [ 127.0.0.1:18080 ]
    retries: { on: [ 5xx, reset ], count: 2, per_try_timeout: 500ms }
  - name: other
    endpoints: [ 127.0.0.1:18081 ]
`;

function meshOf(text: string): Mesh {
  const r = parseMesh(text, 'mesh.yaml');
  if (!r.ok) assert.fail(r.errors.map(formatConfigError).join('\n'));
  return r.mesh;
}

function errorsOf(text: string): string[] {
  const r = parseMesh(text, 'mesh.yaml');
  assert.equal(r.ok, false, 'expected the config to be rejected');
  return r.ok ? [] : r.errors.map(formatConfigError);
}

describe('cluster retries', () => {
  it('normalises with defaults on: 5xx, count: 1', () => {
    assert.deepEqual(meshOf(MESH).clusters[0]!.retries, { on: ['5xx', 'reset'], count: 2, perTryTimeout: 500 });
    assert.deepEqual(meshOf(MESH.replace('{ on: [ 5xx, reset ], count: 2, per_try_timeout: 500ms }', '{}')).clusters[0]!.retries, { on: ['5xx'], count: 1 });
  });

  it('names file:line:col for a bad condition, count and timeout', () => {
    const errors = errorsOf(MESH.replace('{ on: [ 5xx, reset ], count: 2, per_try_timeout: 500ms }', '{ on: 500, count: 0, per_try_timeout: 0s }'));
    assert.equal(errors.length, 3, errors.join('\n'));
    assert.match(errors[0]!, /^mesh\.yaml:13:20: must be one of "5xx", .* or a list of them \(at clusters\[0\]\.retries\.on\)$/);
    assert.match(errors[1]!, /^mesh\.yaml:13:32: count must be an integer from 1 to 10 \(got 0\) \(at clusters\[0\]\.retries\.count\)$/);
    assert.match(errors[2]!, /^mesh\.yaml:13:52: .* \(at clusters\[0\]\.retries\.per_try_timeout\)$/);
  });

  it('becomes the retry_policy of routes to the cluster (not of a split whose clusters differ), accepted by Envoy 1.40', async () => {
    const resources = translate(meshOf(MESH));
    const routes = (resources.routes[0]!['virtual_hosts'] as Array<{ routes: Array<{ route: Record<string, unknown> }> }>)[0]!.routes;
    assert.equal(routes[0]!.route['retry_policy'], undefined);
    assert.deepEqual(routes[1]!.route['retry_policy'], { retry_on: '5xx,reset', num_retries: { value: 2 }, per_try_timeout: { seconds: 0, nanos: 500_000_000 } });
    const result = await envoyValidates(resources);
    assert.ok(result.ok, result.output);
  });
});
