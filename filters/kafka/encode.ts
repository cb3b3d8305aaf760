// The frames the filter makes itself: the placeholder request that keeps a
// refused request's slot in the broker's response order, and Kafka's own
// error responses (per partition for Produce and Fetch, the generated
// default body with the error code for everything else). Pure.
import { writeDefaultResponse, defaultResponseLength } from "./gen/errors";
import { API_FETCH, API_PRODUCE, API_VERSIONS, Writer, requestIsFlexible, responseHeaderVersion, responseIsFlexible } from "./wire";

/** Kafka error codes the filter answers with. */
export const MESSAGE_TOO_LARGE: i16 = 10;
export const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
export const GROUP_AUTHORIZATION_FAILED: i16 = 30;
export const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
export const POLICY_VIOLATION: i16 = 44;
export const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

/** One topic of a Produce/Fetch request, as walked (positions in the request frame). */
export class TopicRef {
  beginAt: i32 = 0;
  endAt: i32 = 0;
  nameAt: i32 = 0;
  /** -1: the request names the topic by id (idAt). */
  nameLen: i32 = -1;
  idAt: i32 = -1;
  partitions: i32[] = [];
  /** Resolved name ("" when an id nobody described). */
  name: string = "";
  allowed: bool = true;
  bytes: i64 = 0;
  batches: i32 = 0;
  records: i64 = 0;
}

/**
 * An ApiVersions v0 request with the refused request's correlation id: the
 * broker answers it in the refused request's place, so the filter's own
 * answer goes out in order, and nothing of the refused request reaches the broker.
 */
export function placeholderRequest(correlationId: i32): ArrayBuffer {
  const w = new Writer();
  w.i32(10);
  w.i16(API_VERSIONS);
  w.i16(0);
  w.i32(correlationId);
  w.i16(-1); // null client id
  return w.take();
}

function responseStart(w: Writer, key: i16, version: i16, correlationId: i32): void {
  w.i32(0); // size, patched at the end
  w.i32(correlationId);
  if (responseHeaderVersion(key, version) == 1) w.noTags();
}

/** The topic elements of a Produce response refusing every partition of `topics` (those with allowed == false). */
export function writeProduceTopics(w: Writer, base: usize, version: i16, topics: TopicRef[], code: i16): void {
  const flex = responseIsFlexible(API_PRODUCE, version);
  for (let i = 0; i < topics.length; i++) {
    const t = unchecked(topics[i]);
    if (t.allowed) continue;
    if (version >= 13) w.bytes(base + <usize>t.idAt, 16);
    else w.str(base + <usize>t.nameAt, t.nameLen, flex);
    w.count(t.partitions.length, flex);
    for (let j = 0; j < t.partitions.length; j++) {
      w.i32(unchecked(t.partitions[j]));
      w.i16(code);
      w.i64(-1); // base offset
      if (version >= 2) w.i64(-1); // log append time
      if (version >= 5) w.i64(-1); // log start offset
      if (version >= 8) { w.count(0, flex); w.str(0, -1, flex); } // record errors, error message
      if (flex) w.noTags();
    }
    if (flex) w.noTags();
  }
}

/** The partition-level part of a Fetch response refusing every partition of the refused topics. */
export function writeFetchTopics(w: Writer, base: usize, version: i16, topics: TopicRef[], code: i16): void {
  const flex = responseIsFlexible(API_FETCH, version);
  for (let i = 0; i < topics.length; i++) {
    const t = unchecked(topics[i]);
    if (t.allowed) continue;
    if (version >= 13) w.bytes(base + <usize>t.idAt, 16);
    else w.str(base + <usize>t.nameAt, t.nameLen, flex);
    w.count(t.partitions.length, flex);
    for (let j = 0; j < t.partitions.length; j++) {
      w.i32(unchecked(t.partitions[j]));
      w.i16(code);
      w.i64(-1); // high watermark
      if (version >= 4) w.i64(-1); // last stable offset
      if (version >= 5) w.i64(-1); // log start offset
      if (version >= 4) w.count(-1, flex); // aborted transactions: null
      if (version >= 11) w.i32(-1); // preferred read replica
      if (flex) w.uvarint(1); else w.i32(0); // records: empty
      if (flex) w.noTags();
    }
    if (flex) w.noTags();
  }
}

export function refusedCount(topics: TopicRef[]): i32 {
  let n = 0;
  for (let i = 0; i < topics.length; i++) if (!unchecked(topics[i]).allowed) n++;
  return n;
}

/** A whole Produce response refusing every topic of the request. */
export function produceRefusal(base: usize, version: i16, correlationId: i32, topics: TopicRef[], code: i16): ArrayBuffer {
  const w = new Writer();
  const flex = responseIsFlexible(API_PRODUCE, version);
  responseStart(w, API_PRODUCE, version, correlationId);
  w.count(refusedCount(topics), flex);
  writeProduceTopics(w, base, version, topics, code);
  if (version >= 1) w.i32(0); // throttle time
  if (flex) w.noTags();
  w.patchSize(0);
  return w.take();
}

/** A whole Fetch response refusing every topic of the request. */
export function fetchRefusal(base: usize, version: i16, correlationId: i32, topics: TopicRef[], code: i16, sessionId: i32): ArrayBuffer {
  const w = new Writer();
  const flex = responseIsFlexible(API_FETCH, version);
  responseStart(w, API_FETCH, version, correlationId);
  if (version >= 1) w.i32(0); // throttle time
  if (version >= 7) { w.i16(0); w.i32(sessionId); }
  w.count(refusedCount(topics), flex);
  writeFetchTopics(w, base, version, topics, code);
  if (flex) w.noTags();
  w.patchSize(0);
  return w.take();
}

/** Any other API: its default response body with `code` in the top-level ErrorCode. Null when the version is unknown. */
export function defaultRefusal(key: i16, version: i16, correlationId: i32, code: i16): ArrayBuffer | null {
  const n = defaultResponseLength(key, version);
  if (n < 0) return null;
  const w = new Writer();
  responseStart(w, key, version, correlationId);
  const at = w.len;
  w.zeros(n);
  writeDefaultResponse(key, version, code, changetype<usize>(w.buf) + <usize>at);
  w.patchSize(0);
  return w.take();
}

/** Whether a request of this key/version is flexible (for rewriting its arrays). */
export function flexibleRequest(key: i16, version: i16): bool {
  return requestIsFlexible(key, version);
}
