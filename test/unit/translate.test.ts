// Translation: pure, deterministic, and every resource accepted by the real
// Envoy 1.40 binary (`envoy --mode validate` on a bootstrap holding them).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildSnapshot } from '../../xds-server/cache/index.ts';
import type { Mesh } from '../../xds-server/model/types.ts';
import { translate, TYPE } from '../../xds-server/translate/index.ts';
import { envoyValidates } from '../support/envoy-validate.ts';

const mesh: Mesh = {
  listeners: [
    {
      name: 'web',
      address: '0.0.0.0',
      port: 10080,
      protocol: 'http',
      routes: [
        {
          match: { kind: 'http', prefix: '/api', headers: [{ name: 'x-canary', value: '1' }] },
          target: { kind: 'cluster', cluster: 'api-v2' },
          timeout: 5000,
        },
        { match: { kind: 'http', path: '/exact', headers: [] }, target: { kind: 'cluster', cluster: 'api-v1' } },
        { match: { kind: 'http', regex: '^/v[0-9]+/.*', headers: [] }, target: { kind: 'cluster', cluster: 'api-v1' } },
        {
          match: { kind: 'http', prefix: '/', headers: [] },
          target: { kind: 'weighted', clusters: [{ name: 'api-v1', weight: 90 }, { name: 'api-v2', weight: 10 }] },
        },
      ],
    },
    { name: 'raw', address: '127.0.0.1', port: 10081, protocol: 'tcp', routes: [{ target: { kind: 'cluster', cluster: 'echo' }, timeout: 30000 }] },
    {
      name: 'split-tcp',
      address: '::',
      port: 10082,
      protocol: 'tcp',
      routes: [{ target: { kind: 'weighted', clusters: [{ name: 'echo', weight: 1 }, { name: 'dns', weight: 3 }] } }],
    },
    {
      name: 'passthrough',
      address: '0.0.0.0',
      port: 10443,
      protocol: 'tls',
      routes: [
        { match: { kind: 'sni', sni: 'a.example.com' }, target: { kind: 'cluster', cluster: 'api-v1' } },
        { target: { kind: 'cluster', cluster: 'api-v2' } },
      ],
    },
  ],
  clusters: [
    { name: 'api-v1', endpoints: [{ host: '127.0.0.1', port: 18080 }, { host: '::1', port: 18081 }], lb: 'round_robin', http2: false, connectTimeout: 1000 },
    {
      name: 'api-v2',
      endpoints: [{ host: '127.0.0.1', port: 18082 }],
      lb: 'least_request',
      http2: true,
      connectTimeout: 1500,
      healthCheck: { kind: 'http', interval: 5000, timeout: 1000, path: '/healthz' },
    },
    {
      name: 'echo',
      endpoints: [{ host: '127.0.0.1', port: 18083 }],
      lb: 'ring_hash',
      http2: false,
      connectTimeout: 250,
      healthCheck: { kind: 'tcp', interval: 5000, timeout: 1000, send: 'PING\r\n', expect: '+PONG' },
    },
    { name: 'dns', endpoints: [{ host: 'localhost', port: 18084 }], lb: 'random', http2: false, connectTimeout: 5000 },
  ],
};

describe('translate', () => {
  it('is deterministic: the same mesh gives byte-identical resources and versions', () => {
    const a = buildSnapshot(translate(mesh));
    const b = buildSnapshot(translate(structuredClone(mesh)));
    assert.equal(a.version, b.version);
    for (const type of Object.values(TYPE)) {
      const ea = [...a.of(type).entries.values()];
      const eb = [...b.of(type).entries.values()];
      assert.deepEqual(
        ea.map((e) => Buffer.from(e.anyBytes).toString('hex')),
        eb.map((e) => Buffer.from(e.anyBytes).toString('hex')),
      );
    }
  });

  it('changes only the versions of what changed', () => {
    const a = buildSnapshot(translate(mesh));
    const changed = structuredClone(mesh) as Mesh & { clusters: Mesh['clusters'][number][] };
    changed.clusters[0] = { ...changed.clusters[0]!, endpoints: [{ host: '127.0.0.1', port: 19999 }] };
    const b = buildSnapshot(translate(changed));
    assert.notEqual(a.version, b.version);
    assert.equal(a.of(TYPE.cluster).version, b.of(TYPE.cluster).version, 'CDS untouched by an endpoint change');
    assert.equal(a.of(TYPE.listener).version, b.of(TYPE.listener).version);
    assert.notEqual(a.of(TYPE.endpoint).entries.get('api-v1')!.version, b.of(TYPE.endpoint).entries.get('api-v1')!.version);
    assert.equal(a.of(TYPE.endpoint).entries.get('api-v2')!.version, b.of(TYPE.endpoint).entries.get('api-v2')!.version);
  });

  it('gives clusters naming hosts to Envoy DNS instead of EDS', () => {
    const r = translate(mesh);
    const dns = r.clusters.find((c) => c.name === 'dns')!;
    assert.equal(dns.type, 'STRICT_DNS');
    assert.ok(dns.load_assignment);
    assert.ok(!r.endpoints.some((e) => e.cluster_name === 'dns'));
  });

  it('produces resources the real Envoy 1.40 accepts', async () => {
    const result = await envoyValidates(translate(mesh));
    assert.ok(result.ok, result.output);
  });

  it('is checked by that same Envoy validation, which does refuse a bad resource', async () => {
    const r = translate(mesh);
    r.routes[0] = { ...r.routes[0]!, virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { safe_regex: { regex: '(?=x)' } }, route: { cluster: 'api-v1' } }] }] };
    const result = await envoyValidates(r);
    assert.equal(result.ok, false);
  });
});

describe('grpc API listeners', () => {
  const grpcMesh: Mesh = {
    clusters: [mesh.clusters[0]!],
    listeners: (['web', 'greeter'] as const).map((name) => ({
      name,
      address: '0.0.0.0',
      port: name === 'web' ? 10080 : 0,
      protocol: name === 'web' ? ('http' as const) : ('grpc' as const),
      routes: [{ match: { kind: 'http' as const, prefix: '/', headers: [] }, target: { kind: 'cluster' as const, cluster: 'api-v1' } }],
    })),
  };

  it('are served to clients naming them, never in a wildcard LDS', () => {
    const lds = buildSnapshot(translate(grpcMesh)).of(TYPE.listener);
    assert.deepEqual(lds.all().entries.map((e) => e.name), ['web']);
    const named = lds.named({ key: 'greeter', names: new Set(['greeter']), sorted: ['greeter'] });
    assert.deepEqual(named.entries.map((e) => e.name), ['greeter']);
    assert.ok(named.entries[0]!.message.api_listener);
    assert.notEqual(lds.all().version, lds.version, 'the wildcard view has its own version');
  });
});
