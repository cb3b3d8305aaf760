// Real Apache Kafka brokers for the tests, run from the Maven Central jars that
// test/kafka/install-kafka.sh caches under .cache/kafka/<version>/libs (KRaft, no
// ZooKeeper, no tarball), on 127.0.0.1 free ports with temp data dirs.
//
// Each broker has two client listeners:
//  - EXTERNAL, the one clients reach through Envoy. It advertises `advertise(id)`,
//    by default `broker<ID>.kafka.invalid` (RFC 2606: never resolves), so a client
//    that follows a broker address the proxy did not rewrite fails.
//  - INTERNAL, advertised as 127.0.0.1: inter-broker traffic, and the tests'
//    "straight to the broker" view (what arrived, admin calls).
// Node 1 is also the KRaft controller (its own CONTROLLER listener): one voter
// keeps a two-broker cluster as light as it can be on a 2-core machine.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { exitHooksOnSigterm } from '../support/children.ts';
import { GiveUp, REPO_ROOT, freePort, waitUntil } from '../support/envoy.ts';

const run = promisify(execFile);

export type KafkaVersion = '4.2.0' | '3.9.1';
/** A fixed cluster id: formatting needs one, and a random one buys nothing on loopback. */
const CLUSTER_ID = 'MkU3OEVBNTcwNTJENDM2Qg';
/** Light JVMs: the machine has 2 cores shared by the whole suite. */
const JVM_FLAGS = ['-Xms64m', '-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-XX:-UsePerfData', '-Djava.awt.headless=true'];
const INSTALL_HINT = 'run test/kafka/install-kafka.sh (or test/support/install-peers.sh kafka)';

export interface KafkaBroker {
  readonly id: number;
  /** The EXTERNAL listener's port on 127.0.0.1 (what Envoy's clusters point at). */
  readonly port: number;
  /** The host:port this broker advertises on EXTERNAL (unresolvable by default). */
  readonly advertised: string;
  /** The INTERNAL listener, advertised as itself: for direct, proxy-free access. */
  readonly internalPort: number;
  /** Ports of the listeners asked for with StartKafkaOptions.extraListeners, by name. */
  readonly extraPorts: Readonly<Record<string, number>>;
}

export interface KafkaCluster {
  readonly version: KafkaVersion;
  readonly brokers: readonly KafkaBroker[];
  /** `127.0.0.1:<internalPort>,...`: bootstrap for direct access that needs no rewriting. */
  readonly directBootstrap: string;
  /** The Java classpath of this version's jars (broker, clients, tools). */
  readonly classpath: string;
  /** A kafkajs admin on the INTERNAL listeners (connected; the caller disconnects). */
  admin(): Promise<Admin>;
  /**
   * Creates a topic whose partition p is led by brokers[p % n] (replication 1),
   * so a test that uses every partition talks to every broker; waits until each
   * partition has its leader.
   */
  createTopic(topic: string, partitions?: number): Promise<void>;
  /** Tail of each broker's log, for failure messages. */
  logs(): string;
  /** SIGTERM every JVM, SIGKILL after 5 s, then delete the temp dirs. */
  stop(): Promise<void>;
}

export interface StartKafkaOptions {
  version?: KafkaVersion;
  /** 1 or 2 brokers (default 2). */
  brokers?: 1 | 2;
  /** Host each broker advertises on EXTERNAL; default `broker<ID>.kafka.invalid`. */
  advertise?: (id: number) => string;
  /**
   * More client listeners per broker, each advertising the host:port given
   * (e.g. a proxy's port in front of it, so that a client which follows broker
   * addresses stays on that proxy with no rewriting). Names: letters and '_'.
   */
  extraListeners?: ReadonlyArray<{ name: string; advertise: (id: number) => string }>;
  /** More server.properties entries (e.g. retention for a benchmark). */
  properties?: Readonly<Record<string, string | number>>;
}

export const unresolvableHost = (id: number): string => `broker${id}.kafka.invalid`;

/** The jars of one Kafka version as a classpath; throws (never skips) when they are not installed. */
export function kafkaClasspath(version: KafkaVersion = '4.2.0'): string {
  const libs = path.join(REPO_ROOT, '.cache', 'kafka', version, 'libs');
  if (!existsSync(libs) || !readdirSync(libs).some((f) => f.startsWith('kafka_2.13-'))) {
    throw new Error(`Kafka ${version} jars are not installed in ${libs}: ${INSTALL_HINT}`);
  }
  return path.join(libs, '*');
}

