// Benchmark of the mqtt filter. Prints numbers; asserts nothing.
//   node --import tsx test/bench/mqtt.ts            (host + Envoy)
//   BENCH_ENVOY=0 node --import tsx test/bench/mqtt.ts   (host only)
//
// 1. In the in-process host: a stream of PUBLISH packets (64 B and 4 KB
//    payloads) in 16 KB chunks through the filter, beside mqtt-packet's
//    parser on the same chunks in the same run (frames/s, MB/s).
// 2. Through stock Envoy 1.40 on loopback: one client connection streams
//    QoS 0 PUBLISHes to a sink that counts bytes; Envoy with the filter
//    beside Envoy with plain tcp_proxy (bounded: BENCH_ENVOY_MS per case).
//    BENCH_MQTT_CONFIG='{...}' replaces the filter's configuration there
//    (default: topic metrics for "sensors/"); BENCH_PAYLOADS=64 runs one size.
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { filterWasmPath, loadFilter, type WasmPlugin } from '../../xds-server/wasm-host/index.ts';
import { freePort, startEnvoy } from '../support/envoy.ts';
import { mqttBootstrap } from '../mqtt/envoy-mqtt.ts';
import { mqttModule } from '../mqtt/replay.ts';

const DURATION_MS = Number(process.env.BENCH_MS ?? 1500);
const ENVOY_MS = Number(process.env.BENCH_ENVOY_MS ?? 2000);
const CHUNK = 16 * 1024;
const PAYLOADS = (process.env.BENCH_PAYLOADS ?? '64,4096').split(',').map(Number);
const ENVOY_FILTER_CONFIG: object = JSON.parse(process.env.BENCH_MQTT_CONFIG ?? '{"topic_metrics":["sensors/"]}');

function publishStream(payloadSize: number, totalBytes: number): { bytes: Buffer; frames: number } {
  const frames: Buffer[] = [];
  let size = 0;
  let i = 0;
  while (size < totalBytes) {
    const f = mqttPacket.generate({ cmd: 'publish', topic: `sensors/${i % 100}/temp`, payload: Buffer.alloc(payloadSize, 0x41), qos: 0, retain: false, dup: false }, { protocolVersion: 4 });
    frames.push(f);
    size += f.length;
    i++;
  }
  return { bytes: Buffer.concat(frames), frames: frames.length };
}

function chunks(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < b.length; at += size) out.push(b.subarray(at, at + size));
  return out;
}

interface Rate { framesPerSec: number; mbPerSec: number }

/** Runs `pass` for DURATION_MS; prints the best rate so far on the last round (`best` given). */
function measure(label: string, frames: number, bytes: number, pass: () => void, best?: Rate): Rate {
  const warmEnd = performance.now() + Math.min(200, DURATION_MS / 3);
  while (performance.now() < warmEnd) pass();
  let passes = 0;
  const start = process.hrtime.bigint();
  const deadline = performance.now() + DURATION_MS;
  while (performance.now() < deadline) { pass(); passes++; }
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  const rate = { framesPerSec: (frames * passes) / s, mbPerSec: (bytes * passes) / s / 1e6 };
  if (best !== undefined) {
    const show = rate.framesPerSec > best.framesPerSec ? rate : best;
    console.log(`${label.padEnd(52)} ${Math.round(show.framesPerSec).toLocaleString('en-US').padStart(12)} frames/s ${show.mbPerSec.toFixed(1).padStart(9)} MB/s`);
  }
  return rate;
}

async function hostBench(): Promise<void> {
  const module = await mqttModule();
  console.log(`in-process host (node ${process.version}), ${CHUNK / 1024} KB chunks, ${DURATION_MS} ms per case\n`);
  const configs: Array<[string, object]> = [
    ['mqtt filter (no ACL)', {}],
    ['mqtt filter (ACL + topic metrics)', {
      acl: { default: 'allow', publish: [{ topic: 'secret/#', action: 'deny' }, { topic: 'sensors/+/cmd', action: 'deny' }] },
      topic_metrics: ['sensors/'],
    }],
  ];
  const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
  for (const payload of PAYLOADS) {
    const { bytes, frames } = publishStream(payload, 4 * 1024 * 1024);
    const parts = chunks(bytes, CHUNK);
    console.log(`PUBLISH with ${payload} B payload (${frames.toLocaleString('en-US')} frames, ${(bytes.length / 1048576).toFixed(1)} MiB per pass; best of ${ROUNDS} interleaved rounds)`);
    const cases: Array<{ label: string; pass: () => void; best?: Rate }> = [];
    for (const [label, configuration] of configs) {
      const plugin: WasmPlugin = await module.instantiate({ name: 'mqtt', configuration, record: false });
      const conn = plugin.newConnection();
      conn.downstream(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'bench', clean: true, keepalive: 30 }));
      cases.push({
        label: `  ${label}`,
        pass: () => {
          for (const c of parts) conn.downstream(c);
          if (conn.closed) throw new Error(`the filter closed the bench connection: ${JSON.stringify(conn.closed)}`);
        },
      });
    }
    {
      // the host's own cost per chunk: a Wasm filter that returns Continue without reading
      const plugin = await (await loadFilter('passthrough')).instantiate({ configuration: { read: false }, record: false });
      const conn = plugin.newConnection();
      cases.push({ label: '  host floor (passthrough filter, data not read)', pass: () => { for (const c of parts) conn.downstream(c); } });
    }
    let parsed = 0;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', () => parsed++);
    cases.push({ label: '  mqtt-packet parser', pass: () => { for (const c of parts) parser.parse(c); } });
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of cases) {
        const r = measure(c.label, frames, bytes.length, c.pass, round === ROUNDS - 1 ? c.best : undefined);
        if (!c.best || r.framesPerSec > c.best.framesPerSec) c.best = r;
      }
    }
    if (parsed === 0) throw new Error('mqtt-packet parsed nothing');
    const mp = cases[3]!.best!;
    console.log(`  filter / mqtt-packet: ${(cases[0]!.best!.framesPerSec / mp.framesPerSec).toFixed(1)}x (no ACL), ${(cases[1]!.best!.framesPerSec / mp.framesPerSec).toFixed(1)}x (ACL)\n`);
  }
}

