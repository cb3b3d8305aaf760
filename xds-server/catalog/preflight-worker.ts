// The filter pre-flight's worker thread: starts each filter with a
// listener's configuration, as Envoy would, and reports whether it accepted.
// It runs off the main thread so that a filter whose onConfigure loops or
// allocates without end costs this thread (which the parent terminates),
// never xDS or admin. Each job is announced before it runs, so the parent
// knows which one to blame when it has to stop the thread.
import { parentPort } from 'node:worker_threads';
import { WasmFilterModule } from '../wasm-host/index.ts';
import { capMemory } from './wasm-memory.ts';

export interface PreflightJob {
  name: string;
  bytes: Uint8Array;
  configuration: Record<string, unknown>;
  maxMemoryPages: number;
}

export type PreflightMessage = { kind: 'start'; index: number } | { kind: 'done'; index: number; error?: string };

const port = parentPort!;
port.on('message', async (jobs: PreflightJob[]) => {
  for (const [index, job] of jobs.entries()) {
    port.postMessage({ kind: 'start', index } satisfies PreflightMessage);
    try {
      const module = await WasmFilterModule.load(capMemory(job.bytes, job.maxMemoryPages), job.name);
      const plugin = await module.instantiate({ name: job.name, rootId: job.name, vmId: job.name, configuration: job.configuration, logLevel: 'warn' });
      plugin.close();
      port.postMessage({ kind: 'done', index } satisfies PreflightMessage);
    } catch (error) {
      port.postMessage({ kind: 'done', index, error: error instanceof Error ? error.message : String(error) } satisfies PreflightMessage);
    }
  }
});
