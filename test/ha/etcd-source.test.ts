// `serve --etcd` against a real etcd (Debian etcd-server, test/support/etcd.ts):
// the applied mesh is served byte for byte as from its file, its filter module
// comes from etcd by sha256, a mesh naming a module etcd lacks is refused, and
// the watch survives a member loss, a whole-cluster outage (serving the last
// good config, /readyz degraded, apply failing) and catches up afterwards
// without missing a write made while this replica's member was down.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { serve, type Protoplane } from '../../xds-server/app.ts';
import { FilterCatalog } from '../../xds-server/catalog/index.ts';
import { parseMesh } from '../../xds-server/config/index.ts';
import { applyMeshFile as applyWith, type ApplyResult, type EtcdTarget } from '../../xds-server/etcd/apply.ts';
import { encodeMeshRecord, meshKey, moduleKey, DEFAULT_ETCD_PREFIX } from '../../xds-server/etcd/store.ts';
import { silentLogger, type Logger } from '../../xds-server/log.ts';
import { TYPE_ORDER } from '../../xds-server/model/resources.ts';
import { startEtcd, type EtcdCluster } from '../support/etcd.ts';
import { waitUntil } from '../support/envoy.ts';
import { serveForTest } from '../support/mesh-env.ts';
import { snapshotsOf } from '../../xds-server/snapshots.ts';

// Filters are built and loaded once for the file (building takes a lock other test processes share).
let catalog: Promise<FilterCatalog> | undefined;
async function applyMeshFile(file: string, target: EtcdTarget): Promise<ApplyResult> {
  catalog ??= FilterCatalog.load();
  return applyWith(file, target, { catalog: await catalog });
}

/** The version `serve --config` gives a mesh without filters or TLS files (translation is pure). */
function fileVersion(yaml: string, file: string): string {
  const parsed = parseMesh(yaml, file);
  assert.ok(parsed.ok);
  return snapshotsOf(parsed.mesh).version;
}

const MQTT_MESH = (port: number) => `# an MQTT listener: its filter module travels through etcd
listeners:
  - name: mqtt
    port: ${port}
    protocol: mqtt
    filter:
      acl:
        default: allow
        publish:
          - { topic: "secret/#", action: deny }
    routes:
      - match: { client_id: { prefix: fleet-a- } }
        cluster: broker-a
      - cluster: broker-b
clusters:
  - name: broker-a
    endpoints: [ 127.0.0.1:1883 ]
  - name: broker-b
    endpoints: [ 127.0.0.1:1884 ]
`;

const TCP_MESH = (port: number) => `listeners:
  - name: raw
    port: ${port}
    protocol: tcp
    routes: [ { cluster: echo } ]
clusters:
  - name: echo
    endpoints: [ 127.0.0.1:7 ]
`;

function meshFile(yaml: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-ha-'));
  const file = path.join(dir, 'mesh.yaml');
  fs.writeFileSync(file, yaml);
  return file;
}

interface LogLine {
  level: number;
  msg: string;
}

function capturingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { log: pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) }), lines };
}

function serveFromEtcd(endpoints: readonly string[], log: Logger = silentLogger()): Promise<Protoplane> {
  return serve({ etcd: { endpoints, probeMs: 300 }, xdsPort: 0, adminPort: 0, host: '127.0.0.1', log, processMetrics: false });
}

/** Every resource the server would send (ADS flavour), as name → encoded Any bytes per type. */
function resourcesOf(server: Protoplane): Record<string, Record<string, Buffer>> {
  const snapshot = server.cache.snapshot;
  assert.ok(snapshot, 'the server has a snapshot');
  return Object.fromEntries(
    TYPE_ORDER.map((type) => [type, Object.fromEntries(snapshot.of(type).all().entries.map((e) => [e.name, Buffer.from(e.anyBytes)]))]),
  );
}

