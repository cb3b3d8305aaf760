// A rehearsal of the push path, run once before the server takes clients.
//
// Why: V8 optimises a function for what its runs so far have shown it, and
// a branch that has never run has shown nothing. The connects of thousands
// of Envoys run the push path's connect branches thousands of times, so it
// gets optimised on those alone. A config change then takes branches no
// connect took (a diff against what the client holds, cluster removals held
// back, the EDS of a changed cluster sent again, the fan-out scheduler's
// batches). At a server's first change the optimised code meets them and is
// thrown away ("insufficient type feedback" deopts), and what it had inlined
// gets compiled again, function by function, while the fan-out runs:
// ~230 ms of compiling on one server of 3,334 Envoys (--trace-opt), taken
// from the cores the fan-out needs, and paid by every replica of a fleet.
//
// So before listening the server plays a few Envoys of each kind (delta and
// SotW, over ADS) through a connect and three changes against a twin of
// itself: the same code, with a cache, metrics and scheduler of its own, on
// a Unix socket of its own, with snapshots of a tiny mesh made up here. The
// clients speak gRPC over real HTTP/2 connections, so Node's own stream code
// learns a change's writes too (two responses corked into one write).
// Nothing of it is served or counted by the real server. The clients check
// that they end up holding what was served, so a push path broken in some
// obvious way shows at start (a warning; serving goes on).
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { buildSnapshot, SnapshotSet, type Snapshot, type SnapshotCache } from '../cache/index.ts';
import { TYPE, type EnvoyMessage, type ResourceType } from '../model/resources.ts';
import { messageType, TYPE_PREFIX } from '../protos/index.ts';

const DISCOVERY = 'envoy.service.discovery.v3.';
const ADS = `/${DISCOVERY}AggregatedDiscoveryService/`;
const NODE = { id: 'protoplane-rehearsal', cluster: 'protoplane-rehearsal' };

/** Wakes the waiting converge() whenever a client has read something. */
class Progress {
  private wake: (() => void) | undefined;

  notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  next(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }
}

/**
 * Runs `use` with the path of a Unix socket in a folder of its own (0700,
 * removed afterwards): the twin listens there rather than on a TCP port, so
 * no other user can reach it, and it takes no port that a caller may have
 * just picked as free for something it is about to start (an ephemeral
 * loopback port did, once in a few dozen starts of the fan-out bench's
 * replicas).
 */
export async function withPrivateSocket<T>(use: (socketPath: string) => Promise<T>): Promise<T> {
  // (a socket path has at most 107 bytes: under a long TMPDIR, /tmp)
  const base = os.tmpdir().length <= 64 ? os.tmpdir() : '/tmp';
  const dir = fs.mkdtempSync(path.join(base, 'protoplane-rehearsal-'));
  try {
    return await use(path.join(dir, 'xds.sock'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A client's connection, kept across passes as an Envoy keeps its own. */
function connect(socketPath: string): http2.ClientHttp2Session {
  const session = http2.connect('http://localhost', { createConnection: () => net.connect(socketPath) });
  // (what does not arrive is what the rehearsal's check reports)
  session.on('error', () => {});
  return session;
}

/** One client's ADS call: requests framed as gRPC messages, responses unframed into `inbox`. */
class Call {
  readonly inbox: Buffer[] = [];
  private readonly stream: http2.ClientHttp2Stream;
  private unread: Buffer = Buffer.alloc(0);

  constructor(session: http2.ClientHttp2Session, method: string, onMessages: () => void) {
    this.stream = session.request({ ':method': 'POST', ':path': ADS + method, 'content-type': 'application/grpc', te: 'trailers' });
    this.stream.on('error', () => {});
    this.stream.on('data', (chunk: Buffer) => {
      this.unread = this.unread.length === 0 ? chunk : Buffer.concat([this.unread, chunk]);
      while (this.unread.length >= 5 && this.unread.length >= 5 + this.unread.readUInt32BE(1)) {
        const end = 5 + this.unread.readUInt32BE(1);
        this.inbox.push(this.unread.subarray(5, end));
        this.unread = this.unread.subarray(end);
      }
      onMessages();
    });
  }

  send(message: Uint8Array): void {
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, 5);
    this.stream.write(frame);
  }

  close(): void {
    this.stream.close();
  }
}

/**
 * A tiny mesh, in variants that differ the ways config changes do. From 0
 * to 1: cluster a changes and no endpoints do (a's are sent again all the
 * same, with nothing else: the commonest change, and the one whose EDS diff
 * is empty), the listener and route change, nothing goes. From 1 to 2: b
 * goes, c comes, a changes again and d's endpoints change. From 2 to 0: the
 * way back.
 */
function meshSnapshot(variant: 0 | 1 | 2): Snapshot {
  const port = 10_000 + variant;
  const dPort = variant === 2 ? 10_002 : 10_000;
  const cluster = (name: string): EnvoyMessage => ({
    name,
    type: 'EDS',
    connect_timeout: { seconds: name === 'a' ? 1 + variant : 1 },
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
  });
  const endpoints = (name: string): EnvoyMessage => ({
    cluster_name: name,
    endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: name === 'd' ? dPort : 10_000 } } } }] }],
  });
  const names = variant === 2 ? ['a', 'c', 'd'] : ['a', 'b', 'd'];
  return buildSnapshot({
    listeners: [{ name: 'l', address: { socket_address: { address: '127.0.0.1', port_value: port } } }],
    routes: [{ name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: `/${variant}` }, route: { cluster: 'a' } }] }] }],
    clusters: names.map(cluster),
    endpoints: names.map(endpoints),
    extensions: [],
    secrets: [],
  });
}

