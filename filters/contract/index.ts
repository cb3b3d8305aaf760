// contract: a filter that exercises the platform (see filter.json).
//
//  - counters contract.bytes / contract.frames (a frame is a line ending in \n),
//    contract.poisoned, contract.routed_prefix, contract.ticks; gauge
//    contract.active_connections; histogram contract.first_line_bytes
//  - every "MARK" in downstream data becomes "mark" (same length)
//  - holds the connection until the first \n, then routes it: first line
//    starting with route_prefix -> route_cluster, else default_cluster
//  - a 0x00 byte closes the connection
export * from "../sdk/exports";
import {
  Action, Counter, Gauge, Histogram, PeerType, RootContext, StreamContext,
  countByte, indexOfByte, logDebug, logError, logInfo, logWarn, registerRootContext, startsWithBytes,
} from "../sdk";
import { Config, NEWLINE, POISON, endsWithPartialMark, lastConfigError, parseConfig, rewriteMarks } from "./policy";

class ContractRoot extends RootContext {
  config: Config = new Config();
  bytes: Counter = new Counter("contract.bytes");
  frames: Counter = new Counter("contract.frames");
  poisoned: Counter = new Counter("contract.poisoned");
  routedPrefix: Counter = new Counter("contract.routed_prefix");
  ticks: Counter = new Counter("contract.ticks");
  active: Gauge = new Gauge("contract.active_connections");
  firstLine: Histogram = new Histogram("contract.first_line_bytes");

  onConfigure(configuration: ArrayBuffer): bool {
    const config = parseConfig(configuration);
    if (config == null) {
      logError("contract: rejecting configuration: " + lastConfigError());
      return false;
    }
    this.config = config;
    // Define every metric now so they are visible before the first connection.
    this.bytes.define(); this.frames.define(); this.poisoned.define(); this.routedPrefix.define();
    this.ticks.define(); this.active.define(); this.firstLine.define();
    this.setTickPeriod(config.tickMs);
    logInfo("contract: configured, prefix routes to " + config.routeCluster);
    return true;
  }

  onTick(): void {
    this.ticks.increment();
  }

  newStreamContext(id: u32): StreamContext {
    return new ContractStream(id, this);
  }
}

class ContractStream extends StreamContext {
  /** Bytes of the currently held buffer already counted (the host re-presents them after a Pause). */
  counted: i32 = 0;
  routed: bool = false;
  closing: bool = false;

  get contract(): ContractRoot {
    return changetype<ContractRoot>(this.root);
  }

  onNewConnection(): Action {
    this.contract.active.add(1);
    return Action.Pause; // nothing goes upstream before the route is known
  }

  onDownstreamData(size: usize, endOfStream: bool): Action {
    if (this.closing) return Action.Pause;
    const root = this.contract;
    const data = Uint8Array.wrap(this.downstreamData(0, <u32>size));

    // Count only what is new since the last call.
    const fresh = data.length - this.counted;
    if (fresh > 0) {
      root.bytes.increment(fresh);
      const frames = countByte(data, NEWLINE, this.counted);
      if (frames > 0) root.frames.increment(frames);
    }

    if (indexOfByte(data, POISON, this.counted) >= 0) {
      root.poisoned.increment();
      logWarn("contract: NUL byte from " + this.peer() + ", closing the connection");
      this.closing = true;
      this.closeDownstream();
      return Action.Pause;
    }
    this.counted = data.length;

    if (rewriteMarks(data) > 0) this.replaceDownstreamData(data.buffer);

    if (!this.routed) {
      const eol = indexOfByte(data, NEWLINE);
      if (eol < 0 && !endOfStream) return Action.Pause;
      this.route(data, eol < 0 ? data.length : eol);
    }

    if (!endOfStream && endsWithPartialMark(data)) return Action.Pause;
    this.counted = 0; // released: the next call starts with a fresh buffer
    return Action.Continue;
  }

  private route(data: Uint8Array, lineLength: i32): void {
    const root = this.contract;
    const config = root.config;
    this.routed = true;
    root.firstLine.record(<u64>lineLength);
    const line = Uint8Array.wrap(data.buffer, 0, lineLength);
    if (startsWithBytes(line, config.routePrefix)) {
      root.routedPrefix.increment();
      this.routeToCluster(config.routeCluster);
      logDebug("contract: routed to " + config.routeCluster);
    } else if (config.defaultCluster.length > 0) {
      this.routeToCluster(config.defaultCluster);
      logDebug("contract: routed to " + config.defaultCluster);
    }
  }

  private peer(): string {
    const address = this.sourceAddress();
    return address == null ? "unknown peer" : address;
  }

  onDownstreamConnectionClose(peer: PeerType): void {
    logDebug("contract: downstream closed (" + (peer == PeerType.Local ? "local" : peer == PeerType.Remote ? "remote" : "unknown") + ")");
  }

  onDelete(): void {
    this.contract.active.add(-1);
  }
}

registerRootContext((id: u32): RootContext => new ContractRoot(id));
