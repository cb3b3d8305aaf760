// One MQTT connection through the proxy: frames both directions, routes at
// CONNECT, applies limits and topic ACLs, and decides how each buffer is
// rewritten. Pure (no ABI calls): index.ts reads the host buffers, hands them
// here, and applies the result (replace buffer, route, close, counters, logs).
//
// Per direction the session keeps at most one partial packet header (the
// bytes of a packet whose fields are not all there yet, cut from the buffer
// and put back in front of the next one) and a count of PUBLISH payload
// bytes still to pass (or drop) unread.
import { jsonQuote } from "../sdk/json";
import { AclRule, Config, ConnectMatch } from "./config";
import {
  CONNACK, CONNECT, DISCONNECT, FH_NEED_MORE, Malformed, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC,
  PUBREL, Packet, SUBACK, SUBSCRIBE, UNSUBACK, UNSUBSCRIBE, V31, V5, allowedDirection, headerNeed,
  malformedName, parseFixedHeader, parsePacket, typeName, varintSize, writeVarint,
} from "./parser";
import {
  Limit, S_ACL_PUBLISH_DENIED, S_ACL_SUBSCRIBE_DENIED, S_ACL_WILL_DENIED, S_CLOSED_BY_FILTER, S_CONNECT_TIMEOUT, S_CONNECTIONS,
  S_DOWN_TYPE, S_LIMIT, S_MALFORMED, S_PUBLISH_DROPPED, S_REFUSAL_PUBACK, S_REFUSAL_PUBCOMP, S_REFUSAL_PUBREC,
  S_REFUSAL_SUBACK, S_ROUTE_DEFAULT, S_SUBACK_REWRITTEN, S_UP_TYPE, StatDeltas, StatLayout, addTopicCounts, flushTally, limitName, topicCounter,
} from "./stats";
import { scanPublishes, scannedPackets, setScan } from "./fastpath";
import { aclAllows, filterCovers, filtersIntersect, levelCount, sharedFilterOffset } from "./topics";

/** What the glue does with the buffer after process(). */
export const R_CONTINUE: i32 = 0;
export const R_PAUSE: i32 = 1;
export const R_CLOSE: i32 = 2;

/** What happened to a packet (packet log). */
const D_FORWARD = 0;
const D_DROP = 1;
const D_REFUSE = 2;
const D_REWRITE = 3;
const D_REFUSAL = 4;
const D_CLOSE = 5;
const DECISIONS: string[] = ["forward", "drop", "refuse", "rewrite", "refusal", "close"];

/** The protocol's "not authorized" codes. */
const NOT_AUTHORIZED_V5: u8 = 0x87;
const SUBACK_FAILURE_V3: u8 = 0x80;

// ---------------------------------------------------------------- output builder

/**
 * The rewritten buffer, built lazily: while nothing changes it only tracks
 * how far the input was kept; the first drop or insert copies what was kept
 * so far, and from then on everything is appended. The copy is built in one
 * block shared by every connection (the VM runs one callback at a time) and
 * handed to the host from there, so a rewrite allocates nothing once the
 * block has grown to the buffer sizes seen.
 */
export class Output {
  /** The whole input, once loaded (needed as soon as anything changes). */
  base: usize = 0;
  len: usize = 0;
  /** Where the host's buffer starts in the input (after bytes that already went on). */
  origin: usize = 0;
  pos: usize = 0;
  modified: bool = false;
  used: usize = 0;

  begin(len: usize): void {
    this.base = 0;
    this.len = len;
    this.origin = 0;
    this.pos = 0;
    this.used = 0;
    this.modified = false;
  }

  /** Starts the rewritten copy (base must be set). */
  start(): void {
    if (this.modified) return;
    this.modified = true;
    this.used = 0;
    this.append(this.base + this.origin, this.pos - this.origin);
  }

  private append(ptr: usize, n: usize): void {
    if (n == 0) return;
    let cap = <usize>rewriteBlock.byteLength;
    if (this.used + n > cap) {
      while (this.used + n > cap) cap = cap * 2 + 4096;
      const next = new ArrayBuffer(<i32>cap);
      memory.copy(changetype<usize>(next), changetype<usize>(rewriteBlock), this.used);
      rewriteBlock = next;
    }
    memory.copy(changetype<usize>(rewriteBlock) + this.used, ptr, n);
    this.used += n;
  }

  /** Input up to `to` passes unchanged. */
  @inline keep(to: usize): void {
    if (to <= this.pos) return;
    if (this.modified) this.append(this.base + this.pos, to - this.pos);
    this.pos = to;
  }

  /** Input up to `to` is removed. */
  drop(to: usize): void {
    if (to <= this.pos) return;
    this.start();
    this.pos = to;
  }

  insert(bytes: ArrayBuffer): void {
    this.start();
    this.append(changetype<usize>(bytes), <usize>bytes.byteLength);
  }

  /** The new buffer (only meaningful when modified): valid until the next rewrite by any connection. */
  get resultPtr(): usize {
    return changetype<usize>(rewriteBlock);
  }
}

/** Where Output builds rewritten buffers; above 4 MiB it is let go after use (see releaseLargeBlocks, as the joined block). */
let rewriteBlock: ArrayBuffer = new ArrayBuffer(0);

/**
 * Drops the shared blocks when an unusually large buffer grew them (memory
 * stays bounded). The bound sits above what Envoy hands over with its default
 * 1 MiB connection buffer limit (a saturated worker reads ~0.9–1.1 MB per
 * callback), so those blocks are kept: dropping one means zero-filling a new one.
 */
const LARGE_BLOCK: i32 = 4 << 20;
export function releaseLargeBlocks(): void {
  if (rewriteBlock.byteLength > LARGE_BLOCK) rewriteBlock = new ArrayBuffer(0);
  if (joinedBlock.byteLength > LARGE_BLOCK) joinedBlock = new ArrayBuffer(0);
}

