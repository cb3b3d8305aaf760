// Request policy: ordered rules on method and Uri-Path; the first rule that
// holds decides, else the default. Pure: no ABI calls.
import { StringMatcher } from "../sdk/match";
import { Settings } from "../sdk/settings";

export const METHODS: string[] = ["GET", "POST", "PUT", "DELETE", "FETCH", "PATCH", "IPATCH"];

export class Rule {
  /** null: every path. */
  path: StringMatcher | null = null;
  /** Bit (1 << code) per method code 0.01..0.07; 0xff = every method. */
  methods: u32 = 0xff;
  allow: bool = true;
}

export class Policy {
  rules: Rule[] = [];
  defaultAllow: bool = true;

  /** Whether a request (method code, path "/a/b" at [ptr, ptr+len)) may pass. */
  allows(code: u8, ptr: usize, len: usize): bool {
    const bit: u32 = code < 32 ? (<u32>1) << code : 0;
    for (let i = 0; i < this.rules.length; i++) {
      const r = unchecked(this.rules[i]);
      if ((r.methods & bit) == 0) continue;
      const m = r.path;
      if (m != null && !m.matches(ptr, len)) continue;
      return r.allow;
    }
    return this.defaultAllow;
  }

  get active(): bool { return this.rules.length > 0 || !this.defaultAllow; }
}

/** Reads `policy: { default, rules: [{ path?, methods?, action }] }` (errors through `s`). */
export function readPolicy(s: Settings): Policy {
  const p = new Policy();
  const o = s.object("policy");
  if (o == null) return p;
  o.allowKeys(["default", "rules"]);
  p.defaultAllow = o.oneOf("default", ["allow", "deny"], 0) == 0;
  const list = o.list("rules", 256);
  if (list == null) return p;
  for (let i = 0; i < list.length; i++) {
    const r = list.object(i);
    if (r == null) break;
    r.allowKeys(["path", "methods", "action"]);
    const rule = new Rule();
    if (!r.has("action")) r.fail("action", "required");
    rule.allow = r.oneOf("action", ["allow", "deny"], 0) == 0;
    if (r.has("path")) rule.path = r.matcher("path");
    const methods = r.list("methods", 16);
    if (methods != null) {
      if (methods.length == 0) r.fail("methods", "expected at least one method");
      rule.methods = 0;
      for (let k = 0; k < methods.length; k++) {
        const name = methods.string(k, true);
        const at = METHODS.indexOf(name);
        if (at < 0) { r.fail("methods", "unknown method \"" + name + "\" (" + METHODS.join(", ") + ")"); break; }
        rule.methods |= (<u32>1) << <u32>(at + 1);
      }
    }
    if (!s.ok()) break;
    p.rules.push(rule);
  }
  return p;
}
