// The in-process proxy-wasm host: runs a proxy-wasm 0.2.x network filter on
// Node's WebAssembly with the imports Envoy provides, drives it with byte
// chunks and records what it did. See docs/wasm-host.md.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  ENV_FUNCTIONS, ENV_FUNCTIONS_BY_ABI, PeerType, WASI_FUNCTIONS, WASI_MODULES,
  type AbiVersion, type LogLevelName,
} from './abi.ts';
import { GuestTrap, WasmFilterError, trapMessage } from './errors.ts';
import { buildImports } from './imports.ts';
import { GuestMemory } from './memory.ts';
import type {
  CloseInfo, ConnectionEvent, ConnectionOptions, DataResult, Direction, FailurePolicy, FilterAction,
  FilterStateEntry, LogEntry, PluginEvent, PluginOptions, PropertyValue,
} from './types.ts';

export type * from './types.ts';
export { GuestTrap, ProcExit, WasmFilterError } from './errors.ts';

const EMPTY = new Uint8Array(0);

/** A copy (callers pass Buffers too, whose slice() is a view, not a copy). */
function copyOf(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return copyOf(b);
  if (b.length === 0) return a;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function concatAll(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 0) return EMPTY;
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function toBytes(v: Uint8Array | string | object | undefined): Uint8Array {
  if (v === undefined) return EMPTY;
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return new TextEncoder().encode(v);
  return new TextEncoder().encode(JSON.stringify(v));
}

// ------------------------------------------------------------------ module

export interface SharedDataEntry {
  value: Uint8Array;
  cas: number;
}

export interface SharedQueue {
  token: number;
  vmId: string;
  name: string;
  items: Uint8Array[];
  owner: VmInstance;
}

/** A compiled proxy-wasm module; instantiate it once per plugin. */
export class WasmFilterModule {
  /** proxy_set_shared_data store, shared by every plugin of this module (Envoy: per vm_id). */
  readonly sharedData = new Map<string, SharedDataEntry>();
  sharedDataCas = 0;
  readonly sharedQueues = new Map<number, SharedQueue>();
  nextQueueToken = 1;

  private constructor(
    readonly compiled: WebAssembly.Module,
    readonly abiVersion: AbiVersion,
    readonly name: string,
  ) {}

  /** Compiles and checks a module the way Envoy does before starting it. */
  static async load(bytes: Uint8Array | ArrayBuffer, name = 'filter'): Promise<WasmFilterModule> {
    let compiled: WebAssembly.Module;
    try {
      compiled = await WebAssembly.compile(bytes instanceof Uint8Array ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes));
    } catch (err) {
      throw new WasmFilterError('load', `${name}: not a valid WebAssembly module: ${trapMessage(err)}`);
    }
    const exports = new Set(WebAssembly.Module.exports(compiled).map((e) => e.name));
    let abi: AbiVersion;
    if (exports.has('proxy_abi_version_0_2_1')) abi = '0.2.1';
    else if (exports.has('proxy_abi_version_0_2_0')) abi = '0.2.0';
    else if (exports.has('proxy_abi_version_0_1_0')) {
      throw new WasmFilterError('load', `${name}: proxy-wasm ABI 0.1.0 is not supported by this host (build against 0.2.1)`);
    } else {
      throw new WasmFilterError('load', `${name}: missing or unknown proxy-wasm ABI version (no proxy_abi_version_0_2_x export)`);
    }
    if (!WebAssembly.Module.exports(compiled).some((e) => e.name === 'memory' && e.kind === 'memory')) {
      throw new WasmFilterError('load', `${name}: the module does not export its memory as "memory"`);
    }
    if (!exports.has('malloc') && !exports.has('proxy_on_memory_allocate')) {
      throw new WasmFilterError('load', `${name}: the module is missing malloc / proxy_on_memory_allocate`);
    }
    const provided = providedImports(abi);
    const missing = WebAssembly.Module.imports(compiled)
      .filter((i) => i.kind !== 'function' || !provided.has(`${i.module}.${i.name}`))
      .map((i) => (i.kind === 'function' ? `${i.module}.${i.name}` : `${i.module}.${i.name} (${i.kind})`));
    if (missing.length > 0) {
      throw new WasmFilterError(
        'link',
        `${name}: cannot link: the module imports ${missing.join(', ')}, which Envoy does not provide` +
          (missing.includes('env.abort') ? ' (AssemblyScript: build with --use abort=...)' : ''),
      );
    }
    return new WasmFilterModule(compiled, abi, name);
  }

  /** Loads a .wasm file; the module is named after the file. */
  static async loadFile(file: string): Promise<WasmFilterModule> {
    return WasmFilterModule.load(await readFile(file), path.basename(file, '.wasm'));
  }

  get imports(): string[] {
    return WebAssembly.Module.imports(this.compiled).map((i) => `${i.module}.${i.name}`);
  }

  get exports(): string[] {
    return WebAssembly.Module.exports(this.compiled).map((e) => e.name);
  }

  /**
   * Starts a plugin: instantiates the module, runs _initialize, creates the
   * root context and calls proxy_on_vm_start and proxy_on_configure. Throws a
   * WasmFilterError when any step fails or the filter rejects its configuration.
   */
  async instantiate(options: PluginOptions = {}): Promise<WasmPlugin> {
    return new WasmPlugin(this, options);
  }
}

