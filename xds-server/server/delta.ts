// An incremental (Delta) xDS stream (ADS, or a per-type service). Rules, from
// the xDS protocol document:
//  - resources carry their own versions; a response holds only what changed,
//    and removed_resources for what the client holds that no longer exists;
//  - on reconnect, initial_resource_versions says what the client holds:
//    only what differs is sent, and what no longer exists is removed;
//  - every name in resource_names_subscribe is answered, even unchanged, and
//    a subscribed name that does not exist is reported in removed_resources;
//  - subscription changes are honoured even when the nonce is stale (only
//    ACK/NACK need the latest nonce);
//  - wildcard: explicit "*", or the legacy empty first request; a name
//    unsubscribed while the wildcard still covers it is sent again;
//  - a NACKed version is never re-sent; the next different one is;
//  - make-before-break order (protocol.ts), with cluster removals last and
//    the EDS of every changed cluster sent again.
// Streams whose state is exactly a shared view (the common case) reuse one
// diff and one encoded body per (old view, new view) pair.
import { diffViews, entryIn, type ResourceEntry, type Snapshot, type View, type ViewDiff } from '../cache/index.ts';
import { TYPE, type ResourceType } from '../model/resources.ts';
import { MESSAGE_PREFIX_BYTES } from './grpc.ts';
import type { Step } from './protocol.ts';
import { SubscriptionInterner } from './subscriptions.ts';
import { XdsStream, type BaseTypeState } from './stream.ts';
import { deltaResponseBody, withNonce, type DeltaDiscoveryRequest } from './wire.ts';

interface DeltaTypeState extends BaseTypeState {
  /** The client holds this view's resources... */
  heldView?: View;
  /** ...except these: the version it holds, or null for not held. */
  heldOverride?: Map<string, string | null>;
  /** Names to answer even when unchanged (newly subscribed; re-covered by the wildcard; EDS of a changed cluster). */
  forceNames: Set<string>;
  /** Cluster removals held back until everything else has moved off them. */
  pendingRemovals: readonly string[];
  seenFirstRequest: boolean;
}

interface SharedBodies {
  all: Uint8Array | undefined;
  additive: Uint8Array | undefined;
  /** The diff plus unchanged resources sent again (e.g. the EDS of a changed cluster), by their names. */
  resent: Map<string, Uint8Array> | undefined;
}

const sharedBodies = new WeakMap<ViewDiff, SharedBodies>();

function sharedFor(diff: ViewDiff): SharedBodies {
  let cached = sharedBodies.get(diff);
  if (!cached) {
    // Every field from the start: one shape, whichever body a group asks for first (see newState).
    cached = { all: undefined, additive: undefined, resent: undefined };
    sharedBodies.set(diff, cached);
  }
  return cached;
}

/** What a client holds before its first response. */
const EMPTY_VIEW: View = { version: '', entries: [] };

export class DeltaStream extends XdsStream<DeltaTypeState> {
  readonly variant = 'delta';

  onRequest(request: DeltaDiscoveryRequest): void {
    this.identify(request.node);
    if (!this.allowedTypes.has(request.typeUrl)) return this.unservedType(request.typeUrl);
    this.checkNames(request.subscribe.length + request.unsubscribe.length, 'request');
    this.checkNames(request.initialResourceVersions.size, 'subscription');
    const typeUrl = request.typeUrl as ResourceType;
    const now = Date.now();
    let state = this.types.get(typeUrl);
    if (!state) {
      state = newState(typeUrl, now);
      this.types.set(typeUrl, state);
    }
    if (request.responseNonce !== '') {
      if (request.responseNonce === state.sentNonce && state.awaiting) {
        if (request.errorDetail) this.onNack(state, request.errorDetail.message, now);
        else this.onAck(state, now);
      } else if (request.responseNonce !== state.sentNonce) {
        this.stale(typeUrl); // still apply the subscription change below
      }
    }
    if (!state.seenFirstRequest && request.initialResourceVersions.size > 0) {
      state.heldView = undefined;
      state.heldOverride = new Map(request.initialResourceVersions);
    }
    this.updateSubscription(state, request, now);
    state.seenFirstRequest = true;
    this.pump();
  }

