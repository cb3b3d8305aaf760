// In-process proxy-wasm host (ABI 0.2.x network filters). See docs/wasm-host.md.
export { WasmFilterModule, WasmPlugin, FilterConnection, VmInstance, type MetricRecord } from './host.ts';
export { WasmFilterError, GuestTrap, ProcExit } from './errors.ts';
export * from './types.ts';
export { WasmResult, BufferType, StreamType, PeerType, MetricType, ENVOY_FILTER_STATE_KEYS } from './abi.ts';
export { decodeSetEnvoyFilterState, encodeSetEnvoyFilterState } from './protobuf.ts';
