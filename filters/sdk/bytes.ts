// Byte-level helpers for parsers working on ArrayBuffers.
//
// They read through raw pointers: element access on a Uint8Array is a call
// that the incremental GC's shadow-stack instrumentation keeps from being
// inlined, which costs ~10x in tight loops.

/** Index of `byte` in `data` at or after `from`, or -1. */
export function indexOfByte(data: Uint8Array, byte: u8, from: i32 = 0): i32 {
  const base = data.dataStart;
  const n = data.length;
  for (let i = max(from, 0); i < n; i++) if (load<u8>(base + <usize>i) == byte) return i;
  return -1;
}

/** Number of occurrences of `byte` in data[from, to). */
export function countByte(data: Uint8Array, byte: u8, from: i32 = 0, to: i32 = -1): i32 {
  const base = data.dataStart;
  const end = to < 0 || to > data.length ? data.length : to;
  let count = 0;
  for (let i = max(from, 0); i < end; i++) if (load<u8>(base + <usize>i) == byte) count++;
  return count;
}

/** Whether data[at..] starts with `prefix`. */
export function startsWithBytes(data: Uint8Array, prefix: Uint8Array, at: i32 = 0): bool {
  if (at < 0 || at + prefix.length > data.length) return false;
  return memory.compare(data.dataStart + <usize>at, prefix.dataStart, <usize>prefix.length) == 0;
}

export function bytesOf(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}
