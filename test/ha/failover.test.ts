// Envoy fails over between protoplane replicas on its own: three replicas
// (real processes), stock Envoy 1.40 on delta ADS with a bootstrap listing
// all three, HTTP requests flowing through Envoy while the replica it is
// connected to is killed with SIGKILL.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bootstrapYaml } from '../../xds-server/bootstrap.ts';
import { freePort, startEnvoy, waitUntil, type EnvoyHandle } from '../support/envoy.ts';
import { requestLoop } from '../support/traffic.ts';
import { httpGet, startHttpUpstream, type HttpUpstream } from '../support/upstreams.ts';
import { startReplica, type Replica } from './fleet-replicas.ts';

const NODE = 'edge-failover';

function meshYaml(webPort: number, to: HttpUpstream): string {
  return `listeners:
  - name: web
    port: ${webPort}
    protocol: http
    routes: [ { match: { prefix: / }, cluster: ${to.name} } ]
clusters:
  - name: ${to.name}
    endpoints: [ 127.0.0.1:${to.port} ]
`;
}

describe('Envoy fails over between replicas (delta ADS)', () => {
  let dir: string;
  let configPath: string;
  let webPort: number;
  let blue: HttpUpstream;
  let green: HttpUpstream;
  const replicas: Replica[] = [];
  let envoy: EnvoyHandle;

  const write = (yaml: string) => {
    fs.writeFileSync(`${configPath}.tmp`, yaml);
    fs.renameSync(`${configPath}.tmp`, configPath);
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-failover-'));
    configPath = path.join(dir, 'mesh.yaml');
    blue = await startHttpUpstream('blue');
    green = await startHttpUpstream('green');
    webPort = await freePort();
    write(meshYaml(webPort, blue));
    // One after the other: the first one builds the filters, the others find them built.
    for (const id of ['r1', 'r2', 'r3']) replicas.push(await startReplica({ id, args: ['--config', configPath] }));
    const adminPort = await freePort();
    envoy = await startEnvoy({
      bootstrapYaml: bootstrapYaml({ xds: replicas.map((r) => r.xds), nodeId: NODE, delta: true, adminPort }),
      adminPort,
    });
    await envoy.waitForListener('web', 30_000);
  });

  after(async () => {
    await envoy?.stop();
    await Promise.all(replicas.map((r) => r.close()));
    await blue?.close();
    await green?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('kill -9 of the replica Envoy is on: no request fails, Envoy moves to a live replica and is sent nothing it holds', async () => {
    await waitUntil(async () => (await httpGet(webPort, '/')).body === 'blue', 20_000, 'traffic through Envoy to blue');
    const connected = async () => {
      const on: Replica[] = [];
      for (const r of replicas) if (r.running && (await r.nodes()).includes(NODE)) on.push(r);
      return on;
    };
    let first: Replica | undefined;
    await waitUntil(async () => {
      const on = await connected();
      first = on.length === 1 ? on[0] : undefined;
      return first !== undefined;
    }, 10_000, 'Envoy connected to exactly one replica');
    const updatesBefore = { cds: await envoy.stat('cluster_manager.cds.update_success'), lds: await envoy.stat('listener_manager.lds.update_success') };

    const load = requestLoop(webPort, '/', 60_000);
    await waitUntil(() => load.seen.length >= 20, 10_000, 'requests flowing');
    await first!.kill('SIGKILL');
    const t0 = Date.now();
    let second: Replica | undefined;
    await waitUntil(async () => {
      const on = await connected();
      second = on.length === 1 ? on[0] : undefined;
      return second !== undefined;
    }, 20_000, 'Envoy reconnected to another replica');
    const reconnectMs = Date.now() - t0;
    await envoy.waitForStat('control_plane.connected_state', (v) => v === 1, 10_000);
    const seenAtReconnect = load.seen.length;
    await waitUntil(() => load.seen.length >= seenAtReconnect + 20, 10_000, 'requests still flowing after the reconnect');
    await load.stop();
    assert.deepEqual(load.failures, [], 'no request failed');
    assert.notEqual(second!.id, first!.id);
    process.stdout.write(`# failover: ${first!.id} killed, Envoy on ${second!.id} after ${reconnectMs} ms; ${load.seen.length} requests, 0 failed\n`);

    // Over delta, Envoy's first requests on the new stream carry initial_resource_versions:
    // the new replica finds it holds everything and sends no response at all...
    await waitUntil(async () => {
      const view = await second!.json<{ nodes: Array<{ id: string; in_sync: boolean; types: Array<{ type: string; version_acked: string | null }> }> }>('/debug/sync');
      const node = view.nodes.find((n) => n.id === NODE);
      return node !== undefined && node.types.length >= 4 && node.in_sync && node.types.every((t) => t.version_acked !== null);
    }, 10_000, 'the new replica to see the node in sync on CDS, EDS, LDS and RDS');
    const pushes = (await second!.get('/metrics')).body.split('\n').filter((l) => l.startsWith('protoplane_xds_pushes_total{'));
    assert.equal(await second!.metric('protoplane_xds_pushes_total'), 0, `the new replica sent no response; it sent ${pushes.join(', ')}; ${JSON.stringify(await second!.json('/debug/nodes'))}`);
    // ...and Envoy applied no update.
    assert.equal(await envoy.stat('cluster_manager.cds.update_success'), updatesBefore.cds);
    assert.equal(await envoy.stat('listener_manager.lds.update_success'), updatesBefore.lds);
  });

  it('a change after the failover reaches Envoy from the replica it is on; every live replica serves the same version', async () => {
    write(meshYaml(webPort, green));
    await waitUntil(async () => (await httpGet(webPort, '/')).body === 'green', 20_000, 'Envoy to route to green');
    const live = replicas.filter((r) => r.running);
    assert.equal(live.length, 2);
    let versions: string[] = [];
    await waitUntil(async () => {
      versions = await Promise.all(live.map(async (r) => (await r.json<{ snapshot: string }>('/readyz')).snapshot));
      return new Set(versions).size === 1;
    }, 10_000, () => `every live replica to serve one version (${versions.join(', ')})`);
  });
});
