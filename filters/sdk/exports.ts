// The proxy-wasm 0.2.1 entry points (network subset). A filter's index.ts
// re-exports this module with `export * from "../sdk/exports";` and the host
// calls these; each one forwards to the filter's context objects.
import "./abort";
import { anyContext, createContext, deleteContext, rootContext, streamContext } from "./context";
import { getBufferBytes } from "./host";
import { allocateForHost } from "./memory";
import { Action, BufferType, PeerType } from "./types";

/** Marker export: this module speaks proxy-wasm ABI 0.2.1. Never called. */
export function proxy_abi_version_0_2_1(): void {}

export function proxy_on_memory_allocate(size: usize): usize {
  return allocateForHost(size);
}

export function proxy_on_context_create(contextId: u32, parentContextId: u32): void {
  createContext(contextId, parentContextId);
}

export function proxy_on_vm_start(rootContextId: u32, vmConfigurationSize: u32): bool {
  const root = rootContext(rootContextId);
  if (root == null) return false;
  const configuration = vmConfigurationSize > 0 ? getBufferBytes(BufferType.VmConfiguration, 0, vmConfigurationSize) : new ArrayBuffer(0);
  return root.onVmStart(configuration);
}

export function proxy_on_configure(rootContextId: u32, pluginConfigurationSize: u32): bool {
  const root = rootContext(rootContextId);
  if (root == null) return false;
  const configuration = pluginConfigurationSize > 0 ? getBufferBytes(BufferType.PluginConfiguration, 0, pluginConfigurationSize) : new ArrayBuffer(0);
  return root.onConfigure(configuration);
}

export function proxy_on_tick(rootContextId: u32): void {
  const root = rootContext(rootContextId);
  if (root != null) root.onTick();
}

export function proxy_on_new_connection(contextId: u32): Action {
  const stream = streamContext(contextId);
  return stream == null ? Action.Continue : stream.onNewConnection();
}

export function proxy_on_downstream_data(contextId: u32, dataSize: u32, endOfStream: bool): Action {
  const stream = streamContext(contextId);
  return stream == null ? Action.Continue : stream.onDownstreamData(dataSize, endOfStream);
}

export function proxy_on_upstream_data(contextId: u32, dataSize: u32, endOfStream: bool): Action {
  const stream = streamContext(contextId);
  return stream == null ? Action.Continue : stream.onUpstreamData(dataSize, endOfStream);
}

export function proxy_on_downstream_connection_close(contextId: u32, peerType: u32): void {
  const stream = streamContext(contextId);
  if (stream != null) stream.onDownstreamConnectionClose(<PeerType>peerType);
}

export function proxy_on_upstream_connection_close(contextId: u32, peerType: u32): void {
  const stream = streamContext(contextId);
  if (stream != null) stream.onUpstreamConnectionClose(<PeerType>peerType);
}

export function proxy_on_done(contextId: u32): bool {
  const context = anyContext(contextId);
  return context == null ? true : context.onDone();
}

export function proxy_on_log(contextId: u32): void {
  const context = anyContext(contextId);
  if (context != null) context.onLog();
}

export function proxy_on_delete(contextId: u32): void {
  const context = anyContext(contextId);
  if (context != null) context.onDelete();
  deleteContext(contextId);
}
