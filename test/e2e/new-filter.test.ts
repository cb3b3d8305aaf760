// Drop-in: `protoplane new-filter NAME` scaffolds a filter that builds, passes
// its own starter test, and — with no change to server code — is discovered,
// served and run by stock Envoy for a `protocol: NAME` listener.
//
// The whole test runs in a private copy of the checkout (filters/, scripts/,
// the server sources, built modules; node_modules linked): creating, editing
// and deleting a filter in the shared filters/ folder raced the other test
// processes' builds, which list filters/*/filter.json (a fresh-clone CI run
// failed 54 tests that way). Here no other process can see the new filter.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { bootstrapYaml } from '../../xds-server/bootstrap.ts';
import { ensureFiltersBuilt } from '../../xds-server/catalog/index.ts';
import { freePort, startEnvoy, waitUntil, type EnvoyHandle } from '../support/envoy.ts';
import { startTcpEcho, type TcpEcho } from '../support/upstreams.ts';
import { privateCheckout, servedFilters, serveCheckoutUntilFilter, type ServingCheckout } from '../support/checkout.ts';

const exec = promisify(execFile);


describe('protoplane new-filter', () => {
  const name = `demo${process.pid}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-newfilter-'));
  let root = '';
  let greeters: TcpEcho;
  let others: TcpEcho;
  let server: ServingCheckout | undefined;
  let envoy: EnvoyHandle | undefined;

  before(async () => {
    await ensureFiltersBuilt();
    root = privateCheckout(dir);
    greeters = await startTcpEcho('greeters');
    others = await startTcpEcho('others');
  });

  after(async () => {
    await envoy?.stop();
    await server?.stop();
    await greeters?.close();
    await others?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('scaffolds a filter that builds and passes its own starter test', async () => {
    const { stdout } = await exec(path.join(root, 'bin/protoplane'), ['new-filter', name], { cwd: root });
    assert.match(stdout, new RegExp(`filters/${name}/filter.json`));
    // Run it as a user would (outside this test runner's own reporting channel).
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const result = await exec(process.execPath, ['--import', 'tsx', '--test', path.join('test', 'filters', `${name}.test.ts`)], { cwd: root, env });
    assert.match(result.stdout, /# pass 2/);
    assert.match(result.stdout, /# fail 0/);
  });

  it('is discovered and served with no server change: Envoy routes by it', async () => {
    const port = await freePort();
    const configPath = path.join(dir, 'mesh.yaml');
    fs.writeFileSync(
      configPath,
      `listeners:
  - name: lines
    port: ${port}
    protocol: ${name}
    filter: { max_line: 100 }
    routes:
      - match: { prefix: hello }
        cluster: greeters
      - cluster: others
clusters:
  - { name: greeters, endpoints: [ 127.0.0.1:${greeters.port} ] }
  - { name: others, endpoints: [ 127.0.0.1:${others.port} ] }
`,
    );
    // Watching filters/ too: an edited filter is rebuilt and pushed (next test).
    // Local delivery: each build is a new content-named file, so a new build is a
    // new ECDS config. (Remote delivery of a second build did not complete in
    // Envoy 1.40: ECDS update_success, but the module fetch never finished.)
    server = await serveCheckoutUntilFilter(root, configPath, name, ['--wasm-code', 'local']);
    const { xdsPort, adminPort } = server;
    const envoyAdmin = await freePort();
    envoy = await startEnvoy({
      bootstrapYaml: bootstrapYaml({ xds: `127.0.0.1:${xdsPort}`, nodeId: 'newfilter', adminPort: envoyAdmin, protoplaneAdmin: `127.0.0.1:${adminPort}` }),
      adminPort: envoyAdmin,
    });
    await envoy.waitForListener('lines', 20_000);
    for (const [line, expected] of [['hello world\n', 'greeters:hello world\n'], ['bye\n', 'others:bye\n']] as const) {
      const reply = await new Promise<string>((resolve, reject) => {
        let data = '';
        const socket = net.connect(port, '127.0.0.1', () => socket.write(line));
        socket.on('data', (chunk) => {
          data += chunk.toString();
          if (data.length >= expected.length) {
            socket.destroy();
            resolve(data);
          }
        });
        socket.on('error', reject);
        setTimeout(() => reject(new Error(`no reply to ${line.trim()}`)), 5000).unref();
      });
      assert.equal(reply, expected);
    }
    await envoy.waitForStat(`wasmcustom.${name}.routed`, (v) => v === 2);
  });

  it('hot-swaps a new build over ECDS: an edited filter reaches new connections, the open one finishes', async () => {
    const lines = (await envoy!.listeners()).get('lines')!;
    const modified = await envoy!.stat('listener_manager.listener_modified');
    const shaBefore = (await servedFilters(server!.adminPort)).find((f) => f.name === name)!.sha256;
    const held = await new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect(lines, '127.0.0.1', () => resolve(socket));
      socket.on('error', reject);
    });
    let heldReply = '';
    held.on('data', (chunk) => (heldReply += chunk.toString()));
    held.write('hello before\n');
    await waitUntil(() => heldReply.includes('greeters:hello before'), 5000, 'held connection routed');

    // The new build sends short first lines to the first route too.
    const policy = path.join(root, 'filters', name, 'policy.ts');
    const source = fs.readFileSync(policy, 'utf8');
    const edited = source.replace('if (prefix == null || startsWithBytes(line, prefix))', 'if (prefix == null || startsWithBytes(line, prefix) || line.length < 4)');
    assert.notEqual(edited, source);
    fs.writeFileSync(policy, edited);
    await waitUntil(
      async () => (await servedFilters(server!.adminPort)).find((f) => f.name === name)?.sha256 !== shaBefore,
      60_000,
      'the edited filter rebuilt and served',
    );
    await waitUntil(
      async () => {
        const reply = await new Promise<string>((resolve) => {
          let data = '';
          const socket = net.connect(lines, '127.0.0.1', () => socket.write('bye\n'));
          socket.on('data', (chunk) => {
            data += chunk.toString();
            socket.destroy();
            resolve(data);
          });
          socket.on('error', () => resolve(''));
          setTimeout(() => resolve(data), 2000).unref();
        });
        return reply.startsWith('greeters:');
      },
      30_000,
      'new connections run the new build',
    );
    held.write('hello after\n');
    await waitUntil(() => heldReply.includes('hello after'), 5000, 'the old connection still served');
    held.destroy();
    assert.equal(await envoy!.stat('listener_manager.listener_modified'), modified, 'the listener was not replaced');
  });

  it('a config its schema refuses names file:line:col', async () => {
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, `listeners:\n  - name: lines\n    port: 10999\n    protocol: ${name}\n    filter: { max_line: 0 }\n    routes: [ { cluster: x } ]\nclusters: [ { name: x, endpoints: [] } ]\n`);
    const result = await exec(path.join(root, 'bin/protoplane'), ['validate', bad], { cwd: root }).catch((e: { stderr: string; code: number }) => e);
    assert.equal((result as { code: number }).code, 1);
    assert.match((result as { stderr: string }).stderr, /bad\.yaml:5:\d+: .*(at listeners\[0\]\.filter\.max_line)/);
  });
});
