// One state-of-the-world xDS stream (ADS, or a per-type service restricted
// to one type). The rules it follows, from the xDS protocol document:
//  - a request whose response_nonce is not the last one sent for its type is
//    stale and ignored;
//  - a request carrying error_detail is a NACK: the version it rejects is
//    never sent again; the next different version is;
//  - a response goes out only when what the client should hold differs from
//    what it was last sent (no response when nothing changed);
//  - names subscribed before they exist are remembered and answered when
//    they appear;
//  - make-before-break: in the order CDS (additions only), EDS, LDS, RDS,
//    then CDS with removals; LDS and RDS wait until CDS and EDS are ACKed,
//    removals until everything else is; and a fresh EDS after any cluster
//    change, because Envoy re-warms changed clusters.
// Verified on Envoy 1.40: Envoy holds its CDS ACK until new clusters have
// warmed, which needs their EDS, so EDS must not wait for the CDS ACK.
import type { Logger } from 'pino';
import { viewVersion, type ResourceEntry, type Snapshot, type SnapshotCache, type View } from '../cache/index.ts';
import type { Metrics } from '../metrics.ts';
import { TYPE, type ResourceType } from '../translate/index.ts';
import { encodeDiscoveryResponse, type DiscoveryRequest, type NodeInfo } from './wire.ts';

/** Types whose SotW responses carry the full state; an empty subscription means wildcard. */
const FULL_STATE: ReadonlySet<string> = new Set([TYPE.listener, TYPE.cluster]);

export interface SentResponse {
  version: string;
  nonce: string;
  entries: readonly ResourceEntry[];
  sentAt: number;
  /** When the change this response carries became known (snapshot or subscription). */
  causeAt: number;
}

export interface TypeState {
  readonly typeUrl: ResourceType;
  wildcard: boolean;
  names: Set<string>;
  sent?: SentResponse;
  ackedVersion?: string;
  nacked?: { version: string; message: string; at: number };
  /** A response was sent and neither ACKed nor NACKed yet. */
  awaiting: boolean;
  /** Set after a cluster change: send EDS again even if its content is unchanged. */
  forceResend: boolean;
  subscribedAt: number;
}

export interface StreamSink {
  /** Returns false when the transport buffer is full; `onDrain` then resumes. */
  write(bytes: Buffer): boolean;
  onDrain(resume: () => void): void;
}

export interface StreamInfo {
  readonly id: number;
  readonly node?: NodeInfo;
  readonly connectedAt: number;
  readonly types: ReadonlyMap<ResourceType, TypeState>;
}

const KNOWN_TYPES: ReadonlySet<string> = new Set(Object.values(TYPE));

interface Step {
  typeUrl: ResourceType;
  /** CDS first goes out with removed clusters kept, so nothing in use disappears early. */
  additive?: boolean;
  /** Types whose unacknowledged response holds this step back. */
  waitsFor: readonly ResourceType[];
}

const STEPS: readonly Step[] = [
  { typeUrl: TYPE.cluster, additive: true, waitsFor: [TYPE.cluster] },
  { typeUrl: TYPE.endpoint, waitsFor: [TYPE.endpoint] },
  { typeUrl: TYPE.listener, waitsFor: [TYPE.cluster, TYPE.endpoint, TYPE.listener] },
  { typeUrl: TYPE.route, waitsFor: [TYPE.cluster, TYPE.endpoint, TYPE.route] },
  { typeUrl: TYPE.cluster, waitsFor: [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route] },
];

export class SotwStream implements StreamInfo {
  node?: NodeInfo;
  readonly connectedAt = Date.now();
  readonly types = new Map<ResourceType, TypeState>();
  private blocked = false;
  private nonceCounter = 0;
  private snapshotAt = 0;
  private readonly unsubscribe: () => void;

  constructor(
    readonly id: number,
    private readonly cache: SnapshotCache,
    private readonly sink: StreamSink,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    /** Per-type services accept only their own type; ADS accepts all. */
    private readonly allowedTypes: ReadonlySet<string> = KNOWN_TYPES,
  ) {
    this.unsubscribe = cache.onChange((snapshot) => this.onSnapshot(snapshot));
  }

  close(): void {
    this.unsubscribe();
  }

