// `npm start` (scripts/start.sh) as a first-time user meets it, with the MQTT
// example: one line per step with its time, the brokers its routes name
// started (Debian mosquitto), a stock Envoy connected and in sync, hints for
// that config (not the HTTP one), JSON logs when stdout is not a terminal,
// and nothing left in the temp folder after it is stopped.
//
// The example is copied with free ports (listener and brokers), and TMPDIR
// points at a private folder, so nothing here collides with other tests.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { exitHooksOnSigterm } from '../support/children.ts';
import { freePort, REPO_ROOT, waitUntil } from '../support/envoy.ts';

describe('npm start with the MQTT example', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-start-test-'));
  const tmp = path.join(dir, 'tmp');
  fs.mkdirSync(tmp);
  let start: ChildProcess | undefined;
  let out = '';
  const killGroup = () => {
    if (start?.pid === undefined) return;
    try {
      process.kill(-start.pid, 'SIGKILL');
    } catch {
      // the group is gone
    }
  };

  after(async () => {
    if (start && start.exitCode === null && start.signalCode === null) {
      // On a failure path. The script's own trap stops what it started, once a foreground step
      // (npm ci: killing that midway would empty node_modules for the whole suite) is done.
      const exited = new Promise((resolve) => start!.once('exit', resolve));
      start.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 120_000)))]);
      clearTimeout(timer);
    }
    // Whatever is left in its process group (a script that never stopped, a straggler) holds
    // the output pipes and would keep this test process alive.
    killGroup();
    process.off('exit', killGroup);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('talks through each step, starts the brokers, connects Envoy, and cleans up on stop', async () => {
    const [listener, brokerA, brokerB, xds, admin, envoyAdmin] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
    const config = path.join(dir, 'mesh.mqtt.yaml');
    fs.writeFileSync(
      config,
      fs
        .readFileSync(path.join(REPO_ROOT, 'envoy-configs/mesh.mqtt.yaml'), 'utf8')
        .replace('port: 11883', `port: ${listener}`)
        .replace('127.0.0.1:1883', `127.0.0.1:${brokerA}`)
        .replace('127.0.0.1:1884', `127.0.0.1:${brokerB}`),
    );
    start = spawn('bash', ['scripts/start.sh'], {
      cwd: REPO_ROOT,
      env: { ...process.env, CONFIG: config, XDS_PORT: String(xds), ADMIN_PORT: String(admin), ENVOY_ADMIN_PORT: String(envoyAdmin), ENVOY_LOG: path.join(dir, 'envoy.log'), TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // a process group of its own, for after() to end on a failure path
    });
    // and for this process's end (a timeout of the whole file: SIGTERM, made an exit)
    process.once('exit', killGroup);
    exitHooksOnSigterm();
    start.stdout!.on('data', (chunk) => (out += chunk.toString()));
    start.stderr!.on('data', (chunk) => (out += chunk.toString()));
    await waitUntil(() => out.includes('Ctrl-C stops everything') || start!.exitCode !== null, 240_000, 'npm start ready').catch((error: Error) => {
      throw new Error(`${error.message}\n${out}`);
    });
    assert.equal(start.exitCode, null, out);

    const steps = out.split('\n').filter((l) => / \.\.\. /.test(l));
    for (const label of ['npm packages', 'Envoy 1.40', 'Wasm filters', 'checking', 'MQTT brokers', 'serving xDS', 'Envoy connected and in sync']) {
      const line = steps.find((l) => l.includes(label));
      assert.ok(line, `a step line for ${label}:\n${out}`);
      assert.match(line, /\.\.\. done \((.*, )?\d+\.\ds\)$/, line);
    }
    assert.match(out, /checking .* done \(1 listener, 2 clusters, /);
    assert.match(out, new RegExp(`MQTT brokers for the example \\(mosquitto on 127\\.0\\.0\\.1:${brokerA} 127\\.0\\.0\\.1:${brokerB}\\)`));
    // Hints for this config, not the HTTP example's.
    assert.match(out, new RegExp(`mosquitto_pub -p ${listener} -i fleet-a-1 `));
    assert.doesNotMatch(out, /curl -s/);
    // Not a terminal: protoplane logs JSON lines.
    assert.ok(out.split('\n').some((l) => l.startsWith('{"level":')), 'JSON log lines');

    // The hint works: through Envoy and the mqtt filter to a broker it started.
    const url = `mqtt://127.0.0.1:${listener}`;
    const sub = await mqtt.connectAsync(url, { clientId: 'fleet-a-watch', reconnectPeriod: 0 });
    await sub.subscribeAsync('sensors/#');
    const received = new Promise<string>((resolve) => sub.on('message', (_topic, payload) => resolve(payload.toString())));
    const pub = await mqtt.connectAsync(url, { clientId: 'fleet-a-1', reconnectPeriod: 0 });
    await pub.publishAsync('sensors/t1', '21.5');
    assert.equal(await received, '21.5');
    await pub.endAsync();
    await sub.endAsync();

    start.kill('SIGTERM');
    await new Promise((resolve) => start!.once('exit', resolve));
    const left = fs.readdirSync(tmp).filter((name) => name.startsWith('protoplane-'));
    assert.deepEqual(left, [], 'temp files removed on stop');
    await waitUntil(
      async () => !(await fetch(`http://127.0.0.1:${admin}/healthz`).then(() => true, () => false)),
      5000,
      'protoplane stopped',
    );
  });
});
