// Differential test against tshark: real client traffic (mqtt.js 3.1 /
// 3.1.1 / 5.0, mosquitto_pub, mosquitto_sub) to a real mosquitto goes
// through a recording TCP relay; the recorded chunks become a pcap that
// tshark decodes, and the same chunks run through the filter in the
// in-process host. Every packet the filter reports must equal tshark's
// decode, field by field.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { connectClient, endClient, mosquittoClient, startMosquitto, type Broker } from './brokers.ts';
import { E2E_CONFIG } from './envoy-mqtt.ts';
import { startRecordingRelay, toPcap, tsharkDecode, type Relay, type TsharkPdu } from './pcap.ts';
import { replayMqtt, type MqttPacketRecord } from './replay.ts';
import { REPO_ROOT } from '../support/envoy.ts';

const exec = promisify(execFile);

const TYPES = ['reserved', 'connect', 'connack', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'subscribe', 'suback', 'unsubscribe', 'unsuback', 'pingreq', 'pingresp', 'disconnect', 'auth'];
const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
const bool = (v: string | string[] | undefined) => one(v) === '1' || one(v) === 'True' || one(v) === 'true';
const num = (v: string | string[] | undefined) => Number(one(v));

/** The filter's record reduced to what tshark shows for a PDU, and tshark's PDU in the same shape. */
function fromTshark(p: TsharkPdu, version: number): Record<string, unknown> {
  const f = p.fields;
  const type = TYPES[num(f['mqtt.msgtype'])]!;
  const r: Record<string, unknown> = { dir: p.dir, type, length: num(f['mqtt.len']) };
  switch (type) {
    case 'connect':
      Object.assign(r, {
        protocol: one(f['mqtt.protoname']), level: num(f['mqtt.ver']), client_id: one(f['mqtt.clientid']) ?? '',
        clean_start: bool(f['mqtt.conflag.cleansess']), keep_alive: num(f['mqtt.kalive']), password: bool(f['mqtt.conflag.passwd']),
      });
      if (bool(f['mqtt.conflag.uname'])) r.username = one(f['mqtt.username']) ?? '';
      if (bool(f['mqtt.conflag.willflag'])) Object.assign(r, { will_topic: one(f['mqtt.willtopic']), will_qos: num(f['mqtt.conflag.qos']), will_retain: bool(f['mqtt.conflag.retain']) });
      break;
    case 'connack':
      Object.assign(r, { session_present: bool(f['mqtt.conack.flags.sp']), reason: num(f[version === 5 ? 'mqtt.connack.reason_code' : 'mqtt.conack.val']) });
      break;
    case 'publish': {
      Object.assign(r, { topic: one(f['mqtt.topic']) ?? '', qos: num(f['mqtt.qos']), retain: bool(f['mqtt.retain']), dup: bool(f['mqtt.dupflag']) });
      const msg = one(f['mqtt.msg']);
      r.payload_length = msg === undefined || msg === '' ? 0 : msg.split(':').length;
      if (f['mqtt.property.topic_alias'] !== undefined) r.topic_alias = num(f['mqtt.property.topic_alias']);
      if (r.qos !== 0) r.packet_id = num(f['mqtt.msgid']);
      break;
    }
    case 'puback': case 'pubrec': case 'pubrel': case 'pubcomp':
      r.packet_id = num(f['mqtt.msgid']);
      if (f[`mqtt.${type}.reason_code`] !== undefined) r.reason = num(f[`mqtt.${type}.reason_code`]);
      break;
    case 'subscribe': {
      const qos = version === 5 ? list(f['mqtt.subscription_options_qos']) : list(f['mqtt.sub.qos']);
      r.packet_id = num(f['mqtt.msgid']);
      r.filters = list(f['mqtt.topic']).map((t, i) => ({ filter: t, qos: Number(qos[i]) }));
      break;
    }
    case 'unsubscribe':
      r.packet_id = num(f['mqtt.msgid']);
      r.filters = list(f['mqtt.topic']).map((t) => ({ filter: t }));
      break;
    case 'suback':
      r.packet_id = num(f['mqtt.msgid']);
      r.codes = list(f[version === 5 ? 'mqtt.suback.reason_code' : 'mqtt.suback.qos']).map(Number);
      break;
    case 'unsuback':
      r.packet_id = num(f['mqtt.msgid']);
      if (version === 5) r.codes = list(f['mqtt.unsuback.reason_code']).map(Number);
      break;
    case 'disconnect': case 'auth':
      if (version === 5) r.reason = num(f[`mqtt.${type}.reason_code`] ?? '0');
      break;
  }
  return r;
}

