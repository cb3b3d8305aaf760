// The two servers under test, behind one interface: start, ready, trigger
// the one-cluster change, scrape what the server says about itself, stop.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Child, freePort, nowNs } from './proc.ts';
import { ROOT, peerBinary } from '../go-peers.ts';
import { applyMeshFile } from '../../../xds-server/etcd/apply.ts';
import { FilterCatalog, filterFolders } from '../../../xds-server/catalog/index.ts';
import { startEtcd } from '../../support/etcd.ts';

export { ROOT, PEERS_DIR, BIN_DIR, buildPeers } from '../go-peers.ts';

/** The cluster whose change is timed, and the marker it gets. */
export const CHANGED_CLUSTER = 'c0500';
export const MARKER_TIMEOUT_S = 7;
export const ENDPOINT_BASE_PORT = 20000;

/** fleet: three protoplane replicas serving from a three-member etcd, the change written with `apply`. */
export type ServerName = 'protoplane' | 'gcp' | 'fleet';

export interface Server {
  readonly name: ServerName;
  readonly label: string;
  readonly child: Child;
  readonly xdsPort: number;
  /** Every xDS address when there are several (a fleet): loadgen spreads its streams over them. */
  readonly xdsAddresses?: string[];
  /** Makes the change (protoplane: file write; gcp: control call); resolves with what the server said, if anything. */
  trigger(): Promise<string | void>;
  /**
   * When the last trigger's change was durably written (wall clock, ns): the
   * file mode's write returned; the fleet's etcd transaction answered (the
   * commit). Both modes are also timed from here (undefined: gcp).
   */
  writtenNs?: bigint;
  /**
   * protoplane: times file write → new snapshot served (/readyz polled every
   * 5 ms) with no client connected, twice (probe change, then back to the
   * base mesh), so debounce + reload can be told apart from the fan-out.
   */
  reloadProbe?(): Promise<number[]>;
  /** An untimed change with clients connected (--warm-changes): the probe mesh, or back to the base one. */
  warmChange?(probe: boolean): Promise<void>;
  /** Heap in use (protoplane: V8 heap used; gcp: Go HeapAlloc), and goroutines for gcp. */
  heap(): Promise<{ bytes: number; goroutines?: number; committed?: number; external?: number } | undefined>;
  /** The server's Prometheus text, when it has one. */
  metrics(): Promise<string | undefined>;
  stop(): Promise<void>;
}

export function clusterName(i: number): string {
  return `c${String(i).padStart(4, '0')}`;
}

/** The cluster the idle reload probe changes (never the timed one). */
export const PROBE_CLUSTER = 'c0499';

/**
 * The bench mesh: `clusters` EDS clusters and one tcp listener to c0000 (LDS
 * stays trivial). `changed`: the timed change (c0500 connect_timeout 7s);
 * `probe`: an unrelated change (c0499 connect_timeout 6s) used to time a
 * reload before any client is connected.
 */
export function benchMesh(clusters: number, changed: boolean, probe = false): string {
  const lines = [
    '# xds-fanout bench mesh (generated)',
    'listeners:',
    '  - name: bench',
    '    port: 10000',
    '    protocol: tcp',
    `    routes: [ { cluster: ${clusterName(0)} } ]`,
    'clusters:',
  ];
  for (let i = 0; i < clusters; i++) {
    const name = clusterName(i);
    lines.push(`  - name: ${name}`, `    endpoints: [ 127.0.0.1:${ENDPOINT_BASE_PORT + i} ]`);
    if (changed && name === CHANGED_CLUSTER) lines.push(`    connect_timeout: ${MARKER_TIMEOUT_S}s`);
    if (probe && name === PROBE_CLUSTER) lines.push('    connect_timeout: 6s');
  }
  return `${lines.join('\n')}\n`;
}

async function httpOk(url: string, init?: RequestInit, timeoutMs = 10_000): Promise<string | undefined> {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    return response.ok ? await response.text() : undefined;
  } catch {
    return undefined;
  }
}

/** The snapshot version a server's /readyz names. */
async function readySnapshot(admin: string): Promise<string | undefined> {
  const body = await httpOk(`${admin}/readyz`);
  return body === undefined ? undefined : (JSON.parse(body) as { snapshot?: string }).snapshot;
}

async function waitHttp(url: string, child: Child, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!child.running) throw new Error(`${child.name} exited: ${child.stderrTail.slice(-5).join(' | ')}`);
    if ((await httpOk(url)) !== undefined) return;
    await sleep(100);
  }
  throw new Error(`${child.name}: ${url} not ready within ${timeoutMs} ms`);
}

/** `bin/protoplane ARGS`; with `nodeArgs` (e.g. --cpu-prof), `node <nodeArgs> --import tsx xds-server/cli/main.ts ARGS`. */
function protoplaneCommand(cliArgs: string[], nodeArgs: string[]): [string, string[]] {
  return nodeArgs.length === 0
    ? [path.join(ROOT, 'bin/protoplane'), cliArgs]
    : [process.execPath, [...nodeArgs, '--import', path.join(ROOT, 'node_modules/tsx/dist/esm/index.mjs'), path.join(ROOT, 'xds-server/cli/main.ts'), ...cliArgs]];
}

