// Child processes for the bench: spawn with line-by-line output, read a
// process's CPU time and memory from /proc, wait for it to go quiet, and stop
// it (always by its own pid).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Clock ticks per second for /proc/<pid>/stat (getconf CLK_TCK; 100 on Linux). */
export const CLK_TCK = 100;

export function nowNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e3)) * 1000n;
}

/** A /proc stat file: the command (between the parentheses) and the fields after it (state, field 3, is index 0: field k is index k - 3). */
function readStat(file: string): { command: string; fields: string[] } {
  const stat = fs.readFileSync(file, 'utf8');
  const close = stat.lastIndexOf(')');
  return { command: stat.slice(stat.indexOf('(') + 1, close), fields: stat.slice(close + 2).split(' ') };
}

/** utime + stime (fields 14, 15), in clock ticks. */
const ticksOf = (fields: string[]): number => Number(fields[11]) + Number(fields[12]);

/** utime + stime of a process, in clock ticks. */
export function cpuTicks(pid: number): number {
  return ticksOf(readStat(`/proc/${pid}/stat`).fields);
}

/** cutime + cstime (fields 16, 17): CPU of the process's children it has waited for, in clock ticks. */
export function childCpuTicks(pid: number): number {
  const { fields } = readStat(`/proc/${pid}/stat`);
  return Number(fields[13]) + Number(fields[14]);
}

/**
 * CPU ticks of every process under `root` (its descendants, not itself), by
 * pid, with its command name (`etcd`, `loadgen`, `node`...) and its main
 * thread's share (the rest: GC and worker threads). Read at two instants, it
 * shows where a window's CPU went on a shared machine.
 */
export function descendantCpu(root: number): Map<number, { command: string; ticks: number; mainTicks: number }> {
  const parents = new Map<number, number>();
  const info = new Map<number, { command: string; ticks: number; mainTicks: number }>();
  for (const name of fs.readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    try {
      const { command, fields } = readStat(`/proc/${pid}/stat`);
      parents.set(pid, Number(fields[1]));
      info.set(pid, { command, ticks: ticksOf(fields), mainTicks: 0 });
    } catch {
      // gone since the listing
    }
  }
  const under = (pid: number): boolean => {
    for (let p = parents.get(pid); p !== undefined && p > 1; p = parents.get(p)) if (p === root) return true;
    return false;
  };
  for (const [pid, entry] of info) {
    if (!under(pid)) {
      info.delete(pid);
      continue;
    }
    try {
      entry.mainTicks = ticksOf(readStat(`/proc/${pid}/task/${pid}/stat`).fields);
    } catch {
      // gone
    }
  }
  return info;
}

/** VmRSS and VmHWM (peak) of a process, in bytes. */
export function memory(pid: number): { rss: number; hwm: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/**
 * Waits until the process uses (almost) no CPU: at most `idleTicks` over a
 * `windowMs` window, or until `timeoutMs`. Returns the ticks then, and whether
 * it went quiet.
 */
export async function waitQuiet(
  pid: number,
  { windowMs = 500, idleTicks = 2, timeoutMs = 20_000 } = {},
): Promise<{ ticks: number; quiet: boolean }> {
  const deadline = Date.now() + timeoutMs;
  let last = cpuTicks(pid);
  for (;;) {
    await sleep(windowMs);
    const now = cpuTicks(pid);
    if (now - last <= idleTicks) return { ticks: now, quiet: true };
    if (Date.now() > deadline) return { ticks: now, quiet: false };
    last = now;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** A child whose stdout and stderr are read line by line, keeping the last lines of each. */
export class Child {
  readonly proc: ChildProcess;
  readonly stderrTail: string[] = [];
  readonly stdoutTail: string[] = [];
  private readonly lineWaiters: Array<{ test: (line: string) => boolean; resolve: (line: string) => void }> = [];
  private exitWaiters: Array<() => void> = [];
  exitCode: number | null | undefined;
  onLine: ((line: string, stream: 'stdout' | 'stderr') => void) | undefined;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: SpawnOptions = {},
  ) {
    this.proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
    this.read('stdout', this.stdoutTail);
    this.read('stderr', this.stderrTail);
    // 'close' (not 'exit'): every line the child printed has been read by then.
    this.proc.on('close', (code, signal) => {
      this.exitCode = code ?? (signal ? -1 : null);
      for (const w of this.exitWaiters) w();
      this.exitWaiters = [];
    });
    this.proc.on('error', (error) => {
      this.stderrTail.push(`spawn failed: ${error.message}`);
      if (this.exitCode === undefined) this.exitCode = -1;
      for (const w of this.exitWaiters) w();
      this.exitWaiters = [];
    });
    this.proc.stdin?.on('error', () => {}); // the child may be gone already
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error(`${this.name} did not start`);
    return this.proc.pid;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** Every stdout line kept so far (the last 50). */
  stdoutHas(prefix: string): string | undefined {
    return this.stdoutTail.find((l) => l.startsWith(prefix));
  }

  private read(stream: 'stdout' | 'stderr', tail: string[]): void {
    let buffered = '';
    this.proc[stream]?.setEncoding('utf8');
    this.proc[stream]?.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        tail.push(line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
        if (tail.length > 50) tail.shift();
        this.onLine?.(line, stream);
        if (stream === 'stdout') {
          const i = this.lineWaiters.findIndex((w) => w.test(line));
          if (i >= 0) this.lineWaiters.splice(i, 1)[0]!.resolve(line);
        }
      }
    });
  }

  /** Resolves with the first stdout line (from now on) passing `test`; rejects on exit or timeout. */
  waitLine(test: (line: string) => boolean, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.name}: no matching output within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        test,
        resolve: (line: string) => {
          cleanup();
          resolve(line);
        },
      };
      const onExit = () => {
        cleanup();
        reject(new Error(`${this.name} exited (code ${this.exitCode}); stderr: ${this.stderrTail.slice(-5).join(' | ')}`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        const i = this.lineWaiters.indexOf(waiter);
        if (i >= 0) this.lineWaiters.splice(i, 1);
        this.exitWaiters = this.exitWaiters.filter((w) => w !== onExit);
      };
      if (!this.running) return onExit();
      this.lineWaiters.push(waiter);
      this.exitWaiters.push(onExit);
    });
  }

  send(line: string): void {
    this.proc.stdin?.write(`${line}\n`);
  }

  waitExit(timeoutMs: number): Promise<boolean> {
    if (!this.running) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.exitWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.running) return;
    this.proc.stdin?.end();
    this.proc.kill('SIGTERM');
    if (!(await this.waitExit(graceMs))) {
      this.proc.kill('SIGKILL');
      await this.waitExit(5_000);
    }
  }
}
