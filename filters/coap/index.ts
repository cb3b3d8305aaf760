// coap: CoAP network filter on the SDK's framed-stream layer (docs/coap.md).
//
// Over TCP/TLS (RFC 8323, what Envoy gives it): routes the connection by the
// first request's Uri-Path / Uri-Host, refuses requests by method and path
// with its own 4.03 (the refused request becomes a Ping, whose Pong the
// reply replaces: proxy-wasm cannot write to the client otherwise), enforces
// limits and counts. Over UDP (RFC 7252; only in the in-process host and in
// replay, settings "transport": "udp"): each data callback is one datagram;
// malformed or refused datagrams are dropped with a counter.
export * from "../sdk/exports";
import { MatchInput, RootContext, Settings, jsonQuote, log, logWarn, registerRootContext } from "../sdk";
import { monotonicTimeNanos, setEffectiveContext } from "../sdk/host";
import { LogLevel } from "../sdk/types";
import { Codec, Frame, FramedRoot, PACKET_LOG_PREFIX, StreamError, Verdict } from "../sdk/stream";
import {
  CODE_CSM, CODE_FORBIDDEN, CODE_PING, CODE_PONG, CoapMessage, FRAME_BAD, FRAME_NEED_MORE,
  ParseError, buildResponse, codeString, parseErrorName, parseTcpHead, parseUdp, tcpFrame, tcpFrameLength, tcpHeadLength, writePath,
} from "./parser";
import {
  T_BLOCK1, T_BLOCK2, T_OBSERVE_DEREGISTER, T_OBSERVE_NOTIFY, T_OBSERVE_REGISTER, T_UNKNOWN_CRITICAL,
  codeTally, flagTally, resetTallies, runCount, scanRun, setRun, touchedCode, touchedCodes,
} from "./fastscan";
import { Policy, readPolicy } from "./policy";
import { describeMessage } from "./describe";

const ATTRIBUTES: string[] = ["path", "host"];
const RESPONSE_CODES: u8[] = [
  0x41, 0x42, 0x43, 0x44, 0x45, 0x5f, // 2.01 .. 2.05, 2.31
  0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x88, 0x8c, 0x8d, 0x8f, 0x9d, // 4.00 .. 4.06, 4.08, 4.12, 4.13, 4.15, 4.29
  0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, // 5.00 .. 5.05
];
const SIGNALS: string[] = ["csm", "ping", "pong", "release", "abort"];
/** RFC 8323 §5.3.1: the Max-Message-Size a peer has before its CSM says otherwise. */
const DEFAULT_PEER_MAX: i64 = 1152;
/** What the proxy sends in a refused request's place: a Ping (7.02, no token), answered by one Pong. */
const SOLICIT: ArrayBuffer = tcpFrame(CODE_PING, 0, 0, 0, 0);

class CoapRoot extends FramedRoot {
  udp: bool = false;
  policy: Policy = new Policy();
  maxMessageSize: u32 = 8388864;
  maxOptions: u32 = 64;
  maxTokenLength: u32 = 8;
  csmWaitMs: u32 = 100;
  firstRequestTimeoutMs: u32 = 0;
  defaultCluster: string = "";

  // counter indexes
  cRequests: i32[] = []; // by method code 1..7, [0] = other
  cResponseClass: i32[] = []; // by class 2..5 (index class - 2)
  cResponseCode: i32[] = []; // parallel to RESPONSE_CODES, then other
  /** The responses.code.* counter of each code byte (no search per response). */
  codeCounter: StaticArray<i32> = new StaticArray<i32>(256);
  cSignals: i32[] = []; // csm..abort, then other
  cEmpty: i32 = 0;
  cObserveRegister: i32 = 0; cObserveDeregister: i32 = 0; cObserveNotify: i32 = 0;
  cBlock1: i32 = 0; cBlock2: i32 = 0;
  cRefusedPolicy: i32 = 0; cRefusedOptions: i32 = 0; cRefusedToken: i32 = 0; cRefusedSize: i32 = 0;
  cMalformed: i32 = 0; cUnknownCritical: i32 = 0; cCsmOnly: i32 = 0; cTimeout: i32 = 0;

  constructor(id: u32) { super(id, "coap"); }

