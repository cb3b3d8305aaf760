// One Kafka connection on the SDK's framed-stream layer: frames both
// directions (int32 size, then the request or response header), matches
// each response to its request by correlation id (Kafka answers a
// connection's requests in order; a response's header and body shape
// depend on its request's key and version), walks the bodies a proxy needs
// with the generated walkers, applies policy, rewrites broker addresses and
// counts. Pure apart from the clock (passed in) and counters (through Stats).
import { Codec, Frame, Verdict } from "../sdk/stream";
import { MatchInput, StringMatcher } from "../sdk/match";
import { jsonQuote } from "../sdk/json";
import { ATTR_CLIENT_ID, AclRule, Config } from "./config";
import {
  CLUSTER_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED, MESSAGE_TOO_LARGE, POLICY_VIOLATION, TOPIC_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
  TopicRef, defaultRefusal, fetchRefusal, placeholderRequest, produceRefusal, refusedCount, writeFetchTopics, writeProduceTopics,
} from "./encode";
import { API_NAME } from "./gen/apis";
import {
  EV_AUTH_BYTES, EV_ERROR_CODE, EV_HOST, EV_MECHANISM, EV_NODE_ID, EV_PORT, EV_RECORDS,
  EV_TAGGED_BEGIN, EV_TAGGED_END, EV_TOPIC_BEGIN, EV_TOPIC_COUNT, EV_TOPIC_END, EV_TOPIC_ID, EV_TOPIC_NAME,
  hasRequestWalker, hasResponseWalker, walkRequest, walkResponse,
} from "./gen/walkers";
import { Reader } from "./reader";
import { BrokerRef, RequestSink, ResponseSink } from "./sinks";
import { Stats } from "./stats";
import { RUN_BAD, RUN_END, RUN_NEED_MORE, RUN_RECORDS, SE_END, StreamSink, StreamWalk, streamProgram } from "./stream";
import { SE_ACKS, SE_BROKER, SE_ERROR_CODE, SE_PARTITION_INDEX, SE_TOPIC, SE_TOPIC_ID, SE_TOPIC_NAME } from "./gen/streams";
import {
  API_DESCRIBE_CLUSTER, API_FETCH, API_FIND_COORDINATOR, API_METADATA, API_PRODUCE, API_SASL_AUTHENTICATE, API_SASL_HANDSHAKE, API_SHARE_FETCH, API_VERSIONS,
  HDR_BAD, HDR_NEED_MORE, RequestHeader, Writer, be16, be32, parseRequestHeader, requestIsFlexible, responseBodyAt, responseHeaderVersion,
  responseIsFlexible, uvarintSize,
} from "./wire";

/** Kafka's UNSUPPORTED_VERSION: an ApiVersions response carrying it is in the v0 shape whatever was asked. */
const UNSUPPORTED_VERSION: i32 = 35;

/**
 * The most the filter holds of a message it walks in windows between two
 * records fields (topic and partition headers, aborted transactions): a
 * longer stretch ends the walk (see Segments.rest).
 */
const SEGMENT_HEAD_MAX: i32 = 65536;
/** A record batch (magic 2) header up to its record count: baseOffset .. recordsCount. */
const BATCH_HEAD: i32 = 61;
/** A raw SASL token (after SaslHandshake v0) the filter reads whole to take the PLAIN user. */
const SASL_TOKEN_MAX: i32 = 65536;

/** Why a message is walked in windows. */
const SEG_FETCH: i32 = 1;
const SEG_SHARE_FETCH: i32 = 2;
const SEG_PRODUCE_TOO_LARGE: i32 = 3;
/** What the current window of such a message is. */
const WIN_PROGRAM: i32 = 0;
const WIN_RECORDS: i32 = 1;
const WIN_BATCH: i32 = 2;
const WIN_REST: i32 = 3;

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

/**
 * One direction's message that is walked in windows instead of held whole:
 * a Fetch response metered per topic prefix, a ShareFetch response too
 * large to hold, an oversize Produce request the filter answers. The layer
 * sees each window as a frame (measure/onFrame): the stretch of fields up to
 * the next records field (walked by the generated program), then the
 * records, batch by batch when counted (only each batch's head is read),
 * else in one window that passes or drops unread.
 */
class Segments extends StreamSink {
  active: bool = false;
  purpose: i32 = 0;
  readonly walk: StreamWalk = new StreamWalk();
  readonly scratch: StreamWalk = new StreamWalk();
  /** Bytes of the message from the current window's start to its end. */
  frameLeft: i64 = 0;
  /** Bytes of the records field still to come (0: a program stretch is next). */
  recordsLeft: i64 = 0;
  /** What measure() found for onFrame(): the window's kind, and for a batch its record count. */
  window: i32 = WIN_PROGRAM;
  batchRecords: i64 = 0;
  batchCounted: bool = false;
  /** The message's request: key, version, correlation id. */
  key: i16 = 0;
  version: i16 = 0;
  correlationId: i32 = 0;
  /** The window's first byte, while its events are reported. */
  base: usize = 0;
  /** A stretch longer than SEGMENT_HEAD_MAX ended the walk: the rest passed (or dropped) unread. */
  cut: bool = false;

