// CoAP messages for the tests, built by npm coap-packet (RFC 7252), and what a
// reader should report for each (computed from coap-packet's own parse, not
// from our parser). RFC 8323 frames are made from the same messages: the
// options and payload of the datagram behind a length header and the code.
import coapPacket, { type Packet } from 'coap-packet';

export type Transport = 'udp' | 'tcp';

const b = (s: string) => Buffer.from(s);
const uint = (n: number): Buffer => {
  if (n === 0) return Buffer.alloc(0);
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return Buffer.from(out);
};
const block = (num: number, more: boolean, szx: number) => uint(num * 16 + (more ? 8 : 0) + szx);

/** A corpus covering every option the parser decodes, 13/14 extensions, and the four types. */
export function corpus(): Packet[] {
  const long = 'coap://h/' + 'x'.repeat(300); // option length 14 form (269+)
  return [
    { code: 'GET', messageId: 1, token: Buffer.from('a1b2', 'hex'), confirmable: true, options: [
      { name: 'Uri-Host', value: b('sensors.example') }, { name: 'Uri-Port', value: uint(5683) },
      { name: 'Uri-Path', value: b('sensors') }, { name: 'Uri-Path', value: b('temp') },
      { name: 'Uri-Query', value: b('unit=c') }, { name: 'Accept', value: uint(50) }] },
    { code: 'GET', messageId: 2, token: Buffer.from('0102030405060708', 'hex'), confirmable: true, options: [
      { name: 'Observe', value: uint(0) }, { name: 'Uri-Path', value: b('time') }] },
    { code: '2.05', messageId: 3, token: Buffer.from('01', 'hex'), ack: true, options: [
      { name: 'ETag', value: Buffer.from('cafe', 'hex') }, { name: 'Observe', value: uint(70000) },
      { name: 'Content-Format', value: uint(0) }, { name: 'Max-Age', value: uint(60) }], payload: b('Dec 06 14:10:42') },
    { code: 'PUT', messageId: 4, token: Buffer.from('ff', 'hex'), confirmable: true, options: [
      { name: 'Uri-Path', value: b('big') }, { name: 'Content-Format', value: uint(42) },
      { name: 'Block1', value: block(3, true, 6) }, { name: 'Size1', value: uint(6668) }], payload: Buffer.alloc(1024, 0x61) },
    { code: '2.31', messageId: 5, token: Buffer.from('ff', 'hex'), ack: true, options: [{ name: 'Block1', value: block(3, true, 6) }] },
    { code: '2.05', messageId: 6, token: Buffer.from('02', 'hex'), options: [
      { name: 'Block2', value: block(1000, true, 2) }, { name: 'Size2', value: uint(100000) }], payload: Buffer.alloc(64, 0x62) },
    { code: 'POST', messageId: 7, token: Buffer.alloc(0), options: [{ name: 'Uri-Path', value: b('p') }, { name: 'Proxy-Uri', value: b(long) }], payload: b('p') },
    { code: 'DELETE', messageId: 8, token: Buffer.from('0a0b0c', 'hex'), confirmable: true, options: [{ name: 'Uri-Path', value: b('sensors') }, { name: 'Uri-Path', value: b('') }] },
    { code: '0.00', messageId: 9, token: Buffer.alloc(0), ack: true },
    { code: '0.00', messageId: 10, token: Buffer.alloc(0), reset: true },
    { code: '4.04', messageId: 11, token: Buffer.from('77', 'hex'), payload: b('not here') },
    { code: 'FETCH', messageId: 12, token: Buffer.from('12', 'hex'), confirmable: true, options: [{ name: 'Uri-Path', value: b('q') }, { name: 'No-Response', value: uint(2) }] },
    // an unknown critical option (65001, odd, delta and length extensions) and an unknown elective one (2048)
    { code: 'GET', messageId: 13, token: Buffer.from('13', 'hex'), confirmable: true, options: [{ name: 'Uri-Path', value: b('x') }, { name: 2048, value: b('e') }, { name: 65001, value: b('c') }] },
  ];
}

/** The datagram as coap-packet encodes it. */
export function udpBytes(p: Packet): Buffer {
  return coapPacket.generate(p, 65535);
}

/** RFC 8323 §3.2 frame of the same message: Len|TKL, extension, code, token, options and payload. */
export function tcpBytes(p: Packet): Buffer {
  const udp = udpBytes(p);
  const tkl = udp[0]! & 0x0f;
  const code = udp[1]!;
  const token = udp.subarray(4, 4 + tkl);
  const rest = udp.subarray(4 + tkl);
  return tcpFrame(code, token, rest);
}

