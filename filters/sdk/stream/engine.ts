// The framed-stream engine: one per connection. It walks each direction's
// bytes frame by frame with the codec, reading the host buffer in windows
// (payload past a frame's header is never copied when it passes or drops),
// keeps a frame split across callbacks, builds the rewritten buffer in order
// (replacements, dropped frames, injected replies) and tracks routing,
// deadlines and the reply queue. Nearly pure: the glue (glue.ts) reads and writes
// the host (the engine only reads the clock for deadlines).
import { monotonicTimeNanos } from "../host";
import { Codec, Frame, StreamError } from "./codec";
import { Counters } from "./counters";
import { ByteSource, Output } from "./output";
import { Verdict, VerdictKind } from "./verdict";

/** What the glue does with the host's buffer after process(). */
export enum Flow {
  /** Pass it on (rewritten first when out.modified). */
  Continue = 0,
  /** Keep it (Envoy keeps accumulating): the client's bytes before routing. */
  Hold = 1,
  /** Close the connection (closeReason says why). */
  Close = 2,
}

/**
 * How much of the buffer one read takes. Each host read costs a round trip
 * (in Envoy it dominates), so the layer reads the rest of the buffer at once
 * — except right after a frame larger than LARGE_FRAME, where only the next
 * head is read and the payload bytes of such frames are never copied.
 */
const WINDOW_REST: usize = <usize>0x7fffffff;
const WINDOW_SMALL: usize = 256;
const LARGE_FRAME: u64 = 65536;
const NO_BYTES = new ArrayBuffer(0);

class DirectionState {
  /** Bytes of the current frame still to come (its payload past the header). */
  skip: u64 = 0;
  /** Whether those bytes are dropped (the frame was removed) or passed. */
  dropping: bool = false;
  /**
   * Start of a frame whose head is incomplete (`heldLen` bytes at the start of
   * `hold`), parsed with the bytes that follow. The block grows by doubling
   * and each callback appends only its new bytes, so a frame split over many
   * callbacks is copied once, not once per callback.
   */
  hold: ArrayBuffer = NO_BYTES;
  heldLen: usize = 0;
  /** Whether those bytes already went on (the codec never rewrites this direction) or were cut from the host's buffer. */
  partialSent: bool = false;

  releaseHold(): void {
    if (this.heldLen == 0 && this.hold.byteLength > 0) this.hold = NO_BYTES;
  }

  /** Room for `size` bytes in `hold`, keeping its first `keep` bytes; returns its start. */
  reserve(size: usize, keep: usize): usize {
    let cap = <usize>this.hold.byteLength;
    if (size > cap) {
      // exact at first (most split heads complete in the next callback), doubling when they keep coming
      cap = cap == 0 ? size : max(size, cap * 2);
      const next = new ArrayBuffer(<i32>cap);
      memory.copy(changetype<usize>(next), changetype<usize>(this.hold), keep);
      this.hold = next;
    }
    return changetype<usize>(this.hold);
  }
  /**
   * The answers this direction owes, in order: replies[i] takes the place of
   * the answer that comes after gaps[i] real ones; `tail` real answers are
   * owed after the last reply. Counts, so pipelined requests cost nothing.
   */
  replies: Array<ArrayBuffer> = new Array<ArrayBuffer>();
  gaps: Array<u64> = new Array<u64>();
  repliesHead: i32 = 0;
  tail: u64 = 0;
  /** Replies to insert into this direction before its next frame (no answer slot). */
  inject: Array<ArrayBuffer> = new Array<ArrayBuffer>();
  /** Frames seen. */
  frames: u64 = 0;

  get pendingReplies(): i32 { return this.replies.length - this.repliesHead; }

  queueReply(reply: ArrayBuffer): void {
    this.replies.push(reply);
    this.gaps.push(this.tail);
    this.tail = 0;
  }