  configure(s: Settings): bool {
    s.allowKeys(["routes", "stat_prefix", "transport", "policy", "limits", "log_packets"]);
    this.statPrefix = s.string("stat_prefix", "coap", true);
    this.udp = s.oneOf("transport", ["tcp", "udp"], 0) == 1;
    this.routes = s.routes("routes", ATTRIBUTES);
    this.policy = readPolicy(s);
    const limits = s.object("limits");
    if (limits != null) {
      limits.allowKeys(["max_message_size", "max_options", "max_token_length", "csm_wait_ms", "first_request_timeout_ms"]);
      this.maxMessageSize = <u32>limits.int("max_message_size", 64, 16777216, 8388864);
      this.maxOptions = <u32>limits.int("max_options", 1, 256, 64);
      this.maxTokenLength = <u32>limits.int("max_token_length", 0, 8, 8);
      this.csmWaitMs = <u32>limits.int("csm_wait_ms", 0, 60000, 100);
      this.firstRequestTimeoutMs = <u32>limits.int("first_request_timeout_ms", 0, 86400000, 0);
    }
    const routes = this.routes.routes;
    this.defaultCluster = "";
    for (let i = 0; i < routes.length; i++) if (routes[i].match == null) { this.defaultCluster = routes[i].cluster; break; }
    this.useDeadlines(this.udp ? 0 : max<u32>(this.csmWaitMs, this.firstRequestTimeoutMs));

    this.cRequests = [this.counter("requests.other")];
    const methods = ["GET", "POST", "PUT", "DELETE", "FETCH", "PATCH", "IPATCH"];
    for (let i = 0; i < methods.length; i++) this.cRequests.push(this.counter("requests." + methods[i]));
    this.cResponseClass = [];
    for (let c = 2; c <= 5; c++) this.cResponseClass.push(this.counter("responses.class." + c.toString() + "xx"));
    this.cResponseCode = [];
    for (let i = 0; i < RESPONSE_CODES.length; i++) this.cResponseCode.push(this.counter("responses.code." + codeString(RESPONSE_CODES[i]).replace(".", "_")));
    this.cResponseCode.push(this.counter("responses.code.other"));
    for (let code = 0; code < 256; code++) {
      const at = RESPONSE_CODES.indexOf(<u8>code);
      this.codeCounter[code] = this.cResponseCode[at >= 0 ? at : RESPONSE_CODES.length];
    }
    this.cSignals = [];
    for (let i = 0; i < SIGNALS.length; i++) this.cSignals.push(this.counter("signaling." + SIGNALS[i]));
    this.cSignals.push(this.counter("signaling.other"));
    this.cEmpty = this.counter("empty");
    this.cObserveRegister = this.counter("observe.registrations");
    this.cObserveDeregister = this.counter("observe.deregistrations");
    this.cObserveNotify = this.counter("observe.notifications");
    this.cBlock1 = this.counter("blocks.block1");
    this.cBlock2 = this.counter("blocks.block2");
    this.cRefusedPolicy = this.counter("refused.policy");
    this.cRefusedOptions = this.counter("refused.option_count");
    this.cRefusedToken = this.counter("refused.token_length");
    this.cRefusedSize = this.counter("refused.message_size");
    this.cMalformed = this.counter("malformed");
    this.cUnknownCritical = this.counter("unknown_critical_options");
    this.cCsmOnly = this.counter("route.csm_only");
    this.cTimeout = this.counter("first_request_timeout");
    return true;
  }

  newCodec(): Codec { return new CoapCodec(this); }

  /**
   * Clients that wait for the server's CSM before their first request
   * (libcoap) would wait forever behind a held connection: once their CSM
   * has waited limits.csm_wait_ms, the connection goes to the default route.
   * The layer's deadlines only close, so this releases those itself.
   */
  onTick(): void {
    const ids = this.deadlines.keys();
    for (let i = 0; i < ids.length; i++) {
      const stream = this.deadlines.get(ids[i]);
      const codec = changetype<CoapCodec>(stream.codec);
      if (!codec.csmWaiting || stream.conn.routed || stream.conn.deadlineNs == 0) continue;
      if (monotonicTimeNanos() < codec.csmDueNs) continue;
      codec.csmWaiting = false;
      stream.conn.route(this.defaultCluster);
      stream.conn.counters.add(this.cCsmOnly, 1);
      stream.conn.clearDeadline();
      this.deadlines.delete(ids[i]);
      setEffectiveContext(stream.id);
      if (this.defaultCluster.length > 0) stream.routeToCluster(this.defaultCluster);
      stream.continueDownstream();
      setEffectiveContext(this.id);
    }
    super.onTick();
  }
}