function properties(entries: Record<string, string | number>): string {
  return Object.entries(entries).map(([k, v]) => `${k}=${v}`).join('\n') + '\n';
}

interface NodePlan {
  id: number;
  port: number;
  internalPort: number;
  controllerPort?: number;
  advertisedHost: string;
  extra: Array<{ name: string; port: number; advertised: string }>;
  dir: string;
}

function serverProperties(node: NodePlan, controllerId: number, controllerPort: number, brokerCount: number, extraProperties: Readonly<Record<string, string | number>>): string {
  const isController = node.controllerPort !== undefined;
  const listeners = [`EXTERNAL://127.0.0.1:${node.port}`, `INTERNAL://127.0.0.1:${node.internalPort}`, ...node.extra.map((e) => `${e.name}://127.0.0.1:${e.port}`)];
  if (isController) listeners.push(`CONTROLLER://127.0.0.1:${node.controllerPort}`);
  return properties({
    'process.roles': isController ? 'broker,controller' : 'broker',
    'node.id': node.id,
    'controller.quorum.voters': `${controllerId}@127.0.0.1:${controllerPort}`,
    listeners: listeners.join(','),
    'advertised.listeners': [`EXTERNAL://${node.advertisedHost}:${node.port}`, `INTERNAL://127.0.0.1:${node.internalPort}`, ...node.extra.map((e) => `${e.name}://${e.advertised}`)].join(','),
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'INTERNAL',
    'listener.security.protocol.map': ['EXTERNAL', 'INTERNAL', 'CONTROLLER', ...node.extra.map((e) => e.name)].map((n) => `${n}:PLAINTEXT`).join(','),
    'log.dirs': path.join(node.dir, 'data'),
    'num.partitions': brokerCount,
    'default.replication.factor': 1,
    // Few internal partitions: each one is files and a leader election at first use.
    'offsets.topic.replication.factor': 1,
    'offsets.topic.num.partitions': brokerCount,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'transaction.state.log.num.partitions': 1,
    'share.coordinator.state.topic.replication.factor': 1,
    'share.coordinator.state.topic.min.isr': 1,
    'group.initial.rebalance.delay.ms': 0,
    'num.network.threads': 2,
    'num.io.threads': 2,
    'background.threads': 2,
    'log.cleaner.enable': 'false',
    'auto.create.topics.enable': 'true',
    ...extraProperties,
  });
}

