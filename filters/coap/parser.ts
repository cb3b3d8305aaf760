// CoAP message parser: RFC 7252 (UDP datagrams) and RFC 8323 (TCP/TLS,
// length-prefixed frames, signaling codes 7.xx). Pure: no ABI calls, no
// allocation per message. Values are read from [ptr, ptr+len) in place and
// reported as offsets into that range, so the caller decides what (if
// anything) becomes a string.
//
// Options the proxy needs are decoded (Uri-Host, Uri-Port, Uri-Path,
// Uri-Query, Content-Format, Accept, Observe, Block1, Block2, Size1, Size2,
// Max-Age, ETag; on signaling messages CSM's Max-Message-Size and
// Block-Wise-Transfer). A critical option this parser does not know, or a
// known one whose length is outside its range (RFC 7252 §5.4.3 treats that as
// unrecognised), is reported in `unknownCritical`, never guessed at.

export enum Transport { Udp = 0, Tcp = 1 }

/** Why bytes are not a CoAP message (0 = they are). */
export enum ParseError {
  None = 0,
  /** Version field is not 1 (UDP). */
  BadVersion = 1,
  /** Token length 9..15 (reserved). */
  BadTokenLength = 2,
  /** The message ends inside its header, token or an option. */
  Truncated = 3,
  /** Option delta or length nibble 15 outside the payload marker. */
  BadOptionNibble = 4,
  /** A payload marker with nothing after it (RFC 7252 §3). */
  EmptyPayload = 5,
  /** An Empty message (0.00) with a token, options or payload (RFC 7252 §4.1; UDP). */
  BadEmpty = 6,
  /** More options than the caller allows. */
  TooManyOptions = 7,
  /** Option number past 65535. */
  OptionNumberOverflow = 8,
}

export function parseErrorName(e: ParseError): string {
  switch (e) {
    case ParseError.BadVersion: return "bad version";
    case ParseError.BadTokenLength: return "reserved token length";
    case ParseError.Truncated: return "truncated message";
    case ParseError.BadOptionNibble: return "reserved option nibble 15";
    case ParseError.EmptyPayload: return "payload marker without payload";
    case ParseError.BadEmpty: return "empty message with content";
    case ParseError.TooManyOptions: return "too many options";
    case ParseError.OptionNumberOverflow: return "option number past 65535";
    default: return "ok";
  }
}

// Message types (UDP only).
export const TYPE_CON: u8 = 0;
export const TYPE_NON: u8 = 1;
export const TYPE_ACK: u8 = 2;
export const TYPE_RST: u8 = 3;

// Codes as c.dd in one byte: class << 5 | detail.
export const CODE_EMPTY: u8 = 0x00;
export const CODE_GET: u8 = 0x01;
export const CODE_POST: u8 = 0x02;
export const CODE_PUT: u8 = 0x03;
export const CODE_DELETE: u8 = 0x04;
export const CODE_FETCH: u8 = 0x05;
export const CODE_PATCH: u8 = 0x06;
export const CODE_IPATCH: u8 = 0x07;
export const CODE_BAD_REQUEST: u8 = 0x80; // 4.00
export const CODE_FORBIDDEN: u8 = 0x83; // 4.03
export const CODE_TOO_LARGE: u8 = 0x8d; // 4.13
export const CODE_CSM: u8 = 0xe1; // 7.01
export const CODE_PING: u8 = 0xe2;
export const CODE_PONG: u8 = 0xe3;
export const CODE_RELEASE: u8 = 0xe4;
export const CODE_ABORT: u8 = 0xe5;

