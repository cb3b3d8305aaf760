// Walking a message in windows: the interpreter of the generated stream
// programs (gen/streams.ts). A walk runs over the bytes of one window, stops
// at each records field (the filter steps over records batch by batch or
// skips them, never holding them) and resumes after it in a later window.
// Pure; positions are offsets from the window's first byte.
import { OP_ARRAY, OP_BYTES, OP_END, OP_FIXED, OP_INT, OP_NEXT, OP_NSTRUCT, OP_RECORDS, OP_STR, OP_TAGS, OP_UUID, PROGRAMS } from "./gen/streams";

/** Where a run stopped. */
export const RUN_NEED_MORE: i32 = 0;
export const RUN_RECORDS: i32 = 1;
export const RUN_END: i32 = 2;
export const RUN_BAD: i32 = 3;

/** Marks an array element's end event (the begin event is the plain SE_* value). */
export const SE_END: i32 = 0x100;

/** What a run reports: event (SE_*), position in the window, length (strings; -1 null), value (integers, element index). */
export abstract class StreamSink {
  abstract on(event: i32, pos: i32, len: i32, value: i64): void;
}

const MAX_DEPTH: i32 = 8;

export class StreamWalk {
  pc: i32 = 0;
  depth: i32 = 0;
  /** Per open array: where its element body starts, elements left after the current one, the current index, its event. */
  private body: StaticArray<i32> = new StaticArray<i32>(MAX_DEPTH);
  private left: StaticArray<i32> = new StaticArray<i32>(MAX_DEPTH);
  private index: StaticArray<i32> = new StaticArray<i32>(MAX_DEPTH);
  private event: StaticArray<i32> = new StaticArray<i32>(MAX_DEPTH);
  /** After a run: bytes consumed; at RUN_RECORDS the records' length (their data starts at `pos`). */
  pos: i32 = 0;
  records: i32 = 0;

  start(program: i32): void {
    this.pc = program;
    this.depth = 0;
  }

  copyFrom(o: StreamWalk): void {
    this.pc = o.pc;
    this.depth = o.depth;
    for (let i = 0; i < o.depth; i++) {
      unchecked(this.body[i] = o.body[i]);
      unchecked(this.left[i] = o.left[i]);
      unchecked(this.index[i] = o.index[i]);
      unchecked(this.event[i] = o.event[i]);
    }
  }

