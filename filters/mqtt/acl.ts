// Topic ACL policy for one connection: at CONNECT the rules that apply to it
// are picked (their match on client id / username) and their %c / %u
// expanded, once; then every PUBLISH topic and SUBSCRIBE filter is checked
// against that flat list. Pure.
import { MatchInput } from "../sdk";
import { AclRule, Config } from "./config";
import { aclAllows, filterCovers, filtersIntersect, sharedFilterOffset } from "./topics";

export class ConnectionAcl {
  /** The publish rules that apply to this connection, flat: pattern pointer, length, allow (1/0). */
  pubRules: StaticArray<usize> = new StaticArray<usize>(0);
  /** The same for SUBSCRIBE. */
  subRules: StaticArray<usize> = new StaticArray<usize>(0);
  /** Keeps the per-connection expansions of %c / %u rules alive (pubRules / subRules point into them). */
  private expanded: Array<Uint8Array> = new Array<Uint8Array>();

  constructor(readonly defaultAllow: bool) {}

  /** Picks the rules of `config` that apply to a connection with these CONNECT values. */
  static select(config: Config, input: MatchInput, clientId: Uint8Array, hasUsername: bool, username: Uint8Array): ConnectionAcl {
    const acl = new ConnectionAcl(config.aclDefaultAllow);
    acl.pubRules = acl.selectRules(config.publishRules, input, clientId, hasUsername, username);
    acl.subRules = acl.selectRules(config.subscribeRules, input, clientId, hasUsername, username);
    return acl;
  }

  private selectRules(rules: AclRule[], input: MatchInput, clientId: Uint8Array, hasUsername: bool, username: Uint8Array): StaticArray<usize> {
    const flat = new Array<usize>();
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i];
      const m = rule.match;
      if (m != null && !m.matches(input)) continue;
      const topic = rule.pattern ? this.expand(rule.topic, clientId, hasUsername, username) : rule.topic;
      if (topic == null) continue;
      flat.push(topic.dataStart);
      flat.push(<usize>topic.length);
      flat.push(rule.allow ? 1 : 0);
    }
    return StaticArray.fromArray<usize>(flat);
  }

  /**
   * The rule's topic with %c / %u replaced, or null when the rule cannot
   * apply: a substituted value that is empty, missing or has '+', '#' or
   * '/' would widen or shift the pattern.
   */
  private expand(t: Uint8Array, clientId: Uint8Array, hasUsername: bool, username: Uint8Array): Uint8Array | null {
    const n = t.length;
    let size = 0;
    for (let i = 0; i < n; i++) {
      if (t[i] == 0x25 && i + 1 < n && (t[i + 1] == 0x63 || t[i + 1] == 0x75)) {
        const v = substitution(t[i + 1] == 0x63, clientId, hasUsername, username);
        if (v == null) return null;
        size += v.length;
        i++;
      } else size++;
    }
    const out = new Uint8Array(size);
    let k = 0;
    for (let i = 0; i < n; i++) {
      if (t[i] == 0x25 && i + 1 < n && (t[i + 1] == 0x63 || t[i + 1] == 0x75)) {
        const v = substitution(t[i + 1] == 0x63, clientId, hasUsername, username)!;
        memory.copy(out.dataStart + <usize>k, v.dataStart, <usize>v.length);
        k += v.length;
        i++;
      } else out[k++] = t[i];
    }
    this.expanded.push(out);
    return out;
  }

  /** The first rule that matches the topic decides, else the default. */
  publishAllowed(topicPtr: usize, topicLen: u32): bool {
    const rules = this.pubRules;
    return aclAllows(changetype<usize>(rules), <usize>rules.length, this.defaultAllow, topicPtr, <usize>topicLen);
  }

  /** Allow rules apply when they cover the filter, deny rules when they overlap it. */
  subscribeAllowed(filterPtr: usize, filterLen: u32): bool {
    const rules = this.subRules;
    const off = sharedFilterOffset(filterPtr, filterLen);
    const f = filterPtr + off;
    const flen = <usize>filterLen - off;
    const n = rules.length;
    for (let i = 0; i < n; i += 3) {
      const p = unchecked(rules[i]);
      const plen = unchecked(rules[i + 1]);
      if (unchecked(rules[i + 2]) != 0) {
        if (filterCovers(p, plen, f, flen)) return true;
      } else if (filtersIntersect(p, plen, f, flen)) {
        return false;
      }
    }
    return this.defaultAllow;
  }
}

/** The client id (or username) to put into a pattern, or null when it is unusable there. */
function substitution(useClientId: bool, clientId: Uint8Array, hasUsername: bool, username: Uint8Array): Uint8Array | null {
  if (!useClientId && !hasUsername) return null;
  const v = useClientId ? clientId : username;
  if (v.length == 0) return null;
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c == 0x2b || c == 0x23 || c == 0x2f) return null;
  }
  return v;
}
