// Node groups: nodes with the same node-hash share one snapshot object; a
// group lives only while it has streams.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SnapshotCache } from '../../xds-server/cache/index.ts';
import { snapshotsOf } from '../../xds-server/snapshots.ts';
import { silentLogger } from '../../xds-server/log.ts';
import { Metrics } from '../../xds-server/metrics.ts';
import { XdsServer } from '../../xds-server/server/index.ts';
import { TYPE } from '../../xds-server/translate/index.ts';
import { waitUntil } from '../support/envoy.ts';
import { DeltaTestClient, XdsTestClient } from '../support/xds-client.ts';

describe('node groups', () => {
  const cache = new SnapshotCache();
  const server = new XdsServer({ cache, metrics: new Metrics({ processMetrics: false }), log: silentLogger() });
  let port = 0;
  before(async () => {
    cache.set(
      snapshotsOf({
        listeners: [],
        clusters: [{ name: 'a', endpoints: [{ host: '127.0.0.1', port: 1 }], lb: 'round_robin', http2: false, connectTimeout: 1000 }],
      }),
    );
    port = await server.listen(0, '127.0.0.1');
  });
  after(() => server.forceClose());

  it('shares one snapshot per node cluster, falls back to the node id, and drops empty groups', async () => {
    const a1 = new XdsTestClient(port);
    const a2 = new DeltaTestClient(port);
    const solo = new XdsTestClient(port);
    a1.send({ typeUrl: TYPE.cluster, nodeId: 'n1', nodeCluster: 'edge' });
    a2.send({ typeUrl: TYPE.cluster, nodeId: 'n2', nodeCluster: 'edge' });
    solo.send({ typeUrl: TYPE.cluster, nodeId: 'lonely', nodeCluster: '' });
    await Promise.all([a1.next(), a2.next(), solo.next()]);
    const groups = server.openStreams.map((s) => s.group).sort();
    assert.deepEqual(groups, ['edge', 'edge', 'lonely']);
    assert.equal(cache.groupCount, 2);
    assert.ok(cache.snapshotOf('edge'));
    assert.equal(cache.snapshotOf('edge'), cache.snapshot, 'the group shares the mesh-wide snapshot object');
    a1.close();
    a2.close();
    await waitUntil(() => cache.groupCount === 1, 5000, 'the edge group dropped after its streams closed');
    assert.equal(cache.snapshotOf('edge'), undefined);
    solo.close();
    await waitUntil(() => cache.groupCount === 0, 5000, 'no groups left');
  });
});
