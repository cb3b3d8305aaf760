// Public types of the in-process proxy-wasm host.
import type { LifeSpanName, LogLevelName } from './abi.ts';

export type { LogLevelName, LifeSpanName } from './abi.ts';

/** What a filter callback returned. */
export type FilterAction = 'continue' | 'pause';
export type Direction = 'downstream' | 'upstream';

/**
 * What happens to connections once a filter has trapped (Envoy's
 * PluginConfig.failure_policy; Envoy's default is fail_closed):
 * - fail_closed: the VM stays failed; every later event closes its connection
 * - fail_open: the VM stays failed; connections pass through without the filter
 * - reload: new connections get a freshly started VM; old ones are closed
 */
export type FailurePolicy = 'fail_closed' | 'fail_open' | 'reload';

export interface LogEntry {
  level: LogLevelName;
  message: string;
  /** proxy-wasm context that logged (root context or connection). */
  contextId: number;
  /** Set when a connection's context logged. */
  connectionId?: number;
  /** proxy_log, WASI stdout/stderr, or the host itself (traps, restricted calls). */
  source: 'proxy_log' | 'stdout' | 'stderr' | 'host';
}

export type CloseReason =
  /** The filter called proxy_close_stream(DOWNSTREAM) (Envoy detail wasm_downstream_close). */
  | 'filter'
  /** The filter called proxy_close_stream(UPSTREAM); Envoy closes the same downstream connection (wasm_upstream_close). */
  | 'filter_upstream'
  /** The filter trapped in a callback of this connection. */
  | 'trap'
  /** The VM had failed earlier (fail_closed / reload policy). */
  | 'plugin_failed'
  /** The test closed the connection (conn.close()). */
  | 'downstream'
  /** The plugin was shut down (plugin.close()). */
  | 'plugin_closed';

export interface CloseInfo {
  reason: CloseReason;
  /** Trap message (e.g. "unreachable"), or what failed. */
  message?: string;
}

export interface FilterStateEntry {
  value: string;
  span: LifeSpanName;
}

export type ConnectionEvent =
  | { type: 'new_connection'; action: FilterAction }
  | { type: 'data'; direction: Direction; size: number; endOfStream: boolean; action: FilterAction }
  /** proxy_set_buffer_bytes; `buffer` is the whole buffer after the change. */
  | { type: 'rewrite'; direction: Direction; start: number; length: number; data: Uint8Array; buffer: Uint8Array; result: number }
  /** Bytes passed on to the next filter (tcp_proxy), after any rewrites. */
  | { type: 'release'; direction: Direction; bytes: Uint8Array }
  /** tcp_proxy took over the connection and picked its cluster (undefined = its configured cluster). */
  | { type: 'proceed'; cluster: string | undefined }
  | { type: 'filter_state'; path: string; value: string; span: LifeSpanName; result: number; afterProceed: boolean }
  | { type: 'set_property'; path: string; value: Uint8Array }
  | { type: 'continue_stream'; direction: Direction; result: number }
  | { type: 'close'; reason: CloseReason; message?: string }
  | { type: 'log'; level: LogLevelName; message: string }
  | { type: 'callback'; name: string }
  /** A host call the in-process host does not model (HTTP/gRPC calls, local replies). */
  | { type: 'unsupported'; call: string; result: number }
  /** fail_open: data passed without reaching the failed filter. */
  | { type: 'bypass'; direction: Direction; bytes: Uint8Array };

export type PluginEvent =
  | { type: 'vm_start'; ok: boolean }
  | { type: 'configure'; ok: boolean }
  | { type: 'tick' }
  | { type: 'trap'; callback: string; message: string; connectionId?: number }
  | { type: 'reload'; ok: boolean; message?: string }
  | { type: 'tick_period'; ms: number }
  | { type: 'unsupported'; call: string; result: number }
  | { type: 'shutdown' };

export interface DataResult {
  /** What the filter returned; 'closed' when the connection was already closed (the filter was not called). */
  action: FilterAction | 'closed';
  /** Bytes released to the next filter by this call (accumulated, after rewrites); empty on pause. */
  forwarded: Uint8Array;
  /** Bytes the host still holds for this direction (Envoy keeps accumulating them while paused). */
  buffered: number;
  /** Set when the connection is closed (by this call or earlier). */
  closed?: CloseInfo;
}

export type PropertyValue = string | number | bigint | boolean | Uint8Array;

export interface ConnectionOptions {
  /** "ip:port" (property source.address; default 127.0.0.1:<40000+id>). */
  sourceAddress?: string;
  /** "ip:port" (property destination.address; default 127.0.0.1:10000). */
  destinationAddress?: string;
  /** TLS SNI (property connection.requested_server_name; default ""). */
  sni?: string;
  /** Extra properties, by path with '.' between parts (e.g. "connection.mtls"). */
  properties?: Record<string, PropertyValue>;
}

export interface ForeignCallContext {
  /** The calling connection, or undefined for the root context. */
  connection: FilterConnectionLike | undefined;
}

export interface ForeignFunctionResult {
  /** WasmResult; default Ok. */
  status?: number;
  data?: Uint8Array;
}

export type ForeignFunction = (args: Uint8Array, context: ForeignCallContext) => ForeignFunctionResult | void;

/** The parts of a FilterConnection a foreign function may use. */
export interface FilterConnectionLike {
  readonly id: number;
  readonly filterState: Map<string, FilterStateEntry>;
}

export interface Clock {
  /** Nanoseconds since the epoch. */
  realtimeNs(): bigint;
  monotonicNs(): bigint;
}

export interface PluginOptions {
  /** Plugin name (property plugin_name); default the module's name. */
  name?: string;
  /** root_id; default "". */
  rootId?: string;
  /** vm_id; default "". */
  vmId?: string;
  /** Plugin configuration (proxy_on_configure); objects are JSON-encoded. */
  configuration?: Uint8Array | string | object;
  /** VM configuration (proxy_on_vm_start). */
  vmConfiguration?: Uint8Array | string;
  /** Level reported by proxy_get_log_level; default info (Envoy's default). */
  logLevel?: LogLevelName;
  /** WASI environment variables. */
  env?: Record<string, string>;
  /** Envoy's PluginConfig.failure_policy; default fail_closed. */
  failurePolicy?: FailurePolicy;
  /** tcp_proxy's own cluster (what conn.upstreamCluster reports when the filter picks none). */
  defaultCluster?: string;
  /** Filter state keys accepted by set_envoy_filter_state besides Envoy's well-known ones. */
  filterStateKeys?: string[];
  /** Extra or replacement foreign functions. */
  foreignFunctions?: Record<string, ForeignFunction>;
  /** Extra properties for every context, by path with '.' between parts. */
  properties?: Record<string, PropertyValue>;
  /** 'manual' (default): ticks only on plugin.tick(); 'timer': real timers at the filter's tick period. */
  ticks?: 'manual' | 'timer';
  clock?: Clock;
  /** Called for every log line, as it happens. */
  onLog?: (entry: LogEntry) => void;
  /**
   * Keep per-connection events, logs below error and the forwarded bytes
   * (default true). Turn off for long runs and benchmarks; metrics, filter
   * state, close info and forwarded byte counts are always kept.
   */
  record?: boolean;
}
