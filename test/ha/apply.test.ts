// `protoplane apply | get | rollback` against a real etcd (Debian etcd-server,
// test/support/etcd.ts), through the CLI: a refused config (structure, or a
// filter refusing its settings in the pre-flight) and a revision conflict
// leave etcd untouched (its store revision does not move); get prints the
// YAML exactly as applied with the revision on stderr; rollback restores an
// earlier mesh and its filter module through the same checks, and says so
// clearly when etcd has compacted that revision away.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FilterCatalog } from '../../xds-server/catalog/index.ts';
import { applyMeshFile, getMesh } from '../../xds-server/etcd/apply.ts';
import { checkPrefix, decodeMeshRecord, DEFAULT_ETCD_PREFIX, encodeMeshRecord, meshKey, parseEtcdEndpoints } from '../../xds-server/etcd/store.ts';
import { protoplane } from '../support/cli.ts';
import { freePort } from '../support/envoy.ts';
import { startEtcd, type EtcdCluster } from '../support/etcd.ts';

// bin/protoplane as a user runs it (exit code and output, no throw on refusal).
const cli = (args: string[]) => protoplane(...args);

const TCP_MESH = (port: number) => `listeners:
  - name: raw
    port: ${port}
    protocol: tcp
    routes: [ { cluster: echo } ]
clusters:
  - name: echo
    endpoints: [ 127.0.0.1:7 ]
`;

const MQTT_MESH = `listeners:
  - name: mqtt
    port: 23883
    protocol: mqtt
    routes: [ { cluster: broker } ]
clusters:
  - name: broker
    endpoints: [ 127.0.0.1:1883 ]
`;

function meshFile(yaml: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-apply-'));
  const file = path.join(dir, 'mesh.yaml');
  fs.writeFileSync(file, yaml);
  return file;
}

describe('apply, get, rollback', () => {
  let etcd: EtcdCluster;
  let catalog: FilterCatalog;
  const target = () => ({ endpoints: etcd.endpoints });
  /** The etcd store revision and the mesh key's value: what "untouched" compares. */
  const state = () => {
    const res = JSON.parse(etcd.etcdctl(['get', meshKey(DEFAULT_ETCD_PREFIX), '-w', 'json'])) as { header: { revision: number }; kvs?: Array<{ value: string; mod_revision: number }> };
    return { store: res.header.revision, value: res.kvs?.[0]?.value ?? null, mod: res.kvs?.[0]?.mod_revision ?? 0 };
  };

  before(async () => {
    [etcd, catalog] = await Promise.all([startEtcd(), FilterCatalog.load()]);
  });
  after(async () => {
    await etcd?.close();
  });

  test('a refused config prints file:line:col errors, exits 1 and leaves etcd untouched', async () => {
    const good = meshFile(TCP_MESH(23001));
    assert.ok((await applyMeshFile(good, target(), { catalog })).ok);
    const before = state();

    const badRef = meshFile(TCP_MESH(23002).replace('routes: [ { cluster: echo } ]', 'routes: [ { cluster: nowhere } ]'));
    const refused = await cli(['apply', badRef, '--etcd', etcd.endpointList]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`^${badRef.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5:\\d+: .*nowhere`, 'm'));
    assert.match(refused.stderr, /refused: nothing was written to etcd/);
    assert.deepEqual(state(), before);

    // The filter itself refuses its settings in the pre-flight (filters/loop-test never finishes configuring).
    const badSettings = meshFile(`listeners:
  - name: l
    port: 23003
    protocol: loop-test
    filter: { mode: loop }
    routes: [ { cluster: a } ]
clusters:
  - name: a
    endpoints: [ 127.0.0.1:9 ]
`);
    const preflight = await applyMeshFile(badSettings, target(), { catalog });
    assert.equal(preflight.ok, false);
    assert.ok(!preflight.ok && preflight.kind === 'invalid');
    assert.match(preflight.errors.map((e) => `${e.file}:${e.line}:${e.col}: ${e.message}`).join('\n'), /mesh\.yaml:4:\d+: filter loop-test refused this listener's configuration/);
    assert.deepEqual(state(), before);
  });

  test('with etcd away, a refused config still gets its file:line:col errors, not an etcd error', async () => {
    // apply gives its read of the revision a head start before the checks; it must not outrank them
    const away = { endpoints: [`http://127.0.0.1:${await freePort()}`] };
    const bad = meshFile(TCP_MESH(23004).replace('routes: [ { cluster: echo } ]', 'routes: [ { cluster: nowhere } ]'));
    const result = await applyMeshFile(bad, away, { catalog });
    assert.ok(!result.ok && result.kind === 'invalid', JSON.stringify(result));
    assert.match(result.errors.map((e) => `${e.file}:${e.line}:${e.col}: ${e.message}`).join('\n'), /mesh\.yaml:5:\d+: .*nowhere/);
    // the same config made valid: now etcd's absence is the answer
    const good = await applyMeshFile(meshFile(TCP_MESH(23004)), away, { catalog });
    assert.ok(!good.ok && good.kind === 'error', JSON.stringify(good));
  });

  test('a revision conflict names both revisions, exits 1 and leaves etcd untouched; the right revision writes', async () => {
    const file = meshFile(TCP_MESH(23011));
    const first = await applyMeshFile(file, target(), { catalog });
    assert.ok(first.ok);
    fs.writeFileSync(file, TCP_MESH(23012));
    const stale = first.revision - 1;
    const before = state();
    const conflict = await cli(['apply', file, '--etcd', etcd.endpointList, '--expect-revision', String(stale)]);
    assert.equal(conflict.code, 1, conflict.stderr);
    assert.match(conflict.stderr, new RegExp(`conflict: expected /protoplane/mesh at revision ${stale}, but it is at revision ${first.revision}`));
    assert.deepEqual(state(), before);
    // Someone else's write between our read and our write: the same compare refuses it.
    const raced = await applyMeshFile(file, target(), { catalog, expectRevision: first.revision - 1 });
    assert.deepEqual(raced, { ok: false, kind: 'conflict', expected: first.revision - 1, actual: first.revision });
    assert.deepEqual(state(), before);

    const ok = await cli(['apply', file, '--etcd', etcd.endpointList, '--expect-revision', String(first.revision)]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`applied: /protoplane/mesh is at revision ${before.store + 1} \\(was revision ${first.revision};`));
    assert.equal(state().mod, before.store + 1);
  });

  test('get prints the YAML exactly as applied (revision on stderr); rollback restores an earlier mesh and its module', async () => {
    const file = meshFile(MQTT_MESH);
    const withModule = await applyMeshFile(file, target(), { catalog });
    assert.ok(withModule.ok && withModule.filters.length === 1);
    fs.writeFileSync(file, TCP_MESH(23021));
    const later = await applyMeshFile(file, target(), { catalog });
    assert.ok(later.ok);

    const got = await cli(['get', '--etcd', etcd.endpointList]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, TCP_MESH(23021));
    assert.equal(got.stderr, `revision ${later.revision} (applied from ${file})\n`);
    const older = await cli(['get', '--etcd', etcd.endpointList, '--revision', String(withModule.revision)]);
    assert.equal(older.stdout, MQTT_MESH);

    const rolled = await cli(['rollback', '--to', String(withModule.revision), '--etcd', etcd.endpointList]);
    assert.equal(rolled.code, 0, rolled.stderr);
    const now = await getMesh(target());
    assert.ok(now.ok);
    assert.equal(now.record.yaml, MQTT_MESH);
    assert.ok(now.revision > later.revision);
    assert.deepEqual(now.record.filters, withModule.filters, 'the same module (by sha256) as at that revision');

    // Once etcd has compacted history, the old revision is gone: a clear error, etcd untouched.
    etcd.etcdctl(['compact', String(now.revision)]);
    const before = state();
    const compacted = await cli(['rollback', '--to', String(later.revision), '--etcd', etcd.endpointList]);
    assert.equal(compacted.code, 1);
    assert.match(compacted.stderr, new RegExp(`revision ${later.revision} has been compacted away`));
    assert.deepEqual(state(), before);
  });

  test('usage errors: --etcd is required, and --config and --etcd exclude each other', async () => {
    const apply = await cli(['apply', 'mesh.yaml']);
    assert.equal(apply.code, 2);
    assert.match(apply.stderr, /apply: --etcd is required/);
    const both = await cli(['serve', '--config', 'mesh.yaml', '--etcd', 'http://127.0.0.1:2379']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--config and --etcd exclude each other/);
    const badUrl = await cli(['get', '--etcd', 'http://127.0.0.1']);
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /give the port/);
  });
});

