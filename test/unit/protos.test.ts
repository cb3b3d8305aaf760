// Messages declared under proto/ (missing from the API snapshot inside
// @grpc/grpc-js-xds) are accepted by the real Envoy 1.40 binary.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { translate } from '../../xds-server/translate/index.ts';
import { envoyValidates } from '../support/envoy-validate.ts';

function protocolListenerResources() {
  return translate(
    {
      listeners: [{ name: 'p', address: '127.0.0.1', port: 10990, protocol: 'contract', routes: [{ target: { kind: 'cluster', cluster: 'c' } }] }],
      clusters: [{ name: 'c', endpoints: [{ host: '127.0.0.1', port: 1 }], lb: 'round_robin', http2: false, connectTimeout: 1000 }],
    },
    'ads',
    new Map([['contract', { name: 'contract', code: { kind: 'local', path: '/nonexistent.wasm' } }]]),
  );
}

describe('project-owned protos', () => {
  it('envoy.extensions.filters.listener.set_filter_state.v3.Config is accepted by Envoy 1.40', async () => {
    const resources = protocolListenerResources();
    const listener = resources.listeners[0]!;
    assert.equal((listener.listener_filters as Array<{ name: string }>)[0]!.name, 'envoy.filters.listener.set_filter_state');
    const result = await envoyValidates(resources);
    assert.ok(result.ok, result.output);
  });

  it('and a wrong value in it is refused, so the check above can fail', async () => {
    const resources = protocolListenerResources();
    const listener = resources.listeners[0]!;
    const filters = listener.listener_filters as Array<Record<string, unknown>>;
    // An object key without a factory: Envoy rejects it at config time.
    const { toAny } = await import('../../xds-server/protos/index.ts');
    filters[0] = {
      name: 'envoy.filters.listener.set_filter_state',
      typed_config: toAny('envoy.extensions.filters.listener.set_filter_state.v3.Config', {
        on_accept: [{ object_key: 'no.such.key', factory_key: 'no.such.factory', format_string: { text_format_source: { inline_string: 'x' } } }],
      }),
    };
    const result = await envoyValidates(resources);
    assert.equal(result.ok, false, result.output);
  });
});

describe('encodeMessage', () => {
  it('fails on a field the message lacks, naming where it is', async () => {
    const { encodeMessage } = await import('../../xds-server/protos/index.ts');
    assert.throws(
      () => encodeMessage('envoy.config.cluster.v3.Cluster', { name: 'a', load_assignment: { cluster_name: 'a', endpoints: [{}, { lb_endpoints: [{ bogus: 1 }] }] } }),
      { message: 'envoy.config.cluster.v3.Cluster.load_assignment.endpoints[1].lb_endpoints[0]: envoy.config.endpoint.v3.LbEndpoint has no field "bogus"' },
    );
    assert.ok(encodeMessage('envoy.config.cluster.v3.Cluster', { name: 'a' }).length > 0);
  });
});
