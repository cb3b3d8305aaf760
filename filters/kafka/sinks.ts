// What the generated walkers report, gathered per frame: the topics and
// partitions of a request (with their record batches), group ids, SASL
// fields; the brokers, topics, API versions, tagged sections and error codes
// of a response. Pure; one instance of each per connection, reset per frame.
import { Sink } from "./reader";
import { TopicRef } from "./encode";
import {
  EV_ACKS, EV_AUTH_BYTES, EV_BROKER_BEGIN, EV_ERROR_CODE, EV_GROUP_ID, EV_HOST,
  EV_MECHANISM, EV_NODE_ID, EV_PARTITION_INDEX, EV_PORT, EV_RECORDS, EV_TAGGED_BEGIN, EV_TAGGED_END, EV_TOPIC_BEGIN,
  EV_TOPIC_COUNT, EV_TOPIC_END, EV_TOPIC_ID, EV_TOPIC_NAME, EV_TRANSACTIONAL_ID,
} from "./gen/walkers";

/** A byte range of the frame. */
export class Span {
  constructor(public at: i32 = 0, public len: i32 = -1) {}
}

export class RequestSink extends Sink {
  base: usize = 0;
  topics: TopicRef[] = [];
  private pool: TopicRef[] = [];
  private current: TopicRef | null = null;
  topicCountAt: i32 = -1;
  topicCountLen: i32 = 0;
  groups: Span[] = [];
  transactionalId: Span = new Span();
  mechanism: Span = new Span();
  auth: Span = new Span();
  acks: i32 = -1;
  /** Record batches of the whole request (what topic metrics count). */
  batches: i32 = 0;
  /** The widest compression codec seen in a batch (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd). */
  codecMask: i32 = 0;

  reset(base: usize): void {
    this.base = base;
    if (this.topics.length > 0) {
      for (let i = 0; i < this.topics.length; i++) this.pool.push(this.topics[i]);
      this.topics.length = 0;
    }
    this.current = null;
    this.topicCountAt = -1;
    if (this.groups.length > 0) this.groups.length = 0;
    this.transactionalId.len = -1;
    this.mechanism.len = -1;
    this.auth.len = -1;
    this.acks = -1;
    this.batches = 0;
    this.codecMask = 0;
  }

  private topic(at: i32): TopicRef {
    const t = this.pool.length > 0 ? this.pool.pop() : new TopicRef();
    t.beginAt = at;
    t.endAt = at;
    t.nameLen = -1;
    t.idAt = -1;
    t.partitions.length = 0;
    t.name = "";
    t.allowed = true;
    t.bytes = 0;
    t.batches = 0;
    t.records = 0;
    this.topics.push(t);
    return t;
  }

  on(event: i32, pos: i32, len: i32, value: i64): void {
    const t = this.current;
    switch (event) {
      case EV_TOPIC_BEGIN: { this.current = this.topic(pos); break; }
      case EV_TOPIC_END: { if (t != null) t.endAt = pos; this.current = null; break; }
      case EV_TOPIC_COUNT: { this.topicCountAt = pos; this.topicCountLen = len; break; }
      case EV_TOPIC_NAME: {
        // Metadata/OffsetCommit name topics outside a TOPIC element: a topic each
        const target = t != null ? t : this.topic(pos);
        target.nameAt = pos;
        target.nameLen = len;
        break;
      }
      case EV_TOPIC_ID: { if (t != null) t.idAt = pos; break; }
      case EV_PARTITION_INDEX: { if (t != null) t.partitions.push(<i32>value); break; }
      case EV_RECORDS: { if (t != null && len > 0) this.countBatches(t, pos, len); break; }
      case EV_GROUP_ID: { this.groups.push(new Span(pos, len)); break; }
      case EV_TRANSACTIONAL_ID: { this.transactionalId.at = pos; this.transactionalId.len = len; break; }
      case EV_MECHANISM: { this.mechanism.at = pos; this.mechanism.len = len; break; }
      case EV_AUTH_BYTES: { this.auth.at = pos; this.auth.len = len; break; }
      case EV_ACKS: { this.acks = <i32>value; break; }
    }
  }

