// Friendly wrappers around the raw host calls in imports.ts.
import * as abi from "./imports";
import { OUT_PTR, OUT_SIZE, armScratch, armTarget, disarmTarget, resetOut, scratchPointer, takeHostBytes, utf8 } from "./memory";
import { ProtoWriter } from "./protobuf";
import { BufferType, LifeSpan, LogLevel, StreamType, WasmResult } from "./types";

// ---------------------------------------------------------------- logging

export function log(level: LogLevel, message: string): void {
  const bytes = utf8(message);
  abi.proxy_log(level, changetype<usize>(bytes), bytes.byteLength);
}
export function logTrace(message: string): void { log(LogLevel.Trace, message); }
export function logDebug(message: string): void { log(LogLevel.Debug, message); }
export function logInfo(message: string): void { log(LogLevel.Info, message); }
export function logWarn(message: string): void { log(LogLevel.Warn, message); }
export function logError(message: string): void { log(LogLevel.Error, message); }
export function logCritical(message: string): void { log(LogLevel.Critical, message); }

/** The host's current log level (skip building messages it would drop). */
export function hostLogLevel(): LogLevel {
  store<u32>(OUT_PTR, <u32>LogLevel.Info);
  abi.proxy_get_log_level(OUT_PTR);
  return <LogLevel>load<u32>(OUT_PTR);
}

// ---------------------------------------------------------------- buffers

/** Bytes [start, start+maxSize) of a host buffer; empty when there are none. */
export function getBufferBytes(type: BufferType, start: u32 = 0, maxSize: u32 = u32.MAX_VALUE): ArrayBuffer {
  resetOut();
  const result = abi.proxy_get_buffer_bytes(type, start, maxSize, OUT_PTR, OUT_SIZE);
  if (result != WasmResult.Ok) return new ArrayBuffer(0);
  return takeHostBytes();
}

/**
 * Reads bytes [start, start+maxSize) of a host buffer into a reusable scratch
 * block instead of a new ArrayBuffer: no allocation and nothing for the
 * collector, for parsers that look at a few bytes per call (packet headers).
 * Returns the pointer (valid until the next readBufferScratch call) and sets
 * lastScratchSize(); 0 bytes when there are none.
 */
export function readBufferScratch(type: BufferType, start: u32, maxSize: u32): usize {
  armScratch(<usize>maxSize);
  const size = readBufferInto(type, start, maxSize, scratchPointer(), <usize>maxSize);
  scratchSize = size < 0 ? 0 : <u32>size;
  return scratchPointer();
}

/**
 * Reads bytes [start, start+maxSize) of a host buffer to `dest`, which has
 * room for `capacity` (>= maxSize) bytes: the host writes there directly.
 * Returns the number of bytes read, or -1 when the host refused.
 */
export function readBufferInto(type: BufferType, start: u32, maxSize: u32, dest: usize, capacity: usize): i64 {
  resetOut();
  armTarget(dest, capacity);
  const result = abi.proxy_get_buffer_bytes(type, start, maxSize, OUT_PTR, OUT_SIZE);
  disarmTarget();
  const ptr = load<usize>(OUT_PTR);
  if (result != WasmResult.Ok) return -1;
  if (ptr == 0) return 0;
  const size = min(load<usize>(OUT_SIZE), capacity);
  if (ptr != dest) {
    // the host allocated elsewhere (it asked for more than `capacity`): copy and let that block go
    memory.copy(dest, ptr, size);
    __unpin(ptr);
  }
  return <i64>size;
}

let scratchSize: u32 = 0;

/** Bytes the last readBufferScratch call delivered. */
export function lastScratchSize(): u32 {
  return scratchSize;
}

/** Size of a host buffer, or -1 when the host does not have it. */
export function getBufferSize(type: BufferType): i64 {
  resetOut();
  const result = abi.proxy_get_buffer_status(type, OUT_SIZE, OUT_PTR);
  if (result != WasmResult.Ok) return -1;
  return <i64>load<u32>(OUT_SIZE);
}

/**
 * Replaces `size` bytes at `start` with `data`. Envoy supports replacing a
 * prefix (start = 0, including the whole buffer), prepending (start = 0,
 * size = 0) and appending (start >= buffer size); anything else is BadArgument.
 */
export function setBufferBytes(type: BufferType, start: u32, size: u32, data: ArrayBuffer): WasmResult {
  return setBufferBytesFrom(type, start, size, changetype<usize>(data), <u32>data.byteLength);
}

/** setBufferBytes with the new bytes given as [ptr, ptr+len) (no ArrayBuffer of exactly that size needed). */
export function setBufferBytesFrom(type: BufferType, start: u32, size: u32, ptr: usize, len: u32): WasmResult {
  return <WasmResult>abi.proxy_set_buffer_bytes(type, start, size, ptr, len);
}

