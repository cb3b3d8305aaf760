// Recording real MQTT traffic and turning it into a pcap for tshark:
// a TCP relay on 127.0.0.1 that records every chunk (direction, bytes, in
// arrival order) per connection, and a writer that lays the chunks out as
// Ethernet/IPv4/TCP packets with a handshake and consistent sequence numbers.
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import type { ReplayStep } from './replay.ts';

const run = promisify(execFile);

export interface RecordedConnection {
  id: number;
  steps: ReplayStep[];
}

export interface Relay {
  readonly port: number;
  readonly connections: RecordedConnection[];
  close(): Promise<void>;
}

/** Relays 127.0.0.1:<port> to 127.0.0.1:<targetPort>, recording both directions. */
export async function startRecordingRelay(targetPort: number): Promise<Relay> {
  const connections: RecordedConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const rec: RecordedConnection = { id: connections.length, steps: [] };
    connections.push(rec);
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.pause();
    upstream.on('connect', () => client.resume());
    client.on('data', (d: Buffer) => { rec.steps.push({ dir: 'downstream', bytes: Buffer.from(d) }); upstream.write(d); });
    upstream.on('data', (d: Buffer) => { rec.steps.push({ dir: 'upstream', bytes: Buffer.from(d) }); client.write(d); });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    for (const s of [client, upstream]) {
      s.on('error', () => { client.destroy(); upstream.destroy(); });
      s.on('close', () => sockets.delete(s));
    }
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
  return {
    port,
    connections,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

const MSS = 1400;

function checksum16(buf: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1]! << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

function packet(src: [number, number], dst: [number, number], seq: number, ack: number, flags: number, payload: Buffer): Buffer {
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(src[1], 0);
  tcp.writeUInt16BE(dst[1], 2);
  tcp.writeUInt32BE(seq >>> 0, 4);
  tcp.writeUInt32BE(ack >>> 0, 8);
  tcp[12] = 5 << 4;
  tcp[13] = flags;
  tcp.writeUInt16BE(65535, 14);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 20 + payload.length, 2);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = 64;
  ip[9] = 6;
  ip.writeUInt32BE(src[0] >>> 0, 12);
  ip.writeUInt32BE(dst[0] >>> 0, 16);
  ip.writeUInt16BE(checksum16(ip), 10);
  // TCP checksum over the pseudo header
  const pseudo = Buffer.alloc(12);
  pseudo.writeUInt32BE(src[0] >>> 0, 0);
  pseudo.writeUInt32BE(dst[0] >>> 0, 4);
  pseudo[9] = 6;
  pseudo.writeUInt16BE(20 + payload.length, 10);
  tcp.writeUInt16BE(checksum16(Buffer.concat([pseudo, tcp, payload])), 16);
  const eth = Buffer.from([0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00]);
  return Buffer.concat([eth, ip, tcp, payload]);
}

/**
 * A pcap of the recorded connections: client 10.0.0.1:<40000+i> to server
 * 10.0.0.2:<serverPort> (the addresses only label the capture).
 */
export function toPcap(connections: RecordedConnection[], serverPort = 1883): Buffer {
  const records: Buffer[] = [];
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(65535, 16);
  header.writeUInt32LE(1, 20); // Ethernet
  let t = 1_700_000_000 * 1e6;
  const add = (frame: Buffer) => {
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(Math.floor(t / 1e6), 0);
    rec.writeUInt32LE(t % 1e6, 4);
    rec.writeUInt32LE(frame.length, 8);
    rec.writeUInt32LE(frame.length, 12);
    records.push(rec, frame);
    t += 100;
  };
  connections.forEach((conn, i) => {
    const client: [number, number] = [0x0a000001, 40000 + i];
    const server: [number, number] = [0x0a000002, serverPort];
    let cseq = 1000, sseq = 5000;
    add(packet(client, server, cseq, 0, 0x02, Buffer.alloc(0)));
    add(packet(server, client, sseq, cseq + 1, 0x12, Buffer.alloc(0)));
    cseq++; sseq++;
    add(packet(client, server, cseq, sseq, 0x10, Buffer.alloc(0)));
    for (const step of conn.steps) {
      const data = Buffer.from(step.bytes);
      for (let at = 0; at < data.length; at += MSS) {
        const seg = data.subarray(at, at + MSS);
        if (step.dir === 'downstream') {
          add(packet(client, server, cseq, sseq, 0x18, seg));
          cseq += seg.length;
        } else {
          add(packet(server, client, sseq, cseq, 0x18, seg));
          sseq += seg.length;
        }
      }
    }
  });
  return Buffer.concat([header, ...records]);
}

/** One decoded MQTT PDU: its tshark fields flattened (first value of each field name, arrays for repeats). */
export interface TsharkPdu {
  stream: number;
  dir: 'downstream' | 'upstream';
  fields: Record<string, string | string[]>;
}

function flatten(node: unknown, out: Record<string, string | string[]>): void {
  if (node === null || typeof node !== 'object') return;
  for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      if (typeof v === 'string') {
        const prev = out[key];
        out[key] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
      } else {
        flatten(v, out);
      }
    }
  }
}

/** Decodes a pcap with tshark (MQTT on serverPort) into PDUs in capture order. */
export async function tsharkDecode(pcapFile: string, serverPort = 1883): Promise<TsharkPdu[]> {
  const { stdout } = await run('tshark', ['-r', pcapFile, '-d', `tcp.port==${serverPort},mqtt`, '-T', 'json', '--no-duplicate-keys', '-J', 'tcp mqtt'], {
    maxBuffer: 256 * 1024 * 1024,
  });
  const frames = JSON.parse(stdout) as Array<{ _source: { layers: Record<string, unknown> } }>;
  const out: TsharkPdu[] = [];
  for (const frame of frames) {
    const layers = frame._source.layers;
    if (!layers.mqtt) continue;
    const tcp = layers.tcp as Record<string, string>;
    const dir = Number(tcp['tcp.dstport']) === serverPort ? 'downstream' : 'upstream';
    const stream = Number(tcp['tcp.stream']);
    const pdus = Array.isArray(layers.mqtt) ? layers.mqtt : [layers.mqtt];
    for (const pdu of pdus) {
      const fields: Record<string, string | string[]> = {};
      flatten(pdu, fields);
      out.push({ stream, dir, fields });
    }
  }
  return out;
}
