// The filter pre-flight: before a config reaches Envoy, each protocol
// listener's filter is started with the configuration Envoy would give it.
// That runs a guest's onConfigure, which may loop or allocate without end,
// so it runs on a worker thread with a time limit (the worker is terminated,
// which stops Wasm too), a JS heap limit, and the module's memory capped.
// Results are remembered per (module, configuration): an unchanged listener
// is not started again on every reload.
import { Worker } from 'node:worker_threads';
import type { PreflightJob, PreflightMessage } from './preflight-worker.ts';

export interface PreflightLimits {
  /** Longest a filter may take to configure. */
  timeoutMs: number;
  /** Most linear memory a module may grow to, in MiB. */
  maxMemoryMb: number;
  /** The worker's JS heap, in MiB. */
  maxHeapMb: number;
}

export const DEFAULT_PREFLIGHT: PreflightLimits = { timeoutMs: 2000, maxMemoryMb: 256, maxHeapMb: 64 };

export interface PreflightRequest {
  name: string;
  /** Identifies the bytes (the module's sha256), for the result cache. */
  sha256: string;
  bytes: Uint8Array;
  configuration: Record<string, unknown>;
}

const WORKER = new URL('./preflight-worker.mjs', import.meta.url);
const remembered = new Map<string, string | undefined>();
const REMEMBER_AT_MOST = 1000;

/** Runs `jobs` (in order) on a worker; resolves with one error message, or undefined for accepted, per job. */
function runOnWorker(jobs: PreflightJob[], limits: PreflightLimits): Promise<Array<string | undefined>> {
  const results: Array<string | undefined> = new Array(jobs.length);
  return new Promise((resolve) => {
    let from = 0;
    const startFrom = (first: number): void => {
      from = first;
      if (from >= jobs.length) return resolve(results);
      let current = -1;
      let timer: NodeJS.Timeout | undefined;
      let finished = false;
      const worker = new Worker(WORKER, {
        resourceLimits: { maxOldGenerationSizeMb: limits.maxHeapMb, maxYoungGenerationSizeMb: Math.max(4, Math.floor(limits.maxHeapMb / 4)) },
        stdout: true,
        stderr: true,
      });
      worker.unref();
      const giveUp = (message: string): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        const blamed = Math.max(current, 0) + from;
        results[blamed] = message;
        void worker.terminate();
        startFrom(blamed + 1);
      };
      worker.on('message', (message: PreflightMessage) => {
        if (finished) return;
        if (message.kind === 'start') {
          current = message.index;
          clearTimeout(timer);
          timer = setTimeout(
            () => giveUp(`did not finish configuring within ${limits.timeoutMs} ms (does onConfigure loop?); stopped`),
            limits.timeoutMs,
          );
          return;
        }
        clearTimeout(timer);
        results[from + message.index] = message.error;
        if (from + message.index === jobs.length - 1) {
          finished = true;
          void worker.terminate();
          resolve(results);
        }
      });
      worker.on('error', (error: Error & { code?: string }) => {
        giveUp(
          error.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? `ran out of its ${limits.maxHeapMb} MiB pre-flight heap while configuring; stopped`
            : `pre-flight failed: ${error.message}`,
        );
      });
      worker.on('exit', () => giveUp('the pre-flight worker stopped unexpectedly'));
      worker.postMessage(jobs.slice(from));
    };
    startFrom(0);
  });
}

/** Starts each filter with its configuration off the main thread; one error message (or undefined) per request. */
export async function preflight(requests: readonly PreflightRequest[], limits: PreflightLimits = DEFAULT_PREFLIGHT): Promise<Array<string | undefined>> {
  const keys = requests.map((r) => `${r.sha256}\0${limits.timeoutMs}/${limits.maxMemoryMb}/${limits.maxHeapMb}\0${JSON.stringify(r.configuration)}`);
  const todo = requests.map((r, i) => ({ r, i })).filter(({ i }) => !remembered.has(keys[i]!));
  if (todo.length > 0) {
    const jobs: PreflightJob[] = todo.map(({ r }) => ({
      name: r.name,
      bytes: r.bytes,
      configuration: r.configuration,
      maxMemoryPages: limits.maxMemoryMb * 16,
    }));
    const results = await runOnWorker(jobs, limits);
    todo.forEach(({ i }, n) => {
      if (remembered.size >= REMEMBER_AT_MOST) remembered.delete(remembered.keys().next().value!);
      remembered.set(keys[i]!, results[n]);
    });
  }
  return keys.map((key) => remembered.get(key));
}
