// Errors of the in-process proxy-wasm host.
import type { LogEntry } from './types.ts';

/** Why a module could not be loaded or a plugin could not be started. */
export class WasmFilterError extends Error {
  constructor(
    readonly phase: 'load' | 'link' | 'start' | 'vm_start' | 'configure',
    message: string,
    /** What the filter logged while failing. */
    readonly logs: LogEntry[] = [],
  ) {
    super(message);
    this.name = 'WasmFilterError';
  }
}

/** A trap (or proc_exit) inside the guest; carries the callback that failed. */
export class GuestTrap extends Error {
  constructor(readonly callback: string, message: string) {
    super(message);
    this.name = 'GuestTrap';
  }
}

/** Thrown by the WASI proc_exit import to unwind the guest. */
export class ProcExit extends Error {
  constructor(readonly code: number) {
    super(`proc_exit(${code})`);
    this.name = 'ProcExit';
  }
}

export function trapMessage(err: unknown): string {
  if (err instanceof ProcExit) return err.message;
  if (err instanceof WebAssembly.RuntimeError) return err.message;
  if (err instanceof RangeError) return `RangeError: ${err.message}`; // e.g. stack overflow
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

