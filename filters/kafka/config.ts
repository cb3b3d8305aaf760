// The kafka filter's settings (the listener's `filter:` map plus `routes`;
// docs/kafka.md, schema in filter.json), read once in onConfigure with the
// SDK's settings reader: errors carry the JSON path. Pure.
import { JsonNumber, JsonString } from "../sdk/json";
import { RouteTable, StringMatcher } from "../sdk/match";
import { Settings } from "../sdk/settings";
import { API_KEY_LIMIT, API_NAME } from "./gen/apis";

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
  /**
   * What a rewritten address of this broker is, ready to copy: the advertise
   * host as a Kafka string, then the port (int32), in the classic (int16
   * length) and the compact (flexible versions: uvarint length + 1) forms.
   * Every broker shape Kafka has puts the port right after the host.
   */
  address: Uint8Array = new Uint8Array(0);
  compactAddress: Uint8Array = new Uint8Array(0);
}

/** A host string then an int32 port, in the classic or compact string form. */
function encodeAddress(host: Uint8Array, port: i32, compact: bool): Uint8Array {
  const n = host.length;
  // 255 bytes at most (the settings say so): a compact length takes 1 or 2 bytes
  const prefix = compact ? (n + 1 < 0x80 ? 1 : 2) : 2;
  const out = new Uint8Array(prefix + n + 4);
  if (!compact) { out[0] = <u8>(n >> 8); out[1] = <u8>n; }
  else if (prefix == 1) out[0] = <u8>(n + 1);
  else { out[0] = <u8>(((n + 1) & 0x7f) | 0x80); out[1] = <u8>((n + 1) >> 7); }
  memory.copy(out.dataStart + <usize>prefix, host.dataStart, <usize>n);
  store<u32>(out.dataStart + <usize>(prefix + n), bswap<u32>(<u32>port));
  return out;
}

/** Route match attributes (the route table's attribute indexes). */
export const ATTR_CLIENT_ID: i32 = 0;
export const ROUTE_ATTRIBUTES: string[] = ["client_id"];

export class Config {
  statPrefix: string = "kafka";
  advertise: string = "";
  advertiseBytes: Uint8Array = new Uint8Array(0);
  brokers: Broker[] = [];
  /** The broker this listener fronts (-1: the bootstrap listener). Added by the control plane. */
  listenerBrokerId: i32 = -1;
  aclDefaultAllow: bool = true;
  produceRules: AclRule[] = [];
  fetchRules: AclRule[] = [];
  /** Indexed by API key. */
  deniedKeys: StaticArray<bool> = new StaticArray<bool>(API_KEY_LIMIT);
  /** Keys past the generated table (newer than Kafka 4.2) are denied too. */
  denyUnknownKeys: bool = false;
  topicMetrics: StringMatcher[] = [];
  topicMetricNames: string[] = [];
  maxRequestBytes: i32 = 8 << 20;
  maxResponseBytes: i32 = 8 << 20;
  maxInFlight: i32 = 1024;
  keepTopicIds: bool = false;
  routes: RouteTable = new RouteTable();

  /** Produce/fetch policy or metrics need topic names (so requests should carry names, not ids). Set by readConfig. */
  needsTopicNames: bool = false;
  /** Broker addresses are rewritten (brokers is not empty). Set by readConfig. */
  rewrites: bool = false;

  /** The Envoy listener fronting broker `id`, or null when none does. */
  broker(id: i32): Broker | null {
    const b = this.brokers;
    for (let i = 0; i < b.length; i++) if (unchecked(b[i]).id == id) return unchecked(b[i]);
    return null;
  }
}

const TOP_KEYS: string[] = [
  "stat_prefix", "advertise", "brokers", "listener_broker_id", "acl", "topic_metrics", "limits", "keep_topic_ids", "log_packets", "routes",
];

function rules(s: Settings, key: string, out: AclRule[]): void {
  const list = s.list(key);
  if (list == null) return;
  for (let i = 0; i < list.length && s.ok(); i++) {
    const o = list.object(i);
    if (o == null) return;
    o.allowKeys(["topic", "client_id", "user", "action"]);
    const rule = new AclRule();
    if (!o.has("action")) { o.fail("action", "required (allow or deny)"); return; }
    rule.allow = o.oneOf("action", ["allow", "deny"], 0) == 0;
    rule.topic = o.matcher("topic");
    rule.clientId = o.matcher("client_id");
    rule.user = o.matcher("user");
    if (!o.ok()) return;
    if (rule.topic == null && rule.clientId == null && rule.user == null) { o.fail("", "needs at least one of topic, client_id, user"); return; }
    out.push(rule);
  }
}

function apiKeyByName(name: string): i32 {
  for (let k = 0; k < API_KEY_LIMIT; k++) if (API_NAME[k] == name) return k;
  return -1;
}

