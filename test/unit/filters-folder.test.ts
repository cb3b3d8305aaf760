// A filters folder outside the repo (serve/validate --filters DIR): its
// manifests are listed, its filters built into build/NAME beside it, and only
// its filters bring protocols; a folder without the SDK is refused by name.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FilterCatalog, filterFolders, REPO_ROOT } from '../../xds-server/catalog/index.ts';
import { protoplane } from '../support/cli.ts';


/** A folder with a copy of the toy filter renamed "blinky", and the SDK linked beside it. */
function externalFolder(withSdk = true): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-ext-'));
  const sources = path.join(root, 'my-filters');
  fs.cpSync(path.join(REPO_ROOT, 'filters/toy'), path.join(sources, 'blinky'), { recursive: true });
  const manifest = path.join(sources, 'blinky/filter.json');
  const m = JSON.parse(fs.readFileSync(manifest, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(manifest, JSON.stringify({ ...m, name: 'blinky', protocol: 'blinky' }, null, 2));
  if (withSdk) fs.symlinkSync(path.join(REPO_ROOT, 'filters/sdk'), path.join(sources, 'sdk'));
  return sources;
}


describe('filters folder outside the repo', () => {
  it('is built beside itself and only its filters bring protocols', async () => {
    const sources = externalFolder();
    const folders = filterFolders(sources);
    assert.equal(folders.builds, path.join(path.dirname(sources), 'build', 'my-filters'));
    const catalog = await FilterCatalog.load(folders);
    assert.deepEqual([...catalog.entries.keys()], ['blinky']);
    assert.equal(catalog.broken.size, 0);
    assert.ok(fs.statSync(path.join(folders.builds, 'blinky.wasm')).size > 10_000);

    const mesh = path.join(path.dirname(sources), 'mesh.yaml');
    fs.writeFileSync(mesh, 'clusters:\n  - { name: up, endpoints: [ 127.0.0.1:9 ] }\nlisteners:\n  - { name: b, port: 10999, protocol: blinky, routes: [ { cluster: up } ] }\n');
    const ok = await protoplane('validate', mesh, '--filters', sources);
    assert.equal(ok.code, 0, ok.stderr);
    // The repo's folder has no filter serving "blinky".
    const without = await protoplane('validate', mesh);
    assert.equal(without.code, 1);
    assert.match(without.stderr, /blinky/);
    fs.rmSync(path.dirname(sources), { recursive: true });
  });

  it('without the SDK beside it, the build says how to fix it', async () => {
    const sources = externalFolder(false);
    const r = await protoplane('validate', path.join(REPO_ROOT, 'envoy-configs/mesh.example.yaml'), '--filters', sources);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /sdk not found: the filters import the SDK as \.\.\/sdk \(link it: ln -s /);
    fs.rmSync(path.dirname(sources), { recursive: true });
  });

  it('rebuilds a filter only when a file of its folder is newer than its build, and leaves a bad manifest to the build script', async () => {
    const sources = externalFolder();
    const folders = filterFolders(sources);
    const wasm = path.join(folders.builds, 'blinky.wasm');
    await FilterCatalog.load(folders);
    const built = fs.statSync(wasm, { bigint: true }).mtimeNs;
    // Nothing newer: the build is kept (no compile, the same file).
    await FilterCatalog.load(folders);
    assert.equal(fs.statSync(wasm, { bigint: true }).mtimeNs, built);
    // An edit (a source newer than the build, in a subfolder too) rebuilds it.
    const later = new Date(Date.now() + 5_000);
    fs.mkdirSync(path.join(sources, 'blinky/lib'), { recursive: true });
    fs.writeFileSync(path.join(sources, 'blinky/lib/note.txt'), 'edited');
    fs.utimesSync(path.join(sources, 'blinky/lib/note.txt'), later, later);
    await FilterCatalog.load(folders);
    assert.ok(fs.statSync(wasm, { bigint: true }).mtimeNs > built, 'an edited filter is rebuilt');
    // A broken manifest is reported by the build script, and the good filter still loads.
    fs.mkdirSync(path.join(sources, 'bad'));
    fs.writeFileSync(path.join(sources, 'bad/filter.json'), '{ "name": "bad"');
    const withBad = await FilterCatalog.load(folders);
    assert.deepEqual([...withBad.entries.keys()], ['blinky']);
    assert.match(withBad.broken.get('bad') ?? '', /not valid JSON/);
    fs.rmSync(path.dirname(sources), { recursive: true });
  });
});
