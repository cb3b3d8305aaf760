// Ending the processes a test starts, so that no failure path leaves one
// running: a live child keeps the test process from exiting, and the suite
// (test/run.sh) then waits for that file until its timeout.
import type { ChildProcess } from 'node:child_process';

/**
 * Signals `child` (default SIGTERM), SIGKILLs it after `graceMs`, and resolves
 * once it has exited; at once if it already has (or never started).
 */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  // a process wedged in its signal handler (or ignoring the signal) must not wedge the test with it
  const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(kill);
}

let installed = false;

/**
 * The helpers SIGKILL their children in a process 'exit' hook, but a SIGTERM
 * (what node's test runner sends a file that ran past --test-timeout) ends
 * node without 'exit' hooks, leaving Envoys, brokers and JVMs orphaned for
 * the rest of the run. This turns SIGTERM into an ordinary exit so they run.
 */
export function exitHooksOnSigterm(): void {
  if (installed) return;
  installed = true;
  process.once('SIGTERM', () => process.exit(143));
}
