// A small regular-expression subset for settings matchers (routes, ACLs), run as an NFA
// over bytes (linear time, no backtracking, no allocation when matching).
//
// Supported: literals, `.`, character classes `[a-z0-9_-]` / `[^...]`,
// escapes `\d \w \s \D \W \S` and `\<char>` for a literal, quantifiers `*`,
// `+`, `?` after any single atom, and `^` / `$` at the ends (optional: like
// Envoy's safe_regex, the whole value must match). Not supported (rejected
// when the configuration is loaded): groups, alternation `|`, counted
// repetition `{n,m}`, backreferences, lookaround. At most 63 atoms.
// Matching is on UTF-8 bytes: `.` and classes match one byte, so `.*` and
// literal non-ASCII text work, while `.` alone does not match one multi-byte
// character.

const Q_ONE: u8 = 0;
const Q_STAR: u8 = 1;
const Q_PLUS: u8 = 2;
const Q_OPT: u8 = 3;

class Atom {
  /** 256-bit byte set. */
  set: StaticArray<u32> = new StaticArray<u32>(8);
  quant: u8 = Q_ONE;

  add(c: u32): void { this.set[c >> 5] |= 1 << (c & 31); }
  addRange(a: u32, b: u32): void { for (let c = a; c <= b; c++) this.add(c); }
  has(c: u32): bool { return (unchecked(this.set[c >> 5]) & (1 << (c & 31))) != 0; }
  invert(): void { for (let i = 0; i < 8; i++) this.set[i] = ~this.set[i]; }
}

function addClassEscape(atom: Atom, e: u32): bool {
  if (e == 0x64 || e == 0x44) { // \d \D
    const a = new Atom();
    a.addRange(0x30, 0x39);
    if (e == 0x44) a.invert();
    for (let i = 0; i < 8; i++) atom.set[i] |= a.set[i];
    return true;
  }
  if (e == 0x77 || e == 0x57) { // \w \W
    const a = new Atom();
    a.addRange(0x30, 0x39); a.addRange(0x41, 0x5a); a.addRange(0x61, 0x7a); a.add(0x5f);
    if (e == 0x57) a.invert();
    for (let i = 0; i < 8; i++) atom.set[i] |= a.set[i];
    return true;
  }
  if (e == 0x73 || e == 0x53) { // \s \S
    const a = new Atom();
    a.add(0x20); a.add(0x09); a.add(0x0a); a.add(0x0d); a.add(0x0b); a.add(0x0c);
    if (e == 0x53) a.invert();
    for (let i = 0; i < 8; i++) atom.set[i] |= a.set[i];
    return true;
  }
  return false;
}

export class Regex {
  atoms: Atom[] = [];
  /** States that can be skipped without consuming (quant * or ?), as a bit mask. */
  skippable: u64 = 0;

  /** Runs the NFA; true when the whole input matches. */
  matches(ptr: usize, len: usize): bool {
    const n = this.atoms.length;
    let states = this.closure(1);
    for (let i: usize = 0; i < len && states != 0; i++) {
      const c = <u32>load<u8>(ptr + i);
      let next: u64 = 0;
      for (let s = 0; s < n; s++) {
        const bit: u64 = <u64>1 << <u64>s;
        if ((states & bit) == 0) continue;
        const atom = unchecked(this.atoms[s]);
        if (!atom.has(c)) continue;
        next |= bit << 1;
        if (atom.quant == Q_STAR || atom.quant == Q_PLUS) next |= bit;
      }
      states = this.closure(next);
    }
    return (states & (<u64>1 << <u64>n)) != 0;
  }

  matchesString(s: string): bool {
    const bytes = String.UTF8.encode(s);
    return this.matches(changetype<usize>(bytes), <usize>bytes.byteLength);
  }

  private closure(states: u64): u64 {
    let s = states;
    let next = s | ((s & this.skippable) << 1);
    while (next != s) {
      s = next;
      next = s | ((s & this.skippable) << 1);
    }
    return s;
  }
}

let regexError: string = "";

