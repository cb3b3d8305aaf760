// Resilience and limits on stock Envoy 1.40 (issue 21, item 5), each with a
// real client and real upstreams:
// - outlier_detection: of two endpoints one answers 503; after
//   consecutive_5xx of them Envoy ejects it (admin /clusters shows
//   failed_outlier_check) and every later request goes to the healthy one;
//   with consecutive_gateway_failure: 2, two 502s in a row are enough (before
//   Envoy's default consecutive_5xx of 5), because naming it enforces it;
// - circuit_breakers: 5 concurrent requests to a slow upstream with
//   max_connections 1, max_pending_requests 1 (max_requests 2), the connection
//   open: one is served, one waits and is served, the 3 others get Envoy's 503 overflow
//   (x-envoy-overloaded, upstream_rq_pending_overflow);
// - max_connections on a tcp listener: the 3rd connection is closed while 2
//   are open, and served again once one closed;
// - rate_limit.connections_per_second on an mqtt (Wasm filter) listener:
//   of 6 MQTT clients connecting at once, some get CONNACK from a real broker
//   and the rest are closed before the filter sees a byte.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connectClient, endClient, startAedes, type Broker } from '../mqtt/brokers.ts';
import { freePort, waitUntil } from '../support/envoy.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';
import { httpGet, startTcpEcho, type TcpEcho } from '../support/upstreams.ts';

interface Upstream {
  port: number;
  hits: number;
  close(): Promise<void>;
}

/** An HTTP upstream answering `status` with body `name`, after `delayMs`. */
async function upstream(name: string, status: number, delayMs = 0): Promise<Upstream> {
  const state = { hits: 0 };
  const server = http.createServer((req, res) => {
    state.hits += 1;
    req.resume();
    setTimeout(() => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(name);
    }, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get hits() { return state.hits; },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** A connection through Envoy that has echoed one line (so it is established end to end). */
function openEchoed(port: number, line: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`${line}\n`));
    socket.once('data', () => resolve(socket));
    socket.once('close', () => reject(new Error(`${line}: closed before its echo`)));
    socket.once('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error(`${line}: no echo in 5 s`)));
  });
}

/** Connects and writes; resolves 'echoed' or 'closed' (closed without a byte back). */
function tryEcho(port: number, line: string): Promise<'echoed' | 'closed'> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`${line}\n`));
    socket.once('data', () => { socket.destroy(); resolve('echoed'); });
    socket.once('close', () => resolve('closed'));
    socket.on('error', () => undefined);
    socket.setTimeout(5000, () => socket.destroy());
  });
}

