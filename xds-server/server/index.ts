// The xDS gRPC server: ADS and the per-type services (LDS, RDS, CDS, EDS,
// ECDS), each in SotW and Delta, on a small gRPC transport (grpc.ts).
// Messages are (de)serialized by hand (wire.ts) so responses reuse the
// snapshot's bytes.
import type { Logger } from 'pino';
import { nodeGroup, SnapshotCache, type NodeHash } from '../cache/index.ts';
import { Metrics } from '../metrics.ts';
import { TYPE } from '../model/resources.ts';
import { DeltaStream } from './delta.ts';
import { KNOWN_TYPES, type StreamSink } from './protocol.ts';
import { SotwStream } from './sotw.ts';
import type { StreamContext, StreamInfo, XdsStream, BaseTypeState } from './stream.ts';
import { GrpcServer, Status, type BatchingCall, type BidiHandlers, type RejectReason, type TlsFiles } from './grpc.ts';
import { DEFAULT_LIMITS, Refused, type RefusalReason, type XdsLimits } from './limits.ts';
import { FanOutScheduler, type FanOutOptions } from './scheduler.ts';
import { SubscriptionInterner } from './subscriptions.ts';
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest } from './wire.ts';
import { HDS_METHOD, HealthDiscovery } from './hds.ts';
import { rehearsePushPath, withPrivateSocket } from './rehearsal.ts';

export { shortType } from './protocol.ts';
export { DEFAULT_LIMITS, LIMIT_FLAGS, type XdsLimits } from './limits.ts';
export type { TlsFiles } from './grpc.ts';
export type { StreamInfo, TypeStateInfo } from './stream.ts';

interface Service {
  name: string;
  sotw: string;
  delta: string;
  types: ReadonlySet<string>;
  ads?: boolean;
}

/** Every xDS service with its SotW and Delta method and the types its streams carry. */
const SERVICES: readonly Service[] = [
  {
    name: 'envoy.service.discovery.v3.AggregatedDiscoveryService',
    sotw: 'StreamAggregatedResources',
    delta: 'DeltaAggregatedResources',
    types: KNOWN_TYPES,
    ads: true,
  },
  { name: 'envoy.service.listener.v3.ListenerDiscoveryService', sotw: 'StreamListeners', delta: 'DeltaListeners', types: new Set([TYPE.listener]) },
  { name: 'envoy.service.route.v3.RouteDiscoveryService', sotw: 'StreamRoutes', delta: 'DeltaRoutes', types: new Set([TYPE.route]) },
  { name: 'envoy.service.cluster.v3.ClusterDiscoveryService', sotw: 'StreamClusters', delta: 'DeltaClusters', types: new Set([TYPE.cluster]) },
  { name: 'envoy.service.endpoint.v3.EndpointDiscoveryService', sotw: 'StreamEndpoints', delta: 'DeltaEndpoints', types: new Set([TYPE.endpoint]) },
  {
    name: 'envoy.service.extension.v3.ExtensionConfigDiscoveryService',
    sotw: 'StreamExtensionConfigs',
    delta: 'DeltaExtensionConfigs',
    types: new Set([TYPE.extension]),
  },
  { name: 'envoy.service.secret.v3.SecretDiscoveryService', sotw: 'StreamSecrets', delta: 'DeltaSecrets', types: new Set([TYPE.secret]) },
];

export interface XdsServerOptions {
  cache: SnapshotCache;
  metrics: Metrics;
  log: Logger;
  /** Which nodes share a snapshot; default node.cluster, else node.id. */
  nodeHash?: NodeHash;
  /** HTTP/2 keepalive ping interval (0: off). */
  keepaliveMs?: number;
  /** Connections get a GOAWAY after this long so load rebalances across replicas (0: never)... */
  maxStreamAgeMs?: number;
  /** ...and their streams end (UNAVAILABLE, the client reconnects) this long after that (default 30 s). */
  maxStreamAgeGraceMs?: number;
  fanOut?: Partial<FanOutOptions>;
  /** What one client may cost (defaults: DEFAULT_LIMITS). */
  limits?: Partial<XdsLimits>;
  /** Serve over TLS; with a client CA, every stream's node id must be proven by its client certificate. */
  tls?: TlsFiles;
}

