// The kafka filter's settings (the listener's `filter:` map plus `routes`;
// see docs/kafka.md and the schema in filter.json). Pure: parseConfig()
// returns null and lastConfigError() names the JSON path of the problem.
import { JsonArray, JsonBool, JsonNumber, JsonObject, JsonString, JsonValue, jsonError, parseJsonObject } from "../sdk/json";
import { API_KEY_LIMIT, API_NAME } from "./gen/apis";

export const M_EXACT: u8 = 0;
export const M_PREFIX: u8 = 1;
export const M_SUFFIX: u8 = 2;

/** exact / prefix / suffix over bytes. */
export class StringMatcher {
  kind: u8 = M_EXACT;
  value: Uint8Array = new Uint8Array(0);

  matches(ptr: usize, len: usize): bool {
    const v = this.value;
    const n = <usize>v.length;
    if (this.kind == M_EXACT) return n == len && memory.compare(ptr, v.dataStart, n) == 0;
    if (this.kind == M_PREFIX) return n <= len && memory.compare(ptr, v.dataStart, n) == 0;
    return n <= len && memory.compare(ptr + len - n, v.dataStart, n) == 0;
  }
}

/** One produce/fetch rule: every matcher present must match; the first matching rule decides. */
export class AclRule {
  topic: StringMatcher | null = null;
  clientId: StringMatcher | null = null;
  user: StringMatcher | null = null;
  allow: bool = true;
}

export class Broker {
  id: i32 = 0;
  port: i32 = 0;
  cluster: string = "";
}

export class Route {
  clientId: StringMatcher | null = null;
  cluster: string = "";
}

export class Config {
  statPrefix: string = "kafka";
  advertise: string = "";
  brokers: Broker[] = [];
  /** The broker this listener fronts (-1: the bootstrap listener). Added by the control plane. */
  listenerBrokerId: i32 = -1;
  aclDefaultAllow: bool = true;
  produceRules: AclRule[] = [];
  fetchRules: AclRule[] = [];
  /** Indexed by API key. */
  deniedKeys: StaticArray<bool> = new StaticArray<bool>(API_KEY_LIMIT);
  deniedKeyCount: i32 = 0;
  /** Unknown (future) API keys are denied too when acl.deny_api_keys lists "unknown". */
  denyUnknownKeys: bool = false;
  topicMetrics: Uint8Array[] = [];
  topicMetricNames: string[] = [];
  maxRequestBytes: i32 = 104857600; // Kafka's socket.request.max.bytes default
  maxResponseBytes: i32 = 1073741824;
  maxInFlight: i32 = 1024;
  keepTopicIds: bool = false;
  packetLog: bool = true;
  routes: Route[] = [];

  /** Produce/fetch policy needs topic names (so requests must carry names, not ids). */
  get needsTopicNames(): bool {
    return this.produceRules.length > 0 || this.fetchRules.length > 0 || this.topicMetrics.length > 0 || !this.aclDefaultAllow;
  }

  brokerPort(id: i32): i32 {
    const b = this.brokers;
    for (let i = 0; i < b.length; i++) if (unchecked(b[i]).id == id) return unchecked(b[i]).port;
    return -1;
  }
}

let configError: string = "";

export function lastConfigError(): string {
  return configError;
}

function fail(path: string, message: string): Config | null {
  configError = path + ": " + message;
  return null;
}

function allowedKeys(o: JsonObject, path: string, allowed: string[]): bool {
  const keys = o.keys;
  for (let i = 0; i < keys.length; i++) {
    if (!allowed.includes(keys[i])) {
      configError = (path.length > 0 ? path + "." : "") + keys[i] + ": unknown setting (allowed: " + allowed.join(", ") + ")";
      return false;
    }
  }
  return true;
}

/** An integer in [lo, hi], or null with configError set. */
function intIn(v: JsonValue | null, path: string, lo: f64, hi: f64): JsonNumber | null {
  if (v == null || !(v instanceof JsonNumber)) { configError = path + ": must be an integer"; return null; }
  const n = (<JsonNumber>v).value;
  if (n != Math.floor(n) || n < lo || n > hi) {
    configError = path + ": must be an integer from " + (<i64>lo).toString() + " to " + (<i64>hi).toString();
    return null;
  }
  return <JsonNumber>v;
}

function matcher(v: JsonValue | null, path: string): StringMatcher | null {
  if (v == null || !(v instanceof JsonObject)) { configError = path + ": must be a map with one of exact, prefix, suffix"; return null; }
  const o = <JsonObject>v;
  const keys = o.keys;
  if (keys.length != 1) { configError = path + ": must have exactly one of exact, prefix, suffix"; return null; }
  const m = new StringMatcher();
  const k = keys[0];
  if (k == "exact") m.kind = M_EXACT;
  else if (k == "prefix") m.kind = M_PREFIX;
  else if (k == "suffix") m.kind = M_SUFFIX;
  else { configError = path + "." + k + ": unknown matcher (allowed: exact, prefix, suffix)"; return null; }
  const s = o.getString(k);
  if (s == null) { configError = path + "." + k + ": must be a string"; return null; }
  m.value = Uint8Array.wrap(String.UTF8.encode(s));
  return m;
}

