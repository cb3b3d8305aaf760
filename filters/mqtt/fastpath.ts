// The PUBLISH fast path's scan: walks consecutive PUBLISHes whose only
// outcome is "forward" (plain ASCII topic, no 5.0 properties, within the
// limits, allowed by the ACL) and stops at the first packet that needs
// anything else, which the session's general path then handles. Pure over
// bytes: no ABI calls; it writes only its own static blocks (SCAN, the
// per-prefix tallies in stats.ts).
//
// Why a separate module of small functions: TurboFan has about a dozen
// registers for a loop. Inside the session's method the loop had some twenty
// live values and spilled the packet offsets it carries from one packet to
// the next. Here the loop-invariant settings live in a static block (one
// memory operand each, no register), and each combination of "levels
// limited", "topics counted" and "ACL" gets its own copy of the loop, so
// nothing in it tests a setting that cannot change.

import { aclAllows } from "./topics";

/**
 * PUBLISHes and payload bytes per topic_metrics prefix, summed in memory by
 * a per-packet loop and added to the counters once after it (tallyPublish,
 * flushTally). Memory rather than locals: the loop has more live values than
 * V8 has registers, and sums it kept in locals were spilled anyway, behind
 * a compare and a branch per packet.
 */
export const TALLY: usize = memory.data(64 * 16, 16); // topic_metrics has at most 64 prefixes

// @ts-ignore: decorator
@inline function tallyPublish(slot: i32, payloadBytes: i64): void {
  const at = TALLY + (<usize>slot << 4);
  store<i64>(at, load<i64>(at) + 1);
  store<i64>(at, load<i64>(at, 8) + payloadBytes, 8);
}

/** The scan's settings and its packet count (the first fields of `SCAN`). */
const SCAN: usize = memory.data(48, 16);
const MAX_PACKET: usize = 0;   // u32: largest packet (Remaining Length + header)
const MAX_TOPIC: usize = 4;    // u32: longest topic
const MAX_LEVELS: usize = 8;   // u32: most topic levels (checked only by the levels variants)
const PROPERTY_BYTES: usize = 12; // u32: 1 in MQTT 5.0 (an empty property length), else 0
const PREFIXES: usize = 16;    // usize: topic_metrics prefix table (see PREFIX_ENTRY)
const PREFIX_COUNT: usize = 20; // usize
const RULES: usize = 24;       // usize: publish ACL rules, flat (pointer, length, allow)
const RULE_WORDS: usize = 28;  // usize
const DEFAULT_ALLOW: usize = 32; // u32
const COUNT: usize = 40;       // u32: packets the last scan passed

/**
 * One topic_metrics prefix in the scan's table: its first 16 bytes zero-padded
 * (0), a mask of 0xff over those bytes (16), the length (32) and a pointer to
 * the whole prefix (36). The first 16 bytes are compared with one vector
 * compare against the topic's first 16, which the topic check loads anyway.
 */
export const PREFIX_ENTRY: usize = 48;

/** Fills a prefix table entry at `at` for the `len` bytes at `prefix`. */
export function writePrefixEntry(at: usize, prefix: usize, len: usize): void {
  memory.fill(at, 0, PREFIX_ENTRY);
  const head = min(len, 16);
  memory.copy(at, prefix, head);
  memory.fill(at + 16, 0xff, head);
  store<u32>(at, <u32>len, 32);
  store<usize>(at, prefix, 36);
}

/** Fast-path kind of each first byte: 0 not a fast PUBLISH, 1 QoS 0, 3 QoS 1 or 2 (a packet id follows). */
const PUBLISH_KIND: usize = memory.data(256);
for (let b: u32 = 0x30; b < 0x40; b++) {
  const qos = (b >> 1) & 3;
  if (qos != 3) store<u8>(PUBLISH_KIND + b, qos == 0 ? 1 : 3);
}

