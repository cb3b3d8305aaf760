// The mqtt filter's fast path (runs of PUBLISHes whose only outcome is
// "forward") must decide exactly as its general path. The general path alone
// runs when the packet log is on (`log_packets: true`), so the same inputs
// go through two plugins, one with each, in lockstep: every callback must
// forward the same bytes, pause and close alike, and the counters and the
// close log lines must end up equal.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mqttPacket from 'mqtt-packet';
import { drive, FUZZ_CONFIG, fuzzCases, type FuzzCase } from './fuzz-core.ts';
import { mqttModule } from './replay.ts';
import type { DataResult, WasmPlugin } from '../../xds-server/wasm-host/index.ts';

async function start(configuration: object, closeLines: string[]): Promise<WasmPlugin> {
  return (await mqttModule()).instantiate({
    name: 'mqtt',
    configuration,
    record: false,
    logLevel: 'info',
    onLog: (e) => { if (e.message.startsWith('mqtt: connection closed')) closeLines.push(e.message); },
  });
}

function same(a: DataResult, b: DataResult, where: string): void {
  assert.equal(b.action, a.action, `${where}: action`);
  assert.equal(b.closed?.reason, a.closed?.reason, `${where}: closed`);
  assert.equal(b.buffered, a.buffered, `${where}: bytes held`);
  assert.ok(Buffer.from(b.forwarded).equals(Buffer.from(a.forwarded)), `${where}: forwarded bytes differ\n general ${Buffer.from(a.forwarded).toString('hex')}\n fast    ${Buffer.from(b.forwarded).toString('hex')}`);
}

const CONFIGS: Array<[string, object]> = [
  ['ACL, limits and topic metrics', FUZZ_CONFIG],
  ['defaults', {}],
  ['tight limits', { limits: { max_topic_length: 9, max_topic_levels: 3, max_packet_size: 200 }, topic_metrics: ['a'] }],
  // no ACL: split headers go on at once; alternating prefixes end and start runs of topic counts
  ['topic metrics without an ACL', { topic_metrics: ['sensors/', 'a', 'x/', 'abcdefgh'] }],
];

