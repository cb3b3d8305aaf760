// CoAP through stock Envoy 1.40 configured only by protoplane (one mesh file:
// a coap TCP listener with the Wasm filter, a coap UDP listener on
// udp_proxy) to two real libcoap servers, with libcoap's client, aiocoap's
// (TCP) and npm coap (UDP). Which server a request reached is read back from
// the servers themselves: PUT creates a resource on the server it reaches.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../support/envoy.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';
import { aiocoapClient, libcoapClient, npmCoapObserve, npmCoapRequest, startCoapServer, type CoapServer } from './peers.ts';

function meshYaml(tcpPort: number, udpPort: number, a: CoapServer, b: CoapServer): string {
  return `listeners:
  - name: coap
    port: ${tcpPort}
    address: 127.0.0.1
    protocol: coap
    filter:
      policy:
        rules:
          - { path: { prefix: /admin }, action: deny }
      limits: { csm_wait_ms: 100 }
    routes:
      - match: { path: { prefix: /sensors } }
        cluster: server-a
      - match: { path: { prefix: /actuators } }
        cluster: server-b
      - cluster: server-a
  - name: coap-udp
    port: ${udpPort}
    address: 127.0.0.1
    protocol: coap
    transport: udp
    idle_timeout: 10s
    routes:
      - match: { source: 127.0.0.2/32 }
        cluster: server-b
      - cluster: server-a
clusters:
  - { name: server-a, endpoints: [ 127.0.0.1:${a.port} ] }
  - { name: server-b, endpoints: [ 127.0.0.1:${b.port} ] }
`;
}

