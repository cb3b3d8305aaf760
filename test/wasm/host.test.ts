// The in-process proxy-wasm host running the contract filter (and a few
// misbehaving modules): Envoy's buffering semantics under arbitrary chunking,
// routing through filter state, buffer rewrites, metrics, closes and traps.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import mqttPacket from 'mqtt-packet';
import { WasmFilterError, WasmFilterModule, encodeSetEnvoyFilterState, type FilterConnection, type WasmPlugin } from '../../xds-server/wasm-host/index.ts';
import { loadFilter } from '../../xds-server/catalog/index.ts';
import { CONTRACT_CONFIG, expectContract, rewriteMarks, splitAt } from './contract.ts';
import { abiBasics, buildModule, op } from './wasm-bytes.ts';
import { rng } from '../support/random.ts';

const STREAM = Buffer.from('A:first MARK line\nsecond MARKMARK x\nMAR\nM\nlast MAR', 'latin1');

let contract: WasmFilterModule;
let trapTest: WasmFilterModule;

before(async () => {
  contract = await loadFilter('contract');
  trapTest = await loadFilter('trap-test');
});

function startContract(extra: Record<string, unknown> = {}): Promise<WasmPlugin> {
  return contract.instantiate({
    name: 'contract',
    configuration: { ...CONTRACT_CONFIG, ...extra },
    defaultCluster: 'tcp-proxy-default',
  });
}

/** Feeds chunks, then the client's end of stream; returns what the filter released. */
function feed(conn: FilterConnection, chunks: Buffer[]): void {
  for (const c of chunks) conn.downstream(c);
  conn.downstream(new Uint8Array(0), true);
}

function metricsDelta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) out[k] = v - (before[k] ?? 0);
  return out;
}

