// What every xDS stream does regardless of variant: learn its node, join the
// node's snapshot group, push due responses in make-before-break order,
// respect transport back-pressure, and keep the per-type record that
// /debug/nodes and the metrics read.
import type { Logger } from 'pino';
import type { GroupMembership, NodeHash, ResourceEntry, Snapshot, SnapshotCache, Subscription } from '../cache/index.ts';
import type { Metrics } from '../metrics.ts';
import { TYPE, type ResourceType, type XdsFlavour } from '../translate/index.ts';
import { STEPS, shortType, type Step, type StreamSink } from './protocol.ts';
import type { FanOutScheduler } from './scheduler.ts';
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
  readonly types: ReadonlyMap<ResourceType, TypeStateInfo>;
}

export interface StreamContext {
  cache: SnapshotCache;
  metrics: Metrics;
  log: Logger;
  nodeHash: NodeHash;
  interner: SubscriptionInterner;
  /**
   * The per-type streams of each node, by node id: an Envoy with one stream
   * per type still needs make-before-break across them (RDS must not point at
   * a cluster its CDS stream has not warmed yet).
   */
  perTypeSessions: Map<string, Set<XdsStream<BaseTypeState>>>;
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

export abstract class XdsStream<S extends BaseTypeState> implements StreamInfo {
  abstract readonly variant: 'sotw' | 'delta';
  node?: NodeInfo;
  group?: string;
  readonly connectedAt = Date.now();
  readonly types = new Map<ResourceType, S>();
  private blocked = false;
  private readonly unflushed = new Set<() => void>();
  private nonceCounter = 0;
  private membership: GroupMembership | undefined;

  constructor(
    readonly id: number,
    protected readonly ctx: StreamContext,
    private readonly sink: StreamSink,
    /** Per-type services accept only their own type; ADS accepts all. */
    protected readonly allowedTypes: ReadonlySet<string>,
    /** Which snapshot flavour this stream's Envoy needs (ADS, or per-type SotW/Delta). */
    private readonly flavour: XdsFlavour,
  ) {}

  /** This stream and the node's other per-type streams (just this one over ADS). */
  private session(): Iterable<XdsStream<BaseTypeState>> {
    const peers = this.flavour !== 'ads' && this.node?.id ? this.ctx.perTypeSessions.get(this.node.id) : undefined;
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
    this.node = node ?? { id: '', cluster: '', userAgent: '' };
    if (this.flavour !== 'ads' && this.node.id) {
      const peers = this.ctx.perTypeSessions.get(this.node.id) ?? new Set();
      peers.add(this as unknown as XdsStream<BaseTypeState>);
      this.ctx.perTypeSessions.set(this.node.id, peers);
    }
    this.group = this.ctx.nodeHash(this.node);
    this.membership = this.ctx.cache.watch(this.group, this.flavour, () => this.ctx.fanOut.schedule(this));
  }

  close(): void {
    this.membership?.leave();
    this.ctx.fanOut.forget(this);
    for (const flushed of [...this.unflushed]) flushed();
    const peers = this.node?.id ? this.ctx.perTypeSessions.get(this.node.id) : undefined;
    if (peers?.delete(this as unknown as XdsStream<BaseTypeState>) && peers.size === 0) {
      this.ctx.perTypeSessions.delete(this.node!.id);
    }
    for (const state of this.types.values()) this.ctx.interner.release(state.subscription);
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
  }

  /** Sends this step's response if one is due (calling `write`). */
  protected abstract pushStep(state: S, step: Step, snapshot: Snapshot, causeAt: number): void;

  protected write(state: S, bytes: Buffer, version: string, nonce: string, causeAt: number): void {
    state.sentVersion = version;
    state.sentNonce = nonce;
    state.sentAt = Date.now();
    state.causeAt = causeAt;
    state.awaiting = true;
    this.ctx.metrics.forType(state.typeUrl).pushes++;
    if (this.debug) this.ctx.log.debug({ stream: this.id, type: shortType(state.typeUrl), version, nonce }, 'push');
    // Counted against the fan-out's bytes in flight until gRPC has taken them (or the stream closed).
    const release = this.ctx.fanOut.written(bytes.length);
    let released = false;
    const flushed = () => {
      if (released) return;
      released = true;
      this.unflushed.delete(flushed);
      release();
    };
    this.unflushed.add(flushed);
    if (!this.sink.write(bytes, flushed)) {
      this.blocked = true;
      this.sink.onDrain(() => {
        this.blocked = false;
        this.pump();
      });
    }
  }
}
