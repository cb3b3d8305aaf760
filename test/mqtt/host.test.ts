// The mqtt filter in the in-process host: framing of every packet type in
// 3.1, 3.1.1 and 5.0 (fields checked against mqtt-packet), every chunk
// split, routing at CONNECT, topic ACLs with the protocol's own refusals,
// limits, counters and the close log line.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectPacket, corpus, expectedFields, fieldsMismatch, gen, parseAll, type Version } from './packets.ts';
import { feed, replayMqtt, splitAt, startMqttPlugin } from './replay.ts';

const ROUTES = [
  { match: { client_id: { prefix: 'fleet-a-' } }, cluster: 'broker-a' },
  { match: { username: { exact: 'ops' } }, cluster: 'broker-ops' },
  { match: { client_id: { regex: '^dev-[0-9]+-x$' } }, cluster: 'broker-dev' },
  { cluster: 'broker-b' },
];

const cat = (bufs: Uint8Array[]) => Buffer.concat(bufs.map((b) => Buffer.from(b)));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function corpusBytes(version: Version): { down: Buffer; up: Buffer } {
  const c = corpus(version);
  return { down: cat(c.down.map((p) => gen(p, version))), up: cat(c.up.map((p) => gen(p, version))) };
}

describe('mqtt filter: framing', () => {
  for (const version of [3, 4, 5] as const) {
    it(`reports the fields of every packet type (protocol level ${version}) as mqtt-packet parses them`, async () => {
      const { down, up } = corpusBytes(version);
      const r = await replayMqtt([{ dir: 'downstream', bytes: down }, { dir: 'upstream', bytes: up }], { configuration: { routes: ROUTES } });
      assert.equal(r.closed, undefined, JSON.stringify(r.logs));
      assert.equal(hex(r.forwarded.downstream), hex(down), 'downstream bytes unchanged');
      assert.equal(hex(r.forwarded.upstream), hex(up), 'upstream bytes unchanged');
      const expected = [
        ...parseAll(down, version).map((p) => expectedFields(p, 'downstream', version)),
        ...parseAll(up, version).map((p) => expectedFields(p, 'upstream', version)),
      ];
      assert.equal(r.packets.length, expected.length);
      r.packets.forEach((p, i) => {
        const bad = fieldsMismatch(p, expected[i]!);
        assert.equal(bad, undefined, `packet ${i} (${p.dir} ${p.type}): ${bad}\n${JSON.stringify(p)}`);
      });
      if (version === 5) {
        // the 5.0 alias-only PUBLISH is reported with its alias and an empty topic
        assert.ok(r.packets.some((p) => p.type === 'publish' && p.topic === '' && p.topic_alias === 3));
      }
    });
  }

  it('gives the same packets and bytes for every split of both directions', async () => {
    for (const version of [4, 5] as const) {
      const { down, up } = corpusBytes(version);
      const { plugin, packets } = await startMqttPlugin({ routes: ROUTES });
      const reference = await replayMqtt([{ dir: 'downstream', bytes: down }, { dir: 'upstream', bytes: up }]);
      const splits: number[][] = [];
      for (let i = 1; i < down.length; i++) splits.push([i]);
      for (const size of [1, 2, 3, 7, 64]) splits.push(Array.from({ length: Math.ceil(down.length / size) - 1 }, (_, k) => (k + 1) * size));
      for (const cuts of splits) {
        const conn = plugin.newConnection();
        const fwdDown = feed(conn, 'downstream', splitAt(down, cuts));
        const upCuts = cuts.filter((c) => c < up.length);
        const fwdUp = feed(conn, 'upstream', splitAt(up, upCuts));
        const what = `v${version} cuts ${JSON.stringify(cuts.slice(0, 4))}${cuts.length > 4 ? '…' : ''}`;
        assert.equal(conn.closed, undefined, what);
        assert.equal(hex(fwdDown), hex(down), `${what}: downstream`);
        assert.equal(hex(fwdUp), hex(up), `${what}: upstream`);
        assert.equal(conn.upstreamCluster, 'broker-b', what);
        assert.deepEqual(packets.get(conn.id), reference.packets, what);
        conn.close();
      }
      plugin.close();
    }
  });

  it('a packet split inside its header: without an ACL every chunk goes on as it came; with one the split start is held back', async () => {
    const publish = (topic: string) => gen({ cmd: 'publish', topic, payload: Buffer.from('x'.repeat(40)), qos: 0 }, 4);
    const stream = cat([publish('sensors/a/temp'), publish('sensors/b/temp'), publish('sensors/c/temp')]);
    const cut = publish('sensors/a/temp').length + 6; // inside the second packet's topic
    for (const acl of [undefined, { default: 'allow', publish: [{ topic: 'secret/#', action: 'deny' }] }]) {
      const { plugin, packets } = await startMqttPlugin(acl ? { acl } : {});
      const conn = plugin.newConnection();
      conn.downstream(gen(connectPacket(4, 'split'), 4));
      const first = conn.downstream(stream.subarray(0, cut));
      const second = conn.downstream(stream.subarray(cut));
      assert.equal(hex(cat([first.forwarded, second.forwarded])), hex(stream));
      if (acl) {
        assert.equal(first.forwarded.length, publish('sensors/a/temp').length, 'with an ACL the split packet waits until its topic is known');
      } else {
        assert.equal(hex(first.forwarded), hex(stream.subarray(0, cut)), 'nothing this filter decides could change the packet: it goes on at once');
        assert.equal(hex(second.forwarded), hex(stream.subarray(cut)));
      }
      assert.deepEqual(packets.get(conn.id)!.map((p) => p.type), ['connect', 'publish', 'publish', 'publish']);
      plugin.close();
    }
  });

  it('skips a large PUBLISH payload by count, across chunks, without holding it', async () => {
    const payload = Buffer.alloc(200_000, 0x61);
    const stream = cat([gen(connectPacket(4, 'big'), 4), gen({ cmd: 'publish', topic: 'big/one', payload, qos: 1, messageId: 1 }, 4), gen({ cmd: 'pingreq' }, 4)]);
    const { plugin, packets } = await startMqttPlugin({});
    const conn = plugin.newConnection();
    const chunks = splitAt(stream, Array.from({ length: Math.floor(stream.length / 16384) }, (_, k) => (k + 1) * 16384));
    let held = 0;
    const out: Uint8Array[] = [];
    for (const c of chunks) {
      const r = conn.downstream(c);
      held = Math.max(held, r.buffered);
      out.push(r.forwarded);
    }
    assert.equal(hex(cat(out)), hex(stream));
    assert.equal(held, 0, 'nothing held after CONNECT');
    assert.deepEqual(packets.get(conn.id)!.map((p) => p.type), ['connect', 'publish', 'pingreq']);
    assert.equal(packets.get(conn.id)![1]!.payload_length, payload.length);
  });
});

