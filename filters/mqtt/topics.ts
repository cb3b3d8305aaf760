// MQTT topic names and filters on raw bytes: wildcard matching for ACLs,
// level counting and prefix tests. Pure, no allocation.
//
// ACL patterns are topic filters. For a PUBLISH the topic name must match
// the pattern. For a SUBSCRIBE, an allow rule applies when the pattern
// covers the requested filter (every topic the filter can match, the pattern
// matches too), a deny rule when the two overlap (some topic matches both):
// so `deny admin/#` refuses a subscription to `#`. Wildcards in the first
// level never match topics starting with `$` ([MQTT-4.7.2-1]).

const SLASH: u8 = 0x2f;
const PLUS: u8 = 0x2b;
const HASH: u8 = 0x23;
const DOLLAR: u8 = 0x24;

/** End (exclusive) of the level starting at `pos`. */
@inline function levelEnd(ptr: usize, len: usize, pos: usize): usize {
  let i = pos;
  while (i < len && load<u8>(ptr + i) != SLASH) i++;
  return i;
}

@inline function isWild(ptr: usize, start: usize, end: usize, c: u8): bool {
  return end - start == 1 && load<u8>(ptr + start) == c;
}

@inline function sameLevel(a: usize, as: usize, ae: usize, b: usize, bs: usize, be: usize): bool {
  const n = ae - as;
  return n == be - bs && memory.compare(a + as, b + bs, n) == 0;
}

/** The rest of `ptr` from `pos` is exactly "#". */
@inline function restIsHash(ptr: usize, len: usize, pos: usize, more: bool): bool {
  return more && len - pos == 1 && load<u8>(ptr + pos) == HASH;
}

/** Whether topic name T matches filter P (one pass over both, byte by byte). */
export function topicMatches(p: usize, plen: usize, t: usize, tlen: usize): bool {
  const dollar = tlen > 0 && load<u8>(t) == DOLLAR;
  let i: usize = 0, j: usize = 0;
  while (i < plen) {
    const c = load<u8>(p + i);
    if (c == HASH) return !(i == 0 && dollar);          // "#" matches the rest (also nothing: "a/#" ~ "a")
    if (c == PLUS) {
      if (i == 0 && dollar) return false;
      while (j < tlen && load<u8>(t + j) != SLASH) j++;  // one whole level
      i++;
      continue;
    }
    if (j >= tlen) {
      // topic exhausted: only "/#" may remain
      return c == SLASH && i + 2 == plen && load<u8>(p + i + 1) == HASH;
    }
    if (c != load<u8>(t + j)) return false;
    i++;
    j++;
  }
  return j == tlen;
}

@inline function startsWithDollar(ptr: usize, start: usize, end: usize): bool {
  return end > start && load<u8>(ptr + start) == DOLLAR;
}

/** Whether filter P covers filter F (every topic F matches, P matches). */
export function filterCovers(p: usize, plen: usize, f: usize, flen: usize): bool {
  let pi: usize = 0, fi: usize = 0;
  let pMore = true, fMore = true;
  let first = true;
  while (pMore && fMore) {
    const pe = levelEnd(p, plen, pi);
    const fe = levelEnd(f, flen, fi);
    const pHash = isWild(p, pi, pe, HASH);
    const pPlus = isWild(p, pi, pe, PLUS);
    if (first && (pHash || pPlus) && startsWithDollar(f, fi, fe)) return false;
    if (pHash) return true;
    if (isWild(f, fi, fe, HASH)) return false;
    if (isWild(f, fi, fe, PLUS)) {
      if (!pPlus) return false;
    } else if (!pPlus && !sameLevel(p, pi, pe, f, fi, fe)) {
      return false;
    }
    first = false;
    pMore = pe < plen; pi = pe + 1;
    fMore = fe < flen; fi = fe + 1;
  }
  if (!pMore && !fMore) return true;
  return !fMore && restIsHash(p, plen, pi, pMore);
}

