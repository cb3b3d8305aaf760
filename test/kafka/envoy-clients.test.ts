// Three Kafka client stacks through stock Envoy 1.40, configured only by
// protoplane (the config contract), to a real two-broker Kafka 4.2
// KRaft cluster whose brokers advertise host names nobody can resolve
// (brokerN.kafka.invalid): a client works only if the kafka filter rewrote
// every broker address to the Envoy listener generated for that broker.
//   kcat 1.7.1 (librdkafka 2.0.2), kafkajs 2.2.4, Kafka 4.2's own Java clients.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Kafka as KafkaJs, logLevel, type Kafka } from 'kafkajs';
import { kcat, runKafkaTool, startKafka, type KafkaCluster } from './brokers.ts';
import { DEFAULT_POLICY, kafkaMeshYaml, startKafkaMesh, type KafkaMesh } from './mesh.ts';

interface KcatMetadata {
  originating_broker: { id: number; name: string };
  brokers: Array<{ id: number; name: string }>;
  topics: Array<{ topic: string; partitions: Array<{ partition: number; leader: number }> }>;
}

async function kcatMetadata(bootstrap: string, extra: string[] = []): Promise<KcatMetadata> {
  const r = await kcat(['-L', '-J', '-b', bootstrap, '-m', '5', ...extra]);
  assert.equal(r.code, 0, `kcat -L -b ${bootstrap}: ${r.stderr}`);
  return JSON.parse(r.stdout) as KcatMetadata;
}

/** Messages on each partition of a topic, read straight from the brokers (no Envoy). */
async function directOffsets(cluster: KafkaCluster, topic: string): Promise<number[]> {
  const admin = await cluster.admin();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.sort((a, b) => a.partition - b.partition).map((o) => Number(o.high) - Number(o.low));
  } finally {
    await admin.disconnect();
  }
}

/** Every record of a topic, read straight from the brokers (no Envoy), as "partition:key=value". */
async function directRecords(cluster: KafkaCluster, topic: string): Promise<string[]> {
  const out: string[] = [];
  for (const line of (await kcat(['-C', '-b', cluster.directBootstrap, '-t', topic, '-e', '-q', '-f', '%p:%k=%s\\n'])).stdout.split('\n')) {
    if (line) out.push(line);
  }
  return out.sort();
}

/** Connections Envoy accepted so far on each broker listener (kafka-broker-<id>). */
async function brokerListenerConnections(mesh: KafkaMesh): Promise<number[]> {
  const stats = await mesh.env.envoy.stats();
  return [...mesh.brokerPorts.values()].map((port) => stats.get(`listener.127.0.0.1_${port}.downstream_cx_total`) ?? -1);
}

let run = 0;
const unique = (base: string) => `${base}-${process.pid}-${++run}`;

