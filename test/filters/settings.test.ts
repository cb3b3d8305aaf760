// Settings read once, checked twice: for every filter folder, the manifest's
// documented examples ("examples", each a listener's `filter:` settings) and
// its invalid ones ("invalid_examples") go through both the control plane's
// check (the mesh loader with the manifest's schema plugged in) and the real
// module's proxy_on_configure in the in-process host, with the configuration
// Envoy would get. The two must agree: examples accepted by both, invalid
// examples rejected by both. A filter that declares no examples is checked
// with {} alone. Filters of a built-in protocol (tcp: test-only modules) have
// no schema in the mesh and are listed as such, not checked.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { createMeshParser, type ProtocolSchema } from '../../xds-server/config/index.ts';
import { isBuiltinProtocol } from '../../xds-server/model/types.ts';
import { filterConfiguration } from '../../xds-server/translate/index.ts';
import { ensureFiltersBuilt, listFilters, loadFilter, type FilterManifest } from '../../xds-server/catalog/index.ts';

interface Examples {
  valid: unknown[];
  invalid: unknown[];
}

function examplesOf(manifest: FilterManifest): Examples {
  const raw = JSON.parse(readFileSync(path.join(manifest.dir, 'filter.json'), 'utf8')) as Record<string, unknown>;
  const list = (key: string): unknown[] | undefined => {
    const v = raw[key];
    if (v === undefined) return undefined;
    assert.ok(Array.isArray(v), `${manifest.name}: filter.json "${key}" must be an array of settings objects`);
    return v;
  };
  return { valid: list('examples') ?? [{}], invalid: list('invalid_examples') ?? [] };
}

/** Every string value under a key named "cluster" in the settings. */
function clusterNames(v: unknown): string[] {
  if (Array.isArray(v)) return v.flatMap(clusterNames);
  if (typeof v !== 'object' || v === null) return [];
  return Object.entries(v).flatMap(([k, x]) => (k === 'cluster' && typeof x === 'string' ? [x] : clusterNames(x)));
}

/** The control plane's verdict: the configuration Envoy would get, or the loader's errors. */
function controlPlane(manifest: FilterManifest, settings: unknown): { ok: true; configuration: Record<string, unknown> } | { ok: false; errors: string } {
  const schema: ProtocolSchema = {
    ...(manifest.match ? { match: manifest.match } : {}),
    ...(manifest.settings ? { filter: manifest.settings } : {}),
    ...(manifest.itemListeners ? { itemListeners: manifest.itemListeners } : {}),
  };
  // settings may name clusters (e.g. one per broker): the mesh defines every one they name
  const clusters = new Set(['c', ...clusterNames(settings)]);
  const mesh = {
    listeners: [{ name: 'l', port: 10000, protocol: manifest.protocol, filter: settings, routes: [{ cluster: 'c' }] }],
    clusters: [...clusters].map((name) => ({ name, endpoints: ['127.0.0.1:1'] })),
  };
  // JSON is YAML: the loader reads it with line and column like any mesh file
  const result = createMeshParser({ protocols: { [manifest.protocol]: schema } })(JSON.stringify(mesh, null, 1), 'example.yaml');
  if (!result.ok) return { ok: false, errors: result.errors.map((e) => `${e.path}: ${e.message}`).join('; ') };
  const listener = result.mesh.listeners[0];
  assert.ok(listener, 'the mesh has its listener');
  return { ok: true, configuration: filterConfiguration(listener) };
}

/** The module's verdict on a configuration: undefined when accepted, else why not. */
async function moduleVerdict(manifest: FilterManifest, configuration: Record<string, unknown>): Promise<string | undefined> {
  const module = await loadFilter(manifest.name);
  try {
    const plugin = await module.instantiate({ name: manifest.name, configuration, record: false });
    plugin.close();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

const manifests = listFilters();

describe('filter settings: the manifest schema and the module agree', () => {
  before(() => ensureFiltersBuilt());

  it('lists test-only filters (built-in protocol, no mesh schema) and every other filter is checked', () => {
    const testOnly = manifests.filter((m) => isBuiltinProtocol(m.protocol)).map((m) => m.name);
    for (const m of manifests.filter((x) => isBuiltinProtocol(x.protocol))) assert.equal(m.settings, undefined, `${m.name}: a tcp filter's settings schema is never used`);
    assert.ok(manifests.length > testOnly.length, `some filter has a mesh schema (test-only: ${testOnly.join(', ')})`);
  });

  for (const manifest of manifests.filter((m) => !isBuiltinProtocol(m.protocol))) {
    const { valid, invalid } = examplesOf(manifest);
    it(`${manifest.name}: ${valid.length} documented example(s) are accepted by both`, async () => {
      for (const settings of valid) {
        const cp = controlPlane(manifest, settings);
        assert.ok(cp.ok, `${manifest.name}: schema rejects documented example ${JSON.stringify(settings)}: ${cp.ok ? '' : cp.errors}`);
        const why = await moduleVerdict(manifest, cp.configuration);
        assert.equal(why, undefined, `${manifest.name}: module rejects documented example ${JSON.stringify(settings)}`);
      }
    });
    if (invalid.length === 0) continue;
    it(`${manifest.name}: ${invalid.length} invalid example(s) are rejected by both`, async () => {
      for (const settings of invalid) {
        const cp = controlPlane(manifest, settings);
        assert.equal(cp.ok, false, `${manifest.name}: schema accepts invalid example ${JSON.stringify(settings)}`);
        assert.doesNotMatch(cp.ok ? '' : cp.errors, /internal error/, `${manifest.name}: the schema itself is broken`);
        // the module gets what Envoy would have got had the schema let it through
        const configuration = { ...(settings as Record<string, unknown>), routes: [{ cluster: 'c' }] };
        const why = await moduleVerdict(manifest, configuration);
        assert.notEqual(why, undefined, `${manifest.name}: module accepts invalid example ${JSON.stringify(settings)} (schema said: ${cp.ok ? '' : cp.errors})`);
      }
    });
  }
});