// Option numbers (RFC 7252 §12.2, RFC 7641, RFC 7959).
export const OPT_IF_MATCH: u32 = 1;
export const OPT_URI_HOST: u32 = 3;
export const OPT_ETAG: u32 = 4;
export const OPT_IF_NONE_MATCH: u32 = 5;
export const OPT_OBSERVE: u32 = 6;
export const OPT_URI_PORT: u32 = 7;
export const OPT_LOCATION_PATH: u32 = 8;
export const OPT_OSCORE: u32 = 9;
export const OPT_URI_PATH: u32 = 11;
export const OPT_CONTENT_FORMAT: u32 = 12;
export const OPT_MAX_AGE: u32 = 14;
export const OPT_URI_QUERY: u32 = 15;
export const OPT_HOP_LIMIT: u32 = 16;
export const OPT_ACCEPT: u32 = 17;
export const OPT_Q_BLOCK1: u32 = 19;
export const OPT_LOCATION_QUERY: u32 = 20;
export const OPT_BLOCK2: u32 = 23;
export const OPT_BLOCK1: u32 = 27;
export const OPT_SIZE2: u32 = 28;
export const OPT_Q_BLOCK2: u32 = 31;
export const OPT_PROXY_URI: u32 = 35;
export const OPT_PROXY_SCHEME: u32 = 39;
export const OPT_SIZE1: u32 = 60;
export const OPT_ECHO: u32 = 252;
export const OPT_NO_RESPONSE: u32 = 258;
export const OPT_REQUEST_TAG: u32 = 292;

// Signaling option numbers (RFC 8323 §5): their meaning depends on the code.
export const SIG_MAX_MESSAGE_SIZE: u32 = 2; // CSM
export const SIG_BLOCK_WISE_TRANSFER: u32 = 4; // CSM

/** Most Uri-Path / Uri-Query options remembered per message (more fail the option limit first). */
export const MAX_SEGMENTS: i32 = 256;

/** Length bounds of the options this parser knows, as min << 16 | max; 0 = unknown. */
export function optionBounds(number: u32): u32 {
  switch (number) {
    case OPT_IF_MATCH: return 8;
    case OPT_URI_HOST: return (1 << 16) | 255;
    case OPT_ETAG: return (1 << 16) | 8;
    case OPT_IF_NONE_MATCH: return 0;
    case OPT_OBSERVE: return 3;
    case OPT_URI_PORT: return 2;
    case OPT_LOCATION_PATH: return 255;
    case OPT_OSCORE: return 255;
    case OPT_URI_PATH: return 255;
    case OPT_CONTENT_FORMAT: return 2;
    case OPT_MAX_AGE: return 4;
    case OPT_URI_QUERY: return 255;
    case OPT_HOP_LIMIT: return (1 << 16) | 1;
    case OPT_ACCEPT: return 2;
    case OPT_Q_BLOCK1: return 3;
    case OPT_LOCATION_QUERY: return 255;
    case OPT_BLOCK2: return 3;
    case OPT_BLOCK1: return 3;
    case OPT_SIZE2: return 4;
    case OPT_Q_BLOCK2: return 3;
    case OPT_PROXY_URI: return (1 << 16) | 1034;
    case OPT_PROXY_SCHEME: return (1 << 16) | 255;
    case OPT_SIZE1: return 4;
    case OPT_ECHO: return (1 << 16) | 40;
    case OPT_NO_RESPONSE: return 1;
    case OPT_REQUEST_TAG: return 8;
    default: return 0xffffffff; // unknown
  }
}

const UNKNOWN_BOUNDS: u32 = 0xffffffff;

/** One parsed message. Reused: parse() resets it. Offsets are relative to the parsed range's start. */
export class CoapMessage {
  transport: Transport = Transport.Udp;
  /** CON/NON/ACK/RST (UDP); 0 on TCP. */
  type: u8 = 0;
  code: u8 = 0;
  /** UDP message id; -1 on TCP. */
  messageId: i32 = -1;
  /** Whole message length (TCP: the frame including its length header). */
  length: u32 = 0;
  tokenOffset: u32 = 0;
  tokenLength: u32 = 0;
  optionCount: u32 = 0;
  payloadOffset: u32 = 0;
  payloadLength: u32 = 0;