describe('Kafka clients through stock Envoy with the kafka filter, to a two-broker Kafka 4.2 cluster', { timeout: 240_000 }, () => {
  let cluster: KafkaCluster;
  let mesh: KafkaMesh;
  let boot: string;

  before(async () => {
    cluster = await startKafka();
    mesh = await startKafkaMesh(cluster);
    boot = `127.0.0.1:${mesh.bootstrapPort}`;
  });

  after(async () => {
    await mesh?.close();
    await cluster?.stop();
  });

  it('control: without the filter (plain tcp_proxy) clients are sent to names that do not resolve', async () => {
    const meta = await kcatMetadata(`127.0.0.1:${mesh.plainPort}`);
    assert.deepEqual(meta.brokers.map((b) => b.name).sort(), cluster.brokers.map((b) => b.advertised).sort());
    const topic = unique('orders.control');
    await cluster.createTopic(topic);
    const r = await kcat(['-P', '-b', `127.0.0.1:${mesh.plainPort}`, '-t', topic, '-p', '1', '-X', 'message.timeout.ms=3000'], { input: 'lost\n' });
    assert.match(r.stderr, /Delivery failed|timed out|resolve/i, r.stderr);
    assert.deepEqual(await directOffsets(cluster, topic), [0, 0]);
  });

  it('each generated listener reaches its own broker', async () => {
    for (const b of cluster.brokers) {
      const meta = await kcatMetadata(`127.0.0.1:${mesh.brokerPorts.get(b.id)}`);
      assert.equal(meta.originating_broker.id, b.id);
    }
  });

  it('Metadata through Envoy names every broker by its Envoy listener', async () => {
    const meta = await kcatMetadata(boot);
    assert.deepEqual(
      meta.brokers.map((b) => [b.id, b.name]).sort(),
      cluster.brokers.map((b) => [b.id, `127.0.0.1:${mesh.brokerPorts.get(b.id)}`]).sort(),
    );
  });

  it('kcat (librdkafka) produces to and consumes from partitions led by both brokers, also as a consumer group', async () => {
    const topic = unique('orders.kcat');
    await cluster.createTopic(topic);
    for (const partition of [0, 1]) {
      const r = await kcat(['-P', '-b', boot, '-t', topic, '-p', String(partition), '-K', ':', '-X', 'message.timeout.ms=10000'], {
        input: `k${partition}a:v${partition}a\nk${partition}b:v${partition}b\n`,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /fail/i);
    }
    const expected = ['0:k0a=v0a', '0:k0b=v0b', '1:k1a=v1a', '1:k1b=v1b'];
    assert.deepEqual(await directRecords(cluster, topic), expected, 'the brokers have what kcat sent through Envoy');
    const consumed = await kcat(['-C', '-b', boot, '-t', topic, '-e', '-q', '-f', '%p:%k=%s\\n']);
    assert.equal(consumed.code, 0, consumed.stderr);
    assert.deepEqual(consumed.stdout.split('\n').filter(Boolean).sort(), expected);
    // librdkafka's consumer group (FindCoordinator, JoinGroup, SyncGroup, OffsetFetch) through Envoy too.
    const group = await kcat(['-b', boot, '-G', unique('e2e-kcat'), '-X', 'auto.offset.reset=earliest', '-e', '-q', '-f', '%p:%k=%s\\n', topic], { timeoutMs: 40_000 });
    assert.equal(group.code, 0, group.stderr);
    assert.deepEqual(group.stdout.split('\n').filter(Boolean).sort(), expected);
  });

  it('kafkajs produces and runs a consumer group across both brokers (FindCoordinator rewritten too)', async () => {
    const topic = unique('orders.kafkajs');
    await cluster.createTopic(topic);
    const kafka: Kafka = new KafkaJs({ clientId: 'e2e-kafkajs', brokers: [boot], logLevel: logLevel.NOTHING, retry: { retries: 3 } });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic,
      messages: [0, 1, 0, 1].map((partition, i) => ({ partition, key: `k${i}`, value: `v${i}` })),
    });
    await producer.disconnect();
    assert.deepEqual(await directOffsets(cluster, topic), [2, 2]);

    const consumer = kafka.consumer({ groupId: unique('e2e-group'), sessionTimeout: 10_000, rebalanceTimeout: 10_000 });
    const got: string[] = [];
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const all = new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ partition, message }) => {
          got.push(`${partition}:${message.key?.toString()}=${message.value?.toString()}`);
          if (got.length === 4) resolve();
        },
      });
    });
    await Promise.race([all, new Promise((_, reject) => setTimeout(() => reject(new Error(`kafkajs consumed only ${JSON.stringify(got)}`)), 30_000))]);
    await consumer.disconnect();
    assert.deepEqual(got.sort(), ['0:k0=v0', '0:k2=v2', '1:k1=v1', '1:k3=v3']);
  });

  it("Kafka 4.2's Java console producer and a KIP-848 consumer group (newest flexible versions)", async () => {
    const topic = unique('orders.java');
    await cluster.createTopic(topic);
    const lines = Array.from({ length: 20 }, (_, i) => `key${i}:value${i}`);
    const produced = await runKafkaTool('4.2.0', 'org.apache.kafka.tools.ConsoleProducer', [
      '--bootstrap-server', boot, '--topic', topic, '--reader-property', 'parse.key=true', '--reader-property', 'key.separator=:',
      '--command-property', 'acks=all',
    ], { input: lines.join('\n') + '\n', timeoutMs: 60_000 });
    assert.equal(produced.code, 0, produced.stderr);
    const counts = await directOffsets(cluster, topic);
    assert.equal(counts.reduce((a, b) => a + b, 0), 20);
    assert.ok(counts.every((n) => n > 0), `records on both brokers' partitions: ${counts}`);

    const consumed = await runKafkaTool('4.2.0', 'org.apache.kafka.tools.consumer.ConsoleConsumer', [
      '--bootstrap-server', boot, '--topic', topic, '--group', unique('e2e-java'), '--from-beginning', '--max-messages', '20',
      '--timeout-ms', '30000', '--command-property', 'group.protocol=consumer',
      '--formatter-property', 'print.key=true', '--formatter-property', 'key.separator=:',
    ], { timeoutMs: 60_000 });
    assert.equal(consumed.code, 0, consumed.stderr);
    assert.deepEqual(consumed.stdout.split('\n').filter(Boolean).sort(), [...lines].sort());
  });

  it('denied produce: the client gets TOPIC_AUTHORIZATION_FAILED, the connection stays usable, nothing reaches the broker', async () => {
    const secret = unique('secret.e2e');
    const open = unique('orders.after-deny');
    await cluster.createTopic(secret);
    await cluster.createTopic(open);

    // kafkajs: one producer, so one connection per broker, used before and after the refusal.
    const kafka = new KafkaJs({ clientId: 'e2e-deny', brokers: [boot], logLevel: logLevel.NOTHING, retry: { retries: 0 } });
    const producer = kafka.producer({ retry: { retries: 0 } });
    await producer.connect();
    await producer.send({ topic: open, messages: [{ partition: 0, value: 'before' }, { partition: 1, value: 'before' }] });
    const connections = () => brokerListenerConnections(mesh);
    const opened = await connections();
    assert.ok(opened.every((n) => n > 0), `the producer is connected to both broker listeners: ${opened}`);
    await assert.rejects(
      producer.send({ topic: secret, messages: [{ partition: 0, value: 'x' }, { partition: 1, value: 'y' }] }),
      (err: Error & { type?: string }) => {
        assert.equal(err.type, 'TOPIC_AUTHORIZATION_FAILED', `${err.name}: ${err.message}`);
        return true;
      },
    );
    await producer.send({ topic: open, messages: [{ partition: 0, value: 'after' }, { partition: 1, value: 'after' }] });
    assert.deepEqual(await connections(), opened, 'the refusal and the next send used the same connections');
    await producer.disconnect();

    // kcat: the same refusal in librdkafka's words.
    const r = await kcat(['-P', '-b', boot, '-t', secret, '-p', '0', '-X', 'message.timeout.ms=5000'], { input: 'z\n' });
    assert.match(r.stderr, /Topic authorization failed/i, r.stderr);

    assert.deepEqual(await directOffsets(cluster, secret), [0, 0], 'nothing refused reached a broker');
    assert.deepEqual(await directOffsets(cluster, open), [2, 2]);
  });

  it('a produce over limits.max_request_bytes: MESSAGE_TOO_LARGE from the filter, the connection stays usable, nothing reaches the broker', async () => {
    const topic = unique('orders.oversize');
    await cluster.createTopic(topic);
    const kafka = new KafkaJs({ clientId: 'e2e-oversize', brokers: [boot], logLevel: logLevel.NOTHING, retry: { retries: 0 } });
    const producer = kafka.producer({ retry: { retries: 0 } });
    await producer.connect();
    await producer.send({ topic, messages: [{ partition: 0, value: 'before' }, { partition: 1, value: 'before' }] });
    const opened = await brokerListenerConnections(mesh);
    // 400 KB, over the mesh's 256 KiB limit and under the brokers' own message.max.bytes (1 MiB): only the filter refuses it
    await assert.rejects(
      producer.send({ topic, messages: [{ partition: 0, value: Buffer.alloc(400_000, 'x') }] }),
      (err: Error & { type?: string }) => {
        assert.equal(err.type, 'MESSAGE_TOO_LARGE', `${err.name}: ${err.message}`);
        return true;
      },
    );
    await producer.send({ topic, messages: [{ partition: 0, value: 'after' }, { partition: 1, value: 'after' }] });
    assert.deepEqual(await brokerListenerConnections(mesh), opened, 'the refusal and the next send used the same connections');
    await producer.disconnect();
    // kcat: librdkafka's words for the same answer
    const r = await kcat(['-P', '-b', boot, '-t', topic, '-p', '1', '-X', 'message.timeout.ms=5000'], { input: `${'y'.repeat(300_000)}\n` });
    assert.match(r.stderr, /Message size too large/i, r.stderr);
    assert.deepEqual(await directOffsets(cluster, topic), [2, 2], 'nothing oversize reached a broker');
    const stats = await mesh.env.envoy.stats();
    assert.ok((stats.get('wasmcustom.kafka.refused.request_too_large') ?? 0) >= 2);
  });

  it("Envoy's /stats has the filter's per-API counters (after the tests above)", async () => {
    const stats = await mesh.env.envoy.stats();
    const filterStats = [...stats].filter(([name, value]) => name.startsWith('wasmcustom.kafka.') && value > 0);
    const sum = (re: RegExp) => filterStats.filter(([name]) => re.test(name)).reduce((a, [, v]) => a + v, 0);
    const seen = JSON.stringify(Object.fromEntries(filterStats));
    for (const api of ['api_versions', 'metadata', 'produce', 'fetch', 'find_coordinator', 'list_offsets', 'join_group', 'sync_group', 'offset_commit', 'consumer_group_heartbeat']) {
      assert.ok(sum(new RegExp(`^wasmcustom\\.kafka\\.request\\.${api}\\.v\\d+$`)) > 0, `requests of ${api}: ${seen}`);
      assert.ok(sum(new RegExp(`^wasmcustom\\.kafka\\.response\\.${api}\\.v\\d+$`)) > 0, `responses of ${api}: ${seen}`);
    }
    // Three client stacks: produce requests in at least three versions (kcat v7, kafkajs, Java's newest).
    assert.ok(filterStats.filter(([name]) => /^wasmcustom\.kafka\.request\.produce\.v\d+$/.test(name)).length >= 2, seen);
    assert.ok(sum(/^wasmcustom\.kafka\.refused\.acl_produce$/) >= 2, `refusals: ${seen}`);
    assert.ok(sum(/^wasmcustom\.kafka\.brokers\.rewritten$/) > 0, seen);
    assert.equal(sum(/^wasmcustom\.kafka\.(closed\.|brokers\.unknown)/), 0, `no connection closed for bad bytes, no unknown broker: ${seen}`);
    assert.ok(sum(/^wasmcustom\.kafka\.topic\.orders_\.produce_bytes$/) > 0, `topic metrics for "orders.": ${seen}`);
  });

  it('a broker missing from filter.brokers: its listener goes, and a response naming it is a counter and an error line', async () => {
    const { envoy } = mesh.env;
    const reloads = async () => (await envoy.stats()).get('extension_config_discovery.network_filter.protoplane.wasm.kafka.config_reload') ?? 0;
    const before = await reloads();
    mesh.env.write(kafkaMeshYaml(cluster, { bootstrap: mesh.bootstrapPort, brokers: mesh.brokerPorts, plain: mesh.plainPort }, DEFAULT_POLICY, [1]));
    await envoy.waitFor(async () => !(await envoy.listeners()).has('kafka-broker-2') && (await reloads()) > before, 20_000, 'kafka-broker-2 removed and the new filter config applied');
    const meta = await kcatMetadata(boot);
    const broker2 = cluster.brokers.find((b) => b.id === 2)!;
    assert.deepEqual(meta.brokers.map((b) => [b.id, b.name]).sort(), [[1, `127.0.0.1:${mesh.brokerPorts.get(1)}`], [2, broker2.advertised]]);
    await envoy.waitForStat('wasmcustom.kafka.brokers.unknown', (v) => v > 0);
    const log = readFileSync(envoy.logPath, 'utf8');
    assert.match(log, new RegExp(`kafka: broker 2 \\(${broker2.advertised.replace(/\./g, '\\.')}\\) is in a response but not in the filter's brokers`));
  });
});

