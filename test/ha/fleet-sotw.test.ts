// The fleet failover of fleet.test.ts, over State-of-the-World ADS: a real
// three-member etcd, three protoplane replicas serving from it (real
// processes), stock Envoy 1.40 bootstrapped by `protoplane bootstrap` with
// every replica's --xds address and no --delta (api_type GRPC).
//  - kill -9 the replica Envoy is on while requests flow through Envoy: none
//    fails, Envoy reconnects to another replica, whose first requests' version_info
//    names exactly what that replica would send (equal configs, equal
//    content-hash versions), so it sends nothing: the node is in sync there at
//    the very versions it held, Envoy applies no update, and no listener or
//    cluster was added, modified or removed (none drained, none re-warmed);
//  - the next `apply` reaches Envoy through the new replica.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { applyMeshFile } from '../../xds-server/etcd/apply.ts';
import { FilterCatalog } from '../../xds-server/catalog/index.ts';
import { protoplane } from '../support/cli.ts';
import { startEtcd, type EtcdCluster } from '../support/etcd.ts';
import { freePort, startEnvoy, waitUntil, type EnvoyHandle } from '../support/envoy.ts';
import { requestLoop } from '../support/traffic.ts';
import { httpGet, startHttpUpstream, type HttpUpstream } from '../support/upstreams.ts';
import { fleetMeshYaml, startReplicas, type Replica, type SyncNode } from './fleet-replicas.ts';

const NODE = 'edge-sotw';

/** Per type, the version the node ACKed on this replica (absent while not in sync on all four types). */
async function ackedVersions(replica: Replica): Promise<Record<string, string> | undefined> {
  const node = (await replica.json<{ nodes: SyncNode[] }>('/debug/sync')).nodes.find((n) => n.id === NODE);
  if (!node || !node.in_sync || node.types.length !== 4 || node.types.some((t) => t.version_acked === null)) return undefined;
  return Object.fromEntries(node.types.map((t) => [t.type, t.version_acked!]).sort(([a], [b]) => a!.localeCompare(b!)));
}

type Dumped = { version_info?: string; last_updated?: string };
/**
 * What Envoy itself holds, from its /config_dump: the version of each xDS
 * type (per route configuration for RDS) and, per listener and cluster, its
 * version and when it was last (re)built. A listener or cluster Envoy drained and replaced, or re-warmed,
 * would show a new last_updated.
 */
async function envoyHolds(envoy: EnvoyHandle): Promise<Record<string, string | undefined>> {
  const dump = (await envoy.configDump('?include_eds')) as { configs: Array<Record<string, unknown> & { '@type': string }> };
  const of = (kind: string) => dump.configs.find((c) => c['@type'] === `type.googleapis.com/envoy.admin.v3.${kind}`) ?? {};
  const held: Record<string, string | undefined> = {};
  const clusters = of('ClustersConfigDump') as { version_info?: string; dynamic_active_clusters?: Array<Dumped & { cluster: { name: string } }> };
  held.CDS = clusters.version_info;
  for (const c of clusters.dynamic_active_clusters ?? []) held[`cluster ${c.cluster.name}`] = `${c.version_info} @ ${c.last_updated}`;
  const listeners = of('ListenersConfigDump') as { version_info?: string; dynamic_listeners?: Array<{ name: string; active_state?: Dumped }> };
  held.LDS = listeners.version_info;
  for (const l of listeners.dynamic_listeners ?? []) held[`listener ${l.name}`] = `${l.active_state?.version_info} @ ${l.active_state?.last_updated}`;
  const routes = of('RoutesConfigDump') as { dynamic_route_configs?: Array<Dumped & { route_config: { name: string } }> };
  for (const r of routes.dynamic_route_configs ?? []) held[`RDS ${r.route_config.name}`] = r.version_info;
  // Envoy dumps EDS without a version: its content (endpoints and their health) stands in.
  const endpoints = of('EndpointsConfigDump') as { dynamic_endpoint_configs?: Array<{ endpoint_config: { cluster_name: string } }> };
  for (const e of endpoints.dynamic_endpoint_configs ?? []) held[`EDS ${e.endpoint_config.cluster_name}`] = JSON.stringify(e.endpoint_config);
  return held;
}

/** Envoy's counters of listeners and clusters added, changed or taken away. */
const CHURN = [
  'cluster_manager.cluster_added',
  'cluster_manager.cluster_modified',
  'cluster_manager.cluster_removed',
  'listener_manager.listener_added',
  'listener_manager.listener_modified',
  'listener_manager.listener_removed',
  'listener_manager.listener_in_place_updated',
] as const;

