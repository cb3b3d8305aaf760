// Stock Envoy 1.40 and the maximum stream age (--max-stream-age): after the
// age the server sends GOAWAY, ends the stream after the grace, and Envoy
// reconnects on a new connection (that is how load moves to other replicas)
// with its config intact and traffic flowing throughout. (Envoy's reconnect
// backoff grows while a new stream receives nothing, so the age here is
// short only to keep the test short.)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Protoplane } from '../../xds-server/app.ts';
import { serveForTest } from '../support/mesh-env.ts';
import { bootstrapYaml } from '../../xds-server/bootstrap.ts';
import { freePort, startEnvoy, waitUntil, type EnvoyHandle } from '../support/envoy.ts';
import { requestLoop } from '../support/traffic.ts';
import { httpGet, startHttpUpstream, type HttpUpstream } from '../support/upstreams.ts';

function meshYaml(webPort: number, clusters: Record<string, number>, target: string): string {
  return `listeners:
  - name: web
    port: ${webPort}
    protocol: http
    routes:
      - match: { prefix: / }
        cluster: ${target}
clusters:
${Object.entries(clusters).map(([name, port]) => `  - name: ${name}\n    endpoints: [ 127.0.0.1:${port} ]\n`).join('')}`;
}

interface NodeStream {
  id: string;
  stream: number;
  types: Record<string, { version_sent: string | null; version_acked: string | null }>;
}

for (const delta of [true, false]) {
  describe(`stock Envoy with a maximum stream age (${delta ? 'delta' : 'SotW'} ADS)`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-age-'));
    const configPath = path.join(dir, 'mesh.yaml');
    let blue: HttpUpstream;
    let green: HttpUpstream;
    let server: Protoplane;
    let envoy: EnvoyHandle;
    let webPort = 0;

    const streamsOf = async (nodeId: string): Promise<NodeStream[]> =>
      (JSON.parse((await httpGet(server.adminPort, '/debug/nodes')).body) as { nodes: NodeStream[] }).nodes.filter((n) => n.id === nodeId);

    before(async () => {
      blue = await startHttpUpstream('blue');
      green = await startHttpUpstream('green');
      webPort = await freePort();
      fs.writeFileSync(configPath, meshYaml(webPort, { blue: blue.port }, 'blue'));
      server = await serveForTest(configPath, { maxStreamAgeMs: 1500, maxStreamAgeGraceMs: 300 });
      const adminPort = await freePort();
      envoy = await startEnvoy({ bootstrapYaml: bootstrapYaml({ xds: `127.0.0.1:${server.xdsPort}`, nodeId: 'aged', adminPort, delta }), adminPort });
      await envoy.waitForListener('web');
    });

    after(async () => {
      await envoy?.stop();
      await server?.close();
      await blue?.close();
      await green?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('reconnects on a new stream after the age and gets changes there, without failing a request', async () => {
      const { seen, failures, stop } = requestLoop(webPort);
      await waitUntil(() => seen.length >= 10, 10_000, 'requests flowing');
      const [first] = await streamsOf('aged');
      assert.ok(first, 'the node is connected');
      // after the age (±5%) and the grace, Envoy's stream ends and it opens a new one
      let reconnected: NodeStream | undefined;
      await waitUntil(async () => {
        reconnected = (await streamsOf('aged')).find((s) => s.stream > first.stream);
        const types = Object.values(reconnected?.types ?? {});
        return types.length === 4 && types.every((t) => t.version_acked !== null);
      }, 8000, 'a new stream after the maximum age, in sync on all four types');
      // A reconnecting Envoy says what it holds (delta: initial_resource_versions;
      // SotW: the version_info of its first request per type, which the server
      // compares with the version of the view it would send); nothing differs,
      // so nothing is sent, and the types count as ACKed at what Envoy holds.
      // A change then travels on the new streams.
      assert.deepEqual(Object.values(reconnected!.types).map((t) => t.version_sent), [null, null, null, null], JSON.stringify(reconnected));
      fs.writeFileSync(configPath, meshYaml(webPort, { blue: blue.port, green: green.port }, 'green'));
      await waitUntil(() => seen.at(-1) === 'green', 15_000, 'traffic moved to green');
      const at = seen.length;
      await waitUntil(() => seen.length >= at + 20, 10_000, 'requests after the change');
      await stop();
      assert.deepEqual(failures, []);
      const streams = await streamsOf('aged');
      assert.ok(streams.every((s) => s.stream > first.stream), 'the first stream is gone');
    });
  });
}
