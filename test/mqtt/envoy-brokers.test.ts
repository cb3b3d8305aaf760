// Real MQTT clients through stock Envoy 1.40 with the mqtt Wasm filter
// (static bootstrap: set_filter_state listener filter + wasm + tcp_proxy) to
// real brokers: mosquitto as broker A (client ids fleet-a-*), aedes as broker
// B (everyone else). mqtt.js 3.1.1 / 5.0 and mosquitto_pub / mosquitto_sub.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { filterWasmPath } from '../../xds-server/catalog/index.ts';
import { freePort, startEnvoy, waitUntil, type EnvoyHandle } from '../support/envoy.ts';
import { connectClient, endClient, mosquittoClient, startAedes, startMosquitto, type Broker } from './brokers.ts';
import { E2E_CONFIG, mqttBootstrap } from './envoy-mqtt.ts';
import { mqttModule } from './replay.ts';


/** The SUBACK codes a subscription got (mqtt.js rejects when one is a failure, with the SUBACK attached). */
async function subackCodes(client: MqttClient, subs: Record<string, { qos: 0 | 1 | 2 }>): Promise<number[]> {
  try {
    return (await client.subscribeAsync(subs)).map((g) => g.qos);
  } catch (err) {
    const packet = (err as { packet?: { granted?: number[] } }).packet;
    if (!packet?.granted) throw err;
    return packet.granted;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Message = { topic: string; payload: string; qos: number; bytes: Buffer };

function collect(client: MqttClient): Message[] {
  const got: Message[] = [];
  client.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString('latin1'), qos: packet.qos, bytes: Buffer.from(payload) }));
  return got;
}

