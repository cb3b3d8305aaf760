// What every xDS stream does regardless of variant: learn its node, join the
// node's snapshot group, push due responses in make-before-break order,
// respect transport back-pressure, and keep the per-type record that
// /debug/nodes and the metrics read.
import type { Logger } from 'pino';
import type { GroupMembership, NodeHash, ResourceEntry, Snapshot, SnapshotCache, Subscription } from '../cache/index.ts';
import type { Metrics } from '../metrics.ts';
import { TYPE, type ResourceType, type XdsFlavour } from '../model/resources.ts';
import { STEPS, shortType, type Step, type StreamSink } from './protocol.ts';
import { Status } from './grpc.ts';
import { Refused, type XdsLimits } from './limits.ts';
import type { Drainable, FanOutScheduler, WriteHandle } from './scheduler.ts';
import { SubscriptionInterner } from './subscriptions.ts';
import type { NodeInfo } from './wire.ts';

/** What the admin API shows of one type on one stream. */
export interface TypeStateInfo {
  readonly typeUrl: ResourceType;
  readonly wildcard: boolean;
  readonly subscription: Subscription;
  readonly sentVersion?: string;
  readonly sentNonce?: string;
  readonly ackedVersion?: string;
  readonly nacked?: { version: string; message: string; at: number };
  /** The resources this client holds, as far as what it was sent goes. */
  held(): readonly ResourceEntry[];
}

export interface StreamInfo {
  readonly id: number;
  readonly variant: 'sotw' | 'delta';
  readonly node?: NodeInfo;
  readonly group?: string;
  readonly connectedAt: number;
  /** The connection it came on (a node's per-type streams share one: verified on Envoy 1.40). */
  readonly connection?: number;
  readonly types: ReadonlyMap<ResourceType, TypeStateInfo>;
  /** Every type on this one stream (ADS), or one stream per type. */
  readonly transport: 'ads' | 'per-type';
}

export interface StreamContext {
  cache: SnapshotCache;
  metrics: Metrics;
  log: Logger;
  nodeHash: NodeHash;
  interner: SubscriptionInterner;
  /**
   * The per-type streams of each node, by connection and node id: an Envoy
   * with one stream per type still needs make-before-break across them (RDS
   * must not point at a cluster its CDS stream has not warmed yet). Keyed by
   * connection too, because Envoy opens them all on its one connection to
   * the xDS cluster, and a stream on another connection that claims the same
   * node id (an impostor that never ACKs) must not hold this node's
   * changes back.
   */
  perTypeSessions: Map<string, Set<XdsStream<BaseTypeState>>>;
  /** Open streams per announced node id (bounded by limits.maxStreamsPerNode). */
  streamsPerNode: Map<string, number>;
  limits: XdsLimits;
  /** Set with mTLS: a stream's node id must be one of its client certificate's names. */
  requireProvenNodeId: boolean;
  /** Paces the fan-out of a new snapshot across streams. */
  fanOut: FanOutScheduler;
}

export interface BaseTypeState extends TypeStateInfo {
  wildcard: boolean;
  subscription: Subscription;
  sentVersion?: string;
  sentNonce?: string;
  ackedVersion?: string;
  nacked?: { version: string; message: string; at: number };
  awaiting: boolean;
  sentAt: number;
  /** When the change the last response carries became known (snapshot or subscription). */
  causeAt: number;
  subscribedAt: number;
}

/** A node id is proven by a URI SAN whose last path segment is the id (SPIFFE style), or a DNS SAN equal to it. */
export function provesNodeId(names: readonly string[], nodeId: string): boolean {
  if (nodeId === '') return false;
  for (const name of names) {
    if (name.startsWith('DNS:') && name.slice(4) === nodeId) return true;
    if (name.startsWith('URI:')) {
      const uri = name.slice(4);
      if (uri.slice(uri.lastIndexOf('/') + 1) === nodeId && uri.lastIndexOf('/') > uri.indexOf('://') + 2) return true;
    }
  }
  return false;
}

