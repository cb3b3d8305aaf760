// Differential test against tshark on captures recorded here: dumpcap on the
// loopback while libcoap's client (TCP and UDP) and npm coap (UDP) talk to a
// libcoap server (GET, PUT with Block1, GET with Block2, Observe, DELETE).
// `protoplane replay --filter coap` (no flags) must report exactly the CoAP
// messages tshark decodes, per stream and direction, with the same type or
// signaling code, code, token, message id, Uri-Path, Observe and Block values.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { stopChild } from '../support/children.ts';
import { REPO_ROOT, waitUntil } from '../support/envoy.ts';
import { libcoapClient, npmCoapObserve, npmCoapRequest, startCoapServer, type CoapServer } from './peers.ts';

const run = promisify(execFile);
const TYPES = ['CON', 'NON', 'ACK', 'RST'];

interface Msg {
  key: string; // transport stream direction
  type?: string;
  message_id?: number;
  code: string;
  token: string;
  uri_path?: string;
  observe?: number;
  block1?: { num: number; more: boolean; size: number };
  block2?: { num: number; more: boolean; size: number };
}

const dotted = (code: number) => `${code >> 5}.${String(code & 31).padStart(2, '0')}`;

/** The message id of the pings that wait for the capture to go live (Empty CON, answered with RST). */
const PING_MID = 0x1234;
/**
 * The pings' own flow is left out of the comparison: the first ping or two go
 * out before the capture is live, so the flow may start with the server's RST
 * in the file, and the replay (which takes a flow's first sender for its
 * client) then reads it the other way round from tshark (which goes by port).
 */
const isPing = (m: Msg): boolean => m.key.startsWith('udp') && m.message_id === PING_MID && m.code === '0.00';

/** tshark's CoAP PDUs, in frame order, reduced to the replay's fields. */
async function tsharkMessages(file: string, port: number): Promise<Msg[]> {
  const { stdout } = await run('tshark', ['-r', file, '-d', `tcp.port==${port},coap`, '-d', `udp.port==${port},coap`, '-T', 'json', '--no-duplicate-keys', '-J', 'tcp udp coap'], { maxBuffer: 256 << 20 });
  const frames = JSON.parse(stdout) as Array<{ _source: { layers: Record<string, unknown> } }>;
  const out: Msg[] = [];
  for (const f of frames) {
    const l = f._source.layers;
    if (!l['coap']) continue;
    const udp = l['udp'] as Record<string, string> | undefined;
    const tcp = l['tcp'] as Record<string, string> | undefined;
    const t = udp ?? tcp!;
    const proto = udp ? 'udp' : 'tcp';
    const dir = Number(t[`${proto}.dstport`]) === port ? 'downstream' : 'upstream';
    const client = dir === 'downstream' ? t[`${proto}.srcport`] : t[`${proto}.dstport`];
    const pdus = (Array.isArray(l['coap']) ? l['coap'] : [l['coap']]) as Array<Record<string, unknown>>;
    for (const p of pdus) {
      const code = Number(p['coap.code']);
      const m: Msg = { key: `${proto} ${client} ${dir}`, code: dotted(code), token: String(p['coap.token'] ?? '').replace(/:/g, '') };
      if (proto === 'udp') {
        m.type = TYPES[Number(p['coap.type'])];
        m.message_id = Number(p['coap.mid']);
      }
      const names = ([] as string[]).concat((p['coap.opt.name'] as string[] | string | undefined) ?? []);
      const trees = ([] as Array<Record<string, string>>).concat((p['coap.opt.name_tree'] as Array<Record<string, string>> | undefined) ?? []);
      const segs: string[] = [];
      if (code >> 5 !== 7) {
        names.forEach((name, i) => {
          const o = trees[i] ?? {};
          if (/Uri-Path/.test(name)) segs.push(o['coap.opt.uri_path'] ?? '');
          if (/Observe/.test(name)) m.observe = Number(o['coap.opt.observe'] ?? 0);
          const block = /Block(1|2)/.exec(name);
          if (block) {
            m[block[1] === '1' ? 'block1' : 'block2'] = {
              num: Number(o['coap.opt.block_number'] ?? 0), more: o['coap.opt.block_mflag'] === '1', size: 2 ** (Number(o['coap.opt.block_size'] ?? 0) + 4),
            };
          }
        });
      }
      if (code >= 1 && code < 32) m.uri_path = '/' + segs.join('/');
      out.push(m);
    }
  }
  return out;
}

