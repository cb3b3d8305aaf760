// The MQTT filter driven by the control plane: a `protocol: mqtt` listener in
// mesh.yaml reaches stock Envoy over ADS + ECDS, routes clients by id prefix
// to two real brokers (mosquitto and aedes), and enforces a topic ACL; an
// ACL edit hot-swaps without draining the listener.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, endClient, startAedes, startMosquitto, type Broker } from '../mqtt/brokers.ts';
import { freePort, waitUntil, type EnvoyHandle } from '../support/envoy.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';

function meshYaml(port: number, a: Broker, b: Broker, denied: string): string {
  return `listeners:
  - name: mqtt
    port: ${port}
    protocol: mqtt
    filter:
      acl:
        default: allow
        publish:
          - { topic: "${denied}", action: deny }
    routes:
      - match: { client_id: { prefix: fleet-a- } }
        cluster: broker-a
      - cluster: broker-b
clusters:
  - { name: broker-a, endpoints: [ 127.0.0.1:${a.port} ] }
  - { name: broker-b, endpoints: [ 127.0.0.1:${b.port} ] }
`;
}

describe('MQTT listener from mesh.yaml, through stock Envoy, to real brokers', () => {
  let a: Broker;
  let b: Broker;
  let port = 0;
  let env: MeshEnv;
  let envoy: EnvoyHandle;
  const write = (text: string) => env.write(text);

  before(async () => {
    a = await startMosquitto('broker-a');
    b = await startAedes('broker-b');
    port = await freePort();
    env = await startMeshEnv({ yaml: meshYaml(port, a, b, 'secret/#'), nodeId: 'mqtt-envoy', bootstrap: { delta: true }, listeners: ['mqtt'] });
    ({ envoy } = env);
  });

  after(async () => {
    await env?.close();
    await a?.close();
    await b?.close();
  });

  it('routes at CONNECT by client id prefix (checked on each broker)', async () => {
    const fleet = await connectClient(port, 'fleet-a-1', 5);
    const other = await connectClient(port, 'other-1', 4);
    await waitUntil(() => a.clientIds().includes('fleet-a-1') && b.clientIds().includes('other-1'), 5000, 'clients on their brokers');
    assert.ok(!b.clientIds().includes('fleet-a-1'));
    assert.ok(!a.clientIds().includes('other-1'));
    await endClient(fleet);
    await endClient(other);
  });

  it('refuses a denied publish with the protocol’s own answer; the broker never sees it', async () => {
    const client = await connectClient(port, 'fleet-a-2', 5);
    const refused = await client.publishAsync('secret/plans', 'x', { qos: 1 }).then(
      () => undefined,
      (error: { code?: number }) => error,
    );
    assert.equal(refused?.code, 0x87);
    await client.publishAsync('public/news', 'y', { qos: 1 });
    await waitUntil(() => a.publishedTopics().includes('public/news'), 5000, 'allowed publish reached the broker');
    assert.ok(!a.publishedTopics().includes('secret/plans'));
    await endClient(client);
  });

  it('hot-swaps an ACL edit over ECDS without draining the listener', async () => {
    const modified = await envoy.stat('listener_manager.listener_modified');
    write(meshYaml(port, a, b, 'public/#'));
    await waitUntil(
      async () => {
        const client = await connectClient(port, 'fleet-a-3', 5);
        const result = await client.publishAsync('public/again', 'z', { qos: 1 }).then(() => 'ok', () => 'refused');
        await endClient(client);
        return result === 'refused';
      },
      15_000,
      'the new ACL applies to new connections',
    );
    assert.equal(await envoy.stat('listener_manager.listener_modified'), modified);
    // Envoy counts the denials (secret/plans before the edit, public/again after it).
    await envoy.waitForStat('wasmcustom.mqtt.acl.publish_denied', (v) => v >= 2, 5000);
  });
});