describe('mqtt filter: routing at CONNECT', () => {
  it('holds the connection until CONNECT is complete, then routes by client id / username', async () => {
    const { plugin } = await startMqttPlugin({ routes: ROUTES });
    const cases: Array<[Version, string, Record<string, unknown>, string]> = [
      [4, 'fleet-a-17', {}, 'broker-a'],
      [5, 'fleet-a-', {}, 'broker-a'],
      [3, 'fleet-a-x', {}, 'broker-a'],
      [4, 'fleet-b-1', {}, 'broker-b'],
      [4, 'x', { username: 'ops', password: Buffer.from('pw') }, 'broker-ops'],
      [5, 'x', { username: 'opsx' }, 'broker-b'],
      [4, 'dev-42-x', {}, 'broker-dev'],
      [4, 'dev-42-xy', {}, 'broker-b'],
      [4, 'dev--x', {}, 'broker-b'],
      [4, '', {}, 'broker-b'],
    ];
    for (const [version, clientId, extra, cluster] of cases) {
      const connect = gen(connectPacket(version, clientId, extra), version);
      const conn = plugin.newConnection();
      assert.equal(conn.newConnectionAction, 'pause');
      for (let i = 0; i < connect.length - 1; i++) {
        const r = conn.downstream(connect.subarray(i, i + 1));
        assert.equal(r.action, 'pause', `${clientId}: byte ${i}`);
      }
      assert.equal(conn.proceeded, false);
      const r = conn.downstream(connect.subarray(connect.length - 1));
      assert.equal(r.action, 'continue');
      assert.equal(hex(r.forwarded), hex(connect));
      assert.equal(conn.upstreamCluster, cluster, `${clientId} ${JSON.stringify(extra)}`);
      conn.close();
    }
    assert.equal(plugin.metric('mqtt.route.broker-a'), 3);
    assert.equal(plugin.metric('mqtt.route.broker-b'), 5);
  });

  it('without a matching route leaves tcp_proxy its own cluster', async () => {
    const r = await replayMqtt([{ dir: 'downstream', bytes: gen(connectPacket(4, 'other'), 4) }], {
      configuration: { routes: [{ match: { client_id: { exact: 'only' } }, cluster: 'c' }] }, defaultCluster: 'static',
    });
    assert.equal(r.cluster, 'static');
    assert.equal(r.metrics['mqtt.route.none'], 1);
  });

  it('routes CONNECT followed by more packets in the same chunk, and closes a client that leaves before CONNECT', async () => {
    const bytes = cat([gen(connectPacket(5, 'fleet-a-2'), 5), gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 't', qos: 0 }] }, 5)]);
    const r = await replayMqtt([{ dir: 'downstream', bytes }], { configuration: { routes: ROUTES } });
    assert.equal(r.cluster, 'broker-a');
    assert.equal(hex(r.forwarded.downstream), hex(bytes));
    const gone = await replayMqtt([{ dir: 'downstream', bytes: new Uint8Array(0), endOfStream: true }], { configuration: { routes: ROUTES } });
    assert.equal(gone.closed?.reason, 'filter');
    assert.equal(gone.forwarded.downstream.length, 0);
  });

  it('rejects bad configurations with the path of the mistake', async () => {
    const bad: Array<[object, RegExp]> = [
      [{ routes: [{ match: { client_id: { glob: 'x' } }, cluster: 'a' }] }, /routes\[0\]\.match\.client_id: unknown matcher 'glob'/],
      [{ routes: [{ match: { client_id: { regex: '(a|b)' } }, cluster: 'a' }] }, /routes\[0\]\.match\.client_id\.regex: unsupported regex syntax/],
      [{ routes: [{ cluster: '' }] }, /routes\[0\]\.cluster/],
      [{ acl: { publish: [{ topic: 'a/#/b', action: 'deny' }] } }, /acl\.publish\[0\]\.topic: 'a\/#\/b' is not a valid topic filter/],
      [{ acl: { default: 'maybe' } }, /acl\.default/],
      [{ limits: { max_topic_levels: 0 } }, /limits\.max_topic_levels/],
      [{ topic_metrics: 'x' }, /topic_metrics/],
      [{ nope: 1 }, /unknown field 'nope'/],
    ];
    for (const [configuration, message] of bad) {
      await assert.rejects(startMqttPlugin(configuration), message, JSON.stringify(configuration));
    }
  });
});

