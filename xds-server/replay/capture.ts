// Reads TCP conversations (and UDP flows, readDatagrams) out of a capture: classic pcap or pcapng (what
// tcpdump, dumpcap and tshark write), Ethernet / Linux cooked (v1, v2) /
// BSD loopback / raw IP, IPv4 and IPv6. Hand-written because no maintained
// npm package reads both formats and reassembles TCP; this is the small part
// of that a filter replay needs: payloads per direction in sequence order,
// duplicates (retransmissions) dropped. Anything else is not a capture: the
// whole file is one client-to-server byte stream.

export interface Segment {
  /** downstream: client → server; upstream: server → client. */
  direction: 'downstream' | 'upstream';
  data: Uint8Array;
}

export interface TcpConversation {
  client: string;
  server: string;
  segments: Segment[];
}

interface Packet {
  linkType: number;
  data: Uint8Array;
}

const PCAP_MAGICS = new Map<number, boolean>([
  [0xa1b2c3d4, false], // little-endian when read as LE
  [0xd4c3b2a1, true],
  [0xa1b23c4d, false], // nanosecond variant
  [0x4d3cb2a1, true],
]);

function readPcap(bytes: Uint8Array): Packet[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bigEndian = PCAP_MAGICS.get(view.getUint32(0, true))!;
  const le = !bigEndian;
  const linkType = view.getUint32(20, le) & 0xffff;
  const packets: Packet[] = [];
  for (let at = 24; at + 16 <= bytes.length; ) {
    const captured = view.getUint32(at + 8, le);
    const start = at + 16;
    if (start + captured > bytes.length) break; // truncated capture: stop at the last whole packet
    packets.push({ linkType, data: bytes.subarray(start, start + captured) });
    at = start + captured;
  }
  return packets;
}

function readPcapng(bytes: Uint8Array): Packet[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const packets: Packet[] = [];
  let le = true;
  let interfaces: number[] = [];
  for (let at = 0; at + 12 <= bytes.length; ) {
    let type = view.getUint32(at, le);
    if (type === 0x0a0d0d0a) {
      le = view.getUint32(at + 8, true) === 0x1a2b3c4d;
      type = 0x0a0d0d0a;
      interfaces = [];
    }
    const length = view.getUint32(at + 4, le);
    if (length < 12 || at + length > bytes.length) break;
    if (type === 1) interfaces.push(view.getUint16(at + 8, le));
    if (type === 6) {
      const iface = view.getUint32(at + 8, le);
      const captured = view.getUint32(at + 20, le);
      packets.push({ linkType: interfaces[iface] ?? 1, data: bytes.subarray(at + 28, at + 28 + captured) });
    }
    if (type === 3) {
      const captured = view.getUint32(at + 8, le);
      packets.push({ linkType: interfaces[0] ?? 1, data: bytes.subarray(at + 12, at + 12 + Math.min(captured, length - 16)) });
    }
    at += length;
  }
  return packets;
}

/** The IP packet inside a link-layer frame, or undefined. */
function ipPayload({ linkType, data }: Packet): Uint8Array | undefined {
  const u16 = (o: number) => (data[o]! << 8) | data[o + 1]!;
  switch (linkType) {
    case 1: { // Ethernet, with optional 802.1Q tags
      let offset = 12;
      let etherType = u16(offset);
      while (etherType === 0x8100 || etherType === 0x88a8) {
        offset += 4;
        etherType = u16(offset);
      }
      return etherType === 0x0800 || etherType === 0x86dd ? data.subarray(offset + 2) : undefined;
    }
    case 113: return data.subarray(16); // Linux cooked v1
    case 276: return data.subarray(20); // Linux cooked v2
    case 0: return data.subarray(4); // BSD loopback
    case 101: case 228: case 229: return data; // raw IP
    default: return undefined;
  }
}

interface TcpPacket {
  src: string;
  dst: string;
  seq: number;
  syn: boolean;
  payload: Uint8Array;
}

/** An IPv4/IPv6 packet's addresses and payload when it carries `protocol` (6 TCP, 17 UDP); IPv4 fragments only when `fragments` (not reassembled). */
function transportOf(ip: Uint8Array, protocol: number, fragments: boolean): { src: string; dst: string; payload: Uint8Array } | undefined {
  const version = ip[0]! >> 4;
  if (version === 4) {
    if (ip[9] !== protocol) return undefined;
    if (!fragments && ((((ip[6]! & 0x1f) << 8) | ip[7]!) !== 0 || (ip[6]! & 0x20) !== 0)) return undefined;
    const end = Math.min(ip.length, (ip[2]! << 8) | ip[3]!);
    return { src: [...ip.subarray(12, 16)].join('.'), dst: [...ip.subarray(16, 20)].join('.'), payload: ip.subarray((ip[0]! & 0x0f) * 4, end) };
  }
  if (version === 6) {
    if (ip[6] !== protocol) return undefined; // extension headers are not followed
    const hex = (b: Uint8Array) => Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16)).join(':');
    const end = Math.min(ip.length, 40 + ((ip[4]! << 8) | ip[5]!));
    return { src: `[${hex(ip.subarray(8, 24))}]`, dst: `[${hex(ip.subarray(24, 40))}]`, payload: ip.subarray(40, end) };
  }
  return undefined;
}

