// Malformed and over-limit MQTT input: the filter closes that connection,
// bumps one counter, logs one line with the reason, forwards nothing of the
// bad packet, and never traps. Then a fuzz run (random and mutated frames).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fuzz } from './fuzz-core.ts';
import { connectPacket, gen } from './packets.ts';
import { replayMqtt, type ReplayStep } from './replay.ts';

const b = (...parts: Array<number[] | Uint8Array | string>) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p as number[]))));
const str = (s: Uint8Array | string) => {
  const bytes = typeof s === 'string' ? Buffer.from(s) : Buffer.from(s);
  return b([bytes.length >> 8, bytes.length & 255], bytes);
};
/** A raw PUBLISH QoS 0 with the given topic bytes (3.1.1). */
const rawPublish = (topic: Uint8Array | string, payload = 'x') => {
  const body = b(str(topic), payload);
  return b([0x30, body.length], body);
};
/** A CONNECT with arbitrary client id bytes. */
const rawConnect = (clientId: Uint8Array | string, level = 4) => {
  const body = b(str('MQTT'), [level, 0x02, 0, 30], level === 5 ? [0] : [], str(clientId));
  return b([0x10, body.length], body);
};

const CONNECT4 = gen(connectPacket(4, 'c'), 4);
const CONNECT5 = gen(connectPacket(5, 'c'), 5);

interface Case {
  name: string;
  steps: ReplayStep[];
  counter: string;
  /** Bytes that must have been forwarded (default: nothing, or the CONNECT when the bad packet comes after it). */
  forwarded?: Buffer;
  config?: object;
}

const down = (bytes: Uint8Array, endOfStream = false): ReplayStep => ({ dir: 'downstream', bytes, endOfStream });
const up = (bytes: Uint8Array): ReplayStep => ({ dir: 'upstream', bytes });