  /** The reply in the next answer's place, or null when a real answer is due there. */
  nextAnswer(): ArrayBuffer | null {
    const head = this.repliesHead;
    if (head == this.replies.length) {
      if (this.tail > 0) this.tail--;
      return null;
    }
    const gap = this.gaps[head];
    if (gap > 0) {
      this.gaps[head] = gap - 1;
      return null;
    }
    const reply = this.replies[head];
    this.repliesHead = head + 1;
    if (this.repliesHead == this.replies.length) {
      this.replies.length = 0;
      this.gaps.length = 0;
      this.repliesHead = 0;
    }
    return reply;
  }
}

export class FramedConnection {
  readonly out: Output = new Output();
  frame!: Frame;
  private readonly down: DirectionState = new DirectionState();
  private readonly up: DirectionState = new DirectionState();

  /** Packet log on (settings "log_packets"). */
  logPackets: bool = false;
  /** Cluster picked by route() ("" = tcp_proxy's own); `routed` once a frame decided. */
  cluster: string = "";
  routed: bool = false;
  /** Why the filter closes the connection ("" while it does not). */
  closeReason: string = "";
  /** Something the codec observed that explains a later close (e.g. "client sent DISCONNECT"). */
  note: string = "";
  /** Monotonic ns when the deadline passes (0 = none); the glue's tick checks it. */
  deadlineNs: u64 = 0;
  /** Client bytes already walked in a held buffer (Flow.Hold): the next callback starts there. */
  private heldFrom: usize = 0;

  private src: ByteSource = new ByteSource();
  private len: usize = 0;
  private fullBase: usize = 0;
  private winPtr: usize = 0;
  private winStart: usize = 0;
  private winEnd: usize = 0;
  private windowHint: usize = WINDOW_REST;

  constructor(readonly codec: Codec, readonly counters: Counters, readonly closedByFilter: i32) {
    this.frame = new Frame(this);
    codec.conn = this;
  }

  get framesIn(): u64 { return this.down.frames; }
  get framesOut(): u64 { return this.up.frames; }

  // ------------------------------------------------------------ for the codec

  /** Picks the cluster ("" = tcp_proxy's own) and releases the client's held bytes. */
  route(cluster: string): void {
    this.cluster = cluster;
    this.routed = true;
  }

  /** Sets a deadline `ms` from now (0 clears it); the codec's onDeadline() runs once it passes. */
  setDeadline(ms: u32): void { this.deadlineNs = ms == 0 ? 0 : monotonicTimeNanos() + <u64>ms * 1000000; }
  clearDeadline(): void { this.deadlineNs = 0; }

  expectAnswer(fromClient: bool): void {
    (fromClient ? this.up : this.down).tail++;
  }

  takeAnswer(fromClient: bool): ArrayBuffer | null {
    return (fromClient ? this.down : this.up).nextAnswer();
  }

  /** Ends the connection with a close verdict from outside a data callback (a deadline). */
  closeWith(v: Verdict): bool {
    if (this.closeReason.length > 0) return false;
    this.close(v);
    return true;
  }

  // ------------------------------------------------------------ entry point

  /** Processes the whole buffer the host holds for a direction (`len` bytes, read through `src`). */
  process(fromClient: bool, src: ByteSource, len: usize, eos: bool): Flow {
    if (this.closeReason.length > 0) return Flow.Close;
    this.src = src;
    this.len = len;
    this.fullBase = 0;
    this.winStart = 0;
    this.winEnd = 0;
    this.out.begin(len);
    const d = fromClient ? this.down : this.up;
    const holding = fromClient && this.codec.routes && !this.routed;
    if (holding) {
      if (len == 0 && eos) return this.close(this.codec.onStreamError(StreamError.EndBeforeRoute, true));
      const from = min(this.heldFrom, len);
      this.out.keep(from);
      return this.frames(fromClient, d, from, eos);
    }
    const plen = d.heldLen;
    if (plen > 0) {
      // The start of the split frame stays in front of the new bytes, to be parsed with them;
      // the host writes the new bytes straight behind it (each byte is copied in once).
      const joined = d.reserve(plen + len, plen);
      if (len > 0) src.loadInto(joined + plen, len);
      d.heldLen = 0;
      this.len = plen + len;
      this.out.begin(plen + len);
      this.setFull(joined);
      if (d.partialSent) {
        // Those bytes went on already: the host's buffer is what follows them, and stays as it is.
        d.partialSent = false;
        this.out.origin = plen;
        this.out.pos = plen;
      } else {
        // The host's buffer lacks them: kept unchanged, they are prepended (no rewrite of the rest).
        this.out.prefix = plen;
      }
    }
    return this.frames(fromClient, d, 0, eos);
  }

