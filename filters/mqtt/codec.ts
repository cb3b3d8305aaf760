// One MQTT connection as a codec on the SDK's framed-stream layer: measure()
// frames a packet from its fixed header (the header need of a PUBLISH stops
// before its payload, which passes unread), onFrame() routes at CONNECT,
// enforces limits and topic ACLs and answers refusals the way the protocol
// does, in order (a refused packet is replaced by a PINGREQ whose PINGRESP
// the refusal takes the place of). forwardRun() is the PUBLISH fast path.
import { jsonQuote } from "../sdk";
import { Codec, Frame, StreamError, Verdict, emitPacket } from "../sdk/stream";
import { ConnectionAcl } from "./acl";
import { Config, connectInput } from "./config";
import { FORWARDED, ackPacket, pingreq, subackPacket, subackWith, subscribeWithout } from "./encode";
import { scanPublishes, scannedPackets, setScan } from "./fastpath";
import { Decision, describePacket } from "./packet-log";
import {
  CONNACK, CONNECT, DISCONNECT, FH_NEED_MORE, Malformed, PINGREQ, PINGRESP, PUBCOMP, PUBLISH, PUBREC, PUBACK,
  PUBREL, Packet, SUBACK, SUBSCRIBE, UNSUBSCRIBE, V5, allowedDirection, headerNeed, malformedName,
  parseFixedHeader, parsePacket,
} from "./parser";
import {
  Limit, S_ACL_PUBLISH_DENIED, S_ACL_SUBSCRIBE_DENIED, S_ACL_WILL_DENIED, S_CONNECT_TIMEOUT, S_DOWN_TYPE, S_LIMIT,
  S_MALFORMED, S_PUBLISH_DROPPED, S_REFUSAL_PUBACK, S_REFUSAL_PUBCOMP, S_REFUSAL_PUBREC, S_REFUSAL_SUBACK,
  S_SUBACK_REWRITTEN, S_UP_TYPE, StatLayout, addTopicCounts, flushTally, limitName, topicCounter,
} from "./stats";
import { levelCount } from "./topics";

/** The protocol's "not authorized" codes. */
const NOT_AUTHORIZED_V5: u8 = 0x87;
const SUBACK_FAILURE_V3: u8 = 0x80;

export class MqttCodec extends Codec {
  readonly pkt: Packet = new Packet();
  version: u8 = 0;
  connected: bool = false;
  clientId: Uint8Array = new Uint8Array(0);
  hasUsername: bool = false;
  username: Uint8Array = new Uint8Array(0);
  acl: ConnectionAcl = new ConnectionAcl(true);
  /** Topic aliases seen per direction (5.0). */
  private aliasesDown: Map<i32, ArrayBuffer> = new Map<i32, ArrayBuffer>();
  private aliasesUp: Map<i32, ArrayBuffer> = new Map<i32, ArrayBuffer>();
  /** SUBSCRIBEs with refused filters, by packet id: the refusal codes (FORWARDED for the rest) and how many went on. */
  private subRewrites: Map<i32, Uint8Array> = new Map<i32, Uint8Array>();
  private subForwarded: Map<i32, i32> = new Map<i32, i32>();
  /** 3.1 / 3.1.1 QoS 2 PUBLISHes refused with a PUBREC: their PUBREL gets a PUBCOMP from the proxy. */
  private refusedQos2: Set<i32> = new Set<i32>();

  constructor(readonly config: Config, readonly layout: StatLayout) {
    super();
    this.routes = true; // nothing goes upstream before CONNECT picked the cluster
    this.maxHeader = config.maxHeaderBytes;
    this.maxPendingReplies = <i32>config.maxPending;
    this.hasForwardRun = true;
    this.frameNoun = "packets";
    this.serverNoun = "broker";
  }

  onOpen(): void {
    this.conn.setDeadline(this.config.connectTimeoutMs);
  }

  // ------------------------------------------------------------ errors

  private malformed(reason: i32, fromClient: bool): Verdict {
    this.conn.counters.add(S_MALFORMED + reason, 1);
    return Verdict.close("malformed " + malformedName(reason) + " from " + (fromClient ? "client" : "broker"));
  }

  private limit(reason: i32): Verdict {
    this.conn.counters.add(S_LIMIT + reason, 1);
    return Verdict.close("limit " + limitName(reason));
  }

