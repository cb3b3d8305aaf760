// PROXY protocol on stock Envoy 1.40 (issue 21): a client's PROXY v1 header
// is accepted by a listener with `proxy_protocol: true`, and the cluster with
// `proxy_protocol: v1` sends the client's (restored) source address on to an
// upstream that sees the header as its first bytes. v2 + TLS is checked by
// `envoy --mode validate`.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { formatConfigError, parseMesh } from '../../xds-server/config/index.ts';
import { translate } from '../../xds-server/translate/index.ts';
import { freePort } from '../support/envoy.ts';
import { envoyValidates } from '../support/envoy-validate.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';
import { startTcpEcho, tcpExchange, type TcpEcho } from '../support/upstreams.ts';

describe('PROXY protocol on stock Envoy', () => {
  let env: MeshEnv;
  let echo: TcpEcho;
  let port: number;

  before(async () => {
    echo = await startTcpEcho('echo');
    port = await freePort();
    env = await startMeshEnv({
      nodeId: 'proxy-protocol',
      listeners: ['front'],
      yaml: `listeners:
  - { name: front, port: ${port}, protocol: tcp, proxy_protocol: true, routes: [ { cluster: back } ] }
clusters:
  - { name: back, endpoints: [ 127.0.0.1:${echo.port} ], proxy_protocol: v1 }
`,
    });
  });

  after(async () => {
    await env?.close();
    await echo?.close();
  });

  it('accepts a v1 header and sends the client address it carried to the upstream', async () => {
    const reply = await tcpExchange(port, `PROXY TCP4 203.0.113.7 127.0.0.1 40000 ${port}\r\nhello\n`, { done: (b) => b.toString().endsWith('hello\n') });
    assert.match(reply.toString(), /^echo:PROXY TCP4 203\.0\.113\.7 127\.0\.0\.1 40000 \d+\r\nhello\n$/);
  });

  it('translates v2 wrapped around upstream TLS and the listener filter first; Envoy 1.40 accepts it', async () => {
    const r = parseMesh(`listeners:
  - { name: front, port: 10090, protocol: auto, proxy_protocol: true, routes: [ { match: { prefix: / }, cluster: back } ], tcp: { cluster: back } }
clusters:
  - { name: back, endpoints: [ 127.0.0.1:1 ], proxy_protocol: v2, tls: { sni: back.example.com } }
`, 'mesh.yaml');
    if (!r.ok) assert.fail(r.errors.map(formatConfigError).join('\n'));
    const resources = translate(r.mesh);
    const filters = resources.listeners[0]!['listener_filters'] as Array<{ name: string }>;
    assert.deepEqual(filters.map((f) => f.name), ['envoy.filters.listener.proxy_protocol', 'envoy.filters.listener.http_inspector']);
    const result = await envoyValidates(resources);
    assert.ok(result.ok, result.output);
  });

  it('refuses a bad version and proxy_protocol on a UDP listener, with file:line:col', () => {
    const r = parseMesh(`listeners:
  - { name: m, port: 1883, protocol: mqtt, proxy_protocol: true, routes: [ { cluster: back } ] }
clusters:
  - { name: back, endpoints: [ 127.0.0.1:1 ], proxy_protocol: v3 }
`, 'mesh.yaml');
    assert.equal(r.ok, false);
    const errors = r.ok ? [] : r.errors.map(formatConfigError);
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0]!, /^mesh\.yaml:4:63: must be one of "v1", "v2" \(got "v3"\).* \(at clusters\[0\]\.proxy_protocol\)$/);
    const onUdp = parseMesh(`listeners:
  - { name: c, port: 5683, protocol: coap, transport: udp, proxy_protocol: true, routes: [ { cluster: back } ] }
clusters:
  - { name: back, endpoints: [ 127.0.0.1:1 ] }
`, 'mesh.yaml');
    assert.ok(!onUdp.ok && onUdp.errors.map(formatConfigError).includes(
      'mesh.yaml:2:60: "proxy_protocol" is for listeners that accept TCP connections, not UDP ones (at listeners[0].proxy_protocol)',
    ), onUdp.ok ? 'accepted' : onUdp.errors.map(formatConfigError).join('\n'));
  });
});
