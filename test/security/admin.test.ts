// Admin cannot starve xDS (issue 19): unfinished admin requests (slowloris)
// are closed after the timeout, connections past the cap are closed at
// accept (each costs a file descriptor xDS needs), and xDS keeps accepting;
// everything but the probes, /metrics and the modules can require a token
// (bearer header, or a cookie the status page gets from ?token= once);
// /debug/nodes pages. Refusals Node makes itself (header and request
// deadlines) are counted too, and every refusal is logged, rate-limited.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { adminConnectionCap, RefusalLog } from '../../xds-server/admin/guard.ts';
import type { Logger } from '../../xds-server/log.ts';
import { TYPE } from '../../xds-server/translate/index.ts';
import { serveForTest } from '../support/mesh-env.ts';
import { ADS, RawConnection, sotwRequest } from './raw-xds.ts';

const MESH = 'listeners:\n  - name: t\n    port: 10000\n    protocol: tcp\n    routes: [ { cluster: a } ]\nclusters:\n  - name: a\n    endpoints: [ 127.0.0.1:9 ]\n';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-admin-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = path.join(dir, 'mesh.yaml');
fs.writeFileSync(file, MESH);

/** A connection that sends half a request line and then nothing; resolves when the server closes it. */
function slowloris(port: number): { closed: Promise<number> } {
  const started = Date.now();
  const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: '));
  socket.on('error', () => undefined);
  return { closed: new Promise((resolve) => socket.on('close', () => resolve(Date.now() - started))) };
}

/** A connection that sends a request one header byte every `everyMs` (never idle long enough for the socket timeout). */
function trickle(port: number, everyMs: number): { closed: Promise<{ ms: number; reply: string }> } {
  const started = Date.now();
  let reply = '';
  const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: '));
  const timer = setInterval(() => socket.writable && socket.write('a'), everyMs);
  socket.on('data', (d) => (reply += d.toString()));
  socket.on('error', () => undefined);
  return {
    closed: new Promise((resolve) =>
      socket.on('close', () => {
        clearInterval(timer);
        resolve({ ms: Date.now() - started, reply });
      }),
    ),
  };
}

function capturingLogger(): { log: Logger; lines: Array<{ msg: string; reason?: string; count?: number }> } {
  const lines: Array<{ msg: string; reason?: string; count?: number }> = [];
  return { log: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) }), lines };
}