/** Whether some topic matches both filters. */
export function filtersIntersect(a: usize, alen: usize, b: usize, blen: usize): bool {
  let ai: usize = 0, bi: usize = 0;
  let aMore = true, bMore = true;
  let first = true;
  while (aMore && bMore) {
    const ae = levelEnd(a, alen, ai);
    const be = levelEnd(b, blen, bi);
    const aHash = isWild(a, ai, ae, HASH), aPlus = isWild(a, ai, ae, PLUS);
    const bHash = isWild(b, bi, be, HASH), bPlus = isWild(b, bi, be, PLUS);
    const aWild = aHash || aPlus, bWild = bHash || bPlus;
    if (first && aWild && !bWild && startsWithDollar(b, bi, be)) return false;
    if (first && bWild && !aWild && startsWithDollar(a, ai, ae)) return false;
    if (aHash || bHash) return true;
    if (!aWild && !bWild && !sameLevel(a, ai, ae, b, bi, be)) return false;
    first = false;
    aMore = ae < alen; ai = ae + 1;
    bMore = be < blen; bi = be + 1;
  }
  if (!aMore && !bMore) return true;
  if (!aMore) return restIsHash(b, blen, bi, bMore);
  return restIsHash(a, alen, ai, aMore);
}

/** Number of levels ("a/b" has 2, "" has 1). */
export function levelCount(ptr: usize, len: usize): u32 {
  if (len > 16) return slashesIn(ptr, len) + 1;
  let n: u32 = 1;
  for (let i: usize = 0; i < len; i++) if (load<u8>(ptr + i) == SLASH) n++;
  return n;
}

/** How many '/' are in a topic of more than 16 bytes, sixteen bytes per step. */
export function slashesIn(ptr: usize, len: usize): u32 {
  const slash = i8x16.splat(SLASH);
  const last = ptr + len - 16;
  let n: u32 = 0;
  let p = ptr;
  for (; p < last; p += 16) n += <u32>popcnt(i8x16.bitmask(i8x16.eq(v128.load(p), slash)));
  // the tail overlaps the chunks before it: count only its lanes from p on
  const fresh = <u32>(0xffff << <u32>(p - last)) & 0xffff;
  return n + <u32>popcnt(<u32>i8x16.bitmask(i8x16.eq(v128.load(last), slash)) & fresh);
}

/**
 * The publish ACL's verdict on a topic: the first rule that matches decides,
 * else `defaultAllow`. `rules` is flat, `words` usize long: pattern pointer,
 * pattern length, allow (non-zero) per rule.
 */
export function aclAllows(rules: usize, words: usize, defaultAllow: bool, topic: usize, topicLen: usize): bool {
  for (let i: usize = 0; i < words; i += 3) {
    const at = rules + i * sizeof<usize>();
    if (topicMatches(load<usize>(at), load<usize>(at, sizeof<usize>()), topic, topicLen)) return load<usize>(at, 2 * sizeof<usize>()) != 0;
  }
  return defaultAllow;
}

/** Whether bytes [ptr, ptr+len) start with `prefix`. */
export function hasPrefix(ptr: usize, len: usize, prefix: Uint8Array): bool {
  const n = <usize>prefix.length;
  return n <= len && memory.compare(ptr, prefix.dataStart, n) == 0;
}

/**
 * The filter a shared subscription applies ("$share/g/a/b" -> "a/b"):
 * returns the offset of the filter part, 0 when not shared.
 */
export function sharedFilterOffset(ptr: usize, len: usize): usize {
  if (len < 8 || load<u32>(ptr) != 0x61687324 || load<u16>(ptr + 4) != 0x6572 || load<u8>(ptr + 6) != SLASH) return 0;
  for (let i: usize = 7; i < len; i++) if (load<u8>(ptr + i) == SLASH) return i + 1;
  return 0;
}

/** Whether [a, a+n) equals [b, b+n); eight bytes per step. */
export function bytesEqual(a: usize, b: usize, n: usize): bool {
  let i: usize = 0;
  for (; i + 8 <= n; i += 8) if (load<u64>(a + i) != load<u64>(b + i)) return false;
  for (; i < n; i++) if (load<u8>(a + i) != load<u8>(b + i)) return false;
  return true;
}