describe('CoAP through stock Envoy from mesh.yaml, to two libcoap servers', () => {
  let a: CoapServer;
  let b: CoapServer;
  let env: MeshEnv;
  let tcp = '';
  let udp = '';
  let udpPort = 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coap-e2e-'));

  before(async () => {
    a = await startCoapServer('server-a');
    b = await startCoapServer('server-b');
    const tcpPort = await freePort();
    udpPort = await freePort();
    env = await startMeshEnv({ yaml: meshYaml(tcpPort, udpPort, a, b), nodeId: 'coap-envoy', listeners: ['coap', 'coap-udp'] });
    tcp = `coap+tcp://127.0.0.1:${tcpPort}`;
    udp = `coap://127.0.0.1:${udpPort}`;
  });

  after(async () => {
    await env?.close();
    await a?.close();
    await b?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const direct = (s: CoapServer, p: string) => libcoapClient(['-m', 'get'], `coap://127.0.0.1:${s.port}${p}`);

  it('routes TCP connections by the first request\'s Uri-Path to each server (aiocoap: request right behind its CSM)', async () => {
    const put1 = await aiocoapClient(['-m', 'PUT', '--payload', 'via-envoy-a'], `${tcp}/sensors/t1`);
    assert.equal(put1.code, 0, put1.stderr);
    const put2 = await aiocoapClient(['-m', 'PUT', '--payload', 'via-envoy-b'], `${tcp}/actuators/v1`);
    assert.equal(put2.code, 0, put2.stderr);
    assert.equal((await direct(a, '/sensors/t1')).stdout.trim(), 'via-envoy-a');
    assert.equal((await direct(b, '/actuators/v1')).stdout.trim(), 'via-envoy-b');
    assert.match((await direct(b, '/sensors/t1')).stderr, /4\.04/);
    assert.match((await direct(a, '/actuators/v1')).stderr, /4\.04/);
    const got = await aiocoapClient([], `${tcp}/actuators/v1`);
    assert.equal(got.stdout.trim(), 'via-envoy-b');
    assert.ok((await env.envoy.stat('wasmcustom.coap.route.server-b'))! >= 2);
  });

  it('GET/PUT/POST/DELETE over TCP with libcoap (it waits for the server CSM: the default route after csm_wait_ms)', async () => {
    const put = await libcoapClient(['-m', 'put', '-e', 'hello'], `${tcp}/things/x`);
    assert.equal(put.code, 0, put.stderr);
    assert.equal((await direct(a, '/things/x')).stdout.trim(), 'hello', 'PUT reached the default route (server-a)');
    const get = await libcoapClient(['-m', 'get'], `${tcp}/things/x`);
    assert.equal(get.stdout.trim(), 'hello');
    const post = await libcoapClient(['-m', 'post', '-e', 'p'], `${tcp}/things`);
    assert.equal(post.code, 0, post.stderr);
    assert.doesNotMatch(post.stderr, /[45]\.\d\d/);
    const del = await libcoapClient(['-m', 'delete'], `${tcp}/things/x`);
    assert.equal(del.code, 0, del.stderr);
    assert.match((await direct(a, '/things/x')).stderr, /4\.04/);
    assert.ok((await env.envoy.stat('wasmcustom.coap.route.csm_only'))! >= 4);
    for (const m of ['GET', 'PUT', 'POST', 'DELETE']) assert.ok((await env.envoy.stat(`wasmcustom.coap.requests.${m}`))! >= 1, m);
  });

  it('keeps an Observe registration through Envoy: at least three notifications (libcoap, TCP)', async () => {
    const before = (await env.envoy.stat('wasmcustom.coap.observe.notifications')) ?? 0;
    const r = await libcoapClient(['-w', '-s', '4'], `${tcp}/time`);
    const lines = r.stdout.split('\n').filter((l) => /\d\d:\d\d:\d\d/.test(l));
    assert.ok(lines.length >= 4, `first response + 3 notifications, got ${JSON.stringify(r.stdout)} ${r.stderr}`);
    assert.ok((await env.envoy.stat('wasmcustom.coap.observe.registrations'))! >= 1);
    assert.ok((await env.envoy.stat('wasmcustom.coap.observe.notifications'))! - before >= 4);
  });

  it('completes a Block1 upload and a Block2 transfer of 6 KB (libcoap, TCP, 512-byte blocks)', async () => {
    const body = crypto.randomBytes(4500).toString('base64'); // 6000 bytes
    const file = path.join(dir, 'big.txt');
    fs.writeFileSync(file, body);
    const b1 = (await env.envoy.stat('wasmcustom.coap.blocks.block1')) ?? 0;
    const b2 = (await env.envoy.stat('wasmcustom.coap.blocks.block2')) ?? 0;
    const put = await libcoapClient(['-m', 'put', '-b', '512', '-f', file], `${tcp}/files/big`);
    assert.equal(put.code, 0, put.stderr);
    const out = path.join(dir, 'out.txt');
    const get = await libcoapClient(['-m', 'get', '-b', '512', '-o', out], `${tcp}/files/big`);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(fs.readFileSync(out, 'utf8'), body);
    assert.ok((await env.envoy.stat('wasmcustom.coap.blocks.block1'))! - b1 >= 12, 'block1 messages (requests and their 2.31s)');
    assert.ok((await env.envoy.stat('wasmcustom.coap.blocks.block2'))! - b2 >= 12, 'block2 messages');
  });

  it('answers a refused path 4.03 with the request\'s token; the server never sees it', async () => {
    const r = await libcoapClient(['-m', 'put', '-e', 'x', '-T', 'c0ffee'], `${tcp}/admin/reset`);
    assert.match(r.stderr, /4\.03/, `libcoap accepted a 4.03 for its token: ${r.stderr}`);
    const viaAio = await aiocoapClient(['-m', 'PUT', '--payload', 'y'], `${tcp}/admin/other`);
    assert.match(viaAio.stdout + viaAio.stderr, /4\.03|Forbidden/);
    assert.match((await direct(a, '/admin/reset')).stderr, /4\.04/);
    assert.match((await direct(a, '/admin/other')).stderr, /4\.04/);
    assert.ok((await env.envoy.stat('wasmcustom.coap.refused.policy'))! >= 2);
  });

  it('proxies the same requests over UDP through udp_proxy, routed by source address', async () => {
    // npm coap from 127.0.0.1: the default route (server-a)
    const put = await npmCoapRequest(udpPort, '/u/x', 'PUT', Buffer.from('udp-a'));
    assert.equal(put.code, '2.01');
    assert.equal((await npmCoapRequest(udpPort, '/u/x')).payload.toString(), 'udp-a');
    assert.equal((await direct(a, '/u/x')).stdout.trim(), 'udp-a');
    const post = await npmCoapRequest(udpPort, '/u', 'POST', Buffer.from('p'));
    assert.match(post.code, /^2\./);
    assert.equal((await npmCoapRequest(udpPort, '/u/x', 'DELETE')).code, '2.02');
    // libcoap from 127.0.0.2: server-b
    const fromB = await libcoapClient(['-a', '127.0.0.2', '-m', 'put', '-e', 'udp-b'], `${udp}/u/y`);
    assert.equal(fromB.code, 0, fromB.stderr);
    assert.equal((await direct(b, '/u/y')).stdout.trim(), 'udp-b');
    assert.match((await direct(a, '/u/y')).stderr, /4\.04/);
    // Observe and blockwise over UDP
    const notes = await npmCoapObserve(udpPort, '/time', 3);
    assert.ok(notes.length >= 4);
    const body = crypto.randomBytes(3600).toString('base64'); // 4800 bytes
    const file = path.join(dir, 'udp-big.txt');
    fs.writeFileSync(file, body);
    const up = await libcoapClient(['-m', 'put', '-b', '256', '-f', file], `${udp}/u/big`);
    assert.equal(up.code, 0, up.stderr);
    const down = await npmCoapRequest(udpPort, '/u/big');
    assert.equal(down.payload.toString(), body, 'Block2 transfer over UDP');
    assert.ok((await env.envoy.stat('udp.coap-udp.downstream_sess_rx_datagrams'))! > 10);
  });
});
