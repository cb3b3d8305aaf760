// The kafka filter in the in-process host over real client traffic recorded
// from real brokers (fixtures: kcat/librdkafka, kafkajs and Kafka's own 4.2
// Java clients against a two-broker Kafka 4.2.0 cluster; kcat forced to the
// oldest API versions against Kafka 3.9.1; see record-fixtures.ts).
// kafkajs's own protocol decoders are the independent oracle for what the
// filter rewrites and answers.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { FIXTURE_NAMES, concat, feed, fixture, frames, kafkaPlugin, packetLog, streams } from './filter-support.ts';

const require = createRequire(import.meta.url);
type Decode = (body: Buffer) => Promise<Record<string, unknown>>;
const kafkajsDecoder = (path: string): Decode => (require(`kafkajs/src/protocol/requests/${path}/response`) as { decode: Decode }).decode;

/** Request header fields straight from the bytes (header v1/v2 share the prefix). */
function requestHeader(frame: Uint8Array): { api_key: number; api_version: number; correlation_id: number; client_id: string | null } {
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const n = v.getInt16(12);
  return {
    api_key: v.getInt16(4),
    api_version: v.getInt16(6),
    correlation_id: v.getInt32(8),
    client_id: n < 0 ? null : Buffer.from(frame.subarray(14, 14 + n)).toString('utf8'),
  };
}

const BROKERS = [{ id: 1, port: 19101, cluster: 'kafka-1' }, { id: 2, port: 19102, cluster: 'kafka-2' }];
const REWRITE = { advertise: 'envoy.example', brokers: BROKERS };

