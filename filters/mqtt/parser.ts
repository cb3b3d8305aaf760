// MQTT 3.1 / 3.1.1 / 5.0 control packets at the frame level: fixed header,
// Remaining Length and the variable-header fields a proxy needs. Pure: no ABI
// calls, no allocation on the per-packet path. Every read goes through a raw
// pointer (load<u8>) and is checked against the end of what is available, so
// bad input yields an error code, never a trap or an out-of-bounds read.
//
// Strings and payloads are not copied: a Packet records (pointer, length)
// pairs into the caller's buffer, valid while that buffer is.

// ---------------------------------------------------------------- packet types

export const CONNECT: u8 = 1;
export const CONNACK: u8 = 2;
export const PUBLISH: u8 = 3;
export const PUBACK: u8 = 4;
export const PUBREC: u8 = 5;
export const PUBREL: u8 = 6;
export const PUBCOMP: u8 = 7;
export const SUBSCRIBE: u8 = 8;
export const SUBACK: u8 = 9;
export const UNSUBSCRIBE: u8 = 10;
export const UNSUBACK: u8 = 11;
export const PINGREQ: u8 = 12;
export const PINGRESP: u8 = 13;
export const DISCONNECT: u8 = 14;
export const AUTH: u8 = 15;

const TYPE_NAMES: string[] = [
  "reserved", "connect", "connack", "publish", "puback", "pubrec", "pubrel", "pubcomp",
  "subscribe", "suback", "unsubscribe", "unsuback", "pingreq", "pingresp", "disconnect", "auth",
];

export function typeName(type: u8): string {
  return TYPE_NAMES[type & 15];
}

/** Protocol versions (the CONNECT protocol level without the bridge bit). */
export const V31: u8 = 3;
export const V311: u8 = 4;
export const V5: u8 = 5;

// ---------------------------------------------------------------- error codes

/** Why a packet is malformed (protocol violation). 0 = no error. */
export enum Malformed {
  None = 0,
  RemainingLength,    // 5th length byte, or length past the protocol maximum
  NonMinimalLength,   // MQTT 5.0: variable byte integer not in its shortest form
  PacketType,         // type 0, or AUTH before 5.0
  Flags,              // reserved fixed-header flag bits
  Direction,          // packet type not allowed in this direction
  FirstNotConnect,
  SecondConnect,
  Protocol,           // protocol name / level
  ConnectFlags,
  Truncated,          // a field runs past the end of the packet
  TrailingBytes,      // bytes left in a packet after its last field
  Utf8,               // ill-formed UTF-8 or U+0000 in a string
  Property,           // unknown / duplicate / misplaced property or bad value
  Qos,                // QoS 3
  PacketId,           // packet identifier 0 where one is required
  Topic,              // empty topic, or bad topic filter wildcards
  WildcardInTopic,    // + or # in a PUBLISH topic or will topic
  TopicAlias,         // topic alias 0, unknown alias, or alias without topic
  NoTopicFilters,     // SUBSCRIBE / UNSUBSCRIBE without a filter
  SubscriptionOptions,
  TruncatedStream,    // the stream ended inside a packet
  COUNT,
}

const MALFORMED_NAMES: string[] = [
  "none", "remaining_length", "non_minimal_length", "packet_type", "flags", "direction",
  "first_not_connect", "second_connect", "protocol", "connect_flags", "truncated", "trailing_bytes",
  "utf8", "property", "qos", "packet_id", "topic", "wildcard_in_topic", "topic_alias",
  "no_topic_filters", "subscription_options", "truncated_stream",
];

export function malformedName(reason: i32): string {
  return reason >= 0 && reason < MALFORMED_NAMES.length ? MALFORMED_NAMES[reason] : "unknown";
}

/** Largest Remaining Length (four 7-bit groups). */
export const MAX_REMAINING: u32 = 268435455;

// ---------------------------------------------------------------- low-level readers

/** Result of readVarint: value, or NEED_MORE / an error. */
export const NEED_MORE: i64 = -1;
const VARINT_TOO_LONG: i64 = -2;

/** Length in bytes of the last varint read by readVarint. */
let varintLength: u32 = 0;
/** Whether the last varint read was not in its shortest form. */
let varintNonMinimal: bool = false;

/**
 * Reads a variable byte integer at ptr (at most `avail` bytes readable).
 * Returns the value, NEED_MORE when the bytes end inside it, or
 * VARINT_TOO_LONG for a fifth byte.
 */
// @ts-ignore: decorator
@inline export function readVarint(ptr: usize, avail: usize): i64 {
  let value: u32 = 0;
  let shift: u32 = 0;
  for (let i: usize = 0; i < 4; i++) {
    if (i >= avail) return NEED_MORE;
    const b = <u32>load<u8>(ptr + i);
    value |= (b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      varintLength = <u32>i + 1;
      // Shortest form: a multi-byte encoding never ends in a zero group.
      varintNonMinimal = i > 0 && b == 0;
      return <i64>value;
    }
    shift += 7;
  }
  return VARINT_TOO_LONG;
}