class CoapCodec extends Codec {
  msg: CoapMessage = new CoapMessage();
  input: MatchInput = new MatchInput(2);
  /** "/a/b" of the routing request. */
  pathBuf: ArrayBuffer = new ArrayBuffer(0);
  /** The peer's Max-Message-Size, by direction of the messages it limits. */
  serverMax: i64 = -1; // limits client → server (from the server's CSM)
  clientMax: i64 = -1; // limits server → client
  csmWaiting: bool = false;
  csmDueNs: u64 = 0;
  sawRequest: bool = false;
  firstPath: string = "";
  /** Refusals whose Pong has not come back yet. */
  pendingRefusals: i32 = 0;

  constructor(readonly root: CoapRoot) {
    super();
    this.routes = !root.udp;
    this.frameNoun = "messages";
    if (root.udp) {
      // a datagram is one message: see it whole (65507 is the largest UDP payload)
      this.headWindow = 65536;
      this.maxHeader = 65536;
    } else {
      this.headWindow = 16;
      this.maxHeader = root.maxMessageSize + 8;
      this.hasForwardRun = true;
    }
  }

  /**
   * The fast path (no packet log): a run of messages that need no verdict of
   * their own (the engine calls this after routing), scanned by fastscan.ts
   * and counted as onFrame would count them. It stops at the first one that
   * might need more: signaling (CSM limits, the Pongs refusals take the
   * place of), anything malformed or over a limit (the general path closes),
   * a head not whole before `end`, and every client message while a policy is on.
   */
  forwardRun(frame: Frame, end: usize): usize {
    const root = this.root;
    const fromClient = frame.fromClient;
    if (fromClient ? root.policy.active : this.pendingRefusals > 0) return frame.ptr;
    let limit = <i64>root.maxMessageSize;
    const peer = fromClient ? this.serverMax : this.clientMax;
    if (peer >= 0 && peer < limit) limit = peer;
    if (limit > 65536) limit = 65536; // the engine runs only frames under its large-frame size
    setRun(limit, root.maxOptions, fromClient ? root.maxTokenLength : 8);
    const stop = scanRun(frame.ptr, end);
    frame.runCount = runCount();
    if (frame.runCount > 0) this.flushTallies();
    return stop;
  }

  /** Adds what scanRun tallied to the counters (once per run, not per message). */
  private flushTallies(): void {
    const root = this.root;
    const c = this.conn.counters;
    const codes = touchedCodes();
    for (let i: u32 = 0; i < codes; i++) {
      const code = touchedCode(i);
      this.tallyCode(code, <i64>codeTally(code));
    }
    let n = flagTally(T_UNKNOWN_CRITICAL);
    if (n > 0) c.add(root.cUnknownCritical, n);
    n = flagTally(T_BLOCK1);
    if (n > 0) c.add(root.cBlock1, n);
    n = flagTally(T_BLOCK2);
    if (n > 0) c.add(root.cBlock2, n);
    n = flagTally(T_OBSERVE_REGISTER);
    if (n > 0) c.add(root.cObserveRegister, n);
    n = flagTally(T_OBSERVE_DEREGISTER);
    if (n > 0) c.add(root.cObserveDeregister, n);
    n = flagTally(T_OBSERVE_NOTIFY);
    if (n > 0) c.add(root.cObserveNotify, n);
    resetTallies();
  }

  onOpen(): void {
    if (!this.root.udp && this.root.firstRequestTimeoutMs > 0) this.conn.setDeadline(this.root.firstRequestTimeoutMs);
  }

  measure(frame: Frame): i64 {
    if (this.root.udp) {
      frame.length = <u64>frame.avail;
      return <i64>frame.avail;
    }
    const n = tcpFrameLength(frame.ptr, frame.avail);
    if (n == FRAME_NEED_MORE) return <i64>frame.avail + 1;
    const c = this.conn.counters;
    if (n == FRAME_BAD) {
      c.add(this.root.cMalformed, 1);
      return frame.reject(Verdict.close("malformed message from " + (frame.fromClient ? "client" : "server") + ": " + parseErrorName(ParseError.BadTokenLength)));
    }
    let limit = <i64>this.root.maxMessageSize;
    let whose = "limits.max_message_size";
    const peer = frame.fromClient ? this.serverMax : this.clientMax;
    if (peer >= 0 && peer < limit) { limit = peer; whose = frame.fromClient ? "the server's CSM Max-Message-Size" : "the client's CSM Max-Message-Size"; }
    if (n > limit) {
      c.add(this.root.cRefusedSize, 1);
      return frame.reject(Verdict.close("message of " + n.toString() + " bytes from " + (frame.fromClient ? "client" : "server") + " exceeds " + whose + " (" + limit.toString() + ")"));
    }
    frame.length = <u64>n;
    // only header, token and options are read: the payload passes without being copied into the VM
    const head = tcpHeadLength(frame.ptr, frame.avail, <u32>n);
    return head == FRAME_NEED_MORE ? <i64>frame.avail + 1 : head;
  }

