// gRPC through http listeners on stock Envoy 1.40 (issue 21): a real
// @grpc/grpc-js client → Envoy → a real @grpc/grpc-js server, over h2c and
// over TLS both ways (client→Envoy terminated with the listener's `tls`,
// Envoy→server originated with the cluster's `tls` + `http2: true`). Unary and
// bidirectional streaming calls go through; the server's status codes,
// details and trailing metadata reach the client unchanged; a unary call over
// its route `timeout` is failed by Envoy, while a stream twice as long lives
// on a route declared for streams (`max_stream_duration`), and the same stream
// is cut on a route that only has the request `timeout`. A `protocol: auto`
// port serves the same calls (gRPC is h2c, which http_inspector detects).
//
// The messages are JSON rather than protobuf (gRPC does not care what the
// length-prefixed message bytes are): no .proto to compile, same HTTP/2
// framing, headers and trailers.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { freePort } from '../support/envoy.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';
import { selfSignedCert } from '../support/upstreams.ts';

interface Message {
  text?: string;
  /** Unary: answer after this long. */
  delayMs?: number;
  /** Unary: fail with this status. */
  fail?: { code: grpc.status; details: string };
  /** Chat: the server sends this many ticks, `everyMs` apart, then ends the call. */
  ticks?: number;
  everyMs?: number;
  /** Replies: which server answered, and whether Envoy was on the way. */
  server?: string;
  viaEnvoy?: boolean;
  tick?: number;
}

const json = {
  serialize: (m: Message): Buffer => Buffer.from(JSON.stringify(m)),
  deserialize: (b: Buffer): Message => JSON.parse(b.toString()) as Message,
};

const method = (name: string, stream: boolean): grpc.MethodDefinition<Message, Message> => ({
  path: `/test.Echo/${name}`,
  requestStream: stream,
  responseStream: stream,
  requestSerialize: json.serialize,
  requestDeserialize: json.deserialize,
  responseSerialize: json.serialize,
  responseDeserialize: json.deserialize,
});

const ECHO_SERVICE = { Unary: method('Unary', false), Chat: method('Chat', true) };
const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');
type EchoClientType = InstanceType<typeof EchoClient>;

/** A real grpc-js server; `credentials` decides h2c or TLS. */
async function startGrpcServer(name: string, credentials: grpc.ServerCredentials): Promise<{ port: number; close(): void }> {
  const server = new grpc.Server();
  server.addService(ECHO_SERVICE, {
    Unary(call: grpc.ServerUnaryCall<Message, Message>, callback: grpc.sendUnaryData<Message>) {
      const req = call.request;
      // Envoy adds x-request-id to every request it forwards.
      const viaEnvoy = call.metadata.get('x-request-id').length > 0;
      setTimeout(() => {
        if (req.fail) {
          const trailers = new grpc.Metadata();
          trailers.set('x-reason', `refused by ${name}`);
          callback({ code: req.fail.code, details: req.fail.details, metadata: trailers });
        } else {
          callback(null, { text: req.text, server: name, viaEnvoy });
        }
      }, req.delayMs ?? 0);
    },
    Chat(call: grpc.ServerDuplexStream<Message, Message>) {
      let pending = 0;
      let clientDone = false;
      const timers = new Set<NodeJS.Timeout>();
      call.on('data', (m: Message) => {
        if (m.ticks === undefined) {
          call.write({ text: m.text, server: name });
          return;
        }
        for (let i = 1; i <= m.ticks; i++) {
          pending++;
          const t = setTimeout(() => {
            timers.delete(t);
            call.write({ tick: i, server: name });
            if (--pending === 0) call.end();
          }, i * (m.everyMs ?? 100));
          timers.add(t);
        }
      });
      call.on('end', () => {
        clientDone = true;
        if (pending === 0) call.end();
      });
      call.on('cancelled', () => timers.forEach(clearTimeout));
      call.on('error', () => timers.forEach(clearTimeout));
      void clientDone;
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { port, close: () => server.forceShutdown() };
}

function unary(client: EchoClientType, req: Message, metadata = new grpc.Metadata()): Promise<Message> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(ECHO_SERVICE.Unary.path, json.serialize, json.deserialize, req, metadata, { deadline: Date.now() + 10_000 }, (err, res) =>
      err ? reject(err) : resolve(res!),
    );
  });
}

interface StreamResult {
  replies: Message[];
  status: grpc.StatusObject;
  /** When each reply came, ms after the call started. */
  at: number[];
}