  /** Uri-Path segments (offset, length pairs), in order. */
  pathCount: i32 = 0;
  pathSegments: StaticArray<u32> = new StaticArray<u32>(MAX_SEGMENTS * 2);
  /** Total bytes of the path as "/a/b" ("/" for no segment). */
  pathStringLength: u32 = 1;
  queryCount: i32 = 0;
  querySegments: StaticArray<u32> = new StaticArray<u32>(MAX_SEGMENTS * 2);
  hostOffset: u32 = 0;
  /** 0: no Uri-Host. */
  hostLength: u32 = 0;
  hasHost: bool = false;
  uriPort: i32 = -1;
  contentFormat: i32 = -1;
  accept: i32 = -1;
  observe: i64 = -1;
  maxAge: i64 = -1;
  size1: i64 = -1;
  size2: i64 = -1;
  /** Raw Block option values (NUM << 4 | M << 3 | SZX); -1 when absent. */
  block1: i64 = -1;
  block2: i64 = -1;
  etagOffset: u32 = 0;
  /** -1: no ETag (the first one when several). */
  etagLength: i32 = -1;
  /** The first critical option that is not known (or has a bad length); 0 = none. */
  unknownCritical: u32 = 0;
  /** CSM: Max-Message-Size (-1 absent) and Block-Wise-Transfer. */
  maxMessageSize: i64 = -1;
  blockWiseTransfer: bool = false;

  reset(): void {
    this.type = 0;
    this.code = 0;
    this.messageId = -1;
    this.length = 0;
    this.tokenOffset = 0;
    this.tokenLength = 0;
    this.optionCount = 0;
    this.payloadOffset = 0;
    this.payloadLength = 0;
    this.pathCount = 0;
    this.pathStringLength = 1;
    this.queryCount = 0;
    this.hostOffset = 0;
    this.hostLength = 0;
    this.hasHost = false;
    this.uriPort = -1;
    this.contentFormat = -1;
    this.accept = -1;
    this.observe = -1;
    this.maxAge = -1;
    this.size1 = -1;
    this.size2 = -1;
    this.block1 = -1;
    this.block2 = -1;
    this.etagOffset = 0;
    this.etagLength = -1;
    this.unknownCritical = 0;
    this.maxMessageSize = -1;
    this.blockWiseTransfer = false;
  }

  get codeClass(): u8 { return this.code >> 5; }
  get codeDetail(): u8 { return this.code & 31; }
  get isEmpty(): bool { return this.code == CODE_EMPTY; }
  get isRequest(): bool { return this.code >= 1 && this.code < 32; }
  get isResponse(): bool { const c = this.code >> 5; return c >= 2 && c <= 5; }
  get isSignaling(): bool { return (this.code >> 5) == 7; }

  pathSegmentOffset(i: i32): u32 { return unchecked(this.pathSegments[i * 2]); }
  pathSegmentLength(i: i32): u32 { return unchecked(this.pathSegments[i * 2 + 1]); }
  querySegmentOffset(i: i32): u32 { return unchecked(this.querySegments[i * 2]); }
  querySegmentLength(i: i32): u32 { return unchecked(this.querySegments[i * 2 + 1]); }
}

/** Block option value → block number, more flag and size (SZX 7 = BERT, 1024-byte blocks; RFC 8323 §6). */
export function blockNum(raw: i64): u32 { return <u32>(raw >> 4); }
export function blockMore(raw: i64): bool { return ((raw >> 3) & 1) != 0; }
export function blockSize(raw: i64): u32 {
  const szx = <u32>(raw & 7);
  return szx == 7 ? 1024 : (<u32>1) << (szx + 4);
}

/** "2.05" and friends. */
export function codeString(code: u8): string {
  const d = code & 31;
  return (code >> 5).toString() + "." + (d < 10 ? "0" : "") + d.toString();
}

export function methodName(code: u8): string {
  switch (code) {
    case CODE_GET: return "GET";
    case CODE_POST: return "POST";
    case CODE_PUT: return "PUT";
    case CODE_DELETE: return "DELETE";
    case CODE_FETCH: return "FETCH";
    case CODE_PATCH: return "PATCH";
    case CODE_IPATCH: return "IPATCH";
    default: return "";
  }
}