describe('kafka filter over recorded client traffic', () => {
  for (const name of FIXTURE_NAMES) {
    it(`${name}: passes every byte unchanged without settings, reports every request and response`, async () => {
      const plugin = await kafkaPlugin({ log_packets: true });
      let requests = 0;
      let responses = 0;
      const expected: ReturnType<typeof requestHeader>[] = [];
      for (const c of fixture(name)) {
        const conn = plugin.newConnection();
        const out = feed(conn, c);
        const s = streams(c);
        assert.deepEqual(out.down, s.down, `${c.client}: client bytes changed`);
        assert.deepEqual(out.up, s.up, `${c.client}: broker bytes changed`);
        const reqs = frames(s.down);
        requests += reqs.length;
        responses += frames(s.up).length;
        expected.push(...reqs.map(requestHeader));
      }
      // a capture may end inside a response: the filter reports it from its header
      for (const c of fixture(name)) {
        const up = streams(c).up;
        const whole = frames(up).reduce((n, f) => n + f.length, 0);
        if (up.length - whole >= 8) responses++;
      }
      const log = packetLog(plugin);
      const loggedRequests = log.filter((p) => p.type === 'request');
      assert.equal(loggedRequests.length, requests);
      assert.equal(log.filter((p) => p.type === 'response').length, responses);
      assert.deepEqual(loggedRequests.map((p) => ({ api_key: p.api_key, api_version: p.api_version, correlation_id: p.correlation_id, client_id: p.client_id })), expected);
      const m = plugin.metrics();
      const counted = Object.entries(m).filter(([k]) => k.startsWith('kafka.request.') && k !== 'kafka.request.unknown_api').reduce((n, [, v]) => n + v, 0);
      assert.equal(counted, requests, 'per key+version request counters add up to the requests');
      assert.equal(m['kafka.closed_by_filter'], 0);
      assert.equal(m['kafka.request.unknown_api'], 0, 'every key and version of these clients is in the generated table');
    });
  }

  it('names topics and group ids in the packet log, and counts produce batches per topic prefix', async () => {
    const plugin = await kafkaPlugin({ log_packets: true, topic_metrics: ['orders.'] });
    for (const c of fixture('kafkajs-4.2')) feed(plugin.newConnection(), c);
    const log = packetLog(plugin);
    const produce = log.filter((p) => p.api === 'Produce' && p.type === 'request');
    assert.ok(produce.length >= 2);
    for (const p of produce) assert.deepEqual(p.topics, ['orders.us']);
    assert.ok(log.some((p) => p.api === 'JoinGroup' && JSON.stringify(p.group_ids) === '["fixture-group"]'));
    assert.ok(log.some((p) => p.api === 'FindCoordinator' && JSON.stringify(p.group_ids) === '["fixture-group"]'));
    const m = plugin.metrics();
    assert.equal(m['kafka.topic.orders_.produce_records'], 4); // alpha, beta, gamma, delta
    assert.equal(m['kafka.topic.orders_.produce_batches'], 2);
    assert.equal(m['kafka.produce.compression.gzip'], 1);
  });

  for (const name of ['kcat-4.2', 'kafkajs-4.2', 'java-4.2']) {
    it(`${name}: per topic prefix, the batches fetched are the batches produced (bytes, batches, records)`, async () => {
      const plugin = await kafkaPlugin({ topic_metrics: ['orders.'] });
      for (const c of fixture(name)) feed(plugin.newConnection(), c);
      const m = plugin.metrics();
      // each fixture consumes exactly what it produced (kcat -c 4, kafkajs 4 messages, Java --max-messages 3)
      assert.ok(m['kafka.topic.orders_.produce_records']! > 0);
      for (const what of ['bytes', 'batches', 'records']) {
        assert.equal(m[`kafka.topic.orders_.fetch_${what}`], m[`kafka.topic.orders_.produce_${what}`], what);
      }
      assert.equal(m['kafka.closed_by_filter'], 0);
    });
  }

  for (const name of FIXTURE_NAMES) {
    it(`${name}: rewrites every broker address to advertise:port of its listener`, async () => {
      const plugin = await kafkaPlugin({ ...REWRITE, log_packets: true });
      const decoded: Record<string, unknown>[] = [];
      let rewritten = 0;
      for (const c of fixture(name)) {
        const conn = plugin.newConnection();
        const out = feed(conn, c);
        const reqs = frames(streams(c).down).map(requestHeader);
        for (const resp of frames(out.up)) {
          const corr = new DataView(resp.buffer, resp.byteOffset).getInt32(4);
          const req = reqs.find((r) => r.correlation_id === corr)!;
          // kafkajs decodes the non-flexible Metadata (v0-v6) and FindCoordinator (v0-v2) shapes
          if (req.api_key === 3 && req.api_version <= 6) decoded.push(await kafkajsDecoder(`metadata/v${req.api_version}`)(Buffer.from(resp.subarray(8))));
          if (req.api_key === 10 && req.api_version <= 2) decoded.push(await kafkajsDecoder(`findCoordinator/v${req.api_version}`)(Buffer.from(resp.subarray(8))));
        }
        // what the filter reports for every response (flexible ones included) is the new address
        rewritten += Buffer.from(out.up).toString('latin1').split('envoy.example').length - 1;
      }
      for (const d of decoded) {
        const brokers = (d.brokers as { nodeId: number; host: string; port: number }[] | undefined) ??
          (d.coordinator ? [d.coordinator as { nodeId: number; host: string; port: number }] : []);
        for (const b of brokers.filter((x) => x.nodeId >= 0)) { // node -1: "no coordinator yet", nothing to rewrite
          assert.equal(b.host, 'envoy.example');
          assert.equal(b.port, BROKERS.find((x) => x.id === b.nodeId)!.port);
        }
      }
      const m = plugin.metrics();
      assert.ok(m['kafka.brokers.rewritten']! > 0);
      assert.equal(rewritten, m['kafka.brokers.rewritten']);
      assert.equal(m['kafka.brokers.unknown'], 0);
      assert.equal(m['kafka.closed_by_filter'], 0);
      // walking the rewritten responses again finds only the new addresses
      const again = await kafkaPlugin({ log_packets: true });
      for (const c of fixture(name)) {
        const conn = plugin.newConnection();
        const out = feed(conn, c);
        feed(again.newConnection(), { ...c, segments: [{ direction: 'downstream', data: streams(c).down }, { direction: 'upstream', data: out.up }] });
      }
      const brokers = packetLog(again).flatMap((p) => (p.brokers as { node_id: number; host: string; port: number }[] | undefined) ?? []).filter((b) => b.node_id >= 0);
      assert.ok(brokers.length > 0);
      for (const b of brokers) assert.deepEqual(b, { node_id: b.node_id, host: 'envoy.example', port: BROKERS.find((x) => x.id === b.node_id)!.port });
    });
  }

  it('a broker missing from brokers: an error line and a counter, the address left as the broker said', async () => {
    const plugin = await kafkaPlugin({ advertise: 'envoy.example', brokers: [BROKERS[0]] });
    for (const c of fixture('kcat-4.2')) feed(plugin.newConnection(), c);
    const m = plugin.metrics();
    assert.ok(m['kafka.brokers.unknown']! > 0);
    const errors = plugin.record.logs.filter((l) => l.level === 'error' && l.message.includes('broker 2'));
    assert.equal(errors.length, 1, 'one line per broker, not one per response');
    assert.match(errors[0]!.message, /not in the filter's brokers/);
  });

  it('caps Produce and Fetch at v12 in ApiVersions when topic policy needs names, Fetch at v15 when rewriting', async () => {
    const decode = kafkajsDecoder('apiVersions/v2');
    for (const [settings, produceMax, fetchMax] of [[{ topic_metrics: ['x'] }, 12, 12], [REWRITE, 13, 15], [{ ...REWRITE, keep_topic_ids: true }, 13, 15], [{}, 13, 18]] as const) {
      const plugin = await kafkaPlugin(settings);
      const c = fixture('kafkajs-4.2')[0]!; // ApiVersions v2 first
      const out = feed(plugin.newConnection(), c);
      const body = frames(out.up)[0]!.subarray(8);
      const d = (await decode(Buffer.from(body))) as { apiVersions: { apiKey: number; maxVersion: number }[] };
      assert.equal(d.apiVersions.find((a) => a.apiKey === 0)!.maxVersion, produceMax, JSON.stringify(settings));
      assert.equal(d.apiVersions.find((a) => a.apiKey === 1)!.maxVersion, fetchMax, JSON.stringify(settings));
    }
  });
});

describe('kafka filter policy', () => {
  it('a produce to a denied topic gets TOPIC_AUTHORIZATION_FAILED from the filter, the broker a placeholder, the connection stays open', async () => {
    const plugin = await kafkaPlugin({ acl: { default: 'allow', produce: [{ topic: { prefix: 'secret.' }, action: 'deny' }] }, log_packets: true });
    let refused = 0;
    for (const c of fixture('kcat-4.2')) {
      const s = streams(c);
      const reqs = frames(s.down).map(requestHeader);
      const conn = plugin.newConnection();
      const out = feed(conn, c);
      assert.equal(conn.closed, undefined);
      const secret = frames(s.down).filter((f) => requestHeader(f).api_key === 0 && Buffer.from(f).includes('secret.plans'));
      if (secret.length === 0) {
        assert.deepEqual(out.down, s.down);
        continue;
      }
      // nothing of the refused request reaches the broker: an ApiVersions v0 with its correlation id takes its place
      assert.ok(!Buffer.from(out.down).includes('secret.plans'));
      const sent = frames(out.down).map(requestHeader);
      const corr = requestHeader(secret[0]!).correlation_id;
      assert.deepEqual(sent.find((r) => r.correlation_id === corr), { api_key: 18, api_version: 0, correlation_id: corr, client_id: null });
      // the client gets Kafka's own answer
      const answer = frames(out.up).find((f) => new DataView(f.buffer, f.byteOffset).getInt32(4) === corr)!;
      const version = reqs.find((r) => r.correlation_id === corr)!.api_version;
      const d = (await kafkajsDecoder(`produce/v${version}`)(Buffer.from(answer.subarray(8)))) as { topics: { topicName: string; partitions: { errorCode: number }[] }[] };
      assert.equal(d.topics[0]!.topicName, 'secret.plans');
      assert.ok(d.topics[0]!.partitions.length > 0);
      for (const p of d.topics[0]!.partitions) assert.equal(p.errorCode, 29);
      refused++;
    }
    assert.equal(refused, 1);
    assert.equal(plugin.metrics()['kafka.refused.acl_produce'], 1);
    assert.ok(packetLog(plugin).some((p) => p.api === 'Produce' && p.decision === 'refuse' && p.reason === 'acl_produce'));
  });

  it('a produce mixing allowed and denied topics: the denied ones are cut out and answered inside the broker\'s response', async () => {
    const produceV7 = require('kafkajs/src/protocol/requests/produce/v7/request') as (o: object) => { apiKey: number; apiVersion: number; encode(): Promise<unknown> };
    const frameRequest = require('kafkajs/src/protocol/request') as (o: object) => Promise<{ buffer: Buffer }>;
    const request = produceV7({
      acks: -1, timeout: 1000, compression: 0,
      topicData: [
        { topic: 'orders.a', partitions: [{ partition: 0, messages: [{ key: 'k', value: 'v' }] }] },
        { topic: 'secret.b', partitions: [{ partition: 0, messages: [{ key: 'k', value: 'hidden' }] }, { partition: 1, messages: [{ value: 'h2' }] }] },
      ],
    });
    const bytes = (await frameRequest({ correlationId: 7, clientId: 'mixed', request })).buffer;
    const plugin = await kafkaPlugin({ acl: { produce: [{ topic: { prefix: 'secret.' }, action: 'deny' }] } });
    const conn = plugin.newConnection();
    const sent = conn.downstream(bytes).forwarded;
    assert.ok(!Buffer.from(sent).includes('secret.b') && !Buffer.from(sent).includes('hidden'));
    assert.ok(Buffer.from(sent).includes('orders.a'));
    assert.equal(new DataView(sent.buffer, sent.byteOffset).getInt32(0), sent.length - 4, 'size prefix recomputed');
    // the broker answers for orders.a only (a Produce v7 response, as a broker writes it)
    const topic = Buffer.from('orders.a');
    const body = Buffer.concat([
      Buffer.from([0, 0, 0, 7]), // correlation id
      Buffer.from([0, 0, 0, 1, 0, topic.length]), topic,
      Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.alloc(8, 0), Buffer.alloc(8, 0xff), Buffer.alloc(8, 0),
      Buffer.from([0, 0, 0, 0]), // throttle
    ]);
    const response = Buffer.concat([Buffer.from([0, 0, 0, body.length]), body]);
    const answer = conn.upstream(response).forwarded;
    const d = (await kafkajsDecoder('produce/v7')(Buffer.from(answer.subarray(8)))) as { topics: { topicName: string; partitions: { partition: number; errorCode: number }[] }[] };
    const byTopic = Object.fromEntries(d.topics.map((t) => [t.topicName, t.partitions.map((p) => [p.partition, p.errorCode])]));
    assert.deepEqual(byTopic, { 'secret.b': [[0, 29], [1, 29]], 'orders.a': [[0, 0]] });
    assert.equal(conn.closed, undefined);
  });

  it('rules match on client id and SASL PLAIN user; the first matching rule decides', async () => {
    const frameRequest = require('kafkajs/src/protocol/request') as (o: object) => Promise<{ buffer: Buffer }>;
    const encode = (path: string, o: object, corr: number, clientId = 'app-1') =>
      frameRequest({ correlationId: corr, clientId, request: (require(`kafkajs/src/protocol/requests/${path}/request`) as (o: object) => object)(o) }).then((r) => r.buffer);
    const produce = (topic: string, corr: number, clientId?: string) =>
      encode('produce/v3', { acks: 1, timeout: 100, topicData: [{ topic, partitions: [{ partition: 0, messages: [{ value: 'x' }] }] }] }, corr, clientId);
    const settings = {
      acl: {
        default: 'deny',
        produce: [
          { user: { exact: 'alice' }, topic: { prefix: 'team-a.' }, action: 'allow' },
          { client_id: { regex: 'ops-[0-9]+' }, action: 'allow' },
        ],
      },
    };
    const plugin = await kafkaPlugin(settings);
    const verdict = (conn: ReturnType<typeof plugin.newConnection>, bytes: Buffer) => {
      const out = conn.downstream(bytes).forwarded;
      return new DataView(out.buffer, out.byteOffset).getInt16(4) === 0 ? 'forward' : 'refuse';
    };
    const ops = plugin.newConnection();
    assert.equal(verdict(ops, await produce('anything', 1, 'ops-42')), 'forward');
    const anon = plugin.newConnection();
    assert.equal(verdict(anon, await produce('team-a.x', 1)), 'refuse');
    // SASL PLAIN: handshake v1, then authenticate with authzid NUL user NUL password
    const alice = plugin.newConnection();
    alice.downstream(await encode('saslHandshake/v1', { mechanism: 'PLAIN' }, 1));
    alice.upstream(Buffer.from([0, 0, 0, 10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
    // kafkajs hands SaslAuthenticate its bytes already length-prefixed (as its PLAIN mechanism does)
    const plain = Buffer.from('\0alice\0secret');
    const authBytes = Buffer.concat([Buffer.from([0, 0, 0, plain.length]), plain]);
    alice.downstream(await encode('saslAuthenticate/v1', { authBytes }, 2));
    alice.upstream(Buffer.concat([Buffer.from([0, 0, 0, 20, 0, 0, 0, 2, 0, 0, 0xff, 0xff]), Buffer.from([0, 0, 0, 0]), Buffer.alloc(8, 0)]));
    assert.equal(verdict(alice, await produce('team-a.orders', 3)), 'forward');
    assert.equal(verdict(alice, await produce('team-b.orders', 4)), 'refuse');
    assert.equal(alice.closed, undefined);
    assert.equal(plugin.metrics()['kafka.refused.acl_produce'], 2);
  });

  it('a denied API key gets its own response shape with the authorization error', async () => {
    const plugin = await kafkaPlugin({ acl: { deny_api_keys: ['FindCoordinator'] }, log_packets: true });
    for (const c of fixture('kafkajs-4.2')) {
      const s = streams(c);
      const reqs = frames(s.down).map(requestHeader);
      const conn = plugin.newConnection();
      const out = feed(conn, c);
      for (const r of reqs.filter((x) => x.api_key === 10)) {
        const answer = frames(out.up).find((f) => new DataView(f.buffer, f.byteOffset).getInt32(4) === r.correlation_id)!;
        const d = (await kafkajsDecoder(`findCoordinator/v${r.api_version}`)(Buffer.from(answer.subarray(8)))) as { errorCode: number };
        assert.equal(d.errorCode, 30); // GROUP_AUTHORIZATION_FAILED
        assert.ok(!frames(out.down).some((f) => requestHeader(f).api_key === 10), 'no FindCoordinator reaches the broker');
      }
    }
    assert.ok(plugin.metrics()['kafka.refused.api_key']! >= 1);
  });
});

describe('kafka filter framing under every chunking', () => {
  const settings = { ...REWRITE, topic_metrics: ['orders.'], acl: { produce: [{ topic: { prefix: 'secret.' }, action: 'deny' }] } };
  for (const name of FIXTURE_NAMES) {
    it(`${name}: the same output whatever the chunk size, and at every split point of each segment`, async () => {
      const whole = await kafkaPlugin(settings);
      const convs = fixture(name);
      const expected = convs.map((c) => feed(whole.newConnection(), c));
      for (const chunk of [1, 2, 3, 5, 13, 64]) {
        const plugin = await kafkaPlugin(settings);
        convs.forEach((c, i) => {
          const out = feed(plugin.newConnection(), c, chunk);
          assert.deepEqual(out, expected[i], `${c.client} in ${chunk}-byte chunks`);
        });
      }
      // every split point: each segment cut in two at every offset, in turn (the largest conversation of at most 1,500 bytes: seconds, not minutes)
      const bytes = (x: (typeof convs)[number]) => streams(x).down.length + streams(x).up.length;
      const c = convs.filter((x) => bytes(x) <= 1500).reduce((a, b) => (bytes(a) >= bytes(b) ? a : b));
      // a fresh VM for both (topic ids learned from other conversations' Metadata would change the verdicts)
      const want = feed((await kafkaPlugin(settings)).newConnection(), c);
      const plugin = await kafkaPlugin(settings);
      let splits = 0;
      c.segments.forEach((seg, si) => {
        for (let k = 1; k < seg.data.length; k++) {
          const segments = [...c.segments.slice(0, si), { ...seg, data: seg.data.subarray(0, k) }, { ...seg, data: seg.data.subarray(k) }, ...c.segments.slice(si + 1)];
          assert.deepEqual(feed(plugin.newConnection(), { ...c, segments }), want, `segment ${si} split at ${k}`);
          splits++;
        }
      });
      assert.ok(splits > 100);
    });
  }
});

export { concat };

describe('kafka filter routing', () => {
  const routes = [{ match: { client_id: { prefix: 'batch-' } }, cluster: 'kafka-batch' }, { cluster: 'kafka-all' }];
  it('the bootstrap listener holds a connection until its first request and routes it by client id', async () => {
    const plugin = await kafkaPlugin({ routes });
    const c = fixture('kafkajs-4.2')[0]!;
    const first = frames(streams(c).down)[0]!;
    const conn = plugin.newConnection();
    assert.equal(conn.newConnectionAction, 'pause');
    conn.downstream(first);
    assert.equal(conn.upstreamCluster, 'kafka-all'); // client id fixture-kafkajs
    const other = plugin.newConnection();
    const renamed = Buffer.from(first);
    renamed.set(Buffer.from('batch-'), 14); // client id "fixture-kafkajs" → "batch-e-kafkajs" (same length)
    other.downstream(renamed);
    assert.equal(other.upstreamCluster, 'kafka-batch');
  });

  it('a per-broker listener never routes (its connections go to its broker)', async () => {
    const plugin = await kafkaPlugin({ routes, listener_broker_id: 1, advertise: 'envoy.example', brokers: [{ id: 1, port: 19101, cluster: 'kafka-1' }] });
    const conn = plugin.newConnection();
    assert.equal(conn.newConnectionAction, 'continue');
  });
});

describe('kafka filter SASL v0', () => {
  it('after a SaslHandshake v0 the raw SASL tokens pass as they are (empty ones too), counted', async () => {
    const plugin = await kafkaPlugin({});
    const conn = plugin.newConnection();
    // SaslHandshake v0 request: header v1 (key 17, version 0, correlation 1, client id "c"), mechanism "PLAIN"
    const body = Buffer.concat([Buffer.from([0, 17, 0, 0, 0, 0, 0, 1, 0, 1]), Buffer.from('c'), Buffer.from([0, 5]), Buffer.from('PLAIN')]);
    conn.downstream(Buffer.concat([Buffer.from([0, 0, 0, body.length]), body]));
    // response v0: correlation 1, ErrorCode 0, mechanisms ["PLAIN"]
    const resp = Buffer.concat([Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 5]), Buffer.from('PLAIN')]);
    conn.upstream(Buffer.concat([Buffer.from([0, 0, 0, resp.length]), resp]));
    // raw token: \0user\0pass, then the broker's empty token
    const token = Buffer.from('\0user\0pass');
    const out = conn.downstream(Buffer.concat([Buffer.from([0, 0, 0, token.length]), token])).forwarded;
    assert.equal(out.length, token.length + 4);
    assert.equal(conn.upstream(Buffer.from([0, 0, 0, 0])).forwarded.length, 4);
    assert.equal(conn.closed, undefined);
    assert.equal(plugin.metrics()['kafka.sasl_v0_tokens'], 1);
  });
});