describe('contract filter in the in-process host', () => {
  it('loads as ABI 0.2.1 and imports only what Envoy provides', () => {
    assert.equal(contract.abiVersion, '0.2.1');
    for (const name of contract.imports) assert.match(name, /^(env\.proxy_|wasi_snapshot_preview1\.)/);
    assert.ok(contract.exports.includes('proxy_on_memory_allocate'));
    assert.ok(contract.exports.includes('_initialize'));
  });

  it('holds the connection until the first newline, then routes by its prefix', async () => {
    const plugin = await startContract();
    const conn = plugin.newConnection();
    assert.equal(conn.newConnectionAction, 'pause');
    assert.equal(conn.proceeded, false);

    let r = conn.downstream('A');
    assert.deepEqual([r.action, r.forwarded.length, r.buffered], ['pause', 0, 1]);
    r = conn.downstream(':hello');
    assert.deepEqual([r.action, r.forwarded.length, r.buffered], ['pause', 0, 7]);
    assert.equal(conn.filterState.size, 0);

    r = conn.downstream(' world\nmore');
    assert.equal(r.action, 'continue');
    assert.equal(Buffer.from(r.forwarded).toString(), 'A:hello world\nmore');
    assert.equal(r.buffered, 0);
    assert.deepEqual(conn.filterState.get('envoy.tcp_proxy.cluster'), { value: 'a', span: 'filter_chain' });
    assert.equal(conn.upstreamCluster, 'a');

    // the host re-presented the accumulated buffer each time (size = total)
    const sizes = conn.events.flatMap((e) => (e.type === 'data' ? [e.size] : []));
    assert.deepEqual(sizes, [1, 7, 18]);
    assert.equal(conn.pauses, 3); // new connection + two data callbacks

    // after routing, data flows through
    r = conn.downstream('tail\n');
    assert.deepEqual([r.action, Buffer.from(r.forwarded).toString()], ['continue', 'tail\n']);

    for (const [line, cluster] of [['B:other\n', 'b'], ['xA:not a prefix\n', 'b'], ['A:\n', 'a']] as const) {
      const c = plugin.newConnection();
      c.downstream(line);
      assert.equal(c.upstreamCluster, cluster, line);
    }
    assert.equal(plugin.metric('contract.routed_prefix'), 2);
  });

  it('without event recording, forwards the caller\'s chunk as is but copies what it holds', async () => {
    const plugin = await contract.instantiate({ name: 'contract', configuration: CONTRACT_CONFIG, defaultCluster: 'd', record: false });
    const conn = plugin.newConnection();
    const held = Buffer.from('A:held');
    assert.equal(conn.downstream(held).action, 'pause');
    held.fill(0x78); // the caller reuses its buffer: what the host holds must not change
    let r = conn.downstream(Buffer.from('\n'));
    assert.equal(Buffer.from(r.forwarded).toString(), 'A:held\n');
    const chunk = Buffer.from('after routing\n');
    r = conn.downstream(chunk);
    assert.equal(r.forwarded, chunk); // passed through unchanged: no copy made
  });

  it('routes at end of stream when no newline ever comes', async () => {
    const plugin = await startContract();
    const conn = plugin.newConnection();
    assert.equal(conn.downstream('A:no newline').action, 'pause');
    const r = conn.downstream(new Uint8Array(0), true);
    assert.equal(r.action, 'continue');
    assert.equal(Buffer.from(r.forwarded).toString(), 'A:no newline');
    assert.equal(conn.upstreamCluster, 'a');
  });

  it('without default_cluster leaves tcp_proxy its own cluster', async () => {
    const plugin = await contract.instantiate({
      configuration: { route_prefix: 'A:', route_cluster: 'a' },
      defaultCluster: 'static',
    });
    const conn = plugin.newConnection();
    conn.downstream('B:\n');
    assert.equal(conn.filterState.size, 0);
    assert.equal(conn.upstreamCluster, 'static');
  });

  it('gives the same routing, bytes and counters for every split of the stream', async () => {
    const plugin = await startContract();
    const expected = expectContract(STREAM);
    const n = STREAM.length;
    const splits: number[][] = [[]];
    for (let i = 1; i < n; i++) splits.push([i]);
    for (let i = 1; i < n; i += 3) for (let j = i + 1; j < n; j += 2) splits.push([i, j]);
    for (let size = 1; size <= 8; size++) splits.push(Array.from({ length: Math.ceil(n / size) - 1 }, (_, k) => (k + 1) * size));

    for (const cuts of splits) {
      const before = plugin.metrics();
      const conn = plugin.newConnection();
      feed(conn, splitAt(STREAM, cuts));
      const what = `cuts ${JSON.stringify(cuts)}`;
      assert.equal(Buffer.from(conn.forwardedDownstream).toString('latin1'), expected.forwarded.toString('latin1'), what);
      assert.equal(conn.upstreamCluster, expected.cluster, what);
      conn.close();
      assert.deepEqual(metricsDelta(before, plugin.metrics()), {
        'contract.bytes': n,
        'contract.frames': expected.frames,
        'contract.routed_prefix': 1,
      }, what);
    }
    assert.equal(plugin.metric('contract.active_connections'), 0);
    assert.equal(plugin.histograms()['contract.first_line_bytes']!.length, splits.length);
    assert.ok(plugin.histograms()['contract.first_line_bytes']!.every((v) => v === 'A:first MARK line'.length));
  });

  it('rewrites MARK through set_buffer_bytes, also when it arrives in pieces', async () => {
    const plugin = await startContract();
    const conn = plugin.newConnection();
    conn.downstream('A:\n');
    let r = conn.downstream('x MA');
    assert.deepEqual([r.action, r.buffered], ['pause', 4]); // could be the start of MARK
    r = conn.downstream('RK y MARK\n');
    assert.equal(r.action, 'continue');
    assert.equal(Buffer.from(r.forwarded).toString(), 'x mark y mark\n');
    const rewrites = conn.events.filter((e) => e.type === 'rewrite');
    assert.equal(rewrites.length, 1);
    const rw = rewrites[0]!;
    assert.ok(rw.type === 'rewrite');
    assert.deepEqual([rw.direction, rw.start, rw.length, rw.result], ['downstream', 0, 14, 0]);
    assert.equal(Buffer.from(rw.buffer).toString(), 'x mark y mark\n');
    // "MAR" followed by something else is released unchanged
    conn.downstream('MAR');
    r = conn.downstream('S\n');
    assert.equal(Buffer.from(r.forwarded).toString(), 'MARS\n');
    assert.equal(Buffer.from(conn.forwardedDownstream).toString(), rewriteMarks(Buffer.from('A:\nx MARK y MARK\nMARS\n')).toString());
  });

  it('closes the connection on a NUL byte at any position, whatever the chunking', async () => {
    const plugin = await startContract();
    const clean = Buffer.from('A:line one\nline MARK two\nthree\n', 'latin1');
    for (let p = 0; p <= clean.length; p++) {
      const stream = Buffer.concat([clean.subarray(0, p), Buffer.from([0]), clean.subarray(p)]);
      for (const cuts of [[], [p], [Math.max(1, p - 1), p + 1].filter((c, i, a) => c > 0 && c < stream.length && a.indexOf(c) === i)]) {
        const what = `NUL at ${p}, cuts ${JSON.stringify(cuts)}`;
        const before = plugin.metrics();
        const conn = plugin.newConnection();
        let sawClose = false;
        for (const chunk of splitAt(stream, cuts)) {
          const r = conn.downstream(chunk);
          if (r.closed) {
            sawClose = true;
            assert.equal(r.forwarded.length, 0, what);
          }
        }
        assert.ok(sawClose, what);
        assert.deepEqual(conn.closed, { reason: 'filter' }, what);
        const fwd = Buffer.from(conn.forwardedDownstream);
        assert.ok(!fwd.includes(0), what);
        assert.ok(rewriteMarks(stream).subarray(0, fwd.length).equals(fwd), `${what}: forwarded a prefix of the stream`);
        assert.equal(conn.downstream('more').action, 'closed');
        const delta = metricsDelta(before, plugin.metrics());
        assert.equal(delta['contract.poisoned'], 1, what);
        assert.equal(delta['contract.active_connections'] ?? 0, 0, `${what}: close callbacks ran`);
      }
    }
  });

  it('records the close callbacks, logs and filter-state of a connection', async () => {
    const plugin = await startContract();
    const conn = plugin.newConnection({ sourceAddress: '10.1.2.3:5555' });
    conn.downstream('A:x\0\n');
    assert.deepEqual(conn.closed, { reason: 'filter' });
    const types = conn.events.map((e) => e.type);
    assert.deepEqual(types.filter((t) => t === 'close' || t === 'callback'), ['close', 'callback', 'callback', 'callback', 'callback']);
    assert.deepEqual(
      conn.events.flatMap((e) => (e.type === 'callback' ? [e.name] : [])),
      ['proxy_on_downstream_connection_close', 'proxy_on_done', 'proxy_on_log', 'proxy_on_delete'],
    );
    assert.ok(conn.logs.some((l) => l.level === 'warn' && l.message === 'contract: NUL byte from 10.1.2.3:5555, closing the connection'));
    assert.ok(conn.logs.some((l) => l.message === 'contract: downstream closed (local)'));
    assert.equal(plugin.record.logs[0]?.message, 'contract: configured, prefix routes to a');
  });

  it('passes upstream data through and reports the upstream end', async () => {
    const plugin = await startContract();
    const conn = plugin.newConnection();
    conn.downstream('A:\n');
    const r = conn.upstream('reply', true);
    assert.deepEqual([r.action, Buffer.from(r.forwarded).toString()], ['continue', 'reply']);
    assert.ok(conn.events.some((e) => e.type === 'callback' && e.name === 'proxy_on_upstream_connection_close'));
    assert.equal(Buffer.from(conn.forwardedUpstream).toString(), 'reply');
  });

  it('ticks at the period the filter asked for', async () => {
    const plugin = await startContract({ tick_ms: 250 });
    assert.equal(plugin.tickPeriodMs, 250);
    assert.ok(plugin.tick());
    assert.ok(plugin.tick());
    assert.equal(plugin.metric('contract.ticks'), 2);
    const quiet = await startContract();
    assert.equal(quiet.tick(), false);
  });

  it('rejects invalid configuration with the filter’s reason', async () => {
    const cases: Array<[string | object, RegExp]> = [
      ['{not json', /not a JSON object: expected a string key at byte 1/],
      ['[1,2]', /not a JSON object: expected a JSON object/],
      [{ route_prefix: 'A:' }, /route_cluster must be a non-empty string/],
      [{ route_prefix: '', route_cluster: 'a' }, /route_prefix must be a non-empty string/],
      [{ route_prefix: 'A:', route_cluster: 'a', default_cluster: 7 }, /default_cluster must be a string/],
      [{ route_prefix: 'A:', route_cluster: 'a', tick_ms: 1.5 }, /tick_ms must be an integer/],
      ['', /not a JSON object: unexpected end of input/],
    ];
    for (const [configuration, reason] of cases) {
      await assert.rejects(contract.instantiate({ name: 'contract', configuration }), (err: unknown) => {
        assert.ok(err instanceof WasmFilterError);
        assert.equal(err.phase, 'configure');
        assert.match(err.message, /^contract: proxy_on_configure returned false \(the filter rejected its configuration\): contract: rejecting configuration: /);
        assert.match(err.message, reason);
        assert.ok(err.logs.some((l) => l.level === 'error'));
        return true;
      }, JSON.stringify(configuration));
    }
    // JSON details the reader must get right
    const plugin = await contract.instantiate({ configuration: '{"route_prefix":"\\u00e9\\"\\t","route_cluster":"a","x":[1,-2.5e3,{"y":null}],"z":true}' });
    const conn = plugin.newConnection();
    conn.downstream('é"\tx\n');
    assert.equal(conn.upstreamCluster, 'a');
  });

  it('serves properties Envoy serves to a network filter', async () => {
    // the contract filter logs its peer's source.address; check the raw host call too
    const plugin = await startContract();
    const conn = plugin.newConnection({ sourceAddress: '192.0.2.1:1234', sni: 'example.com' });
    conn.downstream('\0');
    assert.ok(conn.logs.some((l) => l.message.includes('192.0.2.1:1234')));
  });
});

