// One Kafka connection on the SDK's framed-stream layer: frames both
// directions (int32 size, then the request or response header), matches
// each response to its request by correlation id (Kafka answers a
// connection's requests in order; a response's header and body shape
// depend on its request's key and version), walks the bodies a proxy needs
// with the generated walkers, applies policy, rewrites broker addresses and
// counts. Pure apart from the clock (passed in) and counters (through Stats).
import { Codec, Frame, Verdict } from "../sdk/stream";
import { MatchInput } from "../sdk/match";
import { jsonQuote } from "../sdk/json";
import { ATTR_CLIENT_ID, AclRule, Config } from "./config";
import {
  CLUSTER_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
  TopicRef, defaultRefusal, fetchRefusal, placeholderRequest, produceRefusal, refusedCount, writeFetchTopics, writeProduceTopics,
} from "./encode";
import { API_NAME } from "./gen/apis";
import { hasRequestWalker, hasResponseWalker, walkRequest, walkResponse } from "./gen/walkers";
import { Reader } from "./reader";
import { BrokerRef, RequestSink, ResponseSink } from "./sinks";
import { Stats } from "./stats";
import {
  API_DESCRIBE_CLUSTER, API_FETCH, API_FIND_COORDINATOR, API_METADATA, API_PRODUCE, API_SASL_AUTHENTICATE, API_SASL_HANDSHAKE, API_VERSIONS,
  HDR_BAD, HDR_NEED_MORE, RequestHeader, Writer, be16, be32, parseRequestHeader, requestIsFlexible, responseBodyAt, responseHeaderVersion,
  responseIsFlexible, uvarintSize,
} from "./wire";

/** Kafka's UNSUPPORTED_VERSION: an ApiVersions response carrying it is in the v0 shape whatever was asked. */
const UNSUPPORTED_VERSION: i32 = 35;

/**
 * Fetch responses up to this size are read whole for topic metrics (bytes,
 * batches and records per prefix); larger ones pass unread and count in
 * fetch.unmetered_responses. Holding a response delays it until it is whole.
 */
const FETCH_METRICS_MAX_BYTES: i32 = 1 << 20;

/** A request the broker (or the filter) still owes an answer to. */
class InFlight {
  correlationId: i32 = 0;
  key: i16 = 0;
  version: i16 = 0;
  known: bool = false;
  startNs: u64 = 0;
  /** The filter answers it (the broker answers a placeholder in its place). */
  refused: bool = false;
  /** Refused topic elements to add to the broker's response (a partly refused Produce/Fetch). */
  merge: ArrayBuffer | null = null;
  mergeCount: i32 = 0;
}

/** Topic ids → names, learned from Metadata responses (shared by the VM's connections). */
const topicNames: Map<string, string> = new Map<string, string>();
const TOPIC_NAMES_MAX: i32 = 2048;

function uuidKey(p: usize): string {
  let s = "";
  for (let i = 0; i < 16; i++) {
    const b = load<u8>(p + <usize>i);
    s += String.fromCharCode(0x61 + (b >> 4)) + String.fromCharCode(0x61 + (b & 15));
  }
  return s;
}

function text(p: usize, len: i32): string {
  return len <= 0 ? "" : String.UTF8.decodeUnsafe(p, <usize>len);
}

/** The first rule that matches decides; none: the default. */
function aclAllows(rules: AclRule[], defaultAllow: bool, topicPtr: usize, topicLen: i32, haveTopic: bool, clientPtr: usize, clientLen: i32, userPtr: usize, userLen: i32): bool {
  for (let i = 0; i < rules.length; i++) {
    const r = unchecked(rules[i]);
    const t = r.topic;
    if (t != null && (!haveTopic || !t.matches(topicPtr, <usize>topicLen))) continue;
    const c = r.clientId;
    if (c != null && (clientLen < 0 || !c.matches(clientPtr, <usize>clientLen))) continue;
    const u = r.user;
    if (u != null && (userLen < 0 || !u.matches(userPtr, <usize>userLen))) continue;
    return r.allow;
  }
  return defaultAllow;
}

/** The error code a refused request of this key gets. */
function refusalCode(key: i16): i16 {
  switch (key) {
    case 0: case 1: case 2: case 3: case 19: case 20: case 21: case 37: case 44: case 45: case 46: case 61: case 62:
      return TOPIC_AUTHORIZATION_FAILED;
    case 8: case 9: case 10: case 11: case 12: case 13: case 14: case 15: case 16: case 42: case 47: case 68: case 69: case 76: case 77: case 78: case 79: case 80: case 81:
      return GROUP_AUTHORIZATION_FAILED;
    case 22: case 24: case 25: case 26: case 28: case 65: case 66:
      return TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
  }
  return CLUSTER_AUTHORIZATION_FAILED;
}

