// The packet log: one structured object per parsed protocol message, for
// `protoplane replay` (and Envoy's debug log). Convention, the same for every
// filter: a debug-level log line `packet {JSON object}` (PACKET_LOG_PREFIX,
// then one JSON object on one line) with at least
//   "direction": "downstream" (from the client) | "upstream" (from the server)
//   "type":      the message type, in the filter's own words
// and then the filter's documented fields. The host adds the connection.
// A filter logs only when its settings say "log_packets": true (the layer
// reads that key); `protoplane replay` sets it for filters whose manifest
// declares it.
import { log } from "../host";
import { jsonQuote } from "../json";
import { LogLevel } from "../types";

export const PACKET_LOG_PREFIX = "packet ";

/** Writes one packet-log object a filter built itself (`json` is one JSON object). */
export function emitPacket(json: string): void {
  log(LogLevel.Debug, PACKET_LOG_PREFIX + json);
}

/** Builds one packet-log object; `emit()` writes it. */
export class PacketRecord {
  private s: string;

  constructor(fromClient: bool, type: string) {
    this.s = "{\"direction\":\"" + (fromClient ? "downstream" : "upstream") + "\",\"type\":" + jsonQuote(type);
  }

  int(key: string, v: i64): PacketRecord {
    this.s += "," + jsonQuote(key) + ":" + v.toString();
    return this;
  }

  bool(key: string, v: bool): PacketRecord {
    this.s += "," + jsonQuote(key) + ":" + (v ? "true" : "false");
    return this;
  }

  str(key: string, v: string): PacketRecord {
    this.s += "," + jsonQuote(key) + ":" + jsonQuote(v);
    return this;
  }

  /** A string field from UTF-8 bytes [ptr, ptr+len). */
  bytes(key: string, ptr: usize, len: usize): PacketRecord {
    return this.str(key, String.UTF8.decodeUnsafe(ptr, len));
  }

  /** A field whose value is already JSON (an array or object the filter built). */
  raw(key: string, json: string): PacketRecord {
    this.s += "," + jsonQuote(key) + ":" + json;
    return this;
  }

  toString(): string {
    return this.s + "}";
  }

  emit(): void {
    emitPacket(this.toString());
  }
}
