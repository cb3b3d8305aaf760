// Bounds-checked access to a wasm32 guest's linear memory. Views are rebuilt
// when the memory grows (growing detaches the old ArrayBuffer).

const decoder = new TextDecoder('utf-8');

export class GuestMemory {
  private buffer: ArrayBuffer;
  private u8: Uint8Array;
  private view: DataView;

  constructor(private readonly memory: WebAssembly.Memory) {
    this.buffer = memory.buffer;
    this.u8 = new Uint8Array(this.buffer);
    this.view = new DataView(this.buffer);
  }

  private refresh(): void {
    if (this.memory.buffer !== this.buffer) {
      this.buffer = this.memory.buffer;
      this.u8 = new Uint8Array(this.buffer);
      this.view = new DataView(this.buffer);
    }
  }

  get size(): number {
    this.refresh();
    return this.u8.length;
  }

  /** Whether [ptr, ptr+len) lies inside memory. */
  valid(ptr: number, len: number): boolean {
    const size = this.u8.length;
    if (size !== 0 && ptr >= 0 && len >= 0 && ptr + len <= size) return true;
    // Growing detaches the old buffer (its views read as length 0): look again
    // only when the cached view says no, so the hot path never asks
    // memory.buffer (a getter call) on every access.
    this.refresh();
    return ptr >= 0 && len >= 0 && ptr + len <= this.u8.length;
  }

  /** A view of guest bytes (valid until the guest runs again), or undefined when out of bounds. */
  view8(ptr: number, len: number): Uint8Array | undefined {
    ptr >>>= 0;
    len >>>= 0;
    if (!this.valid(ptr, len)) return undefined;
    return this.u8.subarray(ptr, ptr + len);
  }

  /** A copy of guest bytes, or undefined when out of bounds. */
  read(ptr: number, len: number): Uint8Array | undefined {
    const v = this.view8(ptr, len);
    return v === undefined ? undefined : v.slice();
  }

  readString(ptr: number, len: number): string | undefined {
    const v = this.view8(ptr, len);
    return v === undefined ? undefined : decoder.decode(v);
  }

  write(ptr: number, data: Uint8Array): boolean {
    ptr >>>= 0;
    if (!this.valid(ptr, data.length)) return false;
    this.u8.set(data, ptr);
    return true;
  }

  fill(ptr: number, len: number, value = 0): boolean {
    ptr >>>= 0;
    if (!this.valid(ptr, len)) return false;
    this.u8.fill(value, ptr, ptr + len);
    return true;
  }

  getU32(ptr: number): number | undefined {
    ptr >>>= 0;
    if (!this.valid(ptr, 4)) return undefined;
    return this.view.getUint32(ptr, true);
  }

  setU32(ptr: number, value: number): boolean {
    ptr >>>= 0;
    if (!this.valid(ptr, 4)) return false;
    this.view.setUint32(ptr, value >>> 0, true);
    return true;
  }

  setU64(ptr: number, value: bigint): boolean {
    ptr >>>= 0;
    if (!this.valid(ptr, 8)) return false;
    this.view.setBigUint64(ptr, BigInt.asUintN(64, value), true);
    return true;
  }
}