export function signalName(code: u8): string {
  switch (code) {
    case CODE_CSM: return "csm";
    case CODE_PING: return "ping";
    case CODE_PONG: return "pong";
    case CODE_RELEASE: return "release";
    case CODE_ABORT: return "abort";
    default: return "";
  }
}

function readUint(p: usize, len: u32): i64 {
  let v: i64 = 0;
  for (let i: u32 = 0; i < len; i++) v = (v << 8) | <i64>load<u8>(p + i);
  return v;
}

// ---------------------------------------------------------------- framing

/** needMore: the TCP frame header is not complete yet. */
export const FRAME_NEED_MORE: i64 = -1;
/** The header names a reserved token length. */
export const FRAME_BAD: i64 = -2;

/**
 * RFC 8323 §3.2 framing: total length of the frame starting at `ptr`, from
 * the `avail` bytes there (the first 1..7 bytes decide it): FRAME_NEED_MORE
 * or FRAME_BAD otherwise. Len 13/14/15 take 1/2/4 more bytes (+13/+269/+65805).
 */
export function tcpFrameLength(ptr: usize, avail: usize): i64 {
  if (avail < 1) return FRAME_NEED_MORE;
  const b0 = <u32>load<u8>(ptr);
  const lenNibble = b0 >> 4;
  const tkl = b0 & 15;
  if (tkl > 8) return FRAME_BAD;
  let ext: u32 = 0;
  let len: i64 = <i64>lenNibble;
  if (lenNibble == 13) ext = 1;
  else if (lenNibble == 14) ext = 2;
  else if (lenNibble == 15) ext = 4;
  if (avail < <usize>(1 + ext)) return FRAME_NEED_MORE;
  if (ext == 1) len = <i64>load<u8>(ptr + 1) + 13;
  else if (ext == 2) len = ((<i64>load<u8>(ptr + 1) << 8) | <i64>load<u8>(ptr + 2)) + 269;
  else if (ext == 4) len = readUint(ptr + 1, 4) + 65805;
  // Len counts options and payload; then come the length bytes, code and token.
  return len + 2 + <i64>ext + <i64>tkl;
}

/** Bytes in front of the options of a TCP frame: 1 + extension + code + token. */
function tcpHeaderLength(b0: u32): u32 {
  const n = b0 >> 4;
  return 2 + (n == 13 ? 1 : n == 14 ? 2 : n == 15 ? 4 : 0) + (b0 & 15);
}

// ---------------------------------------------------------------- parsing

/** Parses one UDP datagram (RFC 7252 §3). */
export function parseUdp(ptr: usize, len: u32, m: CoapMessage, maxOptions: u32): ParseError {
  m.reset();
  m.transport = Transport.Udp;
  m.length = len;
  if (len < 4) return ParseError.Truncated;
  const b0 = <u32>load<u8>(ptr);
  if ((b0 >> 6) != 1) return ParseError.BadVersion;
  const tkl = b0 & 15;
  if (tkl > 8) return ParseError.BadTokenLength;
  m.type = <u8>((b0 >> 4) & 3);
  m.code = load<u8>(ptr + 1);
  m.messageId = (<i32>load<u8>(ptr + 2) << 8) | <i32>load<u8>(ptr + 3);
  if (m.code == CODE_EMPTY && (tkl != 0 || len != 4)) return ParseError.BadEmpty;
  if (<u32>4 + tkl > len) return ParseError.Truncated;
  m.tokenOffset = 4;
  m.tokenLength = tkl;
  return parseOptions(ptr, 4 + tkl, len, len, m, maxOptions);
}

/** Parses one whole TCP frame of `len` bytes (len as tcpFrameLength gave it). */
export function parseTcp(ptr: usize, len: u32, m: CoapMessage, maxOptions: u32): ParseError {
  return parseTcpHead(ptr, len, len, m, maxOptions);
}