/** Streams `stream` repeatedly over one connection for `ms`; returns bytes/s the sink received. */
async function envoyRun(port: number, sink: { received: number }, connect: Buffer, stream: Buffer, ms: number): Promise<number> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => { socket.once('connect', () => resolve()); socket.once('error', reject); });
  socket.write(connect);
  const startBytes = sink.received;
  const start = performance.now();
  let stop = false;
  const deadline = setTimeout(() => (stop = true), ms);
  await new Promise<void>((resolve) => {
    const pump = () => {
      while (!stop) if (!socket.write(stream)) return void socket.once('drain', pump);
      resolve();
    };
    pump();
  });
  clearTimeout(deadline);
  const s = (performance.now() - start) / 1000;
  const got = sink.received - startBytes;
  socket.destroy();
  await new Promise((r) => setTimeout(r, 200));
  return got / s;
}

async function envoyBench(): Promise<void> {
  console.log(`stock Envoy 1.40 (1 worker), one connection streaming QoS 0 PUBLISHes to a byte-counting sink, ${ENVOY_MS} ms per run`);
  console.log(`  mqtt filter configuration: ${JSON.stringify(ENVOY_FILTER_CONFIG)}`);
  const sink = { received: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => { sockets.add(s); s.on('data', (d) => (sink.received += d.length)); s.on('error', () => undefined); s.on('close', () => sockets.delete(s)); });
  const sinkPort = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port)));
  const withFilter = await freePort();
  const plain = await freePort();
  const passthrough = await freePort();
  const readFloor = await freePort();
  const adminPort = await freePort();
  await mqttModule();
  const envoy = await startEnvoy({
    bootstrapYaml: mqttBootstrap({
      adminPort, listenerPort: withFilter, wasmFile: filterWasmPath('mqtt'), filterConfig: ENVOY_FILTER_CONFIG,
      clusters: [{ name: 'sink', port: sinkPort }],
      extraListeners: [
        { name: 'plain', port: plain, wasm: false },
        // the floor: a Wasm filter that returns Continue without reading anything
        { name: 'passthrough', port: passthrough, wasm: true, wasmFile: filterWasmPath('passthrough'), filterName: 'passthrough', filterConfig: { read: false } },
        // the copy floor: a Wasm filter that reads each buffer into the VM the way the mqtt filter does, and looks at nothing
        { name: 'read-floor', port: readFloor, wasm: true, wasmFile: filterWasmPath('passthrough'), filterName: 'read_floor', filterConfig: { read: true } },
      ],
    }),
    adminPort,
    logLevel: 'warn',
  });
  try {
    await envoy.waitForListener('plain');
    const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'bench', clean: true, keepalive: 30 });
    const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
    for (const payload of PAYLOADS) {
      const { bytes } = publishStream(payload, 256 * 1024);
      const best: Record<string, number> = {};
      // interleaved rounds, best of each: the load generator shares the machine
      for (let round = 0; round < rounds; round++) {
        for (const [label, port] of [['plain tcp_proxy', plain], ['mqtt filter + tcp_proxy', withFilter], ['passthrough Wasm + tcp_proxy', passthrough], ['read-only Wasm + tcp_proxy', readFloor]] as const) {
          const rate = await envoyRun(port, sink, connect, bytes, ENVOY_MS);
          best[label] = Math.max(best[label] ?? 0, rate);
        }
      }
      for (const [label, rate] of Object.entries(best)) console.log(`  ${payload} B payloads, ${label.padEnd(32)} ${(rate / 1e6).toFixed(1).padStart(8)} MB/s`);
      const plainBest = best['plain tcp_proxy']!;
      console.log(`  ${payload} B payloads: mqtt filter / plain = ${((best['mqtt filter + tcp_proxy']! / plainBest) * 100).toFixed(0)}%, ` +
        `passthrough Wasm / plain = ${((best['passthrough Wasm + tcp_proxy']! / plainBest) * 100).toFixed(0)}%, ` +
        `read-only Wasm / plain = ${((best['read-only Wasm + tcp_proxy']! / plainBest) * 100).toFixed(0)}% (best of ${rounds} interleaved runs each)\n`);
    }
    const stats = await envoy.stats();
    console.log(`  (wasmcustom.mqtt.downstream.publish = ${stats.get('wasmcustom.mqtt.downstream.publish')}, malformed = ${[...stats].filter(([k, v]) => k.includes('.malformed.') && v > 0).length})`);
  } finally {
    await envoy.stop();
    for (const s of sockets) s.destroy();
    server.close();
  }
}

if (process.env.BENCH_HOST !== "0") await hostBench();
if (process.env.BENCH_ENVOY !== '0') await envoyBench();
