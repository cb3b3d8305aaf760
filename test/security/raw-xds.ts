// A hostile or careless xDS client on raw node:http2: the test picks the
// connection (one session, many streams, or one each), the HTTP/2 window
// (0: a client that never reads), and the exact bytes of each message.
import http2 from 'node:http2';
import { decodeMessage, encodeMessage, TYPE_PREFIX } from '../../xds-server/protos/index.ts';

export const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
export const DELTA_ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';
export const CDS = '/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters';
export const LDS = '/envoy.service.listener.v3.ListenerDiscoveryService/StreamListeners';
export const EDS = '/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints';

export function frame(message: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

export function sotwRequest(options: { typeUrl: string; nodeId?: string; names?: string[]; nonce?: string; version?: string }): Buffer {
  return frame(
    encodeMessage('envoy.service.discovery.v3.DiscoveryRequest', {
      type_url: options.typeUrl,
      resource_names: options.names ?? [],
      response_nonce: options.nonce ?? '',
      version_info: options.version ?? '',
      ...(options.nodeId !== undefined ? { node: { id: options.nodeId, cluster: 'test' } } : {}),
    }),
  );
}

export function deltaRequest(options: { typeUrl: string; nodeId?: string; subscribe?: string[]; nonce?: string }): Buffer {
  return frame(
    encodeMessage('envoy.service.discovery.v3.DeltaDiscoveryRequest', {
      type_url: options.typeUrl,
      resource_names_subscribe: options.subscribe ?? [],
      response_nonce: options.nonce ?? '',
      ...(options.nodeId !== undefined ? { node: { id: options.nodeId, cluster: 'test' } } : {}),
    }),
  );
}

export interface Response {
  versionInfo: string;
  nonce: string;
  typeUrl: string;
  names: string[];
}

function decodeSotw(bytes: Buffer): Response {
  const raw = decodeMessage('envoy.service.discovery.v3.DiscoveryResponse', bytes);
  const anys = Array.isArray(raw.resources) ? (raw.resources as Array<{ type_url: string; value: Uint8Array }>) : [];
  return {
    versionInfo: String(raw.version_info ?? ''),
    nonce: String(raw.nonce ?? ''),
    typeUrl: String(raw.type_url ?? ''),
    names: anys.map((any) => {
      const m = decodeMessage(any.type_url.slice(TYPE_PREFIX.length), any.value);
      return String(any.type_url.endsWith('ClusterLoadAssignment') ? m.cluster_name : m.name);
    }),
  };
}

export interface Ended {
  /** grpc-status, or 'reset' when the stream was reset (RST_STREAM) without one. */
  status: string;
  message: string;
}

/** One gRPC stream on a raw HTTP/2 session: SotW responses decoded into a queue, and how it ended. */
export class RawStream {
  readonly responses: Response[] = [];
  readonly ended: Promise<Ended>;
  private buffered = Buffer.alloc(0);
  private waiter: (() => void) | undefined;

  constructor(readonly req: http2.ClientHttp2Stream) {
    let status: string | undefined;
    let message = '';
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) {
        status = String(h['grpc-status']);
        message = decodeURIComponent(String(h['grpc-message'] ?? ''));
      }
    };
    req.on('response', take);
    req.on('trailers', take);
    req.on('data', (chunk: Buffer) => this.onData(chunk));
    this.ended = new Promise((resolve) => {
      req.on('close', () => {
        resolve({ status: status ?? 'reset', message: status === undefined ? `rst code ${req.rstCode}` : message });
        this.waiter?.();
      });
      req.on('error', () => undefined);
    });
  }

  write(bytes: Buffer): void {
    this.req.write(bytes);
  }

  private onData(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 5) {
      const length = this.buffered.readUInt32BE(1);
      if (this.buffered.length < 5 + length) break;
      const message = this.buffered.subarray(5, 5 + length);
      // Delta responses are not decoded (tests of delta streams look at how they end)
      if (this.req.sentHeaders[':path'] !== DELTA_ADS) this.responses.push(decodeSotw(message));
      this.buffered = this.buffered.subarray(5 + length);
    }
    this.waiter?.();
  }

  /** The next response matching `match` (earlier ones that do not are dropped). */
  async next(timeoutMs: number, match: (r: Response) => boolean = () => true): Promise<Response> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.responses.findIndex(match);
      if (index >= 0) return this.responses.splice(0, index + 1)[index]!;
      this.responses.length = 0;
      const left = deadline - Date.now();
      if (left <= 0 || this.req.closed) throw new Error(`no matching xDS response within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }
}

/** One HTTP/2 connection; `initialWindowSize: 0` makes a client that accepts no response bytes. */
export class RawConnection {
  readonly session: http2.ClientHttp2Session;

  constructor(port: number, settings: http2.Settings = {}, options: http2.SecureClientSessionOptions = {}, scheme = 'http') {
    this.session = http2.connect(`${scheme}://127.0.0.1:${port}`, { settings, ...options });
    this.session.on('error', () => undefined);
  }

  open(path: string): RawStream {
    return new RawStream(this.session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' }));
  }

  close(): void {
    this.session.destroy();
  }
}
