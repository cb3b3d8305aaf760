// The default module delivery, inline bytes in ECDS, hot-swaps a new build in
// stock Envoy: `protoplane serve` with no --wasm-code, an Envoy bootstrap with
// no address to fetch modules from, a client holding a connection open while
// the contract filter is edited and rebuilt. New connections run the new
// build; the held one finishes on the old; the listener is never replaced.
//
// The edit happens in a private copy of the checkout (server sources, the SDK
// and the contract filter only, its built module; node_modules linked), so no
// other test process ever sees the edited filter or its build, and the copy's
// server builds nothing but the contract filter.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bootstrapConfig, bootstrapYaml } from '../../xds-server/bootstrap.ts';
import { XDS_CLUSTER } from '../../xds-server/translate/index.ts';
import { freePort, startEnvoy, waitUntil, type EnvoyHandle } from '../support/envoy.ts';
import { startTcpEcho, type TcpEcho } from '../support/upstreams.ts';
import { privateCheckout, servedFilters, serveCheckoutUntilFilter, type ServingCheckout } from '../support/checkout.ts';

/** Only what serving the contract filter needs. */
const CONTRACT_ONLY = ['bin', 'xds-server', 'scripts', 'proto', 'asconfig.json', 'package.json', 'tsconfig.json', 'filters/sdk', 'filters/contract', 'build/filters/contract.wasm'];

/** Opens a connection, sends `line`, and collects what comes back. */
function connect(port: number, line: string): Promise<{ socket: net.Socket; received: () => string }> {
  return new Promise((resolve, reject) => {
    let data = '';
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(line);
      resolve({ socket, received: () => data });
    });
    socket.on('data', (chunk) => (data += chunk.toString()));
    socket.on('error', reject);
  });
}

describe('inline Wasm code (the default) hot-swaps a new build in Envoy', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-inline-'));
  let root = '';
  let a: TcpEcho;
  let b: TcpEcho;
  let server: ServingCheckout | undefined;
  let envoy: EnvoyHandle | undefined;

  before(async () => {
    root = privateCheckout(dir, CONTRACT_ONLY);
    a = await startTcpEcho('a');
    b = await startTcpEcho('b');
  });

  after(async () => {
    await envoy?.stop();
    await server?.stop();
    await a?.close();
    await b?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('new connections get the new build, the open one finishes on the old, no drain', async () => {
    const port = await freePort();
    const configPath = path.join(dir, 'mesh.yaml');
    fs.writeFileSync(
      configPath,
      `listeners:
  - name: lines
    port: ${port}
    protocol: contract
    filter: { route_prefix: "A:", route_cluster: a }
    routes:
      - cluster: b
clusters:
  - { name: a, endpoints: [ 127.0.0.1:${a.port} ] }
  - { name: b, endpoints: [ 127.0.0.1:${b.port} ] }
`,
    );
    // Default settings: no --wasm-code.
    server = await serveCheckoutUntilFilter(root, configPath, 'contract');
    const { xdsPort, adminPort } = server;
    const served = () => servedFilters(adminPort);

    // No address for Envoy to fetch modules from.
    const bootstrapOptions = { xds: `127.0.0.1:${xdsPort}`, nodeId: 'inline-envoy', adminPort: await freePort() };
    const clusters = (bootstrapConfig(bootstrapOptions).static_resources as { clusters: Array<{ name: string }> }).clusters;
    assert.deepEqual(clusters.map((c) => c.name), [XDS_CLUSTER], 'only the xDS cluster');
    envoy = await startEnvoy({ bootstrapYaml: bootstrapYaml(bootstrapOptions), adminPort: bootstrapOptions.adminPort });
    await envoy.waitForListener('lines', 20_000);

    // The ECDS resource carries the module itself.
    const dump = (await (await fetch(`http://127.0.0.1:${adminPort}/debug/config_dump?node=inline-envoy`)).json()) as {
      streams: Array<{ types: Record<string, { resources: Array<Record<string, unknown>> }> }>;
    };
    const ecds = JSON.stringify(dump.streams.map((s) => s.types.TypedExtensionConfig?.resources ?? []));
    assert.match(ecds, /"inline_bytes"/);
    assert.doesNotMatch(ecds, /"remote"/);

    const held = await connect(port, 'A: before MARK\n');
    await waitUntil(() => held.received().length > 0, 5000, 'the held connection answered');
    assert.equal(held.received(), 'a:A: before mark\n');
    const modified = await envoy.stat('listener_manager.listener_modified');
    const shaBefore = (await served()).find((f) => f.name === 'contract')!.sha256;

    // The new build rewrites MARK to "mork" instead of "mark" (same length).
    const policy = path.join(root, 'filters/contract/policy.ts');
    const source = fs.readFileSync(policy, 'utf8');
    const edited = source.replace('const MARK_LOWER: u32 = 0x6b72616d;', 'const MARK_LOWER: u32 = 0x6b726f6d;');
    assert.notEqual(edited, source, 'the contract filter still has the constant this test edits');
    fs.writeFileSync(policy, edited);
    await waitUntil(async () => (await served()).find((f) => f.name === 'contract')?.sha256 !== shaBefore, 90_000, 'the edited filter rebuilt').catch((err: Error) => {
      throw new Error(`${err.message}\nserver output:\n${server!.output()}`);
    });

    await waitUntil(
      async () => {
        const probe = await connect(port, 'A: probe MARK\n');
        await waitUntil(() => probe.received().length > 0, 5000, 'probe answered').catch(() => undefined);
        probe.socket.destroy();
        return probe.received() === 'a:A: probe mork\n';
      },
      20_000,
      'new connections run the new build',
    );
    // The connection opened before the rebuild keeps the old build to its end.
    held.socket.write('A: after MARK\n');
    await waitUntil(() => held.received().includes('after'), 5000, 'the held connection still served');
    // (The echo upstream labels only its first reply.) "mark", not "mork": the old build.
    assert.equal(held.received(), 'a:A: before mark\nA: after mark\n');
    held.socket.end();
    assert.equal(await envoy.stat('listener_manager.listener_modified'), modified, 'the listener was not replaced');
    assert.equal((await envoy.stat('listener_manager.total_listeners_draining')) ?? 0, 0);
  });
});
