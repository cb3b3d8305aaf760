// Proves the real-peer harness against the stock Envoy 1.40 binary: a static
// bootstrap (HTTP listener -> HTTP upstream, TCP listener -> echo upstream),
// traffic through both, stats and config_dump read back over the admin API.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { envoyBinary, freePort, startEnvoy, type EnvoyHandle } from './envoy.ts';
import {
  httpGet, startHttpUpstream, startTcpEcho, startTlsUpstream, tcpExchange, tlsRead,
  type HttpUpstream, type TcpEcho,
} from './upstreams.ts';

function staticBootstrap(p: { admin: number; http: number; tcp: number; httpUpstream: number; tcpUpstream: number }): string {
  return `
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: ${p.admin} } }
static_resources:
  listeners:
    - name: ingress
      address: { socket_address: { address: 127.0.0.1, port_value: ${p.http} } }
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: ingress
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes: [ { match: { prefix: / }, route: { cluster: a } } ]
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
    - name: raw
      address: { socket_address: { address: 127.0.0.1, port_value: ${p.tcp} } }
      filter_chains:
        - filters:
            - name: envoy.filters.network.tcp_proxy
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                stat_prefix: raw
                cluster: echo
  clusters:
    - name: a
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: a
        endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${p.httpUpstream} } } } } ] } ]
    - name: echo
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: echo
        endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${p.tcpUpstream} } } } } ] } ]
`;
}

describe('real-peer harness (stock Envoy 1.40)', () => {
  let upstream: HttpUpstream;
  let echo: TcpEcho;
  let envoy: EnvoyHandle;
  let httpPort: number;
  let tcpPort: number;

  before(async () => {
    upstream = await startHttpUpstream('a');
    echo = await startTcpEcho('echo');
    [httpPort, tcpPort] = [await freePort(), await freePort()];
    const admin = await freePort();
    envoy = await startEnvoy({
      adminPort: admin,
      bootstrapYaml: staticBootstrap({ admin, http: httpPort, tcp: tcpPort, httpUpstream: upstream.port, tcpUpstream: echo.port }),
    });
  });

  after(async () => {
    await envoy?.stop();
    await upstream?.close();
    await echo?.close();
  });

  it('finds the installed Envoy binary', () => {
    assert.match(envoyBinary(), /envoy$/);
  });

  it('lists the static listeners with their ports', async () => {
    assert.equal(await envoy.waitForListener('ingress'), httpPort);
    assert.equal(await envoy.waitForListener('raw'), tcpPort);
  });

  it('proxies HTTP to the upstream and counts it in stats', async () => {
    const res = await httpGet(httpPort, '/hello', { 'x-test': '1' });
    assert.equal(res.status, 200);
    assert.equal(res.body, 'a');
    assert.equal(res.headers['x-upstream'], 'a');
    assert.equal(upstream.hits, 1);
    assert.equal(upstream.requests[0].url, '/hello');
    assert.equal(upstream.requests[0].headers['x-test'], '1');
    const total = await envoy.waitForStat('http.ingress.downstream_rq_total', (v) => v >= 1);
    assert.ok(total >= 1);
    assert.equal(await envoy.stat('cluster.a.upstream_rq_200'), 1);
  });

  it('proxies TCP to the echo upstream', async () => {
    const reply = await tcpExchange(tcpPort, 'ping', { done: (r) => r.length >= 'echo:ping'.length });
    assert.equal(reply.toString(), 'echo:ping');
    assert.equal(echo.received[0].toString(), 'ping');
    await envoy.waitForStat('tcp.raw.downstream_cx_total', (v) => v >= 1);
    assert.ok(((await envoy.stats()).get('cluster.echo.upstream_cx_total') ?? 0) >= 1);
  });

  it('dumps config', async () => {
    const dump = await envoy.configDump();
    assert.match(JSON.stringify(dump), /ListenersConfigDump/);
    assert.match(envoy.logTail(200), /starting main dispatch loop/);
  });

  it('runs a second Envoy side by side, and stop() ends it', async () => {
    const admin = await freePort();
    const second = await startEnvoy({ adminPort: admin, bootstrapYaml: `admin: { address: { socket_address: { address: 127.0.0.1, port_value: ${admin} } } }\n` });
    try {
      assert.equal(second.running, true);
      assert.equal((await second.admin('/ready')).status, 200);
      await second.stop();
      assert.equal(second.running, false);
      assert.equal(envoy.running, true);
    } finally {
      await second.stop(); // (again, on a failure path: a running Envoy would keep this file alive)
    }
  });

  it('fails loudly with the Envoy log when the bootstrap is bad', async () => {
    const admin = await freePort();
    await assert.rejects(
      startEnvoy({ adminPort: admin, bootstrapYaml: 'static_resources: { clusters: [ { name: x, type: NOPE } ] }\n', startTimeoutMs: 5000 }),
      (err: unknown) => err instanceof Error && /Envoy exited/.test(err.message) && /NOPE/.test(err.message),
    );
  });

  it('serves TLS with a certificate for its server name', async () => {
    const tlsUp = await startTlsUpstream('t', 'a.example.com');
    try {
      const { body, certPem } = await tlsRead(tlsUp.port, 'a.example.com');
      assert.equal(body, 't');
      assert.equal(certPem.trim(), tlsUp.certPem.trim());
      assert.deepEqual(tlsUp.serverNames, ['a.example.com']);
    } finally {
      await tlsUp.close();
    }
  });
});
