// xDS conformance: one table of protocol scenarios run against all four
// transports (SotW and Delta, each over ADS and over the per-type services),
// with a scripted client on raw gRPC streams. A scenario that only means
// something for one variant or for ADS says so in its `applies` field.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SnapshotCache } from '../../xds-server/cache/index.ts';
import { snapshotsOf } from '../../xds-server/snapshots.ts';
import { silentLogger } from '../../xds-server/log.ts';
import { Metrics } from '../../xds-server/metrics.ts';
import type { Mesh } from '../../xds-server/model/types.ts';
import { cluster, mesh } from '../support/meshes.ts';
import { XdsServer } from '../../xds-server/server/index.ts';
import { TYPE } from '../../xds-server/translate/index.ts';
import { DeltaTestClient, XdsTestClient, type ReceivedDeltaResponse, type ReceivedResponse } from '../support/xds-client.ts';

type Variant = 'sotw' | 'delta';
interface Transport {
  name: string;
  variant: Variant;
  ads: boolean;
}

const TRANSPORTS: readonly Transport[] = [
  { name: 'SotW over ADS', variant: 'sotw', ads: true },
  { name: 'SotW per-type', variant: 'sotw', ads: false },
  { name: 'Delta over ADS', variant: 'delta', ads: true },
  { name: 'Delta per-type', variant: 'delta', ads: false },
];

const PER_TYPE: Record<string, [string, string, string]> = {
  [TYPE.listener]: ['envoy.service.listener.v3.ListenerDiscoveryService', 'StreamListeners', 'DeltaListeners'],
  [TYPE.route]: ['envoy.service.route.v3.RouteDiscoveryService', 'StreamRoutes', 'DeltaRoutes'],
  [TYPE.cluster]: ['envoy.service.cluster.v3.ClusterDiscoveryService', 'StreamClusters', 'DeltaClusters'],
  [TYPE.endpoint]: ['envoy.service.endpoint.v3.EndpointDiscoveryService', 'StreamEndpoints', 'DeltaEndpoints'],
};

function methodFor(t: Transport, typeUrl: string): string {
  if (t.ads) {
    return `/envoy.service.discovery.v3.AggregatedDiscoveryService/${t.variant === 'sotw' ? 'StreamAggregatedResources' : 'DeltaAggregatedResources'}`;
  }
  const [service, sotw, delta] = PER_TYPE[typeUrl]!;
  return `/${service}/${t.variant === 'sotw' ? sotw : delta}`;
}

/** One response, in a shape both variants share. */
interface Response {
  typeUrl: string;
  nonce: string;
  version: string;
  names: string[];
  removed: string[];
  raw: ReceivedResponse | ReceivedDeltaResponse;
}

/**
 * A client speaking one transport: SotW requests carry the full subscription
 * (tracked here), Delta requests carry changes. Per-type transports open one
 * stream per type.
 */
class Conn {
  private readonly sotw = new Map<string, XdsTestClient>();
  private readonly delta = new Map<string, DeltaTestClient>();
  private readonly subscriptions = new Map<string, string[]>();
  private readonly lastVersion = new Map<string, string>();
  private readonly lastNonce = new Map<string, string>();
  private identified = new Set<string>();

  constructor(
    private readonly port: number,
    readonly t: Transport,
    private readonly nodeId: string,
  ) {}

  private key(typeUrl: string): string {
    return this.t.ads ? 'ads' : typeUrl;
  }

  private sotwClient(typeUrl: string): XdsTestClient {
    const key = this.key(typeUrl);
    let c = this.sotw.get(key);
    if (!c) this.sotw.set(key, (c = new XdsTestClient(this.port, methodFor(this.t, typeUrl))));
    return c;
  }

  private deltaClient(typeUrl: string): DeltaTestClient {
    const key = this.key(typeUrl);
    let c = this.delta.get(key);
    if (!c) this.delta.set(key, (c = new DeltaTestClient(this.port, methodFor(this.t, typeUrl))));
    return c;
  }

  private nodeFor(typeUrl: string): string | undefined {
    const key = this.key(typeUrl);
    if (this.identified.has(key)) return undefined;
    this.identified.add(key);
    return this.nodeId;
  }

