// `protoplane prune` against a real etcd (Debian etcd-server,
// test/support/etcd.ts): mesh A uses the mqtt module (X), mesh B the toy
// module (Y). Keeping 2 mesh revisions keeps both, a dry run deletes
// nothing, keeping 1 deletes X and keeps Y, and a rollback to A then fails
// naming X's sha256 with etcd untouched. An apply that lands between
// prune's read and its delete makes the delete's compare-and-swap fail: X,
// which the new mesh uses again, is not lost. Compacted history counts as
// unreachable. Each test uses its own key prefix on one etcd.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FilterCatalog } from '../../xds-server/catalog/index.ts';
import { applyMeshFile, type EtcdTarget } from '../../xds-server/etcd/apply.ts';
import { commitPrune, planPrune } from '../../xds-server/etcd/prune.ts';
import { meshKey, moduleKey } from '../../xds-server/etcd/store.ts';
import { protoplane } from '../support/cli.ts';
import { startEtcd, type EtcdCluster } from '../support/etcd.ts';

// bin/protoplane as a user runs it (exit code and output, no throw on refusal).
const cli = (args: string[]) => protoplane(...args);

const MESH_A = `listeners:
  - name: mqtt
    port: 23883
    protocol: mqtt
    routes: [ { cluster: broker } ]
clusters:
  - name: broker
    endpoints: [ 127.0.0.1:1883 ]
`;

const MESH_B = `listeners:
  - name: toy
    port: 23884
    protocol: toy
    routes: [ { cluster: backend } ]
clusters:
  - name: backend
    endpoints: [ 127.0.0.1:9 ]
`;

function meshFile(yaml: string): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-prune-')), 'mesh.yaml');
  fs.writeFileSync(file, yaml);
  return file;
}

