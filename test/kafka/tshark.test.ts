// Differential test against tshark's Kafka dissector. Captures of real client
// traffic (dumpcap on loopback) are decoded by tshark and replayed through the
// kafka filter with `bin/protoplane replay --filter kafka CAPTURE`; every
// request and response the filter reports must match tshark's decode: API key,
// version, correlation id, size, client id, the topics of the requests whose
// topics tshark decodes, and the broker addresses of Metadata responses.
//  - the committed fixtures (test/kafka/record-fixtures.ts): kcat, kafkajs and
//    Kafka 4.2's Java clients against Kafka 4.2, kcat against Kafka 3.9;
//  - a capture made here, of kcat, kafkajs and the Java clients talking to
//    stock Envoy with the filter (so the Metadata tshark decodes is the
//    rewritten one, naming Envoy's broker listeners).
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { readConversations } from '../../xds-server/replay/index.ts';
import { stopChild } from '../support/children.ts';
import { REPO_ROOT, waitUntil } from '../support/envoy.ts';
import { kcat, runKafkaTool, startKafka, type KafkaCluster } from './brokers.ts';
import { startKafkaMesh, type KafkaMesh } from './mesh.ts';

const run = promisify(execFile);
const FIXTURES = path.join(REPO_ROOT, 'test', 'kafka', 'fixtures');

/** What both sides are compared on, for one Kafka request or response. */
interface Pdu {
  conn: number;
  type: 'request' | 'response';
  api_key: number;
  api_version: number;
  correlation_id: number;
  size: number;
  client_id?: string | null;
  /** Only where tshark decoded the body (see `decoded`). */
  topics?: string[];
  brokers?: string[];
  /** tshark decoded this message's body (its dissector knows the version). */
  decoded: boolean;
}

/** Requests whose topics the filter reports and tshark decodes (when it knows the version). */
const TOPIC_APIS = new Set([0, 1, 2, 3, 8, 9]); // Produce, Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch

type Tree = Record<string, unknown>;

/** Every value of `key` anywhere under `node`. */
function collect(node: unknown, key: string, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const n of node) collect(n, key, out);
  else if (typeof node === 'object' && node !== null) {
    for (const [k, v] of Object.entries(node)) {
      if (k === key) (Array.isArray(v) ? v : [v]).forEach((x) => typeof x === 'string' && out.push(x));
      else collect(v, key, out);
    }
  }
  return out;
}

/**
 * Whether tshark decoded a message's body: its dissector knows only older
 * versions (tshark 4.0: Metadata to v9, Produce to v8, ...) and says so with an
 * expert item ("Unsupported Metadata version", "Unknown 68 API key"), or it
 * hit an exception in the body ("Malformed Packet"); then only the header counts.
 */
function bodyDecoded(pdu: Tree, frameMalformed: boolean): boolean {
  if (frameMalformed) return false;
  return !collect(pdu, '_ws.expert.message').some((m) => /Unsupported|Unknown|Malformed|does not end|Invalid/i.test(m));
}

async function tsharkPdus(capture: string, serverPorts: number[]): Promise<{ pdus: Pdu[]; malformed: number }> {
  const decodeAs = serverPorts.flatMap((p) => ['-d', `tcp.port==${p},kafka`]);
  const { stdout } = await run('tshark', ['-r', capture, ...decodeAs, '-T', 'json', '--no-duplicate-keys', '-J', 'tcp kafka _ws'], { maxBuffer: 512 * 1024 * 1024 });
  const frames = JSON.parse(stdout) as Array<{ _source: { layers: Tree } }>;
  const pdus: Pdu[] = [];
  let malformed = 0;
  for (const frame of frames) {
    const layers = frame._source.layers;
    const frameMalformed = JSON.stringify(layers).includes('_ws.malformed');
    if (frameMalformed) malformed++;
    if (!layers.kafka) continue;
    const tcp = layers.tcp as Tree;
    const stream = Number(tcp['tcp.stream']);
    const fromServer = serverPorts.includes(Number(tcp['tcp.srcport']));
    for (const pdu of (Array.isArray(layers.kafka) ? layers.kafka : [layers.kafka]) as Tree[]) {
      const request = !fromServer;
      const num = (k: string) => Number(pdu[k]);
      const apiKey = num(request ? 'kafka.request_key' : 'kafka.response_key');
      const decoded = bodyDecoded(pdu, frameMalformed);
      const out: Pdu = {
        conn: stream,
        type: request ? 'request' : 'response',
        api_key: apiKey,
        api_version: num(request ? 'kafka.request.version' : 'kafka.response.version'),
        correlation_id: num('kafka.correlation_id'),
        size: num('kafka.len') + 4,
        decoded,
      };
      if (request) {
        const id = pdu['kafka.client_id'];
        out.client_id = id === undefined || id === '[ Null ]' ? null : String(id);
        if (decoded && TOPIC_APIS.has(apiKey)) out.topics = [...new Set(collect(pdu, 'kafka.topic_name'))].sort();
      } else if (apiKey === 3 && decoded) {
        const brokers = (pdu['Broker Metadata'] ?? {}) as Tree;
        out.brokers = Object.values(brokers).map((b) => `${(b as Tree)['kafka.node_id']}@${(b as Tree)['kafka.host']}:${(b as Tree)['kafka.port']}`).sort();
      }
      pdus.push(out);
    }
  }
  return { pdus, malformed };
}

