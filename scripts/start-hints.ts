// What `npm start` says to try, derived from the config it serves: a curl
// for an HTTP listener (with the headers its routes match), nc for TCP,
// openssl s_client with an SNI its routes know for TLS, mosquitto_pub with a
// client id its routes match for MQTT. And which local upstreams it needs.
//
//   node --import tsx scripts/start-hints.ts hints CONFIG
//   node --import tsx scripts/start-hints.ts mqtt-brokers CONFIG   (host:port per line)
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

interface RawRoute {
  match?: Record<string, unknown>;
  cluster?: string;
  clusters?: Record<string, number>;
}
interface RawListener {
  name?: string;
  port?: number;
  protocol?: string;
  routes?: RawRoute[];
}
interface RawMesh {
  listeners?: RawListener[];
  clusters?: Array<{ name?: string; endpoints?: string[] }>;
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** A value that a `{ prefix | exact }` style matcher accepts, or undefined. */
function sample(matcher: unknown, suffix: string): string | undefined {
  if (typeof matcher === 'string') return matcher;
  const m = record(matcher);
  if (typeof m.exact === 'string') return m.exact;
  if (typeof m.prefix === 'string') return `${m.prefix}${suffix}`;
  return undefined;
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Commands to try against each listener of the mesh. */
export function startHints(mesh: RawMesh): string[] {
  const out: Array<[command: string, comment: string]> = [];
  for (const listener of mesh.listeners ?? []) {
    const port = listener.port;
    if (typeof port !== 'number') continue;
    const routes = listener.routes ?? [];
    switch (listener.protocol) {
      case 'http': {
        const seen = new Set<string>();
        for (const route of routes) {
          const match = record(route.match);
          const path = typeof match.path === 'string' ? match.path : typeof match.prefix === 'string' ? match.prefix : '/';
          const headers = Object.entries(record(match.headers)).filter(([, v]) => typeof v === 'string');
          const cmd = `curl -s ${headers.map(([k, v]) => `-H ${shellQuote(`${k}: ${String(v)}`)} `).join('')}localhost:${port}${path}`;
          if (!seen.has(cmd)) out.push([cmd, `${listener.name}: ${route.cluster ?? Object.keys(route.clusters ?? {}).join(' / ')}`]);
          seen.add(cmd);
        }
        break;
      }
      case 'tcp':
        out.push([`printf 'hello\\n' | nc -q1 localhost ${port}`, `${listener.name}: TCP to ${routes[0]?.cluster ?? '?'}`]);
        break;
      case 'tls': {
        const sni = routes.map((r) => record(r.match).sni).find((s): s is string => typeof s === 'string');
        const name = sni ? sni.replace(/^\*\./, 'x.') : 'example.com';
        out.push([`openssl s_client -quiet -connect localhost:${port} -servername ${name} </dev/null`, `${listener.name}: TLS passthrough by SNI`]);
        break;
      }
      case 'mqtt': {
        const matched = routes.find((r) => sample(record(r.match).client_id, '1') !== undefined);
        // Subscriber and publisher match the same route, so they meet on one broker.
        const id = (suffix: string) => (matched ? sample(record(matched.match).client_id, suffix)! : `client-${suffix}`);
        const broker = matched?.cluster ?? routes.at(-1)?.cluster ?? '?';
        out.push([`mosquitto_sub -p ${port} -i ${shellQuote(id('watch'))} -t '#' -v &`, `${listener.name}: subscribe via ${broker}`]);
        out.push([`mosquitto_pub -p ${port} -i ${shellQuote(id('1'))} -t sensors/t1 -m 21.5`, `${listener.name}: publish via ${broker}`]);
        break;
      }
      default:
        out.push([`# localhost:${port}`, `${listener.name}: ${listener.protocol}`]);
    }
  }
  const width = Math.min(60, Math.max(0, ...out.map(([c]) => c.length)));
  return out.map(([command, comment]) => `${command.padEnd(width)}  # ${comment}`);
}

/** host:port of every local endpoint behind an MQTT listener: the brokers its example needs. */
export function mqttBrokers(mesh: RawMesh): string[] {
  const wanted = new Set<string>();
  for (const listener of mesh.listeners ?? []) {
    if (listener.protocol !== 'mqtt') continue;
    for (const route of listener.routes ?? []) for (const c of [route.cluster, ...Object.keys(route.clusters ?? {})]) if (c) wanted.add(c);
  }
  const endpoints = (mesh.clusters ?? []).filter((c) => c.name && wanted.has(c.name)).flatMap((c) => c.endpoints ?? []);
  return [...new Set(endpoints.filter((e) => /^(127\.\d+\.\d+\.\d+|localhost):\d+$/.test(e)))];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [what, file] = process.argv.slice(2);
  const mesh = record(parse(readFileSync(file!, 'utf8'))) as RawMesh;
  const lines = what === 'mqtt-brokers' ? mqttBrokers(mesh) : startHints(mesh);
  if (lines.length) process.stdout.write(`${lines.join('\n')}\n`);
}
