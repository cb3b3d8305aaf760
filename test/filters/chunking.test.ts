// Chunking must not change what a framed filter forwards or counts: the kafka
// filter (in the in-process host) over recorded client conversations and over
// a stream of large Produce requests (64 KB and 200 KB: split frames held
// across many callbacks), fed whole, in 1-byte pieces and in random pieces
// (seeded), gives byte-identical output both ways and the same counters —
// with a policy that passes the requests and one that refuses them (the
// filter answers; the split request is dropped).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FilterConnection } from '../../xds-server/wasm-host/index.ts';
import { concat, fixture, kafkaPlugin } from '../kafka/filter-support.ts';
import { rng } from '../support/random.ts';
import { padded, producePair } from './kafka-big-produce.ts';

interface Segment { direction: 'downstream' | 'upstream'; data: Uint8Array }
type Cutter = (data: Uint8Array) => Uint8Array[];

const whole: Cutter = (data) => [data];
const bytewise: Cutter = (data) => Array.from({ length: data.length }, (_, i) => data.subarray(i, i + 1));
function randomly(seed: number, maxPiece: number): Cutter {
  const next = rng(seed);
  return (data) => {
    const out: Uint8Array[] = [];
    for (let at = 0; at < data.length;) {
      // mostly small pieces, sometimes large ones (a head split near its end, several frames in one callback)
      const n = 1 + Math.floor((next() < 0.7 ? next() * 64 : next() * maxPiece));
      out.push(data.subarray(at, at + n));
      at += n;
    }
    return out;
  };
}

/** Feeds the segments through the connection, each cut by `cut`; what it let through each way. */
function run(conn: FilterConnection, segments: Segment[], cut: Cutter): { down: Uint8Array; up: Uint8Array; closed: unknown } {
  const down: Uint8Array[] = [];
  const up: Uint8Array[] = [];
  for (const seg of segments) {
    for (const piece of cut(seg.data)) {
      const r = seg.direction === 'downstream' ? conn.downstream(piece) : conn.upstream(piece);
      (seg.direction === 'downstream' ? down : up).push(r.forwarded);
      if (r.closed) return { down: concat(down), up: concat(up), closed: r.closed };
    }
  }
  return { down: concat(down), up: concat(up), closed: undefined };
}

/** Large Produce requests (fresh correlation ids), each answered, with small recorded conversation bytes between them. */
function bigProduceSegments(sizes: number[]): Segment[] {
  const pair = producePair();
  const out: Segment[] = [];
  sizes.forEach((size, i) => {
    const q = padded(pair.request, size - pair.request.length);
    const r = Uint8Array.from(pair.response);
    new DataView(q.buffer).setInt32(8, 100 + i);
    new DataView(r.buffer).setInt32(4, 100 + i);
    out.push({ direction: 'downstream', data: q }, { direction: 'upstream', data: r });
  });
  // two requests in one buffer, the second one split from it
  const a = padded(pair.request, 5000);
  const b = padded(pair.request, 70000);
  new DataView(a.buffer).setInt32(8, 900);
  new DataView(b.buffer).setInt32(8, 901);
  const ra = Uint8Array.from(pair.response);
  const rb = Uint8Array.from(pair.response);
  new DataView(ra.buffer).setInt32(4, 900);
  new DataView(rb.buffer).setInt32(4, 901);
  out.push({ direction: 'downstream', data: concat([a, b]) }, { direction: 'upstream', data: concat([ra, rb]) });
  return out;
}

const POLICIES: [string, object][] = [
  ['passing', { topic_metrics: ['orders.'] }],
  ['refusing produce', { topic_metrics: ['orders.'], acl: { produce: [{ topic: { prefix: 'orders.' }, action: 'deny' }] } }],
];

const CUTS: [string, () => Cutter][] = [
  ['1-byte pieces', () => bytewise],
  ['random pieces (seed 7)', () => randomly(7, 9000)],
  ['random pieces (seed 99)', () => randomly(99, 40000)],
];

describe('framed-stream layer: chunking changes neither output nor counters (kafka filter)', () => {
  const conversations: [string, Segment[]][] = [
    ['kafkajs-4.2 conversations', fixture('kafkajs-4.2').flatMap((c) => c.segments as Segment[])],
    ['large Produce requests (64 KB, 200 KB, 5 KB + 70 KB in one buffer)', bigProduceSegments([65536, 200000, 65536])],
  ];
  for (const [policyName, settings] of POLICIES) {
    for (const [streamName, segments] of conversations) {
      it(`${streamName}, ${policyName}`, async () => {
        const ref = await kafkaPlugin(settings, 'info', false);
        const want = run(ref.newConnection(), segments, whole);
        const wantCounters = ref.metrics();
        assert.equal(want.closed, undefined, 'the whole stream passes without a close');
        assert.ok(want.down.length > 0 && want.up.length > 0);
        const sent = segments.filter((s) => s.direction === 'downstream').reduce((n, s) => n + s.data.length, 0);
        // the policy does what its name says (else the refusing case would test nothing new)
        if (policyName.startsWith('refusing')) assert.ok(want.down.length < sent, 'refused requests do not reach the broker');
        else assert.equal(want.down.length, sent);
        for (const [cutName, cutter] of CUTS) {
          const plugin = await kafkaPlugin(settings, 'info', false);
          const got = run(plugin.newConnection(), segments, cutter());
          assert.equal(got.closed, undefined, `${cutName}: no close`);
          assert.ok(Buffer.from(got.down).equals(Buffer.from(want.down)), `${cutName}: downstream bytes forwarded differ (${got.down.length} vs ${want.down.length})`);
          assert.ok(Buffer.from(got.up).equals(Buffer.from(want.up)), `${cutName}: upstream bytes forwarded differ (${got.up.length} vs ${want.up.length})`);
          assert.deepEqual(plugin.metrics(), wantCounters, `${cutName}: counters`);
        }
      });
    }
  }
});