/** Replaces the whole buffer with `data`. */
export function replaceBuffer(type: BufferType, data: ArrayBuffer): WasmResult {
  const size = getBufferSize(type);
  if (size < 0) return WasmResult.NotFound;
  return setBufferBytes(type, 0, <u32>size, data);
}

// ---------------------------------------------------------------- properties

/** Envoy property paths are parts joined by NUL; `path` here uses '.' between parts. */
function encodePath(path: string): ArrayBuffer {
  return utf8(path.replaceAll(".", "\0"));
}

/** Raw value of a property (e.g. "source.address"), or null when the host has none. */
export function getProperty(path: string): ArrayBuffer | null {
  const encoded = encodePath(path);
  resetOut();
  const result = abi.proxy_get_property(changetype<usize>(encoded), encoded.byteLength, OUT_PTR, OUT_SIZE);
  if (result != WasmResult.Ok) return null;
  return takeHostBytes();
}

/** String property (addresses, SNI, plugin name), or null. */
export function getPropertyString(path: string): string | null {
  const value = getProperty(path);
  if (value == null) return null;
  return String.UTF8.decode(value);
}

/** Integer property (ports, connection id: 8 bytes little endian), or -1. */
export function getPropertyInt(path: string): i64 {
  const value = getProperty(path);
  if (value == null || value.byteLength < 8) return -1;
  return load<i64>(changetype<usize>(value));
}

export function setProperty(path: string, value: ArrayBuffer): WasmResult {
  const encoded = encodePath(path);
  return <WasmResult>abi.proxy_set_property(changetype<usize>(encoded), encoded.byteLength, changetype<usize>(value), value.byteLength);
}

// ---------------------------------------------------------------- streams, timers, time

export function continueStream(stream: StreamType): WasmResult {
  return <WasmResult>abi.proxy_continue_stream(stream);
}

export function closeStream(stream: StreamType): WasmResult {
  return <WasmResult>abi.proxy_close_stream(stream);
}

/** Calls the root context's onTick every `ms` milliseconds (0 stops). */
export function setTickPeriod(ms: u32): WasmResult {
  return <WasmResult>abi.proxy_set_tick_period_milliseconds(ms);
}

/** Wall-clock time in nanoseconds since the epoch (0 when unavailable). */
export function currentTimeNanos(): u64 {
  store<u64>(OUT_PTR, 0);
  abi.wasi_clock_time_get(0, 1, OUT_PTR);
  return load<u64>(OUT_PTR);
}

/**
 * Monotonic time in nanoseconds (for timeouts: unaffected by wall-clock
 * changes); falls back to the wall clock when the host has no monotonic clock.
 */
export function monotonicTimeNanos(): u64 {
  store<u64>(OUT_PTR, 0);
  const errno = abi.wasi_clock_time_get(1, 1, OUT_PTR);
  const t = load<u64>(OUT_PTR);
  return errno == 0 && t != 0 ? t : currentTimeNanos();
}

/** Makes later host calls act for context `contextId` (e.g. a connection, from the root's onTick). */
export function setEffectiveContext(contextId: u32): WasmResult {
  return <WasmResult>abi.proxy_set_effective_context(contextId);
}

// ---------------------------------------------------------------- foreign functions

export class ForeignResult {
  constructor(public status: WasmResult, public data: ArrayBuffer) {}
}

export function callForeignFunction(name: string, args: ArrayBuffer): ForeignResult {
  const encodedName = utf8(name);
  resetOut();
  const status = <WasmResult>abi.proxy_call_foreign_function(
    changetype<usize>(encodedName), encodedName.byteLength,
    changetype<usize>(args), args.byteLength,
    OUT_PTR, OUT_SIZE,
  );
  return new ForeignResult(status, status == WasmResult.Ok ? takeHostBytes() : new ArrayBuffer(0));
}

/**
 * Sets an Envoy filter state object through the foreign function
 * set_envoy_filter_state. Envoy accepts only keys that have an object factory
 * (the well-known keys such as envoy.tcp_proxy.cluster); others give NotFound.
 */
export function setEnvoyFilterState(path: string, value: string, span: LifeSpan = LifeSpan.FilterChain): WasmResult {
  // SetEnvoyFilterStateArguments { string path = 1; string value = 2; LifeSpan span = 3; }
  const args = new ProtoWriter().stringField(1, path).stringField(2, value).uintField(3, <u64>span).finish();
  return callForeignFunction("set_envoy_filter_state", args).status;
}

/** Makes tcp_proxy connect this connection to `cluster` (must happen before the first Continue). */
export function setTcpProxyCluster(cluster: string): WasmResult {
  return setEnvoyFilterState("envoy.tcp_proxy.cluster", cluster);
}