  onRequest(request: DiscoveryRequest): void {
    if (request.node && !this.node) this.node = request.node;
    if (!this.allowedTypes.has(request.typeUrl)) {
      this.log.debug({ stream: this.id, typeUrl: request.typeUrl }, 'request for an unserved type ignored');
      return;
    }
    const typeUrl = request.typeUrl as ResourceType;
    let state = this.types.get(typeUrl);
    if (state?.sent && request.responseNonce !== '' && request.responseNonce !== state.sent.nonce) {
      this.metrics.staleRequests.inc({ type: shortType(typeUrl) });
      return;
    }
    const now = Date.now();
    if (state?.sent && request.responseNonce === state.sent.nonce) {
      if (request.errorDetail) this.onNack(state, request.errorDetail.message, now);
      else this.onAck(state, now);
    }
    if (!state) {
      state = { typeUrl, wildcard: false, names: new Set(), awaiting: false, forceResend: false, subscribedAt: now };
      this.types.set(typeUrl, state);
    }
    this.updateSubscription(state, request.resourceNames, now);
    this.pump();
  }

  private onAck(state: TypeState, now: number): void {
    const sent = state.sent!;
    state.awaiting = false;
    if (state.ackedVersion !== sent.version) {
      state.ackedVersion = sent.version;
      this.metrics.acks.inc({ type: shortType(state.typeUrl) });
      this.metrics.pushLatency.observe({ type: shortType(state.typeUrl) }, (now - sent.causeAt) / 1000);
    }
  }

  private onNack(state: TypeState, message: string, now: number): void {
    const sent = state.sent!;
    state.awaiting = false;
    state.nacked = { version: sent.version, message, at: now };
    this.metrics.nacks.inc({ type: shortType(state.typeUrl) });
    this.log.warn(
      { stream: this.id, node: this.node?.id, type: shortType(state.typeUrl), version: sent.version, error: message },
      'client rejected config (NACK); not re-sending this version',
    );
  }

  private updateSubscription(state: TypeState, names: string[], now: number): void {
    const explicit = names.filter((n) => n !== '*');
    // Legacy wildcard: an empty first request for a full-state type; explicit: '*'.
    const wildcard = names.includes('*') || (FULL_STATE.has(state.typeUrl) && names.length === 0);
    const changed =
      wildcard !== state.wildcard || explicit.length !== state.names.size || explicit.some((n) => !state.names.has(n));
    if (changed) {
      state.wildcard = wildcard;
      state.names = new Set(explicit);
      state.subscribedAt = now;
    }
  }

  private onSnapshot(snapshot: Snapshot): void {
    this.snapshotAt = snapshot.createdAt;
    this.pump();
  }

  private desiredView(state: TypeState, snapshot: Snapshot, additive: boolean): View {
    const typeSnapshot = snapshot.of(state.typeUrl);
    const view = typeSnapshot.view(state.wildcard ? 'wildcard' : state.names);
    if (!additive || !state.sent) return view;
    const kept = state.sent.entries.filter((e) => !typeSnapshot.entries.has(e.name));
    if (kept.length === 0) return view;
    const entries = [...view.entries, ...kept].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { version: viewVersion(entries), entries };
  }

  private needsSend(state: TypeState, view: View): boolean {
    if (state.forceResend && view.entries.length > 0) return true;
    if (state.sent?.version === view.version) return false;
    if (state.nacked?.version === view.version) return false;
    // A named resource that does not exist yet: wait until it does.
    if (!state.wildcard && view.entries.length === 0 && !state.sent) return false;
    return true;
  }

  private isAwaiting(typeUrl: ResourceType): boolean {
    return this.types.get(typeUrl)?.awaiting ?? false;
  }

  /** Sends every response that is due and not held back, in make-before-break order. */
  pump(): void {
    const snapshot = this.cache.snapshot;
    if (!snapshot) return;
    for (const step of STEPS) {
      if (this.blocked) return;
      const state = this.types.get(step.typeUrl);
      if (!state || step.waitsFor.some((t) => this.isAwaiting(t))) continue;
      const view = this.desiredView(state, snapshot, step.additive ?? false);
      if (!this.needsSend(state, view)) continue;
      this.send(state, view, Math.max(this.snapshotAt, state.subscribedAt));
    }
  }

  private send(state: TypeState, view: View, causeAt: number): void {
    const nonce = (++this.nonceCounter).toString(36);
    const changedClusters = state.typeUrl === TYPE.cluster && state.sent?.version !== view.version;
    state.sent = { version: view.version, nonce, entries: view.entries, sentAt: Date.now(), causeAt };
    state.forceResend = false;
    state.awaiting = true;
    if (changedClusters) {
      const eds = this.types.get(TYPE.endpoint);
      if (eds) eds.forceResend = true;
    }
    this.metrics.pushes.inc({ type: shortType(state.typeUrl) });
    this.log.debug({ stream: this.id, type: shortType(state.typeUrl), version: view.version, nonce }, 'push');
    if (!this.sink.write(encodeDiscoveryResponse(state.typeUrl, view, nonce))) {
      this.blocked = true;
      this.sink.onDrain(() => {
        this.blocked = false;
        this.pump();
      });
    }
  }
}

export function shortType(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}
