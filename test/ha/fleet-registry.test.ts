// A replica's registration against a real etcd (Debian etcd-server, one
// member): written at once, refreshed when its counts change, back after
// etcd was away for longer than the lease TTL, and gone at once on a clean
// stop. (The key vanishing after kill -9 is shown in fleet.test.ts.)
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { listReplicas } from '../../xds-server/fleet/collect.ts';
import { registerReplica, replicaKey } from '../../xds-server/fleet/registry.ts';
import { silentLogger } from '../../xds-server/log.ts';
import { startEtcd, type EtcdCluster } from '../support/etcd.ts';
import { waitUntil } from '../support/envoy.ts';

const PREFIX = '/registry-test/';

describe('replica registration in etcd', () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  before(async () => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: [...etcd.endpoints] });
  });
  after(async () => {
    client?.close();
    await etcd?.close();
  });

  it('registers with a lease, refreshes the counts, survives an etcd outage longer than the TTL, and deregisters on close', async () => {
    let nodes = 0;
    const registration = registerReplica({
      endpoints: etcd.endpoints,
      prefix: PREFIX,
      id: 'r1',
      xds: '127.0.0.1:18000',
      admin: '127.0.0.1:18001',
      counts: () => ({ nodes, streams: nodes, version: 'v1' }),
      ttlSeconds: 1,
      refreshMs: 100,
      log: silentLogger(),
    });
    try {
      await waitUntil(async () => (await listReplicas(client, PREFIX)).length === 1, 10_000, 'the registration');
      const [record] = await listReplicas(client, PREFIX);
      assert.deepEqual({ ...record, started_at: undefined, hostname: undefined, pid: undefined }, {
        id: 'r1', xds: '127.0.0.1:18000', admin: '127.0.0.1:18001', nodes: 0, streams: 0, version: 'v1', started_at: undefined, hostname: undefined, pid: undefined,
      });
      const lease = (await client.get(replicaKey(PREFIX, 'r1')).exec()).kvs[0]!.lease;
      assert.notEqual(String(lease), '0', 'the key is bound to a lease');

      nodes = 3;
      await waitUntil(async () => (await listReplicas(client, PREFIX))[0]?.nodes === 3, 10_000, 'the new node count');

      // Away for three TTLs: the lease may expire; either way the key is back once etcd is.
      await etcd.stopAll();
      await new Promise((r) => setTimeout(r, 3000));
      nodes = 4;
      await etcd.startAll();
      await waitUntil(async () => (await listReplicas(client, PREFIX))[0]?.nodes === 4, 20_000, 'the registration after the outage');
    } finally {
      await registration.close();
    }
    assert.deepEqual(await listReplicas(client, PREFIX), [], 'gone at once on close');
  });
});