/**
 * Where a split packet's start and the next buffer are joined for parsing:
 * one block reused by every connection (a session parses one buffer at a
 * time and is done with it before returning), so no allocation per buffer.
 */
let joinedBlock: ArrayBuffer = new ArrayBuffer(0);

function joinBlock(size: usize): usize {
  if (<usize>joinedBlock.byteLength < size) joinedBlock = new ArrayBuffer(<i32>max(size, <usize>joinedBlock.byteLength * 2));
  return changetype<usize>(joinedBlock);
}

// ---------------------------------------------------------------- reading the input

/**
 * Where the bytes of the buffer being processed come from. The glue reads
 * the host buffer; loading only windows lets the session skip PUBLISH
 * payloads without copying them into the VM.
 */
export class ByteSource {
  /** Pointer to bytes [start, start+size) of the buffer; valid until the next load(). */
  load(start: usize, size: usize): usize { return 0; }
  /** Pointer to the whole buffer ([0, len)); valid until the next loadAll(). */
  loadAll(): usize { return 0; }
  /** Copies the whole buffer ([0, len)) to `dest`, which has room for it. */
  loadInto(dest: usize, len: usize): void {}
}

/** A buffer already in memory. */
export class MemorySource extends ByteSource {
  constructor(public base: usize) { super(); }
  load(start: usize, size: usize): usize { return this.base + start; }
  loadAll(): usize { return this.base; }
  loadInto(dest: usize, len: usize): void { memory.copy(dest, this.base, len); }
}

/**
 * How much of the buffer one read takes. Each host read costs a round trip
 * (in Envoy it dominates: one read of the whole buffer per callback runs at
 * ~91% of plain tcp_proxy with 4 KB PUBLISHes, a read per packet header at
 * ~78%), so the filter reads the rest of the buffer at once — except right
 * after a packet larger than LARGE_PACKET, where only the next header is
 * read and the payload bytes of such packets are never copied.
 */
const WINDOW_REST: usize = <usize>0x7fffffff;
const WINDOW_SMALL: usize = 256;
const LARGE_PACKET: u32 = 65536;

// ---------------------------------------------------------------- packets the proxy makes

function pingreq(): ArrayBuffer {
  const b = new ArrayBuffer(2);
  store<u8>(changetype<usize>(b), 0xc0);
  store<u8>(changetype<usize>(b) + 1, 0);
  return b;
}

/** PUBACK / PUBREC / PUBCOMP for packetId, with a 5.0 reason code when reason >= 0. */
function ackPacket(type: u8, packetId: i32, reason: i32): ArrayBuffer {
  const b = new ArrayBuffer(reason >= 0 ? 5 : 4);
  const p = changetype<usize>(b);
  store<u8>(p, type << 4);
  store<u8>(p + 1, reason >= 0 ? 3 : 2);
  store<u8>(p + 2, <u8>(packetId >> 8));
  store<u8>(p + 3, <u8>packetId);
  if (reason >= 0) store<u8>(p + 4, <u8>reason);
  return b;
}

/** SUBACK with `codes` (5.0: an empty property block first). */
function subackPacket(packetId: i32, codes: Uint8Array, v5: bool): ArrayBuffer {
  const rl = <u32>(2 + (v5 ? 1 : 0) + codes.length);
  const size = 1 + varintSize(rl) + rl;
  const b = new ArrayBuffer(<i32>size);
  const p = changetype<usize>(b);
  store<u8>(p, 0x90);
  let at = <usize>1 + <usize>writeVarint(p + 1, rl);
  store<u8>(p + at, <u8>(packetId >> 8));
  store<u8>(p + at + 1, <u8>packetId);
  at += 2;
  if (v5) { store<u8>(p + at, 0); at++; }
  memory.copy(p + at, codes.dataStart, <usize>codes.length);
  return b;
}

/** A SUBSCRIBE whose filters were partly refused: the codes to put back into its SUBACK. */
class SubRewrite {
  /** One entry per original filter: 0xff = forwarded (take the broker's code), else the refusal code. */
  codes: Uint8Array;
  forwarded: i32 = 0;
  constructor(n: i32) { this.codes = new Uint8Array(n); }
}

class DirectionState {
  /** Payload bytes of the current PUBLISH still to come. */
  skip: u32 = 0;
  /** Whether those bytes are dropped (a refused PUBLISH) or passed. */
  dropping: bool = false;
  /** Start of a packet whose header is incomplete: a copy to parse with the bytes that follow. */
  partial: ArrayBuffer | null = null;
  /**
   * Whether those bytes already went on (true) or were held back from the
   * stream (false). They go on when no ACL is configured: then no verdict of
   * this filter drops or rewrites a packet, so the buffer is left as it is.
   */
  partialSent: bool = false;
  /** Topic aliases seen in this direction (5.0). */
  aliases: Map<i32, ArrayBuffer> = new Map<i32, ArrayBuffer>();
}

// ---------------------------------------------------------------- the session

export class Session {
  readonly pkt: Packet = new Packet();
  readonly out: Output = new Output();
  readonly down: DirectionState = new DirectionState();
  readonly up: DirectionState = new DirectionState();

  version: u8 = 0;
  connected: bool = false;
  clientId: Uint8Array = new Uint8Array(0);
  hasUsername: bool = false;
  username: Uint8Array = new Uint8Array(0);
  /** Cluster picked at CONNECT ("" = tcp_proxy's own). */
  cluster: string = "";
  routed: bool = false;

  /** Why the filter closes the connection ("" while it does not). */
  closeReason: string = "";
  /** Something the session observed that explains a later close (DISCONNECT, ...). */
  note: string = "";
  /** Packets parsed per direction. */
  packetsDown: u64 = 0;
  packetsUp: u64 = 0;

