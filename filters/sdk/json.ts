// A small JSON reader for plugin configuration: parse(bytes) gives a tree of
// JsonValue objects, or null (with jsonError() saying why) for invalid input.
// Numbers are f64; strings keep \uXXXX escapes (including surrogate pairs).

export class JsonValue {
  isNull(): bool { return false; }
}

export class JsonNull extends JsonValue {
  isNull(): bool { return true; }
}

export class JsonBool extends JsonValue {
  constructor(public readonly value: bool) { super(); }
}

export class JsonNumber extends JsonValue {
  constructor(public readonly value: f64) { super(); }
}

export class JsonString extends JsonValue {
  constructor(public readonly value: string) { super(); }
}

export class JsonArray extends JsonValue {
  readonly items: JsonValue[] = [];
}

export class JsonObject extends JsonValue {
  /** Keys in document order (a repeated key keeps its first position, last value). */
  readonly keys: string[] = [];
  private readonly values: Map<string, JsonValue> = new Map<string, JsonValue>();

  set(key: string, value: JsonValue): void {
    if (!this.values.has(key)) this.keys.push(key);
    this.values.set(key, value);
  }
  has(key: string): bool { return this.values.has(key); }
  get(key: string): JsonValue | null { return this.values.has(key) ? this.values.get(key) : null; }

  /** The string at `key`, or null when absent or not a string. */
  getString(key: string): string | null {
    const v = this.get(key);
    return v instanceof JsonString ? (<JsonString>v).value : null;
  }
  /** The number at `key`, or `fallback`. */
  getNumber(key: string, fallback: f64 = 0): f64 {
    const v = this.get(key);
    return v instanceof JsonNumber ? (<JsonNumber>v).value : fallback;
  }
  getBool(key: string, fallback: bool = false): bool {
    const v = this.get(key);
    return v instanceof JsonBool ? (<JsonBool>v).value : fallback;
  }
  getObject(key: string): JsonObject | null {
    const v = this.get(key);
    return v instanceof JsonObject ? <JsonObject>v : null;
  }
  getArray(key: string): JsonArray | null {
    const v = this.get(key);
    return v instanceof JsonArray ? <JsonArray>v : null;
  }
}

let lastError: string = "";

/** Why the last parse returned null. */
export function jsonError(): string {
  return lastError;
}

const MAX_DEPTH = 64;

class Parser {
  private pos: i32 = 0;
  error: string = "";

  constructor(private readonly bytes: Uint8Array) {}

  private fail(message: string): JsonValue | null {
    if (this.error.length == 0) this.error = message + " at byte " + this.pos.toString();
    return null;
  }

  private peek(): i32 {
    return this.pos < this.bytes.length ? <i32>this.bytes[this.pos] : -1;
  }

  private skipSpace(): void {
    while (this.pos < this.bytes.length) {
      const c = this.bytes[this.pos];
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
      this.pos++;
    }
  }

  private literal(word: string): bool {
    for (let i = 0; i < word.length; i++) {
      if (this.pos + i >= this.bytes.length || <i32>this.bytes[this.pos + i] != word.charCodeAt(i)) return false;
    }
    this.pos += word.length;
    return true;
  }

  document(): JsonValue | null {
    this.skipSpace();
    const value = this.value(0);
    if (value == null) return null;
    this.skipSpace();
    if (this.pos != this.bytes.length) return this.fail("unexpected data after the JSON value");
    return value;
  }

  private value(depth: i32): JsonValue | null {
    if (depth > MAX_DEPTH) return this.fail("nesting deeper than " + MAX_DEPTH.toString());
    this.skipSpace();
    const c = this.peek();
    if (c == 0x7b) return this.object(depth);
    if (c == 0x5b) return this.array(depth);
    if (c == 0x22) {
      const s = this.string();
      return s == null ? null : new JsonString(s);
    }
    if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    if (this.literal("true")) return new JsonBool(true);
    if (this.literal("false")) return new JsonBool(false);
    if (this.literal("null")) return new JsonNull();
    return this.fail(c < 0 ? "unexpected end of input" : "unexpected character");
  }

  private object(depth: i32): JsonValue | null {
    this.pos++; // {
    const obj = new JsonObject();
    this.skipSpace();
    if (this.peek() == 0x7d) { this.pos++; return obj; }
    for (;;) {
      this.skipSpace();
      if (this.peek() != 0x22) return this.fail("expected a string key");
      const key = this.string();
      if (key == null) return null;
      this.skipSpace();
      if (this.peek() != 0x3a) return this.fail("expected ':'");
      this.pos++;
      const v = this.value(depth + 1);
      if (v == null) return null;
      obj.set(key, v);
      this.skipSpace();
      const c = this.peek();
      this.pos++;
      if (c == 0x2c) continue;
      if (c == 0x7d) return obj;
      this.pos--;
      return this.fail("expected ',' or '}'");
    }
  }