  // Fetch: per topic, the topic_metrics prefixes its name matches (bit i = prefix i) and what its records carried
  prefixes: StringMatcher[] = [];
  topicMask: u64 = 0;
  bytes: i64 = 0;
  batches: i32 = 0;
  records: i64 = 0;
  stats: Stats | null = null;
  /** ShareFetch: leader addresses (NodeEndpoints) in a response too large to rewrite. */
  brokers: i32 = 0;

  // Produce: acks, and the topics and partitions to answer (names copied: their windows are gone by then)
  acks: i32 = -1;
  readonly names: Writer = new Writer();
  topics: TopicRef[] = [];
  private topic: TopicRef | null = null;

  begin(purpose: i32, program: i32, key: i16, version: i16, correlationId: i32): void {
    this.active = true;
    this.purpose = purpose;
    this.walk.start(program);
    this.key = key;
    this.version = version;
    this.correlationId = correlationId;
    this.recordsLeft = 0;
    this.cut = false;
    this.topicMask = 0;
    this.brokers = 0;
    this.acks = -1;
    this.names.reset();
    this.topics.length = 0;
    this.topic = null;
  }

  on(event: i32, pos: i32, len: i32, value: i64): void {
    const p = this.base + <usize>pos;
    if (event == SE_ERROR_CODE) { if (value != 0) this.stats!.errorCode(<i32>value); return; }
    if (this.purpose == SEG_PRODUCE_TOO_LARGE) {
      if (event == SE_ACKS) this.acks = <i32>value;
      else if (event == SE_TOPIC) {
        const t = new TopicRef();
        t.allowed = false;
        this.topics.push(t);
        this.topic = t;
      } else if (event == SE_TOPIC_NAME && this.topic != null && len >= 0) {
        this.topic!.nameAt = this.names.len;
        this.topic!.nameLen = len;
        this.names.bytes(p, len);
      } else if (event == SE_TOPIC_ID && this.topic != null) {
        this.topic!.idAt = this.names.len;
        this.names.bytes(p, 16);
      } else if (event == SE_PARTITION_INDEX && this.topic != null) this.topic!.partitions.push(<i32>value);
      return;
    }
    if (event == SE_TOPIC) {
      this.topicMask = 0;
      this.bytes = 0;
      this.batches = 0;
      this.records = 0;
    } else if (event == SE_TOPIC_NAME) {
      if (len > 0) this.matchTopic(p, len);
    } else if (event == SE_TOPIC_ID) {
      const key = uuidKey(p);
      if (topicNames.has(key)) {
        const b = String.UTF8.encode(topicNames.get(key));
        this.matchTopic(changetype<usize>(b), b.byteLength);
      }
    } else if (event == (SE_TOPIC | SE_END)) {
      this.flushTopic();
    } else if (event == SE_BROKER) {
      this.brokers++;
    }
  }

  private matchTopic(p: usize, len: i32): void {
    const prefixes = this.prefixes;
    let mask: u64 = 0;
    for (let i = 0; i < prefixes.length; i++) if (unchecked(prefixes[i]).matches(p, <usize>len)) mask |= (<u64>1) << <u64>i;
    this.topicMask = mask;
  }

  private flushTopic(): void {
    let mask = this.topicMask;
    if (mask == 0 || this.purpose != SEG_FETCH) return;
    for (let i = 0; mask != 0; i++, mask >>= 1) {
      if ((mask & 1) != 0) this.stats!.topicFetched(i, this.bytes, this.batches, this.records);
    }
    this.topicMask = 0;
  }

  /** A records field's bytes (and, when counted, a batch) of the current topic. */
  countRecords(bytes: i64, batch: bool, records: i64): void {
    this.bytes += bytes;
    if (batch) { this.batches++; this.records += records; }
  }
}