  private countBatches(t: TopicRef, pos: i32, len: i32): void {
    const n = countRecordBatches(this.base + <usize>pos, len);
    t.bytes += len;
    t.batches += n;
    t.records += lastRecords;
    this.codecMask |= lastCodecMask;
    this.batches += n;
  }
}

let lastRecords: i64 = 0;
let lastCodecMask: i32 = 0;

/**
 * Counts the record batches in [p, p+len) without decompressing (records in
 * lastRecords, codecs seen in lastCodecMask): each batch (magic 2) is
 * baseOffset i64, batchLength i32 (the rest), then leader epoch, magic, crc,
 * attributes (codec in the low 3 bits), ..., record count at offset 57. Old
 * message sets (magic 0/1) are offset, size, crc, magic, attributes. A
 * partial last batch (a fetch response may end inside one) is not counted.
 */
export function countRecordBatches(p: usize, len: i32): i32 {
  let at: i32 = 0;
  let n = 0;
  lastRecords = 0;
  lastCodecMask = 0;
  while (len - at >= 17) {
    const size = <i32>bswap<u32>(load<u32>(p + <usize>at + 8));
    if (size < 5 || size > len - at - 12) break;
    const magic = load<u8>(p + <usize>at + 16);
    let codec: i32 = 0;
    if (magic >= 2) {
      if (size >= 49) {
        codec = <i32>(bswap<u16>(load<u16>(p + <usize>at + 21)) & 7);
        lastRecords += <i64>bswap<u32>(load<u32>(p + <usize>at + 57));
      }
    } else if (size >= 6) {
      codec = <i32>(load<u8>(p + <usize>at + 17) & 7);
      lastRecords += 1;
    }
    lastCodecMask |= 1 << codec;
    n++;
    at += 12 + size;
  }
  return n;
}

/** A broker address the response names: node id, host (string at hostAt, prefix at hostPrefixAt), port at portAt. */
export class BrokerRef {
  nodeId: i32 = -1;
  hostPrefixAt: i32 = 0;
  hostAt: i32 = 0;
  hostLen: i32 = 0;
  portAt: i32 = 0;
  port: i32 = 0;
  /** The innermost tagged field it sits in (index in ResponseSink.tagged, -1 none). */
  tag: i32 = -1;
}

/** An open tagged field whose size prefix must change when what is inside changes size. */
export class TaggedRef {
  sizeAt: i32 = 0;
  dataAt: i32 = 0;
  size: i32 = 0;
  /** Brokers already seen when it opened: edits after that are inside it. */
  brokersBefore: i32 = 0;
  closed: bool = false;
  /** The enclosing tagged field (-1: none). */
  parent: i32 = -1;
}

export class ResponseSink extends Sink {
  /** The first brokerCount are this response's (the objects are reused by the next responses). */
  brokers: BrokerRef[] = [];
  brokerCount: i32 = 0;
  private broker: BrokerRef | null = null;
  tagged: TaggedRef[] = [];
  private taggedPool: TaggedRef[] = [];
  private openTag: i32 = -1;
  errorCodes: i32[] = [];
  topicCountAt: i32 = -1;
  topicCountLen: i32 = 0;
  topicCount: i32 = 0;
  /** Fetch responses: per topic, name (or id) and its records' bytes and batches. */
  fetchTopics: Span[] = [];
  fetchTopicIds: i32[] = [];
  fetchBytes: i64[] = [];
  fetchBatches: i32[] = [];
  fetchRecords: i64[] = [];
  base: usize = 0;
  /** Metadata topics: name and id positions, pairs per topic. */
  topicNames: Span[] = [];
  topicIds: i32[] = [];
  private topicName: Span = new Span();
  private fetchOpen: bool = false;
  private topicId: i32 = -1;

  /** Whether anything was reported since the last reset (most responses report nothing: no error, nothing to rewrite). */
  touched: bool = false;

