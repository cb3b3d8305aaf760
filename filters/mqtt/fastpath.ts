// The PUBLISH fast path's scan: walks consecutive PUBLISHes whose only
// outcome is "forward" (plain ASCII topic, no 5.0 properties, within the
// limits, allowed by the ACL) and stops at the first packet that needs
// anything else, which the session's general path then handles. Pure over
// bytes: no ABI calls; it writes only its own static blocks (SCAN, LANES,
// PUBLISH_KIND, NO_PREFIX) and the tally fields of the topic_metrics prefix table.
//
// Why a separate module of small functions: TurboFan has about a dozen
// registers for a loop. Inside the session's method the loop had some twenty
// live values and spilled the packet offsets it carries from one packet to
// the next. Here the loop-invariant settings live in a static block (one
// memory operand each, no register), and each combination of "levels
// limited", "topics counted" and "ACL" gets its own copy of the loop, so
// nothing in it tests a setting that cannot change.

import { oddLanes, plainLongTopic } from "./parser";
import { aclAllows, bytesEqual, slashesIn } from "./topics";

/** The scan's settings and its packet count (the fields of `SCAN`). */
const SCAN: usize = memory.data(48, 16);
const MAX_PACKET: usize = 0;   // u32: largest packet (Remaining Length + header)
const MAX_TOPIC: usize = 4;    // u32: longest topic
const MAX_LEVELS: usize = 8;   // u32: most topic levels (checked only by the levels variants)
const END: usize = 12;         // usize: where the readable bytes end
const PREFIXES: usize = 16;    // usize: topic_metrics prefix table (see PREFIX_ENTRY)
const PREFIXES_END: usize = 20; // usize: past its last entry
const RULES: usize = 24;       // usize: publish ACL rules, flat (pointer, length, allow)
const RULE_WORDS: usize = 28;  // usize
const DEFAULT_ALLOW: usize = 32; // u32
const PLAIN_HEAD: usize = 36;  // u32: the hot loop's first four bytes under HEAD_MASK (0x100: none)
const COUNT: usize = 40;       // u32: packets the last scan passed
const LAST_START: usize = 44;  // usize: END - 21, the last packet start with 21 bytes readable

/**
 * One topic_metrics prefix in the scan's table: its first 16 bytes zero-padded
 * (0), a mask of 0xff over those bytes (16), the length (32), a pointer to
 * the whole prefix (36), the lane mask of its bytes among 16 (40; for a
 * prefix over 16 bytes one no topic of up to 16 has), and the scan's tally
 * for it (TALLY, 48): PUBLISHes
 * times 2^32 plus payload bytes, one i64 so a packet costs one add to
 * memory (a scan reads under 4 GiB, so neither half overflows), which
 * flushTally (stats.ts) adds to the counters after the scan. The first 16
 * bytes are compared with one vector compare against the topic's first 16,
 * which the topic check loads anyway. The tally is in memory, not locals:
 * the loop has more live values than V8 has registers.
 */
export const PREFIX_ENTRY: usize = 64;
const LANE_MASK: usize = 40;
export const TALLY: usize = 48;
const ONE_MESSAGE: i64 = 1 << 32;

/** Fills a prefix table entry at `at` for the `len` bytes at `prefix`. */
export function writePrefixEntry(at: usize, prefix: usize, len: usize): void {
  memory.fill(at, 0, PREFIX_ENTRY);
  const head = min(len, 16);
  memory.copy(at, prefix, head);
  memory.fill(at + 16, 0xff, head);
  store<u32>(at, <u32>len, 32);
  store<usize>(at, prefix, 36);
  // a bit no lane mask has for a prefix over 16 bytes: never a short topic's
  store<u32>(at, len <= 16 ? (<u32>1 << <u32>len) - 1 : MUST_STEP | 0xffff, LANE_MASK);
}

/**
 * What the scan makes of each first byte: 0 for anything but a PUBLISH of
 * QoS 0..2, else KIND_PUBLISH plus the bytes between topic and payload
 * (times 2), KIND_ID when a packet id follows the topic and KIND_PROPERTIES
 * when an (MQTT 5.0) property length does. Rewritten by setScan for the
 * connection's version. One byte carries it all, so the loop keeps one value.
 */
const PUBLISH_KIND: usize = memory.data(256);
const KIND_PUBLISH: u32 = 1;
const KIND_ID: u32 = 8;
const KIND_PROPERTIES: u32 = 16;

