// The kafka filter in the in-process host on messages it walks in windows or
// answers itself, built here with kafkajs's own encoders (record batches,
// Produce/Fetch/JoinGroup requests) and a few lines of Kafka's flexible
// encoding (ShareFetch/ShareAcknowledge): leader addresses in ShareFetch and
// ShareAcknowledge responses, requests over limits.max_request_bytes answered
// with Kafka's own errors while their bodies are dropped unread, per-topic
// fetch metrics of a > 1 MiB Fetch response fed in many chunks, and the raw
// SASL exchange after a SaslHandshake v0.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { concat, frames, kafkaPlugin, packetLog } from './filter-support.ts';
import type { WasmPlugin } from '../../xds-server/wasm-host/index.ts';

const require = createRequire(import.meta.url);
type Decode = (body: Buffer) => Promise<Record<string, unknown>>;
const kafkajsDecoder = (path: string): Decode => (require(`kafkajs/src/protocol/requests/${path}/response`) as { decode: Decode }).decode;
const frameRequest = require('kafkajs/src/protocol/request') as (o: object) => Promise<{ buffer: Buffer }>;
const encodeRequest = (path: string, o: object, corr: number, clientId = 'app-1'): Promise<Buffer> =>
  frameRequest({ correlationId: corr, clientId, request: (require(`kafkajs/src/protocol/requests/${path}/request`) as (o: object) => object)(o) }).then((r) => r.buffer);
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0') as { RecordBatch: (o: object) => Promise<{ buffer: Buffer }> };
const Record = require('kafkajs/src/protocol/recordBatch/record/v0') as (o: object) => unknown;

// ---- a few of Kafka's wire types
const i16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const i32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const i64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigInt64BE(BigInt(n)); return b; };
const uvarint = (n: number) => { const out: number[] = []; while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n >>>= 7; } out.push(n); return Buffer.from(out); };
const str = (s: string | null) => (s === null ? i16(-1) : Buffer.concat([i16(Buffer.byteLength(s)), Buffer.from(s)]));
const cstr = (s: string | null) => (s === null ? uvarint(0) : Buffer.concat([uvarint(Buffer.byteLength(s) + 1), Buffer.from(s)]));
const carray = (items: Buffer[]) => Buffer.concat([uvarint(items.length + 1), ...items]);
const array = (items: Buffer[]) => Buffer.concat([i32(items.length), ...items]);
const NO_TAGS = uvarint(0);
const sized = (body: Buffer) => Buffer.concat([i32(body.length), body]);
/** A request frame with header v2 (flexible) or v1. */
const request = (key: number, version: number, corr: number, body: Buffer, flexible = true) =>
  sized(Buffer.concat([i16(key), i16(version), i32(corr), str('share-1'), flexible ? NO_TAGS : Buffer.alloc(0), body]));

const BROKERS = [{ id: 1, port: 19101, cluster: 'kafka-1' }, { id: 2, port: 19102, cluster: 'kafka-2' }];
const REWRITE = { advertise: 'envoy.example', brokers: BROKERS };

/** The filter's close line of the plugin's (only) closed connection. */
function closeLine(plugin: WasmPlugin): string {
  const lines = plugin.record.logs.filter((l) => l.message.startsWith('kafka: connection closed ')).map((l) => l.message);
  assert.equal(lines.length, 1, lines.join('\n'));
  return lines[0]!;
}

/** Feeds bytes in `chunk`-byte pieces; returns what the filter let through. */
function feedChunks(send: (b: Uint8Array) => { forwarded: Uint8Array }, bytes: Uint8Array, chunk: number): { out: Uint8Array; lagMax: number } {
  const parts: Uint8Array[] = [];
  let fed = 0;
  let passed = 0;
  let lagMax = 0;
  for (let i = 0; i < bytes.length; i += chunk) {
    const piece = bytes.subarray(i, i + chunk);
    const r = send(piece);
    fed += piece.length;
    passed += r.forwarded.length;
    parts.push(r.forwarded);
    lagMax = Math.max(lagMax, fed - passed);
  }
  return { out: concat(parts), lagMax };
}

