// gRPC's own xDS client (@grpc/grpc-js-xds, an xds:/// channel) as a second
// real client: it resolves a service through protoplane over ADS, sends real
// RPCs to test backends, follows a route change, and shows up ACKed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import type { Protoplane } from '../../xds-server/app.ts';
import { serveForTest } from '../support/mesh-env.ts';
import { waitUntil } from '../support/envoy.ts';
import { httpGet } from '../support/upstreams.ts';

const METHOD = '/protoplane.test.Echo/Who';
const identity = (b: Buffer) => b;

async function startBackend(name: string): Promise<{ port: number; calls: number; stop(): void }> {
  const server = new grpc.Server();
  const state = { port: 0, calls: 0, stop: () => server.forceShutdown() };
  server.addService(
    { Who: { path: METHOD, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
    {
      Who: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        state.calls++;
        callback(null, Buffer.from(name));
      },
    },
  );
  state.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return state;
}

function mesh(target: string, a: number, b: number): string {
  return `listeners:
  - name: greeter
    protocol: grpc
    routes:
      - match: { prefix: / }
        cluster: ${target}
clusters:
  - name: backend-a
    endpoints: [ 127.0.0.1:${a} ]
  - name: backend-b
    endpoints: [ 127.0.0.1:${b} ]
`;
}

describe('gRPC xDS client (@grpc/grpc-js-xds) through protoplane', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-grpc-'));
  const configPath = path.join(dir, 'mesh.yaml');
  let server: Protoplane;
  let a: Awaited<ReturnType<typeof startBackend>>;
  let b: Awaited<ReturnType<typeof startBackend>>;
  let client: grpc.Client;
  const write = (text: string) => {
    fs.writeFileSync(`${configPath}.tmp`, text);
    fs.renameSync(`${configPath}.tmp`, configPath);
  };
  const call = () =>
    new Promise<string>((resolve, reject) =>
      client.makeUnaryRequest(METHOD, identity, identity, Buffer.from('hi'), { deadline: Date.now() + 5000 }, (e, r) =>
        e ? reject(e) : resolve(r!.toString()),
      ),
    );

  before(async () => {
    a = await startBackend('a');
    b = await startBackend('b');
    write(mesh('backend-a', a.port, b.port));
    server = await serveForTest(configPath);
    process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
      xds_servers: [{ server_uri: `127.0.0.1:${server.xdsPort}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: 'grpc-client-1', cluster: 'grpc-clients', locality: {} },
    });
    grpcXds.register();
    client = new grpc.Client('xds:///greeter', grpc.credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    await server?.close();
    a?.stop();
    b?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('resolves the service and sends real RPCs to the routed backend', async () => {
    for (let i = 0; i < 5; i++) assert.equal(await call(), 'a');
    assert.equal(a.calls, 5);
    assert.equal(b.calls, 0);
  });

  it('follows a route change', async () => {
    write(mesh('backend-b', a.port, b.port));
    await waitUntil(async () => (await call()) === 'b', 10_000, 'RPCs move to backend b');
    for (let i = 0; i < 5; i++) assert.equal(await call(), 'b');
  });

  it('is shown ACKed in /debug/nodes', async () => {
    const view = JSON.parse((await httpGet(server.adminPort, '/debug/nodes')).body) as {
      nodes: Array<{ id: string; types: Record<string, { version_sent: string | null; version_acked: string | null; last_nack: unknown }> }>;
    };
    const node = view.nodes.find((n) => n.id === 'grpc-client-1');
    assert.ok(node, 'the gRPC client is connected');
    assert.deepEqual(Object.keys(node.types).sort(), ['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration']);
    for (const [type, t] of Object.entries(node.types)) {
      assert.equal(t.last_nack, null, `${type} not NACKed`);
      assert.equal(t.version_acked, t.version_sent, `${type} ACKed`);
    }
  });
});