export function lastVarintLength(): u32 { return varintLength; }
export function lastVarintNonMinimal(): bool { return varintNonMinimal; }

@inline export function u16At(ptr: usize): u32 {
  return (<u32>load<u8>(ptr) << 8) | <u32>load<u8>(ptr + 1);
}

@inline function u32At(ptr: usize): u32 {
  return bswap<u32>(load<u32>(ptr));
}

/**
 * Well-formed UTF-8 without U+0000 (MQTT [MQTT-1.5.4-1], [MQTT-1.5.4-2]):
 * no overlong forms, no surrogates, nothing above U+10FFFF.
 */
export function validUtf8(ptr: usize, len: usize): bool {
  const end = ptr + len;
  let p = ptr;
  while (p < end) {
    // ASCII fast path, 4 bytes at a time
    while (p + 4 <= end) {
      const w = load<u32>(p);
      if ((w & 0x80808080) != 0) break;
      // a zero byte in w?
      if (((w - 0x01010101) & ~w & 0x80808080) != 0) return false;
      p += 4;
    }
    if (p >= end) break;
    const b0 = <u32>load<u8>(p);
    if (b0 < 0x80) {
      if (b0 == 0) return false;
      p++;
      continue;
    }
    if (b0 < 0xc2) return false; // continuation byte, or overlong 2-byte lead
    if (b0 < 0xe0) {
      if (p + 2 > end) return false;
      if ((<u32>load<u8>(p + 1) & 0xc0) != 0x80) return false;
      p += 2;
      continue;
    }
    if (b0 < 0xf0) {
      if (p + 3 > end) return false;
      const b1 = <u32>load<u8>(p + 1);
      const b2 = <u32>load<u8>(p + 2);
      if ((b1 & 0xc0) != 0x80 || (b2 & 0xc0) != 0x80) return false;
      if (b0 == 0xe0 && b1 < 0xa0) return false; // overlong
      if (b0 == 0xed && b1 >= 0xa0) return false; // U+D800..U+DFFF
      p += 3;
      continue;
    }
    if (b0 < 0xf5) {
      if (p + 4 > end) return false;
      const b1 = <u32>load<u8>(p + 1);
      if ((b1 & 0xc0) != 0x80 || (<u32>load<u8>(p + 2) & 0xc0) != 0x80 || (<u32>load<u8>(p + 3) & 0xc0) != 0x80) return false;
      if (b0 == 0xf0 && b1 < 0x90) return false; // overlong
      if (b0 == 0xf4 && b1 >= 0x90) return false; // > U+10FFFF
      p += 4;
      continue;
    }
    return false;
  }
  return true;
}

const ONES: u64 = 0x0101010101010101;
const HIGHS: u64 = 0x8080808080808080;

/** High bit set in each byte of `w` that is zero, '+', '#' or non-ASCII (exact per word, not per byte). */
// @ts-ignore: decorator
@inline function oddBytes(w: u64): u64 {
  // '#' (0x23) and '+' (0x2b) differ only in bit 3: x | 8 == 0x2b matches both
  const wild = (w | 0x0808080808080808) ^ 0x2b2b2b2b2b2b2b2b;
  return (w | ((w - ONES) & ~w) | ((wild - ONES) & ~wild)) & HIGHS;
}

/** One lane set for each byte of `v` that is zero, '+', '#' or non-ASCII. */
// @ts-ignore: decorator
@inline export function oddLanes(v: v128, one: v128, eight: v128, plus: v128): v128 {
  // signed: 0x00 and 0x80..0xff are below 1; '#' (0x23) and '+' (0x2b)
  // differ only in bit 3, so x | 8 == 0x2b matches both. The splats come
  // from the caller: V8 builds a vector constant anew at each use, a loop
  // can keep them in registers.
  return v128.or(i8x16.lt_s(v, one), i8x16.eq(v128.or(v, eight), plus));
}

/** plainTopic for a topic of more than 16 bytes, sixteen bytes per step. */
export function plainLongTopic(ptr: usize, len: usize): bool {
  const one = i8x16.splat(1);
  const eight = i8x16.splat(8);
  const plus = i8x16.splat(0x2b);
  const last = ptr + len - 16;
  let odd = oddLanes(v128.load(last), one, eight, plus); // the tail, overlapping the chunks before it
  for (let p = ptr; p < last; p += 16) odd = v128.or(odd, oddLanes(v128.load(p), one, eight, plus));
  return !v128.any_true(odd);
}

/**
 * Whether a topic name is plain ASCII without U+0000, '+' and '#', eight
 * bytes per step. A plain topic is a valid one; for any other the exact
 * verdict comes from checkTopicName.
 */