export class KafkaCodec extends Codec {
  private readonly reader: Reader = new Reader();
  private readonly req: RequestSink = new RequestSink();
  private readonly resp: ResponseSink = new ResponseSink();
  private readonly header: RequestHeader = new RequestHeader();
  private readonly edits: Edits = new Edits();
  private readonly inFlight: InFlight[] = [];
  private inFlightHead: i32 = 0;
  private readonly pool: InFlight[] = [];
  private readonly match: MatchInput = new MatchInput(1);
  /** The connection's client id (from its latest request) and SASL PLAIN user. */
  clientId: Uint8Array | null = null;
  user: Uint8Array | null = null;
  private mechanismPlain: bool = false;
  /** After a SaslHandshake v0, the SASL tokens that follow are raw size-prefixed frames: the connection goes on unparsed. */
  private opaque: bool = false;
  private handshakeV0: bool = false;
  // what measure() found, for onFrame()
  private bodyAt: i32 = 0;
  private whole: bool = false;

  constructor(readonly config: Config, readonly stats: Stats) {
    super();
    // hold a connection for its first request only when some route matches on it, and only on the
    // bootstrap listener (a per-broker listener's connections go to that broker's cluster, always)
    let matching = false;
    for (let i = 0; i < config.routes.length; i++) if (config.routes.routes[i].match != null) matching = true;
    this.routes = matching && config.listenerBrokerId < 0;
    this.maxHeader = <u32>max(config.maxRequestBytes, config.maxResponseBytes) + 4;
    this.maxPendingReplies = config.maxInFlight;
    this.headWindow = 64;
    this.frameNoun = "frames";
    this.serverNoun = "broker";
  }

  // ------------------------------------------------------------------ framing

  measure(frame: Frame): i64 {
    const avail = <i32>min<usize>(frame.avail, 0x7fffffff);
    if (avail < 4) return 4;
    const p = frame.ptr;
    const size = be32(p);
    const fromClient = frame.fromClient;
    // raw SASL tokens (after a SaslHandshake v0) may be empty: only their size prefix is checked
    const smallest: i32 = this.opaque ? 0 : fromClient ? 8 : 4;
    if (size < smallest || size > 0x7ffffffb) return this.bad(frame, "bad_size", "frame size " + size.toString() + " is not a valid Kafka frame size");
    frame.length = <u64>size + 4;
    if (this.opaque) { this.whole = false; return 4; }
    if (fromClient) return this.measureRequest(frame, p, size, avail);
    return this.measureResponse(frame, p, size, avail);
  }

  private bad(frame: Frame, reason: string, detail: string): i64 {
    this.stats.closed(reason);
    return frame.reject(Verdict.close(detail));
  }

  /** Asks for more of a head whose length is not known yet (at most the frame). */
  private more(frame: Frame, avail: i32, size: i32): i64 {
    return <i64>min<i32>(size + 4, max<i32>(avail * 2, avail + 64));
  }

  private measureRequest(frame: Frame, p: usize, size: i32, avail: i32): i64 {
    if (size > this.config.maxRequestBytes) {
      return this.bad(frame, "request_too_large", "request of " + size.toString() + " bytes is over limits.max_request_bytes (" + this.config.maxRequestBytes.toString() + ")");
    }
    const h = this.header;
    const r = parseRequestHeader(p, size, avail, h);
    if (r == HDR_NEED_MORE) return this.more(frame, avail, size);
    if (r == HDR_BAD) return this.bad(frame, "truncated_header", "request header does not fit its frame (size " + size.toString() + ")");
    this.bodyAt = h.bodyAt;
    // bodies are read whole where the filter needs them; a refused key's body is never read
    this.whole = h.known && hasRequestWalker(h.key) && !this.denied(h.key);
    return this.whole ? <i64>size + 4 : <i64>h.bodyAt;
  }

  private denied(key: i16): bool {
    if (key < 0) return this.config.denyUnknownKeys;
    if (<i32>key >= this.config.deniedKeys.length) return this.config.denyUnknownKeys;
    return this.config.deniedKeys[key];
  }

  private peek(): InFlight | null {
    return this.inFlightHead < this.inFlight.length ? this.inFlight[this.inFlightHead] : null;
  }

  private measureResponse(frame: Frame, p: usize, size: i32, avail: i32): i64 {
    if (avail < 8) return 8;
    const corr = be32(p + 4);
    const e = this.peek();
    if (e == null || e.correlationId != corr) {
      return this.bad(frame, "response_without_request", "response with correlation id " + corr.toString() + (e == null ? " but no request is waiting" : " but the next request waiting is " + e.correlationId.toString()));
    }
    if (e.refused || !e.known) { this.whole = false; this.bodyAt = 8; return 8; }
    const at = responseBodyAt(p, size, avail, responseHeaderVersion(e.key, e.version));
    if (at == -1) return this.more(frame, avail, size);
    if (at < 0) return this.bad(frame, "truncated_header", "response header does not fit its frame (size " + size.toString() + ")");
    this.bodyAt = at;
    this.whole = this.readsResponse(e, size);
    if (this.whole && size > this.config.maxResponseBytes) {
      return this.bad(frame, "response_too_large", API_NAME[e.key] + " response of " + size.toString() + " bytes is over limits.max_response_bytes (" + this.config.maxResponseBytes.toString() + ")");
    }
    return this.whole ? <i64>size + 4 : <i64>at;
  }

