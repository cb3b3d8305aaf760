// The coap filter in the in-process host. Over TCP (RFC 8323): routing on
// the first request's Uri-Path / Uri-Host, the hold until then (and its CSM
// wait for clients that wait for the server's CSM), the policy's 4.03 with
// the request's token in a Pong's place, limits, counters, malformed input,
// every split of both directions. Over UDP ("transport": "udp"): one
// datagram per callback, malformed and refused datagrams dropped with a counter.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Packet } from 'coap-packet';
import { splitAt } from '../support/bytes.ts';
import { startCoap } from './host.ts';
import { signalingFrames, tcpBytes, tcpFrame, udpBytes } from './packets.ts';

const path = (...segs: string[]) => segs.map((s) => ({ name: 'Uri-Path' as const, value: Buffer.from(s) }));
const tok = (hex: string) => Buffer.from(hex, 'hex');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const cat = (...b: Buffer[]) => Buffer.concat(b);

const ROUTES = [
  { match: { path: { prefix: '/sensors' } }, cluster: 'sensors' },
  { match: { host: { exact: 'actuators.local' } }, cluster: 'actuators' },
  { cluster: 'fallback' },
];
const POLICY = { rules: [{ path: { prefix: '/admin' }, action: 'deny' }, { methods: ['DELETE'], action: 'deny' }], default: 'allow' };

const CSM_CLIENT = signalingFrames()[0]!.bytes;
const CSM_SERVER = tcpFrame(0xe1, Buffer.alloc(0), Buffer.from([0x23, 0x80, 0x01, 0x00, 0x20]));
const PING = tcpFrame(0xe2, Buffer.alloc(0), Buffer.alloc(0));
const PONG = tcpFrame(0xe3, Buffer.alloc(0), Buffer.alloc(0));

const get: Packet = { code: 'GET', token: tok('a1'), options: path('sensors', 'temp') };
const refused: Packet = { code: 'PUT', token: tok('0badcafe'), options: path('admin', 'x'), payload: Buffer.from('1') };
const del: Packet = { code: 'DELETE', token: tok('d1'), options: path('sensors', 'temp') };
const observe: Packet = { code: 'GET', token: tok('0b'), options: [{ name: 'Observe', value: Buffer.alloc(0) }, ...path('time')] };
const ok: Packet = { code: '2.05', token: tok('a1'), payload: Buffer.from('21.5') };
const notify = (n: number): Packet => ({ code: '2.05', token: tok('0b'), options: [{ name: 'Observe', value: Buffer.from([n]) }], payload: Buffer.from(`t${n}`) });

const CLIENT = cat(CSM_CLIENT, tcpBytes(get), tcpBytes(refused), tcpBytes(observe), tcpBytes(del), PING);
/** What reaches the server: each refused request is a Ping in its place. */
const UPSTREAM = cat(CSM_CLIENT, tcpBytes(get), PING, tcpBytes(observe), PING, PING);
/** The server's answers: its CSM, the 2.05, a Pong per Ping (ours first, in order), notifications. */
const SERVER = cat(CSM_SERVER, tcpBytes(ok), PONG, tcpBytes(notify(2)), PONG, tcpBytes(notify(3)), PONG);

function forbidden(token: string, code = 0x83, diagnostic = 'forbidden'): Buffer {
  return tcpFrame(code, tok(token), cat(Buffer.from([0xff]), Buffer.from(diagnostic)));
}
/** The client sees the proxy's refusals where the Pongs to its Pings were. */
const CLIENT_SEES = cat(CSM_SERVER, tcpBytes(ok), forbidden('0badcafe'), tcpBytes(notify(2)), forbidden('d1'), tcpBytes(notify(3)), PONG);