/** Reads the settings; null when they are wrong (s.error() says where and why). */
export function readConfig(s: Settings): Config | null {
  const c = new Config();
  s.allowKeys(TOP_KEYS);
  c.statPrefix = s.string("stat_prefix", "kafka", true);
  for (let i = 0; i < c.statPrefix.length; i++) {
    const ch = c.statPrefix.charCodeAt(i);
    const ok = (ch >= 48 && ch <= 57) || (ch >= 65 && ch <= 90) || (ch >= 97 && ch <= 122) || ch == 95 || ch == 45;
    if (!ok) { s.fail("stat_prefix", "only letters, digits, '_' and '-'"); break; }
  }
  c.advertise = s.string("advertise", "", true);
  if (c.advertise.length > 255) s.fail("advertise", "at most 255 characters");
  c.advertiseBytes = Uint8Array.wrap(String.UTF8.encode(c.advertise));

  const brokers = s.list("brokers", 1000);
  if (brokers != null) {
    for (let i = 0; i < brokers.length && s.ok(); i++) {
      const o = brokers.object(i);
      if (o == null) break;
      o.allowKeys(["id", "port", "cluster"]);
      for (let k = 0; k < 3; k++) if (!o.has(["id", "port", "cluster"][k])) o.fail(["id", "port", "cluster"][k], "required");
      const b = new Broker();
      b.id = <i32>o.int("id", 0, 2147483647, 0);
      b.port = <i32>o.int("port", 1, 65535, 1);
      b.cluster = o.string("cluster", "", true);
      for (let j = 0; j < c.brokers.length; j++) {
        if (c.brokers[j].id == b.id) o.fail("id", "broker " + b.id.toString() + " is listed twice");
      }
      c.brokers.push(b);
    }
    if (s.ok() && c.brokers.length > 0 && c.advertise.length == 0) s.fail("advertise", "required with brokers (the host written into rewritten broker addresses)");
  }
  c.listenerBrokerId = <i32>s.int("listener_broker_id", 0, 2147483647, -1);

  const acl = s.object("acl");
  if (acl != null) {
    acl.allowKeys(["default", "produce", "fetch", "deny_api_keys"]);
    c.aclDefaultAllow = acl.oneOf("default", ["allow", "deny"], 0) == 0;
    rules(acl, "produce", c.produceRules);
    rules(acl, "fetch", c.fetchRules);
    const keys = acl.list("deny_api_keys");
    if (keys != null) {
      for (let i = 0; i < keys.length && s.ok(); i++) {
        const v = keys.item(i);
        let key: i32 = -1;
        if (v instanceof JsonString) {
          key = apiKeyByName((<JsonString>v).value);
          if (key < 0) { acl.fail("deny_api_keys[" + i.toString() + "]", "unknown API \"" + (<JsonString>v).value + "\" (a Kafka message name without Request, e.g. DeleteTopics, or a number)"); break; }
        } else if (v instanceof JsonNumber && (<JsonNumber>v).value >= 0 && (<JsonNumber>v).value <= 32767 && (<JsonNumber>v).value == Math.floor((<JsonNumber>v).value)) {
          key = <i32>(<JsonNumber>v).value;
          if (key >= API_KEY_LIMIT) { c.denyUnknownKeys = true; continue; }
        } else {
          acl.fail("deny_api_keys[" + i.toString() + "]", "expected an API name or a number from 0 to 32767");
          break;
        }
        c.deniedKeys[key] = true;
      }
    }
  }

  const metrics = s.list("topic_metrics", 64);
  if (metrics != null) {
    for (let i = 0; i < metrics.length && s.ok(); i++) {
      const name = metrics.string(i, true);
      const m = new StringMatcher(); // kind Exact by default; prefixes here
      m.kind = 1;
      m.value = Uint8Array.wrap(String.UTF8.encode(name));
      c.topicMetrics.push(m);
      c.topicMetricNames.push(name);
    }
  }

  const limits = s.object("limits");
  if (limits != null) {
    limits.allowKeys(["max_request_bytes", "max_response_bytes", "max_in_flight"]);
    c.maxRequestBytes = <i32>limits.int("max_request_bytes", 64, 1 << 30, c.maxRequestBytes);
    c.maxResponseBytes = <i32>limits.int("max_response_bytes", 64, 1 << 30, c.maxResponseBytes);
    c.maxInFlight = <i32>limits.int("max_in_flight", 1, 65536, c.maxInFlight);
  }
  c.keepTopicIds = s.bool("keep_topic_ids", false);
  c.routes = s.routes("routes", ROUTE_ATTRIBUTES);
  c.needsTopicNames = c.produceRules.length > 0 || c.fetchRules.length > 0 || c.topicMetrics.length > 0 || !c.aclDefaultAllow;
  c.rewrites = c.brokers.length > 0;
  for (let i = 0; i < c.brokers.length; i++) {
    const b = c.brokers[i];
    b.address = encodeAddress(c.advertiseBytes, b.port, false);
    b.compactAddress = encodeAddress(c.advertiseBytes, b.port, true);
  }
  return s.ok() ? c : null;
}
