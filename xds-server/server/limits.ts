// What one xDS client may cost the server, and the typed refusal a stream
// throws when a request goes over a limit. Every limit is a `serve` flag
// (docs/security.md lists them with what a refusal looks like).

export interface XdsLimits {
  /** Resource names in one request (SotW resource_names; Delta subscribe + unsubscribe). */
  maxNamesPerRequest: number;
  /** Names one stream may be subscribed to, per type. */
  maxNamesPerSubscription: number;
  /** Concurrent streams on one HTTP/2 connection (also advertised in SETTINGS). */
  maxStreamsPerConnection: number;
  /** Concurrent streams announcing the same node id. */
  maxStreamsPerNode: number;
  /** Largest request message (gRPC's default, 4 MiB). */
  maxMessageBytes: number;
  /** Bytes of unfinished request messages held across all connections. */
  maxPartialBytes: number;
  /** Time a client may take to finish sending a message it started. */
  partialMessageTimeoutMs: number;
  /**
   * Response bytes not flushed after this long stop counting against the
   * shared fan-out budget: a client that reads slowly (or not at all) cannot
   * hold back everyone else's changes.
   */
  slowStreamMs: number;
  /** A stream whose response has not flushed after this long is closed. */
  drainTimeoutMs: number;
}

export const DEFAULT_LIMITS: XdsLimits = {
  maxNamesPerRequest: 20_000,
  maxNamesPerSubscription: 20_000,
  maxStreamsPerConnection: 32,
  maxStreamsPerNode: 32,
  maxMessageBytes: 4 * 1024 * 1024,
  maxPartialBytes: 256 * 1024 * 1024,
  partialMessageTimeoutMs: 10_000,
  slowStreamMs: 1_000,
  drainTimeoutMs: 30_000,
};

/** The flag of each limit (its value is a count, a size in bytes, or a duration). */
export const LIMIT_FLAGS: Record<keyof XdsLimits, string> = {
  maxNamesPerRequest: 'xds-max-names-per-request',
  maxNamesPerSubscription: 'xds-max-names-per-subscription',
  maxStreamsPerConnection: 'xds-max-streams-per-connection',
  maxStreamsPerNode: 'xds-max-streams-per-node',
  maxMessageBytes: 'xds-max-message-bytes',
  maxPartialBytes: 'xds-max-partial-bytes',
  partialMessageTimeoutMs: 'xds-partial-message-timeout',
  slowStreamMs: 'xds-slow-stream-after',
  drainTimeoutMs: 'xds-drain-timeout',
};

/** Why a request, stream or connection was refused: the `reason` label of protoplane_xds_rejected_requests_total. */
export type RefusalReason =
  | 'too_many_names'
  | 'too_many_streams_per_node'
  | 'permission_denied'
  | 'drain_timeout'
  | 'unknown_type';

/** Thrown by a stream for a request it refuses; the server ends the stream with `code` and counts `reason`. */
export class Refused extends Error {
  constructor(
    readonly reason: RefusalReason,
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}
