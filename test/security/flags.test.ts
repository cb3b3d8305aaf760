// The security flags of `serve` and `bootstrap` (xds-server/cli/security-flags.ts)
// become the options docs/security.md describes; bad values are usage errors.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { XDS_CLUSTER } from '../../xds-server/translate/index.ts';
import { bootstrapYaml } from '../../xds-server/bootstrap.ts';
import { bootstrapTlsOptions, securityServeOptions, SERVE_SECURITY_FLAGS, SERVE_SECURITY_HELP } from '../../xds-server/cli/security-flags.ts';

const fail = (message: string): never => {
  throw new Error(message);
};

describe('security flags', () => {
  it('every flag has its help line', () => {
    assert.deepEqual(Object.keys(SERVE_SECURITY_FLAGS).sort(), Object.keys(SERVE_SECURITY_HELP).sort());
  });

  it('limits, durations, TLS and admin options', () => {
    const options = securityServeOptions(
      {
        'xds-max-names-per-request': '500',
        'xds-drain-timeout': '5s',
        'xds-slow-stream-after': '250ms',
        'config-max-aliases': '50',
        'xds-tls-cert': 'c.pem',
        'xds-tls-key': 'k.pem',
        'xds-client-ca': 'ca.pem',
        'admin-host': '0.0.0.0',
        'admin-token-file': 'token',
        'admin-max-connections': '8',
        'admin-timeout': '2s',
      },
      fail,
    );
    assert.deepEqual(options.xdsLimits, { maxNamesPerRequest: 500, drainTimeoutMs: 5000, slowStreamMs: 250 });
    assert.deepEqual(options.configLimits, { maxAliases: 50 });
    assert.deepEqual(options.xdsTls, { certFile: 'c.pem', keyFile: 'k.pem', clientCaFile: 'ca.pem' });
    assert.equal(options.adminHost, '0.0.0.0');
    assert.equal(options.adminTokenFile, 'token');
    assert.equal(options.adminMaxConnections, 8);
    assert.equal(options.adminTimeoutMs, 2000);
  });

  it('refuses bad values and half a TLS pair', () => {
    assert.throws(() => securityServeOptions({ 'xds-max-streams-per-node': '0' }, fail), /--xds-max-streams-per-node: expected a positive whole number, got 0/);
    assert.throws(() => securityServeOptions({ 'xds-drain-timeout': 'soon' }, fail), /--xds-drain-timeout/);
    assert.throws(() => securityServeOptions({ 'xds-tls-cert': 'c.pem' }, fail), /--xds-tls-cert and --xds-tls-key go together/);
    assert.throws(() => securityServeOptions({ 'xds-client-ca': 'ca.pem' }, fail), /--xds-client-ca needs --xds-tls-cert and --xds-tls-key/);
    assert.throws(() => bootstrapTlsOptions({ 'xds-tls-ca': 'ca.pem' }, fail), /go together/);
  });

  it('bootstrap --xds-tls-* puts an UpstreamTlsContext with the files on the xDS cluster', () => {
    const config = parse(bootstrapYaml({ xds: '10.0.0.5:18000', nodeId: 'edge-1', xdsTls: { ca: '/etc/ca.crt', cert: '/etc/edge-1.crt', key: '/etc/edge-1.key' } })) as {
      static_resources: { clusters: Array<{ name: string; transport_socket?: { typed_config: { common_tls_context: Record<string, unknown> } } }> };
    };
    const xds = config.static_resources.clusters.find((c) => c.name === XDS_CLUSTER)!;
    assert.deepEqual(xds.transport_socket!.typed_config.common_tls_context, {
      alpn_protocols: ['h2'],
      tls_certificates: [{ certificate_chain: { filename: '/etc/edge-1.crt' }, private_key: { filename: '/etc/edge-1.key' } }],
      validation_context: { trusted_ca: { filename: '/etc/ca.crt' } },
    });
  });
});