  private close(v: Verdict): Flow {
    if (this.closeReason.length == 0) {
      this.closeReason = v.reason.length > 0 ? v.reason : "closed by filter";
      this.counters.add(this.closedByFilter, 1);
    }
    return Flow.Close;
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

  /** After the host's buffer was written (the input may live in a hold block): frees hold blocks no frame needs. */
  release(): void {
    this.down.releaseHold();
    this.up.releaseHold();
  }

  // ------------------------------------------------------------ the frame loop

  private frames(fromClient: bool, d: DirectionState, from: usize, eos: bool): Flow {
    const out = this.out;
    const codec = this.codec;
    const frame = this.frame;
    const len = this.len;
    let pos = from;
    if (d.skip > 0) {
      if (eos && d.skip > <u64>(len - pos)) return this.close(codec.onStreamError(StreamError.Truncated, fromClient));
      const n = <usize>min(d.skip, <u64>(len - pos));
      if (d.dropping) this.dropTo(pos + n); else out.keep(pos + n);
      d.skip -= <u64>n;
      pos += n;
      if (d.skip == 0) d.dropping = false;
    }
    frame.fromClient = fromClient;
    const fast = codec.hasForwardRun && !this.logPackets;
    while (pos < len) {
      if (d.inject.length > 0 && pos >= out.origin) {
        out.keep(pos);
        for (let i = 0; i < d.inject.length; i++) this.insertBytes(d.inject[i]);
        d.inject.length = 0;
      }
      if (fast && !(fromClient && codec.routes && !this.routed)) {
        pos = this.forwardRun(d, pos);
        if (pos >= len) break;
      }
      const real = len - pos;
      frame.ptr = this.view(pos, min(real, codec.headWindow));
      frame.avail = this.winEnd - pos;
      frame.length = 0;
      frame.rejection = null;
      frame.continues = false;
      let need = codec.measure(frame);
      // the window may end before the head does: widen it (some heads are found in steps)
      while (need > <i64>frame.avail && need <= <i64>real && need <= <i64>codec.maxHeader) {
        frame.ptr = this.view(pos, <usize>need);
        frame.avail = this.winEnd - pos;
        need = codec.measure(frame);
      }
      if (need < 0) {
        const r = frame.rejection;
        return this.close(r != null ? r : Verdict.close("malformed frame"));
      }
      if (need > <i64>codec.maxHeader) return this.close(codec.onStreamError(StreamError.HeaderTooLarge, fromClient));
      if (need > <i64>frame.avail) {
        if (fromClient && codec.routes && !this.routed) return this.hold(pos, eos);
        return this.holdPartial(d, pos, eos, fromClient);
      }
      const total = frame.length;
      frame.header = <usize>need;
      if (!frame.continues) d.frames++;
      this.windowHint = total > LARGE_FRAME ? WINDOW_SMALL : WINDOW_REST;
      const frameEnd = pos + <usize>total;
      if (eos && frameEnd > len) return this.close(codec.onStreamError(StreamError.Truncated, fromClient));
      const segEnd = min(frameEnd, len);
      const v = codec.onFrame(frame);
      const kind = v.kind;
      if (kind == VerdictKind.Forward) {
        out.keep(segEnd);
      } else if (kind == VerdictKind.Close) {
        return this.close(v);
      } else {
        this.dropTo(segEnd);
        if (kind == VerdictKind.Replace) {
          this.insertBytes(v.bytes!);
        } else if (kind == VerdictKind.Reply) {
          const other = fromClient ? this.up : this.down;
          const solicit = v.solicit;
          if (solicit == null) {
            other.inject.push(v.bytes!);
          } else {
            if (other.pendingReplies >= codec.maxPendingReplies) return this.close(codec.onStreamError(StreamError.TooManyPending, fromClient));
            other.queueReply(v.bytes!);
            this.insertBytes(solicit);
          }
        }
      }
      if (frameEnd > len) {
        d.skip = <u64>(frameEnd - len);
        d.dropping = v.removesFrame;
      }
      pos = segEnd;
    }
    out.keep(len);
    if (fromClient && codec.routes && !this.routed) return this.hold(len, eos);
    return Flow.Continue;
  }

  /** Runs the codec's fast path over the current window from `from`; returns where it stopped. */
  private forwardRun(d: DirectionState, from: usize): usize {
    // a callback's first frame: load the window here (the general path would
    // load the same one), else that frame alone takes the slow path each time
    if (from < this.winStart || from >= this.winEnd) this.view(from, min(this.len - from, this.codec.headWindow));
    const winStart = this.winStart;
    const winEnd = this.winEnd;
    if (from < winStart || from >= winEnd) return from;
    const frame = this.frame;
    const origin = this.winPtr - winStart; // where input offset 0 would be
    frame.ptr = origin + from;
    frame.runCount = 0;
    const stop = this.codec.forwardRun(frame, origin + winEnd);
    if (frame.runCount == 0) return from;
    d.frames += <u64>frame.runCount;
    // a run passes only frames under LARGE_FRAME
    this.windowHint = WINDOW_REST;
    const len = this.len;
    let pos = stop - origin;
    if (pos > len) {
      d.skip = <u64>(pos - len);
      d.dropping = false;
      pos = len;
    }
    this.out.keep(pos);
    return pos;
  }

  /** Before routing: Envoy keeps the client's bytes; the next callback resumes at `pos`. */
  private hold(pos: usize, eos: bool): Flow {
    if (eos) return this.close(this.codec.onStreamError(pos < this.len ? StreamError.Truncated : StreamError.EndBeforeRoute, true));
    this.out.keep(this.len);
    // what was walked keeps its place in the (possibly rewritten) held buffer
    this.heldFrom = this.out.modified ? this.out.used - (this.len - pos) : pos;
    return Flow.Hold;
  }

  private holdPartial(d: DirectionState, pos: usize, eos: bool, fromClient: bool): Flow {
    // the peer ended inside a frame: nothing of it passes
    if (eos) return this.close(this.codec.onStreamError(StreamError.Truncated, fromClient));
    const n = this.len - pos;
    if (n > <usize>this.codec.maxHeader) return this.close(this.codec.onStreamError(StreamError.HeaderTooLarge, fromClient));
    // Not paused instead: a paused buffer stays in Envoy's read buffer, and
    // once that is over the connection's buffer limit Envoy stops reading,
    // so the rest of the head would never come. A copy is parsed with the
    // next bytes; the bytes themselves go on unless a verdict could still
    // change the frame: then they are cut from the host's buffer (dropping the
    // tail rewrites the buffer, but dropping a buffer that is all head is a
    // drain) and prepended again once the frame passes whole (Output.prefix).
    d.partialSent = !this.codec.mayRewrite(fromClient) && d.inject.length == 0;
    const out = this.out;
    if (d.partialSent) out.keep(this.len);
    else this.dropTo(this.len);
    const head = this.view(pos, n);
    const hold = d.reserve(n, 0);
    if (hold != head) {
      // The input is the hold block when a held frame was completed in this buffer: the new head
      // moves to its start over bytes the output may still need — a prefix to prepend is copied first.
      if (this.fullBase == hold && out.prefix > 0 && !out.modified) out.start();
      memory.copy(hold, head, n);
    }
    d.heldLen = n;
    return Flow.Continue;
  }
}