describe('the stored record and the flags (pure)', () => {
  test('a mesh record round-trips; anything else is refused with the reason', () => {
    const record = { yaml: 'listeners: []\n', source: '/srv/mesh.yaml', filters: [{ name: 'mqtt', protocol: 'mqtt', sha256: 'a'.repeat(64), manifest: { name: 'mqtt', protocol: 'mqtt', entry: 'index.ts' } }] };
    assert.deepEqual(decodeMeshRecord(encodeMeshRecord(record)), { ok: true, value: record });
    assert.equal(encodeMeshRecord(record), encodeMeshRecord(structuredClone(record)), 'the same record, the same bytes');
    assert.match((decodeMeshRecord('listeners: []') as { reason: string }).reason, /not JSON/);
    assert.match((decodeMeshRecord('{"format":2}') as { reason: string }).reason, /unknown format 2/);
    const badSha = encodeMeshRecord({ ...record, filters: [{ ...record.filters[0]!, sha256: 'xyz' }] });
    assert.match((decodeMeshRecord(badSha) as { reason: string }).reason, /filters\[0\] must have .*sha256/);
  });

  test('--etcd takes a comma list of URLs with ports; --etcd-prefix starts and ends with /', () => {
    assert.deepEqual(parseEtcdEndpoints(['http://a:2379, 10.0.0.2:2379', 'https://c:2379']), { ok: true, value: ['http://a:2379', 'http://10.0.0.2:2379', 'https://c:2379'] });
    assert.equal(parseEtcdEndpoints(['']).ok, false);
    assert.match((parseEtcdEndpoints(['ftp://a:1']) as { reason: string }).reason, /only http/);
    assert.deepEqual(checkPrefix('/fleet-a/'), { ok: true, value: '/fleet-a/' });
    assert.equal(checkPrefix('fleet').ok, false);
  });
});