function rules(a: JsonValue | null, path: string, out: AclRule[]): bool {
  if (a == null) return true;
  if (!(a instanceof JsonArray)) { configError = path + ": must be a list of rules"; return false; }
  const items = (<JsonArray>a).items;
  for (let i = 0; i < items.length; i++) {
    const p = path + "[" + i.toString() + "]";
    const item = items[i];
    if (!(item instanceof JsonObject)) { configError = p + ": must be a map"; return false; }
    const o = <JsonObject>item;
    if (!allowedKeys(o, p, ["topic", "client_id", "user", "action"])) return false;
    const rule = new AclRule();
    const action = o.getString("action");
    if (action == null || (action != "allow" && action != "deny")) { configError = p + ".action: must be allow or deny"; return false; }
    rule.allow = action == "allow";
    if (o.has("topic")) { rule.topic = matcher(o.get("topic"), p + ".topic"); if (rule.topic == null) return false; }
    if (o.has("client_id")) { rule.clientId = matcher(o.get("client_id"), p + ".client_id"); if (rule.clientId == null) return false; }
    if (o.has("user")) { rule.user = matcher(o.get("user"), p + ".user"); if (rule.user == null) return false; }
    if (rule.topic == null && rule.clientId == null && rule.user == null) { configError = p + ": needs at least one of topic, client_id, user"; return false; }
    out.push(rule);
  }
  return true;
}

function apiKeyByName(name: string): i32 {
  for (let k = 0; k < API_KEY_LIMIT; k++) if (API_NAME[k] == name) return k;
  return -1;
}

const TOP_KEYS: string[] = [
  "stat_prefix", "advertise", "brokers", "listener_broker_id", "acl", "topic_metrics", "limits", "keep_topic_ids", "packet_log", "routes",
];

