// passthrough: the smallest useful filter, for measuring host overhead.
// {"read": false} (default) returns Continue without touching the data;
// {"read": true} first reads the whole chunk into the VM the way the protocol
// filters do (one read into the SDK's reusable scratch block): the floor
// under any filter that must look at every byte range.
// {"read": true, "walk": true} also walks the stream as frames of one type
// byte, a variable-length size (MQTT's Remaining Length) and that many bytes
// skipped, checking nothing: the floor under any MQTT-aware filter.
export * from "../sdk/exports";
import { Action, BufferType, Counter, RootContext, StreamContext, lastScratchSize, logError, jsonError, parseJsonObject, readBufferScratch, registerRootContext } from "../sdk";

/** Frames the walk counted, added once per chunk as a protocol filter adds its counters. */
const FRAMES = new Counter("passthrough.frames");

class PassRoot extends RootContext {
  read: bool = false;
  walk: bool = false;

  onConfigure(configuration: ArrayBuffer): bool {
    if (configuration.byteLength == 0) return true;
    const config = parseJsonObject(configuration);
    if (config == null) {
      logError("passthrough: bad configuration: " + jsonError());
      return false;
    }
    this.read = config.getBool("read", false);
    this.walk = config.getBool("walk", false);
    return true;
  }

  newStreamContext(id: u32): StreamContext {
    return new PassStream(id, this);
  }
}

/** Where a frame walk stands between chunks: bytes still to skip, or inside a header. */
class FrameWalk {
  skip: usize = 0;
  inHeader: bool = false;
  length: usize = 0;
  shift: usize = 0;

  /** Walks the `size` bytes at `p` and returns the frames whose header ended there; a frame may end in a later chunk. */
  walk(p: usize, size: usize): i64 {
    const end = p + size;
    let frames: i64 = 0;
    let inHeader = this.inHeader;
    let length = this.length;
    let shift = this.shift;
    p += this.skip; // may land past this chunk
    while (p < end) {
      // the common case in one step: a whole two-byte header in this chunk
      if (!inHeader && end - p >= 2) {
        const b1 = <usize>load<u8>(p, 1);
        if (b1 < 0x80) {
          p += 2 + b1;
          frames++;
          continue;
        }
      }
      // byte by byte: a longer length, or a header cut by the chunk's end
      if (!inHeader) {
        p++; // the type byte
        inHeader = true;
        length = 0;
        shift = 0;
        continue;
      }
      const b = <usize>load<u8>(p++);
      length |= (b & 0x7f) << shift;
      shift += 7;
      if (b < 0x80 || shift >= 28) {
        inHeader = false;
        p += length;
        frames++;
      }
    }
    this.skip = p - end;
    this.inHeader = inHeader;
    this.length = length;
    this.shift = shift;
    return frames;
  }
}

class PassStream extends StreamContext {
  private readonly down: FrameWalk = new FrameWalk();
  private readonly up: FrameWalk = new FrameWalk();

  onDownstreamData(size: usize, endOfStream: bool): Action {
    this.look(BufferType.DownstreamData, size, this.down);
    return Action.Continue;
  }

  onUpstreamData(size: usize, endOfStream: bool): Action {
    this.look(BufferType.UpstreamData, size, this.up);
    return Action.Continue;
  }

  private look(type: BufferType, size: usize, walker: FrameWalk): void {
    const root = changetype<PassRoot>(this.root);
    if (!root.read) return;
    const p = readBufferScratch(type, 0, <u32>size);
    if (root.walk) FRAMES.increment(walker.walk(p, lastScratchSize()));
  }
}

registerRootContext((id: u32): RootContext => new PassRoot(id));