async function filterPdus(capture: string): Promise<Pdu[]> {
  const { stdout } = await run(path.join(REPO_ROOT, 'bin', 'protoplane'), ['replay', '--filter', 'kafka', capture], { cwd: REPO_ROOT, maxBuffer: 512 * 1024 * 1024 });
  const out: Pdu[] = [];
  for (const line of stdout.split('\n')) {
    if (!line) continue;
    // The protocol's own field names at the top level beside conn (api_key, correlation_id, ...).
    const packet = JSON.parse(line) as Tree & { conn: number; event?: string };
    if (packet.event !== undefined || packet.api_key === undefined) continue;
    const conn = packet.conn;
    const type = packet.type as 'request' | 'response';
    const pdu: Pdu = {
      conn,
      type,
      api_key: packet.api_key as number,
      api_version: packet.api_version as number,
      correlation_id: packet.correlation_id as number,
      size: packet.size as number,
      decoded: true,
    };
    if (type === 'request') {
      pdu.client_id = (packet.client_id as string | null | undefined) ?? null;
      if (TOPIC_APIS.has(pdu.api_key)) pdu.topics = [...new Set((packet.topics as string[] | undefined) ?? [])].sort();
    } else if (pdu.api_key === 3) {
      pdu.brokers = ((packet.brokers as Array<{ node_id: number; host: string; port: number }> | undefined) ?? []).map((b) => `${b.node_id}@${b.host}:${b.port}`).sort();
    }
    out.push(pdu);
  }
  return out;
}

/**
 * Both decodes, connection by connection (both number them in capture order),
 * each tshark message against the filter's message of the same direction and
 * correlation id; tshark's body fields only where it decoded the body. tshark
 * may lose a message after one it failed to decode; the filter reports every one.
 */
function compare(fromTshark: Pdu[], fromFilter: Pdu[]): { compared: number; bodies: number; tsharkMissed: number } {
  const byConn = (pdus: Pdu[]) => {
    const m = new Map<number, Pdu[]>();
    for (const p of pdus) m.set(p.conn, [...(m.get(p.conn) ?? []), p]);
    return [...m.values()];
  };
  // A response to a request tshark could not decode has no API key in tshark ("Request missing").
  const shape = (p: Pdu, withBody: boolean, withKey: boolean) => ({
    type: p.type, correlation_id: p.correlation_id, size: p.size,
    ...(withKey ? { api_key: p.api_key, api_version: p.api_version } : {}),
    ...(p.type === 'request' ? { client_id: p.client_id } : {}),
    ...(withBody && p.topics ? { topics: p.topics } : {}),
    ...(withBody && p.brokers ? { brokers: p.brokers } : {}),
  });
  const t = byConn(fromTshark);
  const f = byConn(fromFilter);
  assert.equal(f.length, t.length, 'connections');
  let compared = 0;
  let bodies = 0;
  let tsharkMissed = 0;
  let keyless = 0;
  t.forEach((conn, c) => {
    const mine = new Map(f[c]!.map((p) => [`${p.type}:${p.correlation_id}`, p]));
    assert.equal(mine.size, f[c]!.length, `connection ${c + 1}: the filter reports each correlation id once per direction`);
    for (const tp of conn) {
      const fp = mine.get(`${tp.type}:${tp.correlation_id}`);
      assert.ok(fp, `connection ${c + 1}: the filter reports tshark's ${tp.type} ${tp.correlation_id} (api ${tp.api_key} v${tp.api_version})`);
      const body = tp.decoded && (tp.topics !== undefined || tp.brokers !== undefined);
      if (body) bodies++;
      const withKey = !Number.isNaN(tp.api_key);
      if (!withKey) keyless++;
      assert.deepEqual(shape(fp, body, withKey), shape(tp, body, withKey), `connection ${c + 1}, ${tp.type} ${tp.correlation_id}`);
      compared++;
    }
    tsharkMissed += f[c]!.length - conn.length;
    assert.ok(f[c]!.length >= conn.length);
  });
  assert.ok(keyless * 4 <= compared, `tshark lost the request of ${keyless} of ${compared} responses`);
  return { compared, bodies, tsharkMissed };
}

/** The server ports of a capture (the side the first segment went to). */
function serverPorts(capture: string): number[] {
  const conversations = readConversations(new Uint8Array(readFileSync(capture)));
  return [...new Set(conversations.map((c) => Number(c.server.slice(c.server.lastIndexOf(':') + 1))))].sort((a, b) => a - b);
}

