// Upstream TLS per cluster on stock Envoy 1.40 (issue 21): a plain tcp
// listener whose cluster has `tls: { sni, ca }` reaches a TLS upstream with
// that SNI and verifies its certificate (CA + SAN); a wrong SNI fails the
// verification, so nothing gets through. The CA reaches Envoy over SDS.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatConfigError, parseMesh } from '../../xds-server/config/index.ts';
import { readTlsFiles } from '../../xds-server/tls/listener-files.ts';
import { translate } from '../../xds-server/translate/index.ts';
import { freePort } from '../support/envoy.ts';
import { envoyValidates } from '../support/envoy-validate.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';
import { startTlsUpstream, tcpExchange, type TlsUpstream } from '../support/upstreams.ts';

describe('upstream TLS on stock Envoy', () => {
  let env: MeshEnv;
  let up: TlsUpstream;
  let dir: string;
  let yaml: string;
  const ports = { good: 0, wrong: 0 };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-upstream-tls-'));
    up = await startTlsUpstream('up', 'up.example.com');
    fs.writeFileSync(path.join(dir, 'up-ca.crt'), up.certPem);
    ports.good = await freePort();
    ports.wrong = await freePort();
    const ca = path.join(dir, 'up-ca.crt');
    yaml = `listeners:
  - { name: good, port: ${ports.good}, protocol: tcp, routes: [ { cluster: up } ] }
  - { name: wrong, port: ${ports.wrong}, protocol: tcp, routes: [ { cluster: up-wrong-name } ] }
clusters:
  - name: up
    endpoints: [ 127.0.0.1:${up.port} ]
    tls: { sni: up.example.com, ca: ${ca} }
  - name: up-wrong-name
    endpoints: [ 127.0.0.1:${up.port} ]
    tls: { sni: other.example.com, ca: ${ca} }
`;
    env = await startMeshEnv({ nodeId: 'upstream-tls', listeners: ['good', 'wrong'], yaml });
  });

  after(async () => {
    await env?.close();
    await up?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('originates TLS with the SNI and a verified certificate', async () => {
    const reply = await tcpExchange(ports.good, 'hi', { done: (b) => b.toString() === 'up' });
    assert.equal(reply.toString(), 'up');
    assert.equal(up.serverNames.at(-1), 'up.example.com');
  });

  it('gets nothing through when the certificate does not carry the SNI name', async () => {
    const reply = await tcpExchange(ports.wrong, 'hi', { done: () => false, timeoutMs: 3000 }).catch((e: Error) => Buffer.from(`error: ${e.message}`));
    assert.notEqual(reply.toString(), 'up');
    // Envoy refused the upstream's certificate for its SAN, not for some other reason.
    await env.envoy.waitForStat('cluster.up-wrong-name.ssl.fail_verify_san', (v) => v >= 1, 5000);
  });

  it('translates with a client certificate too, and Envoy 1.40 accepts it', async () => {
    fs.writeFileSync(path.join(dir, 'client.key'), up.keyPem);
    const withCert = yaml.replace(`tls: { sni: up.example.com, ca: `, `tls: { sni: up.example.com, alpn: [ h2 ], cert: up-ca.crt, key: client.key, ca: `);
    const r = parseMesh(withCert, path.join(dir, 'mesh.yaml'));
    if (!r.ok) assert.fail(r.errors.map(formatConfigError).join('\n'));
    assert.deepEqual(r.mesh.clusters[0]!.tls?.certificate, { certFile: path.join(dir, 'up-ca.crt'), keyFile: path.join(dir, 'client.key') });
    const files = await readTlsFiles(r.mesh, (p, m) => assert.fail(`${p.join('.')}: ${m}`));
    assert.ok(files.ok);
    const resources = translate(r.mesh, 'ads', new Map(), files.files);
    assert.deepEqual(resources.secrets.map((s) => s['name']), ['clusters/up/ca', 'clusters/up/certificate', 'clusters/up-wrong-name/ca']);
    const result = await envoyValidates(resources);
    assert.ok(result.ok, result.output);
  });

  it('names file:line:col for a cert without its key', () => {
    const r = parseMesh(yaml.replace('tls: { sni: up.example.com, ca: ', 'tls: { cert: a.crt, sni: up.example.com, ca: '), 'mesh.yaml');
    assert.equal(r.ok, false);
    const errors = r.ok ? [] : r.errors.map(formatConfigError);
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0]!, /^mesh\.yaml:7:10: .*key.* \(at clusters\[0\]\.tls\)$/);
  });
});
