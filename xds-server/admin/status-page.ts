// The admin root: a status page (one static HTML file that polls
// /status.json; no build step) for people, and pretty JSON for curl users.
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { statusView, type StatusSources } from './status.ts';

const PAGE = readFileSync(new URL('./status.html', import.meta.url), 'utf8');

/** JSON indented for a terminal, unless `?compact` asks for one line. */
export function sendJson(reply: FastifyReply, value: unknown, compact: boolean): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(`${JSON.stringify(value, null, compact ? undefined : 2)}\n`);
}

export function isCompact(query: unknown): boolean {
  return typeof query === 'object' && query !== null && 'compact' in query;
}

export function registerStatusPage(app: FastifyInstance, sources: StatusSources): void {
  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(PAGE));
  app.get('/status.json', async (request, reply) => sendJson(reply, statusView(sources), isCompact(request.query)));
}
