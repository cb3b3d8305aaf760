// Records the real client traffic the kafka filter's host tests replay
// (test/kafka/fixtures/*.pcapng): a real two-broker Kafka 4.2.0 cluster and
// a one-broker 3.9.1 (test/kafka/brokers.ts), clients talking to the brokers'
// EXTERNAL listeners (advertised as 127.0.0.1, so every follow-up connection
// is captured too), dumpcap on loopback. Not a test: run it to refresh the
// fixtures, then commit them.
//
//   node --import tsx test/kafka/record-fixtures.ts [NAME...]
//
// NAME: kcat-4.2, kafkajs-4.2, java-4.2, kcat-old-3.9 (default: all).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CompressionTypes, Kafka, logLevel } from 'kafkajs';
import { kcat, runKafkaTool, startKafka, type KafkaCluster, type KafkaVersion } from './brokers.ts';

const FIXTURES = path.join(path.dirname(new URL(import.meta.url).pathname), 'fixtures');

async function capture(file: string, ports: number[], body: () => Promise<void>): Promise<void> {
  const filter = ports.map((p) => `tcp port ${p}`).join(' or ');
  const child: ChildProcess = spawn('dumpcap', ['-q', '-i', 'lo', '-f', filter, '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await sleep(1000); // dumpcap needs a moment before it sees packets
  try {
    await body();
  } finally {
    await sleep(500);
    child.kill('SIGINT');
    await new Promise((r) => child.once('exit', r));
  }
  const size = statSync(file).size;
  console.log(`record-fixtures: ${file} (${size} bytes)${err.includes('rror') ? ` dumpcap: ${err}` : ''}`);
}

function external(cluster: KafkaCluster): string {
  return cluster.brokers.map((b) => `127.0.0.1:${b.port}`).join(',');
}

async function withCluster(version: KafkaVersion, brokers: 1 | 2, fn: (c: KafkaCluster) => Promise<void>): Promise<void> {
  const cluster = await startKafka({ version, brokers, advertise: () => '127.0.0.1' });
  try {
    await fn(cluster);
  } finally {
    await cluster.stop();
  }
}

const recordings: Record<string, () => Promise<void>> = {
  'kcat-4.2': () => withCluster('4.2.0', 2, async (c) => {
    await c.createTopic('orders.eu', 2);
    await c.createTopic('secret.plans', 1);
    await capture(path.join(FIXTURES, 'kcat-4.2.pcapng'), c.brokers.map((b) => b.port), async () => {
      const b = external(c);
      check(await kcat(['-b', b, '-L']), 'kcat -L');
      check(await kcat(['-b', b, '-P', '-t', 'orders.eu', '-z', 'gzip', '-c', '4'], { input: 'one\ntwo\nthree\nfour\n' }), 'kcat -P');
      check(await kcat(['-b', b, '-P', '-t', 'secret.plans'], { input: 'hidden\n' }), 'kcat -P secret');
      check(await kcat(['-b', b, '-C', '-t', 'orders.eu', '-o', 'beginning', '-e', '-c', '4']), 'kcat -C');
    });
  }),
  'kafkajs-4.2': () => withCluster('4.2.0', 2, async (c) => {
    await c.createTopic('orders.us', 2);
    await capture(path.join(FIXTURES, 'kafkajs-4.2.pcapng'), c.brokers.map((b) => b.port), async () => {
      const kafka = new Kafka({ clientId: 'fixture-kafkajs', brokers: external(c).split(','), logLevel: logLevel.NOTHING });
      const producer = kafka.producer();
      await producer.connect();
      await producer.send({ topic: 'orders.us', messages: [{ key: 'a', value: 'alpha' }, { key: 'b', value: 'beta' }, { key: 'c', value: 'gamma' }] });
      await producer.send({ topic: 'orders.us', compression: CompressionTypes.GZIP, messages: [{ key: 'd', value: 'delta' }] });
      await producer.disconnect();
      const consumer = kafka.consumer({ groupId: 'fixture-group' });
      await consumer.connect();
      await consumer.subscribe({ topic: 'orders.us', fromBeginning: true });
      let seen = 0;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`kafkajs consumer saw ${seen} of 4 messages`)), 30_000);
        void consumer.run({ eachMessage: async () => { if (++seen === 4) { clearTimeout(timer); resolve(); } } });
      });
      await consumer.disconnect();
    });
  }),
  'java-4.2': () => withCluster('4.2.0', 2, async (c) => {
    await c.createTopic('orders.java', 2);
    await capture(path.join(FIXTURES, 'java-4.2.pcapng'), c.brokers.map((b) => b.port), async () => {
      const b = external(c);
      check(await runKafkaTool('4.2.0', 'org.apache.kafka.tools.ConsoleProducer', ['--bootstrap-server', b, '--topic', 'orders.java', '--producer-property', 'client.id=fixture-java-producer'], { input: 'j1\nj2\nj3\n' }), 'console producer');
      check(await runKafkaTool('4.2.0', 'org.apache.kafka.tools.consumer.ConsoleConsumer', [
        '--bootstrap-server', b, '--topic', 'orders.java', '--from-beginning', '--max-messages', '3', '--group', 'fixture-java-group',
        '--consumer-property', 'group.protocol=consumer', '--consumer-property', 'client.id=fixture-java-consumer', '--timeout-ms', '20000',
      ]), 'console consumer');
      check(await runKafkaTool('4.2.0', 'org.apache.kafka.tools.ClusterTool', ['cluster-id', '--bootstrap-server', b]), 'cluster-id');
    });
  }),
  'kcat-old-3.9': () => withCluster('3.9.1', 1, async (c) => {
    await c.createTopic('orders.old', 1);
    await capture(path.join(FIXTURES, 'kcat-old-3.9.pcapng'), c.brokers.map((b) => b.port), async () => {
      const b = external(c);
      // no ApiVersions: librdkafka falls back to the oldest versions (removed in 4.0), which 3.9 still serves
      const old = ['-X', 'api.version.request=false', '-X', 'broker.version.fallback=0.9.0'];
      check(await kcat(['-b', b, ...old, '-L']), 'kcat -L (old)');
      check(await kcat(['-b', b, ...old, '-P', '-t', 'orders.old'], { input: 'o1\no2\n' }), 'kcat -P (old)');
      check(await kcat(['-b', b, ...old, '-C', '-t', 'orders.old', '-o', 'beginning', '-e', '-c', '2']), 'kcat -C (old)');
      check(await kcat(['-b', b, '-P', '-t', 'orders.old'], { input: 'o3\n' }), 'kcat -P (3.9 negotiated)');
    });
  }),
};

function check(r: { code: number; stdout: string; stderr: string }, what: string): void {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr.slice(-2000)}`);
}

mkdirSync(FIXTURES, { recursive: true });
const names = process.argv.slice(2);
for (const name of names.length > 0 ? names : Object.keys(recordings)) {
  const rec = recordings[name];
  if (!rec) throw new Error(`unknown recording ${name} (${Object.keys(recordings).join(', ')})`);
  console.log(`record-fixtures: ${name}`);
  await rec();
}
