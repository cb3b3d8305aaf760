// Writing Kafka's wire types (for the answers and rewrites the filter
// builds) and the two header shapes every frame starts with. Pure.
import { API_KEY_LIMIT, API_MAX_VERSION, API_MIN_VERSION, API_REQUEST_FLEXIBLE_FROM, API_RESPONSE_FLEXIBLE_FROM } from "./gen/apis";

export const API_PRODUCE: i16 = 0;
export const API_FETCH: i16 = 1;
export const API_METADATA: i16 = 3;
export const API_CONTROLLED_SHUTDOWN: i16 = 7;
export const API_FIND_COORDINATOR: i16 = 10;
export const API_SASL_HANDSHAKE: i16 = 17;
export const API_VERSIONS: i16 = 18;
export const API_SASL_AUTHENTICATE: i16 = 36;
export const API_DESCRIBE_CLUSTER: i16 = 60;
export const API_SHARE_FETCH: i16 = 78;

/** Whether both releases the codec was generated from define this key and version. */
export function isKnown(key: i16, version: i16): bool {
  if (key < 0 || <i32>key >= API_KEY_LIMIT) return false;
  const lo = API_MIN_VERSION[key];
  return lo >= 0 && version >= lo && version <= API_MAX_VERSION[key];
}

export function requestIsFlexible(key: i16, version: i16): bool {
  return version >= API_REQUEST_FLEXIBLE_FROM[key];
}

export function responseIsFlexible(key: i16, version: i16): bool {
  return version >= API_RESPONSE_FLEXIBLE_FROM[key];
}

/** Request header version: 2 (tagged fields) for flexible requests, 1 otherwise, 0 for ControlledShutdown v0. */
export function requestHeaderVersion(key: i16, version: i16): i32 {
  if (key == API_CONTROLLED_SHUTDOWN && version == 0) return 0;
  return requestIsFlexible(key, version) ? 2 : 1;
}

/** Response header version: 1 (tagged fields) for flexible responses, 0 otherwise — always 0 for ApiVersions (clients read it before they know the broker's versions). */
export function responseHeaderVersion(key: i16, version: i16): i32 {
  if (key == API_VERSIONS) return 0;
  return responseIsFlexible(key, version) ? 1 : 0;
}

@inline export function be32(p: usize): i32 {
  return <i32>bswap<u32>(load<u32>(p));
}

@inline export function be16(p: usize): i16 {
  return <i16>bswap<u16>(load<u16>(p));
}

export function uvarintSize(v: u32): i32 {
  let n = 1;
  while (v >= 0x80) { v >>>= 7; n++; }
  return n;
}

/** A growable byte buffer (one per use; the bytes are copied out with take()). */
export class Writer {
  buf: ArrayBuffer = new ArrayBuffer(64);
  len: i32 = 0;

  reset(): void { this.len = 0; }

  private room(n: i32): usize {
    if (this.len + n > this.buf.byteLength) {
      let cap = this.buf.byteLength * 2;
      while (cap < this.len + n) cap *= 2;
      const next = new ArrayBuffer(cap);
      memory.copy(changetype<usize>(next), changetype<usize>(this.buf), <usize>this.len);
      this.buf = next;
    }
    const p = changetype<usize>(this.buf) + <usize>this.len;
    this.len += n;
    return p;
  }

  i8(v: i32): void { store<u8>(this.room(1), <u8>v); }
  i16(v: i32): void { store<u16>(this.room(2), bswap<u16>(<u16>v)); }
  i32(v: i32): void { store<u32>(this.room(4), bswap<u32>(<u32>v)); }
  i64(v: i64): void { store<u64>(this.room(8), bswap<u64>(<u64>v)); }
  bytes(ptr: usize, n: i32): void { if (n > 0) memory.copy(this.room(n), ptr, <usize>n); }
  zeros(n: i32): void { if (n > 0) memory.fill(this.room(n), 0, <usize>n); }

  uvarint(v: u32): void {
    while (v >= 0x80) { this.i8(<i32>((v & 0x7f) | 0x80)); v >>>= 7; }
    this.i8(<i32>v);
  }

  /** A string (or null when len < 0) in the compact (flexible) or classic form. */
  str(ptr: usize, len: i32, flexible: bool): void {
    if (flexible) this.uvarint(len < 0 ? 0 : <u32>len + 1);
    else this.i16(len < 0 ? -1 : len);
    if (len > 0) this.bytes(ptr, len);
  }

  /** An array count (null when n < 0). */
  count(n: i32, flexible: bool): void {
    if (flexible) this.uvarint(n < 0 ? 0 : <u32>n + 1);
    else this.i32(n);
  }

  /** No tagged fields. */
  noTags(): void { this.i8(0); }

