// Listeners spawned by a filter's settings (manifest `item_listeners`): the
// Kafka contract's `filter.brokers` becomes one Envoy listener per broker.
// Config → model → resources (pure), validation errors with file:line:col, the
// real kafka manifest's declaration, and the real Envoy 1.40 accepting the output.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createMeshParser, formatConfigError, type ItemListeners } from '../../xds-server/config/index.ts';
import type { Mesh } from '../../xds-server/model/types.ts';
import { translate, type EnvoyMessage } from '../../xds-server/translate/index.ts';
import { messageType } from '../../xds-server/protos/index.ts';
import { listFilters } from '../../xds-server/catalog/index.ts';
import { envoyValidates } from '../support/envoy-validate.ts';
import { REPO_ROOT } from '../support/envoy.ts';

const FILE = 'mesh.yaml';
const KAFKA_SPAWN: ItemListeners = { array: 'brokers', name: 'broker', id: 'id', port: 'port', cluster: 'cluster', setting: 'listener_broker_id' };
const parse = createMeshParser({ protocols: { kafka: { itemListeners: KAFKA_SPAWN } } });

/** The config contract, verbatim. */
const CONTRACT = `listeners:
  - name: kafka
    port: 19092                 # bootstrap: clients start here
    protocol: kafka
    filter:
      advertise: 127.0.0.1      # host written into rewritten broker addresses
      brokers:                  # each broker gets its own Envoy listener on \`port\`, routed to \`cluster\`
        - { id: 1, port: 19101, cluster: kafka-1 }
        - { id: 2, port: 19102, cluster: kafka-2 }
      acl:
        default: allow
        produce:
          - { topic: { prefix: "secret." }, action: deny }
      topic_metrics: [ "orders." ]
    routes:
      - cluster: kafka-all        # where bootstrap connections go
clusters:
  - { name: kafka-1, endpoints: [ 127.0.0.1:9092 ] }
  - { name: kafka-2, endpoints: [ 127.0.0.1:9094 ] }
  - { name: kafka-all, endpoints: [ 127.0.0.1:9092, 127.0.0.1:9094 ] }
`;

function meshOf(text: string): Mesh {
  const r = parse(text, FILE);
  if (!r.ok) assert.fail(`expected a valid config, got:\n${r.errors.map(formatConfigError).join('\n')}`);
  return r.mesh;
}

function errorsOf(text: string): string[] {
  const r = parse(text, FILE);
  assert.equal(r.ok, false, 'expected the config to be rejected');
  return r.ok ? [] : r.errors.map(formatConfigError);
}

const wasmType = messageType('envoy.extensions.filters.network.wasm.v3.Wasm');
const stringValueType = messageType('google.protobuf.StringValue');
const tcpProxyType = messageType('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy');

/** The JSON a listener's filter receives in proxy_on_configure, from its ECDS resource. */
function configurationOf(extension: EnvoyMessage): Record<string, unknown> {
  const any = extension.typed_config as { value: Uint8Array };
  const wasm = wasmType.toObject(wasmType.decode(any.value)) as { config: { configuration: { value: Uint8Array } } };
  const value = stringValueType.toObject(stringValueType.decode(wasm.config.configuration.value)) as { value: string };
  return JSON.parse(value.value) as Record<string, unknown>;
}

function tcpProxyClusterOf(listener: EnvoyMessage): string {
  const chain = (listener.filter_chains as Array<{ filters: Array<{ name: string; typed_config?: { value: Uint8Array } }> }>)[0]!;
  const tcp = chain.filters.find((f) => f.name === 'envoy.filters.network.tcp_proxy')!;
  return (tcpProxyType.toObject(tcpProxyType.decode(tcp.typed_config!.value)) as { cluster: string }).cluster;
}