describe('kafka filter vs tshark on the recorded fixtures', () => {
  const fixtures = readdirSync(FIXTURES).filter((f) => f.endsWith('.pcapng')).sort();
  it('has fixtures of every client stack and both broker versions', () => {
    for (const name of ['kcat-4.2', 'kafkajs-4.2', 'java-4.2', 'kcat-old-3.9']) assert.ok(fixtures.includes(`${name}.pcapng`), name);
  });
  for (const fixture of fixtures) {
    it(fixture, async () => {
      const file = path.join(FIXTURES, fixture);
      const [tshark, filter] = await Promise.all([tsharkPdus(file, serverPorts(file)), filterPdus(file)]);
      assert.ok(tshark.pdus.length > 10, `tshark found ${tshark.pdus.length} Kafka messages`);
      const { compared, bodies, tsharkMissed } = compare(tshark.pdus, filter);
      // tshark 4.0's dissector stops at Produce v8, Fetch v11, Metadata v9: it decodes no body
      // of the versions Java 4.2 uses (headers only there); the others' bodies it does.
      if (!fixture.startsWith('java-')) assert.ok(bodies > 0, 'some bodies compared');
      assert.ok(tsharkMissed <= tshark.malformed, `tshark lost ${tsharkMissed} messages, after ${tshark.malformed} it could not decode`);
      console.log(`# ${fixture}: ${compared} messages match tshark (${bodies} with topics or brokers); ${tsharkMissed} more that tshark lost after a body it could not decode`);
    });
  }
});

describe('kafka filter vs tshark on clients talking to stock Envoy with the filter', { timeout: 240_000 }, () => {
  let cluster: KafkaCluster;
  let mesh: KafkaMesh;
  let dir: string;
  let capture: string;
  let ports: number[];

  before(async () => {
    cluster = await startKafka();
    mesh = await startKafkaMesh(cluster, { nodeId: 'kafka-tshark' });
    dir = mkdtempSync(path.join(os.tmpdir(), 'protoplane-kafka-tshark-'));
    capture = path.join(dir, 'envoy.pcapng');
    ports = [mesh.bootstrapPort, ...mesh.brokerPorts.values()];
    const topic = 'orders.tshark';
    await cluster.createTopic(topic);
    const dumpcap: ChildProcess = spawn('dumpcap', ['-q', '-i', 'lo', '-f', ports.map((p) => `tcp port ${p}`).join(' or '), '-w', capture], { stdio: ['ignore', 'ignore', 'pipe'] });
    let said = '';
    dumpcap.stderr!.on('data', (d: Buffer) => (said += d.toString()));
    try {
      // It says so once the capture runs; a connection it saw only half of would not replay.
      await waitUntil(() => said.includes('Capturing on') || dumpcap.exitCode !== null, 15_000, 'dumpcap to start capturing');
      assert.equal(dumpcap.exitCode, null, `dumpcap exited: ${said}`);
      await sleep(300);
      const boot = `127.0.0.1:${mesh.bootstrapPort}`;
      assert.equal((await kcat(['-P', '-b', boot, '-t', topic, '-p', '1'], { input: 'a\nb\n' })).code, 0);
      assert.equal((await kcat(['-C', '-b', boot, '-t', topic, '-p', '1', '-e', '-q'])).code, 0);
      const kafka = new Kafka({ clientId: 'tshark-kafkajs', brokers: [boot], logLevel: logLevel.NOTHING });
      const producer = kafka.producer();
      await producer.connect();
      await producer.send({ topic, messages: [{ partition: 0, value: 'c' }, { partition: 1, value: 'd' }] });
      await producer.disconnect();
      const produced = await runKafkaTool('4.2.0', 'org.apache.kafka.tools.ConsoleProducer', ['--bootstrap-server', boot, '--topic', topic], { input: 'e\nf\n' });
      assert.equal(produced.code, 0, produced.stderr);
      await sleep(500);
    } finally {
      // (an 'exit' wait alone never ends if dumpcap had already exited, e.g. refused to capture)
      await stopChild(dumpcap, 'SIGINT');
    }
  });

  after(async () => {
    await mesh?.close();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every message matches, and the Metadata clients saw names only Envoy listeners', async () => {
    assert.ok(statSync(capture).size > 1000, 'dumpcap captured the traffic');
    const [tshark, filter] = await Promise.all([tsharkPdus(capture, ports), filterPdus(capture)]);
    const { compared } = compare(tshark.pdus, filter);
    // kcat (Metadata v4) and kafkajs (v6) use versions tshark decodes in full: their rewritten answers must be well-formed.
    const metadata = tshark.pdus.filter((p) => p.type === 'response' && p.api_key === 3 && p.decoded && p.brokers);
    assert.ok(metadata.length >= 3, `Metadata responses decoded by tshark: ${metadata.length}`);
    const expected = cluster.brokers.map((b) => `${b.id}@127.0.0.1:${mesh.brokerPorts.get(b.id)}`).sort();
    for (const m of metadata) assert.deepEqual(m.brokers, expected);
    console.log(`# through Envoy: ${compared} messages match tshark, ${metadata.length} rewritten Metadata responses`);
  });
});
