// The fleet view is pure: replica records and their /debug/sync replies in,
// the view and its table out.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeStatus } from '../../xds-server/admin/status.ts';
import { replicaOptionsOf } from '../../xds-server/fleet/index.ts';
import { fleetTable, fleetView, parseReplicaRecord, typeCell, type ReplicaRecord, type SyncReply } from '../../xds-server/fleet/view.ts';

function record(id: string, version: string | null = 'aaaaaaaa11112222'): ReplicaRecord {
  return { id, xds: `10.0.0.${id.slice(1)}:18000`, admin: `10.0.0.${id.slice(1)}:18001`, nodes: 9, streams: 9, version, started_at: '2026-12-06T00:00:00.000Z', hostname: 'h', pid: 1 };
}

function node(id: string, types: Partial<NodeStatus['types'][number]>[]): NodeStatus {
  const full = types.map((t) => ({ type: 'Cluster', stream: 1, version_sent: null, version_acked: null, in_sync: true, last_nack: null, ...t }));
  return { id, cluster: 'edge', user_agent: 'envoy', transport: 'Delta ADS', connected_at: '2026-12-06T00:00:00.000Z', in_sync: full.every((t) => t.in_sync), types: full };
}

describe('fleet view', () => {
  it('lists every node with its replica, counts from the replies, and flags unreachable replicas', () => {
    const view = fleetView(
      [record('r2'), record('r1'), record('r3')],
      new Map<string, SyncReply | Error>([
        ['r1', { version: 'aaaaaaaa11112222', nodes: [node('b', [{ version_sent: 'v1', version_acked: 'v1' }]), node('a', [{ version_sent: 'v2', version_acked: 'v1', in_sync: false }])] }],
        ['r2', { version: 'aaaaaaaa11112222', nodes: [] }],
        ['r3', new Error('10.0.0.3:18001: ECONNREFUSED')],
      ]),
      0,
    );
    assert.deepEqual(view.replicas.map((r) => [r.id, r.reachable, r.nodes]), [['r1', true, 2], ['r2', true, 0], ['r3', false, 9]]);
    assert.deepEqual(view.nodes.map((n) => [n.id, n.replica]), [['a', 'r1'], ['b', 'r1']]);
    assert.deepEqual(view.node_counts, { connected: 2, in_sync: 1, out_of_sync: 1 });
    assert.equal(view.versions_agree, true);
    const table = fleetTable(view);
    assert.match(table, /^REPLICA\s+XDS\s+ADMIN\s+NODES\s+VERSION\s+STATE$/m);
    assert.match(table, /^r3\s+10\.0\.0\.3:18000\s+10\.0\.0\.3:18001\s+\?\s+aaaaaaaa\s+UNREACHABLE: 10\.0\.0\.3:18001: ECONNREFUSED$/m);
    assert.match(table, /^a\s+edge\s+r1\s+Delta ADS\s+STALE v1→v2$/m);
    assert.match(table, /^b\s+edge\s+r1\s+Delta ADS\s+SYNCED v1$/m);
  });

  it('says when replicas serve different versions', () => {
    const view = fleetView([record('r1'), record('r2')], new Map([['r1', { version: 'x', nodes: [] }], ['r2', { version: 'y', nodes: [] }]]));
    assert.equal(view.versions_agree, false);
    assert.match(fleetTable(view), /replicas serve different versions/);
  });

  it('names a type cell as istioctl does', () => {
    const base = { type: 'Cluster', stream: 1, last_nack: null };
    assert.equal(typeCell({ ...base, version_sent: null, version_acked: null, in_sync: true }), 'NOT SENT');
    assert.equal(typeCell({ ...base, version_sent: null, version_acked: '0123456789abcdef', in_sync: true }), 'SYNCED 01234567');
    const nack = { version: 'bad', message: 'no such cluster', at: '' };
    assert.equal(typeCell({ ...base, version_sent: 'bad', version_acked: 'good', in_sync: false, last_nack: nack }), 'NACKED bad');
    assert.equal(typeCell(undefined), '');
    const table = fleetTable(fleetView([record('r1')], new Map([['r1', { version: 'v', nodes: [node('n', [{ version_sent: 'bad', version_acked: 'good', in_sync: false, last_nack: nack }])] }]])));
    assert.match(table, /last NACKs:\n {2}n @ r1 Cluster bad: no such cluster/);
  });

  it('reads only registration records from etcd values', () => {
    assert.equal(parseReplicaRecord('not json'), undefined);
    assert.equal(parseReplicaRecord('{"id":"r1"}'), undefined);
    assert.deepEqual(parseReplicaRecord(JSON.stringify(record('r1'))), record('r1'));
  });

  it("serve's replica flags: parsed, checked, and only with --etcd", () => {
    const fail = (message: string): never => {
      throw new Error(message);
    };
    const etcd = 'http://127.0.0.1:2379';
    assert.deepEqual(replicaOptionsOf({ etcd, 'replica-id': 'r-1.a', 'advertise-host': 'cp-1', 'replica-ttl': '3s' }, fail), { id: 'r-1.a', advertiseHost: 'cp-1', ttlSeconds: 3 });
    assert.deepEqual(replicaOptionsOf({ etcd }, fail), { id: undefined, advertiseHost: undefined, ttlSeconds: undefined });
    assert.deepEqual(replicaOptionsOf({ config: 'mesh.yaml' }, fail), { id: undefined, advertiseHost: undefined, ttlSeconds: undefined });
    assert.throws(() => replicaOptionsOf({ config: 'mesh.yaml', 'replica-id': 'r1' }, fail), /--replica-id: only with --etcd/);
    assert.throws(() => replicaOptionsOf({ etcd, 'replica-id': 'a/b' }, fail), /--replica-id: letters, digits/);
    assert.throws(() => replicaOptionsOf({ etcd, 'replica-ttl': '500ms' }, fail), /at least 1s/);
    assert.throws(() => replicaOptionsOf({ etcd, 'replica-ttl': 'soon' }, fail), /--replica-ttl/);
  });
});
