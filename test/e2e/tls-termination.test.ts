// TLS termination on stock Envoy 1.40, certificates served over SDS by
// protoplane (issue 21): two SNI names on one port each get their own
// certificate (curl verifies it), a replaced certificate file is seen by a new
// handshake (openssl s_client) while a connection made before keeps working,
// and an mTLS tcp listener refuses a client without a certificate.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { freePort, waitUntil } from '../support/envoy.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';
import { selfSignedCert, startHttpUpstream, startTcpEcho, type HttpUpstream, type TcpEcho } from '../support/upstreams.ts';

const run = promisify(execFile);

/** Writes a file the way a certificate manager does: a whole new file renamed into place. */
function replaceFile(file: string, text: string): void {
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

async function writeCert(dir: string, name: string): Promise<{ cert: string; key: string; pem: string }> {
  const { certPem, keyPem } = await selfSignedCert(name);
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  replaceFile(key, keyPem);
  replaceFile(cert, certPem);
  return { cert, key, pem: certPem };
}

const fingerprint = (pem: string): string => new X509Certificate(pem).fingerprint256;

/** The certificate a fresh handshake with this SNI gets, as openssl s_client prints it. */
async function servedCertificate(port: number, sni: string): Promise<string> {
  const { stdout } = await run('bash', ['-c', `openssl s_client -connect 127.0.0.1:${port} -servername ${sni} </dev/null 2>/dev/null | openssl x509`], { timeout: 5000 });
  return stdout;
}

describe('TLS termination on stock Envoy (SDS)', () => {
  let env: MeshEnv;
  let web: HttpUpstream;
  let echo: TcpEcho;
  let certDir: string;
  let a: { cert: string; key: string; pem: string };
  let b: { cert: string; key: string; pem: string };
  let client: { cert: string; key: string; pem: string };
  let httpsPort: number;
  let mtlsPort: number;

  before(async () => {
    certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-certs-'));
    [a, b, client] = await Promise.all([writeCert(certDir, 'a.example.com'), writeCert(certDir, 'b.example.com'), writeCert(certDir, 'client.example.com')]);
    web = await startHttpUpstream('web');
    echo = await startTcpEcho('echo');
    httpsPort = await freePort();
    mtlsPort = await freePort();
    env = await startMeshEnv({
      nodeId: 'tls-termination',
      listeners: ['secure', 'mutual'],
      yaml: `listeners:
  - name: secure
    port: ${httpsPort}
    protocol: http
    tls:
      certificates:
        - { cert: ${a.cert}, key: ${a.key} }
        - { cert: ${b.cert}, key: ${b.key} }
    routes: [ { match: { prefix: / }, cluster: web } ]
  - name: mutual
    port: ${mtlsPort}
    protocol: tcp
    tls:
      certificates: [ { cert: ${a.cert}, key: ${a.key} } ]
      min_version: "1.2"
      client_ca: ${client.cert}
      allowed_sans: [ client.example.com ]
    routes: [ { cluster: echo } ]
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
    fs.rmSync(certDir, { recursive: true, force: true });
  });

  it('serves each SNI name its own certificate on one port (curl verifies it against that certificate only)', async () => {
    for (const [name, cert] of [['a.example.com', a], ['b.example.com', b]] as const) {
      const { stdout } = await run('curl', [
        '-sS', '--max-time', '5', '--cacert', cert.cert, '--resolve', `${name}:${httpsPort}:127.0.0.1`, `https://${name}:${httpsPort}/`,
      ]);
      assert.equal(stdout, 'web', name);
    }
  });

  it('rotates a replaced certificate for new handshakes while a connection made before lives on', async () => {
    // An HTTP/1.1 keep-alive connection made with the first certificate.
    const socket = tls.connect({ host: '127.0.0.1', port: httpsPort, servername: 'a.example.com', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const request = async (): Promise<string> => {
      const reply = new Promise<string>((resolve, reject) => {
        let got = '';
        const onData = (c: Buffer) => {
          got += c.toString();
          // a whole response: Content-Length body, or the last chunk
          if (got.includes('\r\n\r\n') && (got.endsWith('\r\n\r\nweb') || got.endsWith('\r\n0\r\n\r\n'))) {
            clearTimeout(timer);
            socket.off('data', onData);
            resolve(got);
          }
        };
        const timer = setTimeout(() => reject(new Error(`no whole response on the old connection; got ${JSON.stringify(got)}`)), 5000);
        socket.on('data', onData).once('error', reject);
      });
      socket.write('GET / HTTP/1.1\r\nhost: a.example.com\r\n\r\n');
      return reply;
    };
    assert.match(await request(), /^HTTP\/1\.1 200/);
    const oldPrint = fingerprint(a.pem);
    assert.equal(socket.getPeerX509Certificate()?.fingerprint256, oldPrint);
    const listenerUpdates = async () => (await env.envoy.waitForStat('listener_manager.listener_modified', () => true).catch(() => 0)) ?? 0;
    const modifiedBefore = await listenerUpdates();

    const rotated = await writeCert(certDir, 'a.example.com');
    await waitUntil(async () => fingerprint(await servedCertificate(httpsPort, 'a.example.com')) === fingerprint(rotated.pem), 15_000, 'a new handshake to see the rotated certificate');

    // The old connection (made with the first certificate, checked above) was neither closed nor drained: it still answers.
    const after = await request();
    assert.match(after, /^HTTP\/1\.1 200/);
    assert.doesNotMatch(after, /connection: close/i, 'Envoy is not draining the connection');
    assert.equal(socket.destroyed, false);
    socket.destroy();
    // Only the secret changed: the listener itself was not replaced.
    assert.equal(await listenerUpdates(), modifiedBefore);
    a = rotated;
  });

  it('refuses a client without a certificate on the mTLS listener and serves one with an allowed certificate', async () => {
    const attempt = (withCert: boolean): Promise<string> =>
      new Promise((resolve) => {
        let got = '';
        const socket = tls.connect({
          host: '127.0.0.1', port: mtlsPort, servername: 'a.example.com', rejectUnauthorized: false,
          ...(withCert ? { cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key) } : {}),
        });
        socket.setTimeout(5000, () => socket.destroy());
        socket.on('secureConnect', () => socket.write('hello\n'));
        socket.on('data', (c: Buffer) => {
          got += c.toString();
          if (got.endsWith('\n')) socket.end();
        });
        socket.on('error', (e) => resolve(`error: ${e.message}`));
        socket.on('close', () => resolve(got));
      });
    assert.equal(await attempt(true), 'echo:hello\n');
    const refused = await attempt(false);
    assert.ok(!refused.includes('echo:'), `no echo without a certificate, got ${JSON.stringify(refused)}`);
    assert.match(refused, /error|^$/);
  });
});