// The API versions Kafka 4.0 removed (KIP-896) still reach a 3.9 broker; the
// filter must frame, rewrite and refuse them too (Metadata v0, Produce v2, Fetch v1).
describe('old API versions through stock Envoy with the kafka filter, to a Kafka 3.9 broker', { timeout: 180_000 }, () => {
  let cluster: KafkaCluster;
  let mesh: KafkaMesh;
  let boot: string;
  // Without ApiVersions librdkafka falls back to the oldest versions.
  const OLD = ['-X', 'api.version.request=false', '-X', 'broker.version.fallback=0.9.0'];

  before(async () => {
    cluster = await startKafka({ version: '3.9.1', brokers: 1 });
    mesh = await startKafkaMesh(cluster, { nodeId: 'kafka-envoy-3.9' });
    boot = `127.0.0.1:${mesh.bootstrapPort}`;
  });

  after(async () => {
    await mesh?.close();
    await cluster?.stop();
  });

  it('Metadata v0 is rewritten; kcat produces and consumes with the oldest versions; a denied produce is refused', async () => {
    const meta = await kcatMetadata(boot, OLD);
    assert.deepEqual(meta.brokers.map((b) => b.name), [`127.0.0.1:${mesh.brokerPorts.get(1)}`]);
    const topic = unique('orders.old');
    await cluster.createTopic(topic, 1);
    const produced = await kcat(['-P', '-b', boot, ...OLD, '-t', topic, '-X', 'message.timeout.ms=10000'], { input: 'o1\no2\n' });
    assert.equal(produced.code, 0, produced.stderr);
    assert.doesNotMatch(produced.stderr, /fail/i);
    const consumed = await kcat(['-C', '-b', boot, ...OLD, '-t', topic, '-o', 'beginning', '-e', '-q']);
    assert.deepEqual(consumed.stdout.split('\n').filter(Boolean), ['o1', 'o2']);

    const secret = unique('secret.old');
    await cluster.createTopic(secret, 1);
    const refused = await kcat(['-P', '-b', boot, ...OLD, '-t', secret, '-X', 'message.timeout.ms=5000'], { input: 'z\n' });
    assert.match(refused.stderr, /Topic authorization failed/i, refused.stderr);
    assert.deepEqual(await directOffsets(cluster, secret), [0]);

    const stats = await mesh.env.envoy.stats();
    const versions = (api: string) => [...stats].filter(([k, v]) => v > 0 && k.startsWith(`wasmcustom.kafka.request.${api}.v`)).map(([k]) => Number(k.slice(k.lastIndexOf('.v') + 2)));
    assert.ok(versions('metadata').includes(0), `Metadata versions seen: ${versions('metadata')}`);
    assert.ok(versions('produce').some((v) => v < 3), `Produce versions seen: ${versions('produce')}`);
  });
});
