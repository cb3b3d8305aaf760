// The hand-written request decoders read what protobufjs's generated decoder
// reads (for the fields the server uses), skip everything else, and refuse
// bytes that are not a well-formed message.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import protobuf from 'protobufjs';
import { decodeMessage, encodeMessage } from '../../xds-server/protos/index.ts';
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest } from '../../xds-server/server/wire.ts';

const SOTW = 'envoy.service.discovery.v3.DiscoveryRequest';
const DELTA = 'envoy.service.discovery.v3.DeltaDiscoveryRequest';

/** A node shaped like stock Envoy's first request: hundreds of extensions, a build version, metadata, locality. */
const envoyLikeNode = {
  id: 'sidecar~10.0.0.1~pod-1.default~default.svc.cluster.local',
  cluster: 'reviews',
  user_agent_name: 'envoy',
  user_agent_version: '1.40.0',
  user_agent_build_version: { version: { major_number: 1, minor_number: 40, patch: 0 } },
  locality: { region: 'eu', zone: 'eu-1a' },
  extensions: Array.from({ length: 516 }, (_, i) => ({ name: `envoy.filters.network.ext_${i}`, category: 'envoy.filters.network', type_urls: [`type.googleapis.com/ext.v3.Config${i}`] })),
  client_features: ['envoy.lb.does_not_support_overprovisioning', 'envoy.restart_features.use_eds_cache_for_ads'],
};

/** What the server needs of a request, read through protobufjs's generated decoder (the reference). */
function reference(type: string, bytes: Uint8Array): Record<string, unknown> {
  const raw = decodeMessage(type, bytes) as Record<string, any>;
  const node = raw.node && {
    id: raw.node.id ?? '',
    cluster: raw.node.cluster ?? '',
    userAgent: `${raw.node.user_agent_name ?? ''} ${raw.node.user_agent_version ?? ''}`.trim(),
  };
  const errorDetail = raw.error_detail && { code: raw.error_detail.code ?? 0, message: raw.error_detail.message ?? '' };
  if (type === SOTW) {
    return { versionInfo: raw.version_info ?? '', node, resourceNames: raw.resource_names ?? [], typeUrl: raw.type_url ?? '', responseNonce: raw.response_nonce ?? '', errorDetail };
  }
  return {
    node,
    typeUrl: raw.type_url ?? '',
    subscribe: raw.resource_names_subscribe ?? [],
    unsubscribe: raw.resource_names_unsubscribe ?? [],
    initialResourceVersions: new Map(Object.entries(raw.initial_resource_versions ?? {})),
    responseNonce: raw.response_nonce ?? '',
    errorDetail,
  };
}

/** Drops undefined properties, so `{ node: undefined }` equals `{}`. */
function defined(value: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined));
}