  private updateSubscription(state: DeltaTypeState, request: DeltaDiscoveryRequest, now: number): void {
    const { subscribe, unsubscribe } = request;
    if (subscribe.length === 0 && unsubscribe.length === 0) {
      if (!state.seenFirstRequest) {
        state.wildcard = true; // legacy wildcard: an empty first request
        state.subscribedAt = now;
      }
      return;
    }
    const names = new Set(state.subscription.names);
    if (!state.seenFirstRequest && subscribe.length === 0) state.wildcard = true;
    if (subscribe.includes('*')) state.wildcard = true;
    for (const name of subscribe) {
      if (name === '*') continue;
      names.add(name);
      // A name the client says it already holds is diffed by version instead.
      if (!state.heldOverride?.has(name)) state.forceNames.add(name);
    }
    for (const name of unsubscribe) {
      if (name === '*') continue;
      names.delete(name);
    }
    if (unsubscribe.includes('*')) state.wildcard = false;
    for (const name of unsubscribe) {
      if (name === '*') continue;
      // Still covered by the wildcard: the client dropped it, so send it again.
      if (state.wildcard) state.forceNames.add(name);
      else this.markNotHeld(state, name);
    }
    if (unsubscribe.includes('*')) {
      for (const entry of this.heldEntries(state)) if (!names.has(entry)) this.markNotHeld(state, entry);
    }
    this.checkNames(names.size, 'subscription');
    this.resubscribe(state, names);
    state.subscribedAt = now;
  }

  private markNotHeld(state: DeltaTypeState, name: string): void {
    (state.heldOverride ??= new Map()).set(name, null);
  }

  private heldVersion(state: DeltaTypeState, name: string): string | undefined {
    const override = state.heldOverride?.get(name);
    if (override !== undefined) return override ?? undefined;
    return state.heldView ? entryIn(state.heldView, name)?.version : undefined;
  }

  /** Names the client holds. */
  private heldEntries(state: DeltaTypeState): string[] {
    const names = new Set<string>();
    for (const e of state.heldView?.entries ?? []) names.add(e.name);
    for (const [name, version] of state.heldOverride ?? []) {
      if (version === null) names.delete(name);
      else names.add(name);
    }
    return [...names];
  }

  private desiredView(state: DeltaTypeState, snapshot: Snapshot): View {
    const typeSnapshot = snapshot.of(state.typeUrl);
    return state.wildcard ? typeSnapshot.all() : typeSnapshot.named(state.subscription);
  }

  /** The exact per-stream diff, for streams whose state is not simply a shared view. */
  private slowDiff(state: DeltaTypeState, desired: View): { updated: ResourceEntry[]; removed: string[] } {
    const updated = desired.entries.filter(
      (e) => state.forceNames.has(e.name) || this.heldVersion(state, e.name) !== e.version,
    );
    const removed = new Set(this.heldEntries(state).filter((n) => entryIn(desired, n) === undefined));
    for (const name of state.forceNames) if (entryIn(desired, name) === undefined) removed.add(name);
    return { updated, removed: [...removed] };
  }

