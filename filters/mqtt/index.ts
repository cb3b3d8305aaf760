// mqtt: MQTT 3.1 / 3.1.1 / 5.0 network filter (see docs/mqtt.md).
//
// Glue only: maps the proxy-wasm callbacks onto Session (session.ts), which
// frames the packets (parser.ts), routes at CONNECT, enforces limits and
// topic ACLs and says how to rewrite each buffer. This file reads the host
// buffers, applies rewrites, picks the tcp_proxy cluster, closes, flushes
// counters and writes the log lines.
export * from "../sdk/exports";
import {
  Action, BufferType, Counter, Gauge, LogLevel, PeerType, RootContext, StreamContext,
  getBufferBytes, jsonQuote, log, logError, logInfo, monotonicTimeNanos, readBufferInto, readBufferScratch, registerRootContext, setBufferBytesFrom,
} from "../sdk";
import { PACKET_LOG_PREFIX } from "../sdk/stream";
import { Config, lastConfigError, parseConfig } from "./config";
import { ByteSource, R_CLOSE, R_PAUSE, Session, releaseLargeBlocks } from "./session";
import { S_DOWN_BYTES, S_UP_BYTES, StatDeltas, StatLayout, buildLayout } from "./stats";

class MqttRoot extends RootContext {
  config: Config = new Config();
  layout: StatLayout = new StatLayout();
  counters: Counter[] = [];
  deltas: StatDeltas = new StatDeltas(0);
  active: Gauge = new Gauge("mqtt.active_connections");
  /** Connections that have not completed CONNECT yet (limits.connect_timeout_ms), by context id. */
  awaitingConnect: Map<u32, MqttStream> = new Map<u32, MqttStream>();
  tickMs: u32 = 0;

  onConfigure(configuration: ArrayBuffer): bool {
    const config = parseConfig(configuration);
    if (config == null) {
      logError("mqtt: rejecting configuration: " + lastConfigError());
      return false;
    }
    this.config = config;
    this.layout = buildLayout(config);
    this.counters = [];
    for (let i = 0; i < this.layout.names.length; i++) {
      const c = new Counter(this.layout.names[i]);
      c.define(); // visible in the stats before the first connection
      this.counters.push(c);
    }
    this.deltas = new StatDeltas(this.layout.size);
    this.active = new Gauge(config.statPrefix + ".active_connections");
    this.active.define();
    // the tick checks the CONNECT deadlines: at most 1 s late, sooner for short timeouts
    let tick: u32 = 0;
    if (config.connectTimeoutMs > 0) {
      tick = config.connectTimeoutMs / 2;
      if (tick > 1000) tick = 1000;
      if (tick < 10) tick = 10;
    }
    if (tick != this.tickMs) {
      this.tickMs = tick;
      this.setTickPeriod(tick);
    }
    logInfo("mqtt: configured: " + config.routes.length.toString() + " route(s), " +
      (config.hasAcl ? (config.publishRules.length + config.subscribeRules.length).toString() + " ACL rule(s), default " + (config.aclDefaultAllow ? "allow" : "deny") : "no ACL") +
      ", " + config.topicMetrics.length.toString() + " topic metric prefix(es)");
    return true;
  }

  /** Adds the counted deltas to the host's counters (one host call per changed counter). */
  flush(): void {
    const d = this.deltas;
    const dirty = d.dirty;
    for (let i = 0; i < dirty.length; i++) {
      const index = unchecked(dirty[i]);
      const v = unchecked(d.values[index]);
      unchecked(d.values[index] = 0);
      if (v > 0) this.counters[index].increment(v);
    }
    dirty.length = 0;
  }

  /** Closes the connections whose CONNECT did not complete within limits.connect_timeout_ms. */
  onTick(): void {
    const timeoutMs = this.config.connectTimeoutMs;
    const waiting = this.awaitingConnect;
    if (timeoutMs == 0 || waiting.size == 0) return;
    const now = monotonicTimeNanos();
    const limit = <u64>timeoutMs * 1000000;
    const ids = waiting.keys();
    for (let i = 0; i < ids.length; i++) {
      const stream = waiting.get(ids[i]);
      if (now > stream.startNs && now - stream.startNs >= limit) {
        waiting.delete(ids[i]);
        stream.connectTimedOut();
      }
    }
    this.flush();
  }

  newStreamContext(id: u32): StreamContext {
    return new MqttStream(id, this);
  }
}

/** Reads the current host buffer: windows for headers, the whole buffer only when rewriting. */
class HostSource extends ByteSource {
  type: BufferType = BufferType.DownstreamData;
  size: u32 = 0;
  // the last whole-buffer load stays referenced (alive) while the session uses it
  whole: ArrayBuffer = new ArrayBuffer(0);

  load(start: usize, size: usize): usize {
    // header windows go through the SDK's reusable scratch block (no allocation)
    return readBufferScratch(this.type, <u32>start, <u32>size);
  }

  loadAll(): usize {
    this.whole = getBufferBytes(this.type, 0, this.size);
    return changetype<usize>(this.whole);
  }