/**
 * A Chat call: writes `messages`, each after the reply to the one before
 * (a real conversation, not a batch), `gapMs` apart; then half-closes and
 * collects until the server ends the call or it fails.
 */
function chat(client: EchoClientType, messages: Message[], options: { gapMs?: number; metadata?: grpc.Metadata } = {}): Promise<StreamResult> {
  return new Promise((resolve) => {
    const started = Date.now();
    const call = client.makeBidiStreamRequest(ECHO_SERVICE.Chat.path, json.serialize, json.deserialize, options.metadata ?? new grpc.Metadata(), {
      deadline: Date.now() + 10_000,
    });
    const replies: Message[] = [];
    const at: number[] = [];
    let next = 0;
    const send = () => {
      if (next < messages.length) call.write(messages[next++]!);
      else call.end();
    };
    call.on('data', (m: Message) => {
      replies.push(m);
      at.push(Date.now() - started);
      // Each echo triggers the next message (ticks do not: they stream on their own).
      if (m.text !== undefined) setTimeout(send, options.gapMs ?? 0);
    });
    call.on('error', () => {}); // the status event carries the outcome
    call.on('status', (status: grpc.StatusObject) => resolve({ replies, status, at }));
    send();
    // A ticks request gets no echo: half-close right away (the server keeps streaming).
    if (messages.length === 1 && messages[0]!.ticks !== undefined) send();
  });
}

const statusName = (code: grpc.status): string => grpc.status[code] ?? String(code);

