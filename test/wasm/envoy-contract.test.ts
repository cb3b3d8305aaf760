// The contract filter in stock Envoy 1.40 (static bootstrap, no control
// plane): the listener filter set_filter_state turns on
// envoy.tcp_proxy.receive_before_connect, the Wasm network filter holds each
// connection until its first line and picks the tcp_proxy cluster through
// set_envoy_filter_state. The same traffic, chunk for chunk, goes through the
// in-process host; routing, upstream bytes and counters must agree.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type WasmPlugin } from '../../xds-server/wasm-host/index.ts';
import { filterWasmPath, loadFilter } from '../../xds-server/catalog/index.ts';
import { RECEIVE_BEFORE_CONNECT_YAML, freePort, startEnvoy, waitUntil, type EnvoyHandle } from '../support/envoy.ts';
import { startTcpEcho, type TcpEcho } from '../support/upstreams.ts';
import { CONTRACT_CONFIG, expectContract } from './contract.ts';

function bootstrap(opts: { adminPort: number; listenerPort: number; wasmFile: string; a: number; b: number }): string {
  const cluster = (name: string, port: number) => `
  - name: ${name}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: ${name}
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } } ] } ]`;
  return `
node: { id: wasm-contract-test, cluster: protoplane-test }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: ${opts.adminPort} } }
static_resources:
  listeners:
  - name: contract
    address: { socket_address: { address: 127.0.0.1, port_value: ${opts.listenerPort} } }
${RECEIVE_BEFORE_CONNECT_YAML}
    filter_chains:
    - filters:
      - name: envoy.filters.network.wasm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm
          config:
            name: contract
            root_id: contract
            configuration:
              "@type": type.googleapis.com/google.protobuf.StringValue
              value: '${JSON.stringify(CONTRACT_CONFIG)}'
            vm_config:
              vm_id: contract
              runtime: envoy.wasm.runtime.v8
              code: { local: { filename: ${JSON.stringify(opts.wasmFile)} } }
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: contract
          cluster: b
  clusters:${cluster('a', opts.a)}${cluster('b', opts.b)}
`;
}

interface Step {
  data: string;
  /** Wait until this many bytes of the connection reached an upstream before the next step (else a short pause). */
  forwardedBytes?: number;
}

interface Conversation {
  reply: Buffer;
  /** The client saw the proxy close before it ended its side. */
  closedByProxy: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends the steps over one connection, half-closes, and waits for the proxy to close. */
function converse(port: number, steps: Step[], upstreams: TcpEcho[]): Promise<Conversation> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = Buffer.alloc(0);
    let ended = false;
    let closedByProxy = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`conversation ${JSON.stringify(steps.map((s) => s.data))} timed out; reply so far ${JSON.stringify(reply.toString('latin1'))}`));
    }, 10_000);
    socket.on('data', (d: Buffer) => (reply = Buffer.concat([reply, d])));
    socket.on('end', () => {
      if (!ended) closedByProxy = true;
    });
    socket.on('error', () => undefined); // a proxy close may reset; the result says what happened
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ reply, closedByProxy });
    });
    socket.on('connect', async () => {
      const startHits = upstreams.map((u) => u.hits);
      const forwarded = () => upstreams.reduce((n, u, i) => n + (u.hits > startHits[i]! ? u.received[u.received.length - 1]!.length : 0), 0);
      for (const step of steps) {
        if (socket.destroyed || closedByProxy) break;
        socket.write(Buffer.from(step.data, 'latin1'));
        if (step.forwardedBytes !== undefined) {
          const want = step.forwardedBytes;
          await waitUntil(() => forwarded() >= want, 5000, `${want} bytes at the upstream`).catch(() => undefined);
        } else {
          await sleep(60);
        }
      }
      ended = true;
      if (!socket.destroyed) socket.end();
    });
  });
}

/** The same steps through the in-process host. */
function hostConversation(plugin: WasmPlugin, steps: Step[]) {
  const conn = plugin.newConnection();
  for (const step of steps) conn.downstream(Buffer.from(step.data, 'latin1'));
  conn.downstream(new Uint8Array(0), true);
  conn.close();
  return conn;
}

const CASES: Array<{ name: string; steps: Step[] }> = [
  { name: 'prefix A: in one chunk', steps: [{ data: 'A:hello MARK\n', forwardedBytes: 13 }] },
  { name: 'prefix split, MARK split across chunks', steps: [{ data: 'A' }, { data: ':x MA' }, { data: 'RK y\nsecond MAR' }, { data: 'K\n', forwardedBytes: 20 }] },
  { name: 'other prefix goes to the default cluster', steps: [{ data: 'B:xyz MARK\n', forwardedBytes: 11 }] },
  { name: 'prefix not at the start', steps: [{ data: 'xA:no\n', forwardedBytes: 6 }] },
  { name: 'several frames per chunk', steps: [{ data: 'A:1\nMARK2\nMA' }, { data: 'RK3\n', forwardedBytes: 16 }] },
  { name: 'no newline before end of stream', steps: [{ data: 'A:no newline' }] },
];