/**
 * The lane mask of a topic of n bytes, for n = 0..255: (1 << n) - 1 when
 * the hot loop takes such a topic (1..16 bytes, within MAX_TOPIC), else
 * MUST_STEP, a bit no lane sets, so the loop's one mask test sends the
 * packet to the general loop. setScan rewrites entries 0..16 for the limit.
 */
const LANES: usize = memory.data(256 * 4, 4);
const MUST_STEP: u32 = 0x10000;
for (let n: u32 = 0; n < 256; n++) store<u32>(LANES + (<usize>n << 2), MUST_STEP);

/** Vector constants, loaded into locals before the loop (V8 rebuilds a v128.const at each use). */
const SPLATS: usize = memory.data(64, 16);
v128.store(SPLATS, i8x16.splat(1));
v128.store(SPLATS, i8x16.splat(8), 16);
v128.store(SPLATS, i8x16.splat(0x2b), 32);
v128.store(SPLATS, i8x16.splat(0x2f), 48); // '/'

/** The bits of a packet's first four bytes the hot loop tests: type, QoS, the length's continuation bit, the topic length's high byte. */
const HEAD_MASK: u32 = 0x00ff80f6;

/** The largest packet the hot loop takes: fixed header byte, one length byte, 127 bytes. */
const HOT_PACKET_MAX: u32 = 129;

/** The settings of the next scan. `prefixes` as built by writePrefixEntry; `rules` as aclAllows takes them. */
export function setScan(
  maxPacket: u32, maxTopic: u32, maxLevels: u32, withProperties: bool,
  prefixes: usize, prefixCount: usize, rules: usize, ruleWords: usize, defaultAllow: bool,
): void {
  store<u32>(SCAN + MAX_PACKET, maxPacket);
  store<u32>(SCAN + MAX_TOPIC, maxTopic);
  store<u32>(SCAN + MAX_LEVELS, maxLevels);
  store<usize>(SCAN + PREFIXES, prefixes);
  store<usize>(SCAN + PREFIXES_END, prefixes + prefixCount * PREFIX_ENTRY);
  store<usize>(SCAN + RULES, rules);
  store<usize>(SCAN + RULE_WORDS, ruleWords);
  store<u32>(SCAN + DEFAULT_ALLOW, defaultAllow ? 1 : 0);
  // the hot loop's packets (a one-byte Remaining Length) have at most 129
  // bytes: under a smaller limit, the general loop checks each one
  store<u32>(SCAN + PLAIN_HEAD, !withProperties && maxPacket >= HOT_PACKET_MAX ? 0x30 : 0x100);
  for (let b: u32 = 0x30; b < 0x40; b++) {
    const qos = (b >> 1) & 3;
    let kind: u32 = 0;
    if (qos != 3) {
      const id: u32 = qos != 0 ? 2 : 0;
      const properties: u32 = withProperties ? 1 : 0;
      kind = KIND_PUBLISH | ((id + properties) << 1) | (id != 0 ? KIND_ID : 0) | (withProperties ? KIND_PROPERTIES : 0);
    }
    store<u8>(PUBLISH_KIND + b, <u8>kind);
  }
  for (let n: u32 = 0; n <= 16; n++) store<u32>(LANES + (<usize>n << 2), n >= 1 && n <= maxTopic ? (<u32>1 << n) - 1 : MUST_STEP);
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
  store<usize>(SCAN + END, end);
  store<usize>(SCAN + LAST_START, end >= 21 ? end - 21 : 0);
  store<i64>(NO_PREFIX, 0, TALLY);
  if (acl) return scanWithAcl(p, levels, topics);
  if (levels) return topics ? scanLevelsTopics(p) : scanLevels(p);
  return topics ? scanTopics(p) : scanPlain(p);
}

function scanPlain(p: usize): usize { return scan(p, false, false, false); }
function scanTopics(p: usize): usize { return scan(p, false, true, false); }
function scanLevels(p: usize): usize { return scan(p, true, false, false); }
function scanLevelsTopics(p: usize): usize { return scan(p, true, true, false); }
// With an ACL the rule walk costs more than the settings' tests: one copy.
function scanWithAcl(p: usize, levels: bool, topics: bool): usize { return scan(p, levels, topics, true); }

