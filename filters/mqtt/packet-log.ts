// The mqtt filter's packet log: one JSON object per parsed packet (fields in
// docs/mqtt.md), written by the SDK's packet-log convention (a debug line
// `packet {...}`; protoplane replay prints it). Pure.
import { jsonQuote } from "../sdk/json";
import { CONNACK, CONNECT, PUBLISH, Packet, SUBACK, SUBSCRIBE, UNSUBACK, UNSUBSCRIBE, V31, V5, typeName } from "./parser";

/** What happened to a packet. */
export enum Decision { Forward = 0, Drop, Refuse, Rewrite, Refusal, Close }
const DECISIONS: string[] = ["forward", "drop", "refuse", "rewrite", "refusal", "close"];

function str(ptr: usize, len: u32): string {
  return jsonQuote(String.UTF8.decodeUnsafe(ptr, <usize>len));
}

/** One JSON object per packet: the fields the parser read (see docs/mqtt.md). */
export function describePacket(pkt: Packet, fromClient: bool, version: u8, decision: Decision): string {
  const t = pkt.type;
  let s = "{\"direction\":\"" + (fromClient ? "downstream" : "upstream") + "\",\"type\":\"" + typeName(t) + "\",\"length\":" + pkt.remaining.toString();
  if (t == CONNECT) {
    s += ",\"protocol\":" + str(pkt.protocolPtr, pkt.protocolLen) + ",\"level\":" + pkt.protocolLevel.toString();
    if (pkt.bridge) s += ",\"bridge\":true";
    s += ",\"client_id\":" + str(pkt.clientIdPtr, pkt.clientIdLen);
    if (pkt.hasUsername) s += ",\"username\":" + str(pkt.usernamePtr, pkt.usernameLen);
    s += ",\"password\":" + (pkt.hasPassword ? "true" : "false");
    s += ",\"clean_start\":" + (pkt.cleanStart ? "true" : "false") + ",\"keep_alive\":" + pkt.keepAlive.toString();
    if (pkt.willFlag) {
      s += ",\"will_topic\":" + str(pkt.willTopicPtr, pkt.willTopicLen) + ",\"will_qos\":" + pkt.willQos.toString();
      s += ",\"will_retain\":" + (pkt.willRetain ? "true" : "false") + ",\"will_payload_length\":" + pkt.willPayloadLen.toString();
    }
  } else if (t == CONNACK) {
    s += ",\"session_present\":" + (pkt.sessionPresent ? "true" : "false") + ",\"reason\":" + pkt.reasonCode.toString();
    if (pkt.assignedClientIdLen >= 0) s += ",\"assigned_client_id\":" + str(pkt.assignedClientIdPtr, <u32>pkt.assignedClientIdLen);
  } else if (t == PUBLISH) {
    s += ",\"topic\":" + str(pkt.topicPtr, pkt.topicLen) + ",\"qos\":" + pkt.qos.toString();
    s += ",\"retain\":" + (pkt.retain ? "true" : "false") + ",\"dup\":" + (pkt.dup ? "true" : "false");
    if (pkt.topicAlias >= 0) s += ",\"topic_alias\":" + pkt.topicAlias.toString();
    s += ",\"payload_length\":" + pkt.payloadLen.toString();
  } else if (t == SUBSCRIBE || t == UNSUBSCRIBE) {
    s += ",\"filters\":[";
    for (let i = 0; i < pkt.filterPtrs.length; i++) {
      if (i > 0) s += ",";
      s += "{\"filter\":" + str(pkt.filterPtrs[i], pkt.filterLens[i]);
      if (t == SUBSCRIBE) s += ",\"qos\":" + (pkt.filterOptions[i] & 3).toString() + ",\"options\":" + pkt.filterOptions[i].toString();
      s += "}";
    }
    s += "]";
  } else if (t == SUBACK || t == UNSUBACK) {
    if (pkt.codesLen > 0) {
      s += ",\"codes\":[";
      for (let i: u32 = 0; i < pkt.codesLen; i++) {
        if (i > 0) s += ",";
        s += load<u8>(pkt.codesPtr + i).toString();
      }
      s += "]";
    }
  }
  if (pkt.packetId >= 0) s += ",\"packet_id\":" + pkt.packetId.toString();
  if (t != CONNACK && pkt.reasonCode >= 0) s += ",\"reason\":" + pkt.reasonCode.toString();
  if (version == V5 || (t == CONNECT && pkt.protocolLevel == V5)) {
    if (pkt.propertiesLen >= 0) s += ",\"properties_length\":" + pkt.propertiesLen.toString();
    if (pkt.sessionExpiry >= 0) s += ",\"session_expiry\":" + pkt.sessionExpiry.toString();
    if (pkt.maxPacketSize >= 0) s += ",\"maximum_packet_size\":" + pkt.maxPacketSize.toString();
    if (pkt.receiveMaximum >= 0) s += ",\"receive_maximum\":" + pkt.receiveMaximum.toString();
    if (pkt.topicAliasMaximum >= 0) s += ",\"topic_alias_maximum\":" + pkt.topicAliasMaximum.toString();
    if (pkt.subscriptionId >= 0) s += ",\"subscription_id\":" + pkt.subscriptionId.toString();
    if (pkt.userProperties > 0) s += ",\"user_properties\":" + pkt.userProperties.toString();
  }
  if (version == V31 && t == CONNECT) s += ",\"v31\":true";
  return s + ",\"decision\":\"" + DECISIONS[<i32>decision] + "\"}";
}

