// A state-of-the-world xDS stream (ADS, or a per-type service). Rules, from
// the xDS protocol document:
//  - a request whose response_nonce is not the last one sent for its type is
//    stale and ignored entirely;
//  - a request carrying error_detail is a NACK: the version it rejects is
//    never sent again; the next different version is;
//  - a response goes out only when what the client should hold differs from
//    what it was last sent (no response when nothing changed);
//  - until a type's first response, the request's version_info says what the
//    client already holds (it reconnected, maybe to another replica: equal
//    configs have equal content-hash versions); when it names the very view
//    this stream would be sent, nothing is sent, and the type is in sync;
//  - names subscribed before they exist are remembered and answered when
//    they appear;
//  - LDS and CDS are full state; an empty first request is the legacy wildcard;
//  - make-before-break order (protocol.ts), and a fresh EDS after any
//    cluster change, because Envoy re-warms a changed cluster.
import { unionViews, type ResourceEntry, type Snapshot, type View } from '../cache/index.ts';
import { TYPE, type ResourceType } from '../model/resources.ts';
import { MESSAGE_PREFIX_BYTES } from './grpc.ts';
import { FULL_STATE, type Step } from './protocol.ts';
import { SubscriptionInterner } from './subscriptions.ts';
import { XdsStream, type BaseTypeState } from './stream.ts';
import { encodeDiscoveryResponse, type DiscoveryRequest } from './wire.ts';

interface SotwTypeState extends BaseTypeState {
  /** What the client holds: the view last sent, or the one its version_info named before anything was sent. */
  sentView?: View;
  /**
   * The version_info of the requests before this stream's first response of
   * the type (a reconnecting client's; '' from a new one). Not set from a
   * NACK: a client that rejected an update may have applied part of it.
   */
  claimedVersion?: string;
  /** Set after a cluster change: send EDS again even if its content is unchanged. */
  forceResend: boolean;
}

export class SotwStream extends XdsStream<SotwTypeState> {
  readonly variant = 'sotw';

  onRequest(request: DiscoveryRequest): void {
    this.identify(request.node);
    if (!this.allowedTypes.has(request.typeUrl)) return this.unservedType(request.typeUrl);
    // SotW: the request's names are the whole subscription
    this.checkNames(request.resourceNames.length, 'request');
    this.checkNames(request.resourceNames.length, 'subscription');
    const typeUrl = request.typeUrl as ResourceType;
    let state = this.types.get(typeUrl);
    if (state?.sentNonce && request.responseNonce !== '' && request.responseNonce !== state.sentNonce) {
      this.stale(typeUrl);
      return;
    }
    const now = Date.now();
    if (state?.sentNonce && request.responseNonce === state.sentNonce) {
      if (request.errorDetail) this.onNack(state, request.errorDetail.message, now);
      else this.onAck(state, now);
    }
    if (!state) {
      state = newState(typeUrl, now);
      this.types.set(typeUrl, state);
    }
    if (state.sentNonce === undefined) state.claimedVersion = request.errorDetail ? undefined : request.versionInfo;
    this.updateSubscription(state, request.resourceNames, now);
    this.pump();
  }

  private updateSubscription(state: SotwTypeState, names: string[], now: number): void {
    const explicit = names.filter((n) => n !== '*');
    const wildcard = names.includes('*') || (FULL_STATE.has(state.typeUrl) && names.length === 0);
    const sub = state.subscription;
    const changed =
      wildcard !== state.wildcard || explicit.length !== sub.names.size || explicit.some((n) => !sub.names.has(n));
    if (!changed) return;
    state.wildcard = wildcard;
    this.resubscribe(state, explicit);
    state.subscribedAt = now;
  }

  private desiredView(state: SotwTypeState, snapshot: Snapshot, additive: boolean): View {
    const typeSnapshot = snapshot.of(state.typeUrl);
    const view = state.wildcard ? typeSnapshot.all() : typeSnapshot.named(state.subscription);
    return additive && state.sentView ? unionViews(state.sentView, view) : view;
  }

  /**
   * A client that reconnected holding exactly this view (its version_info is
   * the view's content hash) is sent nothing: it is in sync, so record the
   * view as held and acknowledged (for /debug/nodes and `protoplane status`).
   * Versions are content hashes of (name, resource version) lists, so equal
   * versions are equal contents whatever the subscription they came from.
   */
  private alreadyHeld(state: SotwTypeState, view: View): boolean {
    // (a cluster changed since: Envoy re-warms it and waits for its endpoints)
    if (state.forceResend || state.claimedVersion !== view.version) return false;
    state.sentView = view;
    state.ackedVersion = view.version;
    return true;
  }

  private needsSend(state: SotwTypeState, view: View): boolean {
    if (state.forceResend && view.entries.length > 0) return true;
    if (state.sentView?.version === view.version) return false;
    if (state.nacked?.version === view.version) return false;
    // A named resource that does not exist yet: wait until it does.
    if (!state.wildcard && view.entries.length === 0 && !state.sentView) return false;
    return true;
  }

  protected pushStep(state: SotwTypeState, step: Step, snapshot: Snapshot, causeAt: number): void {
    const view = this.desiredView(state, snapshot, step.additive ?? false);
    if (this.alreadyHeld(state, view) || !this.needsSend(state, view)) return;
    const nonce = this.nextNonce();
    if (state.typeUrl === TYPE.cluster && state.sentView?.version !== view.version) {
      const eds = this.typeState(TYPE.endpoint) as typeof state | undefined;
      if (eds) eds.forceResend = true;
    }
    state.sentView = view;
    state.forceResend = false;
    state.claimedVersion = undefined;
    this.write(state, encodeDiscoveryResponse(state.typeUrl, view, nonce, MESSAGE_PREFIX_BYTES), view.version, nonce, causeAt);
  }
}

function newState(typeUrl: ResourceType, now: number): SotwTypeState {
  return {
    // Every field from the start: one shape for all states (see delta.ts).
    typeUrl,
    wildcard: false,
    subscription: SubscriptionInterner.EMPTY,
    sentVersion: undefined,
    sentNonce: undefined,
    ackedVersion: undefined,
    nacked: undefined,
    awaiting: false,
    sentView: undefined,
    claimedVersion: undefined,
    forceResend: false,
    sentAt: 0,
    causeAt: 0,
    subscribedAt: now,
    held(this: SotwTypeState): readonly ResourceEntry[] {
      return this.sentView?.entries ?? [];
    },
  };
}