/** The lines `protoplane replay --filter coap FILE` prints (no flags: one per CoAP message). */
async function replayLines(file: string): Promise<Array<Record<string, unknown> & { conn: number }>> {
  const { stdout } = await run(path.join(REPO_ROOT, 'bin/protoplane'), ['replay', '--filter', 'coap', file], { maxBuffer: 256 << 20, cwd: REPO_ROOT });
  return stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown> & { conn: number });
}

/** What `protoplane replay --filter coap FILE` prints, reduced the same way. */
async function replayMessages(file: string): Promise<Msg[]> {
  const out: Msg[] = [];
  const clients = new Map<number, string>();
  for (const rec of await replayLines(file)) {
    // The shape: transport, code, token, type, message_id, uri_path, ... at the top level.
    if (rec['event'] !== undefined || rec['transport'] === undefined) continue;
    const p = rec;
    const m: Msg = { key: '', code: String(p['code']), token: String(p['token']) };
    if (p['transport'] === 'udp') { m.type = String(p['type']); m.message_id = Number(p['message_id']); }
    for (const k of ['uri_path', 'observe', 'block1', 'block2'] as const) if (p[k] !== undefined) (m as unknown as Record<string, unknown>)[k] = p[k];
    m.key = `${String(p['transport'])} #${rec.conn} ${String(p['direction'])}`;
    clients.set(rec.conn, String(p['transport']));
    out.push(m);
  }
  return out;
}

/** JSON with keys in a fixed order. */
function canonical(m: Msg): string {
  const o = m as unknown as Record<string, unknown>;
  return JSON.stringify(Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]])));
}

/** Groups by key, keeping order; keys are renamed to their order of first appearance per transport (tshark's ports vs replay's conns). */
function byStream(msgs: Msg[]): string[] {
  const firstSeen = new Map<string, number>();
  const order: string[] = [];
  for (const m of msgs) {
    const [proto, who] = m.key.split(' ');
    const stream = `${proto} ${who}`;
    if (!firstSeen.has(stream)) { firstSeen.set(stream, firstSeen.size); order.push(stream); }
  }
  // TCP streams first, then UDP flows, each in order of first appearance (replay prints them so)
  order.sort((a, b) => (a.startsWith('tcp') === b.startsWith('tcp') ? firstSeen.get(a)! - firstSeen.get(b)! : a.startsWith('tcp') ? -1 : 1));
  return order.map((stream) => msgs.filter((m) => m.key.startsWith(stream + ' '))
    .map((m) => canonical({ ...m, key: m.key.split(' ')[2]! })).join('\n'));
}