  reset(): void {
    this.fetchOpen = false;
    this.broker = null;
    this.openTag = -1;
    this.topicCountAt = -1;
    this.topicId = -1;
    this.topicName.len = -1;
    if (!this.touched) return;
    this.touched = false;
    if (this.fetchTopics.length > 0) {
      this.fetchTopics.length = 0;
      this.fetchTopicIds.length = 0;
      this.fetchBytes.length = 0;
      this.fetchBatches.length = 0;
      this.fetchRecords.length = 0;
    }
    this.brokerCount = 0;
    if (this.tagged.length > 0) {
      for (let i = 0; i < this.tagged.length; i++) this.taggedPool.push(this.tagged[i]);
      this.tagged.length = 0;
    }
    this.openTag = -1;
    if (this.errorCodes.length > 0) this.errorCodes.length = 0;
    this.topicCountAt = -1;
    if (this.topicNames.length > 0) this.topicNames.length = 0;
    if (this.topicIds.length > 0) this.topicIds.length = 0;
    this.topicId = -1;
    this.topicName.len = -1;
  }

  private current(): BrokerRef {
    const existing = this.broker;
    if (existing != null) return existing;
    const n = this.brokerCount;
    if (n == this.brokers.length) this.brokers.push(new BrokerRef());
    const b = unchecked(this.brokers[n]);
    b.nodeId = -1;
    b.hostLen = -1;
    this.broker = b;
    return b;
  }

  on(event: i32, pos: i32, len: i32, value: i64): void {
    this.touched = true;
    switch (event) {
      case EV_ERROR_CODE: { if (value != 0) this.errorCodes.push(<i32>value); break; }
      case EV_NODE_ID: { this.current().nodeId = <i32>value; break; }
      case EV_HOST: {
        const b = this.current();
        b.hostPrefixAt = <i32>value;
        b.hostAt = pos;
        b.hostLen = len;
        break;
      }
      case EV_PORT: {
        // the port comes last in every broker shape Kafka has: the address is complete
        const b = this.current();
        b.portAt = pos;
        b.port = <i32>value;
        b.tag = this.openTag;
        this.brokerCount++;
        this.broker = null;
        break;
      }
      case EV_BROKER_BEGIN: { this.broker = null; break; }
      case EV_TAGGED_BEGIN: {
        const t = this.taggedPool.length > 0 ? this.taggedPool.pop() : new TaggedRef();
        t.closed = false;
        t.sizeAt = <i32>value;
        t.dataAt = pos;
        t.size = len;
        t.parent = this.openTag;
        this.tagged.push(t);
        this.openTag = this.tagged.length - 1;
        break;
      }
      case EV_TAGGED_END: {
        if (this.openTag >= 0) {
          this.tagged[this.openTag].closed = true;
          this.openTag = this.tagged[this.openTag].parent;
        }
        break;
      }
      case EV_TOPIC_COUNT: {
        // the outermost topic array (the first one reported)
        if (this.topicCountAt < 0) { this.topicCountAt = pos; this.topicCountLen = len; this.topicCount = <i32>value; }
        break;
      }
      case EV_TOPIC_BEGIN: { this.topicName.len = -1; this.topicId = -1; break; }
      case EV_TOPIC_NAME: { this.topicName.at = pos; this.topicName.len = len; break; }
      case EV_TOPIC_ID: { this.topicId = pos; break; }
      case EV_RECORDS: {
        // a Fetch response's partition: its records go to the topic being walked
        if (len <= 0) break;
        const n = countRecordBatches(this.base + <usize>pos, len);
        if (this.fetchTopics.length == 0 || this.fetchOpen == false) {
          this.fetchTopics.push(new Span(this.topicName.at, this.topicName.len));
          this.fetchTopicIds.push(this.topicId);
          this.fetchBytes.push(0);
          this.fetchBatches.push(0);
          this.fetchRecords.push(0);
          this.fetchOpen = true;
        }
        const last = this.fetchBytes.length - 1;
        this.fetchBytes[last] += len;
        this.fetchBatches[last] += n;
        this.fetchRecords[last] += lastRecords;
        break;
      }
      case EV_TOPIC_END: {
        this.fetchOpen = false;
        if (this.topicName.len > 0 && this.topicId >= 0) {
          this.topicNames.push(new Span(this.topicName.at, this.topicName.len));
          this.topicIds.push(this.topicId);
        }
        break;
      }
    }
  }
}