  loadInto(dest: usize, len: usize): void {
    const got = <usize>max<i64>(readBufferInto(this.type, 0, <u32>len, dest, len), 0);
    if (got < len) memory.fill(dest + got, 0, len - got); // the host had fewer bytes than it said: never stale ones
  }

  release(): void {
    this.whole = EMPTY;
  }
}

const EMPTY = new ArrayBuffer(0);

class MqttStream extends StreamContext {
  source: HostSource = new HostSource();
  session: Session;
  /** Bytes of a held (paused) downstream buffer already counted. */
  counted: usize = 0;
  routeApplied: bool = false;
  closing: bool = false;
  clientClosed: bool = false;
  brokerClosed: bool = false;
  logged: bool = false;
  /** When the connection was opened (monotonic ns), for limits.connect_timeout_ms. */
  startNs: u64 = 0;

  constructor(id: u32, root: RootContext) {
    super(id, root);
    const r = changetype<MqttRoot>(root);
    this.session = new Session(r.config, r.layout, r.deltas);
  }

  get mqtt(): MqttRoot {
    return changetype<MqttRoot>(this.root);
  }

  onNewConnection(): Action {
    const root = this.mqtt;
    root.active.add(1);
    if (root.config.connectTimeoutMs > 0) {
      this.startNs = monotonicTimeNanos();
      root.awaitingConnect.set(this.id, this);
    }
    return Action.Pause; // nothing goes upstream before CONNECT picked the cluster
  }

  onDownstreamData(size: usize, endOfStream: bool): Action {
    return this.onData(true, size, endOfStream);
  }

  onUpstreamData(size: usize, endOfStream: bool): Action {
    return this.onData(false, size, endOfStream);
  }

  private onData(fromClient: bool, size: usize, endOfStream: bool): Action {
    if (this.closing) return Action.Pause;
    const root = this.mqtt;
    const session = this.session;
    if (size > this.counted) root.deltas.add(fromClient ? S_DOWN_BYTES : S_UP_BYTES, <i64>(size - this.counted));
    const source = this.source;
    source.type = fromClient ? BufferType.DownstreamData : BufferType.UpstreamData;
    source.size = <u32>size;
    const len = size;
    const r = session.process(fromClient, source, len, endOfStream);
    source.release();
    this.writePacketLog();
    if (fromClient && (session.connected || r == R_CLOSE)) root.awaitingConnect.delete(this.id);
    if (r == R_PAUSE) {
      this.counted = size;
      root.flush();
      return Action.Pause;
    }
    if (fromClient) this.counted = 0;
    if (r == R_CLOSE) {
      this.closing = true;
      root.flush();
      this.closeDownstream();
      return Action.Pause;
    }
    if (session.routed && !this.routeApplied) {
      this.routeApplied = true;
      if (session.cluster.length > 0) this.routeToCluster(session.cluster);
    }
    const out = session.out;
    if (out.modified) {
      setBufferBytesFrom(fromClient ? BufferType.DownstreamData : BufferType.UpstreamData, 0, <u32>len, out.resultPtr, <u32>out.used);
    }
    releaseLargeBlocks();
    root.flush();
    return Action.Continue;
  }

  /** From the root's tick: CONNECT did not complete in time. */
  connectTimedOut(): void {
    if (this.closing || this.session.connected) return;
    this.session.connectTimedOut();
    this.closing = true;
    this.closeDownstreamFromRoot();
  }

  private writePacketLog(): void {
    const lines = this.session.packetLog;
    if (lines.length == 0) return;
    // the SDK's packet-log convention (filters/sdk/stream/packet-log.ts): what protoplane replay prints
    for (let i = 0; i < lines.length; i++) log(LogLevel.Debug, PACKET_LOG_PREFIX + lines[i]);
    lines.length = 0;
  }

  onDownstreamConnectionClose(peer: PeerType): void {
    if (peer == PeerType.Remote) this.clientClosed = true;
  }

  onUpstreamConnectionClose(peer: PeerType): void {
    if (!this.clientClosed) this.brokerClosed = true;
  }

  onDelete(): void {
    this.mqtt.awaitingConnect.delete(this.id);
    this.mqtt.active.add(-1);
    this.mqtt.flush();
    if (this.logged) return;
    this.logged = true;
    const s = this.session;
    let reason = s.closeReason;
    const byFilter = reason.length > 0;
    if (!byFilter) reason = s.note;
    if (reason.length == 0) reason = this.brokerClosed ? "broker closed" : this.clientClosed ? "client closed" : "closed";
    const username = s.usernameString();
    let line = "mqtt: connection closed client_id=" + (s.connected ? jsonQuote(s.clientIdString()) : "-");
    if (username != null) line += " username=" + jsonQuote(username);
    line += " cluster=" + (s.cluster.length > 0 ? s.cluster : "-") + " reason=" + jsonQuote(reason);
    line += " packets_in=" + s.packetsDown.toString() + " packets_out=" + s.packetsUp.toString();
    const source = this.sourceAddress();
    if (source != null) line += " peer=" + source;
    log(byFilter ? LogLevel.Warn : LogLevel.Info, line);
  }
}

registerRootContext((id: u32): RootContext => new MqttRoot(id));