const ACL = {
  default: 'allow',
  publish: [
    { topic: 'sensors/+/cmd', action: 'deny' },
    { topic: 'secret/#', action: 'deny' },
    { topic: 'fleet/#', action: 'allow', match: { client_id: { prefix: 'fleet-' } } },
    { topic: 'fleet/#', action: 'deny' },
  ],
  subscribe: [
    { topic: 'secret/#', action: 'deny' },
    { topic: '$SYS/#', action: 'deny' },
  ],
};

describe('mqtt filter: topic ACLs', () => {
  async function session(version: Version, clientId = 'c1', acl: object = ACL) {
    const { plugin, packets } = await startMqttPlugin({ acl, routes: ROUTES });
    const conn = plugin.newConnection();
    const r = conn.downstream(gen(connectPacket(version, clientId), version));
    assert.equal(r.action, 'continue');
    conn.upstream(gen(version === 5 ? { cmd: 'connack', reasonCode: 0, sessionPresent: false } : { cmd: 'connack', returnCode: 0, sessionPresent: false }, version));
    return { plugin, conn, packets };
  }

  it('drops a denied QoS 0 PUBLISH silently and forwards the allowed ones', async () => {
    const { conn, plugin } = await session(4);
    const ok = gen({ cmd: 'publish', topic: 'sensors/1/temp', payload: Buffer.from('1'), qos: 0 }, 4);
    const denied = gen({ cmd: 'publish', topic: 'sensors/1/cmd', payload: Buffer.from('reboot'), qos: 0 }, 4);
    const r = conn.downstream(cat([ok, denied, ok]));
    assert.equal(hex(r.forwarded), hex(cat([ok, ok])));
    assert.equal(plugin.metric('mqtt.acl.publish_denied'), 1);
    assert.equal(plugin.metric('mqtt.publish_dropped'), 1);
  });

  it('refuses a denied QoS 1 PUBLISH with PUBACK 0x87 (5.0) / PUBACK (3.1.1), through a PINGREQ the broker answers', async () => {
    for (const version of [4, 5] as const) {
      const { conn } = await session(version);
      const denied = gen({ cmd: 'publish', topic: 'secret/x', payload: Buffer.from('p'), qos: 1, messageId: 7 }, version);
      const r = conn.downstream(denied);
      assert.equal(hex(r.forwarded), 'c000', 'the broker gets a PINGREQ instead');
      // the broker answers an earlier PUBACK and the PINGRESP
      const back = conn.upstream(cat([gen({ cmd: 'puback', messageId: 6 }, version), gen({ cmd: 'pingresp' }, version)]));
      const seen = parseAll(back.forwarded, version);
      assert.equal(seen.length, 2);
      assert.deepEqual([seen[1]!.cmd, seen[1]!.messageId], ['puback', 7]);
      if (version === 5) assert.equal(seen[1]!.reasonCode, 0x87);
      else assert.equal(seen[1]!.length, 2);
      // a PINGREQ of the client's own still gets its PINGRESP
      assert.equal(hex(conn.downstream(gen({ cmd: 'pingreq' }, version)).forwarded), 'c000');
      assert.equal(hex(conn.upstream(gen({ cmd: 'pingresp' }, version)).forwarded), 'd000');
    }
  });

  it('refuses a denied QoS 2 PUBLISH: PUBREC 0x87 in 5.0; PUBREC then PUBCOMP for its PUBREL in 3.1.1', async () => {
    {
      const { conn } = await session(5);
      assert.equal(hex(conn.downstream(gen({ cmd: 'publish', topic: 'secret/a', payload: Buffer.from('p'), qos: 2, messageId: 9 }, 5)).forwarded), 'c000');
      const seen = parseAll(conn.upstream(gen({ cmd: 'pingresp' }, 5)).forwarded, 5);
      assert.deepEqual([seen[0]!.cmd, seen[0]!.messageId, seen[0]!.reasonCode], ['pubrec', 9, 0x87]);
    }
    {
      const { conn, plugin } = await session(4);
      assert.equal(hex(conn.downstream(gen({ cmd: 'publish', topic: 'secret/a', payload: Buffer.from('p'), qos: 2, messageId: 9 }, 4)).forwarded), 'c000');
      assert.deepEqual(parseAll(conn.upstream(gen({ cmd: 'pingresp' }, 4)).forwarded, 4).map((p) => [p.cmd, p.messageId]), [['pubrec', 9]]);
      assert.equal(hex(conn.downstream(gen({ cmd: 'pubrel', messageId: 9 }, 4)).forwarded), 'c000');
      assert.deepEqual(parseAll(conn.upstream(gen({ cmd: 'pingresp' }, 4)).forwarded, 4).map((p) => [p.cmd, p.messageId]), [['pubcomp', 9]]);
      // another PUBREL passes
      assert.equal(hex(conn.downstream(gen({ cmd: 'pubrel', messageId: 10 }, 4)).forwarded), hex(gen({ cmd: 'pubrel', messageId: 10 }, 4)));
      assert.equal(plugin.metric('mqtt.refusal.pubrec'), 1);
      assert.equal(plugin.metric('mqtt.refusal.pubcomp'), 1);
    }
  });

  it('drops a denied PUBLISH whose payload spans chunks, and keeps the stream framed', async () => {
    const { conn } = await session(4);
    const denied = gen({ cmd: 'publish', topic: 'secret/big', payload: Buffer.alloc(50_000, 1), qos: 0 }, 4);
    const ok = gen({ cmd: 'publish', topic: 'ok', payload: Buffer.from('fine'), qos: 0 }, 4);
    const stream = cat([ok, denied, ok]);
    const out = feed(conn, 'downstream', splitAt(stream, [3, ok.length + 5, 20_000, 40_000, stream.length - 3]));
    assert.equal(hex(out), hex(cat([ok, ok])));
  });

  it('applies rules with a connect match only to those clients', async () => {
    const msg = gen({ cmd: 'publish', topic: 'fleet/7/pos', payload: Buffer.from('x'), qos: 0 }, 4);
    for (const [clientId, passes] of [['fleet-7', true], ['other', false]] as const) {
      const { conn } = await session(4, clientId);
      assert.equal(conn.downstream(msg).forwarded.length, passes ? msg.length : 0, clientId);
    }
  });

  it('removes denied filters from a SUBSCRIBE and puts refusal codes back into the SUBACK', async () => {
    for (const version of [4, 5] as const) {
      const { conn, plugin } = await session(version);
      const sub = gen({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: 'a/+', qos: 1 }, { topic: 'secret/x', qos: 0 }, { topic: '#', qos: 2 }, { topic: 'b', qos: 0 }] }, version);
      const r = conn.downstream(sub);
      const forwarded = parseAll(r.forwarded, version);
      assert.equal(forwarded.length, 1);
      // '#' overlaps the denied secret/# and $SYS/#: refused too
      assert.deepEqual(forwarded[0]!.subscriptions.map((s: { topic: string; qos: number }) => [s.topic, s.qos]), [['a/+', 1], ['b', 0]]);
      assert.equal(forwarded[0]!.messageId, 5);
      const back = conn.upstream(gen({ cmd: 'suback', messageId: 5, granted: [1, 0] }, version));
      const suback = parseAll(back.forwarded, version)[0]!;
      const no = version === 5 ? 0x87 : 0x80;
      assert.deepEqual([suback.messageId, suback.granted], [5, [1, no, no, 0]]);
      assert.equal(plugin.metric('mqtt.acl.subscribe_denied'), 2);
      assert.equal(plugin.metric('mqtt.suback_rewritten'), 1);
    }
  });

  it('answers a SUBSCRIBE whose every filter is denied with a SUBACK of refusals', async () => {
    for (const version of [4, 5] as const) {
      const { conn, plugin } = await session(version);
      const r = conn.downstream(gen({ cmd: 'subscribe', messageId: 8, subscriptions: [{ topic: 'secret/#', qos: 1 }, { topic: '$SYS/broker/x', qos: 0 }] }, version));
      assert.equal(hex(r.forwarded), 'c000');
      const suback = parseAll(conn.upstream(gen({ cmd: 'pingresp' }, version)).forwarded, version)[0]!;
      const no = version === 5 ? 0x87 : 0x80;
      assert.deepEqual([suback.cmd, suback.messageId, suback.granted], ['suback', 8, [no, no]]);
      assert.equal(plugin.metric('mqtt.refusal.suback'), 1);
    }
  });

  it('matches shared subscriptions by their filter, and a default deny with allow rules by coverage', async () => {
    const acl = { default: 'deny', publish: [{ topic: 'in/#', action: 'allow' }], subscribe: [{ topic: 'out/+/x', action: 'allow' }] };
    const { conn } = await session(5, 'c', acl);
    const sub = gen({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: '$share/g/out/1/x', qos: 0 }, { topic: 'out/+/x', qos: 0 }, { topic: 'out/#', qos: 0 }] }, 5);
    const forwarded = parseAll(conn.downstream(sub).forwarded, 5)[0]!;
    assert.deepEqual(forwarded.subscriptions.map((s: { topic: string }) => s.topic), ['$share/g/out/1/x', 'out/+/x']);
    assert.equal(conn.downstream(gen({ cmd: 'publish', topic: 'in/a', payload: Buffer.from('x'), qos: 0 }, 5)).forwarded.length > 0, true);
    assert.equal(conn.downstream(gen({ cmd: 'publish', topic: 'other', payload: Buffer.from('x'), qos: 0 }, 5)).forwarded.length, 0);
  });

  it('follows 5.0 topic aliases: an alias-only PUBLISH gets the decision of its topic', async () => {
    const { conn } = await session(5);
    const set = gen({ cmd: 'publish', topic: 'secret/a', payload: Buffer.from('1'), qos: 0, properties: { topicAlias: 2 } }, 5);
    const use = gen({ cmd: 'publish', topic: '', payload: Buffer.from('2'), qos: 0, properties: { topicAlias: 2 } }, 5);
    const okSet = gen({ cmd: 'publish', topic: 'fine', payload: Buffer.from('3'), qos: 0, properties: { topicAlias: 1 } }, 5);
    const okUse = gen({ cmd: 'publish', topic: '', payload: Buffer.from('4'), qos: 0, properties: { topicAlias: 1 } }, 5);
    assert.equal(hex(conn.downstream(cat([set, use, okSet, okUse])).forwarded), hex(cat([okSet, okUse])));
  });

  it('refuses a connection whose will topic is denied', async () => {
    const r = await replayMqtt([{ dir: 'downstream', bytes: gen(connectPacket(4, 'w', { will: { topic: 'secret/will', payload: Buffer.from('x'), qos: 0, retain: false } }), 4) }], { configuration: { acl: ACL } });
    assert.equal(r.closed?.reason, 'filter');
    assert.equal(r.metrics['mqtt.acl.will_denied'], 1);
    assert.equal(r.forwarded.downstream.length, 0);
  });
});