  onStreamError(error: StreamError, fromClient: bool): Verdict {
    if (error == StreamError.HeaderTooLarge) return this.limit(Limit.HeaderTooLarge);
    if (error == StreamError.TooManyPending) return this.limit(Limit.TooManyPending);
    if (error == StreamError.EndBeforeRoute) return Verdict.close("client closed before CONNECT");
    return this.malformed(Malformed.TruncatedStream, fromClient);
  }

  onDeadline(): Verdict {
    this.conn.counters.add(S_CONNECT_TIMEOUT, 1);
    return Verdict.close("connect timeout");
  }

  mayRewrite(fromClient: bool): bool {
    // only ACL verdicts drop or rewrite packets
    return this.config.hasAcl;
  }

  describe(): string {
    let s = "client_id=" + (this.connected ? jsonString(this.clientId) : "-");
    if (this.hasUsername) s += " username=" + jsonString(this.username);
    return s;
  }

  // ------------------------------------------------------------ framing

  measure(frame: Frame): i64 {
    const pkt = this.pkt;
    const at = frame.ptr;
    const avail = frame.avail;
    const fromClient = frame.fromClient;
    if (fromClient && !this.connected && avail >= 1 && (load<u8>(at) >> 4) != CONNECT) return frame.reject(this.malformed(Malformed.FirstNotConnect, true));
    const fh = parseFixedHeader(at, avail, this.version, pkt);
    if (fh == FH_NEED_MORE) return <i64>avail + 1;
    if (fh > 0) return frame.reject(this.malformed(fh, fromClient));
    if (this.version == V5 && pkt.nonMinimal) return frame.reject(this.malformed(Malformed.NonMinimalLength, fromClient));
    const type = pkt.type;
    if (!allowedDirection(type, fromClient)) return frame.reject(this.malformed(Malformed.Direction, fromClient));
    if (type == CONNECT && this.connected) return frame.reject(this.malformed(Malformed.SecondConnect, fromClient));
    const total = pkt.total();
    if (fromClient && total > this.config.maxPacketSize) return frame.reject(this.limit(Limit.PacketTooLarge));
    frame.length = <u64>total;
    const need = headerNeed(at, avail, this.version, pkt);
    if (need < 0) return frame.reject(this.malformed(<i32>-need, fromClient));
    return need;
  }

  onFrame(frame: Frame): Verdict {
    const pkt = this.pkt;
    const fromClient = frame.fromClient;
    const at = frame.ptr;
    const m = parsePacket(at, frame.avail, this.version, pkt);
    if (m != Malformed.None) return this.malformed(m, fromClient);
    const type = pkt.type;
    const conn = this.conn;
    conn.counters.add((fromClient ? S_DOWN_TYPE : S_UP_TYPE) + type, 1);
    let v = Verdict.forward();
    let decision = Decision.Forward;
    if (type == CONNECT) {
      v = this.onConnect();
      if (v.isClose) decision = Decision.Close;
    } else if (type == PUBLISH) {
      v = this.onPublish(fromClient);
      if (v.isClose) return v;
      if (!v.isForward) decision = v.solicit != null ? Decision.Refuse : Decision.Drop;
    } else if (fromClient) {
      if (type == SUBSCRIBE) {
        v = this.onSubscribe(at);
        if (v.isClose) return v;
        if (!v.isForward) decision = v.solicit != null ? Decision.Refuse : Decision.Rewrite;
      } else if (type == PUBREL) {
        if (this.refusedQos2.has(pkt.packetId)) {
          this.refusedQos2.delete(pkt.packetId);
          conn.counters.add(S_REFUSAL_PUBCOMP, 1);
          v = Verdict.reply(ackPacket(PUBCOMP, pkt.packetId, -1), pingreq());
          decision = Decision.Refuse;
        }
      } else if (type == PINGREQ) {
        frame.expectAnswer();
      } else if (type == UNSUBSCRIBE) {
        for (let i = 0; i < pkt.filterLens.length; i++) {
          if (pkt.filterLens[i] > this.config.maxTopicLength) return this.limit(Limit.TopicTooLong);
        }
      } else if (type == DISCONNECT) {
        conn.note = "client sent DISCONNECT";
      }
    } else {
      if (type == PINGRESP) {
        const reply = frame.takeAnswer();
        if (reply != null) { v = Verdict.replace(reply); decision = Decision.Refusal; }
      } else if (type == SUBACK) {
        if (this.subRewrites.has(pkt.packetId)) {
          const codes = this.subRewrites.get(pkt.packetId);
          const forwarded = this.subForwarded.get(pkt.packetId);
          this.subRewrites.delete(pkt.packetId);
          this.subForwarded.delete(pkt.packetId);
          if (<i32>pkt.codesLen == forwarded) {
            conn.counters.add(S_SUBACK_REWRITTEN, 1);
            v = Verdict.replace(subackWith(at, pkt, codes));
            decision = Decision.Rewrite;
          }
        }
      } else if (type == CONNACK) {
        if (pkt.reasonCode != 0) conn.note = "broker refused CONNECT (code " + pkt.reasonCode.toString() + ")";
      } else if (type == DISCONNECT) {
        conn.note = "broker sent DISCONNECT" + (pkt.reasonCode > 0 ? " (reason " + pkt.reasonCode.toString() + ")" : "");
      }
    }
    if (frame.logging) emitPacket(describePacket(pkt, fromClient, this.version, decision));
    return v;
  }

