// A fleet on etcd: a real three-member etcd cluster on loopback (Debian
// etcd-server, test/support/etcd.ts), three protoplane replicas serving from
// it (real processes, so one can be killed with SIGKILL), and stock Envoy
// 1.40 on delta ADS with a bootstrap listing all three replicas.
//  - `apply` a change: every replica serves it at the same version, Envoy gets it;
//  - `protoplane status` and /fleet.json show the node on its replica, per type in sync;
//  - kill -9 the replica Envoy is on while requests flow through Envoy: none
//    fails, Envoy reconnects to another replica, which sends it nothing (its
//    initial_resource_versions say it holds everything), and the dead
//    replica's registration vanishes with its lease.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { bootstrapYaml } from '../../xds-server/bootstrap.ts';
import { applyMeshFile } from '../../xds-server/etcd/apply.ts';
import { FilterCatalog } from '../../xds-server/catalog/index.ts';
import { DEFAULT_ETCD_PREFIX } from '../../xds-server/etcd/store.ts';
import { collectFleet, fleetTable, type FleetView } from '../../xds-server/fleet/index.ts';
import { startEtcd, type EtcdCluster } from '../support/etcd.ts';
import { freePort, REPO_ROOT, startEnvoy, waitUntil, type EnvoyHandle } from '../support/envoy.ts';
import { requestLoop } from '../support/traffic.ts';
import { httpGet, startHttpUpstream, type HttpUpstream } from '../support/upstreams.ts';
import { fleetMeshYaml, startReplicas, type Replica, type SyncNode } from './fleet-replicas.ts';

const run = promisify(execFile);
const NODE = 'edge-1';

