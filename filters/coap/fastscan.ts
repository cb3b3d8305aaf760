// The fast path's scan over a run of RFC 8323 messages (docs/coap.md, "Fast
// path"): passes messages that need no verdict of their own and stops at the
// first one the general path must see. Pure over bytes: no ABI calls, no
// managed objects — settings and tallies live in static memory blocks, so
// the per-message loop keeps its values in registers (AssemblyScript spills
// every managed reference to its shadow stack at each use, which cost more
// than the scan itself).
//
// Two loops. The hot loop takes the common message: whole in the window
// with a few bytes to spare (so no "is the next byte there" test per
// option), within the limits, and only with options that change no counter
// (no Observe, Block1/Block2 or unknown critical option). Any other message
// goes to scanTcpMessage (parser.ts), the reference for what the fast path
// may pass, which counts it or stops the run; then the hot loop goes on.
import { OPT_BLOCK1, OPT_BLOCK2, OPT_OBSERVE, SCAN_BLOCK1, SCAN_BLOCK2, SCAN_OBSERVE, SCAN_UNKNOWN_CRITICAL, optionBounds, scanCode, scanFlags, scanObserve, scanTcpMessage } from "./parser";

/** Settings of the next run (setRun), and what the last run passed. */
const RUN: usize = memory.data(32, 8);
const LIMIT: usize = 0;       // i64: largest message (bytes, whole frame)
const MAX_OPTIONS: usize = 8; // u32
const MAX_TOKEN: usize = 12;  // u32
const COUNT: usize = 16;      // u32: messages the last run passed
const TOUCHED_N: usize = 20;  // u32: codes in TOUCHED

/** Messages per code byte since the last flush (u32 each). */
const CODES: usize = memory.data(256 * 4, 4);
/** The code bytes whose CODES entry is non-zero, in the order first seen. */
const TOUCHED: usize = memory.data(256);

/** Tallies of the per-message flags since the last flush (u32 each): see the T_* offsets. */
const FLAGS: usize = memory.data(24, 4);
export const T_UNKNOWN_CRITICAL: usize = 0;
export const T_BLOCK1: usize = 4;
export const T_BLOCK2: usize = 8;
export const T_OBSERVE_REGISTER: usize = 12;
export const T_OBSERVE_DEREGISTER: usize = 16;
export const T_OBSERVE_NOTIFY: usize = 20;

/**
 * Per option number below TABLE_SIZE: the longest value the hot loop lets
 * pass (i32; -1: none, the reference scan looks). Elective options other
 * than Observe pass at any length (the parser ignores a bad one); a critical
 * option passes up to its maximum when it is known, has no minimum length
 * and is not Block1/Block2 (counted); Observe never (counted).
 */
const TABLE_SIZE: u32 = 64;
const PLAIN: usize = memory.data(<i32>TABLE_SIZE * 4, 4);
for (let n: u32 = 0; n < TABLE_SIZE; n++) {
  let t: i32 = 0x7fffffff;
  if ((n & 1) != 0) {
    const bounds = optionBounds(n);
    t = bounds == 0xffffffff || (bounds >> 16) != 0 || n == OPT_BLOCK1 || n == OPT_BLOCK2 ? -1 : <i32>(bounds & 0xffff);
  } else if (n == OPT_OBSERVE) t = -1;
  store<i32>(PLAIN + (<usize>n << 2), t);
}

/** Option header bytes the hot loop cannot take as they are: the payload marker, extended forms (13, 14), reserved nibble 15. */
const OPTION_BYTE: usize = memory.data(256);
for (let b: u32 = 0; b < 256; b++) store<u8>(OPTION_BYTE + b, (b >> 4) >= 13 || (b & 15) >= 13 ? 1 : 0);

/** Settings for the next runs: largest message (already the least of the limits), option and token limits. */
export function setRun(limit: i64, maxOptions: u32, maxToken: u32): void {
  store<i64>(RUN + LIMIT, limit);
  store<u32>(RUN + MAX_OPTIONS, maxOptions);
  store<u32>(RUN + MAX_TOKEN, maxToken);
}

/** Messages the last run passed. */
export function runCount(): u32 { return load<u32>(RUN + COUNT); }

/**
 * Scans from `p` (readable up to `end`) and returns where it stopped: at
 * the first message the general path must see, or at or past `end` (past it
 * when the last message's payload runs on into later bytes). Tallies what it
 * passed (read them with touchedCodes / codeTally / flagTally, then resetTallies).
 */