// @ts-ignore: decorator
@inline export function plainTopic(ptr: usize, len: usize): bool {
  if (len < 8) {
    for (let i: usize = 0; i < len; i++) {
      const c = load<u8>(ptr + i);
      if (c == 0 || c == 0x2b || c == 0x23 || c >= 0x80) return false;
    }
    return true;
  }
  const last = ptr + len - 8;
  let odd: u64 = oddBytes(load<u64>(last)); // the tail, overlapping the words before it
  for (let p = ptr; p < last; p += 8) odd |= oddBytes(load<u64>(p));
  return odd == 0;
}

/** A topic name: well-formed UTF-8 without U+0000 and without the wildcards `+` / `#`. */
export function checkTopicName(ptr: usize, len: usize): i32 {
  if (len > 16 ? plainLongTopic(ptr, len) : plainTopic(ptr, len)) return Malformed.None;
  if (containsByte(ptr, len, 0x2b) || containsByte(ptr, len, 0x23)) return Malformed.WildcardInTopic;
  if (!validUtf8(ptr, len)) return Malformed.Utf8;
  return Malformed.None;
}

/** Whether bytes [ptr, ptr+len) contain `byte`. */
export function containsByte(ptr: usize, len: usize, byte: u8): bool {
  for (let i: usize = 0; i < len; i++) if (load<u8>(ptr + i) == byte) return true;
  return false;
}

// ---------------------------------------------------------------- the packet

/** The fields of one packet. Reused: reset() before each parse. */
export class Packet {
  // fixed header
  type: u8 = 0;
  flags: u8 = 0;
  /** Bytes of the fixed header (1 + length bytes). */
  fixedLen: u32 = 0;
  remaining: u32 = 0;
  /** Remaining Length was not in its shortest form (malformed in 5.0). */
  nonMinimal: bool = false;

  // CONNECT
  protocolPtr: usize = 0;
  protocolLen: u32 = 0;
  protocolLevel: u8 = 0;
  /** The level had the 0x80 bridge bit (mosquitto bridges). */
  bridge: bool = false;
  connectFlags: u8 = 0;
  keepAlive: u32 = 0;
  clientIdPtr: usize = 0;
  clientIdLen: u32 = 0;
  hasUsername: bool = false;
  usernamePtr: usize = 0;
  usernameLen: u32 = 0;
  hasPassword: bool = false;
  cleanStart: bool = false;
  willFlag: bool = false;
  willQos: u8 = 0;
  willRetain: bool = false;
  willTopicPtr: usize = 0;
  willTopicLen: u32 = 0;
  willPayloadLen: u32 = 0;

  // 5.0 properties of interest (-1 = absent)
  sessionExpiry: i64 = -1;
  maxPacketSize: i64 = -1;
  receiveMaximum: i32 = -1;
  topicAliasMaximum: i32 = -1;
  topicAlias: i32 = -1;
  subscriptionId: i64 = -1;
  assignedClientIdPtr: usize = 0;
  assignedClientIdLen: i32 = -1;
  userProperties: u32 = 0;
  propertiesLen: i32 = -1;

  // CONNACK
  sessionPresent: bool = false;
  /** CONNACK return code / 5.0 reason code of acks, DISCONNECT, AUTH (-1 = absent). */
  reasonCode: i32 = -1;

  // PUBLISH
  qos: u8 = 0;
  retain: bool = false;
  dup: bool = false;
  topicPtr: usize = 0;
  topicLen: u32 = 0;
  /** Offset of the payload from the start of the packet. */
  payloadOffset: u32 = 0;
  payloadLen: u32 = 0;

  /** Packet identifier (-1 = none). */
  packetId: i32 = -1;

  // SUBSCRIBE / UNSUBSCRIBE: filters; SUBACK / UNSUBACK (5.0): reason codes
  filterPtrs: Array<usize> = new Array<usize>();
  filterLens: Array<u32> = new Array<u32>();
  /** SUBSCRIBE: offset of each filter's length prefix from the packet start (for rewriting). */
  filterStarts: Array<u32> = new Array<u32>();
  filterOptions: Array<u8> = new Array<u8>();
  /** SUBACK / UNSUBACK codes: pointer and count. */
  codesPtr: usize = 0;
  codesLen: u32 = 0;
  /** Offset of the first topic filter (SUBSCRIBE) / code (SUBACK) from the packet start. */
  listOffset: u32 = 0;

  @inline total(): u32 { return this.fixedLen + this.remaining; }

  /** Clears what every packet type may report (the type-specific fields are set by their parsers). */
  reset(): void {
    this.sessionExpiry = -1; this.maxPacketSize = -1; this.receiveMaximum = -1; this.topicAliasMaximum = -1;
    this.topicAlias = -1; this.subscriptionId = -1; this.assignedClientIdLen = -1;
    this.userProperties = 0; this.propertiesLen = -1;
    this.reasonCode = -1; this.packetId = -1; this.codesLen = 0;
  }