describe('coap filter over TCP (in-process host)', () => {
  it('routes by the first request, refuses by policy with 4.03 and the token, counts, under every split', async () => {
    const { plugin, packets } = await startCoap({ routes: ROUTES, policy: POLICY });
    const cuts: number[][] = [[]];
    for (let c = 1; c < CLIENT.length; c++) cuts.push([c]);
    cuts.push(Array.from({ length: CLIENT.length - 1 }, (_, i) => i + 1));
    for (const cut of cuts) {
      const conn = plugin.newConnection();
      for (const chunk of splitAt(CLIENT, cut)) assert.equal(conn.downstream(chunk).closed, undefined);
      const upCuts = cut.filter((c) => c < SERVER.length);
      for (const chunk of splitAt(SERVER, upCuts)) assert.equal(conn.upstream(chunk).closed, undefined);
      assert.equal(conn.upstreamCluster, 'sensors', `cuts ${cut}`);
      assert.equal(hex(conn.forwardedDownstream), hex(UPSTREAM), `upstream bytes, cuts ${cut}`);
      assert.equal(hex(conn.forwardedUpstream), hex(CLIENT_SEES), `client bytes, cuts ${cut}`);
      conn.close();
    }
    const m = plugin.metrics();
    const n = cuts.length;
    assert.equal(m['coap.requests.GET'], 2 * n);
    assert.equal(m['coap.requests.PUT'], n);
    assert.equal(m['coap.requests.DELETE'], n);
    assert.equal(m['coap.refused.policy'], 2 * n);
    assert.equal(m['coap.signaling.csm'], 2 * n);
    assert.equal(m['coap.signaling.ping'], n);
    assert.equal(m['coap.signaling.pong'], 3 * n);
    assert.equal(m['coap.observe.registrations'], n);
    assert.equal(m['coap.observe.notifications'], 2 * n);
    assert.equal(m['coap.responses.class.2xx'], 3 * n);
    assert.equal(m['coap.responses.code.2_05'], 3 * n);
    assert.equal(m['coap.route.sensors'], n);
    // the packet log: one object per message, both directions
    const first = packets.slice(0, 12);
    assert.deepEqual(first.map((p) => `${p['direction']} ${p['code']}`).slice(0, 2), ['downstream 7.01', 'downstream 0.01']);
    assert.equal(first[1]!['uri_path'], '/sensors/temp');
    assert.equal(first[1]!['token'], 'a1');
    assert.equal(first[0]!['max_message_size'], 1152);
    plugin.close();
  });

  it('routes by Uri-Host, and by the default route', async () => {
    const { plugin } = await startCoap({ routes: ROUTES });
    const byHost = plugin.newConnection();
    byHost.downstream(cat(CSM_CLIENT, tcpBytes({ code: 'GET', token: tok('01'), options: [{ name: 'Uri-Host', value: Buffer.from('actuators.local') }, ...path('valve')] })));
    assert.equal(byHost.upstreamCluster, 'actuators');
    const other = plugin.newConnection();
    other.downstream(tcpBytes({ code: 'GET', token: tok('01'), options: path('misc') })); // no CSM first: still routed
    assert.equal(other.upstreamCluster, 'fallback');
    plugin.close();
  });

  it('holds a client that sent only its CSM, then sends it to the default route after csm_wait_ms', async () => {
    const { plugin, clock } = await startCoap({ routes: ROUTES, limits: { csm_wait_ms: 50 } });
    const conn = plugin.newConnection();
    const r = conn.downstream(CSM_CLIENT);
    assert.equal(r.action, 'pause');
    assert.equal(conn.proceeded, false);
    clock.now += 20_000_000n;
    plugin.tick();
    assert.equal(conn.proceeded, false, 'still waiting at 20 ms');
    clock.now += 40_000_000n;
    plugin.tick();
    assert.equal(conn.proceeded, true);
    assert.equal(conn.upstreamCluster, 'fallback');
    assert.equal(hex(conn.forwardedDownstream), hex(CSM_CLIENT));
    // later requests pass (the connection's cluster is fixed now)
    conn.upstream(CSM_SERVER);
    const g = conn.downstream(tcpBytes(get));
    assert.equal(hex(g.forwarded), hex(tcpBytes(get)));
    assert.equal(plugin.metrics()['coap.route.csm_only'], 1);
    plugin.close();
  });

  it('enforces limits: token length and option count close the connection, as does message size (own and the server CSM)', async () => {
    const { plugin, logs } = await startCoap({ routes: ROUTES, limits: { max_token_length: 4, max_options: 3, max_message_size: 2048 } });
    const longToken = { code: 'GET', token: tok('0102030405'), options: path('sensors') } as Packet;
    const manyOptions = { code: 'GET', token: tok('02'), options: path('a', 'b', 'c', 'd') } as Packet;
    for (const [p, reason] of [[longToken, 'a token of 5 bytes (limit 4)'], [manyOptions, 'more than 3 options']] as const) {
      const conn = plugin.newConnection();
      conn.downstream(cat(CSM_CLIENT, tcpBytes(get)));
      conn.upstream(CSM_SERVER);
      const r = conn.downstream(tcpBytes(p));
      assert.ok(r.closed, reason);
      assert.equal(r.forwarded.length, 0, 'nothing of it reaches the server');
      assert.ok(logs.some((l) => l.includes(`reason="message from client with ${reason}"`)), logs.join('\n'));
    }
    // the server's CSM said 1152 (0x480) bytes at most: a bigger request closes the connection
    const conn2 = plugin.newConnection();
    conn2.downstream(cat(CSM_CLIENT, tcpBytes(get)));
    conn2.upstream(tcpFrame(0xe1, Buffer.alloc(0), Buffer.from([0x22, 0x04, 0x80])));
    const big = conn2.downstream(tcpBytes({ code: 'PUT', token: tok('03'), options: path('sensors'), payload: Buffer.alloc(1500) }));
    assert.ok(big.closed, 'closed');
    const conn3 = plugin.newConnection();
    const huge = conn3.downstream(tcpBytes({ code: 'PUT', token: tok('03'), options: path('sensors'), payload: Buffer.alloc(3000) }));
    assert.ok(huge.closed, 'closed');
    const m = plugin.metrics();
    assert.equal(m['coap.refused.token_length'], 1);
    assert.equal(m['coap.refused.option_count'], 1);
    assert.equal(m['coap.refused.message_size'], 2);
    assert.ok(logs.some((l) => l.includes("exceeds the server's CSM Max-Message-Size (1152)")), logs.join('\n'));
    plugin.close();
  });

  it('without a policy, split message heads go on at once (no client bytes held back or rewritten)', async () => {
    const { plugin } = await startCoap({ routes: ROUTES }, { packetLog: false });
    const conn = plugin.newConnection();
    conn.downstream(cat(CSM_CLIENT, tcpBytes(get)));
    const stream = Buffer.concat(Array.from({ length: 20 }, (_, i) => tcpBytes({ code: 'PUT', token: tok('0' + (i % 10)), options: path('sensors', String(i)), payload: Buffer.alloc(30, 0x61) })));
    let forwarded = 0;
    for (let at = 0; at < stream.length; at += 7) {
      const chunk = stream.subarray(at, at + 7);
      const r = conn.downstream(chunk);
      assert.equal(Buffer.from(r.forwarded).toString('hex'), chunk.toString('hex'), `chunk at ${at} passes as it came`);
      forwarded += r.forwarded.length;
    }
    assert.equal(forwarded, stream.length);
    assert.equal(plugin.metrics()['coap.requests.PUT'], 20);
    plugin.close();
  });

  it('closes on malformed bytes with a counter and one log line', async () => {
    const { plugin, logs } = await startCoap({ routes: ROUTES });
    const conn = plugin.newConnection();
    const r = conn.downstream(Buffer.from('0901', 'hex')); // token length 9
    assert.ok(r.closed, 'closed');
    const conn2 = plugin.newConnection();
    conn2.downstream(cat(CSM_CLIENT, tcpBytes(get)));
    const r2 = conn2.upstream(Buffer.from('3045f1aaaa', 'hex')); // option nibble 15
    assert.ok(r2.closed, 'closed');
    assert.equal(plugin.metrics()['coap.malformed'], 2);
    const closes = logs.filter((l) => l.includes('coap: connection closed'));
    assert.equal(closes.length, 2, logs.join('\n'));
    assert.match(closes[0]!, /reason="malformed message from client: reserved token length"/);
    assert.match(closes[1]!, /reason="malformed message from server: reserved option nibble 15"/);
    plugin.close();
  });

  it('rejects settings it does not understand, naming the path', async () => {
    const bad = [
      [{ limits: { max_token_length: 9 } }, 'limits.max_token_length'],
      [{ policy: { rules: [{ methods: ['BREW'], action: 'deny' }] } }, 'policy.rules[0].methods'],
      [{ routes: [{ match: { uri: { exact: '/a' } }, cluster: 'x' }] }, 'routes[0].match.uri'],
      [{ transport: 'sctp' }, 'transport'],
    ] as const;
    for (const [config, where] of bad) {
      const logs: string[] = [];
      await assert.rejects(
        (async () => {
          const p = await startCoap(config);
          logs.push(...p.logs);
        })(),
        (err: Error) => err.message.includes(where) || err.message.includes('configure'),
        `${JSON.stringify(config)}`,
      );
    }
  });
});