export function scanRun(p: usize, end: usize): usize {
  const limit = load<i64>(RUN + LIMIT);
  let count: u32 = 0;
  let cooldown: u32 = 0;
  let backoff: u32 = 4;
  for (;;) {
    // 8 bytes: the longest frame header before the token (1 + 4 + code) and
    // the option bytes the hot loop may read past a message's last one
    while (p + 8 <= end) {
      const frameEnd = hotMessage(p, end, limit);
      if (frameEnd == 0) break;
      count++;
      // A run of look-alikes (periodic telemetry): messages whose option
      // headers (not their values, token or code) sit at the same places
      // with the same bytes as this one's pass alike, so the next ones are
      // checked with two vector compares each instead of an option walk (a
      // chain of dependent loads: each header's position comes from the one
      // before). Their payloads may differ in length: the length bytes are
      // read, as a frame walk reads them. Any difference ends the run.
      const start = p;
      const b0 = <usize>load<u8>(p);
      const codeAt = codeOffset(p);
      const optionsAt = codeAt + 1 + (b0 & 15);
      // only when the next message starts alike (length form, token length,
      // first option header): recording a shape costs more than a message's walk
      const alike = frameEnd + optionsAt < end && <usize>load<u8>(frameEnd) == b0 && load<u8>(frameEnd + optionsAt) == load<u8>(p + optionsAt);
      // the next one's length bytes equal too: the run expects that length
      // (the next start is then known before the next bytes are read, not
      // after, and the loads of several messages overlap) and ends where it changes
      const lengthMask: u32 = codeAt == 1 ? 0xff : codeAt == 2 ? 0xffff : 0xffffff;
      const sameLength = alike && ((load<u32>(p) ^ load<u32>(frameEnd)) & lengthMask) == 0;
      const markerEnd = alike && cooldown == 0 ? recordShape(p, frameEnd, sameLength) : -1;
      p = frameEnd;
      if (markerEnd < 0) {
        if (cooldown > 0) cooldown--;
        continue;
      }
      const m0 = v128.load(SHAPE);
      const m1 = v128.load(SHAPE, 16);
      const e0 = v128.load(SHAPE, 32);
      const e1 = v128.load(SHAPE, 48);
      const firstCode = <u32>load<u8>(start + codeAt);
      // every message's length: the first one's when the shape holds the
      // length bytes, else read from them
      const ext = codeAt - 1; // Len 13: one length byte, 14: two (15 never passes the hot loop)
      const fixed: usize = sameLength || markerEnd == 0 ? frameEnd - start : 0;
      const lengthBase: usize = 2 + ext + (b0 & 15) + (ext == 1 ? 13 : 269);
      let same: u32 = 0;
      while (p + 32 <= end) {
        const d = v128.or(v128.and(v128.xor(v128.load(p), e0), m0), v128.and(v128.xor(v128.load(p, 16), e1), m1));
        if (v128.any_true(d)) break;
        let total = fixed;
        if (fixed == 0) {
          total = lengthBase + (ext == 1 ? <usize>load<u8>(p, 1) : (<usize>load<u8>(p, 1) << 8) | <usize>load<u8>(p, 2));
          // the payload marker inside the frame with a payload after it, within the limit
          if (total <= <usize>markerEnd || <i64>total > limit) break;
        }
        if (p + total + 8 > end) break; // whole, with 8 bytes to spare
        const code = <u32>load<u8>(p + codeAt);
        if (code != firstCode) {
          if (code >= 0xe0) break; // signaling
          tallyCode(<u8>code);
          count++;
        } else same++;
        p += total;
      }
      tallyCodeN(<u8>firstCode, same);
      count += same;
      // a shape that took no message: the next few messages record none,
      // twice as many after each such shape in a row (messages that start
      // alike and differ later would pay a shape each)
      if (p == frameEnd) {
        backoff = min<u32>(backoff << 1, 256);
        cooldown = backoff;
      } else backoff = 4;
    }
    if (p >= end) break;
    const total = scanTcpMessage(p, end - p, limit, load<u32>(RUN + MAX_OPTIONS), load<u32>(RUN + MAX_TOKEN));
    if (total < 0) break;
    const flags = scanFlags;
    if (flags != 0) tallyFlags(scanCode, flags, scanObserve);
    tallyCode(scanCode);
    p += <usize>total;
    count++;
  }
  store<u32>(RUN + COUNT, count);
  return p;
}

/**
 * One message in the hot loop: returns the pointer past it, or 0 when the
 * reference scan must look at it (see the top of the file).
 */
