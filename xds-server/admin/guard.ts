// What keeps the admin server from starving xDS, and the mesh from being
// read by anyone who can reach it: a cap on connections (each costs a file
// descriptor; past the cap Node closes new ones at accept), timeouts for a
// request's headers and for the whole request (slowloris), and an optional
// bearer token for everything but the probes, /metrics and the filter
// modules. Refusals are counted in protoplane_admin_refused_total{reason}
// and logged, rate-limited (RefusalLog).
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';

export interface AdminGuardOptions {
  /** File holding the bearer token the admin server requires (read on each request, so a new token applies at once). */
  tokenFile?: string;
  /** Most connections at once (default 64). */
  maxConnections?: number;
  /** A request must arrive whole and be answered within this, and an idle connection closes after it (default 10 s). */
  timeoutMs?: number;
  metrics: Metrics;
  /** Where refusals are logged (rate-limited); none: not logged. */
  log?: Logger;
  /** One line per reason, then a summary per this interval (default 10 s). */
  logIntervalMs?: number;
}

export type AdminRefusal = 'too_many_connections' | 'timeout' | 'request_timeout' | 'bad_request' | 'unauthorized';

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
export const DEFAULT_REFUSAL_LOG_INTERVAL_MS = 10_000;

/**
 * Refusals logged so that an attacker cannot flood the log: the first of a
 * reason is logged at once (with who and why), the ones that follow within
 * the interval are only counted, and a summary line says how many there
 * were when it ends. A steady flood costs one line per reason per interval.
 */
export class RefusalLog {
  private readonly windows = new Map<AdminRefusal, { suppressed: number; timer: NodeJS.Timeout }>();

  constructor(
    private readonly log: Logger | undefined,
    private readonly intervalMs = DEFAULT_REFUSAL_LOG_INTERVAL_MS,
  ) {}

  note(reason: AdminRefusal, context: Record<string, unknown>, message: string): void {
    if (!this.log) return;
    const window = this.windows.get(reason);
    if (window) {
      window.suppressed += 1;
      return;
    }
    this.log.warn({ ...context, reason }, `admin: ${message}`);
    this.open(reason);
  }

  private open(reason: AdminRefusal): void {
    const window = {
      suppressed: 0,
      timer: setTimeout(() => {
        this.windows.delete(reason);
        if (window.suppressed === 0) return;
        this.log!.warn({ reason, count: window.suppressed, interval_ms: this.intervalMs }, `admin: ${window.suppressed} more refused (${reason}) in the last ${this.intervalMs / 1000} s`);
        this.open(reason); // still under attack: the next summary after another interval
      }, this.intervalMs).unref(),
    };
    this.windows.set(reason, window);
  }

  /** Stops the timers (pending summaries are dropped). */
  close(): void {
    for (const window of this.windows.values()) clearTimeout(window.timer);
    this.windows.clear();
  }
}

const bytesReadAtLastResponse = new WeakMap<Socket, number>();

/**
 * The Fastify options the timeouts need (set at construction). Node enforces
 * the header and request deadlines itself (a 408 and a closed socket); the
 * client error handler is where that becomes visible, so it is counted there.
 */
export function adminServerOptions(options: Pick<AdminGuardOptions, 'timeoutMs' | 'metrics'>, refusals: RefusalLog) {
  const timeout = options.timeoutMs ?? DEFAULT_ADMIN_TIMEOUT_MS;
  return {
    connectionTimeout: timeout,
    keepAliveTimeout: Math.min(5000, timeout),
    requestTimeout: timeout,
    // Node checks header and request timeouts on this interval (default 30 s, which would let a slowloris hold on that long)
    http: { headersTimeout: timeout, connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(timeout / 2))) },
    clientErrorHandler: (error: Error & { code?: string }, socket: Socket) => {
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      const timedOut = error.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      const reason: AdminRefusal = timedOut ? 'request_timeout' : 'bad_request';
      options.metrics.adminRefused.inc({ reason });
      refusals.note(
        reason,
        { remote: socket.remoteAddress, err: error.code },
        timedOut ? `closed a connection whose request did not arrive whole within ${timeout} ms (--admin-timeout)` : `closed a connection that sent a malformed request (${error.code ?? error.message})`,
      );
      const status = timedOut ? 408 : error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      if (socket.writable) socket.write(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      socket.destroy();
    },
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

/** Paths that stay open with a token file: probes, Prometheus, and the modules Envoy fetches (checked by sha256). */
export function isOpenPath(url: string): boolean {
  const path = url.split('?', 1)[0]!;
  return path === '/healthz' || path === '/readyz' || path === '/metrics' || path.startsWith('/filters/');
}

export const TOKEN_COOKIE = 'protoplane_admin_token';

function cookieOf(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return decodeURIComponent(part.slice(at + 1).trim());
  }
  return undefined;
}