describe('contract filter in stock Envoy 1.40', { timeout: 120_000 }, () => {
  let envoy: EnvoyHandle;
  let a: TcpEcho;
  let b: TcpEcho;
  let port: number;
  let plugin: WasmPlugin;

  before(async () => {
    const module = await loadFilter('contract'); // builds build/filters/*.wasm if needed
    plugin = await module.instantiate({ name: 'contract', configuration: CONTRACT_CONFIG, defaultCluster: 'b' });
    a = await startTcpEcho('a');
    b = await startTcpEcho('b');
    port = await freePort();
    const adminPort = await freePort();
    envoy = await startEnvoy({
      bootstrapYaml: bootstrap({ adminPort, listenerPort: port, wasmFile: filterWasmPath('contract'), a: a.port, b: b.port }),
      adminPort,
    });
    await envoy.waitForListener('contract');
  });

  after(async () => {
    await envoy?.stop();
    await a?.close();
    await b?.close();
  });

  it('routes by the first line, rewrites MARK, and agrees with the in-process host', async () => {
    for (const c of CASES) {
      const hits = { a: a.hits, b: b.hits };
      const talk = await converse(port, c.steps, [a, b]);
      const host = hostConversation(plugin, c.steps);
      const stream = Buffer.from(c.steps.map((s) => s.data).join(''), 'latin1');
      const expected = expectContract(stream);

      const landed = a.hits > hits.a ? 'a' : b.hits > hits.b ? 'b' : 'none';
      assert.equal(landed, expected.cluster, `${c.name}: upstream`);
      assert.equal(a.hits + b.hits - hits.a - hits.b, 1, `${c.name}: exactly one upstream connection`);
      assert.equal(host.upstreamCluster, landed, `${c.name}: host routing`);
      const upstream = landed === 'a' ? a : b;
      const atUpstream = upstream.received[upstream.received.length - 1]!;
      assert.equal(atUpstream.toString('latin1'), expected.forwarded.toString('latin1'), `${c.name}: bytes at the upstream`);
      assert.equal(Buffer.from(host.forwardedDownstream).toString('latin1'), atUpstream.toString('latin1'), `${c.name}: host forwarded`);
      assert.equal(talk.reply.toString('latin1'), `${landed}:${expected.forwarded.toString('latin1')}`, `${c.name}: echo reply`);
    }
  });

  it('closes the connection on a NUL byte, in Envoy as in the host', async () => {
    const steps: Step[] = [{ data: 'A:ok\n', forwardedBytes: 5 }, { data: 'bad\0 MARK\n' }];
    const hits = a.hits;
    const talk = await converse(port, steps, [a, b]);
    const host = hostConversation(plugin, steps);
    assert.ok(talk.closedByProxy, 'Envoy closed the connection');
    assert.equal(a.hits, hits + 1);
    assert.equal(a.received[a.received.length - 1]!.toString('latin1'), 'A:ok\n', 'nothing after the NUL reached the upstream');
    assert.equal(talk.reply.toString('latin1'), 'a:A:ok\n');
    assert.deepEqual(host.closed, { reason: 'filter' });
    assert.equal(Buffer.from(host.forwardedDownstream).toString('latin1'), 'A:ok\n');

    // a NUL in the first line: nothing is ever forwarded, no upstream connection
    const before = a.hits + b.hits;
    const early = await converse(port, [{ data: 'A:\0\n' }], [a, b]);
    const hostEarly = hostConversation(plugin, [{ data: 'A:\0\n' }]);
    assert.ok(early.closedByProxy);
    assert.equal(early.reply.length, 0);
    assert.equal(a.hits + b.hits, before);
    assert.equal(hostEarly.proceeded, false);
    assert.equal(hostEarly.forwardedDownstreamLength, 0);
  });

  it('exposes the filter’s metrics as wasmcustom.* stats equal to the host’s', async () => {
    const host = plugin.metrics();
    assert.equal(host['contract.active_connections'], 0);
    // Envoy updates the gauge when it tears the last connection down; wait for it to settle
    await envoy.waitForStat('wasmcustom.contract.active_connections', (v) => v === 0);
    await envoy.waitForStat('wasmcustom.contract.bytes', (v) => v === host['contract.bytes']);
    const stats = await envoy.stats();
    for (const [name, value] of Object.entries(host)) {
      assert.equal(stats.get(`wasmcustom.${name}`), value, `wasmcustom.${name}`);
    }
    assert.ok(host['contract.poisoned'] === 2 && host['contract.routed_prefix']! >= 4, JSON.stringify(host));
    // the connections were routed through tcp_proxy's receive-before-connect path
    assert.ok((stats.get('tcp.contract.early_data_received_count_total') ?? 0) >= CASES.length);
    // the Prometheus names drop the wasmcustom namespace
    const prom = (await envoy.admin('/stats/prometheus')).body;
    assert.match(prom, new RegExp(`^contract_bytes\\{\\} ${host['contract.bytes']}$`, 'm'));
    // the filter's log lines reach Envoy's log; the NUL line carries source.address (proxy_get_property)
    const log = readFileSync(envoy.logPath, 'utf8');
    assert.match(log, /wasm log contract contract: contract: configured, prefix routes to a/);
    assert.match(log, /\[warning\]\[wasm\].* wasm log contract contract contract: contract: NUL byte from 127\.0\.0\.1:\d+, closing the connection/);
    assert.ok(plugin.record.logs.some((l) => /^contract: NUL byte from 127\.0\.0\.1:\d+, closing the connection$/.test(l.message)));
  });
});
