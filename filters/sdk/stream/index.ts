// The framed-stream layer (see filters/README.md, "Anatomy of a framed filter").
//
//   export * from "../sdk/exports";
//   import { Codec, Frame, FramedRoot, Verdict } from "../sdk/stream";
export { Verdict, VerdictKind, verdictName } from "./verdict";
export { Codec, Frame, StreamError, streamErrorName } from "./codec";
export { FramedConnection, Flow } from "./engine";
export { Counters, addAt } from "./counters";
export { FramedRoot, FramedStream, LayerCounters } from "./glue";
export { PacketRecord, PACKET_LOG_PREFIX, emitPacket } from "./packet-log";
export { ByteSource, MemorySource, HostSource, Output, joinBlock, releaseLargeBlocks } from "./output";
