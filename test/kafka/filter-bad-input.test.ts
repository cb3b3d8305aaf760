// Malformed Kafka input closes that one connection with a counter and one
// log line (the layer's close line, naming the reason), forwards nothing of
// the bad frame, and leaves other connections alone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixture, frames, kafkaPlugin, streams } from './filter-support.ts';

const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const int16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
/** A Metadata v4 request for all topics (header v1: key, version, correlation id, client id). */
const metadata = (corr: number) => {
  const body = Buffer.concat([int16(3), int16(4), int32(corr), int16(1), Buffer.from('c'), int32(-1), Buffer.from([0])]);
  return Buffer.concat([int32(body.length), body]);
};

interface Case {
  name: string;
  down?: Buffer;
  up?: Buffer;
  counter: string;
  reason: RegExp;
  settings?: object;
}

const cases: Case[] = [
  { name: 'a negative size', down: int32(-5), counter: 'kafka.closed.bad_size', reason: /frame size -5/ },
  { name: 'a size too small for any request header', down: Buffer.concat([int32(3), Buffer.from([0, 3, 0])]), counter: 'kafka.closed.bad_size', reason: /frame size 3/ },
  { name: 'a huge size', down: Buffer.concat([int32(0x7fffffff), int16(0)]), counter: 'kafka.closed.bad_size', reason: /frame size 2147483647/ },
  // (a known API's oversize request is answered with its error instead: filter-windows.test.ts)
  { name: 'a size over limits.max_request_bytes of an API without a known answer', down: Buffer.concat([int32(5000), int16(300), int16(0), int32(1), int16(-1)]), counter: 'kafka.closed.request_too_large', reason: /API key 300 request of 5004 bytes is over limits.max_request_bytes/, settings: { limits: { max_request_bytes: 4096 } } },
  { name: 'a truncated header (client id longer than the frame)', down: Buffer.concat([int32(12), int16(3), int16(4), int32(1), int16(200), Buffer.from('ab')]), counter: 'kafka.closed.truncated_header', reason: /header does not fit/ },
  {
    name: 'a length that lies (the body runs into the next frame)',
    // Metadata v4 claiming one more byte than it has: the count of the topic array and the next frame's size blur
    down: (() => { const m = metadata(1); const lying = Buffer.from(m); lying.writeInt32BE(m.length - 4 + 3, 0); return Buffer.concat([lying, Buffer.from([0xff, 0xff, 0xff])]); })(),
    counter: 'kafka.closed.malformed_body', reason: /Metadata v4 request body does not parse/,
  },
  { name: 'a response to no request', up: Buffer.concat([int32(8), int32(99), int32(0)]), counter: 'kafka.closed.response_without_request', reason: /correlation id 99 but no request is waiting/ },
  { name: 'a response with the wrong correlation id', down: metadata(5), up: Buffer.concat([int32(8), int32(6), int32(0)]), counter: 'kafka.closed.response_without_request', reason: /correlation id 6 but the next request waiting is 5/ },
];

describe('kafka filter bad input', () => {
  for (const c of cases) {
    it(`${c.name}: closes the connection, counts it, logs one line`, async () => {
      const plugin = await kafkaPlugin(c.settings ?? {});
      const conn = plugin.newConnection();
      let forwardedUp = 0;
      if (c.down) {
        const r = conn.downstream(c.down);
        forwardedUp += r.forwarded.length;
      }
      if (c.up && !conn.closed) conn.upstream(c.up);
      assert.ok(conn.closed, 'the connection is closed');
      assert.equal(conn.closed!.reason, 'filter');
      const m = plugin.metrics();
      assert.equal(m[c.counter], 1, c.counter);
      assert.equal(m['kafka.closed_by_filter'], 1);
      if (!c.up) assert.equal(forwardedUp, 0, 'nothing of the bad frame went to the broker');
      const lines = plugin.record.logs.filter((l) => l.message.startsWith('kafka: connection closed'));
      assert.equal(lines.length, 1);
      assert.match(lines[0]!.message, c.reason);
      // another connection of the same plugin works
      const other = plugin.newConnection();
      const good = fixture('kcat-4.2')[0]!;
      const s = streams(good);
      const out = other.downstream(s.down);
      assert.equal(other.closed, undefined);
      assert.equal(out.forwarded.length, s.down.length);
      assert.ok(frames(s.down).length > 0);
    });
  }

  it('a client ending inside a frame: counted as truncated, not forwarded whole', async () => {
    const plugin = await kafkaPlugin({});
    const conn = plugin.newConnection();
    const m = metadata(1);
    conn.downstream(m.subarray(0, 10), true);
    assert.ok(conn.closed);
    assert.equal(plugin.metrics()['kafka.closed.truncated'], 1);
  });
});
