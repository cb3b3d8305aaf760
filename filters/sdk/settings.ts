// Reading a filter's settings (the plugin configuration JSON) with errors that
// carry the JSON path (`routes[1].match.client_id.regex: ...`), the same path
// the control plane's schema check names. Pure (no ABI calls).
//
// The first error sticks and every later read returns its fallback, so a
// filter reads everything straight through and checks `ok()` once:
//
//   const s = Settings.parse(bytes);
//   s.allowKeys(["routes", "max_frame", "log_packets"]);
//   const maxFrame = s.int("max_frame", 1, 1 << 24, 65536);
//   const routes = s.routes("routes", ["key"]);
//   if (!s.ok()) { logError("toy: " + s.error()); return false; }
import { JsonArray, JsonBool, JsonNumber, JsonObject, JsonString, JsonValue, jsonError, parseJson } from "./json";
import { AttributeMatch, MatchKind, Route, RouteTable, StringMatcher } from "./match";
import { compileRegex, lastRegexError } from "./regex";

/** The error shared by every node read from one document. */
class SettingsState {
  message: string = "";
}

function join(path: string, key: string): string {
  return path.length == 0 ? key : path + "." + key;
}

/** An object of the settings at a path ("" = the root). */
export class Settings {
  constructor(readonly obj: JsonObject, readonly path: string, private readonly state: SettingsState) {}

  /** Parses the plugin configuration; empty bytes read as {}. */
  static parse(bytes: ArrayBuffer): Settings {
    const state = new SettingsState();
    if (bytes.byteLength == 0) return new Settings(new JsonObject(), "", state);
    const v = parseJson(bytes);
    if (v == null || !(v instanceof JsonObject)) {
      state.message = v == null ? "settings are not valid JSON: " + jsonError() : "settings must be a JSON object";
      return new Settings(new JsonObject(), "", state);
    }
    return new Settings(<JsonObject>v, "", state);
  }

  ok(): bool { return this.state.message.length == 0; }
  /** "path: what is wrong" for the first error, "" when none. */
  error(): string { return this.state.message; }

  /** Records an error at `key` under this object (the first one wins); returns false. */
  fail(key: string, message: string): bool {
    if (this.state.message.length == 0) {
      const at = key.length == 0 ? this.path : join(this.path, key);
      this.state.message = (at.length == 0 ? "" : at + ": ") + message;
    }
    return false;
  }

  has(key: string): bool { return this.obj.has(key); }
  get keys(): string[] { return this.obj.keys; }

  /** Fails on a key that is not in `allowed` (named in the error, with the allowed ones). */
  allowKeys(allowed: string[]): bool {
    const keys = this.obj.keys;
    for (let i = 0; i < keys.length; i++) {
      if (!allowed.includes(keys[i])) return this.fail("", "unknown field '" + keys[i] + "' (" + allowed.join(", ") + ")");
    }
    return true;
  }

  string(key: string, fallback: string, nonEmpty: bool = false): string {
    if (!this.obj.has(key) || !this.ok()) return fallback;
    const v = this.obj.get(key);
    if (!(v instanceof JsonString)) { this.fail(key, "expected a string"); return fallback; }
    const s = (<JsonString>v).value;
    if (nonEmpty && s.length == 0) { this.fail(key, "expected a non-empty string"); return fallback; }
    return s;
  }

  bool(key: string, fallback: bool): bool {
    if (!this.obj.has(key) || !this.ok()) return fallback;
    const v = this.obj.get(key);
    if (!(v instanceof JsonBool)) { this.fail(key, "expected true or false"); return fallback; }
    return (<JsonBool>v).value;
  }

  /** An integer in [min, max]. */
  int(key: string, min: i64, max: i64, fallback: i64): i64 {
    if (!this.obj.has(key) || !this.ok()) return fallback;
    const v = this.obj.get(key);
    const n = v instanceof JsonNumber ? (<JsonNumber>v).value : NaN;
    if (!(n >= <f64>min && n <= <f64>max) || n != Math.floor(n)) {
      this.fail(key, "expected an integer between " + min.toString() + " and " + max.toString());
      return fallback;
    }
    return <i64>n;
  }

  /** Index of the value in `choices` (a string enum), or `fallback`. */
  oneOf(key: string, choices: string[], fallback: i32): i32 {
    if (!this.obj.has(key) || !this.ok()) return fallback;
    const v = this.obj.get(key);
    const i = v instanceof JsonString ? choices.indexOf((<JsonString>v).value) : -1;
    if (i < 0) { this.fail(key, "expected one of \"" + choices.join("\", \"") + "\""); return fallback; }
    return i;
  }

