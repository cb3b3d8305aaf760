// The xDS gRPC server: ADS and the per-type SotW services, on @grpc/grpc-js.
// Messages are (de)serialized here by hand (see wire.ts) so responses reuse
// the snapshot's encoded bytes.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { SnapshotCache } from '../cache/index.ts';
import type { Metrics } from '../metrics.ts';
import { TYPE } from '../translate/index.ts';
import { SotwStream, type StreamInfo } from './sotw.ts';
import { decodeDiscoveryRequest, type DiscoveryRequest } from './wire.ts';

export { shortType, type StreamInfo, type TypeState } from './sotw.ts';

function bidiMethod(path: string): grpc.MethodDefinition<DiscoveryRequest, Buffer> {
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: () => {
      throw new Error('server never sends requests');
    },
    requestDeserialize: (bytes: Buffer) => decodeDiscoveryRequest(bytes),
    responseSerialize: (bytes: Buffer) => bytes,
    responseDeserialize: (bytes: Buffer) => bytes,
  };
}

/** gRPC method path → the resource types its streams may carry. */
const SOTW_METHODS: ReadonlyArray<{ service: string; method: string; types: ReadonlySet<string> }> = [
  {
    service: 'envoy.service.discovery.v3.AggregatedDiscoveryService',
    method: 'StreamAggregatedResources',
    types: new Set(Object.values(TYPE)),
  },
  { service: 'envoy.service.listener.v3.ListenerDiscoveryService', method: 'StreamListeners', types: new Set([TYPE.listener]) },
  { service: 'envoy.service.route.v3.RouteDiscoveryService', method: 'StreamRoutes', types: new Set([TYPE.route]) },
  { service: 'envoy.service.cluster.v3.ClusterDiscoveryService', method: 'StreamClusters', types: new Set([TYPE.cluster]) },
  { service: 'envoy.service.endpoint.v3.EndpointDiscoveryService', method: 'StreamEndpoints', types: new Set([TYPE.endpoint]) },
];

export interface XdsServerOptions {
  cache: SnapshotCache;
  metrics: Metrics;
  log: Logger;
}

export class XdsServer {
  private readonly server = new grpc.Server({ 'grpc.max_send_message_length': 64 * 1024 * 1024 });
  private readonly streams = new Set<SotwStream>();
  private nextStreamId = 1;

  constructor(private readonly options: XdsServerOptions) {
    for (const { service, method, types } of SOTW_METHODS) {
      const definition = { [method]: bidiMethod(`/${service}/${method}`) };
      this.server.addService(definition, {
        [method]: (call: grpc.ServerDuplexStream<DiscoveryRequest, Buffer>) => this.serveSotw(call, types),
      });
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

  forceClose(): void {
    this.server.forceShutdown();
  }

  private serveSotw(call: grpc.ServerDuplexStream<DiscoveryRequest, Buffer>, types: ReadonlySet<string>): void {
    const { cache, metrics, log } = this.options;
    const stream = new SotwStream(
      this.nextStreamId++,
      cache,
      { write: (bytes) => call.write(bytes), onDrain: (resume) => call.once('drain', resume) },
      metrics,
      log,
      types,
    );
    this.streams.add(stream);
    metrics.connectedStreams.inc();
    let closed = false;
    const close = (reason: string) => {
      if (closed) return;
      closed = true;
      stream.close();
      this.streams.delete(stream);
      metrics.connectedStreams.dec();
      this.updateNodeGauge();
      log.info({ stream: stream.id, node: stream.node?.id, reason }, 'xDS stream closed');
      call.end();
    };
    call.on('data', (request: DiscoveryRequest) => {
      const isFirst = !stream.node && request.node;
      try {
        stream.onRequest(request);
      } catch (error) {
        log.error({ stream: stream.id, err: error }, 'failed to handle xDS request');
        call.destroy(error instanceof Error ? error : new Error(String(error)));
        close('error');
        return;
      }
      if (isFirst) {
        this.updateNodeGauge();
        log.info({ stream: stream.id, node: stream.node?.id, cluster: stream.node?.cluster }, 'xDS stream opened');
      }
    });
    call.on('end', () => close('client ended'));
    call.on('error', (error) => close(`error: ${error.message}`));
    call.on('cancelled', () => close('cancelled'));
    call.on('close', () => close('closed'));
  }

  private updateNodeGauge(): void {
    const ids = new Set<string>();
    for (const s of this.streams) if (s.node) ids.add(s.node.id);
    this.options.metrics.connectedNodes.set(ids.size);
  }
}