  resetConnect(): void {
    this.protocolPtr = 0; this.protocolLen = 0; this.protocolLevel = 0; this.bridge = false;
    this.connectFlags = 0; this.keepAlive = 0; this.clientIdPtr = 0; this.clientIdLen = 0;
    this.hasUsername = false; this.usernamePtr = 0; this.usernameLen = 0; this.hasPassword = false;
    this.cleanStart = false; this.willFlag = false; this.willQos = 0; this.willRetain = false;
    this.willTopicPtr = 0; this.willTopicLen = 0; this.willPayloadLen = 0;
  }

  resetLists(): void {
    this.filterPtrs.length = 0; this.filterLens.length = 0; this.filterStarts.length = 0; this.filterOptions.length = 0;
  }
}

// ---------------------------------------------------------------- fixed header

/** parseFixedHeader results besides a Malformed code: */
export const FH_OK: i32 = 0;
export const FH_NEED_MORE: i32 = -1;

/**
 * Reads the fixed header at ptr. Returns FH_OK (pkt.type/flags/fixedLen/
 * remaining set), FH_NEED_MORE, or a Malformed code. Flags are checked
 * against the type; the 5.0 shortest-form rule is left to the caller (it
 * knows the version), through pkt.nonMinimal.
 */
export function parseFixedHeader(ptr: usize, avail: usize, version: u8, pkt: Packet): i32 {
  if (avail < 2) return FH_NEED_MORE;
  const b0 = load<u8>(ptr);
  const type = b0 >> 4;
  const flags = b0 & 15;
  const len = readVarint(ptr + 1, avail - 1);
  if (len == VARINT_TOO_LONG) return Malformed.RemainingLength;
  if (len == NEED_MORE) return FH_NEED_MORE;
  pkt.type = type;
  pkt.flags = flags;
  pkt.fixedLen = 1 + varintLength;
  pkt.remaining = <u32>len;
  pkt.nonMinimal = varintNonMinimal;
  if (type == 0) return Malformed.PacketType;
  if (type == AUTH && version != 0 && version < V5) return Malformed.PacketType;
  if (type == PUBLISH) {
    if ((flags & 6) == 6) return Malformed.Qos;
  } else if (type == PUBREL || type == SUBSCRIBE || type == UNSUBSCRIBE) {
    // 3.1 clients may set the DUP bit on these
    if (flags != 2 && !(version == V31 && flags == 10)) return Malformed.Flags;
  } else if (flags != 0) {
    return Malformed.Flags;
  }
  return FH_OK;
}

/**
 * How many bytes from the packet start are needed to parse the fields of a
 * packet whose fixed header is in pkt: for PUBLISH the header up to the
 * payload (found step by step, so the result may grow as more bytes are
 * available), for every other type the whole packet. Returns a negative
 * Malformed code when a length runs past the packet.
 */
export function headerNeed(ptr: usize, avail: usize, version: u8, pkt: Packet): i64 {
  const total = <i64>pkt.fixedLen + <i64>pkt.remaining;
  if (pkt.type != PUBLISH) return total;
  let need: i64 = <i64>pkt.fixedLen + 2;
  if (need > total) return -<i64>Malformed.Truncated;
  if (<i64>avail < need) return need;
  const topicLen = u16At(ptr + pkt.fixedLen);
  need += <i64>topicLen;
  if (((pkt.flags >> 1) & 3) != 0) need += 2;
  if (need > total) return -<i64>Malformed.Truncated;
  if (version != V5) return need;
  if (<i64>avail < need + 1) return need + 1;
  const props = readVarint(ptr + <usize>need, avail - <usize>need);
  if (props == VARINT_TOO_LONG) return -<i64>Malformed.Property;
  if (props == NEED_MORE) return <i64>avail + 1;
  need += <i64>varintLength + props;
  if (need > total) return -<i64>Malformed.Truncated;
  return need;
}

// ---------------------------------------------------------------- properties

// Bit per packet type a property may appear in; bit 0 = will properties.
const W: u32 = 1 << 0;
const PT_CONNECT: u32 = 1 << 1;
const PT_CONNACK: u32 = 1 << 2;
const PT_PUBLISH: u32 = 1 << 3;
const PT_ACKS: u32 = (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7);
const PT_SUBSCRIBE: u32 = 1 << 8;
const PT_SUBACK: u32 = 1 << 9;
const PT_UNSUBSCRIBE: u32 = 1 << 10;
const PT_UNSUBACK: u32 = 1 << 11;
const PT_DISCONNECT: u32 = 1 << 14;
const PT_AUTH: u32 = 1 << 15;

// Value kinds
const K_BYTE: u8 = 1;
const K_U16: u8 = 2;
const K_U32: u8 = 3;
const K_VARINT: u8 = 4;
const K_STRING: u8 = 5;
const K_BINARY: u8 = 6;
const K_PAIR: u8 = 7;