const CASES: Case[] = [
  { name: 'first packet is not CONNECT', steps: [down(gen({ cmd: 'publish', topic: 'a', payload: 'x', qos: 0 }, 4))], counter: 'malformed.first_not_connect' },
  { name: 'PINGREQ before CONNECT', steps: [down(b([0xc0, 0x00]))], counter: 'malformed.first_not_connect' },
  { name: '5-byte Remaining Length in CONNECT', steps: [down(b([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]))], counter: 'malformed.remaining_length' },
  { name: '5-byte Remaining Length after CONNECT', steps: [down(CONNECT4), down(b([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]))], counter: 'malformed.remaining_length', forwarded: CONNECT4 },
  { name: 'oversized Remaining Length (past max_packet_size)', steps: [down(CONNECT4), down(b([0x30, 0xff, 0xff, 0xff, 0x7f]))], counter: 'limit.packet_too_large', forwarded: CONNECT4, config: { limits: { max_packet_size: 1048576 } } },
  { name: 'CONNECT truncated by end of stream', steps: [down(CONNECT4.subarray(0, 9)), down(new Uint8Array(0), true)], counter: 'malformed.truncated_stream' },
  { name: 'CONNECT Remaining Length shorter than its fields', steps: [down(b([0x10, 8], str('MQTT'), [4, 2, 0, 30]))], counter: 'malformed.truncated' },
  { name: 'client id length past the end of CONNECT', steps: [down(b([0x10, 14], str('MQTT'), [4, 2, 0, 30], [0, 100], 'ab'))], counter: 'malformed.truncated' },
  { name: 'bytes after the last CONNECT field', steps: [down(b([0x10, 14], str('MQTT'), [4, 2, 0, 30], str('c'), [0]))], counter: 'malformed.trailing_bytes' },
  { name: 'PUBLISH topic length past the end of the packet', steps: [down(CONNECT4), down(b([0x30, 4, 0, 50, 0x61, 0x62]))], counter: 'malformed.truncated', forwarded: CONNECT4 },
  { name: 'Remaining Length past the end of the stream', steps: [down(CONNECT4), down(b([0x30, 100, 0, 1, 0x61]), true)], counter: 'malformed.truncated_stream', forwarded: CONNECT4 },
  { name: 'unknown protocol name', steps: [down(b([0x10, 13], str('MQTX'), [4, 2, 0, 30], str('c')))], counter: 'malformed.protocol' },
  { name: 'unknown protocol level', steps: [down(b([0x10, 13], str('MQTT'), [6, 2, 0, 30], str('c')))], counter: 'malformed.protocol' },
  { name: 'CONNECT reserved flag', steps: [down(b([0x10, 13], str('MQTT'), [4, 3, 0, 30], str('c')))], counter: 'malformed.connect_flags' },
  { name: 'will QoS without will flag', steps: [down(b([0x10, 13], str('MQTT'), [4, 0x0a, 0, 30], str('c')))], counter: 'malformed.connect_flags' },
  { name: '+ in the client id', steps: [down(rawConnect('dev+1'))], counter: 'limit.client_id_wildcard' },
  { name: '# in the client id', steps: [down(rawConnect('#'))], counter: 'limit.client_id_wildcard' },
  { name: 'client id longer than the limit', steps: [down(rawConnect('x'.repeat(24)))], counter: 'limit.client_id_too_long', config: { limits: { max_client_id_length: 23 } } },
  { name: 'invalid UTF-8 client id', steps: [down(rawConnect(b([0x61, 0xff])))], counter: 'malformed.utf8' },
  { name: 'U+0000 in the client id', steps: [down(rawConnect(b([0x61, 0x00])))], counter: 'malformed.utf8' },
  { name: 'non-minimal Remaining Length in a 5.0 CONNECT', steps: [down(b([0x10, 0x8e, 0x00], str('MQTT'), [5, 2, 0, 30, 0], str('c')))], counter: 'malformed.non_minimal_length' },
  { name: 'non-minimal Remaining Length after a 5.0 CONNECT', steps: [down(CONNECT5), down(b([0xc0, 0x80, 0x00]))], counter: 'malformed.non_minimal_length', forwarded: CONNECT5 },
  { name: 'overlong UTF-8 in a topic', steps: [down(CONNECT4), down(rawPublish(b([0x61, 0xc0, 0x80])))], counter: 'malformed.utf8', forwarded: CONNECT4 },
  { name: 'UTF-16 surrogate in a topic', steps: [down(CONNECT4), down(rawPublish(b([0xed, 0xa0, 0x80])))], counter: 'malformed.utf8', forwarded: CONNECT4 },
  { name: 'lone continuation byte in a topic', steps: [down(CONNECT4), down(rawPublish(b([0x80])))], counter: 'malformed.utf8', forwarded: CONNECT4 },
  { name: 'truncated multi-byte sequence in a topic', steps: [down(CONNECT4), down(rawPublish(b([0x61, 0xe2, 0x82])))], counter: 'malformed.utf8', forwarded: CONNECT4 },
  { name: 'code point above U+10FFFF in a topic', steps: [down(CONNECT4), down(rawPublish(b([0xf4, 0x90, 0x80, 0x80])))], counter: 'malformed.utf8', forwarded: CONNECT4 },
  { name: '+ in a PUBLISH topic', steps: [down(CONNECT4), down(rawPublish('a/+/b'))], counter: 'malformed.wildcard_in_topic', forwarded: CONNECT4 },
  { name: '# in a PUBLISH topic', steps: [down(CONNECT4), down(rawPublish('a/#'))], counter: 'malformed.wildcard_in_topic', forwarded: CONNECT4 },
  { name: 'empty PUBLISH topic in 3.1.1', steps: [down(CONNECT4), down(rawPublish(''))], counter: 'malformed.topic', forwarded: CONNECT4 },
  { name: 'topic deeper than the limit', steps: [down(CONNECT4), down(rawPublish('a/b/c/d/e'))], counter: 'limit.topic_too_deep', forwarded: CONNECT4, config: { limits: { max_topic_levels: 4 } } },
  { name: 'topic longer than the limit', steps: [down(CONNECT4), down(rawPublish('x'.repeat(33)))], counter: 'limit.topic_too_long', forwarded: CONNECT4, config: { limits: { max_topic_length: 32 } } },
  { name: 'deep SUBSCRIBE filter', steps: [down(CONNECT4), down(gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/b/c/d/#', qos: 0 }] }, 4))], counter: 'limit.topic_too_deep', forwarded: CONNECT4, config: { limits: { max_topic_levels: 4 } } },
  { name: 'PUBLISH QoS 3', steps: [down(CONNECT4), down(b([0x36, 5], str('a'), [0, 1]))], counter: 'malformed.qos', forwarded: CONNECT4 },
  { name: 'PUBLISH QoS 1 with packet id 0', steps: [down(CONNECT4), down(b([0x32, 5], str('a'), [0, 0]))], counter: 'malformed.packet_id', forwarded: CONNECT4 },
  { name: 'second CONNECT', steps: [down(CONNECT4), down(CONNECT4)], counter: 'malformed.second_connect', forwarded: CONNECT4 },
  { name: 'SUBSCRIBE with reserved flags 0000', steps: [down(CONNECT4), down(b([0x80, 6, 0, 1], str('a'), [0]).subarray(0, 8))], counter: 'malformed.flags', forwarded: CONNECT4 },
  { name: 'SUBSCRIBE without a filter', steps: [down(CONNECT4), down(b([0x82, 2, 0, 1]))], counter: 'malformed.no_topic_filters', forwarded: CONNECT4 },
  { name: 'SUBSCRIBE filter with # not last', steps: [down(CONNECT4), down(b([0x82, 10, 0, 1], str('a/#/b'), [0]))], counter: 'malformed.topic', forwarded: CONNECT4 },
  { name: 'SUBSCRIBE reserved option bits (3.1.1)', steps: [down(CONNECT4), down(b([0x82, 6, 0, 1], str('a'), [0x04]))], counter: 'malformed.subscription_options', forwarded: CONNECT4 },
  { name: 'packet type 0', steps: [down(CONNECT4), down(b([0x00, 0x00]))], counter: 'malformed.packet_type', forwarded: CONNECT4 },
  { name: 'AUTH in 3.1.1', steps: [down(CONNECT4), down(b([0xf0, 0x00]))], counter: 'malformed.packet_type', forwarded: CONNECT4 },
  { name: 'CONNACK sent by the client', steps: [down(CONNECT4), down(b([0x20, 2, 0, 0]))], counter: 'malformed.direction', forwarded: CONNECT4 },
  { name: 'PINGREQ with a body', steps: [down(CONNECT4), down(b([0xc0, 1, 0]))], counter: 'malformed.trailing_bytes', forwarded: CONNECT4 },
  { name: 'unknown 5.0 property', steps: [down(CONNECT5), down(b([0x30, 6], str('a'), [2, 0x7f, 0]))], counter: 'malformed.property', forwarded: CONNECT5 },
  { name: 'duplicate 5.0 property', steps: [down(CONNECT5), down(b([0x30, 14], str('a'), [10, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]))], counter: 'malformed.property', forwarded: CONNECT5 },
  { name: 'property not allowed in PUBLISH', steps: [down(CONNECT5), down(b([0x30, 9], str('a'), [5, 0x11, 0, 0, 0, 1]))], counter: 'malformed.property', forwarded: CONNECT5 },
  { name: 'topic alias 0', steps: [down(CONNECT5), down(b([0x30, 7], str('a'), [3, 0x23, 0, 0]))], counter: 'malformed.topic_alias', forwarded: CONNECT5 },
  { name: 'unknown topic alias', steps: [down(CONNECT5), down(b([0x30, 6], str(''), [3, 0x23, 0, 9]))], counter: 'malformed.topic_alias', forwarded: CONNECT5 },
  { name: 'SUBSCRIBE larger than max_header_bytes', steps: [down(CONNECT4), down(gen({ cmd: 'subscribe', messageId: 1, subscriptions: Array.from({ length: 40 }, (_, i) => ({ topic: `topic/${i}/#`, qos: 0 as const })) }, 4))], counter: 'limit.header_too_large', forwarded: CONNECT4, config: { limits: { max_header_bytes: 256 } } },
  { name: 'broker sends garbage', steps: [down(CONNECT4), up(b([0x20, 2, 0, 0])), up(b([0x00, 0x05, 1, 2]))], counter: 'malformed.packet_type', forwarded: CONNECT4 },
  { name: 'broker sends SUBSCRIBE', steps: [down(CONNECT4), up(b([0x82, 6, 0, 1], str('a'), [0]))], counter: 'malformed.direction', forwarded: CONNECT4 },
];

describe('mqtt filter: bad input closes the connection with a counter and one log line', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const r = await replayMqtt(c.steps, { configuration: c.config ?? {} });
      assert.deepEqual(r.closed, { reason: 'filter' }, `closed by the filter; logs: ${r.logs.join(' | ')}`);
      const counter = `mqtt.${c.counter}`;
      assert.equal(r.metrics[counter], 1, `${counter} = 1`);
      const bad = Object.entries(r.metrics).filter(([k, v]) => /\.(malformed|limit)\./.test(k) && v > 0 && k !== counter);
      assert.deepEqual(bad, [], 'no other malformed/limit counter');
      assert.equal(r.metrics['mqtt.closed_by_filter'], 1);
      const expectedForwarded = c.forwarded ?? Buffer.alloc(0);
      assert.equal(Buffer.from(r.forwarded.downstream).toString('hex'), expectedForwarded.toString('hex'), 'forwarded downstream');
      const lines = r.logs.filter((l) => l.includes('connection closed'));
      assert.equal(lines.length, 1, r.logs.join('\n'));
      const reason = c.counter.replace('.', ' ').replace(/^malformed (\S+)$/, 'malformed $1 from');
      assert.ok(lines[0]!.includes(reason), `${lines[0]} names ${reason}`);
      assert.equal(r.logs.filter((l) => l.startsWith('error') || l.startsWith('critical')).length, 0, 'no trap');
    });
  }

  it('accepts a non-minimal Remaining Length in 3.1.1 (only 5.0 forbids it)', async () => {
    const body = b(str('MQTT'), [4, 2, 0, 30], str('c'));
    const connect = b([0x10, 0x80 | body.length, 0x00], body);
    const r = await replayMqtt([down(connect)]);
    assert.equal(r.closed, undefined);
    assert.equal(r.packets[0]!.client_id, 'c');
  });
});

describe('mqtt filter: fuzz', () => {
  it('survives 20k random and mutated inputs without a trap, with bounded memory', { timeout: 120_000 }, async () => {
    const stats = await fuzz(20_000, 0x5eed);
    assert.equal(stats.traps, 0);
    assert.equal(stats.inputs, 20_000);
    assert.ok(stats.closedByFilter > 5_000, `most inputs are bad: ${stats.closedByFilter} closed by the filter`);
    assert.ok(stats.maxMemoryBytes <= 4 * 1024 * 1024, `VM memory ${stats.maxMemoryBytes} bytes`);
  });
});