  // ------------------------------------------------------------ CONNECT

  private onConnect(): Verdict {
    const pkt = this.pkt;
    const config = this.config;
    this.connected = true;
    this.conn.setDeadline(0);
    this.version = pkt.protocolLevel;
    this.clientId = copyBytes(pkt.clientIdPtr, pkt.clientIdLen);
    this.hasUsername = pkt.hasUsername;
    if (pkt.hasUsername) this.username = copyBytes(pkt.usernamePtr, pkt.usernameLen);
    if (pkt.clientIdLen > config.maxClientIdLength) return this.limit(Limit.ClientIdTooLong);
    for (let i: u32 = 0; i < pkt.clientIdLen; i++) {
      const c = load<u8>(pkt.clientIdPtr + i);
      if (c == 0x2b || c == 0x23) return this.limit(Limit.ClientIdWildcard);
    }
    const input = connectInput(this.clientId, this.hasUsername, this.username);
    if (config.hasAcl) this.acl = ConnectionAcl.select(config, input, this.clientId, this.hasUsername, this.username);
    if (pkt.willFlag) {
      if (pkt.willTopicLen > config.maxTopicLength) return this.limit(Limit.TopicTooLong);
      if (levelCount(pkt.willTopicPtr, pkt.willTopicLen) > config.maxTopicLevels) return this.limit(Limit.TopicTooDeep);
      if (config.hasAcl && !this.acl.publishAllowed(pkt.willTopicPtr, pkt.willTopicLen)) {
        this.conn.counters.add(S_ACL_WILL_DENIED, 1);
        return Verdict.close("acl will topic denied");
      }
    }
    // routing: the first route whose match holds; a route without match always does
    const i = config.routes.pick(input);
    this.conn.route(i >= 0 ? config.routes.routes[i].cluster : "");
    return Verdict.forward();
  }

  // ------------------------------------------------------------ PUBLISH

  private onPublish(fromClient: bool): Verdict {
    const pkt = this.pkt;
    const config = this.config;
    let topicPtr = pkt.topicPtr;
    let topicLen = pkt.topicLen;
    if (pkt.topicAlias >= 0) {
      const aliases = fromClient ? this.aliasesDown : this.aliasesUp;
      if (topicLen > 0) {
        if (!aliases.has(pkt.topicAlias) && aliases.size >= <i32>config.maxPending) return this.limit(Limit.TooManyTopicAliases);
        aliases.set(pkt.topicAlias, copyBytes(topicPtr, topicLen).buffer);
      } else {
        if (!aliases.has(pkt.topicAlias)) return this.malformed(Malformed.TopicAlias, fromClient);
        const t = aliases.get(pkt.topicAlias);
        topicPtr = changetype<usize>(t);
        topicLen = <u32>t.byteLength;
      }
    }
    const topics = this.layout.topics;
    const counters = this.conn.counters;
    addTopicCounts(changetype<usize>(counters), changetype<usize>(counters.values),
      topicCounter(topics.prefixes, topics.indexes, topics.count, fromClient ? 0 : 2, topicPtr, <usize>topicLen), 1, <i64>pkt.payloadLen);
    if (!fromClient) return Verdict.forward();
    if (topicLen > config.maxTopicLength) return this.limit(Limit.TopicTooLong);
    if (config.maxTopicLevels < 65535 && levelCount(topicPtr, topicLen) > config.maxTopicLevels) return this.limit(Limit.TopicTooDeep);
    if (!config.hasAcl || this.acl.publishAllowed(topicPtr, topicLen)) return Verdict.forward();

    counters.add(S_ACL_PUBLISH_DENIED, 1);
    if (pkt.qos == 0) {
      counters.add(S_PUBLISH_DROPPED, 1);
      return Verdict.drop();
    }
    const v5 = this.version == V5;
    if (pkt.qos == 1) {
      counters.add(S_REFUSAL_PUBACK, 1);
      return Verdict.reply(ackPacket(PUBACK, pkt.packetId, v5 ? NOT_AUTHORIZED_V5 : -1), pingreq());
    }
    if (!v5) {
      if (!this.refusedQos2.has(pkt.packetId) && this.refusedQos2.size >= <i32>config.maxPending) return this.limit(Limit.TooManyPending);
      this.refusedQos2.add(pkt.packetId);
    }
    counters.add(S_REFUSAL_PUBREC, 1);
    return Verdict.reply(ackPacket(PUBREC, pkt.packetId, v5 ? NOT_AUTHORIZED_V5 : -1), pingreq());
  }

