// trap-test: proves a trapping filter closes its connection without taking the
// host down. "TRAP" in downstream data executes `unreachable`; "ABORT" fails an
// assertion (the SDK's abort handler logs it and traps); other data passes.
export * from "../sdk/exports";
import { Action, Counter, RootContext, StreamContext, bytesOf, registerRootContext } from "../sdk";

const TRAP = bytesOf("TRAP");
const ABORT = bytesOf("ABORT");

function contains(data: Uint8Array, needle: Uint8Array): bool {
  for (let i = 0; i + needle.length <= data.length; i++) {
    let match = true;
    for (let j = 0; j < needle.length; j++) {
      if (data[i + j] != needle[j]) { match = false; break; }
    }
    if (match) return true;
  }
  return false;
}

class TrapRoot extends RootContext {
  bytes: Counter = new Counter("trap_test.bytes");

  newStreamContext(id: u32): StreamContext {
    return new TrapStream(id, this);
  }
}

class TrapStream extends StreamContext {
  onDownstreamData(size: usize, endOfStream: bool): Action {
    const data = Uint8Array.wrap(this.downstreamData(0, <u32>size));
    changetype<TrapRoot>(this.root).bytes.increment(data.length);
    if (contains(data, TRAP)) unreachable();
    assert(!contains(data, ABORT), "ABORT seen in downstream data");
    return Action.Continue;
  }
}

registerRootContext((id: u32): RootContext => new TrapRoot(id));