const PROP_KIND = memory.data<u8>([
  // 0x00..0x0f
  0, K_BYTE, K_U32, K_STRING, 0, 0, 0, 0, K_STRING, K_BINARY, 0, K_VARINT, 0, 0, 0, 0,
  // 0x10..0x1f
  0, K_U32, K_STRING, K_U16, 0, K_STRING, K_BINARY, K_BYTE, K_U32, K_BYTE, K_STRING, 0, K_STRING, 0, 0, K_STRING,
  // 0x20..0x2a
  0, K_U16, K_U16, K_U16, K_BYTE, K_BYTE, K_PAIR, K_U32, K_BYTE, K_BYTE, K_BYTE,
]);

const PROP_WHERE = memory.data<u32>([
  0, W | PT_PUBLISH, W | PT_PUBLISH, W | PT_PUBLISH, 0, 0, 0, 0, W | PT_PUBLISH, W | PT_PUBLISH, 0, PT_PUBLISH | PT_SUBSCRIBE, 0, 0, 0, 0,
  0, PT_CONNECT | PT_CONNACK | PT_DISCONNECT, PT_CONNACK, PT_CONNACK, 0, PT_CONNECT | PT_CONNACK | PT_AUTH, PT_CONNECT | PT_CONNACK | PT_AUTH,
  PT_CONNECT, W, PT_CONNECT, PT_CONNACK, 0, PT_CONNACK | PT_DISCONNECT, 0, 0,
  PT_CONNACK | PT_ACKS | PT_SUBACK | PT_UNSUBACK | PT_DISCONNECT | PT_AUTH,
  0, PT_CONNECT | PT_CONNACK, PT_CONNECT | PT_CONNACK, PT_PUBLISH, PT_CONNACK, PT_CONNACK,
  W | PT_CONNECT | PT_CONNACK | PT_PUBLISH | PT_ACKS | PT_SUBSCRIBE | PT_SUBACK | PT_UNSUBSCRIBE | PT_UNSUBACK | PT_DISCONNECT | PT_AUTH,
  PT_CONNECT | PT_CONNACK, PT_CONNACK, PT_CONNACK, PT_CONNACK,
]);

const MAX_PROP_ID: u32 = 0x2a;

/**
 * Parses a 5.0 property block at p (length varint first) that must end by
 * `end`; `where` is the packet type (0 = will properties). Returns the
 * position after the block, or a negative Malformed code.
 */
export function parseProperties(p: usize, end: usize, where: u8, pkt: Packet, isWill: bool): i64 {
  if (p >= end) return -<i64>Malformed.Truncated;
  const len = readVarint(p, end - p);
  if (len < 0) return -<i64>(len == NEED_MORE ? Malformed.Truncated : Malformed.Property);
  if (varintNonMinimal) return -<i64>Malformed.NonMinimalLength;
  p += varintLength;
  if (<u64>len > <u64>(end - p)) return -<i64>Malformed.Truncated;
  if (!isWill) pkt.propertiesLen = <i32>len;
  const stop = p + <usize>len;
  const whereBit: u32 = isWill ? W : (<u32>1 << where);
  let seen: u64 = 0;
  while (p < stop) {
    const id = readVarint(p, stop - p);
    if (id < 0 || varintNonMinimal) return -<i64>Malformed.Property;
    p += varintLength;
    if (id > <i64>MAX_PROP_ID) return -<i64>Malformed.Property;
    const kind = load<u8>(PROP_KIND + <usize>id);
    if (kind == 0 || (load<u32>(PROP_WHERE + (<usize>id << 2)) & whereBit) == 0) return -<i64>Malformed.Property;
    const bit: u64 = <u64>1 << <u64>id;
    // only User Property, and Subscription Identifier in PUBLISH, may repeat
    if ((seen & bit) != 0 && id != 0x26 && !(id == 0x0b && where == PUBLISH)) return -<i64>Malformed.Property;
    seen |= bit;
    let value: i64 = 0;
    const left = stop - p;
    if (kind == K_BYTE) {
      if (left < 1) return -<i64>Malformed.Property;
      value = <i64>load<u8>(p);
      p += 1;
      if (value > 1) return -<i64>Malformed.Property; // every byte property is 0 or 1
    } else if (kind == K_U16) {
      if (left < 2) return -<i64>Malformed.Property;
      value = <i64>u16At(p);
      p += 2;
    } else if (kind == K_U32) {
      if (left < 4) return -<i64>Malformed.Property;
      value = <i64>u32At(p);
      p += 4;
    } else if (kind == K_VARINT) {
      value = readVarint(p, left);
      if (value < 0 || varintNonMinimal) return -<i64>Malformed.Property;
      p += varintLength;
    } else {
      // string, binary, or string pair
      const strings = kind == K_PAIR ? 2 : 1;
      for (let s = 0; s < strings; s++) {
        if (stop - p < 2) return -<i64>Malformed.Property;
        const n = <usize>u16At(p);
        p += 2;
        if (n > stop - p) return -<i64>Malformed.Property;
        if (kind != K_BINARY && !validUtf8(p, n)) return -<i64>Malformed.Utf8;
        if (id == 0x12) { pkt.assignedClientIdPtr = p; pkt.assignedClientIdLen = <i32>n; }
        p += n;
      }
    }
    if (isWill) continue;
    if (id == 0x11) pkt.sessionExpiry = value;
    else if (id == 0x27) { if (value == 0) return -<i64>Malformed.Property; pkt.maxPacketSize = value; }
    else if (id == 0x21) { if (value == 0) return -<i64>Malformed.Property; pkt.receiveMaximum = <i32>value; }
    else if (id == 0x22) pkt.topicAliasMaximum = <i32>value;
    else if (id == 0x23) { if (value == 0) return -<i64>Malformed.TopicAlias; pkt.topicAlias = <i32>value; }
    else if (id == 0x0b) { if (value == 0) return -<i64>Malformed.Property; pkt.subscriptionId = value; }
    else if (id == 0x26) pkt.userProperties++;
  }
  return <i64>p;
}