/**
 * Bytes of the TCP frame at `ptr` (`total` long, `avail` of them there) up
 * to and including its payload marker: all a proxy reads of a message (the
 * payload is never looked at). FRAME_NEED_MORE when the options run past
 * `avail`; `total` when there is no payload, or when the options are bad
 * (parseTcp then says why).
 */
export function tcpHeadLength(ptr: usize, avail: usize, total: u32): i64 {
  const b0 = <u32>load<u8>(ptr);
  let at = tcpHeaderLength(b0);
  const end = <u32>min<usize>(avail, <usize>total);
  while (at < total) {
    if (at >= end) return FRAME_NEED_MORE;
    const b = <u32>load<u8>(ptr + at);
    if (b == 0xff) return <i64>(at + 1 < total ? at + 1 : total);
    const d = b >> 4;
    const l = b & 15;
    if (d == 15 || l == 15) return <i64>total;
    let ext: u32 = (d == 13 ? 1 : d == 14 ? 2 : 0) + (l == 13 ? 1 : l == 14 ? 2 : 0);
    if (at + 1 + ext > end) return at + 1 + ext > total ? <i64>total : FRAME_NEED_MORE;
    let olen = l;
    const lenAt = ptr + at + 1 + (d == 13 ? 1 : d == 14 ? 2 : 0);
    if (l == 13) olen = <u32>load<u8>(lenAt) + 13;
    else if (l == 14) olen = ((<u32>load<u8>(lenAt) << 8) | <u32>load<u8>(lenAt + 1)) + 269;
    at += 1 + ext + olen;
  }
  return <i64>total;
}

/**
 * Parses a TCP frame of `total` bytes from its first `head` bytes (head as
 * tcpHeadLength gave it, or total): header, token, options; the payload's
 * place and length without its bytes.
 */
export function parseTcpHead(ptr: usize, head: u32, total: u32, m: CoapMessage, maxOptions: u32): ParseError {
  m.reset();
  m.transport = Transport.Tcp;
  m.length = total;
  const n = tcpFrameLength(ptr, head);
  if (n == FRAME_BAD) return ParseError.BadTokenLength;
  if (n == FRAME_NEED_MORE || n != <i64>total) return ParseError.Truncated;
  const b0 = <u32>load<u8>(ptr);
  const header = tcpHeaderLength(b0);
  if (header > head) return ParseError.Truncated;
  m.code = load<u8>(ptr + header - 1 - (b0 & 15));
  m.tokenOffset = header - (b0 & 15);
  m.tokenLength = b0 & 15;
  return parseOptions(ptr, header, head, total, m, maxOptions);
}

function parseOptions(ptr: usize, start: u32, end: u32, total: u32, m: CoapMessage, maxOptions: u32): ParseError {
  const signaling = (m.code >> 5) == 7;
  let at = start;
  let number: u32 = 0;
  let count: u32 = 0;
  while (at < end) {
    const b = <u32>load<u8>(ptr + at);
    at++;
    if (b == 0xff) {
      if (at >= total) return ParseError.EmptyPayload;
      m.payloadOffset = at;
      m.payloadLength = total - at;
      m.optionCount = count;
      return ParseError.None;
    }
    let delta = b >> 4;
    let olen = b & 15;
    if (delta == 15 || olen == 15) return ParseError.BadOptionNibble;
    if (delta == 13) {
      if (at + 1 > end) return ParseError.Truncated;
      delta = <u32>load<u8>(ptr + at) + 13;
      at += 1;
    } else if (delta == 14) {
      if (at + 2 > end) return ParseError.Truncated;
      delta = ((<u32>load<u8>(ptr + at) << 8) | <u32>load<u8>(ptr + at + 1)) + 269;
      at += 2;
    }
    if (olen == 13) {
      if (at + 1 > end) return ParseError.Truncated;
      olen = <u32>load<u8>(ptr + at) + 13;
      at += 1;
    } else if (olen == 14) {
      if (at + 2 > end) return ParseError.Truncated;
      olen = ((<u32>load<u8>(ptr + at) << 8) | <u32>load<u8>(ptr + at + 1)) + 269;
      at += 2;
    }
    if (<u64>at + <u64>olen > <u64>end) return ParseError.Truncated;
    number += delta;
    if (number > 65535) return ParseError.OptionNumberOverflow;
    count++;
    if (count > maxOptions) return ParseError.TooManyOptions;
    if (signaling) signalOption(ptr + at, number, olen, m);
    else option(ptr, at, number, olen, m);
    at += olen;
  }
  m.optionCount = count;
  return end < total ? ParseError.Truncated : ParseError.None;
}

