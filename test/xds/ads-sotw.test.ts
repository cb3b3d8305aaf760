// The SotW ADS state machine, driven by a scripted client over a real gRPC
// stream: ACK, NACK, stale nonce, subscribe-before-exists, push order.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { SnapshotCache } from '../../xds-server/cache/index.ts';
import { snapshotsOf } from '../../xds-server/snapshots.ts';
import { silentLogger } from '../../xds-server/log.ts';
import { Metrics } from '../../xds-server/metrics.ts';
import type { Mesh } from '../../xds-server/model/types.ts';
import { cluster, mesh as meshOf } from '../support/meshes.ts';
import { XdsServer } from '../../xds-server/server/index.ts';
import { TYPE } from '../../xds-server/translate/index.ts';
import { XdsTestClient, type ReceivedResponse } from '../support/xds-client.ts';
import { waitUntil } from '../support/envoy.ts';


const mesh = (clusters: Parameters<typeof meshOf>[0], routeTo = clusters[0]?.name) => meshOf(clusters, routeTo);
const names = (r: ReceivedResponse) => r.resources.map((x) => x.name).sort();

describe('SotW ADS', () => {
  const cache = new SnapshotCache();
  const metrics = new Metrics({ processMetrics: false });
  const server = new XdsServer({ cache, metrics, log: silentLogger() });
  let port = 0;
  const clients: XdsTestClient[] = [];
  const connect = () => {
    const c = new XdsTestClient(port);
    clients.push(c);
    return c;
  };
  const install = (m: Mesh) => cache.set(snapshotsOf(m));

  before(async () => {
    install(mesh([cluster('a'), cluster('b')]));
    port = await server.listen(0, '127.0.0.1');
  });
  after(async () => {
    for (const c of clients) c.close();
    server.forceClose();
  });

  it('ends a stream whose request does not decode (INTERNAL), counts it, and keeps serving others', async () => {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = client.makeBidiStreamRequest(
      '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources', (b: Buffer) => b, (b: Buffer) => b,
    );
    const status = new Promise<grpc.StatusObject>((resolve) => { call.on('status', resolve); call.on('error', () => undefined); });
    call.write(Buffer.from([0x0a, 0xff, 0xff, 0xff])); // field 1 (node), a length past the end
    const s = await status;
    assert.equal(s.code, grpc.status.INTERNAL);
    assert.match(s.details, /not a decodable request/);
    client.close();
    const counted = (await metrics.rejectedRequests.get()).values.find((v) => v.labels.reason === 'undecodable');
    assert.equal(counted?.value, 1);
    const other = connect();
    other.send({ typeUrl: TYPE.cluster, nodeId: 'n-after-bad' });
    assert.deepEqual(names(await other.next()), ['a', 'b']);
  });

  it('answers a wildcard CDS request with every cluster, and stays silent on the ACK', async () => {
    const client = connect();
    client.send({ typeUrl: TYPE.cluster, nodeId: 'n-ack' });
    const response = await client.next();
    assert.equal(response.typeUrl, TYPE.cluster);
    assert.deepEqual(names(response), ['a', 'b']);
    assert.ok(response.nonce.length > 0);
    client.ack(response);
    await client.expectSilence();
    const stream = server.openStreams.find((s) => s.node?.id === 'n-ack')!;
    assert.equal(stream.types.get(TYPE.cluster)!.ackedVersion, response.versionInfo);
  });

  it('never re-sends a NACKed version, and sends the next different one', async () => {
    install(mesh([cluster('a'), cluster('b')]));
    const client = connect();
    client.send({ typeUrl: TYPE.cluster, nodeId: 'n-nack' });
    const first = await client.next();
    client.ack(first);
    install(mesh([cluster('a', 9000, 2000), cluster('b')]));
    const second = await client.next();
    assert.notEqual(second.versionInfo, first.versionInfo);
    client.send({ typeUrl: TYPE.cluster, nonce: second.nonce, version: first.versionInfo, error: 'bad cluster' });
    await client.expectSilence();
    const state = server.openStreams.find((s) => s.node?.id === 'n-nack')!.types.get(TYPE.cluster)!;
    assert.equal(state.nacked?.version, second.versionInfo);
    assert.equal(state.nacked?.message, 'bad cluster');
    assert.equal(state.ackedVersion, first.versionInfo);
    // The client asking again (same nonce, no error) after a NACK gets nothing new either.
    client.send({ typeUrl: TYPE.cluster, nonce: second.nonce, version: first.versionInfo });
    await client.expectSilence();
    install(mesh([cluster('a', 9000, 3000), cluster('b')]));
    const third = await client.next();
    assert.notEqual(third.versionInfo, second.versionInfo);
    client.ack(third);
    await client.expectSilence();
    const nacks = await metrics.nacks.get();
    assert.ok(nacks.values.some((v) => v.labels.type === 'Cluster' && v.value >= 1));
  });

  it('ignores a request carrying a stale nonce', async () => {
    install(mesh([cluster('a'), cluster('b')]));
    const client = connect();
    client.send({ typeUrl: TYPE.endpoint, names: ['a'], nodeId: 'n-stale' });
    const first = await client.next();
    assert.deepEqual(names(first), ['a']);
    client.ack(first, ['a']);
    install(mesh([cluster('a', 9100), cluster('b')]));
    const second = await client.next();
    // A request with the first nonce (stale now) asking for more names: ignored.
    client.send({ typeUrl: TYPE.endpoint, names: ['a', 'b'], nonce: first.nonce, version: first.versionInfo });
    await client.expectSilence();
    // The same request with the current nonce is honoured.
    client.send({ typeUrl: TYPE.endpoint, names: ['a', 'b'], nonce: second.nonce, version: second.versionInfo });
    const third = await client.next();
    assert.deepEqual(names(third), ['a', 'b']);
  });

  it('remembers a subscription to a resource that does not exist yet', async () => {
    install(mesh([cluster('a')]));
    const client = connect();
    client.send({ typeUrl: TYPE.endpoint, names: ['later'], nodeId: 'n-later' });
    await client.expectSilence();
    install(mesh([cluster('a'), cluster('later', 9200)]));
    const response = await client.next();
    assert.deepEqual(names(response), ['later']);
    const endpoint = response.resources[0]!.message as { endpoints: Array<{ lb_endpoints: unknown[] }> };
    assert.equal(endpoint.endpoints[0]!.lb_endpoints.length, 1);
  });

  /** The node's newest stream (a closed one may linger a moment). */
  const streamOf = (nodeId: string) => server.openStreams.filter((s) => s.node?.id === nodeId).at(-1);

  it('sends nothing to a reconnecting client whose version_info names the view it would be sent, and answers when the view differs', async () => {
    install(mesh([cluster('a'), cluster('b')], 'a'));
    const first = connect();
    const held = new Map<string, ReceivedResponse>();
    const subscriptions: Array<[string, string[]]> = [[TYPE.cluster, []], [TYPE.endpoint, ['a']], [TYPE.listener, []], [TYPE.route, ['web']]];
    for (const [typeUrl, subscribed] of subscriptions) {
      first.send({ typeUrl, names: subscribed, nodeId: 'n-reconnect' });
      const response = await first.next();
      first.ack(response, subscribed);
      held.set(typeUrl, response);
    }
    await first.expectSilence(200);
    first.close();

    // A new stream (as to another replica serving the same config): each first
    // request carries the version the client holds. Nothing is sent...
    const again = connect();
    for (const [typeUrl, subscribed] of subscriptions) {
      again.send({ typeUrl, names: subscribed, nodeId: 'n-reconnect', version: held.get(typeUrl)!.versionInfo });
    }
    await again.expectSilence(500);
    // ...and the node is in sync on every type at the version it holds.
    await waitUntil(() => streamOf('n-reconnect')?.types.size === 4, 2000, 'the new stream to have all four types');
    for (const [typeUrl] of subscriptions) {
      const state = streamOf('n-reconnect')!.types.get(typeUrl as never)!;
      assert.equal(state.ackedVersion, held.get(typeUrl)!.versionInfo, typeUrl);
      assert.equal(state.sentVersion, undefined, `${typeUrl}: nothing sent`);
    }

    // A changed subscription is a different view: answered at once.
    again.send({ typeUrl: TYPE.endpoint, names: ['a', 'b'], version: held.get(TYPE.endpoint)!.versionInfo });
    const both = await again.next();
    assert.equal(both.typeUrl, TYPE.endpoint);
    assert.deepEqual(names(both), ['a', 'b']);
    again.ack(both, ['a', 'b']);
    await again.expectSilence(200);

    // A later snapshot changing a cluster: CDS goes out, then EDS of the
    // changed cluster again (Envoy re-warms it), though the client held it.
    install(mesh([cluster('a', 9000, 2500), cluster('b')], 'a'));
    const cds = await again.next();
    assert.equal(cds.typeUrl, TYPE.cluster);
    assert.notEqual(cds.versionInfo, held.get(TYPE.cluster)!.versionInfo);
    const eds = await again.next();
    assert.equal(eds.typeUrl, TYPE.endpoint);
    assert.equal(eds.versionInfo, both.versionInfo, 'the same endpoints, sent again');
    again.ack(eds, ['a', 'b']);
    again.ack(cds);
    await again.expectSilence(300);
  });

  it('answers at once a first request whose version_info is stale, empty, or from a NACK', async () => {
    install(mesh([cluster('a'), cluster('b')], 'a'));
    const fresh = connect();
    fresh.send({ typeUrl: TYPE.cluster, nodeId: 'n-claims' });
    const current = await fresh.next();
    fresh.close();
    for (const [nodeId, version, error] of [
      ['n-stale-claim', 'a-version-no-longer-served', undefined],
      ['n-empty-claim', '', undefined],
      // after a NACK a client may hold part of what it rejected: its version_info is not proof
      ['n-nack-claim', current.versionInfo, 'bad cluster'],
    ] as const) {
      const client = connect();
      client.send({ typeUrl: TYPE.cluster, nodeId, version, error });
      const response = await client.next(1000);
      assert.equal(response.versionInfo, current.versionInfo, nodeId);
      assert.deepEqual(names(response), ['a', 'b']);
      client.ack(response);
      await client.expectSilence(200);
    }
  });

  it('after a NACK, sends the version the client says it holds again when the config returns to it', async () => {
    install(mesh([cluster('a'), cluster('b')]));
    const client = connect();
    client.send({ typeUrl: TYPE.cluster, nodeId: 'n-nack-back' });
    const good = await client.next();
    client.ack(good);
    install(mesh([cluster('a', 9000, 4000), cluster('b')]));
    const rejected = await client.next();
    client.send({ typeUrl: TYPE.cluster, nonce: rejected.nonce, version: good.versionInfo, error: 'bad cluster' });
    await client.expectSilence(300);
    // Envoy may have applied part of the rejected update, so the good version goes out again.
    install(mesh([cluster('a'), cluster('b')]));
    const back = await client.next();
    assert.equal(back.versionInfo, good.versionInfo);
    client.ack(back);
    await client.expectSilence(200);
  });

  it('pushes a change make-before-break: CDS additions, EDS, LDS, RDS, then CDS removals', async () => {
    install(mesh([cluster('old')], 'old'));
    const client = connect();
    client.send({ typeUrl: TYPE.cluster, nodeId: 'n-order' });
    const cds = await client.next();
    client.ack(cds);
    client.send({ typeUrl: TYPE.endpoint, names: ['old'] });
    const eds = await client.next();
    client.ack(eds, ['old']);
    client.send({ typeUrl: TYPE.listener });
    const lds = await client.next();
    client.ack(lds);
    client.send({ typeUrl: TYPE.route, names: ['web'] });
    const rds = await client.next();
    client.ack(rds, ['web']);
    await client.expectSilence();

    // Route moves from "old" to "new"; "old" disappears.
    install(mesh([cluster('new', 9300)], 'new'));
    const cdsAdd = await client.next();
    assert.equal(cdsAdd.typeUrl, TYPE.cluster);
    assert.deepEqual(names(cdsAdd), ['new', 'old'], 'removed cluster kept until routes moved');
    // EDS goes out at once (Envoy ACKs CDS only once new clusters have warmed, which needs EDS).
    const edsFresh = await client.next();
    assert.equal(edsFresh.typeUrl, TYPE.endpoint, 'a fresh EDS follows any cluster change');
    client.ack(edsFresh, ['old', 'new']);
    const edsNew = await client.next();
    assert.equal(edsNew.typeUrl, TYPE.endpoint);
    assert.deepEqual(names(edsNew), ['new'], 'EDS is not full-state: old keeps its endpoints until CDS drops it');
    client.ack(edsNew, ['old', 'new']);
    // Routes wait until clusters are ACKed.
    await client.expectSilence(200);
    client.ack(cdsAdd);
    const rdsNew = await client.next();
    assert.equal(rdsNew.typeUrl, TYPE.route, 'LDS unchanged, so RDS is next');
    client.ack(rdsNew, ['web']);
    const cdsFinal = await client.next();
    assert.equal(cdsFinal.typeUrl, TYPE.cluster);
    assert.deepEqual(names(cdsFinal), ['new']);
    client.ack(cdsFinal);
    const edsAfterFinal = await client.next();
    assert.equal(edsAfterFinal.typeUrl, TYPE.endpoint);
    client.ack(edsAfterFinal, ['new']);
    const last = await client.next(500).catch(() => undefined);
    if (last) {
      // Envoy would unsubscribe "old"; the EDS view for ['new'] may go out once.
      assert.equal(last.typeUrl, TYPE.endpoint);
      client.ack(last, ['new']);
    }
    await client.expectSilence();
  });
});