describe('traps and failure policies', () => {
  it('closes the trapping connection and fails the VM closed (Envoy default)', async () => {
    const plugin = await trapTest.instantiate({ name: 'trap' });
    const other = plugin.newConnection();
    assert.equal(other.downstream('fine').action, 'continue');
    const conn = plugin.newConnection();
    const r = conn.downstream('xxTRAPxx');
    assert.equal(r.action, 'closed');
    assert.deepEqual(conn.closed, { reason: 'trap', message: 'unreachable' });
    assert.equal(plugin.failed, 'proxy_on_downstream_data: unreachable');
    assert.ok(plugin.record.events.some((e) => e.type === 'trap' && e.callback === 'proxy_on_downstream_data' && e.connectionId === conn.id));
    assert.ok(plugin.record.logs.some((l) => l.level === 'error' && l.message === 'Function: proxy_on_downstream_data failed: unreachable'));
    // an existing connection is closed at its next event, new ones at once
    assert.equal(other.downstream('more').action, 'closed');
    assert.equal(other.closed?.reason, 'plugin_failed');
    const late = plugin.newConnection();
    assert.equal(late.closed?.reason, 'plugin_failed');
    assert.equal(plugin.metric('trap_test.bytes'), 4 + 8);
  });

  it('reports an abort (failed assertion) as a trap with the SDK’s log line', async () => {
    const plugin = await trapTest.instantiate({ name: 'trap' });
    const conn = plugin.newConnection();
    conn.downstream('ABORT');
    assert.deepEqual(conn.closed, { reason: 'trap', message: 'unreachable' });
    assert.ok(plugin.record.logs.some((l) => l.level === 'critical' && l.message === 'abort: ABORT seen in downstream data at filters/trap-test/index.ts:34:5'));
  });

  it('reload: new connections get a fresh VM, metrics carry over', async () => {
    const plugin = await trapTest.instantiate({ name: 'trap', failurePolicy: 'reload' });
    plugin.newConnection().downstream('TRAP');
    assert.ok(plugin.failed);
    const next = plugin.newConnection();
    assert.equal(next.downstream('ok').action, 'continue');
    assert.equal(plugin.reloads, 1);
    assert.equal(plugin.failed, undefined);
    assert.equal(plugin.metric('trap_test.bytes'), 6);
  });

  it('fail_open: the trapping data and later connections pass without the filter', async () => {
    const plugin = await trapTest.instantiate({ name: 'trap', failurePolicy: 'fail_open' });
    const conn = plugin.newConnection();
    const r = conn.downstream('TRAP');
    assert.deepEqual([r.action, Buffer.from(r.forwarded).toString()], ['continue', 'TRAP']);
    assert.equal(conn.closed, undefined);
    assert.equal(Buffer.from(conn.downstream('after').forwarded).toString(), 'after');
    const next = plugin.newConnection();
    assert.equal(next.bypass, true);
    assert.equal(Buffer.from(next.downstream('TRAP again').forwarded).toString(), 'TRAP again');
    assert.equal(plugin.metric('trap_test.bytes'), 4);
  });

  it('a trap never takes the host down: other plugins keep working', async () => {
    const broken = await trapTest.instantiate({ name: 'trap' });
    broken.newConnection().downstream('TRAP');
    const healthy = await startContract();
    const conn = healthy.newConnection();
    conn.downstream('A:still fine\n');
    assert.equal(conn.upstreamCluster, 'a');
  });
});