describe('kafka filter: ShareFetch and ShareAcknowledge leader addresses', () => {
  const topicId = Buffer.alloc(16, 7);
  const endpoints = (nodes: { id: number; host: string; port: number }[]) =>
    carray(nodes.map((n) => Buffer.concat([i32(n.id), cstr(n.host), i32(n.port), cstr('rack-a'), NO_TAGS])));
  const shareFetchResponse = (corr: number, records: Buffer, nodes: { id: number; host: string; port: number }[]) => {
    const partition = Buffer.concat([
      i32(0), i16(6), cstr(null), i16(0), cstr(null), // NOT_LEADER_OR_FOLLOWER
      i32(2), i32(5), NO_TAGS, // current leader
      uvarint(records.length + 1), records,
      carray([Buffer.concat([i64(0), i64(9), i16(1), NO_TAGS])]), // acquired records
      NO_TAGS,
    ]);
    const body = Buffer.concat([i32(0), i16(0), cstr(null), i32(30000), carray([Buffer.concat([topicId, carray([partition]), NO_TAGS])]), endpoints(nodes), NO_TAGS]);
    return sized(Buffer.concat([i32(corr), NO_TAGS, body]));
  };
  const shareAckResponse = (corr: number, nodes: { id: number; host: string; port: number }[]) => {
    const partition = Buffer.concat([i32(1), i16(6), cstr(null), i32(1), i32(3), NO_TAGS, NO_TAGS]);
    const body = Buffer.concat([i32(0), i16(0), cstr(null), carray([Buffer.concat([topicId, carray([partition]), NO_TAGS])]), endpoints(nodes), NO_TAGS]);
    return sized(Buffer.concat([i32(corr), NO_TAGS, body]));
  };
  const asBroker = [{ id: 1, host: 'broker1.kafka.invalid', port: 9092 }, { id: 2, host: 'broker2.kafka.invalid', port: 9094 }];
  const asEnvoy = [{ id: 1, host: 'envoy.example', port: 19101 }, { id: 2, host: 'envoy.example', port: 19102 }];

  it('rewrites NodeEndpoints of ShareFetch (records pass intact) and ShareAcknowledge responses, sizes recomputed', async () => {
    const plugin = await kafkaPlugin({ ...REWRITE, log_packets: true });
    const conn = plugin.newConnection();
    const records = (await RecordBatch({ records: [Record({ key: Buffer.from('k'), value: Buffer.from('v'.repeat(300)) })] })).buffer;
    conn.downstream(request(78, 1, 5, Buffer.from([0, 0, 0])));
    const fetched = conn.upstream(shareFetchResponse(5, records, asBroker)).forwarded;
    assert.deepEqual(Buffer.from(fetched), shareFetchResponse(5, records, asEnvoy));
    conn.downstream(request(79, 1, 6, Buffer.from([0, 0])));
    const acked = conn.upstream(shareAckResponse(6, asBroker)).forwarded;
    assert.deepEqual(Buffer.from(acked), shareAckResponse(6, asEnvoy));
    assert.equal(conn.closed, undefined);
    assert.equal(plugin.metrics()['kafka.brokers.rewritten'], 4);
    const logged = packetLog(plugin).filter((p) => p.type === 'response');
    assert.deepEqual(logged.map((p) => [p.api, p.decision]), [['ShareFetch', 'rewrite'], ['ShareAcknowledge', 'rewrite']]);
  });

  it('a ShareFetch response over limits.max_response_bytes passes in windows: NodeEndpoints counted and logged, not held', async () => {
    const plugin = await kafkaPlugin({ ...REWRITE, limits: { max_response_bytes: 4096 } });
    const conn = plugin.newConnection();
    const batch = (await RecordBatch({ records: [Record({ value: Buffer.alloc(20000, 1) })] })).buffer;
    conn.downstream(request(78, 1, 5, Buffer.from([0, 0, 0])));
    const bytes = shareFetchResponse(5, batch, asBroker);
    const { out, lagMax } = feedChunks((b) => conn.upstream(b), bytes, 1000);
    assert.deepEqual(Buffer.from(out), bytes);
    assert.ok(lagMax <= 1000, `held ${lagMax} bytes`);
    assert.equal(conn.closed, undefined);
    assert.equal(plugin.metrics()['kafka.brokers.unrewritten'], 1);
    assert.equal(plugin.record.logs.filter((l) => /ShareFetch response .* passed unrewritten/.test(l.message)).length, 1);
  });
});