function providedImports(abi: AbiVersion): Set<string> {
  const names = new Set<string>();
  for (const f of ENV_FUNCTIONS) names.add(`env.${f}`);
  for (const f of ENV_FUNCTIONS_BY_ABI[abi]) names.add(`env.${f}`);
  for (const m of WASI_MODULES) for (const f of WASI_FUNCTIONS) names.add(`${m}.${f}`);
  return names;
}

// ------------------------------------------------------------------ metrics

export interface MetricRecord {
  name: string;
  type: 'counter' | 'gauge' | 'histogram';
  /** Counter total or gauge value. */
  value: number;
  /** Histogram samples. */
  samples: number[];
}

// ------------------------------------------------------------------ VM instance

interface CallFrame {
  connection: FilterConnection | undefined;
  effective: FilterConnection | undefined;
}

/** One instance of the module with its root context and connection contexts. */
export class VmInstance {
  readonly instance: WebAssembly.Instance;
  readonly memory: GuestMemory;
  readonly rootId = 1;
  readonly connections = new Map<number, FilterConnection>();
  /** Metric id (as handed to the guest) -> record. */
  readonly metricIds = new Map<number, MetricRecord>();
  nextMetricSeq = 1;
  failed: string | undefined;
  /** During _initialize/_start only logging, clocks and randomness are allowed (as in Envoy). */
  restricted = false;
  /** Plugin configuration, readable only during proxy_on_configure. */
  pluginConfiguration: Uint8Array | undefined;
  tickPeriodMs = 0;
  rootPendingDone = false;
  private frame: CallFrame | undefined;
  private depth = 0;
  private deferred: Array<() => void> = [];
  private readonly fns: Record<string, ((...args: number[]) => unknown) | undefined>;
  private readonly allocFn: (size: number) => unknown;

  constructor(readonly plugin: WasmPlugin) {
    this.instance = new WebAssembly.Instance(plugin.module.compiled, buildImports(this));
    const exports = this.instance.exports as Record<string, unknown>;
    this.memory = new GuestMemory(exports.memory as WebAssembly.Memory);
    this.fns = {};
    for (const [name, value] of Object.entries(exports)) {
      if (typeof value === 'function') this.fns[name] = value as (...args: number[]) => unknown;
    }
    this.allocFn = (this.fns.malloc ?? this.fns.proxy_on_memory_allocate)!;
  }

  has(name: string): boolean {
    return this.fns[name] !== undefined;
  }

  /** The connection the guest is acting for (root context: undefined). */
  get context(): FilterConnection | undefined {
    return this.frame?.effective;
  }

  get contextId(): number {
    return this.frame?.effective?.id ?? this.rootId;
  }

  setEffectiveContext(id: number): boolean {
    if (!this.frame) return false;
    if (id === this.rootId) {
      this.frame.effective = undefined;
      return true;
    }
    const conn = this.connections.get(id);
    if (!conn) return false;
    this.frame.effective = conn;
    return true;
  }