describe('host with hand-written modules', () => {
  it('refuses a module importing what Envoy does not provide (env.abort)', async () => {
    const bytes = buildModule({
      imports: [{ module: 'env', name: 'abort', params: ['i32', 'i32', 'i32', 'i32'], results: [] }],
      funcs: abiBasics(),
      memoryPages: 1,
    });
    await assert.rejects(WasmFilterModule.load(bytes, 'raw'), (err: unknown) => {
      assert.ok(err instanceof WasmFilterError);
      assert.equal(err.phase, 'link');
      assert.equal(err.message, 'raw: cannot link: the module imports env.abort, which Envoy does not provide (AssemblyScript: build with --use abort=...)');
      return true;
    });
  });

  it('refuses modules without an ABI version, memory or allocator, and non-wasm bytes', async () => {
    const noAbi = buildModule({ funcs: [abiBasics()[1]!], memoryPages: 1 });
    await assert.rejects(WasmFilterModule.load(noAbi, 'raw'), /missing or unknown proxy-wasm ABI version/);
    const noMemory = buildModule({ funcs: abiBasics() });
    await assert.rejects(WasmFilterModule.load(noMemory, 'raw'), /does not export its memory/);
    const noAlloc = buildModule({ funcs: [abiBasics()[0]!], memoryPages: 1 });
    await assert.rejects(WasmFilterModule.load(noAlloc, 'raw'), /missing malloc \/ proxy_on_memory_allocate/);
    await assert.rejects(WasmFilterModule.load(new TextEncoder().encode('not wasm'), 'raw'), (err: unknown) =>
      err instanceof WasmFilterError && err.phase === 'load' && /not a valid WebAssembly module/.test(err.message));
  });

  it('reports a module that traps while starting', async () => {
    const bytes = buildModule({
      funcs: [...abiBasics(), { export: '_initialize', params: [], results: [], body: [op.unreachable] }],
      memoryPages: 1,
    });
    const mod = await WasmFilterModule.load(bytes, 'raw');
    await assert.rejects(mod.instantiate(), (err: unknown) => {
      assert.ok(err instanceof WasmFilterError);
      assert.equal(err.phase, 'start');
      assert.equal(err.message, 'raw: the module trapped while starting: unreachable');
      return true;
    });
  });

  it('restricts host calls while the module starts, as Envoy does', async () => {
    const bytes = buildModule({
      imports: [{ module: 'env', name: 'proxy_set_tick_period_milliseconds', params: ['i32'], results: ['i32'] }],
      funcs: [
        ...abiBasics(),
        // _initialize asks for ticks, which Envoy refuses before the VM is started
        { export: '_initialize', params: [], results: [], body: [...op.i32Const(100), ...op.call(0), op.drop] },
      ],
      memoryPages: 1,
    });
    const plugin = await (await WasmFilterModule.load(bytes, 'raw')).instantiate();
    assert.equal(plugin.tickPeriodMs, 0);
    assert.ok(plugin.record.logs.some((l) => l.message === 'Attempted call to restricted proxy-wasm capability: proxy_set_tick_period_milliseconds'));
  });

  it('runs a hand-written filter: holds data until end of stream, closes above 10 bytes', async () => {
    const bytes = buildModule({
      imports: [{ module: 'env', name: 'proxy_close_stream', params: ['i32'], results: ['i32'] }],
      funcs: [
        ...abiBasics(),
        {
          export: 'proxy_on_downstream_data',
          params: ['i32', 'i32', 'i32'],
          results: ['i32'],
          body: [
            // if (size > 10) proxy_close_stream(DOWNSTREAM)
            ...op.localGet(1), ...op.i32Const(10), 0x4b /* i32.gt_u */, 0x04, 0x40 /* if */,
            ...op.i32Const(2), ...op.call(0), op.drop,
            0x0b, // end if
            // return end_of_stream ? CONTINUE : PAUSE
            ...op.localGet(2), 0x45, /* i32.eqz */
          ],
        },
      ],
      memoryPages: 1,
    });
    const plugin = await (await WasmFilterModule.load(bytes, 'raw')).instantiate();
    const conn = plugin.newConnection();
    assert.equal(conn.newConnectionAction, 'continue'); // no proxy_on_new_connection export
    assert.equal(conn.downstream('abc').action, 'pause');
    assert.equal(conn.downstream('def').buffered, 6);
    const r = conn.downstream('', true);
    assert.deepEqual([r.action, Buffer.from(r.forwarded).toString()], ['continue', 'abcdef']);
    const big = plugin.newConnection();
    big.downstream('0123456');
    const closed = big.downstream('789ab');
    assert.deepEqual(closed.closed, { reason: 'filter' });
    assert.equal(Buffer.from(big.forwardedDownstream).length, 0);
  });

  it('releases held data from a tick (set_effective_context + continue_stream)', async () => {
    const i32Store = [0x36, 0x02, 0x00];
    const i32Load = [0x28, 0x02, 0x00];
    const bytes = buildModule({
      imports: [
        { module: 'env', name: 'proxy_set_tick_period_milliseconds', params: ['i32'], results: ['i32'] },
        { module: 'env', name: 'proxy_set_effective_context', params: ['i32'], results: ['i32'] },
        { module: 'env', name: 'proxy_continue_stream', params: ['i32'], results: ['i32'] },
      ],
      funcs: [
        ...abiBasics(),
        { export: 'proxy_on_vm_start', params: ['i32', 'i32'], results: ['i32'], body: [...op.i32Const(10), ...op.call(0), op.drop, ...op.i32Const(1)] },
        // remember the connection's context id at address 0, hold its data
        { export: 'proxy_on_new_connection', params: ['i32'], results: ['i32'], body: [...op.i32Const(0), ...op.localGet(0), ...i32Store, ...op.i32Const(1)] },
        { export: 'proxy_on_downstream_data', params: ['i32', 'i32', 'i32'], results: ['i32'], body: op.i32Const(1) },
        // on tick: act for that connection and let its data go
        { export: 'proxy_on_tick', params: ['i32'], results: [], body: [...op.i32Const(0), ...i32Load, ...op.call(1), op.drop, ...op.i32Const(2), ...op.call(2), op.drop] },
      ],
      memoryPages: 1,
    });
    const plugin = await (await WasmFilterModule.load(bytes, 'raw')).instantiate({ defaultCluster: 'static' });
    assert.equal(plugin.tickPeriodMs, 10);
    const conn = plugin.newConnection();
    assert.equal(conn.downstream('held ').action, 'pause');
    assert.equal(conn.downstream('data').buffered, 9);
    assert.equal(conn.proceeded, false);
    assert.ok(plugin.tick());
    assert.equal(Buffer.from(conn.forwardedDownstream).toString(), 'held data');
    assert.equal(conn.proceeded, true);
    assert.equal(conn.upstreamCluster, 'static');
    assert.deepEqual(conn.events.filter((e) => e.type === 'continue_stream').map((e) => e.type === 'continue_stream' && e.direction), ['downstream']);
  });

  it('runs real timers at the filter’s tick period when asked to', async () => {
    const plugin = await contract.instantiate({ configuration: { ...CONTRACT_CONFIG, tick_ms: 10 }, ticks: 'timer' });
    await new Promise((r) => setTimeout(r, 120));
    const ticks = plugin.metric('contract.ticks')!;
    assert.ok(ticks >= 3, `ticks: ${ticks}`);
    plugin.close();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(plugin.metric('contract.ticks'), ticks);
    assert.ok(plugin.record.events.some((e) => e.type === 'shutdown'));
  });

  it('decodes set_envoy_filter_state arguments and refuses keys without a factory', async () => {
    // exercised end to end by the contract filter; here the argument codec and the NotFound path
    const encoded = encodeSetEnvoyFilterState({ path: 'envoy.tcp_proxy.cluster', value: 'a', span: 2 });
    assert.equal(Buffer.from(encoded).toString('hex'), '0a17656e766f792e7463705f70726f78792e636c7573746572120161' + '1802');
    let seen: Uint8Array | undefined;
    const plugin = await contract.instantiate({
      configuration: CONTRACT_CONFIG,
      foreignFunctions: { set_envoy_filter_state: (args) => { seen = args; return { status: 1 }; } },
    });
    const conn = plugin.newConnection();
    conn.downstream('A:\n');
    assert.ok(seen);
    assert.equal(conn.upstreamCluster, undefined); // the override refused it
    assert.ok(conn.logs.some((l) => l.level === 'error' && l.message === 'cannot route connection to cluster a: host returned 1'));
  });
});