async function refused(port: number, reason: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(new RegExp(`protoplane_admin_refused_total\\{reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
}

describe('admin slowloris', () => {
  it('unfinished requests are closed after the timeout, connections past the cap at accept, and xDS keeps accepting', async () => {
    const { log, lines } = capturingLogger();
    const app = await serveForTest(file, { watchFilters: false, adminMaxConnections: 20, adminTimeoutMs: 1000, log });
    try {
      const held = Array.from({ length: 60 }, () => slowloris(app.adminPort));
      await sleep(200);
      // xDS accepts and answers while admin is under attack
      const xds = new RawConnection(app.xdsPort);
      const stream = xds.open(ADS);
      stream.write(sotwRequest({ typeUrl: TYPE.cluster, nodeId: 'n' }));
      assert.deepEqual((await stream.next(3000)).names, ['a']);
      xds.close();
      const times = await Promise.all(held.map((h) => Promise.race([h.closed, sleep(8000).then(() => Infinity)])));
      const open = times.filter((t) => t === Infinity).length;
      assert.equal(open, 0, `${open} unfinished admin requests still open after 8 s`);
      // 40 of them over the cap were closed at accept; the others by the timeout
      assert.ok(times.filter((t) => t < 500).length >= 40, `closed at once: ${times.filter((t) => t < 500).length}`);
      assert.ok(Math.max(...times) < 4000, `the slowest was closed after ${Math.max(...times)} ms`);
      assert.ok((await refused(app.adminPort, 'too_many_connections')) >= 40);
      // logged, but not once per connection: the first now, a summary per 10 s
      const drops = lines.filter((l) => l.reason === 'too_many_connections');
      assert.equal(drops.length, 1, JSON.stringify(drops));
      assert.match(drops[0]!.msg, /dropped a connection at accept: 20 admin connections are open \(--admin-max-connections\)/);
      assert.equal(lines.filter((l) => l.reason === 'timeout').length, 1);
    } finally {
      await app.close();
    }
  });

  it('a request trickled in byte by byte is closed by the header deadline Node keeps (408), counted and logged', async () => {
    const { log, lines } = capturingLogger();
    const app = await serveForTest(file, { watchFilters: false, adminTimeoutMs: 1000, log });
    try {
      const slow = await Promise.race([trickle(app.adminPort, 200).closed, sleep(6000).then(() => ({ ms: Infinity, reply: '' }))]);
      assert.ok(slow.ms < 3000, `closed after ${slow.ms} ms`);
      assert.match(slow.reply, /^HTTP\/1.1 408/);
      assert.equal(await refused(app.adminPort, 'request_timeout'), 1);
      assert.ok(lines.some((l) => l.reason === 'request_timeout' && /did not arrive whole within 1000 ms/.test(l.msg)), JSON.stringify(lines));
    } finally {
      await app.close();
    }
  });

  it('an idle keep-alive connection is closed without counting it as refused', async () => {
    const app = await serveForTest(file, { watchFilters: false, adminTimeoutMs: 1000 });
    try {
      const socket = net.connect({ host: '127.0.0.1', port: app.adminPort }, () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
      socket.on('data', () => undefined);
      await new Promise((resolve) => socket.on('close', resolve));
      assert.equal(await refused(app.adminPort, 'timeout'), 0);
    } finally {
      await app.close();
    }
  });
});

describe('refusal log', () => {
  it('logs the first refusal of a reason at once, then one summary per interval while they go on', async () => {
    const { log, lines } = capturingLogger();
    const refusals = new RefusalLog(log, 200);
    for (let i = 0; i < 5; i++) refusals.note('too_many_connections', {}, 'dropped');
    refusals.note('unauthorized', {}, 'no token');
    assert.deepEqual(lines.map((l) => l.msg), ['admin: dropped', 'admin: no token']);
    await sleep(300);
    assert.deepEqual(lines.slice(2).map((l) => [l.reason, l.count]), [['too_many_connections', 4]]);
    refusals.note('too_many_connections', {}, 'dropped'); // within the summary's new interval: counted, not logged
    await sleep(300);
    assert.deepEqual(lines.slice(3).map((l) => [l.reason, l.count]), [['too_many_connections', 1]]);
    await sleep(300);
    assert.equal(lines.length, 4, 'nothing more once they stopped');
    refusals.note('too_many_connections', {}, 'dropped');
    assert.equal(lines.at(-1)!.msg, 'admin: dropped');
    refusals.close();
  });
});

describe('file-descriptor head-room', () => {
  it('the admin connection cap never takes more than an eighth of the open-files limit', () => {
    assert.equal(adminConnectionCap(64, 20_000), 64);
    assert.equal(adminConnectionCap(64, 256), 32);
    assert.equal(adminConnectionCap(1000, 1024), 128);
    assert.equal(adminConnectionCap(64, 16), 4);
    assert.equal(adminConnectionCap(64, undefined), 64);
  });
});

describe('admin token and paging', () => {
  it('/debug/* needs the bearer token from --admin-token-file (re-read on change); /healthz and /metrics do not', async () => {
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, 's3cret\n');
    const app = await serveForTest(file, { watchFilters: false, adminTokenFile: tokenFile });
    try {
      const get = (p: string, token?: string) => fetch(`http://127.0.0.1:${app.adminPort}${p}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
      assert.equal((await get('/debug/nodes')).status, 401);
      assert.equal((await get('/debug/nodes', 'wrong')).status, 401);
      assert.equal((await get('/debug/config_dump?node=x', 'wrong')).status, 401);
      assert.equal((await get('/debug/nodes', 's3cret')).status, 200);
      assert.equal((await get('/healthz')).status, 200);
      assert.equal((await get('/metrics')).status, 200);
      fs.writeFileSync(tokenFile, 'rotated\n');
      assert.equal((await get('/debug/nodes', 's3cret')).status, 401);
      assert.equal((await get('/debug/nodes', 'rotated')).status, 200);
      assert.equal(await refused(app.adminPort, 'unauthorized'), 4);
    } finally {
      await app.close();
    }
  });

  it('the status page and /status.json need the token too: bearer header, or ?token= once, which sets a cookie', async () => {
    const tokenFile = path.join(dir, 'token-page');
    fs.writeFileSync(tokenFile, 'p4ge-token\n');
    const app = await serveForTest(file, { watchFilters: false, adminTokenFile: tokenFile });
    try {
      const get = (p: string, headers: Record<string, string> = {}) => fetch(`http://127.0.0.1:${app.adminPort}${p}`, { headers, redirect: 'manual' });
      // what the status page shows (node ids, versions, NACK texts, config errors) is as sensitive as /debug/nodes
      const page = await get('/');
      assert.equal(page.status, 401);
      assert.match(await page.text(), /open \/\?token=TOKEN once/);
      assert.equal((await get('/status.json')).status, 401);
      assert.equal((await get('/no-such-page')).status, 401);
      assert.equal((await get('/?token=wrong')).status, 401);
      const login = await get('/?token=p4ge-token');
      assert.equal(login.status, 303);
      assert.equal(login.headers.get('location'), '/');
      const cookie = login.headers.get('set-cookie') ?? '';
      assert.match(cookie, /^protoplane_admin_token=p4ge-token; Path=\/; HttpOnly; SameSite=Strict$/);
      const withCookie = { cookie: cookie.split(';')[0]! };
      assert.equal((await get('/', withCookie)).status, 200);
      assert.equal((await get('/status.json', withCookie)).status, 200);
      assert.equal((await get('/debug/nodes', withCookie)).status, 200);
      assert.equal((await get('/status.json', { authorization: 'Bearer p4ge-token' })).status, 200);
      assert.equal((await get('/status.json?compact&token=p4ge-token')).headers.get('location'), '/status.json?compact=');
      // open: probes, Prometheus, and the modules Envoy fetches by sha256
      assert.equal((await get('/healthz')).status, 200);
      assert.equal((await get('/readyz')).status, 200);
      assert.equal((await get('/metrics')).status, 200);
      assert.equal((await get('/filters/nope.wasm')).status, 404);
      // a rotated token: the old cookie stops working
      fs.writeFileSync(tokenFile, 'next\n');
      assert.equal((await get('/status.json', withCookie)).status, 401);
      assert.equal(await refused(app.adminPort, 'unauthorized'), 5);
    } finally {
      await app.close();
    }
  });

  it('/debug/nodes pages (?limit, ?offset) and shows at most 100 names of a subscription', async () => {
    const app = await serveForTest(file, { watchFilters: false });
    const xds = new RawConnection(app.xdsPort);
    try {
      const streams = Array.from({ length: 5 }, (_, i) => {
        const s = xds.open(ADS);
        s.write(sotwRequest({ typeUrl: TYPE.endpoint, nodeId: `n${i}`, names: Array.from({ length: 300 }, (_, k) => `e${k}`) }));
        return s;
      });
      void streams;
      await sleep(300);
      type Page = { nodes: Array<{ id: string; types: Record<string, { subscribed: string[]; subscribed_count: number }> }>; page: { total: number; next_offset: number | null } };
      const first = (await (await fetch(`http://127.0.0.1:${app.adminPort}/debug/nodes?limit=2`)).json()) as Page;
      assert.equal(first.nodes.length, 2);
      assert.equal(first.page.total, 5);
      assert.equal(first.page.next_offset, 2);
      const last = (await (await fetch(`http://127.0.0.1:${app.adminPort}/debug/nodes?limit=2&offset=4`)).json()) as Page;
      assert.equal(last.nodes.length, 1);
      assert.equal(last.page.next_offset, null);
      const eds = first.nodes[0]!.types.ClusterLoadAssignment!;
      assert.equal(eds.subscribed.length, 100);
      assert.equal(eds.subscribed_count, 300);
    } finally {
      xds.close();
      await app.close();
    }
  });
});
