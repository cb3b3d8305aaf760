// Where a direction's bytes come from (windows of the host buffer) and how a
// rewritten buffer is built. Pure except HostSource, which reads the host.
import { getBufferBytes, readBufferInto, readBufferScratch } from "../host";
import { BufferType } from "../types";

/**
 * The rewritten buffer, built lazily: while nothing changes it only tracks
 * how far the input was kept; the first drop or insert copies what was kept
 * so far, and from then on everything is appended. The copy is built in one
 * block shared by every connection (the VM runs one callback at a time) and
 * handed to the host from there, so a rewrite allocates nothing once the
 * block has grown to the buffer sizes seen.
 */
export class Output {
  /** The whole input, once loaded (needed as soon as anything changes). */
  base: usize = 0;
  len: usize = 0;
  /** Where the host's buffer starts in the input (after bytes that already went on). */
  origin: usize = 0;
  pos: usize = 0;
  /**
   * Input bytes at its start that the host's buffer lacks (a split frame's
   * start, cut earlier): when nothing is rewritten they go back in front of
   * the host's buffer (a prepend); a rewrite includes them like any input.
   */
  prefix: usize = 0;
  modified: bool = false;
  used: usize = 0;

  begin(len: usize): void {
    this.base = 0;
    this.len = len;
    this.origin = 0;
    this.pos = 0;
    this.prefix = 0;
    this.used = 0;
    this.modified = false;
  }

  /** Starts the rewritten copy (base must be set). */
  start(): void {
    if (this.modified) return;
    this.modified = true;
    this.used = 0;
    this.append(this.base + this.origin, this.pos - this.origin);
  }

  private append(ptr: usize, n: usize): void {
    if (n == 0) return;
    let cap = <usize>rewriteBlock.byteLength;
    if (this.used + n > cap) {
      while (this.used + n > cap) cap = cap * 2 + 4096;
      const next = new ArrayBuffer(<i32>cap);
      memory.copy(changetype<usize>(next), changetype<usize>(rewriteBlock), this.used);
      rewriteBlock = next;
    }
    memory.copy(changetype<usize>(rewriteBlock) + this.used, ptr, n);
    this.used += n;
  }

  /** Input up to `to` passes unchanged. */
  @inline keep(to: usize): void {
    if (to <= this.pos) return;
    if (this.modified) this.append(this.base + this.pos, to - this.pos);
    this.pos = to;
  }

  /** Input up to `to` is removed. */
  drop(to: usize): void {
    if (to <= this.pos) return;
    this.start();
    this.pos = to;
  }

  insert(bytes: ArrayBuffer): void {
    this.start();
    this.append(changetype<usize>(bytes), <usize>bytes.byteLength);
  }

  /** The new buffer (only meaningful when modified): valid until the next rewrite by any connection. */
  get resultPtr(): usize {
    return changetype<usize>(rewriteBlock);
  }
}

/** Where Output builds rewritten buffers (see releaseLargeBlocks). */
let rewriteBlock: ArrayBuffer = new ArrayBuffer(0);

/**
 * Where a split frame's start and the next buffer are joined for parsing:
 * one block reused by every connection (a stream parses one buffer at a
 * time and is done with it before returning), so no allocation per buffer.
 */
let joinedBlock: ArrayBuffer = new ArrayBuffer(0);

export function joinBlock(size: usize): usize {
  if (<usize>joinedBlock.byteLength < size) joinedBlock = new ArrayBuffer(<i32>max(size, <usize>joinedBlock.byteLength * 2));
  return changetype<usize>(joinedBlock);
}

/**
 * Drops the shared blocks when an unusually large buffer grew them (memory
 * stays bounded). The bound sits above what Envoy hands over with its default
 * 1 MiB connection buffer limit (a saturated worker reads ~0.9–1.1 MB per
 * callback), so those blocks are kept: dropping one means zero-filling a new one.
 */
const LARGE_BLOCK: i32 = 4 << 20;
export function releaseLargeBlocks(): void {
  if (rewriteBlock.byteLength > LARGE_BLOCK) rewriteBlock = new ArrayBuffer(0);
  if (joinedBlock.byteLength > LARGE_BLOCK) joinedBlock = new ArrayBuffer(0);
}

/**
 * Where the bytes of the buffer being processed come from. Loading only
 * windows lets the layer skip payloads without copying them into the VM.
 */
export class ByteSource {
  /** Pointer to bytes [start, start+size) of the buffer; valid until the next load(). */
  load(start: usize, size: usize): usize { return 0; }
  /** Pointer to the whole buffer ([0, len)); valid until the next loadAll(). */
  loadAll(): usize { return 0; }
  /** Copies the whole buffer ([0, len)) to `dest`, which has room for it. */
  loadInto(dest: usize, len: usize): void {}
  /** The buffer is done with (drop references). */
  release(): void {}
}

/** A buffer already in memory (tests, benchmarks). */
export class MemorySource extends ByteSource {
  constructor(public base: usize) { super(); }
  load(start: usize, size: usize): usize { return this.base + start; }
  loadAll(): usize { return this.base; }
  loadInto(dest: usize, len: usize): void { memory.copy(dest, this.base, len); }
}

const EMPTY = new ArrayBuffer(0);

/** Reads the current host buffer: windows for headers, the whole buffer only when rewriting. */
export class HostSource extends ByteSource {
  type: BufferType = BufferType.DownstreamData;
  size: u32 = 0;
  // the last whole-buffer load stays referenced (alive) while the layer uses it
  whole: ArrayBuffer = EMPTY;

  load(start: usize, size: usize): usize {
    // header windows go through the SDK's reusable scratch block (no allocation)
    return readBufferScratch(this.type, <u32>start, <u32>size);
  }

  loadAll(): usize {
    this.whole = getBufferBytes(this.type, 0, this.size);
    // the host had fewer bytes than it said: never read past what it gave
    if (<u32>this.whole.byteLength < this.size) {
      const padded = new ArrayBuffer(<i32>this.size);
      memory.copy(changetype<usize>(padded), changetype<usize>(this.whole), <usize>this.whole.byteLength);
      this.whole = padded;
    }
    return changetype<usize>(this.whole);
  }

  loadInto(dest: usize, len: usize): void {
    const got = <usize>max<i64>(readBufferInto(this.type, 0, <u32>len, dest, len), 0);
    if (got < len) memory.fill(dest + got, 0, len - got); // the host had fewer bytes than it said: never stale ones
  }

  release(): void {
    this.whole = EMPTY;
  }
}