describe('mqtt filter in stock Envoy 1.40 with mosquitto and aedes', { timeout: 120_000 }, () => {
  let envoy: EnvoyHandle;
  let mosquitto: Broker;
  let aedes: Broker;
  let port: number;
  const clients: MqttClient[] = [];

  before(async () => {
    await mqttModule(); // builds build/filters/mqtt.wasm if needed
    mosquitto = await startMosquitto('broker-a');
    aedes = await startAedes('broker-b');
    port = await freePort();
    const adminPort = await freePort();
    envoy = await startEnvoy({
      bootstrapYaml: mqttBootstrap({
        adminPort, listenerPort: port, wasmFile: filterWasmPath('mqtt'), filterConfig: E2E_CONFIG,
        clusters: [{ name: 'broker-a', port: mosquitto.port }, { name: 'broker-b', port: aedes.port }],
      }),
      adminPort,
    });
    await envoy.waitForListener('mqtt');
  });

  after(async () => {
    await Promise.all(clients.map((c) => endClient(c).catch(() => undefined)));
    await envoy?.stop();
    await mosquitto?.close();
    await aedes?.close();
  });

  async function client(id: string, version: 3 | 4 | 5): Promise<MqttClient> {
    const c = await connectClient(port, id, version);
    clients.push(c);
    return c;
  }

  it('routes by client id prefix: fleet-a-* to mosquitto, others to aedes', async () => {
    const ids: Array<[string, 3 | 4 | 5, Broker]> = [
      ['fleet-a-v4', 4, mosquitto], ['fleet-a-v5', 5, mosquitto], ['fleet-a-v3', 3, mosquitto],
      ['other-v4', 4, aedes], ['other-v3', 3, aedes],
    ];
    for (const [id, version] of ids) await client(id, version);
    const pub = await mosquittoClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-i', 'fleet-a-cli', '-t', 'rt/cli', '-m', 'x', '-V', 'mqttv5']);
    assert.equal(pub.code, 0, pub.stderr);
    const pub4 = await mosquittoClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-i', 'other-cli', '-t', 'rt/cli', '-m', 'x', '-V', 'mqttv311']);
    assert.equal(pub4.code, 0, pub4.stderr);
    await waitUntil(() => mosquitto.clientIds().includes('fleet-a-cli') && aedes.clientIds().includes('other-cli'), 5000, 'the CLI clients at their brokers');
    for (const [id, , broker] of ids) {
      assert.ok(broker.clientIds().includes(id), `${id} at ${broker.name}`);
      const other = broker === mosquitto ? aedes : mosquitto;
      assert.ok(!other.clientIds().includes(id), `${id} not at ${other.name}`);
    }
    assert.ok(!aedes.clientIds().includes('fleet-a-cli') && !mosquitto.clientIds().includes('other-cli'));
  });

  it('carries QoS 0, 1 and 2 publish/subscribe round trips (3.1.1 and 5.0 on mosquitto, 3.1.1 on aedes)', async () => {
    const cases: Array<[string, 4 | 5]> = [['fleet-a-rt5', 5], ['fleet-a-rt4', 4], ['other-rt4', 4]];
    for (const [prefix, version] of cases) {
      const sub = await client(`${prefix}-sub`, version);
      const got = collect(sub);
      const granted = await sub.subscribeAsync(`rt/${prefix}/#`, { qos: 2 });
      assert.deepEqual(granted.map((g) => g.qos), [2]);
      const pub = await client(`${prefix}-pub`, version);
      for (const qos of [0, 1, 2] as const) await pub.publishAsync(`rt/${prefix}/q${qos}`, `m${qos}`, { qos });
      await waitUntil(() => got.length >= 3, 5000, `${prefix}: 3 messages`);
      assert.deepEqual(got.map((m) => [m.topic, m.payload, m.qos]).sort(), [0, 1, 2].map((q) => [`rt/${prefix}/q${q}`, `m${q}`, q]));
      // a payload far larger than Envoy's read chunks: skipped by count in both directions
      const big = Buffer.alloc(300_000);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 255;
      await pub.publishAsync(`rt/${prefix}/big`, big, { qos: 1 });
      await waitUntil(() => got.length >= 4, 5000, `${prefix}: the big message`);
      assert.equal(got[3]!.topic, `rt/${prefix}/big`);
      assert.ok(got[3]!.bytes.equals(big), 'the big payload arrived intact');
    }
  });

  it('mosquitto_sub receives through the filter what mosquitto_pub sends through it', async () => {
    const sub = mosquittoClient('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-i', 'fleet-a-msub', '-t', 'rt/cli/+', '-q', '2', '-C', '2', '-W', '10', '-V', 'mqttv5', '-v']);
    await waitUntil(() => mosquitto.clientIds().includes('fleet-a-msub'), 5000, 'mosquitto_sub connected');
    await sleep(200); // its SUBSCRIBE
    for (const qos of ['1', '2']) {
      const r = await mosquittoClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-i', `fleet-a-mpub${qos}`, '-t', `rt/cli/${qos}`, '-m', `hello${qos}`, '-q', qos, '-V', 'mqttv5']);
      assert.equal(r.code, 0, r.stderr);
    }
    const out = await sub;
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(out.stdout.trim().split('\n').sort(), ['rt/cli/1 hello1', 'rt/cli/2 hello2']);
  });

  it('keeps ACL-denied publishes from the broker and gives the client the protocol’s refusal', async () => {
    const watch = await connectClient(mosquitto.port, 'watcher', 5); // directly on broker A
    clients.push(watch);
    const seen = collect(watch);
    await watch.subscribeAsync('#', { qos: 2 });

    const v5 = await client('fleet-a-deny5', 5);
    await v5.publishAsync('secret/q0', 'x', { qos: 0 }); // dropped silently
    await assert.rejects(v5.publishAsync('secret/q1', 'x', { qos: 1 }), (err: Error & { code?: number }) => err.code === 0x87 && /Not authorized/.test(err.message));
    await assert.rejects(v5.publishAsync('secret/q2', 'x', { qos: 2 }), (err: Error & { code?: number }) => err.code === 0x87);
    // a denied PUBLISH larger than Envoy's read chunks is dropped whole
    await assert.rejects(v5.publishAsync('secret/big', Buffer.alloc(300_000, 1), { qos: 1 }), (err: Error & { code?: number }) => err.code === 0x87);
    const v4 = await client('fleet-a-deny4', 4);
    await v4.publishAsync('secret/v4q1', 'x', { qos: 1 }); // 3.1.1 has no negative ack: acked and dropped
    await v4.publishAsync('secret/v4q2', 'x', { qos: 2 }); // PUBREC, PUBREL, PUBCOMP all from the proxy
    const cli = await mosquittoClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-i', 'fleet-a-denycli', '-t', 'secret/cli', '-m', 'x', '-q', '1', '-V', 'mqttv5']);
    assert.match(cli.stdout + cli.stderr, /not authori[sz]ed/i, 'mosquitto_pub reports the refusal');

    // allowed traffic still flows on the same connection afterwards
    await v5.publishAsync('rt/after', 'ok', { qos: 1 });
    await waitUntil(() => seen.some((m) => m.topic === 'rt/after'), 5000, 'rt/after at the broker');
    await sleep(100);
    assert.deepEqual(seen.filter((m) => m.topic.startsWith('secret')), [], 'no denied message at the broker');
    assert.deepEqual(mosquitto.publishedTopics().filter((t) => t.startsWith('secret')), [], 'mosquitto never received a denied PUBLISH');
  });

  it('refuses denied subscriptions with 0x87 (5.0) / 0x80 (3.1.1) in the SUBACK', async () => {
    const v5 = await client('fleet-a-sub5', 5);
    assert.deepEqual(await subackCodes(v5, { 'rt/ok5': { qos: 1 }, 'secret/#': { qos: 1 } }), [1, 0x87]);
    const v4 = await client('other-sub4', 4);
    assert.deepEqual(await subackCodes(v4, { 'rt/ok4': { qos: 2 }, 'secret/x': { qos: 0 } }), [2, 0x80]);
    assert.deepEqual(await subackCodes(v4, { 'secret/+/y': { qos: 1 } }), [0x80]);
    // the allowed half works
    const msgs = collect(v5);
    const p = await client('fleet-a-subpub', 5);
    await p.publishAsync('rt/ok5', 'yes', { qos: 1 });
    await waitUntil(() => msgs.some((m) => m.topic === 'rt/ok5'), 5000, 'rt/ok5 delivered');
  });

  it('shows the filter’s counters in Envoy’s /stats and logs one line per closed connection', async () => {
    await Promise.all(clients.splice(0).map((c) => endClient(c)));
    await envoy.waitForStat('wasmcustom.mqtt.active_connections', (v) => v === 0);
    const stats = await envoy.stats();
    const s = (name: string) => stats.get(`wasmcustom.mqtt.${name}`) ?? -1;
    assert.ok(s('route.broker-a') >= 10, `route.broker-a ${s('route.broker-a')}`);
    assert.ok(s('route.broker-b') >= 4, `route.broker-b ${s('route.broker-b')}`);
    assert.equal(s('connections'), s('route.broker-a') + s('route.broker-b'));
    assert.equal(s('downstream.connect'), s('connections'));
    assert.ok(s('downstream.subscribe') >= 6 && s('upstream.suback') >= 5, 'subscribes and subacks');
    assert.ok(s('acl.publish_denied') >= 6, `acl.publish_denied ${s('acl.publish_denied')}`);
    assert.equal(s('refusal.puback'), 4); // v5 q1, v5 big, v4 q1, mosquitto_pub
    assert.equal(s('refusal.pubrec'), 2);
    assert.equal(s('refusal.pubcomp'), 1);
    assert.equal(s('publish_dropped'), 1);
    assert.equal(s('acl.subscribe_denied'), 3);
    assert.equal(s('suback_rewritten'), 2);
    assert.equal(s('refusal.suback'), 1);
    assert.ok(s('topic.rt_.downstream.messages') >= 12 && s('topic.rt_.upstream.messages') >= 11);
    assert.ok(s('downstream.bytes') > 0 && s('upstream.bytes') > 0);
    for (const [name, value] of stats) if (/^wasmcustom\.mqtt\.(malformed|limit)\./.test(name)) assert.equal(value, 0, name);
    assert.ok((stats.get('tcp.mqtt.early_data_received_count_total') ?? 0) >= s('connections'));
    const log = readFileSync(envoy.logPath, 'utf8');
    const closeLines = log.split('\n').filter((l) => l.includes('mqtt: connection closed'));
    assert.equal(closeLines.length, s('connections'), 'one close line per connection');
    assert.ok(closeLines.some((l) => /client_id="fleet-a-deny5" cluster=broker-a reason="client sent DISCONNECT"/.test(l)), closeLines.join('\n'));
  });
});

