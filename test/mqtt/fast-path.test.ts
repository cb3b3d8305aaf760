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

  // The fast path checks topics 8 or 16 bytes at a time, with a mask for
  // short ones and a byte loop where 16 bytes cannot be read: every length,
  // every position and every byte class, whole and cut right after the topic.
  it('topic bytes: each odd or near-odd byte at every position of topics of 1..40 bytes decides alike', { timeout: 120_000 }, async () => {
    const generalLines: string[] = [];
    const fastLines: string[] = [];
    const general = await start({ log_packets: true }, generalLines);
    const fast = await start({}, fastLines);
    const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'topics', clean: true, keepalive: 30 });
    const publish = (topic: Buffer, payload: number): Buffer => {
      const rest = 2 + topic.length + payload;
      const length = rest < 128 ? Buffer.from([rest]) : Buffer.from([(rest & 0x7f) | 0x80, rest >> 7]);
      return Buffer.concat([Buffer.from([0x30]), length, Buffer.from([topic.length >> 8, topic.length & 0xff]), topic, Buffer.alloc(payload, 0x41)]);
    };
    // [byte, the filter closes the connection for it]
    const bytes: Array<[number[], boolean]> = [
      [[0x00], true], [[0x23], true], [[0x2b], true], [[0x80], true], [[0xff], true],
      [[0x01], false], [[0x22], false], [[0x24], false], [[0x2a], false], [[0x2c], false], [[0x7f], false], [[0xc3, 0xa9], false],
    ];
    let closedCount = 0;
    let cases = 0;
    for (let len = 1; len <= 40; len++) {
      for (let at = 0; at + 1 <= len; at++) {
        for (const [odd, closes] of bytes) {
          if (at + odd.length > len) continue;
          const topic = Buffer.alloc(len, 0x61);
          Buffer.from(odd).copy(topic, at);
          const payload = (len * 7 + at) % 3 === 0 ? 130 : 4;
          const down = Buffer.concat([connect, publish(topic, payload), publish(Buffer.from('ok/next'), 4)]);
          const cut = connect.length + 3 + (payload > 100 ? 1 : 0) + 2 + len + (at % 4);
          for (const downChunks of [[down], [down.subarray(0, cut), down.subarray(cut)]]) {
            const c: FuzzCase = { down, up: undefined, downChunks, upChunks: [], draws: [], endOfStream: false };
            const a = general.newConnection();
            const b = fast.newConnection();
            drive([a, b], c, ([ra, rb]) => same(ra!, rb!, `topic ${topic.toString('hex')} in ${downChunks.length} chunk(s)`));
            assert.equal(b.closed !== undefined, closes, `topic ${topic.toString('hex')}: closed`);
            if (closes) closedCount++;
            cases++;
            if (!a.closed) a.close();
            if (!b.closed) b.close();
          }
        }
      }
    }
    assert.deepEqual(fast.metrics(), general.metrics());
    assert.deepEqual(fastLines, generalLines);
    assert.ok(closedCount > 1_000 && cases > 2 * closedCount, `${cases} cases, ${closedCount} closed`);
    general.close();
    fast.close();
  });
});