// Two loops. The hot loop takes the common packet only: a QoS 0 PUBLISH
// without properties, with a one-byte Remaining Length, whose topic has
// 1..16 bytes. Any other packet, and any packet that fails one of its
// checks, goes to the general loop, which checks PUBLISHes of any kind in
// full (onePublish) until the next one suits the hot loop again; a packet
// onePublish refuses goes to the session's general path. So the hot loop
// has few values (V8 has about eight registers left for them, and a
// spilled pointer puts a store and a load into the chain that carries one
// packet's start to the next) and few instructions: settings are memory
// operands, and each check is one compare and branch, as V8 makes no
// branch of `a | b` on two compares.
// @ts-ignore: decorator
@inline function scan(p: usize, levels: bool, topics: bool, acl: bool): usize {
  const one = v128.load(SPLATS);
  const eight = v128.load(SPLATS, 16);
  const plus = v128.load(SPLATS, 32);
  const slash = v128.load(SPLATS, 48);
  let count: u32 = 0;
  // 21 bytes: a fixed header of up to 3 bytes, the topic length and 16
  // topic bytes, so every load up to the first vector is inside the bytes
  while (p <= load<usize>(SCAN + LAST_START)) {
    for (;;) {
      // One load for the fixed header and the topic length: type PUBLISH
      // and QoS 0 (dup and retain aside), a one-byte Remaining Length (so
      // the packet is within the limit: see setScan), and a topic length
      // under 256; unless setScan ruled the loop out.
      const head4 = load<u32>(p);
      if ((head4 & HEAD_MASK) != load<u32>(SCAN + PLAIN_HEAD)) break;
      const rl = <usize>((head4 >> 8) & 0x7f);
      const topicAt = p + 2;
      const next = topicAt + rl;
      const topicLen = <usize>(head4 >> 24);
      const lanes = load<u32>(LANES + (topicLen << 2));
      const payloadBytes = rl - 2 - topicLen;
      if (payloadBytes > rl) break; // the topic runs past the packet (wrapped)
      if (!shortTopicPasses(topicAt + 2, topicLen, lanes, payloadBytes, one, eight, plus, slash, levels, topics, acl)) break;
      count++;
      p = next;
      if (p > load<usize>(SCAN + LAST_START)) break;
    }
    // The general loop: packets of any kind the scan may pass (QoS 1 and 2,
    // 5.0, longer lengths and topics), until one the hot loop takes.
    while (p <= load<usize>(SCAN + LAST_START)) {
      const next = onePublish(p, one, eight, plus, slash, levels, topics, acl);
      if (next == 0) {
        store<u32>(SCAN + COUNT, count);
        return p;
      }
      count++;
      p = next;
      if (p > load<usize>(SCAN + LAST_START)) break;
      if ((load<u32>(p) & HEAD_MASK) == load<u32>(SCAN + PLAIN_HEAD)) break;
    }
  }
  store<u32>(SCAN + COUNT, count);
  return p;
}

/**
 * One PUBLISH of any kind at `p` (with 21 bytes readable) checked in full:
 * where the next packet starts, or 0 when the general path must see this one.
 */
// @ts-ignore: decorator
@inline function onePublish(p: usize, one: v128, eight: v128, plus: v128, slash: v128, levels: bool, topics: bool, acl: bool): usize {
  const kind = <usize>load<u8>(PUBLISH_KIND + <usize>load<u8>(p));
  if (kind == 0) return 0;
  let rl = <usize>load<u8>(p, 1);
  let topicAt = p + 2;
  if (rl >= 0x80) {
    const b2 = <usize>load<u8>(p, 2);
    if (b2 - 1 >= 0x7f) return 0;
    rl = (rl & 0x7f) | (b2 << 7);
    topicAt = p + 3;
  }
  const next = topicAt + rl;
  if (next - p > <usize>load<u32>(SCAN + MAX_PACKET)) return 0;
  const topicLen = <usize>bswap<u16>(load<u16>(topicAt));
  const topic = topicAt + 2;
  const payload = topic + topicLen + ((kind >> 1) & 3);
  const end = load<usize>(SCAN + END);
  // unsigned: topicLen 0 wraps above any limit
  if (payload > next || payload > end || topicLen - 1 >= <usize>load<u32>(SCAN + MAX_TOPIC)) return 0;
  if ((kind & KIND_ID) != 0 && load<u16>(topic + topicLen) == 0) return 0;
  if ((kind & KIND_PROPERTIES) != 0 && load<u8>(payload - 1) != 0) return 0;
  if (topicLen > 16) {
    if (!plainLongTopic(topic, topicLen)) return 0;
    if (levels && slashesIn(topic, topicLen) >= load<u32>(SCAN + MAX_LEVELS)) return 0;
    if (acl && !scanAllows(topic, topicLen)) return 0;
    if (topics) tally(longTopicEntry(topic, topicLen), next - payload);
    return next;
  }
  // 1..16 bytes within the limit: LANES holds the lane mask
  return shortTopicPasses(topic, topicLen, load<u32>(LANES + (topicLen << 2)), next - payload, one, eight, plus, slash, levels, topics, acl) ? next : 0;
}

