// `protocol: auto` on stock Envoy 1.40 (issue 21): one port answers curl over
// HTTP/1.1, curl --http2-prior-knowledge (h2c), and a raw TCP client routed to
// a TCP echo; a client silent past detection_timeout is sent to the echo too.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../support/envoy.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';
import { startHttpUpstream, startTcpEcho, tcpExchange, type HttpUpstream, type TcpEcho } from '../support/upstreams.ts';

const run = promisify(execFile);

/** curl's body and the HTTP version it spoke (`-w %{http_version}`). */
async function curl(port: number, ...flags: string[]): Promise<{ body: string; version: string }> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '5', ...flags, '-w', '\n%{http_version}', `http://127.0.0.1:${port}/hello`]);
  const cut = stdout.lastIndexOf('\n');
  return { body: stdout.slice(0, cut), version: stdout.slice(cut + 1) };
}

describe('protocol: auto on stock Envoy', () => {
  let env: MeshEnv;
  let web: HttpUpstream;
  let echo: TcpEcho;
  let port: number;

  before(async () => {
    web = await startHttpUpstream('web');
    echo = await startTcpEcho('echo');
    port = await freePort();
    env = await startMeshEnv({
      nodeId: 'protocol-auto',
      listeners: ['any'],
      yaml: `listeners:
  - name: any
    port: ${port}
    protocol: auto
    detection_timeout: 300ms
    routes:
      - match: { prefix: / }
        cluster: web
    tcp: { cluster: echo }
clusters:
  - { name: web, endpoints: [ 127.0.0.1:${web.port} ], connect_timeout: 1s }
  - { name: echo, endpoints: [ 127.0.0.1:${echo.port} ], connect_timeout: 1s }
`,
    });
  });

  after(async () => {
    await env?.close();
    await web?.close();
    await echo?.close();
  });

  it('routes curl over HTTP/1.1 to the http route', async () => {
    const r = await curl(port, '--http1.1');
    assert.deepEqual(r, { body: 'web', version: '1.1' });
  });

  it('routes curl --http2-prior-knowledge (h2c) to the http route', async () => {
    const before = web.hits;
    const r = await curl(port, '--http2-prior-knowledge');
    assert.deepEqual(r, { body: 'web', version: '2' });
    assert.equal(web.hits, before + 1);
  });

  it('sends a raw TCP client to the tcp fallback', async () => {
    const hits = web.hits;
    const reply = await tcpExchange(port, 'ping over raw tcp\n', { done: (b) => b.toString().endsWith('\n') });
    assert.equal(reply.toString(), 'echo:ping over raw tcp\n');
    assert.equal(web.hits, hits, 'the http upstream saw nothing');
  });

  it('sends a client silent past detection_timeout to the tcp fallback instead of closing it', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      let got = '';
      socket.setTimeout(5000, () => socket.destroy(new Error(`timed out; got ${JSON.stringify(got)}`)));
      socket.on('error', reject);
      // Well past the 300ms detection timeout, then a GET: it is already tcp, so it is echoed.
      socket.on('connect', () => setTimeout(() => socket.write('GET / HTTP/1.1\r\n\r\n'), 1200));
      socket.on('data', (c: Buffer) => {
        got += c.toString();
        if (got.endsWith('\r\n\r\n')) {
          socket.destroy();
          resolve(got);
        }
      });
    });
    assert.equal(reply, 'echo:GET / HTTP/1.1\r\n\r\n');
  });
});