  /** Runs `action` once the outermost guest call returns (Envoy's after-VM-call actions). */
  defer(action: () => void): void {
    this.deferred.push(action);
  }

  /** Guest allocation for data handed to it; 0 on failure. */
  alloc(size: number): number {
    return Number(this.allocFn(size)) >>> 0;
  }

  /**
   * Calls a guest export for `connection` (undefined: the root context).
   * Returns undefined when the export does not exist; throws GuestTrap when
   * the guest traps (the VM is then failed).
   */
  call(name: string, connection: FilterConnection | undefined, args: number[], flush = true): number | undefined {
    const fn = this.fns[name];
    if (fn === undefined) return undefined;
    if (this.failed !== undefined) throw new GuestTrap(name, `the VM has failed: ${this.failed}`);
    const saved = this.frame;
    this.frame = { connection, effective: connection };
    this.depth++;
    let result: unknown;
    try {
      result = fn(...args);
    } catch (err) {
      this.depth--;
      this.frame = saved;
      const message = trapMessage(err);
      if (this.depth === 0) this.deferred = []; // Envoy drops a failed VM's pending actions
      this.fail(name, message, connection);
      throw new GuestTrap(name, message);
    }
    this.depth--;
    this.frame = saved;
    if (flush && this.depth === 0) this.flush();
    return typeof result === 'number' ? result : typeof result === 'bigint' ? Number(result) : result === undefined ? undefined : Number(result);
  }

  /** Like call, but a trap only fails the VM (for close/done/delete callbacks). */
  callQuietly(name: string, connection: FilterConnection | undefined, args: number[]): number | undefined {
    try {
      return this.call(name, connection, args);
    } catch (err) {
      if (err instanceof GuestTrap) return undefined;
      throw err;
    }
  }

  /** Runs the deferred actions (when called with flush = false, the caller must do this). */
  flush(): void {
    if (this.depth !== 0) return;
    while (this.deferred.length > 0) {
      const actions = this.deferred;
      this.deferred = [];
      for (const action of actions) action();
    }
  }

  fail(callback: string, message: string, connection?: FilterConnection): void {
    if (this.failed === undefined) this.failed = `${callback}: ${message}`;
    this.plugin.pushEvent({ type: 'trap', callback, message, connectionId: connection?.id });
    this.plugin.log({ level: 'error', message: `Function: ${callback} failed: ${message}`, contextId: connection?.id ?? this.rootId, connectionId: connection?.id, source: 'host' });
    this.plugin.stopTimer(this);
  }

  /** Runs the module's start functions with host calls restricted, as Envoy does. */
  start(): void {
    this.restricted = true;
    try {
      if (this.has('_initialize')) {
        this.call('_initialize', undefined, []);
        if (this.has('main')) this.call('main', undefined, [0, 0]);
      } else if (this.has('_start')) {
        this.call('_start', undefined, []);
      }
    } finally {
      this.restricted = false;
    }
  }
}

// ------------------------------------------------------------------ plugin

/** A started filter: the root context plus the connections it filters. */
export class WasmPlugin {
  readonly name: string;
  readonly options: PluginOptions;
  readonly failurePolicy: FailurePolicy;
  readonly configuration: Uint8Array;
  readonly vmConfiguration: Uint8Array;
  /** Everything the plugin did that is not tied to one connection, plus all logs. */
  readonly record: { logs: LogEntry[]; events: PluginEvent[] } = { logs: [], events: [] };
  readonly metricsByName = new Map<string, MetricRecord>();
  readonly connections: FilterConnection[] = [];
  /** Number of VM reloads (failure policy reload). */
  reloads = 0;
  closed = false;
  // Assigned by the constructor; startVm runs before it is.
  private vm!: VmInstance;
  private readonly byId = new Map<number, FilterConnection>();
  private nextContextId = 2;
  private timer: NodeJS.Timeout | undefined;
  private readonly recording: boolean;

  constructor(readonly module: WasmFilterModule, options: PluginOptions) {
    this.options = options;
    this.name = options.name ?? module.name;
    this.failurePolicy = options.failurePolicy ?? 'fail_closed';
    this.configuration = toBytes(options.configuration);
    this.vmConfiguration = toBytes(options.vmConfiguration);
    this.recording = options.record ?? true;
    this.vm = this.startVm();
    this.armTimer();
  }