function signalOption(p: usize, number: u32, olen: u32, m: CoapMessage): void {
  if (m.code == CODE_CSM) {
    if (number == SIG_MAX_MESSAGE_SIZE && olen <= 4) { m.maxMessageSize = readUint(p, olen); return; }
    if (number == SIG_BLOCK_WISE_TRANSFER && olen == 0) { m.blockWiseTransfer = true; return; }
  } else if (m.code == CODE_PING || m.code == CODE_PONG) {
    if (number == 2 && olen == 0) return; // Custody
  } else if (m.code == CODE_RELEASE) {
    if (number == 2 && olen >= 1 && olen <= 255) return; // Alternative-Address
    if (number == 4 && olen <= 3) return; // Hold-Off
  } else if (m.code == CODE_ABORT) {
    if (number == 2 && olen <= 2) return; // Bad-CSM-Option
  }
  if ((number & 1) != 0 && m.unknownCritical == 0) m.unknownCritical = number;
}

function option(ptr: usize, at: u32, number: u32, olen: u32, m: CoapMessage): void {
  const bounds = optionBounds(number);
  if (bounds == UNKNOWN_BOUNDS || olen < (bounds >> 16) || olen > (bounds & 0xffff)) {
    // RFC 7252 §5.4.1/§5.4.3: unknown, or a length outside the option's range
    if ((number & 1) != 0 && m.unknownCritical == 0) m.unknownCritical = number;
    return;
  }
  const p = ptr + at;
  switch (number) {
    case OPT_URI_HOST: {
      if (!m.hasHost) { m.hasHost = true; m.hostOffset = at; m.hostLength = olen; }
      break;
    }
    case OPT_ETAG: {
      if (m.etagLength < 0) { m.etagOffset = at; m.etagLength = <i32>olen; }
      break;
    }
    case OPT_OBSERVE: { m.observe = readUint(p, olen); break; }
    case OPT_URI_PORT: { m.uriPort = <i32>readUint(p, olen); break; }
    case OPT_URI_PATH: {
      const i = m.pathCount;
      if (i < MAX_SEGMENTS) {
        unchecked(m.pathSegments[i * 2] = at);
        unchecked(m.pathSegments[i * 2 + 1] = olen);
        m.pathCount = i + 1;
        m.pathStringLength = (i == 0 ? 0 : m.pathStringLength) + 1 + olen;
      }
      break;
    }
    case OPT_URI_QUERY: {
      const i = m.queryCount;
      if (i < MAX_SEGMENTS) {
        unchecked(m.querySegments[i * 2] = at);
        unchecked(m.querySegments[i * 2 + 1] = olen);
        m.queryCount = i + 1;
      }
      break;
    }
    case OPT_CONTENT_FORMAT: { m.contentFormat = <i32>readUint(p, olen); break; }
    case OPT_MAX_AGE: { m.maxAge = readUint(p, olen); break; }
    case OPT_ACCEPT: { m.accept = <i32>readUint(p, olen); break; }
    case OPT_BLOCK2: { m.block2 = readUint(p, olen); break; }
    case OPT_BLOCK1: { m.block1 = readUint(p, olen); break; }
    case OPT_SIZE2: { m.size2 = readUint(p, olen); break; }
    case OPT_SIZE1: { m.size1 = readUint(p, olen); break; }
    default: break; // known, not needed by the proxy
  }
}

