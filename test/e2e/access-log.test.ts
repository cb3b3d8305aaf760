// Access logs per listener on stock Envoy 1.40 (issue 21, items 4 and 6):
// JSON lines for HTTP requests (http listener, Node upstream), TCP
// connections (tcp listener, echo upstream), MQTT connections (mqtt listener:
// Wasm filter + tcp_proxy, aedes broker, logged to Envoy's stdout) and UDP
// sessions (coap over udp_proxy, a UDP echo). With `proxy_protocol: true` the
// source address a PROXY v1 or v2 header carries is the logged
// downstream_remote_address, and the MQTT Wasm filter reads it as the
// proxy-wasm property source.address (its close log line's peer=).
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import mqttPacket from 'mqtt-packet';
import { startAedes, type Broker } from '../mqtt/brokers.ts';
import { freePort, waitUntil } from '../support/envoy.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';
import { httpGet, startHttpUpstream, startTcpEcho, tcpExchange, type HttpUpstream, type TcpEcho } from '../support/upstreams.ts';

type LogLine = Record<string, unknown>;

/** The JSON lines of an access log file (Envoy flushes file logs about once a second). */
function readJsonLines(file: string): LogLine[] {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
}

async function waitForLine(read: () => LogLine[], where: (l: LogLine) => boolean, what: string): Promise<LogLine> {
  let found: LogLine | undefined;
  await waitUntil(() => (found = read().find(where)) !== undefined, 10_000, () => `${what}; lines so far: ${JSON.stringify(read())}`);
  return found!;
}

/** A PROXY protocol v2 header (TCP over IPv4) naming src as the client. */
function proxyV2(src: string, srcPort: number, dst: string, dstPort: number): Buffer {
  const ip = (a: string) => Buffer.from(a.split('.').map(Number));
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(srcPort, 0);
  ports.writeUInt16BE(dstPort, 2);
  const addresses = Buffer.concat([ip(src), ip(dst), ports]);
  const head = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0, addresses.length]);
  return Buffer.concat([head, addresses]);
}

/** Starts a UDP echo on 127.0.0.1. */
async function startUdpEcho(): Promise<{ port: number; close(): Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => socket.send(msg, rinfo.port, rinfo.address));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, close: () => new Promise((resolve) => socket.close(() => resolve())) };
}

