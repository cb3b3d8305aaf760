// What happens to one whole frame: the one verdict type of the framed-stream
// layer (a codec returns it from onFrame, and from measure() via
// Frame.reject, and from onDeadline / onStreamError).

export enum VerdictKind {
  /** The frame passes unchanged. */
  Forward = 0,
  /** The frame is removed from the stream. */
  Drop = 1,
  /** The frame is removed and `bytes` go in its place. */
  Replace = 2,
  /**
   * The frame is answered by the proxy: `bytes` go back to the peer that sent
   * it, in order with the other direction's frames (see Frame.expectAnswer /
   * takeAnswer). The frame itself is replaced by `solicit` (a frame the other
   * peer answers with exactly one frame, whose place the reply takes) or, when
   * `solicit` is null, dropped and the reply goes out before the next frame
   * of the other direction.
   */
  Reply = 3,
  /** The connection is closed; `reason` goes into the close log line. */
  Close = 4,
}

export class Verdict {
  constructor(
    readonly kind: VerdictKind,
    readonly bytes: ArrayBuffer | null = null,
    readonly solicit: ArrayBuffer | null = null,
    readonly reason: string = "",
  ) {}

  /** The frame passes (a shared instance: no allocation per frame). */
  static forward(): Verdict { return FORWARD; }
  static drop(): Verdict { return DROP; }
  static replace(bytes: ArrayBuffer): Verdict { return new Verdict(VerdictKind.Replace, bytes); }
  static reply(reply: ArrayBuffer, solicit: ArrayBuffer | null = null): Verdict { return new Verdict(VerdictKind.Reply, reply, solicit); }
  static close(reason: string): Verdict { return new Verdict(VerdictKind.Close, null, null, reason); }

  get isForward(): bool { return this.kind == VerdictKind.Forward; }
  get isClose(): bool { return this.kind == VerdictKind.Close; }
  /** Whether the frame's own bytes leave the stream (its unread payload is dropped too). */
  get removesFrame(): bool { return this.kind == VerdictKind.Drop || this.kind == VerdictKind.Replace || this.kind == VerdictKind.Reply; }
}

const FORWARD = new Verdict(VerdictKind.Forward);
const DROP = new Verdict(VerdictKind.Drop);

/** Names for packet logs: forward, drop, replace, reply, close. */
export function verdictName(v: Verdict): string {
  const k = v.kind;
  return k == VerdictKind.Forward ? "forward" : k == VerdictKind.Drop ? "drop" : k == VerdictKind.Replace ? "replace" : k == VerdictKind.Reply ? "reply" : "close";
}
