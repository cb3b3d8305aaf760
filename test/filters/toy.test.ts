// The toy length-prefixed filter (filters/toy/) in the in-process host: the
// SDK's framed-stream layer under every split point of both directions —
// routing on the first frame, drops, rewrites, in-order injected replies,
// payload skipping, truncation, oversize frames, deadlines on tick, the
// packet log and the one close log line.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { type FilterConnection, type WasmFilterModule, type WasmPlugin } from '../../xds-server/wasm-host/index.ts';
import { loadFilter } from '../../xds-server/catalog/index.ts';
import { splitAt } from '../support/bytes.ts';
import { rng } from '../support/random.ts';

/** A frame: 4-byte big-endian body length, then the body. */
function frame(body: string | Buffer): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const head = Buffer.alloc(4);
  head.writeUInt32BE(b.length, 0);
  return Buffer.concat([head, b]);
}

function frames(...bodies: (string | Buffer)[]): Buffer {
  return Buffer.concat(bodies.map(frame));
}

const POLICY = {
  deny: [{ prefix: 'secret' }],
  drop: [{ exact: 'noise' }],
  rewrite: 'upper',
  routes: [{ match: { key: { regex: 'fleet-[0-9]+' } }, cluster: 'fleet' }, { cluster: 'others' }],
};

const BIG = 'x'.repeat(70_000); // past the layer's large-frame window
const CLIENT = frames('fleet-7', 'a', 'secret-1', 'noise', 'b', 'secret-2', BIG);
/** What reaches the server: rewritten requests, the solicit frame for each refusal, no dropped frame. */
const UPSTREAM = frames('fleet-7', 'A', 'ping', 'B', 'ping', BIG.toUpperCase());
/** The server (an echo) answers each frame it got; the client sees the proxy's refusals in their places. */
const SERVER = UPSTREAM;
const CLIENT_SEES = frames('fleet-7', 'A', 'denied', 'B', 'denied', BIG.toUpperCase());

let toy: WasmFilterModule;
before(async () => {
  toy = await loadFilter('toy');
});

function start(configuration: object, extra: { logs?: string[]; clock?: { realtimeNs(): bigint; monotonicNs(): bigint } } = {}): Promise<WasmPlugin> {
  return toy.instantiate({
    name: 'toy',
    configuration,
    logLevel: 'debug',
    defaultCluster: 'tcp_proxy_default',
    record: false,
    ...(extra.clock ? { clock: extra.clock } : {}),
    onLog: (e) => extra.logs?.push(`${e.level} ${e.message}`),
  });
}

function feed(conn: FilterConnection, dir: 'downstream' | 'upstream', chunks: Buffer[]): Buffer {
  const out: Uint8Array[] = [];
  for (const c of chunks) {
    const r = dir === 'downstream' ? conn.downstream(c) : conn.upstream(c);
    assert.notEqual(r.action, 'closed', `closed: ${JSON.stringify(r.closed)}`);
    if (r.forwarded.length > 0) out.push(r.forwarded);
  }
  return Buffer.concat(out);
}

/** Cut points: every single cut, around each frame boundary every pair, and random chunkings. */
function chunkings(data: Buffer, seed: number): Buffer[][] {
  const out: Buffer[][] = [[data]];
  for (let c = 1; c < data.length; c++) if (c < 200 || c > data.length - 200 || c % 997 === 0) out.push(splitAt(data, [c]));
  const next = rng(seed);
  for (let n = 0; n < 40; n++) {
    const cuts = new Set<number>();
    const parts = 2 + Math.floor(next() * 12);
    while (cuts.size < parts) cuts.add(1 + Math.floor(next() * (data.length - 1)));
    out.push(splitAt(data, [...cuts].sort((a, b) => a - b)));
  }
  return out;
}