describe('mqtt filter: counters and logs', () => {
  it('counts packets per type and direction, bytes, per-topic-prefix traffic, and logs one line per connection', async () => {
    const version = 5;
    const { down, up } = corpusBytes(version);
    const r = await replayMqtt([{ dir: 'downstream', bytes: down }, { dir: 'upstream', bytes: up }], {
      configuration: { routes: ROUTES, topic_metrics: ['sensors/', 'alias/'], stat_prefix: 'mq' },
    });
    const m = r.metrics;
    assert.equal(m['mq.downstream.connect'], 1);
    assert.equal(m['mq.downstream.publish'], 5);
    assert.equal(m['mq.downstream.subscribe'], 2);
    assert.equal(m['mq.upstream.suback'], 1);
    assert.equal(m['mq.downstream.auth'], 1);
    assert.equal(m['mq.downstream.bytes'], down.length);
    assert.equal(m['mq.upstream.bytes'], up.length);
    assert.equal(m['mq.topic.sensors_.downstream.messages'], 2);
    assert.equal(m['mq.topic.sensors_.downstream.payload_bytes'], 304);
    assert.equal(m['mq.topic.sensors_.upstream.messages'], 1);
    assert.equal(m['mq.topic.alias_.downstream.messages'], 2, 'the alias-only PUBLISH counts under its topic');
    assert.equal(m['mq.active_connections'], 0);
    const closeLines = r.logs.filter((l) => l.includes('connection closed'));
    assert.equal(closeLines.length, 1);
    assert.match(closeLines[0]!, /^info mqtt: connection closed client_id="corpus-1" username="user" cluster=broker-b reason="client sent DISCONNECT" packets_in=16 packets_out=9/);
  });
});


