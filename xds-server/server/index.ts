// The xDS gRPC server: ADS and the per-type services (LDS, RDS, CDS, EDS,
// ECDS), each in SotW and Delta, on @grpc/grpc-js. Messages are
// (de)serialized by hand (wire.ts) so responses reuse the snapshot's bytes.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { nodeGroup, type NodeHash, type SnapshotCache } from '../cache/index.ts';
import type { Metrics } from '../metrics.ts';
import { TYPE } from '../translate/index.ts';
import { DeltaStream } from './delta.ts';
import { KNOWN_TYPES, type StreamSink } from './protocol.ts';
import { SotwStream } from './sotw.ts';
import type { StreamContext, StreamInfo, XdsStream, BaseTypeState } from './stream.ts';
import { FanOutScheduler, type FanOutOptions } from './scheduler.ts';
import { SubscriptionInterner } from './subscriptions.ts';
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest, type DeltaDiscoveryRequest, type DiscoveryRequest } from './wire.ts';

export { shortType } from './protocol.ts';
export type { StreamInfo, TypeStateInfo } from './stream.ts';

function bidiMethod<Req>(path: string, decode: (bytes: Buffer) => Req): grpc.MethodDefinition<Req, Buffer> {
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: () => {
      throw new Error('server never sends requests');
    },
    requestDeserialize: decode,
    responseSerialize: (bytes: Buffer) => bytes,
    responseDeserialize: (bytes: Buffer) => bytes,
  };
}

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
];

export interface XdsServerOptions {
  cache: SnapshotCache;
  metrics: Metrics;
  log: Logger;
  /** Which nodes share a snapshot; default node.cluster, else node.id. */
  nodeHash?: NodeHash;
  /** HTTP/2 keepalive ping interval (0: off). */
  keepaliveMs?: number;
  /** Streams are closed (GOAWAY) after this long so load rebalances across replicas (0: never). */
  maxStreamAgeMs?: number;
  fanOut?: FanOutOptions;
}

type AnyStream = XdsStream<BaseTypeState> & { onRequest(request: never): void };

export class XdsServer {
  private readonly server: grpc.Server;
  private readonly streams = new Set<SotwStream | DeltaStream>();
  private readonly ctx: StreamContext;
  private nextStreamId = 1;

  constructor(private readonly options: XdsServerOptions) {
    const channelOptions: grpc.ChannelOptions = {
      'grpc.max_send_message_length': 64 * 1024 * 1024,
      // No channelz service is served, and its per-connection and per-message
      // bookkeeping costs ~5 KB per connected Envoy (fan-out bench). With it
      // off, grpc-js 1.14.7's forceShutdown no longer destroys sessions (it
      // finds them through channelz), so forceClose() ends the calls itself.
      'grpc.enable_channelz': 0,
    };
    if (options.keepaliveMs) {
      channelOptions['grpc.keepalive_time_ms'] = options.keepaliveMs;
      channelOptions['grpc.keepalive_timeout_ms'] = Math.min(20_000, options.keepaliveMs);
    }
    if (options.maxStreamAgeMs) {
      channelOptions['grpc.max_connection_age_ms'] = options.maxStreamAgeMs;
      channelOptions['grpc.max_connection_age_grace_ms'] = 30_000;
    }
    this.server = new grpc.Server(channelOptions);
    this.ctx = {
      cache: options.cache,
      metrics: options.metrics,
      log: options.log,
      nodeHash: options.nodeHash ?? nodeGroup,
      interner: new SubscriptionInterner(),
      perTypeSessions: new Map(),
      fanOut: new FanOutScheduler(options.fanOut),
    };
    for (const service of SERVICES) {
      this.server.addService(
        {
          [service.sotw]: bidiMethod(`/${service.name}/${service.sotw}`, decodeDiscoveryRequest),
          [service.delta]: bidiMethod(`/${service.name}/${service.delta}`, decodeDeltaDiscoveryRequest),
        },
        {
          [service.sotw]: (call: grpc.ServerDuplexStream<DiscoveryRequest, Buffer>) =>
            this.serve(call, (id, sink) => new SotwStream(id, this.ctx, sink, service.types, service.ads ? 'ads' : 'sotw')),
          [service.delta]: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, Buffer>) =>
            this.serve(call, (id, sink) => new DeltaStream(id, this.ctx, sink, service.types, service.ads ? 'ads' : 'delta')),
        },
      );
    }
  }

  /** Open streams, for /debug/nodes and config dumps. */
  get openStreams(): readonly StreamInfo[] {
    return [...this.streams];
  }

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (error, boundPort) => {
        if (error) reject(error);
        else resolve(boundPort);
      });
    });
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
  }

  /** Stops listening, ends every open stream (so their connections close) and shuts down. */
  forceClose(): void {
    this.server.tryShutdown(() => undefined); // stop listening; GOAWAY, connections close once their streams end
    for (const end of [...this.enders]) end('server shutting down');
    this.server.forceShutdown();
  }

  private serve<Req, S extends SotwStream | DeltaStream>(
    call: grpc.ServerDuplexStream<Req, Buffer>,
    create: (id: number, sink: StreamSink) => S,
  ): void {
    const { metrics, log } = this.options;
    const stream = create(this.nextStreamId++, {
      write: (bytes, flushed) => call.write(bytes, flushed),
      onDrain: (resume) => call.once('drain', resume),
    });
    this.streams.add(stream);
    metrics.connectedStreams.inc();
    let closed = false;
    const close = (reason: string) => {
      if (closed) return;
      closed = true;
      this.enders.delete(close);
      stream.close();
      this.streams.delete(stream);
      metrics.connectedStreams.dec();
      this.updateNodeGauge();
      log.debug({ stream: stream.id, node: stream.node?.id, reason }, 'xDS stream closed');
      call.end();
    };
    this.enders.add(close);
    call.on('data', (request: Req) => {
      const isFirst = !stream.node;
      try {
        (stream as unknown as AnyStream).onRequest(request as never);
      } catch (error) {
        log.error({ stream: stream.id, err: error }, 'failed to handle xDS request');
        call.destroy(error instanceof Error ? error : new Error(String(error)));
        close('error');
        return;
      }
      if (isFirst && stream.node) {
        this.updateNodeGauge();
        log.debug({ stream: stream.id, variant: stream.variant, node: stream.node.id, group: stream.group }, 'xDS stream opened');
      }
    });
    call.on('end', () => close('client ended'));
    call.on('error', (error) => close(`error: ${error.message}`));
    call.on('cancelled', () => close('cancelled'));
    call.on('close', () => close('closed'));
  }

  /** Ends each open call (forceClose). */
  private readonly enders = new Set<(reason: string) => void>();

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
