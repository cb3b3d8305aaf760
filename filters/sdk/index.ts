// The protoplane proxy-wasm SDK for AssemblyScript (ABI 0.2.1, network filters).
//
//   export * from "../sdk/exports";          // the ABI entry points
//   import { RootContext, StreamContext, Action, registerRootContext } from "../sdk";
//
// See filters/README.md.
export * from "./types";
export * from "./host";
export * from "./metrics";
export * from "./context";
export * from "./json";
export * from "./bytes";
export { ProtoWriter } from "./protobuf";
export * from "./match";
export * from "./settings";
export { Regex, compileRegex, lastRegexError } from "./regex";