  /** Broker PINGRESPs to come, in order: null = the client's own PINGREQ, else the reply to send instead. */
  private pingQueue: Array<ArrayBuffer | null> = new Array<ArrayBuffer | null>();
  private pingHead: i32 = 0;
  private subRewrites: Map<i32, SubRewrite> = new Map<i32, SubRewrite>();
  /** 3.1 / 3.1.1 QoS 2 PUBLISHes refused with a PUBREC: their PUBREL gets a PUBCOMP from the proxy. */
  private refusedQos2: Set<i32> = new Set<i32>();

  private src: ByteSource = new ByteSource();
  /** Length of the input being processed. */
  private len: usize = 0;
  private fullBase: usize = 0;
  private winPtr: usize = 0;
  private winStart: usize = 0;
  private winEnd: usize = 0;
  private windowHint: usize = WINDOW_REST;

  /** JSON lines describing parsed packets (config.logPackets). */
  packetLog: Array<string> = new Array<string>();

  constructor(readonly config: Config, readonly layout: StatLayout, readonly stats: StatDeltas) {
    stats.add(S_CONNECTIONS, 1);
  }

  clientIdString(): string {
    return String.UTF8.decodeUnsafe(this.clientId.dataStart, <usize>this.clientId.length);
  }

  usernameString(): string | null {
    return this.hasUsername ? String.UTF8.decodeUnsafe(this.username.dataStart, <usize>this.username.length) : null;
  }

  // ------------------------------------------------------------ errors

  private malformed(reason: i32, fromClient: bool): i32 {
    this.stats.add(S_MALFORMED + reason, 1);
    this.stats.add(S_CLOSED_BY_FILTER, 1);
    this.closeReason = "malformed " + malformedName(reason) + " from " + (fromClient ? "client" : "broker");
    return R_CLOSE;
  }

  private limit(reason: i32): i32 {
    this.stats.add(S_LIMIT + reason, 1);
    this.stats.add(S_CLOSED_BY_FILTER, 1);
    this.closeReason = "limit " + limitName(reason);
    return R_CLOSE;
  }

  // ------------------------------------------------------------ entry point

  /**
   * Processes the whole buffer the host holds for a direction ([ptr, ptr+len)).
   * Returns R_CONTINUE (apply `out` if modified), R_PAUSE (keep buffering:
   * CONNECT incomplete) or R_CLOSE (closeReason says why).
   */
  process(fromClient: bool, src: ByteSource, len: usize, eos: bool): i32 {
    if (this.closeReason.length > 0) return R_CLOSE;
    this.src = src;
    this.len = len;
    this.fullBase = 0;
    this.winStart = 0;
    this.winEnd = 0;
    this.out.begin(len);
    if (fromClient && !this.connected) return this.beforeConnect(len, eos);
    const d = fromClient ? this.down : this.up;
    const partial = d.partial;
    if (partial != null) {
      // The start of the split packet goes back in front of the new bytes, to be parsed with them.
      const plen = <usize>partial.byteLength;
      const joined = joinBlock(plen + len);
      memory.copy(joined, changetype<usize>(partial), plen);
      // the host writes the new bytes straight behind them: one copy, as for an unsplit buffer
      if (len > 0) src.loadInto(joined + plen, len);
      d.partial = null;
      this.len = plen + len;
      this.out.begin(plen + len);
      this.setFull(joined);
      if (d.partialSent) {
        // Those bytes went on already: the host's buffer is what follows them, and stays as it is.
        d.partialSent = false;
        this.out.origin = plen;
        this.out.pos = plen;
      } else {
        this.out.start(); // the host buffer lacks the held bytes: always rewritten
      }
      return this.frames(fromClient, d, 0, eos);
    }
    return this.frames(fromClient, d, 0, eos);
  }

  private setFull(base: usize): void {
    this.fullBase = base;
    this.winPtr = base;
    this.winStart = 0;
    this.winEnd = this.len;
    this.out.base = base;
  }

  /** Loads the whole input (before anything is dropped or inserted). */
  private ensureFull(): void {
    if (this.fullBase != 0 || this.len == 0) return;
    // the window often holds the whole input already: no second read
    this.setFull(this.winStart == 0 && this.winEnd == this.len ? this.winPtr : this.src.loadAll());
  }

  /** Pointer to input [pos, pos+n) (n <= len - pos); the window may cover more (winEnd). */
  @inline private view(pos: usize, n: usize): usize {
    if (pos >= this.winStart && pos + n <= this.winEnd) return this.winPtr + (pos - this.winStart);
    const size = min(this.len - pos, max(n, this.windowHint));
    this.winPtr = this.src.load(pos, size);
    this.winStart = pos;
    this.winEnd = pos + size;
    return this.winPtr;
  }

  private dropTo(to: usize): void {
    this.ensureFull();
    this.out.drop(to);
  }

  private insertBytes(bytes: ArrayBuffer): void {
    this.ensureFull();
    this.out.insert(bytes);
  }

