// xds-fanout: how fast one cluster change reaches N connected Envoys, and
// what the connections cost the server, for protoplane and go-control-plane
// side by side under the same load from the same run.
//
//   node --import tsx test/bench/xds-fanout.ts [--n 1000,10000] [--modes delta,sotw]
//        [--clusters 1000] [--servers protoplane,gcp,fleet] [--concurrency 500] [--json FILE]
//
// --servers fleet: three protoplane replicas serving from a three-member etcd
// (the HA set-up of docs/ha.md), one loadgen spreading its N streams over
// them, the change written with `apply`; run it beside `protoplane` (one
// replica, file mode) to compare in the same run.
//
// Per row: start the server; wait until it is idle; read its CPU time and RSS;
// start loadgen (test/bench/peers, Go; one HTTP/2 connection and one ADS
// stream per simulated Envoy, CDS wildcard + EDS for every cluster, every
// response ACKed); once every stream holds and has ACKed the full CDS and
// EDS (READY) and the server is idle again, read CPU and RSS again; then tell
// loadgen the trigger time, change cluster c0500 (connect_timeout 7s) and wait
// until every stream has ACKed a CDS response carrying it; wait for the
// server to go idle and read its CPU time a third time. See test/bench/README.md.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Child, childCpuTicks, CLK_TCK, cpuTicks, descendantCpu, memory, nowNs, waitQuiet } from './xds-fanout/proc.ts';
import {
  buildPeers,
  CHANGED_CLUSTER,
  loadgenBinary,
  MARKER_TIMEOUT_S,
  PEERS_DIR,
  ROOT,
  startFleet,
  startGcp,
  startProtoplane,
  type Server,
  type ServerName,
} from './xds-fanout/servers.ts';
import {
  bucketDelta,
  buckets,
  bucketText,
  kib,
  mib,
  ms,
  pad,
  quantileBucket,
  sample,
  seconds,
  summarize,
  type Summary,
} from './xds-fanout/stats.ts';

type Mode = 'delta' | 'sotw';

interface Options {
  ns: number[];
  modes: Mode[];
  clusters: number;
  servers: ServerName[];
  concurrency: number;
  readyTimeoutS: number;
  changeTimeoutS: number;
  json?: string;
  quiet: boolean;
  /** Extra node flags for the protoplane process (e.g. --cpu-prof --cpu-prof-dir=DIR). */
  protoplaneNodeArgs: string[];
  /** loadgen's HTTP/2 receive windows: fixed as stock Envoy's (default), or grpc-go's adaptive ones (a BDP PING after data). */
  http2Windows: 'envoy' | 'grpc-go';
  /** Each stream's first request carries a node the size of stock Envoy 1.40's (~61 KB), or only id, cluster and user agent. */
  envoyNode: boolean;
  /** --empty-filters: protoplane serves (and fleet applies) with a filters folder holding no filter (only the SDK link). */
  filtersDir?: string;
  /** Untimed change pairs (probe, back) sent to the connected streams before the timed one: the server's steady state, JIT and heap warm. */
  warmChanges: number;
  /** Every line a protoplane server printed, as `REPLICA EPOCH-MS LINE`, appended here (e.g. with --trace-deopt in the node args). */
  serverLogFile?: string;
}

