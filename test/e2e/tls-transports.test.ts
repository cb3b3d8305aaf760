// TLS termination secrets over every xDS transport protoplane serves (issue
// 21): tls-termination.test.ts runs over SotW ADS; here the same listener is
// served to a stock Envoy 1.40 over delta ADS, SotW per-type streams (the SDS
// service) and delta per-type streams. Each Envoy must get the certificate
// (its listener warms until it has it), serve it, and swap in a replaced
// certificate file for new handshakes — all on that transport's streams.
//
// One protoplane serves the three Envoys, one after another (they bind the
// same listener port).
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { Protoplane } from '../../xds-server/app.ts';
import { bootstrapYaml, type BootstrapOptions } from '../../xds-server/bootstrap.ts';
import { freePort, startEnvoy, waitUntil } from '../support/envoy.ts';
import { serveForTest } from '../support/mesh-env.ts';
import { httpGet, selfSignedCert, startTcpEcho, type TcpEcho } from '../support/upstreams.ts';

const VARIANTS: ReadonlyArray<{ name: string; options: Partial<BootstrapOptions>; variant: 'delta' | 'sotw'; perType: boolean }> = [
  { name: 'delta ADS', options: { delta: true }, variant: 'delta', perType: false },
  { name: 'SotW per-type streams (SDS service)', options: { perType: true }, variant: 'sotw', perType: true },
  { name: 'delta per-type streams (SDS service)', options: { perType: true, delta: true }, variant: 'delta', perType: true },
];

const SNI = 'secure.example.com';

/** Writes a file the way a certificate manager does: a whole new file renamed into place. */
function replaceFile(file: string, text: string): void {
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

/** The certificate a fresh handshake gets (not verified: the test compares it). */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: SNI, rejectUnauthorized: false }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      if (cert) resolve(cert.fingerprint256);
      else reject(new Error('no certificate'));
    });
    socket.setTimeout(3000, () => socket.destroy(new Error('handshake timed out')));
    socket.once('error', reject);
  });
}

/** Sends bytes over a TLS connection that verifies the served certificate against `ca`; resolves with the echo. */
function verifiedEcho(port: number, ca: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: SNI, ca }, () => socket.write(text));
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= text.length + 'echo:'.length) {
        socket.destroy();
        resolve(got);
      }
    });
    socket.setTimeout(3000, () => socket.destroy(new Error(`no echo (got "${got}")`)));
    socket.once('error', reject);
  });
}

interface NodeStreams {
  nodes: Array<{ id: string; variant: string; types: Record<string, { version_acked: string | null; version_sent: string | null }> }>;
}

describe('TLS termination secrets over delta and per-type xDS (stock Envoy)', () => {
  let dir: string;
  let server: Protoplane;
  let echo: TcpEcho;
  let port: number;
  const certFile = () => path.join(dir, 'secure.crt');
  const keyFile = () => path.join(dir, 'secure.key');
  let current: string;

  /** A new certificate for the same name, in place; returns its PEM. */
  async function newCertificate(): Promise<string> {
    const { certPem, keyPem } = await selfSignedCert(SNI);
    replaceFile(keyFile(), keyPem);
    replaceFile(certFile(), certPem);
    return certPem;
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-tls-transports-'));
    current = await newCertificate();
    echo = await startTcpEcho('echo');
    port = await freePort();
    // A tcp listener keeps the check down to TLS: the bytes come back prefixed by the echo's name.
    fs.writeFileSync(path.join(dir, 'mesh.yaml'), `listeners:
  - name: secure
    port: ${port}
    protocol: tcp
    tls:
      certificates: [ { cert: secure.crt, key: secure.key } ]
    routes: [ { cluster: echo } ]
clusters:
  - { name: echo, endpoints: [ 127.0.0.1:${echo.port} ], connect_timeout: 1s }
`);
    server = await serveForTest(path.join(dir, 'mesh.yaml'), { watchFilters: false });
  });

  after(async () => {
    await server?.close();
    await echo?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const variant of VARIANTS) {
    it(`${variant.name}: serves the certificate, then a replaced one to new handshakes`, async () => {
      const nodeId = `tls-${variant.name.replace(/\W+/g, '-')}`;
      const adminPort = await freePort();
      const envoy = await startEnvoy({
        bootstrapYaml: bootstrapYaml({ xds: `127.0.0.1:${server.xdsPort}`, nodeId, adminPort, ...variant.options }),
        adminPort,
      });
      try {
        // The listener warms until its secret arrives: active means SDS delivered it.
        await envoy.waitForListener('secure', 20_000);
        assert.equal(await verifiedEcho(port, current, 'hi'), 'echo:hi');
        assert.equal(await servedFingerprint(port), new X509Certificate(current).fingerprint256);

        const before = current;
        current = await newCertificate();
        const rotated = new X509Certificate(current).fingerprint256;
        await waitUntil(async () => (await servedFingerprint(port)) === rotated, 10_000, 'the replaced certificate on a new handshake');
        // Verified against the new certificate only; the old one no longer verifies.
        assert.equal(await verifiedEcho(port, current, 'again'), 'echo:again');
        await assert.rejects(verifiedEcho(port, before, 'old'));

        // The secrets came over this transport's streams, and Envoy ACKed what was sent.
        const { nodes } = JSON.parse((await httpGet(server.adminPort, '/debug/nodes')).body) as NodeStreams;
        const mine = nodes.filter((n) => n.id === nodeId);
        assert.ok(mine.length >= 1 && mine.every((n) => n.variant === variant.variant), JSON.stringify(mine));
        const secretStreams = mine.filter((n) => 'Secret' in n.types);
        assert.equal(secretStreams.length, 1, JSON.stringify(mine));
        const secretTypes = Object.keys(secretStreams[0]!.types);
        // Per-type: a stream of its own (the SDS service); ADS: one stream with every type.
        if (variant.perType) assert.deepEqual(secretTypes, ['Secret']);
        else assert.ok(secretTypes.length > 1, secretTypes.join(','));
        await waitUntil(async () => {
          const again = JSON.parse((await httpGet(server.adminPort, '/debug/nodes')).body) as NodeStreams;
          const s = again.nodes.find((n) => n.id === nodeId && 'Secret' in n.types)!.types['Secret']!;
          return s.version_sent !== null && s.version_acked === s.version_sent;
        }, 5000, 'the rotated secret ACKed');
        assert.equal(await envoy.stat('listener_manager.lds.update_rejected'), 0);
      } finally {
        await envoy.stop();
      }
    });
  }
});