async function readyz(server: Protoplane): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${server.adminPort}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function metricsOf(server: Protoplane): Promise<string> {
  return (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
}

const sourceOf = (body: Record<string, unknown>) => body.config_source as { connected: boolean; revision: number | null; error: string | null };

describe('serve --etcd, one etcd member', () => {
  let etcd: EtcdCluster;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.close();
  });

  test('the applied mesh is served as its file is: same versions, byte-identical resources, the module from etcd by sha256', async () => {
    const file = meshFile(MQTT_MESH(21883));
    const applied = await applyMeshFile(file, { endpoints: etcd.endpoints });
    assert.ok(applied.ok, JSON.stringify(applied));
    const [filter] = applied.filters;
    assert.equal(filter?.name, 'mqtt');

    // The module is stored under its sha256, and the bytes hash to it.
    const stored = etcd.etcdctl(['get', moduleKey(DEFAULT_ETCD_PREFIX, filter.sha256), '-w', 'json']);
    const value = Buffer.from((JSON.parse(stored) as { kvs: Array<{ value: string }> }).kvs[0]!.value, 'base64');
    assert.equal(createHash('sha256').update(value).digest('hex'), filter.sha256);

    const fromEtcd = await serveFromEtcd(etcd.endpoints);
    const fromFile = await serveForTest(file, { watchFilters: false });
    try {
      assert.equal(fromEtcd.cache.snapshot?.version, fromFile.cache.snapshot?.version);
      assert.deepEqual(resourcesOf(fromEtcd), resourcesOf(fromFile));
      const ecds = Object.values(resourcesOf(fromEtcd)['type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig']!);
      assert.equal(ecds.length, 1, 'one ECDS resource (the mqtt filter)');
      assert.equal(fromEtcd.filters().entries.get('mqtt')?.sha256, filter.sha256, 'the replica serves the module etcd holds');

      // A change applied to etcd reaches the replica, and equals the file server's version of the same edit.
      fs.writeFileSync(file, MQTT_MESH(21884));
      const again = await applyMeshFile(file, { endpoints: etcd.endpoints });
      assert.ok(again.ok && !again.unchanged && again.revision > applied.revision, JSON.stringify(again));
      assert.equal(again.modulesWritten, 0, 'the module is already stored: not written again');
      assert.ok(await fromFile.reload());
      await waitUntil(() => fromEtcd.cache.snapshot?.version === fromFile.cache.snapshot?.version, 5000, 'the replica to serve the new mesh');
      assert.deepEqual(resourcesOf(fromEtcd), resourcesOf(fromFile));
      const { body } = await readyz(fromEtcd);
      assert.equal(body.degraded, false);
      assert.equal(sourceOf(body).revision, again.revision);
    } finally {
      await fromEtcd.close();
      await fromFile.close();
    }
  });

  test('a mesh naming a module etcd does not hold is refused and logged; the last good one stays served', async () => {
    const file = meshFile(TCP_MESH(21885));
    const applied = await applyMeshFile(file, { endpoints: etcd.endpoints });
    assert.ok(applied.ok);
    const { log, lines } = capturingLogger();
    const server = await serveFromEtcd(etcd.endpoints, log);
    try {
      const good = server.cache.snapshot?.version;
      assert.ok(good);
      const missing = 'ab'.repeat(32);
      // Written by hand (not through apply, which never does this): the mesh names a module that is not there.
      const record = encodeMeshRecord({
        yaml: MQTT_MESH(21886),
        source: file,
        filters: [{ name: 'mqtt', protocol: 'mqtt', sha256: missing, manifest: { name: 'mqtt', protocol: 'mqtt', entry: 'index.ts' } }],
      });
      etcd.etcdctl(['put', meshKey(DEFAULT_ETCD_PREFIX)], { input: record });
      await waitUntil(async () => ((await readyz(server)).body.config_errors as string[]).some((e) => e.includes(missing)), 5000, 'the refusal on /readyz');
      assert.equal(server.cache.snapshot?.version, good, 'the last good config is still served');
      assert.ok(lines.some((l) => l.level >= 50 && l.msg.includes(moduleKey(DEFAULT_ETCD_PREFIX, missing)) && l.msg.includes('refusing')), 'one error line names the module');
      // Fixing it (a good apply) is served again.
      const fixed = await applyMeshFile(file, { endpoints: etcd.endpoints });
      assert.ok(fixed.ok && !fixed.unchanged);
      await waitUntil(async () => ((await readyz(server)).body.config_errors as string[]).length === 0, 5000, 'the refusal to clear');
      assert.equal(server.cache.snapshot?.version, good);
    } finally {
      await server.close();
    }
  });
  test('started while etcd is down: not ready (saying why) until etcd answers, then serving', async () => {
    await etcd.stopAll();
    const { log, lines } = capturingLogger();
    const server = await serveFromEtcd(etcd.endpoints, log);
    try {
      const down = await readyz(server);
      assert.equal(down.status, 503);
      assert.equal(down.body.degraded, true);
      assert.match((down.body.config_errors as string[]).join('\n'), /cannot read \/protoplane\/mesh from etcd/);
      assert.equal(lines.filter((l) => l.msg.startsWith('etcd unreachable; no mesh read yet')).length, 1);
      await etcd.startAll();
      await waitUntil(async () => (await readyz(server)).status === 200, 10_000, 'the replica to read the mesh once etcd is up');
      assert.equal((await readyz(server)).body.degraded, false);
    } finally {
      await server.close();
    }
  });
});

