// The functions a proxy-wasm module imports, implemented the way Envoy 1.40
// implements them for a network filter (see docs/wasm-host.md for the list
// and for what is only stubbed).
import { randomFillSync } from 'node:crypto';
import { deflateSync, inflateSync } from 'node:zlib';
import {
  ALLOWED_DURING_START, BufferType, ENVOY_FILTER_STATE_KEYS, ENV_FUNCTIONS, ENV_FUNCTIONS_BY_ABI, Errno,
  LOG_LEVELS, LifeSpanNames, MAX_BUFFER_TYPE, MAX_HEADER_MAP_TYPE, MetricType, StreamType, WASI_FUNCTIONS,
  WASI_MODULES, WasmResult,
} from './abi.ts';
import { ProcExit } from './errors.ts';
import type { FilterConnection, VmInstance } from './host.ts';
import { decodeSetEnvoyFilterState } from './protobuf.ts';
import type { ForeignFunction, LogEntry, PropertyValue } from './types.ts';

type HostFn = (...args: never[]) => number | void;

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

/** Serialises a property value the way Envoy does (strings raw, integers as 8 bytes little endian). */
function serialize(value: PropertyValue): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return encoder.encode(value);
  if (typeof value === 'boolean') return Uint8Array.of(value ? 1 : 0);
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  if (typeof value === 'bigint') view.setBigInt64(0, BigInt.asIntN(64, value), true);
  else if (Number.isInteger(value)) view.setBigInt64(0, BigInt(value), true);
  else view.setFloat64(0, value, true);
  return out;
}

function portOf(address: string): number | undefined {
  const i = address.lastIndexOf(':');
  const port = i < 0 ? NaN : Number(address.slice(i + 1));
  return Number.isInteger(port) ? port : undefined;
}

/** Built-in properties (Envoy's attribute names; path parts joined with '.'). */
function builtinProperty(vm: VmInstance, conn: FilterConnection | undefined, path: string): PropertyValue | undefined {
  const plugin = vm.plugin;
  switch (path) {
    case 'plugin_name': return plugin.name;
    case 'plugin_root_id': return plugin.options.rootId ?? '';
    case 'plugin_vm_id': return plugin.options.vmId ?? '';
  }
  if (!conn) return undefined;
  switch (path) {
    case 'connection_id':
    case 'connection.id': return BigInt(conn.id);
    case 'source.address': return conn.sourceAddress;
    case 'source.port': return portOf(conn.sourceAddress);
    case 'destination.address': return conn.destinationAddress;
    case 'destination.port': return portOf(conn.destinationAddress);
    case 'connection.requested_server_name': return conn.sni;
    case 'connection.mtls': return false;
  }
  return undefined;
}

