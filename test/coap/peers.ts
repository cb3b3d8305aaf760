// Real CoAP peers for the tests: libcoap's coap-server-notls (one process
// serves UDP and TCP on its port; `-d` lets PUT create resources, so a test
// can tell which server a request reached), libcoap's coap-client-notls,
// aiocoap's client (PyPI, in .cache/venv), and npm coap (UDP only).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import coap from 'coap';
import { exitHooksOnSigterm, stopChild } from '../support/children.ts';
import { freePort, REPO_ROOT, waitUntil } from '../support/envoy.ts';

export interface CoapServer {
  name: string;
  port: number;
  close(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => { for (const c of live) c.kill('SIGKILL'); });

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** coap-server-notls on 127.0.0.1, a free port, UDP and TCP. */
export async function startCoapServer(name: string): Promise<CoapServer> {
  const port = await freePort();
  const child = spawn('coap-server-notls', ['-A', '127.0.0.1', '-p', String(port), '-d', '100', '-v', '3'], { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.once('exit', () => live.delete(child));
  exitHooksOnSigterm();
  const close = () => stopChild(child, 'SIGTERM', 2000);
  try {
    await waitUntil(() => child.exitCode === null && tcpOpen(port), 5000, () => `${name}: coap-server-notls on ${port} (${stderr.trim()})`);
  } catch (error) {
    // the caller gets no handle: a server left running would keep the test process alive
    await close();
    throw error;
  }
  return { name, port, close };
}

export interface ClientResult {
  /** The payload(s) printed (libcoap prints each response's payload). */
  stdout: string;
  /** Error responses ("4.03 Forbidden") and warnings. */
  stderr: string;
  code: number | null;
}

function run(bin: string, args: string[], timeoutMs: number): Promise<ClientResult> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: timeoutMs, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      resolve({ stdout, stderr, code });
    });
  });
}

/** coap-client-notls ARGS URI (its own -B timeout keeps it bounded; ours is a backstop). */
export function libcoapClient(args: string[], uri: string, timeoutMs = 20_000): Promise<ClientResult> {
  return run('coap-client-notls', ['-B', '10', ...args, uri], timeoutMs);
}

const AIOCOAP = path.join(REPO_ROOT, '.cache', 'venv', 'bin', 'aiocoap-client');

/** aiocoap-client ARGS URI: sends its first request right behind its CSM over TCP. */
export function aiocoapClient(args: string[], uri: string, timeoutMs = 20_000): Promise<ClientResult> {
  if (!fs.existsSync(AIOCOAP)) throw new Error(`${AIOCOAP} missing: run test/support/install-peers.sh coap`);
  return run(AIOCOAP, [...args, uri], timeoutMs);
}

export interface NpmResponse {
  code: string;
  payload: Buffer;
}

/** One request with npm coap over UDP (blockwise handled by the library). */
export function npmCoapRequest(port: number, pathname: string, method = 'GET', payload?: Buffer): Promise<NpmResponse> {
  return new Promise((resolve, reject) => {
    const req = coap.request({ hostname: '127.0.0.1', port, pathname, method: method as 'GET', confirmable: true });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ code: res.code, payload: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.on('timeout', () => reject(new Error(`npm coap ${method} ${pathname}: timeout`)));
    if (payload) req.write(payload);
    req.end();
  });
}

/** Observes `pathname` with npm coap over UDP until `count` notifications (after the first response) arrived. */
export function npmCoapObserve(port: number, pathname: string, count: number, timeoutMs = 15_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const got: string[] = [];
    const req = coap.request({ hostname: '127.0.0.1', port, pathname, observe: true });
    const timer = setTimeout(() => reject(new Error(`npm coap observe ${pathname}: ${got.length} of ${count + 1} messages`)), timeoutMs);
    req.on('response', (res) => {
      res.on('data', (c: Buffer) => {
        got.push(c.toString());
        if (got.length > count) {
          clearTimeout(timer);
          (res as unknown as { close(): void }).close();
          resolve(got);
        }
      });
    });
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    req.end();
  });
}
