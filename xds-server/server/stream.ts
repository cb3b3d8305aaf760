// What every xDS stream does regardless of variant: learn its node, join the
// node's snapshot group, push due responses in make-before-break order,
// respect transport back-pressure, and keep the per-type record that
// /debug/nodes and the metrics read.
import type { Logger } from 'pino';
import type { NodeHash, ResourceEntry, Snapshot, SnapshotCache, Subscription } from '../cache/index.ts';
import type { Metrics } from '../metrics.ts';
import type { ResourceType } from '../translate/index.ts';
import { STEPS, shortType, type Step, type StreamSink } from './protocol.ts';
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
  protected snapshot: Snapshot | undefined;
  private snapshotAt = 0;
  private blocked = false;
  private nonceCounter = 0;
  private leaveGroup: (() => void) | undefined;

  constructor(
    readonly id: number,
    protected readonly ctx: StreamContext,
    private readonly sink: StreamSink,
    /** Per-type services accept only their own type; ADS accepts all. */
    protected readonly allowedTypes: ReadonlySet<string>,
  ) {}

  /** Remembers the node of the first request and joins its snapshot group. */
  protected identify(node: NodeInfo | undefined): void {
    if (this.node) return;
    this.node = node ?? { id: '', cluster: '', userAgent: '' };
    this.group = this.ctx.nodeHash(this.node);
    this.leaveGroup = this.ctx.cache.watch(this.group, (snapshot) => {
      this.snapshot = snapshot;
      this.snapshotAt = snapshot.createdAt;
      this.pump();
    });
    this.snapshot = this.ctx.cache.snapshotOf(this.group);
  }

  close(): void {
    this.leaveGroup?.();
    for (const state of this.types.values()) this.ctx.interner.release(state.subscription);
  }

  protected nextNonce(): string {
    return (++this.nonceCounter).toString(36);
  }

  protected onAck(state: S, now: number): void {
    state.awaiting = false;
    if (state.ackedVersion !== state.sentVersion) {
      state.ackedVersion = state.sentVersion;
      const type = shortType(state.typeUrl);
      this.ctx.metrics.acks.inc({ type });
      this.ctx.metrics.pushLatency.observe({ type }, (now - state.causeAt) / 1000);
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

  /** Sends every response that is due and not held back, in make-before-break order. */
  pump(): void {
    const snapshot = this.snapshot;
    if (!snapshot) return;
    for (const step of STEPS) {
      if (this.blocked) return;
      const state = this.types.get(step.typeUrl);
      if (!state || step.waitsFor.some((t) => this.types.get(t)?.awaiting)) continue;
      this.pushStep(state, step, snapshot, Math.max(this.snapshotAt, state.subscribedAt));
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
    this.ctx.metrics.pushes.inc({ type: shortType(state.typeUrl) });
    if (!this.sink.write(bytes)) {
      this.blocked = true;
      this.sink.onDrain(() => {
        this.blocked = false;
        this.pump();
      });
    }
  }
}