  /**
   * Runs the program over [from, end) of the window at p; `frameEnd` is
   * where the message ends (relative to p, may lie past `end`): a field
   * that would cross it is bad, one that crosses `end` short of it needs
   * more bytes. The walk's state advances (run a copy to look ahead).
   */
  run(p: usize, from: i32, end: i32, frameEnd: i64, sink: StreamSink | null): i32 {
    let pos = from;
    let pc = this.pc;
    // `end` never lies past the message
    if (<i64>end > frameEnd) end = <i32>frameEnd;
    const atFrameEnd = <i64>end >= frameEnd;
    while (true) {
      const op = unchecked(PROGRAMS[pc]);
      if (op == OP_FIXED) {
        const n = unchecked(PROGRAMS[pc + 1]);
        if (end - pos < n) return this.stop(pc, pos, atFrameEnd);
        pos += n;
        pc += 2;
      } else if (op == OP_INT) {
        const w = unchecked(PROGRAMS[pc + 1]);
        if (end - pos < w) return this.stop(pc, pos, atFrameEnd);
        const q = p + <usize>pos;
        const v: i64 = w == 1 ? <i64>load<i8>(q) : w == 2 ? <i64><i16>bswap<u16>(load<u16>(q)) : <i64><i32>bswap<u32>(load<u32>(q));
        if (sink != null) sink.on(unchecked(PROGRAMS[pc + 2]), pos, w, v);
        pos += w;
        pc += 3;
      } else if (op == OP_UUID) {
        if (end - pos < 16) return this.stop(pc, pos, atFrameEnd);
        if (sink != null) sink.on(unchecked(PROGRAMS[pc + 1]), pos, 16, 0);
        pos += 16;
        pc += 2;
      } else if (op == OP_STR || op == OP_BYTES || op == OP_RECORDS) {
        const flex = unchecked(PROGRAMS[pc + 1]) != 0;
        let n: i64;
        let at: i32;
        if (flex) {
          const u = readUvarint(p, pos, end);
          if (u < 0) return this.stop(pc, pos, atFrameEnd || u == VARINT_BAD);
          at = pos + varintWidth;
          n = u - 1;
        } else {
          const w = op == OP_STR ? 2 : 4;
          if (end - pos < w) return this.stop(pc, pos, atFrameEnd);
          n = w == 2 ? <i64><i16>bswap<u16>(load<u16>(p + <usize>pos)) : <i64><i32>bswap<u32>(load<u32>(p + <usize>pos));
          at = pos + w;
        }
        if (n < -1 || <i64>at + n > frameEnd) return this.bad(pc, pos);
        if (op == OP_RECORDS) {
          pc += 2;
          pos = at;
          if (n > 0) {
            this.pc = pc;
            this.pos = pos;
            this.records = <i32>n;
            return RUN_RECORDS;
          }
          continue;
        }
        if (<i64>end - <i64>at < n) return this.stop(pc, pos, atFrameEnd);
        if (op == OP_STR) {
          const ev = unchecked(PROGRAMS[pc + 2]);
          if (sink != null && ev != 0) sink.on(ev, at, <i32>n, 0);
          pc += 3;
        } else pc += 2;
        pos = at + max(<i32>n, 0);
      } else if (op == OP_ARRAY || op == OP_NSTRUCT) {
        let n: i64;
        let at: i32;
        let hdr: i32;
        if (op == OP_NSTRUCT) {
          if (end - pos < 1) return this.stop(pc, pos, atFrameEnd);
          n = load<i8>(p + <usize>pos) < 0 ? 0 : 1;
          at = pos + 1;
          hdr = 2;
        } else if (unchecked(PROGRAMS[pc + 1]) != 0) {
          const u = readUvarint(p, pos, end);
          if (u < 0) return this.stop(pc, pos, atFrameEnd || u == VARINT_BAD);
          n = u - 1;
          at = pos + varintWidth;
          hdr = 4;
        } else {
          if (end - pos < 4) return this.stop(pc, pos, atFrameEnd);
          n = <i64><i32>bswap<u32>(load<u32>(p + <usize>pos));
          at = pos + 4;
          hdr = 4;
        }
        // every element takes at least a byte: a count past the message is a lie
        if (n < -1 || <i64>at + n > frameEnd) return this.bad(pc, pos);
        const bodyLen = unchecked(PROGRAMS[pc + hdr - 1]);
        pos = at;
        if (n <= 0) { pc += hdr + bodyLen; continue; }
        const d = this.depth;
        if (d >= MAX_DEPTH) return this.bad(pc, pos);
        const ev = op == OP_ARRAY ? unchecked(PROGRAMS[pc + 2]) : 0;
        unchecked(this.body[d] = pc + hdr);
        unchecked(this.left[d] = <i32>n - 1);
        unchecked(this.index[d] = 0);
        unchecked(this.event[d] = ev);
        this.depth = d + 1;
        if (sink != null && ev != 0) sink.on(ev, pos, 0, 0);
        pc += hdr;
      } else if (op == OP_NEXT) {
        const d = this.depth - 1;
        const ev = unchecked(this.event[d]);
        if (sink != null && ev != 0) sink.on(ev | SE_END, pos, 0, <i64>unchecked(this.index[d]));
        const left = unchecked(this.left[d]);
        if (left > 0) {
          unchecked(this.left[d] = left - 1);
          const i = unchecked(this.index[d]) + 1;
          unchecked(this.index[d] = i);
          if (sink != null && ev != 0) sink.on(ev, pos, 0, <i64>i);
          pc = unchecked(this.body[d]);
        } else {
          this.depth = d;
          pc += 1;
        }
      } else if (op == OP_TAGS) {
        // tagged fields: a count, then (tag, size, data) each; none of them is walked
        const t0 = pos;
        const n = readUvarint(p, pos, end);
        if (n < 0) return this.stop(pc, t0, atFrameEnd || n == VARINT_BAD);
        pos += varintWidth;
        let fail: i64 = 0;
        for (let i: i64 = 0; i < n; i++) {
          const tag = readUvarint(p, pos, end);
          if (tag < 0) { fail = tag; break; }
          pos += varintWidth;
          const size = readUvarint(p, pos, end);
          if (size < 0) { fail = size; break; }
          pos += varintWidth;
          if (<i64>pos + size > frameEnd) return this.bad(pc, t0);
          if (<i64>end - <i64>pos < size) { fail = VARINT_SHORT; break; }
          pos += <i32>size;
        }
        if (fail < 0) return this.stop(pc, t0, atFrameEnd || fail == VARINT_BAD);
        pc += 1;
      } else {
        // OP_END
        this.pc = pc;
        this.pos = pos;
        return RUN_END;
      }
    }
  }

  /** The window ended inside the field at pc: more bytes, or (at the message's end) a bad message. */
  private stop(pc: i32, pos: i32, bad: bool): i32 {
    this.pc = pc;
    this.pos = pos;
    return bad ? RUN_BAD : RUN_NEED_MORE;
  }

  private bad(pc: i32, pos: i32): i32 {
    this.pc = pc;
    this.pos = pos;
    return RUN_BAD;
  }
}

const VARINT_SHORT: i64 = -1;
const VARINT_BAD: i64 = -2;
/** Bytes the last readUvarint took. */
let varintWidth: i32 = 0;

/** An unsigned LEB128 of up to 5 bytes at [pos, end): its value, VARINT_SHORT (runs past end) or VARINT_BAD. */
function readUvarint(p: usize, pos: i32, end: i32): i64 {
  let v: u64 = 0;
  for (let i = 0; i < 5; i++) {
    if (pos + i >= end) return VARINT_SHORT;
    const b = <u64>load<u8>(p + <usize>(pos + i));
    v |= (b & 0x7f) << (<u64>(7 * i));
    if ((b & 0x80) == 0) {
      varintWidth = i + 1;
      return v > 0xffffffff ? VARINT_BAD : <i64>v;
    }
  }
  return VARINT_BAD;
}

/** Whether a program was generated for this message. */
export { streamProgram } from "./gen/streams";
