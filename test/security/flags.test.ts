// The security flags of `serve`, `validate` and `bootstrap`
// (xds-server/cli/security-flags.ts) become the options docs/security.md
// describes; bad values are usage errors. Through the real command line too:
// `serve` with limit and token flags enforces them, and `validate
// --preflight-timeout` refuses a looping filter within the time given.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { parse } from 'yaml';
import { XDS_CLUSTER, TYPE } from '../../xds-server/translate/index.ts';
import { bootstrapYaml } from '../../xds-server/bootstrap.ts';
import { bootstrapTlsOptions, preflightOptions, securityServeOptions, SERVE_SECURITY_FLAGS, SERVE_SECURITY_HELP } from '../../xds-server/cli/security-flags.ts';
import { stopChild } from '../support/children.ts';
import { freePort, REPO_ROOT, waitUntil } from '../support/envoy.ts';
import { ADS, RawConnection, sotwRequest } from './raw-xds.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-flags-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs bin/protoplane; resolves when it exits (or gives a handle to stop it). */
function protoplane(args: string[]): { exited: Promise<{ code: number | null; output: string; ms: number }>; output: () => string; stop: () => void } {
  const started = Date.now();
  const child = spawn(path.join(REPO_ROOT, 'bin/protoplane'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d.toString()));
  child.stderr.on('data', (d) => (output += d.toString()));
  return {
    exited: new Promise((resolve) => child.on('exit', (code) => resolve({ code, output, ms: Date.now() - started }))),
    output: () => output,
    // SIGKILL after 5 s: a server that does not stop must not keep the test process alive
    stop: () => void stopChild(child),
  };
}

const fail = (message: string): never => {
  throw new Error(message);
};

describe('security flags', () => {
  it('every flag has its help line', () => {
    assert.deepEqual(Object.keys(SERVE_SECURITY_FLAGS).sort(), Object.keys(SERVE_SECURITY_HELP).sort());
  });

  it('limits, durations, TLS and admin options', () => {
    const options = securityServeOptions(
      {
        'xds-max-names-per-request': '500',
        'xds-drain-timeout': '5s',
        'xds-slow-stream-after': '250ms',
        'config-max-aliases': '50',
        'xds-tls-cert': 'c.pem',
        'xds-tls-key': 'k.pem',
        'xds-client-ca': 'ca.pem',
        'admin-host': '0.0.0.0',
        'admin-token-file': 'token',
        'admin-max-connections': '8',
        'admin-timeout': '2s',
      },
      fail,
    );
    assert.deepEqual(options.xdsLimits, { maxNamesPerRequest: 500, drainTimeoutMs: 5000, slowStreamMs: 250 });
    assert.deepEqual(options.configLimits, { maxAliases: 50 });
    assert.deepEqual(options.xdsTls, { certFile: 'c.pem', keyFile: 'k.pem', clientCaFile: 'ca.pem' });
    assert.equal(options.adminHost, '0.0.0.0');
    assert.equal(options.adminTokenFile, 'token');
    assert.equal(options.adminMaxConnections, 8);
    assert.equal(options.adminTimeoutMs, 2000);
  });

  it('pre-flight limits: defaults, flags, bad values', () => {
    assert.deepEqual(preflightOptions({}, fail), { timeoutMs: 2000, maxHeapMb: 64, maxMemoryMb: 256 });
    assert.deepEqual(preflightOptions({ 'preflight-timeout': '500ms', 'preflight-heap-mb': '128', 'preflight-memory-mb': '32' }, fail), { timeoutMs: 500, maxHeapMb: 128, maxMemoryMb: 32 });
    assert.deepEqual(securityServeOptions({ 'preflight-timeout': '5s' }, fail).preflight, { timeoutMs: 5000, maxHeapMb: 64, maxMemoryMb: 256 });
    assert.throws(() => preflightOptions({ 'preflight-heap-mb': '8' }, fail), /--preflight-heap-mb: at least 16, got 8/);
    assert.throws(() => preflightOptions({ 'preflight-timeout': '0s' }, fail), /--preflight-timeout: must be more than 0/);
    assert.throws(() => preflightOptions({ 'preflight-memory-mb': 'lots' }, fail), /--preflight-memory-mb: expected a positive whole number/);
  });

  it('refuses bad values and half a TLS pair', () => {
    assert.throws(() => securityServeOptions({ 'xds-max-streams-per-node': '0' }, fail), /--xds-max-streams-per-node: expected a positive whole number, got 0/);
    assert.throws(() => securityServeOptions({ 'xds-drain-timeout': 'soon' }, fail), /--xds-drain-timeout/);
    assert.throws(() => securityServeOptions({ 'xds-tls-cert': 'c.pem' }, fail), /--xds-tls-cert and --xds-tls-key go together/);
    assert.throws(() => securityServeOptions({ 'xds-client-ca': 'ca.pem' }, fail), /--xds-client-ca needs --xds-tls-cert and --xds-tls-key/);
    assert.throws(() => bootstrapTlsOptions({ 'xds-tls-ca': 'ca.pem' }, fail), /go together/);
  });

  it('bootstrap --xds-tls-* puts an UpstreamTlsContext with the files on the xDS cluster', () => {
    const config = parse(bootstrapYaml({ xds: '10.0.0.5:18000', nodeId: 'edge-1', xdsTls: { ca: '/etc/ca.crt', cert: '/etc/edge-1.crt', key: '/etc/edge-1.key' } })) as {
      static_resources: { clusters: Array<{ name: string; transport_socket?: { typed_config: { common_tls_context: Record<string, unknown> } } }> };
    };
    const xds = config.static_resources.clusters.find((c) => c.name === XDS_CLUSTER)!;
    assert.deepEqual(xds.transport_socket!.typed_config.common_tls_context, {
      alpn_protocols: ['h2'],
      tls_certificates: [{ certificate_chain: { filename: '/etc/edge-1.crt' }, private_key: { filename: '/etc/edge-1.key' } }],
      validation_context: { trusted_ca: { filename: '/etc/ca.crt' } },
    });
  });
});

