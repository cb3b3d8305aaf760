// Per-route `websocket: true` (issue 21): refused outside http/auto routes with
// file:line:col, translated to the route's upgrade_configs, accepted by Envoy 1.40.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatConfigError, parseMesh } from '../../xds-server/config/index.ts';
import { translate } from '../../xds-server/translate/index.ts';
import { envoyValidates } from '../support/envoy-validate.ts';

const MESH = `listeners:
  - name: web
    port: 10080
    protocol: auto
    routes:
      - { match: { prefix: /ws }, cluster: echo, websocket: true }
      - { match: { prefix: / }, cluster: echo }
    tcp: { cluster: echo }
clusters:
  - { name: echo, endpoints: [ 127.0.0.1:18080 ] }
`;

describe('route websocket', () => {
  it('becomes upgrade_configs on that route only, accepted by Envoy 1.40', async () => {
    const r = parseMesh(MESH, 'mesh.yaml');
    if (!r.ok) assert.fail(r.errors.map(formatConfigError).join('\n'));
    assert.equal(r.mesh.listeners[0]!.routes[0]!.websocket, true);
    const resources = translate(r.mesh);
    const routes = (resources.routes[0]!['virtual_hosts'] as Array<{ routes: Array<{ route: Record<string, unknown> }> }>)[0]!.routes;
    assert.deepEqual(routes[0]!.route['upgrade_configs'], [{ upgrade_type: 'websocket' }]);
    assert.equal(routes[1]!.route['upgrade_configs'], undefined);
    const result = await envoyValidates(resources);
    assert.ok(result.ok, result.output);
  });

  it('is refused on a tcp route, at the key', () => {
    const r = parseMesh(`listeners:
  - name: raw
    port: 10081
    protocol: tcp
    routes: [ { cluster: echo, websocket: true } ]
clusters:
  - { name: echo, endpoints: [ 127.0.0.1:18080 ] }
`, 'mesh.yaml');
    assert.equal(r.ok, false);
    assert.deepEqual(r.ok ? [] : r.errors.map(formatConfigError), [
      'mesh.yaml:5:32: "websocket" applies only to routes of http and auto listeners (at listeners[0].routes[0].websocket)',
    ]);
  });
});