  private beforeConnect(len: usize, eos: bool): i32 {
    const pkt = this.pkt;
    if (len == 0 && eos) {
      this.closeReason = "client closed before CONNECT";
      return R_CLOSE;
    }
    const ptr = len > 0 ? this.src.loadAll() : 0;
    if (len >= 1 && (load<u8>(ptr) >> 4) != CONNECT) return this.malformed(Malformed.FirstNotConnect, true);
    const fh = parseFixedHeader(ptr, len, 0, pkt);
    if (fh > 0) return this.malformed(fh, true);
    if (fh == FH_NEED_MORE) {
      if (eos) return this.malformed(Malformed.TruncatedStream, true);
      return R_PAUSE;
    }
    const total = pkt.total();
    if (total > this.config.maxPacketSize) return this.limit(Limit.PacketTooLarge);
    if (total > this.config.maxHeaderBytes) return this.limit(Limit.HeaderTooLarge);
    if (<usize>total > len) {
      if (eos) return this.malformed(Malformed.TruncatedStream, true);
      return R_PAUSE;
    }
    const m = parsePacket(ptr, len, 0, pkt);
    if (m != Malformed.None) return this.malformed(m, true);
    this.stats.add(S_DOWN_TYPE + CONNECT, 1);
    this.packetsDown++;
    const r = this.onConnect();
    if (this.config.logPackets) this.logPacket(true, r == R_CLOSE ? D_CLOSE : D_FORWARD);
    if (r != R_CONTINUE) return r;
    this.setFull(ptr);
    this.out.keep(<usize>total);
    return this.frames(true, this.down, <usize>total, eos);
  }

