// loop-test: a filter whose onConfigure never returns ({"mode": "loop"}) or
// allocates without end ({"mode": "explode"}), for the server's pre-flight
// check (it must refuse both with a clear error and keep serving). Any other
// configuration passes every byte through.
export * from "../sdk/exports";
import { RootContext, StreamContext, parseJsonObject, registerRootContext } from "../sdk";

/** Written in the loop so the compiler cannot drop it. */
let spins: u64 = 0;
const hoard = new Array<ArrayBuffer>();

class LoopRoot extends RootContext {
  onConfigure(configuration: ArrayBuffer): bool {
    if (configuration.byteLength == 0) return true;
    const config = parseJsonObject(configuration);
    if (config == null) return false;
    const mode = config.getString("mode");
    if (mode != null && mode == "loop") {
      while (spins != U64.MAX_VALUE) spins++;
    } else if (mode != null && mode == "explode") {
      for (;;) {
        hoard.push(new ArrayBuffer(1 << 20));
        spins++;
      }
    }
    return true;
  }

  newStreamContext(id: u32): StreamContext {
    return new StreamContext(id, this);
  }
}

registerRootContext((id: u32): RootContext => new LoopRoot(id));
