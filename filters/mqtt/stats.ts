// Counter layout of the mqtt filter: names and indexes, in the SDK's batched
// Counters (the codec adds to a plain array, the layer flushes it to the
// host once per callback). Pure.
import { Counters, addAt } from "../sdk/stream";
import { Config } from "./config";
import { Malformed, malformedName, typeName } from "./parser";
import { PREFIX_ENTRY, TALLY, writePrefixEntry } from "./fastpath";
import { bytesEqual } from "./topics";

/** Limits the proxy enforces (not protocol violations). */
export enum Limit {
  PacketTooLarge = 0,
  HeaderTooLarge,
  ClientIdTooLong,
  ClientIdWildcard,
  TopicTooLong,
  TopicTooDeep,
  TooManyPending,
  TooManyTopicAliases,
  COUNT,
}

const LIMIT_NAMES: string[] = [
  "packet_too_large", "header_too_large", "client_id_too_long", "client_id_wildcard",
  "topic_too_long", "topic_too_deep", "too_many_pending", "too_many_topic_aliases",
];

export function limitName(l: i32): string {
  return l >= 0 && l < LIMIT_NAMES.length ? LIMIT_NAMES[l] : "unknown";
}

// Fixed part of the layout.
export const S_DOWN_TYPE: i32 = 0;            // + packet type (0..15)
export const S_UP_TYPE: i32 = 16;             // + packet type
export const S_DOWN_BYTES: i32 = 32;
export const S_UP_BYTES: i32 = 33;
export const S_CONNECTIONS: i32 = 34;
export const S_CLOSED_BY_FILTER: i32 = 35;
export const S_ACL_PUBLISH_DENIED: i32 = 36;
export const S_ACL_SUBSCRIBE_DENIED: i32 = 37;
export const S_ACL_WILL_DENIED: i32 = 38;
export const S_REFUSAL_PUBACK: i32 = 39;
export const S_REFUSAL_PUBREC: i32 = 40;
export const S_REFUSAL_PUBCOMP: i32 = 41;
export const S_REFUSAL_SUBACK: i32 = 42;
export const S_SUBACK_REWRITTEN: i32 = 43;
export const S_PUBLISH_DROPPED: i32 = 44;
export const S_ROUTE_DEFAULT: i32 = 45;        // no route matched: tcp_proxy's own cluster
export const S_CONNECT_TIMEOUT: i32 = 46;     // CONNECT not complete within limits.connect_timeout_ms
export const S_MALFORMED: i32 = 47;           // + Malformed code
export const S_LIMIT: i32 = S_MALFORMED + <i32>Malformed.COUNT; // + Limit code
export const S_FIXED_END: i32 = S_LIMIT + <i32>Limit.COUNT;

const FIXED_NAMES: string[] = [
  "downstream.bytes", "upstream.bytes", "connections", "closed_by_filter",
  "acl.publish_denied", "acl.subscribe_denied", "acl.will_denied",
  "refusal.puback", "refusal.pubrec", "refusal.pubcomp", "refusal.suback", "suback_rewritten",
  "publish_dropped", "route.none", "connect_timeout",
];

/** Where the configuration-dependent counters start. */
export class StatLayout {
  /** Index of each topic_metrics prefix's first counter (4 each: down msgs, down bytes, up msgs, up bytes). */
  topicIndex: i32[] = [];
  /** The same, for the per-packet path (topics points into it). */
  topicIndexes: StaticArray<i32> = new StaticArray<i32>(0);
  /** topic_metrics prefixes, flat: pointer, length (topics points into it). */
  topicPrefixes: StaticArray<usize> = new StaticArray<usize>(0);
  topicTable: ArrayBuffer = new ArrayBuffer(0);
  topics: TopicCounting = new TopicCounting();
}