  /** The object at `key`; null when absent or wrong (then an error is recorded). */
  object(key: string): Settings | null {
    if (!this.obj.has(key) || !this.ok()) return null;
    const v = this.obj.get(key);
    if (!(v instanceof JsonObject)) { this.fail(key, "expected an object"); return null; }
    return new Settings(<JsonObject>v, join(this.path, key), this.state);
  }

  /** The array at `key`; null when absent or wrong (then an error is recorded). */
  list(key: string, maxItems: i32 = i32.MAX_VALUE): SettingsList | null {
    if (!this.obj.has(key) || !this.ok()) return null;
    const v = this.obj.get(key);
    if (!(v instanceof JsonArray)) { this.fail(key, "expected an array"); return null; }
    const a = <JsonArray>v;
    if (a.items.length > maxItems) { this.fail(key, "at most " + maxItems.toString() + " items"); return null; }
    return new SettingsList(a, join(this.path, key), this.state);
  }

  /** A string matcher { exact | prefix | suffix | regex: "..." }; null when absent or wrong. */
  matcher(key: string): StringMatcher | null {
    const o = this.object(key);
    return o == null ? null : o.asMatcher();
  }

  /** This object read as a string matcher (exactly one of exact, prefix, suffix, regex). */
  asMatcher(): StringMatcher | null {
    const keys = this.obj.keys;
    if (keys.length != 1) { this.fail("", "expected exactly one of exact, prefix, suffix, regex"); return null; }
    const kind = ["exact", "prefix", "suffix", "regex"].indexOf(keys[0]);
    if (kind < 0) { this.fail("", "unknown matcher '" + keys[0] + "' (exact, prefix, suffix, regex)"); return null; }
    const value = this.string(keys[0], "");
    if (!this.ok()) return null;
    const m = new StringMatcher();
    m.kind = <MatchKind>kind;
    m.value = Uint8Array.wrap(String.UTF8.encode(value));
    if (m.kind == MatchKind.Regex) {
      m.regex = compileRegex(value);
      if (m.regex == null) { this.fail(keys[0], lastRegexError()); return null; }
    }
    return m;
  }

  /** A match on the filter's attributes: { ATTRIBUTE: matcher, ... } (each optional, no others). */
  attributeMatch(key: string, attributes: string[]): AttributeMatch | null {
    const o = this.object(key);
    if (o == null) return null;
    const m = new AttributeMatch(attributes.length);
    const keys = o.obj.keys;
    for (let i = 0; i < keys.length; i++) {
      const a = attributes.indexOf(keys[i]);
      if (a < 0) { o.fail("", "unknown match attribute '" + keys[i] + "' (" + attributes.join(", ") + ")"); return null; }
      m.matchers[a] = o.matcher(keys[i]);
    }
    return this.ok() ? m : null;
  }

  /** The route table at `key` ([{ match?: {ATTRIBUTE: matcher}, cluster }]); empty when absent. */
  routes(key: string, attributes: string[]): RouteTable {
    const table = new RouteTable();
    const list = this.list(key);
    if (list == null) return table;
    for (let i = 0; i < list.length; i++) {
      const r = list.object(i);
      if (r == null) break;
      r.allowKeys(["match", "cluster"]);
      const route = new Route();
      route.cluster = r.string("cluster", "", true);
      if (!r.has("cluster")) r.fail("cluster", "required");
      route.match = r.attributeMatch("match", attributes);
      if (!this.ok()) break;
      table.routes.push(route);
    }
    return table;
  }
}

/** An array of the settings at a path. */
export class SettingsList {
  constructor(readonly arr: JsonArray, readonly path: string, private readonly state: SettingsState) {}

  get length(): i32 { return this.arr.items.length; }

  private at(i: i32): string { return this.path + "[" + i.toString() + "]"; }

  private fail(i: i32, message: string): void {
    if (this.state.message.length == 0) this.state.message = this.at(i) + ": " + message;
  }

  item(i: i32): JsonValue { return this.arr.items[i]; }

  object(i: i32): Settings | null {
    const v = this.arr.items[i];
    if (!(v instanceof JsonObject)) { this.fail(i, "expected an object"); return null; }
    return new Settings(<JsonObject>v, this.at(i), this.state);
  }

  string(i: i32, nonEmpty: bool = false): string {
    const v = this.arr.items[i];
    if (!(v instanceof JsonString)) { this.fail(i, "expected a string"); return ""; }
    const s = (<JsonString>v).value;
    if (nonEmpty && s.length == 0) this.fail(i, "expected a non-empty string");
    return s;
  }

  /** Item i read as a string matcher. */
  matcher(i: i32): StringMatcher | null {
    const o = this.object(i);
    return o == null ? null : o.asMatcher();
  }
}