interface CaseResult {
  mode: Mode;
  n: number;
  server: ServerName;
  label: string;
  status: 'ok' | 'unimplemented' | 'failed' | 'incomplete';
  reason?: string;
  connectMs?: number;
  reconnects?: number;
  errors?: number;
  ack?: Summary;
  recv?: Summary;
  cpuConnectTicks?: number;
  cpuChangeTicks?: number;
  quietAfterConnect?: boolean;
  quietAfterChange?: boolean;
  rssIdle?: number;
  rssReady?: number;
  hwm?: number;
  memPerNode?: number;
  loadgenCpuConnectTicks?: number;
  loadgenCpuChangeTicks?: number;
  loadgenRss?: number;
  cdsBytes?: number;
  edsBytes?: number;
  /** protoplane: snapshot → CDS ACK, from protoplane_xds_push_latency_seconds (bucketed), in ms. */
  serverPush?: { count: number; p50?: [number, number]; p99?: [number, number]; buckets: Array<[number, number]> };
  /** protoplane: the longest event-loop delay seen in each phase (prom-client), in ms. */
  eventLoopMaxMs?: { connect: number; change: number };
  /** Heap (protoplane: V8 heap used; gcp: Go HeapAlloc) idle and with all N ready; gcp goroutines when ready. */
  heapIdle?: number;
  heapReady?: number;
  /** protoplane: V8 heap committed (nodejs_heap_size_total_bytes) and external memory, idle and ready. */
  heapCommittedIdle?: number;
  heapCommittedReady?: number;
  externalIdle?: number;
  externalReady?: number;
  goroutines?: number;
  staleRequests?: number;
  nacks?: number;
  /** protoplane: file write → new snapshot served, with no client connected (two probes). */
  reloadIdleMs?: number[];
  /** CPU of child processes the server ran and reaped (cutime + cstime), per phase. */
  childCpuConnectTicks?: number;
  childCpuChangeTicks?: number;
  /** trigger → the change durably written (file write returned; apply's etcd transaction answered), ms. */
  writtenMs?: number;
  /** p50/p99 from that instant instead of the trigger: the same start for both protoplane modes. */
  fromWrite?: Summary;
  /** protoplane: per replica, from the trigger: its etcd read and reload (its log), its streams' first read and ACKs. */
  replicas?: ReplicaTimeline[];
  /**
   * CPU from the trigger to loadgen's RESULT (the last ACK): `bench` is this
   * process (the file write, or apply), then the server processes one by one
   * (`node` for protoplane, with its main thread's share), the other
   * commands summed (etcd, loadgen). Where a 2-core machine's time went
   * while the change was on its way.
   */
  changeWindowCpu?: CpuShare[];
  /** How long the trigger call took, and what the server answered (gcp: POST /change). */
  triggerMs?: number;
  triggerReply?: string;
  serverLog: { lines: number; samples: string[] };
}

const FLEET_REPLICAS = 3;

/** An info line a server logged (replica: its index in a fleet, else 0). */
interface ServerEvent {
  replica: number;
  msg: string;
  timeMs: number;
}

interface ReplicaTimeline {
  replica: number;
  /** From the trigger, ms: the replica read the new mesh from etcd (fleet only). */
  etcdReadMs?: number;
  /** From the trigger, ms: 'config applied' (new snapshot installed, fan-out starts). */
  appliedMs?: number;
  /** Its streams (loadgen stream i dials replica i mod replicas): first read of the change, and ACKs. */
  firstRecvMs: number;
  ack: Summary;
}

function replicaTimelines(
  replicas: number,
  result: { recv_ms: number[]; ack_ms: number[] },
  events: ServerEvent[],
  trigger: bigint,
): ReplicaTimeline[] {
  const triggerMs = Number(trigger / 1_000_000n);
  const after = (replica: number, msg: string) => {
    const e = events.find((x) => x.replica === replica && x.msg === msg && x.timeMs >= triggerMs - 5);
    return e ? e.timeMs - triggerMs : undefined;
  };
  return Array.from({ length: replicas }, (_, replica) => {
    const mine = <T,>(values: T[]) => values.filter((_, i) => i % replicas === replica);
    return {
      replica,
      etcdReadMs: after(replica, 'mesh read from etcd'),
      appliedMs: after(replica, 'config applied'),
      firstRecvMs: summarize(mine(result.recv_ms)).min,
      ack: summarize(mine(result.ack_ms)),
    };
  });
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '1000,10000' },
      modes: { type: 'string', default: 'delta,sotw' },
      clusters: { type: 'string', default: '1000' },
      servers: { type: 'string', default: 'protoplane,gcp' },
      concurrency: { type: 'string', default: '500' },
      'ready-timeout': { type: 'string', default: '600' },
      'change-timeout': { type: 'string', default: '120' },
      json: { type: 'string' },
      'protoplane-node-args': { type: 'string', default: '' },
      'http2-windows': { type: 'string', default: 'envoy' },
      'envoy-node': { type: 'string', default: 'true' },
      quiet: { type: 'boolean', default: false },
      'empty-filters': { type: 'boolean', default: false },
      'warm-changes': { type: 'string', default: '0' },
      'server-log': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(
      'node --import tsx test/bench/xds-fanout.ts [--n 1000,10000] [--modes delta,sotw] [--clusters 1000]\n' +
        '  [--servers protoplane,gcp,fleet] [--concurrency 500] [--ready-timeout 600] [--change-timeout 120] [--json FILE] [--quiet]\n' +
        '  [--protoplane-node-args="--cpu-prof --cpu-prof-dir=DIR"] [--http2-windows envoy|grpc-go] [--envoy-node true|false] [--empty-filters]\n' +
        '  [--warm-changes K] [--server-log FILE]',
    );
    process.exit(0);
  }
  const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
  const modes = list(values.modes!) as Mode[];
  const servers = list(values.servers!).map((s) => (s === 'go-control-plane' ? 'gcp' : s)) as ServerName[];
  for (const m of modes) if (m !== 'delta' && m !== 'sotw') throw new Error(`--modes: unknown mode ${m}`);
  for (const s of servers) if (s !== 'protoplane' && s !== 'gcp' && s !== 'fleet') throw new Error(`--servers: unknown server ${s}`);
  const clusters = Number(values.clusters);
  if (!(clusters > Number(CHANGED_CLUSTER.slice(1)))) throw new Error(`--clusters must be more than ${CHANGED_CLUSTER.slice(1)}`);
  return {
    ns: list(values.n!).map(Number),
    modes,
    clusters,
    servers,
    concurrency: Number(values.concurrency),
    readyTimeoutS: Number(values['ready-timeout']),
    changeTimeoutS: Number(values['change-timeout']),
    json: values.json,
    quiet: values.quiet ?? false,
    protoplaneNodeArgs: values['protoplane-node-args']!.split(' ').filter(Boolean),
    http2Windows: values['http2-windows'] === 'grpc-go' ? 'grpc-go' : 'envoy',
    envoyNode: values['envoy-node'] !== 'false',
    filtersDir: values['empty-filters'] ? emptyFiltersDir() : undefined,
    warmChanges: Number(values['warm-changes']),
    serverLogFile: values['server-log'],
  };
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