  private onConnect(): i32 {
    const pkt = this.pkt;
    const config = this.config;
    this.connected = true;
    this.version = pkt.protocolLevel;
    this.clientId = copyBytes(pkt.clientIdPtr, pkt.clientIdLen);
    this.hasUsername = pkt.hasUsername;
    if (pkt.hasUsername) this.username = copyBytes(pkt.usernamePtr, pkt.usernameLen);
    if (pkt.clientIdLen > config.maxClientIdLength) return this.limit(Limit.ClientIdTooLong);
    for (let i: u32 = 0; i < pkt.clientIdLen; i++) {
      const c = load<u8>(pkt.clientIdPtr + i);
      if (c == 0x2b || c == 0x23) return this.limit(Limit.ClientIdWildcard);
    }
    if (config.hasAcl) this.selectAclRules();
    if (pkt.willFlag) {
      if (pkt.willTopicLen > config.maxTopicLength) return this.limit(Limit.TopicTooLong);
      if (levelCount(pkt.willTopicPtr, pkt.willTopicLen) > config.maxTopicLevels) return this.limit(Limit.TopicTooDeep);
      if (config.hasAcl && !this.publishAllowed(pkt.willTopicPtr, pkt.willTopicLen)) {
        this.stats.add(S_ACL_WILL_DENIED, 1);
        this.stats.add(S_CLOSED_BY_FILTER, 1);
        this.closeReason = "acl will topic denied";
        return R_CLOSE;
      }
    }
    // routing: first route whose match holds; a route without match always does
    const routes = config.routes;
    this.routed = true;
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i];
      const m = route.match;
      if (m == null || this.connectMatches(m)) {
        this.cluster = route.cluster;
        this.stats.add(this.layout.routeIndex[i], 1);
        return R_CONTINUE;
      }
    }
    this.stats.add(S_ROUTE_DEFAULT, 1);
    return R_CONTINUE;
  }

  private connectMatches(m: ConnectMatch): bool {
    return m.matches(this.clientId.dataStart, <usize>this.clientId.length, this.hasUsername, this.username.dataStart, <usize>this.username.length);
  }

  // ------------------------------------------------------------ the frame loop

  private frames(fromClient: bool, d: DirectionState, from: usize, eos: bool): i32 {
    const out = this.out;
    const pkt = this.pkt;
    const config = this.config;
    const stats = this.stats;
    const version = this.version;
    const len = this.len;
    let pos = from;
    if (d.skip > 0) {
      if (eos && <usize>d.skip > len - pos) return this.malformed(Malformed.TruncatedStream, fromClient);
      const n = min(<usize>d.skip, len - pos);
      if (d.dropping) this.dropTo(pos + n); else out.keep(pos + n);
      d.skip -= <u32>n;
      pos += n;
      if (d.skip == 0) d.dropping = false;
    }
    const typeBase = fromClient ? S_DOWN_TYPE : S_UP_TYPE;
    const fast = !config.logPackets;
    while (pos < len) {
      if (fast) {
        pos = this.forwardPlainPublishes(fromClient, d, pos);
        if (pos >= len) break;
      }
      const real = len - pos;
      let at = this.view(pos, min(real, 16));
      let avail = this.winEnd - pos;
      const fh = parseFixedHeader(at, avail, version, pkt);
      if (fh == FH_NEED_MORE) return this.holdPartial(d, pos, eos, fromClient);
      if (fh > 0) return this.malformed(fh, fromClient);
      if (version == V5 && pkt.nonMinimal) return this.malformed(Malformed.NonMinimalLength, fromClient);
      const type = pkt.type;
      if (!allowedDirection(type, fromClient)) return this.malformed(Malformed.Direction, fromClient);
      if (type == CONNECT) return this.malformed(Malformed.SecondConnect, fromClient);
      const total = pkt.total();
      if (fromClient && total > config.maxPacketSize) return this.limit(Limit.PacketTooLarge);
      let need = headerNeed(at, avail, version, pkt);
      // the window may end before the header does: widen it (PUBLISH headers are found in steps)
      while (need > <i64>avail && need <= <i64>real && need <= <i64>config.maxHeaderBytes) {
        at = this.view(pos, <usize>need);
        avail = this.winEnd - pos;
        need = headerNeed(at, avail, version, pkt);
      }
      if (need < 0) return this.malformed(<i32>-need, fromClient);
      if (need > <i64>config.maxHeaderBytes) return this.limit(Limit.HeaderTooLarge);
      if (need > <i64>avail) return this.holdPartial(d, pos, eos, fromClient);
      const m = parsePacket(at, avail, version, pkt);
      if (m != Malformed.None) return this.malformed(m, fromClient);
      stats.add(typeBase + type, 1);
      if (fromClient) this.packetsDown++; else this.packetsUp++;
      this.windowHint = total > LARGE_PACKET ? WINDOW_SMALL : WINDOW_REST;

      const frameEnd = pos + <usize>total;
      if (eos && frameEnd > len) return this.malformed(Malformed.TruncatedStream, fromClient);
      const segEnd = min(frameEnd, len);
      let replacement: ArrayBuffer | null = null;
      let drop = false;
      let decision = D_FORWARD;
      if (type == PUBLISH) {
        const r = this.onPublish(fromClient, d);
        if (r == R_CLOSE) return r;
        if (r == 1) { drop = true; decision = D_DROP; }
        else if (r == 3) { replacement = pingreq(); decision = D_REFUSE; }
      } else if (fromClient) {
        if (type == SUBSCRIBE) {
          const r = this.onSubscribe(at);
          if (r == null && this.closeReason.length > 0) return R_CLOSE;
          if (r != null) { replacement = r; decision = D_REWRITE; }
        } else if (type == PUBREL) {
          if (this.refusedQos2.has(pkt.packetId)) {
            this.refusedQos2.delete(pkt.packetId);
            if (!this.queueReply(ackPacket(PUBCOMP, pkt.packetId, -1))) return this.limit(Limit.TooManyPending);
            stats.add(S_REFUSAL_PUBCOMP, 1);
            replacement = pingreq();
            decision = D_REFUSE;
          }
        } else if (type == PINGREQ) {
          if (this.pingQueue.length > this.pingHead && this.pingQueue.length - this.pingHead < <i32>config.maxPending) this.pingQueue.push(null);
        } else if (type == UNSUBSCRIBE) {
          for (let i = 0; i < pkt.filterLens.length; i++) {
            if (pkt.filterLens[i] > config.maxTopicLength) return this.limit(Limit.TopicTooLong);
          }
        } else if (type == DISCONNECT) {
          this.note = "client sent DISCONNECT";
        }
      } else {
        if (type == PINGRESP) {
          if (this.pingQueue.length > this.pingHead) {
            const reply = this.pingQueue[this.pingHead];
            this.pingQueue[this.pingHead] = null;
            this.pingHead++;
            if (this.pingHead == this.pingQueue.length) { this.pingQueue.length = 0; this.pingHead = 0; }
            if (reply != null) { replacement = reply; decision = D_REFUSAL; }
          }
        } else if (type == SUBACK) {
          if (this.subRewrites.has(pkt.packetId)) {
            const rw = this.subRewrites.get(pkt.packetId);
            this.subRewrites.delete(pkt.packetId);
            if (<i32>pkt.codesLen == rw.forwarded) {
              replacement = this.rewriteSuback(at, rw);
              stats.add(S_SUBACK_REWRITTEN, 1);
              decision = D_REWRITE;
            }
          }
        } else if (type == CONNACK) {
          if (pkt.reasonCode != 0) this.note = "broker refused CONNECT (code " + pkt.reasonCode.toString() + ")";
        } else if (type == DISCONNECT) {
          this.note = "broker sent DISCONNECT" + (pkt.reasonCode > 0 ? " (reason " + pkt.reasonCode.toString() + ")" : "");
        }
      }
      if (config.logPackets) this.logPacket(fromClient, decision);

      if (replacement != null) {
        this.dropTo(segEnd);
        this.insertBytes(replacement);
      } else if (drop) {
        this.dropTo(segEnd);
      } else {
        out.keep(segEnd);
      }
      if (frameEnd > len) {
        d.skip = <u32>(frameEnd - len);
        d.dropping = drop || replacement != null;
      }
      pos = segEnd;
    }
    out.keep(len);
    return R_CONTINUE;
  }

  /**
   * The common case, fast: consecutive PUBLISHes whose only outcome is
   * "forward" (plain ASCII topic, no 5.0 properties, within the limits,
   * allowed). Returns where it stopped: the packet there goes through the
   * general path, so every other verdict (errors, refusals, rewrites) is
   * made in one place. Reads only the current window.
   */
  private forwardPlainPublishes(fromClient: bool, d: DirectionState, from: usize): usize {
    const winStart = this.winStart;
    const winEnd = this.winEnd;
    if (from < winStart || from >= winEnd) return from;
    const config = this.config;
    const topics = this.layout.topics;
    const rules = this.pubRules;
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
    const origin = this.winPtr - winStart; // where input offset 0 would be
    const stop = scanPublishes(origin + from, origin + winEnd, fromClient && config.maxTopicLevels < 65535, topics.count > 0, checkAcl);
    if (topics.count > 0) flushTally(changetype<usize>(this.stats), changetype<usize>(this.stats.values), topics.table, topics.indexes, topics.count, fromClient ? 0 : 2);
    const count = scannedPackets();
    if (count == 0) return from;
    this.stats.add((fromClient ? S_DOWN_TYPE : S_UP_TYPE) + PUBLISH, <i64>count);
    if (fromClient) this.packetsDown += <u64>count; else this.packetsUp += <u64>count;
    // the fast path passes only packets under LARGE_PACKET (two length bytes at most)
    this.windowHint = WINDOW_REST;
    const len = this.len;
    let pos = stop - origin;
    if (pos > len) {
      d.skip = <u32>(pos - len);
      d.dropping = false;
      pos = len;
    }
    this.out.keep(pos);
    return pos;
  }

  private holdPartial(d: DirectionState, pos: usize, eos: bool, fromClient: bool): i32 {
    // the peer ended inside a packet: nothing of it passes
    if (eos) return this.malformed(Malformed.TruncatedStream, fromClient);
    const n = this.len - pos;
    if (n > <usize>this.config.maxHeaderBytes) return this.limit(Limit.HeaderTooLarge);
    // Not paused instead: a paused buffer stays in Envoy's read buffer, and
    // once that is over the connection's buffer limit Envoy stops reading,
    // so the rest of the header would never come (seen in the bench). A copy
    // is parsed with the next bytes; the bytes themselves go on unless an
    // ACL could still refuse the packet, which leaves the buffer untouched
    // (Envoy can prepend and append, but dropping the tail rewrites it all).
    d.partial = copyBytes(this.view(pos, n), <u32>n).buffer;
    d.partialSent = !this.config.hasAcl;
    if (d.partialSent) this.out.keep(this.len);
    else this.dropTo(this.len);
    return R_CONTINUE;
  }

  /** Enqueues a reply the proxy sends in place of the PINGRESP of the PINGREQ it sends upstream. */
  private queueReply(reply: ArrayBuffer): bool {
    if (this.pingQueue.length - this.pingHead >= <i32>this.config.maxPending) return false;
    this.pingQueue.push(reply);
    return true;
  }

  // ------------------------------------------------------------ PUBLISH

  /** 0 forward, 1 drop, 3 replace with PINGREQ (a refusal was queued), or R_CLOSE (2). */
  private onPublish(fromClient: bool, d: DirectionState): i32 {
    const pkt = this.pkt;
    const config = this.config;
    let topicPtr = pkt.topicPtr;
    let topicLen = pkt.topicLen;
    if (pkt.topicAlias >= 0) {
      if (topicLen > 0) {
        if (!d.aliases.has(pkt.topicAlias) && d.aliases.size >= <i32>config.maxPending) return this.limit(Limit.TooManyTopicAliases);
        d.aliases.set(pkt.topicAlias, copyBytes(topicPtr, topicLen).buffer);
      } else {
        if (!d.aliases.has(pkt.topicAlias)) return this.malformed(Malformed.TopicAlias, fromClient);
        const t = d.aliases.get(pkt.topicAlias);
        topicPtr = changetype<usize>(t);
        topicLen = <u32>t.byteLength;
      }
    }
    const topics = this.layout.topics;
    addTopicCounts(changetype<usize>(this.stats), changetype<usize>(this.stats.values),
      topicCounter(topics.prefixes, topics.indexes, topics.count, fromClient ? 0 : 2, topicPtr, <usize>topicLen), 1, <i64>pkt.payloadLen);
    if (!fromClient) return 0;
    if (topicLen > config.maxTopicLength) return this.limit(Limit.TopicTooLong);
    if (config.maxTopicLevels < 65535 && levelCount(topicPtr, topicLen) > config.maxTopicLevels) return this.limit(Limit.TopicTooDeep);
    if (!config.hasAcl || this.publishAllowed(topicPtr, topicLen)) return 0;

    this.stats.add(S_ACL_PUBLISH_DENIED, 1);
    if (pkt.qos == 0) {
      this.stats.add(S_PUBLISH_DROPPED, 1);
      return 1;
    }
    const v5 = this.version == V5;
    if (pkt.qos == 1) {
      if (!this.queueReply(ackPacket(PUBACK, pkt.packetId, v5 ? NOT_AUTHORIZED_V5 : -1))) return this.limit(Limit.TooManyPending);
      this.stats.add(S_REFUSAL_PUBACK, 1);
      return 3;
    }
    if (!v5) {
      if (!this.refusedQos2.has(pkt.packetId) && this.refusedQos2.size >= <i32>config.maxPending) return this.limit(Limit.TooManyPending);
      this.refusedQos2.add(pkt.packetId);
    }
    if (!this.queueReply(ackPacket(PUBREC, pkt.packetId, v5 ? NOT_AUTHORIZED_V5 : -1))) return this.limit(Limit.TooManyPending);
    this.stats.add(S_REFUSAL_PUBREC, 1);
    return 3;
  }

  // ------------------------------------------------------------ ACLs

  private ruleApplies(rule: AclRule): bool {
    const m = rule.match;
    return m == null || this.connectMatches(m);
  }

  /** The publish rules that apply to this connection, flat: pattern pointer, length, allow (1/0). */
  private pubRules: StaticArray<usize> = new StaticArray<usize>(0);
  /** The same for SUBSCRIBE. */
  private subRules: StaticArray<usize> = new StaticArray<usize>(0);
  /** Keeps the per-connection expansions of %c / %u rules alive (pubRules / subRules point into them). */
  private expanded: Array<Uint8Array> = new Array<Uint8Array>();

  /**
   * The topic of `rule` for this connection: the rule's own, or its %c / %u
   * expansion; null when the rule does not apply (connect match fails, or a
   * substituted value is empty, missing or has '+', '#' or '/', which would
   * widen or shift the pattern).
   */
  private ruleTopic(rule: AclRule): Uint8Array | null {
    if (!this.ruleApplies(rule)) return null;
    if (!rule.pattern) return rule.topic;
    const t = rule.topic;
    const n = t.length;
    let size = 0;
    for (let i = 0; i < n; i++) {
      const c = t[i];
      if (c == 0x25 && i + 1 < n && (t[i + 1] == 0x63 || t[i + 1] == 0x75)) {
        const v = this.substitution(t[i + 1] == 0x63);
        if (v == null) return null;
        size += v.length;
        i++;
      } else size++;
    }
    const out = new Uint8Array(size);
    let k = 0;
    for (let i = 0; i < n; i++) {
      const c = t[i];
      if (c == 0x25 && i + 1 < n && (t[i + 1] == 0x63 || t[i + 1] == 0x75)) {
        const v = this.substitution(t[i + 1] == 0x63)!;
        memory.copy(out.dataStart + <usize>k, v.dataStart, <usize>v.length);
        k += v.length;
        i++;
      } else out[k++] = c;
    }
    this.expanded.push(out);
    return out;
  }

  /** The client id (or username) to put into a pattern, or null when it is unusable there. */
  private substitution(clientId: bool): Uint8Array | null {
    if (!clientId && !this.hasUsername) return null;
    const v = clientId ? this.clientId : this.username;
    if (v.length == 0) return null;
    for (let i = 0; i < v.length; i++) {
      const c = v[i];
      if (c == 0x2b || c == 0x23 || c == 0x2f) return null;
    }
    return v;
  }

  /** The rules of a list that apply to this connection, flat (once, at CONNECT). */
  private selectRules(rules: AclRule[]): StaticArray<usize> {
    const flat = new Array<usize>();
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i];
      const topic = this.ruleTopic(rule);
      if (topic == null) continue;
      flat.push(topic.dataStart);
      flat.push(<usize>topic.length);
      flat.push(rule.allow ? 1 : 0);
    }
    return StaticArray.fromArray<usize>(flat);
  }

  /** Picks the ACL rules that apply to this connection and expands their %c / %u (once, at CONNECT). */
  private selectAclRules(): void {
    this.expanded.length = 0;
    this.pubRules = this.selectRules(this.config.publishRules);
    this.subRules = this.selectRules(this.config.subscribeRules);
  }

  publishAllowed(topicPtr: usize, topicLen: u32): bool {
    const rules = this.pubRules;
    return aclAllows(changetype<usize>(rules), <usize>rules.length, this.config.aclDefaultAllow, topicPtr, <usize>topicLen);
  }

  /** Allow rules apply when they cover the filter, deny rules when they overlap it. */
  subscribeAllowed(filterPtr: usize, filterLen: u32): bool {
    const rules = this.subRules;
    const off = sharedFilterOffset(filterPtr, filterLen);
    const f = filterPtr + off;
    const flen = <usize>filterLen - off;
    const n = rules.length;
    for (let i = 0; i < n; i += 3) {
      const p = unchecked(rules[i]);
      const plen = unchecked(rules[i + 1]);
      if (unchecked(rules[i + 2]) != 0) {
        if (filterCovers(p, plen, f, flen)) return true;
      } else if (filtersIntersect(p, plen, f, flen)) {
        return false;
      }
    }
    return this.config.aclDefaultAllow;
  }

  /** Closes a connection that did not complete CONNECT in time (the glue's tick decides when). */
  connectTimedOut(): void {
    if (this.connected || this.closeReason.length > 0) return;
    this.stats.add(S_CONNECT_TIMEOUT, 1);
    this.stats.add(S_CLOSED_BY_FILTER, 1);
    this.closeReason = "connect timeout";
  }

  // ------------------------------------------------------------ SUBSCRIBE / SUBACK

  /** The replacement for a SUBSCRIBE with refused filters, or null to forward it as is. */
  private onSubscribe(at: usize): ArrayBuffer | null {
    const pkt = this.pkt;
    const config = this.config;
    const n = pkt.filterPtrs.length;
    let refused = 0;
    let rw: SubRewrite | null = null;
    const v5 = this.version == V5;
    const code: u8 = v5 ? NOT_AUTHORIZED_V5 : SUBACK_FAILURE_V3;
    for (let i = 0; i < n; i++) {
      const len = pkt.filterLens[i];
      if (len > config.maxTopicLength) { this.limit(Limit.TopicTooLong); return null; }
      if (config.maxTopicLevels < 65535 && levelCount(pkt.filterPtrs[i], len) > config.maxTopicLevels) { this.limit(Limit.TopicTooDeep); return null; }
      if (!config.hasAcl || this.subscribeAllowed(pkt.filterPtrs[i], len)) continue;
      if (rw == null) {
        rw = new SubRewrite(n);
        for (let k = 0; k < n; k++) rw.codes[k] = 0xff;
      }
      rw.codes[i] = code;
      refused++;
    }
    if (rw == null) return null;
    this.stats.add(S_ACL_SUBSCRIBE_DENIED, refused);
    if (refused == n) {
      // nothing left to ask the broker: answer with a SUBACK of refusals
      if (!this.queueReply(subackPacket(pkt.packetId, rw.codes, v5))) { this.limit(Limit.TooManyPending); return null; }
      this.stats.add(S_REFUSAL_SUBACK, 1);
      return pingreq();
    }
    if (!this.subRewrites.has(pkt.packetId) && this.subRewrites.size >= <i32>config.maxPending) { this.limit(Limit.TooManyPending); return null; }
    rw.forwarded = n - refused;
    this.subRewrites.set(pkt.packetId, rw);
    // SUBSCRIBE without the refused filters: same variable header, the allowed entries verbatim
    const listStart = <usize>pkt.listOffset;
    let body = listStart - <usize>pkt.fixedLen;
    for (let i = 0; i < n; i++) {
      if (rw.codes[i] != 0xff) continue;
      body += 2 + <usize>pkt.filterLens[i] + 1;
    }
    const size: usize = <usize>1 + <usize>varintSize(<u32>body) + body;
    const b = new ArrayBuffer(<i32>size);
    const p = changetype<usize>(b);
    store<u8>(p, load<u8>(at));
    let o = <usize>1 + <usize>writeVarint(p + 1, <u32>body);
    memory.copy(p + o, at + <usize>pkt.fixedLen, listStart - <usize>pkt.fixedLen);
    o += listStart - <usize>pkt.fixedLen;
    for (let i = 0; i < n; i++) {
      if (rw.codes[i] != 0xff) continue;
      const start = <usize>pkt.filterStarts[i];
      const entry: usize = <usize>2 + <usize>pkt.filterLens[i] + 1;
      memory.copy(p + o, at + start, entry);
      o += entry;
    }
    return b;
  }

  /** The broker's SUBACK with the refused filters' codes put back in place. */
  private rewriteSuback(at: usize, rw: SubRewrite): ArrayBuffer {
    const pkt = this.pkt;
    const n = rw.codes.length;
    const head = <usize>pkt.listOffset - <usize>pkt.fixedLen; // packet id (+ properties)
    const body = head + <usize>n;
    const size: usize = <usize>1 + <usize>varintSize(<u32>body) + body;
    const b = new ArrayBuffer(<i32>size);
    const p = changetype<usize>(b);
    store<u8>(p, 0x90);
    let o = <usize>1 + <usize>writeVarint(p + 1, <u32>body);
    memory.copy(p + o, at + <usize>pkt.fixedLen, head);
    o += head;
    let k: usize = 0;
    for (let i = 0; i < n; i++) {
      const c = rw.codes[i];
      store<u8>(p + o + <usize>i, c == 0xff ? load<u8>(pkt.codesPtr + k++) : c);
    }
    return b;
  }

  // ------------------------------------------------------------ packet log

  private logPacket(fromClient: bool, decision: i32): void {
    this.packetLog.push(describePacket(this.pkt, fromClient, this.version, DECISIONS[decision]));
  }
}