  /** Instantiates and starts a VM; throws WasmFilterError on failure. */
  private startVm(): VmInstance {
    const logsBefore = this.record.logs.length;
    const failLogs = () => this.record.logs.slice(logsBefore);
    let vm: VmInstance;
    try {
      vm = new VmInstance(this);
    } catch (err) {
      throw new WasmFilterError('link', `${this.name}: cannot instantiate: ${trapMessage(err)}`);
    }
    try {
      vm.start();
    } catch (err) {
      throw new WasmFilterError('start', `${this.name}: the module trapped while starting: ${err instanceof GuestTrap ? err.message : trapMessage(err)}`, failLogs());
    }
    const phase = (p: 'vm_start' | 'configure', f: () => boolean) => {
      let ok: boolean;
      try {
        ok = f();
      } catch (err) {
        if (err instanceof GuestTrap) throw new WasmFilterError(p, `${this.name}: proxy_on_${p} trapped: ${err.message}`, failLogs());
        throw err;
      }
      this.pushEvent(p === 'vm_start' ? { type: 'vm_start', ok } : { type: 'configure', ok });
      if (!ok) {
        const said = failLogs().filter((l) => l.level === 'error' || l.level === 'critical' || l.level === 'warn').map((l) => l.message);
        throw new WasmFilterError(
          p,
          `${this.name}: proxy_on_${p} returned false` + (p === 'configure' ? ' (the filter rejected its configuration)' : '') +
            (said.length ? `: ${said.join('; ')}` : ''),
          failLogs(),
        );
      }
    };
    try {
      vm.call('proxy_on_context_create', undefined, [vm.rootId, 0]);
    } catch (err) {
      throw new WasmFilterError('vm_start', `${this.name}: proxy_on_context_create trapped: ${trapMessage(err)}`, failLogs());
    }
    phase('vm_start', () => (vm.call('proxy_on_vm_start', undefined, [vm.rootId, this.vmConfiguration.length]) ?? 1) !== 0);
    phase('configure', () => {
      vm.pluginConfiguration = this.configuration;
      try {
        return (vm.call('proxy_on_configure', undefined, [vm.rootId, this.configuration.length]) ?? 1) !== 0;
      } finally {
        vm.pluginConfiguration = undefined;
      }
    });
    return vm;
  }

  allocContextId(): number {
    return this.nextContextId++;
  }

  get recordEvents(): boolean {
    return this.recording;
  }

  /** The failure that stopped the current VM, if any. */
  get failed(): string | undefined {
    return this.vm.failed;
  }

  /** The VM new connections go to. */
  get currentVm(): VmInstance {
    return this.vm;
  }

  get tickPeriodMs(): number {
    return this.vm.tickPeriodMs;
  }

  log(entry: LogEntry): void {
    if (this.recording || entry.level === 'error' || entry.level === 'critical') this.record.logs.push(entry);
    this.options.onLog?.(entry);
    if (entry.connectionId !== undefined) {
      this.byId.get(entry.connectionId)?.recordEvent({ type: 'log', level: entry.level, message: entry.message });
    }
  }

  /** A connection by context id (while it is open). */
  connection(id: number): FilterConnection | undefined {
    return this.byId.get(id);
  }

  /** @internal */
  forget(conn: FilterConnection): void {
    this.byId.delete(conn.id);
  }

  pushEvent(event: PluginEvent): void {
    this.record.events.push(event);
  }

  // ---------------------------------------------------------------- metrics

  defineMetric(vm: VmInstance, type: number, name: string): number {
    const typeName = (['counter', 'gauge', 'histogram'] as const)[type]!;
    let metric = this.metricsByName.get(name);
    if (!metric) {
      metric = { name, type: typeName, value: 0, samples: [] };
      this.metricsByName.set(name, metric);
    }
    // Envoy keeps the metric type in the low two bits of the id.
    const id = (vm.nextMetricSeq++ << 2) | type;
    vm.metricIds.set(id, metric);
    return id;
  }