describe('kafka filter: a request over limits.max_request_bytes gets Kafka\'s own answer', () => {
  const big = async (corr: number, acks: number) => encodeRequest('produce/v7', {
    acks, timeout: 1000, compression: 0,
    topicData: [
      { topic: 'orders.big', partitions: [{ partition: 0, messages: [{ key: 'k', value: 'x'.repeat(40000) }] }, { partition: 3, messages: [{ value: 'y'.repeat(30000) }] }] },
      { topic: 'orders.small', partitions: [{ partition: 1, messages: [{ value: 'z' }] }] },
    ],
  }, corr);

  for (const chunk of [0, 997]) {
    it(`Produce: MESSAGE_TOO_LARGE for every partition, the body dropped unread, the connection open (${chunk ? `${chunk}-byte chunks` : 'one chunk'})`, async () => {
      const plugin = await kafkaPlugin({ limits: { max_request_bytes: 16384 }, log_packets: true });
      const conn = plugin.newConnection();
      const bytes = await big(7, -1);
      const { out } = feedChunks((b) => conn.downstream(b), bytes, chunk || bytes.length);
      // the broker sees only the placeholder (ApiVersions v0 with the same correlation id)
      assert.deepEqual(Buffer.from(out), Buffer.from([0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff]));
      const answer = conn.upstream(Buffer.concat([i32(6), i32(7), i16(0)])).forwarded;
      const d = (await kafkajsDecoder('produce/v7')(Buffer.from(answer.subarray(8)))) as { topics: { topicName: string; partitions: { partition: number; errorCode: number }[] }[] };
      assert.deepEqual(d.topics.map((t) => [t.topicName, t.partitions.map((p) => [p.partition, p.errorCode])]),
        [['orders.big', [[0, 10], [3, 10]]], ['orders.small', [[1, 10]]]]);
      // the next request passes as usual
      const meta = await encodeRequest('metadata/v4', { topics: [], allowAutoTopicCreation: false }, 8);
      assert.deepEqual(Buffer.from(conn.downstream(meta).forwarded), meta);
      assert.equal(conn.closed, undefined);
      assert.equal(plugin.metrics()['kafka.refused.request_too_large'], 1);
      assert.ok(packetLog(plugin).some((p) => p.api === 'Produce' && p.decision === 'refuse' && p.reason === 'request_too_large' && p.size === bytes.length));
      // two requests (the Produce walked in windows counts once) and the placeholder's answer
      conn.close();
      assert.match(closeLine(plugin), / frames_in=2 frames_out=1\b/);
    });
  }

  it('Produce with acks=0: dropped, no answer owed', async () => {
    const plugin = await kafkaPlugin({ limits: { max_request_bytes: 16384 } });
    const conn = plugin.newConnection();
    const { out } = feedChunks((b) => conn.downstream(b), await big(9, 0), 4096);
    assert.equal(out.length, 0);
    const meta = await encodeRequest('metadata/v4', { topics: [], allowAutoTopicCreation: false }, 10);
    assert.deepEqual(Buffer.from(conn.downstream(meta).forwarded), meta);
    assert.equal(conn.closed, undefined);
  });

  it('another API: its own response with POLICY_VIOLATION (JoinGroup with oversize metadata)', async () => {
    const plugin = await kafkaPlugin({ limits: { max_request_bytes: 1024 } });
    const conn = plugin.newConnection();
    const join = await encodeRequest('joinGroup/v0', {
      groupId: 'g1', sessionTimeout: 30000, memberId: '', protocolType: 'consumer',
      groupProtocols: [{ name: 'roundrobin', metadata: Buffer.alloc(5000, 1) }],
    }, 11);
    const { out } = feedChunks((b) => conn.downstream(b), join, 512);
    assert.equal(frames(out).length, 1);
    assert.equal(new DataView(out.buffer, out.byteOffset).getInt16(4), 18, 'the placeholder');
    const answer = conn.upstream(Buffer.concat([i32(6), i32(11), i16(0)])).forwarded;
    const d = (await kafkajsDecoder('joinGroup/v0')(Buffer.from(answer.subarray(8)))) as { errorCode: number };
    assert.equal(d.errorCode, 44);
    assert.equal(conn.closed, undefined);
  });
});

