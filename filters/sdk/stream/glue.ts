// The proxy-wasm side of the framed-stream layer: a root context that reads
// the settings, owns the counters and the deadline tick, and a stream context
// that feeds each data callback to the connection's engine and applies the
// outcome (rewrite, route, hold, close), flushes counters once per callback
// and writes one close log line per connection.
import { RootContext, StreamContext } from "../context";
import { jsonQuote } from "../json";
import { log, logError, logInfo, monotonicTimeNanos, setBufferBytesFrom } from "../host";
import { Gauge } from "../metrics";
import { RouteTable, statLabel } from "../match";
import { Settings } from "../settings";
import { Action, BufferType, LogLevel, PeerType } from "../types";
import { Codec } from "./codec";
import { Counters } from "./counters";
import { Flow, FramedConnection } from "./engine";
import { HostSource, releaseLargeBlocks } from "./output";
import { Verdict } from "./verdict";

/** Counter indexes the layer keeps (names under the stat prefix). */
export class LayerCounters {
  downstreamBytes: i32 = 0;
  upstreamBytes: i32 = 0;
  connections: i32 = 0;
  closedByFilter: i32 = 0;
  routeNone: i32 = 0;
  /** Per route of the table (routes to the same cluster share one). */
  routes: i32[] = [];
}

/**
 * A framed filter's root context. Extend it: set `name`, override
 * configure() (read settings, define counters, set `routes`) and newCodec().
 */
export class FramedRoot extends RootContext {
  /** The filter's name, first word of its log lines. */
  name: string = "filter";
  /** Counter names start with this and a dot (defaults to name; a filter may read a stat_prefix setting). */
  statPrefix: string = "";
  counters: Counters = new Counters();
  layer: LayerCounters = new LayerCounters();
  /** The listener's routes (the filter reads them in configure(); conn.route() takes a cluster). */
  routes: RouteTable = new RouteTable();
  logPackets: bool = false;
  active: Gauge = new Gauge("framed.active_connections");
  /** Milliseconds between deadline checks (0: no tick); set with useDeadlines(). */
  private tickMs: u32 = 0;
  private wantTickMs: u32 = 0;
  /** Streams with a deadline, by context id. */
  deadlines: Map<u32, FramedStream> = new Map<u32, FramedStream>();

  constructor(id: u32, name: string) {
    super(id);
    this.name = name;
  }

  /** Reads the filter's own settings (everything but log_packets); errors go through settings.fail(). */
  configure(settings: Settings): bool { return true; }

  /** A codec for a new connection. */
  newCodec(): Codec { return new Codec(); }

  /** Counter `name` under the stat prefix, for the filter's own counters (call in configure()). */
  counter(name: string): i32 {
    return this.counters.define(this.prefix() + "." + name);
  }

  /** Deadlines of up to `ms` will be used: the tick runs at half of it (10 ms .. 1 s; 0 = none). */
  useDeadlines(ms: u32): void {
    let tick: u32 = 0;
    if (ms > 0) tick = min<u32>(max<u32>(ms / 2, 10), 1000);
    this.wantTickMs = tick;
  }

  private prefix(): string { return this.statPrefix.length > 0 ? this.statPrefix : this.name; }

  onConfigure(configuration: ArrayBuffer): bool {
    const s = Settings.parse(configuration);
    this.logPackets = s.bool("log_packets", false);
    this.counters = new Counters();
    this.routes = new RouteTable();
    this.wantTickMs = 0;
    this.statPrefix = "";
    const ok = this.configure(s) && s.ok();
    if (!ok || !s.ok()) {
      logError(this.name + ": rejecting configuration: " + (s.ok() ? "invalid settings" : s.error()));
      return false;
    }
    const p = this.prefix() + ".";
    const c = this.counters;
    const l = new LayerCounters();
    l.downstreamBytes = c.define(p + "downstream.bytes");
    l.upstreamBytes = c.define(p + "upstream.bytes");
    l.connections = c.define(p + "connections");
    l.closedByFilter = c.define(p + "closed_by_filter");
    l.routeNone = c.define(p + "route.none");
    for (let i = 0; i < this.routes.length; i++) l.routes.push(c.define(p + "route." + statLabel(this.routes.routes[i].cluster)));
    this.layer = l;
    c.seal();
    this.active = new Gauge(p + "active_connections");
    this.active.define();
    if (this.wantTickMs != this.tickMs) {
      this.tickMs = this.wantTickMs;
      this.setTickPeriod(this.tickMs);
    }
    logInfo(this.name + ": configured: " + this.routes.length.toString() + " route(s)" + (this.logPackets ? ", packet log on" : ""));
    return true;
  }

  /** Checks deadlines: a stream whose deadline passed gets its codec's onDeadline() verdict. */
  onTick(): void {
    if (this.deadlines.size == 0) return;
    const now = monotonicTimeNanos();
    const ids = this.deadlines.keys();
    for (let i = 0; i < ids.length; i++) {
      const stream = this.deadlines.get(ids[i]);
      const due = stream.conn.deadlineNs;
      if (due == 0) { this.deadlines.delete(ids[i]); continue; }
      if (now >= due) {
        this.deadlines.delete(ids[i]);
        stream.deadlinePassed();
      }
    }
    this.counters.flush();
  }