/** What a client holds of each type: resource name → its encoded message, as hex. */
type Held = Map<ResourceType, Map<string, string>>;

interface AnyResource {
  type_url: string;
  value: Uint8Array;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

// The client's side reads and writes with protobufjs's plain decode and encode: the checked,
// object-converting helpers of protos/ would cost the rehearsal more than the server's side.
const decode = <T>(fullName: string, bytes: Uint8Array): T => messageType(fullName).decode(bytes) as unknown as T;
const encode = (fullName: string, fields: Record<string, unknown>): Uint8Array => messageType(fullName).encode(fields).finish();

/** What an Envoy subscribes to once it holds these clusters and listeners. */
function namesFor(typeUrl: ResourceType, held: Held): string[] | undefined {
  if (typeUrl === TYPE.cluster) return [...(held.get(TYPE.cluster)?.keys() ?? [])].sort();
  if (typeUrl === TYPE.listener) return held.get(TYPE.listener)?.size ? ['r'] : [];
  return undefined;
}

/** The dependent type whose subscription follows a type's resources: EDS follows CDS, RDS follows LDS. */
const FOLLOWS: ReadonlyMap<ResourceType, ResourceType> = new Map([
  [TYPE.cluster, TYPE.endpoint],
  [TYPE.listener, TYPE.route],
]);

interface Client {
  readonly kind: string;
  /** What it holds, from the responses it has read (and answered as Envoy would). */
  readonly held: Held;
  close(): void;
}

function deltaClient(session: http2.ClientHttp2Session, progress: Progress): Client {
  const held: Held = new Map();
  const subscribed = new Map<ResourceType, Set<string>>();
  const call: Call = new Call(session, 'DeltaAggregatedResources', () => {
    answer();
    progress.notify();
  });
  const request = (fields: Record<string, unknown>) => call.send(encode(`${DISCOVERY}DeltaDiscoveryRequest`, fields));
  const answer = () => {
    for (const bytes of call.inbox.splice(0)) {
      const response = decode<{
        type_url: ResourceType;
        nonce: string;
        resources: Array<{ name: string; resource: AnyResource }>;
        removed_resources: string[];
      }>(`${DISCOVERY}DeltaDiscoveryResponse`, bytes);
      const resources = held.get(response.type_url) ?? new Map<string, string>();
      held.set(response.type_url, resources);
      for (const { name, resource } of response.resources) resources.set(name, hex(resource.value));
      for (const name of response.removed_resources) resources.delete(name);
      request({ type_url: response.type_url, response_nonce: response.nonce });
      const dependent = FOLLOWS.get(response.type_url);
      if (!dependent) continue;
      const wanted = new Set(namesFor(response.type_url, held));
      const had = subscribed.get(dependent) ?? new Set<string>();
      const subscribe = [...wanted].filter((n) => !had.has(n));
      const unsubscribe = [...had].filter((n) => !wanted.has(n));
      subscribed.set(dependent, wanted);
      if (subscribe.length + unsubscribe.length > 0) request({ type_url: dependent, resource_names_subscribe: subscribe, resource_names_unsubscribe: unsubscribe });
    }
  };
  request({ node: NODE, type_url: TYPE.cluster });
  request({ type_url: TYPE.listener });
  return { kind: 'delta', held, close: () => call.close() };
}

function sotwClient(session: http2.ClientHttp2Session, progress: Progress): Client {
  const held: Held = new Map();
  const last = new Map<ResourceType, { version: string; nonce: string; names: string[] }>();
  const call: Call = new Call(session, 'StreamAggregatedResources', () => {
    answer();
    progress.notify();
  });
  const request = (fields: Record<string, unknown>) => call.send(encode(`${DISCOVERY}DiscoveryRequest`, fields));
  const ask = (typeUrl: ResourceType, names: string[]) => {
    const previous = last.get(typeUrl);
    last.set(typeUrl, { version: previous?.version ?? '', nonce: previous?.nonce ?? '', names });
    request({ type_url: typeUrl, version_info: previous?.version ?? '', response_nonce: previous?.nonce ?? '', resource_names: names });
  };
  const answer = () => {
    for (const bytes of call.inbox.splice(0)) {
      const response = decode<{ type_url: ResourceType; version_info: string; nonce: string; resources: AnyResource[] }>(`${DISCOVERY}DiscoveryResponse`, bytes);
      const typeUrl = response.type_url;
      const resources = new Map<string, string>();
      for (const any of response.resources) {
        const message = decode<{ name?: string; cluster_name?: string }>(any.type_url.slice(TYPE_PREFIX.length), any.value);
        resources.set(String(typeUrl === TYPE.endpoint ? message.cluster_name : message.name), hex(any.value));
      }
      held.set(typeUrl, resources);
      const subscription = last.get(typeUrl)?.names ?? [];
      last.set(typeUrl, { version: response.version_info, nonce: response.nonce, names: subscription });
      request({ type_url: typeUrl, version_info: response.version_info, response_nonce: response.nonce, resource_names: subscription });
      const dependent = FOLLOWS.get(typeUrl);
      const wanted = namesFor(typeUrl, held);
      if (dependent && wanted && wanted.join('\0') !== (last.get(dependent)?.names ?? []).join('\0')) ask(dependent, wanted);
    }
  };
  request({ node: NODE, type_url: TYPE.cluster });
  request({ type_url: TYPE.listener });
  return { kind: 'SotW', held, close: () => call.close() };
}

const TYPES: readonly ResourceType[] = [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route];

/** What a snapshot serves of each type, as a client that holds it would have it. */
function servedBy(snapshot: Snapshot): Held {
  return new Map(
    TYPES.map((typeUrl): [ResourceType, Map<string, string>] => {
      const resources = new Map<string, string>();
      for (const [name, entry] of snapshot.of(typeUrl).entries) resources.set(name, hex(decode<AnyResource>('google.protobuf.Any', entry.anyBytes).value));
      return [typeUrl, resources];
    }),
  );
}

function sameResources(got: ReadonlyMap<string, string> | undefined, want: ReadonlyMap<string, string>): boolean {
  if ((got?.size ?? 0) !== want.size) return false;
  for (const [name, bytes] of want) if (got!.get(name) !== bytes) return false;
  return true;
}

function holds(client: Client, served: Held): boolean {
  for (const [typeUrl, want] of served) if (!sameResources(client.held.get(typeUrl), want)) return false;
  return true;
}

/** Which client does not hold what is served, and what it holds instead. */
function mismatch(clients: readonly Client[], served: Held, snapshot: Snapshot): string {
  const names = (resources: ReadonlyMap<string, string> | undefined) => [...(resources?.keys() ?? [])].sort().join(',');
  for (const client of clients) {
    for (const [typeUrl, want] of served) {
      const got = client.held.get(typeUrl);
      if (sameResources(got, want)) continue;
      const type = typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
      return `the rehearsal's ${client.kind} client holds ${type} [${names(got)}] not as served ([${names(want)}], snapshot ${snapshot.version})`;
    }
  }
  return 'every client holds what is served';
}

/** Waits until every client holds what `snapshot` serves; throws after `timeoutMs`, saying which does not. */
async function converge(clients: readonly Client[], snapshot: Snapshot, progress: Progress, timeoutMs: number): Promise<void> {
  const served = servedBy(snapshot);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<true>((resolve) => {
    timer = setTimeout(() => resolve(true), timeoutMs);
  });
  try {
    while (!clients.every((client) => holds(client, served))) {
      if (await Promise.race([progress.next(), timedOut])) throw new Error(mismatch(clients, served, snapshot));
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * V8 records what a function sees only once the function has a feedback
 * vector, which it is given after its first runs (--lazy-feedback-allocation):
 * a single client through a single pass would teach it nothing. Measured with
 * --trace-deopt on the fan-out bench: with 8 passes of 4 clients of each kind,
 * the push path no longer throws its optimised code away at the first change.
 */
const PASSES = 8;
const CLIENTS_PER_KIND = 4;

/**
 * Plays delta and SotW Envoys through a connect and three changes, `passes`
 * times, against the xDS server on the Unix socket `socketPath` that serves `cache` (the
 * rehearsal's own: its snapshots are replaced here). Throws when a client
 * does not come to hold what was served within `timeoutMs`.
 */
export async function rehearsePushPath(cache: SnapshotCache, socketPath: string, options: { passes?: number; timeoutMs?: number } = {}): Promise<void> {
  const { passes = PASSES, timeoutMs = 5_000 } = options;
  const [first, ...changes] = [meshSnapshot(0), meshSnapshot(1), meshSnapshot(2), meshSnapshot(0)];
  const progress = new Progress();
  const sessions = Array.from({ length: 2 * CLIENTS_PER_KIND }, () => connect(socketPath));
  try {
    for (let pass = 0; pass < passes; pass++) {
      cache.set(new SnapshotSet(() => first!));
      const clients = sessions.map((session, i) => (i % 2 === 0 ? deltaClient(session, progress) : sotwClient(session, progress)));
      try {
        await converge(clients, first!, progress, timeoutMs);
        for (const snapshot of changes) {
          cache.set(new SnapshotSet(() => snapshot));
          await converge(clients, snapshot, progress, timeoutMs);
        }
      } finally {
        for (const client of clients) client.close();
      }
    }
  } finally {
    // (at once: a graceful close would wait on the server, which the caller is about to close)
    for (const session of sessions) session.destroy();
  }
}