export abstract class XdsStream<S extends BaseTypeState> implements StreamInfo, Drainable {
  abstract readonly variant: 'sotw' | 'delta';
  node?: NodeInfo;
  group?: string;
  readonly connectedAt = Date.now();
  readonly types = new Map<ResourceType, S>();
  private blocked = false;
  /**
   * Set by the first write of a pump, which corks the sink until the pump
   * ends: a change usually sends a stream two responses (CDS, then the EDS
   * of the changed cluster), which then go to HTTP/2 as one write. Most
   * pumps (one per ACK) write nothing and cork nothing.
   */
  private corked = false;
  /** Writes gRPC has not handed on yet, released on flush or close. */
  private readonly unflushed = new Set<WriteHandle>();
  private nonceCounter = 0;
  private membership: GroupMembership | undefined;
  /** The key of this stream's per-type session, and whether it counts in streamsPerNode. */
  private sessionKey: string | undefined;
  private countedForNode = false;

  constructor(
    readonly id: number,
    protected readonly ctx: StreamContext,
    private readonly sink: StreamSink,
    /** Per-type services accept only their own type; ADS accepts all. */
    protected readonly allowedTypes: ReadonlySet<string>,
    /** Which snapshot flavour this stream's Envoy needs (ADS, or per-type SotW/Delta). */
    private readonly flavour: XdsFlavour,
  ) {}

  get transport(): 'ads' | 'per-type' {
    return this.flavour === 'ads' ? 'ads' : 'per-type';
  }

  get connection(): number {
    return this.sink.connection;
  }

  /** This stream and the node's other per-type streams (just this one over ADS). */
  private session(): Iterable<XdsStream<BaseTypeState>> {
    const peers = this.sessionKey === undefined ? undefined : this.ctx.perTypeSessions.get(this.sessionKey);
    return peers ?? this.alone;
  }

  /** session() over ADS (built once: pump() asks for it several times per ACK). */
  private readonly alone: readonly XdsStream<BaseTypeState>[] = [this as unknown as XdsStream<BaseTypeState>];

  /** A type's state on this stream or on one of the node's other per-type streams. */
  protected typeState(typeUrl: ResourceType): BaseTypeState | undefined {
    for (const stream of this.session()) {
      const state = stream.types.get(typeUrl);
      if (state) return state;
    }
    return undefined;
  }

  /** Remembers the node of the first request and joins its snapshot group. */
  protected identify(node: NodeInfo | undefined): void {
    if (this.node) return;
    const claimed = node ?? { id: '', cluster: '', userAgent: '' };
    const { limits, streamsPerNode } = this.ctx;
    if (this.ctx.requireProvenNodeId && !provesNodeId(this.sink.peerNames ?? [], claimed.id)) {
      throw new Refused(
        'permission_denied',
        Status.PERMISSION_DENIED,
        `node id "${claimed.id}" is not proven by the client certificate (names: ${(this.sink.peerNames ?? []).join(', ') || 'none'})`,
      );
    }
    const open = streamsPerNode.get(claimed.id) ?? 0;
    if (open >= limits.maxStreamsPerNode) {
      throw new Refused('too_many_streams_per_node', Status.RESOURCE_EXHAUSTED, `node "${claimed.id}" already has ${open} open streams (limit ${limits.maxStreamsPerNode})`);
    }
    streamsPerNode.set(claimed.id, open + 1);
    this.countedForNode = true;
    this.node = claimed;
    if (this.flavour !== 'ads' && this.node.id) {
      this.sessionKey = `${this.sink.connection}\0${this.node.id}`;
      const peers = this.ctx.perTypeSessions.get(this.sessionKey) ?? new Set();
      peers.add(this as unknown as XdsStream<BaseTypeState>);
      this.ctx.perTypeSessions.set(this.sessionKey, peers);
    }
    this.group = this.ctx.nodeHash(this.node);
    this.membership = this.ctx.cache.watch(this.group, this.flavour, () => this.ctx.fanOut.schedule(this));
  }

