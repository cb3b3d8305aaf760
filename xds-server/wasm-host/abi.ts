// Numbers and names of the proxy-wasm ABI (0.2.0 / 0.2.1) as Envoy implements
// it. See docs/wasm-host.md for which calls the in-process host models.

export const WasmResult = {
  Ok: 0,
  NotFound: 1,
  BadArgument: 2,
  SerializationFailure: 3,
  ParseFailure: 4,
  InvalidMemoryAccess: 6,
  Empty: 7,
  CasMismatch: 8,
  InternalFailure: 10,
  Unimplemented: 12,
} as const;

export const BufferType = {
  HttpRequestBody: 0,
  HttpResponseBody: 1,
  DownstreamData: 2,
  UpstreamData: 3,
  HttpCallResponseBody: 4,
  GrpcReceiveBuffer: 5,
  VmConfiguration: 6,
  PluginConfiguration: 7,
  CallData: 8,
} as const;
export const MAX_BUFFER_TYPE = 8;

export const StreamType = { HttpRequest: 0, HttpResponse: 1, Downstream: 2, Upstream: 3 } as const;

export const PeerType = { Unknown: 0, Local: 1, Remote: 2 } as const;

export const MetricType = { Counter: 0, Gauge: 1, Histogram: 2 } as const;

export const MAX_HEADER_MAP_TYPE = 7;

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'critical'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

/** WASI errno values Envoy returns. */
export const Errno = {
  Success: 0,
  BadF: 8,
  Fault: 21,
  Inval: 28,
  NoSys: 52,
  NotSup: 58,
  NotCapable: 76,
} as const;

export type AbiVersion = '0.2.0' | '0.2.1';

/** Host functions Envoy registers in module "env" for every ABI version. */
export const ENV_FUNCTIONS = [
  'proxy_log', 'proxy_get_status', 'proxy_set_property', 'proxy_get_property', 'proxy_send_local_response',
  'proxy_get_shared_data', 'proxy_set_shared_data', 'proxy_register_shared_queue', 'proxy_resolve_shared_queue',
  'proxy_dequeue_shared_queue', 'proxy_enqueue_shared_queue', 'proxy_get_header_map_value',
  'proxy_add_header_map_value', 'proxy_replace_header_map_value', 'proxy_remove_header_map_value',
  'proxy_get_header_map_pairs', 'proxy_set_header_map_pairs', 'proxy_get_header_map_size',
  'proxy_get_buffer_status', 'proxy_get_buffer_bytes', 'proxy_set_buffer_bytes', 'proxy_http_call',
  'proxy_grpc_call', 'proxy_grpc_stream', 'proxy_grpc_close', 'proxy_grpc_cancel', 'proxy_grpc_send',
  'proxy_set_tick_period_milliseconds', 'proxy_get_current_time_nanoseconds', 'proxy_define_metric',
  'proxy_increment_metric', 'proxy_record_metric', 'proxy_get_metric', 'proxy_set_effective_context',
  'proxy_done', 'proxy_call_foreign_function',
  // not proxy-wasm, but Envoy registers them for Emscripten-built modules
  'pthread_equal', 'emscripten_notify_memory_growth',
] as const;

/** ABI-specific additions, as in Envoy's registerCallbacks(). */
export const ENV_FUNCTIONS_BY_ABI: Record<AbiVersion, readonly string[]> = {
  '0.2.0': ['proxy_continue_stream', 'proxy_close_stream'],
  '0.2.1': ['proxy_continue_stream', 'proxy_close_stream', 'proxy_get_log_level'],
};

/** WASI functions Envoy registers (under both wasi_snapshot_preview1 and wasi_unstable). */
export const WASI_FUNCTIONS = [
  'fd_write', 'fd_read', 'fd_seek', 'fd_close', 'fd_fdstat_get', 'environ_get', 'environ_sizes_get',
  'args_get', 'args_sizes_get', 'clock_time_get', 'random_get', 'proc_exit', 'path_open',
  'fd_prestat_get', 'fd_prestat_dir_name',
] as const;
export const WASI_MODULES = ['wasi_snapshot_preview1', 'wasi_unstable'] as const;

/** Host calls allowed while the module initialises (_initialize/_start), as in Envoy. */
export const ALLOWED_DURING_START = new Set([
  'proxy_log', 'fd_write', 'args_sizes_get', 'args_get', 'environ_sizes_get', 'environ_get',
  'fd_prestat_get', 'fd_prestat_dir_name', 'clock_time_get', 'random_get',
]);

/**
 * Filter state keys Envoy 1.40 has object factories for, i.e. the keys
 * set_envoy_filter_state accepts (others return NotFound). Extend with the
 * host option filterStateKeys.
 */
export const ENVOY_FILTER_STATE_KEYS = [
  'envoy.tcp_proxy.cluster',
  'envoy.udp_proxy.cluster',
  'envoy.tcp_proxy.per_connection_idle_timeout_ms',
  'envoy.network.upstream_server_name',
  'envoy.network.application_protocols',
  'envoy.network.upstream_subject_alt_names',
  'envoy.network.transport_socket.original_dst_address',
  'envoy.filters.listener.original_dst.local_ip',
  'envoy.filters.listener.original_dst.remote_ip',
  'envoy.upstream.dynamic_host',
  'envoy.upstream.dynamic_port',
  'envoy.string',
  'envoy.hashable_string',
  'envoy.bool',
] as const;

export const LifeSpanNames = ['filter_chain', 'downstream_request', 'downstream_connection'] as const;
export type LifeSpanName = (typeof LifeSpanNames)[number];