describe('mqtt filter: CONNECT timeout', () => {
  /** How the host closed the connection (read through a call: assert.equal(x, undefined) narrows x.closed to never). */
  const closeReason = (conn: { closed?: { reason: string } }): string | undefined => conn.closed?.reason;
  /** A clock the test moves by hand (both the wall and the monotonic clock). */
  function manualClock() {
    const clock = { ns: 1_000_000_000_000n, realtimeNs: () => clock.ns, monotonicNs: () => clock.ns, advanceMs: (ms: number) => { clock.ns += BigInt(ms) * 1_000_000n; } };
    return clock;
  }

  it('closes connections that have not completed CONNECT in time, with a counter and the close line; connected ones stay', async () => {
    const clock = manualClock();
    const { plugin, logs } = await startMqttPlugin({ limits: { connect_timeout_ms: 5000 } }, { clock });
    assert.equal(plugin.tickPeriodMs, 1000);
    const connect = gen(connectPacket(4, 'slow'), 4);
    const idle = plugin.newConnection();
    const half = plugin.newConnection();
    assert.equal(half.downstream(connect.subarray(0, Math.floor(connect.length / 2))).action, 'pause');
    const done = plugin.newConnection();
    assert.equal(done.downstream(gen(connectPacket(5, 'quick'), 5)).action, 'continue');

    clock.advanceMs(4999);
    assert.equal(plugin.tick(), true);
    assert.equal(closeReason(idle), undefined);
    assert.equal(closeReason(half), undefined);

    clock.advanceMs(2);
    plugin.tick();
    assert.equal(closeReason(idle), 'filter');
    assert.equal(closeReason(half), 'filter');
    assert.equal(closeReason(done), undefined, 'a connection that completed CONNECT is not closed');
    assert.equal(half.forwardedDownstreamLength, 0, 'nothing of the half CONNECT went upstream');
    for (const conn of [idle, half]) {
      const lines = (logs.get(conn.id) ?? []).filter((l) => l.includes('connection closed'));
      assert.equal(lines.length, 1);
      assert.match(lines[0]!, /^warn mqtt: connection closed client_id=- cluster=- reason="connect timeout" packets_in=0 packets_out=0/);
    }
    assert.equal(plugin.metric('mqtt.connect_timeout'), 2);
    assert.equal(plugin.metric('mqtt.closed_by_filter'), 2);
    assert.equal(plugin.metric('mqtt.active_connections'), 1);

    // later ticks leave the connected one alone; a new slow one gets its own deadline
    const late = plugin.newConnection();
    clock.advanceMs(60_000);
    assert.equal(closeReason(late), undefined, 'nothing happens between ticks');
    plugin.tick();
    assert.equal(closeReason(done), undefined);
    assert.equal(closeReason(late), 'filter');
    assert.equal(plugin.metric('mqtt.connect_timeout'), 3);
    done.close();
    plugin.close();
  });

  it('defaults to 10 s and is off with 0', async () => {
    {
      const clock = manualClock();
      const { plugin } = await startMqttPlugin({}, { clock });
      const conn = plugin.newConnection();
      clock.advanceMs(9_000);
      plugin.tick();
      assert.equal(closeReason(conn), undefined);
      clock.advanceMs(1_000);
      plugin.tick();
      assert.equal(closeReason(conn), 'filter');
      assert.equal(plugin.metric('mqtt.connect_timeout'), 1);
      plugin.close();
    }
    {
      const clock = manualClock();
      const { plugin } = await startMqttPlugin({ limits: { connect_timeout_ms: 0 } }, { clock });
      assert.equal(plugin.tickPeriodMs, 0);
      const conn = plugin.newConnection();
      clock.advanceMs(3_600_000);
      assert.equal(plugin.tick(), false, 'no tick period');
      assert.equal(closeReason(conn), undefined);
      conn.close();
      plugin.close();
    }
    await assert.rejects(startMqttPlugin({ limits: { connect_timeout_ms: -1 } }), /limits\.connect_timeout_ms/);
    await assert.rejects(startMqttPlugin({ limits: { connect_timeout_ms: 1.5 } }), /limits\.connect_timeout_ms/);
  });
});