  /** Responses read whole: every one with a walker except Fetch (records can be megabytes), which only a partial refusal makes the filter read. */
  private readsResponse(e: InFlight, size: i32): bool {
    // Fetch: for a partly refused request (to add the refusals), and for topic metrics when small enough to hold
    if (e.key == API_FETCH) {
      return e.merge != null || (this.config.topicMetrics.length > 0 && size <= min(FETCH_METRICS_MAX_BYTES, this.config.maxResponseBytes));
    }
    // ApiVersions: only when the filter lowers versions in it (it lists every key: the longest of the small bodies)
    if (e.key == API_VERSIONS) return this.capsVersions;
    return hasResponseWalker(e.key);
  }

  /** Whether ApiVersions responses get Produce/Fetch capped (see capVersions). */
  private get capsVersions(): bool {
    const c = this.config;
    return (c.needsTopicNames && !c.keepTopicIds) || c.rewrites;
  }

  // ------------------------------------------------------------------ frames

  onFrame(frame: Frame): Verdict {
    if (this.opaque) return Verdict.forward();
    return frame.fromClient ? this.onRequest(frame) : this.onResponse(frame);
  }

  private onRequest(frame: Frame): Verdict {
    const h = this.header;
    const p = frame.ptr;
    const size = <i32>(frame.length - 4);
    const stats = this.stats;
    stats.request(h.key, h.version, h.known);
    if (h.clientIdLen >= 0) {
      const id = this.clientId;
      if (id == null || id.length != h.clientIdLen || memory.compare(id.dataStart, p + <usize>h.clientIdAt, <usize>h.clientIdLen) != 0) {
        const copy = new Uint8Array(h.clientIdLen);
        memory.copy(copy.dataStart, p + <usize>h.clientIdAt, <usize>h.clientIdLen);
        this.clientId = copy;
      }
    }
    if (this.routes && !this.conn.routed) this.pickRoute();
    if (this.inFlight.length - this.inFlightHead >= this.config.maxInFlight) {
      stats.closed("too_many_in_flight");
      return Verdict.close("more than limits.max_in_flight (" + this.config.maxInFlight.toString() + ") requests waiting for answers");
    }

    // API keys denied outright: answered with the key's own response and an authorization error
    if (this.denied(h.key)) {
      stats.refused("api_key");
      const reply = defaultRefusal(h.key, h.version, h.correlationId, refusalCode(h.key));
      if (reply == null) {
        stats.closed("denied_unknown_api");
        return Verdict.close("API key " + h.key.toString() + " v" + h.version.toString() + " is denied and has no known response shape");
      }
      this.push(h, true);
      this.log(frame, h, "refuse", "api_key");
      return Verdict.reply(reply, placeholderRequest(h.correlationId));
    }
    if (!this.whole) {
      this.push(h, false);
      frame.expectAnswer();
      this.log(frame, h, "forward", "");
      return Verdict.forward();
    }

    const s = this.req;
    s.reset(p);
    const r = this.reader;
    r.reset(p, h.bodyAt, size + 4);
    // the body must end where the frame does: a length that lies (or bytes smuggled after the body) closes
    if (!walkRequest(h.key, h.version, r, s) || r.pos != size + 4) {
      stats.closed("malformed_body");
      return Verdict.close(API_NAME[h.key] + " v" + h.version.toString() + " request body does not parse (at byte " + r.pos.toString() + " of " + (size + 4).toString() + ")");
    }
    if (h.key == API_PRODUCE) return this.produce(frame, h);
    if (h.key == API_FETCH) return this.fetch(frame, h);
    if (h.key == API_SASL_HANDSHAKE) {
      const m = s.mechanism;
      this.mechanismPlain = m.len == 5 && String.UTF8.decodeUnsafe(p + <usize>m.at, 5) == "PLAIN";
      this.handshakeV0 = h.version == 0;
    } else if (h.key == API_SASL_AUTHENTICATE && this.mechanismPlain && s.auth.len > 0) {
      this.takePlainUser(p + <usize>s.auth.at, s.auth.len);
    }
    this.push(h, false);
    frame.expectAnswer();
    this.log(frame, h, "forward", "");
    return Verdict.forward();
  }

  /** SASL PLAIN: authzid NUL authcid NUL password; the user is authcid. */
  private takePlainUser(p: usize, len: i32): void {
    let first = -1;
    let second = -1;
    for (let i = 0; i < len; i++) {
      if (load<u8>(p + <usize>i) == 0) {
        if (first < 0) first = i; else { second = i; break; }
      }
    }
    if (first < 0 || second < 0) return;
    const n = second - first - 1;
    const u = new Uint8Array(n);
    memory.copy(u.dataStart, p + <usize>first + 1, <usize>n);
    this.user = u;
  }

