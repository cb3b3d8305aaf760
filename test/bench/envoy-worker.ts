// Envoy's one worker thread, and the CPU it has used, for the Envoy benches
// (mqtt.ts, kafka.ts, coap.ts). Linux /proc only.
import fs from 'node:fs';

export interface WorkerCpu {
  /** Nanoseconds on CPU (user + system) from /proc/…/schedstat: exact, unlike stat's 10 ms ticks. */
  ns: number;
  /** User-space seconds from /proc/…/stat (ticks of 1/100 s): the part the filter's own code can move. */
  userSeconds: number;
}

export class EnvoyWorker {
  private constructor(private readonly pid: number, readonly tid: string) {}

  /** Envoy `pid`'s wrk:worker_0 thread (the benches run Envoy with --concurrency 1). */
  static of(pid: number): EnvoyWorker {
    const tid = fs.readdirSync(`/proc/${pid}/task`).find((t) => fs.readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim() === 'wrk:worker_0');
    if (tid === undefined) throw new Error(`Envoy ${pid} has no wrk:worker_0 thread`);
    return new EnvoyWorker(pid, tid);
  }

  cpu(): WorkerCpu {
    const dir = `/proc/${this.pid}/task/${this.tid}`;
    const ns = Number(fs.readFileSync(`${dir}/schedstat`, 'utf8').split(' ')[0]);
    const fields = fs.readFileSync(`${dir}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return { ns, userSeconds: Number(fields[11]) / 100 };
  }

  /** CPU nanoseconds `run` made the worker use. */
  async measure<T>(run: () => Promise<T>): Promise<{ result: T; cpuNs: number; userSeconds: number }> {
    const before = this.cpu();
    const result = await run();
    const after = this.cpu();
    return { result, cpuNs: after.ns - before.ns, userSeconds: after.userSeconds - before.userSeconds };
  }
}
