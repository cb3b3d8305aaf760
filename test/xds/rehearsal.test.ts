// The push-path rehearsal (xds-server/server/rehearsal.ts): it runs on state
// of its own, so nothing of it is served, counted or shown; its clients end
// up holding what was served; and its check fails when a change does not
// reach them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SnapshotCache } from '../../xds-server/cache/index.ts';
import { silentLogger } from '../../xds-server/log.ts';
import { Metrics } from '../../xds-server/metrics.ts';
import { XdsServer } from '../../xds-server/server/index.ts';
import { rehearsePushPath, withPrivateSocket } from '../../xds-server/server/rehearsal.ts';
import { snapshotsOf } from '../../xds-server/snapshots.ts';

describe('push path rehearsal', () => {
  it("runs on private state: the server's cache, metrics and streams are untouched", async () => {
    const cache = new SnapshotCache();
    const served = snapshotsOf({
      listeners: [],
      clusters: [{ name: 'a', endpoints: [{ host: '127.0.0.1', port: 1 }], lb: 'round_robin', http2: false, connectTimeout: 1000 }],
    });
    cache.set(served);
    const metrics = new Metrics({ processMetrics: false });
    // limits no rehearsal client could meet: the rehearsal must not use the clients' limits
    const server = new XdsServer({ cache, metrics, log: silentLogger(), limits: { maxNamesPerSubscription: 1, maxNamesPerRequest: 1 } });
    await server.rehearse();
    assert.equal(cache.snapshot?.version, served.version);
    assert.equal(cache.groupCount, 0, 'no group joined the served cache');
    assert.deepEqual(server.openStreams, []);
    const text = await metrics.registry.metrics();
    for (const line of text.split('\n').filter((l) => /^protoplane_xds_(pushes|acks)_total\{/.test(l))) {
      assert.match(line, / 0$/, `counted nothing: ${line}`);
    }
    assert.doesNotMatch(text, /protoplane_xds_push_latency_seconds_count\{[^}]*\} [1-9]/);
  });

  it('fails loudly when a change does not reach its clients', async () => {
    const cache = new SnapshotCache();
    // a budget no write fits in: once the connects' responses are out, a change is never pumped
    const server = new XdsServer({ cache, metrics: new Metrics({ processMetrics: false }), log: silentLogger(), fanOut: { maxBytesInFlight: -1 } });
    await withPrivateSocket(async (socket) => {
      try {
        await server.listenSocket(socket);
        await assert.rejects(rehearsePushPath(cache, socket, { passes: 1, timeoutMs: 500 }), /the rehearsal's (delta|SotW) client holds Cluster \[a,b,d\] not as served/);
      } finally {
        server.forceClose();
      }
    });
  });
});
