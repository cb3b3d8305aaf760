// Runs a real etcd cluster (Debian etcd-server 3.4, installed by
// test/support/install-peers.sh) on loopback for the HA tests: 1 or 3 members,
// free ports, one temp data dir, short raft timers so a cluster is healthy in
// well under a second. Members can be stopped, killed and restarted one by one.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exitHooksOnSigterm } from './children.ts';
import { freePort, GiveUp, waitUntil } from './envoy.ts';

const INSTALL_HINT = 'run test/support/install-peers.sh etcd';

// Members still running when the test process ends (a crash, a missing close()) are killed with it.
const running = new Set<ChildProcess>();
const dataDirs = new Set<string>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir, name);
    if (dir !== '' && existsSync(file)) return file;
  }
  return undefined;
}

/** Path of the etcd server binary; throws (never skips) when it is not installed. */
export function etcdBinary(): string {
  const bin = findOnPath('etcd') ?? (existsSync('/usr/bin/etcd') ? '/usr/bin/etcd' : undefined);
  if (!bin) throw new Error(`etcd is not installed (Debian etcd-server): ${INSTALL_HINT}`);
  return bin;
}

/** Path of etcdctl; throws (never skips) when it is not installed. */
export function etcdctlBinary(): string {
  const bin = findOnPath('etcdctl');
  if (!bin) throw new Error(`etcdctl is not installed (Debian etcd-client): ${INSTALL_HINT}`);
  return bin;
}

export interface EtcdMember {
  readonly name: string;
  /** http://127.0.0.1:PORT — what clients dial. */
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly logPath: string;
  /** True while the member's process is alive. */
  readonly running: boolean;
}

export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  /** Client URLs of every member, in member order. */
  readonly endpoints: readonly string[];
  /** Client URLs joined by commas, as `--etcd` takes them. */
  readonly endpointList: string;
  /** SIGTERM one member, wait for it to exit and (if a quorum is left) for the others to have a leader. */
  stopMember(index: number): Promise<void>;
  /** SIGKILL one member, wait for it to exit and (if a quorum is left) for the others to have a leader. */
  killMember(index: number): Promise<void>;
  /**
   * Start a stopped member again on the same ports and data; waits until it
   * answers /health when `waitHealthy` (default true; needs a quorum running).
   */
  startMember(index: number, opts?: { waitHealthy?: boolean }): Promise<void>;
  /** Stop every running member (SIGTERM), keeping the data for startAll(). */
  stopAll(): Promise<void>;
  /** Start every stopped member and wait until all are healthy. */
  startAll(): Promise<void>;
  /** Run etcdctl (API v3) against the running members; returns stdout. Throws with stderr on failure. */
  etcdctl(args: readonly string[], opts?: { input?: string | Buffer }): string;
  /** Stop everything and delete the data dir. Safe to call twice. */
  close(): Promise<void>;
}

export interface StartEtcdOptions {
  /** 1 (default) or 3 members. */
  members?: 1 | 3;
  /** Raft heartbeat in ms (default 20; etcd's default is 100). */
  heartbeatMs?: number;
  /** Raft election timeout in ms (default 200; etcd's default is 1000). */
  electionTimeoutMs?: number;
  /** How long to wait for the cluster to be healthy (default 10 s). */
  readyTimeoutMs?: number;
}

interface MemberState extends Omit<EtcdMember, 'running'> {
  running: boolean;
  child: ChildProcess | undefined;
  exited: Promise<void> | undefined;
}

