// Inline module delivery: the ECDS resource carries the module's bytes, and
// it is encoded once per config version, shared by the snapshot of every xDS
// flavour (ADS, per-type SotW, per-type Delta), never per stream or flavour.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { snapshotsOf } from '../../xds-server/snapshots.ts';
import { createMeshParser } from '../../xds-server/config/index.ts';
import { TYPE, type FilterRefs } from '../../xds-server/translate/index.ts';

const mesh = (() => {
  // The contract filter's protocol, with no schema of its own.
  const result = createMeshParser({ protocols: { contract: {} } })(
    `listeners:
  - { name: lines, port: 10090, protocol: contract, routes: [ { cluster: a } ] }
  - { name: more, port: 10091, protocol: contract, routes: [ { cluster: a } ] }
clusters:
  - { name: a, endpoints: [ 127.0.0.1:9 ] }
`,
    'mesh.yaml',
  );
  assert.ok(result.ok);
  return result.mesh;
})();

// A stand-in module: the bytes only have to arrive intact (Envoy runs real ones in test/e2e/inline-hot-swap.test.ts).
const moduleBytes = new Uint8Array(64 * 1024).map((_, i) => (i * 31) & 0xff);
const refs = (bytes: Uint8Array): FilterRefs => new Map([['contract', { name: 'contract', code: { kind: 'inline', bytes } }]]);

describe('inline Wasm code in ECDS', () => {
  it('each listener\'s ECDS resource carries the module bytes', () => {
    const set = snapshotsOf(mesh, refs(moduleBytes));
    const ecds = set.get('ads').of(TYPE.extension);
    assert.equal(ecds.entries.size, 2);
    for (const entry of ecds.entries.values()) {
      const haystack = Buffer.from(entry.anyBytes);
      assert.ok(haystack.includes(Buffer.from(moduleBytes)), `${entry.name} carries the module`);
      assert.ok(entry.anyBytes.length > moduleBytes.length);
    }
  });

  it('is encoded once for every flavour of one config version', () => {
    const set = snapshotsOf(mesh, refs(moduleBytes));
    const [ads, sotw, delta] = (['ads', 'sotw', 'delta'] as const).map((f) => set.get(f).of(TYPE.extension));
    for (const [name, entry] of ads!.entries) {
      assert.equal(sotw!.entries.get(name), entry, `${name}: the same encoded entry (SotW per-type)`);
      assert.equal(delta!.entries.get(name), entry, `${name}: the same encoded entry (Delta per-type)`);
    }
  });

  it('a new build is a new ECDS version', () => {
    const before = snapshotsOf(mesh, refs(moduleBytes)).get('ads').of(TYPE.extension);
    const rebuilt = moduleBytes.slice();
    rebuilt[100] ^= 0xff;
    const after = snapshotsOf(mesh, refs(rebuilt)).get('ads').of(TYPE.extension);
    assert.notEqual(after.version, before.version);
    assert.notEqual(after.entries.get('protoplane.wasm.lines')!.version, before.entries.get('protoplane.wasm.lines')!.version);
  });
});