/** Defines the filter's counters in `counters` (first, so the S_* indexes hold) and lays out the topic tables. */
export function buildLayout(config: Config, counters: Counters): StatLayout {
  const l = new StatLayout();
  const p = config.statPrefix + ".";
  for (let t = 0; t < 16; t++) counters.define(p + "downstream." + typeName(<u8>t));
  for (let t = 0; t < 16; t++) counters.define(p + "upstream." + typeName(<u8>t));
  for (let i = 0; i < FIXED_NAMES.length; i++) counters.define(p + FIXED_NAMES[i]);
  for (let m = 0; m < <i32>Malformed.COUNT; m++) counters.define(p + "malformed." + malformedName(m));
  for (let m = 0; m < <i32>Limit.COUNT; m++) counters.define(p + "limit." + limitName(m));
  assert(counters.size == S_FIXED_END, "counter layout");
  for (let i = 0; i < config.topicMetrics.length; i++) {
    const base = p + "topic." + config.topicMetrics[i].label + ".";
    l.topicIndex.push(counters.define(base + "downstream.messages"));
    counters.define(base + "downstream.payload_bytes");
    counters.define(base + "upstream.messages");
    counters.define(base + "upstream.payload_bytes");
  }
  l.topicIndexes = StaticArray.fromArray<i32>(l.topicIndex);
  const prefixes = new StaticArray<usize>(config.topicMetrics.length * 2);
  for (let i = 0; i < config.topicMetrics.length; i++) {
    prefixes[2 * i] = config.topicMetrics[i].prefix.dataStart;
    prefixes[2 * i + 1] = <usize>config.topicMetrics[i].prefix.length;
  }
  l.topicPrefixes = prefixes;
  l.topicTable = new ArrayBuffer(<i32>(PREFIX_ENTRY * <usize>config.topicMetrics.length));
  for (let i = 0; i < config.topicMetrics.length; i++) {
    const prefix = config.topicMetrics[i].prefix;
    writePrefixEntry(changetype<usize>(l.topicTable) + <usize>i * PREFIX_ENTRY, prefix.dataStart, <usize>prefix.length);
  }
  l.topics.table = changetype<usize>(l.topicTable);
  l.topics.prefixes = changetype<usize>(prefixes);
  l.topics.indexes = changetype<usize>(l.topicIndexes);
  l.topics.count = <usize>(prefixes.length >> 1);
  return l;
}

/**
 * The topic_metrics prefixes as raw pointers, for per-packet loops that copy
 * them into locals: prefixes (pointer, length pairs) and the first counter
 * index of each (4 counters: down msgs, down bytes, up msgs, up bytes).
 */
export class TopicCounting {
  prefixes: usize = 0;
  /** The same prefixes as the fast path's table (fastpath.ts, PREFIX_ENTRY each). */
  table: usize = 0;
  indexes: usize = 0;
  count: usize = 0;
}

/**
 * Which of `count` topic_metrics prefixes the topic starts with (the first
 * that does), or -1 when none does (bounded cardinality). Pointers as in
 * TopicCounting.
 */
// @ts-ignore: decorator
@inline export function topicSlot(prefixes: usize, count: usize, topic: usize, topicLen: usize): i32 {
  for (let i: usize = 0; i < count; i++) {
    const plen = load<usize>(prefixes + ((i << 1) + 1) * sizeof<usize>());
    if (plen <= topicLen && bytesEqual(topic, load<usize>(prefixes + (i << 1) * sizeof<usize>()), plen)) return <i32>i;
  }
  return -1;
}

/**
 * The first counter of the topic's topic_metrics prefix plus `direction`
 * (0 from the client, 2 from the broker), or -1 (see topicSlot).
 */
// @ts-ignore: decorator
@inline export function topicCounter(
  prefixes: usize, indexes: usize, count: usize, direction: i32, topic: usize, topicLen: usize,
): i32 {
  const slot = topicSlot(prefixes, count, topic, topicLen);
  return slot < 0 ? -1 : load<i32>(indexes + (<usize>slot << 2)) + direction;
}

/** Adds the scan's tally of each of `count` prefixes (fastpath.ts) to its counters (indexes + direction) and clears it. */
export function flushTally(stats: usize, values: usize, table: usize, indexes: usize, count: usize, direction: i32): void {
  for (let i: usize = 0; i < count; i++) {
    const at = table + i * PREFIX_ENTRY;
    const tally = load<u64>(at, TALLY); // messages << 32 | bytes
    if (tally == 0) continue;
    addTopicCounts(stats, values, load<i32>(indexes + (i << 2)) + direction, <i64>(tally >> 32), <i64>(tally & 0xffffffff));
    store<u64>(at, 0, TALLY);
  }
}

/** Adds PUBLISHes to the message and byte counters that start at `at` (from topicCounter; -1: none). */
// @ts-ignore: decorator
@inline export function addTopicCounts(stats: usize, values: usize, at: i32, messages: i64, bytes: i64): void {
  if (at < 0) return;
  if (messages > 0) addAt(stats, values, at, messages);
  if (bytes > 0) addAt(stats, values, at + 1, bytes);
}
