// Small upstreams for envoy-configs/mesh.example.yaml, so `npm start` shows
// real traffic: HTTP servers that answer with their name (and /healthz), a TCP
// echo that answers health checks, and TLS servers with self-signed certs.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

// 127.0.0.1 for npm start; docker-compose.yml sets 0.0.0.0 so Envoy's container reaches them.
const HOST = process.env.DEMO_HOST ?? '127.0.0.1';

function httpUpstream(name: string, port: number): void {
  http
    .createServer((req, res) => {
      res.setHeader('x-upstream', name);
      res.end(req.url === '/healthz' ? 'ok' : `${name}\n`);
    })
    .listen(port, HOST);
}

function tcpEcho(port: number): void {
  net
    .createServer((socket) => {
      socket.on('data', (data) => socket.write(data.toString() === 'PING\r\n' ? 'PONG' : data));
      socket.on('error', () => socket.destroy());
    })
    .listen(port, HOST);
}

function tlsUpstream(name: string, serverName: string, port: number): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-demo-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', `/CN=${serverName}`, '-addext', `subjectAltName=DNS:${serverName}`,
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  const key = fs.readFileSync(path.join(dir, 'key.pem'));
  const cert = fs.readFileSync(path.join(dir, 'cert.pem'));
  // Read once, so nothing (least of all a private key) stays in /tmp after stop.
  fs.rmSync(dir, { recursive: true, force: true });
  tls
    .createServer({ key, cert }, (socket) => {
      socket.end(`${name}\n`);
    })
    .listen(port, HOST);
}

httpUpstream('api-v1', 18080);
httpUpstream('api-v2', 18081);
httpUpstream('api-v2', 18082);
tcpEcho(18090);
tlsUpstream('tls-a', 'a.example.com', 18443);
tlsUpstream('tls-b', 'x.b.example.com', 18444);
process.stdout.write(`demo upstreams on ${HOST}:18080-18082 (http), 18090 (tcp), 18443-18444 (tls)\n`);
