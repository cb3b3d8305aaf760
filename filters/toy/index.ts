// toy: a length-prefixed protocol on the SDK's framed-stream layer, the
// example of filters/README.md ("Anatomy of a framed filter").
//
// Wire format: every frame is a 4-byte big-endian body length, then the body.
// The client's first frame is its hello: the body is the connection's key,
// which the routes match. After that every client frame is a request the
// server answers with exactly one frame, in order. Settings (filter.json):
// routes on `key`, `deny` (requests the proxy answers itself with "denied",
// in order), `drop` (requests removed without answer), `rewrite` ("none" |
// "upper": request bodies upper-cased), `max_frame`, `hello_timeout_ms`,
// `log_packets`.
export * from "../sdk/exports";
import { MatchInput, RootContext, Settings, StringMatcher, jsonQuote, registerRootContext } from "../sdk";
import { Codec, Frame, FramedRoot, StreamError, Verdict, verdictName } from "../sdk/stream";

const HEAD: i64 = 4;

class ToyRoot extends FramedRoot {
  deny: StringMatcher[] = [];
  drop: StringMatcher[] = [];
  upper: bool = false;
  maxFrame: u32 = 0;
  helloTimeoutMs: u32 = 0;
  // counter indexes
  cDenied: i32 = 0; cDropped: i32 = 0; cRewritten: i32 = 0; cTooLarge: i32 = 0; cTimeout: i32 = 0; cTruncated: i32 = 0;

  configure(s: Settings): bool {
    s.allowKeys(["routes", "deny", "drop", "rewrite", "max_frame", "hello_timeout_ms", "log_packets"]);
    this.routes = s.routes("routes", ["key"]);
    this.deny = matchers(s, "deny");
    this.drop = matchers(s, "drop");
    this.upper = s.oneOf("rewrite", ["none", "upper"], 0) == 1;
    this.maxFrame = <u32>s.int("max_frame", 1, 16777216, 1048576);
    this.helloTimeoutMs = <u32>s.int("hello_timeout_ms", 0, 3600000, 0);
    this.useDeadlines(this.helloTimeoutMs);
    this.cDenied = this.counter("denied");
    this.cDropped = this.counter("dropped");
    this.cRewritten = this.counter("rewritten");
    this.cTooLarge = this.counter("frame_too_large");
    this.cTimeout = this.counter("hello_timeout");
    this.cTruncated = this.counter("truncated");
    return true;
  }

  newCodec(): Codec { return new ToyCodec(this); }
}

function matchers(s: Settings, key: string): StringMatcher[] {
  const out: StringMatcher[] = [];
  const list = s.list(key, 64);
  if (list == null) return out;
  for (let i = 0; i < list.length; i++) {
    const m = list.matcher(i);
    if (m != null) out.push(m);
  }
  return out;
}

function anyMatches(list: StringMatcher[], ptr: usize, len: usize): bool {
  for (let i = 0; i < list.length; i++) if (list[i].matches(ptr, len)) return true;
  return false;
}

/** A frame with `body` (the proxy's replies and solicits). */
function frameOf(body: string): ArrayBuffer {
  const b = String.UTF8.encode(body);
  const out = new ArrayBuffer(4 + b.byteLength);
  store<u32>(changetype<usize>(out), bswap<u32>(<u32>b.byteLength));
  memory.copy(changetype<usize>(out) + 4, changetype<usize>(b), <usize>b.byteLength);
  return out;
}

const DENIED = "denied";
const SOLICIT = "ping";

class ToyCodec extends Codec {
  hello: bool = false;
  key: string = "";
  input: MatchInput = new MatchInput(1);

  constructor(readonly root: ToyRoot) {
    super();
    this.routes = true;
    this.maxHeader = root.maxFrame + 4;
  }

  onOpen(): void { this.conn.setDeadline(this.root.helloTimeoutMs); }

  /** Whether a client frame's verdict needs its body (else only the 4-byte head is read). */
  private needsBody(fromClient: bool): bool {
    const r = this.root;
    return this.conn.logPackets || (fromClient && (!this.hello || r.deny.length > 0 || r.drop.length > 0 || r.upper));
  }

  measure(frame: Frame): i64 {
    if (frame.avail < 4) return HEAD;
    const body = bswap<u32>(load<u32>(frame.ptr));
    if (body > this.root.maxFrame) {
      this.conn.counters.add(this.root.cTooLarge, 1);
      return frame.reject(Verdict.close("frame too large (" + body.toString() + " bytes) from " + (frame.fromClient ? "client" : "server")));
    }
    frame.length = <u64>body + 4;
    return this.needsBody(frame.fromClient) ? <i64>body + HEAD : HEAD;
  }

  onFrame(frame: Frame): Verdict {
    const body = frame.ptr + 4;
    const len = <usize>frame.length - 4;
    const r = this.root;
    let v = Verdict.forward();
    let type = "request";
    if (!frame.fromClient) {
      type = "response";
      const reply = frame.takeAnswer();
      if (reply != null) v = Verdict.replace(reply);
    } else if (!this.hello) {
      type = "hello";
      this.hello = true;
      this.key = String.UTF8.decodeUnsafe(body, len);
      this.input.set(0, body, len);
      const route = r.routes.pick(this.input);
      this.conn.route(route >= 0 ? r.routes.routes[route].cluster : "");
      this.conn.setDeadline(0);
      frame.expectAnswer();
    } else if (anyMatches(r.drop, body, len)) {
      this.conn.counters.add(r.cDropped, 1);
      v = Verdict.drop();
    } else if (anyMatches(r.deny, body, len)) {
      this.conn.counters.add(r.cDenied, 1);
      v = Verdict.reply(frameOf(DENIED), frameOf(SOLICIT));
    } else {
      frame.expectAnswer();
      if (r.upper) {
        this.conn.counters.add(r.cRewritten, 1);
        v = Verdict.replace(frameOf(String.UTF8.decodeUnsafe(body, len).toUpperCase()));
      }
    }
    if (frame.logging) {
      const rec = frame.record(type).int("length", <i64>len);
      if (frame.header == <usize>frame.length) rec.bytes("body", body, len);
      rec.str("verdict", verdictName(v)).emit();
    }
    return v;
  }

  onDeadline(): Verdict {
    this.conn.counters.add(this.root.cTimeout, 1);
    return Verdict.close("no hello within " + this.root.helloTimeoutMs.toString() + " ms");
  }

  onStreamError(error: StreamError, fromClient: bool): Verdict {
    this.conn.counters.add(this.root.cTruncated, 1);
    return super.onStreamError(error, fromClient);
  }

  describe(): string { return "key=" + (this.hello ? jsonQuote(this.key) : "-"); }
}

registerRootContext((id: u32): RootContext => new ToyRoot(id, "toy"));