  private pickRoute(): void {
    const id = this.clientId;
    const m = this.match;
    if (id != null) m.set(ATTR_CLIENT_ID, id.dataStart, <usize>id.length); else m.unset(ATTR_CLIENT_ID);
    const i = this.config.routes.pick(m);
    this.conn.route(i >= 0 ? this.config.routes.routes[i].cluster : "");
  }

  private push(h: RequestHeader, refused: bool): InFlight {
    const e = this.pool.length > 0 ? this.pool.pop() : new InFlight();
    e.correlationId = h.correlationId;
    e.key = h.key;
    e.version = h.version;
    e.known = h.known;
    e.refused = refused;
    e.merge = null;
    e.mergeCount = 0;
    e.startNs = this.stats.now();
    const head = this.inFlightHead;
    const q = this.inFlight;
    if (head > 0 && (head == q.length || (head >= 32 && head * 2 >= q.length))) {
      // answered entries are free again (the only place entries go back to the pool; a pipelining
      // client never drains the queue, so it is compacted once half of it is answered)
      for (let i = 0; i < head; i++) this.pool.push(q[i]);
      const left = q.length - head;
      for (let i = 0; i < left; i++) q[i] = q[head + i];
      q.length = left;
      this.inFlightHead = 0;
    }
    this.inFlight.push(e);
    return e;
  }

  private pop(): InFlight {
    const e = this.inFlight[this.inFlightHead];
    this.inFlightHead++;
    return e;
  }

  /** Resolves each topic's name (by id through the Metadata-learned map) and applies `rules`; returns the refused count. */
  private judge(p: usize, rules: AclRule[], reason: string): i32 {
    const topics = this.req.topics;
    const c = this.config;
    const id = this.clientId;
    const u = this.user;
    const clientPtr = id != null ? id.dataStart : 0;
    const clientLen = id != null ? id.length : -1;
    const userPtr = u != null ? u.dataStart : 0;
    const userLen = u != null ? u.length : -1;
    let refused = 0;
    for (let i = 0; i < topics.length; i++) {
      const t = unchecked(topics[i]);
      let namePtr = p + <usize>t.nameAt;
      let nameLen = t.nameLen;
      let haveName = nameLen >= 0;
      if (!haveName && t.idAt >= 0) {
        const key = uuidKey(p + <usize>t.idAt);
        if (topicNames.has(key)) {
          t.name = topicNames.get(key);
          const b = String.UTF8.encode(t.name);
          namePtr = changetype<usize>(b);
          nameLen = b.byteLength;
          haveName = true;
          t.allowed = aclAllows(rules, c.aclDefaultAllow, namePtr, nameLen, true, clientPtr, clientLen, userPtr, userLen);
          if (!t.allowed) { refused++; this.stats.refused(reason); }
          this.countTopic(t, namePtr, nameLen);
          continue;
        }
        // a topic id no Metadata response described: no name to judge, so rules with topics fail closed
        t.allowed = c.needsTopicNames ? false : true;
        if (!t.allowed) { refused++; this.stats.refused("unknown_topic_id"); }
        continue;
      }
      t.allowed = aclAllows(rules, c.aclDefaultAllow, namePtr, nameLen, haveName, clientPtr, clientLen, userPtr, userLen);
      if (!t.allowed) { refused++; this.stats.refused(reason); }
      this.countTopic(t, namePtr, nameLen);
    }
    return refused;
  }

  private countingProduce: bool = false;

  private countTopic(t: TopicRef, namePtr: usize, nameLen: i32): void {
    const prefixes = this.config.topicMetrics;
    for (let i = 0; i < prefixes.length; i++) {
      if (!unchecked(prefixes[i]).matches(namePtr, <usize>nameLen)) continue;
      if (this.countingProduce) {
        if (t.allowed) this.stats.topicProduce(i, t.bytes, t.batches, t.records);
      } else if (t.allowed) this.stats.topicFetch(i);
    }
  }

  private produce(frame: Frame, h: RequestHeader): Verdict {
    const p = frame.ptr;
    const s = this.req;
    this.countingProduce = true;
    const refused = this.judge(p, this.config.produceRules, "acl_produce");
    this.stats.produceBatches(s.batches, s.codecMask);
    const acks0 = s.acks == 0;
    if (refused == 0) {
      if (!acks0) { this.push(h, false); frame.expectAnswer(); }
      this.log(frame, h, "forward", "");
      return Verdict.forward();
    }
    if (refused == s.topics.length) {
      this.log(frame, h, acks0 ? "drop" : "refuse", "acl_produce");
      // acks=0: the producer expects no answer
      if (acks0) return Verdict.drop();
      this.push(h, true);
      return Verdict.reply(produceRefusal(p, h.version, h.correlationId, s.topics, TOPIC_AUTHORIZATION_FAILED), placeholderRequest(h.correlationId));
    }
    // some topics refused: they are cut from the request, and their answers added to the broker's response
    const rewritten = this.withoutRefused(p, <i32>frame.length, requestIsFlexible(API_PRODUCE, h.version));
    this.log(frame, h, "rewrite", "acl_produce");
    if (!acks0) {
      const e = this.push(h, false);
      const w = new Writer();
      writeProduceTopics(w, p, h.version, s.topics, TOPIC_AUTHORIZATION_FAILED);
      e.merge = w.take();
      e.mergeCount = refused;
      frame.expectAnswer();
    }
    return Verdict.replace(rewritten);
  }

