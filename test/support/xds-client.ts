// A scripted xDS client on a raw @grpc/grpc-js stream: the test decides every
// request (nonce, names, NACK) and reads every response, so protocol rules can
// be checked one message at a time.
import * as grpc from '@grpc/grpc-js';
import { decodeMessage, encodeMessage, TYPE_PREFIX } from '../../xds-server/protos/index.ts';

export interface ReceivedResource {
  name: string;
  message: Record<string, unknown>;
}

export interface ReceivedResponse {
  versionInfo: string;
  typeUrl: string;
  nonce: string;
  resources: ReceivedResource[];
}

export interface RequestOptions {
  typeUrl: string;
  names?: string[];
  nonce?: string;
  version?: string;
  error?: string;
  nodeId?: string;
  nodeCluster?: string;
}

function resourceName(typeUrl: string, message: Record<string, unknown>): string {
  return String(typeUrl.endsWith('ClusterLoadAssignment') ? message.cluster_name : message.name);
}

/** Responses as they arrive, for a test to take one at a time or to assert there are none. */
class ResponseQueue<T> {
  private readonly items: T[] = [];
  private waiter: (() => void) | undefined;
  private ended: Error | undefined;

  constructor(private readonly describe: (item: T) => string) {}

  push(item: T): void {
    this.items.push(item);
    this.waiter?.();
  }

  fail(error: Error): void {
    this.ended = error;
    this.waiter?.();
  }

  async next(timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (this.items.length === 0) {
      if (this.ended) throw this.ended;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no xDS response within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.items.shift()!;
  }

  /** Resolves when nothing arrives for `ms`; throws naming what did arrive. */
  async expectSilence(ms: number): Promise<void> {
    try {
      const item = await this.next(ms);
      throw new Error(`expected no response, got ${this.describe(item)}`);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('no xDS response')) throw error;
    }
  }
}

/** One raw gRPC stream to the server: requests written as encoded messages, responses decoded into a queue. */
class StreamClient<Response> {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<Buffer, Buffer>;
  private readonly queue: ResponseQueue<Response>;

  constructor(port: number, method: string, decode: (bytes: Buffer) => Response, describe: (r: Response) => string) {
    this.queue = new ResponseQueue(describe);
    this.client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    this.call = this.client.makeBidiStreamRequest(method, (b: Buffer) => b, (b: Buffer) => b);
    this.call.on('data', (bytes: Buffer) => this.queue.push(decode(bytes)));
    this.call.on('error', (error) => this.queue.fail(error));
  }

  protected write(messageType: string, request: Record<string, unknown>): void {
    this.call.write(Buffer.from(encodeMessage(messageType, request)));
  }

  next(timeoutMs = 5000): Promise<Response> {
    return this.queue.next(timeoutMs);
  }

  /** Resolves when no response arrives for `ms`; throws with the response otherwise. */
  expectSilence(ms = 300): Promise<void> {
    return this.queue.expectSilence(ms);
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

export class XdsTestClient extends StreamClient<ReceivedResponse> {
  constructor(port: number, method = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources') {
    super(port, method, decodeResponse, (r) => `${r.typeUrl} version ${r.versionInfo}`);
  }

  send(options: RequestOptions): void {
    const request: Record<string, unknown> = {
      type_url: options.typeUrl,
      resource_names: options.names ?? [],
      response_nonce: options.nonce ?? '',
      version_info: options.version ?? '',
    };
    if (options.nodeId) request.node = { id: options.nodeId, cluster: options.nodeCluster ?? 'test' };
    if (options.error) request.error_detail = { code: 3, message: options.error };
    this.write('envoy.service.discovery.v3.DiscoveryRequest', request);
  }

  /** ACKs a response, keeping the subscription given. */
  ack(response: ReceivedResponse, names: string[] = []): void {
    this.send({ typeUrl: response.typeUrl, names, nonce: response.nonce, version: response.versionInfo });
  }}

function decodeResponse(bytes: Buffer): ReceivedResponse {
  const raw = decodeMessage('envoy.service.discovery.v3.DiscoveryResponse', bytes);
  const anys = Array.isArray(raw.resources) ? (raw.resources as Array<{ type_url: string; value: Uint8Array }>) : [];
  return {
    versionInfo: String(raw.version_info ?? ''),
    typeUrl: String(raw.type_url ?? ''),
    nonce: String(raw.nonce ?? ''),
    resources: anys.map((any) => {
      const message = decodeMessage(any.type_url.slice(TYPE_PREFIX.length), any.value);
      return { name: resourceName(any.type_url, message), message };
    }),
  };
}

// ── Delta ──────────────────────────────────────────────────────────────────

export interface ReceivedDeltaResponse {
  typeUrl: string;
  nonce: string;
  systemVersion: string;
  resources: Array<ReceivedResource & { version: string }>;
  removed: string[];
}

export interface DeltaRequestOptions {
  typeUrl: string;
  subscribe?: string[];
  unsubscribe?: string[];
  initialVersions?: Record<string, string>;
  nonce?: string;
  error?: string;
  nodeId?: string;
  nodeCluster?: string;
}

export class DeltaTestClient extends StreamClient<ReceivedDeltaResponse> {
  constructor(port: number, method = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources') {
    super(port, method, decodeDeltaResponse, (r) => `${r.typeUrl} [${r.resources.map((x) => x.name)}] removed [${r.removed}]`);
  }

  send(options: DeltaRequestOptions): void {
    const request: Record<string, unknown> = {
      type_url: options.typeUrl,
      resource_names_subscribe: options.subscribe ?? [],
      resource_names_unsubscribe: options.unsubscribe ?? [],
      initial_resource_versions: options.initialVersions ?? {},
      response_nonce: options.nonce ?? '',
    };
    if (options.nodeId) request.node = { id: options.nodeId, cluster: options.nodeCluster ?? 'test' };
    if (options.error) request.error_detail = { code: 3, message: options.error };
    this.write('envoy.service.discovery.v3.DeltaDiscoveryRequest', request);
  }

  ack(response: ReceivedDeltaResponse): void {
    this.send({ typeUrl: response.typeUrl, nonce: response.nonce });
  }}

function decodeDeltaResponse(bytes: Buffer): ReceivedDeltaResponse {
  const raw = decodeMessage('envoy.service.discovery.v3.DeltaDiscoveryResponse', bytes);
  const resources = Array.isArray(raw.resources)
    ? (raw.resources as Array<{ name: string; version: string; resource: { type_url: string; value: Uint8Array } }>)
    : [];
  return {
    typeUrl: String(raw.type_url ?? ''),
    nonce: String(raw.nonce ?? ''),
    systemVersion: String(raw.system_version_info ?? ''),
    resources: resources.map((r) => ({
      name: r.name,
      version: r.version,
      message: decodeMessage(r.resource.type_url.slice(TYPE_PREFIX.length), r.resource.value),
    })),
    removed: Array.isArray(raw.removed_resources) ? raw.removed_resources.map(String) : [],
  };
}