/** info: the servers log nothing per stream, but each reload ('config applied') and etcd read, with its time: the timeline. */
const SERVER_LOG_LEVEL = 'info';

/**
 * Starts `bin/protoplane serve`; with `nodeArgs` (e.g. --cpu-prof), runs the
 * same thing as `node <nodeArgs> --import tsx xds-server/cli/main.ts serve`.
 */
export async function startProtoplane(
  workDir: string,
  clusters: number,
  log: (line: string) => void,
  nodeArgs: string[] = [],
  filtersDir?: string,
): Promise<Server> {
  const configPath = path.join(workDir, 'mesh.yaml');
  fs.writeFileSync(configPath, benchMesh(clusters, false));
  const xdsPort = await freePort();
  const adminPort = await freePort();
  const serveArgs = ['serve', '--config', configPath, '--xds-port', String(xdsPort), '--admin-port', String(adminPort), '--host', '127.0.0.1'];
  if (filtersDir) serveArgs.push('--filters', filtersDir);
  const [command, args] = protoplaneCommand(serveArgs, nodeArgs);
  const child = new Child('protoplane', command, args, { env: { ...process.env, PROTOPLANE_LOG_LEVEL: SERVER_LOG_LEVEL }, cwd: ROOT });
  child.onLine = (line) => log(line);
  // A server that never gets ready is stopped here: nobody else holds it (a live child would keep the bench from exiting).
  await waitHttp(`http://127.0.0.1:${adminPort}/readyz`, child, 60_000).catch(async (error: unknown) => {
    await child.stop();
    throw error;
  });
  const server: Server = {
    name: 'protoplane',
    label: 'protoplane',
    child,
    xdsPort,
    async trigger() {
      fs.writeFileSync(configPath, benchMesh(clusters, true));
      server.writtenNs = nowNs();
    },
    async warmChange(probe) {
      fs.writeFileSync(configPath, benchMesh(clusters, false, probe));
    },
    async reloadProbe() {
      const snapshot = () => readySnapshot(`http://127.0.0.1:${adminPort}`);
      const times: number[] = [];
      for (const probe of [true, false]) {
        const before = await snapshot();
        const start = performance.now();
        fs.writeFileSync(configPath, benchMesh(clusters, false, probe));
        for (;;) {
          const now = await snapshot();
          if (now !== undefined && now !== before) break;
          if (performance.now() - start > 30_000) throw new Error('protoplane did not reload the mesh within 30 s');
          await sleep(5);
        }
        times.push(performance.now() - start);
        await sleep(300);
      }
      return times;
    },
    metrics: () => httpOk(`http://127.0.0.1:${adminPort}/metrics`),
    async heap() {
      const text = await httpOk(`http://127.0.0.1:${adminPort}/metrics`);
      const value = (name: string): number | undefined => {
        const line = text?.split('\n').find((l) => l.startsWith(`${name} `));
        return line ? Number(line.split(' ')[1]) : undefined;
      };
      const bytes = value('nodejs_heap_size_used_bytes');
      if (bytes === undefined) return undefined;
      // where RSS goes besides live objects: the V8 heap's reserved pages, and memory outside it (buffers)
      return { bytes, committed: value('nodejs_heap_size_total_bytes'), external: value('nodejs_external_memory_bytes') };
    },
    stop: () => child.stop(),
  };
  return server;
}

export async function startGcp(clusters: number, log: (line: string) => void, changeTimeoutMs: number): Promise<Server> {
  const xdsPort = await freePort();
  const controlPort = await freePort();
  const child = new Child(path.basename(gcpBinary()), gcpBinary(), [
    '--xds-port',
    String(xdsPort),
    '--control-port',
    String(controlPort),
    '--clusters',
    String(clusters),
    '--endpoint-base-port',
    String(ENDPOINT_BASE_PORT),
    '--changed',
    CHANGED_CLUSTER,
  ]);
  child.onLine = (line, stream) => {
    if (stream === 'stderr') log(line);
  };
  await child.waitLine((l) => l.startsWith('LISTENING'), 30_000);
  await waitHttp(`http://127.0.0.1:${controlPort}/ready`, child, 30_000);
  return {
    name: 'gcp',
    label: 'go-control-plane',
    child,
    xdsPort,
    async trigger() {
      // SetSnapshot answers every open watch before it returns: with 10,000
      // streams that takes seconds, while the responses already flow.
      const body = await httpOk(`http://127.0.0.1:${controlPort}/change`, { method: 'POST' }, changeTimeoutMs);
      if (body === undefined) throw new Error('gcp-server: POST /change failed');
      return body.trim();
    },
    metrics: async () => undefined,
    async heap() {
      const text = await httpOk(`http://127.0.0.1:${controlPort}/memstats`);
      if (text === undefined) return undefined;
      const m = JSON.parse(text) as { heap_alloc: number; goroutines: number };
      return { bytes: m.heap_alloc, goroutines: m.goroutines };
    },
    stop: () => child.stop(),
  };
}

