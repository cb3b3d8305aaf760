// The mqtt filter's plugin configuration (JSON; see docs/mqtt.md). Pure.
import { JsonArray, JsonObject, JsonString, JsonValue, jsonError, parseJsonObject } from "../sdk/json";
import { Regex, compileRegex, lastRegexError } from "../sdk/regex";
import { checkTopicFilter, V5 } from "./parser";

export const M_EXACT: u8 = 0;
export const M_PREFIX: u8 = 1;
export const M_SUFFIX: u8 = 2;
export const M_REGEX: u8 = 3;

/** A string matcher: exact, prefix, suffix or regex (see regex.ts for the subset). */
export class StringMatcher {
  kind: u8 = M_EXACT;
  value: Uint8Array = new Uint8Array(0);
  regex: Regex | null = null;

  /** Matches the bytes [ptr, ptr+len). */
  matches(ptr: usize, len: usize): bool {
    const v = this.value;
    const n = <usize>v.length;
    if (this.kind == M_EXACT) return n == len && memory.compare(ptr, v.dataStart, n) == 0;
    if (this.kind == M_PREFIX) return n <= len && memory.compare(ptr, v.dataStart, n) == 0;
    if (this.kind == M_SUFFIX) return n <= len && memory.compare(ptr + len - n, v.dataStart, n) == 0;
    const re = this.regex;
    return re != null && re.matches(ptr, len);
  }
}

/** Conditions on the CONNECT packet; all present ones must hold. */
export class ConnectMatch {
  clientId: StringMatcher | null = null;
  username: StringMatcher | null = null;

  matches(clientIdPtr: usize, clientIdLen: usize, hasUsername: bool, usernamePtr: usize, usernameLen: usize): bool {
    const c = this.clientId;
    if (c != null && !c.matches(clientIdPtr, clientIdLen)) return false;
    const u = this.username;
    if (u != null && (!hasUsername || !u.matches(usernamePtr, usernameLen))) return false;
    return true;
  }
}

export class Route {
  match: ConnectMatch | null = null;
  cluster: string = "";
}

export class AclRule {
  topic: Uint8Array = new Uint8Array(0);
  allow: bool = true;
  /** Applies only to connections whose CONNECT matches (null = all). */
  match: ConnectMatch | null = null;
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
  routes: Route[] = [];
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
  logPackets: bool = false;
}

let configError: string = "";

export function lastConfigError(): string {
  return configError;
}

function fail(message: string): Config | null {
  configError = message;
  return null;
}

/** A stat-name-safe form of a label: [A-Za-z0-9_-] kept, everything else '_'. */
export function statLabel(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x5f || c == 0x2d;
    out += ok ? String.fromCharCode(c) : "_";
  }
  return out;
}

