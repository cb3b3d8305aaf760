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

// The next host allocation can be served from a block the filter chose
// (armTarget): the host then writes its bytes straight there, with no new
// ArrayBuffer (which __new would zero-fill) and no second copy.
let targetPtr: usize = 0;
let targetCapacity: usize = 0;

/** Serves the next host allocation of at most `capacity` bytes from `ptr`. */
export function armTarget(ptr: usize, capacity: usize): void {
  targetPtr = ptr;
  targetCapacity = capacity;
}

/** Disarms the target (the host may not have allocated at all). */
export function disarmTarget(): void {
  targetPtr = 0;
}

// A reusable block for readers that only look at bytes briefly (readBufferScratch).
let scratch: ArrayBuffer = new ArrayBuffer(0);

/** Makes sure the scratch block holds `size` bytes and arms it for the next host allocation. */
export function armScratch(size: usize): void {
  if (<usize>scratch.byteLength < size) scratch = new ArrayBuffer(<i32>max(size, <usize>256));
  armTarget(changetype<usize>(scratch), <usize>scratch.byteLength);
}

export function scratchPointer(): usize {
  return changetype<usize>(scratch);
}

/** Exported as proxy_on_memory_allocate: the armed target when it fits, else a pinned ArrayBuffer of `size` bytes. */
export function allocateForHost(size: usize): usize {
  const target = targetPtr;
  if (target != 0) {
    targetPtr = 0;
    if (size <= targetCapacity) return target;
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
