// Per-cluster retries on stock Envoy 1.40 (issue 21): an upstream answers
// 503 the first time it sees a URL and 200 after; with `retries:` the client
// sees 200, without it the 503.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../support/envoy.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';
import { httpGet } from '../support/upstreams.ts';

/** 503 the first time it sees a URL, 200 after; records every URL it was asked for. */
async function flakyUpstream(): Promise<{ port: number; attempts: string[]; close(): Promise<void> }> {
  const attempts: string[] = [];
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    const seen = attempts.includes(url);
    attempts.push(url);
    res.writeHead(seen ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(seen ? 'second try' : 'first try');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    attempts,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

describe('cluster retries on stock Envoy', () => {
  let env: MeshEnv;
  let flaky: Awaited<ReturnType<typeof flakyUpstream>>;
  let port: number;

  before(async () => {
    flaky = await flakyUpstream();
    port = await freePort();
    env = await startMeshEnv({
      nodeId: 'retries',
      listeners: ['web'],
      yaml: `listeners:
  - name: web
    port: ${port}
    protocol: http
    routes:
      - match: { prefix: /no-retry }
        cluster: plain
      - match: { prefix: / }
        cluster: flaky
clusters:
  - name: flaky
    endpoints: [ 127.0.0.1:${flaky.port} ]
    retries: { on: 5xx, count: 2, per_try_timeout: 2s }
  - name: plain
    endpoints: [ 127.0.0.1:${flaky.port} ]
`,
    });
  });

  after(async () => {
    await env?.close();
    await flaky?.close();
  });

  it('turns a first-attempt 503 into a 200', async () => {
    const r = await httpGet(port, '/?id=1');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'second try');
    assert.deepEqual(flaky.attempts.filter((u) => u === '/?id=1').length, 2);
  });

  it('passes the 503 through on a cluster without retries', async () => {
    const r = await httpGet(port, '/no-retry?id=2');
    assert.equal(r.status, 503);
    assert.equal(r.body, 'first try');
    assert.deepEqual(flaky.attempts.filter((u) => u === '/no-retry?id=2').length, 1);
  });
});