const matches = (given: string | undefined, expected: Buffer): boolean => {
  const bytes = Buffer.from(given ?? '');
  return bytes.length === expected.length && timingSafeEqual(bytes, expected);
};

export function guardAdmin(app: FastifyInstance, options: AdminGuardOptions, refusals: RefusalLog): void {
  const refused = (reason: AdminRefusal, context: Record<string, unknown>, message: string) => {
    options.metrics.adminRefused.inc({ reason });
    refusals.note(reason, context, message);
  };
  const server = app.server;
  const cap = adminConnectionCap(options.maxConnections);
  const timeout = options.timeoutMs ?? DEFAULT_ADMIN_TIMEOUT_MS;
  server.maxConnections = cap;
  server.headersTimeout = timeout;
  app.addHook('onClose', async () => refusals.close());
  // Node closes connections over maxConnections at accept and says so here
  server.on('drop', (data?: { remoteAddress?: string; remotePort?: number }) =>
    refused('too_many_connections', { remote: data?.remoteAddress }, `dropped a connection at accept: ${cap} admin connections are open (--admin-max-connections)`),
  );
  // Bytes read when the last response went out: a connection that timed out
  // with nothing new was an idle keep-alive (closed, not refused).
  app.addHook('onResponse', async (request) => {
    bytesReadAtLastResponse.set(request.raw.socket, request.raw.socket.bytesRead);
  });
  // with a listener here Node no longer closes the idle socket itself
  server.on('timeout', (socket: Socket) => {
    if (socket.bytesRead !== (bytesReadAtLastResponse.get(socket) ?? -1)) {
      refused('timeout', { remote: socket.remoteAddress }, `closed a connection idle for ${timeout} ms in the middle of a request (--admin-timeout)`);
    }
    socket.destroy();
  });
  const tokenFile = options.tokenFile;
  if (!tokenFile) return;
  app.addHook('onRequest', async (request, reply) => {
    if (isOpenPath(request.url)) return;
    const expected = readToken(tokenFile);
    if (expected) {
      const header = request.headers.authorization ?? '';
      if (header.startsWith('Bearer ') && matches(header.slice(7).trim(), expected)) return;
      if (matches(cookieOf(request.headers.cookie, TOKEN_COOKIE), expected)) return;
      const query = tokenInQuery(request);
      if (query !== undefined && matches(query, expected)) return rememberToken(request, reply, query);
    }
    refused('unauthorized', { remote: request.ip, url: request.url.split('?', 1)[0] }, `refused ${request.method} ${request.url.split('?', 1)[0]}: no valid admin token`);
    reply.code(401).header('www-authenticate', 'Bearer realm="protoplane-admin"');
    const why = expected
      ? 'this page needs the admin token (--admin-token-file): "Authorization: Bearer TOKEN", or open /?token=TOKEN once in a browser'
      : 'the admin token file is missing or empty; everything but /healthz, /readyz, /metrics and /filters/* is closed';
    if (request.url === '/' || request.url.startsWith('/?')) {
      return reply.type('text/html; charset=utf-8').send(`<!doctype html><title>protoplane: token needed</title><p>${why}</p>\n`);
    }
    return reply.send({ error: why });
  });
}

function tokenInQuery(request: FastifyRequest): string | undefined {
  const query = request.query as Record<string, unknown> | undefined;
  return typeof query?.token === 'string' ? query.token : undefined;
}

/**
 * A token given once as ?token= (a browser cannot send a header) becomes a
 * cookie, and the browser is sent to the same page without it, so that the
 * token stays out of the address bar and history. The status page's own
 * requests then carry the cookie.
 */
function rememberToken(request: FastifyRequest, reply: FastifyReply, token: string): FastifyReply {
  const url = new URL(request.url, 'http://admin');
  url.searchParams.delete('token');
  return reply
    .code(303)
    .header('set-cookie', `${TOKEN_COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`)
    .header('location', url.pathname + url.search)
    .send();
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
