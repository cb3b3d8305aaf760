// The kafka filter's Envoy stats (docs/kafka.md lists them). Counters are
// created on first use (per API key and version there are hundreds of
// possible names and a listener sees a handful) and batched: frames add to a
// plain array, and the framed layer's once-per-callback flush (KafkaCounters)
// hands the changed ones to the host. The clock is read once per callback too.
import { Counter, Histogram } from "../sdk/metrics";
import { logError, monotonicTimeNanos } from "../sdk/host";
import { statLabel } from "../sdk/match";
import { Counters } from "../sdk/stream";
import { API_KEY_LIMIT, API_NAME } from "./gen/apis";

/** "ListOffsets" → "list_offsets". */
export function snakeName(name: string): string {
  let out = "";
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) {
      if (i > 0) out += "_";
      out += String.fromCharCode(c + 32);
    } else out += String.fromCharCode(c);
  }
  return out;
}

/** Versions per key in the counter cache (Kafka's highest is 18). */
const VERSION_SLOTS: i32 = 32;

const CODEC_NAMES: string[] = ["none", "gzip", "snappy", "lz4", "zstd", "codec5", "codec6", "codec7"];

/** Per configured topic prefix: counter indexes. */
class TopicCounters {
  produceBytes: i32 = 0;
  produceBatches: i32 = 0;
  produceRecords: i32 = 0;
  fetchRequests: i32 = 0;
  fetchBytes: i32 = 0;
  fetchBatches: i32 = 0;
  fetchRecords: i32 = 0;
}

export class Stats {
  private prefix: string;
  private counters: Counter[] = [];
  private deltas: i64[] = [];
  private dirty: i32[] = [];
  private byName: Map<string, i32> = new Map<string, i32>();
  /** key * VERSION_SLOTS + version → counter index + 1 (0: not created yet). */
  private requests: StaticArray<i32> = new StaticArray<i32>(API_KEY_LIMIT * VERSION_SLOTS);
  private responses: StaticArray<i32> = new StaticArray<i32>(API_KEY_LIMIT * VERSION_SLOTS);
  private latency: StaticArray<Histogram | null> = new StaticArray<Histogram | null>(API_KEY_LIMIT);
  private topics: TopicCounters[] = [];
  private batches: i32;
  private compression: StaticArray<i32> = new StaticArray<i32>(8);
  private unknownRequest: i32;
  private unknownResponse: i32;
  private rewrittenIndex: i32;
  private unknownBrokerIndex: i32;
  private nowCache: u64 = 0;
  private cappedIndex: i32 = -1;
  /** Error code + 1 → counter index + 1 (0: not created yet); the last slot is "other". */
  private errorIndex: StaticArray<i32> = new StaticArray<i32>(258);
  /** Broker ids already reported missing from `brokers` (one line per id per VM: it shows up in every Metadata). */
  private loggedBrokers: Set<i32> = new Set<i32>();

  constructor(prefix: string, topicMetricNames: string[]) {
    this.prefix = prefix;
    // every deployment shows these from the start (zero until something happens)
    const fixed = ["closed.bad_size", "closed.truncated_header", "closed.response_without_request", "closed.malformed_body",
      "closed.request_too_large", "refused.request_too_large", "refused.acl_produce", "refused.acl_fetch", "refused.api_key"];
    for (let i = 0; i < fixed.length; i++) this.index(fixed[i]);
    this.unknownRequest = this.index("request.unknown_api");
    this.unknownResponse = this.index("response.unknown_api");
    this.rewrittenIndex = this.index("brokers.rewritten");
    this.unknownBrokerIndex = this.index("brokers.unknown");
    this.batches = this.index("produce.batches");
    for (let i = 0; i < 8; i++) this.compression[i] = -1;
    for (let i = 0; i < topicMetricNames.length; i++) {
      const t = "topic." + statLabel(topicMetricNames[i]) + ".";
      const c = new TopicCounters();
      c.produceBytes = this.index(t + "produce_bytes");
      c.produceBatches = this.index(t + "produce_batches");
      c.produceRecords = this.index(t + "produce_records");
      c.fetchRequests = this.index(t + "fetch_requests");
      c.fetchBytes = this.index(t + "fetch_bytes");
      c.fetchBatches = this.index(t + "fetch_batches");
      c.fetchRecords = this.index(t + "fetch_records");
      this.topics.push(c);
    }
  }

  /** Defines the counters created so far with the host (visible in /stats at once). */
  defineAll(): void {
    for (let i = 0; i < this.counters.length; i++) this.counters[i].define();
  }

  /** The counter `name` under the prefix: its index (created on first use). */
  index(name: string): i32 {
    if (this.byName.has(name)) return this.byName.get(name);
    const i = this.counters.length;
    this.counters.push(new Counter(this.prefix + "." + name));
    this.deltas.push(0);
    this.byName.set(name, i);
    return i;
  }

  @inline add(index: i32, delta: i64): void {
    const v = unchecked(this.deltas[index]);
    if (v == 0) this.dirty.push(index);
    unchecked(this.deltas[index] = v + delta);
  }

