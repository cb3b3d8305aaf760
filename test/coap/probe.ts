// The CoAP parser on its own (filters/coap/probe.ts: parser.ts + describe.ts,
// no host): built once per process into a temp dir, then called with bytes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const ROOT = path.resolve(import.meta.dirname, '../..');

export const UDP = 0;
export const TCP = 1;

interface ProbeExports {
  memory: WebAssembly.Memory;
  bufferPointer(): number;
  describe(transport: number, len: number, maxOptions: number): number;
  frameLength(offset: number, avail: number): bigint;
  parseTcpRounds(len: number, rounds: number): bigint;
  parseUdpRounds(len: number, rounds: number): bigint;
  forbiddenFor(transport: number, len: number): number;
  headLength(avail: number, total: number): bigint;
  describeHead(head: number, total: number): number;
}

export interface Probe {
  /** The parsed message as the packet log's object, or { error }. */
  describe(transport: number, bytes: Uint8Array, maxOptions?: number): Record<string, unknown>;
  frameLength(bytes: Uint8Array): number;
  forbiddenFor(transport: number, bytes: Uint8Array): Record<string, unknown>;
  /** tcpHeadLength with only the first `avail` bytes of the frame present (-1: needs more). */
  headLength(frame: Uint8Array, avail: number): number;
  /** The frame parsed from its first `head` bytes (the rest of the buffer zeroed). */
  describeHead(frame: Uint8Array, head: number): Record<string, unknown>;
  /** Raw access for benchmarks: copy `bytes` in, then call the rounds functions. */
  load(bytes: Uint8Array): void;
  exports: ProbeExports;
}

let built: Promise<Probe> | undefined;

export function coapProbe(): Promise<Probe> {
  built ??= build();
  return built;
}

async function build(): Promise<Probe> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coap-probe-'));
  const out = path.join(dir, 'probe.wasm');
  execFileSync(path.join(ROOT, 'node_modules/.bin/asc'), ['filters/coap/probe.ts', '--config', 'filters/coap/probe.asconfig.json', '--target', 'release', '-o', out], { cwd: ROOT, stdio: 'inherit' });
  const { instance } = await WebAssembly.instantiate(fs.readFileSync(out), {
    env: { abort: () => { throw new Error('coap probe: abort'); } },
  });
  fs.rmSync(dir, { recursive: true, force: true });
  const x = instance.exports as unknown as ProbeExports;
  const load = (bytes: Uint8Array) => {
    if (bytes.length > 1 << 20) throw new Error('probe input over 1 MiB');
    new Uint8Array(x.memory.buffer, x.bufferPointer(), bytes.length).set(bytes);
  };
  const str = (ptr: number): string => {
    const len = new Uint32Array(x.memory.buffer, ptr - 4, 1)[0]!;
    return Buffer.from(x.memory.buffer, ptr, len).toString('utf16le');
  };
  const obj = (s: string): Record<string, unknown> => (s.startsWith('error: ') ? { error: s.slice(7) } : JSON.parse(s));
  return {
    exports: x,
    load,
    describe(transport, bytes, maxOptions = 256) {
      load(bytes);
      return obj(str(x.describe(transport, bytes.length, maxOptions)));
    },
    frameLength(bytes) {
      load(bytes);
      return Number(x.frameLength(0, bytes.length));
    },
    headLength(frame, avail) {
      load(frame.subarray(0, avail));
      return Number(x.headLength(avail, frame.length));
    },
    describeHead(frame, head) {
      load(Buffer.concat([frame.subarray(0, head), Buffer.alloc(frame.length - head)]));
      return obj(str(x.describeHead(head, frame.length)));
    },
    forbiddenFor(transport, bytes) {
      load(bytes);
      return obj(str(x.forbiddenFor(transport, bytes.length)));
    },
  };
}