/** Writes the Uri-Path as "/a/b" ("/" when there is none) to `dest` (room for m.pathStringLength bytes). */
export function writePath(base: usize, m: CoapMessage, dest: usize): u32 {
  if (m.pathCount == 0) { store<u8>(dest, 0x2f); return 1; }
  let at: usize = 0;
  for (let i = 0; i < m.pathCount; i++) {
    store<u8>(dest + at, 0x2f);
    at++;
    const len = <usize>m.pathSegmentLength(i);
    memory.copy(dest + at, base + <usize>m.pathSegmentOffset(i), len);
    at += len;
  }
  return <u32>at;
}

// ---------------------------------------------------------------- encoding

/**
 * A response the proxy itself sends to a request (RFC 7252 §5.2): same token;
 * on UDP a piggybacked ACK with the request's message id for a CON, a NON
 * with `freshMessageId` for a NON. `diagnostic` (ASCII) goes in the payload.
 * Returns the bytes to send.
 */
export function buildResponse(base: usize, req: CoapMessage, code: u8, diagnostic: string, freshMessageId: u16): ArrayBuffer {
  const diag = String.UTF8.encode(diagnostic);
  const dlen = <u32>diag.byteLength;
  const body: u32 = dlen > 0 ? dlen + 1 : 0;
  const tkl = req.tokenLength;
  if (req.transport == Transport.Udp) {
    const out = new ArrayBuffer(<i32>(4 + tkl + body));
    const o = changetype<usize>(out);
    const type = req.type == TYPE_CON ? TYPE_ACK : TYPE_NON;
    const mid: u32 = req.type == TYPE_CON ? <u32>req.messageId : <u32>freshMessageId;
    store<u8>(o, <u8>((1 << 6) | (type << 4) | tkl));
    store<u8>(o + 1, code);
    store<u8>(o + 2, <u8>(mid >> 8));
    store<u8>(o + 3, <u8>mid);
    memory.copy(o + 4, base + req.tokenOffset, tkl);
    if (dlen > 0) {
      store<u8>(o + 4 + tkl, 0xff);
      memory.copy(o + 5 + tkl, changetype<usize>(diag), dlen);
    }
    return out;
  }
  return tcpFrame(code, base + req.tokenOffset, tkl, changetype<usize>(diag), dlen);
}

/** A TCP frame with no options: code, token, optional payload. */
export function tcpFrame(code: u8, token: usize, tkl: u32, payload: usize, plen: u32): ArrayBuffer {
  const body: u32 = plen > 0 ? plen + 1 : 0;
  const ext: u32 = body < 13 ? 0 : body < 269 ? 1 : body < 65805 ? 2 : 4;
  const out = new ArrayBuffer(<i32>(2 + ext + tkl + body));
  const o = changetype<usize>(out);
  if (ext == 0) store<u8>(o, <u8>((body << 4) | tkl));
  else if (ext == 1) { store<u8>(o, <u8>((13 << 4) | tkl)); store<u8>(o + 1, <u8>(body - 13)); }
  else if (ext == 2) { store<u8>(o, <u8>((14 << 4) | tkl)); store<u8>(o + 1, <u8>((body - 269) >> 8)); store<u8>(o + 2, <u8>(body - 269)); }
  else {
    const v = body - 65805;
    store<u8>(o, <u8>((15 << 4) | tkl));
    store<u8>(o + 1, <u8>(v >> 24)); store<u8>(o + 2, <u8>(v >> 16)); store<u8>(o + 3, <u8>(v >> 8)); store<u8>(o + 4, <u8>v);
  }
  store<u8>(o + 1 + ext, code);
  memory.copy(o + 2 + ext, token, tkl);
  if (plen > 0) {
    store<u8>(o + 2 + ext + tkl, 0xff);
    memory.copy(o + 3 + ext + tkl, payload, plen);
  }
  return out;
}

