// What keeps the admin server from starving xDS, and /debug/* from being
// read by anyone who can reach it: a cap on connections (each costs a file
// descriptor; past the cap Node closes new ones at accept), timeouts for a
// request's headers and for the whole request (slowloris), and an optional
// bearer token for /debug/*. Refusals are counted in
// protoplane_admin_refused_total{reason}.
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../metrics.ts';

export interface AdminGuardOptions {
  /** File holding the bearer token /debug/* requires (read on each such request, so a new token applies at once). */
  tokenFile?: string;
  /** Most connections at once (default 64). */
  maxConnections?: number;
  /** A request must arrive whole and be answered within this, and an idle connection closes after it (default 10 s). */
  timeoutMs?: number;
  metrics: Metrics;
}

export const DEFAULT_ADMIN_MAX_CONNECTIONS = 64;

/** The process's soft limit on open files (Linux /proc/self/limits), or undefined elsewhere. */
function openFilesLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return line ? Number(line[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The admin connection cap: the flag (default 64), and never more than an
 * eighth of the open-files limit, so that the rest stays for xDS
 * connections, config and filter files.
 */
export function adminConnectionCap(requested = DEFAULT_ADMIN_MAX_CONNECTIONS, openFiles = openFilesLimit()): number {
  return openFiles === undefined ? requested : Math.max(4, Math.min(requested, Math.floor(openFiles / 8)));
}
export const DEFAULT_ADMIN_TIMEOUT_MS = 10_000;

/** The Fastify options the timeouts need (set at construction). */
export function adminServerOptions(options: Pick<AdminGuardOptions, 'timeoutMs'>) {
  const timeout = options.timeoutMs ?? DEFAULT_ADMIN_TIMEOUT_MS;
  return {
    connectionTimeout: timeout,
    keepAliveTimeout: Math.min(5000, timeout),
    requestTimeout: timeout,
    // Node checks header and request timeouts on this interval (default 30 s, which would let a slowloris hold on that long)
    http: { headersTimeout: timeout, connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(timeout / 2))) },
  };
}

function readToken(file: string): Buffer | undefined {
  try {
    const token = readFileSync(file, 'utf8').trim();
    return token === '' ? undefined : Buffer.from(token);
  } catch {
    return undefined;
  }
}

export function guardAdmin(app: FastifyInstance, options: AdminGuardOptions): void {
  const refused = options.metrics.adminRefused;
  const server = app.server;
  server.maxConnections = adminConnectionCap(options.maxConnections);
  server.headersTimeout = options.timeoutMs ?? DEFAULT_ADMIN_TIMEOUT_MS;
  // Node closes connections over maxConnections at accept and says so here
  server.on('drop', () => refused.inc({ reason: 'too_many_connections' }));
  // with a listener here Node no longer closes the idle socket itself
  server.on('timeout', (socket: import('node:net').Socket) => {
    refused.inc({ reason: 'timeout' });
    socket.destroy();
  });
  const tokenFile = options.tokenFile;
  if (!tokenFile) return;
  app.addHook('onRequest', async (request, reply) => {
    if (!request.url.startsWith('/debug/')) return;
    const expected = readToken(tokenFile);
    const header = request.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7).trim() : '');
    if (expected && given.length === expected.length && timingSafeEqual(given, expected)) return;
    refused.inc({ reason: 'unauthorized' });
    return reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="protoplane-debug"')
      .send({ error: expected ? '/debug/* needs "Authorization: Bearer TOKEN" (--admin-token-file)' : 'the admin token file is missing or empty; /debug/* is closed' });
  });
}

/** ?limit=&offset= of a list: at most 1,000 per page, 100 by default. */
export function pageOf<T>(items: readonly T[], query: unknown): { items: readonly T[]; page: { offset: number; limit: number; total: number; next_offset: number | null } } {
  const q = (query ?? {}) as Record<string, unknown>;
  const number = (v: unknown, fallback: number) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : fallback);
  const limit = Math.min(1000, Math.max(1, number(q.limit, 100)));
  const offset = number(q.offset, 0);
  const slice = items.slice(offset, offset + limit);
  return { items: slice, page: { offset, limit, total: items.length, next_offset: offset + limit < items.length ? offset + limit : null } };
}