describe('kafka filter: fetch metrics of a response over 1 MiB, walked in windows', () => {
  it('bytes, batches and records per topic prefix, the response passing as it arrives (many chunk sizes)', async () => {
    // three topics, two partitions each, many record batches (a partial last batch in one partition, as brokers send)
    const topics = [{ name: 'orders.eu', parts: 2 }, { name: 'orders.us', parts: 2 }, { name: 'audit.log', parts: 2 }];
    const expected: Record<string, { bytes: number; batches: number; records: number }> = {};
    const topicBytes: Buffer[] = [];
    let offset = 0;
    for (const t of topics) {
      const parts: Buffer[] = [];
      const e = { bytes: 0, batches: 0, records: 0 };
      for (let p = 0; p < t.parts; p++) {
        const batches: Buffer[] = [];
        for (let b = 0; b < 14; b++) {
          const n = 1 + ((b + p) % 4);
          const records = Array.from({ length: n }, (_, i) => Record({ offsetDelta: i, key: Buffer.from(`k${i}`), value: Buffer.alloc(9000 + 37 * b, b) }));
          batches.push((await RecordBatch({ records, lastOffsetDelta: n - 1, firstOffset: BigInt(offset) as unknown as object })).buffer);
          offset += n;
          e.batches++;
          e.records += n;
        }
        let set = Buffer.concat(batches);
        if (t.name === 'orders.us' && p === 1) set = Buffer.concat([set, batches[0]!.subarray(0, 700)]); // partial trailing batch: not counted
        e.bytes += set.length;
        parts.push(Buffer.concat([i32(p), i16(0), i64(offset), i64(offset), i64(0), array([Buffer.concat([i64(1), i64(0)])]), i32(-1), i32(set.length), set]));
      }
      expected[t.name] = e;
      topicBytes.push(Buffer.concat([str(t.name), array(parts)]));
    }
    const response = sized(Buffer.concat([i32(3), i32(0), i16(0), i32(0), array(topicBytes)]));
    assert.ok(response.length > 1 << 20, `${response.length} bytes`);
    const fetch = await encodeRequest('fetch/v11', {
      replicaId: -1, maxWaitTime: 100, minBytes: 1, maxBytes: 10 << 20, isolationLevel: 1, sessionId: 0, sessionEpoch: -1,
      topics: topics.map((t) => ({ topic: t.name, partitions: [{ partition: 0, fetchOffset: '0', maxBytes: 1 << 20 }, { partition: 1, fetchOffset: '0', maxBytes: 1 << 20 }] })),
      rackId: '',
    }, 3);
    for (const chunk of [response.length, 65536, 4093, 577]) {
      const plugin = await kafkaPlugin({ topic_metrics: ['orders.', 'orders.eu', 'audit.'], limits: { max_response_bytes: 1 << 20 } });
      const conn = plugin.newConnection();
      conn.downstream(fetch);
      const { out, lagMax } = feedChunks((b) => conn.upstream(b), response, chunk);
      assert.equal(conn.closed, undefined);
      assert.deepEqual(Buffer.from(out), response);
      // never held whole: at most a window (a topic/partition head or a batch head) waits for the next chunk
      if (chunk < response.length) assert.ok(lagMax < 2 * chunk + 200, `chunk ${chunk}: up to ${lagMax} bytes held`);
      const m = plugin.metrics();
      const sum = (names: string[], k: 'bytes' | 'batches' | 'records') => names.reduce((n, t) => n + expected[t]![k], 0);
      for (const [prefix, label, names] of [['orders.', 'orders_', ['orders.eu', 'orders.us']], ['orders.eu', 'orders_eu', ['orders.eu']], ['audit.', 'audit_', ['audit.log']]] as const) {
        assert.equal(m[`kafka.topic.${label}.fetch_bytes`], sum([...names], 'bytes'), `${prefix} bytes (chunk ${chunk})`);
        assert.equal(m[`kafka.topic.${label}.fetch_batches`], sum([...names], 'batches'), `${prefix} batches (chunk ${chunk})`);
        assert.equal(m[`kafka.topic.${label}.fetch_records`], sum([...names], 'records'), `${prefix} records (chunk ${chunk})`);
      }
      assert.equal(m['kafka.fetch.unmetered_responses'] ?? 0, 0);
      assert.equal(m['kafka.response_error.6'] ?? 0, 0);
      // the close line counts messages, not the windows they were walked in
      conn.close();
      assert.match(closeLine(plugin), / frames_in=1 frames_out=1\b/, `chunk ${chunk}`);
    }
    // the response is still what kafkajs reads: every record of every topic
    const d = (await kafkajsDecoder('fetch/v11')(response.subarray(8))) as { responses: { topicName: string; partitions: { messages: unknown[] }[] }[] };
    for (const t of d.responses) assert.equal(t.partitions.reduce((n, p) => n + p.messages.length, 0), expected[t.topicName]!.records);
  });
});