  onFrame(frame: Frame): Verdict {
    const root = this.root;
    const c = this.conn.counters;
    const m = this.msg;
    const len = <u32>frame.length;
    const e = root.udp ? parseUdp(frame.ptr, len, m, root.maxOptions) : parseTcpHead(frame.ptr, <u32>frame.header, len, m, root.maxOptions);
    if (e == ParseError.TooManyOptions) return this.overLimit(frame, root.cRefusedOptions, "more than " + root.maxOptions.toString() + " options");
    if (e != ParseError.None) {
      c.add(root.cMalformed, 1);
      const reason = "malformed message from " + (frame.fromClient ? "client" : "server") + ": " + parseErrorName(e);
      if (!root.udp) return Verdict.close(reason);
      logWarn("coap: dropped datagram: " + reason);
      return Verdict.drop();
    }
    if (frame.logging) log(LogLevel.Debug, PACKET_LOG_PREFIX + describeMessage(frame.ptr, m, frame.fromClient ? "downstream" : "upstream"));
    if (m.unknownCritical != 0) c.add(root.cUnknownCritical, 1);
    if (m.block1 >= 0) c.add(root.cBlock1, 1);
    if (m.block2 >= 0) c.add(root.cBlock2, 1);

    if (m.isSignaling) return this.signal(frame);
    if (m.isEmpty) { c.add(root.cEmpty, 1); return Verdict.forward(); }
    if (m.isRequest) {
      if (!frame.fromClient) { this.count(m); return Verdict.forward(); } // a server asking the client: passes
      return this.request(frame);
    }
    this.count(m);
    return Verdict.forward();
  }

  private count(m: CoapMessage): void {
    this.tally(m.code, m.observe);
  }

  /** Counts a non-signaling message by its code and Observe value (-1: none); Empty messages count as `empty`. */
  private tally(code: u8, observe: i64): void {
    this.tallyCode(code, 1);
    if (observe < 0 || code == 0) return;
    const root = this.root;
    const c = this.conn.counters;
    if (code < 32) {
      if (observe == 0) c.add(root.cObserveRegister, 1);
      else if (observe == 1) c.add(root.cObserveDeregister, 1);
      return;
    }
    const cls = code >> 5;
    if (cls >= 2 && cls <= 5) c.add(root.cObserveNotify, 1);
  }

  /** Counts `n` non-signaling messages of `code` (requests by method, responses by class and code, Empty). */
  private tallyCode(code: u8, n: i64): void {
    const root = this.root;
    const c = this.conn.counters;
    if (code == 0) { c.add(root.cEmpty, n); return; }
    if (code < 32) { c.add(root.cRequests[code <= 7 ? code : 0], n); return; }
    const cls = code >> 5;
    if (cls >= 2 && cls <= 5) {
      c.add(root.cResponseClass[cls - 2], n);
      c.add(unchecked(root.codeCounter[code]), n);
      return;
    }
    c.add(root.cSignals[SIGNALS.length], n); // reserved classes 1, 6 (7 is signaling, counted by signal())
  }