describe('gRPC through stock Envoy (h2c and TLS upstreams)', () => {
  let env: MeshEnv;
  let dir: string;
  let h2cServer: { port: number; close(): void };
  let tlsServer: { port: number; close(): void };
  // Plain HTTP/2, holds every stream: unlike a gRPC server it ignores grpc-timeout.
  const hold = http2.createServer();
  const held: http2.ServerHttp2Stream[] = [];
  hold.on('stream', (stream) => {
    stream.on('error', () => {}); // Envoy resets it when the deadline passes
    held.push(stream);
  });
  const clients: Record<'h2c' | 'tls' | 'auto', EchoClientType> = {} as Record<'h2c' | 'tls' | 'auto', EchoClientType>;
  let edgeCertPem: string;
  let plainPort: number;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-grpc-'));
    const [upstream, edge] = await Promise.all([selfSignedCert('grpc.example.com'), selfSignedCert('edge.example.com')]);
    edgeCertPem = edge.certPem;
    fs.writeFileSync(path.join(dir, 'upstream-ca.crt'), upstream.certPem);
    fs.writeFileSync(path.join(dir, 'edge.crt'), edge.certPem);
    fs.writeFileSync(path.join(dir, 'edge.key'), edge.keyPem);
    h2cServer = await startGrpcServer('h2c-server', grpc.ServerCredentials.createInsecure());
    await new Promise<void>((resolve) => hold.listen(0, '127.0.0.1', resolve));
    const holdPort = (hold.address() as { port: number }).port;
    tlsServer = await startGrpcServer(
      'tls-server',
      grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(upstream.certPem), private_key: Buffer.from(upstream.keyPem) }], false),
    );
    let securePort: number, autoPort: number;
    [plainPort, securePort, autoPort] = [await freePort(), await freePort(), await freePort()];
    // Same routes on both listeners, to a cluster of the listener's kind.
    const routes = (cluster: string) => `
      - match: { path: /test.Echo/Unary }
        cluster: ${cluster}
        timeout: 500ms                   # unary: request end → response end
      - match: { prefix: /test.Echo/Chat, headers: { x-route: short } }
        cluster: ${cluster}
        timeout: 500ms                   # a stream on a request timeout: cut
      - match: { prefix: /test.Echo/Chat, headers: { x-route: idle } }
        cluster: ${cluster}
        idle_timeout: 500ms              # silent for 500ms: reset
      - match: { prefix: /test.Echo/Chat, headers: { x-route: capped } }
        cluster: ${cluster}
        max_stream_duration: 400ms       # streams: at most 400ms from the first byte
      - match: { prefix: /test.Echo/ }
        cluster: ${cluster}
        max_stream_duration: 0s          # streams: no limit but the client's deadline`;
    env = await startMeshEnv({
      nodeId: 'grpc',
      listeners: ['grpc-plain', 'grpc-secure', 'grpc-auto'],
      yaml: `listeners:
  - name: grpc-plain
    port: ${plainPort}
    protocol: http
    routes:
      - match: { prefix: /test.Hold/ }   # an upstream that never answers nor reads grpc-timeout
        cluster: hold
        max_stream_duration: 0s${routes('echo-h2c')}
  - name: grpc-secure
    port: ${securePort}
    protocol: http
    tls:
      certificates: [ { cert: ${dir}/edge.crt, key: ${dir}/edge.key } ]
    routes:${routes('echo-tls')}
  - name: grpc-auto                # gRPC is h2c: http_inspector sends it to the HTTP routes
    port: ${autoPort}
    protocol: auto
    routes:${routes('echo-h2c')}
    tcp: { cluster: echo-h2c }
clusters:
  - { name: hold, endpoints: [ 127.0.0.1:${holdPort} ], http2: true }
  - name: echo-h2c
    endpoints: [ 127.0.0.1:${h2cServer.port} ]
    http2: true
  - name: echo-tls
    endpoints: [ 127.0.0.1:${tlsServer.port} ]
    http2: true
    tls: { sni: grpc.example.com, ca: ${dir}/upstream-ca.crt }
`,
    });
    clients.h2c = new EchoClient(`127.0.0.1:${plainPort}`, grpc.credentials.createInsecure());
    clients.auto = new EchoClient(`127.0.0.1:${autoPort}`, grpc.credentials.createInsecure());
    clients.tls = new EchoClient(`127.0.0.1:${securePort}`, grpc.credentials.createSsl(Buffer.from(edgeCertPem)), {
      'grpc.ssl_target_name_override': 'edge.example.com',
      'grpc.default_authority': 'edge.example.com',
    });
  });

  after(async () => {
    clients.h2c?.close();
    clients.tls?.close();
    clients.auto?.close();
    await env?.close();
    h2cServer?.close();
    tlsServer?.close();
    for (const s of held) s.destroy();
    hold.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const kind of ['h2c', 'tls'] as const) {
    const server = `${kind}-server`;

    it(`${kind}: a unary call reaches the ${kind} server through Envoy`, async () => {
      const res = await unary(clients[kind], { text: 'hello' });
      assert.deepEqual(res, { text: 'hello', server, viaEnvoy: true });
    });

    it(`${kind}: the server's status codes, details and trailing metadata reach the client unchanged`, async () => {
      for (const code of [grpc.status.NOT_FOUND, grpc.status.PERMISSION_DENIED, grpc.status.RESOURCE_EXHAUSTED]) {
        const details = `${statusName(code)} from the server, with ünicode`;
        const err = (await unary(clients[kind], { fail: { code, details } }).then(
          () => assert.fail('the call succeeded'),
          (e: unknown) => e,
        )) as grpc.ServiceError;
        assert.equal(statusName(err.code), statusName(code));
        assert.equal(err.details, details);
        assert.deepEqual(err.metadata.get('x-reason'), [`refused by ${server}`]);
      }
    });

    it(`${kind}: a bidirectional stream converses message by message`, async () => {
      const messages = ['one', 'two', 'three', 'four', 'five'].map((text) => ({ text }));
      const r = await chat(clients[kind], messages);
      assert.equal(r.status.code, grpc.status.OK, r.status.details);
      assert.deepEqual(r.replies, messages.map((m) => ({ ...m, server })));
    });
  }

  it('a method no route matches gets UNIMPLEMENTED from Envoy (its 404 as gRPC)', async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      clients.h2c.makeUnaryRequest('/other.Service/Method', json.serialize, json.deserialize, {}, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (e) =>
        resolve(e as grpc.ServiceError),
      );
    });
    assert.equal(statusName(err.code), 'UNIMPLEMENTED', err.message);
  });

  it('auto: a protocol-detection port takes gRPC (h2c) to the HTTP routes, unary and bidi', async () => {
    assert.deepEqual(await unary(clients.auto, { text: 'detected' }), { text: 'detected', server: 'h2c-server', viaEnvoy: true });
    const r = await chat(clients.auto, [{ text: 'a' }, { text: 'b' }]);
    assert.equal(statusName(r.status.code), 'OK', r.status.details);
    assert.deepEqual(r.replies.map((m) => m.text), ['a', 'b']);
    // The HTTP chain served it, not the tcp fallback.
    assert.ok((await env.envoy.stat('http.grpc-auto.downstream_rq_total'))! >= 2);
  });

  // Timeouts: once (over h2c); the route semantics do not depend on the transport.
  it('a unary call over its route timeout (500ms) is failed by Envoy; one under it succeeds', async () => {
    assert.equal((await unary(clients.h2c, { text: 'quick', delayMs: 100 })).text, 'quick');
    const started = Date.now();
    const err = (await unary(clients.h2c, { text: 'slow', delayMs: 1500 }).then(
      () => assert.fail('the slow call succeeded'),
      (e: unknown) => e,
    )) as grpc.ServiceError;
    const took = Date.now() - started;
    assert.equal(statusName(err.code), 'UNAVAILABLE', err.message);
    assert.match(err.details, /upstream request timeout/);
    // Failed by Envoy's timer, not after the server's answer (1500ms).
    assert.ok(took >= 450 && took < 1500, `failed after ${took}ms`);
  });

  it('a 1s stream (2× the unary timeout) lives on the route with max_stream_duration', async () => {
    const r = await chat(clients.h2c, [{ ticks: 10, everyMs: 100 }]);
    assert.equal(statusName(r.status.code), 'OK', r.status.details);
    assert.deepEqual(r.replies.map((m) => m.tick), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.ok(r.at.at(-1)! >= 950, `last tick at ${r.at.at(-1)}ms`);
  });

  it('the same stream is cut on a route with only the request timeout (500ms)', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-route', 'short');
    const r = await chat(clients.h2c, [{ ticks: 10, everyMs: 100 }], { metadata });
    // Response headers were sent already, so Envoy can only reset the stream (grpc-js: INTERNAL, RST_STREAM).
    assert.equal(statusName(r.status.code), 'INTERNAL', r.status.details);
    assert.match(r.status.details, /RST_STREAM/);
    assert.ok(r.replies.length >= 1 && r.replies.length < 10, `got ${r.replies.length} ticks before the cut`);
  });

  it('max_stream_duration caps a stream from its start', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-route', 'capped');
    const r = await chat(clients.h2c, [{ ticks: 10, everyMs: 100 }], { metadata });
    assert.notEqual(statusName(r.status.code), 'OK');
    assert.ok(r.replies.length >= 1 && r.replies.length < 10, `got ${r.replies.length} ticks before the cap`);
  });

  it('on a max_stream_duration route, Envoy enforces the client deadline (grpc-timeout) itself', async () => {
    // A raw HTTP/2 client sends grpc-timeout but never enforces it, and the upstream ignores it:
    // only Envoy can end the call. (A gRPC server enforces the header too, racing Envoy.)
    const session = http2.connect(`http://127.0.0.1:${plainPort}`);
    try {
      const started = Date.now();
      const stream = session.request({
        ':method': 'POST',
        ':path': '/test.Hold/Forever',
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': '300m',
      });
      const body = json.serialize({ text: 'are you there?' });
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      body.copy(frame, 5);
      stream.end(frame);
      const headers: http2.IncomingHttpHeaders[] = [];
      stream.on('response', (h) => headers.push(h));
      stream.on('trailers', (h) => headers.push(h));
      stream.resume();
      await new Promise<void>((resolve) => stream.on('close', () => resolve()));
      const took = Date.now() - started;
      // The route itself has no limit (0s) and the upstream never answers: the cut is the header's.
      assert.ok(took >= 250 && took < 1500, `ended after ${took}ms`);
      const status = Object.assign({}, ...headers) as http2.IncomingHttpHeaders;
      assert.equal(status['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED));
      assert.equal(status['grpc-message'], 'downstream duration timeout');
    } finally {
      session.close();
    }
  });

  it('a conversation longer than the request timeout is not cut: it counts from the request end (half-close)', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-route', 'short');
    const messages = Array.from({ length: 8 }, (_, i) => ({ text: `m${i}` }));
    const started = Date.now();
    const r = await chat(clients.h2c, messages, { metadata, gapMs: 150 });
    assert.equal(statusName(r.status.code), 'OK', r.status.details);
    assert.equal(r.replies.length, 8);
    assert.ok(Date.now() - started >= 1000, 'the conversation lasted 2× the timeout');
  });

  it('idle_timeout resets a stream that stays silent longer', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-route', 'idle');
    // Ticks 100ms apart keep it alive; then 1200ms of silence does not.
    const alive = await chat(clients.h2c, [{ ticks: 6, everyMs: 100 }], { metadata });
    assert.equal(statusName(alive.status.code), 'OK', alive.status.details);
    const silent = await chat(clients.h2c, [{ ticks: 1, everyMs: 1200 }], { metadata });
    // Nothing was answered yet: Envoy's local reply, 504 "stream timeout", which gRPC reads as UNAVAILABLE.
    assert.equal(statusName(silent.status.code), 'UNAVAILABLE', silent.status.details);
    assert.match(silent.status.details, /stream timeout/);
    assert.equal(silent.replies.length, 0);
  });
});