/** The settings of the next scan. `prefixes` as built by writePrefixEntry; `rules` as aclAllows takes them. */
export function setScan(
  maxPacket: u32, maxTopic: u32, maxLevels: u32, propertyBytes: u32,
  prefixes: usize, prefixCount: usize, rules: usize, ruleWords: usize, defaultAllow: bool,
): void {
  store<u32>(SCAN + MAX_PACKET, maxPacket);
  store<u32>(SCAN + MAX_TOPIC, maxTopic);
  store<u32>(SCAN + MAX_LEVELS, maxLevels);
  store<u32>(SCAN + PROPERTY_BYTES, propertyBytes);
  store<usize>(SCAN + PREFIXES, prefixes);
  store<usize>(SCAN + PREFIX_COUNT, prefixCount);
  store<usize>(SCAN + RULES, rules);
  store<usize>(SCAN + RULE_WORDS, ruleWords);
  store<u32>(SCAN + DEFAULT_ALLOW, defaultAllow ? 1 : 0);
}

/** How many packets the last scan passed. */
export function scannedPackets(): u32 {
  return load<u32>(SCAN + COUNT);
}

/**
 * Scans from `p` (a pointer into memory readable up to `end`) and returns
 * where it stopped: at a packet the general path must see, or at or past
 * `end` (past it when the last packet's payload goes on in later bytes).
 * Levels are checked when `levels`, PUBLISHes are tallied per topic_metrics
 * prefix when `topics`, the ACL is applied when `acl`.
 */
export function scanPublishes(p: usize, end: usize, levels: bool, topics: bool, acl: bool): usize {
  if (acl) return scanWithAcl(p, end, levels, topics);
  if (levels) return topics ? scanLevelsTopics(p, end) : scanLevels(p, end);
  return topics ? scanTopics(p, end) : scanPlain(p, end);
}

function scanPlain(p: usize, end: usize): usize { return scan(p, end, false, false, false); }
function scanTopics(p: usize, end: usize): usize { return scan(p, end, false, true, false); }
function scanLevels(p: usize, end: usize): usize { return scan(p, end, true, false, false); }
function scanLevelsTopics(p: usize, end: usize): usize { return scan(p, end, true, true, false); }
// With an ACL the rule walk costs more than the settings' tests: one copy.
function scanWithAcl(p: usize, end: usize, levels: bool, topics: bool): usize { return scan(p, end, levels, topics, true); }

const SLASH: u8 = 0x2f;

// @ts-ignore: decorator
@inline function scan(p: usize, end: usize, levels: bool, topics: bool, acl: bool): usize {
  let count: u32 = 0;
  // 21 bytes: a fixed header of up to 3 bytes, the topic length and 16 topic
  // bytes, so every load below up to the first vector is inside [p, end)
  while (p + 21 <= end) {
    const kind = <usize>load<u8>(PUBLISH_KIND + <usize>load<u8>(p));
    if (kind == 0) break;
    // Remaining Length in one or two bytes (longer or non-minimal: general path)
    let rl = <usize>load<u8>(p, 1);
    let topicAt = p + 2;
    if (rl >= 0x80) {
      const b2 = <usize>load<u8>(p, 2);
      if (b2 - 1 >= 0x7f) break; // 0 (non-minimal) or a third length byte
      rl = (rl & 0x7f) | (b2 << 7);
      topicAt = p + 3;
    }
    const next = topicAt + rl;
    if (next - p > <usize>load<u32>(SCAN + MAX_PACKET)) break;
    const topicLen = <usize>bswap<u16>(load<u16>(topicAt));
    const topic = topicAt + 2;
    const idBytes = kind & 2;
    const payload = topic + topicLen + idBytes + <usize>load<u32>(SCAN + PROPERTY_BYTES);
    // unsigned: topicLen 0 wraps above any limit
    if (payload > next || payload > end || topicLen - 1 >= <usize>load<u32>(SCAN + MAX_TOPIC)) break;
    if (idBytes != 0 && load<u16>(topic + topicLen) == 0) break;
    if (load<u32>(SCAN + PROPERTY_BYTES) != 0 && load<u8>(payload - 1) != 0) break;
    const head = v128.load(topic);
    if (topicLen <= 16) {
      const lanes = (<u32>1 << <u32>topicLen) - 1;
      if ((<u32>i8x16.bitmask(oddLanes(head)) & lanes) != 0) break;
      if (levels && <u32>popcnt(<u32>i8x16.bitmask(i8x16.eq(head, i8x16.splat(SLASH))) & lanes) >= load<u32>(SCAN + MAX_LEVELS)) break;
    } else {
      if (!plainLongTopic(topic, topicLen)) break;
      if (levels && slashesIn(topic, topicLen) >= load<u32>(SCAN + MAX_LEVELS)) break;
    }
    if (acl && !aclAllows(load<usize>(SCAN + RULES), load<usize>(SCAN + RULE_WORDS), load<u32>(SCAN + DEFAULT_ALLOW) != 0, topic, topicLen)) break;
    if (topics) {
      const slot = prefixSlot(load<usize>(SCAN + PREFIXES), load<usize>(SCAN + PREFIX_COUNT), head, topic, topicLen);
      if (slot >= 0) tallyPublish(slot, <i64>(next - payload));
    }
    count++;
    p = next;
  }
  store<u32>(SCAN + COUNT, count);
  return p;
}