// ---------------------------------------------------------------- topics

/**
 * Checks a topic filter: non-empty, `#` only as the whole last level, `+`
 * only as a whole level; 5.0 shared subscriptions `$share/NAME/filter` need a
 * non-empty wildcard-free NAME and a filter. Returns a Malformed code.
 */
export function checkTopicFilter(ptr: usize, len: usize, version: u8): i32 {
  if (len == 0) return Malformed.Topic;
  let levelStart: usize = 0;
  for (let i: usize = 0; i < len; i++) {
    const c = load<u8>(ptr + i);
    if (c == 0x23 /* # */) {
      if (i != levelStart || i + 1 != len) return Malformed.Topic;
    } else if (c == 0x2b /* + */) {
      if (i != levelStart || (i + 1 < len && load<u8>(ptr + i + 1) != 0x2f)) return Malformed.Topic;
    } else if (c == 0x2f /* / */) {
      levelStart = i + 1;
    }
  }
  if (version == V5 && isShared(ptr, len)) {
    // $share/NAME/filter
    let slash: isize = -1;
    for (let i: usize = 7; i < len; i++) {
      if (load<u8>(ptr + i) == 0x2f) { slash = <isize>i; break; }
    }
    if (slash <= 7 || <usize>slash + 1 >= len) return Malformed.Topic;
    for (let i: usize = 7; i < <usize>slash; i++) {
      const c = load<u8>(ptr + i);
      if (c == 0x2b || c == 0x23) return Malformed.Topic;
    }
  }
  return Malformed.None;
}

/** Whether a filter starts with "$share/". */
export function isShared(ptr: usize, len: usize): bool {
  // "$sha" "re/" little endian
  return len >= 7 && load<u32>(ptr) == 0x61687324 && load<u16>(ptr + 4) == 0x6572 && load<u8>(ptr + 6) == 0x2f;
}

// ---------------------------------------------------------------- packet bodies

/**
 * Parses the fields of a packet whose fixed header is in pkt and whose
 * bytes from ptr are available up to `avail` (>= headerNeed). `version` is
 * the connection's protocol version (0 before CONNECT). Returns a Malformed
 * code (None on success).
 */
