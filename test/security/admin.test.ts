// Admin cannot starve xDS (issue 19): unfinished admin requests (slowloris)
// are closed after the timeout, connections past the cap are closed at
// accept (each costs a file descriptor xDS needs), and xDS keeps accepting;
// /debug/* can require a bearer token; /debug/nodes pages.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { adminConnectionCap } from '../../xds-server/admin/guard.ts';
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

async function refused(port: number, reason: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(new RegExp(`protoplane_admin_refused_total\\{reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
}

describe('admin slowloris', () => {
  it('unfinished requests are closed after the timeout, connections past the cap at accept, and xDS keeps accepting', async () => {
    const app = await serveForTest(file, { watchFilters: false, adminMaxConnections: 20, adminTimeoutMs: 1000 });
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
    } finally {
      await app.close();
    }
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