describe('passthrough filter (the benchmarks\' floors)', () => {
  // {"read": true, "walk": true} is the floor under any MQTT-aware filter in
  // test/bench/mqtt.ts: it must walk every frame, whatever the chunking.
  it('walks frames of every length size across any chunk boundary', async () => {
    const payloads = [0, 1, 125, 126, 127, 200, 16_383, 16_384, 70_000, 2_097_200];
    const frames = payloads.map((n, i) => mqttPacket.generate({ cmd: 'publish', topic: `t/${i}`, payload: Buffer.alloc(n, 0x80 | i), qos: 0, retain: false, dup: false }));
    const stream = Buffer.concat(frames);
    const passthrough = await loadFilter('passthrough');
    const random = rng(7);
    const splits: Buffer[][] = [[stream]];
    // small chunks over the frames with short lengths (every header cut everywhere), then the rest whole
    for (const size of [1, 2, 3, 5]) {
      const cuts = Array.from({ length: Math.floor(70_000 / size) }, (_, i) => (i + 1) * size);
      splits.push(splitAt(stream, cuts));
    }
    for (let k = 0; k < 20; k++) {
      const cuts = [...new Set(Array.from({ length: 12 }, () => 1 + Math.floor(random() * (stream.length - 1))))].sort((a, b) => a - b);
      splits.push(splitAt(stream, cuts));
    }
    for (const chunks of splits) {
      const plugin = await passthrough.instantiate({ configuration: { read: true, walk: true }, record: false });
      const conn = plugin.newConnection();
      for (const c of chunks) conn.downstream(c);
      assert.equal(plugin.metric('passthrough.frames'), frames.length, `chunks of ${chunks.map((c) => c.length).join(',')}`);
    }
  });
});