  close(): void {
    this.membership?.leave();
    this.ctx.fanOut.forget(this);
    for (const handle of this.unflushed) this.ctx.fanOut.release(handle);
    this.unflushed.clear();
    if (this.countedForNode && this.node) {
      const open = (this.ctx.streamsPerNode.get(this.node.id) ?? 1) - 1;
      if (open <= 0) this.ctx.streamsPerNode.delete(this.node.id);
      else this.ctx.streamsPerNode.set(this.node.id, open);
      this.countedForNode = false;
    }
    const peers = this.sessionKey === undefined ? undefined : this.ctx.perTypeSessions.get(this.sessionKey);
    if (peers?.delete(this as unknown as XdsStream<BaseTypeState>)) {
      if (peers.size === 0) this.ctx.perTypeSessions.delete(this.sessionKey!);
      // What this stream held back (an unACKed response) no longer holds the others back.
      else for (const peer of peers) this.ctx.fanOut.schedule(peer);
    }
    for (const state of this.types.values()) this.ctx.interner.release(state.subscription);
    // free the per-subscription views now, not at the next config change
    this.types.clear();
  }

  /** A response has not been handed on for drainTimeoutMs: the client does not read. Reset the stream. */
  drainTimedOut(waitedMs: number): void {
    this.ctx.metrics.rejectedRequests.inc({ reason: 'drain_timeout' });
    this.ctx.log.warn(
      { stream: this.id, node: this.node?.id, waitedMs: Math.round(waitedMs) },
      `xDS stream reset: a response was not read within ${this.ctx.limits.drainTimeoutMs} ms (--xds-drain-timeout)`,
    );
    this.sink.abort('drain timeout');
  }

  /** Refuses a request naming more resources than the limits allow. */
  protected checkNames(count: number, what: 'request' | 'subscription'): void {
    const limit = what === 'request' ? this.ctx.limits.maxNamesPerRequest : this.ctx.limits.maxNamesPerSubscription;
    if (count > limit) {
      const flag = what === 'request' ? '--xds-max-names-per-request' : '--xds-max-names-per-subscription';
      throw new Refused('too_many_names', Status.RESOURCE_EXHAUSTED, `${count} resource names in one ${what}, over the limit of ${limit} (${flag})`);
    }
  }

  private unknownTypes: Set<string> | undefined;

  /** A type_url this stream does not serve: counted, and logged once per stream and type. */
  protected unservedType(typeUrl: string): void {
    this.ctx.metrics.rejectedRequests.inc({ reason: 'unknown_type' });
    this.unknownTypes ??= new Set();
    if (this.unknownTypes.has(typeUrl) || this.unknownTypes.size >= 8) return;
    this.unknownTypes.add(typeUrl);
    this.ctx.log.warn({ stream: this.id, node: this.node?.id, typeUrl: typeUrl.slice(0, 200) }, 'request for a type this stream does not serve; ignored');
  }

  /** Per-message debug lines cost an object each; build them only when they are logged. */
  private get debug(): boolean {
    return this.ctx.log.isLevelEnabled('debug');
  }

  protected nextNonce(): string {
    return (++this.nonceCounter).toString(36);
  }

  protected onAck(state: S, now: number): void {
    state.awaiting = false;
    if (this.debug) this.ctx.log.debug({ stream: this.id, type: shortType(state.typeUrl), version: state.sentVersion }, 'ack');
    if (state.ackedVersion !== state.sentVersion) {
      state.ackedVersion = state.sentVersion;
      const metrics = this.ctx.metrics.forType(state.typeUrl);
      metrics.acks++;
      metrics.pushLatency.observe((now - state.causeAt) / 1000);
    }
  }

  protected onNack(state: S, message: string, now: number): void {
    state.awaiting = false;
    const version = state.sentVersion ?? '';
    state.nacked = { version, message, at: now };
    this.ctx.metrics.nacks.inc({ type: shortType(state.typeUrl) });
    this.ctx.log.warn(
      { stream: this.id, node: this.node?.id, type: shortType(state.typeUrl), version, error: message },
      'client rejected config (NACK); not re-sending this version',
    );
  }