  private fetch(frame: Frame, h: RequestHeader): Verdict {
    const p = frame.ptr;
    const s = this.req;
    this.countingProduce = false;
    const refused = this.judge(p, this.config.fetchRules, "acl_fetch");
    if (refused == 0) {
      this.push(h, false);
      frame.expectAnswer();
      this.log(frame, h, "forward", "");
      return Verdict.forward();
    }
    if (refused == s.topics.length) {
      this.push(h, true);
      this.log(frame, h, "refuse", "acl_fetch");
      return Verdict.reply(fetchRefusal(p, h.version, h.correlationId, s.topics, TOPIC_AUTHORIZATION_FAILED, 0), placeholderRequest(h.correlationId));
    }
    const rewritten = this.withoutRefused(p, <i32>frame.length, requestIsFlexible(API_FETCH, h.version));
    const e = this.push(h, false);
    const w = new Writer();
    writeFetchTopics(w, p, h.version, s.topics, TOPIC_AUTHORIZATION_FAILED);
    e.merge = w.take();
    e.mergeCount = refused;
    frame.expectAnswer();
    this.log(frame, h, "rewrite", "acl_fetch");
    return Verdict.replace(rewritten);
  }

  /** The request frame without its refused topic elements (the topic array's count rewritten). */
  private withoutRefused(p: usize, len: i32, flexible: bool): ArrayBuffer {
    const s = this.req;
    const w = new Writer();
    w.i32(0);
    let at = 4;
    w.bytes(p + <usize>at, s.topicCountAt - at);
    w.count(s.topics.length - refusedCount(s.topics), flexible);
    at = s.topicCountAt + s.topicCountLen;
    for (let i = 0; i < s.topics.length; i++) {
      const t = s.topics[i];
      if (t.allowed) continue;
      w.bytes(p + <usize>at, t.beginAt - at);
      at = t.endAt;
    }
    w.bytes(p + <usize>at, len - at);
    w.patchSize(0);
    return w.take();
  }

  // ------------------------------------------------------------------ responses

  private onResponse(frame: Frame): Verdict {
    const e = this.pop();
    const answer = frame.takeAnswer();
    const stats = this.stats;
    const now = this.stats.now();
    stats.response(e.key, e.version, e.known, now > e.startNs ? now - e.startNs : 0);
    if (answer != null) {
      this.logResponse(frame, e, "refusal");
      return Verdict.replace(answer);
    }
    if (!this.whole) {
      if (e.key == API_FETCH && this.config.topicMetrics.length > 0) stats.unmeteredFetch();
      this.logResponse(frame, e, "forward");
      return Verdict.forward();
    }
    const p = frame.ptr;
    const len = <i32>frame.length;
    const s = this.resp;
    s.reset();
    s.base = p;
    const r = this.reader;
    r.reset(p, this.bodyAt, len);
    let version = e.version;
    // an ApiVersions answer to a version the broker lacks is in the v0 shape (UNSUPPORTED_VERSION first)
    if (e.key == API_VERSIONS && len - this.bodyAt >= 2 && <i32>be16(p + <usize>this.bodyAt) == UNSUPPORTED_VERSION) version = 0;
    // ApiVersions lists every key the broker has: a dedicated scan (no event per field) reads and caps it
    const walked = e.key == API_VERSIONS ? this.scanApiVersions(p, this.bodyAt, len, version) : walkResponse(e.key, version, r, s);
    if (!walked || (e.key != API_VERSIONS && r.pos != len)) {
      stats.closed("malformed_body");
      return Verdict.close(API_NAME[e.key] + " v" + e.version.toString() + " response body does not parse (at byte " + r.pos.toString() + " of " + len.toString() + ")");
    }
    for (let i = 0; i < s.errorCodes.length; i++) stats.errorCode(s.errorCodes[i]);
    if (e.key == API_METADATA) this.learnTopicIds(p);
    if (e.key == API_FETCH) this.countFetched(p);
    if (e.key == API_SASL_HANDSHAKE && this.handshakeV0 && s.errorCodes.length == 0) {
      this.opaque = true;
      this.conn.note = "SASL handshake v0: the tokens that follow pass unparsed";
      stats.opaque();
    }
    if (e.key == API_SASL_AUTHENTICATE && s.errorCodes.length > 0) this.user = null;

    const edits = this.edits;
    edits.reset();
    if (this.config.rewrites && s.brokers.length > 0) this.rewriteBrokers(p, edits, e);
    if (e.key == API_VERSIONS) this.capVersions(edits);
    if (e.merge != null && s.topicCountAt >= 0) {
      const w = edits.begin(s.topicCountAt, s.topicCountAt + s.topicCountLen, -1);
      w.count(s.topicCount + e.mergeCount, responseIsFlexible(e.key, e.version));
      w.bytes(changetype<usize>(e.merge), e.merge!.byteLength);
      edits.done();
    }
    this.logResponse(frame, e, edits.count > 0 ? "rewrite" : "forward");
    if (edits.count == 0) return Verdict.forward();
    return Verdict.replace(edits.apply(p, len, s));
  }