  // ------------------------------------------------------------ SUBSCRIBE

  /** Forward, a SUBSCRIBE without its refused filters, a SUBACK of refusals, or close. */
  private onSubscribe(at: usize): Verdict {
    const pkt = this.pkt;
    const config = this.config;
    const n = pkt.filterPtrs.length;
    let refused = 0;
    let codes: Uint8Array | null = null;
    const v5 = this.version == V5;
    const code: u8 = v5 ? NOT_AUTHORIZED_V5 : SUBACK_FAILURE_V3;
    for (let i = 0; i < n; i++) {
      const len = pkt.filterLens[i];
      if (len > config.maxTopicLength) return this.limit(Limit.TopicTooLong);
      if (config.maxTopicLevels < 65535 && levelCount(pkt.filterPtrs[i], len) > config.maxTopicLevels) return this.limit(Limit.TopicTooDeep);
      if (!config.hasAcl || this.acl.subscribeAllowed(pkt.filterPtrs[i], len)) continue;
      if (codes == null) {
        codes = new Uint8Array(n);
        codes.fill(FORWARDED);
      }
      codes[i] = code;
      refused++;
    }
    if (codes == null) return Verdict.forward();
    const counters = this.conn.counters;
    counters.add(S_ACL_SUBSCRIBE_DENIED, refused);
    if (refused == n) {
      // nothing left to ask the broker: answer with a SUBACK of refusals
      counters.add(S_REFUSAL_SUBACK, 1);
      return Verdict.reply(subackPacket(pkt.packetId, codes, v5), pingreq());
    }
    if (!this.subRewrites.has(pkt.packetId) && this.subRewrites.size >= <i32>config.maxPending) return this.limit(Limit.TooManyPending);
    this.subRewrites.set(pkt.packetId, codes);
    this.subForwarded.set(pkt.packetId, n - refused);
    return Verdict.replace(subscribeWithout(at, pkt, codes));
  }

  // ------------------------------------------------------------ the fast path

  /**
   * The common case, fast: consecutive PUBLISHes whose only outcome is
   * "forward" (plain ASCII topic, no 5.0 properties, within the limits,
   * allowed). Stops at the first packet that needs the general path, so
   * every other verdict (errors, refusals, rewrites) is made in one place.
   */
  forwardRun(frame: Frame, end: usize): usize {
    const config = this.config;
    const fromClient = frame.fromClient;
    const topics = this.layout.topics;
    const rules = this.acl.pubRules;
    const checkAcl = fromClient && config.hasAcl;
    // the broker's packets are framed and counted, not limited
    setScan(
      fromClient ? config.maxPacketSize : <u32>0xffffffff,
      fromClient ? config.maxTopicLength : <u32>65535,
      fromClient ? config.maxTopicLevels : <u32>65535,
      this.version == V5,
      topics.table, topics.count,
      changetype<usize>(rules), <usize>rules.length, config.aclDefaultAllow,
    );
    const stop = scanPublishes(frame.ptr, end, fromClient && config.maxTopicLevels < 65535, topics.count > 0, checkAcl);
    const counters = this.conn.counters;
    if (topics.count > 0) flushTally(changetype<usize>(counters), changetype<usize>(counters.values), topics.table, topics.indexes, topics.count, fromClient ? 0 : 2);
    const count = scannedPackets();
    if (count > 0) counters.add((fromClient ? S_DOWN_TYPE : S_UP_TYPE) + PUBLISH, <i64>count);
    frame.runCount = count;
    return stop;
  }
}

function copyBytes(ptr: usize, len: u32): Uint8Array {
  const a = new Uint8Array(<i32>len);
  memory.copy(a.dataStart, ptr, <usize>len);
  return a;
}

function jsonString(b: Uint8Array): string {
  return jsonQuote(String.UTF8.decodeUnsafe(b.dataStart, <usize>b.length));
}