  protected stale(typeUrl: string): void {
    this.ctx.metrics.staleRequests.inc({ type: shortType(typeUrl) });
  }

  /** Replaces a state's subscription by an interned one. */
  protected resubscribe(state: S, names: Iterable<string>): void {
    const next = this.ctx.interner.intern(names);
    this.ctx.interner.release(state.subscription);
    state.subscription = next;
  }

  /** Whether a response of one of these types waits for its ACK (a loop, not some(): pump runs per stream per ACK). */
  private anyAwaitingOf(typeUrls: readonly ResourceType[]): boolean {
    for (const typeUrl of typeUrls) {
      for (const stream of this.session()) if (stream.types.get(typeUrl)?.awaiting) return true;
    }
    return false;
  }

  /** Per-type sessions only (over ADS, Envoy's own CDS ACK waits for warming). */
  private clustersWarm(snapshot: Snapshot): boolean {
    if (this.flavour === 'ads') return true;
    let clusters: BaseTypeState | undefined;
    const withEndpoints = new Set<string>();
    for (const stream of this.session()) {
      clusters ??= stream.types.get(TYPE.cluster);
      for (const entry of stream.types.get(TYPE.endpoint)?.held() ?? []) withEndpoints.add(entry.name);
    }
    if (!clusters) return true;
    const assignments = snapshot.of(TYPE.endpoint).entries;
    return clusters.held().every((c) => !assignments.has(c.name) || withEndpoints.has(c.name));
  }

  /** The snapshot of this stream's group, as the cache has it now. */
  private currentSnapshot(): Snapshot | undefined {
    return this.membership?.snapshot();
  }

  /**
   * Sends every response that is due and not held back, in make-before-break
   * order, over all of the node's streams at once (one stream over ADS; the
   * per-type streams otherwise), so ordering holds across streams too.
   */
  pump(): void {
    const session = this.session();
    const streams = session === this.alone ? this.alone : [...session];
    try {
      for (const step of STEPS) {
        for (const stream of streams) {
          const state = stream.types.get(step.typeUrl);
          const snapshot = stream.currentSnapshot();
          if (!state || !snapshot || stream.blocked) continue;
          if (this.anyAwaitingOf(step.waitsFor)) continue;
          if (step.needsWarmClusters && !this.clustersWarm(snapshot)) continue;
          stream.pushStep(state, step, snapshot, Math.max(snapshot.createdAt, state.subscribedAt));
        }
      }
    } finally {
      for (const stream of streams) {
        if (!stream.corked) continue;
        stream.corked = false;
        stream.sink.uncork();
      }
    }
  }

  /** Sends this step's response if one is due (calling `write`). */
  protected abstract pushStep(state: S, step: Step, snapshot: Snapshot, causeAt: number): void;

  /** Sends a response built behind MESSAGE_PREFIX_BYTES spare bytes (grpc.ts). */
  protected write(state: S, bytes: Buffer, version: string, nonce: string, causeAt: number): void {
    state.sentVersion = version;
    state.sentNonce = nonce;
    state.sentAt = Date.now();
    state.causeAt = causeAt;
    state.awaiting = true;
    this.ctx.metrics.forType(state.typeUrl).pushes++;
    if (this.debug) this.ctx.log.debug({ stream: this.id, type: shortType(state.typeUrl), version, nonce }, 'push');
    // Counted against the fan-out's bytes in flight until gRPC has taken them (or the stream closed).
    if (!this.corked) {
      this.corked = true;
      this.sink.cork();
    }
    const handle = this.ctx.fanOut.written(bytes.length, this);
    this.unflushed.add(handle);
    if (!this.sink.writePrefixed(bytes, () => this.flushed(handle))) {
      this.blocked = true;
      this.sink.onDrain(() => {
        this.blocked = false;
        this.pump();
      });
    }
  }

  private flushed(handle: WriteHandle): void {
    if (this.unflushed.delete(handle)) this.ctx.fanOut.release(handle);
  }
}
