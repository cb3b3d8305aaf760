// Memory handed across the ABI boundary.
//
// The host writes results (buffer bytes, property values, ...) into memory it
// obtains from proxy_on_memory_allocate. Those blocks are AssemblyScript
// ArrayBuffers allocated with __new and pinned, so the incremental collector
// cannot free them while only the host knows about them. takeHostBytes turns
// such a block back into an ordinary, collectable ArrayBuffer.

/** Scratch words for the host's out-parameters (pointer/size/id/value). */
export const OUT_PTR: usize = memory.data(8, 8);
export const OUT_SIZE: usize = memory.data(8, 8);

// A reusable block for readers that only look at bytes briefly (readBufferScratch):
// while `scratchArmed`, the next host allocation that fits is served from it.
let scratch: ArrayBuffer = new ArrayBuffer(0);
let scratchArmed: bool = false;

/** Makes sure the scratch block holds `size` bytes and arms it for the next host allocation. */
export function armScratch(size: usize): void {
  if (<usize>scratch.byteLength < size) scratch = new ArrayBuffer(<i32>max(size, <usize>256));
  scratchArmed = true;
}

/** Disarms the scratch block (the host may not have allocated at all). */
export function disarmScratch(): void {
  scratchArmed = false;
}

export function scratchPointer(): usize {
  return changetype<usize>(scratch);
}

/** Exported as proxy_on_memory_allocate: a pinned ArrayBuffer of `size` bytes. */
export function allocateForHost(size: usize): usize {
  if (scratchArmed) {
    scratchArmed = false;
    if (size <= <usize>scratch.byteLength) return changetype<usize>(scratch);
  }
  const ptr = __new(size, idof<ArrayBuffer>());
  __pin(ptr);
  return ptr;
}

/** Clears the out-parameters; Envoy leaves them untouched when there is nothing to return. */
export function resetOut(): void {
  store<u64>(OUT_PTR, 0);
  store<u64>(OUT_SIZE, 0);
}

/** Adopts a block the host filled (pointer in OUT_PTR, size in OUT_SIZE). */
export function takeHostBytes(): ArrayBuffer {
  const ptr = load<usize>(OUT_PTR);
  const size = load<usize>(OUT_SIZE);
  if (ptr == 0) return new ArrayBuffer(0);
  const buffer = changetype<ArrayBuffer>(ptr);
  __unpin(ptr);
  if (<usize>buffer.byteLength != size) return buffer.slice(0, <i32>size);
  return buffer;
}

/** UTF-8 bytes of a string (AssemblyScript strings are UTF-16). */
export function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}

export function fromUtf8(bytes: ArrayBuffer): string {
  return String.UTF8.decode(bytes);
}