const sotwCases: Array<[string, Record<string, unknown>]> = [
  ['empty', {}],
  ['first request with an Envoy-sized node', { node: envoyLikeNode, type_url: 'type.googleapis.com/envoy.config.cluster.v3.Cluster' }],
  ['ACK', { version_info: 'v1', type_url: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment', resource_names: ['a', 'b', 'ü/ñ'], response_nonce: '7' }],
  ['NACK with details', { version_info: 'v0', response_nonce: '8', type_url: 't', error_detail: { code: 3, message: 'bad cluster: ✗', details: [{ type_url: 'x', value: new Uint8Array([1, 2, 3]) }] } }],
  ['resource locators (ignored)', { type_url: 't', resource_locators: [{ name: 'xdstp://a/b', dynamic_parameters: { k: 'v' } }] }],
  ['negative status code', { type_url: 't', response_nonce: '1', error_detail: { code: -1, message: '' } }],
];

const deltaCases: Array<[string, Record<string, unknown>]> = [
  ['empty', {}],
  ['first request with an Envoy-sized node', { node: envoyLikeNode, type_url: 'type.googleapis.com/envoy.config.cluster.v3.Cluster', resource_names_subscribe: ['*'] }],
  ['reconnect with initial_resource_versions', { type_url: 't', initial_resource_versions: { c1: 'h1', c2: 'h2', '': 'empty-name' }, resource_names_subscribe: ['c1', 'c2'] }],
  ['subscription change and ACK', { type_url: 't', response_nonce: '12', resource_names_subscribe: ['x'], resource_names_unsubscribe: ['y', 'z'] }],
  ['NACK', { type_url: 't', response_nonce: '13', error_detail: { code: 13, message: 'rejected' } }],
  ['resource locators (ignored)', { type_url: 't', resource_locators_subscribe: [{ name: 'xdstp://a' }], resource_locators_unsubscribe: [{ name: 'xdstp://b' }] }],
];

describe('request decoders', () => {
  for (const [name, value] of sotwCases) {
    it(`DiscoveryRequest: ${name}`, () => {
      const bytes = encodeMessage(SOTW, value);
      assert.deepEqual(defined(decodeDiscoveryRequest(bytes)), defined(reference(SOTW, bytes)));
    });
  }
  for (const [name, value] of deltaCases) {
    it(`DeltaDiscoveryRequest: ${name}`, () => {
      const bytes = encodeMessage(DELTA, value);
      assert.deepEqual(defined(decodeDeltaDiscoveryRequest(bytes)), defined(reference(DELTA, bytes)));
    });
  }

  it('reads the node of an Envoy-sized first request without building its extensions', () => {
    const bytes = encodeMessage(DELTA, { node: envoyLikeNode, type_url: 't' });
    assert.ok(bytes.length > 30_000, `a first request this size is what Envoy sends (${bytes.length} bytes)`);
    assert.deepEqual(decodeDeltaDiscoveryRequest(bytes).node, { id: envoyLikeNode.id, cluster: 'reviews', userAgent: 'envoy 1.40.0' });
  });

  it('skips fields it does not know (a newer Envoy), wherever they are', () => {
    const known = encodeMessage(SOTW, { version_info: 'v1', type_url: 't', response_nonce: '3' });
    const unknown = protobuf.Writer.create().uint32((99 << 3) | 2).string('future').uint32((100 << 3) | 0).uint64(123).uint32((101 << 3) | 5).fixed32(7).finish();
    const request = decodeDiscoveryRequest(Buffer.concat([unknown, known, unknown]));
    assert.equal(request.versionInfo, 'v1');
    assert.equal(request.responseNonce, '3');
  });

  it('refuses bytes that are not a well-formed request', () => {
    const good = encodeMessage(DELTA, { node: { id: 'n', cluster: 'c' }, type_url: 't', response_nonce: '1' });
    // node: 2 + 6 bytes, then type_url: 3 bytes, then response_nonce: 3 bytes; a cut between fields leaves a valid message
    const fieldEnds = new Set([8, 11]);
    for (let cut = 1; cut < good.length; cut++) {
      if (fieldEnds.has(cut)) continue;
      assert.throws(() => decodeDeltaDiscoveryRequest(good.subarray(0, cut)), Error, `truncated at ${cut} of ${good.length}`);
    }
    // type_url (2) sent as a varint
    assert.throws(() => decodeDeltaDiscoveryRequest(new Uint8Array([(2 << 3) | 0, 5])), /wire type/);
    // node (1) whose length runs past the end
    assert.throws(() => decodeDeltaDiscoveryRequest(new Uint8Array([(1 << 3) | 2, 50, 10, 1, 0x61])), /past the end/);
    // field number 0
    assert.throws(() => decodeDiscoveryRequest(new Uint8Array([0x02, 0x00])), /field number 0/);
    // a nested field that runs over its message's end: node { id: "abc" } declared 2 bytes long
    assert.throws(() => decodeDiscoveryRequest(new Uint8Array([(2 << 3) | 2, 2, (1 << 3) | 2, 3, 0x61, 0x62, 0x63])), RangeError);
  });
});