/** A KRaft cluster of the given version (default: two 4.2.0 brokers advertising unresolvable names). */
export async function startKafka(options: StartKafkaOptions = {}): Promise<KafkaCluster> {
  const version = options.version ?? '4.2.0';
  const count = options.brokers ?? 2;
  const advertise = options.advertise ?? unresolvableHost;
  const classpath = kafkaClasspath(version);
  const root = mkdtempSync(path.join(os.tmpdir(), `protoplane-kafka-${version}-`));
  const nodes: NodePlan[] = [];
  for (let id = 1; id <= count; id++) {
    nodes.push({
      id,
      port: await freePort(),
      internalPort: await freePort(),
      controllerPort: id === 1 ? await freePort() : undefined,
      advertisedHost: advertise(id),
      extra: [],
      dir: path.join(root, `node-${id}`),
    });
  }
  for (const node of nodes) {
    for (const l of options.extraListeners ?? []) node.extra.push({ name: l.name, port: await freePort(), advertised: l.advertise(node.id) });
  }
  const controllerPort = nodes[0]!.controllerPort!;
  const children: ChildProcess[] = [];
  const exited = new Map<number, number | null>();
  const killAll = () => { for (const c of children) c.kill('SIGKILL'); };
  process.on('exit', killAll);
  exitHooksOnSigterm();

  const logOf = (node: NodePlan) => {
    try {
      return readFileSync(path.join(node.dir, 'broker.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const logs = () => nodes.map((n) => `--- kafka ${version} node ${n.id} (tail) ---\n${logOf(n).split('\n').slice(-40).join('\n')}`).join('\n');

  const stop = async () => {
    process.off('exit', killAll);
    await Promise.all(children.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => { clearTimeout(timer); resolve(); });
      child.kill('SIGTERM');
    })));
    rmSync(root, { recursive: true, force: true });
  };

  try {
    // Format every node's log dir (in parallel: each is a JVM start).
    await Promise.all(nodes.map(async (node) => {
      const config = path.join(node.dir, 'server.properties');
      mkdirSync(path.join(node.dir, 'data'), { recursive: true });
      writeFileSync(config, serverProperties(node, 1, controllerPort, count, options.properties ?? {}));
      await run('java', [...JVM_FLAGS, '-cp', classpath, 'kafka.tools.StorageTool', 'format', '--ignore-formatted', '-t', CLUSTER_ID, '-c', config], { timeout: 60_000 })
        .catch((err: { stderr?: string; message: string }) => {
          throw new Error(`kafka ${version} node ${node.id}: storage format failed: ${err.stderr || err.message}`);
        });
    }));
    for (const node of nodes) {
      const log = openSync(path.join(node.dir, 'broker.log'), 'a');
      const child = spawn('java', [...JVM_FLAGS, `-Dkafka.logs.dir=${node.dir}`, '-cp', classpath, 'kafka.Kafka', path.join(node.dir, 'server.properties')], {
        stdio: ['ignore', log, log],
      });
      child.on('exit', (code) => exited.set(node.id, code));
      children.push(child);
    }
    const cluster: KafkaCluster = {
      version,
      brokers: nodes.map((n) => ({ id: n.id, port: n.port, advertised: `${n.advertisedHost}:${n.port}`, internalPort: n.internalPort, extraPorts: Object.fromEntries(n.extra.map((e) => [e.name, e.port])) })),
      directBootstrap: nodes.map((n) => `127.0.0.1:${n.internalPort}`).join(','),
      classpath,
      admin: async () => {
        const admin = directClient(nodes.map((n) => `127.0.0.1:${n.internalPort}`)).admin();
        await admin.connect();
        return admin;
      },
      createTopic: async (topic, partitions = count) => {
        const admin = await cluster.admin();
        try {
          await admin.createTopics({
            waitForLeaders: true,
            topics: [{ topic, replicaAssignment: Array.from({ length: partitions }, (_, p) => ({ partition: p, replicas: [nodes[p % count]!.id] })) }],
          });
          await waitUntil(async () => {
            const meta = await admin.fetchTopicMetadata({ topics: [topic] });
            const parts = meta.topics[0]?.partitions ?? [];
            return parts.length === partitions && parts.every((p) => p.leader === nodes[p.partitionId % count]!.id);
          }, 15_000, `leaders of ${topic}`, 100);
        } finally {
          await admin.disconnect();
        }
      },
      logs,
      stop,
    };
    // Ready when every broker is registered and answers Metadata.
    await waitUntil(async () => {
      for (const [id, code] of exited) throw new GiveUp(`kafka ${version} node ${id} exited with ${code}\n${logs()}`);
      const admin = directClient([`127.0.0.1:${nodes[0]!.internalPort}`]).admin();
      try {
        await admin.connect();
        const { brokers } = await admin.describeCluster();
        return brokers.length === count;
      } finally {
        await admin.disconnect().catch(() => {});
      }
    }, 60_000, () => `kafka ${version} (${count} brokers) to be ready\n${logs()}`, 250);
    return cluster;
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A quiet kafkajs client that fails fast (the tests poll and retry themselves). */
export function directClient(brokers: string[], clientId = 'protoplane-test-direct'): Kafka {
  return new Kafka({ clientId, brokers, logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 3000 });
}

/** Runs a Java class from a Kafka version's jars (tools, console clients, perf tools). */
export async function runKafkaTool(
  version: KafkaVersion,
  mainClass: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn('java', [...JVM_FLAGS, '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn', '-cp', kafkaClasspath(version), mainClass, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(opts.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  const code = await new Promise<number>((resolve) => child.on('close', (c, signal) => resolve(c ?? (signal ? -1 : 0))));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Runs kcat (librdkafka); resolves with stdout, stderr and the exit code. */
export async function kcat(args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn('kcat', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.on('error', (err) => (stderr += `kcat: ${err.message} (${INSTALL_HINT})`));
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.on('error', () => {});
  child.stdin.end(opts.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
  const code = await new Promise<number>((resolve) => child.on('close', (c, signal) => resolve(c ?? (signal ? -1 : 0))));
  clearTimeout(timer);
  return { code, stdout, stderr };
}
