// WebSocket upgrades per route on stock Envoy 1.40 (issue 21): npm `ws`
// client → Envoy → `ws` echo server on a route with `websocket: true`; the
// same upgrade on a route without it is refused by Envoy.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { freePort } from '../support/envoy.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';

/** Opens a WebSocket, sends each message, and collects as many replies; rejects with the handshake error. */
function exchange(url: string, messages: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: 5000 });
    const replies: string[] = [];
    ws.on('open', () => messages.forEach((m) => ws.send(m)));
    ws.on('message', (data) => {
      replies.push(String(data));
      if (replies.length === messages.length) {
        ws.close();
        resolve(replies);
      }
    });
    ws.on('error', reject);
  });
}

describe('WebSocket through stock Envoy', () => {
  let env: MeshEnv;
  let echo: WebSocketServer;
  let port: number;

  before(async () => {
    echo = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => echo.once('listening', resolve));
    echo.on('connection', (socket) => socket.on('message', (data) => socket.send(`echo:${String(data)}`)));
    port = await freePort();
    env = await startMeshEnv({
      nodeId: 'websocket',
      listeners: ['web'],
      yaml: `listeners:
  - name: web
    port: ${port}
    protocol: http
    routes:
      - match: { prefix: /ws }
        cluster: echo
        websocket: true
      - match: { prefix: / }
        cluster: echo
clusters:
  - { name: echo, endpoints: [ 127.0.0.1:${(echo.address() as AddressInfo).port} ] }
`,
    });
  });

  after(async () => {
    await env?.close();
    for (const client of echo?.clients ?? []) client.terminate();
    await new Promise<void>((resolve) => (echo ? echo.close(() => resolve()) : resolve()));
  });

  it('echoes messages over an upgraded connection on a websocket route', async () => {
    assert.deepEqual(await exchange(`ws://127.0.0.1:${port}/ws`, ['one', 'two', 'three']), ['echo:one', 'echo:two', 'echo:three']);
  });

  it('refuses the upgrade on a route without websocket: true', async () => {
    await assert.rejects(exchange(`ws://127.0.0.1:${port}/other`, ['x']), /Unexpected server response: 403/);
  });
});
