// The status page's data (/status.json) is a pure view of the open streams:
// per node its transport, per type what was sent and ACKed and the last NACK;
// with thousands of Envoys it lists the out-of-sync ones first and counts the
// rest. (Real Envoys on the page: test/e2e/status-page.test.ts.)
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { statusView } from '../../xds-server/admin/status.ts';
import { SnapshotCache } from '../../xds-server/cache/index.ts';
import { FilterCatalog } from '../../xds-server/catalog/index.ts';
import type { StreamInfo, TypeStateInfo } from '../../xds-server/server/index.ts';
import { TYPE } from '../../xds-server/translate/index.ts';

function typeState(typeUrl: TypeStateInfo['typeUrl'], sent: string, acked: string | undefined, nack?: string): TypeStateInfo {
  return {
    typeUrl,
    wildcard: true,
    subscription: { key: '', names: new Set(), sorted: [] },
    sentVersion: sent,
    ackedVersion: acked,
    nacked: nack ? { version: sent, message: nack, at: 0 } : undefined,
    held: () => [],
  };
}

function stream(id: number, node: string, options: { variant?: 'sotw' | 'delta'; transport?: 'ads' | 'per-type'; nack?: string } = {}): StreamInfo {
  const types = new Map([
    [TYPE.cluster, typeState(TYPE.cluster, 'c1', 'c1')],
    [TYPE.route, typeState(TYPE.route, 'r2', options.nack ? 'r1' : 'r2', options.nack)],
  ]);
  return { id, variant: options.variant ?? 'sotw', transport: options.transport ?? 'ads', node: { id: node, cluster: 'c' } as StreamInfo['node'], connectedAt: 0, types };
}

const sources = (streams: StreamInfo[], errors?: string[]) => ({
  cache: new SnapshotCache(),
  streams: () => streams,
  lastConfigError: () => errors,
  filters: () => FilterCatalog.EMPTY,
  configPath: 'mesh.yaml',
});

describe('status view', () => {
  it('per node: transport, per-type versions, in sync, the NACK with Envoy\'s words; the config errors', () => {
    const view = statusView(sources([stream(1, 'a', { variant: 'delta' }), stream(2, 'b', { nack: 'invalid perl operator: (?=' })], ['mesh.yaml:3:5: bad']));
    const a = view.nodes.find((n) => n.id === 'a')!;
    assert.equal(a.transport, 'Delta ADS');
    assert.equal(a.in_sync, true);
    const b = view.nodes.find((n) => n.id === 'b')!;
    assert.equal(b.in_sync, false);
    const route = b.types.find((t) => t.type === 'RouteConfiguration')!;
    assert.deepEqual([route.version_sent, route.version_acked, route.in_sync], ['r2', 'r1', false]);
    assert.equal(route.last_nack?.message, 'invalid perl operator: (?=');
    assert.deepEqual(view.config, { file: 'mesh.yaml', version: null, errors: ['mesh.yaml:3:5: bad'] });
  });

  it('one node on per-type streams of both kinds is one entry', () => {
    const view = statusView(sources([stream(1, 'p', { transport: 'per-type' }), stream(2, 'p', { transport: 'per-type' })]));
    assert.equal(view.nodes.length, 1);
    assert.equal(view.nodes[0]!.transport, 'SotW per-type');
    assert.equal(view.nodes[0]!.types.length, 4);
  });

  it('with many Envoys: out-of-sync nodes first, at most the cap listed, all counted', () => {
    const streams = Array.from({ length: 250 }, (_, i) => stream(i, `n${String(i).padStart(3, '0')}`, i % 100 === 7 ? { nack: 'no' } : {}));
    const view = statusView(sources(streams), Date.now(), 100);
    assert.deepEqual(view.node_counts, { connected: 250, in_sync: 247, out_of_sync: 3, shown: 100 });
    assert.deepEqual(view.nodes.slice(0, 3).map((n) => n.id), ['n007', 'n107', 'n207']);
    assert.ok(view.nodes.slice(3).every((n) => n.in_sync));
  });
});