export function buildImports(vm: VmInstance): WebAssembly.Imports {
  const plugin = vm.plugin;
  const mem = () => vm.memory;

  const log = (level: LogEntry['level'], message: string, source: LogEntry['source']) => {
    const conn = vm.context;
    plugin.log({ level, message, contextId: vm.contextId, connectionId: conn?.id, source });
  };

  const unsupported = (call: string, result: number): number => {
    const conn = vm.context;
    if (conn) conn.recordEvent({ type: 'unsupported', call, result });
    else plugin.pushEvent({ type: 'unsupported', call, result });
    return result;
  };

  /** Envoy's copyToPointerSize: empty values are (0, 0), others are copied into guest memory. */
  const copyOut = (data: Uint8Array, ptrPtr: number, sizePtr: number): number => {
    let ptr = 0;
    if (data.length > 0) {
      ptr = vm.alloc(data.length);
      if (ptr === 0 || !mem().write(ptr, data)) return WasmResult.InvalidMemoryAccess;
    }
    if (!mem().setU32(ptrPtr, ptr) || !mem().setU32(sizePtr, data.length)) return WasmResult.InvalidMemoryAccess;
    return WasmResult.Ok;
  };

  // ------------------------------------------------------------ buffers

  /** The buffer of `type` for the current context: bytes, 'none' (NotFound) or 'empty' (size 0). */
  const bufferOf = (type: number): Uint8Array | 'none' => {
    const conn = vm.context;
    switch (type) {
      case BufferType.DownstreamData: return conn?.buffer('downstream') ?? EMPTY;
      case BufferType.UpstreamData: return conn?.buffer('upstream') ?? EMPTY;
      case BufferType.VmConfiguration: return plugin.vmConfiguration;
      case BufferType.PluginConfiguration: return vm.pluginConfiguration ?? 'none';
      case BufferType.HttpCallResponseBody: return 'none';
      default: return EMPTY; // HTTP bodies, gRPC, call data: nothing in a network filter
    }
  };

  // ------------------------------------------------------------ properties

  const getProperty = (pathBytes: Uint8Array): PropertyValue | undefined => {
    const parts = new TextDecoder().decode(pathBytes).split('\0').filter((p) => p.length > 0);
    if (parts.length === 0) return undefined;
    const key = parts.join('.');
    const conn = vm.context;
    if (conn) {
      if (key in conn.properties) return conn.properties[key];
      const own = conn.filterProperties.get(key);
      if (own) return own;
    }
    if (plugin.options.properties && key in plugin.options.properties) return plugin.options.properties[key];
    return builtinProperty(vm, conn, key);
  };

  // ------------------------------------------------------------ foreign functions

  const filterStateKeys = new Set<string>([...ENVOY_FILTER_STATE_KEYS, ...(plugin.options.filterStateKeys ?? [])]);
  const foreign: Record<string, ForeignFunction> = {
    set_envoy_filter_state: (args) => {
      let decoded;
      try {
        decoded = decodeSetEnvoyFilterState(args);
      } catch {
        return { status: WasmResult.BadArgument };
      }
      const span = LifeSpanNames[decoded.span] ?? 'filter_chain';
      const conn = vm.context;
      let status: number = WasmResult.Ok;
      if (!filterStateKeys.has(decoded.path)) status = WasmResult.NotFound; // no object factory for the key
      else if (!conn) status = WasmResult.NotFound; // the root context has no stream info
      conn?.setFilterState(decoded.path, decoded.value, span, status);
      return { status };
    },
    clear_route_cache: () => ({ status: WasmResult.Ok }),
    declare_property: () => ({ status: WasmResult.Ok }),
    compress: (args) => ({ data: deflateSync(args) }),
    uncompress: (args) => {
      try {
        return { data: inflateSync(args) };
      } catch {
        return { status: WasmResult.SerializationFailure };
      }
    },
    verify_signature: () => ({ status: WasmResult.Unimplemented }),
    sign: () => ({ status: WasmResult.Unimplemented }),
    expr_create: () => ({ status: WasmResult.Unimplemented }),
    expr_evaluate: () => ({ status: WasmResult.Unimplemented }),
    expr_delete: () => ({ status: WasmResult.Unimplemented }),
    ...(plugin.options.foreignFunctions ?? {}),
  };

  // ------------------------------------------------------------ clocks

  const clock = plugin.options.clock ?? {
    realtimeNs: () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)),
    monotonicNs: () => process.hrtime.bigint(),
  };

  const env = plugin.options.env ?? {};
  const environ = Object.entries(env).map(([k, v]) => encoder.encode(`${k}=${v}\0`));

  // ------------------------------------------------------------ env.*

  const envFns: Record<string, HostFn> = {
    proxy_log: (level: number, ptr: number, size: number) => {
      if (level >>> 0 >= LOG_LEVELS.length) return WasmResult.BadArgument;
      const message = mem().readString(ptr, size);
      if (message === undefined) return WasmResult.InvalidMemoryAccess;
      log(LOG_LEVELS[level]!, message, 'proxy_log');
      return WasmResult.Ok;
    },
    proxy_get_log_level: (ptr: number) => {
      const level = LOG_LEVELS.indexOf(plugin.options.logLevel ?? 'info');
      return mem().setU32(ptr, level) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
    },
    proxy_get_status: (codePtr: number, msgPtrPtr: number, msgSizePtr: number) => {
      if (!mem().setU32(codePtr, 0)) return WasmResult.InvalidMemoryAccess;
      return copyOut(EMPTY, msgPtrPtr, msgSizePtr);
    },
    proxy_set_property: (pathPtr: number, pathSize: number, valuePtr: number, valueSize: number) => {
      const pathBytes = mem().read(pathPtr, pathSize);
      const value = mem().read(valuePtr, valueSize);
      if (!pathBytes || !value) return WasmResult.InvalidMemoryAccess;
      const conn = vm.context;
      if (!conn) return WasmResult.NotFound; // no stream info in the root context
      const key = new TextDecoder().decode(pathBytes).split('\0').join('.');
      conn.filterProperties.set(key, value);
      conn.recordEvent({ type: 'set_property', path: key, value });
      return WasmResult.Ok;
    },
    proxy_get_property: (pathPtr: number, pathSize: number, valuePtrPtr: number, valueSizePtr: number) => {
      const pathBytes = mem().view8(pathPtr, pathSize);
      if (!pathBytes) return WasmResult.InvalidMemoryAccess;
      const value = getProperty(pathBytes);
      if (value === undefined) return WasmResult.NotFound;
      return copyOut(serialize(value), valuePtrPtr, valueSizePtr);
    },
    proxy_send_local_response: () => unsupported('proxy_send_local_response', WasmResult.Ok),

    // shared data (per module, as Envoy's is per vm_id)
    proxy_get_shared_data: (keyPtr: number, keySize: number, valuePtrPtr: number, valueSizePtr: number, casPtr: number) => {
      const key = mem().readString(keyPtr, keySize);
      if (key === undefined) return WasmResult.InvalidMemoryAccess;
      const entry = plugin.module.sharedData.get(key);
      if (!entry) return WasmResult.NotFound;
      const r = copyOut(entry.value, valuePtrPtr, valueSizePtr);
      if (r !== WasmResult.Ok) return r;
      return mem().setU32(casPtr, entry.cas) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
    },
    proxy_set_shared_data: (keyPtr: number, keySize: number, valuePtr: number, valueSize: number, cas: number) => {
      const key = mem().readString(keyPtr, keySize);
      const value = mem().read(valuePtr, valueSize);
      if (key === undefined || !value) return WasmResult.InvalidMemoryAccess;
      const store = plugin.module.sharedData;
      const entry = store.get(key);
      if (cas >>> 0 !== 0 && entry && entry.cas !== cas >>> 0) return WasmResult.CasMismatch;
      store.set(key, { value, cas: ++plugin.module.sharedDataCas });
      return WasmResult.Ok;
    },
    proxy_register_shared_queue: (namePtr: number, nameSize: number, tokenPtr: number) => {
      const name = mem().readString(namePtr, nameSize);
      if (name === undefined) return WasmResult.InvalidMemoryAccess;
      const vmId = plugin.options.vmId ?? '';
      const queues = plugin.module.sharedQueues;
      let queue = [...queues.values()].find((q) => q.vmId === vmId && q.name === name);
      if (!queue) {
        queue = { token: plugin.module.nextQueueToken++, vmId, name, items: [], owner: vm };
        queues.set(queue.token, queue);
      } else {
        queue.owner = vm;
      }
      return mem().setU32(tokenPtr, queue.token) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
    },
    proxy_resolve_shared_queue: (vmIdPtr: number, vmIdSize: number, namePtr: number, nameSize: number, tokenPtr: number) => {
      const vmId = mem().readString(vmIdPtr, vmIdSize);
      const name = mem().readString(namePtr, nameSize);
      if (vmId === undefined || name === undefined) return WasmResult.InvalidMemoryAccess;
      const queue = [...plugin.module.sharedQueues.values()].find((q) => q.vmId === vmId && q.name === name);
      if (!queue) return WasmResult.NotFound;
      return mem().setU32(tokenPtr, queue.token) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
    },
    proxy_dequeue_shared_queue: (token: number, ptrPtr: number, sizePtr: number) => {
      const queue = plugin.module.sharedQueues.get(token >>> 0);
      if (!queue) return WasmResult.NotFound;
      const item = queue.items.shift();
      if (!item) return WasmResult.Empty;
      return copyOut(item, ptrPtr, sizePtr);
    },
    proxy_enqueue_shared_queue: (token: number, ptr: number, size: number) => {
      const queue = plugin.module.sharedQueues.get(token >>> 0);
      if (!queue) return WasmResult.NotFound;
      const data = mem().read(ptr, size);
      if (!data) return WasmResult.InvalidMemoryAccess;
      queue.items.push(data);
      // Envoy posts proxy_on_queue_ready to the owner's thread; here it runs after the current call.
      const owner = queue.owner;
      vm.defer(() => {
        if (owner.failed === undefined) owner.callQuietly('proxy_on_queue_ready', undefined, [owner.rootId, queue.token]);
      });
      return WasmResult.Ok;
    },

    // HTTP header maps do not exist in a network filter (Envoy: no map -> BadArgument, pairs -> empty)
    proxy_get_header_map_value: () => WasmResult.BadArgument,
    proxy_add_header_map_value: () => WasmResult.BadArgument,
    proxy_replace_header_map_value: () => WasmResult.BadArgument,
    proxy_remove_header_map_value: () => WasmResult.BadArgument,
    proxy_set_header_map_pairs: () => WasmResult.BadArgument,
    proxy_get_header_map_size: () => WasmResult.BadArgument,
    proxy_get_header_map_pairs: (type: number, ptrPtr: number, sizePtr: number) => {
      if (type >>> 0 > MAX_HEADER_MAP_TYPE) return WasmResult.BadArgument;
      return copyOut(EMPTY, ptrPtr, sizePtr);
    },

    proxy_get_buffer_status: (type: number, lengthPtr: number, flagsPtr: number) => {
      if (type >>> 0 > MAX_BUFFER_TYPE) return WasmResult.BadArgument;
      const buffer = bufferOf(type);
      if (buffer === 'none') return WasmResult.NotFound;
      if (!mem().setU32(lengthPtr, buffer.length) || !mem().setU32(flagsPtr, 0)) return WasmResult.InvalidMemoryAccess;
      return WasmResult.Ok;
    },
    proxy_get_buffer_bytes: (type: number, start: number, length: number, ptrPtr: number, sizePtr: number) => {
      if (type >>> 0 > MAX_BUFFER_TYPE) return WasmResult.BadArgument;
      const buffer = bufferOf(type);
      if (buffer === 'none') return WasmResult.NotFound;
      start >>>= 0;
      length >>>= 0;
      if (start > buffer.length) return WasmResult.BadArgument;
      if (start + length > buffer.length) length = buffer.length - start;
      if (length === 0) return WasmResult.Ok; // Envoy writes nothing in this case
      const ptr = vm.alloc(length);
      if (ptr === 0 || !mem().write(ptr, buffer.subarray(start, start + length))) return WasmResult.InvalidMemoryAccess;
      if (!mem().setU32(ptrPtr, ptr) || !mem().setU32(sizePtr, length)) return WasmResult.InvalidMemoryAccess;
      return WasmResult.Ok;
    },
    proxy_set_buffer_bytes: (type: number, start: number, length: number, dataPtr: number, dataSize: number) => {
      if (type >>> 0 > MAX_BUFFER_TYPE) return WasmResult.BadArgument;
      const data = mem().read(dataPtr, dataSize);
      if (!data) return WasmResult.InvalidMemoryAccess;
      const conn = vm.context;
      if (type === BufferType.DownstreamData || type === BufferType.UpstreamData) {
        if (!conn) return WasmResult.BadArgument;
        return conn.setBuffer(type === BufferType.DownstreamData ? 'downstream' : 'upstream', start >>> 0, length >>> 0, data);
      }
      if (bufferOf(type) === 'none') return WasmResult.NotFound;
      return WasmResult.BadArgument; // configuration buffers are read-only
    },

    // outgoing calls are not modelled
    proxy_http_call: () => unsupported('proxy_http_call', WasmResult.Unimplemented),
    proxy_grpc_call: () => unsupported('proxy_grpc_call', WasmResult.Unimplemented),
    proxy_grpc_stream: () => unsupported('proxy_grpc_stream', WasmResult.Unimplemented),
    proxy_grpc_close: () => unsupported('proxy_grpc_close', WasmResult.Unimplemented),
    proxy_grpc_cancel: () => unsupported('proxy_grpc_cancel', WasmResult.Unimplemented),
    proxy_grpc_send: () => unsupported('proxy_grpc_send', WasmResult.Unimplemented),

    proxy_set_tick_period_milliseconds: (period: number) => {
      plugin.setTickPeriod(vm, period >>> 0);
      return WasmResult.Ok;
    },
    proxy_get_current_time_nanoseconds: (ptr: number) =>
      mem().setU64(ptr, clock.realtimeNs()) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess,

    proxy_define_metric: (type: number, namePtr: number, nameSize: number, idPtr: number) => {
      if (type >>> 0 > MetricType.Histogram) return WasmResult.BadArgument;
      const name = mem().readString(namePtr, nameSize);
      if (name === undefined) return WasmResult.InvalidMemoryAccess;
      const id = plugin.defineMetric(vm, type, name);
      return mem().setU32(idPtr, id) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
    },
    proxy_increment_metric: (id: number, delta: bigint) => {
      const metric = vm.metricIds.get(id >>> 0);
      const type = (id >>> 0) & 3;
      if (type === MetricType.Histogram) return WasmResult.BadArgument;
      if (!metric) return WasmResult.NotFound;
      const d = Number(delta); // a wasm i64 arrives as a signed BigInt already
      if (metric.type === 'counter') {
        if (d <= 0) return WasmResult.BadArgument; // Envoy: counters only go up, and 0 is rejected
        metric.value += d;
      } else {
        metric.value += d;
      }
      return WasmResult.Ok;
    },
    proxy_record_metric: (id: number, value: bigint) => {
      const metric = vm.metricIds.get(id >>> 0);
      if (!metric) return WasmResult.NotFound;
      const v = Number(BigInt.asUintN(64, BigInt(value)));
      if (metric.type === 'counter') metric.value += v; // Envoy adds to counters
      else if (metric.type === 'gauge') metric.value = v;
      else metric.samples.push(v);
      return WasmResult.Ok;
    },
    proxy_get_metric: (id: number, resultPtr: number) => {
      const metric = vm.metricIds.get(id >>> 0);
      if (((id >>> 0) & 3) === MetricType.Histogram) return WasmResult.BadArgument;
      if (!metric) return WasmResult.NotFound;
      return mem().setU64(resultPtr, BigInt(Math.max(0, Math.trunc(metric.value)))) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
    },

    proxy_set_effective_context: (id: number) => (vm.setEffectiveContext(id >>> 0) ? WasmResult.Ok : WasmResult.BadArgument),
    proxy_done: () => {
      if (!vm.rootPendingDone || vm.context) return WasmResult.NotFound;
      vm.rootPendingDone = false;
      vm.defer(() => vm.callQuietly('proxy_on_delete', undefined, [vm.rootId]));
      return WasmResult.Ok;
    },
    proxy_call_foreign_function: (namePtr: number, nameSize: number, argsPtr: number, argsSize: number, resultsPtrPtr: number, resultsSizePtr: number) => {
      const name = mem().readString(namePtr, nameSize);
      const args = mem().read(argsPtr, argsSize);
      if (name === undefined || !args) return WasmResult.InvalidMemoryAccess;
      const fn = Object.hasOwn(foreign, name) ? foreign[name] : undefined;
      if (!fn) return WasmResult.NotFound;
      const result = fn(args, { connection: vm.context }) ?? {};
      const data = result.data ?? EMPTY;
      let address = 0;
      if (resultsPtrPtr >>> 0 !== 0 && data.length > 0) {
        address = vm.alloc(data.length);
        if (address === 0 || !mem().write(address, data)) return WasmResult.InvalidMemoryAccess;
      }
      if (resultsPtrPtr >>> 0 !== 0 && !mem().setU32(resultsPtrPtr, address)) return WasmResult.InvalidMemoryAccess;
      if (resultsSizePtr >>> 0 !== 0 && !mem().setU32(resultsSizePtr, data.length)) return WasmResult.InvalidMemoryAccess;
      return result.status ?? WasmResult.Ok;
    },

    proxy_continue_stream: (type: number) => {
      const conn = vm.context;
      switch (type >>> 0) {
        case StreamType.HttpRequest:
        case StreamType.HttpResponse:
          return WasmResult.Ok;
        case StreamType.Downstream:
          if (conn) {
            conn.recordEvent({ type: 'continue_stream', direction: 'downstream', result: WasmResult.Ok });
            vm.defer(() => conn.continueDownstream());
          }
          return WasmResult.Ok;
        case StreamType.Upstream:
          conn?.recordEvent({ type: 'continue_stream', direction: 'upstream', result: WasmResult.Unimplemented });
          return WasmResult.Unimplemented;
        default:
          return WasmResult.BadArgument;
      }
    },
    proxy_close_stream: (type: number) => {
      const conn = vm.context;
      switch (type >>> 0) {
        case StreamType.HttpRequest:
        case StreamType.HttpResponse:
          return WasmResult.Ok;
        case StreamType.Downstream:
        case StreamType.Upstream: {
          const upstream = type >>> 0 === StreamType.Upstream;
          if (conn) vm.defer(() => conn.closeByFilter(upstream));
          return WasmResult.Ok;
        }
        default:
          return WasmResult.BadArgument;
      }
    },

    pthread_equal: (a: number, b: number) => (a === b ? 1 : 0),
    emscripten_notify_memory_growth: () => undefined,
  };

  // ------------------------------------------------------------ wasi_snapshot_preview1.* / wasi_unstable.*

  const wasiFns: Record<string, HostFn> = {
    fd_write: (fd: number, iovs: number, iovsLen: number, nwrittenPtr: number) => {
      if (fd !== 1 && fd !== 2) return Errno.BadF;
      const parts: Uint8Array[] = [];
      for (let i = 0; i < iovsLen >>> 0; i++) {
        const buf = mem().getU32(iovs + i * 8);
        const len = mem().getU32(iovs + i * 8 + 4);
        if (buf === undefined || len === undefined) return Errno.Fault;
        const bytes = mem().read(buf, len);
        if (!bytes) return Errno.Fault;
        parts.push(bytes);
      }
      let text = new TextDecoder().decode(Buffer.concat(parts));
      const written = parts.reduce((n, p) => n + p.length, 0);
      if (written > 0) {
        if (text.endsWith('\n')) text = text.slice(0, -1);
        log(fd === 1 ? 'info' : 'error', text, fd === 1 ? 'stdout' : 'stderr');
      }
      return mem().setU32(nwrittenPtr, written) ? Errno.Success : Errno.Fault;
    },
    fd_read: () => Errno.NoSys,
    fd_seek: () => Errno.Success, // as Envoy: logged as unsupported, reports success
    fd_close: () => Errno.Success,
    fd_fdstat_get: (fd: number, statPtr: number) => {
      if (fd !== 1 && fd !== 2) return Errno.BadF;
      if (!mem().fill(statPtr, 24) || !mem().setU64(statPtr + 8, 64n)) return Errno.Fault; // rights: fd_write
      return Errno.Success;
    },
    environ_sizes_get: (countPtr: number, sizePtr: number) => {
      const size = environ.reduce((n, e) => n + e.length, 0);
      return mem().setU32(countPtr, environ.length) && mem().setU32(sizePtr, size) ? Errno.Success : Errno.Fault;
    },
    environ_get: (arrayPtr: number, bufPtr: number) => {
      let at = bufPtr >>> 0;
      for (let i = 0; i < environ.length; i++) {
        const e = environ[i]!;
        if (!mem().setU32(arrayPtr + i * 4, at) || !mem().write(at, e)) return Errno.Fault;
        at += e.length;
      }
      return Errno.Success;
    },
    args_sizes_get: (argcPtr: number, sizePtr: number) =>
      mem().setU32(argcPtr, 0) && mem().setU32(sizePtr, 0) ? Errno.Success : Errno.Fault,
    args_get: () => Errno.Success,
    clock_time_get: (id: number, _precision: bigint, timePtr: number) => {
      let t: bigint;
      if (id === 0) t = clock.realtimeNs();
      else if (id === 1) t = clock.monotonicNs();
      else return Errno.NotSup;
      return mem().setU64(timePtr, t) ? Errno.Success : Errno.Fault;
    },
    random_get: (bufPtr: number, len: number) => {
      const view = mem().view8(bufPtr, len);
      if (!view) return Errno.Fault;
      randomFillSync(view);
      return Errno.Success;
    },
    proc_exit: (code: number) => {
      // Envoy only logs this and returns; unwinding is the only sane thing for a JS host.
      throw new ProcExit(code);
    },
    path_open: () => Errno.BadF,
    fd_prestat_get: () => Errno.BadF, // no preopened directories
    fd_prestat_dir_name: () => Errno.BadF,
  };

  /** Wraps a host function so it refuses to run while the module starts, as Envoy does. */
  const guard = (qualified: string, name: string, fn: HostFn, isWasi: boolean): HostFn => {
    if (ALLOWED_DURING_START.has(name)) return fn;
    const call = fn as (...args: unknown[]) => number | void;
    return ((a: unknown, b: unknown, c: unknown, d: unknown, e: unknown, f: unknown, g: unknown, h: unknown, i: unknown, j: unknown, k: unknown, l: unknown) => {
      if (vm.restricted) {
        log('error', `Attempted call to restricted ${isWasi ? 'WASI' : 'proxy-wasm'} capability: ${qualified}`, 'host');
        return isWasi ? Errno.NotCapable : WasmResult.InternalFailure;
      }
      return call(a, b, c, d, e, f, g, h, i, j, k, l);
    }) as HostFn;
  };

  const imports: Record<string, Record<string, HostFn>> = { env: {} };
  const envNames = [...ENV_FUNCTIONS, ...ENV_FUNCTIONS_BY_ABI[plugin.module.abiVersion]];
  for (const name of envNames) {
    const fn = envFns[name];
    if (!fn) throw new Error(`wasm-host: env.${name} is not implemented`);
    imports.env![name] = guard(name, name, fn, false);
  }
  for (const m of WASI_MODULES) {
    imports[m] = {};
    for (const name of WASI_FUNCTIONS) imports[m]![name] = guard(`${name}`, name, wasiFns[name]!, true);
  }
  return imports as WebAssembly.Imports;
}
