// passthrough: the smallest useful filter, for measuring host overhead.
// {"read": false} (default) returns Continue without touching the data;
// {"read": true} first reads the whole chunk into the VM the way the protocol
// filters do (one read into the SDK's reusable scratch block): the floor
// under any filter that must look at every byte range.
// {"read": true, "walk": true} (or "walk": "mqtt") also walks the stream as
// frames of one type byte, a variable-length size (MQTT's Remaining Length)
// and that many bytes skipped, checking nothing: the floor under any
// MQTT-aware filter. {"read": true, "walk": "coap"} walks RFC 8323 frames
// instead (Len nibble with its 13/14/15 extensions, code, token, skip): the
// floor under any CoAP-over-TCP filter. Both count frames in passthrough.frames.
export * from "../sdk/exports";
import { Action, BufferType, Counter, RootContext, StreamContext, lastScratchSize, logError, jsonError, jsonQuote, parseJsonObject, readBufferScratch, registerRootContext } from "../sdk";

/** Frames the walk counted, added once per chunk as a protocol filter adds its counters. */
const FRAMES = new Counter("passthrough.frames");

class PassRoot extends RootContext {
  read: bool = false;
  walk: Framing = Framing.None;

  onConfigure(configuration: ArrayBuffer): bool {
    if (configuration.byteLength == 0) return true;
    const config = parseJsonObject(configuration);
    if (config == null) {
      logError("passthrough: bad configuration: " + jsonError());
      return false;
    }
    this.read = config.getBool("read", false);
    const walk = config.getString("walk");
    if (walk == null) this.walk = config.getBool("walk", false) ? Framing.Mqtt : Framing.None;
    else if (walk == "mqtt") this.walk = Framing.Mqtt;
    else if (walk == "coap") this.walk = Framing.Coap;
    else {
      logError("passthrough: bad configuration: walk must be true, false, \"mqtt\" or \"coap\", not " + jsonQuote(walk));
      return false;
    }
    return true;
  }

  newStreamContext(id: u32): StreamContext {
    return new PassStream(id, this);
  }
}

const enum Framing { None, Mqtt, Coap }

/** Where an MQTT frame walk stands between chunks: bytes still to skip, or inside a header. */
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

/**
 * Where an RFC 8323 frame walk stands between chunks. A frame is one byte
 * (Len nibble, TKL nibble), 0/1/2/4 length bytes (Len 13/14/15: the value
 * plus 13/269/65805), the code byte, TKL token bytes and Len bytes of
 * options and payload.
 */
class CoapWalk {
  skip: usize = 0;
  /** Length bytes still to read of a header cut by a chunk's end (0: not in one). */
  extLeft: usize = 0;
  /** The cut header's length so far, then what follows its length bytes (code, token, Len bytes). */
  length: usize = 0;
  rest: usize = 0;
  base: usize = 0;

  walk(p: usize, size: usize): i64 {
    const end = p + size;
    let frames: i64 = 0;
    let extLeft = this.extLeft;
    let length = this.length;
    let rest = this.rest;
    let base = this.base;
    p += this.skip; // may land past this chunk
    while (p < end) {
      if (extLeft == 0) {
        const b0 = <usize>load<u8>(p);
        const nibble = b0 >> 4;
        rest = 1 + (b0 & 15); // code and token
        if (nibble < 13) {
          p += 1 + rest + nibble;
          frames++;
          continue;
        }
        extLeft = nibble == 13 ? 1 : nibble == 14 ? 2 : 4;
        base = nibble == 13 ? 13 : nibble == 14 ? 269 : 65805;
        length = 0;
        p++;
        if (end - p >= extLeft) {
          // the usual case: the length bytes are in this chunk
          for (; extLeft > 0; extLeft--) length = (length << 8) | <usize>load<u8>(p++);
          p += rest + base + length;
          frames++;
        }
        continue;
      }
      // byte by byte: a header cut by a chunk's end
      length = (length << 8) | <usize>load<u8>(p++);
      if (--extLeft == 0) {
        p += rest + base + length;
        frames++;
      }
    }
    this.skip = p - end;
    this.extLeft = extLeft;
    this.length = length;
    this.rest = rest;
    this.base = base;
    return frames;
  }
}

class PassStream extends StreamContext {
  private readonly down: FrameWalk = new FrameWalk();
  private readonly up: FrameWalk = new FrameWalk();
  private readonly coapDown: CoapWalk = new CoapWalk();
  private readonly coapUp: CoapWalk = new CoapWalk();

  onDownstreamData(size: usize, endOfStream: bool): Action {
    this.look(BufferType.DownstreamData, size, this.down, this.coapDown);
    return Action.Continue;
  }

  onUpstreamData(size: usize, endOfStream: bool): Action {
    this.look(BufferType.UpstreamData, size, this.up, this.coapUp);
    return Action.Continue;
  }

  private look(type: BufferType, size: usize, mqtt: FrameWalk, coap: CoapWalk): void {
    const root = changetype<PassRoot>(this.root);
    if (!root.read) return;
    const p = readBufferScratch(type, 0, <u32>size);
    if (root.walk == Framing.Mqtt) FRAMES.increment(mqtt.walk(p, lastScratchSize()));
    else if (root.walk == Framing.Coap) FRAMES.increment(coap.walk(p, lastScratchSize()));
  }
}

registerRootContext((id: u32): RootContext => new PassRoot(id));
