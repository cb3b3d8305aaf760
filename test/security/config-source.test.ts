// The config source never serves an accident (issue 19): an empty file is
// refused and the last good config kept (at start: not ready, and no claim of
// a "last good config" that does not exist); `listeners: []` is allowed; the
// watcher follows a folder removed and created again and a Kubernetes
// ConfigMap `..data` symlink swap; YAML aliases cost linear time and their
// limits say which; both servers bind loopback unless told otherwise.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { Logger } from '../../xds-server/log.ts';
import { serve } from '../../xds-server/app.ts';
import { parseMesh } from '../../xds-server/config/index.ts';
import { serveForTest } from '../support/mesh-env.ts';

const GOOD = (port: number) =>
  `listeners:\n  - name: edge\n    port: ${port}\n    protocol: tcp\n    routes: [ { cluster: a } ]\nclusters:\n  - name: a\n    endpoints: [ 127.0.0.1:9001 ]\n`;

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-source-'));
  dirs.push(dir);
  return dir;
}

/** A logger that keeps each line's message. */
function capturingLogger(): { log: Logger; lines: Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { log, lines };
}

async function readyz(port: number): Promise<{ status: number; body: { ready: boolean; snapshot: string | null; config_errors: string[] } }> {
  const response = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: response.status, body: (await response.json()) as { ready: boolean; snapshot: string | null; config_errors: string[] } };
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const FAST = { quietMs: 30, maxMs: 500 };

describe('an empty config file', () => {
  it('at start: not ready, the reason given, and no "still serving the last good config" when there is none', async () => {
    const file = path.join(tempDir(), 'mesh.yaml');
    fs.writeFileSync(file, '');
    const { log, lines } = capturingLogger();
    const app = await serveForTest(file, { watchFilters: false, log, debounce: FAST });
    try {
      const { status, body } = await readyz(app.adminPort);
      assert.equal(status, 503);
      assert.equal(body.ready, false);
      assert.match(body.config_errors.join('\n'), /the config file is empty \(0 bytes\); refusing to serve it/);
      assert.ok(!lines.some((l) => /still serving the last good config/.test(l.msg)), 'no last good config is claimed');
      assert.ok(lines.some((l) => /nothing is served/.test(l.msg)));
      // an explicitly empty mesh is a config like any other
      fs.writeFileSync(file, 'listeners: []\n');
      await until(() => app.cache.snapshot !== undefined, 5000, 'the explicit empty mesh');
      assert.equal((await readyz(app.adminPort)).status, 200);
    } finally {
      await app.close();
    }
  });

  it('while running: a 0-byte or blank file is refused and the last good config kept', async () => {
    const file = path.join(tempDir(), 'mesh.yaml');
    fs.writeFileSync(file, GOOD(10000));
    const app = await serveForTest(file, { watchFilters: false, debounce: FAST });
    try {
      const good = app.cache.snapshot!.version;
      fs.writeFileSync(file, ''); // truncated in place, as a failed template render leaves it
      await until(async () => (await readyz(app.adminPort)).body.config_errors.length > 0, 5000, 'the refusal');
      assert.equal(app.cache.snapshot!.version, good);
      fs.writeFileSync(file, '   \n\n');
      await until(async () => /only whitespace/.test((await readyz(app.adminPort)).body.config_errors.join()), 5000, 'the second refusal');
      assert.equal(app.cache.snapshot!.version, good);
      const { status, body } = await readyz(app.adminPort);
      assert.equal(status, 200, 'still serving the last good config');
      assert.equal(body.snapshot, good);
    } finally {
      await app.close();
    }
  });
});