/**
 * The fleet: a three-member etcd on loopback (test/support/etcd.ts), the
 * bench mesh written with `apply` (applyMeshFile, what the command runs), and
 * `replicas` × `bin/protoplane serve --etcd`. The trigger is the `apply` of
 * the changed mesh (its checks, the compare-and-swap, the watch, the
 * replicas' reloads all count). CPU, memory and metrics are the first
 * replica's (it holds 1/replicas of the streams).
 */
export async function startFleet(
  workDir: string,
  clusters: number,
  log: (line: string, replica: number) => void,
  replicas = 3,
  filtersDir?: string,
  nodeArgs: string[] = [],
): Promise<Server> {
  // etcd's own raft timers (100 ms heartbeat, 1 s election), as deployed: the tests' fast ones (20 ms,
  // 200 ms) cost three members ~10% of a core at idle against ~5%, taken from the replicas and loadgen.
  const etcd = await startEtcd({ members: 3, heartbeatMs: 100, electionTimeoutMs: 1000 });
  const children: Child[] = [];
  try {
    const configPath = path.join(workDir, 'fleet-mesh.yaml');
    let writtenNs: bigint | undefined;
    const apply = async (changed: boolean, probe = false): Promise<string> => {
      const start = performance.now();
      fs.writeFileSync(configPath, benchMesh(clusters, changed, probe));
      // As `apply --filters DIR` would: its checks load (and build) that folder's filters.
      const catalog = filtersDir ? await FilterCatalog.load(filterFolders(filtersDir)) : undefined;
      const loaded = performance.now();
      const result = await applyMeshFile(configPath, { endpoints: etcd.endpoints }, { catalog });
      // The transaction's answer has come back: the commit happened (a moment) before this.
      writtenNs = nowNs();
      if (!result.ok) throw new Error(`apply failed: ${JSON.stringify(result).slice(0, 500)}`);
      return `applied at etcd revision ${result.revision}; filters loaded in ${(loaded - start).toFixed(0)} ms, then checks + commit ${(performance.now() - loaded).toFixed(0)} ms`;
    };
    await apply(false);
    const admins: number[] = [];
    const addresses: string[] = [];
    for (let i = 1; i <= replicas; i++) {
      const xdsPort = await freePort();
      const adminPort = await freePort();
      const args = ['serve', '--etcd', etcd.endpointList, '--replica-id', `f${i}`, '--xds-port', String(xdsPort), '--admin-port', String(adminPort), '--host', '127.0.0.1'];
      const [command, commandArgs] = protoplaneCommand(args, nodeArgs);
      const child = new Child(`protoplane-f${i}`, command, commandArgs, { env: { ...process.env, PROTOPLANE_LOG_LEVEL: SERVER_LOG_LEVEL }, cwd: ROOT });
      child.onLine = (line) => log(line, i - 1);
      children.push(child);
      admins.push(adminPort);
      addresses.push(`127.0.0.1:${xdsPort}`);
    }
    await Promise.all(children.map((child, i) => waitHttp(`http://127.0.0.1:${admins[i]}/readyz`, child, 60_000)));
    const admin = `http://127.0.0.1:${admins[0]}`;
    return {
      name: 'fleet',
      label: `protoplane×${replicas}/etcd`,
      child: children[0]!,
      xdsPort: Number(addresses[0]!.split(':')[1]),
      xdsAddresses: addresses,
      trigger: () => apply(true),
      warmChange: async (probe) => void (await apply(false, probe)),
      // As the single replica's probe (same two reloads before the timed one, so the same JIT warmth):
      // apply's return → every replica serves the new snapshot, no client connected.
      async reloadProbe() {
        const snapshots = () => Promise.all(admins.map((port) => readySnapshot(`http://127.0.0.1:${port}`)));
        const times: number[] = [];
        for (const probe of [true, false]) {
          const before = await snapshots();
          await apply(false, probe);
          const start = performance.now();
          for (;;) {
            const now = await snapshots();
            if (now.every((v, i) => v !== undefined && v !== before[i])) break;
            if (performance.now() - start > 30_000) throw new Error('the fleet did not reload the mesh within 30 s');
            await sleep(5);
          }
          times.push(performance.now() - start);
          await sleep(300);
        }
        return times;
      },
      get writtenNs() {
        return writtenNs;
      },
      metrics: () => httpOk(`${admin}/metrics`),
      async heap() {
        const text = await httpOk(`${admin}/metrics`);
        const line = text?.split('\n').find((l) => l.startsWith('nodejs_heap_size_used_bytes '));
        return line ? { bytes: Number(line.split(' ')[1]) } : undefined;
      },
      async stop() {
        await Promise.all(children.map((c) => c.stop()));
        await etcd.close();
      },
    };
  } catch (error) {
    await Promise.all(children.map((c) => c.stop()));
    await etcd.close();
    throw error;
  }
}

export const gcpBinary = () => peerBinary('gcp-server');
export const loadgenBinary = () => peerBinary('loadgen');
