// One CoAP message as a JSON object: the packet log's and `protoplane replay`'s
// record (docs/coap.md lists the fields). Pure: no ABI calls.
import { jsonQuote } from "../sdk/json";
import {
  CoapMessage, Transport, blockMore, blockNum, blockSize, codeString, methodName, signalName,
} from "./parser";

const HEX = "0123456789abcdef";
const TYPES: string[] = ["CON", "NON", "ACK", "RST"];

function hexOf(p: usize, len: u32): string {
  let s = "";
  for (let i: u32 = 0; i < len; i++) {
    const b = <i32>load<u8>(p + i);
    s += HEX.charAt(b >> 4) + HEX.charAt(b & 15);
  }
  return s;
}

/** Bytes as a JSON string (invalid UTF-8 is replaced, as JSON has no bytes). */
function text(p: usize, len: u32): string {
  return jsonQuote(String.UTF8.decodeUnsafe(p, len));
}

function block(raw: i64): string {
  return "{\"num\":" + blockNum(raw).toString() + ",\"more\":" + (blockMore(raw) ? "true" : "false") + ",\"size\":" + blockSize(raw).toString() + "}";
}

/** The path as "/a/b" (segments are bytes; shown as UTF-8 text). */
export function pathString(base: usize, m: CoapMessage): string {
  if (m.pathCount == 0) return "/";
  let s = "";
  for (let i = 0; i < m.pathCount; i++) s += "/" + String.UTF8.decodeUnsafe(base + m.pathSegmentOffset(i), m.pathSegmentLength(i));
  return s;
}

/** `direction` is "downstream" (from the client) or "upstream". */
export function describeMessage(base: usize, m: CoapMessage, direction: string): string {
  let s = "{\"direction\":\"" + direction + "\",\"transport\":\"" + (m.transport == Transport.Udp ? "udp" : "tcp") + "\"";
  if (m.transport == Transport.Udp) s += ",\"type\":\"" + TYPES[m.type & 3] + "\",\"message_id\":" + m.messageId.toString();
  s += ",\"code\":\"" + codeString(m.code) + "\"";
  const method = methodName(m.code);
  if (method.length > 0) s += ",\"method\":\"" + method + "\"";
  const signal = signalName(m.code);
  if (signal.length > 0) s += ",\"signal\":\"" + signal + "\"";
  s += ",\"token\":\"" + hexOf(base + m.tokenOffset, m.tokenLength) + "\"";
  if (m.isRequest) s += ",\"uri_path\":" + jsonQuote(pathString(base, m));
  if (m.hasHost) s += ",\"uri_host\":" + text(base + m.hostOffset, m.hostLength);
  if (m.uriPort >= 0) s += ",\"uri_port\":" + m.uriPort.toString();
  if (m.queryCount > 0) {
    s += ",\"uri_query\":[";
    for (let i = 0; i < m.queryCount; i++) s += (i > 0 ? "," : "") + text(base + m.querySegmentOffset(i), m.querySegmentLength(i));
    s += "]";
  }
  if (m.observe >= 0) s += ",\"observe\":" + m.observe.toString();
  if (m.block1 >= 0) s += ",\"block1\":" + block(m.block1);
  if (m.block2 >= 0) s += ",\"block2\":" + block(m.block2);
  if (m.contentFormat >= 0) s += ",\"content_format\":" + m.contentFormat.toString();
  if (m.accept >= 0) s += ",\"accept\":" + m.accept.toString();
  if (m.maxAge >= 0) s += ",\"max_age\":" + m.maxAge.toString();
  if (m.size1 >= 0) s += ",\"size1\":" + m.size1.toString();
  if (m.size2 >= 0) s += ",\"size2\":" + m.size2.toString();
  if (m.etagLength >= 0) s += ",\"etag\":\"" + hexOf(base + m.etagOffset, <u32>m.etagLength) + "\"";
  if (m.maxMessageSize >= 0) s += ",\"max_message_size\":" + m.maxMessageSize.toString();
  if (m.blockWiseTransfer) s += ",\"block_wise_transfer\":true";
  if (m.unknownCritical != 0) s += ",\"unknown_critical_option\":" + m.unknownCritical.toString();
  s += ",\"options\":" + m.optionCount.toString() + ",\"payload_bytes\":" + m.payloadLength.toString() + "}";
  return s;
}
