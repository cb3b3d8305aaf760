// Bounds-checked reading of Kafka's wire types over one frame in VM memory.
// Never traps: a read past `end` (or a lying length / count) clears `ok`,
// and every later read returns 0 and stays put, so generated walkers just
// check `r.ok` in their loops and once at the end. Positions are offsets
// from `base` (the frame's first byte), so events can be turned into edits.

export class Reader {
  base: usize = 0;
  pos: i32 = 0;
  end: i32 = 0;
  ok: bool = true;
  /** The last str()/bytes(): where its data starts, its length (-1 = null), where its length prefix starts. */
  at: i32 = 0;
  len: i32 = 0;
  prefixAt: i32 = 0;
  /** Where the last uvarint() started (tagged field sizes are rewritten there). */
  sizeAt: i32 = 0;

  reset(base: usize, pos: i32, end: i32): void {
    this.base = base;
    this.pos = pos;
    this.end = end;
    this.ok = true;
  }

  fail(): void {
    this.ok = false;
    this.pos = this.end;
  }

  @inline private has(n: i32): bool {
    if (this.ok && n >= 0 && this.end - this.pos >= n) return true;
    this.fail();
    return false;
  }

  skip(n: i32): void {
    if (this.has(n)) this.pos += n;
  }

  /** `n` elements of `width` bytes each. */
  skipEach(n: i32, width: i32): void {
    if (!this.ok) return;
    if (n > (this.end - this.pos) / width) { this.fail(); return; }
    this.pos += n * width;
  }

  i8(): i8 {
    if (!this.has(1)) return 0;
    const v = load<i8>(this.base + <usize>this.pos);
    this.pos += 1;
    return v;
  }

  i16(): i16 {
    if (!this.has(2)) return 0;
    const v = <i16>bswap<u16>(load<u16>(this.base + <usize>this.pos));
    this.pos += 2;
    return v;
  }

  i32(): i32 {
    if (!this.has(4)) return 0;
    const v = <i32>bswap<u32>(load<u32>(this.base + <usize>this.pos));
    this.pos += 4;
    return v;
  }

  /** Unsigned LEB128 (at most 5 bytes, as Kafka writes 32-bit varints). */
  uvarint(): u32 {
    this.sizeAt = this.pos;
    let v: u32 = 0;
    for (let shift: u32 = 0; shift < 35; shift += 7) {
      if (!this.has(1)) return 0;
      const b = <u32>load<u8>(this.base + <usize>this.pos);
      this.pos += 1;
      v |= (b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    this.fail();
    return 0;
  }

  /** Signed zig-zag varint (record headers). */
  varint(): i32 {
    const u = this.uvarint();
    return <i32>(u >>> 1) ^ -(<i32>(u & 1));
  }

  /** A string: int16 length (-1 null) or, in flexible versions, uvarint length+1 (0 null). */
  str(flexible: bool): void {
    this.prefixAt = this.pos;
    let n: i32;
    if (flexible) n = <i32>this.uvarint() - 1;
    else n = this.i16();
    this.span(n);
  }

  /** Bytes / records: int32 length (-1 null) or, in flexible versions, uvarint length+1 (0 null). */
  bytes(flexible: bool): void {
    this.prefixAt = this.pos;
    let n: i32;
    if (flexible) n = <i32>this.uvarint() - 1;
    else n = this.i32();
    this.span(n);
  }

  private span(n: i32): void {
    this.at = this.pos;
    if (!this.ok) { this.len = 0; return; }
    if (n < -1) { this.fail(); this.len = 0; return; }
    this.len = n;
    if (n > 0) this.skip(n);
    if (!this.ok) this.len = 0; // never a span past the frame
  }

  /** An array's element count: int32 (-1 null) or uvarint count+1 (0 null); null reads as 0. A count the bytes left cannot hold fails. */
  count(flexible: bool): i32 {
    let n: i32 = flexible ? <i32>this.uvarint() - 1 : this.i32();
    if (!this.ok) return 0;
    if (n < -1 || n > this.end - this.pos) { this.fail(); return 0; }
    return n < 0 ? 0 : n;
  }

  /** A flexible struct's tagged fields, none of which the walker needs. */
  skipTags(): void {
    const n = this.uvarint();
    for (let i: u32 = 0; i < n && this.ok; i++) {
      this.uvarint();
      const size = this.uvarint();
      if (size > <u32>0x7fffffff) { this.fail(); return; }
      this.skip(<i32>size);
    }
  }
}

/**
 * What a walker reports: event (EV_* in gen/walkers.ts), where (offset in
 * the frame), len (string/bytes length, -1 null; the width of an integer),
 * value (an integer's value; a string's length-prefix offset; an element's index).
 */
export abstract class Sink {
  /** The events the walk reports (bit EV_x); the others cost no call. */
  mask: u64 = <u64>-1;
  abstract on(event: i32, pos: i32, len: i32, value: i64): void;
}