// The walker events a frame needs (the sinks' masks): every event for the
// packet log; otherwise only what policy, counters and rewriting use, so a
// walk reports nothing else (each report is a call).
@inline function bit(ev: i32): u64 { return (<u64>1) << <u64>ev; }
const ALL_EVENTS: u64 = <u64>-1;
/** Requests other than Produce/Fetch: the SASL fields (their topics and group ids only feed the packet log). */
const SASL_EVENTS: u64 = bit(EV_MECHANISM) | bit(EV_AUTH_BYTES);
/** Responses: broker addresses and the tagged fields around them (for rewriting; a broker's port ends it, so its begin and end, and the brokers' count, are not needed). */
const BROKER_EVENTS: u64 = bit(EV_NODE_ID) | bit(EV_HOST) | bit(EV_PORT) | bit(EV_TAGGED_BEGIN) | bit(EV_TAGGED_END);
/** Responses: topics (Metadata's id → name, a partly refused Produce/Fetch's merge, a held Fetch's records). */
const TOPIC_EVENTS: u64 = bit(EV_TOPIC_BEGIN) | bit(EV_TOPIC_END) | bit(EV_TOPIC_COUNT) | bit(EV_TOPIC_NAME) | bit(EV_TOPIC_ID) | bit(EV_RECORDS);

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
  /** The SaslHandshake's mechanism, for the raw exchange a v0 handshake starts. */
  private mechanism: string = "";
  /**
   * After a SaslHandshake v0, raw size-prefixed SASL tokens without Kafka
   * headers follow: `saslClientTokens` more from the client, each answered
   * by one raw token from the broker (`saslServerTokens` owed), then Kafka
   * framing resumes. A mechanism whose exchange length is unknown (GSSAPI)
   * leaves the connection unparsed from there on (`opaque`).
   */
  private saslClientTokens: i32 = 0;
  private saslServerTokens: i32 = 0;
  private opaque: bool = false;
  private handshakeV0: bool = false;
  // what measure() found, for onFrame()
  private bodyAt: i32 = 0;
  private whole: bool = false;
  /** The request is over limits.max_request_bytes: answered by the filter, its body skipped unread. */
  private tooLarge: bool = false;
  /** The frame is the first window of a message walked in windows (SEG_*; 0 none), and how long that window is. */
  private segmentStart: i32 = 0;
  private segmentProgram: i32 = -1;
  /** Messages walked in windows, per direction. */
  private readonly segDown: Segments = new Segments();
  private readonly segUp: Segments = new Segments();

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
    this.segUp.prefixes = config.topicMetrics;
    this.segUp.stats = stats;
    this.segDown.stats = stats;
  }

  // ------------------------------------------------------------------ framing

  measure(frame: Frame): i64 {
    const avail = <i32>min<usize>(frame.avail, 0x7fffffff);
    const fromClient = frame.fromClient;
    this.segmentStart = 0;
    const seg = fromClient ? this.segDown : this.segUp;
    if (seg.active) {
      frame.continues = true;
      return this.measureWindow(frame, seg, avail);
    }
    if (avail < 4) return 4;
    const p = frame.ptr;
    const size = be32(p);
    // raw SASL tokens (after a SaslHandshake v0) may be empty: only their size prefix is checked
    const raw = this.opaque || (fromClient ? this.saslClientTokens > 0 : this.saslServerTokens > 0);
    const smallest: i32 = raw ? 0 : fromClient ? 8 : 4;
    if (size < smallest || size > 0x7ffffffb) return this.bad(frame, "bad_size", "frame size " + size.toString() + " is not a valid Kafka frame size");
    frame.length = <u64>size + 4;
    this.tooLarge = false;
    if (raw) {
      this.whole = false;
      // a PLAIN token is read whole for its user name
      if (fromClient && this.saslClientTokens > 0 && this.mechanismPlain) {
        if (size > SASL_TOKEN_MAX) return this.bad(frame, "bad_size", "SASL PLAIN token of " + size.toString() + " bytes");
        this.whole = true;
        return <i64>size + 4;
      }
      return 4;
    }
    if (fromClient) return this.measureRequest(frame, p, size, avail);
    return this.measureResponse(frame, p, size, avail);
  }

  /**
   * The first window of a message walked in windows: from the frame's start
   * to its first records field (or its end). -1: that stretch is longer than
   * the filter holds (the message is then not walked); 0: bad bytes.
   */
  private firstWindow(frame: Frame, seg: Segments, program: i32, p: usize, at: i32, size: i32, avail: i32): i64 {
    const w = seg.scratch;
    w.start(program);
    const r = w.run(p, at, avail, <i64>size + 4, null);
    if (r == RUN_NEED_MORE) {
      if (avail >= SEGMENT_HEAD_MAX) return -1;
      return min<i64>(this.more(frame, avail, size), SEGMENT_HEAD_MAX);
    }
    if (r == RUN_BAD) return 0;
    if (r == RUN_END && w.pos != size + 4) return 0;
    frame.length = <u64>w.pos;
    return <i64>w.pos;
  }

  /** A later window of a message walked in windows (see Segments). */
  private measureWindow(frame: Frame, seg: Segments, avail: i32): i64 {
    const p = frame.ptr;
    if (seg.recordsLeft > 0) {
      const left = seg.recordsLeft;
      seg.batchCounted = false;
      if (seg.purpose != SEG_FETCH || seg.cut) {
        seg.window = WIN_RECORDS;
        frame.length = <u64>left;
        return 0;
      }
      // one batch per window: its size at 8, magic at 16, record count at 57 (magic 2); a partial last batch is not counted
      seg.window = WIN_BATCH;
      if (left < 17) { frame.length = <u64>left; return 0; }
      if (avail < 17) return 17;
      const size = be32(p + 8);
      if (size < 5 || <i64>size + 12 > left) { frame.length = <u64>left; return 17; }
      frame.length = <u64>size + 12;
      const magic = load<u8>(p + 16);
      seg.batchCounted = true;
      if (magic < 2) { seg.batchRecords = size >= 6 ? 1 : 0; return 17; }
      if (size < 49) { seg.batchRecords = 0; return 17; }
      if (avail < BATCH_HEAD) return BATCH_HEAD;
      seg.batchRecords = <i64>be32(p + 57);
      return BATCH_HEAD;
    }
    if (seg.cut) {
      seg.window = WIN_REST;
      frame.length = <u64>seg.frameLeft;
      return 0;
    }
    seg.window = WIN_PROGRAM;
    const w = seg.scratch;
    w.copyFrom(seg.walk);
    const r = w.run(p, 0, avail, seg.frameLeft, null);
    if (r == RUN_NEED_MORE) {
      if (avail < SEGMENT_HEAD_MAX) return <i64>min<i64>(seg.frameLeft, <i64>max(avail * 2, avail + 64));
      // a stretch longer than the filter holds: the rest of the message goes on (or is dropped) unread
      seg.cut = true;
      seg.window = WIN_REST;
      frame.length = <u64>seg.frameLeft;
      return 0;
    }
    if (r == RUN_BAD || (r == RUN_END && <i64>w.pos != seg.frameLeft)) {
      this.stats.closed("malformed_body");
      return frame.reject(Verdict.close(API_NAME[seg.key] + " v" + seg.version.toString() + " " + (frame.fromClient ? "request" : "response") + " body does not parse (walked in windows)"));
    }
    frame.length = <u64>w.pos;
    return <i64>w.pos;
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
    const h = this.header;
    const r = parseRequestHeader(p, size, avail, h);
    if (r == HDR_NEED_MORE) return this.more(frame, avail, size);
    if (r == HDR_BAD) return this.bad(frame, "truncated_header", "request header does not fit its frame (size " + size.toString() + ")");
    this.bodyAt = h.bodyAt;
    if (size > this.config.maxRequestBytes && !this.denied(h.key)) {
      // answered by the filter from what it reads before the records (a Produce's topics and partitions) or from the header; the rest is dropped unread
      this.tooLarge = true;
      this.whole = false;
      if (h.key == API_PRODUCE && h.known) {
        const program = streamProgram(h.key, h.version, false);
        const need = this.firstWindow(frame, this.segDown, program, p, h.bodyAt, size, avail);
        if (need == 0) return this.bad(frame, "malformed_body", "Produce v" + h.version.toString() + " request body does not parse (walked in windows)");
        if (need > 0) {
          this.segmentStart = SEG_PRODUCE_TOO_LARGE;
          this.segmentProgram = program;
          return need;
        }
        frame.length = <u64>size + 4;
      }
      return <i64>h.bodyAt;
    }
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
    // walked in windows: Fetch responses for topic metrics, ShareFetch responses too large to hold for rewriting
    const purpose = this.windowed(e, size);
    if (purpose != 0) {
      const program = streamProgram(e.key, e.version, true);
      const need = program < 0 ? -1 : this.firstWindow(frame, this.segUp, program, p, at, size, avail);
      if (need == 0) return this.bad(frame, "malformed_body", API_NAME[e.key] + " v" + e.version.toString() + " response body does not parse (walked in windows)");
      if (need > 0) {
        this.segmentStart = purpose;
        this.segmentProgram = program;
        return need;
      }
      frame.length = <u64>size + 4;
      return <i64>at;
    }
    if (this.whole && size > this.config.maxResponseBytes) {
      return this.bad(frame, "response_too_large", API_NAME[e.key] + " response of " + size.toString() + " bytes is over limits.max_response_bytes (" + this.config.maxResponseBytes.toString() + ")");
    }
    return this.whole ? <i64>size + 4 : <i64>at;
  }

  /** Responses read whole: every one with a walker except Fetch (records can be megabytes), which only a partial refusal makes the filter read. */
  private readsResponse(e: InFlight, size: i32): bool {
    // Fetch: for a partly refused request (to add the refusals)
    if (e.key == API_FETCH) return e.merge != null;
    // ShareFetch: for the leader addresses (NodeEndpoints) when rewriting, when small enough to hold
    if (e.key == API_SHARE_FETCH) return this.config.rewrites && size <= this.config.maxResponseBytes;
    // ApiVersions: only when the filter lowers versions in it (it lists every key: the longest of the small bodies)
    if (e.key == API_VERSIONS) return this.capsVersions;
    return hasResponseWalker(e.key);
  }

  /** Why a response is walked in windows (SEG_*), or 0: Fetch for topic metrics, ShareFetch too large to hold while rewriting. */
  private windowed(e: InFlight, size: i32): i32 {
    if (e.key == API_FETCH) return e.merge == null && this.config.topicMetrics.length > 0 ? SEG_FETCH : 0;
    if (e.key == API_SHARE_FETCH) return this.config.rewrites && size > this.config.maxResponseBytes ? SEG_SHARE_FETCH : 0;
    return 0;
  }

  /** Whether ApiVersions responses get Produce/Fetch capped (see capVersions). */
  private get capsVersions(): bool {
    const c = this.config;
    return (c.needsTopicNames && !c.keepTopicIds) || c.rewrites;
  }

  // ------------------------------------------------------------------ frames

  onFrame(frame: Frame): Verdict {
    const fromClient = frame.fromClient;
    const seg = fromClient ? this.segDown : this.segUp;
    if (seg.active) return this.onWindow(frame, seg);
    if (this.opaque) return Verdict.forward();
    if (fromClient ? this.saslClientTokens > 0 : this.saslServerTokens > 0) return this.onSaslToken(frame);
    return fromClient ? this.onRequest(frame) : this.onResponse(frame);
  }

  // ------------------------------------------------------------------ messages walked in windows

  /** Starts walking a message in windows with the frame's first window (the header ends at `bodyAt`). */
  private startWindows(frame: Frame, seg: Segments, purpose: i32, key: i16, version: i16, correlationId: i32): void {
    seg.begin(purpose, this.segmentProgram, key, version, correlationId);
    seg.frameLeft = <i64>be32(frame.ptr) + 4;
    this.walkWindow(frame, seg, this.bodyAt);
  }

  /** Walks the current window from `from` with events (measure() saw the same bytes reach a records field or the end). */
  private walkWindow(frame: Frame, seg: Segments, from: i32): void {
    const len = <i32>frame.length;
    seg.base = frame.ptr;
    const r = seg.walk.run(frame.ptr, from, len, seg.frameLeft, seg);
    if (r == RUN_RECORDS) {
      seg.recordsLeft = <i64>seg.walk.records;
      seg.bytes += <i64>seg.walk.records;
    }
    seg.frameLeft -= <i64>len;
  }

  private onWindow(frame: Frame, seg: Segments): Verdict {
    const len = <i64>frame.length;
    const kind = seg.window;
    if (kind == WIN_PROGRAM) this.walkWindow(frame, seg, 0);
    else if (kind == WIN_REST) { seg.frameLeft = 0; seg.recordsLeft = 0; }
    else {
      if (kind == WIN_BATCH && seg.batchCounted) seg.countRecords(0, true, seg.batchRecords);
      seg.recordsLeft -= len;
      seg.frameLeft -= len;
    }
    if (seg.frameLeft == 0) return this.endWindows(frame, seg);
    return seg.purpose == SEG_PRODUCE_TOO_LARGE ? Verdict.drop() : Verdict.forward();
  }

  /** The last window of a message walked in windows. */
  private endWindows(frame: Frame, seg: Segments): Verdict {
    seg.active = false;
    // a message ending right after a records field: the walk must be done too (closing arrays, no fields left)
    if (!seg.cut && seg.walk.run(frame.ptr, 0, 0, 0, seg) != RUN_END) {
      this.stats.closed("malformed_body");
      return Verdict.close(API_NAME[seg.key] + " v" + seg.version.toString() + " body ends early (walked in windows)");
    }
    if (seg.purpose == SEG_FETCH) {
      if (seg.cut) this.stats.unmeteredFetch();
      return Verdict.forward();
    }
    if (seg.purpose == SEG_SHARE_FETCH) {
      if (seg.brokers > 0 || seg.cut) this.unrewritten(seg);
      return Verdict.forward();
    }
    // an oversize Produce: every partition gets MESSAGE_TOO_LARGE (acks=0: nothing is owed)
    if (seg.acks == 0) return Verdict.drop();
    this.pushEntry(seg.key, seg.version, seg.correlationId, true, true);
    const answer = produceRefusal(changetype<usize>(seg.names.buf), seg.version, seg.correlationId, seg.topics, MESSAGE_TOO_LARGE);
    return Verdict.reply(answer, placeholderRequest(seg.correlationId));
  }

  /** A ShareFetch response too large to hold named leaders (or could not be walked): their addresses went on unrewritten. */
  private unrewritten(seg: Segments): void {
    this.stats.unrewritten();
    this.conn.note = "a ShareFetch response over limits.max_response_bytes named leader addresses the filter could not rewrite";
    if (this.stats.firstUnrewritten()) {
      this.stats.logError("kafka: a ShareFetch response of over limits.max_response_bytes (" + this.config.maxResponseBytes.toString() +
        ") carried leader addresses (NodeEndpoints) that passed unrewritten; raise limits.max_response_bytes or lower the share consumers' fetch.max.bytes");
    }
  }

  // ------------------------------------------------------------------ raw SASL tokens (after SaslHandshake v0)

  private onSaslToken(frame: Frame): Verdict {
    if (frame.fromClient) {
      this.saslClientTokens--;
      this.saslServerTokens++;
      const size = be32(frame.ptr);
      if (this.mechanismPlain && this.whole) this.takePlainUser(frame.ptr + 4, size);
      this.stats.saslToken();
      if (frame.logging) {
        const rec = frame.record("sasl_token").int("size", <i64>size + 4).str("mechanism", this.mechanism);
        if (this.mechanismPlain && this.user != null) rec.str("user", String.UTF8.decode(this.user!.buffer));
        rec.emit();
      }
    } else {
      this.saslServerTokens--;
      if (frame.logging) frame.record("sasl_token").int("size", <i64>be32(frame.ptr) + 4).str("mechanism", this.mechanism).emit();
    }
    return Verdict.forward();
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
    if (this.tooLarge) return this.refuseTooLarge(frame, h);
    if (!this.whole) {
      this.push(h, false);
      frame.expectAnswer();
      this.log(frame, h, "forward", "");
      return Verdict.forward();
    }

    const s = this.req;
    s.reset(p);
    s.mask = frame.logging || h.key == API_PRODUCE || h.key == API_FETCH ? ALL_EVENTS : SASL_EVENTS;
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
      this.mechanism = m.len > 0 && m.len <= 64 ? String.UTF8.decodeUnsafe(p + <usize>m.at, <usize>m.len) : "";
      this.mechanismPlain = this.mechanism == "PLAIN";
      this.handshakeV0 = h.version == 0;
    } else if (h.key == API_SASL_AUTHENTICATE && this.mechanismPlain && s.auth.len > 0) {
      this.takePlainUser(p + <usize>s.auth.at, s.auth.len);
    }
    this.push(h, false);
    frame.expectAnswer();
    this.log(frame, h, "forward", "");
    return Verdict.forward();
  }

  /**
   * A request over limits.max_request_bytes gets Kafka's own answer and its
   * body is dropped unread: a Produce MESSAGE_TOO_LARGE for every partition
   * (walked in windows: its topics and partitions sit between the records),
   * any other API its default response with POLICY_VIOLATION.
   */
  private refuseTooLarge(frame: Frame, h: RequestHeader): Verdict {
    this.stats.refused("request_too_large");
    const limit = " bytes is over limits.max_request_bytes (" + this.config.maxRequestBytes.toString() + ")";
    if (this.segmentStart == SEG_PRODUCE_TOO_LARGE) {
      const seg = this.segDown;
      this.startWindows(frame, seg, SEG_PRODUCE_TOO_LARGE, h.key, h.version, h.correlationId);
      this.log(frame, h, seg.acks == 0 ? "drop" : "refuse", "request_too_large");
      if (seg.frameLeft == 0) return this.endWindows(frame, seg);
      return Verdict.drop();
    }
    // a Produce whose topics lie past what the filter holds: without acks it cannot tell whether an answer is owed
    let reply: ArrayBuffer | null = null;
    if (h.key != API_PRODUCE) reply = defaultRefusal(h.key, h.version, h.correlationId, POLICY_VIOLATION);
    if (reply == null) {
      this.stats.closed("request_too_large");
      return Verdict.close((h.known ? API_NAME[h.key] : "API key " + h.key.toString()) + " request of " + (be32(frame.ptr) + 4).toString() + limit);
    }
    this.push(h, true);
    this.log(frame, h, "refuse", "request_too_large");
    return Verdict.reply(reply!, placeholderRequest(h.correlationId));
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
    return this.pushEntry(h.key, h.version, h.correlationId, h.known, refused);
  }

  private pushEntry(key: i16, version: i16, correlationId: i32, known: bool, refused: bool): InFlight {
    const e = this.pool.length > 0 ? this.pool.pop() : new InFlight();
    e.correlationId = correlationId;
    e.key = key;
    e.version = version;
    e.known = known;
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
    if (this.segmentStart != 0) {
      const seg = this.segUp;
      this.logResponse(frame, e, "forward");
      this.startWindows(frame, seg, this.segmentStart, e.key, e.version, e.correlationId);
      if (seg.frameLeft == 0) return this.endWindows(frame, seg);
      return Verdict.forward();
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
    const c = this.config;
    let mask = bit(EV_ERROR_CODE);
    if (c.rewrites) mask |= BROKER_EVENTS;
    // Metadata names topic ids from v10 on: learnt only when policy or metrics need topic names
    if (e.merge != null || (e.key == API_METADATA && e.version >= 10 && c.needsTopicNames)) mask |= TOPIC_EVENTS;
    s.mask = frame.logging ? ALL_EVENTS : mask;
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
      // raw tokens follow: client token, broker token, as many rounds as the mechanism takes
      const rounds = this.mechanism == "PLAIN" || this.mechanism == "OAUTHBEARER" ? 1 : this.mechanism.startsWith("SCRAM-") ? 2 : 0;
      if (rounds > 0) this.saslClientTokens = rounds;
      else {
        this.opaque = true;
        this.conn.note = "SASL handshake v0 (" + this.mechanism + "): the tokens that follow pass unparsed";
        stats.opaque();
      }
    }
    if (e.key == API_SASL_AUTHENTICATE && s.errorCodes.length > 0) this.user = null;

    const edits = this.edits;
    edits.reset();
    if (this.config.rewrites && s.brokerCount > 0) this.rewriteBrokers(p, edits, e);
    if (e.key == API_VERSIONS) this.capVersions(edits);
    if (e.merge != null && s.topicCountAt >= 0) {
      const w = edits.begin(s.topicCountAt, s.topicCountAt + s.topicCountLen, -1);
      w.count(s.topicCount + e.mergeCount, responseIsFlexible(e.key, e.version));
      w.bytes(changetype<usize>(e.merge), e.merge!.byteLength);
      edits.done();
    }
    this.logResponse(frame, e, edits.count > 0 ? "rewrite" : "forward");
    if (edits.count == 0) return Verdict.forward();
    return edits.apply(p, len, s);
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
    for (let i = 0; i < s.brokerCount; i++) {
      const b = unchecked(s.brokers[i]);
      // FindCoordinator with an error names node -1 at "" : nothing to rewrite
      if (b.nodeId < 0) continue;
      const listener = c.broker(b.nodeId);
      if (listener == null) {
        this.stats.unknownBroker();
        this.conn.note = "broker " + b.nodeId.toString() + " is not in the filter's brokers";
        this.unknownBroker(b, p);
        continue;
      }
      const tag = b.tag;
      const hostEnd = b.hostAt + max(b.hostLen, 0);
      if (b.portAt == hostEnd) {
        // host and port side by side (every shape Kafka has): one edit with the listener's address bytes
        const address = flexible ? listener.compactAddress : listener.address;
        edits.add(b.hostPrefixAt, b.portAt + 4, address.dataStart, address.length, tag);
      } else {
        edits.begin(b.hostPrefixAt, hostEnd, tag).str(c.advertiseBytes.dataStart, c.advertiseBytes.length, flexible);
        edits.done();
        edits.begin(b.portAt, b.portAt + 4, tag).i32(listener.port);
        edits.done();
      }
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
    if (code != 0) { this.resp.errorCodes.push(code); this.resp.touched = true; }
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
    rec.int("size", <i64>be32(p) + 4);
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
      .int("size", <i64>be32(frame.ptr) + 4);
    if (this.whole && decision != "refusal") {
      const s = this.resp;
      if (s.errorCodes.length > 0) {
        let codes = "[";
        for (let i = 0; i < s.errorCodes.length; i++) codes += (i > 0 ? "," : "") + s.errorCodes[i].toString();
        rec.raw("error_codes", codes + "]");
      }
      if (s.brokerCount > 0) {
        let brokers = "[";
        for (let i = 0; i < s.brokerCount; i++) {
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
 * Byte-range replacements inside one frame, applied in position order;
 * tagged fields around them get their sizes rewritten. Replacement bytes go
 * into one arena and the new frame is built in one reused buffer, so a
 * rewrite allocates nothing once the buffers have grown. Each edit is
 * EDIT_FIELDS ints in one array (no object or array per edit).
 */
const EDIT_AT: i32 = 0;
const EDIT_END: i32 = 1;
/** Where its bytes are: an offset in the arena, or (EDIT_PTR set) a pointer to bytes that outlive the edit; and how many. */
const EDIT_FROM: i32 = 2;
const EDIT_LEN: i32 = 3;
/** The tagged field (index in the response sink) it sits in, -1 none. */
const EDIT_TAG: i32 = 4;
/** 1: EDIT_FROM is a pointer (the settings' precomputed address bytes), not an arena offset. */
const EDIT_PTR: i32 = 5;
const EDIT_FIELDS: i32 = 6;

class Edits {
  private e: StaticArray<i32> = new StaticArray<i32>(16 * EDIT_FIELDS);
  count: i32 = 0;
  readonly arena: Writer = new Writer();
  private deltas: StaticArray<i32> = new StaticArray<i32>(0);
  private order: StaticArray<i32> = new StaticArray<i32>(16);

  reset(): void {
    this.count = 0;
    this.arena.reset();
  }

  @inline private get(i: i32, field: i32): i32 { return unchecked(this.e[i * EDIT_FIELDS + field]); }

  /** Starts an edit of [at, end): write its bytes to the returned arena, then call done(). */
  begin(at: i32, end: i32, tag: i32): Writer {
    const i = this.count * EDIT_FIELDS;
    if (i + EDIT_FIELDS > this.e.length) {
      const grown = new StaticArray<i32>(this.e.length * 2);
      memory.copy(changetype<usize>(grown), changetype<usize>(this.e), <usize>i << 2);
      this.e = grown;
    }
    const e = this.e;
    unchecked(e[i + EDIT_AT] = at);
    unchecked(e[i + EDIT_END] = end);
    unchecked(e[i + EDIT_FROM] = this.arena.len);
    unchecked(e[i + EDIT_LEN] = 0);
    unchecked(e[i + EDIT_TAG] = tag);
    unchecked(e[i + EDIT_PTR] = 0);
    this.count++;
    return this.arena;
  }

  done(): void {
    const i = (this.count - 1) * EDIT_FIELDS;
    unchecked(this.e[i + EDIT_LEN] = this.arena.len - unchecked(this.e[i + EDIT_FROM]));
  }

  /** [at, end) becomes the `len` bytes at `ptr`, which stay there until apply() (not copied). */
  add(at: i32, end: i32, ptr: usize, len: i32, tag: i32): void {
    this.begin(at, end, tag);
    const i = (this.count - 1) * EDIT_FIELDS;
    unchecked(this.e[i + EDIT_FROM] = <i32>ptr);
    unchecked(this.e[i + EDIT_LEN] = len);
    unchecked(this.e[i + EDIT_PTR] = 1);
  }

  /** Size changes inside tagged fields: their size varints are rewritten (innermost first, so deltas add up outwards). */
  private resizeTagged(s: ResponseSink): void {
    const nt = s.tagged.length;
    if (this.deltas.length < nt) this.deltas = new StaticArray<i32>(nt * 2);
    const deltas = this.deltas;
    for (let t = 0; t < nt; t++) unchecked(deltas[t] = 0);
    const n0 = this.count;
    let any = false;
    for (let i = 0; i < n0; i++) {
      let t = this.get(i, EDIT_TAG);
      const d = this.get(i, EDIT_LEN) - (this.get(i, EDIT_END) - this.get(i, EDIT_AT));
      if (d == 0) continue;
      any = true;
      while (t >= 0) { unchecked(deltas[t] += d); t = s.tagged[t].parent; }
    }
    if (!any) return;
    for (let t = nt - 1; t >= 0; t--) {
      const delta = unchecked(deltas[t]);
      if (delta == 0) continue;
      const tr = s.tagged[t];
      const w = this.begin(tr.sizeAt, tr.dataAt, -1);
      const before = w.len;
      w.uvarint(<u32>(tr.size + delta));
      this.done();
      const grow = (w.len - before) - uvarintSize(<u32>tr.size);
      // the size varint itself may change width: the enclosing fields grow with it
      let parent = tr.parent;
      while (parent >= 0 && grow != 0) { unchecked(deltas[parent] += grow); parent = s.tagged[parent].parent; }
    }
  }

  /** A verdict replacing the frame with every edit applied and a new size prefix (reused: see replacement). */
  apply(p: usize, len: i32, s: ResponseSink): Verdict {
    if (s.tagged.length > 0) this.resizeTagged(s);
    const n = this.count;
    // in position order: usually already (edits are made front to back); else an insertion sort (few edits)
    if (this.order.length < n) this.order = new StaticArray<i32>(n * 2);
    const order = this.order;
    let sorted = true;
    for (let i = 0; i < n; i++) {
      unchecked(order[i] = i);
      if (i > 0 && this.get(i, EDIT_AT) < this.get(i - 1, EDIT_AT)) sorted = false;
    }
    if (!sorted) {
      for (let i = 1; i < n; i++) {
        const k = unchecked(order[i]);
        let j = i - 1;
        while (j >= 0 && this.get(unchecked(order[j]), EDIT_AT) > this.get(k, EDIT_AT)) { unchecked(order[j + 1] = order[j]); j--; }
        unchecked(order[j + 1] = k);
      }
    }
    // the new frame is written straight into a buffer of its final size
    let total = len;
    for (let i = 0; i < n; i++) total += this.get(i, EDIT_LEN) - (this.get(i, EDIT_END) - this.get(i, EDIT_AT));
    const verdict = replacement(total);
    let q = changetype<usize>(verdict.bytes);
    store<u32>(q, bswap<u32>(<u32>(total - 4)));
    q += 4;
    let at = 4;
    const arena = changetype<usize>(this.arena.buf);
    for (let i = 0; i < n; i++) {
      const e = unchecked(order[i]);
      const keep = this.get(e, EDIT_AT) - at;
      if (keep > 0) { memory.copy(q, p + <usize>at, <usize>keep); q += <usize>keep; }
      const l = this.get(e, EDIT_LEN);
      const from = <usize>this.get(e, EDIT_FROM);
      if (l > 0) { memory.copy(q, this.get(e, EDIT_PTR) != 0 ? from : arena + from, <usize>l); q += <usize>l; }
      at = this.get(e, EDIT_END);
    }
    if (len > at) memory.copy(q, p + <usize>at, <usize>(len - at));
    return verdict;
  }
}

/**
 * Replace verdicts for rewritten frames, reused by size with their buffers:
 * the layer copies a replacement into its output as soon as onFrame returns,
 * and the same responses (Metadata, FindCoordinator, ApiVersions) come back
 * rewritten to the same size, so a rewrite usually allocates nothing (not
 * even the verdict).
 */
const REPLACEMENTS: i32 = 8;
const replacements: StaticArray<Verdict | null> = new StaticArray<Verdict | null>(REPLACEMENTS);
let replacementNext: i32 = 0;

function replacement(size: i32): Verdict {
  for (let i = 0; i < REPLACEMENTS; i++) {
    const v = unchecked(replacements[i]);
    if (v != null && v.bytes!.byteLength == size) return v;
  }
  const v = Verdict.replace(new ArrayBuffer(size));
  // large frames are not kept (a rewritten multi-megabyte Fetch would pin its memory)
  if (size <= 65536) {
    unchecked(replacements[replacementNext] = v);
    replacementNext = (replacementNext + 1) % REPLACEMENTS;
  }
  return v;
}

export { InFlight };