describe('prune', () => {
  let etcd: EtcdCluster;
  let catalog: FilterCatalog;

  before(async () => {
    [etcd, catalog] = await Promise.all([startEtcd(), FilterCatalog.load()]);
  });
  after(async () => {
    await etcd?.close();
  });

  /** etcd's store revision and the module keys under the prefix: what "untouched" compares. */
  const state = (prefix: string) => {
    const res = JSON.parse(etcd.etcdctl(['get', `${prefix}modules/`, '--prefix', '--keys-only', '-w', 'json'])) as { header: { revision: number }; kvs?: Array<{ key: string }> };
    return { store: res.header.revision, modules: (res.kvs ?? []).map((kv) => Buffer.from(kv.key, 'base64').toString('utf8').slice(`${prefix}modules/`.length)).sort() };
  };

  /** Applies A (module X) then B (module Y) under `prefix`. */
  async function applyAThenB(target: EtcdTarget) {
    const file = meshFile(MESH_A);
    const a = await applyMeshFile(file, target, { catalog });
    fs.writeFileSync(file, MESH_B);
    const b = await applyMeshFile(file, target, { catalog });
    assert.ok(a.ok && b.ok, JSON.stringify([a, b]));
    const [x, y] = [a.filters[0]!, b.filters[0]!];
    assert.deepEqual([x.name, y.name], ['mqtt', 'toy']);
    return { file, a, b, x: x.sha256, y: y.sha256 };
  }

  test('keep 2 keeps both; a dry run deletes nothing; keep 1 deletes X and keeps Y; a rollback to A then fails clearly', async () => {
    const prefix = '/p1/';
    const target = { endpoints: etcd.endpoints, prefix };
    const { a, b, x, y } = await applyAThenB(target);
    const bytesOf = (sha: string) => catalog.byProtocol(sha === x ? 'mqtt' : 'toy')!.bytes.length;
    const start = state(prefix);
    assert.deepEqual(start.modules, [x, y].sort());

    const keep2 = await planPrune(target, 2);
    assert.ok(keep2.ok);
    assert.deepEqual(keep2.plan.keptRevisions, [b.revision, a.revision]);
    assert.deepEqual(keep2.plan.remove, []);
    assert.deepEqual(await commitPrune(target, keep2.plan), { ok: true, deleted: [] });
    // The default (10) reaches back to the first mesh revision.
    const byDefault = await planPrune(target);
    assert.ok(byDefault.ok && byDefault.plan.historyEnd === 'first-revision' && byDefault.plan.remove.length === 0);
    assert.deepEqual(state(prefix), start);

    const dry = await cli(['prune', '--etcd', etcd.endpointList, '--etcd-prefix', prefix, '--keep-revisions', '1', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`^would delete ${x}  ${bytesOf(x)} bytes$`, 'm'));
    assert.match(dry.stdout, new RegExp(`^kept     ${y}  ${bytesOf(y)} bytes  toy, used by mesh revision ${b.revision}$`, 'm'));
    assert.match(dry.stdout, /dry run: would delete 1 module\(s\) .*nothing was deleted/);
    assert.deepEqual(state(prefix), start);

    const pruned = await cli(['prune', '--etcd', etcd.endpointList, '--etcd-prefix', prefix, '--keep-revisions', '1']);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.match(pruned.stdout, new RegExp(`^mesh revisions kept: ${b.revision} \\(1; older ones are beyond --keep-revisions\\)$`, 'm'));
    assert.match(pruned.stdout, new RegExp(`^deleted  ${x}  ${bytesOf(x)} bytes$`, 'm'));
    assert.match(pruned.stdout, new RegExp(`^kept     ${y} `, 'm'));
    assert.match(pruned.stdout, new RegExp(`^pruned: deleted 1 module\\(s\\) \\(${bytesOf(x)} bytes\\), kept 1 \\(${bytesOf(y)} bytes\\)$`, 'm'));
    const after = state(prefix);
    assert.deepEqual(after.modules, [y]);

    // Revision A's module is gone: rollback refuses, naming it, and writes nothing.
    const rollback = await cli(['rollback', '--to', String(a.revision), '--etcd', etcd.endpointList, '--etcd-prefix', prefix]);
    assert.equal(rollback.code, 1, rollback.stdout);
    assert.match(rollback.stderr, new RegExp(`the mesh of revision ${a.revision} needs module ${moduleKey(prefix, x)} \\(filter mqtt\\), which etcd no longer holds.*nothing was written`));
    assert.deepEqual(state(prefix), after);
    assert.equal(JSON.parse(etcd.etcdctl(['get', meshKey(prefix), '-w', 'json'])).kvs[0].mod_revision, b.revision);
  });

  test('an apply between prune\'s read and its delete fails the compare-and-swap: nothing is deleted', async () => {
    const prefix = '/p2/';
    const target = { endpoints: etcd.endpoints, prefix };
    const { file, b, x, y } = await applyAThenB(target);
    const planned = await planPrune(target, 1);
    assert.ok(planned.ok);
    assert.deepEqual(planned.plan.remove.map((m) => m.sha256), [x]);

    // Someone applies A again: X is still stored, so apply only compares it present; the mesh key moves.
    fs.writeFileSync(file, MESH_A);
    const again = await applyMeshFile(file, target, { catalog });
    assert.ok(again.ok && again.modulesWritten === 0);
    const before = state(prefix);

    const result = await commitPrune(target, planned.plan);
    assert.deepEqual(result, { ok: false, kind: 'conflict', expected: b.revision, actual: again.revision, deleted: [] });
    assert.deepEqual(state(prefix), before, 'nothing deleted, store revision unchanged');
    assert.deepEqual(before.modules, [x, y].sort());

    // Read again, the live mesh needs X: keeping 1 revision now deletes Y instead.
    const replanned = await planPrune(target, 1);
    assert.ok(replanned.ok);
    assert.deepEqual([replanned.plan.keep.map((m) => m.sha256), replanned.plan.remove.map((m) => m.sha256)], [[x], [y]]);
  });

  test('revisions etcd has compacted away count as unreachable', async () => {
    const prefix = '/p3/';
    const target = { endpoints: etcd.endpoints, prefix };
    const { b, x, y } = await applyAThenB(target);
    etcd.etcdctl(['compact', String(b.revision)]);
    const planned = await planPrune(target);
    assert.ok(planned.ok);
    assert.equal(planned.plan.historyEnd, 'compacted');
    assert.deepEqual(planned.plan.keptRevisions, [b.revision]);
    assert.deepEqual([planned.plan.keep.map((m) => m.sha256), planned.plan.remove.map((m) => m.sha256)], [[y], [x]]);
  });
});
