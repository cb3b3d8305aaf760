// protoplane replay: TCP conversations read out of pcap and pcapng captures
// (written here byte by byte, as tcpdump and dumpcap would), and the
// contract filter replayed over them in the in-process host.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { readConversations, replay, withPacketLog, type ReplayLine } from '../../xds-server/replay/index.ts';
import { loadFilter } from '../../xds-server/catalog/index.ts';
import { REPO_ROOT } from '../support/envoy.ts';

const exec = promisify(execFile);

interface Frame {
  from: 'client' | 'server';
  seq: number;
  syn?: boolean;
  payload?: string;
}

const CLIENT = { ip: [10, 0, 0, 1], port: 40001 };
const SERVER = { ip: [10, 0, 0, 2], port: 1883 };

/** An Ethernet + IPv4 + TCP frame. */
function ethernetFrame(f: Frame): Buffer {
  const [src, dst] = f.from === 'client' ? [CLIENT, SERVER] : [SERVER, CLIENT];
  const payload = Buffer.from(f.payload ?? '', 'latin1');
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(src.port, 0);
  tcp.writeUInt16BE(dst.port, 2);
  tcp.writeUInt32BE(f.seq >>> 0, 4);
  tcp[12] = 5 << 4;
  tcp[13] = f.syn ? 0x02 : 0x18;
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 20 + payload.length, 2);
  ip[8] = 64;
  ip[9] = 6;
  Buffer.from(src.ip).copy(ip, 12);
  Buffer.from(dst.ip).copy(ip, 16);
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(0x0800, 12);
  return Buffer.concat([eth, ip, tcp, payload]);
}

