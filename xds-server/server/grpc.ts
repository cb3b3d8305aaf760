// Bidirectional-streaming gRPC over node:http2, just what the xDS services
// need: length-prefixed messages without compression, status trailers,
// keepalive pings, a maximum connection age, back-pressure.
//
// Written instead of using @grpc/grpc-js (which this server used before): on
// the fan-out bench its call objects, interceptors and stream wrappers cost
// ~3 KB of heap and a tenth of the CPU per connected Envoy, and it cannot set
// the HTTP/2 options that matter at 10k connections (HPACK table sizes).
// The wire format is the gRPC over HTTP/2 spec (PROTOCOL-HTTP2.md).
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

/** gRPC status codes this server sends. */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  PERMISSION_DENIED: 7,
  INTERNAL: 13,
  RESOURCE_EXHAUSTED: 8,
  UNAVAILABLE: 14,
  UNIMPLEMENTED: 12,
} as const;

export interface GrpcServerOptions {
  /** Ping each connection this often; close it when a ping is not answered in keepaliveTimeoutMs (0: no pings). */
  keepaliveMs?: number;
  keepaliveTimeoutMs?: number;
  /** GOAWAY after this long (±5% jitter, so reconnects spread), then end the connection's calls after the grace (0: never). */
  maxConnectionAgeMs?: number;
  maxConnectionAgeGraceMs?: number;
  /** Largest request message accepted (gRPC's default: 4 MiB). */
  maxReceiveMessageBytes?: number;
  /** Concurrent calls on one connection (advertised in SETTINGS; more are refused with RESOURCE_EXHAUSTED). Default 100. */
  maxStreamsPerConnection?: number;
  /** Bytes of unfinished messages held across every call; a call that would go over is refused. Default 256 MiB. */
  maxPartialBytes?: number;
  /** A message started and not finished within this long ends its call (0: no limit). Default 10 s. */
  partialMessageTimeoutMs?: number;
  /** Serve over TLS (HTTP/2 with ALPN h2); with `ca`, every client must present a certificate it signed. */
  tls?: TlsFiles;
  /** Told of every request the transport refuses (the call, or the request, is ended with `code`). */
  onRejected?: (rejection: Rejection) => void;
  /** Told of errors of the listening socket once it listens (e.g. accept failing with EMFILE); it keeps listening. */
  onServerError?: (error: Error) => void;
}

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

export type RejectReason =
  | 'not_grpc'
  | 'unknown_method'
  | 'unsupported_encoding'
  | 'message_too_large'
  | 'too_many_streams_per_connection'
  | 'truncated_message'
  | 'partial_message_timeout'
  | 'partial_bytes_exhausted'
  // Refused by HTTP/2 (nghttp2) itself, never reaching onStream: seen from a
  // gap in the client's stream ids (REFUSED_STREAM, sent when the client
  // opens streams past SETTINGS before it ACKs them), and from the
  // connection error nghttp2 raises when it does so after the ACK (the
  // connection ends with GOAWAY).
  | 'http2_refused_stream'
  | 'http2_too_many_streams'
  | 'http2_protocol_error';

export interface Rejection {
  reason: RejectReason;
  path: string;
  code: number;
  message: string;
  /** How many streams this stands for (default 1): refused streams are noticed together. */
  count?: number;
}

/** One bidirectional-streaming call. */
export interface BidiCall {
  readonly path: string;
  /** Which connection the call came on (a number unique in this server). */
  readonly connection: number;
  /** The DNS and URI subject alternative names of the client's verified certificate (undefined: no client certificate). */
  readonly peerNames: readonly string[] | undefined;
  /** Sends one message; false when the transport's buffer is full (wait for onDrain). `flushed` runs once it is handed on. */
  write(message: Uint8Array, flushed?: () => void): boolean;
  onDrain(resume: () => void): void;
  /** Ends the call with a status (default OK). */
  end(code?: number, message?: string): void;
  /** Resets the stream at once (RST_STREAM CANCEL): for a client that does not read, whose trailers could never get out. */
  abort(reason: string): void;
}

