// The xDS server's own gRPC transport (xds-server/server/grpc.ts) against
// @grpc/grpc-js as the client, and against raw HTTP/2 and TCP peers for what
// a well-behaved client never does (split and compressed messages, unknown
// methods, a peer that stops answering pings).
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { GrpcServer, Status, type BidiCall, type GrpcServerOptions, type Rejection } from '../../xds-server/server/grpc.ts';
import { waitUntil } from '../support/envoy.ts';

const ECHO = '/test.Echo/Chat';

interface Served {
  server: GrpcServer;
  port: number;
  rejections: Rejection[];
  /** Why each call closed, in order. */
  closes: string[];
  received: Buffer[];
}

/** Echoes every message back; "end:CODE" ends the call with that status. */
async function startEcho(options: GrpcServerOptions = {}): Promise<Served> {
  const rejections: Rejection[] = [];
  const server = new GrpcServer({ ...options, onRejected: (r) => rejections.push(r) });
  const served: Served = { server, port: 0, rejections, closes: [], received: [] };
  server.addMethod(ECHO, (call: BidiCall) => ({
    onMessage(message) {
      served.received.push(Buffer.from(message));
      const text = message.toString();
      if (text.startsWith('end:')) call.end(Number(text.slice(4)), 'ended by request');
      else call.write(message);
    },
    onClose(reason) {
      served.closes.push(reason);
    },
  }));
  served.port = await server.listen(0, '127.0.0.1');
  return served;
}

function grpcClient(port: number, options: grpc.ChannelOptions = {}): grpc.Client {
  return new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options);
}

function chat(client: grpc.Client, path = ECHO): grpc.ClientDuplexStream<Buffer, Buffer> {
  return client.makeBidiStreamRequest(path, (b: Buffer) => b, (b: Buffer) => b);
}

function statusOf(call: grpc.ClientDuplexStream<Buffer, Buffer>): Promise<grpc.StatusObject> {
  return new Promise((resolve) => {
    call.on('status', resolve);
    call.on('error', () => undefined);
  });
}

function frame(message: Buffer, compressed = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = compressed;
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** A raw HTTP/2 request to `path`; resolves with the response's trailers (or headers, for trailers-only). */
function rawCall(port: number, path: string, write: (req: http2.ClientHttp2Stream) => Promise<void> | void, headers: http2.OutgoingHttpHeaders = {}) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
  const data: Buffer[] = [];
  const done = new Promise<{ status: string | undefined; message: string | undefined; data: Buffer }>((resolve, reject) => {
    let status: string | undefined;
    let message: string | undefined;
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) {
        status = String(h['grpc-status']);
        message = decodeURIComponent(String(h['grpc-message'] ?? ''));
      }
    };
    req.on('response', take);
    req.on('trailers', take);
    req.on('data', (d: Buffer) => data.push(d));
    req.on('close', () => {
      session.close();
      resolve({ status, message, data: Buffer.concat(data) });
    });
    req.on('error', reject);
  });
  void Promise.resolve(write(req));
  return done;
}

const servers: GrpcServer[] = [];
after(() => {
  for (const s of servers) s.forceClose();
});

