// Filters cannot wedge the server (issue 19): the pre-flight that starts each
// protocol listener's filter with its configuration runs off the main thread
// with time and memory limits, so a filter whose onConfigure loops
// (filters/loop-test, {"mode": "loop"}) or allocates without end
// ({"mode": "explode"}) is refused with a clear error while xDS and admin
// keep answering; and a broken folder under filters/ that no listener uses
// is reported without blocking config changes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureFiltersBuilt } from '../../xds-server/catalog/index.ts';
import { privateCheckout, serveCheckout } from '../support/checkout.ts';
import { freePort, REPO_ROOT, waitUntil } from '../support/envoy.ts';
import { RawConnection, sotwRequest, ADS } from './raw-xds.ts';
import { TYPE } from '../../xds-server/translate/index.ts';

const mesh = (mode: string, port = 10000) =>
  `listeners:\n  - name: l\n    port: ${port}\n    protocol: loop-test\n    filter: { mode: ${mode} }\n    routes: [ { cluster: a } ]\nclusters:\n  - name: a\n    endpoints: [ 127.0.0.1:9 ]\n`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-filters-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function readyz(port: number): Promise<{ snapshot: string | null; config_errors: string[] }> {
  return (await (await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5000) })).json()) as { snapshot: string | null; config_errors: string[] };
}

describe('the filter pre-flight', () => {
  for (const [mode, expected] of [
    ['loop', /filter loop-test refused this listener's configuration: did not finish configuring within 2000 ms/],
    ['explode', /filter loop-test refused this listener's configuration: .*(trapped|memory|did not finish configuring)/],
  ] as const) {
    it(`refuses a filter whose onConfigure ${mode === 'loop' ? 'loops' : 'allocates without end'}, while admin and xDS keep answering`, async () => {
      const file = path.join(dir, `mesh-${mode}.yaml`);
      fs.writeFileSync(file, mesh('ok'));
      // The server runs in its own process: were the pre-flight on its main
      // thread, a looping filter would wedge it, and this test must then fail
      // on its deadlines rather than hang with it.
      const [xdsPort, adminPort] = [await freePort(), await freePort()];
      const server = serveCheckout(REPO_ROOT, ['--config', file, '--xds-port', String(xdsPort), '--admin-port', String(adminPort), '--host', '127.0.0.1', '--debounce', '20ms']);
      try {
        let good: string | null = null;
        await waitUntil(async () => (good = (await readyz(adminPort).catch(() => ({ snapshot: null }))).snapshot) !== null, 60_000, 'the good config loaded').catch((err: Error) => {
          throw new Error(`${err.message}\nserver output:\n${server.output()}`);
        });
        fs.writeFileSync(file, mesh(mode, 10001));
        // While the pre-flight runs, the admin server and xDS answer within a fraction of its time limit.
        let slowest = 0;
        const xds = new RawConnection(xdsPort);
        let errors: string[] = [];
        const deadline = Date.now() + 15_000;
        let n = 0;
        // Until the refusal: writeFileSync truncates before it writes, and on a loaded machine the server can
        // read the file in between (it then reports the empty file, and reloads when the write lands).
        while (!expected.test(errors.join('\n'))) {
          assert.ok(Date.now() < deadline, `the bad filter was never refused (config errors: ${errors.join('; ') || 'none'})`);
          const started = Date.now();
          errors = (await readyz(adminPort)).config_errors;
          const stream = xds.open(ADS);
          stream.write(sotwRequest({ typeUrl: TYPE.cluster, nodeId: `probe-${n++}` }));
          await stream.next(1500);
          stream.req.close();
          slowest = Math.max(slowest, Date.now() - started);
          await sleep(50);
        }
        xds.close();
        assert.ok(slowest < 1000, `admin + xDS took up to ${slowest} ms while the filter was being checked`);
        assert.equal((await readyz(adminPort)).snapshot, good, 'the last good config is still served');
      } finally {
        await server.stop();
      }
    });
  }
});

describe('a broken filter folder', () => {
  // In a private copy of the checkout: a broken folder in the shared filters/
  // would fail every other test process's build while it exists.
  it('that no listener uses is reported but does not block config changes', async () => {
    await ensureFiltersBuilt();
    const root = privateCheckout(dir);
    const broken = path.join(root, 'filters', 'zz-broken');
    fs.mkdirSync(broken);
    fs.writeFileSync(path.join(broken, 'filter.json'), '{ "name": "zz-broken", this is not json');
    const file = path.join(dir, 'mesh-broken.yaml');
    const tcp = (port: number) =>
      `listeners:\n  - name: t\n    port: ${port}\n    protocol: tcp\n    routes: [ { cluster: a } ]\nclusters:\n  - name: a\n    endpoints: [ 127.0.0.1:9 ]\n`;
    fs.writeFileSync(file, tcp(10000));
    const adminPort = await freePort();
    // at start the filters are built and loaded with the broken folder there
    const server = serveCheckout(root, ['--config', file, '--xds-port', String(await freePort()), '--admin-port', String(adminPort), '--debounce', '20ms', '--log-format', 'json']);
    try {
      let before: string | null = null;
      await waitUntil(async () => (before = (await readyz(adminPort).catch(() => ({ snapshot: null }))).snapshot) !== null, 60_000, 'the config loaded').catch((err: Error) => {
        throw new Error(`${err.message}\nserver output:\n${server.output()}`);
      });
      fs.writeFileSync(file, tcp(10001));
      await waitUntil(async () => (await readyz(adminPort)).snapshot !== before, 10_000, 'the config change applied').catch(async (err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify((await readyz(adminPort)).config_errors)}`);
      });
      const lines = server
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string });
      assert.ok(lines.some((l) => /filters\/zz-broken is broken and left out .*not valid JSON/.test(l.msg)), `the broken folder is reported:\n${server.output()}`);
    } finally {
      await server.stop();
    }
  });
});