describe('toy framed filter (SDK stream layer) in the in-process host', () => {
  it('routes on the first frame, drops, rewrites and answers refusals in order under every split of both directions', async () => {
    const plugin = await start(POLICY);
    const clientCuts = chunkings(CLIENT, 7);
    const serverCuts = chunkings(SERVER, 11);
    const rounds = Math.max(clientCuts.length, serverCuts.length);
    for (let i = 0; i < rounds; i++) {
      const conn = plugin.newConnection();
      const up = feed(conn, 'downstream', clientCuts[i % clientCuts.length]!);
      assert.equal(conn.upstreamCluster, 'fleet', `round ${i}`);
      assert.ok(up.equals(UPSTREAM), `round ${i}: upstream bytes differ`);
      const down = feed(conn, 'upstream', serverCuts[i % serverCuts.length]!);
      assert.ok(down.equals(CLIENT_SEES), `round ${i}: client bytes differ`);
      conn.close();
    }
    const m = plugin.metrics();
    assert.equal(m['toy.denied'], 2 * rounds);
    assert.equal(m['toy.dropped'], rounds);
    assert.equal(m['toy.rewritten'], 3 * rounds);
    assert.equal(m['toy.route.fleet'], rounds);
    assert.equal(m['toy.connections'], rounds);
    assert.equal(m['toy.downstream.bytes'], CLIENT.length * rounds);
    assert.equal(m['toy.upstream.bytes'], SERVER.length * rounds);
    assert.equal(m['toy.closed_by_filter'], 0);
    plugin.close();
  });

  it('passes frames unchanged without policy, holding only until the hello frame, under every split', async () => {
    const plugin = await start({ routes: [{ match: { key: { exact: 'k' } }, cluster: 'a' }] });
    const stream = frames('other', BIG, '', 'y');
    for (const chunks of chunkings(stream, 3)) {
      const conn = plugin.newConnection();
      assert.equal(conn.newConnectionAction, 'pause');
      const up = feed(conn, 'downstream', chunks);
      assert.ok(up.equals(stream));
      assert.equal(conn.upstreamCluster, 'tcp_proxy_default', 'no route matched: tcp_proxy\'s own cluster');
      conn.close();
    }
    assert.ok((plugin.metrics()['toy.route.none'] ?? 0) > 0);
    plugin.close();
  });

  it('closes a connection whose client ends inside a frame, with one warn line naming the reason', async () => {
    const logs: string[] = [];
    const plugin = await start(POLICY, { logs });
    const conn = plugin.newConnection();
    feed(conn, 'downstream', [frames('fleet-1', 'a'), frame('abc').subarray(0, 5)]);
    const r = conn.downstream(Buffer.alloc(0), true);
    assert.equal(r.closed?.reason, 'filter');
    conn.close();
    const closeLines = logs.filter((l) => l.includes('connection closed'));
    assert.deepEqual(closeLines.length, 1);
    assert.match(closeLines[0]!, /^warn toy: connection closed key="fleet-1" cluster=fleet reason="truncated from client" frames_in=2 frames_out=0/);
    assert.equal(plugin.metrics()['toy.closed_by_filter'], 1);
    plugin.close();
  });

  it('closes on a frame over max_frame, from either side', async () => {
    const plugin = await start({ max_frame: 8 });
    const a = plugin.newConnection();
    assert.equal(a.downstream(frame('123456789')).action, 'pause');
    assert.equal(a.closed?.reason, 'filter');
    const b = plugin.newConnection();
    feed(b, 'downstream', [frame('ok')]);
    b.upstream(frame('ok'));
    b.upstream(Buffer.from([0, 0, 1]));
    assert.equal(b.closed?.reason, undefined);
    b.upstream(Buffer.from([0]));
    assert.equal(b.closed?.reason, 'filter');
    assert.equal(plugin.metrics()['toy.frame_too_large'], 2);
    plugin.close();
  });

  it('closes a connection without a hello frame when hello_timeout_ms passes (deadline on tick)', async () => {
    let now = 1_000_000_000n;
    const clock = { realtimeNs: () => now, monotonicNs: () => now };
    const logs: string[] = [];
    const plugin = await start({ hello_timeout_ms: 100 }, { clock, logs });
    assert.equal(plugin.tickPeriodMs, 50);
    const slow = plugin.newConnection();
    slow.downstream(frame('hel').subarray(0, 4));
    const quick = plugin.newConnection();
    feed(quick, 'downstream', [frame('hello')]);
    now += 60_000_000n;
    plugin.tick();
    assert.equal(slow.closed?.reason, undefined);
    now += 60_000_000n;
    plugin.tick();
    assert.equal(slow.closed?.reason, 'filter');
    assert.equal(quick.closed, undefined);
    assert.equal(plugin.metrics()['toy.hello_timeout'], 1);
    quick.close();
    assert.ok(logs.some((l) => l.startsWith('warn toy: connection closed key=- cluster=- reason="no hello within 100 ms"')));
    plugin.close();
  });

  it('logs one packet object per frame when log_packets is on (the replay convention)', async () => {
    const logs: string[] = [];
    const plugin = await start({ ...POLICY, log_packets: true }, { logs });
    const conn = plugin.newConnection();
    feed(conn, 'downstream', splitAt(frames('fleet-2', 'secret'), [3, 9]));
    feed(conn, 'upstream', [frames('fleet-2', 'ping')]);
    conn.close();
    const packets = logs.filter((l) => l.startsWith('debug packet ')).map((l) => JSON.parse(l.slice('debug packet '.length)));
    assert.deepEqual(packets, [
      { direction: 'downstream', type: 'hello', length: 7, body: 'fleet-2', verdict: 'forward' },
      { direction: 'downstream', type: 'request', length: 6, body: 'secret', verdict: 'reply' },
      { direction: 'upstream', type: 'response', length: 7, body: 'fleet-2', verdict: 'forward' },
      { direction: 'upstream', type: 'response', length: 4, body: 'ping', verdict: 'replace' },
    ]);
    plugin.close();
  });

  it('rejects invalid settings naming the JSON path', async () => {
    await assert.rejects(start({ routes: [{ match: { key: { regex: '(a|b)' } }, cluster: 'a' }] }), /routes\[0\]\.match\.key\.regex: unsupported regex syntax/);
    await assert.rejects(start({ deny: [{ prefix: 'a' }, { glob: 'b' }] }), /deny\[1\]: unknown matcher 'glob'/);
    await assert.rejects(start({ max_frame: 0 }), /max_frame: expected an integer between 1 and 16777216/);
    await assert.rejects(start({ rewrite: 'lower' }), /rewrite: expected one of "none", "upper"/);
    await assert.rejects(start({ colour: 1 }), /unknown field 'colour'/);
  });
});