  /** Per topic_metrics prefix: the bytes, batches and records a Fetch response carried. */
  private countFetched(p: usize): void {
    const s = this.resp;
    const prefixes = this.config.topicMetrics;
    for (let i = 0; i < s.fetchTopics.length; i++) {
      let namePtr = p + <usize>s.fetchTopics[i].at;
      let nameLen = s.fetchTopics[i].len;
      if (nameLen < 0 && s.fetchTopicIds[i] >= 0) {
        const key = uuidKey(p + <usize>s.fetchTopicIds[i]);
        if (!topicNames.has(key)) continue;
        const b = String.UTF8.encode(topicNames.get(key));
        namePtr = changetype<usize>(b);
        nameLen = b.byteLength;
      }
      if (nameLen < 0) continue;
      for (let j = 0; j < prefixes.length; j++) {
        if (unchecked(prefixes[j]).matches(namePtr, <usize>nameLen)) this.stats.topicFetched(j, s.fetchBytes[i], s.fetchBatches[i], s.fetchRecords[i]);
      }
    }
  }

  private learnTopicIds(p: usize): void {
    const s = this.resp;
    for (let i = 0; i < s.topicIds.length; i++) {
      if (topicNames.size >= TOPIC_NAMES_MAX) topicNames.clear();
      const span = s.topicNames[i];
      topicNames.set(uuidKey(p + <usize>s.topicIds[i]), text(p + <usize>span.at, span.len));
    }
  }

  /** Every broker address becomes advertise:port of the Envoy listener fronting that broker. */
  private rewriteBrokers(p: usize, edits: Edits, e: InFlight): void {
    const s = this.resp;
    const c = this.config;
    const flexible = responseIsFlexible(e.key, e.version);
    for (let i = 0; i < s.brokers.length; i++) {
      const b = unchecked(s.brokers[i]);
      // FindCoordinator with an error names node -1 at "" : nothing to rewrite
      if (b.nodeId < 0) continue;
      const port = c.brokerPort(b.nodeId);
      if (port < 0) {
        this.stats.unknownBroker();
        this.conn.note = "broker " + b.nodeId.toString() + " is not in the filter's brokers";
        this.unknownBroker(b, p);
        continue;
      }
      edits.begin(b.hostPrefixAt, b.hostAt + max(b.hostLen, 0), s.brokerTag[i]).str(c.advertiseBytes.dataStart, c.advertiseBytes.length, flexible);
      edits.done();
      edits.begin(b.portAt, b.portAt + 4, s.brokerTag[i]).i32(port);
      edits.done();
      this.stats.rewritten();
    }
  }

  /** One error line per broker id and connection: its address is unreachable through Envoy. */
  private unknownBroker(b: BrokerRef, p: usize): void {
    if (!this.stats.firstMissingBroker(b.nodeId)) return;
    this.stats.logError("kafka: broker " + b.nodeId.toString() + " (" + text(p + <usize>b.hostAt, b.hostLen) + ":" + b.port.toString() +
      ") is in a response but not in the filter's brokers: clients cannot reach it through Envoy (add it to brokers)");
  }

  /**
   * Caps the versions the broker advertises where the filter needs an older
   * shape: Produce and Fetch at 12 when policy or metrics need topic names
   * (13+ name topics by id), Fetch at 15 when broker addresses are rewritten
   * (16+ put leader addresses at the end of the records).
   */
  private capVersions(edits: Edits): void {
    const c = this.config;
    const names = c.needsTopicNames && !c.keepTopicIds;
    for (let key = 0; key < 2; key++) {
      const at = key == 0 ? this.produceMaxAt : this.fetchMaxAt;
      if (at < 0) continue;
      let cap = 0x7fff;
      if (key == API_PRODUCE && names) cap = 12;
      if (key == API_FETCH) {
        if (names) cap = 12;
        else if (c.rewrites) cap = 15;
      }
      const max = key == 0 ? this.produceMax : this.fetchMax;
      const min = key == 0 ? this.produceMin : this.fetchMin;
      if (max <= cap || min > cap) continue;
      edits.begin(at, at + 2, -1).i16(cap);
      edits.done();
      this.stats.capped();
    }
  }

