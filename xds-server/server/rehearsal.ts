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
// So before listening the server plays one Envoy of each kind (delta and
// SotW, over ADS) through a connect and three changes, on state of its own:
// its own snapshot cache, metrics, scheduler, and snapshots of a tiny mesh
// made up here. Nothing of it is served or counted, and it takes a few ms.
// The client checks that it ends up holding what was served, so a push path
// broken in some obvious way shows at start (a warning; serving goes on).
import { setImmediate as nextTurn } from 'node:timers/promises';
import { buildSnapshot, SnapshotSet, type Snapshot } from '../cache/index.ts';
import { TYPE, type EnvoyMessage, type ResourceType } from '../model/resources.ts';
import { decodeMessage, encodeMessage, TYPE_PREFIX } from '../protos/index.ts';
import { DeltaStream } from './delta.ts';
import { MESSAGE_PREFIX_BYTES } from './grpc.ts';
import { KNOWN_TYPES, type StreamSink } from './protocol.ts';
import { SotwStream } from './sotw.ts';
import type { StreamContext } from './stream.ts';
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest } from './wire.ts';

let nextId = 0;
const DISCOVERY = 'envoy.service.discovery.v3.';
const NODE = { id: 'protoplane-rehearsal', cluster: 'protoplane-rehearsal' };

/** Responses are kept for the client to read; each is "handed on" a turn later, as gRPC would. */
class RehearsalSink implements StreamSink {
  readonly connection = 0;
  readonly peerNames = undefined;
  readonly inbox: Buffer[] = [];

  writePrefixed(bytes: Buffer, flushed?: () => void): boolean {
    this.inbox.push(bytes.subarray(MESSAGE_PREFIX_BYTES));
    if (flushed) setImmediate(flushed);
    return true;
  }

  cork(): void {}
  uncork(): void {}
  onDrain(): void {}
  abort(reason: string): void {
    throw new Error(`the rehearsal's stream was reset: ${reason}`);
  }
}

/**
 * A tiny mesh, in variants that differ the ways config changes do. From 0
 * to 1: cluster a changes but not its endpoints (they are sent again all the
 * same), d's endpoints change, the listener and route change, nothing goes.
 * From 1 to 2: b goes and c comes. From 2 to 0: the way back.
 */
function meshSnapshot(variant: 0 | 1 | 2): Snapshot {
  const port = 10_000 + variant;
  const cluster = (name: string): EnvoyMessage => ({
    name,
    type: 'EDS',
    connect_timeout: { seconds: name === 'a' ? 1 + variant : 1 },
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
  });
  const endpoints = (name: string): EnvoyMessage => ({
    cluster_name: name,
    endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: name === 'd' ? port : 10_000 } } } }] }],
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

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

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
  /** Reads every response written so far, answers each as Envoy would; false when there was none. */
  answer(): boolean;
  held: Held;
  close(): void;
}

function deltaClient(ctx: StreamContext): Client {
  const sink = new RehearsalSink();
  const stream = new DeltaStream(nextId++, ctx, sink, KNOWN_TYPES, 'ads');
  const held: Held = new Map();
  const subscribed = new Map<ResourceType, Set<string>>();
  const request = (fields: Record<string, unknown>) =>
    stream.onRequest(decodeDeltaDiscoveryRequest(encodeMessage(`${DISCOVERY}DeltaDiscoveryRequest`, fields)));
  request({ node: NODE, type_url: TYPE.cluster });
  request({ type_url: TYPE.listener });
  return {
    held,
    answer() {
      const responses = sink.inbox.splice(0);
      for (const bytes of responses) {
        const response = decodeMessage(`${DISCOVERY}DeltaDiscoveryResponse`, bytes) as {
          type_url: ResourceType;
          nonce: string;
          resources?: Array<{ name: string; resource: AnyResource }>;
          removed_resources?: string[];
        };
        const resources = held.get(response.type_url) ?? new Map<string, string>();
        held.set(response.type_url, resources);
        for (const { name, resource } of response.resources ?? []) resources.set(name, hex(resource.value));
        for (const name of response.removed_resources ?? []) resources.delete(name);
        request({ type_url: response.type_url, response_nonce: response.nonce });
        const dependent = FOLLOWS.get(response.type_url);
        const wanted = new Set(namesFor(response.type_url, held));
        if (!dependent) continue;
        const had = subscribed.get(dependent) ?? new Set<string>();
        const subscribe = [...wanted].filter((n) => !had.has(n));
        const unsubscribe = [...had].filter((n) => !wanted.has(n));
        subscribed.set(dependent, wanted);
        if (subscribe.length + unsubscribe.length > 0) request({ type_url: dependent, resource_names_subscribe: subscribe, resource_names_unsubscribe: unsubscribe });
      }
      return responses.length > 0;
    },
    close: () => stream.close(),
  };
}

