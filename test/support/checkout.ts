// A private copy of the checkout for tests that create, edit or break
// filters: the shared filters/ folder is listed and built by every other test
// process (scripts/build-filters.sh, the catalog), so a filter that appears,
// changes or is broken there races them. A copy keeps it to one test.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { exitHooksOnSigterm, stopChild } from './children.ts';
import { freePort, REPO_ROOT, waitUntil } from './envoy.ts';

/** What a copy needs to scaffold, build, test and serve filters (node_modules is linked, not copied). */
export const CHECKOUT_ENTRIES = ['bin', 'xds-server', 'scripts', 'filters', 'proto', 'asconfig.json', 'package.json', 'tsconfig.json', 'build/filters'];

/**
 * Copies `entries` of the checkout to DIR/checkout, timestamps kept so the
 * incremental build skips what is built (an entry that does not exist yet,
 * such as a module in a fresh clone, is skipped: the copy builds it).
 */
export function privateCheckout(dir: string, entries: readonly string[] = CHECKOUT_ENTRIES): string {
  const root = path.join(dir, 'checkout');
  for (const entry of entries) {
    const from = path.join(REPO_ROOT, entry);
    if (fs.existsSync(from)) fs.cpSync(from, path.join(root, entry), { recursive: true, preserveTimestamps: true });
  }
  fs.mkdirSync(path.join(root, 'test'), { recursive: true });
  fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(root, 'node_modules'));
  return root;
}

export interface CheckoutServer {
  process: ChildProcess;
  /** Everything it printed so far (JSON log lines). */
  output(): string;
  stop(): Promise<void>;
}

// Servers still running when the test process ends (a failed test that never reached stop()) are killed with it.
const servers = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of servers) child.kill('SIGKILL');
});

/** Runs `bin/protoplane serve ARGS` of a private checkout. */
export function serveCheckout(root: string, args: readonly string[]): CheckoutServer {
  const child = spawn(path.join(root, 'bin/protoplane'), ['serve', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  servers.add(child);
  child.once('exit', () => servers.delete(child));
  exitHooksOnSigterm();
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk) => (output += chunk.toString()));
  return {
    process: child,
    output: () => output,
    // a server wedged on its main thread never runs its SIGTERM handler: the test must end anyway (SIGKILL after 5 s)
    stop: () => stopChild(child),
  };
}

export interface ServedFilter {
  name: string;
  sha256: string;
}

/** The filters a server lists at /debug/filters (none while it is not answering yet). */
export async function servedFilters(adminPort: number): Promise<ServedFilter[]> {
  const response = await fetch(`http://127.0.0.1:${adminPort}/debug/filters`).catch(() => undefined);
  if (!response?.ok) return [];
  return ((await response.json()) as { filters: ServedFilter[] }).filters;
}

export type ServingCheckout = CheckoutServer & { xdsPort: number; adminPort: number };

/** Runs a private checkout's server on free ports until it serves filter `name`; its output is in the error otherwise. */
export async function serveCheckoutUntilFilter(
  root: string,
  configPath: string,
  name: string,
  extraArgs: readonly string[] = [],
): Promise<ServingCheckout> {
  const xdsPort = await freePort();
  const adminPort = await freePort();
  const server = serveCheckout(root, ['--config', configPath, '--xds-port', String(xdsPort), '--admin-port', String(adminPort), '--host', '127.0.0.1', ...extraArgs]);
  await waitUntil(async () => (await servedFilters(adminPort)).some((f) => f.name === name), 60_000, `the server serving filter ${name}`).catch(async (err: Error) => {
    // the caller gets no handle: a server left running would keep the test process alive
    await server.stop();
    throw new Error(`${err.message}\nserver output:\n${server.output()}`);
  });
  return { ...server, xdsPort, adminPort };
}