function utf8Of(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

function parseMatcher(v: JsonValue | null, path: string): StringMatcher | null {
  if (v == null || !(v instanceof JsonObject)) { configError = path + ": expected an object with exact, prefix, suffix or regex"; return null; }
  const obj = <JsonObject>v;
  if (obj.keys.length != 1) { configError = path + ": expected exactly one of exact, prefix, suffix, regex"; return null; }
  const key = obj.keys[0];
  const value = obj.getString(key);
  if (value == null) { configError = path + "." + key + ": expected a string"; return null; }
  const m = new StringMatcher();
  m.value = utf8Of(value);
  if (key == "exact") m.kind = M_EXACT;
  else if (key == "prefix") m.kind = M_PREFIX;
  else if (key == "suffix") m.kind = M_SUFFIX;
  else if (key == "regex") {
    m.kind = M_REGEX;
    const re = compileRegex(value);
    if (re == null) { configError = path + ".regex: " + lastRegexError(); return null; }
    m.regex = re;
  } else { configError = path + ": unknown matcher '" + key + "' (exact, prefix, suffix, regex)"; return null; }
  return m;
}

function parseConnectMatch(v: JsonValue | null, path: string): ConnectMatch | null {
  if (v == null || !(v instanceof JsonObject)) { configError = path + ": expected an object"; return null; }
  const obj = <JsonObject>v;
  const m = new ConnectMatch();
  for (let i = 0; i < obj.keys.length; i++) {
    const key = obj.keys[i];
    if (key == "client_id") {
      const s = parseMatcher(obj.get(key), path + ".client_id");
      if (s == null) return null;
      m.clientId = s;
    } else if (key == "username") {
      const s = parseMatcher(obj.get(key), path + ".username");
      if (s == null) return null;
      m.username = s;
    } else {
      configError = path + ": unknown match attribute '" + key + "' (client_id, username)";
      return null;
    }
  }
  return m;
}

function parseRules(arr: JsonArray, path: string, out: AclRule[]): bool {
  for (let i = 0; i < arr.items.length; i++) {
    const p = path + "[" + i.toString() + "]";
    const item = arr.items[i];
    if (!(item instanceof JsonObject)) { configError = p + ": expected an object"; return false; }
    const obj = <JsonObject>item;
    const topic = obj.getString("topic");
    if (topic == null || topic.length == 0) { configError = p + ".topic: expected a non-empty topic filter"; return false; }
    const rule = new AclRule();
    rule.topic = utf8Of(topic);
    if (checkTopicFilter(rule.topic.dataStart, <usize>rule.topic.length, V5) != 0) {
      configError = p + ".topic: '" + topic + "' is not a valid topic filter"; return false;
    }
    rule.pattern = hasSubstitution(rule.topic);
    const action = obj.getString("action");
    if (action == "allow") rule.allow = true;
    else if (action == "deny") rule.allow = false;
    else { configError = p + ".action: expected \"allow\" or \"deny\""; return false; }
    if (obj.has("match")) {
      const m = parseConnectMatch(obj.get("match"), p + ".match");
      if (m == null) return false;
      rule.match = m;
    }
    for (let k = 0; k < obj.keys.length; k++) {
      const key = obj.keys[k];
      if (key != "topic" && key != "action" && key != "match") { configError = p + ": unknown field '" + key + "'"; return false; }
    }
    out.push(rule);
  }
  return true;
}

function readLimit(obj: JsonObject, key: string, min: f64, max: f64, fallback: u32): i64 {
  if (!obj.has(key)) return <i64>fallback;
  const v = obj.getNumber(key, -1);
  if (v < min || v > max || v != Math.floor(v)) {
    configError = "limits." + key + ": expected an integer between " + min.toString() + " and " + max.toString();
    return -1;
  }
  return <i64>v;
}

/** Parses the plugin configuration; null with lastConfigError() when invalid. Empty = defaults. */
export function parseConfig(bytes: ArrayBuffer): Config | null {
  const config = new Config();
  if (bytes.byteLength == 0) return config;
  const obj = parseJsonObject(bytes);
  if (obj == null) return fail("configuration is not a JSON object: " + jsonError());
  for (let i = 0; i < obj.keys.length; i++) {
    const key = obj.keys[i];
    if (key != "stat_prefix" && key != "routes" && key != "acl" && key != "limits" && key != "topic_metrics" && key != "log_packets") {
      return fail("unknown field '" + key + "' (stat_prefix, routes, acl, limits, topic_metrics, log_packets)");
    }
  }

  if (obj.has("stat_prefix")) {
    const p = obj.getString("stat_prefix");
    if (p == null || p.length == 0 || statLabel(p) != p) return fail("stat_prefix: expected a non-empty string of [A-Za-z0-9_-]");
    config.statPrefix = p;
  }
  config.logPackets = obj.getBool("log_packets", false);

  if (obj.has("routes")) {
    const routes = obj.getArray("routes");
    if (routes == null) return fail("routes: expected an array");
    for (let i = 0; i < routes.items.length; i++) {
      const p = "routes[" + i.toString() + "]";
      const item = routes.items[i];
      if (!(item instanceof JsonObject)) return fail(p + ": expected an object");
      const r = <JsonObject>item;
      const cluster = r.getString("cluster");
      if (cluster == null || cluster.length == 0) return fail(p + ".cluster: expected a non-empty string");
      const route = new Route();
      route.cluster = cluster;
      if (r.has("match")) {
        const m = parseConnectMatch(r.get("match"), p + ".match");
        if (m == null) return null;
        route.match = m;
      }
      for (let k = 0; k < r.keys.length; k++) {
        if (r.keys[k] != "match" && r.keys[k] != "cluster") return fail(p + ": unknown field '" + r.keys[k] + "'");
      }
      config.routes.push(route);
    }
  }

  if (obj.has("acl")) {
    const acl = obj.getObject("acl");
    if (acl == null) return fail("acl: expected an object");
    config.hasAcl = true;
    for (let i = 0; i < acl.keys.length; i++) {
      const key = acl.keys[i];
      if (key != "default" && key != "publish" && key != "subscribe") return fail("acl: unknown field '" + key + "' (default, publish, subscribe)");
    }
    if (acl.has("default")) {
      const d = acl.getString("default");
      if (d == "allow") config.aclDefaultAllow = true;
      else if (d == "deny") config.aclDefaultAllow = false;
      else return fail("acl.default: expected \"allow\" or \"deny\"");
    }
    if (acl.has("publish")) {
      const a = acl.getArray("publish");
      if (a == null) return fail("acl.publish: expected an array");
      if (!parseRules(a, "acl.publish", config.publishRules)) return null;
    }
    if (acl.has("subscribe")) {
      const a = acl.getArray("subscribe");
      if (a == null) return fail("acl.subscribe: expected an array");
      if (!parseRules(a, "acl.subscribe", config.subscribeRules)) return null;
    }
  }

  if (obj.has("limits")) {
    const l = obj.getObject("limits");
    if (l == null) return fail("limits: expected an object");
    for (let i = 0; i < l.keys.length; i++) {
      const key = l.keys[i];
      if (key != "max_packet_size" && key != "max_client_id_length" && key != "max_topic_length" &&
          key != "max_topic_levels" && key != "max_header_bytes" && key != "max_pending" && key != "connect_timeout_ms") {
        return fail("limits: unknown field '" + key + "' (max_packet_size, max_client_id_length, max_topic_length, max_topic_levels, max_header_bytes, max_pending, connect_timeout_ms)");
      }
    }
    let v = readLimit(l, "max_packet_size", 2, 268435460, config.maxPacketSize); if (v < 0) return null; config.maxPacketSize = <u32>v;
    v = readLimit(l, "max_client_id_length", 0, 65535, config.maxClientIdLength); if (v < 0) return null; config.maxClientIdLength = <u32>v;
    v = readLimit(l, "max_topic_length", 1, 65535, config.maxTopicLength); if (v < 0) return null; config.maxTopicLength = <u32>v;
    v = readLimit(l, "max_topic_levels", 1, 65535, config.maxTopicLevels); if (v < 0) return null; config.maxTopicLevels = <u32>v;
    v = readLimit(l, "max_header_bytes", 64, 16777216, config.maxHeaderBytes); if (v < 0) return null; config.maxHeaderBytes = <u32>v;
    v = readLimit(l, "max_pending", 1, 65535, config.maxPending); if (v < 0) return null; config.maxPending = <u32>v;
    v = readLimit(l, "connect_timeout_ms", 0, 86400000, config.connectTimeoutMs); if (v < 0) return null; config.connectTimeoutMs = <u32>v;
  }

  if (obj.has("topic_metrics")) {
    const t = obj.getArray("topic_metrics");
    if (t == null) return fail("topic_metrics: expected an array of topic prefixes");
    if (t.items.length > 64) return fail("topic_metrics: at most 64 prefixes (each adds counters)");
    for (let i = 0; i < t.items.length; i++) {
      const item = t.items[i];
      if (!(item instanceof JsonString) || (<JsonString>item).value.length == 0) return fail("topic_metrics[" + i.toString() + "]: expected a non-empty string");
      const s = (<JsonString>item).value;
      const m = new TopicMetric();
      m.prefix = utf8Of(s);
      m.label = statLabel(s);
      config.topicMetrics.push(m);
    }
  }
  return config;
}