describe('mqtt filter: fast path agrees with the general path', () => {
  for (const [label, configuration] of CONFIGS) {
    it(`${label}: 6,000 random and mutated inputs decide alike`, { timeout: 120_000 }, async () => {
      const generalLines: string[] = [];
      const fastLines: string[] = [];
      const general = await start({ ...configuration, log_packets: true }, generalLines);
      const fast = await start(configuration, fastLines);
      let steps = 0;
      let publishes = 0;
      let i = 0;
      for (const c of fuzzCases(6_000, 0xfa57 + label.length)) {
        const a = general.newConnection();
        const b = fast.newConnection();
        drive([a, b], c, ([ra, rb]) => { steps++; same(ra!, rb!, `input ${i} step ${steps} (down=${c.down.toString('hex')})`); });
        if (!a.closed) a.close();
        if (!b.closed) b.close();
        i++;
      }
      assert.equal(general.failed, undefined);
      assert.equal(fast.failed, undefined);
      const ma = general.metrics();
      const mb = fast.metrics();
      assert.deepEqual(mb, ma);
      publishes = ma['mqtt.downstream.publish'] ?? 0;
      assert.ok(publishes > 2_000, `the inputs carry PUBLISHes (${publishes})`);
      assert.deepEqual(fastLines, generalLines);
      assert.ok(generalLines.length >= 6_000);
      general.close();
      fast.close();
    });
  }

  // The fast path checks a topic 16 bytes at a time, with a mask for short
  // ones: every length, every position and every byte class, whole and cut
  // right after the topic.
  it('topic bytes: each odd or near-odd byte at every position of topics of 1..40 bytes decides alike', { timeout: 120_000 }, async () => {
    // [byte, the filter closes the connection for it]
    const bytes: Array<[number[], boolean]> = [
      [[0x00], true], [[0x23], true], [[0x2b], true], [[0x80], true], [[0xff], true],
      [[0x01], false], [[0x22], false], [[0x24], false], [[0x2a], false], [[0x2c], false], [[0x7f], false], [[0xc3, 0xa9], false],
    ];
    const topics: Array<[Buffer, boolean]> = [];
    for (let len = 1; len <= 40; len++) {
      for (let at = 0; at + 1 <= len; at++) {
        for (const [odd, closes] of bytes) {
          if (at + odd.length > len) continue;
          const topic = Buffer.alloc(len, 0x61);
          Buffer.from(odd).copy(topic, at);
          topics.push([topic, closes]);
        }
      }
    }
    const { cases, closed } = await eachTopicAlike({}, topics);
    assert.ok(closed > 1_000 && cases > 2 * closed, `${cases} cases, ${closed} closed`);
  });

  // Levels are counted with a vector compare (and a masked tail for topics
  // over 16 bytes); prefixes are compared 16 bytes at once, then the rest.
  it('topic levels and topic_metrics prefixes over 16 bytes: slash counts around the limit and every cut of a prefix decide alike', { timeout: 120_000 }, async () => {
    const prefixes = ['ab/', 'abcdefghijklmnop/', 'abcdefghijklmnopqrstuvwxyz/01234'];
    const maxLevels = 4;
    const topics: Array<[Buffer, boolean]> = [];
    let seed = 0x5eed;
    const random = (n: number): number => { seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff; return (seed >>> 8) % n; };
    for (let len = 1; len <= 40; len++) {
      for (let slashes = 0; slashes <= maxLevels + 1 && slashes <= len; slashes++) {
        for (let variant = 0; variant < 4; variant++) {
          const topic = Buffer.alloc(len, 0x61);
          const at = new Set<number>();
          while (at.size < slashes) at.add(random(len));
          for (const i of at) topic[i] = 0x2f;
          topics.push([topic, slashes + 1 > maxLevels]);
        }
      }
    }
    for (const prefix of prefixes) {
      for (let n = 1; n <= prefix.length; n++) {
        // the prefix cut at n, then filler; and the whole prefix with byte n-1 changed
        const cut = Buffer.from(prefix.slice(0, n) + 'xyz');
        const changed = Buffer.from(prefix + 'tail');
        changed[n - 1] = changed[n - 1] === 0x7a ? 0x79 : changed[n - 1]! + 1;
        for (const topic of [cut, changed]) topics.push([topic, topic.toString().split('/').length > maxLevels]);
      }
    }
    const { closed, metrics } = await eachTopicAlike({ limits: { max_topic_levels: maxLevels }, topic_metrics: prefixes }, topics);
    assert.ok(closed > 100, `${closed} closed for depth`);
    for (const prefix of prefixes) assert.ok((metrics[`mqtt.topic.${prefix.replace(/\W/g, '_')}.downstream.messages`] ?? 0) > 0, `${prefix} counted: ${JSON.stringify(metrics)}`);
  });

  // A short topic's 16 bytes are compared with each prefix at once, so the
  // bytes after the topic (here its payload) may go on with the prefix.
  it('a topic that is the start of a topic_metrics prefix, with a payload that goes on with it, is not counted under it', { timeout: 120_000 }, async () => {
    const prefixes = ['ab/', 'abcdefghijklmnop/', 'abcdefghijklmnopqrstuvwxyz/01234'];
    const streams: ClientStream[] = [];
    for (const prefix of prefixes) {
      for (let n = 1; n < prefix.length; n++) {
        const topic = Buffer.from(prefix.slice(0, n));
        const payload = Buffer.from(prefix.slice(n) + 'zz');
        const publishes = Buffer.concat([publishPacket(topic, payload), publishPacket(Buffer.from('ok/next'), 4)]);
        streams.push({ label: `topic ${topic} before ${payload}`, publishes, cut: 4 + topic.length, closes: false });
      }
    }
    const { metrics } = await eachStreamAlike({ topic_metrics: prefixes }, streams);
    for (const prefix of prefixes) assert.equal(metrics[`mqtt.topic.${prefix.replace(/\W/g, '_')}.downstream.messages`] ?? 0, 0, prefix);
  });

  // The fast path reads 16 topic bytes and the packet's end from its length
  // alone: a Remaining Length that ends the packet inside its topic (or its
  // topic length) must still be malformed there, with plain bytes after it.
  it('a Remaining Length ending the packet inside or just after its topic decides alike', { timeout: 120_000 }, async () => {
    const streams: ClientStream[] = [];
    for (let len = 1; len <= 20; len++) {
      for (let extra = -4; extra <= 2; extra++) {
        const topic = Buffer.alloc(len, 0x61);
        const remaining = 2 + len + extra;
        if (remaining < 0) continue;
        // the packet's bytes as its length says, then the rest of the topic and payload, then a good PUBLISH
        const body = Buffer.concat([Buffer.from([len >> 8, len & 0xff]), topic, Buffer.alloc(Math.max(extra, 0), 0x41)]);
        const publishes = Buffer.concat([Buffer.from([0x30, remaining]), body, publishPacket(Buffer.from('ok/next'), 4)]);
        streams.push({ label: `topic of ${len} bytes, Remaining Length ${remaining}`, publishes, cut: 2 + Math.min(remaining, body.length), closes: extra < 0 });
      }
    }
    const { closed } = await eachStreamAlike({ topic_metrics: ['a'] }, streams);
    assert.ok(closed > 100, `${closed} closed`);
  });
});

