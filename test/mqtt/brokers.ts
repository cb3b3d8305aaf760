// Real MQTT brokers and clients for the tests: Debian mosquitto (a process,
// 3.1 / 3.1.1 / 5.0) and aedes (npm, in-process, 3.1 / 3.1.1), both on
// 127.0.0.1 free ports; mqtt.js clients; mosquitto_pub / mosquitto_sub.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Aedes } from 'aedes';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { exitHooksOnSigterm, stopChild } from '../support/children.ts';
import { freePort, GiveUp, waitUntil } from '../support/envoy.ts';

const run = promisify(execFile);

export interface Broker {
  readonly name: string;
  readonly port: number;
  /** Client ids that connected, in order. */
  clientIds(): string[];
  /** Topics of PUBLISH packets the broker received from clients. */
  publishedTopics(): string[];
  close(): Promise<void>;
}

function which(cmd: string): string {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin'])) {
    const file = path.join(dir, cmd);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // next
    }
  }
  throw new Error(`${cmd} is not installed: run test/support/install-peers.sh`);
}

/** mosquitto with log_type all: connects and received PUBLISHes are read from its log. */
export async function startMosquitto(name = 'mosquitto'): Promise<Broker> {
  const bin = which('mosquitto');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'protoplane-mosquitto-'));
  const port = await freePort();
  const logFile = path.join(dir, 'mosquitto.log');
  writeFileSync(path.join(dir, 'mosquitto.conf'), [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'persistence false',
    'user root',
    `log_dest file ${logFile}`,
    'log_type all',
    'connection_messages true',
    'log_timestamp false',
    'max_inflight_messages 0',
    '',
  ].join('\n'));
  const child: ChildProcess = spawn(bin, ['-c', path.join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  let exited = false;
  const killOnExit = () => child.kill('SIGKILL');
  child.on('exit', () => {
    exited = true;
    process.off('exit', killOnExit);
  });
  process.on('exit', killOnExit);
  exitHooksOnSigterm();
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const close = async () => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(() => {
      if (exited) throw new GiveUp(`mosquitto exited: ${log()}`);
      return new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
        s.on('error', () => resolve(false));
      });
    }, 10_000, 'mosquitto to listen');
  } catch (error) {
    // the caller gets no handle: a mosquitto left running would keep the test process alive
    await close();
    throw error;
  }
  return {
    name,
    port,
    clientIds: () => [...log().matchAll(/New client connected from \S+ as (\S+) \(/g)].map((m) => m[1]!),
    publishedTopics: () => [...log().matchAll(/Received PUBLISH from \S+ \([^)]*'([^']*)'/g)].map((m) => m[1]!),
    close,
  };
}

/** aedes in this process on a net server. */
export async function startAedes(name = 'aedes'): Promise<Broker> {
  const broker = await Aedes.createBroker();
  const ids: string[] = [];
  const topics: string[] = [];
  broker.on('client', (c) => ids.push(c.id));
  broker.on('publish', (packet, client) => {
    if (client) topics.push(packet.topic);
  });
  const server = net.createServer(broker.handle as unknown as (socket: net.Socket) => void);
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  }).catch(async (error: unknown) => {
    await new Promise<void>((r) => broker.close(() => r()));
    throw error;
  });
  return {
    name,
    port,
    clientIds: () => [...ids],
    publishedTopics: () => [...topics],
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
    },
  };
}

/** An mqtt.js client connected (CONNACK received) to 127.0.0.1:port. */
export async function connectClient(port: number, clientId: string, version: 3 | 4 | 5, extra: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect({
    host: '127.0.0.1', port, clientId, protocolVersion: version, reconnectPeriod: 0, connectTimeout: 5000, keepalive: 30,
    ...(version === 3 ? { protocolId: 'MQIsdp' } : {}), ...extra,
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
    client.once('close', () => reject(new Error(`${clientId}: connection closed before CONNACK`)));
  });
  return client;
}

export function endClient(client: MqttClient): Promise<void> {
  return new Promise((resolve) => client.end(false, {}, () => resolve()));
}

/** Runs mosquitto_pub / mosquitto_sub; resolves with stdout, stderr and the exit code. */
export async function mosquittoClient(tool: 'mosquitto_pub' | 'mosquitto_sub', args: string[], timeoutMs = 10_000): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(which(tool), args, { timeout: timeoutMs });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