type AnyStream = XdsStream<BaseTypeState> & { onRequest(request: never): void };

export class XdsServer {
  private readonly server: GrpcServer;
  /** HDS: per-endpoint health as each Envoy reports it (for /debug/health). */
  readonly health: HealthDiscovery;
  private readonly streams = new Set<SotwStream | DeltaStream>();
  private readonly ctx: StreamContext;
  private nextStreamId = 1;

  constructor(private readonly options: XdsServerOptions) {
    const limits: XdsLimits = { ...DEFAULT_LIMITS, ...options.limits };
    this.server = new GrpcServer({
      maxReceiveMessageBytes: limits.maxMessageBytes,
      maxStreamsPerConnection: limits.maxStreamsPerConnection,
      maxPartialBytes: limits.maxPartialBytes,
      partialMessageTimeoutMs: limits.partialMessageTimeoutMs,
      tls: options.tls,
      keepaliveMs: options.keepaliveMs,
      keepaliveTimeoutMs: options.keepaliveMs ? Math.min(20_000, options.keepaliveMs) : undefined,
      maxConnectionAgeMs: options.maxStreamAgeMs,
      maxConnectionAgeGraceMs: options.maxStreamAgeGraceMs ?? 30_000,
      onRejected: (r) => this.rejected(r.reason, r.message, { path: r.path, code: r.code }, r.count),
      onServerError: (error) => options.log.error({ err: error }, 'xDS listener error'),
    });
    this.ctx = {
      cache: options.cache,
      metrics: options.metrics,
      log: options.log,
      nodeHash: options.nodeHash ?? nodeGroup,
      interner: new SubscriptionInterner(),
      perTypeSessions: new Map(),
      streamsPerNode: new Map(),
      limits,
      requireProvenNodeId: options.tls?.ca !== undefined,
      fanOut: new FanOutScheduler({ slowStreamMs: limits.slowStreamMs, drainTimeoutMs: limits.drainTimeoutMs, ...options.fanOut }),
    };
    this.health = new HealthDiscovery(options.cache, options.log, this.ctx.requireProvenNodeId);
    this.server.addMethod(HDS_METHOD, this.health.handle);
    for (const service of SERVICES) {
      this.server.addMethod(`/${service.name}/${service.sotw}`, (call) =>
        this.serve(call, decodeDiscoveryRequest, (id, sink) => new SotwStream(id, this.ctx, sink, service.types, service.ads ? 'ads' : 'sotw')),
      );
      this.server.addMethod(`/${service.name}/${service.delta}`, (call) =>
        this.serve(call, decodeDeltaDiscoveryRequest, (id, sink) => new DeltaStream(id, this.ctx, sink, service.types, service.ads ? 'ads' : 'delta')),
      );
    }
  }

  /**
   * Plays a few clients through a connect and some changes against a twin of
   * this server on a Unix socket of its own, before real clients come, so
   * that V8 compiles the push path knowing what a change does (rehearsal.ts).
   * Throws when the rehearsal's clients do not come to hold what was served.
   */
  async rehearse(): Promise<void> {
    const cache = new SnapshotCache();
    const twin = new XdsServer({
      cache,
      metrics: new Metrics({ processMetrics: false }),
      log: this.options.log.child({ rehearsal: true }, { level: 'silent' }),
      // Batches of one: flushes then come in while streams still wait their turn, as in a big fan-out.
      fanOut: { ...this.options.fanOut, batchSize: 1 },
    });
    await withPrivateSocket(async (socket) => {
      try {
        await twin.listenSocket(socket);
        await rehearsePushPath(cache, socket);
      } finally {
        twin.forceClose();
      }
    });
  }