function copyBytes(ptr: usize, len: u32): Uint8Array {
  const a = new Uint8Array(<i32>len);
  memory.copy(a.dataStart, ptr, <usize>len);
  return a;
}

function str(ptr: usize, len: u32): string {
  return jsonQuote(String.UTF8.decodeUnsafe(ptr, <usize>len));
}

/** One JSON object per packet: the fields the parser read (see docs/mqtt.md). */
export function describePacket(pkt: Packet, fromClient: bool, version: u8, decision: string): string {
  const t = pkt.type;
  let s = "{\"direction\":\"" + (fromClient ? "downstream" : "upstream") + "\",\"type\":\"" + typeName(t) + "\",\"length\":" + pkt.remaining.toString();
  if (t == CONNECT) {
    s += ",\"protocol\":" + str(pkt.protocolPtr, pkt.protocolLen) + ",\"level\":" + pkt.protocolLevel.toString();
    if (pkt.bridge) s += ",\"bridge\":true";
    s += ",\"client_id\":" + str(pkt.clientIdPtr, pkt.clientIdLen);
    if (pkt.hasUsername) s += ",\"username\":" + str(pkt.usernamePtr, pkt.usernameLen);
    s += ",\"password\":" + (pkt.hasPassword ? "true" : "false");
    s += ",\"clean_start\":" + (pkt.cleanStart ? "true" : "false") + ",\"keep_alive\":" + pkt.keepAlive.toString();
    if (pkt.willFlag) {
      s += ",\"will_topic\":" + str(pkt.willTopicPtr, pkt.willTopicLen) + ",\"will_qos\":" + pkt.willQos.toString();
      s += ",\"will_retain\":" + (pkt.willRetain ? "true" : "false") + ",\"will_payload_length\":" + pkt.willPayloadLen.toString();
    }
  } else if (t == CONNACK) {
    s += ",\"session_present\":" + (pkt.sessionPresent ? "true" : "false") + ",\"reason\":" + pkt.reasonCode.toString();
    if (pkt.assignedClientIdLen >= 0) s += ",\"assigned_client_id\":" + str(pkt.assignedClientIdPtr, <u32>pkt.assignedClientIdLen);
  } else if (t == PUBLISH) {
    s += ",\"topic\":" + str(pkt.topicPtr, pkt.topicLen) + ",\"qos\":" + pkt.qos.toString();
    s += ",\"retain\":" + (pkt.retain ? "true" : "false") + ",\"dup\":" + (pkt.dup ? "true" : "false");
    if (pkt.topicAlias >= 0) s += ",\"topic_alias\":" + pkt.topicAlias.toString();
    s += ",\"payload_length\":" + pkt.payloadLen.toString();
  } else if (t == SUBSCRIBE || t == UNSUBSCRIBE) {
    s += ",\"filters\":[";
    for (let i = 0; i < pkt.filterPtrs.length; i++) {
      if (i > 0) s += ",";
      s += "{\"filter\":" + str(pkt.filterPtrs[i], pkt.filterLens[i]);
      if (t == SUBSCRIBE) s += ",\"qos\":" + (pkt.filterOptions[i] & 3).toString() + ",\"options\":" + pkt.filterOptions[i].toString();
      s += "}";
    }
    s += "]";
  } else if (t == SUBACK || t == UNSUBACK) {
    if (pkt.codesLen > 0) {
      s += ",\"codes\":[";
      for (let i: u32 = 0; i < pkt.codesLen; i++) {
        if (i > 0) s += ",";
        s += load<u8>(pkt.codesPtr + i).toString();
      }
      s += "]";
    }
  }
  if (pkt.packetId >= 0) s += ",\"packet_id\":" + pkt.packetId.toString();
  if (t != CONNACK && pkt.reasonCode >= 0) s += ",\"reason\":" + pkt.reasonCode.toString();
  if (version == V5 || (t == CONNECT && pkt.protocolLevel == V5)) {
    if (pkt.propertiesLen >= 0) s += ",\"properties_length\":" + pkt.propertiesLen.toString();
    if (pkt.sessionExpiry >= 0) s += ",\"session_expiry\":" + pkt.sessionExpiry.toString();
    if (pkt.maxPacketSize >= 0) s += ",\"maximum_packet_size\":" + pkt.maxPacketSize.toString();
    if (pkt.receiveMaximum >= 0) s += ",\"receive_maximum\":" + pkt.receiveMaximum.toString();
    if (pkt.topicAliasMaximum >= 0) s += ",\"topic_alias_maximum\":" + pkt.topicAliasMaximum.toString();
    if (pkt.subscriptionId >= 0) s += ",\"subscription_id\":" + pkt.subscriptionId.toString();
    if (pkt.userProperties > 0) s += ",\"user_properties\":" + pkt.userProperties.toString();
  }
  if (version == V31 && t == CONNECT) s += ",\"v31\":true";
  return s + ",\"decision\":\"" + decision + "\"}";
}