describe('kafka filter: SASL after a SaslHandshake v0', () => {
  const handshake = (mechanism: string) => sized(Buffer.concat([i16(17), i16(0), i32(1), str('c'), str(mechanism)]));
  const handshakeOk = (mechanism: string) => sized(Buffer.concat([i32(1), i16(0), array([str(mechanism)])]));
  const produce = (topic: string, corr: number) =>
    encodeRequest('produce/v3', { acks: 1, timeout: 100, topicData: [{ topic, partitions: [{ partition: 0, messages: [{ value: 'x' }] }] }] }, corr, 'c');
  const refused = (out: Uint8Array) => new DataView(out.buffer, out.byteOffset).getInt16(4) !== 0;

  it('PLAIN: the raw token gives the user for ACLs, the broker\'s raw token passes, then Kafka framing resumes', async () => {
    const plugin = await kafkaPlugin({ acl: { default: 'deny', produce: [{ user: { exact: 'alice' }, topic: { prefix: 'team-a.' }, action: 'allow' }] }, log_packets: true });
    const conn = plugin.newConnection();
    conn.downstream(handshake('PLAIN'));
    conn.upstream(handshakeOk('PLAIN'));
    const token = sized(Buffer.from('\0alice\0secret'));
    for (const piece of [token.subarray(0, 3), token.subarray(3, 9), token.subarray(9)]) conn.downstream(piece);
    assert.deepEqual(Buffer.from(conn.upstream(Buffer.from([0, 0, 0, 0])).forwarded), Buffer.from([0, 0, 0, 0]));
    assert.ok(!refused(conn.downstream(await produce('team-a.orders', 2)).forwarded));
    assert.ok(refused(conn.downstream(await produce('team-b.orders', 3)).forwarded));
    assert.equal(conn.closed, undefined);
    assert.equal(plugin.metrics()['kafka.sasl_v0_tokens'], 1);
    assert.equal(plugin.metrics()['kafka.sasl_v0_unparsed'] ?? 0, 0);
    assert.ok(packetLog(plugin).some((p) => p.type === 'sasl_token' && p.user === 'alice'));
  });

  it('SCRAM: two raw rounds, then framing resumes; GSSAPI: the rest passes unparsed', async () => {
    const plugin = await kafkaPlugin({});
    const scram = plugin.newConnection();
    scram.downstream(handshake('SCRAM-SHA-256'));
    scram.upstream(handshakeOk('SCRAM-SHA-256'));
    for (const [c, s] of [['n,,n=bob,r=abc', 'r=abcdef,s=c2FsdA==,i=4096'], ['c=biws,r=abcdef,p=cHJvb2Y=', 'v=c2lnbmF0dXJl']]) {
      assert.equal(scram.downstream(sized(Buffer.from(c))).forwarded.length, c.length + 4);
      assert.equal(scram.upstream(sized(Buffer.from(s))).forwarded.length, s.length + 4);
    }
    const meta = await encodeRequest('metadata/v4', { topics: [], allowAutoTopicCreation: false }, 2);
    scram.downstream(meta);
    scram.upstream(sized(Buffer.concat([i32(2), i32(0), array([]), str(null), i32(-1), array([])])));
    assert.equal(scram.closed, undefined);
    assert.equal(plugin.metrics()['kafka.response.metadata.v4'], 1);
    const gss = plugin.newConnection();
    gss.downstream(handshake('GSSAPI'));
    gss.upstream(handshakeOk('GSSAPI'));
    gss.downstream(sized(Buffer.alloc(40, 9)));
    gss.upstream(Buffer.from([0, 0, 0, 0]));
    assert.equal(gss.closed, undefined);
    assert.equal(plugin.metrics()['kafka.sasl_v0_unparsed'], 1);
  });
});