export function parsePacket(ptr: usize, avail: usize, version: u8, pkt: Packet): i32 {
  pkt.reset();
  const start = ptr;
  const end = ptr + <usize>pkt.total(); // only fully available for non-PUBLISH
  let p = ptr + <usize>pkt.fixedLen;
  const t = pkt.type;
  if (t == CONNECT) {
    pkt.resetConnect();
    return parseConnect(p, end, pkt);
  }
  if (version == V5 && pkt.nonMinimal) return Malformed.NonMinimalLength;
  const v5 = version == V5;

  if (t == PUBLISH) {
    pkt.qos = (pkt.flags >> 1) & 3;
    pkt.retain = (pkt.flags & 1) != 0;
    pkt.dup = (pkt.flags & 8) != 0;
    const topicLen = <usize>u16At(p);
    p += 2;
    pkt.topicPtr = p;
    pkt.topicLen = <u32>topicLen;
    const bad = checkTopicName(p, topicLen);
    if (bad != Malformed.None) return bad;
    p += topicLen;
    if (pkt.qos > 0) {
      pkt.packetId = <i32>u16At(p);
      if (pkt.packetId == 0) return Malformed.PacketId;
      p += 2;
    }
    if (v5) {
      const r = parseProperties(p, end, PUBLISH, pkt, false);
      if (r < 0) return <i32>-r;
      p = <usize>r;
    }
    if (topicLen == 0 && pkt.topicAlias < 0) return Malformed.Topic;
    pkt.payloadOffset = <u32>(p - start);
    pkt.payloadLen = pkt.total() - pkt.payloadOffset;
    return Malformed.None;
  }

  if (t == CONNACK) {
    if (end - p < 2) return Malformed.Truncated;
    const ackFlags = load<u8>(p);
    if (version >= V311 && (ackFlags & 0xfe) != 0) return Malformed.Flags;
    pkt.sessionPresent = (ackFlags & 1) != 0;
    pkt.reasonCode = <i32>load<u8>(p + 1);
    p += 2;
    if (v5 && p < end) {
      const r = parseProperties(p, end, CONNACK, pkt, false);
      if (r < 0) return <i32>-r;
      p = <usize>r;
    }
    return p == end ? Malformed.None : Malformed.TrailingBytes;
  }

  if (t == PUBACK || t == PUBREC || t == PUBREL || t == PUBCOMP) {
    if (end - p < 2) return Malformed.Truncated;
    pkt.packetId = <i32>u16At(p);
    if (pkt.packetId == 0) return Malformed.PacketId;
    p += 2;
    if (v5 && p < end) {
      pkt.reasonCode = <i32>load<u8>(p);
      p += 1;
      if (p < end) {
        const r = parseProperties(p, end, t, pkt, false);
        if (r < 0) return <i32>-r;
        p = <usize>r;
      }
    }
    return p == end ? Malformed.None : Malformed.TrailingBytes;
  }

  if (t == SUBSCRIBE || t == UNSUBSCRIBE) {
    pkt.resetLists();
    if (end - p < 2) return Malformed.Truncated;
    pkt.packetId = <i32>u16At(p);
    if (pkt.packetId == 0) return Malformed.PacketId;
    p += 2;
    if (v5) {
      const r = parseProperties(p, end, t, pkt, false);
      if (r < 0) return <i32>-r;
      p = <usize>r;
    }
    pkt.listOffset = <u32>(p - start);
    while (p < end) {
      if (end - p < 2) return Malformed.Truncated;
      const n = <usize>u16At(p);
      const at = p;
      p += 2;
      if (n > end - p) return Malformed.Truncated;
      if (!validUtf8(p, n)) return Malformed.Utf8;
      const bad = checkTopicFilter(p, n, version);
      if (bad != Malformed.None) return bad;
      pkt.filterStarts.push(<u32>(at - start));
      pkt.filterPtrs.push(p);
      pkt.filterLens.push(<u32>n);
      p += n;
      if (t == SUBSCRIBE) {
        if (p >= end) return Malformed.Truncated;
        const o = load<u8>(p);
        p += 1;
        if ((o & 3) == 3) return Malformed.Qos;
        if (v5) {
          if ((o & 0xc0) != 0 || ((o >> 4) & 3) == 3) return Malformed.SubscriptionOptions;
          if ((o & 4) != 0 && isShared(pkt.filterPtrs[pkt.filterPtrs.length - 1], n)) return Malformed.SubscriptionOptions;
        } else if ((o & 0xfc) != 0) {
          return Malformed.SubscriptionOptions;
        }
        pkt.filterOptions.push(o);
      } else {
        pkt.filterOptions.push(0);
      }
    }
    if (pkt.filterPtrs.length == 0) return Malformed.NoTopicFilters;
    return Malformed.None;
  }

  if (t == SUBACK || t == UNSUBACK) {
    if (end - p < 2) return Malformed.Truncated;
    pkt.packetId = <i32>u16At(p);
    if (pkt.packetId == 0) return Malformed.PacketId;
    p += 2;
    if (t == UNSUBACK && !v5) return p == end ? Malformed.None : Malformed.TrailingBytes;
    if (v5) {
      const r = parseProperties(p, end, t, pkt, false);
      if (r < 0) return <i32>-r;
      p = <usize>r;
    }
    pkt.listOffset = <u32>(p - start);
    pkt.codesPtr = p;
    pkt.codesLen = <u32>(end - p);
    if (pkt.codesLen == 0) return Malformed.Truncated;
    return Malformed.None;
  }

  if (t == PINGREQ || t == PINGRESP) {
    return p == end ? Malformed.None : Malformed.TrailingBytes;
  }

  if (t == DISCONNECT || t == AUTH) {
    if (!v5) return p == end ? Malformed.None : Malformed.TrailingBytes;
    if (p < end) {
      pkt.reasonCode = <i32>load<u8>(p);
      p += 1;
      if (p < end) {
        const r = parseProperties(p, end, t, pkt, false);
        if (r < 0) return <i32>-r;
        p = <usize>r;
      }
    } else {
      pkt.reasonCode = 0;
    }
    return p == end ? Malformed.None : Malformed.TrailingBytes;
  }
  return Malformed.PacketType;
}

/** Reads a length-prefixed string field; returns its length or -1 (truncated). */
@inline function fieldLength(p: usize, end: usize): i64 {
  if (end - p < 2) return -1;
  const n = <i64>u16At(p);
  if (<u64>n > <u64>(end - p - 2)) return -1;
  return n;
}