/** What the xDS streams use besides: cheaper writes for the fan-out, where every stream gets small responses. */
export interface BatchingCall extends BidiCall {
  /**
   * Sends one message the caller built behind MESSAGE_PREFIX_BYTES spare
   * bytes, which are filled in here: the message is neither copied again
   * nor written in two parts. Otherwise as write().
   */
  writePrefixed(buffer: Buffer, flushed?: () => void): boolean;
  /** Holds writes back until uncork(), then hands them to HTTP/2 in one write (a stream's responses of one pump). */
  cork(): void;
  uncork(): void;
}

export interface BidiHandlers {
  onMessage(message: Buffer): void;
  /** Once, when the call is over for any reason (client end or cancel, connection lost, end()). */
  onClose(reason: string): void;
}

type MethodHandler = (call: BatchingCall) => BidiHandlers;

const DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024;
const HEADER_BYTES = 5;
/** Bytes in front of every message on the wire: compressed flag, big-endian length. */
export const MESSAGE_PREFIX_BYTES = HEADER_BYTES;
const RESET_AFTER_TRAILERS_MS = 1000;
/** Messages up to this size are copied behind their prefix (one write); larger ones are not copied. */
const COPY_BELOW = 16 * 1024;

/** Response headers, sent once per call when it starts. */
const RESPONSE_HEADERS = { ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-accept-encoding': 'identity' };

/** grpc-message encoding: bytes outside printable ASCII, and '%', as %XX (of UTF-8). */
function percentEncode(text: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(text)) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Unfinished-message bytes held by every call of a server, against one budget. */
interface PartialBudget {
  used: number;
  readonly max: number;
  readonly timeoutMs: number;
}

class Call implements BatchingCall {
  private handlers: BidiHandlers | undefined;
  private closed = false;
  private ending: { code: number; message: string } | undefined;
  /** The start of a message not yet complete (prefix and part of the body), and its size in bytes. */
  private partial: Buffer[] = [];
  private partialBytes = 0;
  /** Ends the call if the partial message is not finished in time (set while one is held). */
  private partialTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly path: string,
    private readonly stream: http2.ServerHttp2Stream,
    private readonly maxMessage: number,
    private readonly budget: PartialBudget,
    readonly connection: number,
    readonly peerNames: readonly string[] | undefined,
    private readonly onGone: (call: Call) => void,
    private readonly onRejected: (rejection: Rejection) => void,
  ) {}

  get session(): http2.Http2Session | undefined {
    return this.stream.session;
  }

  start(handler: MethodHandler): void {
    const stream = this.stream;
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.on('wantTrailers', () => {
      const status = this.ending ?? { code: Status.OK, message: '' };
      const trailers: http2.OutgoingHttpHeaders = { 'grpc-status': String(status.code) };
      if (status.message) trailers['grpc-message'] = percentEncode(status.message);
      stream.sendTrailers(trailers);
      // The call is over; a client still sending is told to stop with RST_STREAM,
      // a moment later: an RST submitted at once would drop the queued trailers.
      if (!stream.readableEnded) {
        setTimeout(() => {
          if (!stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
        }, RESET_AFTER_TRAILERS_MS).unref();
      }
    });
    this.handlers = handler(this);
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('end', () => {
      // a message shorter than its length prefix: the client ended inside it
      if (this.partialBytes > 0) this.reject('truncated_message', Status.INTERNAL, `the request stream ended inside a message (${this.partialBytes} bytes of it received)`);
      else this.end(Status.OK, '', 'client ended');
    });
    stream.on('aborted', () => this.finish('cancelled'));
    stream.on('error', (error: Error) => this.finish(`error: ${error.message}`));
    stream.on('close', () => this.finish('closed'));
  }

  write(message: Uint8Array, flushed?: () => void): boolean {
    if (this.closed || this.ending) {
      flushed?.();
      return true;
    }
    if (message.length <= COPY_BELOW) {
      // small (every change after the first response): one buffer, one write
      const framed = Buffer.allocUnsafe(HEADER_BYTES + message.length);
      framed[0] = 0; // not compressed
      framed.writeUInt32BE(message.length, 1);
      framed.set(message, HEADER_BYTES);
      return this.stream.write(framed, flushed);
    }
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    header[0] = 0;
    header.writeUInt32BE(message.length, 1);
    // large: prefix and message written together, the message not copied
    this.stream.cork();
    this.stream.write(header);
    const ok = this.stream.write(message, flushed);
    this.stream.uncork();
    return ok;
  }

  writePrefixed(buffer: Buffer, flushed?: () => void): boolean {
    if (this.closed || this.ending) {
      flushed?.();
      return true;
    }
    buffer[0] = 0; // not compressed
    buffer.writeUInt32BE(buffer.length - HEADER_BYTES, 1);
    return this.stream.write(buffer, flushed);
  }

  cork(): void {
    this.stream.cork();
  }

  uncork(): void {
    this.stream.uncork();
  }

  onDrain(resume: () => void): void {
    this.stream.once('drain', resume);
  }

  end(code: number = Status.OK, message = '', reason = 'server ended'): void {
    if (this.closed || this.ending) return;
    this.ending = { code, message };
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.end(); // trailers follow ('wantTrailers')
    this.finish(reason);
  }

  /** Ends the call without trailers (the connection is going away). */
  destroy(reason: string): void {
    this.stream.destroy();
    this.finish(reason);
  }

  abort(reason: string): void {
    if (this.closed) return;
    if (!this.stream.closed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
    this.finish(reason);
  }

  private finish(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.dropPartial();
    this.onGone(this);
    this.handlers?.onClose(reason);
  }

  private reject(reason: RejectReason, code: number, message: string): void {
    if (this.closed || this.ending) return;
    this.onRejected({ reason, path: this.path, code, message });
    this.dropPartial();
    this.end(code, message, `rejected: ${message}`);
  }

  /** Splits the request stream into messages (5-byte prefix: compressed flag, big-endian length). */
  private onData(chunk: Buffer): void {
    if (this.closed || this.ending) return;
    let data = chunk;
    if (this.partialBytes > 0) {
      if (!this.holdPartial(chunk.length)) return;
      this.partial.push(chunk);
      if (this.partialBytes < HEADER_BYTES) return;
      const length = this.messageLength();
      // checked before buffering the rest: a huge announced length must not make the buffer grow
      if (length > this.maxMessage) return this.tooLarge(length);
      if (this.partialBytes < HEADER_BYTES + length) return;
      data = Buffer.concat(this.partial, this.partialBytes);
      this.dropPartial();
    }
    let at = 0;
    while (data.length - at >= HEADER_BYTES) {
      const compressed = data[at]!;
      const length = data.readUInt32BE(at + 1);
      if (compressed !== 0) return this.reject('unsupported_encoding', Status.UNIMPLEMENTED, 'compressed messages are not supported (grpc-accept-encoding: identity)');
      if (length > this.maxMessage) return this.tooLarge(length);
      if (data.length - at - HEADER_BYTES < length) break;
      const message = data.subarray(at + HEADER_BYTES, at + HEADER_BYTES + length);
      at += HEADER_BYTES + length;
      this.handlers!.onMessage(message);
      if (this.closed || this.ending) return;
    }
    if (at < data.length) {
      const rest = data.subarray(at);
      if (!this.holdPartial(rest.length)) return;
      this.partial = [rest];
    }
  }

  /** Counts `bytes` more of an unfinished message against the shared budget; false (and the call refused) when over it. */
  private holdPartial(bytes: number): boolean {
    const budget = this.budget;
    if (budget.used + bytes > budget.max) {
      this.reject('partial_bytes_exhausted', Status.RESOURCE_EXHAUSTED, `unfinished request messages already hold ${budget.used} bytes, the server's limit is ${budget.max}`);
      return false;
    }
    budget.used += bytes;
    this.partialBytes += bytes;
    if (!this.partialTimer && budget.timeoutMs > 0) {
      this.partialTimer = setTimeout(() => {
        this.reject('partial_message_timeout', Status.RESOURCE_EXHAUSTED, `a request message was not finished within ${budget.timeoutMs} ms`);
      }, budget.timeoutMs).unref();
    }
    return true;
  }

  private dropPartial(): void {
    this.budget.used -= this.partialBytes;
    this.partial = [];
    this.partialBytes = 0;
    if (this.partialTimer) {
      clearTimeout(this.partialTimer);
      this.partialTimer = undefined;
    }
  }

  private tooLarge(length: number): void {
    this.reject('message_too_large', Status.RESOURCE_EXHAUSTED, `request message of ${length} bytes is over the limit of ${this.maxMessage}`);
  }

  /** The length in the prefix of the buffered partial message (at least HEADER_BYTES buffered). */
  private messageLength(): number {
    const head = this.partial[0]!.length >= HEADER_BYTES ? this.partial[0]! : Buffer.concat(this.partial).subarray(0, HEADER_BYTES);
    return head.readUInt32BE(1);
  }
}

export class GrpcServer {
  private readonly server: http2.Http2Server;
  private readonly methods = new Map<string, MethodHandler>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly calls = new Set<Call>();
  private readonly maxMessage: number;
  private readonly maxStreams: number;
  private readonly budget: PartialBudget;
  /** Per connection: its number, open calls, and the client certificate's names (once per connection). */
  private readonly connections = new WeakMap<http2.Http2Session, Connection>();
  private nextConnection = 1;

  constructor(private readonly options: GrpcServerOptions = {}) {
    this.maxMessage = options.maxReceiveMessageBytes ?? DEFAULT_MAX_MESSAGE;
    this.maxStreams = options.maxStreamsPerConnection ?? 100;
    this.budget = { used: 0, max: options.maxPartialBytes ?? 256 * 1024 * 1024, timeoutMs: options.partialMessageTimeoutMs ?? 10_000 };
    const serverOptions: http2.ServerOptions = {
      // back-pressure is per call (write/drain); the session limit would refuse streams instead
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
      // responses repeat few headers once per connection: no HPACK table to keep per connection
      maxDeflateDynamicTableSize: 0,
      // An xDS client needs one stream per type at most. Calls past maxStreams
      // are refused by this server (a gRPC status, counted); HTTP/2 refuses
      // past twice that (RST_STREAM, which the server never sees to count).
      settings: { maxConcurrentStreams: this.http2StreamLimit },
    };
    const tls = options.tls;
    this.server = tls
      ? http2.createSecureServer({
          ...serverOptions,
          cert: tls.cert,
          key: tls.key,
          ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}),
          allowHTTP1: false,
        })
      : http2.createServer(serverOptions);
    this.server.on('session', (session) => this.onSession(session));
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
  }

  /** Replaces the certificate, key and client CA for new connections (a TLS server only). */
  setTls(tls: TlsFiles): void {
    (this.server as http2.Http2SecureServer).setSecureContext({ cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}) });
  }

  /** Serves `path` (/package.Service/Method) as a bidirectional stream. */
  addMethod(path: string, handler: MethodHandler): void {
    this.methods.set(path, handler);
  }

  async listen(port: number, host: string): Promise<number> {
    await this.listenOn({ port, host });
    return (this.server.address() as AddressInfo).port;
  }

  /** Listens on a Unix socket at `path` (who may connect is up to the folder's permissions). */
  async listenSocket(path: string): Promise<void> {
    await this.listenOn({ path });
  }

  private listenOn(where: { port: number; host: string } | { path: string }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(where, () => {
        this.server.off('error', reject);
        // without a listener, an accept error (out of file descriptors) would end the process
        this.server.on('error', (error) => this.options.onServerError?.(error));
        resolve();
      });
    });
  }

  /** Stops accepting, ends every call with UNAVAILABLE and closes every connection. */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const call of [...this.calls]) call.end(Status.UNAVAILABLE, 'server shutting down', 'server shutting down');
    for (const session of [...this.sessions]) session.close();
    return closed;
  }

  /** close() without waiting: connections are destroyed at once. */
  forceClose(): void {
    void this.close();
    for (const call of [...this.calls]) call.destroy('server shutting down');
    for (const session of [...this.sessions]) session.destroy();
  }

  /** What SETTINGS_MAX_CONCURRENT_STREAMS advertises: past it nghttp2 refuses streams before this server sees them. */
  private get http2StreamLimit(): number {
    return this.maxStreams * 2;
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const path = headers[':path'] ?? '';
    this.noteHttp2Stream(stream);
    const contentType = headers['content-type'] ?? '';
    stream.on('error', () => undefined); // a refused request may be reset by its client; a call adds its own handler
    if (headers[':method'] !== 'POST' || !contentType.startsWith('application/grpc')) {
      this.rejected({ reason: 'not_grpc', path, code: 415, message: `${String(headers[':method'])} ${contentType || 'without content-type'} is not a gRPC request` });
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    const handler = this.methods.get(path);
    const encoding = headers['grpc-encoding'];
    const refusal: Rejection | undefined =
      handler === undefined ? { reason: 'unknown_method', path, code: Status.UNIMPLEMENTED, message: `unknown method ${path}` }
      : encoding !== undefined && encoding !== 'identity'
        ? { reason: 'unsupported_encoding', path, code: Status.UNIMPLEMENTED, message: `grpc-encoding ${String(encoding)} is not supported` }
      : undefined;
    if (refusal) {
      this.rejected(refusal);
      // trailers-only response
      stream.respond({ ...RESPONSE_HEADERS, 'grpc-status': String(refusal.code), 'grpc-message': percentEncode(refusal.message) }, { endStream: true });
      return;
    }
    const connection = this.connectionOf(stream.session!);
    if (connection.calls >= this.maxStreams) {
      const message = `more than ${this.maxStreams} concurrent streams on one connection`;
      this.rejected({ reason: 'too_many_streams_per_connection', path, code: Status.RESOURCE_EXHAUSTED, message });
      stream.respond({ ...RESPONSE_HEADERS, 'grpc-status': String(Status.RESOURCE_EXHAUSTED), 'grpc-message': percentEncode(message) }, { endStream: true });
      return;
    }
    connection.calls += 1;
    const call = new Call(path, stream, this.maxMessage, this.budget, connection.id, connection.peerNames, (c) => {
      connection.calls -= 1;
      this.calls.delete(c);
    }, (r) => this.rejected(r));
    this.calls.add(call);
    call.start(handler!);
  }

  private connectionOf(session: http2.Http2Session): Connection {
    let connection = this.connections.get(session);
    if (!connection) {
      connection = { id: this.nextConnection++, calls: 0, peerNames: peerNamesOf(session), openStreams: 0, lastStreamId: -1 };
      this.connections.set(session, connection);
    }
    return connection;
  }

  /**
   * Every stream the client opens gets the next odd id, and nghttp2 refuses
   * (REFUSED_STREAM) the ones past SETTINGS_MAX_CONCURRENT_STREAMS without
   * telling JavaScript: the ids this server never saw were refused. (Refused
   * streams after the last one seen on a connection stay unseen: nothing
   * follows them to show the gap.)
   */
  private noteHttp2Stream(stream: http2.ServerHttp2Stream): void {
    const connection = this.connectionOf(stream.session!);
    const id = stream.id ?? 0;
    const skipped = (id - connection.lastStreamId) / 2 - 1;
    if (id > connection.lastStreamId) connection.lastStreamId = id;
    if (skipped >= 1) {
      const message = `HTTP/2 refused ${skipped} stream(s) past SETTINGS_MAX_CONCURRENT_STREAMS ${this.http2StreamLimit} (REFUSED_STREAM)`;
      this.rejected({ reason: 'http2_refused_stream', path: '', code: http2.constants.NGHTTP2_REFUSED_STREAM, message, count: skipped });
    }
    connection.openStreams += 1;
    const session = stream.session!;
    // streams closed because the connection is being destroyed still count: the
    // connection error (session 'error') comes after them
    stream.once('close', () => {
      if (!session.destroyed) connection.openStreams -= 1;
    });
  }

  private rejected(rejection: Rejection): void {
    this.options.onRejected?.(rejection);
  }

  private onSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    const timers: NodeJS.Timeout[] = [];
    // Each stream reports its own end; what is left is the connection's: nghttp2
    // ends a connection that opens more streams than SETTINGS allow (once it
    // has ACKed them) with a protocol error, which this server counts.
    session.on('error', (error: Error & { code?: string }) => {
      const connection = this.connectionOf(session);
      if (connection.openStreams >= this.http2StreamLimit) {
        const message = `HTTP/2 ended the connection: the client opened more than SETTINGS_MAX_CONCURRENT_STREAMS ${this.http2StreamLimit} streams (${error.message})`;
        this.rejected({ reason: 'http2_too_many_streams', path: '', code: http2.constants.NGHTTP2_PROTOCOL_ERROR, message });
      } else if (error.code === 'ERR_HTTP2_ERROR') {
        this.rejected({ reason: 'http2_protocol_error', path: '', code: http2.constants.NGHTTP2_PROTOCOL_ERROR, message: `HTTP/2 ended the connection: ${error.message}` });
      }
    });
    session.on('close', () => {
      this.sessions.delete(session);
      for (const t of timers) clearTimeout(t);
    });
    const { keepaliveMs = 0, keepaliveTimeoutMs = 20_000, maxConnectionAgeMs = 0, maxConnectionAgeGraceMs = 30_000 } = this.options;
    if (keepaliveMs > 0) {
      // A peer that does not answer a ping in time is gone (half-open TCP): free its streams.
      let awaiting = false;
      const ping = setInterval(() => {
        if (awaiting || session.destroyed) return;
        awaiting = true;
        const deadline = setTimeout(() => session.destroy(), keepaliveTimeoutMs).unref();
        const sent = session.ping((error) => {
          clearTimeout(deadline);
          awaiting = false;
          if (error && !session.destroyed) session.destroy();
        });
        if (!sent) clearTimeout(deadline);
      }, keepaliveMs).unref();
      timers.push(ping);
    }
    if (maxConnectionAgeMs > 0) {
      const age = maxConnectionAgeMs * (0.95 + Math.random() * 0.1);
      timers.push(
        setTimeout(() => {
          // GOAWAY: no new streams here; open calls keep working until the grace ends
          session.close();
          timers.push(setTimeout(() => this.endCallsOf(session, 'max connection age'), maxConnectionAgeGraceMs).unref());
        }, age).unref(),
      );
    }
  }

  private endCallsOf(session: http2.Http2Session, reason: string): void {
    for (const call of [...this.calls]) if (call.session === session) call.end(Status.UNAVAILABLE, reason, reason);
  }
}

/** One HTTP/2 connection as this server sees it. */
interface Connection {
  /** A number unique in this server. */
  readonly id: number;
  /** Calls being served. */
  calls: number;
  readonly peerNames: readonly string[] | undefined;
  /** HTTP/2 streams open (calls, and requests refused but not yet closed by the client). */
  openStreams: number;
  /** The highest stream id seen (-1: none yet). */
  lastStreamId: number;
}

/** DNS and URI SANs of a verified client certificate (`subjectaltname`: "DNS:a, URI:spiffe://x/y"). */
function peerNamesOf(session: http2.Http2Session): readonly string[] | undefined {
  const socket = session.socket as TLSSocket | undefined;
  if (!socket || typeof socket.getPeerCertificate !== 'function' || !socket.authorized) return undefined;
  const altNames = socket.getPeerCertificate().subjectaltname ?? '';
  const names: string[] = [];
  // entries are comma-separated; a value with a comma in it is quoted (Node >= 17)
  for (const match of altNames.matchAll(/(DNS|URI):("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const raw = match[2]!.trim();
    names.push(match[1] + ':' + (raw.startsWith('"') ? (JSON.parse(raw) as string) : raw));
  }
  return names;
}