/** One lane set for each byte of `v` that is zero, '+', '#' or non-ASCII. */
// @ts-ignore: decorator
@inline export function oddLanes(v: v128): v128 {
  // signed: 0x00 and 0x80..0xff are below 1; '#' (0x23) and '+' (0x2b)
  // differ only in bit 3, so x | 8 == 0x2b matches both
  return v128.or(i8x16.lt_s(v, i8x16.splat(1)), i8x16.eq(v128.or(v, i8x16.splat(8)), i8x16.splat(0x2b)));
}

/** Whether a topic of more than 16 bytes, all readable, is plain ASCII without U+0000, '+' and '#'. */
function plainLongTopic(ptr: usize, len: usize): bool {
  const last = ptr + len - 16;
  let odd = oddLanes(v128.load(last)); // the tail, overlapping the chunks before it
  for (let p = ptr; p < last; p += 16) odd = v128.or(odd, oddLanes(v128.load(p)));
  return !v128.any_true(odd);
}

/** How many '/' are in a topic of more than 16 bytes, all readable. */
function slashesIn(ptr: usize, len: usize): u32 {
  const slash = i8x16.splat(SLASH);
  const last = ptr + len - 16;
  let n: u32 = 0;
  let p = ptr;
  for (; p < last; p += 16) n += <u32>popcnt(i8x16.bitmask(i8x16.eq(v128.load(p), slash)));
  // the tail overlaps the chunks before it: count only its lanes from p on
  const fresh = <u32>(0xffff << <u32>(p - last)) & 0xffff;
  return n + <u32>popcnt(<u32>i8x16.bitmask(i8x16.eq(v128.load(last), slash)) & fresh);
}

/**
 * Which of `count` topic_metrics prefixes (a table of PREFIX_ENTRY) the topic
 * starts with, the first that does, or -1. `head` holds the topic's first 16
 * bytes (and what follows a shorter topic; the masks only cover prefix bytes).
 */
// @ts-ignore: decorator
@inline function prefixSlot(table: usize, count: usize, head: v128, topic: usize, topicLen: usize): i32 {
  for (let i: usize = 0; i < count; i++) {
    const e = table + i * PREFIX_ENTRY;
    const plen = <usize>load<u32>(e, 32);
    if (plen > topicLen || v128.any_true(v128.xor(v128.and(head, v128.load(e, 16)), v128.load(e)))) continue;
    if (plen <= 16 || memory.compare(topic + 16, load<usize>(e, 36) + 16, plen - 16) == 0) return <i32>i;
  }
  return -1;
}