describe('a fleet of three replicas on a three-member etcd, stock Envoy on delta ADS', () => {
  let dir: string;
  let etcd: EtcdCluster;
  let webPort: number;
  let blue: HttpUpstream;
  let green: HttpUpstream;
  let red: HttpUpstream;
  const replicas: Replica[] = [];
  let envoy: EnvoyHandle;
  /** apply's filters, loaded (and built if needed) once. */
  let catalog: FilterCatalog;

  const apply = async (to: HttpUpstream) => {
    const file = path.join(dir, `mesh-${to.name}.yaml`);
    fs.writeFileSync(file, fleetMeshYaml(webPort, to));
    const result = await applyMeshFile(file, { endpoints: etcd.endpoints }, { catalog });
    assert.ok(result.ok, `apply: ${JSON.stringify(result)}`);
  };
  const live = () => replicas.filter((r) => r.running);
  /** The replicas the node has a stream on. */
  const connected = async () => {
    const on: Replica[] = [];
    for (const r of live()) if ((await r.nodes()).includes(NODE)) on.push(r);
    return on;
  };
  const onlyReplicaOf = async (): Promise<Replica> => {
    let only: Replica | undefined;
    await waitUntil(async () => {
      const on = await connected();
      only = on.length === 1 ? on[0] : undefined;
      return only !== undefined;
    }, 20_000, 'Envoy to be connected to exactly one replica');
    return only!;
  };
  /** Every live replica serves one version (other than `old`); resolves with it. */
  const agreedVersion = async (old?: string): Promise<string> => {
    let versions: Array<string | null> = [];
    await waitUntil(async () => {
      versions = await Promise.all(live().map(async (r) => (await r.json<{ snapshot: string | null }>('/readyz')).snapshot));
      return versions[0] !== null && versions[0] !== old && new Set(versions).size === 1;
    }, 20_000, () => `every live replica to serve one new version (${versions.join(', ')}; was ${old})`);
    return versions[0]!;
  };
  const status = async (...args: string[]) =>
    (await run(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'xds-server/cli/main.ts'), 'status', '--etcd', etcd.endpointList, ...args], { cwd: REPO_ROOT })).stdout;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-fleet-'));
    [blue, green, red] = await Promise.all([startHttpUpstream('blue'), startHttpUpstream('green'), startHttpUpstream('red')]);
    webPort = await freePort();
    etcd = await startEtcd({ members: 3 });
    catalog = await FilterCatalog.load();
    await apply(blue);
    // From etcd nothing is built, so the three start side by side. --debounce is a changed file's quiet
    // period and must not hold an etcd change: were it applied, every apply below would wait a minute,
    // past the waits that follow it (the CLI once passed its default 100 ms to etcd changes too).
    const args = (id: string) => ['--etcd', etcd.endpointList, '--replica-id', id, '--replica-ttl', '2s', '--debounce', '1m', '--debounce-max', '1m'];
    replicas.push(...(await startReplicas(['r1', 'r2', 'r3'].map((id) => ({ id, args: args(id) })))));
    const adminPort = await freePort();
    envoy = await startEnvoy({
      bootstrapYaml: bootstrapYaml({ xds: replicas.map((r) => r.xds), nodeId: NODE, nodeCluster: 'edge', delta: true, adminPort }),
      adminPort,
    });
    await envoy.waitForListener('web', 30_000);
  });

  after(async () => {
    await envoy?.stop();
    await Promise.all(replicas.map((r) => r.close()));
    await etcd?.close();
    await Promise.all([blue, green, red].map((u) => u?.close()));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('apply: every replica serves the change at one version, and Envoy gets it', async () => {
    await waitUntil(async () => (await httpGet(webPort, '/')).body === 'blue', 20_000, 'traffic through Envoy to blue');
    const before = await agreedVersion();
    await apply(green);
    await agreedVersion(before);
    await waitUntil(async () => (await httpGet(webPort, '/')).body === 'green', 20_000, 'Envoy to route to green');
    const on = await onlyReplicaOf();
    await waitUntil(async () => {
      const node = (await on.json<{ nodes: SyncNode[] }>('/debug/sync')).nodes.find((n) => n.id === NODE);
      return node?.in_sync === true && node.types.some((t) => t.type === 'Listener' && t.version_acked !== null);
    }, 10_000, 'the node to ACK the change');
  });

  it('protoplane status and /fleet.json show every replica and the node on its replica, in sync per type', async () => {
    const on = await onlyReplicaOf();
    const table = await status();
    process.stdout.write(table.replace(/^/gm, '# '));
    for (const r of replicas) assert.match(table, new RegExp(`^${r.id}\\s+${r.xds}\\s+${r.admin}\\s+${r.id === on.id ? 1 : 0}\\s+\\w{8}\\s+ok$`, 'm'), table);
    assert.match(table, /^NODE\s+CLUSTER\s+REPLICA\s+TRANSPORT\s+CDS\s+LDS\s+EDS\s+RDS$/m, table);
    assert.match(table, new RegExp(`^${NODE}\\s+edge\\s+${on.id}\\s+Delta ADS\\s+SYNCED \\w{8}\\s+SYNCED \\w{8}\\s+SYNCED \\w{8}\\s+SYNCED \\w{8}$`, 'm'), table);
    const json = JSON.parse(await status('--json')) as FleetView;
    assert.equal(table, fleetTable(json), 'the table is the JSON view, printed');
    // Any replica's admin answers for the whole fleet.
    const other = replicas.find((r) => r !== on)!;
    const fleet = await other.json<FleetView>('/fleet.json');
    for (const view of [json, fleet]) {
      assert.deepEqual(view.replicas.map((r) => [r.id, r.reachable, r.nodes]), replicas.map((r) => [r.id, true, r === on ? 1 : 0]));
      assert.equal(view.versions_agree, true);
      assert.deepEqual(view.nodes.map((n) => [n.id, n.replica, n.in_sync]), [[NODE, on.id, true]]);
    }
  });

  it('kill -9 of the replica Envoy is on: no request fails, Envoy moves to a live replica, is sent nothing it holds, and the dead one drops out', async () => {
    const first = await onlyReplicaOf();
    const updatesBefore = { cds: await envoy.stat('cluster_manager.cds.update_success'), lds: await envoy.stat('listener_manager.lds.update_success') };
    const load = requestLoop(webPort, '/', 60_000);
    await waitUntil(() => load.seen.length >= 20, 10_000, 'requests flowing');
    await first.kill('SIGKILL');
    const killedAt = Date.now();
    const second = await onlyReplicaOf();
    const reconnectMs = Date.now() - killedAt;
    await envoy.waitForStat('control_plane.connected_state', (v) => v === 1, 10_000);
    const seenAtReconnect = load.seen.length;
    await waitUntil(() => load.seen.length >= seenAtReconnect + 20, 10_000, 'requests still flowing after the reconnect');
    await load.stop();
    assert.deepEqual(load.failures, [], 'no request failed');
    assert.ok(load.seen.every((body) => body === 'green'));
    assert.notEqual(second.id, first.id);
    process.stdout.write(`# failover: ${first.id} killed, Envoy on ${second.id} after ${reconnectMs} ms; ${load.seen.length} requests, 0 failed\n`);

    // Over delta, Envoy's first request per type on the new stream carries
    // initial_resource_versions: the new replica finds it holds everything at
    // the current versions, sends no response at all, and records it in sync...
    await waitUntil(async () => {
      const node = (await second.json<{ nodes: SyncNode[] }>('/debug/sync')).nodes.find((n) => n.id === NODE);
      return node !== undefined && node.types.length === 4 && node.in_sync && node.types.every((t) => t.version_sent === null && t.version_acked !== null);
    }, 10_000, 'the new replica to see the node holding CDS, EDS, LDS and RDS');
    const pushes = (await second.get('/metrics')).body.split('\n').filter((l) => l.startsWith('protoplane_xds_pushes_total{'));
    assert.equal(await second.metric('protoplane_xds_pushes_total'), 0, `the new replica sent no response (it sent ${pushes.join(', ')})`);
    // ...and Envoy applied no update.
    assert.equal(await envoy.stat('cluster_manager.cds.update_success'), updatesBefore.cds);
    assert.equal(await envoy.stat('listener_manager.lds.update_success'), updatesBefore.lds);

    // The dead replica's key goes with its lease (TTL 2 s); status lists the two live ones.
    let view: FleetView | undefined;
    await waitUntil(async () => {
      view = await collectFleet({ etcd: etcd.endpoints, prefix: DEFAULT_ETCD_PREFIX });
      return view.replicas.length === 2;
    }, 20_000, () => `the killed replica to drop out of the fleet (${view?.replicas.map((r) => r.id).join(', ')})`);
    assert.deepEqual(view!.nodes.map((n) => [n.id, n.replica, n.in_sync]), [[NODE, second.id, true]]);
  });

  it('a change applied after the failover reaches Envoy from the replica it is on, at the version every live replica serves', async () => {
    const on = await onlyReplicaOf();
    const before = await agreedVersion();
    await apply(red);
    const version = await agreedVersion(before);
    await waitUntil(async () => (await httpGet(webPort, '/')).body === 'red', 20_000, 'Envoy to route to red');
    assert.ok((await on.metric('protoplane_xds_pushes_total')) > 0, 'this time the replica sent the change');
    const view = await on.json<FleetView>('/fleet.json');
    assert.deepEqual(view.replicas.map((r) => r.version), [version, version]);
  });
});
