// Batched counters: a stream adds to a plain array while it parses; the layer
// flushes the changed ones to the host once per callback (a host call per
// frame would cost more than parsing the frame).
import { Counter } from "../metrics";

export class Counters {
  names: string[] = [];
  private counters: Counter[] = [];
  /** Deltas since the last flush, by index (raw-pointer loops may write here; see addAt). */
  values: StaticArray<i64> = new StaticArray<i64>(0);
  /** Indexes whose delta is non-zero. */
  dirty: Array<i32> = new Array<i32>();

  /** Declares a counter (before seal()); returns its index. The same name twice gives the same index. */
  define(name: string): i32 {
    const at = this.names.indexOf(name);
    if (at >= 0) return at;
    this.names.push(name);
    return this.names.length - 1;
  }

  /** Creates the host counters (visible in the stats before the first connection). Call from onConfigure. */
  seal(): void {
    this.counters = [];
    for (let i = 0; i < this.names.length; i++) {
      const c = new Counter(this.names[i]);
      c.define();
      this.counters.push(c);
    }
    this.values = new StaticArray<i64>(this.names.length);
    this.dirty.length = 0;
  }

  get size(): i32 { return this.names.length; }

  @inline add(index: i32, delta: i64): void {
    const v = unchecked(this.values[index]);
    if (v == 0) this.dirty.push(index);
    unchecked(this.values[index] = v + delta);
  }

  /** Adds the deltas to the host's counters (one host call per changed counter). */
  flush(): void {
    const dirty = this.dirty;
    for (let i = 0; i < dirty.length; i++) {
      const index = unchecked(dirty[i]);
      const v = unchecked(this.values[index]);
      unchecked(this.values[index] = 0);
      if (v > 0) this.counters[index].increment(v);
    }
    dirty.length = 0;
  }
}

/**
 * Counters.add with raw pointers (`counters` is changetype<usize>(counters),
 * `values` changetype<usize>(counters.values)), for per-frame loops:
 * AssemblyScript spills a managed reference to its shadow stack at every use,
 * raw pointers stay in registers.
 */
// @ts-ignore: decorator
@inline export function addAt(counters: usize, values: usize, index: i32, delta: i64): void {
  const at = values + (<usize>index << 3);
  const v = load<i64>(at);
  if (v == 0) changetype<Counters>(counters).dirty.push(index);
  store<i64>(at, v + delta);
}
