// The kafka filter's Envoy stats (docs/kafka.md lists them), created on
// first use: per API key and version there are hundreds of possible names
// and a listener sees a handful. Each is a host counter (or histogram), so
// a name is built once per connection-less VM, not per frame.
import { Counter, Histogram } from "../sdk/metrics";
import { logError } from "../sdk/host";
import { statLabel } from "../sdk/match";
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

const CODEC_NAMES: string[] = ["none", "gzip", "snappy", "lz4", "zstd", "codec5", "codec6", "codec7"];

export class Stats {
  private prefix: string;
  private requests: Map<i32, Counter> = new Map<i32, Counter>();
  private responses: Map<i32, Counter> = new Map<i32, Counter>();
  private latency: StaticArray<Histogram | null> = new StaticArray<Histogram | null>(API_KEY_LIMIT);
  private named: Map<string, Counter> = new Map<string, Counter>();
  private topicNames: string[];
  /** Error lines already written (one per message per VM: a broker missing from `brokers` shows up in every Metadata). */
  private logged: Set<string> = new Set<string>();

  constructor(prefix: string, topicMetricNames: string[]) {
    this.prefix = prefix;
    this.topicNames = topicMetricNames.map<string>((n: string): string => statLabel(n));
  }

  /** A counter by its name under the prefix (defined on first use). */
  counter(name: string): Counter {
    const full = this.prefix + "." + name;
    if (this.named.has(full)) return this.named.get(full);
    const c = new Counter(full);
    this.named.set(full, c);
    return c;
  }

  /** Counters every deployment shows from the start (zero until something happens). */
  defineFixed(): void {
    const names = ["closed.bad_size", "closed.truncated_header", "closed.response_without_request", "closed.malformed_body",
      "closed.request_too_large", "refused.acl_produce", "refused.acl_fetch", "refused.api_key", "request.unknown_api",
      "brokers.rewritten", "brokers.unknown"];
    for (let i = 0; i < names.length; i++) this.counter(names[i]).define();
    for (let i = 0; i < this.topicNames.length; i++) {
      const t = "topic." + this.topicNames[i] + ".";
      this.counter(t + "produce_bytes").define();
      this.counter(t + "produce_batches").define();
      this.counter(t + "produce_records").define();
      this.counter(t + "fetch_requests").define();
    }
  }

  request(key: i16, version: i16, known: bool): void {
    if (!known) { this.counter("request.unknown_api").increment(1); return; }
    const k = (<i32>key << 16) | <i32>version;
    let c: Counter;
    if (this.requests.has(k)) c = this.requests.get(k);
    else {
      c = new Counter(this.prefix + ".request." + snakeName(API_NAME[key]) + ".v" + version.toString());
      this.requests.set(k, c);
    }
    c.increment(1);
  }

  response(key: i16, version: i16, known: bool, latencyNs: u64): void {
    if (!known) { this.counter("response.unknown_api").increment(1); return; }
    const k = (<i32>key << 16) | <i32>version;
    let c: Counter;
    if (this.responses.has(k)) c = this.responses.get(k);
    else {
      c = new Counter(this.prefix + ".response." + snakeName(API_NAME[key]) + ".v" + version.toString());
      this.responses.set(k, c);
    }
    c.increment(1);
    let h = this.latency[key];
    if (h == null) {
      h = new Histogram(this.prefix + ".latency_us." + snakeName(API_NAME[key]));
      this.latency[key] = h;
    }
    h.record(latencyNs / 1000);
  }

  closed(reason: string): void { this.counter("closed." + reason).increment(1); }
  refused(reason: string): void { this.counter("refused." + reason).increment(1); }
  errorCode(code: i32): void { this.counter("response_error." + code.toString()).increment(1); }
  unknownBroker(): void { this.counter("brokers.unknown").increment(1); }
  rewritten(): void { this.counter("brokers.rewritten").increment(1); }
  capped(): void { this.counter("api_versions.capped").increment(1); }
  opaque(): void { this.counter("sasl_v0_unparsed").increment(1); }

  produceBatches(batches: i32, codecMask: i32): void {
    if (batches > 0) this.counter("produce.batches").increment(batches);
    for (let i = 0; i < 8; i++) if ((codecMask & (1 << i)) != 0) this.counter("produce.compression." + CODEC_NAMES[i]).increment(1);
  }

  topicProduce(i: i32, bytes: i64, batches: i32, records: i64): void {
    const t = "topic." + this.topicNames[i] + ".";
    if (bytes > 0) this.counter(t + "produce_bytes").increment(bytes);
    if (batches > 0) this.counter(t + "produce_batches").increment(batches);
    if (records > 0) this.counter(t + "produce_records").increment(records);
  }

  topicFetch(i: i32): void {
    this.counter("topic." + this.topicNames[i] + ".fetch_requests").increment(1);
  }

  logError(message: string): void {
    if (this.logged.has(message)) return;
    if (this.logged.size > 1000) this.logged.clear();
    this.logged.add(message);
    logError(message);
  }
}
