// Stock Envoy 1.40 on every transport protoplane serves: delta ADS, and
// separate per-type streams (SotW and delta). Each gets real traffic and a
// config change under load with zero failed requests.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Protoplane } from '../../xds-server/app.ts';
import { serveForTest } from '../support/mesh-env.ts';
import { bootstrapYaml, type BootstrapOptions } from '../../xds-server/bootstrap.ts';
import { freePort, startEnvoy, waitUntil, type EnvoyHandle } from '../support/envoy.ts';
import { requestLoop } from '../support/traffic.ts';
import { httpGet, startHttpUpstream, type HttpUpstream } from '../support/upstreams.ts';

const VARIANTS: ReadonlyArray<{ name: string; options: Partial<BootstrapOptions>; expect: 'delta' | 'sotw'; types: number }> = [
  { name: 'delta ADS', options: { delta: true }, expect: 'delta', types: 4 },
  { name: 'SotW per-type streams', options: { perType: true }, expect: 'sotw', types: 1 },
  { name: 'delta per-type streams', options: { perType: true, delta: true }, expect: 'delta', types: 1 },
];

function meshYaml(webPort: number, upstreams: Record<string, HttpUpstream>, target: string, connectTimeout = '1s'): string {
  return `listeners:
  - name: web
    port: ${webPort}
    protocol: http
    routes:
      - match: { prefix: /pinned }
        cluster: blue
      - match: { prefix: / }
        cluster: ${target}
clusters:
${Object.entries(upstreams)
  .map(([name, u]) => `  - name: ${name}\n    endpoints: [ 127.0.0.1:${u.port} ]\n    connect_timeout: ${connectTimeout}\n`)
  .join('')}`;
}

for (const variant of VARIANTS) {
  describe(`stock Envoy over ${variant.name}`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-transport-'));
    const configPath = path.join(dir, 'mesh.yaml');
    const upstreams: Record<string, HttpUpstream> = {};
    let webPort = 0;
    let server: Protoplane;
    let envoy: EnvoyHandle;
    const nodeId = `envoy-${variant.name.replace(/\W+/g, '-')}`;
    const write = (text: string) => {
      fs.writeFileSync(`${configPath}.tmp`, text);
      fs.renameSync(`${configPath}.tmp`, configPath);
    };

    before(async () => {
      upstreams.blue = await startHttpUpstream('blue');
      upstreams.green = await startHttpUpstream('green');
      webPort = await freePort();
      write(meshYaml(webPort, { blue: upstreams.blue }, 'blue'));
      server = await serveForTest(configPath);
      const adminPort = await freePort();
      envoy = await startEnvoy({
        bootstrapYaml: bootstrapYaml({ xds: `127.0.0.1:${server.xdsPort}`, nodeId, adminPort, ...variant.options }),
        adminPort,
      });
      await envoy.waitForListener('web');
    });

    after(async () => {
      await envoy?.stop();
      await server?.close();
      for (const u of Object.values(upstreams)) await u.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('routes traffic and shows the node ACKed on the expected streams', async () => {
      await waitUntil(async () => (await httpGet(webPort, '/')).body === 'blue', 10_000, 'traffic reaches blue');
      const nodes = JSON.parse((await httpGet(server.adminPort, '/debug/nodes')).body) as {
        nodes: Array<{ id: string; variant: string; types: Record<string, { version_acked: string | null; version_sent: string | null }> }>;
      };
      const mine = nodes.nodes.filter((n) => n.id === nodeId);
      assert.ok(mine.length >= 1);
      assert.ok(mine.every((n) => n.variant === variant.expect));
      // ADS carries every type on one stream; per-type Envoys open one stream per type.
      for (const stream of mine) assert.equal(Object.keys(stream.types).length, variant.types);
      const typesSeen = new Set(mine.flatMap((n) => Object.keys(n.types)));
      assert.deepEqual([...typesSeen].sort(), ['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration']);
      for (const stream of mine) for (const t of Object.values(stream.types)) assert.equal(t.version_acked, t.version_sent);
    });

    it('applies a change to an existing cluster at once (its endpoints are re-sent for re-warming)', async () => {
      // Verified on 1.40: without the endpoints sent again, a modified EDS
      // cluster stays warming until its 15 s initial fetch timeout.
      write(meshYaml(webPort, { blue: upstreams.blue! }, 'blue', '7s'));
      await waitUntil(async () => JSON.stringify(await envoy.configDump()).includes('"7s"'), 5000, 'new connect_timeout active');
      await envoy.waitForStat('cluster_manager.warming_clusters', (v) => v === 0, 5000);
      assert.equal((await httpGet(webPort, '/')).body, 'blue');
    });

    it('moves traffic to a new cluster under load with zero failed requests', async () => {
      const { seen, failures, stop } = requestLoop(webPort);
      await waitUntil(() => seen.length >= 20, 10_000, 'requests before the change');
      write(meshYaml(webPort, { blue: upstreams.blue!, green: upstreams.green! }, 'green'));
      await waitUntil(() => seen.at(-1) === 'green', 15_000, 'traffic moved to green');
      const at = seen.length;
      await waitUntil(() => seen.length >= at + 50, 10_000, 'requests after the change');
      // And back, removing green: the route moves before the cluster goes.
      write(meshYaml(webPort, { blue: upstreams.blue! }, 'blue'));
      await waitUntil(() => seen.at(-1) === 'blue', 15_000, 'traffic back on blue');
      const back = seen.length;
      await waitUntil(() => seen.length >= back + 50, 10_000, 'requests after the removal');
      await stop();
      assert.deepEqual(failures, []);
      assert.equal((await httpGet(webPort, '/pinned')).body, 'blue');
    });
  });
}
