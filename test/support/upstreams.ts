// Real local servers (and small clients) for routing tests through Envoy.
// Every server listens on 127.0.0.1 on a free port and is told apart by its name:
//   HTTP: body = name, header `x-upstream: name`
//   TCP:  echoes bytes back; when named, the first reply of each connection is
//         prefixed with `name:` (send "hi" -> receive "a:hi"; later chunks plain)
//   TLS:  after the handshake sends name and ends the connection
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export interface HttpUpstream {
  readonly name: string;
  readonly port: number;
  /** Number of requests answered. */
  readonly hits: number;
  /** Every request seen, in order. */
  readonly requests: readonly RecordedRequest[];
  close(): Promise<void>;
}

export interface TcpEcho {
  readonly name: string | undefined;
  readonly port: number;
  /** Number of connections accepted. */
  readonly hits: number;
  /** Bytes received, one Buffer per connection in accept order. */
  readonly received: readonly Buffer[];
  close(): Promise<void>;
}

export interface TlsUpstream {
  readonly name: string;
  readonly serverName: string;
  readonly port: number;
  /** Number of completed TLS handshakes. */
  readonly hits: number;
  /** SNI sent by each client (undefined when none), in order. */
  readonly serverNames: readonly (string | undefined)[];
  /** The upstream's self-signed certificate (CN and SAN DNS = serverName). */
  readonly certPem: string;
  readonly keyPem: string;
  close(): Promise<void>;
}

export interface HttpResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

export interface HttpGetOptions {
  host?: string;
  method?: string;
  timeoutMs?: number;
  /** Defaults to false (a fresh connection per request). */
  agent?: http.Agent | false;
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      const addr = server.address();
      if (addr === null || typeof addr === 'string') reject(new Error('server has no TCP address'));
      else resolve(addr.port);
    });
  });
}

/** Closes a server and destroys its open sockets. */
function closeServer(server: net.Server, sockets: Set<net.Socket>): Promise<void> {
  return new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
}

function trackSockets(server: net.Server): Set<net.Socket> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return sockets;
}

export async function startHttpUpstream(name: string): Promise<HttpUpstream> {
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': name });
      res.end(name);
    });
  });
  const sockets = trackSockets(server);
  const port = await listen(server);
  return {
    name,
    port,
    get hits() { return requests.length; },
    requests,
    close: () => closeServer(server, sockets),
  };
}

export async function startTcpEcho(name?: string): Promise<TcpEcho> {
  const received: Buffer[] = [];
  const server = net.createServer((socket) => {
    const index = received.push(Buffer.alloc(0)) - 1;
    let first = true;
    socket.on('data', (chunk) => {
      received[index] = Buffer.concat([received[index], chunk]);
      if (first && name !== undefined) socket.write(Buffer.concat([Buffer.from(`${name}:`), chunk]));
      else socket.write(chunk);
      first = false;
    });
    socket.on('end', () => socket.end());
    socket.on('error', () => socket.destroy());
  });
  const sockets = trackSockets(server);
  const port = await listen(server);
  return {
    name,
    port,
    get hits() { return received.length; },
    received,
    close: () => closeServer(server, sockets),
  };
}

const run = promisify(execFile);

/** Self-signed certificate for serverName, made with the openssl CLI (see install-peers.sh). */
export async function selfSignedCert(serverName: string): Promise<{ certPem: string; keyPem: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'protoplane-cert-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  try {
    await run('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '30',
      '-subj', `/CN=${serverName}`, '-addext', `subjectAltName=DNS:${serverName}`,
    ]);
    return { certPem: await readFile(cert, 'utf8'), keyPem: await readFile(key, 'utf8') };
  } catch (err) {
    throw new Error(`openssl could not make a certificate (run test/support/install-peers.sh): ${String(err)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function startTlsUpstream(name: string, serverName: string): Promise<TlsUpstream> {
  const { certPem, keyPem } = await selfSignedCert(serverName);
  const serverNames: (string | undefined)[] = [];
  const server = tls.createServer({ cert: certPem, key: keyPem }, (socket) => {
    serverNames.push(typeof socket.servername === 'string' ? socket.servername : undefined);
    socket.on('error', () => socket.destroy());
    socket.end(name);
  });
  const sockets = trackSockets(server);
  const port = await listen(server);
  return {
    name,
    serverName,
    port,
    get hits() { return serverNames.length; },
    serverNames,
    certPem,
    keyPem,
    close: () => closeServer(server, sockets),
  };
}

export function httpGet(
  port: number,
  urlPath: string,
  headers: Record<string, string> = {},
  opts: HttpGetOptions = {},
): Promise<HttpResult> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: opts.host ?? '127.0.0.1', port, path: urlPath, method: opts.method ?? 'GET', headers, agent: opts.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET 127.0.0.1:${port}${urlPath} timed out after ${timeoutMs}ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Connects, writes `data`, and collects the reply until `done(reply)` holds or the
 * peer ends the connection. Rejects on timeout, naming what had arrived so far.
 */
export function tcpExchange(
  port: number,
  data: string | Buffer,
  opts: { done?: (reply: Buffer) => boolean; timeoutMs?: number; host?: string } = {},
): Promise<Buffer> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const done = opts.done ?? ((reply: Buffer) => reply.length >= Buffer.byteLength(data));
  return new Promise((resolve, reject) => {
    let reply = Buffer.alloc(0);
    let settled = false;
    const socket = net.connect(port, opts.host ?? '127.0.0.1', () => socket.write(data));
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (err) reject(err);
      else resolve(reply);
    };
    socket.setTimeout(timeoutMs, () =>
      finish(new Error(`TCP exchange with 127.0.0.1:${port} timed out after ${timeoutMs}ms; got ${JSON.stringify(reply.toString('latin1'))}`)));
    socket.on('data', (chunk: Buffer) => {
      reply = Buffer.concat([reply, chunk]);
      if (done(reply)) finish();
    });
    socket.on('end', () => finish());
    socket.on('error', (err) => finish(err));
  });
}

/**
 * Opens TLS to port with SNI serverName (no verification), reads until the peer
 * ends, and returns what it sent and the certificate the client saw.
 */
export function tlsRead(
  port: number,
  serverName: string,
  opts: { timeoutMs?: number; host?: string } = {},
): Promise<{ body: string; certPem: string }> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let certPem = '';
    const socket = tls.connect({ host: opts.host ?? '127.0.0.1', port, servername: serverName, rejectUnauthorized: false }, () => {
      certPem = socket.getPeerX509Certificate()?.toString() ?? '';
    });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`TLS read from 127.0.0.1:${port} (SNI ${serverName}) timed out after ${timeoutMs}ms`)));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      socket.destroy();
      resolve({ body: Buffer.concat(chunks).toString('utf8'), certPem });
    });
    socket.on('error', reject);
  });
}