/**
 * The bench mesh uses no filter; with --empty-filters neither does the
 * server's filters folder, so that edits to filters/ during a run (another
 * checkout's work, a build) rebuild nothing inside the measured phases.
 */
function emptyFiltersDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xds-fanout-filters-'));
  fs.symlinkSync(path.join(ROOT, 'filters', 'sdk'), path.join(dir, 'sdk'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function runCase(opts: Options, server: ServerName, mode: Mode, n: number, workDir: string): Promise<CaseResult> {
  const serverLog = { lines: 0, samples: [] as string[] };
  const events: ServerEvent[] = [];
  const onServerLog = (line: string, replica = 0) => {
    if (opts.serverLogFile) fs.appendFileSync(opts.serverLogFile, `${replica} ${Date.now()} ${line}\n`);
    let text = line;
    try {
      const record = JSON.parse(line) as { msg?: string; err?: { message?: string }; error?: string; level?: number; time?: number };
      // info lines are the timeline (each reload, each etcd read), not trouble
      if (record.level !== undefined && record.level <= 30) {
        if (record.msg && record.time) events.push({ replica, msg: record.msg, timeMs: record.time });
        return;
      }
      text = [record.msg, record.err?.message, record.error].filter(Boolean).join(': ');
    } catch {
      // not JSON: keep the line
    }
    serverLog.lines++;
    if (serverLog.samples.length < 5 && !serverLog.samples.includes(text)) serverLog.samples.push(text.slice(0, 300));
  };
  const base = { mode, n, server, label: server === 'gcp' ? 'go-control-plane' : server === 'fleet' ? 'protoplane×3/etcd' : 'protoplane', serverLog };
  let srv: Server | undefined;
  let loadgen: Child | undefined;
  try {
    srv =
      server === 'protoplane'
        ? await startProtoplane(workDir, opts.clusters, onServerLog, opts.protoplaneNodeArgs, opts.filtersDir)
        : server === 'fleet'
          ? await startFleet(workDir, opts.clusters, onServerLog, FLEET_REPLICAS, opts.filtersDir, opts.protoplaneNodeArgs)
          : await startGcp(opts.clusters, onServerLog, opts.changeTimeoutS * 1000);
    const pid = srv.child.pid;
    await sleep(500);
    await waitQuiet(pid, { timeoutMs: 15_000 });
    const reloadIdleMs = srv.reloadProbe ? await srv.reloadProbe() : undefined;
    if (reloadIdleMs) await waitQuiet(pid, { timeoutMs: 15_000 });
    const heap0 = await srv.heap();
    const m0 = await srv.metrics(); // a scrape also starts prom-client's event-loop window afresh
    const cpu0 = cpuTicks(pid);
    const childCpu0 = childCpuTicks(pid);
    const mem0 = memory(pid);

    loadgen = new Child('loadgen', loadgenBinary(), [
      '--addr',
      srv.xdsAddresses?.join(',') ?? `127.0.0.1:${srv.xdsPort}`,
      '--n',
      String(n),
      '--mode',
      mode,
      '--clusters',
      String(opts.clusters),
      '--changed',
      CHANGED_CLUSTER,
      '--marker-seconds',
      String(MARKER_TIMEOUT_S),
      '--concurrency',
      String(opts.concurrency),
      '--ready-timeout',
      `${opts.readyTimeoutS}s`,
      '--change-timeout',
      `${opts.changeTimeoutS}s`,
      '--http2-windows',
      opts.http2Windows,
      `--envoy-node=${opts.envoyNode}`,
    ]);
    if (!opts.quiet) loadgen.onLine = (line, stream) => stream === 'stderr' && progress(`  ${line}`);
    let first: string;
    try {
      first = await loadgen.waitLine((l) => /^(READY|FAIL|UNIMPLEMENTED) /.test(l), (opts.readyTimeoutS + 30) * 1000);
    } catch (error) {
      const unimplemented = loadgen.stdoutHas('UNIMPLEMENTED ');
      if (unimplemented) first = unimplemented;
      else throw error;
    }
    if (first.startsWith('UNIMPLEMENTED ')) return { ...base, status: 'unimplemented', reason: first.slice(14) };
    if (first.startsWith('FAIL ')) return { ...base, status: 'failed', reason: first.slice(5) };
    const ready = Object.fromEntries(first.split(' ').slice(1).map((kv) => kv.split('=') as [string, string]));
    const afterConnect = await waitQuiet(pid);
    const childCpu1 = childCpuTicks(pid);
    const mem1 = memory(pid);
    const m1 = await srv.metrics(); // before heap(): its scrape would reset the event-loop window
    const heap1 = await srv.heap();
    const loadgenCpuConnect = cpuTicks(loadgen.pid);
    let loadgenCpu1 = loadgenCpuConnect;
    const loadgenRss = memory(loadgen.pid).rss;
    let beforeChange = afterConnect;
    if (opts.warmChanges > 0 && srv.warmChange) {
      for (let k = 0; k < opts.warmChanges; k++) {
        for (const probe of [true, false]) {
          await srv.warmChange(probe);
          await sleep(300);
          beforeChange = await waitQuiet(pid);
        }
      }
      loadgenCpu1 = cpuTicks(loadgen.pid);
    }

    const resultLine = loadgen.waitLine((l) => l.startsWith('RESULT '), (opts.changeTimeoutS + 30) * 1000);
    const windowCpu0 = descendantCpu(process.pid);
    const benchCpu0 = process.cpuUsage();
    const trigger = nowNs();
    loadgen.send(`TRIGGER ${trigger}`);
    let triggerReply: string | undefined;
    let triggerMs = NaN;
    try {
      triggerReply = (await srv.trigger()) ?? undefined;
      triggerMs = Number(nowNs() - trigger) / 1e6;
    } catch (error) {
      triggerReply = `trigger failed: ${(error as Error).message}`;
    }
    const writtenMs = srv.writtenNs === undefined ? undefined : Number(srv.writtenNs - trigger) / 1e6;
    const result = JSON.parse((await resultLine).slice(7)) as {
      completed: number;
      timed_out: boolean;
      errors: number;
      reconnects: number;
      last_error: string;
      recv_ms: number[];
      ack_ms: number[];
    };
    const changeWindowCpu = cpuWindow(windowCpu0, descendantCpu(process.pid), process.cpuUsage(benchCpu0));
    const afterChange = await waitQuiet(pid);
    const childCpu2 = childCpuTicks(pid);
    const m2 = await srv.metrics();
    const loadgenCpu2 = cpuTicks(loadgen.pid);
    loadgen.send('QUIT');

    const out: CaseResult = {
      ...base,
      status: result.completed === n ? 'ok' : 'incomplete',
      reason: result.completed === n ? undefined : `${result.completed}/${n} saw the change within ${opts.changeTimeoutS}s; ${result.last_error}`,
      connectMs: Number(ready.connect_ms),
      reconnects: result.reconnects,
      errors: result.errors,
      ack: summarize(result.ack_ms),
      recv: summarize(result.recv_ms),
      cpuConnectTicks: afterConnect.ticks - cpu0,
      cpuChangeTicks: afterChange.ticks - beforeChange.ticks,
      quietAfterConnect: afterConnect.quiet,
      quietAfterChange: afterChange.quiet,
      rssIdle: mem0.rss,
      rssReady: mem1.rss,
      hwm: memory(pid).hwm,
      memPerNode: (mem1.rss - mem0.rss) / n,
      loadgenCpuConnectTicks: loadgenCpuConnect,
      loadgenCpuChangeTicks: loadgenCpu2 - loadgenCpu1,
      loadgenRss,
      cdsBytes: Number(ready.cds_bytes),
      edsBytes: Number(ready.eds_bytes),
      triggerMs,
      triggerReply,
      writtenMs,
      fromWrite: writtenMs === undefined ? undefined : summarize(result.ack_ms.filter((v) => v >= 0).map((v) => v - writtenMs)),
      changeWindowCpu,
      replicas: replicaTimelines(server === 'fleet' ? FLEET_REPLICAS : 1, result, events, trigger),
      reloadIdleMs,
      heapIdle: heap0?.bytes,
      heapReady: heap1?.bytes,
      heapCommittedIdle: heap0?.committed,
      heapCommittedReady: heap1?.committed,
      externalIdle: heap0?.external,
      externalReady: heap1?.external,
      goroutines: heap1?.goroutines,
      childCpuConnectTicks: childCpu1 - childCpu0,
      childCpuChangeTicks: childCpu2 - childCpu1,
    };
    if (m0 !== undefined && m1 !== undefined && m2 !== undefined) {
      const metric = 'protoplane_xds_push_latency_seconds';
      const delta = bucketDelta(buckets(m2, metric, { type: 'Cluster' }), buckets(m1, metric, { type: 'Cluster' }));
      out.serverPush = {
        count: delta.get(Infinity) ?? 0,
        p50: quantileBucket(delta, 0.5),
        p99: quantileBucket(delta, 0.99),
        buckets: [...delta.entries()],
      };
      out.eventLoopMaxMs = {
        connect: sample(m1, 'nodejs_eventloop_lag_max_seconds') * 1000,
        change: sample(m2, 'nodejs_eventloop_lag_max_seconds') * 1000,
      };
      const sum = (text: string, name: string) =>
        text
          .split('\n')
          .filter((l) => l.startsWith(`${name}{`))
          .reduce((acc, l) => acc + Number(l.slice(l.indexOf('}') + 2)), 0);
      out.staleRequests = sum(m2, 'protoplane_xds_stale_requests_total') - sum(m0, 'protoplane_xds_stale_requests_total');
      out.nacks = sum(m2, 'protoplane_xds_nacks_total') - sum(m0, 'protoplane_xds_nacks_total');
    }
    return out;
  } catch (error) {
    return { ...base, status: 'failed', reason: (error as Error).message };
  } finally {
    if (loadgen) {
      loadgen.send('QUIT');
      if (!(await loadgen.waitExit(15_000))) await loadgen.stop();
    }
    await srv?.stop();
  }
}

interface CpuShare {
  what: string;
  seconds: number;
  /** node processes: their main thread's part. */
  mainSeconds?: number;
}

/**
 * The least time the work of a change window could have taken on this
 * machine, in seconds: all of its CPU spread evenly over the cores, or the
 * busiest server main thread (one thread runs on one core), whichever is
 * longer. Other threads (GC, loadgen's) are taken as spreadable.
 */
function cpuFloor(shares: CpuShare[]): number {
  const total = shares.reduce((sum, c) => sum + c.seconds, 0);
  return Math.max(total / os.cpus().length, ...shares.map((c) => c.mainSeconds ?? 0));
}

/** CPU between two readings of descendantCpu: this process, the servers one by one, everything else by command. */
function cpuWindow(before: ReturnType<typeof descendantCpu>, after: ReturnType<typeof descendantCpu>, bench: NodeJS.CpuUsage): CpuShare[] {
  const out: CpuShare[] = [{ what: 'bench', seconds: (bench.user + bench.system) / 1e6 }];
  const sums = new Map<string, number>();
  for (const [pid, { command, ticks, mainTicks }] of after) {
    const used = (ticks - (before.get(pid)?.ticks ?? 0)) / CLK_TCK;
    const main = (mainTicks - (before.get(pid)?.mainTicks ?? 0)) / CLK_TCK;
    if (command === 'node') out.push({ what: command, seconds: used, mainSeconds: main });
    else if (command === 'gcp-server') out.push({ what: command, seconds: used });
    else sums.set(command, (sums.get(command) ?? 0) + used);
  }
  for (const [what, seconds] of sums) if (seconds > 0) out.push({ what, seconds });
  return out;
}

/**
 * Fleet against single replica, per mode and N, when a run has both (the
 * issue's goal: fleet p99 no worse than the single replica's): the k-th
 * complete fleet row is paired with the k-th complete single row, so an
 * interleaved order (protoplane,fleet,fleet,protoplane,...) pairs neighbours.
 */
function fleetVsSingle(results: CaseResult[]): string[] {
  const lines: string[] = [];
  const complete = results.filter((r) => r.status === 'ok' && r.ack);
  const cases = new Set(complete.map((r) => `${r.mode} ${r.n}`));
  for (const key of cases) {
    const rowsOf = (server: ServerName) => complete.filter((r) => `${r.mode} ${r.n}` === key && r.server === server);
    const [fleetRows, singleRows] = [rowsOf('fleet'), rowsOf('protoplane')];
    const pairs = Math.min(fleetRows.length, singleRows.length);
    if (pairs === 0) continue;
    const fleet = fleetRows.slice(0, pairs).map((r) => r.ack!.p99);
    const single = singleRows.slice(0, pairs).map((r) => r.ack!.p99);
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    const ratios = fleet.map((f, i) => f / single[i]!);
    const sorted = [...ratios].sort((a, b) => a - b);
    const median = pairs % 2 ? sorted[pairs >> 1]! : (sorted[pairs / 2 - 1]! + sorted[pairs / 2]!) / 2;
    const wins = ratios.filter((x) => x <= 1).length;
    lines.push(
      `fleet vs single, ${key} (${pairs} pairing${pairs > 1 ? 's' : ''}): p99 mean ${ms(mean(fleet))} vs ${ms(mean(single))} (ratio ${(mean(fleet) / mean(single)).toFixed(2)}); ` +
        `fleet/single per pairing ${ratios.map((x) => x.toFixed(2)).join(' ')} (median ${median.toFixed(2)}); fleet ≤ single in ${wins} of ${pairs}`,
    );
    const floors = (rows: CaseResult[]) => rows.slice(0, pairs).flatMap((r) => (r.changeWindowCpu ? [cpuFloor(r.changeWindowCpu) * 1000] : []));
    const [fleetFloor, singleFloor] = [floors(fleetRows), floors(singleRows)];
    if (fleetFloor.length > 0 && singleFloor.length > 0) {
      lines.push(
        `  CPU floor (the longer of: all CPU from trigger to last ACK spread over ${os.cpus().length} cores, the busiest server's main thread): ` +
          `mean fleet ${ms(mean(fleetFloor))} vs single ${ms(mean(singleFloor))} (ratio ${(mean(fleetFloor) / mean(singleFloor)).toFixed(2)})`,
      );
    }
  }
  return lines;
}

function goControlPlaneVersion(): string {
  const mod = fs.readFileSync(path.join(PEERS_DIR, 'go.mod'), 'utf8');
  return /github\.com\/envoyproxy\/go-control-plane (v\S+)/.exec(mod)?.[1] ?? '?';
}

function gitRevision(): string {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'xds-server'], { cwd: ROOT, encoding: 'utf8' }).trim();
    return dirty ? `${rev} + uncommitted xds-server changes` : rev;
  } catch {
    return '?';
  }
}