/**
 * The scan's checks of a topic of 1..16 bytes with lane mask `lanes`
 * (MUST_STEP: none pass), and the tally of its PUBLISH when they pass;
 * false when the general path must see the packet.
 */
// @ts-ignore: decorator
@inline function shortTopicPasses(
  topic: usize, topicLen: usize, lanes: u32, payloadBytes: usize,
  one: v128, eight: v128, plus: v128, slash: v128, levels: bool, topics: bool, acl: bool,
): bool {
  const head = v128.load(topic);
  if (((<u32>i8x16.bitmask(oddLanes(head, one, eight, plus)) | MUST_STEP) & lanes) != 0) return false;
  if (levels && <u32>popcnt(<u32>i8x16.bitmask(i8x16.eq(head, slash)) & lanes) >= load<u32>(SCAN + MAX_LEVELS)) return false;
  if (acl && !scanAllows(topic, topicLen)) return false;
  if (topics) addToTally(shortTopicEntry(head, lanes), payloadBytes);
  return true;
}

/** The publish ACL's verdict on a topic, with the rules setScan was given. */
// @ts-ignore: decorator
@inline function scanAllows(topic: usize, topicLen: usize): bool {
  return aclAllows(load<usize>(SCAN + RULES), load<usize>(SCAN + RULE_WORDS), load<u32>(SCAN + DEFAULT_ALLOW) != 0, topic, topicLen);
}

/**
 * The table entry of the first topic_metrics prefix a topic of over 16
 * bytes at `topic` starts with, or 0: the first 16 bytes under the prefix's
 * mask, then the rest of a longer prefix byte-wise.
 */
// @ts-ignore: decorator
@inline function longTopicEntry(topic: usize, topicLen: usize): usize {
  const head = v128.load(topic);
  for (let e = load<usize>(SCAN + PREFIXES); e < load<usize>(SCAN + PREFIXES_END); e += PREFIX_ENTRY) {
    const plen = <usize>load<u32>(e, 32);
    if (plen > topicLen) continue;
    if (v128.any_true(v128.xor(v128.and(head, v128.load(e, 16)), v128.load(e)))) continue;
    if (plen <= 16 || bytesEqual(topic + 16, load<usize>(e, 36) + 16, plen - 16)) return e;
  }
  return 0;
}

/**
 * The table entry of the first prefix that starts a topic of up to 16
 * bytes, whose first 16 bytes are `head` and whose lanes are `lanes` (or
 * NO_PREFIX): a prefix starts the topic when its lanes are among the
 * topic's and hold equal bytes.
 */
// @ts-ignore: decorator
@inline function shortTopicEntry(head: v128, lanes: u32): usize {
  for (let e = load<usize>(SCAN + PREFIXES); e < load<usize>(SCAN + PREFIXES_END); e += PREFIX_ENTRY) {
    const want = load<u32>(e, LANE_MASK);
    if ((<u32>i8x16.bitmask(i8x16.eq(head, v128.load(e))) & lanes & want) == want) return e;
  }
  return NO_PREFIX;
}

/** Where shortTopicEntry tallies a topic under no prefix: one add per packet either way, no branch. */
const NO_PREFIX: usize = memory.data(<i32>PREFIX_ENTRY, 16);

/** Adds a PUBLISH to the tally of its prefix's table entry (none: 0). */
// @ts-ignore: decorator
@inline function tally(entry: usize, payloadBytes: usize): void {
  if (entry != 0) addToTally(entry, payloadBytes);
}

/** Adds a PUBLISH to the tally of a table entry (or NO_PREFIX). */
// @ts-ignore: decorator
@inline function addToTally(entry: usize, payloadBytes: usize): void {
  store<i64>(entry, load<i64>(entry, TALLY) + ONE_MESSAGE + <i64>payloadBytes, TALLY);
}