  protected pushStep(state: DeltaTypeState, step: Step, snapshot: Snapshot, causeAt: number): void {
    const isClusterRemovalStep = state.typeUrl === TYPE.cluster && !step.additive;
    if (isClusterRemovalStep) {
      if (state.pendingRemovals.length === 0) return;
      const removed = state.pendingRemovals;
      state.pendingRemovals = [];
      this.send(state, deltaResponseBody(state.typeUrl, state.sentVersion ?? '', [], removed), state.sentVersion ?? '', causeAt);
      return;
    }
    const desired = this.desiredView(state, snapshot);
    const deferRemovals = state.typeUrl === TYPE.cluster;
    let updated: readonly ResourceEntry[];
    let removed: readonly string[];
    let body: Uint8Array | undefined;
    const base = state.heldOverride ? undefined : (state.heldView ?? EMPTY_VIEW);
    if (base) {
      if (base === desired && state.forceNames.size === 0) return;
      const diff = diffViews(base, desired);
      const extraUpdated: ResourceEntry[] = [];
      const extraRemoved: string[] = [];
      for (const name of state.forceNames) {
        const entry = entryIn(desired, name);
        const held = entryIn(base, name);
        if (!entry) {
          if (!held) extraRemoved.push(name); // subscribed, does not exist: say so
        } else if (held?.version === entry.version) {
          extraUpdated.push(entry); // unchanged, but asked for again
        }
      }
      if (extraUpdated.length === 0 && extraRemoved.length === 0) {
        // The common case: the same move as every other stream in the group.
        ({ updated, removed } = diff);
        const cached = sharedFor(diff);
        body = deferRemovals
          ? (cached.additive ??= deltaResponseBody(state.typeUrl, desired.version, updated, []))
          : (cached.all ??= deltaResponseBody(state.typeUrl, desired.version, updated, removed));
      } else {
        // concat, not spread: a spread is compiled for the array maps it has seen. Here, at a server's first
        // cluster change, V8 threw this function's optimised code away ("wrong map", an empty EDS diff) in
        // most replicas of the fan-out bench and spent ~0.1 s compiling it again (docs/ha.md).
        updated = diff.updated.concat(extraUpdated);
        removed = diff.removed.concat(extraRemoved);
        if (extraRemoved.length === 0 && !deferRemovals) {
          // Also common: every stream of the group re-sent the same endpoints after a cluster change.
          const resent = (sharedFor(diff).resent ??= new Map());
          let key = '';
          for (const e of extraUpdated) key += `${e.name}\0`;
          body = resent.get(key);
          if (!body) {
            body = deltaResponseBody(state.typeUrl, desired.version, updated, removed);
            if (resent.size < 64) resent.set(key, body);
          }
        }
      }
    } else {
      ({ updated, removed } = this.slowDiff(state, desired));
    }
    const sendNow = deferRemovals ? [] : removed;
    if (deferRemovals && removed.length > 0) {
      state.pendingRemovals = [...new Set([...state.pendingRemovals, ...removed])];
    }
    if (state.typeUrl === TYPE.cluster) this.refreshEndpointsOf(state, updated);
    // A client that reconnected (e.g. to another replica) already holding
    // exactly this view is sent nothing: it is in sync, so record the version
    // as acknowledged for /debug/nodes and `protoplane status`.
    if (!base && state.sentVersion === undefined && updated.length === 0 && removed.length === 0) state.ackedVersion = desired.version;
    state.heldView = desired;
    state.heldOverride = undefined;
    state.forceNames.clear();
    if (updated.length === 0 && sendNow.length === 0) return;
    body ??= deltaResponseBody(state.typeUrl, desired.version, updated, sendNow);
    this.send(state, body, desired.version, causeAt);
  }

  /** Envoy re-warms a changed cluster and waits for its endpoints: send them again. */
  private refreshEndpointsOf(clusters: DeltaTypeState, updated: readonly ResourceEntry[]): void {
    const eds = this.typeState(TYPE.endpoint) as DeltaTypeState | undefined;
    if (!eds) return;
    for (const cluster of updated) {
      if (clusters.heldView && entryIn(clusters.heldView, cluster.name) && (eds.wildcard || eds.subscription.names.has(cluster.name))) {
        eds.forceNames.add(cluster.name);
      }
    }
  }

  private send(state: DeltaTypeState, body: Uint8Array, version: string, causeAt: number): void {
    const nonce = this.nextNonce();
    this.write(state, withNonce(body, nonce, MESSAGE_PREFIX_BYTES), version, nonce, causeAt);
  }
}

function newState(typeUrl: ResourceType, now: number): DeltaTypeState {
  // Every field from the start, so that all states share one shape: fields added later give the
  // states of a change another shape than those of the connects, and V8 then recompiles the push path.
  return {
    typeUrl,
    wildcard: false,
    subscription: SubscriptionInterner.EMPTY,
    sentVersion: undefined,
    sentNonce: undefined,
    ackedVersion: undefined,
    nacked: undefined,
    awaiting: false,
    heldView: undefined,
    heldOverride: undefined,
    forceNames: new Set(),
    pendingRemovals: [],
    seenFirstRequest: false,
    sentAt: 0,
    causeAt: 0,
    subscribedAt: now,
    held(this: DeltaTypeState): readonly ResourceEntry[] {
      return this.heldView?.entries ?? [];
    },
  };
}
