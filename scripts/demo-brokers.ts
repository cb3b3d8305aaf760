// Real MQTT brokers (Debian mosquitto) on the local endpoints an MQTT example
// routes to, for `CONFIG=envoy-configs/mesh.mqtt.yaml npm start`. Each gets a
// config in one temp folder, removed when this process stops; a port that
// already answers is left to whatever listens there.
//
//   node --import tsx scripts/demo-brokers.ts 127.0.0.1:1883 127.0.0.1:1884
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

const mosquitto = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => fs.existsSync(p)) ?? 'mosquitto';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-brokers-'));
const brokers: ChildProcess[] = [];
let stopping = false;

function stop(code: number): void {
  stopping = true;
  for (const b of brokers) b.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

const started: string[] = [];
for (const endpoint of process.argv.slice(2)) {
  const [host, portText] = endpoint.split(':') as [string, string];
  const port = Number(portText);
  if (await answers(host, port)) {
    process.stdout.write(`brokers: ${endpoint} already answers; using it\n`);
    continue;
  }
  const conf = path.join(dir, `mosquitto-${port}.conf`);
  // mosquitto run as root drops to user "mosquitto" unless told otherwise.
  fs.writeFileSync(conf, `listener ${port} ${host}\nallow_anonymous true\npersistence false\n${process.getuid?.() === 0 ? 'user root\n' : ''}`);
  const broker = spawn(mosquitto, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  broker.stderr!.on('data', (chunk) => (stderr += chunk.toString()));
  broker.on('exit', (code) => {
    if (stopping) return;
    process.stderr.write(`brokers: mosquitto on ${endpoint} exited (${code}): ${stderr.trim()}\n`);
    stop(1);
  });
  brokers.push(broker);
  started.push(endpoint);
}
process.stdout.write(started.length ? `brokers: mosquitto on ${started.join(', ')}\n` : 'brokers: none to start\n');
if (brokers.length === 0) {
  fs.rmSync(dir, { recursive: true, force: true });
  // Stay up like the brokers would, so npm start's "any process ended" rule does not stop the demo.
  setInterval(() => {}, 1 << 30);
}