  /** Counters and gauges by name (as the filter defined them, without Envoy's "wasmcustom." prefix). */
  metrics(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const m of this.metricsByName.values()) if (m.type !== 'histogram') out[m.name] = m.value;
    return out;
  }

  /** Histogram samples by name. */
  histograms(): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    for (const m of this.metricsByName.values()) if (m.type === 'histogram') out[m.name] = [...m.samples];
    return out;
  }

  metric(name: string): number | undefined {
    const m = this.metricsByName.get(name);
    return m && m.type !== 'histogram' ? m.value : undefined;
  }

  // ---------------------------------------------------------------- ticks

  setTickPeriod(vm: VmInstance, ms: number): void {
    vm.tickPeriodMs = ms;
    this.pushEvent({ type: 'tick_period', ms });
    if (vm === this.vm) this.armTimer();
  }

  /** (Re)starts the real timer for the current VM's tick period (ticks: 'timer'). */
  private armTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const ms = this.vm.tickPeriodMs;
    if (ms > 0 && this.options.ticks === 'timer' && !this.closed && this.vm.failed === undefined) {
      this.timer = setInterval(() => this.tick(), ms);
      this.timer.unref();
    }
  }

  stopTimer(vm: VmInstance): void {
    if (vm === this.vm && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Fires proxy_on_tick once if the filter set a tick period; returns whether it did. */
  tick(): boolean {
    const vm = this.vm;
    if (this.closed || vm.failed !== undefined || vm.tickPeriodMs <= 0) return false;
    this.pushEvent({ type: 'tick' });
    vm.callQuietly('proxy_on_tick', undefined, [vm.rootId]);
    return true;
  }

  // ---------------------------------------------------------------- connections

  /** Opens a connection: proxy_on_context_create + proxy_on_new_connection. */
  newConnection(options: ConnectionOptions = {}): FilterConnection {
    if (this.closed) throw new Error(`plugin ${this.name} is closed`);
    if (this.vm.failed !== undefined && this.failurePolicy === 'reload') {
      try {
        this.vm = this.startVm();
        this.armTimer();
        this.reloads++;
        this.pushEvent({ type: 'reload', ok: true });
      } catch (err) {
        this.pushEvent({ type: 'reload', ok: false, message: err instanceof Error ? err.message : String(err) });
      }
    }
    const vm = this.vm;
    const conn = new FilterConnection(this, vm, this.allocContextId(), options);
    if (this.recording) this.connections.push(conn);
    this.byId.set(conn.id, conn);
    conn.open();
    return conn;
  }

  /** Closes every open connection and shuts the root context down (proxy_on_done, proxy_on_delete). */
  close(): void {
    if (this.closed) return;
    for (const conn of [...this.byId.values()]) if (!conn.closed) conn.closeWith({ reason: 'plugin_closed' }, PeerType.Local);
    this.stopTimer(this.vm);
    this.closed = true;
    const vm = this.vm;
    if (vm.failed === undefined) {
      const done = vm.callQuietly('proxy_on_done', undefined, [vm.rootId]);
      if (done === undefined || done !== 0) vm.callQuietly('proxy_on_delete', undefined, [vm.rootId]);
      else vm.rootPendingDone = true;
    }
    this.pushEvent({ type: 'shutdown' });
  }
}

// ------------------------------------------------------------------ connection

interface DirectionState {
  /** Bytes the host holds for the filter (accumulated while it pauses). */
  pending: Uint8Array;
  /** Envoy exposes the buffer from the data callback until the filter continues. */
  active: boolean;
  forwarded: Uint8Array[];
  forwardedLength: number;
  /** Bytes released during the current data call. */
  released: Uint8Array[] | undefined;
}

function newDirection(): DirectionState {
  return { pending: EMPTY, active: false, forwarded: [], forwardedLength: 0, released: undefined };
}

/** One TCP connection through the filter. */
export class FilterConnection {
  readonly events: ConnectionEvent[] = [];
  readonly filterState = new Map<string, FilterStateEntry>();
  /** Properties set by the filter with proxy_set_property. */
  readonly filterProperties = new Map<string, Uint8Array>();
  readonly sourceAddress: string;
  readonly destinationAddress: string;
  readonly sni: string;
  readonly properties: Record<string, PropertyValue>;
  /** What proxy_on_new_connection returned. */
  newConnectionAction: FilterAction | undefined;
  /** Set once the connection is closed. */
  closed: CloseInfo | undefined;
  /** True once tcp_proxy took over (the filter continued the first time). */
  proceeded = false;
  /** The cluster tcp_proxy connects to: envoy.tcp_proxy.cluster when it took over, else the plugin's defaultCluster. */
  upstreamCluster: string | undefined;
  /** fail_open after a failure: data passes without the filter. */
  bypass = false;
  private created = false;
  private readonly dirs: Record<Direction, DirectionState> = { downstream: newDirection(), upstream: newDirection() };

  constructor(readonly plugin: WasmPlugin, readonly vm: VmInstance, readonly id: number, options: ConnectionOptions) {
    this.sourceAddress = options.sourceAddress ?? `127.0.0.1:${40000 + id}`;
    this.destinationAddress = options.destinationAddress ?? '127.0.0.1:10000';
    this.sni = options.sni ?? '';
    this.properties = options.properties ?? {};
  }

  private record(event: ConnectionEvent): void {
    if (this.plugin.recordEvents) this.events.push(event);
  }

  /** @internal — called by WasmPlugin.newConnection. */
  open(): void {
    const vm = this.vm;
    if (vm.failed !== undefined) {
      this.onFailedVm();
      return;
    }
    vm.connections.set(this.id, this);
    try {
      vm.call('proxy_on_context_create', this, [this.id, vm.rootId]);
      this.created = true;
      const r = vm.call('proxy_on_new_connection', this, [this.id], false);
      const action: FilterAction = r === undefined || r === 0 ? 'continue' : 'pause';
      this.newConnectionAction = action;
      this.record({ type: 'new_connection', action });
      vm.flush(); // after-call actions (a close, a continue) happen before the status is acted on
      if (action === 'continue' && !this.closed && !this.proceeded) this.proceed();
    } catch (err) {
      if (!(err instanceof GuestTrap)) throw err;
      this.onTrap(err);
    }
  }

  /** The connection's handling after the VM failed, by failure policy. */
  private onFailedVm(): void {
    if (this.closed) return;
    if (this.plugin.failurePolicy === 'fail_open') {
      this.bypass = true;
      if (!this.proceeded) this.proceed();
      return;
    }
    this.closeWith({ reason: 'plugin_failed', message: this.vm.failed }, PeerType.Local, false);
  }

  private onTrap(err: GuestTrap): void {
    if (this.plugin.failurePolicy === 'fail_open') {
      this.onFailedVm();
      return;
    }
    this.closeWith({ reason: 'trap', message: err.message }, PeerType.Local, false);
  }

  /** tcp_proxy takes over: it reads envoy.tcp_proxy.cluster now and never again. */
  private proceed(): void {
    this.proceeded = true;
    this.upstreamCluster = this.filterState.get('envoy.tcp_proxy.cluster')?.value ?? this.plugin.options.defaultCluster;
    this.record({ type: 'proceed', cluster: this.upstreamCluster });
  }

  /** Passes the held bytes of a direction on (to tcp_proxy / to the client). */
  private release(dir: Direction): void {
    const d = this.dirs[dir];
    const bytes = d.pending;
    d.pending = EMPTY;
    d.active = false;
    if (dir === 'downstream' && !this.proceeded) this.proceed();
    if (bytes.length === 0) return;
    this.keepForwarded(d, bytes);
    d.released?.push(bytes);
    if (this.plugin.recordEvents) this.record({ type: 'release', direction: dir, bytes });
  }

  private keepForwarded(d: DirectionState, bytes: Uint8Array): void {
    d.forwardedLength += bytes.length;
    if (this.plugin.recordEvents) d.forwarded.push(bytes);
  }

  /**
   * Client -> proxy bytes (proxy_on_downstream_data). Unless events are
   * recorded, the result's `forwarded` may be `bytes` itself (not a copy).
   */
  downstream(bytes: Uint8Array | string, endOfStream = false): DataResult {
    return this.onData('downstream', typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes, endOfStream);
  }

  /** Upstream -> proxy bytes (proxy_on_upstream_data, Envoy's write path). */
  upstream(bytes: Uint8Array | string, endOfStream = false): DataResult {
    return this.onData('upstream', typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes, endOfStream);
  }

  private onData(dir: Direction, bytes: Uint8Array, endOfStream: boolean): DataResult {
    const d = this.dirs[dir];
    if (this.closed) return { action: 'closed', forwarded: EMPTY, buffered: 0, closed: this.closed };
    if (!this.bypass && this.vm.failed !== undefined) this.onFailedVm();
    if (this.closed) return { action: 'closed', forwarded: EMPTY, buffered: 0, closed: this.closed };
    if (this.bypass) {
      const copy = copyOf(bytes);
      if (copy.length > 0) {
        this.keepForwarded(d, copy);
        this.record({ type: 'bypass', direction: dir, bytes: copy });
      }
      return { action: 'continue', forwarded: copy, buffered: 0 };
    }
    // Without event recording the chunk is not copied on the way in: if the
    // filter lets it through unchanged, `forwarded` is the caller's own bytes;
    // only what the filter keeps (paused) is copied, below.
    const borrowed = d.pending.length === 0 && !this.plugin.recordEvents;
    d.pending = borrowed ? bytes : concat(d.pending, bytes);
    // Envoy calls the filter only when there is data or an end of stream.
    if (d.pending.length === 0 && !endOfStream) return { action: d.active ? 'pause' : 'continue', forwarded: EMPTY, buffered: 0 };
    d.active = true;
    d.released = [];
    const size = d.pending.length;
    let action: FilterAction;
    try {
      const r = this.vm.call(dir === 'downstream' ? 'proxy_on_downstream_data' : 'proxy_on_upstream_data', this, [this.id, size, endOfStream ? 1 : 0], false);
      action = r === undefined || r === 0 ? 'continue' : 'pause';
    } catch (err) {
      d.released = undefined;
      if (!(err instanceof GuestTrap)) throw err;
      this.onTrap(err);
      if (this.bypass) {
        // fail_open: Envoy continues with the data it had
        const held = d.pending;
        d.pending = EMPTY;
        d.active = false;
        if (held.length > 0) {
          this.keepForwarded(d, held);
          this.record({ type: 'bypass', direction: dir, bytes: held });
        }
        return { action: 'continue', forwarded: held, buffered: 0 };
      }
      return { action: 'closed', forwarded: EMPTY, buffered: 0, closed: this.closed };
    }
    if (this.plugin.recordEvents) this.record({ type: 'data', direction: dir, size, endOfStream, action });
    this.vm.flush();
    if (!this.closed && action === 'continue') this.release(dir);
    if (borrowed && d.pending === bytes) d.pending = copyOf(bytes); // held past this call: the caller may reuse its buffer
    const forwarded = concatAll(d.released);
    d.released = undefined;
    if (dir === 'upstream' && endOfStream && !this.closed) {
      // Envoy reports the upstream close when it sees end_stream on the write path.
      this.callback('proxy_on_upstream_connection_close', [this.id, PeerType.Unknown]);
    }
    if (this.closed) return { action, forwarded: EMPTY, buffered: 0, closed: this.closed };
    return { action, forwarded, buffered: d.pending.length };
  }

  private callback(name: string, args: number[]): void {
    if (!this.vm.has(name) || this.vm.failed !== undefined) return;
    this.record({ type: 'callback', name });
    this.vm.callQuietly(name, this, args);
  }

  /** The client closes the connection (proxy_on_downstream_connection_close, then done/log/delete). */
  close(peer: 'remote' | 'local' = 'remote'): void {
    this.closeWith({ reason: 'downstream' }, peer === 'remote' ? PeerType.Remote : PeerType.Local);
  }

  /** The upstream closes (proxy_on_upstream_connection_close). */
  closeUpstream(peer: 'remote' | 'local' | 'unknown' = 'remote'): void {
    if (this.closed) return;
    this.callback('proxy_on_upstream_connection_close', [this.id, peer === 'remote' ? PeerType.Remote : peer === 'local' ? PeerType.Local : PeerType.Unknown]);
  }

  /** @internal */
  closeWith(info: CloseInfo, peer: number, notifyFilter = true): void {
    if (this.closed) return;
    this.closed = info;
    this.record({ type: 'close', ...info });
    for (const d of Object.values(this.dirs)) {
      d.pending = EMPTY;
      d.active = false;
    }
    if (notifyFilter && this.created && this.vm.failed === undefined) {
      this.callback('proxy_on_downstream_connection_close', [this.id, peer]);
      this.callback('proxy_on_done', [this.id]);
      this.callback('proxy_on_log', [this.id]);
      this.callback('proxy_on_delete', [this.id]);
    }
    this.vm.connections.delete(this.id);
    this.plugin.forget(this);
  }

  // ------------------------------------------------------------ used by the imports

  /** @internal — the buffer the guest may read/write for a direction, or undefined. */
  buffer(dir: Direction): Uint8Array | undefined {
    const d = this.dirs[dir];
    return d.active ? d.pending : undefined;
  }

  /** @internal — proxy_set_buffer_bytes with Envoy's semantics (`data` is the caller's to give away); returns a WasmResult. */
  setBuffer(dir: Direction, start: number, length: number, data: Uint8Array): number {
    const d = this.dirs[dir];
    if (!d.active) return 2; // BadArgument: no buffer outside a data callback
    const cur = d.pending;
    let next: Uint8Array;
    if (start === 0) {
      // Envoy drains `length` bytes and prepends the data
      const drained = cur.subarray(Math.min(length, cur.length));
      // `data` is the host's own copy of guest memory: a whole-buffer replacement takes it as is
      next = drained.length === 0 ? data : concat(data, drained);
    } else if (start >= cur.length) {
      next = concat(cur, data);
    } else {
      this.record({ type: 'rewrite', direction: dir, start, length, data: data.slice(), buffer: cur, result: 2 });
      return 2; // BadArgument: Envoy cannot replace in the middle of a buffer
    }
    d.pending = next;
    if (this.plugin.recordEvents) this.record({ type: 'rewrite', direction: dir, start, length, data: data.slice(), buffer: next, result: 0 });
    return 0;
  }

  /** @internal */
  setFilterState(path: string, value: string, span: FilterStateEntry['span'], result: number): void {
    if (result === 0) this.filterState.set(path, { value, span });
    this.record({ type: 'filter_state', path, value, span, result, afterProceed: this.proceeded });
  }

  /** @internal */
  recordEvent(event: ConnectionEvent): void {
    this.record(event);
  }

  /** @internal — proxy_continue_stream(DOWNSTREAM), run after the guest call. */
  continueDownstream(): void {
    if (this.closed) return;
    this.release('downstream');
  }

  /** @internal — proxy_close_stream, run after the guest call. */
  closeByFilter(upstream: boolean): void {
    this.closeWith({ reason: upstream ? 'filter_upstream' : 'filter' }, PeerType.Local);
  }

  // ------------------------------------------------------------ what went through

  /** Every downstream byte passed on to tcp_proxy so far, after rewrites (empty with record: false). */
  get forwardedDownstream(): Uint8Array {
    return concatAll(this.dirs.downstream.forwarded);
  }

  /** Every upstream byte passed on to the client so far. */
  get forwardedUpstream(): Uint8Array {
    return concatAll(this.dirs.upstream.forwarded);
  }

  get forwardedDownstreamLength(): number {
    return this.dirs.downstream.forwardedLength;
  }

  /** Downstream bytes the host holds for the filter right now. */
  get pendingDownstream(): Uint8Array {
    return this.dirs.downstream.pending;
  }

  get pendingUpstream(): Uint8Array {
    return this.dirs.upstream.pending;
  }

  /** Log lines of this connection. */
  get logs(): Array<{ level: LogLevelName; message: string }> {
    return this.events.flatMap((e) => (e.type === 'log' ? [{ level: e.level, message: e.message }] : []));
  }

  /** Number of data callbacks that returned pause. */
  get pauses(): number {
    return this.events.filter((e) => (e.type === 'data' || e.type === 'new_connection') && e.action === 'pause').length;
  }
}