describe('mqtt filter: ACL topic substitution (%c, %u)', () => {
  const pub = (topic: string) => gen({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 0 }, 4);
  const subscribe = (...topics: string[]) => gen({ cmd: 'subscribe', messageId: 4, subscriptions: topics.map((topic) => ({ topic, qos: 0 })) }, 4);

  async function connect(acl: object, clientId: string, extra: Record<string, unknown> = {}) {
    const { plugin } = await startMqttPlugin({ acl });
    const conn = plugin.newConnection();
    assert.equal(conn.downstream(gen(connectPacket(4, clientId, extra), 4)).action, 'continue');
    conn.upstream(gen({ cmd: 'connack', returnCode: 0, sessionPresent: false }, 4));
    return { plugin, conn };
  }
  /** Which of the topics a PUBLISH passes for. */
  const published = (conn: { downstream(b: Uint8Array): { forwarded: Uint8Array } }, topics: string[]) =>
    topics.filter((t) => conn.downstream(pub(t)).forwarded.length > 0);
  /** Which of the filters a SUBSCRIBE keeps (each filter on its own). */
  const subscribed = (conn: { downstream(b: Uint8Array): { forwarded: Uint8Array } }, filters: string[]) =>
    filters.filter((f) => hex(conn.downstream(subscribe(f)).forwarded) !== 'c000');

  const ALLOW = {
    default: 'deny',
    publish: [{ topic: 'devices/%c/#', action: 'allow' }, { topic: 'users/%u/out', action: 'allow' }],
    subscribe: [{ topic: 'devices/%c/+', action: 'allow' }, { topic: 'users/%u/#', action: 'allow' }],
  };

  it('allow rules: %c is the client id and %u the username of the connection', async () => {
    const { conn } = await connect(ALLOW, 'd1', { username: 'alice', password: Buffer.from('pw') });
    assert.deepEqual(
      published(conn, ['devices/d1', 'devices/d1/temp', 'devices/d2/temp', 'devices/%c/temp', 'users/alice/out', 'users/bob/out', 'users/%u/out']),
      ['devices/d1', 'devices/d1/temp', 'users/alice/out'],
    );
    assert.deepEqual(
      subscribed(conn, ['devices/d1/x', 'devices/d1/+', 'devices/d1/#', 'devices/+/x', 'devices/d2/x', 'users/alice/#', 'users/alice/a/b', 'users/bob/#', 'users/+/x']),
      ['devices/d1/x', 'devices/d1/+', 'users/alice/#', 'users/alice/a/b'],
    );
  });

  it('a rule with %u does not apply to a connection without a username', async () => {
    const { conn } = await connect(ALLOW, 'd1');
    assert.deepEqual(published(conn, ['devices/d1/x', 'users//out', 'users/%u/out', 'users/d1/out']), ['devices/d1/x']);
    assert.deepEqual(subscribed(conn, ['users/#', 'users//x', 'users/%u/x']), []);
  });

  it("a client id or username with '/' or a wildcard never widens a rule: the rule does not apply", async () => {
    {
      const { conn } = await connect(ALLOW, 'a/b', { username: 'u/v' });
      assert.deepEqual(published(conn, ['devices/a/b', 'devices/a/b/x', 'devices/a/x', 'users/u/v/out', 'users/u/out']), []);
      assert.deepEqual(subscribed(conn, ['devices/a/b', 'devices/a/+', 'users/u/v/x', 'users/u/#']), []);
    }
    for (const username of ['+', '#', 'a+', 'x#']) {
      const { conn } = await connect(ALLOW, 'ok', { username });
      // (a PUBLISH topic with a wildcard is malformed anyway: not tried here)
      assert.deepEqual(published(conn, ['users/anyone/out', 'users/a/out', 'devices/ok/x']), ['devices/ok/x'], username);
      assert.deepEqual(subscribed(conn, ['users/anyone/x', 'users/#']), [], username);
    }
  });

  it('deny rules: %c and %u deny only the connection’s own topics', async () => {
    const acl = {
      default: 'allow',
      publish: [{ topic: 'private/%c/#', action: 'deny' }, { topic: 'inbox/%u', action: 'deny' }],
      subscribe: [{ topic: 'private/%u/#', action: 'deny' }, { topic: 'sub/%c-%u/+', action: 'deny' }],
    };
    const { conn, plugin } = await connect(acl, 'd1', { username: 'alice', password: Buffer.from('pw') });
    assert.deepEqual(published(conn, ['private/d1/x', 'private/d2/x', 'inbox/alice', 'inbox/bob', 'public']), ['private/d2/x', 'inbox/bob', 'public']);
    assert.deepEqual(subscribed(conn, ['private/alice/x', 'private/+/x', 'private/bob/x', 'sub/d1-alice/q', 'sub/d1-bob/q', '#']), ['private/bob/x', 'sub/d1-bob/q']);
    assert.equal(plugin.metric('mqtt.acl.publish_denied'), 2);
    // the same configuration for another client
    const other = await connect(acl, 'd2', { username: 'bob', password: Buffer.from('pw') });
    assert.deepEqual(published(other.conn, ['private/d1/x', 'private/d2/x', 'inbox/alice', 'inbox/bob']), ['private/d1/x', 'inbox/alice']);
  });

  it('substitutes in a will topic and combines with connect matches', async () => {
    const acl = {
      default: 'deny',
      publish: [{ topic: 'wills/%c', action: 'allow', match: { username: { exact: 'dev' } } }],
    };
    const will = (clientId: string, topic: string, username: string) =>
      replayMqtt([{ dir: 'downstream', bytes: gen(connectPacket(4, clientId, { username, will: { topic, payload: Buffer.from('x'), qos: 0, retain: false } }), 4) }], { configuration: { acl } });
    assert.equal((await will('w1', 'wills/w1', 'dev')).closed, undefined);
    assert.equal((await will('w1', 'wills/w2', 'dev')).closed?.reason, 'filter');
    assert.equal((await will('w1', 'wills/w1', 'other')).closed?.reason, 'filter');
  });
});