describe('resilience and limits on stock Envoy', () => {
  let env: MeshEnv;
  let good: Upstream;
  let bad: Upstream;
  let gateway: Upstream;
  let good2: Upstream;
  let slow: Upstream;
  let echo: TcpEcho;
  let broker: Broker;
  const ports = { od: 0, gw: 0, cb: 0, cap: 0, mqtt: 0 };

  before(async () => {
    good = await upstream('good', 200);
    bad = await upstream('bad', 503);
    gateway = await upstream('gateway', 502);
    good2 = await upstream('good', 200);
    slow = await upstream('slow', 200, 700);
    echo = await startTcpEcho();
    broker = await startAedes('broker');
    for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await freePort();
    env = await startMeshEnv({
      nodeId: 'resilience',
      listeners: ['od', 'gw', 'cb', 'cap', 'mqtt'],
      yaml: `listeners:
  - name: od
    port: ${ports.od}
    protocol: http
    routes: [ { match: { prefix: / }, cluster: pair } ]
  - name: gw
    port: ${ports.gw}
    protocol: http
    routes: [ { match: { prefix: / }, cluster: gwpair } ]
  - name: cb
    port: ${ports.cb}
    protocol: http
    routes: [ { match: { prefix: / }, cluster: slow } ]
  - name: cap
    port: ${ports.cap}
    protocol: tcp
    max_connections: 2
    routes: [ { cluster: echo } ]
  - name: mqtt
    port: ${ports.mqtt}
    protocol: mqtt
    rate_limit: { connections_per_second: 2 }
    routes: [ { cluster: broker } ]
clusters:
  - name: pair
    endpoints: [ 127.0.0.1:${good.port}, 127.0.0.1:${bad.port} ]
    outlier_detection: { consecutive_5xx: 3, interval: 1s, base_ejection_time: 60s, max_ejection_percent: 50 }
  - name: gwpair
    endpoints: [ 127.0.0.1:${good2.port}, 127.0.0.1:${gateway.port} ]
    outlier_detection: { consecutive_gateway_failure: 2, base_ejection_time: 60s, max_ejection_percent: 50 }
  - name: slow
    endpoints: [ 127.0.0.1:${slow.port} ]
    circuit_breakers: { max_connections: 1, max_pending_requests: 1, max_requests: 2 }
  - { name: echo, endpoints: [ 127.0.0.1:${echo.port} ] }
  - { name: broker, endpoints: [ 127.0.0.1:${broker.port} ] }
`,
    });
  });

  after(async () => {
    await env?.close();
    await good?.close();
    await bad?.close();
    await gateway?.close();
    await good2?.close();
    await slow?.close();
    await echo?.close();
    await broker?.close();
  });

  it('outlier_detection ejects the endpoint that keeps answering 503', async () => {
    const bodies: string[] = [];
    const ejections = () => env.envoy.stat('cluster.pair.outlier_detection.ejections_enforced_consecutive_5xx');
    for (let i = 0; i < 20; i++) {
      bodies.push((await httpGet(ports.od, `/r${i}`)).body);
      // Envoy ejects on its main thread after the worker reports the 3rd 503: wait for that before going on,
      // so that a busy machine does not let the next requests outrun it.
      if (bad.hits === 3 && i < 10) await waitUntil(async () => (await ejections()) === 1, 5000, 'the ejection');
    }
    // round robin: the bad one answers until its 3rd consecutive 503, then never again (at most one request
    // more, routed by the worker before the main thread's new host set reached it)
    assert.ok(bad.hits === 3 || bad.hits === 4, `${bad.hits} hits: ${bodies.join(',')}`);
    assert.deepEqual(bodies.slice(-10), Array(10).fill('good'));
    const clusters = (await env.envoy.admin('/clusters')).body;
    assert.match(clusters, new RegExp(`pair::127\\.0\\.0\\.1:${bad.port}::health_flags::/failed_outlier_check`));
    assert.match(clusters, new RegExp(`pair::127\\.0\\.0\\.1:${good.port}::health_flags::healthy`));
    assert.equal(await env.envoy.stat('cluster.pair.outlier_detection.ejections_enforced_consecutive_5xx'), 1);
  });

  it('outlier_detection with consecutive_gateway_failure ejects after two 502s', async () => {
    const bodies: string[] = [];
    for (let i = 0; i < 10; i++) bodies.push((await httpGet(ports.gw, `/g${i}`)).body);
    assert.equal(gateway.hits, 2, bodies.join(','));
    assert.deepEqual(bodies.slice(-5), Array(5).fill('good'));
    assert.equal(await env.envoy.stat('cluster.gwpair.outlier_detection.ejections_enforced_consecutive_gateway_failure'), 1);
  });

  it('circuit_breakers: requests over the limits get 503 overflow at once, the rest are served', async () => {
    // One request alone first, so the one connection allowed is open and idle:
    // otherwise the first request of the burst waits for it as a pending request.
    assert.equal((await httpGet(ports.cb, '/warm')).status, 200);
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => httpGet(ports.cb, `/c${i}`, {}, { timeoutMs: 5000 })));
    const served = results.filter((r) => r.status === 200);
    const overflowed = results.filter((r) => r.status === 503);
    assert.equal(served.length, 2, results.map((r) => r.status).join(','));
    assert.equal(overflowed.length, 3, results.map((r) => r.status).join(','));
    for (const r of overflowed) assert.equal(r.headers['x-envoy-overloaded'], 'true');
    assert.equal(slow.hits, 3);
    assert.equal(await env.envoy.stat('cluster.slow.upstream_rq_pending_overflow'), 3);
    // the served two ran one after the other on the one connection allowed
    assert.ok(Date.now() - started >= 1300, `took ${Date.now() - started} ms`);
  });

  it('max_connections closes the connection over the limit, and counts live connections', async () => {
    const open = [await openEchoed(ports.cap, 'one'), await openEchoed(ports.cap, 'two')];
    assert.equal(await tryEcho(ports.cap, 'three'), 'closed');
    assert.equal(await env.envoy.stat('connection_limit.cap.limited_connections'), 1);
    open[0]!.destroy();
    await env.envoy.waitForStat('connection_limit.cap.active_connections', (v) => v === 1, 5000);
    assert.equal(await tryEcho(ports.cap, 'four'), 'echoed');
    open[1]!.destroy();
  });

  it('rate_limit.connections_per_second on an mqtt listener closes the excess before the Wasm filter', async () => {
    const attempts = await Promise.all(
      Array.from({ length: 6 }, (_, i) => connectClient(ports.mqtt, `rl-${i}`, 4).then((c) => c, () => undefined)),
    );
    const connected = attempts.filter((c) => c !== undefined);
    // a refill may land mid-burst: at least the bucket's 2 pass, and some are refused
    assert.ok(connected.length >= 2 && connected.length <= 4, `${connected.length} of 6 connected`);
    await waitUntil(() => broker.clientIds().length === connected.length, 5000, 'the connected clients on the broker');
    const limited = await env.envoy.stat('local_rate_limit.mqtt.rate_limited');
    assert.equal(limited, 6 - connected.length);
    for (const c of connected) await endClient(c!);
  });
});