  private produceMaxAt: i32 = -1;
  private produceMax: i32 = 0;
  private produceMin: i32 = 0;
  private fetchMaxAt: i32 = -1;
  private fetchMax: i32 = 0;
  private fetchMin: i32 = 0;

  /**
   * Reads an ApiVersions response body at [at, len) of the frame (its shape:
   * ErrorCode, ApiKeys [ApiKey, MinVersion, MaxVersion, tags (v3+)],
   * ThrottleTimeMs (v1+), tags (v3+)), noting where Produce's and Fetch's
   * max versions are; false when it does not parse or does not end at len.
   */
  private scanApiVersions(p: usize, at: i32, len: i32, version: i16): bool {
    this.produceMaxAt = -1;
    this.fetchMaxAt = -1;
    const flex = version >= 3;
    const r = this.reader;
    r.reset(p, at, len);
    const code = r.i16();
    if (code != 0) this.resp.errorCodes.push(code);
    const n = r.count(flex);
    let pos = r.pos;
    for (let i = 0; i < n; i++) {
      if (len - pos < 6) return false;
      const q = p + <usize>pos;
      const key = <i32>bswap<u16>(load<u16>(q));
      if (key <= 1) {
        const min = <i32>bswap<u16>(load<u16>(q, 2));
        const max = <i32>bswap<u16>(load<u16>(q, 4));
        if (key == 0) { this.produceMaxAt = pos + 4; this.produceMax = max; this.produceMin = min; }
        else { this.fetchMaxAt = pos + 4; this.fetchMax = max; this.fetchMin = min; }
      }
      pos += 6;
      if (flex) {
        // almost always "no tags": one zero byte
        if (pos < len && load<u8>(p + <usize>pos) == 0) pos++;
        else { r.pos = pos; r.skipTags(); if (!r.ok) return false; pos = r.pos; }
      }
    }
    r.pos = pos;
    if (version >= 1) r.skip(4);
    if (flex) r.skipTags();
    return r.ok && r.pos == len;
  }

  // ------------------------------------------------------------------ packet log

  private log(frame: Frame, h: RequestHeader, decision: string, reason: string): void {
    if (!frame.logging) return;
    const p = frame.ptr;
    const rec = frame.record("request")
      .int("api_key", h.key)
      .str("api", h.known || (h.key >= 0 && <i32>h.key < API_NAME.length) ? API_NAME[h.key] : "unknown")
      .int("api_version", h.version)
      .int("correlation_id", h.correlationId);
    if (h.clientIdLen >= 0) rec.bytes("client_id", p + <usize>h.clientIdAt, <usize>h.clientIdLen); else rec.raw("client_id", "null");
    rec.int("size", <i64>frame.length);
    if (this.whole) {
      const s = this.req;
      if (s.topics.length > 0) {
        let topics = "[";
        for (let i = 0; i < s.topics.length; i++) {
          const t = s.topics[i];
          if (i > 0) topics += ",";
          topics += jsonQuote(t.nameLen >= 0 ? text(p + <usize>t.nameAt, t.nameLen) : t.name.length > 0 ? t.name : "id:" + uuidKey(p + <usize>t.idAt));
        }
        rec.raw("topics", topics + "]");
      }
      if (s.groups.length > 0) {
        let groups = "[";
        for (let i = 0; i < s.groups.length; i++) {
          if (i > 0) groups += ",";
          groups += jsonQuote(text(p + <usize>s.groups[i].at, s.groups[i].len));
        }
        rec.raw("group_ids", groups + "]");
      }
      if (h.key == API_PRODUCE) {
        rec.int("acks", s.acks).int("record_batches", s.batches);
        if (s.transactionalId.len >= 0) rec.bytes("transactional_id", p + <usize>s.transactionalId.at, <usize>s.transactionalId.len);
      }
      if (s.mechanism.len >= 0) rec.bytes("mechanism", p + <usize>s.mechanism.at, <usize>s.mechanism.len);
      if (h.key == API_SASL_AUTHENTICATE && this.user != null) rec.str("user", String.UTF8.decode(this.user!.buffer));
    }
    rec.str("decision", decision);
    if (reason.length > 0) rec.str("reason", reason);
    rec.emit();
  }

  private logResponse(frame: Frame, e: InFlight, decision: string): void {
    if (!frame.logging) return;
    const rec = frame.record("response")
      .int("api_key", e.key)
      .str("api", e.key >= 0 && <i32>e.key < API_NAME.length ? API_NAME[e.key] : "unknown")
      .int("api_version", e.version)
      .int("correlation_id", e.correlationId)
      .int("size", <i64>frame.length);
    if (this.whole && decision != "refusal") {
      const s = this.resp;
      if (s.errorCodes.length > 0) {
        let codes = "[";
        for (let i = 0; i < s.errorCodes.length; i++) codes += (i > 0 ? "," : "") + s.errorCodes[i].toString();
        rec.raw("error_codes", codes + "]");
      }
      if (s.brokers.length > 0) {
        let brokers = "[";
        for (let i = 0; i < s.brokers.length; i++) {
          const b = s.brokers[i];
          brokers += (i > 0 ? "," : "") + "{\"node_id\":" + b.nodeId.toString() + ",\"host\":" + jsonQuote(text(frame.ptr + <usize>b.hostAt, b.hostLen)) + ",\"port\":" + b.port.toString() + "}";
        }
        rec.raw("brokers", brokers + "]");
      }
    }
    rec.str("decision", decision);
    rec.emit();
  }