  private array(depth: i32): JsonValue | null {
    this.pos++; // [
    const arr = new JsonArray();
    this.skipSpace();
    if (this.peek() == 0x5d) { this.pos++; return arr; }
    for (;;) {
      const v = this.value(depth + 1);
      if (v == null) return null;
      arr.items.push(v);
      this.skipSpace();
      const c = this.peek();
      this.pos++;
      if (c == 0x2c) continue;
      if (c == 0x5d) return arr;
      this.pos--;
      return this.fail("expected ',' or ']'");
    }
  }

  private hex4(): i32 {
    if (this.pos + 4 > this.bytes.length) return -1;
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const c = <i32>this.bytes[this.pos + i];
      let d: i32;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x61 + 10;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x41 + 10;
      else return -1;
      v = (v << 4) | d;
    }
    this.pos += 4;
    return v;
  }

  private string(): string | null {
    this.pos++; // opening quote
    let out = "";
    let runStart = this.pos;
    for (;;) {
      if (this.pos >= this.bytes.length) { this.fail("unterminated string"); return null; }
      const c = this.bytes[this.pos];
      if (c == 0x22) {
        out += String.UTF8.decodeUnsafe(this.bytes.dataStart + runStart, this.pos - runStart);
        this.pos++;
        return out;
      }
      if (c < 0x20) { this.fail("control character in string"); return null; }
      if (c != 0x5c) { this.pos++; continue; }
      out += String.UTF8.decodeUnsafe(this.bytes.dataStart + runStart, this.pos - runStart);
      this.pos++;
      const e = this.peek();
      this.pos++;
      if (e == 0x22) out += "\"";
      else if (e == 0x5c) out += "\\";
      else if (e == 0x2f) out += "/";
      else if (e == 0x62) out += "\b";
      else if (e == 0x66) out += "\f";
      else if (e == 0x6e) out += "\n";
      else if (e == 0x72) out += "\r";
      else if (e == 0x74) out += "\t";
      else if (e == 0x75) {
        const code = this.hex4();
        if (code < 0) { this.fail("bad \\u escape"); return null; }
        out += String.fromCharCode(code);
      } else { this.pos--; this.fail("bad escape"); return null; }
      runStart = this.pos;
    }
    return null; // not reached
  }

  private number(): JsonValue | null {
    const start = this.pos;
    if (this.peek() == 0x2d) this.pos++;
    let digits = 0;
    while (this.peek() >= 0x30 && this.peek() <= 0x39) { this.pos++; digits++; }
    if (digits == 0) return this.fail("bad number");
    if (this.peek() == 0x2e) {
      this.pos++;
      let frac = 0;
      while (this.peek() >= 0x30 && this.peek() <= 0x39) { this.pos++; frac++; }
      if (frac == 0) return this.fail("bad number");
    }
    if (this.peek() == 0x65 || this.peek() == 0x45) {
      this.pos++;
      if (this.peek() == 0x2b || this.peek() == 0x2d) this.pos++;
      let exp = 0;
      while (this.peek() >= 0x30 && this.peek() <= 0x39) { this.pos++; exp++; }
      if (exp == 0) return this.fail("bad number");
    }
    const text = String.UTF8.decodeUnsafe(this.bytes.dataStart + start, this.pos - start);
    return new JsonNumber(parseFloat(text));
  }
}

/** Parses UTF-8 JSON; null on error (see jsonError()). */
export function parseJson(bytes: ArrayBuffer): JsonValue | null {
  const parser = new Parser(Uint8Array.wrap(bytes));
  const value = parser.document();
  lastError = value == null ? parser.error : "";
  return value;
}

/** Parses a JSON object; null (with jsonError()) when the input is not one. */
export function parseJsonObject(bytes: ArrayBuffer): JsonObject | null {
  const value = parseJson(bytes);
  if (value == null) return null;
  if (!(value instanceof JsonObject)) {
    lastError = "expected a JSON object";
    return null;
  }
  return <JsonObject>value;
}

/** A JSON string literal for `s` (quotes added; control characters, `"` and `\` escaped). */
export function jsonQuote(s: string): string {
  let out = "\"";
  let runStart = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c != 0x22 && c != 0x5c) continue;
    out += s.substring(runStart, i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x0d) out += "\\r";
    else if (c == 0x09) out += "\\t";
    else {
      const hex = c.toString(16);
      out += "\\u" + "0000".substring(hex.length) + hex;
    }
    runStart = i + 1;
  }
  return out + s.substring(runStart) + "\"";
}