function sotwClient(ctx: StreamContext): Client {
  const sink = new RehearsalSink();
  const stream = new SotwStream(nextId++, ctx, sink, KNOWN_TYPES, 'ads');
  const held: Held = new Map();
  const last = new Map<ResourceType, { version: string; nonce: string; names: string[] }>();
  const request = (fields: Record<string, unknown>) => stream.onRequest(decodeDiscoveryRequest(encodeMessage(`${DISCOVERY}DiscoveryRequest`, fields)));
  const ask = (typeUrl: ResourceType, names: string[]) => {
    const previous = last.get(typeUrl);
    last.set(typeUrl, { version: previous?.version ?? '', nonce: previous?.nonce ?? '', names });
    request({ type_url: typeUrl, version_info: previous?.version ?? '', response_nonce: previous?.nonce ?? '', resource_names: names });
  };
  request({ node: NODE, type_url: TYPE.cluster });
  request({ type_url: TYPE.listener });
  return {
    held,
    answer() {
      const responses = sink.inbox.splice(0);
      for (const bytes of responses) {
        const response = decodeMessage(`${DISCOVERY}DiscoveryResponse`, bytes) as {
          type_url: ResourceType;
          version_info: string;
          nonce: string;
          resources?: AnyResource[];
        };
        const typeUrl = response.type_url;
        const resources = new Map<string, string>();
        for (const any of response.resources ?? []) {
          const message = decodeMessage(any.type_url.slice(TYPE_PREFIX.length), any.value);
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
      return responses.length > 0;
    },
    close: () => stream.close(),
  };
}

/** Lets the clients answer until nothing more is written for a few turns (the scheduler and flushes run on turns). */
async function settle(clients: readonly Client[]): Promise<void> {
  for (let quietTurns = 0, turns = 0; quietTurns < 3; turns++) {
    if (turns > 1_000) throw new Error('the rehearsal did not settle within 1,000 turns');
    await nextTurn();
    let answered = false;
    for (const client of clients) answered = client.answer() || answered;
    quietTurns = answered ? 0 : quietTurns + 1;
  }
}

function expectHeld(kind: string, client: Client, snapshot: Snapshot): void {
  for (const typeUrl of [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route]) {
    const describe = (resources: Iterable<[string, string]>) => [...resources].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, bytes]) => `${name}:${bytes}`);
    const want = describe([...snapshot.of(typeUrl).entries].map(([name, entry]) => [name, hex((decodeMessage('google.protobuf.Any', entry.anyBytes) as unknown as AnyResource).value)]));
    const got = describe(client.held.get(typeUrl) ?? []);
    if (got.join(' ') !== want.join(' ')) {
      const names = (list: string[]) => list.map((item) => item.slice(0, item.indexOf(':'))).join(',');
      const type = typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
      throw new Error(`the rehearsal's ${kind} client holds ${type} [${names(got)}] not as served ([${names(want)}], snapshot ${snapshot.version})`);
    }
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
 * Plays delta and SotW Envoys through a connect and three changes on `ctx`
 * (which must be the rehearsal's own: its cache is replaced here), `passes`
 * times. Throws when a client does not end up holding what was served.
 */
export async function rehearsePushPath(ctx: StreamContext, passes = PASSES): Promise<void> {
  const [first, ...changes] = [meshSnapshot(0), meshSnapshot(1), meshSnapshot(2), meshSnapshot(0)];
  for (let pass = 0; pass < passes; pass++) {
    ctx.cache.set(new SnapshotSet(() => first!));
    const clients: Array<[string, Client]> = [];
    for (let i = 0; i < CLIENTS_PER_KIND; i++) clients.push(['delta', deltaClient(ctx)], ['SotW', sotwClient(ctx)]);
    const all = clients.map(([, client]) => client);
    try {
      await settle(all);
      for (const snapshot of changes) {
        ctx.cache.set(new SnapshotSet(() => snapshot));
        await settle(all);
        for (const [kind, client] of clients) expectHeld(kind, client, snapshot);
      }
    } finally {
      for (const client of all) client.close();
    }
  }
}