describe('serve --etcd, three etcd members', () => {
  let etcd: EtcdCluster;
  before(async () => {
    etcd = await startEtcd({ members: 3 });
  });
  after(async () => {
    await etcd?.close();
  });

  test('member loss, whole-cluster outage (last good config served, /readyz degraded, apply fails), catch-up after', async () => {
    const file = meshFile(TCP_MESH(22001));
    const target = { endpoints: etcd.endpoints };
    assert.ok((await applyMeshFile(file, target)).ok);
    const { log, lines } = capturingLogger();
    const server = await serveFromEtcd(etcd.endpoints, log);
    const versionOf = async (port: number): Promise<string> => {
      fs.writeFileSync(file, TCP_MESH(port));
      return fileVersion(TCP_MESH(port), file);
    };
    try {
      // One member stops: the other two keep a quorum and the replica keeps following.
      await etcd.stopMember(0);
      const v2 = await versionOf(22002);
      assert.ok((await applyMeshFile(file, target)).ok);
      await waitUntil(() => server.cache.snapshot?.version === v2, 5000, 'the replica to follow with one member down');
      await etcd.startMember(0);

      // Every member stops: the replica keeps serving v2 and says it is degraded; apply fails loudly.
      const lossLogged = lines.length;
      await etcd.stopAll();
      await waitUntil(async () => (await readyz(server)).body.degraded === true, 5000, '/readyz to say degraded');
      const down = await readyz(server);
      assert.equal(down.status, 200, 'still ready: the last good config is served');
      assert.equal(down.body.snapshot, v2);
      assert.equal(sourceOf(down.body).connected, false);
      assert.ok(sourceOf(down.body).error, 'the reason is given');
      assert.match(await metricsOf(server), /^protoplane_etcd_connected 0$/m);
      const refused = await applyMeshFile(file, target);
      assert.equal(refused.ok, false);
      assert.equal(!refused.ok && refused.kind, 'error');

      // Back: two applies in a row; the replica ends on the last one.
      await etcd.startAll();
      await versionOf(22003);
      assert.ok((await applyMeshFile(file, target)).ok);
      const v4 = await versionOf(22004);
      const last = await applyMeshFile(file, target);
      assert.ok(last.ok);
      await waitUntil(() => server.cache.snapshot?.version === v4, 10_000, 'the replica to catch up');
      const up = await readyz(server);
      assert.equal(up.body.degraded, false);
      assert.equal(sourceOf(up.body).revision, last.revision);
      const metrics = await metricsOf(server);
      assert.match(metrics, /^protoplane_etcd_connected 1$/m);
      assert.match(metrics, new RegExp(`^protoplane_etcd_mesh_revision ${last.ok ? last.revision : -1}$`, 'm'));
      const outage = lines.slice(lossLogged);
      assert.equal(outage.filter((l) => l.msg.startsWith('etcd unreachable')).length, 1, 'one line on loss');
      assert.equal(outage.filter((l) => l.msg.startsWith('etcd reachable again')).length, 1, 'one line on recovery');
    } finally {
      await server.close();
    }
  });

  test('a replica whose only member is down misses nothing written meanwhile (etcdctl writes to the others)', async () => {
    const file = meshFile(TCP_MESH(22101));
    assert.ok((await applyMeshFile(file, { endpoints: etcd.endpoints })).ok);
    const server = await serveFromEtcd([etcd.endpoints[0]!]);
    const first = server.cache.snapshot?.version;
    try {
      await etcd.stopMember(0);
      await waitUntil(async () => (await readyz(server)).body.degraded === true, 5000, 'the replica to see its member gone');
      // Two writes straight to etcd through the other members: mesh records as apply would write them.
      const write = (port: number) =>
        etcd.etcdctl(['put', meshKey(DEFAULT_ETCD_PREFIX)], { input: encodeMeshRecord({ yaml: TCP_MESH(port), source: file, filters: [] }) });
      write(22102);
      write(22103);
      const want = fileVersion(TCP_MESH(22103), file);
      assert.notEqual(want, first);
      assert.equal(server.cache.snapshot?.version, first, 'nothing new while its member is down');
      await etcd.startMember(0);
      await waitUntil(() => server.cache.snapshot?.version === want, 10_000, 'the replica to catch up to the last write');
      assert.equal((await readyz(server)).body.degraded, false);
    } finally {
      await server.close();
    }
  });
});
