// Drop-in, framed: `protoplane new-filter NAME --framed` scaffolds a codec on
// the SDK's framed-stream layer that builds, passes its starter test (every
// split point, in the in-process host) and — with no change to server code —
// is served to stock Envoy for a `protocol: NAME` listener, where it routes by
// the first frame and passes frames both ways. Runs in a private copy of the
// checkout, as test/e2e/new-filter.test.ts does, so no other test process
// sees the new filter.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { bootstrapYaml } from '../../xds-server/bootstrap.ts';
import { ensureFiltersBuilt } from '../../xds-server/catalog/index.ts';
import { freePort, startEnvoy, type EnvoyHandle } from '../support/envoy.ts';
import { privateCheckout, serveCheckoutUntilFilter, type ServingCheckout } from '../support/checkout.ts';

const exec = promisify(execFile);

/** A frame: 4-byte big-endian body length, then the body. */
function frame(body: string): Buffer {
  const b = Buffer.from(body);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(b.length);
  return Buffer.concat([head, b]);
}

/** A framed upstream: answers every whole frame it reads with frame("NAME:" + body). */
async function startFramedServer(name: string): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let held = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      held = Buffer.concat([held, chunk]);
      while (held.length >= 4 && held.length >= 4 + held.readUInt32BE(0)) {
        const len = held.readUInt32BE(0);
        socket.write(frame(`${name}:${held.subarray(4, 4 + len).toString()}`));
        held = held.subarray(4 + len);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** Sends frames on one connection and reads as many frames back. */
function exchange(port: number, bodies: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const socket = net.connect(port, '127.0.0.1', () => {
      // the frames cut across writes, so Envoy hands the filter split frames
      const bytes = Buffer.concat(bodies.map(frame));
      socket.write(bytes.subarray(0, 3));
      setTimeout(() => socket.write(bytes.subarray(3)), 20);
    });
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk]);
      const out: string[] = [];
      let at = 0;
      while (data.length >= at + 4 && data.length >= at + 4 + data.readUInt32BE(at)) {
        const len = data.readUInt32BE(at);
        out.push(data.subarray(at + 4, at + 4 + len).toString());
        at += 4 + len;
      }
      if (out.length === bodies.length) {
        socket.destroy();
        resolve(out);
      }
    });
    socket.on('error', reject);
    setTimeout(() => reject(new Error(`no reply to ${bodies.join(', ')}`)), 5000).unref();
  });
}

describe('protoplane new-filter --framed', () => {
  const name = `framed${process.pid}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-newframed-'));
  let root = '';
  let greeters: Awaited<ReturnType<typeof startFramedServer>>;
  let others: Awaited<ReturnType<typeof startFramedServer>>;
  let server: ServingCheckout | undefined;
  let envoy: EnvoyHandle | undefined;

  before(async () => {
    await ensureFiltersBuilt();
    root = privateCheckout(dir);
    greeters = await startFramedServer('greeters');
    others = await startFramedServer('others');
  });

  after(async () => {
    await envoy?.stop();
    await server?.stop();
    await greeters?.close();
    await others?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('scaffolds a framed filter that builds and passes its starter test (every split point)', async () => {
    const { stdout } = await exec(path.join(root, 'bin/protoplane'), ['new-filter', name, '--framed'], { cwd: root });
    assert.match(stdout, new RegExp(`filters/${name}/codec.ts`));
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const result = await exec(process.execPath, ['--import', 'tsx', '--test', path.join('test', 'filters', `${name}.test.ts`)], { cwd: root, env });
    assert.match(result.stdout, /# pass 2/);
    assert.match(result.stdout, /# fail 0/);
  });

  it('is served with no server change: stock Envoy routes by the first frame and frames pass both ways', async () => {
    const port = await freePort();
    const configPath = path.join(dir, 'mesh.yaml');
    fs.writeFileSync(
      configPath,
      `listeners:
  - name: frames
    port: ${port}
    protocol: ${name}
    filter: { max_frame: 1024 }
    routes:
      - match: { key: { prefix: hello } }
        cluster: greeters
      - cluster: others
clusters:
  - { name: greeters, endpoints: [ 127.0.0.1:${greeters.port} ] }
  - { name: others, endpoints: [ 127.0.0.1:${others.port} ] }
`,
    );
    server = await serveCheckoutUntilFilter(root, configPath, name, ['--wasm-code', 'local']);
    const { xdsPort, adminPort } = server;
    const envoyAdmin = await freePort();
    envoy = await startEnvoy({
      bootstrapYaml: bootstrapYaml({ xds: `127.0.0.1:${xdsPort}`, nodeId: 'newframed', adminPort: envoyAdmin, protoplaneAdmin: `127.0.0.1:${adminPort}` }),
      adminPort: envoyAdmin,
    });
    await envoy.waitForListener('frames', 20_000);
    assert.deepEqual(await exchange(port, ['hello-1', 'a request', 'x'.repeat(300)]), ['greeters:hello-1', 'greeters:a request', `greeters:${'x'.repeat(300)}`]);
    assert.deepEqual(await exchange(port, ['bye', 'another']), ['others:bye', 'others:another']);
    await envoy.waitForStat(`wasmcustom.${name}.route.greeters`, (v) => v === 1);
    await envoy.waitForStat(`wasmcustom.${name}.route.others`, (v) => v === 1);
    assert.equal(await envoy.stat(`wasmcustom.${name}.closed_by_filter`), 0);
  });
});
