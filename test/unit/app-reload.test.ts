// The server reads a changed mesh file ahead, while the debounce waits for
// quiet. A file written in pieces must still be served as its last whole
// version: a read that saw half of it is never installed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../support/envoy.ts';
import { serveForTest } from '../support/mesh-env.ts';
import { snapshotsOf } from '../../xds-server/snapshots.ts';
import { parseMesh } from '../../xds-server/config/index.ts';

const HEAD = 'listeners:\n  - name: edge\n    port: 10000\n    protocol: tcp\n    routes: [ { cluster: a } ]\nclusters:\n  - name: a\n    endpoints: [ 127.0.0.1:9001 ]\n';
// Comments make reading the half file slow enough that the second piece lands while it runs.
const PADDING = '# padding\n'.repeat(50_000);
const WRITER = `
const fs = require('node:fs');
const [file, headFile, tailFile] = process.argv.slice(1);
const head = fs.readFileSync(headFile);
const tail = fs.readFileSync(tailFile);
const fd = fs.openSync(file, 'w');
fs.writeSync(fd, head);
setTimeout(() => { fs.writeSync(fd, tail); fs.closeSync(fd); }, 20);
`;
const TAIL = '  - name: b\n    endpoints: [ 127.0.0.1:9002 ]\n';

function versionOf(text: string): string {
  const parsed = parseMesh(text, 'mesh.yaml');
  assert.ok(parsed.ok);
  return snapshotsOf(parsed.mesh).version;
}

describe('reload of a changed mesh file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-reload-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('serves the whole file when it was written in two pieces within the quiet period', async () => {
    const configPath = path.join(dir, 'mesh.yaml');
    fs.writeFileSync(configPath, HEAD.replace('9001', '9000'));
    const app = await serveForTest(configPath, { watchFilters: false, debounce: { quietMs: 1000, maxMs: 10_000 } });
    try {
      const before = app.cache.snapshot?.version;
      assert.notEqual(versionOf(HEAD + PADDING), versionOf(HEAD + PADDING + TAIL), 'the half file is a valid, different config');

      // Another process writes, as an editor would: this process's event loop
      // is busy reading the half file while the second piece lands.
      fs.writeFileSync(path.join(dir, 'head'), HEAD + PADDING);
      fs.writeFileSync(path.join(dir, 'tail'), TAIL);
      const writer = spawn(process.execPath, ['-e', WRITER, configPath, path.join(dir, 'head'), path.join(dir, 'tail')], { stdio: 'inherit' });
      const [code] = (await once(writer, 'exit')) as [number];
      assert.equal(code, 0);

      const deadline = Date.now() + 10_000;
      while (app.cache.snapshot?.version === before && Date.now() < deadline) await sleep(10);
      await sleep(400); // any later (wrong) install would land by now
      assert.equal(app.cache.snapshot?.version, versionOf(HEAD + PADDING + TAIL));
      const reloads = await app.metrics.registry.getSingleMetricAsString('protoplane_config_reloads_total');
      assert.match(reloads, /result="applied"\} 2\b/, 'start-up plus one install for the change');
      assert.doesNotMatch(reloads, /result="rejected"\} [1-9]/);
    } finally {
      await app.close();
    }
  });

  it('a server whose admin port is taken fails to start and lets go of the xDS port it had bound', async () => {
    const configPath = path.join(dir, 'taken.yaml');
    fs.writeFileSync(configPath, HEAD);
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const adminPort = (holder.address() as net.AddressInfo).port;
    const xdsPort = await freePort();
    try {
      await assert.rejects(serveForTest(configPath, { watchFilters: false, xdsPort, adminPort }), /EADDRINUSE/);
      // Nothing of it is left listening: the xDS port binds again at once.
      const probe = net.createServer();
      await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(xdsPort, '127.0.0.1', resolve));
      await new Promise((resolve) => probe.close(resolve));
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});
