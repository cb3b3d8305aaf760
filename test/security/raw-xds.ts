// A hostile or careless xDS client on raw node:http2: the test picks the
// connection (one session, many streams, or one each), the HTTP/2 window
// (0: a client that never reads), and the exact bytes of each message.
import http2 from 'node:http2';
import net from 'node:net';
import { decodeMessage, encodeMessage, envoyProtos, TYPE_PREFIX } from '../../xds-server/protos/index.ts';

// The Envoy API parsed now (protos/index.ts waits for a first use), not inside a test's first timed request.
envoyProtos();

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

/** One HTTP/2 frame as read off the wire. */
export interface H2Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

export const H2 = { HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, GOAWAY: 0x7 } as const;

/**
 * HTTP/2 spoken frame by frame over a plain socket, for what node:http2's
 * client never does: open more streams than the server's SETTINGS allow
 * (it queues them), or open them before ACKing the server's SETTINGS.
 */
export class RawH2Socket {
  readonly frames: H2Frame[] = [];
  readonly closed: Promise<void>;
  private readonly socket: net.Socket;
  private buffered = Buffer.alloc(0);
  private nextStream = 1;

  constructor(port: number, options: { ackSettings: boolean }) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.socket.on('close', () => resolve()));
    this.socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    this.socket.write(h2Frame(H2.SETTINGS, 0, 0, Buffer.alloc(0)));
    this.socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 9) {
        const length = this.buffered.readUIntBE(0, 3);
        if (this.buffered.length < 9 + length) break;
        const frame = { type: this.buffered[3]!, flags: this.buffered[4]!, stream: this.buffered.readUInt32BE(5) & 0x7fffffff, payload: Buffer.from(this.buffered.subarray(9, 9 + length)) };
        this.frames.push(frame);
        if (options.ackSettings && frame.type === H2.SETTINGS && (frame.flags & 1) === 0) this.socket.write(h2Frame(H2.SETTINGS, 1, 0, Buffer.alloc(0)));
        this.buffered = this.buffered.subarray(9 + length);
      }
    });
  }

  /** Opens `n` gRPC streams to `path` (HEADERS without END_STREAM), in one write. */
  openStreams(n: number, path: string): void {
    const frames: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      frames.push(h2Frame(H2.HEADERS, 0x4 /* END_HEADERS */, this.nextStream, grpcHeaderBlock(path)));
      this.nextStream += 2;
    }
    this.socket.write(Buffer.concat(frames));
  }

  /** Resets one of this client's streams (RST_STREAM CANCEL). */
  reset(stream: number): void {
    const code = Buffer.alloc(4);
    code.writeUInt32BE(http2.constants.NGHTTP2_CANCEL);
    this.socket.write(h2Frame(H2.RST_STREAM, 0, stream, code));
  }

  /** RST_STREAM error codes received, by stream. */
  resets(): Map<number, number> {
    return new Map(this.frames.filter((f) => f.type === H2.RST_STREAM).map((f) => [f.stream, f.payload.readUInt32BE(0)]));
  }

  /** The GOAWAY error code, if one came. */
  goaway(): number | undefined {
    return this.frames.find((f) => f.type === H2.GOAWAY)?.payload.readUInt32BE(4);
  }

  close(): void {
    this.socket.destroy();
  }
}

function h2Frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK block for a gRPC POST (static-table entries and literals without indexing; no Huffman; values under 127 bytes). */
function grpcHeaderBlock(path: string): Buffer {
  const literal = (nameIndex: number, value: string) => Buffer.concat([Buffer.from([nameIndex]), Buffer.from([value.length]), Buffer.from(value)]);
  return Buffer.concat([
    Buffer.from([0x83, 0x86]), // :method POST, :scheme http
    literal(0x04, path), // :path (static index 4)
    literal(0x01, 'localhost'), // :authority (static index 1)
    Buffer.from([0x0f, 0x10]), // content-type (static index 31: 15 + 16)
    Buffer.from([16]),
    Buffer.from('application/grpc'),
  ]);
}
