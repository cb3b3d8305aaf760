// The class model a filter extends: one RootContext per plugin (configuration,
// ticks, metrics) and one StreamContext per TCP connection.
import {
  closeStream, continueStream, getBufferBytes, getPropertyString, logError,
  replaceBuffer, setBufferBytes, setEffectiveContext, setEnvoyFilterState, setTcpProxyCluster, setTickPeriod,
} from "./host";
import { Action, BufferType, LifeSpan, PeerType, StreamType, WasmResult } from "./types";

export class BaseContext {
  constructor(public readonly id: u32) {}

  /** The host is done with this context; return false to finish later with proxy_done. */
  onDone(): bool { return true; }
  /** Last chance to log before the context is deleted. */
  onLog(): void {}
  /** The context is gone; drop any state kept for it. */
  onDelete(): void {}
}

export class RootContext extends BaseContext {
  /** VM-wide configuration (vm_config.configuration in Envoy). */
  onVmStart(vmConfiguration: ArrayBuffer): bool { return true; }

  /** Plugin configuration bytes; return false to reject them (Envoy refuses the config). */
  onConfigure(configuration: ArrayBuffer): bool { return true; }

  /** Called every tick period (see setTickPeriod). */
  onTick(): void {}

  /** Creates the context of a new connection; filters override this. */
  newStreamContext(id: u32): StreamContext {
    return new StreamContext(id, this);
  }

  setTickPeriod(ms: u32): WasmResult {
    return setTickPeriod(ms);
  }

  /** Name of the plugin as configured in the proxy (property plugin_name). */
  pluginName(): string {
    const name = getPropertyString("plugin_name");
    return name == null ? "" : name;
  }
}

/** A TCP connection (downstream = client side, upstream = the cluster side). */
export class StreamContext extends BaseContext {
  constructor(id: u32, public readonly root: RootContext) {
    super(id);
  }

  onNewConnection(): Action { return Action.Continue; }

  /**
   * `size` is everything the host holds for this direction: after a Pause the
   * next call sees the previous bytes again plus the new ones.
   */
  onDownstreamData(size: usize, endOfStream: bool): Action { return Action.Continue; }
  onUpstreamData(size: usize, endOfStream: bool): Action { return Action.Continue; }
  onDownstreamConnectionClose(peer: PeerType): void {}
  onUpstreamConnectionClose(peer: PeerType): void {}

  // ------------------------------------------------------------ data helpers

  downstreamData(start: u32 = 0, maxSize: u32 = u32.MAX_VALUE): ArrayBuffer {
    return getBufferBytes(BufferType.DownstreamData, start, maxSize);
  }
  upstreamData(start: u32 = 0, maxSize: u32 = u32.MAX_VALUE): ArrayBuffer {
    return getBufferBytes(BufferType.UpstreamData, start, maxSize);
  }
  replaceDownstreamData(data: ArrayBuffer): WasmResult {
    return replaceBuffer(BufferType.DownstreamData, data);
  }
  replaceUpstreamData(data: ArrayBuffer): WasmResult {
    return replaceBuffer(BufferType.UpstreamData, data);
  }
  /** Adds bytes after the buffered downstream data. */
  appendDownstreamData(data: ArrayBuffer): WasmResult {
    return setBufferBytes(BufferType.DownstreamData, u32.MAX_VALUE, 0, data);
  }
  /** Adds bytes before the buffered downstream data. */
  prependDownstreamData(data: ArrayBuffer): WasmResult {
    return setBufferBytes(BufferType.DownstreamData, 0, 0, data);
  }

  // ------------------------------------------------------------ connection control

  /** Closes the client connection (after the current callback returns). */
  closeDownstream(): WasmResult { return closeStream(StreamType.Downstream); }
  closeUpstream(): WasmResult { return closeStream(StreamType.Upstream); }
  /**
   * Closes the client connection from outside this connection's callbacks
   * (the root's onTick): the host needs this connection as the effective
   * context for proxy_close_stream, then the root's again.
   */
  closeDownstreamFromRoot(): WasmResult {
    let result = setEffectiveContext(this.id);
    if (result == WasmResult.Ok) result = closeStream(StreamType.Downstream);
    setEffectiveContext(this.root.id);
    return result;
  }
  /** Releases downstream data held by an earlier Pause (e.g. from a tick). */
  continueDownstream(): WasmResult { return continueStream(StreamType.Downstream); }

  /** Picks the tcp_proxy cluster for this connection; call before returning Continue the first time. */
  routeToCluster(cluster: string): WasmResult {
    const result = setTcpProxyCluster(cluster);
    if (result != WasmResult.Ok) logError("cannot route connection to cluster " + cluster + ": host returned " + result.toString());
    return result;
  }

  setFilterState(path: string, value: string, span: LifeSpan = LifeSpan.FilterChain): WasmResult {
    return setEnvoyFilterState(path, value, span);
  }

  // ------------------------------------------------------------ connection properties

  /** "ip:port" of the client, or null. */
  sourceAddress(): string | null { return getPropertyString("source.address"); }
  /** "ip:port" the client connected to, or null. */
  destinationAddress(): string | null { return getPropertyString("destination.address"); }
  /** TLS SNI (empty for plain TCP), or null. */
  requestedServerName(): string | null { return getPropertyString("connection.requested_server_name"); }
}

// ---------------------------------------------------------------- registry

/** Creates the filter's root context; passed to registerRootContext. */
export type RootContextFactory = (id: u32) => RootContext;

let rootFactory: RootContextFactory | null = null;
const rootContexts = new Map<u32, RootContext>();
const streamContexts = new Map<u32, StreamContext>();

/** A filter calls this once, at the top level of its index.ts. */
export function registerRootContext(factory: RootContextFactory): void {
  rootFactory = factory;
}

export function createContext(id: u32, parentId: u32): void {
  if (parentId == 0) {
    const factory = rootFactory;
    const root = factory == null ? new RootContext(id) : factory(id);
    rootContexts.set(id, root);
    return;
  }
  if (!rootContexts.has(parentId)) {
    logError("context " + id.toString() + " created for unknown root context " + parentId.toString());
    return;
  }
  streamContexts.set(id, rootContexts.get(parentId).newStreamContext(id));
}

export function rootContext(id: u32): RootContext | null {
  return rootContexts.has(id) ? rootContexts.get(id) : null;
}

export function streamContext(id: u32): StreamContext | null {
  return streamContexts.has(id) ? streamContexts.get(id) : null;
}

export function anyContext(id: u32): BaseContext | null {
  if (streamContexts.has(id)) return streamContexts.get(id);
  if (rootContexts.has(id)) return rootContexts.get(id);
  return null;
}

export function deleteContext(id: u32): void {
  streamContexts.delete(id);
  rootContexts.delete(id);
}