describe('item_listeners: one listener per Kafka broker', () => {
  it('the contract spawns kafka-broker-1 and kafka-broker-2, with the settings plus listener_broker_id', () => {
    const mesh = meshOf(CONTRACT);
    assert.equal(mesh.listeners.length, 1);
    const [bootstrap] = mesh.listeners;
    assert.deepEqual(bootstrap!.routes, [{ target: { kind: 'cluster', cluster: 'kafka-all' } }]);
    assert.equal(bootstrap!.filter?.['listener_broker_id'], undefined, 'the bootstrap listener fronts no single broker');
    const generated = bootstrap!.generated ?? [];
    assert.deepEqual(generated.map((l) => [l.name, l.address, l.port, l.protocol]), [
      ['kafka-broker-1', '0.0.0.0', 19101, 'kafka'],
      ['kafka-broker-2', '0.0.0.0', 19102, 'kafka'],
    ]);
    assert.deepEqual(generated.map((l) => l.routes), [
      [{ target: { kind: 'cluster', cluster: 'kafka-1' } }],
      [{ target: { kind: 'cluster', cluster: 'kafka-2' } }],
    ]);
    assert.deepEqual(generated[1]!.filter, { ...bootstrap!.filter, listener_broker_id: 2 });
  });

  it('translates to three listeners and three filter configs; each broker listener reaches only its broker', () => {
    const resources = translate(meshOf(CONTRACT), 'ads', new Map([['kafka', { name: 'kafka', code: { kind: 'local', path: '/tmp/kafka.wasm' } }]]));
    assert.deepEqual(resources.listeners.map((l) => [l.name, (l.address as { socket_address: { port_value: number } }).socket_address.port_value]), [
      ['kafka', 19092],
      ['kafka-broker-1', 19101],
      ['kafka-broker-2', 19102],
    ]);
    assert.deepEqual(resources.listeners.map(tcpProxyClusterOf), ['kafka-all', 'kafka-1', 'kafka-2']);
    assert.deepEqual(resources.extensions.map((e) => e.name), ['protoplane.wasm.kafka', 'protoplane.wasm.kafka-broker-1', 'protoplane.wasm.kafka-broker-2']);
    const [boot, b1, b2] = resources.extensions.map(configurationOf);
    const settings = {
      advertise: '127.0.0.1',
      brokers: [{ id: 1, port: 19101, cluster: 'kafka-1' }, { id: 2, port: 19102, cluster: 'kafka-2' }],
      acl: { default: 'allow', produce: [{ topic: { prefix: 'secret.' }, action: 'deny' }] },
      topic_metrics: ['orders.'],
    };
    assert.deepEqual(boot, { ...settings, routes: [{ cluster: 'kafka-all' }] });
    assert.deepEqual(b1, { ...settings, listener_broker_id: 1, routes: [{ cluster: 'kafka-1' }] });
    assert.deepEqual(b2, { ...settings, listener_broker_id: 2, routes: [{ cluster: 'kafka-2' }] });
  });

  it('a kafka listener without brokers spawns nothing', () => {
    const mesh = meshOf(CONTRACT.replace(/ {6}brokers:.*\n.*\n.*\n/, ''));
    assert.equal(mesh.listeners[0]!.generated, undefined);
  });

  it('the real Envoy 1.40 accepts the translated listeners and clusters', async () => {
    const resources = translate(meshOf(CONTRACT), 'ads', new Map([['kafka', { name: 'kafka', code: { kind: 'local', path: '/tmp/kafka.wasm' } }]]));
    const result = await envoyValidates(resources);
    assert.ok(result.ok, result.output);
  });

  it('the kafka filter manifest declares its brokers as item listeners', () => {
    const kafka = listFilters().find((m) => m.protocol === 'kafka');
    assert.ok(kafka, 'filters/kafka/filter.json exists');
    assert.deepEqual(kafka.itemListeners, KAFKA_SPAWN);
  });

  it('envoy-configs/mesh.kafka.yaml is valid against the kafka manifest and spawns its two broker listeners', async () => {
    const kafka = listFilters().find((m) => m.protocol === 'kafka')!;
    const file = path.join(REPO_ROOT, 'envoy-configs', 'mesh.kafka.yaml');
    const strict = createMeshParser({ protocols: { kafka: { filter: kafka.settings, match: kafka.match, itemListeners: kafka.itemListeners } } });
    const r = strict(await readFile(file, 'utf8'), file);
    if (!r.ok) assert.fail(r.errors.map(formatConfigError).join('\n'));
    assert.deepEqual(r.mesh.listeners.flatMap((l) => [l, ...(l.generated ?? [])]).map((l) => `${l.name}:${l.port}`), [
      'kafka:19092',
      'kafka-broker-1:19101',
      'kafka-broker-2:19102',
    ]);
  });
});

describe('item_listeners: validation', () => {
  it('a broker port already used by a listener, or by another broker, names both', () => {
    const text = CONTRACT
      .replace('{ id: 2, port: 19102, cluster: kafka-2 }', '{ id: 2, port: 19101, cluster: kafka-2 }')
      .replace('clusters:\n', '  - { name: other, port: 19102, protocol: tcp, routes: [ { cluster: kafka-1 } ] }\n  - { name: dup, port: 19101, protocol: tcp, routes: [ { cluster: kafka-1 } ] }\nclusters:\n');
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:9:26: port 19101 is already used by broker 1 of listener "kafka" on 0.0.0.0 (line 8) (at listeners[0].filter.brokers[1].port)',
      'mesh.yaml:18:24: port 19101 is already used by broker 1 of listener "kafka" on 0.0.0.0 (line 8) (at listeners[2].port)',
    ]);
  });

  it('a broker port already used by an earlier listener', () => {
    const text = CONTRACT.replace('listeners:\n', 'listeners:\n  - { name: first, port: 19102, protocol: tcp, routes: [ { cluster: kafka-1 } ] }\n');
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:10:26: port 19102 is already used by listener "first" on 0.0.0.0 (line 2) (at listeners[1].filter.brokers[1].port)',
    ]);
  });

  it('an undefined broker cluster, with a suggestion', () => {
    assert.deepEqual(errorsOf(CONTRACT.replace('cluster: kafka-2 }', 'cluster: kafka-3 }')), [
      'mesh.yaml:9:42: cluster "kafka-3" is not defined (did you mean "kafka-1"?) (at listeners[0].filter.brokers[1].cluster)',
    ]);
  });

  it('duplicate broker ids', () => {
    assert.deepEqual(errorsOf(CONTRACT.replace('{ id: 2, port: 19102', '{ id: 1, port: 19102')), [
      'mesh.yaml:9:17: duplicate broker id 1 (first at line 8) (at listeners[0].filter.brokers[1].id)',
    ]);
  });

  it('a broker whose listener name is taken', () => {
    const text = CONTRACT.replace('clusters:\n', '  - { name: kafka-broker-2, port: 19200, protocol: tcp, routes: [ { cluster: kafka-1 } ] }\nclusters:\n');
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:9:17: broker id 2 gives listener name "kafka-broker-2", already used by the listener at line 17 (at listeners[0].filter.brokers[1].id)',
    ]);
  });

  it('a broker without a port, a port out of range', () => {
    const text = CONTRACT.replace('{ id: 1, port: 19101, cluster: kafka-1 }', '{ id: 1, cluster: kafka-1 }').replace('port: 19102', 'port: 70000');
    assert.deepEqual(errorsOf(text), [
      'mesh.yaml:8:11: a broker needs "id", "port" and "cluster" (at listeners[0].filter.brokers[0])',
      'mesh.yaml:9:26: port must be an integer from 1 to 65535 (at listeners[0].filter.brokers[1].port)',
    ]);
  });
});