function printTable(opts: Options, results: CaseResult[]): void {
  const cols: Array<[string, number, boolean]> = [
    ['mode', 6, false],
    ['N', 6, false],
    ['server', 17, false],
    ['connect', 8, true],
    ['p50', 8, true],
    ['p99', 8, true],
    ['max', 8, true],
    ['w-p50', 8, true],
    ['w-p99', 8, true],
    ['first', 8, true],
    ['srv p99', 10, true],
    ['cpu-connect', 12, true],
    ['cpu-change', 11, true],
    ['mem/node', 10, true],
  ];
  const line = (cells: string[]) => cols.map(([, w, right], i) => pad(cells[i] ?? '', w, right)).join(' ').trimEnd();
  console.log('');
  console.log(`xds-fanout  clusters=${opts.clusters}  loadgen HTTP/2 windows: ${opts.http2Windows}, Envoy-sized node: ${opts.envoyNode}  (one run, this machine: ${os.cpus().length} cores, ${mib(os.totalmem())} RAM)`);
  console.log(
    `protoplane ${gitRevision()} (node ${process.version}, gRPC on node:http2)  vs  go-control-plane ${goControlPlaneVersion()} (cache/v3 snapshot cache, ads=true)`,
  );
  console.log(line(cols.map(([h]) => h)));
  for (const r of results) {
    const head = [r.mode, String(r.n), r.label];
    if (r.status === 'unimplemented') {
      console.log(line([...head, 'n/a (unimplemented)']));
      continue;
    }
    if (r.status === 'failed') {
      console.log(line([...head, `FAILED: ${r.reason}`]));
      continue;
    }
    const tck = CLK_TCK;
    console.log(
      line([
        ...head,
        ms(r.connectMs ?? NaN),
        ms(r.ack!.p50),
        ms(r.ack!.p99),
        r.status === 'incomplete' ? `>${opts.changeTimeoutS}s` : ms(r.ack!.max),
        r.fromWrite ? ms(r.fromWrite.p50) : '-',
        r.fromWrite ? ms(r.fromWrite.p99) : '-',
        ms(r.recv!.min),
        r.serverPush ? bucketText(r.serverPush.p99) : '-',
        seconds(r.cpuConnectTicks!, tck),
        seconds(r.cpuChangeTicks!, tck),
        kib(r.memPerNode!),
      ]),
    );
  }
  for (const l of fleetVsSingle(results)) console.log(l);
  console.log('');
  const legend = [
    'connect: loadgen start → every stream has received and ACKed the full CDS + EDS (connects staggered: --concurrency at once).',
    'p50/p99/max: trigger → the stream has sent its ACK of the CDS response carrying the change, over all N streams.',
    '  trigger = protoplane: the mesh file write (so the ~100 ms watch debounce and the reload are included, nothing subtracted);',
    '  protoplane×3/etcd: the start of `apply` of the changed mesh (its checks, the etcd compare-and-swap, each replica\'s watch and reload);',
    '  the N streams are spread round robin over the three replicas; cpu, mem and srv p99 are the first replica\'s (a third of the streams).',
    '  go-control-plane: the POST /change that calls SetSnapshot.',
    'w-p50/w-p99: the same, from the instant the change was durably written instead: protoplane the file write returned;',
    "  protoplane×3/etcd apply's etcd transaction answered (its commit). The same start for both (apply's checks run before it).",
    'first: trigger → the first stream read the change (≈ debounce + reload + whatever the server does before its first byte leaves).',
    "srv p99: the bucket of protoplane's own protoplane_xds_push_latency_seconds{type=\"Cluster\"} holding the p99 over the change:",
    '  new snapshot → ACK *processed by the server* (so it also counts ACKs queued while the event loop is busy).',
    'cpu-connect / cpu-change: server utime+stime (/proc/PID/stat) from before loadgen to idle after READY / from then to idle after the change.',
    'mem/node: (server VmRSS with all N ready and idle − VmRSS idle before loadgen) / N.',
  ];
  for (const l of legend) console.log(l);
  console.log('');
  for (const r of results) {
    if (r.status === 'unimplemented' || r.status === 'failed') {
      if (r.status === 'unimplemented') console.log(`${r.mode} ${r.n} ${r.label}: ${r.reason}`);
      if (r.serverLog.lines > 0) console.log(`  server log (${r.serverLog.lines} lines): ${r.serverLog.samples.join(' | ')}`);
      continue;
    }
    const parts = [
      `RSS idle ${mib(r.rssIdle!)} → ready ${mib(r.rssReady!)} (peak ${mib(r.hwm!)})`,
      `responses CDS ${kib(r.cdsBytes!)} EDS ${kib(r.edsBytes!)}`,
      `reconnects ${r.reconnects} errors ${r.errors}`,
      `loadgen cpu ${seconds(r.loadgenCpuConnectTicks!, CLK_TCK)}+${seconds(r.loadgenCpuChangeTicks!, CLK_TCK)} rss ${mib(r.loadgenRss!)}`,
    ];
    if (!r.quietAfterConnect || !r.quietAfterChange) parts.push(`server not idle after ${!r.quietAfterConnect ? 'connect' : 'change'} (20 s cap)`);
    if (r.heapIdle !== undefined && r.heapReady !== undefined) {
      parts.push(`heap ${mib(r.heapIdle)} → ${mib(r.heapReady)} (${kib((r.heapReady - r.heapIdle) / r.n)}/node)${r.goroutines ? `, ${r.goroutines} goroutines` : ''}`);
    }
    if (r.heapCommittedIdle !== undefined && r.heapCommittedReady !== undefined) {
      parts.push(`heap committed ${mib(r.heapCommittedIdle)} → ${mib(r.heapCommittedReady)} (${kib((r.heapCommittedReady - r.heapCommittedIdle) / r.n)}/node)`);
    }
    if (r.externalIdle !== undefined && r.externalReady !== undefined) {
      parts.push(`external ${mib(r.externalIdle)} → ${mib(r.externalReady)} (${kib((r.externalReady - r.externalIdle) / r.n)}/node)`);
    }
    if (r.reloadIdleMs) {
      const what = r.server === 'fleet' ? "apply's return → every replica serves the snapshot" : 'file write → snapshot served';
      parts.push(`${what} with no clients ${r.reloadIdleMs.map(ms).join(', ')}`);
    }
    if (r.childCpuConnectTicks || r.childCpuChangeTicks) {
      parts.push(`child processes cpu ${seconds(r.childCpuConnectTicks!, CLK_TCK)} connect / ${seconds(r.childCpuChangeTicks!, CLK_TCK)} change`);
    }
    if (r.server === 'gcp') parts.push(`POST /change returned after ${ms(r.triggerMs ?? NaN)} ${r.triggerReply ?? ''}`.trim());
    if (r.server === 'fleet') {
      // apply's checks load (and, in a checkout whose filters changed, build) every filter first: time from its write too.
      const sinceWrite = (v: number) => ms(v - (r.triggerMs ?? NaN));
      parts.push(`apply returned after ${ms(r.triggerMs ?? NaN)} (${r.triggerReply ?? ''}); from its return: first ${sinceWrite(r.recv!.min)}, p50 ${sinceWrite(r.ack!.p50)}, p99 ${sinceWrite(r.ack!.p99)}`);
    }
    if (r.fromWrite) parts.push(`from the durable write (+${ms(r.writtenMs!)}): p50 ${ms(r.fromWrite.p50)}, p99 ${ms(r.fromWrite.p99)}, max ${ms(r.fromWrite.max)}`);
    if (r.replicas) {
      for (const t of r.replicas) {
        const at = (v: number | undefined) => (v === undefined ? '-' : ms(v));
        const etcd = r.server === 'fleet' ? `etcd read ${at(t.etcdReadMs)}, ` : '';
        parts.push(
          `${r.replicas.length > 1 ? `replica ${t.replica + 1}` : 'replica'} (from trigger): ${etcd}applied ${at(t.appliedMs)}, first read ${ms(t.firstRecvMs)}, ACK p50 ${ms(t.ack.p50)} p99 ${ms(t.ack.p99)} last ${ms(t.ack.max)}`,
        );
      }
    }
    if (r.serverPush) {
      parts.push(`srv push n=${r.serverPush.count} p50 in ${bucketText(r.serverPush.p50)}`);
      parts.push(`event-loop max ${ms(r.eventLoopMaxMs!.connect)} connect / ${ms(r.eventLoopMaxMs!.change)} change`);
      if (r.staleRequests || r.nacks) parts.push(`stale ${r.staleRequests} nacks ${r.nacks}`);
    }
    if (r.changeWindowCpu) parts.push(`cpu trigger → last ACK: ${r.changeWindowCpu.map((c) => `${c.what} ${c.seconds.toFixed(2)} s${c.mainSeconds === undefined ? '' : ` (main thread ${c.mainSeconds.toFixed(2)} s)`}`).join(', ')}`);
    if (r.status === 'incomplete') parts.push(`INCOMPLETE: ${r.reason}`);
    console.log(`${r.mode} ${r.n} ${r.label}: ${parts.join('; ')}`);
    if (r.serverLog.lines > 0) console.log(`  server log (${r.serverLog.lines} lines): ${r.serverLog.samples.join(' | ')}`);
  }
}

async function main(): Promise<void> {
  const opts = parseOptions();
  buildPeers(progress);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xds-fanout-'));
  const results: CaseResult[] = [];
  try {
    for (const n of opts.ns) {
      for (const mode of opts.modes) {
        for (const server of opts.servers) {
          progress(`xds-fanout: ${mode} N=${n} ${server} ...`);
          const started = Date.now();
          const result = await runCase(opts, server, mode, n, workDir);
          results.push(result);
          const summary =
            result.status === 'ok' || result.status === 'incomplete'
              ? `p99 ${ms(result.ack!.p99)}, mem/node ${kib(result.memPerNode!)}`
              : `${result.status}: ${result.reason}`;
          progress(`xds-fanout: ${mode} N=${n} ${server}: ${summary} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
          await sleep(1000);
        }
      }
    }
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
  printTable(opts, results);
  if (opts.json) fs.writeFileSync(opts.json, `${JSON.stringify({ clusters: opts.clusters, results }, null, 2)}\n`);
  if (results.some((r) => r.status === 'failed')) process.exitCode = 1;
}

await main();