export function tcpFrame(code: number, token: Uint8Array, rest: Uint8Array): Buffer {
  const len = rest.length;
  let head: number[];
  if (len < 13) head = [(len << 4) | token.length];
  else if (len < 269) head = [(13 << 4) | token.length, len - 13];
  else if (len < 65805) head = [(14 << 4) | token.length, (len - 269) >> 8, (len - 269) & 0xff];
  else {
    const v = len - 65805;
    head = [(15 << 4) | token.length, (v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  }
  return Buffer.concat([Buffer.from(head), Buffer.from([code]), token, rest]);
}

/** CSM (7.01) with Max-Message-Size and Block-Wise-Transfer; Ping, Pong, Release, Abort. */
export function signalingFrames(): Array<{ bytes: Buffer; code: string; signal: string; max_message_size?: number; block_wise_transfer?: boolean }> {
  return [
    // option 2 (delta 2, length 3) = 1152; option 4 (delta 2, length 0)
    { bytes: tcpFrame(0xe1, Buffer.alloc(0), Buffer.from([0x23, 0x00, 0x04, 0x80, 0x20])), code: '7.01', signal: 'csm', max_message_size: 1152, block_wise_transfer: true },
    { bytes: tcpFrame(0xe2, Buffer.from('01', 'hex'), Buffer.from([0x20])), code: '7.02', signal: 'ping' },
    { bytes: tcpFrame(0xe3, Buffer.from('01', 'hex'), Buffer.alloc(0)), code: '7.03', signal: 'pong' },
    { bytes: tcpFrame(0xe4, Buffer.alloc(0), Buffer.from([0x41, 0x3c])), code: '7.04', signal: 'release' },
    { bytes: tcpFrame(0xe5, Buffer.alloc(0), Buffer.from([0xff, ...b('bye')])), code: '7.05', signal: 'abort' },
  ];
}

const CRITICAL_KNOWN = new Set([1, 3, 5, 7, 9, 11, 15, 17, 19, 23, 27, 31, 35, 39, 258 /* elective, listed for length */]);

/** What the parser must report for a message, from coap-packet's parse of the datagram. */
export function expected(p: Packet, transport: Transport): Record<string, unknown> {
  const parsed = coapPacket.parse(udpBytes(p));
  const code = parsed.code;
  const out: Record<string, unknown> = { transport, code, token: parsed.token.toString('hex') };
  if (transport === 'udp') {
    out['type'] = parsed.reset ? 'RST' : parsed.ack ? 'ACK' : parsed.confirmable ? 'CON' : 'NON';
    out['message_id'] = parsed.messageId;
  }
  const [cls] = code.split('.').map(Number);
  const number = (o: { name: string | number }): number => (typeof o.name === 'number' ? o.name : OPTION_NUMBERS[o.name] ?? Number(o.name));
  const opts = parsed.options.map((o) => ({ n: number(o), v: o.value }));
  const num = (v: Buffer) => v.reduce((a, x) => a * 256 + x, 0);
  const blk = (v: Buffer) => { const n = num(v); return { num: Math.floor(n / 16), more: (n & 8) !== 0, size: 2 ** ((n & 7) + 4) }; };
  if (cls === 0 && code !== '0.00') out['uri_path'] = '/' + opts.filter((o) => o.n === 11).map((o) => o.v.toString()).join('/');
  for (const o of opts) {
    if (o.n === 6) out['observe'] = num(o.v);
    if (o.n === 27) out['block1'] = blk(o.v);
    if (o.n === 23) out['block2'] = blk(o.v);
    if (o.n === 60) out['size1'] = num(o.v);
    if (o.n === 28) out['size2'] = num(o.v);
    if (o.n === 12) out['content_format'] = num(o.v);
    if (o.n === 17) out['accept'] = num(o.v);
    if (o.n === 14) out['max_age'] = num(o.v);
    if (o.n === 7) out['uri_port'] = num(o.v);
    if (o.n === 3) out['uri_host'] = o.v.toString();
    if (o.n === 4 && out['etag'] === undefined) out['etag'] = o.v.toString('hex');
  }
  const queries = opts.filter((o) => o.n === 15).map((o) => o.v.toString());
  if (queries.length > 0) out['uri_query'] = queries;
  const unknown = opts.find((o) => o.n % 2 === 1 && !CRITICAL_KNOWN.has(o.n));
  if (unknown) out['unknown_critical_option'] = unknown.n;
  out['options'] = opts.length;
  out['payload_bytes'] = parsed.payload.length;
  return out;
}

const OPTION_NUMBERS: Record<string, number> = {
  'If-Match': 1, 'Uri-Host': 3, ETag: 4, 'If-None-Match': 5, Observe: 6, 'Uri-Port': 7, 'Location-Path': 8, OSCORE: 9,
  'Uri-Path': 11, 'Content-Format': 12, 'Max-Age': 14, 'Uri-Query': 15, 'Hop-Limit': 16, Accept: 17, 'Q-Block1': 19,
  'Location-Query': 20, Block2: 23, Block1: 27, Size2: 28, 'Q-Block2': 31, 'Proxy-Uri': 35, 'Proxy-Scheme': 39, Size1: 60,
  'No-Response': 258,
};

/** The fields of `actual` that `expect` names, compared; a message naming the first difference, or undefined. */
export function mismatch(actual: Record<string, unknown>, expect: Record<string, unknown>): string | undefined {
  for (const [k, v] of Object.entries(expect)) {
    if (JSON.stringify(actual[k]) !== JSON.stringify(v)) return `${k}: got ${JSON.stringify(actual[k])}, want ${JSON.stringify(v)}`;
  }
  return undefined;
}
