// CoAP in the mesh file: a TCP listener (the coap filter's settings and
// route matches, checked against its manifest) and a `transport: udp`
// listener (udp_proxy, routed by source range) from envoy-configs/mesh.coap.yaml,
// translated and accepted by stock Envoy; what is refused, with file:line:col.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { listFilters } from '../../xds-server/catalog/index.ts';
import { createMeshParser, formatConfigError } from '../../xds-server/config/index.ts';
import { translate, type FilterRefs } from '../../xds-server/translate/index.ts';
import { envoyValidates } from '../support/envoy-validate.ts';
import { REPO_ROOT } from '../support/envoy.ts';

const coap = listFilters().find((m) => m.protocol === 'coap')!;
const parse = createMeshParser({ protocols: { coap: { filter: coap.settings, match: coap.match } } });
const FILE = path.join(REPO_ROOT, 'envoy-configs', 'mesh.coap.yaml');
const REFS: FilterRefs = new Map([['coap', { name: 'coap', code: { kind: 'local', path: '/tmp/coap.wasm' } }]]);

const base = (listener: string) => `listeners:
${listener}
clusters:
  - { name: a, endpoints: [ 127.0.0.1:15683 ] }
  - { name: b, endpoints: [ 127.0.0.1:25683 ] }
`;

describe('coap listeners in the mesh file', () => {
  it('envoy-configs/mesh.coap.yaml loads, translates to a Wasm TCP listener and a udp_proxy listener, and Envoy accepts them', async () => {
    const r = parse(await readFile(FILE, 'utf8'), FILE);
    if (!r.ok) assert.fail(r.errors.map(formatConfigError).join('\n'));
    const [tcp, udp] = r.mesh.listeners;
    assert.equal(tcp!.transport, undefined);
    assert.equal(udp!.transport, 'udp');
    assert.equal(udp!.idleTimeout, 30_000);
    assert.deepEqual(udp!.routes[0]!.match, { kind: 'source', ranges: [{ address: '10.20.0.0', prefixLen: 16 }, { address: 'fd00::', prefixLen: 8 }] });
    const resources = translate(r.mesh, 'ads', REFS);
    assert.equal(resources.extensions.length, 1, 'one ECDS filter config: the TCP listener only');
    const udpListener = resources.listeners.find((l) => l['name'] === 'coap-udp')!;
    assert.equal(JSON.stringify(udpListener).includes('udp_proxy'), true);
    assert.equal(JSON.stringify(udpListener).includes('wasm'), false);
    const verdict = await envoyValidates(resources);
    assert.ok(verdict.ok, verdict.output);
  });

  it('refuses what udp_proxy cannot do, naming file:line:col', () => {
    const cases: Array<[string, RegExp]> = [
      [`  - name: u
    port: 5683
    protocol: coap
    transport: udp
    filter: { limits: { max_options: 4 } }
    routes: [ { cluster: a } ]`, /x\.yaml:6:5: .*no Wasm filter in Envoy/],
      [`  - name: u
    port: 5683
    protocol: coap
    transport: udp
    routes: [ { match: { source: 10.0.0.0/33 }, cluster: a }, { cluster: b } ]`, /x\.yaml:6:34: "10\.0\.0\.0\/33" is not a CIDR range/],
      [`  - name: u
    port: 5683
    protocol: coap
    transport: udp
    routes: [ { match: { path: { prefix: /a } }, cluster: a }, { cluster: b } ]`, /x\.yaml:6:.*/],
      [`  - name: u
    port: 1883
    protocol: tcp
    transport: udp
    routes: [ { cluster: a } ]`, /x\.yaml:5:.*no UDP transport/],
      [`  - name: u
    port: 5683
    protocol: coap
    idle_timeout: 5s
    routes: [ { cluster: a } ]`, /x\.yaml:5:5: .*idle_timeout.*only to "transport: udp"/],
      [`  - name: t
    port: 5683
    protocol: coap
    routes: [ { cluster: a } ]
  - name: t2
    port: 5683
    protocol: coap
    routes: [ { cluster: b } ]`, /x\.yaml:7:11: port 5683 is already used/],
    ];
    for (const [listener, want] of cases) {
      const r = parse(base(listener), 'x.yaml');
      assert.equal(r.ok, false, listener);
      if (!r.ok) { const text = r.errors.map(formatConfigError).join("\n"); if (process.env.SHOW) console.log(text); assert.match(text, want, text); }
    }
  });
});
