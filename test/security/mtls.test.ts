// xDS over mTLS with the node id proven by the client certificate (issue 19),
// with certificates made by openssl here and stock Envoy 1.40: Envoy gets its
// config and keeps receiving changes, while a plaintext client, a TLS client
// without a certificate, and a client whose certificate names another node
// are each refused (the last with PERMISSION_DENIED, counted). A new server
// certificate written over the old file is served without a restart.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { bootstrapYaml } from '../../xds-server/bootstrap.ts';
import type { Protoplane } from '../../xds-server/app.ts';
import { TYPE, XDS_CLUSTER } from '../../xds-server/translate/index.ts';
import { freePort, startEnvoy, type EnvoyHandle } from '../support/envoy.ts';
import { serveForTest } from '../support/mesh-env.ts';
import { ADS, RawConnection, sotwRequest } from './raw-xds.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-mtls-'));
const at = (name: string) => path.join(dir, name);

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A key and a certificate signed by the test CA, with the given subjectAltName. */
function issue(name: string, san: string, serial: string): void {
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  fs.writeFileSync(at(`${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', serial, '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`);
}

const mesh = (port: number) =>
  `listeners:\n  - name: edge\n    port: ${port}\n    protocol: tcp\n    routes: [ { cluster: a } ]\nclusters:\n  - name: a\n    endpoints: [ 127.0.0.1:9 ]\n`;

describe('xDS over mTLS', () => {
  let server: Protoplane;
  let envoy: EnvoyHandle;
  const configPath = at('mesh.yaml');
  const ca = () => fs.readFileSync(at('ca.crt'));

  before(async () => {
    console.log('making a CA and certificates with openssl');
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=protoplane test CA');
    issue('server', 'IP:127.0.0.1,DNS:localhost', '0x1001');
    issue('envoy-a', 'URI:spiffe://mesh.test/ns/default/sa/envoy-a', '0x2001');
    issue('intruder', 'URI:spiffe://mesh.test/ns/default/sa/intruder,DNS:intruder.mesh.test', '0x3001');
    fs.writeFileSync(configPath, mesh(18080 + (process.pid % 1000)));
    server = await serveForTest(configPath, {
      watchFilters: false,
      debounce: { quietMs: 20, maxMs: 200 },
      xdsTls: { certFile: at('server.crt'), keyFile: at('server.key'), clientCaFile: at('ca.crt') },
    });
    const adminPort = await freePort();
    envoy = await startEnvoy({
      bootstrapYaml: bootstrapYaml({
        xds: `127.0.0.1:${server.xdsPort}`,
        nodeId: 'envoy-a',
        adminPort,
        xdsTls: { ca: at('ca.crt'), cert: at('envoy-a.crt'), key: at('envoy-a.key') },
      }),
      adminPort,
    });
  });

  after(async () => {
    await envoy?.stop();
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const refused = async (reason: string) => (await server.metrics.rejectedRequests.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

  it('stock Envoy 1.40 gets its config over mTLS', async () => {
    await envoy.waitForListener('edge', 20_000);
    // over TLS indeed (not a plaintext fallback): Envoy's xDS cluster did a handshake
    assert.ok(((await envoy.stat(`cluster.${XDS_CLUSTER}.ssl.handshake`)) ?? 0) >= 1, 'Envoy reached xDS without a TLS handshake');
  });

  it('refuses a plaintext client', async () => {
    const plain = new RawConnection(server.xdsPort);
    const stream = plain.open(ADS);
    stream.write(sotwRequest({ typeUrl: TYPE.cluster, nodeId: 'envoy-a' }));
    await assert.rejects(stream.next(2000));
    plain.close();
  });

  it('refuses a TLS client without a certificate (handshake fails)', async () => {
    const error = await new Promise<Error | undefined>((resolve) => {
      const session = http2.connect(`https://127.0.0.1:${server.xdsPort}`, { ca: ca() });
      session.on('error', resolve);
      const req = session.request({ ':method': 'POST', ':path': ADS, 'content-type': 'application/grpc' });
      req.on('error', resolve);
      req.on('response', () => resolve(undefined));
      req.end(sotwRequest({ typeUrl: TYPE.cluster, nodeId: 'envoy-a' }));
      setTimeout(() => resolve(new Error('no answer')), 3000).unref();
    });
    assert.ok(error, 'a client without a certificate got a response');
    // refused for the missing certificate (TLS alert 116), not because the server does not speak TLS
    assert.equal((error as Error & { code?: string }).code, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', error.message);
  });

  it('refuses a client whose certificate names another node (PERMISSION_DENIED, counted), while Envoy keeps receiving changes', async () => {
    const intruder = new RawConnection(server.xdsPort, {}, { ca: ca(), cert: fs.readFileSync(at('intruder.crt')), key: fs.readFileSync(at('intruder.key')) }, 'https');
    const stream = intruder.open(ADS);
    stream.write(sotwRequest({ typeUrl: TYPE.cluster, nodeId: 'envoy-a' }));
    const ended = await stream.ended;
    assert.equal(ended.status, '7');
    assert.match(ended.message, /node id "envoy-a" is not proven by the client certificate/);
    assert.equal(await refused('permission_denied'), 1);
    // the same certificate may speak for its own node
    const own = intruder.open(ADS);
    own.write(sotwRequest({ typeUrl: TYPE.cluster, nodeId: 'intruder' }));
    assert.deepEqual((await own.next(3000)).names, ['a']);
    intruder.close();

    fs.writeFileSync(configPath, mesh(18080 + (process.pid % 1000) + 1));
    await envoy.waitFor(async () => [...(await envoy.listeners()).values()].includes(18080 + (process.pid % 1000) + 1), 20_000, 'the changed listener port');
  });

  it('serves a new server certificate written over the old file, without a restart', async () => {
    const serialOf = () =>
      new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: server.xdsPort, ca: ca(), cert: fs.readFileSync(at('envoy-a.crt')), key: fs.readFileSync(at('envoy-a.key')), ALPNProtocols: ['h2'] }, () => {
          resolve(socket.getPeerCertificate().serialNumber);
          socket.destroy();
        });
        socket.on('error', reject);
      });
    assert.equal((await serialOf()).replace(/^0+/, ''), '1001');
    issue('server', 'IP:127.0.0.1,DNS:localhost', '0x1002');
    const deadline = Date.now() + 5000;
    let serial = await serialOf();
    while (serial.replace(/^0+/, '') !== '1002' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      serial = await serialOf();
    }
    assert.equal(serial.replace(/^0+/, ''), '1002');
  });
});
