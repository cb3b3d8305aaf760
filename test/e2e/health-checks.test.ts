// Active health checks on stock Envoy 1.40 (issue 21, item 5), with real
// upstreams and clients:
// - http: of two endpoints one answers /healthz with 500 (and every other
//   path with 200): Envoy marks it failed_active_hc and every request goes to
//   the other; when it recovers, it is back in rotation;
// - tcp with send/expect (text, Tyk-style, and the same as hex bytes): a
//   server answering "PING\r\n" with "+PONG" is healthy, one answering
//   "-NOPE" is not, and tcp connections only reach the healthy one;
// - protoplane's /debug/health shows each endpoint's health as this Envoy
//   reports it over HDS (the Health Discovery Service), and follows a change.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, waitUntil } from '../support/envoy.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';
import { httpGet, tcpExchange } from '../support/upstreams.ts';

interface Web {
  port: number;
  healthy: boolean;
  /** Requests other than health checks. */
  hits: number;
  close(): Promise<void>;
}

/** /healthz answers 200 or 500 as `healthy` says; other paths 200 with body `name`. */
async function web(name: string, healthy: boolean): Promise<Web> {
  const state = { healthy, hits: 0 };
  const server = http.createServer((req, res) => {
    req.resume();
    if (req.url === '/healthz') {
      res.writeHead(state.healthy ? 200 : 500).end();
      return;
    }
    state.hits += 1;
    res.writeHead(200, { 'content-type': 'text/plain' }).end(name);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get healthy() { return state.healthy; },
    set healthy(v: boolean) { state.healthy = v; },
    get hits() { return state.hits; },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** A line server: "PING\r\n" gets `pong`; anything else is echoed after `name:`. */
async function lineServer(name: string, pong: string): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk) => socket.write(chunk.toString() === 'PING\r\n' ? pong : `${name}:${chunk.toString()}`));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

type HealthView = { nodes: Array<{ id: string; reported_at: string | null; clusters: Record<string, Array<{ address: string; health: string }>> }> };

describe('health checks on stock Envoy, and their results in /debug/health (HDS)', () => {
  let env: MeshEnv;
  let ok: Web;
  let sick: Web;
  let pong: Awaited<ReturnType<typeof lineServer>>;
  let nope: Awaited<ReturnType<typeof lineServer>>;
  const ports = { http: 0, tcp: 0 };

  const healthView = async (): Promise<HealthView> => {
    const r = await httpGet(env.server.adminPort, '/debug/health');
    assert.equal(r.status, 200, r.body);
    return JSON.parse(r.body) as HealthView;
  };
  /** This Envoy's reported health of each endpoint of `cluster`, by address. */
  const reported = async (cluster: string): Promise<Record<string, string>> => {
    const node = (await healthView()).nodes.find((n) => n.id === 'health-checks');
    return Object.fromEntries((node?.clusters[cluster] ?? []).map((e) => [e.address, e.health]));
  };

  before(async () => {
    ok = await web('ok', true);
    sick = await web('sick', false);
    pong = await lineServer('pong', '+PONG\r\n');
    nope = await lineServer('nope', '-NOPE\r\n');
    ports.http = await freePort();
    ports.tcp = await freePort();
    env = await startMeshEnv({
      nodeId: 'health-checks',
      listeners: ['web', 'kv'],
      yaml: `listeners:
  - name: web
    port: ${ports.http}
    protocol: http
    routes: [ { match: { prefix: / }, cluster: web } ]
  - name: kv
    port: ${ports.tcp}
    protocol: tcp
    routes: [ { cluster: kv } ]
clusters:
  - name: web
    endpoints: [ 127.0.0.1:${ok.port}, 127.0.0.1:${sick.port} ]
    health_check: { interval: 300ms, unhealthy_threshold: 1, healthy_threshold: 1, http: { path: /healthz } }
  - name: kv
    endpoints: [ 127.0.0.1:${pong.port}, 127.0.0.1:${nope.port} ]
    health_check: { interval: 300ms, tcp: { send: "PING\\r\\n", expect: "+PONG" } }
  - name: kv-hex
    endpoints: [ 127.0.0.1:${pong.port}, 127.0.0.1:${nope.port} ]
    health_check: { interval: 300ms, tcp: { send_hex: "50494e470d0a", expect_hex: "2b504f4e47" } }
`,
    });
  });

  after(async () => {
    await env?.close();
    await ok?.close();
    await sick?.close();
    await pong?.close();
    await nope?.close();
  });

  it('http: the endpoint failing /healthz is marked unhealthy and gets no requests', async () => {
    await env.envoy.waitFor(async () => /web::127\.0\.0\.1:\d+::health_flags::\/failed_active_hc/.test((await env.envoy.admin('/clusters')).body), 10_000, 'the sick endpoint failing its check');
    const bodies = [];
    for (let i = 0; i < 10; i++) bodies.push((await httpGet(ports.http, `/r${i}`)).body);
    assert.deepEqual(bodies, Array(10).fill('ok'));
    assert.equal(sick.hits, 0);
  });

  it('tcp: send/expect as text and as hex bytes; connections go only to the endpoint that answers +PONG', async () => {
    const flags = async () => (await env.envoy.admin('/clusters')).body;
    await env.envoy.waitFor(async () => {
      const body = await flags();
      return ['kv', 'kv-hex'].every((c) => body.includes(`${c}::127.0.0.1:${nope.port}::health_flags::/failed_active_hc`) && body.includes(`${c}::127.0.0.1:${pong.port}::health_flags::healthy`));
    }, 10_000, 'the nope endpoint failing its tcp check in kv and kv-hex');
    for (let i = 0; i < 6; i++) {
      const reply = await tcpExchange(ports.tcp, `hi${i}\n`, { done: (b) => b.toString().endsWith('\n') });
      assert.equal(reply.toString(), `pong:hi${i}\n`);
    }
  });

  it('/debug/health shows each endpoint as this Envoy reports it over HDS, and follows a recovery', async () => {
    const okAt = `127.0.0.1:${ok.port}`;
    const sickAt = `127.0.0.1:${sick.port}`;
    await waitUntil(async () => {
      const w = await reported('web');
      const k = await reported('kv');
      return w[okAt] === 'HEALTHY' && w[sickAt] === 'UNHEALTHY' && k[`127.0.0.1:${pong.port}`] === 'HEALTHY' && k[`127.0.0.1:${nope.port}`] === 'UNHEALTHY';
    }, 10_000, 'HDS reports of web and kv');
    assert.deepEqual(Object.keys((await healthView()).nodes.find((n) => n.id === 'health-checks')!.clusters).sort(), ['kv', 'kv-hex', 'web']);

    sick.healthy = true;
    await waitUntil(async () => (await reported('web'))[sickAt] === 'HEALTHY', 10_000, 'HDS reporting the recovered endpoint');
    await env.envoy.waitFor(async () => !(await env.envoy.admin('/clusters')).body.includes(`web::${sickAt}::health_flags::/failed_active_hc`), 10_000, 'Envoy taking it back');
    for (let i = 0; i < 6; i++) await httpGet(ports.http, `/again${i}`);
    assert.ok(sick.hits >= 2, `recovered endpoint got ${sick.hits} of 6`);
  });
});
