// What a protocol filter supplies to the framed-stream layer: a Codec, one
// per connection, that says how long the frame at the head of a direction is
// (measure) and what happens to each whole frame (onFrame -> Verdict).
import { PacketRecord } from "./packet-log";
import { Verdict } from "./verdict";
import { FramedConnection } from "./engine";

/** Trouble the layer finds in the byte stream itself (the codec turns it into a verdict and its counters). */
export enum StreamError {
  /** The peer ended its side inside a frame. */
  Truncated = 0,
  /** A frame's header (what measure asked to see) is longer than Codec.maxHeader. */
  HeaderTooLarge = 1,
  /** More replies wait for their answer slot than Codec.maxPendingReplies. */
  TooManyPending = 2,
  /** The client ended before a frame routed the connection (Codec.routes). */
  EndBeforeRoute = 3,
}

export function streamErrorName(e: StreamError): string {
  return e == StreamError.Truncated ? "truncated" : e == StreamError.HeaderTooLarge ? "header_too_large" :
    e == StreamError.TooManyPending ? "too_many_pending" : "end_before_route";
}

/**
 * The frame at the head of a direction, as measure() and onFrame() see it.
 * One instance per connection, reused for every frame.
 */
export class Frame {
  /** From the client (downstream) or from the server (upstream). */
  fromClient: bool = true;
  /** The frame's first bytes; valid during the call only. */
  ptr: usize = 0;
  /** How many bytes are at ptr (at least what measure() asked for when onFrame runs; may run past the frame). */
  avail: usize = 0;
  /** The frame's whole length in bytes; measure() sets it once the head says. */
  length: u64 = 0;
  /** In onFrame: how many bytes measure() asked for (the frame's bytes past this were not read). */
  header: usize = 0;
  /** In forwardRun(): frames the codec passed. */
  runCount: u32 = 0;
  /**
   * Set by measure(): this frame is a later window of the message before it
   * (a codec that walks a large message in windows), so the layer's frame
   * counts (the close line's frames_in/frames_out) count it with that message.
   */
  continues: bool = false;
  rejection: Verdict | null = null;

  constructor(readonly conn: FramedConnection) {}

  /** From measure(): the head is invalid; the connection ends with `verdict` (normally Verdict.close). Returns -1. */
  reject(verdict: Verdict): i64 {
    this.rejection = verdict;
    return -1;
  }

  /** This frame asks the other peer for exactly one answer frame (keeps injected replies in order). */
  expectAnswer(): void { this.conn.expectAnswer(this.fromClient); }

  /**
   * This frame is the peer's answer to one earlier request: returns the reply
   * the proxy queued for its place (return Verdict.replace(reply) with it), or
   * null when it answers the other peer's own request.
   */
  takeAnswer(): ArrayBuffer | null { return this.conn.takeAnswer(this.fromClient); }

  /** Whether the packet log is on (settings "log_packets"). */
  get logging(): bool { return this.conn.logPackets; }

  /** Starts this frame's packet-log record (see packet-log.ts); call .emit() on it. */
  record(type: string): PacketRecord { return new PacketRecord(this.fromClient, type); }
}

/**
 * A protocol's framing and policy for one connection. Extend it and override
 * measure() and onFrame(); the rest has defaults.
 */
export class Codec {
  /** Set by the layer before onOpen(). */
  conn!: FramedConnection;

  /** The longest frame head (what measure() may ask to see) the layer loads or holds. */
  maxHeader: u32 = 65536;
  /** Whether downstream frames pick the cluster: the client's bytes are held until one calls conn.route(). */
  routes: bool = false;
  /** Replies waiting for their answer slot, per direction, before StreamError.TooManyPending. */
  maxPendingReplies: i32 = 64;
  /** Bytes of the frame head the layer reads first (measure() asks for more if it needs to). */
  headWindow: usize = 16;
  /** Whether forwardRun() is worth calling (a codec-specific fast path). */
  hasForwardRun: bool = false;
  /** Words for the close log line: what a frame and the two peers are called. */
  frameNoun: string = "frames";
  serverNoun: string = "server";

  /** The connection opened (set deadlines here). */
  onOpen(): void {}

  /**
   * How many bytes of the frame at frame.ptr (frame.avail of them there) the
   * codec must see before onFrame can decide — its header. Asking for more
   * than avail gets the call again with more bytes (or waits for them); once
   * the answer is within avail, frame.length must be set (>= the answer).
   * Bytes of the frame past the header are never copied into the VM when the
   * verdict is forward or drop. Return frame.reject(verdict) for bad bytes.
   */
  measure(frame: Frame): i64 { return frame.reject(Verdict.close("codec has no measure()")); }

  /** The verdict for a whole frame (its header is at frame.ptr). */
  onFrame(frame: Frame): Verdict { return Verdict.forward(); }

  /**
   * Optional fast path: passes a run of frames starting at frame.ptr that need
   * no verdict of their own, reading only up to `end` (a pointer). Returns the
   * pointer where it stopped (past `end` when the last frame's payload runs
   * on: the rest passes unread); sets frame.runCount.
   */
  forwardRun(frame: Frame, end: usize): usize { return frame.ptr; }

  /** Whether any verdict can change this direction's bytes (if not, split frame heads go on at once). */
  mayRewrite(fromClient: bool): bool { return true; }

  /** A deadline set with conn.setDeadline() passed. */
  onDeadline(): Verdict { return Verdict.close("deadline passed"); }

  onStreamError(error: StreamError, fromClient: bool): Verdict {
    return Verdict.close(streamErrorName(error) + " from " + (fromClient ? "client" : this.serverNoun));
  }

  /** Fields for the close log line before cluster= (e.g. client_id="x"), or "". */
  describe(): string { return ""; }
}
