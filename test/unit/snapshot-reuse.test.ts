// A reload re-translates the whole mesh; resources that come out the same as
// in a recent build reuse that build's encoding (cache/snapshot.ts), and only
// what changed is encoded again. Reuse must never change a byte or a version.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildSnapshot, encodeEntry, Encodings, type Snapshot } from '../../xds-server/cache/index.ts';
import { parseMesh } from '../../xds-server/config/index.ts';
import { TYPE, type EnvoyMessage, type Resources } from '../../xds-server/model/resources.ts';
import { translate } from '../../xds-server/translate/index.ts';

function meshYaml(timeoutOfB: string): string {
  return [
    'listeners:',
    '  - { name: web, port: 10080, protocol: http, routes: [ { match: { prefix: / }, cluster: a } ] }',
    'clusters:',
    '  - { name: a, endpoints: [ 127.0.0.1:9001 ] }',
    `  - { name: b, endpoints: [ 127.0.0.1:9002 ], connect_timeout: ${timeoutOfB} }`,
    '',
  ].join('\n');
}

function resourcesOf(yaml: string): Resources {
  const parsed = parseMesh(yaml, 'mesh.yaml');
  assert.ok(parsed.ok, JSON.stringify(!parsed.ok && parsed.errors));
  return translate(parsed.mesh, 'ads');
}

const entry = (snapshot: Snapshot, type: (typeof TYPE)[keyof typeof TYPE], name: string) => snapshot.of(type).entries.get(name)!;

describe('snapshot encoding reuse', () => {
  it('a resource translated the same as in the last build reuses its entry; a changed one is encoded afresh, byte for byte', () => {
    const encodings = new Encodings();
    const build = (resources: Resources) => buildSnapshot(resources, Date.now(), encodings);
    const first = build(resourcesOf(meshYaml('2s')));
    const again = build(resourcesOf(meshYaml('2s')));
    const changed = build(resourcesOf(meshYaml('7s')));
    assert.equal(again.version, first.version);
    // Separate translations (new message objects), one encoding.
    assert.equal(entry(again, TYPE.cluster, 'a'), entry(first, TYPE.cluster, 'a'));
    assert.equal(entry(changed, TYPE.cluster, 'a'), entry(first, TYPE.cluster, 'a'));
    assert.equal(entry(changed, TYPE.endpoint, 'b'), entry(first, TYPE.endpoint, 'b'));
    const b = entry(changed, TYPE.cluster, 'b');
    assert.notEqual(b.version, entry(first, TYPE.cluster, 'b').version);
    const fresh = encodeEntry(TYPE.cluster, b.message);
    assert.deepEqual(b.anyBytes, fresh.anyBytes);
    assert.equal(b.version, fresh.version);
    // Back to the first content: the first build's entry again.
    assert.equal(entry(build(resourcesOf(meshYaml('2s'))), TYPE.cluster, 'b'), entry(first, TYPE.cluster, 'b'));
    // Builds without those Encodings (another server in the process) share nothing with them.
    assert.notEqual(entry(buildSnapshot(resourcesOf(meshYaml('2s'))), TYPE.cluster, 'b'), entry(first, TYPE.cluster, 'b'));
  });

  it('a message JSON would not carry exactly (here -0, which protobuf encodes apart from 0) is never reused', () => {
    const withZero = (zero: number): Resources => {
      const resources = resourcesOf(meshYaml('2s'));
      const cluster = resources.clusters.find((c) => c.name === 'a')!;
      const messages: EnvoyMessage[] = resources.clusters.map((c) =>
        c === cluster ? { ...c, common_lb_config: { healthy_panic_threshold: { value: zero } } } : c,
      );
      return { ...resources, clusters: messages };
    };
    const encodings = new Encodings();
    const build = (resources: Resources) => buildSnapshot(resources, Date.now(), encodings);
    const plus = entry(build(withZero(0)), TYPE.cluster, 'a');
    const minus = entry(build(withZero(-0)), TYPE.cluster, 'a');
    assert.notEqual(minus, plus);
    assert.deepEqual(minus.anyBytes, encodeEntry(TYPE.cluster, minus.message).anyBytes);
    const minusAgain = entry(build(withZero(-0)), TYPE.cluster, 'a');
    assert.notEqual(minusAgain, minus);
    assert.equal(minusAgain.version, minus.version);
  });
});