describe('the config watcher', () => {
  it('follows the folder being removed and created again', async () => {
    const root = tempDir();
    const dir = path.join(root, 'config');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'mesh.yaml');
    fs.writeFileSync(file, GOOD(10000));
    const app = await serveForTest(file, { watchFilters: false, debounce: FAST });
    try {
      const first = app.cache.snapshot!.version;
      fs.rmSync(dir, { recursive: true });
      await until(async () => /no such file/.test((await readyz(app.adminPort)).body.config_errors.join()), 5000, 'the removal to be seen');
      assert.equal(app.cache.snapshot!.version, first, 'the last good config is still served');
      fs.mkdirSync(dir);
      fs.writeFileSync(file, GOOD(10001));
      await until(() => app.cache.snapshot!.version !== first, 5000, 'the recreated folder to be read');
      await until(async () => (await readyz(app.adminPort)).body.config_errors.length === 0, 2000, '/readyz to clear the error');
      // and edits after that are seen too
      const second = app.cache.snapshot!.version;
      fs.writeFileSync(file, GOOD(10002));
      await until(() => app.cache.snapshot!.version !== second, 5000, 'an edit in the new folder');
    } finally {
      await app.close();
    }
  });

  it('follows a Kubernetes ConfigMap update (the ..data symlink swap)', async () => {
    const dir = tempDir();
    // the layout kubelet makes: mesh.yaml -> ..data/mesh.yaml, ..data -> ..<timestamp>
    const publish = (name: string, text: string) => {
      fs.mkdirSync(path.join(dir, name));
      fs.writeFileSync(path.join(dir, name, 'mesh.yaml'), text);
      fs.symlinkSync(name, path.join(dir, '..data_tmp'));
      fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    };
    publish('..2026_12_06_10_00_00.1', GOOD(10000));
    fs.symlinkSync('..data/mesh.yaml', path.join(dir, 'mesh.yaml'));
    const app = await serveForTest(path.join(dir, 'mesh.yaml'), { watchFilters: false, debounce: FAST });
    try {
      const first = app.cache.snapshot!.version;
      publish('..2026_12_06_10_05_00.2', GOOD(10001));
      fs.rmSync(path.join(dir, '..2026_12_06_10_00_00.1'), { recursive: true });
      await until(() => app.cache.snapshot!.version !== first, 5000, 'the swapped ConfigMap to be read');
    } finally {
      await app.close();
    }
  });
});

describe('YAML aliases', () => {
  const withAliases = (n: number) => `x-a: &a { lb: round_robin }\nx-list:\n${'  - *a\n'.repeat(n)}listeners: []\n`;

  it('2,000 harmless aliases are accepted, and 8,000 cost linear time', () => {
    assert.ok(parseMesh(withAliases(2000), 'mesh.yaml').ok);
    const started = performance.now();
    const result = parseMesh(withAliases(8000), 'mesh.yaml');
    const took = performance.now() - started;
    assert.ok(result.ok);
    // quadratic before: 4,000 aliases took 33 s
    assert.ok(took < 5000, `8,000 aliases took ${Math.round(took)} ms`);
  });

  it('refuses too many aliases, and an expansion bomb, saying which limit', () => {
    const many = parseMesh(withAliases(10_001), 'mesh.yaml');
    assert.ok(!many.ok);
    assert.match(many.errors[0]!.message, /too many aliases: over the limit of 10000 \(--config-max-aliases\)/);
    let bomb = 'a: &a [x,x,x,x,x,x,x,x,x,x]\n';
    for (let i = 0, prev = 'a'; i < 9; prev = `b${i}`, i++) bomb += `b${i}: &b${i} [${Array(10).fill(`*${prev}`).join(',')}]\n`;
    const started = performance.now();
    const exploded = parseMesh(bomb, 'mesh.yaml');
    assert.ok(performance.now() - started < 2000);
    assert.ok(!exploded.ok);
    assert.match(exploded.errors[0]!.message, /expands to more than 2000000 values once aliases are expanded \(--config-max-nodes\)/);
  });
});

describe('listening addresses', () => {
  /** An IPv4 address of this machine that is not loopback. */
  function externalAddress(): string {
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
    }
    throw new Error('this machine has no non-loopback IPv4 address to test against');
  }

  const reachable = (host: string, port: number) =>
    new Promise<boolean>((resolve) => {
      const socket = net.connect({ host, port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });

  it('xDS and admin bind 127.0.0.1 by default', async () => {
    const file = path.join(tempDir(), 'mesh.yaml');
    fs.writeFileSync(file, GOOD(10000));
    const { log } = capturingLogger();
    const app = await serve({ configPath: file, xdsPort: 0, adminPort: 0, log, processMetrics: false, watchFilters: false });
    try {
      const outside = externalAddress();
      assert.equal(await reachable('127.0.0.1', app.xdsPort), true);
      assert.equal(await reachable('127.0.0.1', app.adminPort), true);
      assert.equal(await reachable(outside, app.xdsPort), false, `xDS answers on ${outside}`);
      assert.equal(await reachable(outside, app.adminPort), false, `admin answers on ${outside}`);
    } finally {
      await app.close();
    }
  });

  it('warns at start when xDS is plaintext on a non-loopback address', async () => {
    const file = path.join(tempDir(), 'mesh.yaml');
    fs.writeFileSync(file, GOOD(10000));
    const { log, lines } = capturingLogger();
    const app = await serve({ configPath: file, xdsPort: 0, adminPort: 0, host: '0.0.0.0', log, processMetrics: false, watchFilters: false });
    try {
      assert.ok(await reachable(externalAddress(), app.xdsPort));
      assert.ok(lines.some((l) => l.level === 40 && /plaintext on a non-loopback address/.test(l.msg)));
    } finally {
      await app.close();
    }
  });
});