function pcap(frames: Frame[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(65535, 16);
  header.writeUInt32LE(1, 20);
  return Buffer.concat([
    header,
    ...frames.flatMap((f) => {
      const data = ethernetFrame(f);
      const record = Buffer.alloc(16);
      record.writeUInt32LE(data.length, 8);
      record.writeUInt32LE(data.length, 12);
      return [record, data];
    }),
  ]);
}

function pcapng(frames: Frame[]): Buffer {
  const block = (type: number, body: Buffer) => {
    const padded = Buffer.concat([body, Buffer.alloc((4 - (body.length % 4)) % 4)]);
    const out = Buffer.alloc(12 + padded.length);
    out.writeUInt32LE(type, 0);
    out.writeUInt32LE(out.length, 4);
    padded.copy(out, 8);
    out.writeUInt32LE(out.length, out.length - 4);
    return out;
  };
  const shb = Buffer.alloc(16);
  shb.writeUInt32LE(0x1a2b3c4d, 0);
  shb.writeUInt16LE(1, 4);
  shb.writeBigInt64LE(-1n, 8);
  const idb = Buffer.alloc(8);
  idb.writeUInt16LE(1, 0);
  idb.writeUInt32LE(65535, 4);
  const epbs = frames.map((f) => {
    const data = ethernetFrame(f);
    const head = Buffer.alloc(20);
    head.writeUInt32LE(data.length, 12);
    head.writeUInt32LE(data.length, 16);
    return block(6, Buffer.concat([head, data]));
  });
  return Buffer.concat([block(0x0a0d0d0a, shb), block(1, idb), ...epbs]);
}

const CONVERSATION: Frame[] = [
  { from: 'client', seq: 1000, syn: true },
  { from: 'server', seq: 5000, syn: true },
  { from: 'client', seq: 1001, payload: 'A: hello ' },
  { from: 'client', seq: 1010, payload: 'MARK\n' },
  { from: 'client', seq: 1010, payload: 'MARK\n' }, // retransmission
  { from: 'server', seq: 5001, payload: 'a:A: hello mark\n' },
];

describe('protoplane replay', () => {
  for (const [format, write] of [['pcap', pcap], ['pcapng', pcapng]] as const) {
    it(`reads TCP conversations from ${format}, in order, without retransmissions`, () => {
      const [conversation, ...rest] = readConversations(new Uint8Array(write(CONVERSATION)));
      assert.equal(rest.length, 0);
      assert.equal(conversation!.client, '10.0.0.1:40001');
      assert.equal(conversation!.server, '10.0.0.2:1883');
      assert.deepEqual(
        conversation!.segments.map((s) => [s.direction, Buffer.from(s.data).toString()]),
        [['downstream', 'A: hello '], ['downstream', 'MARK\n'], ['upstream', 'a:A: hello mark\n']],
      );
    });
  }

  it('treats a file that is not a capture as raw client bytes', () => {
    const [conversation] = readConversations(new TextEncoder().encode('just bytes\n'));
    assert.deepEqual(conversation!.segments.map((s) => s.direction), ['downstream']);
  });

  it('prints one JSON line per thing the filter did, as the CLI', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-replay-'));
    fs.writeFileSync(path.join(dir, 'c.pcapng'), pcapng(CONVERSATION));
    fs.writeFileSync(path.join(dir, 'contract.json'), JSON.stringify({ route_prefix: 'A:', route_cluster: 'a', default_cluster: 'b' }));
    const { stdout } = await exec(
      path.join(REPO_ROOT, 'bin/protoplane'),
      ['replay', '--filter', 'contract', '--config', path.join(dir, 'contract.json'), '--chunk', '2', path.join(dir, 'c.pcapng')],
      { cwd: REPO_ROOT },
    );
    fs.rmSync(dir, { recursive: true });
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines[0], { conn: 1, event: 'connection', client: '10.0.0.1:40001', server: '10.0.0.2:1883' });
    assert.ok(lines.some((l) => l.event === 'filter_state' && l.path === 'envoy.tcp_proxy.cluster' && l.value === 'a'));
    assert.ok(lines.some((l) => l.event === 'proceed' && l.cluster === 'a'));
    const released = lines.filter((l) => l.event === 'release' && l.direction === 'downstream').map((l) => l.text).join('');
    assert.equal(released, 'A: hello mark\n');
    const metrics = lines.at(-1)!;
    assert.equal(metrics.event, 'metrics');
    assert.equal((metrics.metrics as Record<string, number>)['contract.frames'], 1);
  });

  it('prints the parsed messages by default (packet-log convention), and with trace the ABI events around them', async () => {
    const frame = (body: string) => String.fromCharCode(0, 0, 0, body.length) + body;
    const capture = pcap([
      { from: 'client', seq: 1000, syn: true },
      { from: 'server', seq: 5000, syn: true },
      { from: 'client', seq: 1001, payload: frame('fleet-1') + frame('secret').slice(0, 7) },
      { from: 'client', seq: 1019, payload: frame('secret').slice(7) + frame('ok') },
      { from: 'server', seq: 5001, payload: frame('fleet-1') + frame('ping') + frame('ok') },
    ]);
    const module = await loadFilter('toy');
    const run = async (trace: boolean) => {
      const lines: ReplayLine[] = [];
      await replay(
        { module, filterName: 'toy', configuration: withPacketLog('{"deny":[{"prefix":"secret"}]}'), conversations: readConversations(new Uint8Array(capture)), chunkSize: 3, trace },
        (l) => lines.push(l),
      );
      return lines;
    };
    const plain = await run(false);
    assert.ok(plain.every((l) => l.event === undefined && l.packet === undefined), 'a message line carries the filter\'s fields at the top level');
    assert.deepEqual(plain.map((l) => [l.conn, l.direction, l.type, l.body, l.verdict]), [
      [1, 'downstream', 'hello', 'fleet-1', 'forward'],
      [1, 'downstream', 'request', 'secret', 'reply'],
      [1, 'downstream', 'request', 'ok', 'forward'],
      [1, 'upstream', 'response', 'fleet-1', 'forward'],
      [1, 'upstream', 'response', 'ping', 'replace'],
      [1, 'upstream', 'response', 'ok', 'forward'],
    ]);
    const traced = await run(true);
    assert.deepEqual(traced.filter((l) => l.event === undefined), plain, 'the same messages, in the same order');
    assert.deepEqual(traced[0], { conn: 1, event: 'connection', client: '10.0.0.1:40001', server: '10.0.0.2:1883' });
    assert.ok(traced.some((l) => l.event === 'data' && l.direction === 'downstream'));
    assert.ok(traced.some((l) => l.event === 'rewrite' && l.direction === 'upstream'), 'the refusal replaced the answer');
    assert.equal(traced.at(-1)!.event, 'metrics');
    assert.ok(!traced.some((l) => l.event === 'log' && String(l.message).startsWith('packet ')), 'packet lines are structured, not log strings');
  });
});