describe('mqtt filter in stock Envoy 1.40: CONNECT timeout', { timeout: 60_000 }, () => {
  let envoy: EnvoyHandle;
  let aedes: Broker;
  let port: number;

  before(async () => {
    await mqttModule();
    aedes = await startAedes('broker-b');
    port = await freePort();
    const adminPort = await freePort();
    envoy = await startEnvoy({
      bootstrapYaml: mqttBootstrap({
        adminPort, listenerPort: port, wasmFile: filterWasmPath('mqtt'), filterConfig: { limits: { connect_timeout_ms: 400 } },
        clusters: [{ name: 'broker-b', port: aedes.port }],
      }),
      adminPort,
    });
    await envoy.waitForListener('mqtt');
  });

  after(async () => {
    await envoy?.stop();
    await aedes?.close();
  });

  /** Opens a raw connection, writes `bytes`, resolves with how long until Envoy closed it. */
  function closedAfter(bytes: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      const start = Date.now();
      const socket = tcpConnect(port, '127.0.0.1', () => { if (bytes.length > 0) socket.write(bytes); });
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(Date.now() - start));
      setTimeout(() => { socket.destroy(); reject(new Error('not closed within 10 s')); }, 10_000);
    });
  }

  it('closes a client that never completes CONNECT (from the root tick, via the effective context) and keeps a connected one', async () => {
    const c = await connectClient(port, 'on-time', 4);
    const half = Buffer.from([0x10, 0x20, 0x00, 0x04, 0x4d, 0x51]); // the start of a CONNECT
    const [idleMs, halfMs] = await Promise.all([closedAfter(new Uint8Array(0)), closedAfter(half)]);
    for (const ms of [idleMs, halfMs]) assert.ok(ms >= 350 && ms < 3000, `closed after ${ms} ms`);
    await sleep(500);
    assert.equal(c.connected, true, 'the connected client stays');
    await c.publishAsync('t/x', 'still here', { qos: 1 });
    await endClient(c);
    await envoy.waitForStat('wasmcustom.mqtt.active_connections', (v) => v === 0);
    const stats = await envoy.stats();
    assert.equal(stats.get('wasmcustom.mqtt.connect_timeout'), 2);
    assert.equal(stats.get('wasmcustom.mqtt.closed_by_filter'), 2);
    const lines = readFileSync(envoy.logPath, 'utf8').split('\n').filter((l) => l.includes('mqtt: connection closed'));
    assert.equal(lines.filter((l) => l.includes('reason="connect timeout"')).length, 2, lines.join('\n'));
    assert.ok(lines.some((l) => /client_id="on-time" .*reason="client sent DISCONNECT"/.test(l)), lines.join('\n'));
  });
});