describe('a fleet of three replicas on a three-member etcd, stock Envoy on SotW ADS', () => {
  let dir: string;
  let etcd: EtcdCluster;
  let webPort: number;
  let blue: HttpUpstream;
  let red: HttpUpstream;
  const replicas: Replica[] = [];
  let envoy: EnvoyHandle;
  let catalog: FilterCatalog;

  const apply = async (to: HttpUpstream) => {
    const file = path.join(dir, `mesh-${to.name}.yaml`);
    fs.writeFileSync(file, fleetMeshYaml(webPort, to));
    const result = await applyMeshFile(file, { endpoints: etcd.endpoints }, { catalog });
    assert.ok(result.ok, `apply: ${JSON.stringify(result)}`);
  };
  const live = () => replicas.filter((r) => r.running);
  const onlyReplicaOf = async (): Promise<Replica> => {
    let only: Replica | undefined;
    await waitUntil(async () => {
      const on: Replica[] = [];
      for (const r of live()) if ((await r.nodes()).includes(NODE)) on.push(r);
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
  /** The node is in sync on all four types here (and, with `changed`, ACKed a new version of each of those types); resolves with what it ACKed. */
  const syncedOn = async (replica: Replica, what: string, changed?: { from: Record<string, string>; types: string[] }): Promise<Record<string, string>> => {
    let acked: Record<string, string> | undefined;
    await waitUntil(async () => {
      acked = await ackedVersions(replica);
      return acked !== undefined && (changed === undefined || changed.types.every((t) => acked![t] !== changed.from[t]));
    }, 15_000, () => `${what} (${JSON.stringify(acked)})`);
    return acked!;
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-fleet-sotw-'));
    [blue, red] = await Promise.all([startHttpUpstream('blue'), startHttpUpstream('red')]);
    webPort = await freePort();
    etcd = await startEtcd({ members: 3 });
    catalog = await FilterCatalog.load();
    await apply(blue);
    // (startReplicas: when one fails to start, the others are closed, not left keeping this file alive)
    replicas.push(...(await startReplicas(['s1', 's2', 's3'].map((id) => ({ id, args: ['--etcd', etcd.endpointList, '--replica-id', id, '--replica-ttl', '2s'] })))));
    // The bootstrap an operator would write: every replica, SotW (no --delta).
    const adminPort = await freePort();
    const bootstrap = await protoplane('bootstrap', '--xds', replicas.map((r) => r.xds).join(','), '--node-id', NODE, '--node-cluster', 'edge', '--admin-port', String(adminPort));
    assert.equal(bootstrap.code, 0, bootstrap.stderr);
    const config = parse(bootstrap.stdout) as { dynamic_resources: { ads_config: { api_type: string } } };
    assert.equal(config.dynamic_resources.ads_config.api_type, 'GRPC', 'SotW ADS');
    envoy = await startEnvoy({ bootstrapYaml: bootstrap.stdout, adminPort });
    await envoy.waitForListener('web', 30_000);
  });

  after(async () => {
    await envoy?.stop();
    await Promise.all(replicas.map((r) => r.close()));
    await etcd?.close();
    await Promise.all([blue, red].map((u) => u?.close()));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('kill -9 of the replica Envoy is on: no request fails, Envoy moves to a live replica and ends ACKed at the same versions, with no listener or cluster rebuilt', async () => {
    await waitUntil(async () => (await httpGet(webPort, '/')).body === 'blue', 20_000, 'traffic through Envoy to blue');
    const first = await onlyReplicaOf();
    const node = (await first.json<{ nodes: SyncNode[] }>('/debug/sync')).nodes.find((n) => n.id === NODE);
    assert.equal(node?.transport, 'SotW ADS');
    const ackedBefore = await syncedOn(first, 'the node to ACK CDS, EDS, LDS and RDS on its first replica');
    const heldBefore = await envoyHolds(envoy);
    // The dump was read (a misread one would compare empty with empty).
    for (const key of ['CDS', 'LDS', 'cluster blue', 'listener web', 'RDS web', 'EDS blue']) assert.match(heldBefore[key] ?? '', /^\w|^\{/, `${key} in ${JSON.stringify(heldBefore)}`);
    assert.doesNotMatch(`${heldBefore['cluster blue']} ${heldBefore['listener web']}`, /undefined/);
    const churnBefore = await Promise.all(CHURN.map((name) => envoy.stat(name)));
    const updatesBefore = { cds: await envoy.stat('cluster_manager.cds.update_success'), lds: await envoy.stat('listener_manager.lds.update_success') };

    const load = requestLoop(webPort, '/', 60_000);
    await waitUntil(() => load.seen.length >= 20, 10_000, 'requests flowing');
    await first.kill('SIGKILL');
    const killedAt = Date.now();
    const second = await onlyReplicaOf();
    const reconnectMs = Date.now() - killedAt;
    assert.notEqual(second.id, first.id);
    await envoy.waitForStat('control_plane.connected_state', (v) => v === 1, 10_000);
    // Envoy's first requests say what it holds; the new replica sends nothing and records it in sync.
    const ackedAfter = await syncedOn(second, 'the node in sync on CDS, EDS, LDS and RDS on its new replica');
    const seenAtSync = load.seen.length;
    await waitUntil(() => load.seen.length >= seenAtSync + 20, 10_000, 'requests still flowing after the reconnect');
    await load.stop();

    assert.deepEqual(load.failures, [], 'no request failed');
    assert.ok(load.seen.every((body) => body === 'blue'));
    assert.deepEqual(ackedAfter, ackedBefore, 'the new replica sees the node ACK the versions it held on the old one');
    const heldAfter = await envoyHolds(envoy);
    assert.deepEqual(heldAfter, heldBefore, 'Envoy holds the same versions, and no listener or cluster was rebuilt');
    assert.deepEqual([heldAfter.CDS, heldAfter.LDS, heldAfter['RDS web']], [ackedAfter.Cluster, ackedAfter.Listener, ackedAfter.RouteConfiguration], 'what Envoy holds is what the replica saw it ACK');
    assert.deepEqual(
      Object.fromEntries(CHURN.map((name) => [name, 0])),
      Object.fromEntries(await Promise.all(CHURN.map(async (name, i) => [name, (await envoy.stat(name))! - churnBefore[i]!]))),
      'no listener or cluster added, modified or removed',
    );
    const resent = await second.metric('protoplane_xds_pushes_total');
    const cdsUpdates = (await envoy.stat('cluster_manager.cds.update_success'))! - updatesBefore.cds!;
    const ldsUpdates = (await envoy.stat('listener_manager.lds.update_success'))! - updatesBefore.lds!;
    process.stdout.write(
      `# SotW failover: ${first.id} killed, Envoy on ${second.id} after ${reconnectMs} ms; ${load.seen.length} requests, 0 failed; ` +
        `${second.id} sent ${resent} responses, Envoy applied ${cdsUpdates} CDS and ${ldsUpdates} LDS updates, none changed a cluster or listener\n`,
    );
    assert.equal(resent, 0, 'the new replica sent nothing Envoy already held');
    assert.deepEqual([cdsUpdates, ldsUpdates], [0, 0], 'Envoy received no CDS or LDS update');
  });

  it('a change applied after the failover reaches Envoy from the replica it is on, at the version every live replica serves', async () => {
    const on = await onlyReplicaOf();
    const ackedBefore = await syncedOn(on, 'the node in sync before the change');
    const before = await agreedVersion();
    await apply(red);
    await agreedVersion(before);
    await waitUntil(async () => (await httpGet(webPort, '/')).body === 'red', 20_000, 'Envoy to route to red');
    // A new cluster, its endpoints and the route to it: each ACKed at a new
    // version (the listener itself, whose route comes over RDS, is unchanged).
    const changedTypes = ['Cluster', 'ClusterLoadAssignment', 'RouteConfiguration'];
    const ackedAfter = await syncedOn(on, 'the node to ACK the change', { from: ackedBefore, types: changedTypes });
    assert.equal(ackedAfter.Listener, ackedBefore.Listener);
    const held = await envoyHolds(envoy);
    assert.equal(held.CDS, ackedAfter.Cluster, JSON.stringify({ held, ackedAfter }));
    assert.equal(held.LDS, ackedAfter.Listener, JSON.stringify({ held, ackedAfter }));
    assert.equal(held['RDS web'], ackedAfter.RouteConfiguration, JSON.stringify({ held, ackedAfter }));
    assert.ok(held['cluster red'] !== undefined && held['cluster blue'] === undefined, JSON.stringify(held));
  });
});