/** A QoS 0 PUBLISH of `topic` with `payload` (or that many bytes of 'A'). */
function publishPacket(topic: Buffer, payload: number | Buffer): Buffer {
  const body = typeof payload === 'number' ? Buffer.alloc(payload, 0x41) : payload;
  const rest = 2 + topic.length + body.length;
  const length = rest < 128 ? Buffer.from([rest]) : Buffer.from([(rest & 0x7f) | 0x80, rest >> 7]);
  return Buffer.concat([Buffer.from([0x30]), length, Buffer.from([topic.length >> 8, topic.length & 0xff]), topic, body]);
}

/**
 * Each topic in its own connection (CONNECT, a PUBLISH to it, one more
 * PUBLISH), whole and cut just after the topic, through both paths in
 * lockstep; `closes` says whether the filter must close for it. Returns the
 * counts and the fast path's counters (equal to the general path's).
 */
async function eachTopicAlike(configuration: object, topics: Array<[Buffer, boolean]>): Promise<{ cases: number; closed: number; metrics: Record<string, number> }> {
  const streams: ClientStream[] = topics.map(([topic, closes], i) => {
    const payload = (topic.length * 7 + 2 * i) % 3 === 0 ? 130 : 4;
    const publishes = Buffer.concat([publishPacket(topic, payload), publishPacket(Buffer.from('ok/next'), 4)]);
    return { label: `topic ${topic.toString('hex')}`, publishes, cut: 3 + (payload > 100 ? 1 : 0) + 2 + topic.length, closes };
  });
  return eachStreamAlike(configuration, streams);
}

/** A client's bytes after CONNECT, where to cut them in two, and whether the filter must close for them. */
interface ClientStream { label: string; publishes: Buffer; cut: number; closes: boolean }

/**
 * Each stream in its own connection after a CONNECT, whole and cut at
 * `cut` (plus 0..3 bytes), through both paths in lockstep.
 */
async function eachStreamAlike(configuration: object, streams: ClientStream[]): Promise<{ cases: number; closed: number; metrics: Record<string, number> }> {
  const generalLines: string[] = [];
  const fastLines: string[] = [];
  const general = await start({ ...configuration, log_packets: true }, generalLines);
  const fast = await start(configuration, fastLines);
  const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'topics', clean: true, keepalive: 30 });
  let closed = 0;
  let cases = 0;
  for (const { label, publishes, cut: cutAt, closes } of streams) {
    const down = Buffer.concat([connect, publishes]);
    const cut = Math.min(down.length - 1, connect.length + cutAt + (cases % 4));
    for (const downChunks of [[down], [down.subarray(0, cut), down.subarray(cut)]]) {
      const c: FuzzCase = { down, up: undefined, downChunks, upChunks: [], draws: [], endOfStream: false };
      const a = general.newConnection();
      const b = fast.newConnection();
      drive([a, b], c, ([ra, rb]) => same(ra!, rb!, `${label} in ${downChunks.length} chunk(s)`));
      assert.equal(b.closed !== undefined, closes, `${label}: closed`);
      if (closes) closed++;
      cases++;
      if (!a.closed) a.close();
      if (!b.closed) b.close();
    }
  }
  const metrics = fast.metrics();
  assert.deepEqual(metrics, general.metrics());
  assert.deepEqual(fastLines, generalLines);
  general.close();
  fast.close();
  return { cases, closed, metrics };
}