  /** Adds names to the subscription ([] on first use: legacy wildcard). */
  /** `version` stands in for the SotW version_info (a reconnecting client's); `initialVersions` for delta's. */
  subscribe(typeUrl: string, names: string[], options: { nonce?: string; version?: string; initialVersions?: Record<string, string> } = {}): void {
    const current = this.subscriptions.get(typeUrl) ?? [];
    const next = [...current, ...names];
    this.subscriptions.set(typeUrl, next);
    const nodeId = this.nodeFor(typeUrl);
    if (this.t.variant === 'sotw') {
      this.sotwClient(typeUrl).send({
        typeUrl,
        names: next,
        nonce: options.nonce ?? this.lastNonce.get(typeUrl),
        version: options.version ?? this.lastVersion.get(typeUrl),
        nodeId,
      });
    } else {
      this.deltaClient(typeUrl).send({
        typeUrl,
        subscribe: names,
        nonce: options.nonce ?? '',
        initialVersions: options.initialVersions,
        nodeId,
      });
    }
  }

  unsubscribe(typeUrl: string, names: string[]): void {
    const next = (this.subscriptions.get(typeUrl) ?? []).filter((n) => !names.includes(n));
    this.subscriptions.set(typeUrl, next);
    if (this.t.variant === 'sotw') {
      this.sotwClient(typeUrl).send({
        typeUrl,
        names: next,
        nonce: this.lastNonce.get(typeUrl),
        version: this.lastVersion.get(typeUrl),
      });
    } else {
      this.deltaClient(typeUrl).send({ typeUrl, unsubscribe: names });
    }
  }

  async next(typeUrl: string, timeoutMs = 5000): Promise<Response> {
    let response: Response;
    if (this.t.variant === 'sotw') {
      const r = await this.sotwClient(typeUrl).next(timeoutMs);
      response = { typeUrl: r.typeUrl, nonce: r.nonce, version: r.versionInfo, names: r.resources.map((x) => x.name), removed: [], raw: r };
    } else {
      const r = await this.deltaClient(typeUrl).next(timeoutMs);
      response = { typeUrl: r.typeUrl, nonce: r.nonce, version: r.systemVersion, names: r.resources.map((x) => x.name), removed: r.removed, raw: r };
    }
    assert.equal(response.typeUrl, typeUrl, `expected a ${typeUrl} response`);
    return response;
  }

  ack(r: Response): void {
    this.lastNonce.set(r.typeUrl, r.nonce);
    if (this.t.variant === 'sotw') {
      this.lastVersion.set(r.typeUrl, r.version);
      this.sotwClient(r.typeUrl).send({ typeUrl: r.typeUrl, names: this.subscriptions.get(r.typeUrl) ?? [], nonce: r.nonce, version: r.version });
    } else {
      this.deltaClient(r.typeUrl).send({ typeUrl: r.typeUrl, nonce: r.nonce });
    }
  }

  nack(r: Response, message: string): void {
    this.lastNonce.set(r.typeUrl, r.nonce);
    if (this.t.variant === 'sotw') {
      this.sotwClient(r.typeUrl).send({
        typeUrl: r.typeUrl,
        names: this.subscriptions.get(r.typeUrl) ?? [],
        nonce: r.nonce,
        version: this.lastVersion.get(r.typeUrl),
        error: message,
      });
    } else {
      this.deltaClient(r.typeUrl).send({ typeUrl: r.typeUrl, nonce: r.nonce, error: message });
    }
  }

  /** No response on any of this connection's streams for `ms`. */
  async silence(ms = 250): Promise<void> {
    await Promise.all([...this.sotw.values(), ...this.delta.values()].map((c) => c.expectSilence(ms)));
  }

  close(): void {
    for (const c of [...this.sotw.values(), ...this.delta.values()]) c.close();
  }
}


interface Env {
  install(m: Mesh): void;
  connect(): Conn;
  t: Transport;
}

interface Scenario {
  name: string;
  applies?: (t: Transport) => boolean;
  run(env: Env): Promise<void>;
}

const sorted = (xs: string[]) => [...xs].sort();

