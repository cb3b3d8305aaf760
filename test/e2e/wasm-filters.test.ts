// Wasm filters from the mesh config: a `protocol: contract` listener gets the
// contract filter through ECDS (its module inline, the default; the admin
// server also serves the bytes with their sha256), settings changes hot-swap without draining
// the listener, and a config the filter refuses never reaches Envoy.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Protoplane } from '../../xds-server/app.ts';
import { freePort, waitUntil, type EnvoyHandle } from '../support/envoy.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';
import { httpGet, startTcpEcho, type TcpEcho } from '../support/upstreams.ts';

function meshYaml(port: number, a: number, b: number, settings: string): string {
  return `listeners:
  - name: lines
    port: ${port}
    protocol: contract
    filter: ${settings}
    routes:
      - cluster: b
clusters:
  - name: a
    endpoints: [ 127.0.0.1:${a} ]
  - name: b
    endpoints: [ 127.0.0.1:${b} ]
`;
}

/** A client connection that collects what comes back. */
function open(port: number): Promise<{ socket: net.Socket; received: () => string }> {
  return new Promise((resolve, reject) => {
    let data = '';
    const socket = net.connect(port, '127.0.0.1', () => resolve({ socket, received: () => data }));
    socket.on('data', (chunk) => (data += chunk.toString()));
    socket.on('error', reject);
  });
}

describe('Wasm filters configured from the mesh, in stock Envoy', () => {
  let a: TcpEcho;
  let b: TcpEcho;
  let port = 0;
  let env: MeshEnv;
  let server: Protoplane;
  let envoy: EnvoyHandle;
  const write = (text: string) => env.write(text);
  const settingsA = '{ route_prefix: "A:", route_cluster: a }';

  before(async () => {
    a = await startTcpEcho('a');
    b = await startTcpEcho('b');
    port = await freePort();
    env = await startMeshEnv({ yaml: meshYaml(port, a.port, b.port, settingsA), nodeId: 'wasm-envoy', listeners: ['lines'] });
    ({ server, envoy } = env);
  });

  after(async () => {
    await env?.close();
    await a?.close();
    await b?.close();
  });

  it('serves the module with its sha256 and Envoy runs it: routing, rewrite, counters', async () => {
    const entry = server.filters().entries.get('contract')!;
    const res = await fetch(`http://127.0.0.1:${server.adminPort}/filters/contract.wasm`);
    assert.equal(res.headers.get('x-protoplane-sha256'), entry.sha256);
    assert.equal(Buffer.from(await res.arrayBuffer()).length, entry.bytes.length);

    const toA = await open(port);
    toA.socket.write('A: hello MARK\n');
    await waitUntil(() => toA.received().length > 0, 5000, 'reply through a');
    assert.equal(toA.received(), 'a:A: hello mark\n');
    const toB = await open(port);
    toB.socket.write('other line\n');
    await waitUntil(() => toB.received().length > 0, 5000, 'reply through b');
    assert.equal(toB.received(), 'b:other line\n');
    toA.socket.destroy();
    toB.socket.destroy();
    await envoy.waitForStat('wasmcustom.contract.frames', (v) => v >= 2);
  });

  it('hot-swaps new settings over ECDS: new connections change, the open one finishes, no drain', async () => {
    const modifiedBefore = await envoy.stat('listener_manager.listener_modified');
    const held = await open(port);
    held.socket.write('A: first\n');
    await waitUntil(() => held.received().length > 0, 5000, 'held connection routed to a');

    write(meshYaml(port, a.port, b.port, '{ route_prefix: "B:", route_cluster: a }'));
    await waitUntil(
      async () => {
        const c = await open(port);
        c.socket.write('B: probe\n');
        await waitUntil(() => c.received().length > 0, 5000, 'probe reply');
        c.socket.destroy();
        return c.received().startsWith('a:');
      },
      15_000,
      'new connections follow the new prefix',
    );
    // The connection opened before the change still works.
    held.socket.write('A: still here\n');
    await waitUntil(() => held.received().includes('still here'), 5000, 'old connection still served');
    held.socket.destroy();
    assert.equal(await envoy.stat('listener_manager.listener_modified'), modifiedBefore, 'the listener was not replaced');
    assert.equal((await envoy.stat('listener_manager.total_listeners_draining')) ?? 0, 0);
  });

  it('refuses settings the filter rejects, shows why, and Envoy never gets them', async () => {
    const nodes = async () =>
      JSON.parse((await httpGet(server.adminPort, '/debug/nodes')).body) as {
        nodes: Array<{ id: string; types: Record<string, { version_sent: string | null }> }>;
      };
    const ecdsBefore = (await nodes()).nodes.find((n) => n.id === 'wasm-envoy')!.types.TypedExtensionConfig!.version_sent;
    write(meshYaml(port, a.port, b.port, '{ route_prefix: "", route_cluster: a }'));
    await waitUntil(
      async () => {
        const body = JSON.parse((await httpGet(server.adminPort, '/debug/filters')).body) as { config_errors: string[] };
        return body.config_errors.some((e) => e.includes('contract refused'));
      },
      10_000,
      'the refusal shows in /debug/filters',
    );
    const body = JSON.parse((await httpGet(server.adminPort, '/debug/filters')).body) as { config_errors: string[] };
    assert.match(body.config_errors[0]!, /mesh\.yaml:4:\d+: filter contract refused this listener's configuration: .*route_prefix/);
    const ecdsAfter = (await nodes()).nodes.find((n) => n.id === 'wasm-envoy')!.types.TypedExtensionConfig!.version_sent;
    assert.equal(ecdsAfter, ecdsBefore, 'no new ECDS version was pushed');
  });
});