// @ts-ignore: decorator
@inline function hotMessage(p: usize, end: usize, limit: i64): usize {
  const b0 = <u32>load<u8>(p);
  const nibble = b0 >> 4;
  const tkl = b0 & 15;
  if (tkl > load<u32>(RUN + MAX_TOKEN)) return 0;
  let len: u32 = nibble;
  let ext: u32 = 0;
  if (nibble >= 13) {
    if (nibble == 13) { len = <u32>load<u8>(p, 1) + 13; ext = 1; }
    else if (nibble == 14) { len = ((<u32>load<u8>(p, 1) << 8) | <u32>load<u8>(p, 2)) + 269; ext = 2; }
    else return 0; // 4-byte lengths: 65805 bytes and more, past every fast-path limit
  }
  const total = len + 2 + ext + tkl;
  if (<i64>total > limit) return 0;
  const frameEnd = p + <usize>total;
  if (frameEnd + 8 > end) return 0;
  return hotBody(p, p + 2 + <usize>ext + <usize>tkl, frameEnd) ? frameEnd : 0;
}

/**
 * The part of a message after its length (its code, then the options from
 * `at`), whole in memory up to `frameEnd` and 8 bytes past: true when the
 * hot loop passes it (then it is tallied). False for signaling, malformed
 * options, an option the table does not wave through, or an options region
 * longer than max_options bytes (each option takes at least one byte, so a
 * shorter region cannot hold too many: no count per option). No calls
 * inside: V8 spills every value live across a call, and the option loop
 * keeps `at`, `frameEnd` and `number` in registers.
 */
// @ts-ignore: decorator
@inline function hotBody(p: usize, at: usize, frameEnd: usize): bool {
  const code = <u32>load<u8>(at - 1 - (<usize>load<u8>(p) & 15));
  if (code >= 0xe0) return false; // signaling (7.xx)
  const countedUpTo = at + <usize>load<u32>(RUN + MAX_OPTIONS);
  let number: u32 = 0;
  while (at < frameEnd) {
    const b = <u32>load<u8>(at);
    at++;
    let delta = b >> 4;
    let olen = b & 15;
    if (load<u8>(OPTION_BYTE + b) != 0) {
      // the payload marker, an extended delta or length, or a reserved nibble 15
      if (b == 0xff) {
        if (at >= frameEnd) return false; // a payload marker with no payload
        break;
      }
      if (delta == 15 || olen == 15) return false;
      if (delta == 13) { delta = <u32>load<u8>(at) + 13; at += 1; }
      else if (delta == 14) { delta = ((<u32>load<u8>(at) << 8) | <u32>load<u8>(at, 1)) + 269; at += 2; }
      if (olen == 13) { olen = <u32>load<u8>(at) + 13; at += 1; }
      else if (olen == 14) { olen = ((<u32>load<u8>(at) << 8) | <u32>load<u8>(at, 1)) + 269; at += 2; }
    }
    at += <usize>olen;
    if (at > frameEnd) return false; // the option runs past the message
    number += delta;
    if (number >= TABLE_SIZE) return false;
    if (<i32>olen > load<i32>(PLAIN + (<usize>number << 2))) return false;
  }
  if (at > countedUpTo) return false; // possibly more than max_options options
  tallyCode(<u8>code);
  return true;
}

/** Offset of the code byte in the message at `p`. */
// @ts-ignore: decorator
@inline function codeOffset(p: usize): usize {
  const b0 = <u32>load<u8>(p);
  const n = b0 >> 4;
  return 1 + (n == 13 ? 1 : n == 14 ? 2 : n == 15 ? 4 : 0);
}

/**
 * The shape of the message at `p` (which the hot loop passed) for the
 * look-alike run: SHAPE gets a mask over the bytes an option walk reads
 * (the first byte, each option's header byte and extension bytes, the
 * payload marker: everything that decides where the next header is and
 * what the walk concludes), and those bytes. The length bytes after the
 * first byte are in it `withLength`, or when there is no payload marker (the
 * options then end with the frame, so the length must not change). Returns
 * the offset past the payload marker (0: none), or -1 when the shape
 * reaches past the first 32 bytes.
 */
