// TLS termination (issue 21): schema and semantic errors with file:line:col,
// paths relative to the mesh file, file checks, and a translation (listener +
// SDS secrets) the real Envoy 1.40 accepts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatConfigError, parseMesh } from '../../xds-server/config/index.ts';
import type { Mesh } from '../../xds-server/model/types.ts';
import { readTlsFiles } from '../../xds-server/tls/listener-files.ts';
import { translate, TYPE } from '../../xds-server/translate/index.ts';
import { buildSnapshot } from '../../xds-server/cache/index.ts';
import { envoyValidates } from '../support/envoy-validate.ts';
import { selfSignedCert } from '../support/upstreams.ts';

const CLUSTERS = `clusters:
  - { name: web, endpoints: [ 127.0.0.1:18080 ] }
`;

/** The fixed shape. */
const SECURE = `listeners:
  - name: secure
    port: 10443
    protocol: http
    tls:
      certificates:
        - { cert: certs/a.crt, key: certs/a.key }
        - { cert: certs/b.crt, key: certs/b.key }
    routes: [ { match: { prefix: / }, cluster: web } ]
${CLUSTERS}`;

function errorsOf(text: string, file = 'mesh.yaml'): string[] {
  const r = parseMesh(text, file);
  assert.equal(r.ok, false, 'expected the config to be rejected');
  return r.ok ? [] : r.errors.map(formatConfigError);
}

describe('tls termination config', () => {
  let dir: string;
  let meshFile: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-tls-unit-'));
    fs.mkdirSync(path.join(dir, 'certs'));
    for (const n of ['a', 'b']) {
      const { certPem, keyPem } = await selfSignedCert(`${n}.example.com`);
      fs.writeFileSync(path.join(dir, 'certs', `${n}.crt`), certPem);
      fs.writeFileSync(path.join(dir, 'certs', `${n}.key`), keyPem);
    }
    meshFile = path.join(dir, 'mesh.yaml');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const load = (text: string): Mesh & { locate: (p: Array<string | number>, m: string) => ReturnType<typeof formatConfigError> } => {
    const r = parseMesh(text, meshFile);
    if (!r.ok) assert.fail(r.errors.map(formatConfigError).join('\n'));
    return { ...r.mesh, locate: (p, m) => formatConfigError(r.error(p, m)) };
  };

  it('resolves certificate paths against the mesh file folder', () => {
    const tls = load(SECURE).listeners[0]!.tls!;
    assert.deepEqual(tls.certificates, [
      { certFile: path.join(dir, 'certs/a.crt'), keyFile: path.join(dir, 'certs/a.key') },
      { certFile: path.join(dir, 'certs/b.crt'), keyFile: path.join(dir, 'certs/b.key') },
    ]);
  });

  it('names file:line:col for structural and semantic mistakes', () => {
    assert.deepEqual(errorsOf(SECURE.replace('{ cert: certs/b.crt, key: certs/b.key }', '{ cert: certs/b.crt }')), [
      'mesh.yaml:8:11: certificate is missing required key "key" (at listeners[0].tls.certificates[1])',
    ]);
    const wrongType = errorsOf(SECURE.replace('    routes:', '      min_version: 1.2\n    routes:'));
    assert.equal(wrongType.length, 1, wrongType.join('\n'));
    assert.match(wrongType[0]!, /^mesh\.yaml:9:20: .*"1\.2".* \(at listeners\[0\]\.tls\.min_version\)$/);
    assert.deepEqual(errorsOf(SECURE.replace('    routes:', '      allowed_sans: [ client.example.com ]\n    routes:')), [
      'mesh.yaml:9:7: "allowed_sans" needs "client_ca" (the CA that signs client certificates) (at listeners[0].tls.allowed_sans)',
    ]);
    assert.deepEqual(errorsOf(SECURE.replace('protocol: http', 'protocol: tls').replace('routes: [ { match: { prefix: / }, cluster: web } ]', 'routes: [ { cluster: web } ]')), [
      'mesh.yaml:5:5: "tls" (termination) is for http and tcp listeners, not tls (protocol tls is passthrough by SNI) (at listeners[0].tls)',
    ]);
  });

  it('reports a missing file and a key that does not match its certificate at the key naming them', async () => {
    const mesh = load(SECURE.replace('certs/b.key', 'certs/a.key').replace('certs/a.crt', 'certs/none.crt'));
    const r = await readTlsFiles(mesh, (p, m) => ({ file: meshFile, line: 0, col: 0, path: JSON.stringify(p), message: m }));
    assert.equal(r.ok, false);
    const errors = r.ok ? [] : r.errors;
    assert.equal(errors.length, 2);
    assert.match(errors[0]!.message, /cannot read .*none\.crt: no such file/);
    assert.equal(errors[0]!.path, JSON.stringify(['listeners', 0, 'tls', 'certificates', 0, 'cert']));
    assert.match(errors[1]!.message, /a\.key and .*b\.crt do not make a TLS certificate/);
    assert.equal(errors[1]!.path, JSON.stringify(['listeners', 0, 'tls', 'certificates', 1, 'key']));
  });

  it('translates to a DownstreamTlsContext naming one SDS secret per certificate, accepted by Envoy 1.40 (http and tcp, mTLS)', async () => {
    const text = `listeners:
  - name: secure
    port: 10443
    protocol: http
    tls:
      certificates:
        - { cert: certs/a.crt, key: certs/a.key }
        - { cert: certs/b.crt, key: certs/b.key }
      min_version: "1.2"
      client_ca: certs/a.crt
      allowed_sans: [ a.example.com, "spiffe://example/client" ]
    routes: [ { match: { prefix: / }, cluster: web } ]
  - name: raw
    port: 10444
    protocol: tcp
    tls:
      certificates: [ { cert: certs/b.crt, key: certs/b.key } ]
      alpn: [ x-custom ]
    routes: [ { cluster: web } ]
${CLUSTERS}`;
    const mesh = load(text);
    const files = await readTlsFiles(mesh, (p, m) => assert.fail(`${p.join('.')}: ${m}`));
    assert.ok(files.ok);
    const resources = translate(mesh, 'ads', new Map(), files.files);
    assert.deepEqual(resources.secrets.map((s) => s['name']), ['secure/certificate-0', 'secure/certificate-1', 'secure/client-ca', 'raw/certificate-0']);
    // The secrets are served as their own resource type.
    assert.equal(buildSnapshot(resources).of(TYPE.secret).entries.size, 4);
    const result = await envoyValidates(resources);
    assert.ok(result.ok, result.output);
  });
});