async function isHealthy(clientUrl: string): Promise<boolean> {
  const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
  if (!res.ok) return false;
  const body = (await res.json()) as { health?: unknown };
  return body.health === 'true' || body.health === true;
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Starts an etcd cluster of 1 or 3 members on 127.0.0.1 and waits until every member is healthy. */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const count = opts.members ?? 1;
  const heartbeat = opts.heartbeatMs ?? 20;
  const election = opts.electionTimeoutMs ?? 200;
  const readyTimeout = opts.readyTimeoutMs ?? 10_000;
  const bin = etcdBinary();
  const root = mkdtempSync(path.join(os.tmpdir(), 'protoplane-etcd-'));
  dataDirs.add(root);
  const members: MemberState[] = [];
  for (let i = 0; i < count; i++) {
    const name = `m${i}`;
    members.push({
      name,
      clientUrl: `http://127.0.0.1:${await freePort()}`,
      peerUrl: `http://127.0.0.1:${await freePort()}`,
      dataDir: path.join(root, `${name}.etcd`),
      logPath: path.join(root, `${name}.log`),
      running: false,
      child: undefined,
      exited: undefined,
    });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const token = path.basename(root);

  const spawnMember = (m: MemberState): void => {
    if (m.child) throw new Error(`etcd member ${m.name} is already running`);
    // Flags for a fresh member; a restarted one ignores the --initial-* ones and reads its data dir.
    const args = [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', m.clientUrl,
      '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl,
      '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', token,
      '--heartbeat-interval', String(heartbeat),
      '--election-timeout', String(election),
      '--logger', 'zap',
      '--log-level', process.env.PROTOPLANE_TEST_ETCD_LOG ?? 'warn',
      // Room for several ~250 KB filter modules in one transaction.
      '--max-request-bytes', String(8 * 1024 * 1024),
    ];
    const log = openSync(m.logPath, 'a');
    // etcd also reads ETCD_* variables and refuses to start when one shadows a flag.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')));
    const child = spawn(bin, args, { stdio: ['ignore', log, log], env });
    closeSync(log);
    exitHooksOnSigterm();
    m.child = child;
    m.running = true;
    running.add(child);
    m.exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        running.delete(child);
        m.running = false;
        m.child = undefined;
        resolve();
      });
    });
  };

  const waitHealthy = async (ms: readonly MemberState[]): Promise<void> => {
    await waitUntil(
      async () => {
        for (const m of ms) {
          if (!m.running) throw new GiveUp(`etcd member ${m.name} exited:\n${tail(m.logPath)}`);
          if (!(await isHealthy(m.clientUrl))) return false;
        }
        return true;
      },
      readyTimeout,
      () => `etcd members ${ms.map((m) => m.name).join(',')} to be healthy; last log lines:\n${ms.map((m) => `[${m.name}] ${tail(m.logPath, 5)}`).join('\n')}`,
      25,
    );
  };

  const stop = async (m: MemberState, signal: NodeJS.Signals, graceMs = 5000): Promise<void> => {
    if (!m.child) return;
    const exited = m.exited;
    m.child.kill(signal);
    const timer = setTimeout(() => m.child?.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };

  // After a member stops, a write proposed before the others elected a new
  // leader waits out etcd's request timeout (~5 s); so wait for the leader.
  const waitForLeader = async (): Promise<void> => {
    const live = members.filter((m) => m.running);
    if (live.length * 2 <= members.length) return; // no quorum: there will be no leader
    await waitUntil(
      async () => {
        const statuses = await Promise.all(live.map(async (m) => {
          const res = await fetch(`${m.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) });
          return (await res.json()) as { header?: { member_id?: string }; leader?: string };
        }));
        const ids = new Set(statuses.map((st) => st.header?.member_id));
        const leaders = new Set(statuses.map((st) => st.leader));
        const [leader] = leaders;
        return leaders.size === 1 && leader !== undefined && leader !== '0' && ids.has(leader);
      },
      readyTimeout,
      'the remaining etcd members to agree on a leader',
      20,
    );
  };

  const member = (index: number): MemberState => {
    const m = members[index];
    if (!m) throw new Error(`no etcd member ${index} (cluster has ${members.length})`);
    return m;
  };

  let closed = false;
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    endpointList: members.map((m) => m.clientUrl).join(','),
    async stopMember(i) {
      await stop(member(i), 'SIGTERM');
      await waitForLeader();
    },
    async killMember(i) {
      await stop(member(i), 'SIGKILL');
      await waitForLeader();
    },
    async startMember(i, o = {}) {
      const m = member(i);
      spawnMember(m);
      if (o.waitHealthy ?? true) await waitHealthy([m]);
    },
    async stopAll() {
      // A member that lost its quorum can hang in a graceful stop; stop() SIGKILLs after its grace time.
      await Promise.all(members.map((m) => stop(m, 'SIGTERM', 1000)));
    },
    async startAll() {
      const stopped = members.filter((m) => !m.running);
      for (const m of stopped) spawnMember(m);
      await waitHealthy(members);
    },
    etcdctl(args, o = {}) {
      const live = members.filter((m) => m.running).map((m) => m.clientUrl);
      const endpoints = (live.length > 0 ? live : members.map((m) => m.clientUrl)).join(',');
      try {
        return execFileSync(etcdctlBinary(), [`--endpoints=${endpoints}`, '--dial-timeout=2s', '--command-timeout=5s', ...args], {
          env: { ...process.env, ETCDCTL_API: '3' },
          input: o.input,
          encoding: 'utf8',
          stdio: ['pipe', 'pipe', 'pipe'],
        });
      } catch (err) {
        const e = err as { stderr?: string; message: string };
        throw new Error(`etcdctl ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all(members.map((m) => stop(m, 'SIGKILL')));
      rmSync(root, { recursive: true, force: true });
      dataDirs.delete(root);
    },
  };

  try {
    // Members of a new cluster start one after another: a fresh member asks every
    // peer URL for the cluster first, and a peer that listens but is not serving
    // yet costs a 1 s timeout each (a 3-member start took ~2.2 s instead of ~0.3 s).
    for (const m of members) {
      spawnMember(m);
      if (members.length > 1) {
        await waitUntil(
          async () => {
            if (!m.running) throw new GiveUp(`etcd member ${m.name} exited:\n${tail(m.logPath)}`);
            return (await fetch(`${m.peerUrl}/members`, { signal: AbortSignal.timeout(1000) })).ok;
          },
          readyTimeout,
          `etcd member ${m.name} to serve peer traffic`,
          10,
        );
      }
    }
    await waitHealthy(members);
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}