function recordShape(p: usize, frameEnd: usize, withLength: bool): i32 {
  // four vector stores: memory.fill is a call out of the VM in V8
  const zero = i64x2.splat(0);
  v128.store(SHAPE, zero);
  v128.store(SHAPE, zero, 16);
  v128.store(SHAPE, zero, 32);
  v128.store(SHAPE, zero, 48);
  const b0 = <u32>load<u8>(p);
  const codeAt = codeOffset(p);
  mark(p, 0);
  if (withLength) for (let i: usize = 1; i < codeAt; i++) mark(p, i);
  let at = codeAt + 1 + <usize>(b0 & 15);
  const total = frameEnd - p;
  while (at < total) {
    if (at >= 32) return -1;
    const b = <u32>load<u8>(p + at);
    mark(p, at);
    at++;
    if (b == 0xff) return <i32>at;
    const d = b >> 4;
    const l = b & 15;
    const ext: usize = (d == 13 ? 1 : d == 14 ? 2 : 0) + (l == 13 ? 1 : l == 14 ? 2 : 0);
    if (at + ext > 32) return -1;
    let olen = <usize>l;
    const lenAt = at + (d == 13 ? 1 : d == 14 ? 2 : 0);
    if (l == 13) olen = <usize>load<u8>(p + lenAt) + 13;
    else if (l == 14) olen = ((<usize>load<u8>(p + lenAt) << 8) | <usize>load<u8>(p + lenAt + 1)) + 269;
    for (let i: usize = 0; i < ext; i++) mark(p, at + i);
    at += ext + olen;
  }
  for (let i: usize = 1; i < codeAt; i++) mark(p, i); // no payload marker: the length bytes too
  return 0;
}

function mark(p: usize, i: usize): void {
  store<u8>(SHAPE + i, 0xff);
  store<u8>(SHAPE + 32 + i, load<u8>(p + i));
}

/** Mask (32 bytes) and bytes (32) of the look-alike run's shape. */
const SHAPE: usize = memory.data(64, 16);

// @ts-ignore: decorator
@inline function tallyCodeN(code: u8, n: u32): void {
  if (n == 0) return;
  const at = CODES + (<usize>code << 2);
  const v = load<u32>(at);
  if (v == 0) {
    const touched = load<u32>(RUN + TOUCHED_N);
    store<u8>(TOUCHED + touched, code);
    store<u32>(RUN + TOUCHED_N, touched + 1);
  }
  store<u32>(at, v + n);
}

// @ts-ignore: decorator
@inline function tallyCode(code: u8): void {
  const at = CODES + (<usize>code << 2);
  const n = load<u32>(at);
  if (n == 0) {
    const touched = load<u32>(RUN + TOUCHED_N);
    store<u8>(TOUCHED + touched, code);
    store<u32>(RUN + TOUCHED_N, touched + 1);
  }
  store<u32>(at, n + 1);
}

function bump(offset: usize): void { store<u32>(FLAGS + offset, load<u32>(FLAGS + offset) + 1); }

/** The counters a message's flags add to (the general path's rules: blocks and unknown options once per message, Observe by code). */
function tallyFlags(code: u8, flags: u32, observe: u32): void {
  if ((flags & SCAN_UNKNOWN_CRITICAL) != 0) bump(T_UNKNOWN_CRITICAL);
  if ((flags & SCAN_BLOCK1) != 0) bump(T_BLOCK1);
  if ((flags & SCAN_BLOCK2) != 0) bump(T_BLOCK2);
  if ((flags & SCAN_OBSERVE) == 0 || code == 0) return;
  if (code < 32) {
    if (observe == 0) bump(T_OBSERVE_REGISTER);
    else if (observe == 1) bump(T_OBSERVE_DEREGISTER);
    return;
  }
  const cls = code >> 5;
  if (cls >= 2 && cls <= 5) bump(T_OBSERVE_NOTIFY);
}

/** Codes the last runs tallied (touchedCode(i) for i below it). */
export function touchedCodes(): u32 { return load<u32>(RUN + TOUCHED_N); }
export function touchedCode(i: u32): u8 { return load<u8>(TOUCHED + i); }
/** Messages tallied for `code`. */
export function codeTally(code: u8): u32 { return load<u32>(CODES + (<usize>code << 2)); }
/** A flag tally (T_* offset). */
export function flagTally(offset: usize): u32 { return load<u32>(FLAGS + offset); }

export function resetTallies(): void {
  const n = load<u32>(RUN + TOUCHED_N);
  for (let i: u32 = 0; i < n; i++) store<u32>(CODES + (<usize>load<u8>(TOUCHED + i) << 2), 0);
  store<u32>(RUN + TOUCHED_N, 0);
  memory.fill(FLAGS, 0, 24);
}