export function lastRegexError(): string {
  return regexError;
}

/** Compiles a pattern; null (with lastRegexError()) when it uses something outside the subset. */
export function compileRegex(pattern: string): Regex | null {
  const bytes = Uint8Array.wrap(String.UTF8.encode(pattern));
  const n = bytes.length;
  const re = new Regex();
  let i = 0;
  if (n > 0 && bytes[0] == 0x5e) i = 1; // ^
  let end = n;
  if (end > i && bytes[end - 1] == 0x24 && !(end >= 2 && bytes[end - 2] == 0x5c)) end--; // $ (not \$)
  while (i < end) {
    const c = <u32>bytes[i];
    const atom = new Atom();
    if (c == 0x28 || c == 0x29 || c == 0x7c || c == 0x7b || c == 0x7d) {
      regexError = "unsupported regex syntax '" + String.fromCharCode(c) + "' at " + i.toString() + " (no groups, alternation or {n,m})";
      return null;
    }
    if (c == 0x2a || c == 0x2b || c == 0x3f) {
      regexError = "quantifier '" + String.fromCharCode(c) + "' at " + i.toString() + " follows nothing";
      return null;
    }
    if (c == 0x5e || c == 0x24) {
      regexError = "'" + String.fromCharCode(c) + "' is only supported at the start / end of the pattern";
      return null;
    }
    if (c == 0x2e) {
      atom.invert(); // any byte
      i++;
    } else if (c == 0x5c) {
      if (i + 1 >= end) { regexError = "trailing backslash"; return null; }
      const e = <u32>bytes[i + 1];
      if (!addClassEscape(atom, e)) {
        if ((e >= 0x41 && e <= 0x5a) || (e >= 0x61 && e <= 0x7a) || (e >= 0x30 && e <= 0x39)) {
          regexError = "unsupported escape \\" + String.fromCharCode(e);
          return null;
        }
        atom.add(e);
      }
      i += 2;
    } else if (c == 0x5b) {
      i++;
      let negate = false;
      if (i < end && bytes[i] == 0x5e) { negate = true; i++; }
      let first = true;
      let closed = false;
      while (i < end) {
        let a = <u32>bytes[i];
        if (a == 0x5d && !first) { closed = true; i++; break; }
        first = false;
        if (a == 0x5c) {
          if (i + 1 >= end) { regexError = "trailing backslash in class"; return null; }
          const e = <u32>bytes[i + 1];
          i += 2;
          if (addClassEscape(atom, e)) continue;
          a = e;
        } else {
          i++;
        }
        if (i + 1 < end && bytes[i] == 0x2d && bytes[i + 1] != 0x5d) {
          let b = <u32>bytes[i + 1];
          i += 2;
          if (b == 0x5c) {
            if (i >= end) { regexError = "trailing backslash in class"; return null; }
            b = <u32>bytes[i];
            i++;
          }
          if (b < a) { regexError = "bad range in character class"; return null; }
          atom.addRange(a, b);
        } else {
          atom.add(a);
        }
      }
      if (!closed) { regexError = "unterminated character class"; return null; }
      if (negate) atom.invert();
    } else {
      atom.add(c);
      i++;
    }
    if (i < end) {
      const q = bytes[i];
      if (q == 0x2a) { atom.quant = Q_STAR; i++; }
      else if (q == 0x2b) { atom.quant = Q_PLUS; i++; }
      else if (q == 0x3f) { atom.quant = Q_OPT; i++; }
      if (i < end && (bytes[i] == 0x2a || bytes[i] == 0x2b || bytes[i] == 0x3f)) {
        regexError = "repeated quantifier at " + i.toString() + " (lazy / possessive forms are not supported)";
        return null;
      }
    }
    if (re.atoms.length >= 63) { regexError = "pattern longer than 63 atoms"; return null; }
    if (atom.quant == Q_STAR || atom.quant == Q_OPT) re.skippable |= <u64>1 << <u64>re.atoms.length;
    re.atoms.push(atom);
  }
  return re;
}