  private signal(frame: Frame): Verdict {
    const m = this.msg;
    const root = this.root;
    const detail = <i32>m.codeDetail;
    this.conn.counters.add(root.cSignals[detail >= 1 && detail <= 5 ? detail - 1 : SIGNALS.length], 1);
    if (m.code == CODE_CSM) {
      if (m.maxMessageSize >= 0) {
        if (frame.fromClient) this.clientMax = m.maxMessageSize; else this.serverMax = m.maxMessageSize;
      } else if (frame.fromClient) { if (this.clientMax < 0) this.clientMax = DEFAULT_PEER_MAX; }
      else if (this.serverMax < 0) this.serverMax = DEFAULT_PEER_MAX;
      if (frame.fromClient && !this.conn.routed && root.csmWaitMs > 0 && !this.csmWaiting) {
        this.csmWaiting = true;
        this.csmDueNs = monotonicTimeNanos() + <u64>root.csmWaitMs * 1000000;
        if (this.conn.deadlineNs == 0 || this.conn.deadlineNs > this.csmDueNs) this.conn.deadlineNs = this.csmDueNs;
      }
    } else if (m.code == CODE_PING) {
      if (frame.fromClient) frame.expectAnswer();
    } else if (m.code == CODE_PONG && !frame.fromClient) {
      // the Pong to a Ping the proxy put in a refused request's place: the refusal goes out instead
      const reply = frame.takeAnswer();
      if (reply != null) {
        this.pendingRefusals--;
        return Verdict.replace(reply);
      }
    }
    return Verdict.forward();
  }

  private request(frame: Frame): Verdict {
    const root = this.root;
    const m = this.msg;
    this.count(m);
    // "/a/b" once: the route table and the policy both match on it
    const need = <i32>m.pathStringLength;
    if (this.pathBuf.byteLength < need) this.pathBuf = new ArrayBuffer(max(need, 64));
    const pathPtr = changetype<usize>(this.pathBuf);
    const pathLen = <usize>writePath(frame.ptr, m, pathPtr);
    if (!this.conn.routed) {
      this.csmWaiting = false;
      const input = this.input;
      input.set(0, pathPtr, pathLen);
      if (m.hasHost) input.set(1, frame.ptr + m.hostOffset, m.hostLength); else input.unset(1);
      const at = root.routes.pick(input);
      this.conn.route(at >= 0 ? root.routes.routes[at].cluster : "");
      this.conn.clearDeadline();
      this.firstPath = String.UTF8.decodeUnsafe(pathPtr, pathLen);
    }
    if (m.tokenLength > root.maxTokenLength) {
      return this.overLimit(frame, root.cRefusedToken, "a token of " + m.tokenLength.toString() + " bytes (limit " + root.maxTokenLength.toString() + ")");
    }
    if (root.policy.active && !root.policy.allows(m.code, pathPtr, pathLen)) {
      return this.refuse(frame, root.cRefusedPolicy, "forbidden", CODE_FORBIDDEN);
    }
    return Verdict.forward();
  }

  /**
   * Limits close the connection (like a message over the size limit): only
   * the policy answers, so without one no client bytes are ever rewritten
   * and split message heads go on at once (mayRewrite).
   */
  private overLimit(frame: Frame, counter: i32, what: string): Verdict {
    this.conn.counters.add(counter, 1);
    const reason = "message from " + (frame.fromClient ? "client" : "server") + " with " + what;
    if (!this.root.udp) return Verdict.close(reason);
    logWarn("coap: dropped datagram: " + reason);
    return Verdict.drop();
  }

  mayRewrite(fromClient: bool): bool {
    // client bytes change only for policy refusals; server bytes only where a refusal's Pong is due
    return fromClient ? this.root.policy.active : this.pendingRefusals > 0;
  }

  /**
   * Nothing refused reaches the server. TCP: the request is answered with
   * `code` and its token (in a Ping's place: its Pong carries the reply back).
   * UDP (host only): dropped.
   */
  private refuse(frame: Frame, counter: i32, diagnostic: string, code: u8): Verdict {
    this.conn.counters.add(counter, 1);
    const m = this.msg;
    if (this.root.udp || !frame.fromClient) return Verdict.drop();
    if (!this.conn.routed) this.conn.route(this.root.defaultCluster);
    const reply = buildResponse(frame.ptr, m, code, diagnostic, 0);
    this.pendingRefusals++;
    return Verdict.reply(reply, SOLICIT);
  }

  onDeadline(): Verdict {
    this.conn.counters.add(this.root.cTimeout, 1);
    return Verdict.close("no request within " + this.root.firstRequestTimeoutMs.toString() + " ms");
  }

  onStreamError(error: StreamError, fromClient: bool): Verdict {
    if (error == StreamError.HeaderTooLarge) this.conn.counters.add(this.root.cRefusedSize, 1);
    return super.onStreamError(error, fromClient);
  }

  describe(): string {
    return this.firstPath.length > 0 ? "first_path=" + jsonQuote(this.firstPath) : "";
  }
}

registerRootContext((id: u32): RootContext => new CoapRoot(id));