describe('coap replay agrees with tshark on captures of libcoap and npm coap', { timeout: 120_000 }, () => {
  let server: CoapServer;
  let dir = '';
  let capture = '';

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coap-tshark-'));
    capture = path.join(dir, 'coap.pcapng');
    server = await startCoapServer('capture');
    const dumpcap = spawn('dumpcap', ['-q', '-i', 'lo', '-f', `port ${server.port}`, '-w', capture], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    dumpcap.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    try {
      await waitUntil(() => err.includes('Capturing on') || dumpcap.exitCode !== null, 10_000, 'dumpcap started');
      assert.equal(dumpcap.exitCode, null, `dumpcap: ${err}`);
      // dumpcap says "Capturing on" a little before packets reach the file; a
      // first connection whose SYN is missed would be read the wrong way
      // round (the replay takes the first sender for the client). So CoAP
      // pings (Empty CON, answered RST) go out until one is in the file.
      const probe = dgram.createSocket('udp4');
      try {
        const ping = Buffer.from([0x40, 0x00, PING_MID >> 8, PING_MID & 0xff]);
        await waitUntil(() => {
          probe.send(ping, server.port, '127.0.0.1');
          return fs.existsSync(capture) && fs.readFileSync(capture).includes(ping);
        }, 10_000, 'the capture is live');
      } finally {
        probe.close();
      }
      const big = path.join(dir, 'big.txt');
      fs.writeFileSync(big, crypto.randomBytes(1500).toString('base64')); // 2000 bytes
      for (const uri of [`coap+tcp://127.0.0.1:${server.port}`, `coap://127.0.0.1:${server.port}`]) {
        await libcoapClient(['-m', 'put', '-b', '256', '-f', big], `${uri}/cap/big`);
        await libcoapClient(['-m', 'get', '-b', '256'], `${uri}/cap/big`);
        await libcoapClient(['-s', '3'], `${uri}/time`);
        await libcoapClient(['-m', 'post', '-e', 'x', '-T', 'beef'], `${uri}/cap`);
        await libcoapClient(['-m', 'delete'], `${uri}/cap/big`);
      }
      await npmCoapRequest(server.port, '/cap/n', 'PUT', Buffer.alloc(1000, 0x61));
      await npmCoapRequest(server.port, '/cap/n');
      await npmCoapObserve(server.port, '/time', 2);
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      await stopChild(dumpcap, 'SIGINT');
      await server.close();
    }
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reports every CoAP message tshark decodes, field for field, over TCP and UDP', async () => {
    const ts = (await tsharkMessages(capture, server.port)).filter((m) => !isPing(m));
    const ours = (await replayMessages(capture)).filter((m) => !isPing(m));
    const udp = ts.filter((m) => m.key.startsWith('udp')).length;
    const tcp = ts.length - udp;
    assert.ok(tcp >= 30 && udp >= 30, `tshark decoded the capture (${tcp} TCP, ${udp} UDP messages)`);
    assert.ok(ts.some((m) => m.block1) && ts.some((m) => m.block2) && ts.filter((m) => m.observe !== undefined).length >= 6, 'blocks and observe in the capture');
    assert.equal(ours.length, ts.length, 'one replay line per CoAP message tshark decodes');
    const a = byStream(ts);
    const b = byStream(ours);
    assert.equal(b.length, a.length, 'streams');
    for (let i = 0; i < a.length; i++) assert.equal(b[i], a[i], `stream ${i}`);
  });

  it('prints the fields docs/coap.md documents: type and message_id on UDP only, none undocumented', async () => {
    const lines = await replayLines(capture);
    const always = ['conn', 'direction', 'transport', 'code', 'token', 'options', 'payload_bytes'];
    const optional = ['method', 'signal', 'uri_path', 'uri_host', 'uri_port', 'uri_query', 'observe', 'block1', 'block2', 'content_format', 'accept',
      'max_age', 'size1', 'size2', 'etag', 'max_message_size', 'block_wise_transfer', 'unknown_critical_option'];
    const seen = { tcp: new Set<string>(), udp: new Set<string>() };
    for (const rec of lines) {
      const where = JSON.stringify(rec);
      for (const k of always) assert.ok(k in rec, `${k} in ${where}`);
      const transport = rec['transport'];
      assert.ok(transport === 'tcp' || transport === 'udp', where);
      if (transport === 'udp') {
        assert.ok(TYPES.includes(String(rec['type'])), `type on UDP: ${where}`);
        assert.ok(Number.isInteger(rec['message_id']) && Number(rec['message_id']) >= 0 && Number(rec['message_id']) <= 0xffff, `message_id on UDP: ${where}`);
      } else {
        // RFC 8323 has no message type and no message id: the record has neither (docs/coap.md)
        assert.ok(!('type' in rec) && !('message_id' in rec), `no type or message_id on TCP: ${where}`);
      }
      for (const k of Object.keys(rec)) {
        assert.ok(always.includes(k) || optional.includes(k) || (transport === 'udp' && (k === 'type' || k === 'message_id')), `documented field ${k}: ${where}`);
        seen[transport].add(k);
      }
      assert.match(String(rec['code']), /^[0-7]\.\d\d$/, where);
      assert.match(String(rec['token']), /^([0-9a-f]{2}){0,8}$/, where);
      assert.ok(rec['direction'] === 'downstream' || rec['direction'] === 'upstream', where);
      const cls = Number(String(rec['code']).split('.')[0]);
      const request = cls === 0 && rec['code'] !== '0.00';
      assert.equal('method' in rec && 'uri_path' in rec, request, `method and uri_path exactly on requests: ${where}`);
      if (request) assert.match(String(rec['uri_path']), /^\//, where);
      assert.equal('signal' in rec, cls === 7, `signal exactly on signaling: ${where}`);
      for (const k of ['block1', 'block2'] as const) {
        if (k in rec) assert.deepEqual(Object.keys(rec[k] as object).sort(), ['more', 'num', 'size'], where);
      }
    }
    // libcoap's TCP session opens with CSMs both ways; both transports carry Observe and both Block options
    assert.ok(lines.some((r) => r['transport'] === 'tcp' && r['signal'] === 'csm' && r['direction'] === 'downstream') &&
      lines.some((r) => r['transport'] === 'tcp' && r['signal'] === 'csm' && r['direction'] === 'upstream'), 'CSMs on TCP');
    for (const t of ['tcp', 'udp'] as const) {
      for (const k of ['observe', 'block1', 'block2', 'uri_path', 'method']) assert.ok(seen[t].has(k), `${k} seen on ${t}`);
    }
  });
});