describe('gRPC transport of the xDS server', () => {
  it('carries messages both ways in order, from empty to larger than a frame, and ends OK on half-close', async () => {
    const echo = await startEcho();
    servers.push(echo.server);
    const client = grpcClient(echo.port);
    const call = chat(client);
    const status = statusOf(call);
    const sizes = [0, 1, 10, 70_000, 300_000, 3];
    const got: Buffer[] = [];
    call.on('data', (b: Buffer) => got.push(b));
    for (const [i, n] of sizes.entries()) call.write(Buffer.alloc(n, 97 + i));
    await waitUntil(() => got.length === sizes.length, 5000, 'all echoes');
    assert.deepEqual(got.map((b) => b.length), sizes);
    for (const [i, b] of got.entries()) assert.ok(b.every((c) => c === 97 + i));
    call.end();
    assert.equal((await status).code, Status.OK);
    await waitUntil(() => echo.closes.length === 1, 2000, 'server saw the close');
    assert.equal(echo.closes[0], 'client ended');
    client.close();
  });

  it('reassembles a message split over many DATA frames, and takes many messages in one', async () => {
    const echo = await startEcho();
    servers.push(echo.server);
    const big = Buffer.alloc(50_000, 7);
    const result = await rawCall(echo.port, ECHO, async (req) => {
      const bytes = frame(big);
      for (let at = 0; at < bytes.length; at += 999) {
        req.write(bytes.subarray(at, at + 999));
        await new Promise((r) => setImmediate(r));
      }
      req.write(Buffer.concat([frame(Buffer.from('x')), frame(Buffer.from('yy')), frame(Buffer.alloc(0))]));
      req.end();
    });
    assert.equal(result.status, String(Status.OK));
    assert.deepEqual(echo.received.map((b) => b.length), [50_000, 1, 2, 0]);
    assert.ok(echo.received[0]!.equals(big));
    assert.equal(result.data.length, 5 + 50_000 + 6 + 7 + 5);
  });

  it('answers an unknown method with UNIMPLEMENTED', async () => {
    const echo = await startEcho();
    servers.push(echo.server);
    const client = grpcClient(echo.port);
    const status = await statusOf(chat(client, '/test.Echo/Nope'));
    assert.equal(status.code, Status.UNIMPLEMENTED);
    assert.match(status.details, /unknown method \/test\.Echo\/Nope/);
    assert.deepEqual(echo.rejections.map((r) => [r.reason, r.path]), [['unknown_method', '/test.Echo/Nope']]);
    client.close();
  });

  it('ends a call with a compressed or an oversized message, with its status and reason', async () => {
    const echo = await startEcho({ maxReceiveMessageBytes: 1000 });
    servers.push(echo.server);
    const compressed = await rawCall(echo.port, ECHO, (req) => void req.write(frame(Buffer.from('zip'), 1)));
    assert.equal(compressed.status, String(Status.UNIMPLEMENTED));
    assert.match(compressed.message ?? '', /compressed/);
    const oversized = await rawCall(echo.port, ECHO, (req) => void req.write(frame(Buffer.alloc(1001))));
    assert.equal(oversized.status, String(Status.RESOURCE_EXHAUSTED));
    assert.match(oversized.message ?? '', /1001 bytes is over the limit of 1000/);
    // announced in a prefix split over two frames, the body never sent: refused at the prefix
    const announced = await rawCall(echo.port, ECHO, async (req) => {
      req.write(Buffer.from([0, 0x7f]));
      await new Promise((r) => setImmediate(r));
      req.write(Buffer.from([0xff, 0xff, 0xff, 1, 2, 3]));
    });
    assert.equal(announced.status, String(Status.RESOURCE_EXHAUSTED));
    assert.match(announced.message ?? '', /2147483647 bytes is over the limit/);
    const encoded = await rawCall(echo.port, ECHO, () => undefined, { 'grpc-encoding': 'gzip' });
    assert.equal(encoded.status, String(Status.UNIMPLEMENTED));
    assert.deepEqual(echo.received, []);
    assert.deepEqual(echo.rejections.map((r) => r.reason), ['unsupported_encoding', 'message_too_large', 'message_too_large', 'unsupported_encoding']);
  });

  it('sends the status a handler ends with', async () => {
    const echo = await startEcho();
    servers.push(echo.server);
    const client = grpcClient(echo.port);
    const call = chat(client);
    const status = statusOf(call);
    call.write(Buffer.from(`end:${Status.INTERNAL}`));
    const s = await status;
    assert.deepEqual([s.code, s.details], [Status.INTERNAL, 'ended by request']);
    client.close();
  });

  it('closes a connection whose peer stops answering pings, and keeps one that answers', async () => {
    const echo = await startEcho({ keepaliveMs: 100, keepaliveTimeoutMs: 200 });
    servers.push(echo.server);
    // a live gRPC client: its HTTP/2 stack answers every ping
    const client = grpcClient(echo.port);
    const live = chat(client);
    const liveStatus = statusOf(live);
    const echoes: Buffer[] = [];
    live.on('data', (b: Buffer) => echoes.push(b));
    // a peer that opens HTTP/2 and then goes silent (a half-open connection)
    const silent = net.connect(echo.port, '127.0.0.1');
    silent.on('data', () => undefined); // reads, never answers
    silent.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    const started = Date.now();
    await new Promise<void>((resolve) => silent.on('close', () => resolve()));
    const silentFor = Date.now() - started;
    assert.ok(silentFor >= 250 && silentFor < 3000, `silent peer closed after ${silentFor} ms`);
    live.write(Buffer.from('still here'));
    await waitUntil(() => echoes.length === 1, 2000, 'the live call still works');
    live.end();
    assert.equal((await liveStatus).code, Status.OK);
    client.close();
  });

  it('after the maximum connection age, sends GOAWAY, and ends the calls after the grace', async () => {
    const echo = await startEcho({ maxConnectionAgeMs: 300, maxConnectionAgeGraceMs: 300 });
    servers.push(echo.server);
    const session = http2.connect(`http://127.0.0.1:${echo.port}`);
    session.on('error', () => undefined);
    const goaway = new Promise<number>((resolve) => session.on('goaway', () => resolve(Date.now())));
    const req = session.request({ ':method': 'POST', ':path': ECHO, 'content-type': 'application/grpc', te: 'trailers' });
    req.on('data', () => undefined);
    req.on('error', () => undefined);
    const trailers = new Promise<{ at: number; status: string }>((resolve) =>
      req.on('trailers', (h) => resolve({ at: Date.now(), status: String(h['grpc-status']) })),
    );
    const started = Date.now();
    req.write(frame(Buffer.from('hello')));
    const goawayAt = await goaway;
    // during the grace the call still works
    req.write(frame(Buffer.from('during grace')));
    const ended = await trailers;
    assert.ok(goawayAt - started >= 250 && goawayAt - started < 2000, `GOAWAY after ${goawayAt - started} ms`);
    assert.ok(ended.at - goawayAt >= 250, `call ended ${ended.at - goawayAt} ms after GOAWAY`);
    assert.equal(ended.status, String(Status.UNAVAILABLE));
    assert.deepEqual(echo.received.map(String), ['hello', 'during grace']);
    assert.deepEqual(echo.closes, ['max connection age']);
    session.destroy();
  });

  it('survives an error of its listening socket (e.g. accept failing with EMFILE) and reports it', async () => {
    const errors: Error[] = [];
    const echo = await startEcho({ onServerError: (e) => errors.push(e) });
    servers.push(echo.server);
    // white box: the http2 server emits accept errors on itself; an unheard 'error' would end the process
    const listener = Reflect.get(echo.server, 'server') as http2.Http2Server;
    listener.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' }));
    assert.deepEqual(errors.map((e) => e.message), ['accept EMFILE']);
    const client = grpcClient(echo.port);
    const call = chat(client);
    const got = new Promise<Buffer>((resolve) => call.on('data', resolve));
    call.write(Buffer.from('after'));
    assert.equal(String(await got), 'after');
    call.end();
    client.close();
  });

  it('close() ends open calls with UNAVAILABLE and resolves once connections are gone', async () => {
    const echo = await startEcho();
    const client = grpcClient(echo.port);
    const call = chat(client);
    const status = statusOf(call);
    call.write(Buffer.from('hi'));
    await waitUntil(() => echo.received.length === 1, 2000, 'message arrived');
    await echo.server.close();
    assert.equal((await status).code, Status.UNAVAILABLE);
    assert.deepEqual(echo.closes, ['server shutting down']);
    client.close();
  });
});
