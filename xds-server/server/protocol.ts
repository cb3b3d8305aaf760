// What SotW and Delta streams share: the types served, which are full-state,
// the make-before-break order, and the transport sink.
import { TYPE, type ResourceType } from '../model/resources.ts';

export const KNOWN_TYPES: ReadonlySet<string> = new Set(Object.values(TYPE));

/** Types whose SotW responses carry the full state; an empty first subscription means wildcard. */
export const FULL_STATE: ReadonlySet<string> = new Set([TYPE.listener, TYPE.cluster]);

export interface Step {
  typeUrl: ResourceType;
  /** Clusters first go out with nothing removed, so nothing in use disappears early. */
  additive?: boolean;
  /** Types whose unacknowledged response holds this step back. */
  waitsFor: readonly ResourceType[];
  /** Held back until every EDS cluster the client holds has its endpoints ACKed. */
  needsWarmClusters?: boolean;
}

/**
 * Make-before-break: CDS additions, EDS, ECDS, LDS, RDS, then CDS removals.
 * LDS and RDS wait for CDS and EDS to be ACKed; removals wait for everything.
 * EDS never waits for CDS: Envoy 1.40 holds its CDS ACK until new clusters
 * have warmed, and warming an EDS cluster needs its EDS response (verified).
 * With per-type streams Envoy ACKs CDS at once and opens the new cluster's
 * EDS stream afterwards (verified), so there LDS and RDS also wait until the
 * endpoints of every cluster are ACKed.
 */
export const STEPS: readonly Step[] = [
  { typeUrl: TYPE.cluster, additive: true, waitsFor: [TYPE.cluster] },
  { typeUrl: TYPE.endpoint, waitsFor: [TYPE.endpoint] },
  { typeUrl: TYPE.extension, waitsFor: [TYPE.extension] },
  // Envoy asks for a listener's secrets only once it has the listener (which warms until they come).
  { typeUrl: TYPE.secret, waitsFor: [TYPE.secret] },
  { typeUrl: TYPE.listener, waitsFor: [TYPE.cluster, TYPE.endpoint, TYPE.listener], needsWarmClusters: true },
  { typeUrl: TYPE.route, waitsFor: [TYPE.cluster, TYPE.endpoint, TYPE.route], needsWarmClusters: true },
  { typeUrl: TYPE.cluster, waitsFor: [TYPE.cluster, TYPE.endpoint, TYPE.extension, TYPE.listener, TYPE.route] },
];

export interface StreamSink {
  /**
   * Sends one response built behind MESSAGE_PREFIX_BYTES (grpc.ts) spare
   * bytes, which the transport fills with its message prefix. Returns false when the transport buffer
   * is full; `onDrain` then resumes. `flushed` runs once the bytes are handed on.
   */
  writePrefixed(bytes: Buffer, flushed?: () => void): boolean;
  /** Between cork() and uncork(), writes are handed to the transport together. */
  cork(): void;
  uncork(): void;
  onDrain(resume: () => void): void;
  /** The connection the stream came on: a node's per-type streams are one session only on one connection. */
  readonly connection: number;
  /** The DNS:/URI: names of the client's verified certificate, when the server asks for one. */
  readonly peerNames: readonly string[] | undefined;
  /** Resets the stream at once (it does not read; trailers could not get out). */
  abort(reason: string): void;
}

export function shortType(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}
