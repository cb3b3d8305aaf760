// passthrough: the smallest useful filter, for measuring host overhead.
// {"read": false} (default) returns Continue without touching the data;
// {"read": true} first reads the whole chunk into the VM the way the protocol
// filters do (one read into the SDK's reusable scratch block): the floor
// under any filter that must look at every byte range.
export * from "../sdk/exports";
import { Action, BufferType, RootContext, StreamContext, logError, jsonError, parseJsonObject, readBufferScratch, registerRootContext } from "../sdk";

class PassRoot extends RootContext {
  read: bool = false;

  onConfigure(configuration: ArrayBuffer): bool {
    if (configuration.byteLength == 0) return true;
    const config = parseJsonObject(configuration);
    if (config == null) {
      logError("passthrough: bad configuration: " + jsonError());
      return false;
    }
    this.read = config.getBool("read", false);
    return true;
  }

  newStreamContext(id: u32): StreamContext {
    return new PassStream(id, this);
  }
}

class PassStream extends StreamContext {
  onDownstreamData(size: usize, endOfStream: bool): Action {
    if (changetype<PassRoot>(this.root).read) readBufferScratch(BufferType.DownstreamData, 0, <u32>size);
    return Action.Continue;
  }

  onUpstreamData(size: usize, endOfStream: bool): Action {
    if (changetype<PassRoot>(this.root).read) readBufferScratch(BufferType.UpstreamData, 0, <u32>size);
    return Action.Continue;
  }
}

registerRootContext((id: u32): RootContext => new PassRoot(id));