  /** Listens on a Unix socket (the rehearsal's twin; tests). */
  async listenSocket(socketPath: string): Promise<void> {
    await this.server.listenSocket(socketPath);
  }

  /** Open streams, for /debug/nodes and config dumps. */
  get openStreams(): readonly StreamInfo[] {
    return [...this.streams];
  }

  async listen(port: number, host = '127.0.0.1'): Promise<number> {
    return this.server.listen(port, host);
  }

  /** New certificates for new connections (re-read by the caller when the files change). */
  setTls(tls: TlsFiles): void {
    this.server.setTls(tls);
  }

  /** Stops listening and ends every open stream (UNAVAILABLE); resolves once every connection has closed. */
  async close(): Promise<void> {
    this.health.close();
    await this.server.close();
  }

  /** Stops listening and destroys every connection at once. */
  forceClose(): void {
    this.health.close();
    this.server.forceClose();
  }

  private serve<Req, S extends SotwStream | DeltaStream>(
    call: BatchingCall,
    decode: (bytes: Buffer) => Req,
    create: (id: number, sink: StreamSink) => S,
  ): BidiHandlers {
    const { metrics, log } = this.options;
    const stream = create(this.nextStreamId++, call);
    this.streams.add(stream);
    metrics.connectedStreams.inc();
    return {
      onMessage: (bytes) => {
        const isFirst = !stream.node;
        let request: Req;
        try {
          request = decode(bytes);
        } catch (error) {
          const message = `not a decodable request: ${error instanceof Error ? error.message : String(error)}`;
          this.rejected('undecodable', message, { stream: stream.id, node: stream.node?.id });
          call.end(Status.INTERNAL, message);
          return;
        }
        try {
          (stream as unknown as AnyStream).onRequest(request as never);
        } catch (error) {
          if (error instanceof Refused) {
            this.rejected(error.reason, error.message, { stream: stream.id, node: stream.node?.id ?? requestNode(request) });
            call.end(error.code, error.message);
            return;
          }
          log.error({ stream: stream.id, err: error }, 'failed to handle xDS request');
          call.end(Status.INTERNAL, error instanceof Error ? error.message : String(error));
          return;
        }
        if (isFirst && stream.node) {
          this.updateNodeGauge();
          log.debug({ stream: stream.id, variant: stream.variant, node: stream.node.id, group: stream.group }, 'xDS stream opened');
        }
      },
      onClose: (reason) => {
        stream.close();
        this.streams.delete(stream);
        metrics.connectedStreams.dec();
        this.updateNodeGauge();
        log.debug({ stream: stream.id, node: stream.node?.id, reason }, 'xDS stream closed');
      },
    };
  }

  /** A refused request: counted by reason, one log line. */
  private rejected(reason: RejectReason | RefusalReason | 'undecodable', message: string, context: Record<string, unknown>, count = 1): void {
    this.options.metrics.rejectedRequests.inc({ reason }, count);
    this.options.log.warn({ ...context, reason }, `xDS request rejected: ${message}`);
  }

  private nodeGaugeTimer: NodeJS.Timeout | undefined;

  /** Distinct node ids, recounted at most once per 100 ms (cheap with thousands of streams). */
  private updateNodeGauge(): void {
    if (this.nodeGaugeTimer) return;
    this.nodeGaugeTimer = setTimeout(() => {
      this.nodeGaugeTimer = undefined;
      const ids = new Set<string>();
      for (const s of this.streams) if (s.node) ids.add(s.node.id);
      this.options.metrics.connectedNodes.set(ids.size);
    }, 100);
    this.nodeGaugeTimer.unref();
  }
}

/** The node id a request announces (for the log line of a refused first request). */
function requestNode(request: unknown): string | undefined {
  return (request as { node?: { id: string } }).node?.id;
}
