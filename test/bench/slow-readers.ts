// Slow readers against well-behaved streams (issue 19's load test): a server
// with a 1,500-cluster mesh, 1,000 well-behaved SotW ADS CDS streams that
// read and ACK every response, and (second run) 500 more streams with an
// HTTP/2 window of 0 that never read. For each of several config changes it
// prints the time from the change to each well-behaved stream having it
// (p50, p99, max), and the server's RSS. No asserts: numbers only.
//
//   node --import tsx test/bench/slow-readers.ts [--good 1000] [--slow 500] [--clusters 1500] [--changes 5]
//
// The server runs in a child process (this file with `serve`), so the load
// generator does not share its event loop.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http2 from 'node:http2';
import { parseArgs } from 'node:util';
import { SnapshotCache } from '../../xds-server/cache/index.ts';
import { snapshotsOf } from '../../xds-server/snapshots.ts';
import { silentLogger } from '../../xds-server/log.ts';
import { Metrics } from '../../xds-server/metrics.ts';
import type { Mesh } from '../../xds-server/model/types.ts';
import { XdsServer } from '../../xds-server/server/index.ts';
import { TYPE } from '../../xds-server/translate/index.ts';
import { cluster, mesh } from '../support/meshes.ts';
import { ADS, sotwRequest } from '../security/raw-xds.ts';

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== 'serve'),
  options: { good: { type: 'string' }, slow: { type: 'string' }, clusters: { type: 'string' }, changes: { type: 'string' } },
});
const GOOD = Number(values.good ?? 1000);
const SLOW = Number(values.slow ?? 500);
const CLUSTERS = Number(values.clusters ?? 1500);
const CHANGES = Number(values.changes ?? 5);
const STREAMS_PER_CONNECTION = 20;

function meshVersion(n: number): Mesh {
  return mesh(
    Array.from({ length: CLUSTERS }, (_, i) => cluster(`cluster-${i}`, 9000 + (i % 1000), 1000 + n)),
    'cluster-0',
  );
}

type ToServer = { kind: 'change'; n: number } | { kind: 'rss' };
type FromServer = { kind: 'port'; port: number } | { kind: 'changed'; at: number } | { kind: 'rss'; rss: number };

async function runServer(): Promise<void> {
  const cache = new SnapshotCache();
  cache.set(snapshotsOf(meshVersion(0)));
  const server = new XdsServer({ cache, metrics: new Metrics({ processMetrics: false }), log: silentLogger(), limits: { maxStreamsPerNode: 100_000 } });
  const port = await server.listen(0, '127.0.0.1');
  const send = (m: FromServer) => process.send!(m);
  send({ kind: 'port', port });
  process.on('message', (m: ToServer) => {
    if (m.kind === 'change') {
      cache.set(snapshotsOf(meshVersion(m.n)));
      send({ kind: 'changed', at: Date.now() });
    } else send({ kind: 'rss', rss: process.memoryUsage().rss });
  });
}

/** The version_info of a DiscoveryResponse (field 1, which this server writes first). */
function versionOf(message: Buffer): string {
  if (message[0] !== 0x0a) return '';
  let length = 0;
  let shift = 0;
  let at = 1;
  for (;;) {
    const byte = message[at++]!;
    length |= (byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) break;
    shift += 7;
  }
  return message.toString('utf8', at, at + length);
}

/** The nonce (field 5, which this server writes last). */
function nonceOf(message: Buffer): string {
  // nonce is short: tag 0x2a, one length byte, then the bytes, at the end
  for (let at = message.length - 2; at >= 0 && at >= message.length - 130; at--) {
    if (message[at] === 0x2a && at + 2 + message[at + 1]! === message.length) return message.toString('utf8', at + 2);
  }
  return '';
}

class GoodStream {
  version = '';
  seenAt = new Map<string, number>();
  private buffered: Buffer = Buffer.alloc(0);

  constructor(private readonly req: http2.ClientHttp2Stream, id: number) {
    req.on('data', (chunk: Buffer) => this.onData(chunk));
    req.on('error', () => undefined);
    req.write(sotwRequest({ typeUrl: TYPE.cluster, nodeId: `good-${id}` }));
  }

