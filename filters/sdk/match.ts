// String matchers and route tables for filter settings. Pure (no ABI calls),
// no allocation when matching: values are raw byte ranges.
//
// A matcher is one of { exact | prefix | suffix | regex } (regex: the subset
// in regex.ts, whole-value match like Envoy's safe_regex). A route table is
// the listener's `routes` in order: the first route whose match holds picks
// the cluster; a route without `match` always holds. The attributes a match
// may test (client_id, username, key, ...) are the filter's: it names them
// when it reads the table and supplies their values per connection.
import { Regex } from "./regex";

export enum MatchKind { Exact = 0, Prefix = 1, Suffix = 2, Regex = 3 }

export class StringMatcher {
  kind: MatchKind = MatchKind.Exact;
  value: Uint8Array = new Uint8Array(0);
  regex: Regex | null = null;

  /** Whether the bytes [ptr, ptr+len) match. */
  matches(ptr: usize, len: usize): bool {
    const v = this.value;
    const n = <usize>v.length;
    if (this.kind == MatchKind.Exact) return n == len && memory.compare(ptr, v.dataStart, n) == 0;
    if (this.kind == MatchKind.Prefix) return n <= len && memory.compare(ptr, v.dataStart, n) == 0;
    if (this.kind == MatchKind.Suffix) return n <= len && memory.compare(ptr + len - n, v.dataStart, n) == 0;
    const re = this.regex;
    return re != null && re.matches(ptr, len);
  }

  matchesBytes(b: Uint8Array): bool {
    return this.matches(b.dataStart, <usize>b.length);
  }
}

/**
 * The values of a connection's match attributes (one slot per attribute the
 * filter declared), as byte ranges; an attribute may be absent (e.g. no
 * username), and then no matcher on it holds.
 */
export class MatchInput {
  ptrs: StaticArray<usize>;
  lens: StaticArray<usize>;
  present: StaticArray<bool>;

  constructor(attributes: i32) {
    this.ptrs = new StaticArray<usize>(attributes);
    this.lens = new StaticArray<usize>(attributes);
    this.present = new StaticArray<bool>(attributes);
  }

  set(attribute: i32, ptr: usize, len: usize): void {
    this.ptrs[attribute] = ptr;
    this.lens[attribute] = len;
    this.present[attribute] = true;
  }

  setBytes(attribute: i32, value: Uint8Array): void {
    this.set(attribute, value.dataStart, <usize>value.length);
  }

  unset(attribute: i32): void {
    this.present[attribute] = false;
  }
}

/** Matchers on some of the attributes (null = not tested); all present ones must hold. */
export class AttributeMatch {
  matchers: Array<StringMatcher | null>;

  constructor(attributes: i32) {
    this.matchers = new Array<StringMatcher | null>(attributes);
    for (let i = 0; i < attributes; i++) this.matchers[i] = null;
  }

  matches(input: MatchInput): bool {
    for (let i = 0; i < this.matchers.length; i++) {
      const m = this.matchers[i];
      if (m == null) continue;
      if (!input.present[i] || !m.matches(input.ptrs[i], input.lens[i])) return false;
    }
    return true;
  }
}

export class Route {
  /** null: the route always holds (the default route). */
  match: AttributeMatch | null = null;
  cluster: string = "";
}

export class RouteTable {
  routes: Route[] = [];

  /** Index of the first route that holds for `input`, or -1 (tcp_proxy's own cluster). */
  pick(input: MatchInput): i32 {
    for (let i = 0; i < this.routes.length; i++) {
      const m = this.routes[i].match;
      if (m == null || m.matches(input)) return i;
    }
    return -1;
  }

  get length(): i32 { return this.routes.length; }
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