  describe(): string {
    let s = "client_id=" + (this.clientId != null ? jsonQuote(String.UTF8.decode(this.clientId!.buffer)) : "-");
    if (this.user != null) s += " user=" + jsonQuote(String.UTF8.decode(this.user!.buffer));
    return s;
  }

  onStreamError(error: i32, fromClient: bool): Verdict {
    this.stats.closed(error == 0 ? "truncated" : error == 1 ? "frame_too_large" : error == 2 ? "too_many_in_flight" : "end_before_route");
    return super.onStreamError(error, fromClient);
  }
}

/**
 * Byte-range replacements inside one frame, applied in order; tagged fields
 * around them get their sizes rewritten. Replacement bytes go into one arena
 * and the new frame is built in one reused writer: a rewrite allocates only
 * the frame it hands to the layer.
 */
class Edits {
  ats: i32[] = [];
  ends: i32[] = [];
  /** Replacement bytes: [from, from + len) of the arena. */
  froms: i32[] = [];
  lens: i32[] = [];
  /** The tagged field (index in the response sink) each edit sits in, -1 none. */
  tags: i32[] = [];
  arena: Writer = new Writer();
  private out: Writer = new Writer();
  private deltas: i32[] = [];
  private order: i32[] = [];

  get count(): i32 { return this.ats.length; }

  reset(): void {
    if (this.ats.length == 0) return;
    this.ats.length = 0;
    this.ends.length = 0;
    this.froms.length = 0;
    this.lens.length = 0;
    this.tags.length = 0;
    this.arena.reset();
  }

  /** Starts an edit of [at, end): write its bytes to `arena`, then call done(). */
  begin(at: i32, end: i32, tag: i32): Writer {
    this.ats.push(at);
    this.ends.push(end);
    this.froms.push(this.arena.len);
    this.tags.push(tag);
    return this.arena;
  }

  done(): void {
    this.lens.push(this.arena.len - this.froms[this.froms.length - 1]);
  }

  add(at: i32, end: i32, b: ArrayBuffer, tag: i32): void {
    this.begin(at, end, tag).bytes(changetype<usize>(b), b.byteLength);
    this.done();
  }

  /** The frame with every edit applied and a new size prefix. */
  apply(p: usize, len: i32, s: ResponseSink): ArrayBuffer {
    // tagged fields whose content changes size get a new size varint (innermost first: their deltas add up outwards)
    const nt = s.tagged.length;
    const deltas = this.deltas;
    deltas.length = nt;
    for (let t = 0; t < nt; t++) deltas[t] = 0;
    const n0 = this.ats.length;
    for (let i = 0; i < n0; i++) {
      let t = this.tags[i];
      const d = this.lens[i] - (this.ends[i] - this.ats[i]);
      while (t >= 0) { deltas[t] += d; t = s.tagged[t].parent; }
    }
    for (let t = nt - 1; t >= 0; t--) {
      if (deltas[t] == 0) continue;
      const tr = s.tagged[t];
      const w = this.begin(tr.sizeAt, tr.dataAt, -1);
      const before = w.len;
      w.uvarint(<u32>(tr.size + deltas[t]));
      this.done();
      const grow = (w.len - before) - uvarintSize(<u32>tr.size);
      // the size varint itself may change width: the enclosing fields grow with it
      let parent = tr.parent;
      while (parent >= 0 && grow != 0) { deltas[parent] += grow; parent = s.tagged[parent].parent; }
    }
    // in position order (few edits: insertion sort)
    const n = this.ats.length;
    const order = this.order;
    order.length = n;
    for (let i = 0; i < n; i++) order[i] = i;
    for (let i = 1; i < n; i++) {
      const k = order[i];
      let j = i - 1;
      while (j >= 0 && this.ats[order[j]] > this.ats[k]) { order[j + 1] = order[j]; j--; }
      order[j + 1] = k;
    }
    const w = this.out;
    w.reset();
    w.i32(0);
    let at = 4;
    const arena = changetype<usize>(this.arena.buf);
    for (let i = 0; i < n; i++) {
      const e = order[i];
      w.bytes(p + <usize>at, this.ats[e] - at);
      w.bytes(arena + <usize>this.froms[e], this.lens[e]);
      at = this.ends[e];
    }
    w.bytes(p + <usize>at, len - at);
    w.patchSize(0);
    return w.take();
  }
}

export { InFlight };
