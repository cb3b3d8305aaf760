// apply stores the mesh as it parsed it beside the YAML (etcd/parsed.ts); a
// replica whose parser has the same fingerprint serves that instead of
// parsing again, and one whose fingerprint differs parses the YAML. Shown
// with a real etcd: a record written by hand whose parsed form differs from
// its YAML tells which of the two a replica served.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { serve, type Protoplane } from '../../xds-server/app.ts';
import { parseMesh, type LoadResult, type MeshParser } from '../../xds-server/config/index.ts';
import { applyMeshFile, getMesh } from '../../xds-server/etcd/apply.ts';
import { parsedForRecord, parserFingerprint, withStoredParse } from '../../xds-server/etcd/parsed.ts';
import { DEFAULT_ETCD_PREFIX, encodeMeshRecord, meshKey, type MeshRecord } from '../../xds-server/etcd/store.ts';
import { FilterCatalog } from '../../xds-server/catalog/index.ts';
import { silentLogger } from '../../xds-server/log.ts';
import { snapshotsOf } from '../../xds-server/snapshots.ts';
import { startEtcd, type EtcdCluster } from '../support/etcd.ts';
import { waitUntil } from '../support/envoy.ts';

const YAML = (port: number) => `listeners:
  - name: raw
    port: 21990
    protocol: tcp
    routes: [ { cluster: echo } ]
clusters:
  - name: echo
    endpoints: [ 127.0.0.1:${port} ]
`;

function parsed(yaml: string, file: string) {
  const result = parseMesh(yaml, file);
  assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
  return result;
}

/** parseMesh, counting its calls. */
function countingParser(): { parse: MeshParser; calls: () => number } {
  let calls = 0;
  return {
    parse: (text, file): LoadResult => {
      calls += 1;
      return parseMesh(text, file);
    },
    calls: () => calls,
  };
}

describe('the parsed mesh stored by apply (pure)', () => {
  const file = '/etc/protoplane/mesh.yaml';
  const record = (yaml: string, parsedFrom: string, parser?: string): MeshRecord => {
    const stored = parsedForRecord(parsed(parsedFrom, file).mesh, []);
    assert.ok(stored);
    return { yaml, source: file, filters: [], parsed: { ...stored, ...(parser ? { parser } : {}) } };
  };

  test('with this parser\'s fingerprint the stored mesh is used, and the YAML is parsed only to locate a later error', () => {
    const { parse, calls } = countingParser();
    const rec = record(YAML(7), YAML(7));
    const result = withStoredParse(rec, parse)(rec.yaml, rec.source);
    assert.ok(result.ok);
    assert.equal(calls(), 0, 'no parse');
    assert.equal(snapshotsOf(result.mesh).version, snapshotsOf(parsed(YAML(7), file).mesh).version, 'the same snapshot as from the YAML');
    const error = result.error(['clusters', 0, 'endpoints'], 'refused');
    assert.deepEqual({ line: error.line, col: error.col, path: error.path, file: error.file }, { line: 8, col: 16, path: 'clusters[0].endpoints', file });
    assert.equal(calls(), 1);
  });

  test('another fingerprint (other code, filters or YAML limits), or other text, is parsed', () => {
    const { parse, calls } = countingParser();
    const other = record(YAML(7), YAML(8), 'f'.repeat(32));
    const fromYaml = withStoredParse(other, parse)(other.yaml, other.source);
    assert.ok(fromYaml.ok && fromYaml.mesh.clusters[0]!.endpoints[0]!.port === 7, 'the YAML, not the stored form');
    const limits = record(YAML(7), YAML(8));
    const stricter = withStoredParse(limits, parse, { maxAliases: 1 })(limits.yaml, limits.source);
    assert.ok(stricter.ok && stricter.mesh.clusters[0]!.endpoints[0]!.port === 7, 'other YAML limits: parsed');
    assert.ok(withStoredParse(limits, parse)(YAML(9), limits.source).ok);
    assert.equal(calls(), 3);
    assert.notEqual(parserFingerprint([], { maxBytes: 1, maxAliases: 1, maxExpandedNodes: 1 }), parserFingerprint([]));
  });

  test('a mesh JSON would not carry exactly is not stored', () => {
    const mesh = parsed(YAML(7), file).mesh;
    assert.equal(parsedForRecord({ ...mesh, clusters: [{ ...mesh.clusters[0]!, name: undefined as unknown as string }] }, []), undefined);
  });
});

describe('replicas and the stored parse (real etcd)', () => {
  let etcd: EtcdCluster;
  let dir: string;
  before(async () => {
    etcd = await startEtcd();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-stored-parse-'));
  });
  after(async () => {
    await etcd?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('apply stores the parsed mesh; a replica serves the stored form when the fingerprint is its own, else the YAML', async () => {
    const file = path.join(dir, 'mesh.yaml');
    fs.writeFileSync(file, YAML(7));
    const applied = await applyMeshFile(file, { endpoints: etcd.endpoints }, { catalog: FilterCatalog.EMPTY });
    assert.ok(applied.ok, JSON.stringify(applied));
    const got = await getMesh({ endpoints: etcd.endpoints });
    assert.ok(got.ok && got.record.parsed, 'the record holds the parsed mesh');
    assert.equal(got.record.parsed.parser, parserFingerprint([]));

    const server: Protoplane = await serve({ etcd: { endpoints: etcd.endpoints, probeMs: 300 }, xdsPort: 0, adminPort: 0, host: '127.0.0.1', log: silentLogger(), processMetrics: false });
    try {
      const versionOf = (port: number) => snapshotsOf(parsed(YAML(port), file).mesh).version;
      assert.equal(server.cache.snapshot?.version, versionOf(7));
      // By hand: YAML says port 8, the stored parse says port 9. Which one is served shows who parsed.
      const put = (parser: string) => {
        const stored = parsedForRecord(parsed(YAML(9), file).mesh, [])!;
        etcd.etcdctl(['put', meshKey(DEFAULT_ETCD_PREFIX)], { input: encodeMeshRecord({ yaml: YAML(8), source: file, filters: [], parsed: { ...stored, parser } }) });
      };
      put(parserFingerprint([])!);
      await waitUntil(() => server.cache.snapshot?.version === versionOf(9), 5000, 'the replica to serve the stored parse');
      put('0'.repeat(32));
      await waitUntil(() => server.cache.snapshot?.version === versionOf(8), 5000, 'the replica to parse the YAML');
    } finally {
      await server.close();
    }
  });
});
