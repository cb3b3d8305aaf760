// protoplane replicas as real processes (`protoplane serve`, so a test can
// kill -9 one), each on free ports with its log in a temp dir, and what the
// HA tests ask of them: admin JSON, a metric, which nodes are connected.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exitHooksOnSigterm } from '../support/children.ts';
import { freePort, GiveUp, REPO_ROOT, waitUntil } from '../support/envoy.ts';

/** The fleet tests' mesh: one HTTP listener on webPort routing everything to one upstream. */
export function fleetMeshYaml(webPort: number, to: { name: string; port: number }): string {
  return `listeners:
  - name: web
    port: ${webPort}
    protocol: http
    routes: [ { match: { prefix: / }, cluster: ${to.name} } ]
clusters:
  - name: ${to.name}
    endpoints: [ 127.0.0.1:${to.port} ]
`;
}

/** A node as a replica's /debug/sync shows it. */
export interface SyncNode {
  id: string;
  transport: string;
  in_sync: boolean;
  types: Array<{ type: string; version_sent: string | null; version_acked: string | null }>;
}

export interface Replica {
  readonly id: string;
  readonly xdsPort: number;
  readonly adminPort: number;
  /** 127.0.0.1:port, as a bootstrap lists it. */
  readonly xds: string;
  readonly admin: string;
  readonly pid: number;
  readonly running: boolean;
  logTail(lines?: number): string;
  /** Lines of its JSON log whose msg matches. */
  logLines(msg: RegExp): Array<Record<string, unknown>>;
  get(pathAndQuery: string): Promise<{ status: number; body: string }>;
  json<T>(pathAndQuery: string): Promise<T>;
  /** The sum of a Prometheus metric's samples whose labels include `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Node ids with an open stream here (/debug/sync). */
  nodes(): Promise<string[]>;
  /** Signals the process (default SIGKILL) and waits for it to exit; its log stays readable. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Kills it if still running and removes its log. */
  close(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * Starts `protoplane serve <args> --xds-port P --admin-port Q` (args: the
 * config source, e.g. --config FILE or --etcd URLS) and waits for /readyz
 * (or only /healthz with waitReady false).
 */
export async function startReplica(opts: { id: string; args: string[]; waitReady?: boolean; readyTimeoutMs?: number }): Promise<Replica> {
  const xdsPort = await freePort();
  const adminPort = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `protoplane-replica-${opts.id}-`));
  const logPath = path.join(dir, 'serve.log');
  const log = fs.openSync(logPath, 'a');
  const child = spawn(
    process.execPath,
    [
      '--import',
      path.join(REPO_ROOT, 'node_modules/tsx/dist/esm/index.mjs'),
      path.join(REPO_ROOT, 'xds-server/cli/main.ts'),
      'serve',
      ...opts.args,
      '--xds-port',
      String(xdsPort),
      '--admin-port',
      String(adminPort),
      '--log-format',
      'json',
    ],
    { cwd: REPO_ROOT, stdio: ['ignore', log, log], env: { ...process.env, PROTOPLANE_LOG_LEVEL: 'info' } },
  );
  fs.closeSync(log);
  live.add(child);
  exitHooksOnSigterm();
  let running = true;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running = false;
      live.delete(child);
      resolve();
    });
  });
  const readLog = () => {
    try {
      return fs.readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };
  const logTail = (lines = 20) => readLog().trimEnd().split('\n').slice(-lines).join('\n');
  const get = async (pathAndQuery: string) => {
    const response = await fetch(`http://127.0.0.1:${adminPort}${pathAndQuery}`, { signal: AbortSignal.timeout(5000) });
    return { status: response.status, body: await response.text() };
  };
  const replica: Replica = {
    id: opts.id,
    xdsPort,
    adminPort,
    xds: `127.0.0.1:${xdsPort}`,
    admin: `127.0.0.1:${adminPort}`,
    pid: child.pid!,
    get running() {
      return running;
    },
    logTail,
    logLines: (msg) =>
      readLog()
        .split('\n')
        .flatMap((line) => {
          try {
            const record = JSON.parse(line) as Record<string, unknown>;
            return typeof record.msg === 'string' && msg.test(record.msg) ? [record] : [];
          } catch {
            return [];
          }
        }),
    get,
    async json<T>(pathAndQuery: string) {
      const { status, body } = await get(pathAndQuery);
      if (status !== 200) throw new Error(`replica ${opts.id} ${pathAndQuery}: HTTP ${status}: ${body.slice(0, 300)}`);
      return JSON.parse(body) as T;
    },
    async metric(name, labels = {}) {
      const { body } = await get('/metrics');
      let sum = 0;
      for (const line of body.split('\n')) {
        const match = /^([a-z_:]+)(\{[^}]*\})? (\S+)$/.exec(line);
        if (!match || match[1] !== name) continue;
        const all = Object.entries(labels).every(([k, v]) => (match[2] ?? '').includes(`${k}="${v}"`));
        if (all) sum += Number(match[3]);
      }
      return sum;
    },
    async nodes() {
      const view = await replica.json<{ nodes: Array<{ id: string }> }>('/debug/sync?compact');
      return view.nodes.map((n) => n.id);
    },
    async kill(signal = 'SIGKILL') {
      if (!running) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
    async close() {
      await replica.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    const probe = opts.waitReady === false ? '/healthz' : '/readyz';
    await waitUntil(
      async () => {
        if (!running) throw new GiveUp(`replica ${opts.id} exited:\n${logTail()}`);
        return (await get(probe)).status === 200;
      },
      opts.readyTimeoutMs ?? 120_000,
      () => `replica ${opts.id} ${probe}; log:\n${logTail()}`,
      100,
    );
  } catch (error) {
    await replica.close();
    throw error;
  }
  return replica;
}

/**
 * Starts several replicas side by side. If one fails to start, the ones that
 * did are closed before the error is rethrown: with Promise.all over
 * startReplica the caller would get no handle to them, and they would keep
 * the test process alive.
 */
export async function startReplicas(options: ReadonlyArray<Parameters<typeof startReplica>[0]>): Promise<Replica[]> {
  const results = await Promise.allSettled(options.map((o) => startReplica(o)));
  const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((r) => r.close()));
    throw failed.reason;
  }
  return started;
}