export function parseConfig(bytes: ArrayBuffer): Config | null {
  configError = "";
  const c = new Config();
  if (bytes.byteLength == 0) return c;
  const root = parseJsonObject(bytes);
  if (root == null) return fail("configuration", jsonError());
  if (!allowedKeys(root, "", TOP_KEYS)) return null;

  if (root.has("stat_prefix")) {
    const s = root.getString("stat_prefix");
    if (s == null || s.length == 0) return fail("stat_prefix", "must be a non-empty string");
    for (let i = 0; i < s.length; i++) {
      const ch = s.charCodeAt(i);
      const ok = (ch >= 48 && ch <= 57) || (ch >= 65 && ch <= 90) || (ch >= 97 && ch <= 122) || ch == 95 || ch == 45;
      if (!ok) return fail("stat_prefix", "only letters, digits, '_' and '-'");
    }
    c.statPrefix = s;
  }
  if (root.has("advertise")) {
    const s = root.getString("advertise");
    if (s == null || s.length == 0 || s.length > 255) return fail("advertise", "must be a host name or address (1 to 255 characters)");
    c.advertise = s;
  }
  if (root.has("brokers")) {
    const a = root.getArray("brokers");
    if (a == null) return fail("brokers", "must be a list of { id, port, cluster }");
    for (let i = 0; i < a.items.length; i++) {
      const p = "brokers[" + i.toString() + "]";
      const item = a.items[i];
      if (!(item instanceof JsonObject)) return fail(p, "must be a map { id, port, cluster }");
      const o = <JsonObject>item;
      if (!allowedKeys(o, p, ["id", "port", "cluster"])) return null;
      const b = new Broker();
      const id = intIn(o.get("id"), p + ".id", 0, 2147483647);
      if (id == null) return null;
      const port = intIn(o.get("port"), p + ".port", 1, 65535);
      if (port == null) return null;
      const cluster = o.getString("cluster");
      if (cluster == null || cluster.length == 0) return fail(p + ".cluster", "must be a cluster name");
      b.id = <i32>id.value;
      b.port = <i32>port.value;
      b.cluster = cluster;
      for (let j = 0; j < c.brokers.length; j++) {
        if (c.brokers[j].id == b.id) return fail(p + ".id", "broker " + b.id.toString() + " is listed twice");
      }
      c.brokers.push(b);
    }
    if (c.brokers.length > 0 && c.advertise.length == 0) return fail("advertise", "is required with brokers (the host written into rewritten broker addresses)");
  }
  if (root.has("listener_broker_id")) {
    const id = intIn(root.get("listener_broker_id"), "listener_broker_id", 0, 2147483647);
    if (id == null) return null;
    c.listenerBrokerId = <i32>id.value;
  }
  if (root.has("acl")) {
    const acl = root.getObject("acl");
    if (acl == null) return fail("acl", "must be a map");
    if (!allowedKeys(acl, "acl", ["default", "produce", "fetch", "deny_api_keys"])) return null;
    if (acl.has("default")) {
      const d = acl.getString("default");
      if (d == null || (d != "allow" && d != "deny")) return fail("acl.default", "must be allow or deny");
      c.aclDefaultAllow = d == "allow";
    }
    if (!rules(acl.get("produce"), "acl.produce", c.produceRules)) return null;
    if (!rules(acl.get("fetch"), "acl.fetch", c.fetchRules)) return null;
    if (acl.has("deny_api_keys")) {
      const a = acl.getArray("deny_api_keys");
      if (a == null) return fail("acl.deny_api_keys", "must be a list of API keys (numbers or names like \"DeleteTopics\")");
      for (let i = 0; i < a.items.length; i++) {
        const p = "acl.deny_api_keys[" + i.toString() + "]";
        const v = a.items[i];
        let key: i32 = -1;
        if (v instanceof JsonString) {
          key = apiKeyByName((<JsonString>v).value);
          if (key < 0) return fail(p, "unknown API name \"" + (<JsonString>v).value + "\" (use the Kafka message name without Request, e.g. DeleteTopics)");
        } else {
          const n = intIn(v, p, 0, 32767);
          if (n == null) return null;
          key = <i32>n.value;
          if (key >= API_KEY_LIMIT) { c.denyUnknownKeys = true; continue; }
        }
        if (!c.deniedKeys[key]) c.deniedKeyCount++;
        c.deniedKeys[key] = true;
      }
    }
  }
  if (root.has("topic_metrics")) {
    const a = root.getArray("topic_metrics");
    if (a == null) return fail("topic_metrics", "must be a list of topic prefixes");
    if (a.items.length > 64) return fail("topic_metrics", "at most 64 prefixes");
    for (let i = 0; i < a.items.length; i++) {
      const v = a.items[i];
      if (!(v instanceof JsonString) || (<JsonString>v).value.length == 0) return fail("topic_metrics[" + i.toString() + "]", "must be a non-empty topic prefix");
      const s = (<JsonString>v).value;
      c.topicMetricNames.push(s);
      c.topicMetrics.push(Uint8Array.wrap(String.UTF8.encode(s)));
    }
  }
  if (root.has("limits")) {
    const l = root.getObject("limits");
    if (l == null) return fail("limits", "must be a map");
    if (!allowedKeys(l, "limits", ["max_request_bytes", "max_response_bytes", "max_in_flight"])) return null;
    if (l.has("max_request_bytes")) {
      const n = intIn(l.get("max_request_bytes"), "limits.max_request_bytes", 64, 1073741824);
      if (n == null) return null;
      c.maxRequestBytes = <i32>n.value;
    }
    if (l.has("max_response_bytes")) {
      const n = intIn(l.get("max_response_bytes"), "limits.max_response_bytes", 64, 1073741824);
      if (n == null) return null;
      c.maxResponseBytes = <i32>n.value;
    }
    if (l.has("max_in_flight")) {
      const n = intIn(l.get("max_in_flight"), "limits.max_in_flight", 1, 65536);
      if (n == null) return null;
      c.maxInFlight = <i32>n.value;
    }
  }
  if (root.has("keep_topic_ids")) {
    if (!(root.get("keep_topic_ids") instanceof JsonBool)) return fail("keep_topic_ids", "must be true or false");
    c.keepTopicIds = root.getBool("keep_topic_ids");
  }
  if (root.has("packet_log")) {
    if (!(root.get("packet_log") instanceof JsonBool)) return fail("packet_log", "must be true or false");
    c.packetLog = root.getBool("packet_log", true);
  }
  if (root.has("routes")) {
    const a = root.getArray("routes");
    if (a == null) return fail("routes", "must be a list");
    for (let i = 0; i < a.items.length; i++) {
      const p = "routes[" + i.toString() + "]";
      const item = a.items[i];
      if (!(item instanceof JsonObject)) return fail(p, "must be a map");
      const o = <JsonObject>item;
      const r = new Route();
      const cluster = o.getString("cluster");
      if (cluster == null) return fail(p + ".cluster", "must be a cluster name");
      r.cluster = cluster;
      if (o.has("match")) {
        const m = o.getObject("match");
        if (m == null) return fail(p + ".match", "must be a map");
        if (!allowedKeys(m, p + ".match", ["client_id"])) return null;
        if (m.has("client_id")) { r.clientId = matcher(m.get("client_id"), p + ".match.client_id"); if (r.clientId == null) return null; }
      }
      c.routes.push(r);
    }
  }
  return c;
}