/** RFC 8323 §5.6 Abort with a diagnostic payload (sent before the proxy closes a connection). */
export function abortFrame(diagnostic: string): ArrayBuffer {
  const diag = String.UTF8.encode(diagnostic);
  return tcpFrame(CODE_ABORT, 0, 0, changetype<usize>(diag), <u32>diag.byteLength);
}

// ---------------------------------------------------------------- fast scan

/** What scanTcpMessage found (wasm globals: no object, no allocation). */
export let scanCode: u8 = 0;
/** SCAN_* bits. */
export let scanFlags: u32 = 0;
/** The Observe value when SCAN_OBSERVE is set. */
export let scanObserve: u32 = 0;
export const SCAN_OBSERVE: u32 = 1;
export const SCAN_BLOCK1: u32 = 2;
export const SCAN_BLOCK2: u32 = 4;
export const SCAN_UNKNOWN_CRITICAL: u32 = 8;

/**
 * The fast path's reading of one TCP message at `p` (`avail` bytes there):
 * its length, or -1 when it needs the general path instead: the head is not
 * whole within `avail`, the message is longer than `limit`, malformed, has
 * more than `maxOptions` options or a token over `maxToken`, or is signaling.
 * Reads what the counters need (code, Observe, Block1/Block2 present, an
 * unknown critical option) with the same rules as parseTcpHead.
 */
export function scanTcpMessage(p: usize, avail: usize, limit: i64, maxOptions: u32, maxToken: u32): i64 {
  const total = tcpFrameLength(p, avail);
  if (total < 0 || total > limit) return -1;
  const b0 = <u32>load<u8>(p);
  const tkl = b0 & 15;
  if (tkl > maxToken) return -1;
  const header = tcpHeaderLength(b0);
  const t = <u32>total;
  if (<usize>header > avail || header > t) return -1;
  const code = load<u8>(p + header - 1 - tkl);
  if ((code >> 5) == 7) return -1;
  const end = <u32>min<usize>(avail, <usize>t);
  let at = header;
  let number: u32 = 0;
  let count: u32 = 0;
  let flags: u32 = 0;
  let observe: u32 = 0;
  while (at < t) {
    if (at >= end) return -1;
    const b = <u32>load<u8>(p + at);
    at++;
    if (b == 0xff) {
      if (at >= t) return -1;
      break;
    }
    let delta = b >> 4;
    let olen = b & 15;
    if (delta == 15 || olen == 15) return -1;
    if (delta == 13) { if (at + 1 > end) return -1; delta = <u32>load<u8>(p + at) + 13; at += 1; }
    else if (delta == 14) { if (at + 2 > end) return -1; delta = ((<u32>load<u8>(p + at) << 8) | <u32>load<u8>(p + at + 1)) + 269; at += 2; }
    if (olen == 13) { if (at + 1 > end) return -1; olen = <u32>load<u8>(p + at) + 13; at += 1; }
    else if (olen == 14) { if (at + 2 > end) return -1; olen = ((<u32>load<u8>(p + at) << 8) | <u32>load<u8>(p + at + 1)) + 269; at += 2; }
    if (at + olen > end) return -1;
    number += delta;
    if (number > 65535) return -1;
    if (++count > maxOptions) return -1;
    if ((number & 1) != 0) {
      // critical: unknown or out of range is reported; Block1 / Block2 are counted
      const bounds = optionBounds(number);
      if (bounds == UNKNOWN_BOUNDS || olen < (bounds >> 16) || olen > (bounds & 0xffff)) flags |= SCAN_UNKNOWN_CRITICAL;
      else if (number == OPT_BLOCK1) flags |= SCAN_BLOCK1;
      else if (number == OPT_BLOCK2) flags |= SCAN_BLOCK2;
    } else if (number == OPT_OBSERVE && olen <= 3) {
      // elective options matter only for Observe (the last one counts, as in parseTcpHead)
      flags |= SCAN_OBSERVE;
      observe = <u32>readUint(p + at, olen);
    }
    at += olen;
  }
  scanCode = code;
  scanFlags = flags;
  scanObserve = observe;
  return total;
}
