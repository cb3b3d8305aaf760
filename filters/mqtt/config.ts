// The mqtt filter's plugin configuration (JSON; see docs/mqtt.md), read with
// the SDK's settings reader: errors carry the JSON path. Pure.
import { AttributeMatch, MatchInput, RouteTable, Settings, statLabel } from "../sdk";
import { checkTopicFilter, V5 } from "./parser";

/** Match attributes of routes and ACL rules, in MatchInput slot order. */
export const MATCH_ATTRIBUTES: string[] = ["client_id", "username"];
export const CLIENT_ID = 0;
export const USERNAME = 1;

export class AclRule {
  topic: Uint8Array = new Uint8Array(0);
  allow: bool = true;
  /** Applies only to connections whose CONNECT matches (null = all). */
  match: AttributeMatch | null = null;
  /** The topic has %c (client id) / %u (username) to substitute per connection. */
  pattern: bool = false;
}

/** Whether an ACL topic has a %c or %u substitution. */
export function hasSubstitution(topic: Uint8Array): bool {
  for (let i = 0; i + 1 < topic.length; i++) {
    if (topic[i] == 0x25) {
      const c = topic[i + 1];
      if (c == 0x63 || c == 0x75) return true;
    }
  }
  return false;
}

export class TopicMetric {
  prefix: Uint8Array = new Uint8Array(0);
  /** Stat-safe label used in the metric names. */
  label: string = "";
}

export class Config {
  statPrefix: string = "mqtt";
  routes: RouteTable = new RouteTable();
  aclDefaultAllow: bool = true;
  publishRules: AclRule[] = [];
  subscribeRules: AclRule[] = [];
  hasAcl: bool = false;
  maxPacketSize: u32 = 268435460;
  maxClientIdLength: u32 = 65535;
  maxTopicLength: u32 = 65535;
  maxTopicLevels: u32 = 65535;
  /** Largest packet header (the whole packet, except a PUBLISH payload) the filter holds or parses. */
  maxHeaderBytes: u32 = 262144;
  /** Pending refusals / rewritten SUBSCRIBEs / topic aliases per connection. */
  maxPending: u32 = 64;
  /** A client must complete CONNECT within this many milliseconds (0 = no limit). */
  connectTimeoutMs: u32 = 10000;
  topicMetrics: TopicMetric[] = [];
}

function utf8Of(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

function readRules(acl: Settings, key: string, out: AclRule[]): void {
  const list = acl.list(key);
  if (list == null) return;
  for (let i = 0; i < list.length; i++) {
    const r = list.object(i);
    if (r == null) return;
    r.allowKeys(["topic", "action", "match"]);
    const topic = r.string("topic", "", true);
    if (!r.has("topic")) r.fail("topic", "expected a non-empty topic filter");
    if (!acl.ok()) return;
    const rule = new AclRule();
    rule.topic = utf8Of(topic);
    if (checkTopicFilter(rule.topic.dataStart, <usize>rule.topic.length, V5) != 0) {
      r.fail("topic", "'" + topic + "' is not a valid topic filter");
      return;
    }
    rule.pattern = hasSubstitution(rule.topic);
    if (!r.has("action")) r.fail("action", "expected \"allow\" or \"deny\"");
    rule.allow = r.oneOf("action", ["allow", "deny"], 0) == 0;
    rule.match = r.attributeMatch("match", MATCH_ATTRIBUTES);
    if (!acl.ok()) return;
    out.push(rule);
  }
}

/** Reads the settings into a Config; errors go through `s` (check s.ok()). */
export function readConfig(s: Settings): Config {
  const config = new Config();
  s.allowKeys(["stat_prefix", "routes", "acl", "limits", "topic_metrics", "log_packets"]);
  if (s.has("stat_prefix")) {
    const p = s.string("stat_prefix", "");
    if (s.ok() && (p.length == 0 || statLabel(p) != p)) s.fail("stat_prefix", "expected a non-empty string of [A-Za-z0-9_-]");
    config.statPrefix = p;
  }
  config.routes = s.routes("routes", MATCH_ATTRIBUTES);

  const acl = s.object("acl");
  if (acl != null) {
    config.hasAcl = true;
    acl.allowKeys(["default", "publish", "subscribe"]);
    config.aclDefaultAllow = acl.oneOf("default", ["allow", "deny"], 0) == 0;
    readRules(acl, "publish", config.publishRules);
    readRules(acl, "subscribe", config.subscribeRules);
  }

  const l = s.object("limits");
  if (l != null) {
    l.allowKeys(["max_packet_size", "max_client_id_length", "max_topic_length", "max_topic_levels", "max_header_bytes", "max_pending", "connect_timeout_ms"]);
    config.maxPacketSize = <u32>l.int("max_packet_size", 2, 268435460, config.maxPacketSize);
    config.maxClientIdLength = <u32>l.int("max_client_id_length", 0, 65535, config.maxClientIdLength);
    config.maxTopicLength = <u32>l.int("max_topic_length", 1, 65535, config.maxTopicLength);
    config.maxTopicLevels = <u32>l.int("max_topic_levels", 1, 65535, config.maxTopicLevels);
    config.maxHeaderBytes = <u32>l.int("max_header_bytes", 64, 16777216, config.maxHeaderBytes);
    config.maxPending = <u32>l.int("max_pending", 1, 65535, config.maxPending);
    config.connectTimeoutMs = <u32>l.int("connect_timeout_ms", 0, 86400000, config.connectTimeoutMs);
  }

  const t = s.list("topic_metrics", 64);
  if (t != null) {
    for (let i = 0; i < t.length; i++) {
      const prefix = t.string(i, true);
      if (!s.ok()) break;
      const m = new TopicMetric();
      m.prefix = utf8Of(prefix);
      m.label = statLabel(prefix);
      config.topicMetrics.push(m);
    }
  }
  return config;
}

/** The attributes of a connection (CONNECT's client id and username) for route and ACL matches. */
export function connectInput(clientId: Uint8Array, hasUsername: bool, username: Uint8Array): MatchInput {
  const input = new MatchInput(MATCH_ATTRIBUTES.length);
  input.setBytes(CLIENT_ID, clientId);
  if (hasUsername) input.setBytes(USERNAME, username);
  return input;
}