function fromFilter(p: MqttPacketRecord, shape: Record<string, unknown>): Record<string, unknown> {
  const r: Record<string, unknown> = {};
  for (const key of Object.keys(shape)) {
    if (key === 'filters' && Array.isArray(p.filters)) {
      r.filters = (p.filters as Array<Record<string, unknown>>).map((x) => (p.type === 'subscribe' ? { filter: x.filter, qos: x.qos } : { filter: x.filter }));
    } else {
      r[key] = p[key];
    }
  }
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('mqtt filter agrees with tshark on real client traffic', { timeout: 90_000 }, () => {
  let broker: Broker;
  let relay: Relay;
  let dir: string;
  const versions: number[] = []; // protocol version of each recorded connection

  before(async () => {
    broker = await startMosquitto();
    relay = await startRecordingRelay(broker.port);
    dir = mkdtempSync(path.join(os.tmpdir(), 'protoplane-tshark-'));

    const big = Buffer.alloc(100_000, 0x5a);
    // mqtt.js 5.0: properties, topic alias, will, options, big payload, unicode topic
    {
      const c: MqttClient = await connectClient(relay.port, 'fleet-a-tsh5', 5, {
        username: 'alice', password: Buffer.from('pw'), clean: true, keepalive: 45,
        properties: { sessionExpiryInterval: 120, receiveMaximum: 50, maximumPacketSize: 1_000_000, topicAliasMaximum: 5 },
        will: { topic: 'wills/tsh5', payload: Buffer.from('gone'), qos: 1, retain: false, properties: { willDelayInterval: 2 } },
      });
      await c.subscribeAsync({ 'tsh/5/+': { qos: 2, nl: true }, 'tsh/5/big/#': { qos: 1, rap: true, rh: 1 } });
      await c.publishAsync('tsh/5/a', 'q0', { qos: 0 });
      await c.publishAsync('tsh/5/a', 'q1', { qos: 1, properties: { topicAlias: 2, userProperties: { k: 'v' } } });
      await c.publishAsync('tsh/5/a', 'q2', { qos: 2, properties: { topicAlias: 2 } });
      await c.publishAsync('tsh/5/ünï/π', 'utf8', { qos: 1, retain: true });
      await c.publishAsync('tsh/5/big/x', big, { qos: 1 });
      await c.publishAsync('tsh/5/ünï/π', '', { qos: 1, retain: true });
      await c.unsubscribeAsync(['tsh/5/+', 'tsh/5/big/#']);
      await sleep(100);
      await endClient(c);
      versions.push(5);
    }
    // mqtt.js 3.1.1 with a PINGREQ (keepalive 1 s)
    {
      const c = await connectClient(relay.port, 'other-tsh4', 4, { clean: false, keepalive: 1, will: { topic: 'wills/tsh4', payload: Buffer.from('x'), qos: 2, retain: true } });
      await c.subscribeAsync({ 'tsh/4/#': { qos: 2 }, 'tsh/4/x': { qos: 0 } });
      for (const qos of [0, 1, 2] as const) await c.publishAsync(`tsh/4/q${qos}`, `m${qos}`, { qos });
      await sleep(1600);
      await c.unsubscribeAsync('tsh/4/#');
      await endClient(c);
      versions.push(4);
    }
    // mqtt.js 3.1 (MQIsdp)
    {
      const c = await connectClient(relay.port, 'tsh3', 3, { username: 'bob' });
      await c.subscribeAsync('tsh/3', { qos: 1 });
      await c.publishAsync('tsh/3', 'v31', { qos: 1 });
      await sleep(100);
      await endClient(c);
      versions.push(3);
    }
    // mosquitto_sub (5.0) receives one message that mosquitto_pub (3.1.1, QoS 2, retained) sends
    {
      const sub = mosquittoClient('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(relay.port), '-i', 'fleet-a-msub', '-t', 'tsh/cli', '-q', '1', '-C', '1', '-W', '10', '-V', 'mqttv5']);
      await sleep(300);
      const pub = await mosquittoClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(relay.port), '-i', 'cli-pub', '-t', 'tsh/cli', '-m', 'from the cli', '-q', '2', '-V', 'mqttv311']);
      assert.equal(pub.code, 0, pub.stderr);
      const out = await sub;
      assert.equal(out.stdout.trim(), 'from the cli');
      await sleep(100);
      versions.push(5, 4);
    }
  });

  after(async () => {
    await relay?.close();
    await broker?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reports the same packets and fields as tshark for every recorded connection', async () => {
    assert.equal(relay.connections.length, versions.length);
    const file = path.join(dir, 'mqtt.pcap');
    writeFileSync(file, toPcap(relay.connections));
    const pdus = await tsharkDecode(file);
    let compared = 0;
    for (const conn of relay.connections) {
      const version = versions[conn.id]!;
      const fromTs = pdus.filter((p) => p.stream === conn.id).map((p) => fromTshark(p, version));
      const host = await replayMqtt(conn.steps);
      assert.equal(host.closed, undefined, `connection ${conn.id} closed by the filter: ${host.logs.join(' | ')}`);
      // the replay is one direction's chunk after the other's as recorded, so order per direction
      for (const d of ['downstream', 'upstream'] as const) {
        const ts = fromTs.filter((p) => p.dir === d);
        const ours = host.packets.filter((p) => p.dir === d);
        assert.equal(ours.length, ts.length, `connection ${conn.id} ${d}: ${ours.length} packets vs tshark's ${ts.length}\n${ours.map((p) => p.type)}\n${ts.map((p) => p.type)}`);
        ts.forEach((t, i) => {
          assert.deepEqual(fromFilter(ours[i]!, t), t, `connection ${conn.id} ${d} packet ${i}`);
          compared++;
        });
      }
    }
    const types = new Set(pdus.map((p) => TYPES[num(p.fields['mqtt.msgtype'])]));
    for (const t of ['connect', 'connack', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'subscribe', 'suback', 'unsubscribe', 'unsuback', 'pingreq', 'pingresp', 'disconnect']) {
      assert.ok(types.has(t), `the capture has a ${t}`);
    }
    assert.ok(compared >= 60, `${compared} packets compared`);
  });

  it('routes the recorded connections in the host as the Envoy test expects', async () => {
    const expected = ['broker-a', 'broker-b', 'broker-b', 'broker-a', 'broker-b'];
    for (const conn of relay.connections) {
      const r = await replayMqtt(conn.steps.filter((s) => s.dir === 'downstream'), { configuration: E2E_CONFIG });
      assert.equal(r.cluster, expected[conn.id], `connection ${conn.id}`);
    }
  });

  it('protoplane replay, with no flags, prints every client id, topic and subscription filter tshark decodes (pcap and pcapng)', async () => {
    const pcap = path.join(dir, 'replay.pcap');
    writeFileSync(pcap, toPcap(relay.connections));
    const pcapng = path.join(dir, 'replay.pcapng');
    await exec('editcap', ['-F', 'pcapng', pcap, pcapng]);
    const pdus = await tsharkDecode(pcap);
    const want = { client_id: new Set<string>(), topic: new Set<string>(), filter: new Set<string>() };
    for (const p of pdus) {
      const type = TYPES[num(p.fields['mqtt.msgtype'])];
      if (type === 'connect') want.client_id.add(one(p.fields['mqtt.clientid']) ?? '');
      if (type === 'publish') want.topic.add(one(p.fields['mqtt.topic']) ?? '');
      if (type === 'subscribe' || type === 'unsubscribe') for (const f of list(p.fields['mqtt.topic'])) want.filter.add(f);
    }
    want.topic.delete(''); // a 5.0 PUBLISH by topic alias alone has no topic on the wire
    assert.ok(want.client_id.size >= 5 && want.topic.size >= 5 && want.filter.size >= 4, 'tshark decoded the capture');
    for (const file of [pcap, pcapng]) {
      const { stdout } = await exec(path.join(REPO_ROOT, 'bin/protoplane'), ['replay', '--filter', 'mqtt', file], { cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024 });
      const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown> & { conn: number });
      const got = { client_id: new Set<string>(), topic: new Set<string>(), filter: new Set<string>() };
      for (const line of lines) {
        assert.equal(typeof line.conn, 'number', JSON.stringify(line));
        const p = line; // the filter's fields sit at the top level beside conn
        assert.ok(p.direction === 'downstream' || p.direction === 'upstream', JSON.stringify(line));
        if (p.type === 'connect') got.client_id.add(p.client_id as string);
        if (p.type === 'publish' && p.topic !== '') got.topic.add(p.topic as string);
        if (p.type === 'subscribe' || p.type === 'unsubscribe') for (const f of p.filters as Array<{ filter: string }>) got.filter.add(f.filter);
      }
      assert.deepEqual(new Set(lines.map((l) => l.conn)).size, relay.connections.length, `${path.basename(file)}: a line for every connection`);
      assert.equal(lines.filter((l) => l.type !== undefined).length, pdus.length, `${path.basename(file)}: one line per MQTT packet tshark decodes`);
      for (const key of ['client_id', 'topic', 'filter'] as const) assert.deepEqual([...got[key]].sort(), [...want[key]].sort(), `${path.basename(file)}: ${key}s`);
    }
  });
});