  private onData(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 5) {
      const length = this.buffered.readUInt32BE(1);
      if (this.buffered.length < 5 + length) return;
      const message = this.buffered.subarray(5, 5 + length);
      this.buffered = this.buffered.subarray(5 + length);
      const version = versionOf(message);
      this.version = version;
      this.seenAt.set(version, Date.now());
      this.req.write(sotwRequest({ typeUrl: TYPE.cluster, nonce: nonceOf(message), version }));
    }
  }
}

function connect(port: number, settings: http2.Settings): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings });
  session.on('error', () => undefined);
  return session;
}

function open(session: http2.ClientHttp2Session): http2.ClientHttp2Stream {
  return session.request({ ':method': 'POST', ':path': ADS, 'content-type': 'application/grpc', te: 'trailers' });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))]!;
}

async function run(label: string, slowCount: number, changeBase: number): Promise<void> {
  const server: ChildProcess = fork(new URL(import.meta.url).pathname, ['serve'], { execArgv: process.execArgv, stdio: 'inherit' });
  const ask = async <K extends FromServer['kind']>(message: ToServer | undefined, kind: K): Promise<Extract<FromServer, { kind: K }>> => {
    const reply = new Promise<Extract<FromServer, { kind: K }>>((resolve) => {
      const on = (m: FromServer) => {
        if (m.kind !== kind) return;
        server.off('message', on);
        resolve(m as Extract<FromServer, { kind: K }>);
      };
      server.on('message', on);
    });
    if (message) server.send(message);
    return reply;
  };
  const { port } = await ask(undefined, 'port');
  const sessions: http2.ClientHttp2Session[] = [];
  const good: GoodStream[] = [];
  for (let i = 0; i < GOOD; i++) {
    if (i % STREAMS_PER_CONNECTION === 0) sessions.push(connect(port, {}));
    good.push(new GoodStream(open(sessions[sessions.length - 1]!), i));
  }
  for (let i = 0; i < slowCount; i++) {
    if (i % STREAMS_PER_CONNECTION === 0) sessions.push(connect(port, { initialWindowSize: 0 }));
    const stream = open(sessions[sessions.length - 1]!);
    stream.on('error', () => undefined);
    stream.write(sotwRequest({ typeUrl: TYPE.cluster, nodeId: `slow-${i}` }));
  }
  // everyone has the first version
  const started = Date.now();
  while (good.some((g) => g.version === '') && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 3000)); // slow readers' bytes age past --xds-slow-stream-after (1 s)
  const all: number[] = [];
  for (let c = 1; c <= CHANGES; c++) {
    const before = new Set(good.map((g) => g.version));
    const { at } = await ask({ kind: 'change', n: changeBase + c }, 'changed');
    const deadline = at + 60_000;
    while (good.some((g) => before.has(g.version)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const times = good.map((g) => (before.has(g.version) ? Infinity : g.seenAt.get(g.version)! - at)).sort((a, b) => a - b);
    all.push(...times);
    const missing = times.filter((t) => t === Infinity).length;
    console.log(`${label}: change ${c}: p50 ${percentile(times, 0.5)} ms, p99 ${percentile(times, 0.99)} ms, max ${times[times.length - 1]} ms${missing ? `, ${missing} streams never got it in 60 s` : ''}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  const { rss } = await ask({ kind: 'rss' }, 'rss');
  all.sort((a, b) => a - b);
  console.log(`${label}: all changes: p50 ${percentile(all, 0.5)} ms, p99 ${percentile(all, 0.99)} ms; server RSS ${(rss / 1024 / 1024).toFixed(0)} MiB`);
  for (const s of sessions) s.destroy();
  server.kill();
  await once(server, 'exit');
}

if (process.argv[2] === 'serve') {
  await runServer();
} else {
  console.log(`${CLUSTERS} clusters, ${GOOD} well-behaved SotW ADS CDS streams, ${CHANGES} changes; then again with ${SLOW} streams that never read (HTTP/2 window 0)`);
  await run(`without slow readers`, 0, 0);
  await run(`with ${SLOW} slow readers`, SLOW, 100);
}
