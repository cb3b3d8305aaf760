// The CoAP parser on its own (no host): every message of a corpus built by
// npm coap-packet, as a UDP datagram and as an RFC 8323 frame, reports what
// coap-packet reads from it; signaling; the option extensions; every kind of
// malformed input; the proxy's own 4.03 reply.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coapProbe, TCP, UDP } from './probe.ts';
import { corpus, expected, mismatch, signalingFrames, tcpBytes, tcpFrame, udpBytes } from './packets.ts';

describe('coap parser', () => {
  it('reports every corpus message as coap-packet parses it, over UDP and TCP', async () => {
    const probe = await coapProbe();
    for (const [i, p] of corpus().entries()) {
      for (const transport of ['udp', 'tcp'] as const) {
        const bytes = transport === 'udp' ? udpBytes(p) : tcpBytes(p);
        const got = probe.describe(transport === 'udp' ? UDP : TCP, bytes);
        const bad = mismatch(got, expected(p, transport));
        assert.equal(bad, undefined, `message ${i} over ${transport}: ${bad}\n${JSON.stringify(got)}`);
        if (transport === 'tcp') assert.equal(probe.frameLength(bytes), bytes.length, `message ${i}: frame length`);
      }
    }
  });

  it('reads a TCP message from its head alone (up to the payload marker), under every cut', async () => {
    const probe = await coapProbe();
    for (const [i, p] of corpus().entries()) {
      const frame = tcpBytes(p);
      const head = probe.headLength(frame, frame.length);
      assert.ok(head > 0 && head <= frame.length, `message ${i}: head ${head}`);
      const payload = (p.payload ?? Buffer.alloc(0)).length;
      assert.equal(head, frame.length - payload, `message ${i}: the head ends at the payload`);
      for (let cut = 1; cut < head; cut++) {
        const n = probe.headLength(frame, cut); // -1, or already the whole head (the last option's value bytes are not needed to know it)
        assert.ok(n === -1 || n === head, `message ${i}: ${cut} of ${head} head bytes: ${n}`);
      }
      assert.deepEqual(probe.describeHead(frame, head), probe.describe(TCP, frame), `message ${i}: head parse = whole parse`);
    }
  });

  it('decodes the signaling messages of RFC 8323 (CSM options, Ping, Pong, Release, Abort)', async () => {
    const probe = await coapProbe();
    for (const f of signalingFrames()) {
      const got = probe.describe(TCP, f.bytes);
      const { bytes: _, ...want } = f;
      assert.equal(mismatch(got, want), undefined, `${f.signal}: ${JSON.stringify(got)}`);
      assert.equal(got['unknown_critical_option'], undefined, f.signal);
    }
    // a critical CSM option this parser does not know is reported
    const odd = probe.describe(TCP, tcpFrame(0xe1, Buffer.alloc(0), Buffer.from([0x51, 0x01])));
    assert.equal(odd['unknown_critical_option'], 5);
  });

  it('frames all four TCP length forms (Len < 13, 13, 14, 15)', async () => {
    const probe = await coapProbe();
    for (const size of [0, 12, 13, 268, 269, 65804, 65805, 70000]) {
      const rest = size === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0xff]), Buffer.alloc(size - 1, 0x41)]);
      const frame = tcpFrame(0x45, Buffer.from('beef', 'hex'), rest);
      assert.equal(probe.frameLength(frame), frame.length, `size ${size}`);
      for (let cut = 1; cut < Math.min(frame.length, 8); cut++) {
        const n = probe.frameLength(frame.subarray(0, cut));
        assert.ok(n === -1 || n === frame.length, `size ${size}, first ${cut} bytes: ${n}`);
      }
      const got = probe.describe(TCP, frame);
      assert.equal(got['code'], '2.05');
      assert.equal(got['token'], 'beef');
      assert.equal(got['payload_bytes'], Math.max(size - 1, 0), `size ${size}`);
    }
  });

  it('rejects malformed messages with a reason and never traps', async () => {
    const probe = await coapProbe();
    const cases: Array<[number, string, string]> = [
      [UDP, '80010001', 'bad version'],
      [UDP, '49010001', 'reserved token length'],
      [UDP, '440100', 'truncated message'],
      [UDP, '44010001aabb', 'truncated message'],
      [UDP, '40010001f1', 'reserved option nibble 15'],
      [UDP, '400100011f', 'reserved option nibble 15'],
      [UDP, '40010001ff', 'payload marker without payload'],
      [UDP, '40010001b4616263', 'truncated message'],
      [UDP, '40010001d1', 'truncated message'],
      [UDP, '40010001e100', 'truncated message'],
      [UDP, '41000001aa', 'empty message with content'],
      [UDP, '6000000141', 'empty message with content'],
      [UDP, '40010001eeffff', 'truncated message'],
      [TCP, '0901', 'reserved token length'],
      [TCP, '3001b1', 'truncated message'],
      [TCP, '1001ff', 'payload marker without payload'],
    ];
    for (const [t, hex, reason] of cases) {
      assert.deepEqual(probe.describe(t, Buffer.from(hex, 'hex')), { error: reason }, `${t === UDP ? 'udp' : 'tcp'} ${hex}`);
    }
    // option number past 65535: delta 14 form twice
    const over = Buffer.concat([Buffer.from('40010001', 'hex'), Buffer.from([0xe0, 0xff, 0x00, 0xe0, 0x01, 0x00])]);
    assert.deepEqual(probe.describe(UDP, over), { error: 'option number past 65535' });
    // the caller's option limit
    const many = udpBytes({ code: 'GET', messageId: 1, options: Array.from({ length: 5 }, () => ({ name: 'Uri-Path' as const, value: Buffer.from('a') })) });
    assert.deepEqual(probe.describe(UDP, many, 4), { error: 'too many options' });
    assert.equal(probe.describe(UDP, many, 5)['uri_path'], '/a/a/a/a/a');
  });

  it('treats a known option with a length outside its range as unrecognised (critical: reported)', async () => {
    const probe = await coapProbe();
    // Uri-Port (7, critical) with 3 bytes; Max-Age (14, elective) with 5 bytes
    const bytes = Buffer.concat([Buffer.from('40010001', 'hex'), Buffer.from([0x73, 1, 2, 3, 0x75, 1, 2, 3, 4, 5])]);
    const got = probe.describe(UDP, bytes);
    assert.equal(got['unknown_critical_option'], 7);
    assert.equal(got['uri_port'], undefined);
    assert.equal(got['max_age'], undefined);
  });

  it('builds 4.03 replies with the request token: ACK with the message id for CON, NON otherwise, a frame on TCP', async () => {
    const probe = await coapProbe();
    const con = udpBytes({ code: 'GET', messageId: 4242, token: Buffer.from('0badcafe', 'hex'), confirmable: true, options: [{ name: 'Uri-Path', value: Buffer.from('admin') }] });
    assert.equal(mismatch(probe.forbiddenFor(UDP, con), { type: 'ACK', message_id: 4242, code: '4.03', token: '0badcafe', payload_bytes: 9 }), undefined);
    const non = udpBytes({ code: 'GET', messageId: 7, token: Buffer.from('01', 'hex'), options: [] });
    assert.equal(mismatch(probe.forbiddenFor(UDP, non), { type: 'NON', message_id: 0x1234, code: '4.03', token: '01' }), undefined);
    const tcp = tcpBytes({ code: 'PUT', messageId: 1, token: Buffer.from('0102030405060708', 'hex'), options: [{ name: 'Uri-Path', value: Buffer.from('admin') }], payload: Buffer.from('x') });
    assert.equal(mismatch(probe.forbiddenFor(TCP, tcp), { transport: 'tcp', code: '4.03', token: '0102030405060708', payload_bytes: 9 }), undefined);
  });
});