  /** Writes the int32 size at `at` (a placeholder written before) as len - at - 4. */
  patchSize(at: i32): void {
    store<u32>(changetype<usize>(this.buf) + <usize>at, bswap<u32>(<u32>(this.len - at - 4)));
  }

  take(): ArrayBuffer {
    const out = new ArrayBuffer(this.len);
    memory.copy(changetype<usize>(out), changetype<usize>(this.buf), <usize>this.len);
    return out;
  }
}

/** A request header parsed from a frame (positions relative to the frame's size prefix). */
export class RequestHeader {
  key: i16 = 0;
  version: i16 = 0;
  correlationId: i32 = 0;
  /** Client id bytes at [clientIdAt, clientIdAt+clientIdLen); length -1 = null. */
  clientIdAt: i32 = 0;
  clientIdLen: i32 = -1;
  /** Where the body starts. */
  bodyAt: i32 = 0;
  known: bool = false;
}

export const HDR_OK: i32 = 0;
export const HDR_NEED_MORE: i32 = 1;
export const HDR_BAD: i32 = 2;

/**
 * Parses a request header from [p, p+avail) of a frame whose size prefix
 * (already read: `size`) is at p. HDR_NEED_MORE: not all of the header is
 * here yet; HDR_BAD: the header does not fit inside the frame.
 */
export function parseRequestHeader(p: usize, size: i32, avail: i32, h: RequestHeader): i32 {
  const end = 4 + size; // the frame's end, relative to p
  const have = avail < end ? avail : end;
  if (size < 8) return HDR_BAD;
  if (have < 12) return HDR_NEED_MORE;
  h.key = be16(p + 4);
  h.version = be16(p + 6);
  h.correlationId = be32(p + 8);
  h.known = isKnown(h.key, h.version);
  // unknown keys/versions: every header since v1 carries the client id, so read it as v1
  const hv = h.known ? requestHeaderVersion(h.key, h.version) : 1;
  let at = 12;
  h.clientIdLen = -1;
  h.clientIdAt = at;
  if (hv >= 1) {
    if (have < at + 2) return end < at + 2 ? HDR_BAD : HDR_NEED_MORE;
    const n = <i32>be16(p + <usize>at);
    at += 2;
    if (n < -1) return HDR_BAD;
    if (n > 0) {
      if (end < at + n) return HDR_BAD;
      if (have < at + n) return HDR_NEED_MORE;
    }
    h.clientIdAt = at;
    h.clientIdLen = n;
    if (n > 0) at += n;
  }
  if (hv >= 2) {
    // tagged fields: count, then (tag, size, data) each
    const r = skipTagsAt(p, at, have, end);
    if (r < 0) return r == -1 ? HDR_NEED_MORE : HDR_BAD;
    at = r;
  }
  h.bodyAt = at;
  return HDR_OK;
}

/**
 * Skips a tagged-field section starting at `at`; returns where it ends, -1
 * when more bytes are needed (within `have`), -2 when it does not fit the frame (`end`).
 */
export function skipTagsAt(p: usize, at: i32, have: i32, end: i32): i32 {
  const n = readUvarintAt(p, at, have, end);
  if (n < 0) return <i32>n;
  at = varintEnd;
  for (let i: i64 = 0; i < n; i++) {
    const tag = readUvarintAt(p, at, have, end);
    if (tag < 0) return <i32>tag;
    at = varintEnd;
    const len = readUvarintAt(p, at, have, end);
    if (len < 0) return <i32>len;
    at = varintEnd;
    if (<i64>at + len > <i64>end) return -2;
    if (<i64>at + len > <i64>have) return -1;
    at += <i32>len;
  }
  return at;
}

let varintEnd: i32 = 0;

/** An unsigned varint at `at` (its end in varintEnd), or -1 (need more) / -2 (malformed or past the frame). */
function readUvarintAt(p: usize, at: i32, have: i32, end: i32): i64 {
  let v: u64 = 0;
  for (let shift: u64 = 0; shift < 35; shift += 7) {
    if (at >= end) return -2;
    if (at >= have) return -1;
    const b = <u64>load<u8>(p + <usize>at);
    at++;
    v |= (b & 0x7f) << shift;
    if ((b & 0x80) == 0) { varintEnd = at; return <i64>(v & 0xffffffff); }
  }
  return -2;
}

/** Where a response body starts after the correlation id (and tags for header v1); -1 need more, -2 bad. */
export function responseBodyAt(p: usize, size: i32, avail: i32, headerVersion: i32): i32 {
  const end = 4 + size;
  const have = avail < end ? avail : end;
  if (size < 4) return -2;
  if (have < 8) return -1;
  if (headerVersion == 0) return 8;
  return skipTagsAt(p, 8, have, end);
}