describe('security flags on the command line', () => {
  const mesh = path.join(dir, 'mesh.yaml');
  fs.writeFileSync(mesh, 'listeners:\n  - name: t\n    port: 10000\n    protocol: tcp\n    routes: [ { cluster: a } ]\nclusters:\n  - name: a\n    endpoints: [ 127.0.0.1:9 ]\n');

  it('serve enforces the limit and token flags it is given', async () => {
    const token = path.join(dir, 'token');
    fs.writeFileSync(token, 'cli-token\n');
    const [xdsPort, adminPort] = [await freePort(), await freePort()];
    const server = protoplane(['serve', '--config', mesh, '--xds-port', String(xdsPort), '--admin-port', String(adminPort), '--log-format', 'json',
      '--xds-max-streams-per-node', '1', '--admin-token-file', token, '--preflight-timeout', '1s']);
    let xds: RawConnection | undefined;
    let other: RawConnection | undefined;
    try {
      let stopped = false;
      const exitedEarly = server.exited.then((e) => {
        if (!stopped) throw new Error(`serve exited (${e.code}):\n${e.output}`);
      });
      exitedEarly.catch(() => undefined);
      await Promise.race([exitedEarly, waitUntil(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => undefined))?.status === 200, 90_000, 'serve to be ready')]);
      stopped = true;
      xds = new RawConnection(xdsPort);
      assert.equal((await fetch(`http://127.0.0.1:${adminPort}/debug/nodes`)).status, 401);
      assert.equal((await fetch(`http://127.0.0.1:${adminPort}/debug/nodes`, { headers: { authorization: 'Bearer cli-token' } })).status, 200);
      const first = xds.open(ADS);
      first.write(sotwRequest({ typeUrl: TYPE.cluster, nodeId: 'one' }));
      await first.next(5000);
      // on a connection of its own: a second stream refused on the same connection sends Node 20's
      // http2 client (the test's side) into a loop in nghttp2_session_mem_send
      other = new RawConnection(xdsPort);
      const second = other.open(ADS);
      second.write(sotwRequest({ typeUrl: TYPE.cluster, nodeId: 'one' }));
      const ended = await second.ended;
      assert.equal(ended.status, '8');
      assert.match(ended.message, /node "one" already has 1 open streams \(limit 1\)/);
    } finally {
      xds?.close();
      other?.close();
      server.stop();
      await server.exited;
    }
  });

  it('validate --preflight-timeout refuses a looping filter within the time given', async () => {
    const loop = path.join(dir, 'loop.yaml');
    fs.writeFileSync(loop, 'listeners:\n  - name: l\n    port: 10000\n    protocol: loop-test\n    filter: { mode: loop }\n    routes: [ { cluster: a } ]\nclusters:\n  - name: a\n    endpoints: [ 127.0.0.1:9 ]\n');
    const result = await protoplane(['validate', '--preflight-timeout', '300ms', loop]).exited;
    assert.equal(result.code, 1, result.output);
    assert.match(result.output, /loop\.yaml:4:15: filter loop-test refused this listener's configuration: did not finish configuring within 300 ms/);
    const help = await protoplane(['validate', '--help']).exited;
    assert.match(help.output, /--preflight-timeout.*\(default 2s\)/);
    assert.match(help.output, /--preflight-heap-mb.*\(default 64\)/);
    assert.match(help.output, /--preflight-memory-mb.*\(default 256\)/);
  });
});