describe('access logs and PROXY protocol source addresses on stock Envoy', () => {
  let env: MeshEnv;
  let web: HttpUpstream;
  let echo: TcpEcho;
  let broker: Broker;
  let udpEcho: { port: number; close(): Promise<void> };
  let dir: string;
  let yaml: string;
  const ports = { web: 0, webPp: 0, raw: 0, sni: 0, auto: 0, mqtt: 0, udp: 0 };
  const log = (name: string) => path.join(dir, `${name}.log`);
  /** JSON lines Envoy wrote to its stdout (the test's Envoy log file gets stdout and stderr). */
  const stdoutLines = (): LogLine[] =>
    fs.readFileSync(env.envoy.logPath, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-access-log-'));
    web = await startHttpUpstream('web');
    echo = await startTcpEcho('echo');
    broker = await startAedes('broker');
    udpEcho = await startUdpEcho();
    for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await freePort();
    yaml = `listeners:
  - name: web
    port: ${ports.web}
    protocol: http
    access_log: ${log('web')}
    routes:
      - { match: { prefix: /down }, cluster: down }
      - { match: { prefix: / }, cluster: web }
  - name: web-pp
    port: ${ports.webPp}
    protocol: http
    proxy_protocol: true
    access_log: [ { path: ${log('web-pp')}, format: json }, { path: ${log('web-pp-text')}, format: text } ]
    routes: [ { match: { prefix: / }, cluster: web } ]
  - name: raw
    port: ${ports.raw}
    protocol: tcp
    proxy_protocol: true
    access_log: [ ${log('raw')} ]
    routes: [ { cluster: echo } ]
  - name: sni
    port: ${ports.sni}
    protocol: tls
    access_log: ${log('sni')}
    routes: [ { match: { sni: a.example.com }, cluster: echo } ]
  - name: any
    port: ${ports.auto}
    protocol: auto
    detection_timeout: 300ms
    access_log: ${log('any')}
    routes: [ { match: { prefix: / }, cluster: web } ]
    tcp: { cluster: echo }
  - name: mqtt
    port: ${ports.mqtt}
    protocol: mqtt
    proxy_protocol: true
    access_log: stdout
    routes: [ { cluster: broker } ]
  - name: coap-udp
    port: ${ports.udp}
    protocol: coap
    transport: udp
    idle_timeout: 1s
    access_log: ${log('udp')}
    routes: [ { cluster: udp-echo } ]
clusters:
  - { name: web, endpoints: [ 127.0.0.1:${web.port} ] }
  - { name: down, endpoints: [] }
  - { name: echo, endpoints: [ 127.0.0.1:${echo.port} ] }
  - { name: broker, endpoints: [ 127.0.0.1:${broker.port} ] }
  - { name: udp-echo, endpoints: [ 127.0.0.1:${udpEcho.port} ] }
`;
    env = await startMeshEnv({
      nodeId: 'access-log',
      // Envoy writes file and stdout logs in batches, every 10 s by default
      envoyArgs: ['--file-flush-interval-msec', '200'],
      listeners: ['web', 'web-pp', 'raw', 'sni', 'any', 'mqtt', 'coap-udp'],
      yaml,
    });
  });

  after(async () => {
    await env?.close();
    await web?.close();
    await echo?.close();
    await broker?.close();
    await udpEcho?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('logs each HTTP request as one JSON line with the fields users expect', async () => {
    const ok = await httpGet(ports.web, '/hello?x=1', { 'user-agent': 'access-log-test/1', 'x-request-id': 'from-client', 'x-forwarded-for': '198.51.100.9' });
    assert.equal(ok.status, 200);
    const down = await httpGet(ports.web, '/down');
    assert.equal(down.status, 503);
    const line = await waitForLine(() => readJsonLines(log('web')), (l) => l['path'] === '/hello?x=1', 'the 200 request logged');
    assert.equal(line['listener'], 'web');
    assert.equal(line['method'], 'GET');
    assert.equal(line['path'], '/hello?x=1');
    assert.equal(line['authority'], `127.0.0.1:${ports.web}`);
    assert.equal(line['protocol'], 'HTTP/1.1');
    assert.equal(line['response_code'], 200);
    assert.equal(line['response_flags'], '-');
    assert.equal(line['response_code_details'], 'via_upstream');
    assert.equal(line['bytes_sent'], 3); // "web"
    assert.equal(line['bytes_received'], 0);
    assert.equal(typeof line['duration'], 'number');
    assert.equal(line['upstream_host'], `127.0.0.1:${web.port}`);
    assert.equal(line['upstream_cluster'], 'web');
    assert.match(String(line['downstream_remote_address']), /^127\.0\.0\.1:\d+$/);
    assert.equal(line['downstream_local_address'], `127.0.0.1:${ports.web}`);
    assert.equal(line['user_agent'], 'access-log-test/1');
    // Envoy is the edge (use_remote_address): the peer, not the client's x-forwarded-for, is the client,
    // and Envoy appends an address to x-forwarded-for (its own for a loopback peer) ...
    assert.match(String(line['x_forwarded_for']), /^198\.51\.100\.9,[0-9.]+$/);
    // ... and replaces an external client's x-request-id with its own UUID
    assert.match(String(line['request_id']), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.match(String(line['start_time']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    // a cluster with no endpoints: Envoy's own 503, flagged UH, no upstream host
    const failed = await waitForLine(() => readJsonLines(log('web')), (l) => l['path'] === '/down', 'the 503 request logged');
    assert.equal(failed['response_code'], 503);
    assert.equal(failed['response_flags'], 'UH');
    assert.equal(failed['upstream_cluster'], 'down');
    assert.equal(failed['upstream_host'], null);
  });

  it('logs the client address of a PROXY header for HTTP requests', async () => {
    const request = `PROXY TCP4 203.0.113.7 127.0.0.1 40001 ${ports.webPp}\r\nGET /pp HTTP/1.1\r\nHost: pp.example\r\nConnection: close\r\n\r\n`;
    const reply = await tcpExchange(ports.webPp, request, { done: () => false });
    assert.match(reply.toString(), /^HTTP\/1\.1 200 /);
    const line = await waitForLine(() => readJsonLines(log('web-pp')), (l) => l['path'] === '/pp', 'the PROXY request logged');
    assert.equal(line['downstream_remote_address'], '203.0.113.7:40001');
    assert.equal(line['x_forwarded_for'], '203.0.113.7'); // what the upstream is told
    // format: text is Envoy's default line: [time] "METHOD PATH PROTOCOL" CODE FLAGS RECEIVED SENT ...
    let text = '';
    await waitUntil(() => (text = fs.existsSync(log('web-pp-text')) ? fs.readFileSync(log('web-pp-text'), 'utf8') : '') !== '', 10_000, 'the text line');
    assert.equal(readJsonLines(log('web-pp')).length, 1, 'one line per request');
    assert.match(text, /^\[\d{4}-\d\d-\d\dT[\d:.]+Z\] "GET \/pp HTTP\/1\.1" 200 - 0 3 \d+ \d+ "203\.0\.113\.7" "-" "[0-9a-f-]{36}" "pp\.example" "127\.0\.0\.1:\d+"\n$/);
    assert.equal(line['authority'], 'pp.example');
    assert.equal(line['listener'], 'web-pp');
  });

  it('logs each TCP connection with bytes, upstream and the PROXY v1 / v2 source address', async () => {
    const v1 = await tcpExchange(ports.raw, `PROXY TCP4 203.0.113.7 127.0.0.1 40002 ${ports.raw}\r\nhello\n`, { done: (b) => b.toString().endsWith('hello\n') });
    assert.equal(v1.toString(), 'echo:hello\n');
    const v2 = await tcpExchange(ports.raw, Buffer.concat([proxyV2('203.0.113.8', 40003, '127.0.0.1', ports.raw), Buffer.from('hi v2\n')]), {
      done: (b) => b.toString().endsWith('hi v2\n'),
    });
    assert.equal(v2.toString(), 'echo:hi v2\n');
    const first = await waitForLine(() => readJsonLines(log('raw')), (l) => l['downstream_remote_address'] === '203.0.113.7:40002', 'the v1 connection logged');
    assert.equal(first['listener'], 'raw');
    assert.equal(first['bytes_received'], 6); // "hello\n": the PROXY header is the listener filter's, not tcp_proxy's
    assert.equal(first['bytes_sent'], 11);
    assert.equal(first['upstream_cluster'], 'echo');
    assert.equal(first['upstream_host'], `127.0.0.1:${echo.port}`);
    assert.equal(first['downstream_local_address'], `127.0.0.1:${ports.raw}`);
    assert.equal(typeof first['duration'], 'number');
    assert.equal(first['response_flags'], '-');
    assert.equal(first['method'], undefined); // HTTP fields are not in TCP lines
    const second = await waitForLine(() => readJsonLines(log('raw')), (l) => l['downstream_remote_address'] === '203.0.113.8:40003', 'the v2 connection logged');
    assert.equal(second['bytes_received'], 6);
  });

  it('logs a connection no filter chain takes (an unrouted SNI: NR), one line per connection, none for a bad PROXY header (counted)', async () => {
    await new Promise<void>((resolve) => {
      const socket = tls.connect({ port: ports.sni, host: '127.0.0.1', servername: 'b.example.com', rejectUnauthorized: false });
      socket.on('error', () => resolve());
      socket.on('close', () => resolve());
    });
    const unrouted = await waitForLine(() => readJsonLines(log('sni')), (l) => l['requested_server_name'] === 'b.example.com', 'the unrouted SNI logged');
    assert.equal(unrouted['response_flags'], 'NR');
    assert.equal(unrouted['listener'], 'sni');
    assert.equal(unrouted['upstream_host'], null);
    // the two PROXY connections of the tcp test: tcp_proxy's lines only (the listener's own log keeps NR only)
    assert.equal(readJsonLines(log('raw')).length, 2, JSON.stringify(readJsonLines(log('raw'))));
    assert.equal(readJsonLines(log('sni')).length, 1);
    // no valid PROXY header: closed without a line, counted by the proxy_protocol filter's stats
    const refused = await tcpExchange(ports.raw, 'HELLO NOT A PROXY HEADER\r\n', { done: () => false }).then(String, (e: Error) => e.message);
    assert.doesNotMatch(refused, /echo:/);
    const rejected = async () => [...(await env.envoy.stats())].filter(([k]) => /^proxy_proto\..*(error|not_found_disallowed)$/.test(k)).reduce((n, [, v]) => n + v, 0);
    await waitUntil(async () => (await rejected()) >= 1, 5000, 'a proxy_proto rejection counted');
  });

  it('protocol: auto — an HTTP line for a request, a TCP line for an opaque connection', async () => {
    assert.equal((await httpGet(ports.auto, '/auto')).status, 200);
    const reply = await tcpExchange(ports.auto, '\x00\x01opaque\n', { done: (b) => b.toString().endsWith('opaque\n') });
    assert.equal(reply.toString(), 'echo:\x00\x01opaque\n');
    const http = await waitForLine(() => readJsonLines(log('any')), (l) => l['path'] === '/auto', 'the HTTP line');
    assert.equal(http['upstream_cluster'], 'web');
    const tcp = await waitForLine(() => readJsonLines(log('any')), (l) => l['upstream_cluster'] === 'echo', 'the TCP line');
    assert.equal(tcp['bytes_received'], 9);
    assert.equal(tcp['method'], undefined);
    assert.equal(readJsonLines(log('any')).length, 2);
  });

  it('an MQTT connection: the access line (stdout) names the cluster the filter picked, the filter sees the PROXY source', async () => {
    const socket = net.connect(ports.mqtt, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const connack = new Promise<Buffer>((resolve, reject) => {
      socket.once('data', resolve);
      socket.once('error', reject);
    });
    const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'pp-client', keepalive: 30 });
    socket.write(Buffer.concat([proxyV2('203.0.113.7', 40004, '127.0.0.1', ports.mqtt), connect]));
    const reply = await connack;
    assert.equal(reply[0], 0x20, 'CONNACK');
    await waitUntil(() => broker.clientIds().includes('pp-client'), 5000, 'the client at the broker');
    socket.end(mqttPacket.generate({ cmd: 'disconnect' }));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));

    const line = await waitForLine(stdoutLines, (l) => l['listener'] === 'mqtt', 'the MQTT connection logged to stdout');
    assert.equal(line['downstream_remote_address'], '203.0.113.7:40004');
    assert.equal(line['upstream_cluster'], 'broker');
    assert.equal(line['upstream_host'], `127.0.0.1:${broker.port}`);
    assert.equal(line['bytes_received'], connect.length + 2);
    // The Wasm filter's close line: source.address (proxy-wasm property) is the PROXY header's.
    let closeLine = '';
    await waitUntil(
      () => (closeLine = fs.readFileSync(env.envoy.logPath, 'utf8').split('\n').find((l) => l.includes('mqtt: connection closed client_id="pp-client"')) ?? '') !== '',
      10_000,
      'the filter close line',
    );
    assert.match(closeLine, /cluster=broker reason="client sent DISCONNECT".* peer=203\.0\.113\.7:40004$/);
  });

  it('logs a UDP session (udp_proxy) when it ends, with datagram counts', async () => {
    const client = dgram.createSocket('udp4');
    try {
      await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
      const answered = new Promise<Buffer>((resolve) => client.once('message', resolve));
      client.send(Buffer.from('ping'), ports.udp, '127.0.0.1');
      assert.equal((await answered).toString(), 'ping');
      const local = `127.0.0.1:${client.address().port}`;
      // the session ends idle_timeout (1s) after its last datagram
      const line = await waitForLine(() => readJsonLines(log('udp')), (l) => l['downstream_remote_address'] === local, 'the UDP session logged');
      assert.equal(line['listener'], 'coap-udp', JSON.stringify(line));
      assert.equal(line['upstream_cluster'], 'udp-echo');
      assert.equal(line['datagrams_received'], 1);
      assert.equal(line['datagrams_sent'], 1);
      assert.equal(line['bytes_received'], 4);
    } finally {
      client.close();
    }
  });

  it('a log file Envoy cannot open: Envoy refuses the listener (NACK in /debug/nodes), the old one keeps serving and logging', async () => {
    env.write(yaml.replace(`access_log: ${log('web')}`, 'access_log: /nonexistent-protoplane-dir/web.json'));
    type Nodes = { nodes: Array<{ id: string; types: Record<string, { last_nack: { message: string } | null }> }> };
    let message = '';
    await waitUntil(
      async () => {
        const nodes = JSON.parse((await httpGet(env.server.adminPort, '/debug/nodes')).body) as Nodes;
        message = nodes.nodes.find((n) => n.id === 'access-log')?.types['Listener']?.last_nack?.message ?? '';
        return message !== '';
      },
      10_000,
      'the Listener NACK in /debug/nodes',
    );
    assert.match(message, /unable to open file '\/nonexistent-protoplane-dir\/web\.json'/);
    assert.equal((await httpGet(ports.web, '/after-nack')).status, 200);
    await waitForLine(() => readJsonLines(log('web')), (l) => l['path'] === '/after-nack', 'the old listener still logging');
  });
});