  newStreamContext(id: u32): StreamContext {
    return new FramedStream(id, this, this.newCodec());
  }
}

/** One connection of a framed filter (created by FramedRoot; filters do not extend it). */
export class FramedStream extends StreamContext {
  readonly conn: FramedConnection;
  private source: HostSource = new HostSource();
  /** Bytes of a held downstream buffer already counted. */
  private counted: usize = 0;
  private routeApplied: bool = false;
  private closing: bool = false;
  private clientClosed: bool = false;
  private serverClosed: bool = false;
  private logged: bool = false;

  constructor(id: u32, root: FramedRoot, readonly codec: Codec) {
    super(id, root);
    this.conn = new FramedConnection(codec, root.counters, root.layer.closedByFilter);
    this.conn.logPackets = root.logPackets;
  }

  get framed(): FramedRoot { return changetype<FramedRoot>(this.root); }

  onNewConnection(): Action {
    const root = this.framed;
    root.active.add(1);
    root.counters.add(root.layer.connections, 1);
    this.codec.onOpen();
    this.watchDeadline();
    root.counters.flush();
    // nothing goes upstream before a frame picked the cluster
    return this.codec.routes ? Action.Pause : Action.Continue;
  }

  onDownstreamData(size: usize, endOfStream: bool): Action { return this.onData(true, size, endOfStream); }
  onUpstreamData(size: usize, endOfStream: bool): Action { return this.onData(false, size, endOfStream); }

  private watchDeadline(): void {
    const root = this.framed;
    if (this.conn.deadlineNs != 0) root.deadlines.set(this.id, this);
    else root.deadlines.delete(this.id);
  }

  private onData(fromClient: bool, size: usize, endOfStream: bool): Action {
    if (this.closing) return Action.Pause;
    const root = this.framed;
    const conn = this.conn;
    const counters = root.counters;
    if (fromClient) {
      if (size > this.counted) counters.add(root.layer.downstreamBytes, <i64>(size - this.counted));
    } else counters.add(root.layer.upstreamBytes, <i64>size);
    const type = fromClient ? BufferType.DownstreamData : BufferType.UpstreamData;
    const source = this.source;
    source.type = type;
    source.size = <u32>size;
    const flow = conn.process(fromClient, source, size, endOfStream);
    source.release();
    this.watchDeadline();
    if (conn.routed && !this.routeApplied) {
      this.routeApplied = true;
      const index = root.routes.routes.length > 0 ? this.routeIndex(conn.cluster) : -1;
      counters.add(index >= 0 ? root.layer.routes[index] : root.layer.routeNone, 1);
      if (conn.cluster.length > 0 && flow != Flow.Close) this.routeToCluster(conn.cluster);
    }
    if (flow == Flow.Close) {
      this.closing = true;
      counters.flush();
      this.closeDownstream();
      return Action.Pause;
    }
    const out = conn.out;
    if (out.modified) setBufferBytesFrom(type, 0, <u32>size, out.resultPtr, <u32>out.used);
    else if (out.prefix > 0) setBufferBytesFrom(type, 0, 0, out.base, <u32>out.prefix);
    conn.release();
    releaseLargeBlocks();
    counters.flush();
    if (flow == Flow.Hold) {
      this.counted = out.modified ? out.used : size;
      return Action.Pause;
    }
    if (fromClient) this.counted = 0;
    return Action.Continue;
  }

  private routeIndex(cluster: string): i32 {
    if (cluster.length == 0) return -1;
    const routes = this.framed.routes.routes;
    for (let i = 0; i < routes.length; i++) if (routes[i].cluster == cluster) return i;
    return -1;
  }

  /** From the root's tick. */
  deadlinePassed(): void {
    if (this.closing) return;
    const v = this.codec.onDeadline();
    if (!v.isClose) return;
    this.conn.closeWith(v);
    this.closing = true;
    this.framed.counters.flush();
    this.closeDownstreamFromRoot();
  }

  onDownstreamConnectionClose(peer: PeerType): void {
    if (peer == PeerType.Remote) this.clientClosed = true;
  }

  onUpstreamConnectionClose(peer: PeerType): void {
    if (!this.clientClosed) this.serverClosed = true;
  }

  onDelete(): void {
    const root = this.framed;
    root.deadlines.delete(this.id);
    root.active.add(-1);
    root.counters.flush();
    if (this.logged) return;
    this.logged = true;
    const conn = this.conn;
    const codec = this.codec;
    let reason = conn.closeReason;
    const byFilter = reason.length > 0;
    if (!byFilter) reason = conn.note;
    if (reason.length == 0) reason = this.serverClosed ? codec.serverNoun + " closed" : this.clientClosed ? "client closed" : "closed";
    let line = root.name + ": connection closed ";
    const fields = codec.describe();
    if (fields.length > 0) line += fields + " ";
    line += "cluster=" + (conn.cluster.length > 0 ? conn.cluster : "-") + " reason=" + jsonQuote(reason);
    line += " " + codec.frameNoun + "_in=" + conn.framesIn.toString() + " " + codec.frameNoun + "_out=" + conn.framesOut.toString();
    const peer = this.sourceAddress();
    if (peer != null) line += " peer=" + peer;
    log(byFilter ? LogLevel.Warn : LogLevel.Info, line);
  }
}

export { Verdict };