  /** Hands the changed counters to the host; the next frame reads the clock again. */
  flush(): void {
    this.nowCache = 0;
    const dirty = this.dirty;
    for (let i = 0; i < dirty.length; i++) {
      const index = unchecked(dirty[i]);
      const v = unchecked(this.deltas[index]);
      unchecked(this.deltas[index] = 0);
      if (v > 0) this.counters[index].increment(v);
    }
    dirty.length = 0;
  }

  /** Monotonic ns, read once per callback (frames of one callback arrived together). */
  now(): u64 {
    if (this.nowCache == 0) this.nowCache = monotonicTimeNanos();
    return this.nowCache;
  }

  request(key: i16, version: i16, known: bool): void {
    if (!known) { this.add(this.unknownRequest, 1); return; }
    const k = <i32>key * VERSION_SLOTS + <i32>version;
    let i = version < VERSION_SLOTS ? unchecked(this.requests[k]) - 1 : -1;
    if (i < 0) {
      i = this.index("request." + snakeName(API_NAME[key]) + ".v" + version.toString());
      if (version < VERSION_SLOTS) this.requests[k] = i + 1;
    }
    this.add(i, 1);
  }

  response(key: i16, version: i16, known: bool, latencyNs: u64): void {
    if (!known) { this.add(this.unknownResponse, 1); return; }
    const k = <i32>key * VERSION_SLOTS + <i32>version;
    let i = version < VERSION_SLOTS ? unchecked(this.responses[k]) - 1 : -1;
    if (i < 0) {
      i = this.index("response." + snakeName(API_NAME[key]) + ".v" + version.toString());
      if (version < VERSION_SLOTS) this.responses[k] = i + 1;
    }
    this.add(i, 1);
    let h = this.latency[key];
    if (h == null) {
      h = new Histogram(this.prefix + ".latency_us." + snakeName(API_NAME[key]));
      this.latency[key] = h;
    }
    h.record(latencyNs / 1000);
  }

  closed(reason: string): void { this.add(this.index("closed." + reason), 1); }
  refused(reason: string): void { this.add(this.index("refused." + reason), 1); }
  /** Kafka's error codes run from -1 to ~130; anything else is one counter, so bad bytes cannot mint thousands. */
  errorCode(code: i32): void {
    const slot = code >= -1 && code <= 255 ? code + 1 : 257;
    let i = unchecked(this.errorIndex[slot]) - 1;
    if (i < 0) {
      i = this.index("response_error." + (slot < 257 ? code.toString() : "other"));
      this.errorIndex[slot] = i + 1;
    }
    this.add(i, 1);
  }
  unknownBroker(): void { this.add(this.unknownBrokerIndex, 1); }
  rewritten(): void { this.add(this.rewrittenIndex, 1); }
  capped(): void {
    if (this.cappedIndex < 0) this.cappedIndex = this.index("api_versions.capped");
    this.add(this.cappedIndex, 1);
  }
  opaque(): void { this.add(this.index("sasl_v0_unparsed"), 1); }
  saslToken(): void { this.add(this.index("sasl_v0_tokens"), 1); }
  /** A ShareFetch response too large to hold carried leader addresses: they passed unrewritten. */
  unrewritten(): void { this.add(this.index("brokers.unrewritten"), 1); }
  /** Whether an unrewritten ShareFetch response is reported for the first time in this VM. */
  firstUnrewritten(): bool {
    if (this.loggedUnrewritten) return false;
    this.loggedUnrewritten = true;
    return true;
  }
  private loggedUnrewritten: bool = false;

  produceBatches(batches: i32, codecMask: i32): void {
    if (batches > 0) this.add(this.batches, batches);
    for (let i = 0; i < 8; i++) {
      if ((codecMask & (1 << i)) == 0) continue;
      let c = this.compression[i];
      if (c < 0) { c = this.index("produce.compression." + CODEC_NAMES[i]); this.compression[i] = c; }
      this.add(c, 1);
    }
  }

  topicProduce(i: i32, bytes: i64, batches: i32, records: i64): void {
    const t = this.topics[i];
    if (bytes > 0) this.add(t.produceBytes, bytes);
    if (batches > 0) this.add(t.produceBatches, batches);
    if (records > 0) this.add(t.produceRecords, records);
  }

  topicFetched(i: i32, bytes: i64, batches: i32, records: i64): void {
    const t = this.topics[i];
    if (bytes > 0) this.add(t.fetchBytes, bytes);
    if (batches > 0) this.add(t.fetchBatches, batches);
    if (records > 0) this.add(t.fetchRecords, records);
  }

  unmeteredFetch(): void { this.add(this.index("fetch.unmetered_responses"), 1); }

  topicFetch(i: i32): void {
    this.add(this.topics[i].fetchRequests, 1);
  }

  /** Whether the missing broker `id` is reported for the first time (then the caller writes its line). */
  firstMissingBroker(id: i32): bool {
    if (this.loggedBrokers.has(id)) return false;
    if (this.loggedBrokers.size >= 1024) this.loggedBrokers.clear();
    this.loggedBrokers.add(id);
    return true;
  }

  logError(message: string): void {
    logError(message);
  }
}

/** The layer's counters, whose once-per-callback flush also flushes the filter's own. */
export class KafkaCounters extends Counters {
  constructor(readonly stats: Stats) { super(); }

  flush(): void {
    super.flush();
    this.stats.flush();
  }
}