function parseConnect(p: usize, end: usize, pkt: Packet): i32 {
  // protocol name
  let n = fieldLength(p, end);
  if (n < 0) return Malformed.Truncated;
  pkt.protocolPtr = p + 2;
  pkt.protocolLen = <u32>n;
  p += 2 + <usize>n;
  if (end - p < 4) return Malformed.Truncated;
  const rawLevel = load<u8>(p);
  const level = rawLevel & 0x7f;
  pkt.bridge = (rawLevel & 0x80) != 0;
  pkt.protocolLevel = level;
  const name = pkt.protocolPtr;
  // "MQTT" = 4D 51 54 54, "MQIsdp" = 4D 51 49 73 64 70
  const isMqtt = n == 4 && load<u32>(name) == 0x5454514d;
  const isMqisdp = n == 6 && load<u32>(name) == 0x7349514d && load<u16>(name + 4) == 0x7064;
  if (!((isMqtt && (level == V311 || level == V5)) || (isMqisdp && level == V31))) return Malformed.Protocol;
  if (pkt.bridge && level == V5) return Malformed.Protocol;
  if (level == V5 && pkt.nonMinimal) return Malformed.NonMinimalLength;
  const flags = load<u8>(p + 1);
  pkt.connectFlags = flags;
  pkt.keepAlive = u16At(p + 2);
  p += 4;
  if ((flags & 1) != 0) return Malformed.ConnectFlags;
  pkt.cleanStart = (flags & 2) != 0;
  pkt.willFlag = (flags & 4) != 0;
  pkt.willQos = (flags >> 3) & 3;
  pkt.willRetain = (flags & 0x20) != 0;
  pkt.hasPassword = (flags & 0x40) != 0;
  pkt.hasUsername = (flags & 0x80) != 0;
  if (pkt.willQos == 3) return Malformed.ConnectFlags;
  if (!pkt.willFlag && (pkt.willQos != 0 || pkt.willRetain)) return Malformed.ConnectFlags;
  if (level == V311 && pkt.hasPassword && !pkt.hasUsername) return Malformed.ConnectFlags;
  if (level == V5) {
    const r = parseProperties(p, end, CONNECT, pkt, false);
    if (r < 0) return <i32>-r;
    p = <usize>r;
  }
  // payload: client id
  n = fieldLength(p, end);
  if (n < 0) return Malformed.Truncated;
  pkt.clientIdPtr = p + 2;
  pkt.clientIdLen = <u32>n;
  p += 2 + <usize>n;
  if (!validUtf8(pkt.clientIdPtr, <usize>n)) return Malformed.Utf8;
  if (pkt.willFlag) {
    if (level == V5) {
      const r = parseProperties(p, end, CONNECT, pkt, true);
      if (r < 0) return <i32>-r;
      p = <usize>r;
    }
    n = fieldLength(p, end);
    if (n < 0) return Malformed.Truncated;
    pkt.willTopicPtr = p + 2;
    pkt.willTopicLen = <u32>n;
    p += 2 + <usize>n;
    if (!validUtf8(pkt.willTopicPtr, <usize>n)) return Malformed.Utf8;
    if (n == 0) return Malformed.Topic;
    if (containsByte(pkt.willTopicPtr, <usize>n, 0x2b) || containsByte(pkt.willTopicPtr, <usize>n, 0x23)) return Malformed.WildcardInTopic;
    n = fieldLength(p, end);
    if (n < 0) return Malformed.Truncated;
    pkt.willPayloadLen = <u32>n;
    p += 2 + <usize>n;
  }
  if (pkt.hasUsername) {
    n = fieldLength(p, end);
    if (n < 0) return Malformed.Truncated;
    pkt.usernamePtr = p + 2;
    pkt.usernameLen = <u32>n;
    p += 2 + <usize>n;
    if (!validUtf8(pkt.usernamePtr, <usize>n)) return Malformed.Utf8;
  }
  if (pkt.hasPassword) {
    n = fieldLength(p, end);
    if (n < 0) return Malformed.Truncated;
    p += 2 + <usize>n;
  }
  return p == end ? Malformed.None : Malformed.TrailingBytes;
}

/** Whether a packet type may be sent by the client (true) or the broker (false). */
export function allowedDirection(type: u8, fromClient: bool): bool {
  if (type == CONNECT || type == SUBSCRIBE || type == UNSUBSCRIBE || type == PINGREQ) return fromClient;
  if (type == CONNACK || type == SUBACK || type == UNSUBACK || type == PINGRESP) return !fromClient;
  return true;
}

/** Encodes a Remaining Length at ptr; returns the bytes written (1..4). */
export function writeVarint(ptr: usize, value: u32): u32 {
  let v = value;
  let i: u32 = 0;
  do {
    let b = <u8>(v & 0x7f);
    v >>= 7;
    if (v > 0) b |= 0x80;
    store<u8>(ptr + i, b);
    i++;
  } while (v > 0 && i < 4);
  return i;
}

export function varintSize(value: u32): u32 {
  return value < 128 ? 1 : value < 16384 ? 2 : value < 2097152 ? 3 : 4;
}