function tcpOf(ip: Uint8Array): TcpPacket | undefined {
  const packet = transportOf(ip, 6, true);
  if (!packet) return undefined;
  const { src, dst, payload: tcp } = packet;
  if (tcp.length < 20) return undefined;
  const port = (o: number) => (tcp[o]! << 8) | tcp[o + 1]!;
  const seq = ((tcp[4]! << 24) | (tcp[5]! << 16) | (tcp[6]! << 8) | tcp[7]!) >>> 0;
  const headerLength = (tcp[12]! >> 4) * 4;
  return { src: `${src}:${port(0)}`, dst: `${dst}:${port(2)}`, seq, syn: (tcp[13]! & 0x02) !== 0, payload: tcp.subarray(headerLength) };
}

/** A UDP flow (one client address and port, one server): its datagrams in capture order. */
export interface UdpFlow {
  client: string;
  server: string;
  /** One Segment per datagram. */
  datagrams: Segment[];
}

function udpOf(ip: Uint8Array): { src: string; dst: string; payload: Uint8Array } | undefined {
  const packet = transportOf(ip, 17, false); // fragments are not reassembled
  if (!packet) return undefined;
  const { src, dst, payload: udp } = packet;
  if (udp.length < 8) return undefined;
  const port = (o: number) => (udp[o]! << 8) | udp[o + 1]!;
  const length = Math.min(udp.length, port(4));
  return { src: `${src}:${port(0)}`, dst: `${dst}:${port(2)}`, payload: udp.subarray(8, length) };
}

/**
 * UDP flows of a capture, in the order they start: the side that sent a
 * flow's first datagram is its client (as udp_proxy makes one session per
 * client address and port). Empty for a non-capture.
 */
export function readDatagrams(bytes: Uint8Array): UdpFlow[] {
  if (!isCapture(bytes)) return [];
  const magic = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  const packets = magic === 0x0a0d0d0a ? readPcapng(bytes) : readPcap(bytes);
  const flows = new Map<string, UdpFlow>();
  for (const packet of packets) {
    const ip = ipPayload(packet);
    const udp = ip && udpOf(ip);
    if (!udp) continue;
    const key = [udp.src, udp.dst].sort().join(' ');
    let flow = flows.get(key);
    if (!flow) {
      flow = { client: udp.src, server: udp.dst, datagrams: [] };
      flows.set(key, flow);
    }
    flow.datagrams.push({ direction: udp.src === flow.client ? 'downstream' : 'upstream', data: udp.payload });
  }
  return [...flows.values()];
}

export function isCapture(bytes: Uint8Array): boolean {
  if (bytes.length < 24) return false;
  const magic = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  return PCAP_MAGICS.has(magic) || magic === 0x0a0d0d0a;
}

/** TCP conversations of a capture, in the order they start; a non-capture is one downstream stream. */
export function readConversations(bytes: Uint8Array): TcpConversation[] {
  if (!isCapture(bytes)) return [{ client: 'raw', server: 'raw', segments: [{ direction: 'downstream', data: bytes }] }];
  const magic = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  const packets = magic === 0x0a0d0d0a ? readPcapng(bytes) : readPcap(bytes);
  const conversations = new Map<string, TcpConversation & { next: Map<string, number> }>();
  for (const packet of packets) {
    const ip = ipPayload(packet);
    const tcp = ip && tcpOf(ip);
    if (!tcp) continue;
    const key = [tcp.src, tcp.dst].sort().join(' ');
    let conversation = conversations.get(key);
    if (!conversation) {
      // The side that sent the first packet (normally the SYN) is the client.
      conversation = { client: tcp.src, server: tcp.dst, segments: [], next: new Map() };
      conversations.set(key, conversation);
    }
    const sender = tcp.src;
    if (tcp.syn) {
      conversation.next.set(sender, (tcp.seq + 1) >>> 0);
      continue;
    }
    if (tcp.payload.length === 0) continue;
    const expected = conversation.next.get(sender);
    if (expected !== undefined && ((tcp.seq - expected) | 0) < 0) continue; // retransmission
    conversation.next.set(sender, (tcp.seq + tcp.payload.length) >>> 0);
    conversation.segments.push({ direction: sender === conversation.client ? 'downstream' : 'upstream', data: tcp.payload });
  }
  return [...conversations.values()].map(({ client, server, segments }) => ({ client, server, segments }));
}