const SCENARIOS: Scenario[] = [
  {
    name: 'legacy wildcard: an empty first CDS request gets every cluster; its ACK gets no response',
    async run({ install, connect }) {
      install(mesh([cluster('a'), cluster('b')]));
      const c = connect();
      c.subscribe(TYPE.cluster, []);
      const r = await c.next(TYPE.cluster);
      assert.deepEqual(sorted(r.names), ['a', 'b']);
      c.ack(r);
      await c.silence();
    },
  },
  {
    name: 'explicit wildcard "*" gets every cluster',
    async run({ install, connect }) {
      install(mesh([cluster('a'), cluster('b'), cluster('c')]));
      const c = connect();
      c.subscribe(TYPE.cluster, ['*']);
      const r = await c.next(TYPE.cluster);
      assert.deepEqual(sorted(r.names), ['a', 'b', 'c']);
      c.ack(r);
      await c.silence();
    },
  },
  {
    name: 'a NACKed version is never re-sent; the next different version is',
    async run({ install, connect, t }) {
      install(mesh([cluster('a'), cluster('b')]));
      const c = connect();
      c.subscribe(TYPE.cluster, []);
      c.ack(await c.next(TYPE.cluster));
      install(mesh([cluster('a', 9000, 2000), cluster('b')]));
      const bad = await c.next(TYPE.cluster);
      assert.deepEqual(sorted(bad.names), t.variant === 'sotw' ? ['a', 'b'] : ['a']);
      c.nack(bad, 'rejected on purpose');
      await c.silence();
      install(mesh([cluster('a', 9000, 3000), cluster('b')]));
      const good = await c.next(TYPE.cluster);
      assert.notEqual(good.version, bad.version);
      c.ack(good);
      await c.silence();
    },
  },
  {
    name: 'stale nonce: SotW ignores the request; Delta still applies its subscription change',
    async run({ install, connect, t }) {
      install(mesh([cluster('a'), cluster('b')]));
      const c = connect();
      c.subscribe(TYPE.endpoint, ['a']);
      const first = await c.next(TYPE.endpoint);
      c.ack(first);
      install(mesh([cluster('a', 9100), cluster('b')]));
      const second = await c.next(TYPE.endpoint);
      // Subscribe to b with the first (now stale) nonce.
      c.subscribe(TYPE.endpoint, ['b'], { nonce: first.nonce });
      c.ack(second);
      if (t.variant === 'sotw') {
        // The ACK carries the full subscription [a, b], so b arrives with it, not with the stale request.
        const third = await c.next(TYPE.endpoint);
        assert.deepEqual(sorted(third.names), ['a', 'b']);
      } else {
        const third = await c.next(TYPE.endpoint);
        assert.deepEqual(third.names, ['b'], 'the stale request subscribed b');
      }
    },
  },
  {
    name: 'stale nonce alone (SotW): the request is ignored entirely',
    applies: (t) => t.variant === 'sotw',
    async run({ install, connect }) {
      install(mesh([cluster('a'), cluster('b')]));
      const c = connect();
      c.subscribe(TYPE.endpoint, ['a']);
      const first = await c.next(TYPE.endpoint);
      c.ack(first);
      install(mesh([cluster('a', 9200), cluster('b')]));
      c.ack(await c.next(TYPE.endpoint));
      await c.silence();
      // Nothing is in flight; a request with the old nonce asking for b must still be ignored.
      c.subscribe(TYPE.endpoint, ['b'], { nonce: first.nonce });
      await c.silence();
    },
  },
  {
    name: 'subscribe before the resource exists: answered when it appears (Delta reports it as removed first)',
    async run({ install, connect, t }) {
      install(mesh([cluster('a')]));
      const c = connect();
      c.subscribe(TYPE.endpoint, ['later']);
      if (t.variant === 'delta') {
        const missing = await c.next(TYPE.endpoint);
        assert.deepEqual(missing.names, []);
        assert.deepEqual(missing.removed, ['later']);
        c.ack(missing);
      }
      await c.silence();
      install(mesh([cluster('a'), cluster('later', 9300)]));
      const r = await c.next(TYPE.endpoint);
      assert.deepEqual(r.names, ['later']);
    },
  },
  {
    name: 'unsubscribe: changes to an unsubscribed resource are not sent',
    async run({ install, connect, t }) {
      install(mesh([cluster('a'), cluster('b')]));
      const c = connect();
      c.subscribe(TYPE.endpoint, ['a', 'b']);
      c.ack(await c.next(TYPE.endpoint));
      c.unsubscribe(TYPE.endpoint, ['b']);
      if (t.variant === 'sotw') {
        const r = await c.next(TYPE.endpoint);
        assert.deepEqual(r.names, ['a']);
        c.ack(r);
      }
      await c.silence();
      install(mesh([cluster('a'), cluster('b', 9400)]));
      await c.silence();
    },
  },
  {
    name: 'a change to resources the client does not hold wakes nobody',
    async run({ install, connect }) {
      install(mesh([cluster('a'), cluster('b')]));
      const c = connect();
      c.subscribe(TYPE.endpoint, ['a']);
      c.ack(await c.next(TYPE.endpoint));
      install(mesh([cluster('a'), cluster('b', 9500)]));
      await c.silence();
    },
  },
  {
    name: 'duplicate names are never sent twice',
    async run({ install, connect }) {
      install(mesh([cluster('a'), cluster('b')]));
      const c = connect();
      c.subscribe(TYPE.endpoint, ['a', 'a', 'b', 'b']);
      const r = await c.next(TYPE.endpoint);
      assert.deepEqual(sorted(r.names), ['a', 'b']);
    },
  },
  {
    name: 'reconnect with initial_resource_versions: only what differs, and removals for what is gone',
    applies: (t) => t.variant === 'delta',
    async run({ install, connect }) {
      install(mesh([cluster('a'), cluster('b'), cluster('c')]));
      const first = connect();
      first.subscribe(TYPE.endpoint, ['a', 'b', 'c']);
      const held = (await first.next(TYPE.endpoint)).raw as ReceivedDeltaResponse;
      first.close();
      const versions = Object.fromEntries(held.resources.map((r) => [r.name, r.version]));
      install(mesh([cluster('a'), cluster('b', 9600)])); // b changed, c gone
      const again = connect();
      again.subscribe(TYPE.endpoint, ['a', 'b', 'c'], { initialVersions: versions });
      const r = await again.next(TYPE.endpoint);
      assert.deepEqual(r.names, ['b']);
      assert.deepEqual(r.removed, ['c']);
      again.ack(r);
      await again.silence();
    },
  },
  {
    name: 'reconnect with initial_resource_versions on a wildcard: unchanged clusters are not re-sent',
    applies: (t) => t.variant === 'delta',
    async run({ install, connect }) {
      install(mesh([cluster('a'), cluster('b')]));
      const first = connect();
      first.subscribe(TYPE.cluster, []);
      const held = (await first.next(TYPE.cluster)).raw as ReceivedDeltaResponse;
      first.close();
      const versions = Object.fromEntries(held.resources.map((r) => [r.name, r.version]));
      install(mesh([cluster('a'), cluster('b'), cluster('n')]));
      const again = connect();
      again.subscribe(TYPE.cluster, [], { initialVersions: versions });
      const r = await again.next(TYPE.cluster);
      assert.deepEqual(r.names, ['n']);
    },
  },
  {
    name: 'reconnect (to another replica) holding exactly what is served: nothing at all is sent',
    applies: (t) => t.variant === 'delta',
    async run({ install, connect }) {
      install(mesh([cluster('a'), cluster('b')]));
      const first = connect();
      first.subscribe(TYPE.cluster, []);
      const held = (await first.next(TYPE.cluster)).raw as ReceivedDeltaResponse;
      first.close();
      const again = connect();
      again.subscribe(TYPE.cluster, [], { initialVersions: Object.fromEntries(held.resources.map((r) => [r.name, r.version])) });
      await again.silence();
    },
  },
  {
    name: 'reconnect (to another replica) with version_info naming the view it would be sent: nothing is sent until it differs',
    applies: (t) => t.variant === 'sotw',
    async run({ install, connect }) {
      install(mesh([cluster('a'), cluster('b')]));
      const first = connect();
      first.subscribe(TYPE.cluster, []);
      const cds = await first.next(TYPE.cluster);
      first.ack(cds);
      first.subscribe(TYPE.endpoint, ['a']);
      const eds = await first.next(TYPE.endpoint);
      first.close();
      const again = connect();
      again.subscribe(TYPE.cluster, [], { version: cds.version });
      again.subscribe(TYPE.endpoint, ['a'], { version: eds.version });
      await again.silence();
      install(mesh([cluster('a', 9700), cluster('b')])); // a's endpoints change
      const r = await again.next(TYPE.endpoint);
      assert.deepEqual(r.names, ['a']);
      assert.notEqual(r.version, eds.version);
      // A stale version_info is answered at once.
      const stale = connect();
      stale.subscribe(TYPE.endpoint, ['a'], { version: eds.version });
      assert.deepEqual((await stale.next(TYPE.endpoint)).names, ['a']);
    },
  },
  {
    name: 'wildcard plus an explicit name: unsubscribing the name re-sends it (the wildcard still covers it)',
    applies: (t) => t.variant === 'delta',
    async run({ install, connect }) {
      install(mesh([cluster('a'), cluster('b')]));
      const c = connect();
      c.subscribe(TYPE.cluster, ['*', 'a']);
      const r = await c.next(TYPE.cluster);
      assert.deepEqual(sorted(r.names), ['a', 'b']);
      c.ack(r);
      c.unsubscribe(TYPE.cluster, ['a']);
      const again = await c.next(TYPE.cluster);
      assert.deepEqual(again.names, ['a']);
      assert.deepEqual(again.removed, []);
    },
  },
  {
    name: 'unsubscribing "*" keeps explicit names and stops wildcard updates',
    applies: (t) => t.variant === 'delta',
    async run({ install, connect }) {
      install(mesh([cluster('a'), cluster('b')]));
      const c = connect();
      c.subscribe(TYPE.cluster, ['*', 'a']);
      c.ack(await c.next(TYPE.cluster));
      c.unsubscribe(TYPE.cluster, ['*']);
      await c.silence();
      install(mesh([cluster('a'), cluster('b', 9000, 4000)]));
      await c.silence();
      install(mesh([cluster('a', 9000, 4000), cluster('b', 9000, 4000)]));
      const r = await c.next(TYPE.cluster);
      assert.deepEqual(r.names, ['a']);
    },
  },
  {
    name: 'make-before-break: CDS additions, EDS, then RDS, and CDS removals last',
    applies: (t) => t.ads,
    async run({ install, connect, t }) {
      install(mesh([cluster('old')], 'old'));
      const c = connect();
      c.subscribe(TYPE.cluster, []);
      c.ack(await c.next(TYPE.cluster));
      c.subscribe(TYPE.endpoint, ['old']);
      c.ack(await c.next(TYPE.endpoint));
      c.subscribe(TYPE.listener, []);
      c.ack(await c.next(TYPE.listener));
      c.subscribe(TYPE.route, ['web']);
      c.ack(await c.next(TYPE.route));
      await c.silence();

      install(mesh([cluster('new', 9700)], 'new'));
      const cdsAdd = await c.next(TYPE.cluster);
      assert.ok(cdsAdd.names.includes('new'));
      assert.deepEqual(cdsAdd.removed, []);
      if (t.variant === 'sotw') assert.deepEqual(sorted(cdsAdd.names), ['new', 'old'], 'removed cluster kept until routes move');
      // EDS does not wait for the CDS ACK (Envoy holds it until clusters warm).
      c.subscribe(TYPE.endpoint, ['new']);
      for (;;) {
        const eds = await c.next(TYPE.endpoint);
        c.ack(eds);
        if (eds.names.includes('new')) break;
      }
      await c.silence(200); // routes wait for the CDS ACK
      c.ack(cdsAdd);
      const rds = await c.next(TYPE.route);
      assert.deepEqual(rds.names, ['web']);
      c.ack(rds);
      const cdsFinal = await c.next(TYPE.cluster);
      if (t.variant === 'sotw') assert.deepEqual(cdsFinal.names, ['new']);
      else assert.deepEqual(cdsFinal.removed, ['old']);
      c.ack(cdsFinal);
    },
  },
];

for (const transport of TRANSPORTS) {
  describe(`xDS conformance: ${transport.name}`, () => {
    const cache = new SnapshotCache();
    const server = new XdsServer({ cache, metrics: new Metrics({ processMetrics: false }), log: silentLogger() });
    let port = 0;
    const conns: Conn[] = [];
    let n = 0;
    before(async () => {
      port = await server.listen(0, '127.0.0.1');
    });
    after(() => {
      for (const c of conns) c.close();
      server.forceClose();
    });
    for (const scenario of SCENARIOS) {
      if (scenario.applies && !scenario.applies(transport)) continue;
      it(scenario.name, async () => {
        const env: Env = {
          t: transport,
          install: (m) => void cache.set(snapshotsOf(m)),
          connect: () => {
            const c = new Conn(port, transport, `node-${++n}`);
            conns.push(c);
            return c;
          },
        };
        await scenario.run(env);
      });
    }
  });
}