describe('coap filter over UDP (in-process host, "transport": "udp")', () => {
  it('reports each datagram, drops malformed and refused ones with counters', async () => {
    const { plugin, packets, logs } = await startCoap({ transport: 'udp', routes: [{ cluster: 'coap-udp' }], policy: POLICY });
    const conn = plugin.newConnection();
    const con = udpBytes({ code: 'GET', messageId: 0x1234, confirmable: true, token: tok('c0ffee'), options: [...path('sensors', 'temp'), { name: 'Block2', value: Buffer.from([0x1e]) }] });
    const r1 = conn.downstream(con);
    assert.equal(hex(r1.forwarded), hex(con));
    const r2 = conn.downstream(Buffer.from('40010001f1', 'hex'));
    assert.equal(r2.action, 'continue');
    assert.equal(r2.forwarded.length, 0, 'malformed datagram dropped');
    const admin = udpBytes({ code: 'PUT', messageId: 2, confirmable: true, token: tok('01'), options: path('admin') });
    assert.equal(conn.downstream(admin).forwarded.length, 0, 'refused datagram dropped');
    const ack = udpBytes({ code: '2.05', messageId: 0x1234, ack: true, token: tok('c0ffee'), options: [{ name: 'Block2', value: Buffer.from([0x1e]) }], payload: Buffer.alloc(64) });
    assert.equal(hex(conn.upstream(ack).forwarded), hex(ack));
    assert.equal(conn.closed, undefined);
    assert.deepEqual(packets.map((p) => [p['transport'], p['type'], p['message_id'], p['code'], p['token']]), [
      ['udp', 'CON', 0x1234, '0.01', 'c0ffee'],
      ['udp', 'CON', 2, '0.03', '01'],
      ['udp', 'ACK', 0x1234, '2.05', 'c0ffee'],
    ]);
    assert.deepEqual(packets[0]!['block2'], { num: 1, more: true, size: 1024 });
    assert.equal(packets[0]!['uri_path'], '/sensors/temp');
    const m = plugin.metrics();
    assert.equal(m['coap.malformed'], 1);
    assert.equal(m['coap.refused.policy'], 1);
    assert.equal(m['coap.blocks.block2'], 2);
    assert.equal(logs.filter((l) => l.includes('dropped datagram')).length, 1);
    plugin.close();
  });
});
