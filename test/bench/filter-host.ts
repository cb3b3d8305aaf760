// Benchmark of the in-process proxy-wasm host. Prints numbers; asserts nothing.
//   node --import tsx test/bench/filter-host.ts
//
// - per-call overhead: downstream() with a tiny chunk through a hand-written
//   module that only returns Continue (host cost alone), and through the SDK's
//   passthrough filter without reading the data (host + SDK dispatch)
// - throughput: bytes/s through passthrough (reading each chunk into the VM,
//   as a parser does) and through the contract filter, at 64 B and 16 KB chunks
// - connections/s: newConnection + one chunk + close
import { WasmFilterModule, type WasmPlugin } from '../../xds-server/wasm-host/index.ts';
import { loadFilter } from '../../xds-server/catalog/index.ts';
import { abiBasics, buildModule } from '../wasm/wasm-bytes.ts';

const DURATION_MS = Number(process.env.BENCH_MS ?? 1500);

function measure(label: string, fn: () => number): { perOp: number; opsPerSec: number; bytesPerSec: number } {
  // warm up (JIT, VM memory growth)
  const warmEnd = performance.now() + Math.min(300, DURATION_MS / 3);
  while (performance.now() < warmEnd) fn();
  let ops = 0;
  let bytes = 0;
  const start = process.hrtime.bigint();
  const deadline = performance.now() + DURATION_MS;
  while (performance.now() < deadline) {
    for (let i = 0; i < 100; i++) {
      bytes += fn();
      ops++;
    }
  }
  const ns = Number(process.hrtime.bigint() - start);
  const perOp = ns / ops;
  const result = { perOp, opsPerSec: (ops * 1e9) / ns, bytesPerSec: (bytes * 1e9) / ns };
  const rate = bytes > 0 ? `  ${(result.bytesPerSec / 1e6).toFixed(1).padStart(8)} MB/s` : '';
  console.log(`${label.padEnd(58)} ${(perOp / 1000).toFixed(3).padStart(8)} µs/op  ${Math.round(result.opsPerSec).toLocaleString('en-US').padStart(11)} op/s${rate}`);
  return result;
}

function chunk(size: number, fill = 'x'): Uint8Array {
  return new TextEncoder().encode(fill.repeat(size));
}

async function main(): Promise<void> {
  const raw = await WasmFilterModule.load(buildModule({
    funcs: [
      ...abiBasics(),
      // proxy_on_downstream_data(ctx, size, eos) -> CONTINUE
      { export: 'proxy_on_downstream_data', params: ['i32', 'i32', 'i32'], results: ['i32'], body: [0x41, 0x00] },
    ],
    memoryPages: 1,
  }), 'raw-continue');
  const passthrough = await loadFilter('passthrough');
  const contract = await loadFilter('contract');

  const open = async (module: WasmFilterModule, configuration?: object): Promise<WasmPlugin> =>
    module.instantiate({ configuration, record: false });

  console.log(`proxy-wasm host benchmark (node ${process.version}, ${DURATION_MS} ms per case)\n`);

  console.log('per-call overhead (downstream() with a 64 B chunk, filter returns Continue)');
  const small = chunk(64);
  {
    const conn = (await open(raw)).newConnection();
    measure('hand-written module, no host calls', () => (conn.downstream(small), 0));
  }
  {
    const conn = (await open(passthrough, { read: false })).newConnection();
    measure('SDK passthrough, data not read', () => (conn.downstream(small), 0));
  }
  {
    const conn = (await open(passthrough, { read: true })).newConnection();
    measure('SDK passthrough, data read into the VM', () => (conn.downstream(small), 0));
  }

  console.log('\nthroughput');
  for (const size of [64, 16 * 1024]) {
    const data = chunk(size);
    const label = size >= 1024 ? `${size / 1024} KB` : `${size} B`;
    {
      const conn = (await open(passthrough, { read: false })).newConnection();
      measure(`SDK passthrough, not read, ${label} chunks`, () => conn.downstream(data).forwarded.length);
    }
    {
      const conn = (await open(passthrough, { read: true })).newConnection();
      measure(`SDK passthrough, read, ${label} chunks`, () => conn.downstream(data).forwarded.length);
    }
    {
      // contract after routing: counts bytes and frames, scans for NUL and MARK on every chunk
      const plugin = await open(contract, { route_prefix: 'A:', route_cluster: 'a' });
      const conn = plugin.newConnection();
      conn.downstream('A:route\n');
      const lines = new TextEncoder().encode(('y'.repeat(63) + '\n').repeat(Math.max(1, size / 64)).slice(0, size));
      measure(`contract (routed; counts, scans, no rewrite), ${label} chunks`, () => conn.downstream(lines).forwarded.length);
    }
  }

  console.log('\nconnections');
  {
    const plugin = await open(contract, { route_prefix: 'A:', route_cluster: 'a', default_cluster: 'b' });
    const first = chunk(1, 'A:hello MARK\n');
    measure('contract: new connection + first line + close', () => {
      const conn = plugin.newConnection();
      conn.downstream(first);
      conn.close();
      return 0;
    });
  }
}

await main();
